//! Issue 11: the tamper-evident audit chain on both backends. Rows written by real drains
//! against simulated providers (and an operator's cancel), then edited, deleted, reordered
//! or inserted directly in the database, with the append-only triggers dropped as an
//! attacker with the database's credentials could: `offboard audit verify` (the binary)
//! names the first bad row each time and exits 1, and exits 0 on an untouched chain. On
//! PostgreSQL, three workers and an operator appending at once leave one unbroken chain.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use offboard::provider::dialect::Dialect;
use offboard::simulate::SimProvider;
use offboard::storage::{ChainCheck, Store};
use offboard::token::TokenType;
use tokio_util::sync::CancellationToken;

use crate::end_to_end::Fixture;
use crate::helpers::{Daemon, TestDb, exec, exec_built, on_both_backends};

on_both_backends!(
    an_untouched_chain_verifies_and_contains_its_anchor,
    an_edited_middle_row_is_named,
    a_changed_user_id_is_named,
    a_deleted_middle_row_is_named_as_a_gap,
    reordered_rows_are_named_at_the_first,
    a_deleted_last_row_is_found_against_the_head,
    a_row_inserted_outside_the_chain_is_named,
    the_daemons_check_follows_new_rows_and_finds_a_change,
    the_daemon_reports_a_broken_chain_in_its_metrics,
);

const USERS: usize = 6;

