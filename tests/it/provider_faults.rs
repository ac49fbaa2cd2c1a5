//! Providers misbehaving, against real loopback servers (issue 7; DESIGN.md §2, §3
//! invariant 9, §5): waits they ask for are clamped to `retry.max_provider_pause`, bodies
//! that trickle are cut off by the provider's `timeout`, bodies of many megabytes are cut,
//! HTML pages and 2xx answers whose body says error are never taken as revoked, resets are
//! transient, and one provider's trouble never stalls another.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use offboard::config::Config;
use offboard::outcome::{Outcome, RequestState};
use offboard::provider::{Call, Providers};
use offboard::storage::seed::NewToken;
use offboard::token::{TokenType, TokenValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestDb, app_for, on_both_backends, scalar};

const SECRET: &str = "s3cr/t+value";
const TOKEN: &str = "tok_live_0123456789abcdef";
const HOUR: Duration = Duration::from_secs(3600);

/// Config text for providers named by `(name, dialect, url, extra keys)`, with `global`
/// keys (such as a `[retry]` table) before them.
fn config_text(global: &str, providers: &[(&str, &str, &str, &str)]) -> String {
    let mut text = format!("{global}\n");
    for (name, dialect, url, extra) in providers {
        text.push_str(&format!(
            "[providers.{name}]\ndialect = \"{dialect}\"\nurl = \"{url}\"\nclient_id = \"client-1\"\n\
             client_secret_env = \"P_SECRET\"\n{extra}\n"
        ));
    }
    text
}

fn providers(global: &str, providers: &[(&str, &str, &str, &str)]) -> Providers {
    let config = Config::from_toml(&config_text(global, providers), Path::new("test"), Vec::new()).expect("config");
    Providers::from_config(&config, &|_| Some(SECRET.to_owned())).expect("secret and client")
}

/// One rfc7009 provider `p` at `url`.
fn one(global: &str, url: &str, extra: &str) -> Providers {
    providers(global, &[("p", "rfc7009", url, extra)])
}

async fn revoke(providers: &Providers, name: &str) -> Call {
    let provider = providers.get(name).expect("provider");
    provider
        .revoke(&TokenValue::new(TOKEN.into()), TokenType::AccessToken)
        .await
}

async fn answering(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(template).mount(&server).await;
    server
}

/// A loopback server that reads each request's head and hands the connection to `answer`.
async fn raw_server<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// Reads a request's head and its `Content-Length` body, so that the client is not cut off
/// in the middle of sending it.
async fn read_request(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&seen[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while seen.len() < head_end + length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}/revoke")
}

// ---------------------------------------------------------------------------------------
// Waits a provider asks for

/// A 429 asking for a year of quiet: the verdict carries the configured longest pause, and
/// the provider is paused for no longer than that.
#[tokio::test]
async fn a_year_long_retry_after_is_clamped_to_the_longest_pause() {
    for status in [429, 503] {
        let server = answering(ResponseTemplate::new(status).insert_header("retry-after", "31536000")).await;
        let p = one("", &server.uri(), "");
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.outcome, Outcome::Transient);
        assert_eq!(call.verdict.retry_after, Some(HOUR), "{status}: the default cap is 1h");
        let left = p.get("p").unwrap().gate.pause_left().expect("paused");
        assert!(left <= HOUR && left > HOUR - Duration::from_secs(5), "{left:?}");

        let p = one("[retry]\nmax_provider_pause = \"5m\"", &server.uri(), "");
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.retry_after, Some(Duration::from_secs(300)));
        let left = p.get("p").unwrap().gate.pause_left().expect("paused");
        assert!(left <= Duration::from_secs(300), "{left:?}");
    }
}

