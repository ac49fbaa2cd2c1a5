//! The operator's dashboard as `offboard run` serves it (`App::serve`: the operations
//! address, the config's `[dashboard]` table, the token from its file), opened in headless
//! Chromium: the overview's queue counts equal the table's and show the oldest due
//! request; the charts carry the numbers of seeded audit rows; a user's timeline lists
//! their attempts in time order; retry and cancel work with the token and are audited with
//! the actor, and are refused (403, nothing changed, nothing leaked) without it, with a
//! wrong one, from another origin, or when actions are disabled.
//!
//! Without Chromium the browser parts skip with a message outside CI and fail under CI
//! (`browser.rs`); the HTTP-level checks run either way.

mod browser;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use fantoccini::Locator;
use offboard::app::App;
use offboard::outcome::{Decision, Outcome, RequestState};
use offboard::storage::{AuditAction, AuditRow, ClaimedRequest, Results, Store};
use tokio_util::sync::CancellationToken;

use offboard::storage::seed::text_rows;

use crate::helpers::{TestDb, app_for, exec, on_both_backends};
use browser::Browser;

const TOKEN: &str = "dash-token-6f1c0d9e2b7a4c58";

/// A reason with markup in it: the pages must show it as text.
const REASON: &str = r#"provider acme refused: invalid_client <b id="pwn">x</b>"#;

/// The dashboard served on a free loopback port over `db`, with providers `acme` (20/s) and
/// `globex` (600/m).
struct Dash {
    db: TestDb,
    addr: SocketAddr,
    stop: CancellationToken,
    _app: App,
    _dir: tempfile::TempDir,
}

