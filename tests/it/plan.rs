//! `offboard plan USER` from the binary, on SQLite with two token sources: a plaintext table
//! and a Fernet-encrypted one holding a value that does not decrypt. Each plan kind is shown
//! (a call's method, host and path; refresh-then-revoke; not revocable; through the paired
//! access token; refused org-wide; already settled), and no token value, ciphertext, key or
//! URL query reaches the output.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};

use crate::helpers::{exec_built, open_store};

const ID_SPACE: i64 = 1 << 40;
const QUERY_SECRET: &str = "querysecret0451";

const PROVIDERS: &str = r#"
[providers.acme]
dialect = "rfc7009"
url = "https://auth.acme.example/oauth/revoke?tenant_key=querysecret0451"
client_id = "c"
client_secret_env = "OFFBOARD_TEST_UNSET_SECRET"

[providers.dropbox]
dialect = "dropbox"
client_id = "c"
client_secret_env = "OFFBOARD_TEST_UNSET_SECRET"
refresh = { enabled = true }

[providers.github]
dialect = "github"
client_id = "Iv1.abc"
client_secret_env = "OFFBOARD_TEST_UNSET_SECRET"

[providers.xero]
dialect = "xero"
client_id = "c"
client_secret_env = "OFFBOARD_TEST_UNSET_SECRET"

[providers.onelogin]
dialect = "onelogin"
client_id = "c"
client_secret_env = "OFFBOARD_TEST_UNSET_SECRET"
subdomain = "acme"

[[tokens.source]]
name = "identities"
number = 1
table = "identities"
user_id = "user_ref"
provider = "provider"
token_type = "kind"
value = "token"
grant_ref = "grant"
revoked_at = "revoked_at"

[[tokens.source]]
name = "vault"
number = 2
table = "vault"
provider = "provider"
token_type = "kind"
value = "secret"
settlement = "offboard"
encryption = { scheme = "fernet", key_env = "OFFBOARD_TEST_PLAN_FERNET_KEY" }
"#;