/// Values that overflow `Instant + Duration` or `u64`, and a date in the year 9999: no
/// panic, and the provider pauses for the cap (a provider asking for "forever" gets the
/// longest pause, not none).
#[tokio::test]
async fn an_overflowing_retry_after_neither_panics_nor_pauses_past_the_cap() {
    for value in [
        "18446744073709551615",
        "99999999999999999999",
        "0000000000000000000000000000000000000000000000000000000000000000000001",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let server = answering(ResponseTemplate::new(429).insert_header("retry-after", value)).await;
        let p = one("[retry]\nmax_provider_pause = \"10m\"", &server.uri(), "");
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.outcome, Outcome::Transient, "{value}");
        let cap = Duration::from_secs(600);
        let expected = if value.starts_with("000") {
            Duration::from_secs(1)
        } else {
            cap
        };
        assert_eq!(call.verdict.retry_after, Some(expected), "{value}");
        let left = p.get("p").unwrap().gate.pause_left().expect("paused");
        assert!(left <= cap, "{value}: paused for {left:?}");
    }
}

/// A user with three tokens at a provider that answers every call 429 asking for a year
/// (or for more seconds than fit in a `u64` `Duration` sum): the drain returns at once
/// instead of waiting out the pause, the provider is called once and then left alone, the
/// call has its audit row, and the request comes back no later than `retry.durable_cap`.
async fn a_provider_asking_for_a_year_of_quiet_does_not_hold_the_drain(db: TestDb) {
    let mut calls = 0;
    for (user, retry_after) in [("year", "31536000"), ("overflow", "18446744073709551615")] {
        let server = answering(ResponseTemplate::new(429).insert_header("retry-after", retry_after)).await;
        // One call a second, so the second and third tokens wait at the gate when the
        // first one's 429 comes back.
        let text = format!(
            "[database]\nurl = \"{}\"\n{}",
            db.url,
            config_text("", &[("quiet", "rfc7009", &server.uri(), "rate = \"1/s\"\nburst = 1")])
        );
        let env = vec![("P_SECRET".to_owned(), SECRET.to_owned())];
        let app = app_for(&db.store, &text, &env);
        let tokens: Vec<NewToken> = (0..3)
            .map(|i| NewToken {
                user_id: user.into(),
                provider: "quiet".into(),
                token_type: TokenType::RefreshToken,
                value: TokenValue::new(format!("{TOKEN}-{user}-{i}")),
                grant_ref: None,
                expires_at: None,
            })
            .collect();
        offboard::storage::seed::insert_tokens(&db.store, &tokens)
            .await
            .unwrap();
        db.store.enqueue(user, None, None).await.unwrap();

        let started = Instant::now();
        let report = tokio::time::timeout(Duration::from_secs(20), app.worker().drain(&CancellationToken::new()))
            .await
            .unwrap_or_else(|_| panic!("{user}: the drain waited on the provider's pause"))
            .expect("drain");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!((report.claimed, report.retrying), (1, 1), "{user}: {report:?}");

        let row = db.store.clearance(user).await.unwrap().expect("request");
        assert_eq!(row.state, RequestState::Pending);
        let wait = row.next_attempt_at.expect("next attempt") - Utc::now();
        assert!(
            wait > chrono::Duration::zero() && wait <= chrono::Duration::seconds(3600),
            "{user}: next attempt in {wait} (durable_cap is 1h)"
        );
        let received = server.received_requests().await.unwrap().len();
        assert_eq!(received, 1, "{user}: a paused provider was called again");
        calls += 1;
        // Invariant 8: every call that got an answer has its audit row.
        let audited = scalar(
            &db.store,
            "SELECT count(*) FROM revocation_audit WHERE http_status = 429",
        )
        .await;
        assert_eq!(audited, calls, "{user}");
    }
}

on_both_backends!(a_provider_asking_for_a_year_of_quiet_does_not_hold_the_drain);

// ---------------------------------------------------------------------------------------
// Bodies