impl Dash {
    async fn serve(db: TestDb, actions: bool) -> Dash {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("dashboard-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let dashboard = if actions {
            format!(
                "[dashboard]\nactions = true\ntoken_file = \"{}\"\ntoken_name = \"on-call bot\"\n",
                token_file.display()
            )
        } else {
            "[dashboard]\nactions = false\n".to_owned()
        };
        let provider = |name: &str, rate: &str| {
            format!(
                "[providers.{name}]\ndialect = \"rfc7009\"\nurl = \"http://127.0.0.1:9/revoke\"\n\
                 client_id = \"offboard\"\nclient_secret_env = \"DASH_SECRET\"\nrate = \"{rate}\"\n"
            )
        };
        let text = format!(
            "[database]\nurl = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n{dashboard}{}{}",
            db.url,
            provider("acme", "20/s"),
            provider("globex", "600/m")
        );
        let app = app_for(&db.store, &text, &[("DASH_SECRET".into(), "s".into())]);
        let stop = CancellationToken::new();
        let addr = app.serve(&stop).await.expect("serve").expect("an address");
        Dash {
            db,
            addr,
            stop,
            _app: app,
            _dir: dir,
        }
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn backend(&self) -> &'static str {
        if self.db.url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// `POST path` with `form` and `headers`: the status and the body.
    async fn post(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> (u16, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut request = client.post(self.url(path)).form(form);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(self.url(path)).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An attempt at `provider` in `claimed`'s request, `ago` before `now`.
fn attempt(
    claimed: &ClaimedRequest,
    provider: &str,
    outcome: Outcome,
    status: i32,
    ms: i64,
    at: DateTime<Utc>,
) -> AuditRow {
    AuditRow {
        request_id: claimed.id,
        user_id: claimed.user_id.clone(),
        token_id: 1,
        provider: provider.into(),
        token_type: "access_token".into(),
        token_fingerprint: "fp-0123456789abcdef".into(),
        attempt: 1,
        outcome,
        settled: outcome.token_is_dead(),
        http_status: Some(status),
        provider_request_id: None,
        error: (outcome == Outcome::Failed).then(|| "invalid_client".to_owned()),
        duration_ms: ms,
        worker: claimed.fence.worker().to_owned(),
        attempted_at: at,
        verified: None,
        verified_by: None,
    }
}

fn results(rows: Vec<AuditRow>) -> Results {
    Results {
        rows,
        notes: Vec::new(),
        dead: Vec::new(),
    }
}

async fn claim(store: &Store, user: &str) -> ClaimedRequest {
    store.enqueue(user, Some("gdpr-job"), Some("CASE-1")).await.unwrap();
    let mut claimed = store.claim_due("seeder", 1, Duration::from_secs(600)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    claimed.remove(0)
}

/// What the overview should show, seeded through the store's own writes:
/// - `alice`: failed with [`REASON`]; at acme, 3 revoked 52.5 minutes ago (100, 200 and
///   300 ms), 2 answered 429 (50, 150 ms) and 1 failed (401, 10 ms) 2.5 minutes ago, and
///   one revoked 90 minutes ago (outside the hour);
/// - `carol`: running under a lease; one revoked at globex 32.5 minutes ago (40 ms);
/// - `bob`: pending and due since he was enqueued, between the two times returned.
async fn seed_overview(store: &Store) -> (i64, i64, DateTime<Utc>, DateTime<Utc>) {
    let now = Utc::now();
    let min = |m: f64| now - chrono::Duration::milliseconds((m * 60_000.0) as i64);
    let alice = claim(store, "alice").await;
    let rows = vec![
        attempt(&alice, "acme", Outcome::Revoked, 200, 999, min(90.0)),
        attempt(&alice, "acme", Outcome::Revoked, 200, 100, min(52.5)),
        attempt(&alice, "acme", Outcome::Revoked, 200, 200, min(52.5)),
        attempt(&alice, "acme", Outcome::Revoked, 200, 300, min(52.5)),
        attempt(&alice, "acme", Outcome::Transient, 429, 50, min(2.5)),
        attempt(&alice, "acme", Outcome::Transient, 429, 150, min(2.5)),
        attempt(&alice, "acme", Outcome::Failed, 401, 10, min(2.5)),
    ];
    let failed = Decision::Failed { reason: REASON.into() };
    let state = store
        .complete(&alice.fence, "alice", &results(rows), &failed)
        .await
        .unwrap();
    assert_eq!(state, RequestState::Failed);
    let carol = claim(store, "carol").await;
    let rows = vec![attempt(&carol, "globex", Outcome::Revoked, 200, 40, min(32.5))];
    store.record_progress(&carol.fence, &results(rows)).await.unwrap();
    let before = Utc::now();
    let bob = store.enqueue("bob", None, None).await.unwrap().request.id;
    let after = Utc::now();
    // The rate the workers of a PostgreSQL database share; globex has none: configured.
    exec(
        store,
        "INSERT INTO offboard_provider_pacing (provider, rate_per_sec, ceiling) VALUES ('acme', 7.5, 20)",
    )
    .await
    .unwrap();
    (alice.id, bob, before, after)
}

/// Saves what the browser shows under `target/tmp/dashboard/NAME.png`, and says where.
async fn screenshot(b: &Browser, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(format!("{name}.png"));
    std::fs::write(&shot, b.client.screenshot().await.unwrap()).unwrap();
    println!("dashboard screenshot: {}", shot.display());
}

/// (bucket, value) of every mark of `series` in `provider`'s `chart`.
async fn marks(b: &Browser, provider: &str, chart: &str, series: &str) -> Vec<(String, String)> {
    let css = format!(r#"figure[data-provider="{provider}"][data-chart="{chart}"] [data-series="{series}"]"#);
    let buckets = b.attrs(&css, "data-bucket").await;
    let values = b.attrs(&css, "data-value").await;
    buckets.into_iter().zip(values).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn the_overview_shows_the_queue_and_the_charts_carry_the_database_numbers(db: TestDb) {
    let d = Dash::serve(db, true).await;
    let (_, _, before, after) = seed_overview(d.store()).await;
    let Some(b) = Browser::launch().await else { return };
    b.client.goto(&d.url("/")).await.unwrap();

    // The queue: each state's count is the table's.
    let in_db = text_rows(
        d.store(),
        "SELECT state || '=' || count(*) FROM offboarding_requests GROUP BY state",
    )
    .await
    .unwrap();
    let states = b.attrs("#queue-counts tr[data-state]", "data-state").await;
    let counts = b.attrs("#queue-counts tr[data-state] td", "data-count").await;
    assert_eq!(states.len(), 6, "five states and the total: {states:?}");
    for (state, count) in states.iter().zip(&counts) {
        let expected = match state.as_str() {
            "total" => "3".to_owned(),
            s => in_db
                .iter()
                .find_map(|r| r.strip_prefix(&format!("{s}=")).map(str::to_owned))
                .unwrap_or_else(|| "0".into()),
        };
        assert_eq!(count, &expected, "state {state}; the table says {in_db:?}");
    }
    assert_eq!(b.attr("#due-count", "data-count").await, "1", "bob alone is due");
    // The oldest due request: bob, due since he was enqueued.
    let since: DateTime<Utc> = b.attr("#oldest-due", "data-since").await.parse().unwrap();
    let slack = chrono::Duration::milliseconds(1);
    assert!(
        since >= before - slack && since <= after,
        "{since} not in {before}..{after}"
    );
    let waited: i64 = b.attr("#oldest-due", "data-seconds").await.parse().unwrap();
    assert!((0..=(Utc::now() - before).num_seconds() + 1).contains(&waited));
    assert!(b.text("#oldest-due").await.starts_with("Oldest due request has waited"));

    // The failed request, its reason as text: no element made of it.
    let failed = b.text("#failed-list").await;
    assert!(failed.contains("alice") && failed.contains(REASON), "{failed}");
    assert_eq!(b.count("#pwn").await, 0, "the reason's markup was escaped");
    assert_eq!(b.count("#failed-list a.action-retry").await, 1);
    assert_eq!(b.count("#open-list tr[data-request]").await, 2, "carol and bob wait");

    // The providers' hour, in the table.
    let metric = |p: &str, m: &str| format!(r#"#provider-table tr[data-provider="{p}"] td[data-metric="{m}"]"#);
    for (m, v) in [
        ("calls", "6"),
        ("revoked", "3"),
        ("transient", "2"),
        ("failed", "1"),
        ("already_invalid", "0"),
        ("429", "2"),
        ("mean_ms", "135"),
        ("max_ms", "300"),
        ("configured_rate", "20"),
    ] {
        assert_eq!(b.text(&metric("acme", m)).await, v, "acme {m}");
    }
    assert_eq!(b.attr(&metric("acme", "effective_rate"), "data-source").await, "shared");
    assert!(b.text(&metric("acme", "effective_rate")).await.starts_with("7.5"));
    for (m, v) in [
        ("calls", "1"),
        ("revoked", "1"),
        ("mean_ms", "40"),
        ("configured_rate", "10"),
    ] {
        assert_eq!(b.text(&metric("globex", m)).await, v, "globex {m}");
    }
    assert_eq!(
        b.attr(&metric("globex", "effective_rate"), "data-source").await,
        "configured"
    );

    // And in the charts: five-minute buckets, 0 the oldest.
    assert_eq!(marks(&b, "acme", "calls", "revoked").await, pairs(&[("1", "3")]));
    assert_eq!(marks(&b, "acme", "calls", "transient").await, pairs(&[("11", "2")]));
    assert_eq!(marks(&b, "acme", "calls", "failed").await, pairs(&[("11", "1")]));
    assert_eq!(marks(&b, "acme", "throttled", "429").await, pairs(&[("11", "2")]));
    assert_eq!(
        marks(&b, "acme", "latency", "mean").await,
        pairs(&[("1", "200"), ("11", "70")])
    );
    assert_eq!(
        marks(&b, "acme", "latency", "max").await,
        pairs(&[("1", "300"), ("11", "150")])
    );
    assert_eq!(
        marks(&b, "acme", "rate", "observed").await,
        pairs(&[("1", "0.01"), ("11", "0.01")])
    );
    assert_eq!(
        b.attrs(
            r#"figure[data-provider="acme"][data-chart="rate"] [data-series="effective"]"#,
            "data-value"
        )
        .await,
        ["7.5"]
    );
    assert_eq!(marks(&b, "globex", "calls", "revoked").await, pairs(&[("5", "1")]));
    assert_eq!(marks(&b, "globex", "throttled", "429").await, pairs(&[]));
    // A bar's tooltip says its number too.
    let title = b
        .client
        .find(Locator::Css(
            r#"figure[data-provider="acme"][data-chart="calls"] rect[data-series="revoked"] title"#,
        ))
        .await
        .unwrap()
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(title.starts_with("3 revoked, "), "{title}");

    screenshot(&b, &format!("{}-overview", d.backend())).await;
    b.close().await;
}

async fn a_users_timeline_lists_their_attempts_in_time_order(db: TestDb) {
    let d = Dash::serve(db, false).await;
    let store = d.store();
    // Attempts stamped after the enqueue, written out of time order.
    let dave = claim(store, "dave & <co>").await;
    let t0 = Utc::now();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let mut rows = vec![
        attempt(&dave, "acme", Outcome::Transient, 503, 30, at(300)),
        attempt(&dave, "acme", Outcome::Revoked, 200, 10, at(100)),
        attempt(&dave, "globex", Outcome::Failed, 401, 20, at(200)),
    ];
    rows[0].provider_request_id = Some("<img src=x>".into());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let failed = Decision::Failed {
        reason: "globex: invalid_client".into(),
    };
    store
        .complete(&dave.fence, "dave & <co>", &results(rows), &failed)
        .await
        .unwrap();
    store.retry(dave.id, "ops", Some("ticket 7")).await.unwrap();
    let Some(b) = Browser::launch().await else { return };
    // From the overview's form, as an operator would get there.
    b.client.goto(&d.url("/")).await.unwrap();
    b.client
        .find(Locator::Css("#user-id"))
        .await
        .unwrap()
        .send_keys("dave & <co>")
        .await
        .unwrap();
    b.client
        .find(Locator::Css("#due form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    assert_eq!(b.text("#user").await, "dave & <co>");
    let kinds = b.attrs("#timeline li", "data-kind").await;
    assert_eq!(kinds, ["enqueued", "attempt", "attempt", "attempt", "note"]);
    let outcomes = b.attrs("#timeline li[data-kind=attempt]", "data-outcome").await;
    assert_eq!(
        outcomes,
        ["revoked", "failed", "transient"],
        "by time, not by the order written"
    );
    let times: Vec<DateTime<Utc>> = b
        .attrs("#timeline li", "data-at")
        .await
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(times[1], at(100).trunc_subsecs(3));
    let entries = b.text("#timeline").await;
    assert!(entries.contains("attempt 1 at globex: failed"), "{entries}");
    assert!(entries.contains("provider request id <img src=x>"), "{entries}");
    assert!(
        entries.contains("retried by ops") && entries.contains("ticket 7"),
        "{entries}"
    );
    assert_eq!(b.count("#timeline img").await, 0);
    assert_eq!(
        b.attrs("#user-requests tr[data-request]", "data-state").await,
        ["pending"]
    );
    screenshot(&b, &format!("{}-timeline", d.backend())).await;
    b.close().await;
}

/// Retry through the browser, as an operator would: the confirmation page, the token, a
/// name and a reason. Cancel with the token in a header, naming no one: the token's name.
async fn retry_and_cancel_work_with_the_token_and_name_the_actor_in_the_audit(db: TestDb) {
    let d = Dash::serve(db, true).await;
    let (alice, bob, _, _) = seed_overview(d.store()).await;
    // A GET shows the form and changes nothing.
    let (status, page) = d.get(&format!("/requests/{alice}/retry")).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="action-form""#));
    assert_eq!(
        d.store().request(alice).await.unwrap().unwrap().state,
        RequestState::Failed
    );

    if let Some(b) = Browser::launch().await {
        b.client.goto(&d.url("/")).await.unwrap();
        b.client
            .find(Locator::Css("#failed-list a.action-retry"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let page = &b;
        let form = |css: &'static str| async move { page.client.find(Locator::Css(css)).await.unwrap() };
        form("#token").await.send_keys(TOKEN).await.unwrap();
        form("#operator").await.send_keys("Ada Lovelace").await.unwrap();
        form("#reason").await.send_keys("provider fixed, INC-42").await.unwrap();
        screenshot(page, &format!("{}-confirm", d.backend())).await;
        form("#submit").await.click().await.unwrap();
        assert_eq!(b.text("#done").await, format!("Request {alice} is pending again."));
        assert!(
            b.client
                .current_url()
                .await
                .unwrap()
                .as_str()
                .contains("/user?id=alice")
        );
        b.close().await;
    } else {
        let form = [
            ("token", TOKEN),
            ("operator", "Ada Lovelace"),
            ("reason", "provider fixed, INC-42"),
        ];
        assert_eq!(d.post(&format!("/requests/{alice}/retry"), &form, &[]).await.0, 303);
    }
    assert_eq!(
        d.store().request(alice).await.unwrap().unwrap().state,
        RequestState::Pending
    );
    let notes = d.store().audit_notes(Some(alice)).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].action, AuditAction::Retry);
    assert_eq!(notes[0].worker, "Ada Lovelace (dashboard)");
    assert_eq!(notes[0].error.as_deref(), Some("provider fixed, INC-42"));

    let (status, _) = d
        .post(&format!("/requests/{bob}/cancel"), &[], &[("x-offboard-token", TOKEN)])
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        d.store().request(bob).await.unwrap().unwrap().state,
        RequestState::Cancelled
    );
    let notes = d.store().audit_notes(Some(bob)).await.unwrap();
    assert_eq!(
        (notes[0].action, notes[0].worker.as_str()),
        (AuditAction::Cancel, "on-call bot (dashboard)")
    );

    // A request in the wrong state: refused with the reason, nothing written.
    let (status, body) = d
        .post(&format!("/requests/{bob}/retry"), &[("token", TOKEN)], &[])
        .await;
    assert_eq!(status, 409);
    assert!(
        body.contains("is cancelled; retry needs a request that is failed"),
        "{body}"
    );
    assert_eq!(d.store().audit_notes(Some(bob)).await.unwrap().len(), 1);
}

type Fields<'a> = Vec<(&'a str, &'a str)>;

async fn actions_without_the_right_token_are_refused_and_change_nothing(db: TestDb) {
    let d = Dash::serve(db, true).await;
    let (alice, bob, _, _) = seed_overview(d.store()).await;
    let same_origin = d.url("");
    // (why, form fields, headers)
    let attempts: Vec<(&str, Fields, Fields)> = vec![
        ("no token", vec![("operator", "mallory")], vec![]),
        ("empty token", vec![("token", "")], vec![]),
        ("wrong token", vec![("token", "dash-token-6f1c0d9e2b7a4c59")], vec![]),
        ("a prefix", vec![("token", &TOKEN[..10])], vec![]),
        (
            "wrong header",
            vec![],
            vec![("authorization", "Bearer nope-nope-nope-nope")],
        ),
        (
            "another site",
            vec![("token", TOKEN)],
            vec![("origin", "https://evil.example")],
        ),
        (
            "cross-site fetch",
            vec![("token", TOKEN)],
            vec![("origin", &same_origin), ("sec-fetch-site", "cross-site")],
        ),
    ];
    for (why, form, headers) in &attempts {
        for path in [format!("/requests/{alice}/retry"), format!("/requests/{bob}/cancel")] {
            let (status, body) = d.post(&path, form, headers).await;
            assert_eq!(status, 403, "{why}: {path}: {body}");
            assert!(
                !body.contains(TOKEN) && !body.contains(&TOKEN[..10]),
                "{why}: the refusal shows the token"
            );
        }
    }
    assert_eq!(
        d.store().request(alice).await.unwrap().unwrap().state,
        RequestState::Failed
    );
    assert_eq!(
        d.store().request(bob).await.unwrap().unwrap().state,
        RequestState::Pending
    );
    assert!(d.store().audit_notes(None).await.unwrap().is_empty(), "nothing audited");

    // Through the browser too: a wrong token in the form is refused.
    if let Some(b) = Browser::launch().await {
        b.client
            .goto(&d.url(&format!("/requests/{alice}/retry")))
            .await
            .unwrap();
        b.client
            .find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys("not-the-token-at-all")
            .await
            .unwrap();
        b.client
            .find(Locator::Css("#submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(b.text("#message h1").await, "Refused");
        assert_eq!(
            d.store().request(alice).await.unwrap().unwrap().state,
            RequestState::Failed
        );
        b.close().await;
    }
}

async fn a_read_only_dashboard_offers_no_action_and_refuses_one(db: TestDb) {
    let d = Dash::serve(db, false).await;
    let (alice, bob, _, _) = seed_overview(d.store()).await;
    let (status, page) = d.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains("read-only"));
    assert!(!page.contains("action-retry") && !page.contains("action-cancel"));
    assert_eq!(d.get(&format!("/requests/{alice}/retry")).await.0, 404);
    for path in [format!("/requests/{alice}/retry"), format!("/requests/{bob}/cancel")] {
        let (status, body) = d.post(&path, &[("token", TOKEN)], &[]).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("actions are disabled"), "{body}");
    }
    assert_eq!(
        d.store().request(alice).await.unwrap().unwrap().state,
        RequestState::Failed
    );
    assert_eq!(
        d.store().request(bob).await.unwrap().unwrap().state,
        RequestState::Pending
    );
    assert!(d.store().audit_notes(None).await.unwrap().is_empty());
    if let Some(b) = Browser::launch().await {
        b.client.goto(&d.url("/")).await.unwrap();
        assert_eq!(b.count("a.action-retry, a.action-cancel").await, 0);
        assert_eq!(b.count("#failed-list tr[data-request]").await, 1);
        b.close().await;
    }
}

on_both_backends!(
    the_overview_shows_the_queue_and_the_charts_carry_the_database_numbers,
    a_users_timeline_lists_their_attempts_in_time_order,
    retry_and_cancel_work_with_the_token_and_name_the_actor_in_the_audit,
    actions_without_the_right_token_are_refused_and_change_nothing,
    a_read_only_dashboard_offers_no_action_and_refuses_one,
);

/// The binary: `check-config` and `offboard run` read the dashboard's token, and a missing
/// one stops both naming its key; with it, `run` serves the dashboard on its operations
/// address. Neither prints the token.
#[test]
fn the_binary_reads_the_dashboard_token_and_run_serves_the_dashboard() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    const VAR: &str = "OFFBOARD_TEST_DASH_TOKEN";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[worker]\nschedule = \"0 0 0 1 1 *\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\n[dashboard]\nactions = true\ntoken_env = \"{VAR}\"\n",
            dir.path().join("offboard.db").display()
        ),
    )
    .unwrap();
    let offboard = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
        cmd.arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("OFFBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove(VAR)
            .stdin(Stdio::null());
        if let Some(token) = token {
            cmd.env(VAR, token);
        }
        cmd
    };
    let missing = format!("dashboard.token_env: environment variable {VAR} is not set");
    for command in ["check-config", "run"] {
        let out = offboard(&[command], None).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(err.contains(&missing), "{command}: {err}");
    }
    let out = offboard(&["check-config"], Some(TOKEN)).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("dashboard: http://127.0.0.1:0/, actions enabled (token from dashboard.token_env: set)"),
        "{text}"
    );
    assert!(!text.contains(TOKEN));

    let mut child = offboard(&["run"], Some(TOKEN)).stderr(Stdio::piped()).spawn().unwrap();
    // Read stderr to the end on a thread: a daemon whose stderr is closed dies on its next
    // log line.
    let (lines, logged) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    let mut addr = None;
    while let Ok(line) = logged.recv_timeout(Duration::from_secs(30)) {
        if let Some((_, a)) = line.split_once("serving /healthz, /readyz and /metrics address=") {
            addr = Some(a.trim().to_owned());
        }
        let started = line.contains("serving the operator dashboard");
        log.push(line);
        if started {
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("no address in {log:?}"));
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(stream, "GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains(r#"id="queue-counts""#) && page.contains("actions enabled"),
        "{page}"
    );
    assert!(
        page.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'none'")
    );
    log.extend(logged.try_iter());
    assert!(!log.iter().any(|l| l.contains(TOKEN)), "{log:?}");
}
