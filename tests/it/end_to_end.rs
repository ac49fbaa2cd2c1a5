//! End to end on both backends: queue → revoke at the simulated providers → audit →
//! clearance, with the faults of DESIGN.md §5 and the invariants of §3.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use offboard::drain::{DrainReport, Worker};
use offboard::metrics::Metrics;
use offboard::outcome::{Outcome, RequestState};
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider, Simulator};
use offboard::storage::seed::NewToken;
use offboard::storage::{RequestRow, Store};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestDb, app_for, captured_logs, config_toml, exec, on_both_backends, one_of_each, scalar};

use TokenType::{AccessToken, RefreshToken};

/// Fast retries so tests spend their time on behaviour, not on waiting.
const FAST_RETRIES: &str = "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\n\
                            durable_base = \"10ms\"\ndurable_cap = \"20ms\"\n";

/// A database, simulated providers, and a worker configured for them.
pub(crate) struct Fixture {
    pub(crate) db: TestDb,
    pub(crate) sim: Simulator,
    pub(crate) worker: Worker,
    pub(crate) metrics: Arc<Metrics>,
    /// The config text and secret environment the worker was built from.
    pub(crate) text: String,
    pub(crate) env: Vec<(String, String)>,
}

/// A token issued by the simulator and stored in `oauth_tokens`.
pub(crate) struct Seeded {
    pub(crate) value: String,
    pub(crate) id: i64,
}

/// Optional parts of a seeded token.
#[derive(Default, Clone, Copy)]
pub(crate) struct Spec<'a> {
    pub(crate) grant_ref: Option<&'a str>,
    /// OneLogin: the access token this refresh token dies with.
    pub(crate) paired_with: Option<&'a str>,
    pub(crate) expires_in_secs: Option<i64>,
}

impl Fixture {
    pub(crate) async fn new(db: TestDb, providers: Vec<SimProvider>, extra_toml: &str) -> Fixture {
        let sim = Simulator::start("127.0.0.1:0".parse::<SocketAddr>().unwrap(), providers)
            .await
            .unwrap();
        let (text, env) = config_toml(&db.url, &sim, extra_toml);
        Fixture::with_config(db, sim, text, env)
    }

