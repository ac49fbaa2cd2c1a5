//! `offboard report` and `offboard status` from the binary, on both backends: the report's
//! filters select exactly the rows they name, alone and together; its CSV reads back with
//! the csv crate (an error text holding a comma, quotes and a line break included) and its
//! JSON Lines parse; a bad time is refused clearly; a reader that goes away ends it quietly.
//! Status counts what the table holds, names the oldest pending request and the failures
//! with their reasons, and shows one request with its audit rows. No token value reaches
//! any of it.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use offboard::provider::dialect::Dialect;
use offboard::simulate::Behaviour;
use offboard::token::TokenType;

use crate::end_to_end::{Fixture, provider};
use crate::helpers::{TestDb, exec_built, on_both_backends, scalar};

on_both_backends!(
    filters_select_exactly_the_matching_rows_and_both_formats_read_back,
    a_reader_that_goes_away_ends_the_report_quietly,
    status_and_report_tell_the_runs_story_without_a_token_value,
);

/// One audit row the test writes, and what the report must say of it.
struct Row {
    request: i64,
    user: &'static str,
    /// `None`: an operator's note (a retry), with no token.
    token: Option<(i64, &'static str, &'static str)>,
    outcome: Option<&'static str>,
    http_status: Option<i32>,
    error: Option<&'static str>,
    at: &'static str,
}

/// An error as providers write them: a comma, quotes, a line break.
const AWKWARD: &str = "invalid_client, \"client authentication failed\"\nsee https://docs.example/errors";

const ROWS: [Row; 7] = [
    Row {
        request: 1,
        user: "u1",
        token: Some((11, "acme", "access_token")),
        outcome: Some("transient"),
        http_status: Some(503),
        error: Some("HTTP 503"),
        at: "2026-01-01T10:00:00.000+00:00",
    },
    Row {
        request: 1,
        user: "u1",
        token: Some((11, "acme", "access_token")),
        outcome: Some("revoked"),
        http_status: Some(200),
        error: None,
        at: "2026-01-01T11:00:00.000+00:00",
    },
    Row {
        request: 1,
        user: "u1",
        token: Some((12, "moov", "refresh_token")),
        outcome: Some("revoked"),
        http_status: Some(204),
        error: None,
        at: "2026-01-02T00:00:00.000+00:00",
    },
    Row {
        request: 2,
        user: "u2",
        token: Some((21, "moov", "access_token")),
        outcome: Some("failed"),
        http_status: Some(400),
        error: Some(AWKWARD),
        at: "2026-01-02T12:00:00.250+00:00",
    },
    Row {
        request: 2,
        user: "u2",
        token: None,
        outcome: None,
        http_status: None,
        error: Some("ticket 7, per \"alice\""),
        at: "2026-01-03T00:00:00.000+00:00",
    },
    Row {
        request: 2,
        user: "u2",
        token: Some((21, "moov", "access_token")),
        outcome: Some("failed"),
        http_status: Some(400),
        error: Some(AWKWARD),
        at: "2026-01-04T00:00:00.000+00:00",
    },
    Row {
        request: 3,
        user: "u3",
        token: Some((31, "acme", "access_token")),
        outcome: Some("revoked"),
        http_status: Some(200),
        error: None,
        at: "2026-01-05T00:00:00.000+00:00",
    },
];

const HEADER: [&str; 19] = [
    "request_id",
    "user_id",
    "token_id",
    "provider",
    "token_type",
    "token_fingerprint",
    "attempt",
    "outcome",
    "settled",
    "http_status",
    "provider_request_id",
    "error",
    "duration_ms",
    "worker",
    "attempted_at",
    "verified",
    "verified_by",
    "action",
    "audit_id",
];

fn quoted(v: Option<&str>) -> String {
    v.map_or("NULL".to_owned(), |v| format!("'{}'", v.replace('\'', "''")))
}

