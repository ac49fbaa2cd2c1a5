//! `idle-latency`: a running worker (`offboard run`'s loop, in process) with nothing to do;
//! one user with four tokens is enqueued at a time, and the time from the enqueue's return
//! to the request being cleared is measured, `--samples` times. The schedule fires once a
//! day on both backends, so what wakes the worker is LISTEN/NOTIFY on PostgreSQL and the
//! idle poll (`worker.idle_poll`, default 200 ms) on SQLite. Enqueues come at random
//! moments (up to 0.5 s apart on SQLite, 50 ms on PostgreSQL), not in step with the poll.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::BenchOptions;
use super::bed::{Bed, BenchProvider, rate, user_name};
use crate::outcome::RequestState;

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let postgres = options.database.is_some();
    let schedule = "0 0 3 * * *";
    let idle_poll = crate::config::WorkerConfig::default().idle_poll.0;
    let worker = format!("[worker]\nschedule = \"{schedule}\"\n");
    let providers: Vec<BenchProvider> = ["l1", "l2", "l3", "l4"]
        .into_iter()
        .map(|name| BenchProvider {
            name,
            quota: None,
            rate: rate(1000, Duration::from_secs(1)),
        })
        .collect();
    let samples = options.samples.max(1);
    // Odd users get one token per provider (even ones a fifth): take users 1, 3, 5, …
    let users = 2 * samples;
    let bed = Bed::set_up(options.database.as_deref(), &providers, 10, &worker, users).await?;
    let wake = if postgres {
        "LISTEN/NOTIFY, schedule once a day".to_owned()
    } else {
        format!(
            "idle poll every {}ms (no notifications on SQLite), schedule once a day",
            idle_poll.as_millis()
        )
    };
    writeln!(
        out,
        "scenario idle-latency: {samples} samples, one user with 4 tokens each, providers answering at once; {wake}"
    )?;
    let shutdown = CancellationToken::new();
    let cron = schedule.parse::<cron::Schedule>().context("bench schedule")?;
    let daemon = tokio::spawn(crate::drain::daemon::run(
        bed.app.worker().clone(),
        cron,
        idle_poll,
        shutdown.clone(),
    ));
    // Let the daemon's first drain finish and its listener connect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gap_ms = if postgres { 50 } else { 500 };
    let mut latencies = Vec::with_capacity(samples);
    for k in 0..samples {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..gap_ms))).await;
        let user = user_name(2 * k + 1);
        bed.store().enqueue(&user, Some("offboard bench"), None).await?;
        let enqueued = Instant::now();
        loop {
            let state = bed.store().clearance(&user).await?.map(|r| r.state);
            if state == Some(RequestState::Cleared) {
                break;
            }
            anyhow::ensure!(state != Some(RequestState::Failed), "request for {user} failed");
            anyhow::ensure!(
                enqueued.elapsed() < Duration::from_secs(30),
                "request for {user} not cleared within 30s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(enqueued.elapsed());
    }
    shutdown.cancel();
    let _ = daemon.await;
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    writeln!(
        out,
        "result idle-latency: p50 {:.1}ms, p99 {:.1}ms, max {:.1}ms, n {}",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(latencies[latencies.len() - 1]),
        latencies.len()
    )?;
    bed.tear_down().await;
    Ok(())
}