    pub(crate) fn with_config(db: TestDb, sim: Simulator, text: String, env: Vec<(String, String)>) -> Fixture {
        let app = app_for(&db.store, &text, &env);
        Fixture {
            db,
            sim,
            worker: app.worker().clone(),
            metrics: app.metrics().clone(),
            text,
            env,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.db.store
    }

    /// Another worker on the same database, with `extra_toml` appended to the config.
    pub(crate) fn another_worker(&self, extra_toml: &str) -> Worker {
        app_for(self.store(), &format!("{}\n{extra_toml}", self.text), &self.env)
            .worker()
            .clone()
    }

    pub(crate) async fn seed_with(&self, user: &str, provider: &str, ty: TokenType, spec: Spec<'_>) -> Seeded {
        let value = self.sim.issue(provider, ty, spec.paired_with);
        let token = NewToken {
            user_id: user.into(),
            provider: provider.into(),
            token_type: ty,
            value: TokenValue::new(value.clone()),
            grant_ref: spec.grant_ref.map(str::to_owned),
            expires_at: spec.expires_in_secs.map(|s| Utc::now() + chrono::Duration::seconds(s)),
        };
        let id = offboard::storage::seed::insert_tokens(self.store(), &[token])
            .await
            .expect("insert token")[0];
        Seeded { value, id }
    }

    pub(crate) async fn seed(&self, user: &str, provider: &str, ty: TokenType) -> Seeded {
        self.seed_with(user, provider, ty, Spec::default()).await
    }

    pub(crate) async fn enqueue(&self, user: &str) -> i64 {
        self.store().enqueue(user, None, None).await.unwrap().request.id
    }

    /// A user with one token at `provider`, enqueued.
    pub(crate) async fn user_with(&self, user: &str, provider: &str, ty: TokenType) -> Seeded {
        let token = self.seed(user, provider, ty).await;
        self.enqueue(user).await;
        token
    }

    pub(crate) async fn drain(&self) -> DrainReport {
        self.worker.drain(&CancellationToken::new()).await.expect("drain")
    }

    /// Drains until no request is pending or running.
    pub(crate) async fn drain_until_settled(&self) {
        for _ in 0..300 {
            self.drain().await;
            if self
                .count("SELECT count(*) FROM offboarding_requests WHERE state IN ('pending', 'running')")
                .await
                == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("requests still open after 300 drains");
    }

    pub(crate) async fn latest(&self, user: &str) -> RequestRow {
        self.store().clearance(user).await.unwrap().expect("a request")
    }

    pub(crate) async fn state(&self, user: &str) -> RequestState {
        self.latest(user).await.state
    }

    pub(crate) async fn count(&self, sql: &'static str) -> i64 {
        scalar(self.store(), sql).await
    }

    pub(crate) async fn cleared(&self) -> i64 {
        self.count("SELECT count(*) FROM offboarding_requests WHERE state = 'cleared'")
            .await
    }

    /// Checks that no call reached the provider inside the `Retry-After` of an earlier 429,
    /// allowing for calls already in flight when the 429 went out; returns the 429s seen.
    pub(crate) fn assert_retry_after_respected(&self, retry_after: Duration) -> usize {
        let calls = self.sim.calls();
        let throttled: Vec<_> = calls.iter().filter(|c| c.status == 429).collect();
        let in_flight = Duration::from_millis(250);
        for t in &throttled {
            for c in calls.iter().filter(|c| c.at > t.at + in_flight) {
                assert!(
                    c.at >= t.at + retry_after,
                    "a call came {:?} after a 429 asking for {retry_after:?}",
                    c.at - t.at
                );
            }
        }
        throttled.len()
    }
}

pub(crate) fn provider(name: &str, dialect: Dialect, behaviour: Behaviour) -> SimProvider {
    SimProvider {
        behaviour,
        ..SimProvider::new(name, dialect)
    }
}

fn throttling(for_: Duration, retry_after: u64) -> Behaviour {
    Behaviour {
        throttle_for: Some(for_),
        retry_after,
        ..Behaviour::default()
    }
}

/// The main path: 200 users, 1 to 6 tokens each, spread over one provider of each dialect.
async fn two_hundred_users_clear_across_every_dialect(db: TestDb) {
    let logs = captured_logs();
    let mut providers = one_of_each();
    // An RFC 7009 server in the Google style, so already-revoked tokens come back
    // `already_invalid`.
    providers[0].behaviour.invalid_token_answer = InvalidTokenAnswer::InvalidToken400;
    let f = Fixture::new(db, providers, "").await;

    let mut tokens: Vec<Seeded> = Vec::new();
    let mut expected_calls = 0usize;
    let expiring = |secs| Spec {
        expires_in_secs: Some(secs),
        ..Spec::default()
    };
    for i in 0..200 {
        let user = format!("user-{i:03}");
        for k in 0..(1 + i % 6) {
            let grant = format!("grant-{i}-{k}");
            let (token, calls_provider) = match (i + k) % 7 {
                0 => (f.seed_with(&user, "rfc7009", AccessToken, expiring(3600)).await, true),
                1 => {
                    // Revoked elsewhere before: the provider answers invalid_token.
                    let t = f.seed(&user, "rfc7009", RefreshToken).await;
                    f.sim.revoke_out_of_band(&t.value);
                    (t, true)
                }
                2 => (f.seed_with(&user, "stitch", AccessToken, expiring(3600)).await, true),
                3 => (f.seed(&user, "moov", RefreshToken).await, true),
                4 => {
                    let grant = Spec {
                        grant_ref: Some(&grant),
                        expires_in_secs: Some(3600),
                        ..Spec::default()
                    };
                    let access = f.seed_with(&user, "onelogin", AccessToken, grant).await;
                    let paired = Spec {
                        paired_with: Some(&access.value),
                        ..grant
                    };
                    // Revoked with its access token: no call of its own.
                    tokens.push(f.seed_with(&user, "onelogin", RefreshToken, paired).await);
                    (access, true)
                }
                5 => (f.seed(&user, "auth0", RefreshToken).await, true),
                // A JWT access token expiring within the default 24h bound: no call.
                _ => (f.seed_with(&user, "auth0", AccessToken, expiring(600)).await, false),
            };
            expected_calls += usize::from(calls_provider);
            tokens.push(token);
        }
        f.store().enqueue(&user, Some("gdpr-job"), None).await.unwrap();
    }

    f.drain_until_settled().await;

    assert_eq!(
        f.count("SELECT count(*) FROM offboarding_requests WHERE state = 'cleared' AND cleared_at IS NOT NULL")
            .await,
        200
    );
    let audit = f.store().audit_rows(None, None).await.unwrap();
    let mut by_token: HashMap<i64, Vec<_>> = HashMap::new();
    for row in &audit {
        by_token.entry(row.token_id).or_default().push(row);
    }
    let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
    for t in &tokens {
        let last = by_token[&t.id].last().unwrap();
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
    let dead = f
        .count("SELECT count(*) FROM oauth_tokens WHERE revoked_at IS NOT NULL")
        .await as usize;
    assert_eq!(dead, outcomes[&Outcome::Revoked] + outcomes[&Outcome::AlreadyInvalid]);
    assert!(outcomes[&Outcome::AlreadyInvalid] > 0 && outcomes[&Outcome::NotRevocable] > 0);

    // One audit row per attempt: every HTTP call the providers saw has its row, and every
    // token settled without a call (not revocable, revoked with its pair) has one row.
    let calls = f.sim.calls().len();
    assert_eq!(calls, expected_calls);
    assert_eq!(audit.iter().filter(|r| r.http_status.is_some()).count(), calls);
    assert_eq!(audit.len(), tokens.len());
    assert_eq!(f.sim.tokens_accepted_twice(), 0);

    // No token value and no client secret anywhere in the audit table or the logs.
    let audit_dump = format!("{audit:?}");
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("request done"), "log capture is not working");
    let secrets = f.env.iter().map(|(_, v)| v);
    for value in tokens.iter().map(|t| &t.value).chain(secrets) {
        assert!(!audit_dump.contains(value.as_str()), "a secret is in the audit table");
        assert!(!logs.contains(value.as_str()), "a secret is in the logs");
    }
}

/// A provider answering 429 with `Retry-After: 2` for a while: no request reaches it before
/// the pause is over, and the requests still clear.
async fn a_provider_asking_for_quiet_is_left_alone_until_its_retry_after(db: TestDb) {
    let quiet = provider("quiet", Dialect::Rfc7009, throttling(Duration::from_millis(2500), 2));
    let f = Fixture::new(db, vec![quiet], "").await;
    for i in 0..20 {
        f.user_with(&format!("u{i}"), "quiet", RefreshToken).await;
    }

    f.drain_until_settled().await;

    assert_eq!(f.cleared().await, 20);
    let throttled = f.assert_retry_after_respected(Duration::from_secs(2));
    assert!(throttled > 0, "the provider never throttled");
    let calls = f.sim.calls();
    assert_eq!(calls.iter().filter(|c| c.status == 200).count(), 20);
    let audited_429 = f
        .count("SELECT count(*) FROM revocation_audit WHERE http_status = 429")
        .await;
    assert_eq!(audited_429 as usize, throttled, "every 429 is an audited attempt");
    let metric = format!("offboard_provider_throttled_total{{provider=\"quiet\"}} {throttled}\n");
    assert!(f.metrics.render().contains(&metric), "{metric}");
}

/// Invariant 6 and DESIGN.md §5: a provider that asks for a long pause does not hold up
/// other providers. Its requests go back to the queue until the pause is over instead of
/// holding worker slots; everyone else clears in the same drain.
async fn a_paused_provider_does_not_hold_up_the_others(db: TestDb) {
    let paused = provider("paused", Dialect::Moov, throttling(Duration::from_secs(600), 300));
    let healthy = SimProvider::new("healthy", Dialect::Stitch);
    // Two worker slots only: requests stuck on the paused provider would starve the rest.
    let f = Fixture::new(db, vec![paused, healthy], "[worker]\nconcurrency = 2\nbatch_size = 1\n").await;
    for i in 0..6 {
        f.user_with(&format!("stuck-{i}"), "paused", RefreshToken).await;
    }
    for i in 0..6 {
        f.user_with(&format!("free-{i}"), "healthy", AccessToken).await;
    }

    let report = f.drain().await;

    // Those whose call met the 429 retry (an attempt spent); those never sent are
    // deferred (issue 10: no attempt spent for a call not made).
    assert_eq!(
        (report.cleared, report.retrying + report.deferred),
        (6, 6),
        "{report:?}"
    );
    assert!((1..=2).contains(&report.retrying), "{report:?}");
    for i in 0..6 {
        assert_eq!(f.state(&format!("free-{i}")).await, RequestState::Cleared);
        let stuck = f.latest(&format!("stuck-{i}")).await;
        assert_eq!(stuck.state, RequestState::Pending);
        let wait = stuck.next_attempt_at.unwrap() - Utc::now();
        assert!(
            wait > chrono::Duration::seconds(250),
            "retried before the provider's pause ends: {wait}"
        );
    }
    // The paused provider was asked once per slot in flight before its first 429 came
    // back, then left alone.
    let calls = f.sim.stats()["paused"].calls;
    assert!((1..=2).contains(&calls), "{calls} calls to a paused provider");
}

/// The per-provider limiter: with `rate = "20/s"` and `burst = 2`, no one-second window at
/// the provider holds more than the rate plus the burst.
async fn the_rate_limit_paces_calls_to_a_provider(db: TestDb) {
    let paced = Fixture::new(db, vec![SimProvider::new("paced", Dialect::Rfc7009)], "").await;
    let text = paced
        .text
        .replace("rate = \"1000/s\"\nburst = 50", "rate = \"20/s\"\nburst = 2");
    assert_ne!(text, paced.text);
    let f = Fixture::with_config(paced.db, paced.sim, text, paced.env);
    for i in 0..50 {
        f.user_with(&format!("u{i}"), "paced", AccessToken).await;
    }

    f.drain().await;

    assert_eq!(f.cleared().await, 50);
    let calls = f.sim.calls();
    assert_eq!(calls.len(), 50);
    let in_second_from = |t| {
        calls
            .iter()
            .filter(|c| c.at >= t && c.at < t + Duration::from_secs(1))
            .count()
    };
    let busiest = calls.iter().map(|c| in_second_from(c.at)).max().unwrap();
    assert!(busiest <= 22, "{busiest} calls in one second at 20/s with burst 2");
    assert!(
        busiest >= 15,
        "{busiest} calls in the busiest second: the limiter is far below its rate"
    );
}

/// The simulator allows 10 requests a second and the worker is configured for 1000: the
/// worker backs off on the 429s (waiting out each Retry-After) and still clears everyone.
async fn a_worker_faster_than_the_provider_backs_off_and_clears_everyone(db: TestDb) {
    let limited = provider(
        "limited",
        Dialect::Moov,
        Behaviour {
            limit_per_sec: Some(10),
            ..Behaviour::default()
        },
    );
    let f = Fixture::new(db, vec![limited], "").await;
    for i in 0..30 {
        f.user_with(&format!("u{i}"), "limited", RefreshToken).await;
    }

    f.drain_until_settled().await;

    assert_eq!(f.cleared().await, 30);
    let throttled = f.assert_retry_after_respected(Duration::from_secs(1));
    assert!(throttled > 0, "the limit was never reached");
    assert_eq!(f.sim.stats()["limited"].accepted, 30);
    assert_eq!(f.sim.tokens_accepted_twice(), 0);
    let audited_429 = f
        .count("SELECT count(*) FROM revocation_audit WHERE http_status = 429")
        .await;
    assert_eq!(audited_429 as usize, throttled);
}

/// A provider answering 500 until attempts are used up fails its own requests only
/// (invariant 6); a provider with wrong credentials fails at once; the gate says so.
async fn a_broken_provider_fails_its_requests_and_spares_the_others(db: TestDb) {
    let mut providers = one_of_each();
    providers[1].behaviour.always_status = Some(500); // stitch: an outage
    let f = Fixture::new(db, providers, &format!("[worker]\nmax_attempts = 3\n{FAST_RETRIES}")).await;
    // onelogin: credentials the provider does not accept.
    let mut env = f.env.clone();
    env.iter_mut()
        .filter(|(k, _)| k == "SIM_ONELOGIN_SECRET")
        .for_each(|(_, v)| v.push_str("-wrong"));
    let f = Fixture::with_config(f.db, f.sim, f.text, env);

    for i in 0..10 {
        let user = format!("outage-{i}");
        f.seed(&user, "stitch", AccessToken).await;
        f.user_with(&user, "moov", RefreshToken).await;
        let user = format!("healthy-{i}");
        f.seed(&user, "moov", RefreshToken).await;
        f.user_with(&user, "rfc7009", AccessToken).await;
    }
    f.user_with("badcreds", "onelogin", AccessToken).await;

    f.drain_until_settled().await;

    for i in 0..10 {
        assert_eq!(f.state(&format!("healthy-{i}")).await, RequestState::Cleared);
        let failed = f.latest(&format!("outage-{i}")).await;
        assert_eq!((failed.state, failed.attempts), (RequestState::Failed, 3));
        let reason = failed.last_error.unwrap();
        assert!(reason.starts_with("attempts used up (3 of 3): token"), "{reason}");
        assert!(reason.contains("stitch access_token): HTTP 500"), "{reason}");
    }
    // 3 claims × 2 tries for each stitch token, each an audit row.
    let stitch_rows = f
        .count("SELECT count(*) FROM revocation_audit WHERE provider = 'stitch' AND outcome = 'transient'")
        .await;
    assert_eq!(stitch_rows, 10 * 3 * 2);
    // The outage users' moov tokens were revoked once, on the first claim, and not again.
    assert_eq!(
        f.count("SELECT count(*) FROM revocation_audit WHERE provider = 'moov'")
            .await,
        20
    );
    assert_eq!(f.sim.tokens_accepted_twice(), 0);

    let bad = f.latest("badcreds").await;
    assert_eq!(
        (bad.state, bad.attempts),
        (RequestState::Failed, 1),
        "a 401 is not retried"
    );
    assert!(bad.last_error.unwrap().contains("HTTP 401: Authentication Failure"));

    // The deletion job's gate: non-zero for failed users, zero for cleared ones.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", f.db.url)).unwrap();
    let gate = |user: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--config", config.to_str().unwrap(), "gate", user])
            .env_remove("OFFBOARD_CONFIG")
            .output()
            .unwrap()
    };
    let out = gate("outage-0");
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("blocked: request"));
    assert_eq!(gate("badcreds").status.code(), Some(4));
    let out = gate("healthy-0");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gate("nobody").status.code(), Some(5));
}

