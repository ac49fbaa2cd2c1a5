//! `offboard run` on SQLite, which has no notifications, finds a request enqueued while it
//! idles by its `worker.idle_poll`, not at the next tick of a schedule that fires once a day.

use std::time::{Duration, Instant};

use offboard::outcome::RequestState;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{SimProvider, Simulator};

use crate::helpers::{Daemon, TestDb, config_toml, tail};

async fn cleared_while_idle(idle_poll: Option<&str>) {
    let db = TestDb::sqlite().await;
    let sim = Simulator::start(
        ([127, 0, 0, 1], 0).into(),
        vec![SimProvider::new("acme", Dialect::Rfc7009)],
    )
    .await
    .unwrap();
    let poll = idle_poll.map_or(String::new(), |p| format!("idle_poll = \"{p}\"\n"));
    let extra = format!("[server]\nlisten = \"off\"\n[worker]\nschedule = \"0 0 3 * * *\"\n{poll}");
    let (text, env) = config_toml(&db.url, &sim, &extra);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    std::fs::write(&config, text).unwrap();
    let token = sim.issue("acme", offboard::token::TokenType::RefreshToken, None);
    offboard::storage::seed::insert_tokens(
        &db.store,
        &[offboard::storage::seed::NewToken {
            user_id: "u1".into(),
            provider: "acme".into(),
            token_type: offboard::token::TokenType::RefreshToken,
            value: offboard::token::TokenValue::new(token.clone()),
            grant_ref: None,
            expires_at: None,
        }],
    )
    .await
    .unwrap();
    let mut daemon = Daemon::spawn(&config, &env, dir.path().join("daemon.log"));
    // Past start-up and its first drain (nothing to do): the daemon now idles.
    let started = Instant::now();
    while !daemon.log_text().contains("offboard worker started") {
        assert!(daemon.exited().is_none(), "{}", tail(&daemon.log_text(), 20));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    db.store.enqueue("u1", Some("test"), None).await.unwrap();
    let enqueued = Instant::now();
    loop {
        let state = db.store.clearance("u1").await.unwrap().map(|r| r.state);
        if state == Some(RequestState::Cleared) {
            break;
        }
        assert!(
            enqueued.elapsed() < Duration::from_secs(20),
            "not cleared within 20 s (state {state:?}): {}",
            tail(&daemon.log_text(), 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sim.calls_for(&token), 1);
    daemon.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_enqueued_while_run_idles_on_sqlite_is_cleared_without_waiting_for_the_schedule() {
    cleared_while_idle(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_poll_is_configurable() {
    cleared_while_idle(Some("50ms")).await;
}