/// A drained database: `USERS` users with two tokens each at two providers, one more user
/// whose request an operator cancelled. Every row of `revocation_audit` is then chained.
async fn drained(db: TestDb) -> (Fixture, tempfile::TempDir) {
    let sim = vec![
        SimProvider::new("moov", Dialect::Moov),
        SimProvider::new("stitch", Dialect::Stitch),
    ];
    let f = Fixture::new(db, sim, "").await;
    for i in 0..USERS {
        let user = format!("chain-{i}");
        f.seed(&user, "moov", TokenType::AccessToken).await;
        f.seed(&user, "stitch", TokenType::RefreshToken).await;
        f.enqueue(&user).await;
    }
    f.drain_until_settled().await;
    let id = f.enqueue("cancelled-user").await;
    f.store().cancel(id, "an operator", Some("ticket 7")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    (f, dir)
}

/// Runs `offboard --config … audit ARGS` against the fixture's database.
fn offboard(f: &Fixture, dir: &tempfile::TempDir, args: &[&str]) -> Output {
    let config: PathBuf = dir.path().join("offboard.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", f.db.url)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(&config)
        .arg("audit")
        .args(args)
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn number(store: &Store, sql: String) -> i64 {
    offboard::storage::seed::scalar(store, Box::leak(sql.into_boxed_str()))
        .await
        .unwrap()
}

/// The table id of the row at chain position `seq`.
async fn id_at(f: &Fixture, seq: i64) -> i64 {
    number(
        f.store(),
        format!("SELECT id FROM revocation_audit WHERE chain_seq = {seq}"),
    )
    .await
}

/// Drops the append-only triggers, as someone with the database's credentials could.
async fn unprotect(f: &Fixture) {
    if f.db.url.starts_with("postgres") {
        exec(
            f.store(),
            "ALTER TABLE revocation_audit DISABLE TRIGGER revocation_audit_append_only",
        )
        .await
        .unwrap();
    } else {
        exec(f.store(), "DROP TRIGGER revocation_audit_no_update")
            .await
            .unwrap();
        exec(f.store(), "DROP TRIGGER revocation_audit_no_delete")
            .await
            .unwrap();
    }
}

/// Verifies, expecting a broken chain: exit 1, the output naming `expected`.
fn assert_broken(f: &Fixture, dir: &tempfile::TempDir, expected: &str) {
    let out = offboard(f, dir, &["verify"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("audit chain BROKEN"), "{said}");
    assert!(said.contains(expected), "expected {expected:?} in: {said}");
}

async fn an_untouched_chain_verifies_and_contains_its_anchor(db: TestDb) {
    let (f, dir) = drained(db).await;
    let rows = f.count("SELECT count(*) FROM revocation_audit").await;
    // Two attempts a user at least, and the operator's note.
    assert!(rows > 2 * USERS as i64, "{rows} audit rows");
    // Every row has a position, and the positions are 1..=rows.
    let chained = f
        .count("SELECT count(DISTINCT chain_seq) FROM revocation_audit WHERE chain_seq IS NOT NULL")
        .await;
    assert_eq!(chained, rows);
    assert_eq!(f.count("SELECT max(chain_seq) FROM revocation_audit").await, rows);

    let out = offboard(&f, &dir, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("audit chain intact: {rows} rows, head {rows}:")),
        "{}",
        text(&out)
    );

    let anchor = offboard(&f, &dir, &["anchor"]);
    assert_eq!(anchor.status.code(), Some(0), "{}", text(&anchor));
    let line = String::from_utf8(anchor.stdout).unwrap();
    let (at, head) = line.trim().split_once(' ').expect("TIME SEQ:HASH");
    chrono::DateTime::parse_from_rfc3339(at).expect("an RFC 3339 time");
    assert!(head.starts_with(&format!("{rows}:")), "{line}");
    let json = offboard(&f, &dir, &["anchor", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["seq"], rows);
    assert_eq!(json["anchor"], head);

    // The anchor is found; one with the wrong hash, or beyond the end, is not.
    let out = offboard(&f, &dir, &["verify", "--anchor", head]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let wrong = format!("{}:{}", rows - 1, "0".repeat(64));
    let out = offboard(&f, &dir, &["verify", "--anchor", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("row seq {} (id", rows - 1)),
        "{}",
        text(&out)
    );
    let beyond = format!("{}:{}", rows + 5, "0".repeat(64));
    let out = offboard(&f, &dir, &["verify", "--anchor", &beyond]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("before the anchor's seq"), "{}", text(&out));

    // Usage errors are 2, not "broken".
    let out = offboard(&f, &dir, &["verify", "--anchor", "nonsense"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

async fn an_edited_middle_row_is_named(db: TestDb) {
    let (f, dir) = drained(db).await;
    unprotect(&f).await;
    let middle = f.count("SELECT max(chain_seq) FROM revocation_audit").await / 2;
    let id = id_at(&f, middle).await;
    let edited = exec_built(
        f.store(),
        format!("UPDATE revocation_audit SET outcome = 'failed', settled = false WHERE chain_seq = {middle}"),
    )
    .await
    .unwrap();
    assert_eq!(edited, 1);
    assert_broken(&f, &dir, &format!("row seq {middle} (id {id}) was changed"));

    let out = offboard(&f, &dir, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["intact"], false);
    assert_eq!(json["fault"]["kind"], "changed");
    assert_eq!(json["fault"]["seq"], middle);
    assert_eq!(json["fault"]["id"], id);
}

async fn a_changed_user_id_is_named(db: TestDb) {
    let (f, dir) = drained(db).await;
    unprotect(&f).await;
    let middle = f.count("SELECT max(chain_seq) FROM revocation_audit").await / 2;
    let id = id_at(&f, middle).await;
    exec_built(
        f.store(),
        format!("UPDATE revocation_audit SET user_id = 'someone-else' WHERE chain_seq = {middle}"),
    )
    .await
    .unwrap();
    assert_broken(
        &f,
        &dir,
        &format!("row seq {middle} (id {id}) was changed: its user_id"),
    );
    // Replacing the id with the reference the chain covers (pseudonymizing it) is no break.
    exec_built(
        f.store(),
        format!("UPDATE revocation_audit SET user_id = user_ref WHERE chain_seq = {middle}"),
    )
    .await
    .unwrap();
    let out = offboard(&f, &dir, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

async fn a_deleted_middle_row_is_named_as_a_gap(db: TestDb) {
    let (f, dir) = drained(db).await;
    unprotect(&f).await;
    let middle = f.count("SELECT max(chain_seq) FROM revocation_audit").await / 2;
    let next = id_at(&f, middle + 1).await;
    exec_built(
        f.store(),
        format!("DELETE FROM revocation_audit WHERE chain_seq = {middle}"),
    )
    .await
    .unwrap();
    assert_broken(
        &f,
        &dir,
        &format!(
            "row seq {middle} is missing (deleted, or taken out of the chain): the chain goes from seq {} to seq {} (id {next})",
            middle - 1,
            middle + 1
        ),
    );
}

async fn reordered_rows_are_named_at_the_first(db: TestDb) {
    let (f, dir) = drained(db).await;
    unprotect(&f).await;
    let a = f.count("SELECT max(chain_seq) FROM revocation_audit").await / 2 - 1;
    let b = a + 2;
    let moved = id_at(&f, b).await;
    // Swap the chain positions of rows a and b (through a free value: the index is unique).
    for sql in [
        format!("UPDATE revocation_audit SET chain_seq = -1 WHERE chain_seq = {a}"),
        format!("UPDATE revocation_audit SET chain_seq = {a} WHERE chain_seq = {b}"),
        format!("UPDATE revocation_audit SET chain_seq = {b} WHERE chain_seq = -1"),
    ] {
        assert_eq!(exec_built(f.store(), sql).await.unwrap(), 1);
    }
    assert_broken(
        &f,
        &dir,
        &format!("row seq {a} (id {moved}) does not follow row seq {}", a - 1),
    );
}

async fn a_deleted_last_row_is_found_against_the_head(db: TestDb) {
    let (f, dir) = drained(db).await;
    unprotect(&f).await;
    let last = f.count("SELECT max(chain_seq) FROM revocation_audit").await;
    exec_built(
        f.store(),
        format!("DELETE FROM revocation_audit WHERE chain_seq = {last}"),
    )
    .await
    .unwrap();
    assert_broken(
        &f,
        &dir,
        &format!(
            "rows seq {last} to {last} are missing (deleted): the chain ends at seq {}",
            last - 1
        ),
    );
}

async fn a_row_inserted_outside_the_chain_is_named(db: TestDb) {
    let (f, dir) = drained(db).await;
    let request = f.count("SELECT max(id) FROM offboarding_requests").await;
    // No trigger stops an insert: a row without a chain position.
    exec_built(
        f.store(),
        format!(
            "INSERT INTO revocation_audit (request_id, user_id, action, settled, duration_ms, worker, attempted_at)
             VALUES ({request}, 'forged', 'retry', false, 0, 'nobody', '2026-01-01T00:00:00Z')"
        ),
    )
    .await
    .unwrap();
    let id = f.count("SELECT max(id) FROM revocation_audit").await;
    assert_broken(&f, &dir, &format!("row id {id} has no chain position"));
}

/// The daemon's incremental check: all rows at first, then only the new ones, and a
/// change in a new row makes it broken for good.
async fn the_daemons_check_follows_new_rows_and_finds_a_change(db: TestDb) {
    let (f, _dir) = drained(db).await;
    let mut check = ChainCheck::default();
    check.check(f.store()).await.unwrap();
    let rows = f.count("SELECT count(*) FROM revocation_audit").await;
    assert_eq!((check.broken(), check.rows()), (false, rows as u64));

    let id = f.enqueue("late-user").await;
    f.store().cancel(id, "an operator", None).await.unwrap();
    check.check(f.store()).await.unwrap();
    assert_eq!((check.broken(), check.rows()), (false, rows as u64 + 1));

    unprotect(&f).await;
    let id = f.enqueue("later-user").await;
    f.store().cancel(id, "an operator", None).await.unwrap();
    exec(
        f.store(),
        "UPDATE revocation_audit SET error = 'edited' WHERE chain_seq = (SELECT max(chain_seq) FROM revocation_audit)",
    )
    .await
    .unwrap();
    check.check(f.store()).await.unwrap();
    assert!(check.broken(), "a changed new row went unnoticed");
    assert_eq!(check.rows(), rows as u64 + 1);

    // The loop `offboard run` starts reports the same through its callback.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (stop, sink) = (CancellationToken::new(), seen.clone());
    let store = f.store().clone();
    let watch = tokio::spawn({
        let stop = stop.clone();
        async move {
            store
                .watch_audit_chain(std::time::Duration::from_millis(20), stop, move |c| {
                    *sink.lock().unwrap() = Some(c.broken());
                })
                .await
        }
    });
    for _ in 0..200 {
        if seen.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.cancel();
    watch.await.unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(true));
}

/// `offboard run` checks the chain at start and says so on `/metrics`: every row counted
/// while it is intact, and broken (with the row logged) once one was edited.
async fn the_daemon_reports_a_broken_chain_in_its_metrics(db: TestDb) {
    let (f, dir) = drained(db).await;
    let rows = f.count("SELECT count(*) FROM revocation_audit").await;
    let metrics = |daemon_dir: &str| {
        let config = dir.path().join(format!("{daemon_dir}.toml"));
        let text = format!(
            "[database]\nurl = \"{}\"\n[worker]\nschedule = \"0 0 0 1 1 *\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
            f.db.url
        );
        std::fs::write(&config, text).unwrap();
        Daemon::spawn(&config, &[], dir.path().join(format!("{daemon_dir}.log")))
    };
    let scrape = async |daemon: &Daemon, want: &str| -> String {
        for _ in 0..300 {
            let log = daemon.log_text();
            if let Some((_, addr)) = log.split_once("serving /healthz, /readyz and /metrics address=") {
                let addr = addr.lines().next().unwrap().trim();
                let body = reqwest::get(format!("http://{addr}/metrics"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                if body.contains(want) {
                    return body;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "no {want:?} on /metrics; log: {}",
            crate::helpers::tail(&daemon.log_text(), 20)
        );
    };

    let intact = metrics("intact");
    let body = scrape(&intact, &format!("offboard_audit_chain_rows {rows}\n")).await;
    assert!(body.contains("offboard_audit_chain_broken 0\n"), "{body}");
    drop(intact);

    unprotect(&f).await;
    exec(
        f.store(),
        "UPDATE revocation_audit SET worker = 'someone' WHERE chain_seq = 2",
    )
    .await
    .unwrap();
    let broken = metrics("broken");
    scrape(&broken, "offboard_audit_chain_broken 1\n").await;
    let log = broken.log_text();
    assert!(log.contains("audit chain broken: row seq 2 (id"), "{log}");
}

/// Three workers drain one backlog together on PostgreSQL while an operator cancels
/// requests: one chain covers every row, and it verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_and_an_operator_writing_at_once_leave_one_intact_chain() {
    let sim = vec![SimProvider::new("moov", Dialect::Moov)];
    let small = "[worker]\nconcurrency = 4\nbatch_size = 2\n";
    let f = Fixture::new(TestDb::postgres().await, sim, small).await;
    const MANY: usize = 90;
    for i in 0..MANY {
        let user = format!("busy-{i}");
        f.seed(&user, "moov", TokenType::AccessToken).await;
        f.seed(&user, "moov", TokenType::RefreshToken).await;
        f.enqueue(&user).await;
    }
    let workers = [f.worker.clone(), f.another_worker(""), f.another_worker("")];
    let mut drains = tokio::task::JoinSet::new();
    for worker in workers {
        drains.spawn(async move { worker.drain(&CancellationToken::new()).await.map(|_| ()) });
    }
    // The operator appends notes meanwhile (the head is locked before the request row).
    let store = f.store().clone();
    drains.spawn(async move {
        for i in 0..20 {
            let id = store.enqueue(&format!("walk-in-{i}"), None, None).await?.request.id;
            store.cancel(id, "an operator", Some("duplicate")).await?;
        }
        Ok(())
    });
    while let Some(done) = drains.join_next().await {
        done.unwrap()
            .expect("no drain or cancel failed (no deadlock, no lost head)");
    }
    f.drain_until_settled().await;

    let workers_seen = f
        .count("SELECT count(DISTINCT worker) FROM revocation_audit WHERE action = 'revoke'")
        .await;
    assert!(
        workers_seen >= 2,
        "{workers_seen} workers wrote: they did not drain together"
    );
    let rows = f.count("SELECT count(*) FROM revocation_audit").await;
    assert!(rows >= (2 * MANY + 20) as i64, "{rows} rows");
    assert_eq!(
        f.count("SELECT count(*) FROM revocation_audit WHERE chain_seq IS NULL")
            .await,
        0
    );
    assert_eq!(f.count("SELECT max(chain_seq) FROM revocation_audit").await, rows);
    let report = f.store().verify_audit_chain(None, None).await.unwrap();
    assert!(report.intact(), "{:?}", report.fault);
    assert_eq!(report.rows, rows as u64);
    assert_eq!(report.head.seq, rows);

    let dir = tempfile::tempdir().unwrap();
    let out = offboard(&f, &dir, &["verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// A config that cannot be read, or a database that cannot be reached, is "not checked"
/// (2), never "intact" or "broken".
#[test]
fn verify_exits_2_when_it_cannot_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = |body: &str| {
        let config = dir.path().join("c.toml");
        std::fs::write(&config, body).unwrap();
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .args(["audit", "verify"])
            .env_remove("OFFBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let bad = run("[worker]\nconcurrency = \"lots\"\n");
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let away = run("[database]\nurl = \"postgres://nobody@127.0.0.1:1/none\"\nconnect_timeout = \"1s\"\n");
    assert_eq!(away.status.code(), Some(2), "{}", text(&away));
    assert!(text(&away).starts_with("error: "), "{}", text(&away));
}

/// SQLite stores any value in any column: a row whose time is no longer a time is named
/// as broken (1), not taken for a database error (2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_row_is_named_as_broken() {
    let (f, dir) = drained(TestDb::sqlite().await).await;
    unprotect(&f).await;
    let id = id_at(&f, 3).await;
    exec(
        f.store(),
        "UPDATE revocation_audit SET attempted_at = 'last tuesday' WHERE chain_seq = 3",
    )
    .await
    .unwrap();
    assert_broken(&f, &dir, &format!("row seq 3 (id {id}) cannot be read"));
}