/// Invariant 3: on a retried request, tokens settled by the earlier claim are not sent.
async fn a_settled_token_is_never_sent_again_when_its_request_is_retried(db: TestDb) {
    let good = SimProvider::new("good", Dialect::Rfc7009);
    let flaky = provider(
        "flaky",
        Dialect::Moov,
        Behaviour {
            always_status: Some(503),
            ..Behaviour::default()
        },
    );
    let slow_durable =
        "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"1h\"\ndurable_cap = \"1h\"\n";
    let f = Fixture::new(db, vec![good, flaky], slow_durable).await;
    let good = f.seed("u1", "good", RefreshToken).await;
    let flaky = f.seed("u1", "flaky", RefreshToken).await;
    let id = f.enqueue("u1").await;

    f.drain().await;
    let row = f.latest("u1").await;
    assert_eq!(row.state, RequestState::Pending);
    assert!(row.next_attempt_at.is_some());
    assert!(row.last_error.unwrap().starts_with("attempt 1 of 8: token"));
    assert_eq!(f.sim.calls_for(&good.value), 1);

    // The provider recovers, and the hour of durable backoff passes.
    f.sim.set_behaviour("flaky", Behaviour::default());
    exec(f.store(), "UPDATE offboarding_requests SET next_attempt_at = NULL")
        .await
        .unwrap();
    f.drain_until_settled().await;

    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.calls_for(&good.value), 1, "a settled token was sent again");
    assert_eq!(f.sim.is_revoked(&flaky.value), Some(true));
    let audit = f.store().audit_rows(Some(id), None).await.unwrap();
    let attempts: Vec<i32> = audit
        .iter()
        .filter(|r| r.token_id == flaky.id)
        .map(|r| r.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3], "attempt numbers run on across claims");
}

