//! Discovery and proof of death against a real OpenID Connect server: `oidc-provider`
//! (tests/oidc, pinned with its lock file) on loopback, with revocation, introspection and
//! client credentials. Live tokens are minted there, stored as a user's, and the real
//! `offboard` binary, configured with the issuer alone and `verify = "introspect"`, checks
//! the config (fetching the metadata) and runs one drain; the user is cleared, every audit
//! row is `revoked` and verified by introspection, and the server itself then says each
//! token is inactive.
//!
//! Needs node and npm (`npm ci` runs once if `tests/oidc/node_modules` is missing). Without
//! them the test says why and passes, except under CI (`CI=true`), where it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use offboard::outcome::{Outcome, RequestState};
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};

use crate::helpers::{TestDb, tail};

const CLIENT_ID: &str = "offboard";
const CLIENT_SECRET: &str = "offboard-test-secret";

fn server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Whether `tool --version` runs.
fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Node and npm, with the server's packages installed; `false` (having said why) when node
/// or npm is missing outside CI.
fn node_ready() -> bool {
    let mut missing: Vec<String> = ["node", "npm"]
        .into_iter()
        .filter(|t| !runs(t))
        .map(str::to_owned)
        .collect();
    if let Some(old) = node_older_than_20() {
        missing.push(format!("Node.js 20 or later (found {old})"));
    }
    if !missing.is_empty() {
        let why = format!(
            "the OIDC test needs {} (Debian: apt-get install nodejs npm; .ci/run installs them)",
            missing.join(" and ")
        );
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped: {why}");
        return false;
    }
    let dir = server_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "npm ci in {} failed:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    true
}

/// The version node reports, when it is older than 20 (oidc-provider 9 needs 20.19).
fn node_older_than_20() -> Option<String> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: u32 = version.trim_start_matches('v').split('.').next()?.parse().ok()?;
    (major < 20).then_some(version)
}

/// The node server; killed and reaped on drop.
struct OidcServer {
    child: Child,
    issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OidcServer {
    fn start() -> OidcServer {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("oidc.log");
        let mut child = Command::new("node")
            .arg("server.js")
            .current_dir(server_dir())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start node server.js");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).expect("read the server's first line");
        // oidc-provider logs notices to stdout: keep reading it, or its next write fails
        // (EPIPE) and ends the server.
        std::thread::spawn(move || for _ in stdout.lines() {});
        let port = line
            .strip_prefix("listening ")
            .map(str::trim)
            .unwrap_or_else(|| panic!("the OIDC server did not start: {line:?}"));
        OidcServer {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "POST {path}: {}\nserver log:\n{}",
                    offboard::telemetry::error_chain(&e),
                    tail(&log, 20)
                )
            });
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "POST {path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e}: {text}"))
    }

    /// Whether the server says `token` is active (RFC 7662, asked directly).
    async fn active(&self, token: &str) -> bool {
        self.post("/token/introspection", &[("token", token)]).await["active"]
            .as_bool()
            .expect("active is a boolean")
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_s_live_tokens_at_a_real_oidc_server_are_revoked_by_issuer_and_proven_dead() {
    let started = Instant::now();
    if !node_ready() {
        return;
    }
    let server = OidcServer::start();
    // Live tokens: one from client credentials, and an access and refresh token of one grant.
    let cc = server
        .post("/token", &[("grant_type", "client_credentials"), ("scope", "api")])
        .await;
    let grant = server.post("/_test/mint", &[]).await;
    let tokens = [
        (TokenType::AccessToken, cc["access_token"].as_str().unwrap().to_owned()),
        (
            TokenType::AccessToken,
            grant["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            TokenType::RefreshToken,
            grant["refresh_token"].as_str().unwrap().to_owned(),
        ),
    ];
    for (_, value) in &tokens {
        assert!(server.active(value).await, "a freshly minted token is active");
    }
    let db = TestDb::sqlite().await;
    let rows: Vec<NewToken> = tokens
        .iter()
        .map(|(ty, value)| NewToken {
            user_id: "olivia".into(),
            provider: "idp".into(),
            token_type: *ty,
            value: TokenValue::new(value.clone()),
            grant_ref: Some("g1".into()),
            expires_at: None,
        })
        .collect();
    insert_tokens(&db.store, &rows).await.unwrap();
    let request = db.store.enqueue("olivia", None, None).await.unwrap().request.id;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("offboard.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{}\"\n[server]\nlisten = \"off\"\n[providers.idp]\ndialect = \"rfc7009\"\n\
             issuer = \"{}\"\nverify = \"introspect\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret_env = \"IDP_SECRET\"\n",
            db.url, server.issuer
        ),
    )
    .unwrap();
    let offboard = |command: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .arg(command)
            .env_remove("OFFBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .env("IDP_SECRET", CLIENT_SECRET)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "offboard {command}: {text}");
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        text
    };
    let checked = offboard("check-config");
    assert!(
        checked.contains(&format!(
            "provider idp: issuer metadata ok: revocation at {}/token/revocation (auth client_secret_basic); \
             verified by introspection at {}/token/introspection (client_secret_basic)",
            server.issuer, server.issuer
        )),
        "{checked}"
    );
    let once = offboard("once");
    assert!(once.contains("claimed 1, cleared 1, failed 0"), "{once}");

    let row = db.store.request(request).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Cleared, "{:?}", row.last_error);
    let audit = db.store.audit_rows(Some(request), None).await.unwrap();
    assert_eq!(audit.len(), 3, "{audit:?}");
    for row in &audit {
        assert_eq!(
            (row.outcome, row.settled, row.http_status),
            (Outcome::Revoked, true, Some(200))
        );
        assert_eq!(
            (row.verified, row.verified_by.as_deref()),
            (Some(true), Some("introspection"))
        );
    }
    for (ty, value) in &tokens {
        assert!(!server.active(value).await, "{ty:?} still active after offboard");
        assert!(!once.contains(value.as_str()) && !checked.contains(value.as_str()));
    }
    eprintln!(
        "oidc: 3 live tokens revoked and proven dead at oidc-provider in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
