//! `quotas` and `overconfigured`: a backlog over four providers whose simulators accept
//! 40, 80, 20 and 30 calls a second (beyond that, 429 with `Retry-After: 1`), with offboard
//! configured at those rates, or 1.67× above them (the providers accept 40% less than
//! configured); `--quota-scale F` multiplies quotas and rates alike. The best possible
//! drain time is `T_min = max over providers of (tokens at p / quota of p)`; the figures are
//! the measured `T`, `T / T_min`, and the 429s received.

use std::io::Write;
use std::time::Duration;

use super::BenchOptions;
use super::bed::{Bed, BenchProvider, rate};
use crate::outcome::RequestState;
use crate::simulate::CallRecord;

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
pub(super) const WORKER: &str =
    "[worker]\nmax_attempts = 1000\n[retry]\ndurable_base = \"1s\"\ndurable_cap = \"10s\"\n";

/// The four quota providers, quotas and rates multiplied by `scale`.
pub(super) fn providers(pacing: Pacing, scale: f64) -> Vec<BenchProvider> {
    let scaled = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    QUOTAS
        .iter()
        .map(|&(name, quota)| BenchProvider {
            name,
            quota: Some(scaled(quota)),
            rate: match pacing {
                Pacing::AtQuota => rate(scaled(quota), Duration::from_secs(1)),
                Pacing::Over => rate(scaled(quota * 100), Duration::from_secs(60)),
            },
        })
        .collect()
}

/// How long a drain of `tokens` may take before the scenario gives up.
pub(super) fn deadline(tokens: usize, scale: f64) -> Duration {
    Duration::from_secs(120) + Duration::from_secs_f64(tokens as f64 / (20.0 * scale)) * 30
}

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions, pacing: Pacing) -> anyhow::Result<()> {
    let name = match pacing {
        Pacing::AtQuota => "quotas",
        Pacing::Over => "overconfigured",
    };
    let scale = options.quota_scale;
    let providers = providers(pacing, scale);
    let users = options.users;
    let bed = Bed::set_up(options.database.as_deref(), &providers, 1, WORKER, users).await?;
    writeln!(
        out,
        "scenario {name}: {users} users, {} tokens, 4 providers, quota scale {scale}, burst 1, one worker (concurrency 64), durable backoff 1s to 10s",
        bed.tokens
    )?;
    bed.enqueue_all(users).await?;
    let elapsed = bed.drain_all(deadline(bed.tokens, scale)).await?;
    report(out, name, &bed, &providers, elapsed, false).await?;
    bed.tear_down().await;
    Ok(())
}

/// Prints each provider's calls and 429s (and, with `windows`, the most calls it received
/// in any one second), the requests' end states, and the `result NAME:` line.
pub(super) async fn report(
    out: &mut impl Write,
    name: &str,
    bed: &Bed,
    providers: &[BenchProvider],
    elapsed: Duration,
    windows: bool,
) -> anyhow::Result<()> {
    let stats = bed.sim.stats();
    let calls = if windows { bed.sim.calls() } else { Vec::new() };
    let mut t_min = 0.0f64;
    let mut total_429 = 0;
    let mut total_calls = 0;
    let mut worst_over = 0.0f64;
    for p in providers {
        let s = stats.get(p.name).cloned().unwrap_or_default();
        let quota = f64::from(p.quota.unwrap_or(1));
        let needed = s.accepted as f64 / quota;
        t_min = t_min.max(needed);
        total_429 += s.rejected_429;
        total_calls += s.calls;
        write!(
            out,
            "  {}: quota {quota}/s, configured {:.1}/s, tokens {}, calls {}, 429s {}, tokens/quota {needed:.2}s",
            p.name,
            p.rate_per_sec(),
            s.accepted,
            s.calls,
            s.rejected_429,
        )?;
        if windows {
            let busiest = busiest_second(&calls, p.name);
            let allowed = p.rate_per_sec() + f64::from(bed.burst);
            worst_over = worst_over.max(busiest as f64 / allowed);
            write!(
                out,
                ", most calls in one second {busiest} (rate + burst {allowed:.0}, quota {quota})"
            )?;
        }
        writeln!(out)?;
    }
    let counts = bed.store().state_counts().await?;
    let t = elapsed.as_secs_f64();
    writeln!(
        out,
        "  requests: {} cleared, {} failed",
        counts.get(RequestState::Cleared),
        counts.get(RequestState::Failed)
    )?;
    write!(
        out,
        "result {name}: T_min {t_min:.2}s, T {t:.2}s, T/T_min {:.2}, calls {total_calls}, 429s {total_429} ({:.1}%)",
        t / t_min.max(f64::EPSILON),
        100.0 * total_429 as f64 / (total_calls.max(1)) as f64
    )?;
    if windows {
        write!(out, ", busiest second / (rate + burst) at most {worst_over:.2}")?;
    }
    writeln!(out)?;
    Ok(())
}

/// The most revocation calls `provider` received within any one second (a sliding window
/// over the simulator's call times: two pointers over the sorted times).
pub(super) fn busiest_second(calls: &[CallRecord], provider: &str) -> usize {
    let mut at: Vec<_> = calls
        .iter()
        .filter(|c| c.provider == provider && c.is_revocation())
        .map(|c| c.at)
        .collect();
    at.sort();
    most_within(&at, Duration::from_secs(1))
}

/// The largest number of `times` (sorted) within any window shorter than `width`.
fn most_within(times: &[tokio::time::Instant], width: Duration) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, &t) in times.iter().enumerate() {
        while t.duration_since(times[first]) >= width {
            first += 1;
        }
        most = most.max(last + 1 - first);
    }
    most
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_is_a_sliding_window() {
        let t0 = tokio::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 3 in [900, 1800), though no fixed second from 0 holds more than 2.
        let times = [at(0), at(900), at(1000), at(1800), at(2900), at(5000)];
        assert_eq!(most_within(&times, Duration::from_secs(1)), 3);
        assert_eq!(most_within(&[], Duration::from_secs(1)), 0);
        assert_eq!(most_within(&[at(0), at(1000)], Duration::from_secs(1)), 1);
    }
}