#[test]
fn plan_shows_every_tokens_fate_from_every_source_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let config: PathBuf = dir.path().join("offboard.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{db_url}\"\n{PROVIDERS}")).unwrap();

    let key = fernet::Fernet::generate_key();
    let fernet = fernet::Fernet::new(&key).unwrap();
    let plain = [
        "plain-github-refresh-5531",
        "plain-acme-access-revoked-5532",
        "plain-onelogin-access-5533",
        "plain-onelogin-refresh-5534",
        "plain-other-user-5535",
    ];
    let secret = [
        "vault-acme-refresh-7741",
        "vault-dropbox-refresh-7742",
        "vault-xero-refresh-7743",
    ];
    let ct: Vec<String> = secret.iter().map(|s| fernet.encrypt(s.as_bytes())).collect();
    let bad_ct = "gAAAAABnot-a-real-fernet-token-9912";

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(open_store(&db_url));
    let statements = [
        "CREATE TABLE identities (id INTEGER PRIMARY KEY, user_ref TEXT, provider TEXT, kind TEXT, token TEXT, \
         grant TEXT, revoked_at TEXT)"
            .to_owned(),
        "CREATE TABLE vault (id INTEGER PRIMARY KEY, user_id TEXT, provider TEXT, kind TEXT, secret TEXT)".to_owned(),
        format!(
            "INSERT INTO identities (id, user_ref, provider, kind, token, grant, revoked_at) VALUES \
             (1, 'u1', 'github', 'refresh_token', '{}', NULL, NULL), \
             (2, 'u1', 'acme', 'access_token', '{}', NULL, '2026-01-01T00:00:00+00:00'), \
             (3, 'u1', 'onelogin', 'access_token', '{}', 'g1', NULL), \
             (4, 'u1', 'onelogin', 'refresh_token', '{}', 'g1', NULL), \
             (5, 'u2', 'acme', 'access_token', '{}', NULL, NULL)",
            plain[0], plain[1], plain[2], plain[3], plain[4]
        ),
        format!(
            "INSERT INTO vault (id, user_id, provider, kind, secret) VALUES \
             (1, 'u1', 'acme', 'refresh_token', '{}'), \
             (2, 'u1', 'acme', 'access_token', '{bad_ct}'), \
             (3, 'u1', 'dropbox', 'refresh_token', '{}'), \
             (4, 'u1', 'xero', 'refresh_token', '{}')",
            ct[0], ct[1], ct[2]
        ),
    ];
    for s in statements {
        rt.block_on(exec_built(&store, s)).expect("setup statement");
    }
    rt.block_on(store.close());

    let run = |user: &str| {
        Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(&config)
            .args(["plan", user])
            .env_remove("OFFBOARD_CONFIG")
            .env_remove("RUST_LOG")
            .env_remove("OFFBOARD_TEST_UNSET_SECRET")
            .env("OFFBOARD_TEST_PLAN_FERNET_KEY", &key)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run("u1");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");

    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    // The header line of a token, then its plan and state lines.
    let block = |id: i64| -> Vec<&str> {
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("token {id} from source ")))
            .unwrap_or_else(|| panic!("no token {id} in:\n{text}"));
        lines[at..]
            .iter()
            .take_while(|l| **l == lines[at] || l.starts_with("  "))
            .copied()
            .collect()
    };
    let fp = |v: &str| TokenValue::new(v.to_owned()).fingerprint().to_string();

    let b = block(2 * ID_SPACE + 1);
    assert_eq!(
        b[0],
        format!(
            "token {} from source vault: provider acme, refresh_token, fingerprint {}, value decrypted (fernet)",
            2 * ID_SPACE + 1,
            fp(&ct[0])
        ),
        "{text}"
    );
    assert_eq!(b[1], "  plan: would call POST auth.acme.example/oauth/revoke", "{text}");
    assert_eq!(
        b[2],
        "  sends: form body with fields token, token_type_hint; client authentication client_secret_basic \
         (Authorization: Basic, the client id and secret); no extra headers (names only, never a value)",
        "{text}"
    );
    assert_eq!(b[3], "  state: not settled", "{text}");

    let b = block(2 * ID_SPACE + 2);
    assert!(
        b[0].starts_with(&format!(
            "token {} from source vault: provider acme, access_token, fingerprint {}, value NOT decrypted: ",
            2 * ID_SPACE + 2,
            fp(bad_ct)
        )),
        "{text}"
    );
    assert!(
        b.contains(
            &format!(
                "  would fail: its request fails naming token {} until the value decrypts",
                2 * ID_SPACE + 2
            )
            .as_str()
        ),
        "{text}"
    );

    let b = block(2 * ID_SPACE + 3);
    assert_eq!(
        b[1],
        "  plan: refresh-then-revoke: would call POST api.dropboxapi.com/oauth2/token for a fresh access token, then \
         POST api.dropboxapi.com/2/auth/token/revoke with it",
        "{text}"
    );
    assert_eq!(
        b[2],
        "  sends: refresh: form body with fields grant_type, refresh_token, client_id, client_secret; client \
         authentication client_secret_post (the client id and secret in the body); then revocation: no body; client \
         authentication bearer (Authorization: Bearer, the token being revoked); no extra headers (names only, never \
         a value)",
        "{text}"
    );
    let b = block(2 * ID_SPACE + 4);
    assert!(
        b[1].starts_with("  plan: refused org-wide: nothing is sent: "),
        "{text}"
    );

    let b = block(ID_SPACE + 1);
    assert_eq!(
        b[0],
        format!(
            "token {} from source identities: provider github, refresh_token, fingerprint {}, value stored in plaintext",
            ID_SPACE + 1,
            fp(plain[0])
        ),
        "{text}"
    );
    assert!(
        b[1].starts_with("  plan: not revocable: GitHub revokes one access token"),
        "{text}"
    );
    let b = block(ID_SPACE + 2);
    assert_eq!(
        b[2], "  state: already settled (revoked_at set by the application): nothing would be sent",
        "{text}"
    );
    let b = block(ID_SPACE + 3);
    assert_eq!(
        b[1], "  plan: would call POST acme.onelogin.com/auth/oauth2/revoke",
        "{text}"
    );
    assert_eq!(
        b[2],
        "  sends: JSON body with fields access_token; client authentication an Authorization header of the \
         provider's own, with client_id, client_secret; no extra headers (names only, never a value)",
        "{text}"
    );
    let b = block(ID_SPACE + 4);
    assert_eq!(
        b[1],
        format!(
            "  plan: through its paired access token {} (grant_ref): settled when the provider revokes that one",
            ID_SPACE + 3
        ),
        "{text}"
    );
    assert!(
        !text.contains(&format!("token {} ", ID_SPACE + 5)),
        "another user's token is shown:\n{text}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("8 token(s) from 2 source(s): 6 to work on, 1 already settled, 1 that would fail the request"),
        "{text}"
    );

    let mut secrets: Vec<&str> = plain.to_vec();
    secrets.extend(secret);
    secrets.extend(ct.iter().map(String::as_str));
    secrets.extend([bad_ct, key.as_str(), QUERY_SECRET, "not-a-real-fernet"]);
    for s in secrets {
        assert!(
            !text.contains(s) && !err.contains(s),
            "the output shows a secret:\n{text}\n{err}"
        );
    }

    let out = run("nobody");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "no tokens found for user nobody in any token source (identities, vault): nothing would be sent\n"
    );
}

