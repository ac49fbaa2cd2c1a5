//! `rss`: the peak resident memory (`VmHWM`) of one `offboard run` process against what is
//! queued. Runs, each on a fresh database, against four providers that answer at once:
//! 1,000 tokens queued (250 users × 4) and drained; `--tokens` queued (default 1,000,000:
//! 250,000 users × 4); 1,000 tokens kept queued for as long as that run lasted (as users
//! clear, the next are enqueued: the same work and time, only the queue's length differs);
//! and one user with 1,000 tokens against one user with `--user-tokens` (default 100,000).
//! Each child drains at start and runs until the queue is empty or for `--run-seconds`
//! (default 10), then is stopped with SIGTERM; its memory is sampled every 50 ms and just
//! before the signal. The backlogs are seeded in chunks.
//!
//! Why the kept queue: a process's memory rises for its first seconds of work whatever is
//! queued (connections opened to each provider and the database, their buffers grown to
//! the largest batch, the allocator's pools), so a 1,000-token queue drained in half a
//! second is also a process that stopped before it warmed up.

use std::io::Write;
use std::time::{Duration, Instant};

use super::BenchOptions;
use super::bed::{Bed, BenchProvider, rate, unissued_token};
use super::procs::{Workers, mib};
use crate::config::Rate;

const PROVIDERS: [&str; 4] = ["m1", "m2", "m3", "m4"];
const SMALL: usize = 1_000;

/// One measured run: what was queued, the child's peak RSS, how long it ran, and whether
/// it emptied the queue.
struct Measured {
    peak_kib: u64,
    ran: Duration,
    drained: bool,
}

pub(super) async fn run(out: &mut impl Write, options: &BenchOptions) -> anyhow::Result<()> {
    let large = options.tokens.max(SMALL);
    let user_large = options.user_tokens.max(SMALL);
    writeln!(
        out,
        "scenario rss: one `offboard run` (concurrency 64, batch 32), 4 providers answering at once, each run until drained or {}s, then SIGTERM; VmHWM sampled every 50ms",
        options.run_for.as_secs()
    )?;
    let small_queue = measure(out, options, Shape::Users(SMALL / 4)).await?;
    let large_queue = measure(out, options, Shape::Users(large / 4)).await?;
    let kept = Shape::Kept {
        users: SMALL / 4,
        run_for: large_queue.ran,
    };
    let kept_queue = measure(out, options, kept).await?;
    let small_user = measure(out, options, Shape::OneUser(SMALL)).await?;
    let large_user = measure(out, options, Shape::OneUser(user_large)).await?;
    let ratio = |a: &Measured, b: &Measured| b.peak_kib as f64 / a.peak_kib.max(1) as f64;
    writeln!(
        out,
        "result rss: queue {SMALL} tokens {:.1} MiB, kept at {SMALL} tokens for {:.1}s {:.1} MiB, queue {} tokens {:.1} MiB, ratio {:.2} (to the drained {:.2}); one user of {SMALL} tokens {:.1} MiB, one user of {user_large} tokens {:.1} MiB, ratio {:.2}",
        mib(small_queue.peak_kib),
        kept_queue.ran.as_secs_f64(),
        mib(kept_queue.peak_kib),
        4 * (large / 4),
        mib(large_queue.peak_kib),
        ratio(&kept_queue, &large_queue),
        ratio(&small_queue, &large_queue),
        mib(small_user.peak_kib),
        mib(large_user.peak_kib),
        ratio(&small_user, &large_user),
    )?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Shape {
    /// This many users, each with one token at each provider.
    Users(usize),
    /// One user with this many tokens, spread over the providers.
    OneUser(usize),
    /// This many users queued (each with four tokens) for `run_for`: as they clear, the
    /// next users seeded are enqueued.
    Kept { users: usize, run_for: Duration },
}

/// Users seeded per second of a kept run: more than a worker clears here (1,250 users,
/// 5,000 tokens, a second).
const KEPT_USERS_PER_SEC: f64 = 2_500.0;

async fn measure(out: &mut impl Write, options: &BenchOptions, shape: Shape) -> anyhow::Result<Measured> {
    let max = u32::try_from(Rate::MAX_PER_SEC).unwrap_or(u32::MAX);
    let providers: Vec<BenchProvider> = PROVIDERS
        .into_iter()
        .map(|name| BenchProvider {
            name,
            quota: None,
            rate: rate(max, Duration::from_secs(1)),
        })
        .collect();
    let worker = "[worker]\nmax_attempts = 1000\n";
    let mut bed = Bed::open(options.database.as_deref(), &providers, 10_000, worker).await?;
    let (users, what) = match shape {
        Shape::Users(users) => {
            let tokens = (0..users).flat_map(|u| PROVIDERS.iter().map(move |p| unissued_token(u, p, 0)));
            bed.seed(tokens).await?;
            (users, format!("queue of {users} users × 4 tokens"))
        }
        Shape::OneUser(n) => {
            let tokens = (0..n).map(|k| unissued_token(0, PROVIDERS[k % PROVIDERS.len()], k));
            bed.seed(tokens).await?;
            (1, "one user".to_owned())
        }
        Shape::Kept { users, run_for } => {
            let seeded = users.max((run_for.as_secs_f64() * KEPT_USERS_PER_SEC) as usize);
            let tokens = (0..seeded).flat_map(|u| PROVIDERS.iter().map(move |p| unissued_token(u, p, 0)));
            bed.seed(tokens).await?;
            (users, format!("queue kept at {users} users × 4 tokens"))
        }
    };
    bed.enqueue_all(users).await?;
    let result = async {
        let mut child = Workers::start(&bed, 1).await?;
        let (ran, drained) = match shape {
            Shape::Kept { users, run_for } => (keep_queued(&mut child, &bed, users, run_for).await?, false),
            _ => {
                child
                    .wait_drained(bed.store(), options.run_for, Duration::from_millis(500))
                    .await?
            }
        };
        let peak_kib = child.stop().await?.first().copied().unwrap_or(0);
        anyhow::Ok(Measured { peak_kib, ran, drained })
    }
    .await;
    let cleared = bed
        .store()
        .state_counts()
        .await
        .map(|c| c.get(crate::outcome::RequestState::Cleared));
    let tokens = match shape {
        Shape::Kept { .. } => format!("{} tokens seeded", bed.tokens),
        _ => format!("{} tokens", bed.tokens),
    };
    bed.tear_down().await;
    let m = result?;
    writeln!(
        out,
        "  {what}, {tokens}: peak RSS {:.1} MiB, ran {:.1}s, {}, {} requests cleared",
        mib(m.peak_kib),
        m.ran.as_secs_f64(),
        if m.drained { "drained" } else { "stopped before the end" },
        cleared.unwrap_or(-1),
    )?;
    out.flush()?;
    Ok(m)
}

/// Runs `child` for `run_for` with `users` users' requests open: every 50 ms, as requests
/// clear, the next seeded users are enqueued. Fails if the seeded users run out first.
async fn keep_queued(child: &mut Workers, bed: &Bed, users: usize, run_for: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let seeded = bed.tokens / PROVIDERS.len();
    let mut next = users;
    while started.elapsed() < run_for {
        child.watch()?;
        let open = usize::try_from(bed.store().state_counts().await?.open()).unwrap_or(0);
        let to = (next + users.saturating_sub(open)).min(seeded);
        anyhow::ensure!(
            to > next || open > 0,
            "the {seeded} users seeded for the kept queue ran out after {:.1}s",
            started.elapsed().as_secs_f64()
        );
        bed.enqueue(next..to).await?;
        next = to;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}