/// Invariant 2: a request whose worker died mid-run is finished by another worker once the
/// lease expires.
async fn a_request_whose_worker_died_is_finished_by_another(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("acme", Dialect::Rfc7009)], "").await;
    let token = f.user_with("u1", "acme", AccessToken).await;
    // A worker claimed it with a short lease, then died; the lease has run out.
    let dead = f
        .store()
        .claim_due("dead-worker", 10, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let report = f.drain().await;

    assert_eq!((report.claimed, report.cleared), (1, 1));
    let row = f.latest("u1").await;
    assert_eq!((row.state, row.attempts), (RequestState::Cleared, 2));
    let audit = f.store().audit_rows(Some(row.id), None).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].token_id, audit[0].worker.as_str()),
        (token.id, f.worker.settings().id.as_str())
    );
}

/// A worker that dies mid-run has already written the audit rows of the tokens it
/// finished, and stops renewing its lease; the worker that takes over does not send those
/// tokens again (invariants 2 and 3 across a crash).
async fn a_worker_that_dies_mid_run_keeps_what_it_finished(db: TestDb) {
    let slow = provider(
        "slow",
        Dialect::Stitch,
        Behaviour {
            latency: Duration::from_secs(30),
            ..Behaviour::default()
        },
    );
    let f = Fixture::new(
        db,
        vec![SimProvider::new("fast", Dialect::Rfc7009), slow],
        "[worker]\nlease = \"2s\"\n",
    )
    .await;
    let fast = f.seed("u1", "fast", AccessToken).await;
    f.seed("u1", "slow", AccessToken).await;
    let id = f.enqueue("u1").await;

    let doomed = f.worker.clone();
    let crashed = tokio::spawn(async move { doomed.drain(&CancellationToken::new()).await });
    let mut written = 0;
    for _ in 0..100 {
        written = f.count("SELECT count(*) FROM revocation_audit").await;
        if written > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        written, 1,
        "the finished token's row was not written while the run went on"
    );
    crashed.abort();
    let _ = crashed.await;
    assert_eq!(f.latest("u1").await.state, RequestState::Running);

    // The slow provider recovers; once the dead worker's lease runs out, another takes over.
    f.sim.set_behaviour("slow", Behaviour::default());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let successor = f.another_worker("");
    let report = successor.drain(&CancellationToken::new()).await.unwrap();

    assert_eq!((report.claimed, report.cleared), (1, 1), "{report:?}");
    assert_eq!(
        f.sim.calls_for(&fast.value),
        1,
        "a token settled before the crash was sent again"
    );
    let audit = f.store().audit_rows(Some(id), None).await.unwrap();
    let fast_rows: Vec<_> = audit.iter().filter(|r| r.token_id == fast.id).collect();
    assert_eq!(fast_rows.len(), 1);
    assert_eq!(fast_rows[0].worker, f.worker.settings().id);
    assert!(
        audit
            .iter()
            .any(|r| r.provider == "slow" && r.worker == successor.settings().id && r.settled)
    );
}

