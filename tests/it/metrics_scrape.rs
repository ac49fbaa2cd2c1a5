//! `/metrics` after a run with faults (issue 11): scraped over HTTP from the operations
//! server, the counters equal what the audit table and the queue hold, the pacing metrics
//! show the pause a `Retry-After` caused and every call's wait at the gate, and nothing in
//! the text names a user, a token or a secret. And lease takeovers, counted by the claim.

use std::collections::BTreeMap;
use std::time::Duration;

use offboard::storage::Store;
use offboard::storage::seed::{NewToken, insert_tokens, text_rows};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDb, app_for, exec_built, on_both_backends};

const SECRET: &str = "client-s3cret-9f27c1";

/// Stand-ins for four providers: `alpha` revokes, `beta` answers its first two calls 429
/// with `Retry-After: 1` and then revokes, `gamma` refuses the client (401, failed) and
/// `delta` fails with 500 (transient).
struct StandIns {
    alpha: MockServer,
    beta: MockServer,
    gamma: MockServer,
    delta: MockServer,
}

async fn answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    server
}

impl StandIns {
    async fn start() -> StandIns {
        let beta = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&beta)
            .await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(200))
            .with_priority(2)
            .mount(&beta)
            .await;
        StandIns {
            alpha: answering(ResponseTemplate::new(200)).await,
            beta,
            gamma: answering(ResponseTemplate::new(401).set_body_string(r#"{"error":"invalid_client"}"#)).await,
            delta: answering(ResponseTemplate::new(500)).await,
        }
    }

    fn all(&self) -> [(&'static str, &MockServer); 4] {
        [
            ("alpha", &self.alpha),
            ("beta", &self.beta),
            ("gamma", &self.gamma),
            ("delta", &self.delta),
        ]
    }

    /// The config: fast in-process retries, and a durable backoff of an hour, so that a
    /// request sent back to pending is not due again during the test.
    fn config(&self, db_url: &str) -> String {
        let mut text = format!(
            "[database]\nurl = \"{db_url}\"\n[worker]\nmax_attempts = 3\n\
             [retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"1h\"\ndurable_cap = \"1h\"\n"
        );
        for (name, server) in self.all() {
            text.push_str(&format!(
                "[providers.{name}]\ndialect = \"rfc7009\"\nurl = \"{}/revoke\"\nclient_id = \"client-1\"\n\
                 client_secret_env = \"P_SECRET\"\nrate = \"100/s\"\nburst = 10\n",
                server.uri()
            ));
        }
        text
    }
}

fn user(provider: &str, i: usize) -> String {
    format!("person-{provider}-{i:04}")
}

fn token_value(user: &str) -> String {
    format!("tokval-{user}-b7e1")
}

/// Seeds `n` users with one access token each at `provider`, and enqueues them.
async fn users_at(store: &Store, provider: &str, n: usize) -> Vec<String> {
    let users: Vec<String> = (0..n).map(|i| user(provider, i)).collect();
    let tokens: Vec<NewToken> = users
        .iter()
        .map(|u| NewToken {
            user_id: u.clone(),
            provider: provider.into(),
            token_type: TokenType::AccessToken,
            value: TokenValue::new(token_value(u)),
            grant_ref: None,
            expires_at: None,
        })
        .collect();
    insert_tokens(store, &tokens).await.unwrap();
    for u in &users {
        store.enqueue(u, Some("deletion-job"), None).await.unwrap();
    }
    users
}

/// Samples of a scrape, by metric name and sorted labels.
struct Scrape {
    text: String,
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let mut labels: Vec<(String, String)> = rest
                        .trim_end_matches('}')
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    labels.sort();
                    (name.to_owned(), labels)
                }
                None => (series.to_owned(), Vec::new()),
            };
            samples.insert((name, labels), value.parse().expect("a number"));
        }
        Scrape { text, samples }
    }

    /// The sample of `name` with exactly `labels`; `None` when the scrape has none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut labels: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        labels.sort();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }

    /// Every sample of `name`, by the value of its label `label`.
    fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, labels), v)| {
                let key = labels.iter().filter(|(k, _)| k != label).map(|(_, v)| v.as_str());
                let own = labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str());
                let key = own.into_iter().chain(key).collect::<Vec<_>>().join("|");
                (key, *v)
            })
            .collect()
    }
}

async fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    Scrape::parse(response.text().await.unwrap())
}

/// `key|n` rows of a grouping query, as a map.
async fn counted(store: &Store, sql: &'static str) -> BTreeMap<String, f64> {
    text_rows(store, sql)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let (key, n) = row.rsplit_once('|').unwrap();
            (key.to_owned(), n.parse().unwrap())
        })
        .collect()
}

/// A run with faults, then `/metrics` over HTTP: attempts by provider and outcome, throttles
/// and queue depth by state equal the audit table's and the queue's counts; the provider
/// that sent `Retry-After` was paused for it; every call that went out waited at its gate
/// once; the age of the oldest due request is 0 with none due and grows once one is; and no
/// user id, token value or secret is in the text.
async fn the_scrape_after_a_run_with_faults_matches_the_audit_table(db: TestDb) {
    let stand_ins = StandIns::start().await;
    let env = vec![("P_SECRET".to_owned(), SECRET.to_owned())];
    let app = app_for(&db.store, &stand_ins.config(&db.url), &env);
    let mut users = Vec::new();
    for (provider, n) in [("alpha", 3), ("beta", 2), ("gamma", 1), ("delta", 1)] {
        users.extend(users_at(&db.store, provider, n).await);
    }
    let stop = CancellationToken::new();
    let any_port = "127.0.0.1:0".parse().unwrap();
    let addr = offboard::server::spawn(any_port, db.store.clone(), app.metrics().clone(), stop.clone())
        .await
        .unwrap();

    let report = tokio::time::timeout(Duration::from_secs(60), app.worker().drain(&CancellationToken::new()))
        .await
        .expect("the drain ends")
        .expect("drain");
    assert_eq!(report.claimed, 7, "{report:?}");
    let m = scrape(addr).await;

    // The run had every kind of end: cleared (alpha, beta), failed (gamma) and pending for
    // an hour (delta).
    let states = counted(
        &db.store,
        "SELECT state || '|' || count(*) FROM offboarding_requests GROUP BY state",
    )
    .await;
    let expected_states: BTreeMap<String, f64> = [
        ("cleared".to_owned(), 5.0),
        ("failed".to_owned(), 1.0),
        ("pending".to_owned(), 1.0),
    ]
    .into();
    assert_eq!(states, expected_states);
    for state in ["pending", "running", "cleared", "failed", "cancelled"] {
        let table = states.get(state).copied().unwrap_or(0.0);
        assert_eq!(
            m.get("offboard_requests", &[("state", state)]),
            Some(table),
            "{state}\n{}",
            m.text
        );
    }

    // Attempts: equal to the audit rows, provider by provider and outcome by outcome, with
    // nothing in the scrape that the audit lacks.
    let audit = counted(
        &db.store,
        "SELECT provider || '|' || outcome || '|' || count(*) FROM revocation_audit
          WHERE action = 'revoke' GROUP BY provider, outcome",
    )
    .await;
    for (key, n) in [
        ("alpha|revoked", 3.0),
        ("beta|transient", 2.0),
        ("beta|revoked", 2.0),
        ("gamma|failed", 1.0),
    ] {
        assert_eq!(audit.get(key), Some(&n), "{key}: {audit:?}");
    }
    assert!(audit.get("delta|transient").is_some_and(|n| *n >= 1.0), "{audit:?}");
    let scraped: BTreeMap<String, f64> = m
        .by("offboard_revocation_attempts_total", "provider")
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .collect();
    assert_eq!(scraped, audit, "attempts by provider|outcome\n{}", m.text);

    // Throttles: the 429 rows.
    let throttled = counted(
        &db.store,
        "SELECT provider || '|' || count(*) FROM revocation_audit
          WHERE action = 'revoke' AND http_status IN (429, 503) GROUP BY provider",
    )
    .await;
    assert_eq!(throttled, [("beta".to_owned(), 2.0)].into());
    assert_eq!(m.by("offboard_provider_throttled_total", "provider"), throttled);

    // Pacing: beta was paused a second for its Retry-After, the others never; each call
    // that reached a stand-in passed its gate once.
    let paused = m.by("offboard_provider_paused_seconds_total", "provider");
    assert!(paused["beta"] >= 1.0 && paused["beta"] < 5.0, "{paused:?}");
    for provider in ["alpha", "gamma", "delta"] {
        assert_eq!(paused[provider], 0.0, "{provider}: {paused:?}");
    }
    for (provider, server) in stand_ins.all() {
        let calls = server.received_requests().await.unwrap().len() as f64;
        assert_eq!(
            m.get("offboard_rate_limit_wait_seconds_count", &[("provider", provider)]),
            Some(calls),
            "{provider}\n{}",
            m.text
        );
    }
    assert!(
        m.get("offboard_rate_limit_wait_seconds_sum", &[("provider", "beta")])
            .unwrap()
            >= 0.9
    );

    // Nothing is due: delta's request waits an hour.
    assert_eq!(m.get("offboard_oldest_due_request_age_seconds", &[]), Some(0.0));
    // A new request is due at once, and its age grows until it is claimed.
    db.store.enqueue("person-late-0001", None, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = scrape(addr).await;
    let age = later.get("offboard_oldest_due_request_age_seconds", &[]).unwrap();
    assert!((0.25..60.0).contains(&age), "{age}");
    assert_eq!(later.get("offboard_requests", &[("state", "pending")]), Some(2.0));

    // No user, token or secret anywhere in the text.
    users.push("person-late-0001".into());
    for text in [&m.text, &later.text] {
        assert!(!text.contains(SECRET), "the client secret in\n{text}");
        assert!(!text.contains("person-") && !text.contains("tokval-"), "{text}");
        for u in &users {
            assert!(!text.contains(u.as_str()) && !text.contains(&token_value(u)), "{u}");
        }
    }
    stop.cancel();
}

/// SQL that puts request `id` in another worker's expired lease, on `db`'s backend.
fn expired_lease_sql(db: &TestDb, id: i64) -> String {
    let past = if db.url.starts_with("postgres") {
        "now() - interval '1 minute'".to_owned()
    } else {
        "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-60 seconds')".to_owned()
    };
    format!(
        "UPDATE offboarding_requests SET state = 'running', locked_by = 'dead-worker',
                locked_until = {past}, attempts = 1 WHERE id = {id}"
    )
}

/// A request whose worker died (running, its lease expired) is taken over by the next
/// claim, which says so; a pending request claimed beside it is not a takeover, and a
/// request under a live lease is not claimed at all.
async fn the_claim_says_which_requests_it_took_over(db: TestDb) {
    let store = &db.store;
    let live = store.enqueue("person-live", None, None).await.unwrap().request.id;
    let held = store.claim_due("w-1", 10, Duration::from_secs(600)).await.unwrap();
    assert_eq!((held.len(), held[0].id, held[0].taken_over), (1, live, false));
    let orphan = store.enqueue("person-orphan", None, None).await.unwrap().request.id;
    let fresh = store.enqueue("person-fresh", None, None).await.unwrap().request.id;
    exec_built(store, expired_lease_sql(&db, orphan)).await.unwrap();

    let claimed = store.claim_due("w-2", 10, Duration::from_secs(600)).await.unwrap();
    let by_id: BTreeMap<i64, bool> = claimed.iter().map(|c| (c.id, c.taken_over)).collect();
    assert_eq!(by_id, [(orphan, true), (fresh, false)].into(), "{claimed:?}");
    // Nothing is left: every request is under a live lease.
    assert!(
        store
            .claim_due("w-3", 10, Duration::from_secs(600))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A drain that takes over an expired lease counts one takeover in `/metrics`, and clears
/// the request; the pending request it clears beside it is not counted.
async fn a_takeover_is_counted_once_in_the_metrics(db: TestDb) {
    let stand_ins = StandIns::start().await;
    let env = vec![("P_SECRET".to_owned(), SECRET.to_owned())];
    let app = app_for(&db.store, &stand_ins.config(&db.url), &env);
    let users = users_at(&db.store, "alpha", 2).await;
    let orphan = db.store.clearance(&users[0]).await.unwrap().unwrap().id;
    exec_built(&db.store, expired_lease_sql(&db, orphan)).await.unwrap();
    let stop = CancellationToken::new();
    let any_port = "127.0.0.1:0".parse().unwrap();
    let addr = offboard::server::spawn(any_port, db.store.clone(), app.metrics().clone(), stop.clone())
        .await
        .unwrap();
    let before = scrape(addr).await;
    assert_eq!(before.get("offboard_lease_takeovers_total", &[]), Some(0.0));
    assert!(
        before.get("offboard_oldest_due_request_age_seconds", &[]).unwrap() >= 59.0,
        "due since its lease ended a minute ago\n{}",
        before.text
    );

    let report = app.worker().drain(&CancellationToken::new()).await.unwrap();
    assert_eq!(report.claimed, 2, "{report:?}");
    let after = scrape(addr).await;
    assert_eq!(
        after.get("offboard_lease_takeovers_total", &[]),
        Some(1.0),
        "{}",
        after.text
    );
    assert_eq!(after.get("offboard_requests", &[("state", "cleared")]), Some(2.0));
    assert_eq!(after.get("offboard_oldest_due_request_age_seconds", &[]), Some(0.0));
    stop.cancel();
}

/// SQLite only: a lease renewal that meets a locked database is a retried database error
/// (the renewer tries again on its next tick), and is counted: during the one slow call of
/// this run, the renewals are the only writes, so the count is theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_renewal_that_meets_a_locked_database_is_counted() {
    use sqlx::Connection;

    let db = TestDb::sqlite_with("busy_timeout = \"50ms\"").await;
    let slow = answering(ResponseTemplate::new(200).set_delay(Duration::from_millis(2500))).await;
    let text = format!(
        "[database]\nurl = \"{}\"\nbusy_timeout = \"50ms\"\n[worker]\nlease = \"2s\"\n\
         [providers.slow]\ndialect = \"rfc7009\"\nurl = \"{}/revoke\"\nclient_id = \"client-1\"\n\
         client_secret_env = \"P_SECRET\"\n",
        db.url,
        slow.uri()
    );
    let app = app_for(&db.store, &text, &[("P_SECRET".to_owned(), SECRET.to_owned())]);
    users_at(&db.store, "slow", 1).await;
    let errors = |text: &str| Scrape::parse(text.to_owned()).get("offboard_database_errors_total", &[]);
    assert_eq!(errors(&app.metrics().render()), Some(0.0));

    let never = CancellationToken::new();
    let (drained, ()) = tokio::join!(app.worker().drain(&never), async {
        // Lock from the claim until past the first renewal (a third of the lease in).
        while slow.received_requests().await.unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut conn = crate::helpers::sqlite_connection(&db.url).await;
        let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tx.commit().await.unwrap();
    });
    let report = drained.expect("drain");
    assert_eq!((report.claimed, report.cleared), (1, 1), "{report:?}");
    let counted = errors(&app.metrics().render()).unwrap();
    assert!(counted >= 1.0, "the renewal's failure was not counted: {counted}");
}

on_both_backends!(
    the_scrape_after_a_run_with_faults_matches_the_audit_table,
    the_claim_says_which_requests_it_took_over,
    a_takeover_is_counted_once_in_the_metrics,
);
