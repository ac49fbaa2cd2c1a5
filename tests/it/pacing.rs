//! Issue 10: rate limits shared by workers on one PostgreSQL database, and pacing that
//! adapts to what a provider really accepts. Real simulators on loopback, real databases;
//! the assertions count calls in the simulator's log, never time a run.

use std::net::SocketAddr;
use std::time::Duration;

use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, CallRecord, Simulator};
use offboard::storage::seed::NewToken;
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;

use crate::end_to_end::{Fixture, provider};
use crate::helpers::{TestDb, on_both_backends};

/// Workers that hold few requests at a time, so that several of them drain together.
const SMALL_WORKER: &str = "[worker]\nconcurrency = 4\nbatch_size = 2\nmax_attempts = 100\n\
                            [retry]\ndurable_base = \"100ms\"\ndurable_cap = \"500ms\"\n";

/// A fixture with one simulated provider `p` configured at `rate` and `burst`.
async fn fixture(db: TestDb, behaviour: Behaviour, rate: &str, burst: u32) -> Fixture {
    let sim = Simulator::start(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        vec![provider("p", Dialect::Moov, behaviour)],
    )
    .await
    .unwrap();
    let keys = format!("rate = \"{rate}\"\nburst = {burst}\n");
    let (providers, env) = offboard::simulate::offboard_config_for(&sim, &keys);
    let text = format!("[database]\nurl = \"{}\"\n{SMALL_WORKER}\n{providers}", db.url);
    Fixture::with_config(db, sim, text, env)
}

/// `users` users with one token each at `p`, all enqueued.
async fn backlog(f: &Fixture, users: usize) {
    let tokens: Vec<NewToken> = (0..users)
        .map(|i| NewToken {
            user_id: format!("u{i}"),
            provider: "p".into(),
            token_type: TokenType::RefreshToken,
            value: TokenValue::new(f.sim.issue("p", TokenType::RefreshToken, None)),
            grant_ref: None,
            expires_at: None,
        })
        .collect();
    offboard::storage::seed::insert_tokens(f.store(), &tokens)
        .await
        .unwrap();
    for i in 0..users {
        f.enqueue(&format!("u{i}")).await;
    }
}