/// A provider that sends its status at once and then one byte of body every 100ms: the
/// call ends at the provider's `timeout`, transient, whether the body has a length or is
/// chunked.
#[tokio::test]
async fn a_trickling_body_is_cut_off_at_the_provider_timeout() {
    for chunked in [false, true] {
        let addr = raw_server(move |mut stream| async move {
            let head = if chunked {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
            };
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let piece: &[u8] = if chunked { b"1\r\n \r\n" } else { b" " };
                if stream.write_all(piece).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let p = one("", &url_of(addr), "timeout = \"500ms\"");
        let started = Instant::now();
        let call = revoke(&p, "p").await;
        let took = started.elapsed();
        assert_eq!(call.verdict.outcome, Outcome::Transient, "chunked: {chunked}");
        assert!(
            took < Duration::from_millis(1500),
            "chunked: {chunked}: a trickling body held the call for {took:?}"
        );
        let error = call.verdict.error.unwrap();
        assert!(error.starts_with("no answer within 500ms"), "{error}");
    }
}

/// Invariant 6: while one provider trickles its answer, another answers at once.
#[tokio::test]
async fn a_trickling_provider_does_not_stall_another() {
    let trickling = raw_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
            .await;
        for _ in 0..1000 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if stream.write_all(b"x").await.is_err() {
                return;
            }
        }
    })
    .await;
    let healthy = answering(ResponseTemplate::new(200)).await;
    let p = providers(
        "",
        &[
            ("slow", "rfc7009", &url_of(trickling), "timeout = \"3s\""),
            ("fast", "rfc7009", &healthy.uri(), "timeout = \"3s\""),
        ],
    );
    let slow = tokio::spawn({
        let p = p.clone();
        async move { revoke(&p, "slow").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let call = revoke(&p, "fast").await;
        assert_eq!(call.verdict.outcome, Outcome::Revoked);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(!slow.is_finished(), "the trickling call ended before the test was done");
    assert_eq!(slow.await.unwrap().verdict.outcome, Outcome::Transient);
}

/// Bodies of many megabytes are cut at `http.max_body_bytes`, read no further, and the
/// status still decides; a success whose body could not be read whole is not taken as one.
#[tokio::test]
async fn a_body_of_many_megabytes_is_cut_and_still_classified() {
    let huge = |code: &str| {
        let mut body = format!(r#"{{"error":"{code}","padding":""#).into_bytes();
        body.resize(8 * 1024 * 1024, b'x');
        body.extend_from_slice(b"\"}");
        body
    };
    for (status, code, outcome) in [
        (400, "invalid_request", Outcome::Failed),
        (503, "temporarily_unavailable", Outcome::Transient),
        (200, "invalid_client", Outcome::Transient),
    ] {
        let server = answering(ResponseTemplate::new(status).set_body_raw(huge(code), "application/json")).await;
        let p = one("[http]\nmax_body_bytes = 4096", &server.uri(), "");
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.outcome, outcome, "{status}");
        assert_eq!(call.verdict.http_status, Some(status));
        let error = call.verdict.error.unwrap();
        assert!(error.len() < 1000, "{status}: {} bytes of error", error.len());
        if status == 200 {
            assert!(error.contains("http.max_body_bytes"), "{error}");
        }
    }
    // A body within the limit is read whole and classified by its content.
    let server = answering(ResponseTemplate::new(200).set_body_raw(huge("x")[..1000].to_vec(), "text/plain")).await;
    let p = one("", &server.uri(), "");
    assert_eq!(revoke(&p, "p").await.verdict.outcome, Outcome::Revoked);
}

/// A proxy's or portal's HTML page is never a revocation answer, whatever its status, and
/// its markup does not fill the audit row.
#[tokio::test]
async fn an_html_page_is_transient_whatever_its_status() {
    let page = format!(
        "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>{}</body></html>",
        "<p>nginx</p>".repeat(2000)
    );
    for status in [200, 201, 204, 502, 503] {
        let server =
            answering(ResponseTemplate::new(status).set_body_raw(page.clone(), "text/html; charset=utf-8")).await;
        let p = one("", &server.uri(), "");
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.outcome, Outcome::Transient, "{status}");
        let error = call.verdict.error.unwrap();
        assert!(error.contains("HTML page"), "{status}: {error}");
        assert!(error.len() < 400, "{status}: {error}");
    }
}

/// A success status whose JSON body says error is classified by that error, as if the
/// status had said so; a body that says nothing of the kind is a success.
#[tokio::test]
async fn a_success_status_whose_body_says_error_is_not_revoked() {
    let cases: &[(u16, &str, Outcome)] = &[
        (200, r#"{"error":"invalid_client"}"#, Outcome::Failed),
        (200, r#"{"error":"invalid_token"}"#, Outcome::AlreadyInvalid),
        (200, r#"{"error":"unsupported_token_type"}"#, Outcome::NotRevocable),
        (200, r#"{"error":"temporarily_unavailable"}"#, Outcome::Transient),
        (200, r#"{"ok":false}"#, Outcome::Failed),
        (200, r#"{"ok":false,"error":"invalid_auth"}"#, Outcome::Failed),
        (200, r#"{"success":false,"message":"token not found"}"#, Outcome::Failed),
        (200, r#"{"status":"error","message":"rejected"}"#, Outcome::Failed),
        (200, r#"{"error":{"code":401,"message":"bad client"}}"#, Outcome::Failed),
        (200, r#"{"errors":[{"message":"bad client"}]}"#, Outcome::Failed),
        (201, r#"{"error":"invalid_client"}"#, Outcome::Failed),
        (200, r#"{"error":null}"#, Outcome::Revoked),
        (200, r#"{"error":false}"#, Outcome::Revoked),
        (200, r#"{"ok":true}"#, Outcome::Revoked),
        (200, r#"{"errors":[]}"#, Outcome::Revoked),
        (200, r#"{}"#, Outcome::Revoked),
        (200, "", Outcome::Revoked),
        (204, "", Outcome::Revoked),
    ];
    for dialect in ["rfc7009", "stitch", "moov", "auth0"] {
        for (status, body, expected) in cases {
            let mut template = ResponseTemplate::new(*status);
            if !body.is_empty() {
                template = template.set_body_raw(body.as_bytes().to_vec(), "application/json");
            }
            let server = answering(template).await;
            let p = providers("", &[("p", dialect, &server.uri(), "")]);
            let call = revoke(&p, "p").await;
            assert_eq!(call.verdict.outcome, *expected, "{dialect}: {status} {body}");
            assert_eq!(call.verdict.http_status, Some(*status));
            if *expected != Outcome::Revoked {
                let error = call.verdict.error.unwrap();
                assert!(error.starts_with(&format!("HTTP {status}")), "{error}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// A connection closed or reset before the answer, or in the middle of its body: transient,
/// with a message that says which.
#[tokio::test]
async fn resets_and_broken_answers_are_transient() {
    // Closed after reading the request, without a word.
    let closed = raw_server(|stream| async move { drop(stream) }).await;
    // Reset (RST) after reading the request.
    let reset = raw_server(|stream| async move {
        let _ = stream.set_zero_linger();
        drop(stream);
    })
    .await;
    // Half a status line.
    let garbled = raw_server(|mut stream| async move {
        let _ = stream.write_all(b"HTTP/1.1 2").await;
    })
    .await;
    // A success whose body stops half way.
    let cut = raw_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"ok\":")
            .await;
        let _ = stream.set_zero_linger();
    })
    .await;
    for (what, addr) in [("closed", closed), ("reset", reset), ("garbled", garbled), ("cut", cut)] {
        let p = one("", &url_of(addr), "timeout = \"5s\"");
        let started = Instant::now();
        let call = revoke(&p, "p").await;
        assert_eq!(call.verdict.outcome, Outcome::Transient, "{what}: {:?}", call.verdict);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: {:?}",
            started.elapsed()
        );
        let error = call.verdict.error.unwrap();
        assert!(!error.contains(TOKEN) && !error.contains(SECRET), "{error}");
        if what == "cut" {
            assert!(
                error.starts_with("connection broke while reading the answer"),
                "{what}: {error}"
            );
        }
    }
    // Nothing listening at all.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let call = revoke(&one("", &url_of(addr), ""), "p").await;
    assert_eq!(call.verdict.outcome, Outcome::Transient);
    assert!(call.verdict.error.unwrap().starts_with("connection failed"));
}
