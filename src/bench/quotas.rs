//! `quotas` and `overconfigured`: a backlog over four providers whose simulators accept
//! 40, 80, 20 and 30 calls a second (beyond that, 429 with `Retry-After: 1`), with offboard
//! configured at those rates, or 1.67× above them (the providers accept 40% less than
//! configured). The best possible drain time is `T_min = max over providers of (tokens at
//! p / quota of p)`; the figures are the measured `T`, `T / T_min`, and the 429s received.

use std::io::Write;
use std::time::Duration;

use super::BenchOptions;
use super::bed::{Bed, BenchProvider, rate};
use crate::outcome::RequestState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pacing {
    /// Each provider's configured rate is its quota.
    AtQuota,
    /// Each configured rate is the quota / 0.6 (per minute, so 40/s becomes 4000/m).
    Over,
}

const QUOTAS: [(&str, u32); 4] = [("q40", 40), ("q80", 80), ("q20", 20), ("q30", 30)];

/// Durable backoff shortened so that requests sent back to `pending` by 429s come back
/// within seconds, and enough attempts that none fails: the drain time is the figure.
const WORKER: &str = "[worker]\nmax_attempts = 1000\n[retry]\ndurable_base = \"1s\"\ndurable_cap = \"10s\"\n";

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions, pacing: Pacing) -> anyhow::Result<()> {
    let name = match pacing {
        Pacing::AtQuota => "quotas",
        Pacing::Over => "overconfigured",
    };
    let providers: Vec<BenchProvider> = QUOTAS
        .iter()
        .map(|&(name, quota)| BenchProvider {
            name,
            quota: Some(quota),
            rate: match pacing {
                Pacing::AtQuota => rate(quota, Duration::from_secs(1)),
                Pacing::Over => rate(quota * 100, Duration::from_secs(60)),
            },
        })
        .collect();
    let users = options.users;
    let bed = Bed::set_up(options.database.as_deref(), &providers, 1, WORKER, users).await?;
    writeln!(
        out,
        "scenario {name}: {users} users, {} tokens, 4 providers, burst 1, one worker (concurrency 64), durable backoff 1s to 10s",
        bed.tokens
    )?;
    bed.enqueue_all(users).await?;
    let t_min_guess = Duration::from_secs_f64(bed.tokens as f64 / 20.0);
    let elapsed = bed.drain_all(Duration::from_secs(120) + t_min_guess * 30).await?;

    let stats = bed.sim.stats();
    let mut t_min = 0.0f64;
    let mut total_429 = 0;
    let mut total_calls = 0;
    for p in &providers {
        let s = stats.get(p.name).cloned().unwrap_or_default();
        let quota = f64::from(p.quota.unwrap_or(1));
        let needed = s.accepted as f64 / quota;
        t_min = t_min.max(needed);
        total_429 += s.rejected_429;
        total_calls += s.calls;
        writeln!(
            out,
            "  {}: quota {quota}/s, configured {:.1}/s, tokens {}, calls {}, 429s {}, tokens/quota {needed:.2}s",
            p.name,
            p.rate_per_sec(),
            s.accepted,
            s.calls,
            s.rejected_429,
        )?;
    }
    let counts = bed.store().state_counts().await?;
    let t = elapsed.as_secs_f64();
    writeln!(
        out,
        "  requests: {} cleared, {} failed",
        counts.get(RequestState::Cleared),
        counts.get(RequestState::Failed)
    )?;
    writeln!(
        out,
        "result {name}: T_min {t_min:.2}s, T {t:.2}s, T/T_min {:.2}, calls {total_calls}, 429s {total_429} ({:.1}%)",
        t / t_min.max(f64::EPSILON),
        100.0 * total_429 as f64 / (total_calls.max(1)) as f64
    )?;
    bed.tear_down().await;
    Ok(())
}
