//! Issue 10, point 6: no head-of-line blocking. A provider that is paused or has a long
//! queue holds up only its own tokens: a token whose provider's backlog is longer than
//! `worker.max_queue_wait` is not waited for, its request is deferred (back to `pending`,
//! no attempt spent, nothing sent), and the slots go to users whose providers can answer.

use std::net::SocketAddr;

use offboard::outcome::RequestState;
use offboard::simulate::{Behaviour, Simulator};
use offboard::token::TokenType::RefreshToken;

use crate::end_to_end::{Fixture, provider};
use crate::helpers::{TestDb, config_toml, on_both_backends};
use offboard::provider::dialect::Dialect;

/// Two slots; retries fast in process, a durable backoff long enough that nothing comes
/// back within the test's drain.
const WORKER: &str = "[worker]\nconcurrency = 2\nbatch_size = 2\n\
                      [retry]\nattempts = 3\nbase = \"10ms\"\ncap = \"50ms\"\n\
                      durable_base = \"10m\"\ndurable_cap = \"20m\"\n";

/// `slow` at `slow_rate` (burst 1) and `fast` at 1000/s (burst 50), with `extra` keys.
async fn fixture(db: TestDb, slow: Behaviour, slow_rate: &str, extra: &str) -> Fixture {
    let providers = vec![
        provider("fast", Dialect::Rfc7009, Behaviour::default()),
        provider("slow", Dialect::Rfc7009, slow),
    ];
    let sim = Simulator::start("127.0.0.1:0".parse::<SocketAddr>().unwrap(), providers)
        .await
        .unwrap();
    let (text, env) = config_toml(&db.url, &sim, extra);
    let at = text.find("[providers.slow]").expect("the slow provider's table");
    let (head, tail) = text.split_at(at);
    let text = format!(
        "{head}{}",
        tail.replacen(
            "rate = \"1000/s\"\nburst = 50",
            &format!("rate = \"{slow_rate}\"\nburst = 1"),
            1
        )
    );
    Fixture::with_config(db, sim, text, env)
}

async fn attempts(f: &Fixture, user: &str) -> i32 {
    f.latest(user).await.attempts
}

/// A provider that answers 429 with `Retry-After: 30` (shorter than the 60 s a token
/// would once wait out in process, holding its slot): the two users claimed first meet
/// the 429 (an attempt each, audited); the two after them find the provider paused and
/// are deferred without a call or an attempt; every user of the other provider is cleared
/// in the same drain, which does not wait for the pause.
async fn a_paused_provider_defers_its_requests_and_the_others_clear(db: TestDb) {
    let throttled = Behaviour {
        throttle_for: Some(std::time::Duration::from_secs(600)),
        retry_after: 30,
        ..Behaviour::default()
    };
    let f = fixture(db, throttled, "1000/s", WORKER).await;
    for i in 0..4 {
        f.user_with(&format!("slow-{i}"), "slow", RefreshToken).await;
    }
    for i in 0..6 {
        f.user_with(&format!("fast-{i}"), "fast", RefreshToken).await;
    }
    let report = f.drain().await;

    for i in 0..6 {
        assert_eq!(f.state(&format!("fast-{i}")).await, RequestState::Cleared, "fast-{i}");
    }
    let calls = f.sim.calls();
    let slow_calls = calls.iter().filter(|c| c.provider == "slow").count();
    assert!(
        (1..=2).contains(&slow_calls),
        "only the tokens sent before the pause began reach the paused provider: {slow_calls}"
    );
    assert!(calls.iter().filter(|c| c.provider == "slow").all(|c| c.status == 429));
    let mut deferred = 0;
    for i in 0..4 {
        let user = format!("slow-{i}");
        let row = f.latest(&user).await;
        assert_eq!(row.state, RequestState::Pending, "{user}");
        let audited = f.store().audit_rows(None, Some(&user)).await.unwrap();
        if audited.is_empty() {
            deferred += 1;
            assert_eq!(attempts(&f, &user).await, 0, "{user}: a deferral spends no attempt");
            let why = row.last_error.as_deref().unwrap_or_default();
            assert!(why.contains("deferred"), "{user}: {why}");
        } else {
            assert_eq!(attempts(&f, &user).await, 1, "{user}: a 429 spends its attempt");
        }
    }
    assert!(
        deferred >= 2,
        "the requests claimed after the pause began are deferred: {deferred}"
    );
    assert_eq!(report.deferred, deferred as u64, "{report:?} {calls:?}");
}

/// A provider paced at one call a second with 12 users queued for it, four slots,
/// `max_queue_wait` 1s:
/// tokens that would queue longer are deferred rather than held, the fast provider's users
/// clear meanwhile, and in the end every user is cleared with no request ever charged an
/// attempt for a deferral, and no 429.
async fn a_long_queue_defers_instead_of_holding_slots(db: TestDb) {
    let extra = WORKER.replacen(
        "concurrency = 2\nbatch_size = 2\n",
        "concurrency = 4\nbatch_size = 4\nmax_queue_wait = \"1s\"\n",
        1,
    );
    let f = fixture(db, Behaviour::default(), "1/s", &extra).await;
    for i in 0..12 {
        f.user_with(&format!("slow-{i:02}"), "slow", RefreshToken).await;
    }
    for i in 0..6 {
        f.user_with(&format!("fast-{i}"), "fast", RefreshToken).await;
    }
    let first = f.drain().await;
    assert!(first.deferred > 0, "{first:?}");
    for i in 0..6 {
        assert_eq!(f.state(&format!("fast-{i}")).await, RequestState::Cleared, "fast-{i}");
    }
    // Deferred requests come back when the queue they met is through (seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while f.cleared().await < 18 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all cleared: {}",
            f.cleared().await
        );
        f.drain().await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        f.count("SELECT count(*) FROM offboarding_requests WHERE attempts <> 1")
            .await,
        0,
        "each request was charged for the claim that revoked its token, and for nothing else"
    );
    assert!(f.sim.calls().iter().all(|c| c.status == 200));
}
on_both_backends!(
    a_paused_provider_defers_its_requests_and_the_others_clear,
    a_long_queue_defers_instead_of_holding_slots
);
