//! PostgreSQL restarted in the middle of a drain by `offboard run` (issue 7): the daemon
//! stays up, logs the outage, and the drain completes with no request failed.
//!
//! The database is a throwaway cluster of the test's own ([`PgCluster`]), never the shared
//! test server: it is stopped twice while requests are in flight, once with `-m fast` and a
//! few seconds down, once with `-m immediate` (a crash, as far as clients can tell).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator};
use offboard::storage::seed::NewToken;
use offboard::token::{TokenType, TokenValue};
use sqlx::Connection;

use crate::helpers::{Daemon, PgCluster, open_store, tail};

const USERS: usize = 100;

/// The outages, in order: when (share of the users cleared), how PostgreSQL goes down, and
/// for how long it stays down.
const OUTAGES: [(f64, &str, Duration); 2] = [
    (0.15, "fast", Duration::from_secs(4)),
    (0.55, "immediate", Duration::from_secs(2)),
];

const WORKER_TOML: &str = r#"
[worker]
schedule = "* * * * * *"
lease = "5s"
concurrency = 16
batch_size = 8
shutdown_grace = "1s"

[retry]
attempts = 3
base = "20ms"
cap = "200ms"
durable_base = "200ms"
durable_cap = "2s"

[server]
listen = "off"

[log]
level = "info"
"#;

/// Requests per state, on a fresh connection (the server may have just come back); `None`
/// while the database does not answer.
async fn state_counts(url: &str) -> Option<BTreeMap<String, i64>> {
    let mut conn = sqlx::PgConnection::connect(url).await.ok()?;
    let rows = sqlx::query_as::<_, (String, i64)>("SELECT state, count(*) FROM offboarding_requests GROUP BY state")
        .fetch_all(&mut conn)
        .await
        .ok()?;
    let _ = conn.close().await;
    Some(rows.into_iter().collect())
}

fn open_count(counts: &BTreeMap<String, i64>) -> i64 {
    ["pending", "running"].iter().filter_map(|s| counts.get(*s)).sum()
}

