//! `offboard evidence USER` from outside, on both backends, after a real run against
//! simulated providers on loopback: a token revoked and proven dead by introspection, one
//! that met 503s, then a 400 that failed the request, an operator's retry and a success; a
//! second request cancelled by an operator. The JSON is checked against the audit table row
//! for row and against `schemas/evidence.schema.json` (which refuses a document carrying a
//! token value or missing a required field); the HTML is opened in headless Chromium, which
//! shows the fingerprints, attempts and outcomes, takes a screenshot and prints a PDF; no
//! token value appears in either; markup from the database is escaped; an unknown user is an
//! error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use offboard::outcome::RequestState;
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator};
use offboard::storage::AuditRow;
use offboard::token::{Fingerprint, TokenType};
use serde_json::Value;

use crate::browser::{Chromium, file_url, output_dir};
use crate::end_to_end::{Fixture, Seeded};
use crate::helpers::{TestDb, config_toml, exec, exec_built, on_both_backends, scalar};
use crate::simulator_catalog::with_keys;

/// Two tries per claim; a request put back waits an hour (the test makes it due at once).
const RETRIES: &str = "[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\n\
                       durable_base = \"1h\"\ndurable_cap = \"1h\"\n";

const USER: &str = "grace.hopper";
const SCRIPT_USER: &str = "<script>alert('user')</script>";
const CANCEL_REASON: &str = "duplicate of #1 <script>alert('reason')</script>";

/// What the run left behind for the evidence to show.
struct Run {
    f: Fixture,
    dir: tempfile::TempDir,
    config: PathBuf,
    good: Seeded,
    flaky: Seeded,
    first: i64,
    second: i64,
}

impl Run {
    fn offboard(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("OFFBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run offboard")
    }