/// Invariant 4 with real workers: two workers drain the same queue at once against a
/// provider slower than the lease; renewals keep each request with one worker, and each
/// token is sent once.
async fn two_workers_never_work_on_one_request(db: TestDb) {
    let slow = provider(
        "slow",
        Dialect::Stitch,
        Behaviour {
            latency: Duration::from_millis(2500),
            ..Behaviour::default()
        },
    );
    let f = Fixture::new(
        db,
        vec![slow],
        "[worker]\nlease = \"2s\"\nconcurrency = 8\nbatch_size = 2\n",
    )
    .await;
    let other = f.another_worker("");
    assert_ne!(f.worker.settings().id, other.settings().id);
    for i in 0..12 {
        f.user_with(&format!("u{i}"), "slow", AccessToken).await;
    }

    let never = CancellationToken::new();
    let (a, b) = tokio::join!(f.worker.drain(&never), other.drain(&never));
    let (a, b) = (a.unwrap(), b.unwrap());

    assert_eq!(a.cleared + b.cleared, 12);
    assert_eq!(a.lease_lost + b.lease_lost, 0, "a lease was lost despite renewal");
    assert_eq!(f.sim.calls().len(), 12, "a token was sent by both workers");
    let audit = f.store().audit_rows(None, None).await.unwrap();
    for r in &audit {
        let others = audit
            .iter()
            .filter(|o| o.request_id == r.request_id && o.worker != r.worker)
            .count();
        assert_eq!(others, 0, "request {} has rows from two workers", r.request_id);
    }
}