/// Counts every connection made to a loopback port, until dropped.
struct CountingServer {
    addr: std::net::SocketAddr,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CountingServer {
    fn start() -> CountingServer {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        c.fetch_add(1, Ordering::SeqCst);
                        use std::io::Write;
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        CountingServer { addr, count, stop }
    }

    fn connections(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CountingServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Issue 11 item 5: for each token, what would be sent (method, endpoint, body field names,
/// client authentication kind, extra header names), what is not revocable and what the
/// policy makes of it, and no connection to anyone: every provider here (one behind OIDC
/// discovery) points at a loopback server that counts connections, and it counts none. No
/// token value or client secret is printed.
#[test]
fn plan_names_what_would_be_sent_and_calls_no_one() {
    let server = CountingServer::start();
    let port = server.addr.port();
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let config: PathBuf = dir.path().join("offboard.toml");
    let client_secret = "client-secret-value-8841";
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db_url}\"\n\
             [policy]\nnot_revocable = \"expiring\"\n\
             [providers.acme]\ndialect = \"rfc7009\"\nurl = \"http://127.0.0.1:{port}/revoke\"\nclient_id = \"c\"\n\
             client_secret_env = \"OFFBOARD_TEST_PLAN_SECRET\"\n\
             [providers.moov]\ndialect = \"moov\"\nurl = \"http://127.0.0.1:{port}/oauth2/revoke\"\nclient_id = \"c\"\n\
             client_secret_env = \"OFFBOARD_TEST_PLAN_SECRET\"\n\
             [providers.sso]\ndialect = \"keycloak\"\nissuer = \"http://127.0.0.1:{port}/realms/staff\"\n\
             client_id = \"c\"\nclient_secret_env = \"OFFBOARD_TEST_PLAN_SECRET\"\n\
             [providers.auth0]\ndialect = \"auth0\"\nurl = \"http://127.0.0.1:{port}/oauth/revoke\"\n\
             client_id = \"c\"\nclient_secret_env = \"OFFBOARD_TEST_PLAN_SECRET\"\n"
        ),
    )
    .unwrap();
    let values = [
        ("acme", TokenType::AccessToken, "acme-access-value-1101"),
        ("moov", TokenType::RefreshToken, "moov-refresh-value-1102"),
        ("sso", TokenType::RefreshToken, "sso-refresh-value-1103"),
        ("auth0", TokenType::AccessToken, "auth0-access-value-1104"),
        ("auth0", TokenType::RefreshToken, "auth0-refresh-value-1105"),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(open_store(&db_url));
    let tokens: Vec<NewToken> = values
        .iter()
        .map(|(provider, ty, value)| NewToken {
            user_id: "u1".into(),
            provider: (*provider).into(),
            token_type: *ty,
            value: TokenValue::new((*value).to_owned()),
            grant_ref: None,
            expires_at: Some(chrono::Utc::now() + chrono::Duration::minutes(30)),
        })
        .collect();
    rt.block_on(insert_tokens(&store, &tokens)).unwrap();
    rt.block_on(store.close());

    let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(&config)
        .args(["plan", "u1"])
        .env_remove("OFFBOARD_CONFIG")
        .env_remove("RUST_LOG")
        .env("OFFBOARD_TEST_PLAN_SECRET", client_secret)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    println!("{text}");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(server.connections(), 0, "plan connected to the provider:\n{text}");

    let after = |provider: &str, ty: &str| -> Vec<&str> {
        let head = format!("provider {provider}, {ty}, ");
        let mut lines = text
            .lines()
            .skip_while(|l| !(l.starts_with("token ") && l.contains(&head)));
        let first = lines.next().unwrap_or_else(|| panic!("no {provider} {ty} in:\n{text}"));
        std::iter::once(first)
            .chain(lines.take_while(|l| l.starts_with("  ")))
            .collect()
    };
    let b = after("acme", "access_token");
    assert_eq!(
        b[1],
        format!("  plan: would call POST 127.0.0.1:{port}/revoke"),
        "{text}"
    );
    assert_eq!(
        b[2],
        "  sends: form body with fields token, token_type_hint; client authentication client_secret_basic \
         (Authorization: Basic, the client id and secret); no extra headers (names only, never a value)",
        "{text}"
    );
    let b = after("moov", "refresh_token");
    assert_eq!(
        b[2],
        "  sends: JSON body with fields token, token_type_hint; client authentication client_secret_basic \
         (Authorization: Basic, the client id and secret); headers x-moov-version (names only, never a value)",
        "{text}"
    );
    let b = after("sso", "refresh_token");
    assert!(
        b[1].starts_with("  plan: would call POST the revocation endpoint in the metadata of 127.0.0.1:"),
        "{text}"
    );
    assert!(b[1].contains("(not fetched by plan)"), "{text}");
    let b = after("auth0", "access_token");
    assert!(
        b[1].starts_with("  plan: not revocable: Auth0 access tokens are self-contained JWTs"),
        "{text}"
    );
    assert!(
        b[1].contains("; policy not_revocable = expiring settles it (expires "),
        "{text}"
    );
    assert!(!b.iter().any(|l| l.starts_with("  sends: ")), "{text}");
    let b = after("auth0", "refresh_token");
    assert_eq!(
        b[2],
        "  sends: JSON body with fields token, client_id, client_secret; client authentication client_secret_post \
         (the client id and secret in the body); no extra headers (names only, never a value)",
        "{text}"
    );
    for secret in values.iter().map(|v| v.2).chain([client_secret]) {
        assert!(
            !text.contains(secret) && !err.contains(secret),
            "a secret in the output:\n{text}\n{err}"
        );
    }
}
