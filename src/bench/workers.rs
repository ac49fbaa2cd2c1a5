//! `workers`: the `quotas` backlog drained by `--workers N` `offboard run` processes sharing
//! one PostgreSQL database (SQLite is one machine's file: not this deployment). Each
//! process paces its calls by the configured rates on its own, so unless they share their
//! rates, together they send up to N times what a provider accepts: the figures are the
//! drain time against `T_min`, the 429s, and for each provider the most calls it received in
//! any one second (from the simulator's call times) against its configured rate + burst.

use std::io::Write;
use std::time::{Duration, Instant};

use super::BenchOptions;
use super::bed::Bed;
use super::procs::Workers;
use super::quotas::{self, Pacing};

/// `workers` runs on PostgreSQL only.
pub(super) fn check_backend(options: &BenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.database.is_some(),
        "scenario workers needs PostgreSQL: give a server with --database postgres://… (several processes on one SQLite file is not a supported deployment)"
    );
    Ok(())
}

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    check_backend(options)?;
    let scale = options.quota_scale;
    let providers = quotas::providers(Pacing::AtQuota, scale);
    let users = options.users;
    let n = options.workers;
    let bed = Bed::set_up(options.database.as_deref(), &providers, 1, quotas::WORKER, users).await?;
    writeln!(
        out,
        "scenario workers: {users} users, {} tokens, 4 providers, quota scale {scale}, rates at the quotas, burst 1, {n} `offboard run` {} (concurrency 64 each), durable backoff 1s to 10s",
        bed.tokens,
        if n == 1 { "process" } else { "processes" }
    )?;
    let mut workers = Workers::start(&bed, n).await?;
    let enqueued = Instant::now();
    bed.enqueue_all(users).await?;
    let (_, drained) = workers
        .wait_drained(
            bed.store(),
            quotas::deadline(bed.tokens, scale),
            Duration::from_millis(50),
        )
        .await?;
    let elapsed = enqueued.elapsed();
    let peaks = workers.stop().await?;
    anyhow::ensure!(drained, "the backlog was not drained within {}s", elapsed.as_secs());
    let peaks: Vec<String> = peaks.iter().map(|&k| format!("{:.0}", super::procs::mib(k))).collect();
    writeln!(out, "  peak RSS of each process: {} MiB", peaks.join(", "))?;
    quotas::report(out, "workers", &bed, &providers, elapsed, true).await?;
    bed.tear_down().await;
    Ok(())
}