/// A slow-ish provider: every answer takes 50 ms, and the worker paces it at 5 calls a second.
fn slow(name: &str, dialect: Dialect) -> SimProvider {
    let mut p = SimProvider::new(name, dialect);
    p.behaviour = Behaviour {
        latency: Duration::from_millis(50),
        ..Behaviour::default()
    };
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_drain_leaves_the_daemon_up_and_fails_no_request() {
    let cluster = tokio::task::block_in_place(PgCluster::start);
    let url = cluster.url();
    let store = open_store(&url).await;
    let sim = Simulator::start(
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        vec![
            slow("acme", Dialect::Rfc7009),
            slow("moov", Dialect::Moov),
            slow("stitch", Dialect::Stitch),
        ],
    )
    .await
    .expect("start the simulator");

    // Two tokens a user at two different providers: 200 calls at 15 a second.
    let providers = ["acme", "moov", "stitch"];
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for u in 0..USERS {
        let user = format!("pg-user-{u:03}");
        for k in 0..2 {
            let provider = providers[(u + k) % providers.len()];
            let value = sim.issue(provider, TokenType::RefreshToken, None);
            values.push((user.clone(), value.clone()));
            rows.push(NewToken {
                user_id: user.clone(),
                provider: provider.into(),
                token_type: TokenType::RefreshToken,
                value: TokenValue::new(value),
                grant_ref: None,
                expires_at: None,
            });
        }
    }
    let ids = offboard::storage::seed::insert_tokens(&store, &rows)
        .await
        .expect("insert tokens");
    for u in 0..USERS {
        store
            .enqueue(&format!("pg-user-{u:03}"), None, None)
            .await
            .expect("enqueue");
    }
    // The test's own pool would only see the outages too: poll on fresh connections.
    store.close().await;

    let (providers_toml, env) = offboard::simulate::offboard_config_for(&sim, "rate = \"5/s\"\nburst = 2\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        &config,
        format!("[database]\nurl = \"{url}\"\n{WORKER_TOML}\n{providers_toml}"),
    )
    .unwrap();
    let mut daemon = Daemon::spawn(&config, &env, dir.path().join("daemon.log"));
    let started = Instant::now();

    let mut problems: Vec<String> = Vec::new();
    let mut outages_done = 0;
    let mut outage_notes = Vec::new();
    let mut last_counts = BTreeMap::new();
    let mut back_up = started;
    let finished = loop {
        if let Some(status) = daemon.exited() {
            problems.push(format!(
                "the daemon exited with {status} {:.1}s in, after {outages_done} outage(s); its log ends:\n{}",
                started.elapsed().as_secs_f64(),
                tail(&daemon.log_text(), 20)
            ));
            break false;
        }
        if let Some(counts) = state_counts(&url).await {
            let cleared = counts.get("cleared").copied().unwrap_or(0);
            if outages_done == OUTAGES.len() && open_count(&counts) == 0 {
                break true;
            }
            if let Some((share, mode, down)) = OUTAGES.get(outages_done)
                && cleared as f64 >= share * USERS as f64
            {
                if open_count(&counts) == 0 {
                    problems.push(format!(
                        "harness: the drain ended before outage {} could happen: {counts:?}",
                        outages_done + 1
                    ));
                    break true;
                }
                let at = started.elapsed();
                tokio::task::block_in_place(|| cluster.stop_server(mode));
                tokio::time::sleep(*down).await;
                tokio::task::block_in_place(|| cluster.start_server());
                back_up = Instant::now();
                outage_notes.push(format!(
                    "outage {}: -m {mode} at {:.1}s with {cleared} cleared, down {down:?}",
                    outages_done + 1,
                    at.as_secs_f64()
                ));
                outages_done += 1;
                continue;
            }
            last_counts = counts;
        }
        // Since the start, or since the database came back.
        if back_up.elapsed() > Duration::from_secs(60) {
            problems.push(format!(
                "requests still open 60s after the start or the last outage ({} of {} outages done): {last_counts:?}",
                outages_done,
                OUTAGES.len()
            ));
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let duration = started.elapsed();
    let alive = daemon.exited().is_none();
    let log = daemon.log_text();
    drop(daemon);

    // The requests as they ended.
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect after the run");
    let requests: Vec<(i64, String, String, i32, Option<String>)> =
        sqlx::query_as("SELECT id, user_id, state, attempts, last_error FROM offboarding_requests ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("read requests");
    let count = |s: &str| requests.iter().filter(|r| r.2 == s).count();
    // §3.8: no call timed out or broke here, so every call has its audit row, written or
    // not by a worker that still held the lease. Per token: calls seen by the simulator
    // against audit rows that carry an HTTP status.
    let audit = open_store(&url).await.audit_rows(None, None).await.expect("read audit");
    let mut calls = 0;
    let mut unrecorded: Vec<String> = Vec::new();
    for ((user, value), id) in values.iter().zip(&ids) {
        let sent = sim.calls_for(value);
        let recorded = audit
            .iter()
            .filter(|a| a.token_id == *id && a.http_status.is_some())
            .count();
        calls += sent;
        if sent > recorded {
            unrecorded.push(format!(
                "  token {id} of {user}: {sent} call(s), {recorded} audit row(s) with a status"
            ));
        }
    }
    // The daemon's own words about the database (sqlx's slow-acquire notice does not count).
    let outage_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| l.contains("database") && !l.contains("slow threshold"))
        .collect();
    let summary = format!(
        "pg restart summary: {USERS} users, {} tokens, duration {:.1}s, {}; requests cleared {} / failed {} / open {}; \
         daemon alive {alive}; calls {calls}, audit rows {}, tokens with unrecorded calls {}; {} outage log line(s)",
        values.len(),
        duration.as_secs_f64(),
        outage_notes.join("; "),
        count("cleared"),
        count("failed"),
        count("pending") + count("running"),
        audit.len(),
        unrecorded.len(),
        outage_lines.len()
    );
    println!("{summary}");
    // Each distinct warning or error once, without its timestamp, spans and numbers.
    let mut seen = std::collections::BTreeSet::new();
    for line in log.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")) {
        let message = line.rsplit_once("}: ").map_or(line, |(_, m)| m);
        let key: String = message.chars().filter(|c| !c.is_ascii_digit()).take(80).collect();
        if seen.insert(key) {
            println!("  {}", line.trim());
        }
    }

    if finished && !alive {
        problems.push(format!(
            "the daemon exited after the drain; its log ends:\n{}",
            tail(&log, 20)
        ));
    }
    if requests.len() != USERS {
        problems.push(format!("{} requests, {USERS} enqueued", requests.len()));
    }
    let not_cleared: Vec<String> = requests
        .iter()
        .filter(|r| r.2 != "cleared")
        .map(|r| {
            format!(
                "  request {} ({}) {} after {} attempt(s): {:?}",
                r.0, r.1, r.2, r.3, r.4
            )
        })
        .collect();
    if !not_cleared.is_empty() {
        problems.push(format!(
            "{} request(s) not cleared (failed {}); first ones:\n{}",
            not_cleared.len(),
            count("failed"),
            not_cleared.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    let alive_tokens = values
        .iter()
        .filter(|(user, value)| {
            requests.iter().any(|r| &r.1 == user && r.2 == "cleared") && sim.is_revoked(value) != Some(true)
        })
        .count();
    if alive_tokens > 0 {
        problems.push(format!(
            "{alive_tokens} token(s) of cleared users still alive at the simulator"
        ));
    }
    if !unrecorded.is_empty() {
        problems.push(format!(
            "{} token(s) have calls that got an answer but no audit row (DESIGN.md §3.8):\n{}",
            unrecorded.len(),
            unrecorded.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
        ));
    }
    if outages_done == OUTAGES.len() && outage_lines.is_empty() {
        problems.push(format!(
            "the daemon logged no warning about the database outages; its log ends:\n{}",
            tail(&log, 20)
        ));
    }
    if !problems.is_empty() {
        panic!(
            "{summary}\n\n{}\n\nPostgreSQL log ends:\n{}",
            problems.join("\n\n"),
            tail(&cluster.server_log(), 10)
        );
    }
}