    /// `offboard evidence USER ARGS…`, which must succeed; its standard output.
    fn evidence(&self, user: &str, args: &[&str]) -> String {
        let mut all = vec!["evidence", user];
        all.extend_from_slice(args);
        let out = self.offboard(&all);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn values(&self) -> [&str; 2] {
        [self.good.value.as_str(), self.flaky.value.as_str()]
    }
}

/// The run: `good` (RFC 7009, checked by introspection) revokes at once; `flaky` (Moov, which
/// stamps every answer with `x-request-id`) answers 503 twice, then 400, which fails the
/// request; an operator retries it, `flaky` recovers and the request clears. Then a second
/// request for the user, cancelled by an operator with markup in the reason. And a user
/// whose id is markup, with no tokens.
async fn run(db: TestDb) -> Run {
    let flaky_down = Behaviour {
        always_status: Some(503),
        ..Behaviour::default()
    };
    let providers = vec![
        SimProvider::new("good", Dialect::Rfc7009),
        SimProvider {
            behaviour: flaky_down,
            ..SimProvider::new("flaky", Dialect::Moov)
        },
    ];
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), providers)
        .await
        .unwrap();
    let (text, env) = config_toml(&db.url, &sim, RETRIES);
    let text = with_keys(&text, "good", "verify = \"introspect\"\n");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    // The operator's and the auditor's commands need the database only.
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let f = Fixture::with_config(db, sim, text, env);

    let good = f.seed(USER, "good", TokenType::AccessToken).await;
    let flaky = f.seed(USER, "flaky", TokenType::RefreshToken).await;
    let first = f
        .store()
        .enqueue(USER, Some("privacy-office@example.com"), Some("GDPR-2026-042"))
        .await
        .unwrap()
        .request
        .id;
    f.drain().await;
    assert_eq!(f.state(USER).await, RequestState::Pending);

    f.sim.set_behaviour(
        "flaky",
        Behaviour {
            always_status: Some(400),
            ..Behaviour::default()
        },
    );
    exec(f.store(), "UPDATE offboarding_requests SET next_attempt_at = NULL")
        .await
        .unwrap();
    f.drain().await;
    assert_eq!(f.state(USER).await, RequestState::Failed);

    let mut run = Run {
        f,
        dir,
        config,
        good,
        flaky,
        first,
        second: 0,
    };
    let id = first.to_string();
    let out = run.offboard(&[
        "retry",
        &id,
        "--by",
        "alice@example.com",
        "--reason",
        "INC-7: credentials fixed",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run.f.sim.set_behaviour("flaky", Behaviour::default());
    run.f.drain_until_settled().await;
    assert_eq!(run.f.state(USER).await, RequestState::Cleared);

    run.second = run.f.store().enqueue(USER, Some("dpo"), None).await.unwrap().request.id;
    let id = run.second.to_string();
    let out = run.offboard(&["cancel", &id, "--by", "bob", "--reason", CANCEL_REASON]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    run.f.store().enqueue(SCRIPT_USER, None, None).await.unwrap();
    run.f.drain_until_settled().await;
    run
}

fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/evidence.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the shipped schema is a valid draft 2020-12 schema")
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Projection of an attempt, the same from the audit table and from the evidence.
type Seen = (i64, String, String, Option<i64>, Option<String>, String);

fn from_audit(r: &AuditRow) -> Seen {
    (
        r.request_id,
        r.token_fingerprint.clone(),
        r.outcome.to_string(),
        r.http_status.map(i64::from),
        r.provider_request_id.clone(),
        r.attempted_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn from_evidence(doc: &Value) -> Vec<Seen> {
    let mut seen = Vec::new();
    for request in doc["requests"].as_array().unwrap() {
        for token in request["tokens"].as_array().unwrap() {
            for a in token["attempts"].as_array().unwrap() {
                seen.push((
                    request["id"].as_i64().unwrap(),
                    token["fingerprint"].as_str().unwrap().to_owned(),
                    a["outcome"].as_str().unwrap().to_owned(),
                    a["http_status"].as_i64(),
                    a["provider_request_id"].as_str().map(str::to_owned),
                    a["attempted_at"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    seen
}

async fn evidence_shows_every_attempt_who_acted_and_no_token_value(db: TestDb) {
    let run = run(db).await;
    let json = run.evidence(USER, &[]);
    let doc: Value = serde_json::from_str(&json).expect("evidence is JSON");

    let validator = schema();
    assert_eq!(schema_errors(&validator, &doc), Vec::<String>::new(), "{json}");

    // Every attempt the audit holds for the user, with its time, status and request id.
    let mut audit: Vec<Seen> = run
        .f
        .store()
        .audit_rows(None, Some(USER))
        .await
        .unwrap()
        .iter()
        .map(from_audit)
        .collect();
    let mut shown = from_evidence(&doc);
    assert_eq!(audit.len(), 5, "{audit:?}");
    audit.sort();
    shown.sort();
    assert_eq!(shown, audit);

    assert_eq!(doc["user_id"], USER);
    assert_eq!(doc["summary"]["latest_request_id"], run.second);
    assert_eq!(doc["summary"]["latest_state"], "cancelled");
    assert_eq!(doc["summary"]["cleared"], false);
    assert_eq!(
        (
            &doc["summary"]["tokens"],
            &doc["summary"]["tokens_settled"],
            &doc["summary"]["attempts"]
        ),
        (&Value::from(2), &Value::from(2), &Value::from(5))
    );

    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first["id"], run.first);
    assert_eq!(first["state"], "cleared");
    assert_eq!(first["requested_by"], "privacy-office@example.com");
    assert_eq!(first["external_ref"], "GDPR-2026-042");
    let cleared_at = first["cleared_at"].as_str().expect("cleared at");
    assert!(cleared_at >= first["requested_at"].as_str().unwrap());

    let tokens = first["tokens"].as_array().unwrap();
    let good = &tokens[0];
    assert_eq!(good["fingerprint"], Fingerprint::of(&run.good.value).as_str());
    assert_eq!(good["token_id"], run.good.id);
    assert_eq!(
        (&good["provider"], &good["token_type"]),
        (&"good".into(), &"access_token".into())
    );
    assert_eq!(
        (&good["settled"], &good["final_outcome"]),
        (&true.into(), &"revoked".into())
    );
    let attempt = &good["attempts"][0];
    assert_eq!(attempt["http_status"], 200);
    assert_eq!(
        attempt["verification"],
        serde_json::json!({"dead": true, "method": "introspection"})
    );

    let flaky = &tokens[1];
    assert_eq!(flaky["fingerprint"], Fingerprint::of(&run.flaky.value).as_str());
    assert_eq!(
        (&flaky["provider"], &flaky["token_type"]),
        (&"flaky".into(), &"refresh_token".into())
    );
    let attempts = flaky["attempts"].as_array().unwrap();
    let outcomes: Vec<(&str, i64, bool)> = attempts
        .iter()
        .map(|a| {
            (
                a["outcome"].as_str().unwrap(),
                a["http_status"].as_i64().unwrap(),
                a["settled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("transient", 503, false),
            ("transient", 503, false),
            ("failed", 400, false),
            ("revoked", 204, true)
        ]
    );
    let times: Vec<&str> = attempts.iter().map(|a| a["attempted_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        attempts.iter().all(|a| a["provider_request_id"].is_string()),
        "{attempts:?}"
    );
    assert!(
        attempts[2]["error"].is_string(),
        "the failure's reason: {:?}",
        attempts[2]
    );
    assert_eq!(flaky["settled_at"], attempts[3]["attempted_at"]);
    assert!(flaky["settled_at"].as_str().unwrap() <= cleared_at);

    let notes = |r: &Value| -> Vec<(String, String, String)> {
        r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let s = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
                (s("action"), s("by"), s("reason"))
            })
            .collect()
    };
    let said = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        notes(first),
        [said("retry", "alice@example.com", "INC-7: credentials fixed")]
    );
    let second = &requests[1];
    assert_eq!(
        (&second["id"], &second["state"]),
        (&run.second.into(), &"cancelled".into())
    );
    assert_eq!(second["requested_by"], "dpo");
    assert_eq!(second["tokens"], serde_json::json!([]));
    assert_eq!(notes(second), [said("cancel", "bob", CANCEL_REASON)]);

    // The chain fields are all there or all absent, as the database has the chain or not.
    let recorded = doc["chain"]["recorded"].as_bool().unwrap();
    assert_eq!(doc["chain"]["verify_command"], "offboard audit verify");
    let rows = requests
        .iter()
        .flat_map(|r| {
            let attempts = r["tokens"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|t| t["attempts"].as_array().unwrap());
            attempts.chain(r["notes"].as_array().unwrap())
        })
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 7);
    for row in rows {
        assert_eq!(row["row_hash"].is_string(), recorded, "{row}");
        assert_eq!(row["chain_seq"].is_i64(), recorded, "{row}");
    }

    for value in run.values() {
        assert!(!json.contains(value), "a token value is in the evidence JSON");
    }

    // The schema refuses a token value, and a document missing what an auditor relies on.
    let mut with_value = doc.clone();
    with_value["requests"][0]["tokens"][0]["token"] = run.good.value.clone().into();
    assert!(!schema_errors(&validator, &with_value).is_empty());
    for (pointer, field) in [
        ("", "user_id"),
        ("/requests/0/tokens/0", "fingerprint"),
        ("/requests/0/tokens/0/attempts/0", "outcome"),
    ] {
        let mut missing = doc.clone();
        missing
            .pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(field);
        let errors = schema_errors(&validator, &missing);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(&format!("\"{field}\" is a required property"))),
            "{field}: {errors:?}"
        );
    }

    // HTML, to a file, then in a browser.
    let html_path = run.dir.path().join("evidence.html");
    let printed = run.evidence(USER, &["--format", "html", "--output", html_path.to_str().unwrap()]);
    assert_eq!(printed, "", "with --output nothing goes to stdout");
    let html = std::fs::read_to_string(&html_path).unwrap();
    for value in run.values() {
        assert!(!html.contains(value), "a token value is in the evidence HTML");
    }
    assert!(!html.contains("<script"), "markup from the database reached the page");
    assert!(unescaped(&html).contains(CANCEL_REASON), "the reason is shown, as text");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<link"),
        "the page fetches nothing"
    );
    browse(&run, &html_path, &doc);

    // A user whose id is markup: escaped too; cleared with nothing to revoke.
    let html = run.evidence(SCRIPT_USER, &["--format", "html"]);
    assert!(!html.contains("<script"), "{html}");
    assert!(
        unescaped(&html).contains(&format!("User <code>{SCRIPT_USER}</code>")),
        "{html}"
    );
    let doc: Value = serde_json::from_str(&run.evidence(SCRIPT_USER, &[])).unwrap();
    assert_eq!(schema_errors(&validator, &doc), Vec::<String>::new());
    assert_eq!(doc["user_id"], SCRIPT_USER);
    assert_eq!(doc["requests"][0]["notes"][0]["action"], "no_tokens");

    // An unknown user is an error, on stderr, with nothing on stdout.
    let out = run.offboard(&["evidence", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    // (PostgreSQL's notices on migrating go to the log, on stderr, before it.)
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some("error: no offboarding request for user 'nobody': there is nothing to give evidence of"),
        "{stderr}"
    );
}

/// `text` with the character references the template writes turned back into characters.
fn unescaped(text: &str) -> String {
    [
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#39;", "'"),
        ("&#34;", "\""),
        ("&quot;", "\""),
    ]
    .iter()
    .fold(text.to_owned(), |t, (from, to)| t.replace(from, to))
    .replace("&amp;", "&")
}

/// The evidence page in headless Chromium: the rendered page shows each token's
/// fingerprint, every attempt's outcome, status and provider request id, and who acted; a
/// screenshot and a PDF are written to the test's output directory.
fn browse(run: &Run, html: &Path, doc: &Value) {
    let Some(chromium) = Chromium::find("evidence page in a browser") else {
        return;
    };
    let url = file_url(html);
    let dom = chromium.dump_dom(&url);
    for value in run.values() {
        assert!(!dom.contains(value), "a token value is on the page");
    }
    assert!(dom.contains("Token revocation evidence"), "{dom}");
    for token in doc["requests"][0]["tokens"].as_array().unwrap() {
        assert!(dom.contains(token["fingerprint"].as_str().unwrap()), "{dom}");
        for a in token["attempts"].as_array().unwrap() {
            let status = format!(">{}</td>", a["http_status"]);
            assert!(dom.contains(&status), "{status} missing");
            let outcome = format!(">{}</span>", a["outcome"].as_str().unwrap());
            assert!(dom.contains(&outcome), "{outcome} missing");
            if let Some(id) = a["provider_request_id"].as_str() {
                assert!(dom.contains(id), "{id} missing");
            }
        }
    }
    assert!(dom.contains("dead (introspection)"), "{dom}");
    assert!(
        dom.contains("alice@example.com") && dom.contains("INC-7: credentials fixed"),
        "{dom}"
    );
    assert!(
        !dom.contains("<script"),
        "markup from the database ran or rendered as markup"
    );

    let backend = if run.f.db.url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let out = output_dir(&format!("evidence-{backend}"));
    std::fs::copy(html, out.join("evidence.html")).unwrap();
    let png = out.join("evidence.png");
    chromium.screenshot(&url, &png, (1280, 2000));
    let pdf = out.join("evidence.pdf");
    chromium.print_to_pdf(&url, &pdf);
    let head = std::fs::read(&pdf).unwrap();
    assert!(head.starts_with(b"%PDF-"), "not a PDF");
    println!("evidence screenshot: {}", png.display());
    println!("evidence PDF: {}", pdf.display());
}

/// Whether `revocation_audit` has the hash-chain columns (migration 0007 adds them).
async fn has_chain_columns(db: &TestDb) -> bool {
    let sql = if db.url.starts_with("postgres") {
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = 'revocation_audit' AND column_name IN ('chain_seq', 'prev_hash', 'row_hash')"
    } else {
        "SELECT count(*) FROM pragma_table_info('revocation_audit') \
         WHERE name IN ('chain_seq', 'prev_hash', 'row_hash')"
    };
    scalar(&db.store, sql).await == 3
}

/// The chain fields come from the audit's `chain_seq`, `prev_hash` and `row_hash`: hashes
/// stored as bytes read as hex, as text read as they are. On a database without the
/// chained audit the columns are added here as migration 0007 names them, with one row
/// written with hashes by hand; where the migration already added them, every row the
/// operator's cancel writes must carry its hash.
async fn evidence_carries_the_chain_hashes_when_the_audit_has_them(db: TestDb) {
    let postgres = db.url.starts_with("postgres");
    let native = has_chain_columns(&db).await;
    if !native {
        let add = if postgres {
            "ALTER TABLE revocation_audit ADD COLUMN chain_seq BIGINT, ADD COLUMN prev_hash BYTEA, \
             ADD COLUMN row_hash TEXT"
        } else {
            "ALTER TABLE revocation_audit ADD COLUMN chain_seq INTEGER; \
             ALTER TABLE revocation_audit ADD COLUMN prev_hash BLOB; \
             ALTER TABLE revocation_audit ADD COLUMN row_hash TEXT"
        };
        exec(&db.store, add).await.unwrap();
    }
    let id = db.store.enqueue("ada", Some("dpo"), None).await.unwrap().request.id;
    db.store.cancel(id, "bob", Some("test")).await.unwrap();
    if !native {
        let (bytes, now) = if postgres {
            ("'\\x00abff'::bytea", "now()")
        } else {
            ("x'00abff'", "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')")
        };
        exec_built(
            &db.store,
            format!(
                "INSERT INTO revocation_audit (request_id, user_id, action, settled, error, duration_ms, worker, \
                 attempted_at, chain_seq, prev_hash, row_hash) \
                 VALUES ({id}, 'ada', 'retry', false, 'chained', 0, 'carol', {now}, 42, {bytes}, 'c0ffee')"
            ),
        )
        .await
        .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let evidence = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .args(["evidence", "ada", "--format", format])
            .env_remove("OFFBOARD_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let doc: Value = serde_json::from_str(&evidence("json")).unwrap();
    assert_eq!(schema_errors(&schema(), &doc), Vec::<String>::new());
    assert_eq!(doc["chain"]["recorded"], true);
    let notes = doc["requests"][0]["notes"].as_array().unwrap();
    if native {
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0]["row_hash"].is_string() && notes[0]["chain_seq"].is_i64(),
            "{notes:?}"
        );
    } else {
        // The cancel was written without hashes (as rows written before the chain are).
        assert_eq!(notes.len(), 2);
        assert_eq!(
            (&notes[0]["action"], &notes[0]["row_hash"]),
            (&"cancel".into(), &Value::Null)
        );
        let chained = &notes[1];
        assert_eq!(
            (&chained["chain_seq"], &chained["prev_hash"], &chained["row_hash"]),
            (&42.into(), &"00abff".into(), &"c0ffee".into())
        );
        let html = evidence("html");
        assert!(
            html.contains("<th>Row hash</th>") && html.contains(">c0ffee</td>"),
            "{html}"
        );
    }
}

on_both_backends!(
    evidence_shows_every_attempt_who_acted_and_no_token_value,
    evidence_carries_the_chain_hashes_when_the_audit_has_them,
);
