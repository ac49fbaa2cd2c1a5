//! Invariant 5 against a provider that writes back what it was sent: a full run with faults,
//! where error answers echo each token and client secret raw, percent- and form-encoded,
//! JSON-escaped, in base64 and as the Basic header. No log line (at TRACE), audit row,
//! request error, metric or report line may hold any of them in any of those forms.

use std::net::SocketAddr;
use std::time::Duration;

use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator};
use offboard::storage::seed::NewToken;
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestDb, app_for, captured_logs, config_toml, on_both_backends, one_of_each, scalar};

/// Panics if `haystack` (named `what`) holds any of `needles`.
fn assert_clean(what: &str, haystack: &str, needles: &[(String, String, String)]) {
    for (whose, form, needle) in needles {
        assert!(
            !haystack.contains(needle.as_str()),
            "{what} holds {whose} as {form}: {needle:?}"
        );
    }
}

async fn nothing_a_provider_echoes_leaks_in_any_encoding(db: TestDb) {
    let logs = captured_logs();
    let mut providers = one_of_each();
    for p in &mut providers {
        if p.client_secret.is_some() {
            // No comma: OneLogin's header is comma-separated. ASCII: it travels in headers.
            p.client_secret = Some(format!("{}/s3cr+t=\"q\"&%!~\\{:08x}", p.name, fastrand::u32(..)));
        }
        p.behaviour = Behaviour {
            echo_fraction: 0.3,
            fail_fraction: 0.05,
            reset_fraction: 0.05,
            malformed_fraction: 0.05,
            oversized_fraction: 0.05,
            ..Behaviour::default()
        };
    }
    // A provider that echoes every time: its requests run out of attempts and fail, so
    // their last_error is the echo (redacted), and it shows every form in turn.
    providers.push(SimProvider {
        client_secret: Some(format!("echo/s3cr+t=\"q\"&%! é{:08x}", fastrand::u32(..))),
        behaviour: Behaviour {
            echo_fraction: 1.0,
            ..Behaviour::default()
        },
        ..SimProvider::new("echo", Dialect::Rfc7009)
    });
    let sim = Simulator::start("127.0.0.1:0".parse::<SocketAddr>().unwrap(), providers.clone())
        .await
        .unwrap();
    let retries = "[worker]\nmax_attempts = 20\n[retry]\nattempts = 3\nbase = \"5ms\"\ncap = \"10ms\"\n\
                   durable_base = \"10ms\"\ndurable_cap = \"20ms\"\n";
    let (text, env) = config_toml(&db.url, &sim, retries);
    let app = app_for(&db.store, &text, &env);
    let worker = app.worker().clone();

    let mut tokens = Vec::new();
    let mut seeded = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        let users = if p.name == "echo" { 2 } else { 12 };
        for u in 0..users {
            let user = format!("leak-{}-{u}", p.name);
            let ty = match p.dialect {
                Dialect::Onelogin => TokenType::AccessToken,
                _ => TokenType::RefreshToken,
            };
            // Shaped as real tokens can be (Google's start "1//"), with quotes and non-ASCII.
            let value = format!("1//0{i}{u}{:016x}+ab/cd==\"q\"\\é", fastrand::u64(..));
            sim.issue_value(&p.name, ty, &value);
            tokens.push(value.clone());
            seeded.push(NewToken {
                user_id: user.clone(),
                provider: p.name.clone(),
                token_type: ty,
                value: TokenValue::new(value),
                grant_ref: None,
                expires_at: None,
            });
        }
    }
    offboard::storage::seed::insert_tokens(&db.store, &seeded)
        .await
        .unwrap();
    for t in &seeded {
        db.store.enqueue(&t.user_id, None, None).await.unwrap();
    }

    for _ in 0..400 {
        worker.drain(&CancellationToken::new()).await.expect("drain");
        let open = scalar(
            &db.store,
            "SELECT count(*) FROM offboarding_requests WHERE state IN ('pending', 'running')",
        )
        .await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut needles = Vec::new();
    for token in &tokens {
        for (form, needle) in offboard::simulate::encodings(token, "unused-client") {
            if !form.contains("basic") {
                needles.push(("a token".to_owned(), form, needle));
            }
        }
    }
    for p in &providers {
        if let Some(secret) = &p.client_secret {
            for (form, needle) in offboard::simulate::encodings(secret, &p.client_id) {
                needles.push((format!("{}'s client secret", p.name), form, needle));
            }
        }
    }

    // The run met the echoes, and the echo provider showed every form.
    let audit = db.store.audit_rows(None, None).await.unwrap();
    let echoed = audit
        .iter()
        .filter(|r| r.error.as_deref().is_some_and(|e| e.contains("[REDACTED]")))
        .count();
    assert!(echoed >= 20, "only {echoed} audit rows with a redacted echo");
    assert!(sim.stats()["echo"].faults >= 14, "{:?}", sim.stats()["echo"]);
    assert_clean("the audit table", &format!("{audit:?}"), &needles);

    let mut last_errors = String::new();
    for t in &seeded {
        let request = db.store.clearance(&t.user_id).await.unwrap().expect("a request");
        last_errors.push_str(request.last_error.as_deref().unwrap_or_default());
        last_errors.push('\n');
    }
    assert!(last_errors.contains("[REDACTED]"), "{last_errors}");
    assert_clean("a request's last_error", &last_errors, &needles);

    for format in ["csv", "jsonl"] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("report.toml");
        std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(["--config", config.to_str().unwrap(), "report", "--format", format])
            .env_remove("OFFBOARD_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(report.lines().count() >= audit.len(), "{report}");
        assert_clean(&format!("the {format} report"), &report, &needles);
        assert_clean("report's stderr", &String::from_utf8_lossy(&out.stderr), &needles);
    }

    let metrics = app.metrics().render();
    assert_clean("the metrics", &metrics, &needles);

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("TRACE"), "log capture is not at TRACE");
    assert_clean("the logs", &logs, &needles);
}

on_both_backends!(nothing_a_provider_echoes_leaks_in_any_encoding);
