//! `unlimited`: four providers that answer at once (no rate limit, no latency, no faults),
//! offboard configured at the highest rate it takes: how fast a backlog is revoked and
//! audited, and what it costs in CPU. The CPU time is the whole process's (`/proc/self/stat`),
//! so it includes the simulator serving in process, not the PostgreSQL server's.

use std::io::Write;
use std::time::Duration;

use super::BenchOptions;
use super::bed::{Bed, BenchProvider, rate};
use super::machine;
use crate::config::Rate;
use crate::outcome::RequestState;

const WORKER: &str = "[worker]\nmax_attempts = 1000\n";

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let max = u32::try_from(Rate::MAX_PER_SEC).unwrap_or(u32::MAX);
    let providers: Vec<BenchProvider> = ["u1", "u2", "u3", "u4"]
        .into_iter()
        .map(|name| BenchProvider {
            name,
            quota: None,
            rate: rate(max, Duration::from_secs(1)),
        })
        .collect();
    let users = options.users;
    let bed = Bed::set_up(options.database.as_deref(), &providers, 10_000, WORKER, users).await?;
    writeln!(
        out,
        "scenario unlimited: {users} users, {} tokens, 4 providers answering at once, rate {max}/s, one worker (concurrency 64)",
        bed.tokens
    )?;
    bed.enqueue_all(users).await?;
    let cpu_before = machine::cpu_seconds();
    let elapsed = bed.drain_all(Duration::from_secs(600)).await?;
    let cpu_after = machine::cpu_seconds();
    let counts = bed.store().state_counts().await?;
    let t = elapsed.as_secs_f64();
    let per_sec = bed.tokens as f64 / t.max(f64::EPSILON);
    let cpu = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => format!(
            "{:.2} CPU s per 1000 tokens ({:.2} s of CPU in {t:.2} s)",
            (b - a) * 1000.0 / bed.tokens.max(1) as f64,
            b - a
        ),
        _ => "CPU unknown".to_owned(),
    };
    writeln!(
        out,
        "  requests: {} cleared, {} failed",
        counts.get(RequestState::Cleared),
        counts.get(RequestState::Failed)
    )?;
    if let Some(kib) = machine::peak_rss_kib() {
        writeln!(out, "  peak RSS of the process so far: {:.0} MiB", kib as f64 / 1024.0)?;
    }
    writeln!(
        out,
        "result unlimited: {} tokens in {t:.2}s, {per_sec:.0} tokens/s, {cpu}",
        bed.tokens
    )?;
    bed.tear_down().await;
    Ok(())
}