/// Writes the requests and [`ROWS`] straight into the tables, in order (ids 1, 2, …).
async fn write_rows(db: &TestDb) {
    exec_built(
        &db.store,
        "INSERT INTO offboarding_requests (id, user_id, state, attempts, last_error, requested_at, updated_at, \
         cleared_at) VALUES \
         (1, 'u1', 'cleared', 2, NULL, '2026-01-01T09:00:00.000+00:00', '2026-01-02T00:00:00.000+00:00', \
          '2026-01-02T00:00:00.000+00:00'), \
         (2, 'u2', 'failed', 2, 'moov: invalid_client', '2026-01-02T09:00:00.000+00:00', \
          '2026-01-04T00:00:00.000+00:00', NULL), \
         (3, 'u3', 'cleared', 1, NULL, '2026-01-05T00:00:00.000+00:00', '2026-01-05T00:00:00.000+00:00', \
          '2026-01-05T00:00:00.000+00:00')"
            .to_owned(),
    )
    .await
    .unwrap();
    for r in &ROWS {
        let sql = match r.token {
            Some((token, provider, ty)) => format!(
                "INSERT INTO revocation_audit (request_id, user_id, action, token_id, provider, token_type, \
                 token_fingerprint, attempt, outcome, settled, http_status, provider_request_id, error, duration_ms, \
                 worker, attempted_at) VALUES ({}, '{}', 'revoke', {token}, '{provider}', '{ty}', 'sha256:{token:032x}', \
                 1, '{}', {}, {}, 'prq-{token}', {}, 42, 'w1', '{}')",
                r.request,
                r.user,
                r.outcome.unwrap(),
                matches!(r.outcome, Some("revoked")),
                r.http_status.unwrap(),
                quoted(r.error),
                r.at
            ),
            None => format!(
                "INSERT INTO revocation_audit (request_id, user_id, action, settled, error, duration_ms, worker, \
                 attempted_at) VALUES ({}, '{}', 'retry', false, {}, 0, 'alice', '{}')",
                r.request,
                r.user,
                quoted(r.error),
                r.at
            ),
        };
        exec_built(&db.store, sql).await.unwrap();
    }
}

fn config_file(dir: &Path, db_url: &str) -> PathBuf {
    let path = dir.join("offboard.toml");
    std::fs::write(&path, format!("[database]\nurl = \"{db_url}\"\n")).unwrap();
    path
}