/// Invariant 7: a token row naming an unknown provider fails its request with the reason,
/// and other users' requests go on.
async fn an_unknown_provider_fails_the_request_with_the_reason(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("acme", Dialect::Rfc7009)], "").await;
    f.seed("u1", "acme", AccessToken).await;
    let stray = NewToken {
        user_id: "u1".into(),
        provider: "legacy-idp".into(),
        token_type: RefreshToken,
        value: TokenValue::new("legacy-token-value-123".into()),
        grant_ref: None,
        expires_at: None,
    };
    offboard::storage::seed::insert_tokens(f.store(), &[stray])
        .await
        .unwrap();
    f.enqueue("u1").await;
    f.user_with("u2", "acme", AccessToken).await;

    f.drain().await;

    let u1 = f.latest("u1").await;
    assert_eq!(u1.state, RequestState::Failed);
    let reason = u1.last_error.unwrap();
    assert!(
        reason.contains("provider 'legacy-idp' is not configured (add [providers.legacy-idp] to the config)"),
        "{reason}"
    );
    assert_eq!(f.state("u2").await, RequestState::Cleared);
    assert_eq!(
        f.count("SELECT count(*) FROM oauth_tokens").await,
        3,
        "no token row was lost"
    );
}

/// The not-revocable policy: an Auth0 access token with no recorded expiry does not settle
/// under the default policy, and does under `settle`; a OneLogin refresh token with no pair
/// is not revocable.
async fn tokens_that_cannot_be_revoked_settle_only_by_policy(db: TestDb) {
    let providers = vec![
        SimProvider::new("auth0", Dialect::Auth0),
        SimProvider::new("onelogin", Dialect::Onelogin),
    ];
    let f = Fixture::new(db, providers, "").await;
    f.user_with("forever", "auth0", AccessToken).await;
    f.seed_with(
        "soon",
        "auth0",
        AccessToken,
        Spec {
            expires_in_secs: Some(3600),
            ..Spec::default()
        },
    )
    .await;
    let unpaired = Spec {
        grant_ref: Some("g-1"),
        expires_in_secs: Some(60),
        ..Spec::default()
    };
    f.seed_with("unpaired", "onelogin", RefreshToken, unpaired).await;
    f.enqueue("soon").await;
    f.enqueue("unpaired").await;

    f.drain().await;

    let forever = f.latest("forever").await;
    assert_eq!(forever.state, RequestState::Failed);
    assert!(
        forever
            .last_error
            .unwrap()
            .contains("no expiry recorded, not within 1day")
    );
    assert_eq!(f.state("soon").await, RequestState::Cleared);
    assert_eq!(f.state("unpaired").await, RequestState::Cleared);
    let rows = f.store().audit_rows(None, Some("unpaired")).await.unwrap();
    assert_eq!(rows[0].outcome, Outcome::NotRevocable);
    assert!(
        rows[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("OneLogin API v1 revokes a refresh token only through")
    );
    assert!(f.sim.calls().is_empty(), "nothing here is revocable at the provider");

    // An operator who accepts the risk settles it by policy and retries.
    let settling = f.another_worker("[policy]\nnot_revocable = \"settle\"\n");
    f.store()
        .retry(forever.id, "ops", Some("accepted the risk"))
        .await
        .unwrap();
    settling.drain(&CancellationToken::new()).await.unwrap();
    assert_eq!(f.state("forever").await, RequestState::Cleared);
}

/// Shutdown mid-drain releases requests that had not been sent, without spending an
/// attempt, and the drain returns.
async fn shutdown_releases_requests_not_yet_sent(db: TestDb) {
    let quiet = provider("quiet", Dialect::Rfc7009, throttling(Duration::from_secs(30), 20));
    // Tokens wait out the 20 s pause in process (not deferred), so shutdown finds them waiting.
    let f = Fixture::new(db, vec![quiet], "[worker]\nmax_queue_wait = \"1m\"\n").await;
    for i in 0..5 {
        f.user_with(&format!("u{i}"), "quiet", AccessToken).await;
    }
    let shutdown = CancellationToken::new();
    let stopper = shutdown.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stopper.cancel();
    });

    let report = f.worker.drain(&shutdown).await.unwrap();

    assert_eq!(report.released, 5, "{report:?}");
    let released = f
        .count(
            "SELECT count(*) FROM offboarding_requests WHERE state = 'pending' AND attempts = 0 AND locked_by IS NULL",
        )
        .await;
    assert_eq!(released, 5);
    let audited = f
        .count("SELECT count(*) FROM revocation_audit WHERE http_status = 429")
        .await;
    assert_eq!(
        audited as usize,
        f.sim.calls().len(),
        "the attempts made before shutdown are audited"
    );
}

