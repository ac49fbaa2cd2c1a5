//! Issue 10, point 6: no head-of-line blocking. A provider that is paused or has a long
//! queue holds up only its own tokens: a token whose provider's backlog is longer than
//! `worker.max_queue_wait` is not waited for, its request is deferred (back to `pending`,
//! no attempt spent, nothing sent), and the slots go to users whose providers can answer.

use std::net::SocketAddr;
use std::time::Duration;

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

/// `slow` with `slow_keys` (its rate and burst, say) and `fast` at 1000/s (burst 50),
/// with `extra` keys.
async fn fixture(db: TestDb, slow: Behaviour, slow_keys: &str, extra: &str) -> Fixture {
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
    let text = format!("{head}{}", tail.replacen("rate = \"1000/s\"\nburst = 50", slow_keys, 1));
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
    let f = fixture(db, throttled, "rate = \"1000/s\"\nburst = 1", WORKER).await;
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
    let f = fixture(db, Behaviour::default(), "rate = \"1/s\"\nburst = 1", &extra).await;
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

/// `slow` answering after `latency`, at 1000/s (burst 50) with `max_in_flight` call slots,
/// and the worker's `concurrency` and `batch_size` at `slots` with `worker_keys` besides.
async fn answering_after(db: TestDb, latency: Duration, max_in_flight: u32, slots: u32, worker_keys: &str) -> Fixture {
    let slow = Behaviour {
        latency,
        ..Behaviour::default()
    };
    let extra = WORKER.replacen(
        "concurrency = 2\nbatch_size = 2\n",
        &format!("concurrency = {slots}\nbatch_size = {slots}\n{worker_keys}"),
        1,
    );
    let keys = format!("rate = \"1000/s\"\nburst = 50\nmax_in_flight = {max_in_flight}");
    fixture(db, slow, &keys, &extra).await
}

/// When the simulator answered each call to `provider` (after its latency), in order.
fn answer_times(f: &Fixture, provider: &str) -> Vec<tokio::time::Instant> {
    let mut answered: Vec<_> = f
        .sim
        .calls()
        .iter()
        .filter(|c| c.provider == provider)
        .map(|c| c.at)
        .collect();
    answered.sort();
    answered
}

/// A provider that takes 300 ms to answer, with `max_in_flight = 2` and eight users
/// queued for it (concurrency 16): never more than two of its calls are in flight, so its
/// answers come two by two, 300 ms apart, and every user is cleared.
async fn calls_in_flight_to_a_provider_stay_within_its_max_in_flight(db: TestDb) {
    let f = answering_after(db, Duration::from_millis(300), 2, 16, "").await;
    for i in 0..8 {
        f.user_with(&format!("slow-{i}"), "slow", RefreshToken).await;
    }
    f.drain().await;
    assert_eq!(f.cleared().await, 8);
    // Answers are recorded as they are sent, after the latency: a third answer within
    // 150 ms of the one two before it was a third call in flight at once.
    let answered = answer_times(&f, "slow");
    assert_eq!(answered.len(), 8);
    for (i, three) in answered.windows(3).enumerate() {
        let spread = three[2] - three[0];
        assert!(
            spread >= Duration::from_millis(150),
            "answers {i} to {} came {spread:?} apart: more than 2 calls were in flight",
            i + 2
        );
    }
}

/// A provider whose one call slot is held by a call that takes 3 s to answer, with
/// `max_queue_wait` 1s: its other users' tokens do not wait for the slot longer than that.
/// They are deferred (pending again, no attempt spent, nothing sent) and come back, while
/// the other provider's users clear; no two calls to the slow provider overlap, and each
/// request is charged only for the call that revoked its token.
async fn tokens_waiting_for_a_slow_providers_slot_are_deferred(db: TestDb) {
    let f = answering_after(db, Duration::from_secs(3), 1, 4, "max_queue_wait = \"1s\"\n").await;
    for i in 0..3 {
        f.user_with(&format!("slow-{i}"), "slow", RefreshToken).await;
    }
    for i in 0..4 {
        f.user_with(&format!("fast-{i}"), "fast", RefreshToken).await;
    }
    let report = f.drain().await;
    assert!(report.deferred >= 2, "{report:?}");
    for i in 0..4 {
        assert_eq!(f.state(&format!("fast-{i}")).await, RequestState::Cleared, "fast-{i}");
    }
    let answered = answer_times(&f, "slow");
    for two in answered.windows(2) {
        assert!(
            two[1] - two[0] >= Duration::from_millis(2500),
            "two slow calls overlapped: {answered:?}"
        );
    }
    for i in 0..3 {
        let user = format!("slow-{i}");
        let audited = f.store().audit_rows(None, Some(&user)).await.unwrap().len();
        assert_eq!(
            audited as i32,
            attempts(&f, &user).await,
            "{user}: a deferral spends no attempt"
        );
        assert!(audited <= 1, "{user}: {audited}");
    }
}

on_both_backends!(
    a_paused_provider_defers_its_requests_and_the_others_clear,
    a_long_queue_defers_instead_of_holding_slots,
    calls_in_flight_to_a_provider_stay_within_its_max_in_flight,
    tokens_waiting_for_a_slow_providers_slot_are_deferred
);