/// The most calls the simulator received in any one-second window starting at a call, over
/// the calls `which` selects.
fn busiest_second(calls: &[CallRecord], which: impl Fn(&CallRecord) -> bool) -> usize {
    let calls: Vec<_> = calls.iter().filter(|c| which(c)).collect();
    calls
        .iter()
        .map(|start| {
            calls
                .iter()
                .filter(|c| c.at >= start.at && c.at < start.at + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn open_requests(f: &Fixture) -> i64 {
    f.count("SELECT count(*) FROM offboarding_requests WHERE state IN ('pending', 'running')")
        .await
}

/// Three workers (separate apps, one database) drain one backlog together: in every second
/// their calls together stay within the provider's rate plus its burst, and when they stop,
/// their shares are given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_together_stay_within_the_rate_and_burst() {
    let f = fixture(TestDb::postgres().await, Behaviour::default(), "30/s", 5).await;
    backlog(&f, 180).await;
    let workers = [f.worker.clone(), f.another_worker(""), f.another_worker("")];
    for _ in 0..20 {
        let mut drains = tokio::task::JoinSet::new();
        for worker in workers.clone() {
            drains.spawn(async move { worker.drain(&CancellationToken::new()).await.expect("drain") });
        }
        while let Some(report) = drains.join_next().await {
            report.unwrap();
        }
        if open_requests(&f).await == 0 {
            break;
        }
    }
    assert_eq!(f.cleared().await, 180);
    let calls = f.sim.calls();
    let busiest = busiest_second(&calls, |_| true);
    assert!(
        busiest <= 35,
        "{busiest} calls in one second from three workers at 30/s, burst 5"
    );
    assert!(
        busiest >= 20,
        "{busiest} calls in the busiest second: the shares are far below the rate"
    );
    let workers_seen: std::collections::HashSet<String> =
        offboard::storage::seed::text_rows(f.store(), "SELECT DISTINCT worker FROM revocation_audit")
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert!(
        workers_seen.len() >= 2,
        "the workers did not drain together: {workers_seen:?}"
    );
    assert_eq!(
        f.store().rate_share_members().await.unwrap(),
        Vec::new(),
        "stopped workers keep no share"
    );
}

/// A worker that died holding a share: its row expires with its lease and the survivor's
/// share grows back to the whole rate. Before that, the survivor keeps to half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_share_expires_and_the_survivors_grows_back() {
    let f = fixture(TestDb::postgres().await, Behaviour::default(), "20/s", 2).await;
    backlog(&f, 120).await;
    // A worker that joined long ago and was killed just now: its lease runs 2 s more.
    crate::helpers::exec(
        f.store(),
        "INSERT INTO offboard_rate_shares (provider, worker, joined_at, lease_until)
         VALUES ('p', 'ghost', now() - interval '1 minute', now() + interval '2 seconds')",
    )
    .await
    .unwrap();
    f.drain_until_settled().await;
    assert_eq!(f.cleared().await, 120);
    let calls = f.sim.calls();
    let first = calls.iter().map(|c| c.at).min().unwrap();
    let first_second = calls.iter().filter(|c| c.at < first + Duration::from_secs(1)).count();
    assert!(
        first_second <= 12,
        "{first_second} calls in the first second on half of 20/s, burst 1 each"
    );
    let busiest = busiest_second(&calls, |_| true);
    assert!(busiest <= 22, "{busiest} calls in one second at 20/s, burst 2");
    assert!(
        busiest >= 15,
        "{busiest}: the share never grew back after the dead worker's lease"
    );
    assert_eq!(
        f.store().rate_share_members().await.unwrap(),
        Vec::new(),
        "the ghost's row expired and was deleted"
    );
}

/// A provider that accepts 60% of the configured rate: the worker slows to what it accepts
/// after the first throttles, so few calls are answered 429 and no request fails.
async fn a_worker_configured_above_the_real_limit_settles_near_it(db: TestDb) {
    let limited = Behaviour {
        limit_per_sec: Some(30),
        ..Behaviour::default()
    };
    let f = fixture(db, limited, "50/s", 1).await;
    backlog(&f, 300).await;
    f.drain_until_settled().await;
    assert_eq!(f.cleared().await, 300);
    let failed = f
        .count("SELECT count(*) FROM offboarding_requests WHERE state = 'failed'")
        .await;
    assert_eq!(failed, 0);
    let stats = &f.sim.stats()["p"];
    assert_eq!(stats.accepted, 300);
    assert!(
        stats.rejected_429 * 20 <= stats.calls,
        "{} of {} calls answered 429",
        stats.rejected_429,
        stats.calls
    );
    let audited_429 = f
        .count("SELECT count(*) FROM revocation_audit WHERE http_status = 429")
        .await;
    assert_eq!(audited_429 as u64, stats.rejected_429, "every attempt is audited");
    let text = f.metrics.render();
    let gauge = text
        .lines()
        .find(|l| l.starts_with("offboard_provider_effective_rate{provider=\"p\"}"))
        .unwrap_or_else(|| panic!("{text}"));
    let rate: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(rate < 50.0, "the gauge shows the adapted rate: {gauge}");
}

on_both_backends!(a_worker_configured_above_the_real_limit_settles_near_it);

/// Three workers on one PostgreSQL database against a provider that accepts 60% of the
/// configured rate: the decrease one of them makes reaches the others through the shared
/// rate, so together they too settle under the real limit with few 429s and no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_adapted_rate() {
    let limited = Behaviour {
        limit_per_sec: Some(30),
        ..Behaviour::default()
    };
    let f = fixture(TestDb::postgres().await, limited, "50/s", 3).await;
    backlog(&f, 300).await;
    let workers = [f.worker.clone(), f.another_worker(""), f.another_worker("")];
    for _ in 0..20 {
        let mut drains = tokio::task::JoinSet::new();
        for worker in workers.clone() {
            drains.spawn(async move { worker.drain(&CancellationToken::new()).await.expect("drain") });
        }
        while let Some(report) = drains.join_next().await {
            report.unwrap();
        }
        if open_requests(&f).await == 0 {
            break;
        }
    }
    assert_eq!(f.cleared().await, 300);
    let stats = &f.sim.stats()["p"];
    assert!(
        stats.rejected_429 * 10 <= stats.calls,
        "{} of {} calls answered 429",
        stats.rejected_429,
        stats.calls
    );
    let shared = offboard::storage::seed::scalar(
        f.store(),
        "SELECT CAST(rate_per_sec AS BIGINT) FROM offboard_provider_pacing WHERE provider = 'p'",
    )
    .await
    .unwrap();
    assert!(shared < 50, "the shared rate was lowered: {shared}/s");
}