/// The worker's decision is re-checked in the database: a token inserted while the run was
/// under way keeps the request from clearing (invariant 1). Defect 7: the request goes back
/// with a durable backoff and a reason that says what happened, not at once.
async fn a_token_that_appears_during_the_run_keeps_the_request_open(db: TestDb) {
    let slow = provider(
        "slow",
        Dialect::Rfc7009,
        Behaviour {
            latency: Duration::from_millis(300),
            ..Behaviour::default()
        },
    );
    let f = Fixture::new(db, vec![slow], "[retry]\ndurable_base = \"2s\"\ndurable_cap = \"2s\"\n").await;
    f.user_with("u1", "slow", AccessToken).await;
    let (first, late) = tokio::join!(f.drain(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.seed("u1", "slow", RefreshToken).await
    });

    // The first run ended with the late token unsettled, so the request was not cleared:
    // it waits out a backoff (at least half of durable_base), with the reason.
    assert_eq!((first.claimed, first.retrying), (1, 1), "{first:?}");
    let row = f.latest("u1").await;
    assert_eq!(row.state, RequestState::Pending);
    let reason = row.last_error.clone().unwrap_or_default();
    assert!(
        reason.starts_with("attempt 1 of 8: 1 token(s) of the user appeared or stayed unsettled"),
        "{reason}"
    );
    let wait = (row.next_attempt_at.unwrap() - Utc::now()).num_milliseconds();
    assert!(wait > 500, "re-claimable after {wait} ms");
    assert_eq!(f.drain().await.claimed, 0, "claimed again before its backoff");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    f.drain().await;
    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&late.value), Some(true));
    let audit = f.store().audit_rows(None, Some("u1")).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.token_id == late.id && r.outcome == Outcome::Revoked)
    );
}