fn offboard(config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_offboard"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs the command; its stdout, after checking it succeeded.
fn ok(config: &Path, args: &[&str]) -> String {
    let out = offboard(config, args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The CSV report's records (header checked), by the csv crate.
fn csv_records(text: &str) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, HEADER, "{text}");
    reader.records().map(|r| r.expect("a well-formed CSV record")).collect()
}

/// The audit ids of a CSV report (1-based, as written).
fn csv_ids(text: &str) -> Vec<usize> {
    csv_records(text).iter().map(|r| r[18].parse().unwrap()).collect()
}

async fn filters_select_exactly_the_matching_rows_and_both_formats_read_back(db: TestDb) {
    write_rows(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &db.url);

    let ids = |keep: &dyn Fn(&Row) -> bool| -> Vec<usize> {
        ROWS.iter()
            .enumerate()
            .filter(|(_, r)| keep(r))
            .map(|(k, _)| k + 1)
            .collect()
    };
    let cases: Vec<(Vec<&str>, Vec<usize>)> = vec![
        (vec![], ids(&|_| true)),
        (vec!["--user", "u1"], ids(&|r| r.user == "u1")),
        (
            vec!["--provider", "moov"],
            ids(&|r| r.token.is_some_and(|t| t.1 == "moov")),
        ),
        (vec!["--outcome", "revoked"], ids(&|r| r.outcome == Some("revoked"))),
        (vec!["--request", "2"], ids(&|r| r.request == 2)),
        // Inclusive since, exclusive until; an offset is converted to UTC.
        (
            vec!["--since", "2026-01-01T11:00:00Z", "--until", "2026-01-04T00:00:00Z"],
            ids(&|r| r.at >= "2026-01-01T11" && r.at < "2026-01-04"),
        ),
        (
            vec!["--since", "2026-01-02T13:00:00.250+01:00"],
            ids(&|r| r.at >= "2026-01-02T12:00:00.250"),
        ),
        (vec!["--until", "2026-01-02"], ids(&|r| r.at < "2026-01-02")),
        (
            vec![
                "--provider",
                "moov",
                "--outcome",
                "failed",
                "--since",
                "2026-01-03T00:00:00Z",
            ],
            ids(&|r| r.token.is_some_and(|t| t.1 == "moov") && r.outcome == Some("failed") && r.at >= "2026-01-03"),
        ),
        (
            vec!["--user", "u1", "--provider", "moov"],
            ids(&|r| r.user == "u1" && r.token.is_some_and(|t| t.1 == "moov")),
        ),
        // Values are bound, not spliced into the SQL: a quote is just a character.
        (vec!["--user", "u1' OR '1'='1"], vec![]),
        (vec!["--user", "nobody"], vec![]),
    ];
    for (args, expected) in &cases {
        let mut all = vec!["report"];
        all.extend(args);
        assert_eq!(&csv_ids(&ok(&config, &all)), expected, "report {args:?}");
        all.extend(["--format", "jsonl"]);
        let jsonl = ok(&config, &all);
        let from_json: Vec<usize> = jsonl
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
                v["audit_id"].as_u64().unwrap() as usize
            })
            .collect();
        assert_eq!(&from_json, expected, "report {args:?} --format jsonl");
    }

    // Every value reads back as written, the awkward error text included.
    let csv = ok(&config, &["report"]);
    let records = csv_records(&csv);
    assert_eq!(records.len(), ROWS.len());
    for (record, row) in records.iter().zip(&ROWS) {
        assert_eq!(&record[0], row.request.to_string(), "{record:?}");
        assert_eq!(&record[1], row.user);
        assert_eq!(&record[7], row.outcome.unwrap_or(""));
        assert_eq!(&record[9], row.http_status.map(|s| s.to_string()).unwrap_or_default());
        assert_eq!(&record[11], row.error.unwrap_or(""), "{record:?}");
        assert_eq!(&record[14][..19], &row.at[..19]);
        assert!(record[14].ends_with('Z'), "{record:?}");
        match row.token {
            Some((token, provider, ty)) => {
                assert_eq!(&record[2], token.to_string());
                assert_eq!(&record[3], provider);
                assert_eq!(&record[4], ty);
                assert_eq!(&record[5], format!("sha256:{token:032x}"));
                assert_eq!(&record[10], format!("prq-{token}"));
                assert_eq!(&record[17], "revoke");
            }
            None => {
                assert_eq!((&record[2], &record[3], &record[17]), ("", "", "retry"));
                assert_eq!(&record[13], "alice");
            }
        }
    }
    assert!(
        csv.contains(&AWKWARD.replace('"', "\"\"")),
        "quoted as RFC 4180 says: {csv}"
    );

    let jsonl = ok(&config, &["report", "--format", "jsonl", "--request", "2"]);
    let lines: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{jsonl}");
    assert_eq!(lines[0]["error"], AWKWARD);
    assert_eq!(lines[0]["http_status"], 400);
    assert_eq!(lines[0]["settled"], false);
    assert_eq!(lines[1]["action"], "retry");
    assert_eq!(lines[1]["token_id"], serde_json::Value::Null);
    assert_eq!(lines[1]["worker"], "alice");

    // --output writes the same bytes to a file, and nothing to stdout.
    let file = dir.path().join("out.csv");
    let printed = ok(&config, &["report", "--output", file.to_str().unwrap()]);
    assert_eq!(printed, "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), csv);

    // Bad input: a clear message, a non-zero exit, no partial report.
    for (args, says) in [
        (
            vec!["report", "--since", "last tuesday"],
            "invalid value 'last tuesday' for '--since <TIME>': 'last tuesday' is not an RFC 3339 time",
        ),
        (
            vec!["report", "--until", "2026-02-30T00:00:00Z"],
            "invalid value '2026-02-30T00:00:00Z' for '--until <TIME>'",
        ),
        (
            vec!["report", "--outcome", "deleted"],
            "unknown outcome 'deleted' (known: revoked, already_invalid, not_revocable, transient, failed",
        ),
        (
            vec![
                "report",
                "--since",
                "2026-01-05T00:00:00Z",
                "--until",
                "2026-01-01T00:00:00Z",
            ],
            "error: --since (2026-01-05T00:00:00.000Z) must be before --until (2026-01-01T00:00:00.000Z)",
        ),
    ] {
        let out = offboard(&config, &args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(matches!(out.status.code(), Some(1 | 2)), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

async fn a_reader_that_goes_away_ends_the_report_quietly(db: TestDb) {
    db.store.fill_audit_rows(50_000, 100).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &db.url);
    // Each of the 100 requests has 500 audit rows: more than a pipe holds, so status
    // of one is still writing when the reader goes away.
    for args in [
        ["report", "--format", "csv"],
        ["report", "--format", "jsonl"],
        ["status", "--request", "1"],
        ["status", "1", "--json"],
    ] {
        let format = args.join(" ");
        // `offboard … | head -c 4096`
        let mut child = offboard(&config, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut head = [0_u8; 4096];
        stdout.read_exact(&mut head).unwrap();
        drop(stdout);
        let first = String::from_utf8_lossy(&head).into_owned();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {err}");
        // (PostgreSQL's notice about the migrations table may be logged; nothing else.)
        assert!(!err.contains("error") && !err.contains("panicked"), "{format}: {err}");
        if format == "report --format csv" {
            assert!(first.starts_with("request_id,user_id,"), "{first}");
        }
    }
    // The whole of it, for comparison, is every row.
    let all = ok(&config, &["report", "--format", "jsonl"]);
    assert_eq!(all.lines().count(), 50_000);
}

/// A real run against simulated providers: one user cleared, one whose provider refuses
/// the client (failed, with the reason), one whose provider echoes the token back in its
/// errors; then two users queued and not yet run.
async fn status_and_report_tell_the_runs_story_without_a_token_value(db: TestDb) {
    let broken = Behaviour {
        always_status: Some(401),
        ..Behaviour::default()
    };
    let echo = Behaviour {
        echo_fraction: 1.0,
        ..Behaviour::default()
    };
    let providers = vec![
        provider("good", Dialect::Rfc7009, Behaviour::default()),
        provider("broken", Dialect::Rfc7009, broken),
        provider("echo", Dialect::Moov, echo),
    ];
    let fast = "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\ndurable_base = \"10ms\"\n\
                durable_cap = \"20ms\"\n[worker]\nmax_attempts = 2\n";
    let f = Fixture::new(db, providers, fast).await;
    let mut values = Vec::new();
    for (user, p) in [("u-ok", "good"), ("u-bad", "broken"), ("u-echo", "echo")] {
        values.push(f.user_with(user, p, TokenType::AccessToken).await.value);
    }
    f.drain_until_settled().await;
    let late_1 = f.enqueue("u-late-1").await;
    f.enqueue("u-late-2").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    std::fs::write(&config, &f.text).unwrap();
    let mut outputs = Vec::new();

    let text = ok(&config, &["status"]);
    for state in ["pending", "running", "cleared", "failed", "cancelled"] {
        let sql = format!("SELECT count(*) FROM offboarding_requests WHERE state = '{state}'");
        let n = scalar(f.store(), Box::leak(sql.into_boxed_str())).await;
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(state));
        match line {
            Some(line) => assert_eq!(line.split_whitespace().nth(1), Some(n.to_string().as_str()), "{text}"),
            None => assert_eq!(n, 0, "{state} missing from:\n{text}"),
        }
    }
    assert!(
        text.contains(&format!("oldest pending: request {late_1} for user u-late-1, waiting ")),
        "{text}"
    );
    assert!(text.contains(", attempts 0, due now"), "{text}");
    let bad = f.latest("u-bad").await;
    let echoed = f.latest("u-echo").await;
    assert_eq!(bad.state.to_string(), "failed");
    assert!(text.contains("failures: 2:"), "{text}");
    let reason = bad.last_error.clone().expect("a reason");
    assert!(
        text.contains(&format!("  request {} for user u-bad, failed ", bad.id)) && text.contains(&reason),
        "{text}"
    );
    outputs.push(text);
    let limited = ok(&config, &["status", "--limit", "1"]);
    assert!(
        limited.contains("failures: 2, the latest 1 (--limit N for more):"),
        "{limited}"
    );
    assert_eq!(limited.matches("  request ").count(), 1, "{limited}");

    let json: serde_json::Value = serde_json::from_str(&ok(&config, &["status", "--json"])).unwrap();
    assert_eq!(json["counts"]["pending"], 2);
    assert_eq!(json["counts"]["cleared"], 1);
    assert_eq!(json["counts"]["failed"], 2);
    assert_eq!(json["counts"]["cancelled"], 0);
    assert_eq!(json["oldest_pending"]["id"], late_1);
    assert_eq!(json["oldest_pending"]["due"], true);
    let failed: BTreeSet<i64> = json["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(failed, BTreeSet::from([bad.id, echoed.id]));

    // One request in detail: its audit rows, as many as the table holds for it.
    let sql = format!("SELECT count(*) FROM revocation_audit WHERE request_id = {}", echoed.id);
    let audited = scalar(f.store(), Box::leak(sql.into_boxed_str())).await;
    assert!(audited >= 2, "two attempts at least: {audited}");
    for args in [
        vec!["status".to_owned(), echoed.id.to_string()],
        vec!["status".to_owned(), "--request".to_owned(), echoed.id.to_string()],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = ok(&config, &args);
        assert!(
            text.starts_with(&format!("request {}  user u-echo  failed  attempts ", echoed.id)),
            "{text}"
        );
        assert!(text.contains("  last error: "), "{text}");
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("    20")).collect();
        assert_eq!(rows.len() as i64, audited, "{text}");
        assert!(
            rows.iter().all(|l| l.contains(" transient") && l.contains("HTTP 503")),
            "{text}"
        );
        outputs.push(text);
    }
    let json: serde_json::Value =
        serde_json::from_str(&ok(&config, &["status", "--request", &echoed.id.to_string(), "--json"])).unwrap();
    let detail = &json["requests"][0];
    assert_eq!(detail["request"]["state"], "failed");
    assert_eq!(detail["audit"].as_array().unwrap().len() as i64, audited);
    assert!(
        detail["audit"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["request_id"] == echoed.id)
    );
    let out = offboard(&config, &["status", "--request", "999999"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).ends_with("\nerror: no request with id 999999\n")
            || String::from_utf8_lossy(&out.stderr) == "error: no request with id 999999\n"
    );

    outputs.push(ok(&config, &["status", "user:u-ok"]));
    outputs.push(ok(&config, &["report"]));
    outputs.push(ok(&config, &["report", "--format", "jsonl"]));
    outputs.push(ok(&config, &["status", "u-echo", "--json"]));
    for text in &outputs {
        for value in &values {
            assert!(!text.contains(value.as_str()), "a token value in the output:\n{text}");
        }
    }
    assert!(outputs.iter().any(|t| t.contains("u-echo")));
}
