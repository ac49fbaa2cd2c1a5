//! End to end on both backends: queue → revoke at the simulated providers → audit →
//! clearance, with the faults of DESIGN.md §5 and the invariants of §3.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::Utc;
use common::{TestDb, captured_logs, config_toml, scalar, worker_for};
use offboard::config::Dialect;
use offboard::outcome::{Outcome, RequestState};
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider, Simulator};
use offboard::storage::{NewToken, Store};
use offboard::token::{TokenType, TokenValue};
use offboard::worker::Worker;
use tokio_util::sync::CancellationToken;

const LOOPBACK: &str = "127.0.0.1:0";

fn loopback() -> SocketAddr {
    LOOPBACK.parse().unwrap()
}

/// Fast retries so tests spend their time on behaviour, not on waiting.
const FAST_RETRIES: &str = "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"10ms\"\ndurable_cap = \"20ms\"\n";

async fn drain_until_settled(worker: &Worker, store: &Store) {
    for _ in 0..300 {
        worker
            .drain(&CancellationToken::new())
            .await
            .expect("drain");
        let open = scalar(
            store,
            "SELECT count(*) FROM offboarding_requests WHERE state IN ('pending', 'running')",
        )
        .await;
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("requests still open after 300 drains");
}

/// A token issued by the simulator and stored in `oauth_tokens`.
struct Seeded {
    value: String,
    id: i64,
}

async fn seed(
    store: &Store,
    sim: &Simulator,
    user: &str,
    provider: &str,
    ty: TokenType,
    grant: Option<(&str, Option<&str>)>,
    expires_in: Option<i64>,
) -> Seeded {
    let value = sim.issue(provider, ty, grant.and_then(|(_, pair)| pair));
    let token = NewToken {
        user_id: user.into(),
        provider: provider.into(),
        token_type: ty,
        value: TokenValue::new(value.clone()),
        grant_ref: grant.map(|(g, _)| g.to_owned()),
        expires_at: expires_in.map(|s| Utc::now() + chrono::Duration::seconds(s)),
    };
    let id = store.insert_tokens(&[token]).await.expect("insert token")[0];
    Seeded { value, id }
}

async fn state_of(store: &Store, user: &str) -> RequestState {
    store
        .clearance(user)
        .await
        .unwrap()
        .expect("a request")
        .state
}

/// The main path: 200 users, 1 to 6 tokens each, spread over one provider of each dialect.
async fn two_hundred_users_clear_across_every_dialect(db: TestDb) {
    let logs = captured_logs();
    let mut providers = common::one_of_each();
    // An RFC 7009 server in the Google style, so already-revoked tokens come back
    // `already_invalid`.
    providers[0].behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
    let sim = Simulator::start(loopback(), providers).await.unwrap();
    let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
    let (text, env) = config_toml(&db.url, &sim, &names, "");
    let (worker, _) = worker_for(&db.store, &text, &env);

    let mut tokens: Vec<Seeded> = Vec::new();
    let mut expected_calls = 0usize;
    for i in 0..200 {
        let user = format!("user-{i:03}");
        for k in 0..(1 + i % 6) {
            let grant = format!("grant-{i}-{k}");
            let seeded = match (i + k) % 7 {
                0 => {
                    seed(
                        &db.store,
                        &sim,
                        &user,
                        "rfc7009",
                        TokenType::AccessToken,
                        None,
                        Some(3600),
                    )
                    .await
                }
                1 => {
                    // Revoked elsewhere before: the provider answers invalid_token.
                    let t = seed(
                        &db.store,
                        &sim,
                        &user,
                        "rfc7009",
                        TokenType::RefreshToken,
                        None,
                        None,
                    )
                    .await;
                    sim.revoke_out_of_band(&t.value);
                    t
                }
                2 => {
                    seed(
                        &db.store,
                        &sim,
                        &user,
                        "stitch",
                        TokenType::AccessToken,
                        None,
                        Some(3600),
                    )
                    .await
                }
                3 => {
                    seed(
                        &db.store,
                        &sim,
                        &user,
                        "moov",
                        TokenType::RefreshToken,
                        None,
                        None,
                    )
                    .await
                }
                4 => {
                    let access = seed(
                        &db.store,
                        &sim,
                        &user,
                        "onelogin",
                        TokenType::AccessToken,
                        Some((&grant, None)),
                        Some(3600),
                    )
                    .await;
                    let refresh = seed(
                        &db.store,
                        &sim,
                        &user,
                        "onelogin",
                        TokenType::RefreshToken,
                        Some((&grant, Some(&access.value))),
                        None,
                    )
                    .await;
                    tokens.push(refresh);
                    access
                }
                5 => {
                    seed(
                        &db.store,
                        &sim,
                        &user,
                        "auth0",
                        TokenType::RefreshToken,
                        None,
                        None,
                    )
                    .await
                }
                _ => {
                    // A JWT access token expiring within the default 24h bound: no call.
                    let t = seed(
                        &db.store,
                        &sim,
                        &user,
                        "auth0",
                        TokenType::AccessToken,
                        None,
                        Some(600),
                    )
                    .await;
                    tokens.push(t);
                    continue;
                }
            };
            expected_calls += 1;
            tokens.push(seeded);
        }
        db.store
            .enqueue(&user, Some("gdpr-job"), None)
            .await
            .unwrap();
    }

    drain_until_settled(&worker, &db.store).await;

    let cleared = scalar(&db.store, "SELECT count(*) FROM offboarding_requests WHERE state = 'cleared' AND cleared_at IS NOT NULL").await;
    assert_eq!(cleared, 200);
    let audit = db.store.audit_rows(None, None).await.unwrap();
    let by_token: HashMap<i64, Vec<_>> = audit.iter().fold(HashMap::new(), |mut m, r| {
        m.entry(r.token_id).or_insert_with(Vec::new).push(r);
        m
    });
    let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
    for t in &tokens {
        let rows = &by_token[&t.id];
        let last = rows.last().unwrap();
        assert!(last.settled, "token {} not settled: {last:?}", t.id);
        *outcomes.entry(last.outcome).or_default() += 1;
        match last.outcome {
            Outcome::Revoked => {}
            Outcome::AlreadyInvalid | Outcome::NotRevocable => {
                assert!(
                    last.error.as_deref().is_some_and(|e| !e.is_empty()),
                    "no reason for {last:?}"
                )
            }
            other => panic!("unexpected final outcome {other}"),
        }
    }
    let dead = scalar(
        &db.store,
        "SELECT count(*) FROM oauth_tokens WHERE revoked_at IS NOT NULL",
    )
    .await as usize;
    assert_eq!(
        dead,
        outcomes[&Outcome::Revoked] + outcomes[&Outcome::AlreadyInvalid]
    );
    assert!(outcomes[&Outcome::AlreadyInvalid] > 0 && outcomes[&Outcome::NotRevocable] > 0);

    // One audit row per attempt: every HTTP call the providers saw has its row, and every
    // token settled without a call (not revocable, revoked with its pair) has one row.
    let calls = sim.calls().len();
    assert_eq!(calls, expected_calls);
    let http_rows = audit.iter().filter(|r| r.http_status.is_some()).count();
    assert_eq!(http_rows, calls);
    assert_eq!(audit.len(), tokens.len());
    assert_eq!(sim.tokens_accepted_twice(), 0);

    // No token value and no client secret anywhere in the audit table or the logs.
    let audit_dump = format!("{audit:?}");
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request done"), "log capture is not working");
    let secrets: Vec<String> = env.iter().map(|(_, v)| v.clone()).collect();
    for value in tokens.iter().map(|t| &t.value).chain(secrets.iter()) {
        assert!(
            !audit_dump.contains(value.as_str()),
            "a secret is in the audit table"
        );
        assert!(!logs.contains(value.as_str()), "a secret is in the logs");
    }
}

/// A provider answering 429 with `Retry-After: 2` for a while: no request reaches it before
/// the pause is over, and the requests still clear.
async fn a_provider_asking_for_quiet_is_left_alone_until_its_retry_after(db: TestDb) {
    let mut quiet = SimProvider::new("quiet", Dialect::Rfc7009);
    quiet.behaviour = Behaviour {
        throttle_for: Some(Duration::from_millis(2500)),
        retry_after: 2,
        ..Behaviour::default()
    };
    let sim = Simulator::start(loopback(), vec![quiet]).await.unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["quiet"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    for i in 0..20 {
        let user = format!("u{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "quiet",
            TokenType::RefreshToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }

    drain_until_settled(&worker, &db.store).await;

    assert_eq!(
        scalar(
            &db.store,
            "SELECT count(*) FROM offboarding_requests WHERE state = 'cleared'"
        )
        .await,
        20
    );
    let calls = sim.calls();
    let throttled: Vec<_> = calls.iter().filter(|c| c.status == 429).collect();
    assert!(!throttled.is_empty(), "the provider never throttled");
    // Calls already in flight when a 429 went out may land just after it; after that, the
    // next call waits the full Retry-After.
    let in_flight = Duration::from_millis(250);
    for t in &throttled {
        for c in &calls {
            if c.at > t.at + in_flight {
                assert!(
                    c.at >= t.at + Duration::from_secs(2),
                    "a call came {:?} after a 429 asking for 2s",
                    c.at - t.at
                );
            }
        }
    }
    let accepted = calls.iter().filter(|c| c.status == 200).count();
    assert_eq!(accepted, 20);
    let audited_429 = scalar(
        &db.store,
        "SELECT count(*) FROM revocation_audit WHERE http_status = 429",
    )
    .await;
    assert_eq!(
        audited_429 as usize,
        throttled.len(),
        "every 429 is an audited attempt"
    );
}

/// Invariant 6 and DESIGN.md §5: a provider that asks for a long pause does not hold up
/// other providers. Its requests go back to the queue until the pause is over instead of
/// holding worker slots; everyone else clears in the same drain.
async fn a_paused_provider_does_not_hold_up_the_others(db: TestDb) {
    let mut paused = SimProvider::new("paused", Dialect::Moov);
    paused.behaviour = Behaviour {
        throttle_for: Some(Duration::from_secs(600)),
        retry_after: 300,
        ..Behaviour::default()
    };
    let sim = Simulator::start(
        loopback(),
        vec![paused, SimProvider::new("healthy", Dialect::Stitch)],
    )
    .await
    .unwrap();
    // Two worker slots only: requests stuck on the paused provider would starve the rest.
    let (text, env) = config_toml(
        &db.url,
        &sim,
        &["paused", "healthy"],
        "[worker]\nconcurrency = 2\nbatch_size = 1\n",
    );
    let (worker, _) = worker_for(&db.store, &text, &env);
    for i in 0..6 {
        let user = format!("stuck-{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "paused",
            TokenType::RefreshToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }
    for i in 0..6 {
        let user = format!("free-{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "healthy",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }

    let report = worker.drain(&CancellationToken::new()).await.unwrap();

    assert_eq!((report.cleared, report.retrying), (6, 6), "{report:?}");
    for i in 0..6 {
        assert_eq!(
            state_of(&db.store, &format!("free-{i}")).await,
            RequestState::Cleared
        );
        let stuck = db
            .store
            .clearance(&format!("stuck-{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stuck.state, RequestState::Pending);
        let wait = stuck.next_attempt_at.unwrap() - Utc::now();
        assert!(
            wait > chrono::Duration::seconds(250),
            "retried before the provider's pause ends: {wait}"
        );
    }
    // The paused provider was asked once per slot in flight before its first 429 came
    // back, then left alone.
    let calls = sim.stats()["paused"].calls;
    assert!(
        (1..=2).contains(&calls),
        "{calls} calls to a paused provider"
    );
}

/// The per-provider limiter: with `rate = "20/s"` and `burst = 2`, no one-second window at
/// the provider holds more than the rate plus the burst.
async fn the_rate_limit_paces_calls_to_a_provider(db: TestDb) {
    let sim = Simulator::start(
        loopback(),
        vec![SimProvider::new("paced", Dialect::Rfc7009)],
    )
    .await
    .unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["paced"], "");
    let text = text.replace(
        "rate = \"1000/s\"\nburst = 50",
        "rate = \"20/s\"\nburst = 2",
    );
    let (worker, _) = worker_for(&db.store, &text, &env);
    for i in 0..50 {
        let user = format!("u{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "paced",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }

    worker.drain(&CancellationToken::new()).await.unwrap();

    assert_eq!(
        scalar(
            &db.store,
            "SELECT count(*) FROM offboarding_requests WHERE state = 'cleared'"
        )
        .await,
        50
    );
    let calls = sim.calls();
    assert_eq!(calls.len(), 50);
    let busiest = calls
        .iter()
        .map(|first| {
            calls
                .iter()
                .filter(|c| c.at >= first.at && c.at < first.at + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= 22,
        "{busiest} calls in one second at 20/s with burst 2"
    );
    assert!(
        busiest >= 15,
        "{busiest} calls in the busiest second: the limiter is far below its rate"
    );
}

/// A provider answering 500 until attempts are used up fails its own requests only
/// (invariant 6); a provider with wrong credentials fails at once; the gate says so.
async fn a_broken_provider_fails_its_requests_and_spares_the_others(db: TestDb) {
    let mut providers = common::one_of_each();
    providers[1].behaviour.always_status = Some(500); // stitch: an outage
    let sim = Simulator::start(loopback(), providers).await.unwrap();
    let names: Vec<&str> = Dialect::ALL.iter().map(|d| d.as_str()).collect();
    let extra = format!("[worker]\nmax_attempts = 3\n{FAST_RETRIES}");
    let (text, mut env) = config_toml(&db.url, &sim, &names, &extra);
    // onelogin: credentials the provider does not accept.
    env.iter_mut()
        .filter(|(k, _)| k == "SIM_ONELOGIN_SECRET")
        .for_each(|(_, v)| v.push_str("-wrong"));
    let (worker, _) = worker_for(&db.store, &text, &env);

    for i in 0..10 {
        let user = format!("outage-{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "stitch",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        seed(
            &db.store,
            &sim,
            &user,
            "moov",
            TokenType::RefreshToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
        let user = format!("healthy-{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "moov",
            TokenType::RefreshToken,
            None,
            None,
        )
        .await;
        seed(
            &db.store,
            &sim,
            &user,
            "rfc7009",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }
    seed(
        &db.store,
        &sim,
        "badcreds",
        "onelogin",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    db.store.enqueue("badcreds", None, None).await.unwrap();

    drain_until_settled(&worker, &db.store).await;

    for i in 0..10 {
        assert_eq!(
            state_of(&db.store, &format!("healthy-{i}")).await,
            RequestState::Cleared
        );
        let failed = db
            .store
            .clearance(&format!("outage-{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((failed.state, failed.attempts), (RequestState::Failed, 3));
        let reason = failed.last_error.unwrap();
        assert!(
            reason.starts_with("attempts used up (3 of 3): token"),
            "{reason}"
        );
        assert!(
            reason.contains("stitch access_token): HTTP 500"),
            "{reason}"
        );
    }
    // 3 claims × 2 tries for each stitch token, each an audit row.
    let stitch_rows = scalar(
        &db.store,
        "SELECT count(*) FROM revocation_audit WHERE provider = 'stitch' AND outcome = 'transient'",
    )
    .await;
    assert_eq!(stitch_rows, 10 * 3 * 2);
    // The outage users' moov tokens were revoked once, on the first claim, and not again.
    assert_eq!(
        scalar(
            &db.store,
            "SELECT count(*) FROM revocation_audit WHERE provider = 'moov'"
        )
        .await,
        20
    );
    assert_eq!(sim.tokens_accepted_twice(), 0);

    let bad = db.store.clearance("badcreds").await.unwrap().unwrap();
    assert_eq!(
        (bad.state, bad.attempts),
        (RequestState::Failed, 1),
        "a 401 is not retried"
    );
    assert!(
        bad.last_error
            .unwrap()
            .contains("HTTP 401: Authentication Failure")
    );

    // The deletion job's gate: non-zero for failed users, zero for cleared ones.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let gate = |user: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--config", config.to_str().unwrap(), "gate", user])
            .env_remove("OFFBOARD_CONFIG")
            .output()
            .unwrap()
    };
    let out = gate("outage-0");
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("blocked: request"));
    assert_eq!(gate("badcreds").status.code(), Some(4));
    let out = gate("healthy-0");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(gate("nobody").status.code(), Some(5));
}

/// Invariant 3: on a retried request, tokens settled by the earlier claim are not sent.
async fn a_settled_token_is_never_sent_again_when_its_request_is_retried(db: TestDb) {
    let mut providers = vec![
        SimProvider::new("good", Dialect::Rfc7009),
        SimProvider::new("flaky", Dialect::Moov),
    ];
    providers[1].behaviour.always_status = Some(503);
    let sim = Simulator::start(loopback(), providers).await.unwrap();
    let slow_durable = "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"1h\"\ndurable_cap = \"1h\"\n";
    let (text, env) = config_toml(&db.url, &sim, &["good", "flaky"], slow_durable);
    let (worker, _) = worker_for(&db.store, &text, &env);
    let good = seed(
        &db.store,
        &sim,
        "u1",
        "good",
        TokenType::RefreshToken,
        None,
        None,
    )
    .await;
    let flaky = seed(
        &db.store,
        &sim,
        "u1",
        "flaky",
        TokenType::RefreshToken,
        None,
        None,
    )
    .await;
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;

    worker.drain(&CancellationToken::new()).await.unwrap();
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Pending);
    assert!(row.next_attempt_at.is_some());
    assert!(row.last_error.unwrap().starts_with("attempt 1 of 8: token"));
    assert_eq!(sim.calls_for(&good.value), 1);

    // The provider recovers, and the hour of durable backoff passes.
    sim.set_behaviour("flaky", Behaviour::default());
    common::exec(
        &db.store,
        "UPDATE offboarding_requests SET next_attempt_at = NULL",
    )
    .await
    .unwrap();
    drain_until_settled(&worker, &db.store).await;

    assert_eq!(state_of(&db.store, "u1").await, RequestState::Cleared);
    assert_eq!(
        sim.calls_for(&good.value),
        1,
        "a settled token was sent again"
    );
    assert_eq!(sim.is_revoked(&flaky.value), Some(true));
    let attempts: Vec<i32> = db
        .store
        .audit_rows(Some(id), None)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.token_id == flaky.id)
        .map(|r| r.attempt)
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3],
        "attempt numbers run on across claims"
    );
}

/// Invariant 2: a request whose worker died mid-run is finished by another worker once the
/// lease expires.
async fn a_request_whose_worker_died_is_finished_by_another(db: TestDb) {
    let sim = Simulator::start(loopback(), vec![SimProvider::new("acme", Dialect::Rfc7009)])
        .await
        .unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["acme"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    seed(
        &db.store,
        &sim,
        "u1",
        "acme",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    // A worker claimed it two minutes ago with a 60s lease, then died.
    let long_ago = Utc::now() - chrono::Duration::seconds(120);
    let dead = db
        .store
        .claim_due("dead-worker", 10, Duration::from_secs(60), long_ago)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);

    let report = worker.drain(&CancellationToken::new()).await.unwrap();

    assert_eq!((report.claimed, report.cleared), (1, 1));
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (RequestState::Cleared, 2));
    let audit = db.store.audit_rows(Some(id), None).await.unwrap();
    assert!(audit.iter().all(|r| r.worker == worker.settings().id));
}

/// Invariant 4 with real workers: two workers drain the same queue at once against a
/// provider slower than the lease; renewals keep each request with one worker, and each
/// token is sent once.
async fn two_workers_never_work_on_one_request(db: TestDb) {
    let mut slow = SimProvider::new("slow", Dialect::Stitch);
    slow.behaviour.latency = Duration::from_millis(2500);
    let sim = Simulator::start(loopback(), vec![slow]).await.unwrap();
    let (text, env) = config_toml(
        &db.url,
        &sim,
        &["slow"],
        "[worker]\nlease = \"2s\"\nconcurrency = 8\nbatch_size = 2\n",
    );
    let (a, _) = worker_for(&db.store, &text, &env);
    let (b, _) = worker_for(&db.store, &text, &env);
    assert_ne!(a.settings().id, b.settings().id);
    for i in 0..12 {
        let user = format!("u{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "slow",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }

    let (ra, rb) = tokio::join!(
        async { a.drain(&CancellationToken::new()).await.unwrap() },
        async { b.drain(&CancellationToken::new()).await.unwrap() }
    );

    assert_eq!(ra.cleared + rb.cleared, 12);
    assert_eq!(
        ra.lease_lost + rb.lease_lost,
        0,
        "a lease was lost despite renewal"
    );
    assert_eq!(sim.calls().len(), 12, "a token was sent by both workers");
    let audit = db.store.audit_rows(None, None).await.unwrap();
    for r in &audit {
        let others = audit
            .iter()
            .filter(|o| o.request_id == r.request_id && o.worker != r.worker)
            .count();
        assert_eq!(
            others, 0,
            "request {} has rows from two workers",
            r.request_id
        );
    }
}

/// Invariant 7: a token row naming an unknown provider fails its request with the reason,
/// and other users' requests go on.
async fn an_unknown_provider_fails_the_request_with_the_reason(db: TestDb) {
    let sim = Simulator::start(loopback(), vec![SimProvider::new("acme", Dialect::Rfc7009)])
        .await
        .unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["acme"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    seed(
        &db.store,
        &sim,
        "u1",
        "acme",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    let stray = NewToken {
        user_id: "u1".into(),
        provider: "legacy-idp".into(),
        token_type: TokenType::RefreshToken,
        value: TokenValue::new("legacy-token-value-123".into()),
        grant_ref: None,
        expires_at: None,
    };
    db.store.insert_tokens(&[stray]).await.unwrap();
    seed(
        &db.store,
        &sim,
        "u2",
        "acme",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    db.store.enqueue("u1", None, None).await.unwrap();
    db.store.enqueue("u2", None, None).await.unwrap();

    worker.drain(&CancellationToken::new()).await.unwrap();

    let u1 = db.store.clearance("u1").await.unwrap().unwrap();
    assert_eq!(u1.state, RequestState::Failed);
    let reason = u1.last_error.unwrap();
    assert!(
        reason.contains(
            "provider 'legacy-idp' is not configured (add [providers.legacy-idp] to the config)"
        ),
        "{reason}"
    );
    assert_eq!(state_of(&db.store, "u2").await, RequestState::Cleared);
    assert_eq!(
        scalar(&db.store, "SELECT count(*) FROM oauth_tokens").await,
        3,
        "no token row was lost"
    );
}

/// The not-revocable policy: an Auth0 access token with no recorded expiry does not settle
/// under the default policy, and does under `settle`; a OneLogin refresh token with no pair
/// is not revocable.
async fn tokens_that_cannot_be_revoked_settle_only_by_policy(db: TestDb) {
    let sim = Simulator::start(
        loopback(),
        vec![
            SimProvider::new("auth0", Dialect::Auth0),
            SimProvider::new("onelogin", Dialect::Onelogin),
        ],
    )
    .await
    .unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["auth0", "onelogin"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    seed(
        &db.store,
        &sim,
        "forever",
        "auth0",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    seed(
        &db.store,
        &sim,
        "soon",
        "auth0",
        TokenType::AccessToken,
        None,
        Some(3600),
    )
    .await;
    seed(
        &db.store,
        &sim,
        "unpaired",
        "onelogin",
        TokenType::RefreshToken,
        Some(("g-1", None)),
        Some(60),
    )
    .await;
    for user in ["forever", "soon", "unpaired"] {
        db.store.enqueue(user, None, None).await.unwrap();
    }

    worker.drain(&CancellationToken::new()).await.unwrap();

    let forever = db.store.clearance("forever").await.unwrap().unwrap();
    assert_eq!(forever.state, RequestState::Failed);
    assert!(
        forever
            .last_error
            .unwrap()
            .contains("no expiry recorded, not within 1day")
    );
    assert_eq!(state_of(&db.store, "soon").await, RequestState::Cleared);
    assert_eq!(state_of(&db.store, "unpaired").await, RequestState::Cleared);
    let rows = db.store.audit_rows(None, Some("unpaired")).await.unwrap();
    assert_eq!(rows[0].outcome, Outcome::NotRevocable);
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("OneLogin API v1 revokes a refresh token only through")
    );
    assert!(
        sim.calls().is_empty(),
        "nothing here is revocable at the provider"
    );

    // An operator who accepts the risk settles it by policy and retries.
    let (settling, _) = worker_for(
        &db.store,
        &format!("{text}\n[policy]\nnot_revocable = \"settle\"\n"),
        &env,
    );
    db.store.retry(forever.id).await.unwrap();
    settling.drain(&CancellationToken::new()).await.unwrap();
    assert_eq!(state_of(&db.store, "forever").await, RequestState::Cleared);
}

/// Shutdown mid-drain releases requests that had not been sent, without spending an
/// attempt, and the drain returns.
async fn shutdown_releases_requests_not_yet_sent(db: TestDb) {
    let mut quiet = SimProvider::new("quiet", Dialect::Rfc7009);
    quiet.behaviour = Behaviour {
        throttle_for: Some(Duration::from_secs(30)),
        retry_after: 20,
        ..Behaviour::default()
    };
    let sim = Simulator::start(loopback(), vec![quiet]).await.unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["quiet"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    for i in 0..5 {
        let user = format!("u{i}");
        seed(
            &db.store,
            &sim,
            &user,
            "quiet",
            TokenType::AccessToken,
            None,
            None,
        )
        .await;
        db.store.enqueue(&user, None, None).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stopper.cancel();
    });

    let report = worker.drain(&shutdown).await.unwrap();

    assert_eq!(report.released, 5, "{report:?}");
    assert_eq!(scalar(&db.store, "SELECT count(*) FROM offboarding_requests WHERE state = 'pending' AND attempts = 0 AND locked_by IS NULL").await, 5);
    assert_eq!(
        scalar(
            &db.store,
            "SELECT count(*) FROM revocation_audit WHERE http_status = 429"
        )
        .await as usize,
        sim.calls().len()
    );
}

/// The worker's decision is re-checked in the database: a token inserted while the run was
/// under way keeps the request from clearing (invariant 1).
async fn a_token_that_appears_during_the_run_keeps_the_request_open(db: TestDb) {
    let mut slow = SimProvider::new("slow", Dialect::Rfc7009);
    slow.behaviour.latency = Duration::from_millis(300);
    let sim = Simulator::start(loopback(), vec![slow]).await.unwrap();
    let (text, env) = config_toml(&db.url, &sim, &["slow"], "");
    let (worker, _) = worker_for(&db.store, &text, &env);
    seed(
        &db.store,
        &sim,
        "u1",
        "slow",
        TokenType::AccessToken,
        None,
        None,
    )
    .await;
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let store = db.store.clone();
    let sim2 = sim.clone();
    let late = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seed(
            &store,
            &sim2,
            "u1",
            "slow",
            TokenType::RefreshToken,
            None,
            None,
        )
        .await
    });

    let first = worker.drain(&CancellationToken::new()).await.unwrap();
    let late = late.await.unwrap();

    // The first run ended with the late token unsettled, so the request was not cleared
    // then; the same drain picked it up again and settled the newcomer.
    assert!(first.claimed >= 2, "{first:?}");
    assert_eq!(state_of(&db.store, "u1").await, RequestState::Cleared);
    assert_eq!(sim.is_revoked(&late.value), Some(true));
    let audit = db.store.audit_rows(Some(id), None).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.token_id == late.id && r.outcome == Outcome::Revoked)
    );
}

on_both_backends!(
    two_hundred_users_clear_across_every_dialect,
    a_provider_asking_for_quiet_is_left_alone_until_its_retry_after,
    a_broken_provider_fails_its_requests_and_spares_the_others,
    a_paused_provider_does_not_hold_up_the_others,
    the_rate_limit_paces_calls_to_a_provider,
    a_settled_token_is_never_sent_again_when_its_request_is_retried,
    a_request_whose_worker_died_is_finished_by_another,
    two_workers_never_work_on_one_request,
    an_unknown_provider_fails_the_request_with_the_reason,
    tokens_that_cannot_be_revoked_settle_only_by_policy,
    shutdown_releases_requests_not_yet_sent,
    a_token_that_appears_during_the_run_keeps_the_request_open,
);