/// `/healthz`, `/readyz` and `/metrics` as `offboard run` serves them.
async fn the_operations_endpoint_reports_health_readiness_and_metrics(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("acme", Dialect::Rfc7009)], "").await;
    for i in 0..3 {
        f.user_with(&format!("u{i}"), "acme", AccessToken).await;
    }
    f.enqueue("waiting").await;
    f.store()
        .cancel(f.latest("waiting").await.id, "ops", None)
        .await
        .unwrap();
    f.drain().await;
    let stop = CancellationToken::new();
    let any_port = "127.0.0.1:0".parse().unwrap();
    let addr = offboard::server::spawn(any_port, f.store().clone(), f.metrics.clone(), stop.clone())
        .await
        .unwrap();
    let get = |path: &'static str| async move {
        let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };

    assert_eq!(get("/healthz").await, (200, "ok\n".to_owned()));
    assert_eq!(get("/readyz").await, (200, "ready\n".to_owned()));
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"offboard_revocation_attempts_total{provider="acme",outcome="revoked"} 3"#,
        r#"offboard_request_runs_total{state="cleared"} 3"#,
        r#"offboard_requests{state="cleared"} 3"#,
        r#"offboard_requests{state="cancelled"} 1"#,
        r#"offboard_requests{state="pending"} 0"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // A database that no longer answers makes the worker unready, not dead.
    f.store().close().await;
    let (status, body) = get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("not ready: database error"), "{body}");
    assert_eq!(get("/healthz").await.0, 200);
    stop.cancel();
}

on_both_backends!(
    the_operations_endpoint_reports_health_readiness_and_metrics,
    two_hundred_users_clear_across_every_dialect,
    a_provider_asking_for_quiet_is_left_alone_until_its_retry_after,
    a_paused_provider_does_not_hold_up_the_others,
    the_rate_limit_paces_calls_to_a_provider,
    a_worker_faster_than_the_provider_backs_off_and_clears_everyone,
    a_broken_provider_fails_its_requests_and_spares_the_others,
    a_settled_token_is_never_sent_again_when_its_request_is_retried,
    a_request_whose_worker_died_is_finished_by_another,
    two_workers_never_work_on_one_request,
    a_worker_that_dies_mid_run_keeps_what_it_finished,
    an_unknown_provider_fails_the_request_with_the_reason,
    tokens_that_cannot_be_revoked_settle_only_by_policy,
    shutdown_releases_requests_not_yet_sent,
    a_token_that_appears_during_the_run_keeps_the_request_open,
);
