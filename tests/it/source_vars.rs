//! `[[tokens.source]] vars`: a column of the source fills a provider URL template variable,
//! so one provider entry serves every tenant of a B2B application. End to end on both
//! backends against a wiremock provider whose URL is `http://127.0.0.1:PORT/{tenant}/revoke`:
//! each token's request reaches its own tenant's path; a tenant value that may not go in a
//! URL, or none, fails only that user's request, naming the token and never the value.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use offboard::outcome::RequestState;
use offboard::simulate::Simulator;

use crate::end_to_end::Fixture;
use crate::helpers::{TestDb, exec_built, on_both_backends};

async fn each_token_reaches_its_tenants_path(db: TestDb) {
    let server = MockServer::start().await;
    for tenant in ["tenant-a", "tenant.b"] {
        Mock::given(method("POST"))
            .and(path(format!("/{tenant}/revoke")))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&server)
            .await;
    }
    let pg = db.url.starts_with("postgres");
    let (id, ts) = if pg {
        ("id BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ")
    } else {
        ("id INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")
    };
    exec_built(
        &db.store,
        format!(
            "CREATE TABLE connections ({id}, user_id TEXT, tenant_subdomain TEXT, access_token TEXT, revoked_at {ts})"
        ),
    )
    .await
    .unwrap();
    exec_built(
        &db.store,
        "INSERT INTO connections (user_id, tenant_subdomain, access_token) VALUES \
         ('u1', 'tenant-a', 'tok-alpha-1'), ('u2', 'tenant.b', 'tok-beta-2'), \
         ('u3', 'evil/x?y', 'tok-gamma-3'), ('u4', NULL, 'tok-delta-4'), ('u5', '..', 'tok-eps-5')"
            .into(),
    )
    .await
    .unwrap();
    let text = format!(
        r#"[database]
url = "{db}"
[worker]
max_attempts = 2
[retry]
attempts = 1
base = "10ms"
cap = "20ms"
durable_base = "10ms"
durable_cap = "20ms"

[providers.tenants]
url = "{base}/{{tenant}}/revoke"
method = "POST"
body = "form"
auth = "client_secret_post"
token_field = "token"
revocable = ["access_token", "refresh_token"]
success = {{ status = [200] }}
source = {{ url = "https://www.rfc-editor.org/rfc/rfc7009" }}
client_id = "c"
client_secret_env = "TENANTS_SECRET"
rate = "1000/s"

[[tokens.source]]
table = "connections"
provider_value = "tenants"
token_type_value = "access_token"
value = "access_token"
revoked_at = "revoked_at"
vars = {{ tenant = "tenant_subdomain" }}
"#,
        db = db.url,
        base = server.uri()
    );
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), vec![]).await.unwrap();
    let f = Fixture::with_config(db, sim, text, vec![("TENANTS_SECRET".into(), "s3cret".into())]);
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        f.enqueue(user).await;
    }
    f.drain_until_settled().await;

    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.state("u2").await, RequestState::Cleared);
    let mut seen: Vec<(String, String)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.url.path().to_owned(), String::from_utf8_lossy(&r.body).into_owned()))
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "/tenant-a/revoke");
    assert!(seen[0].1.contains("token=tok-alpha-1"), "{seen:?}");
    assert_eq!(seen[1].0, "/tenant.b/revoke");
    assert!(seen[1].1.contains("token=tok-beta-2"), "{seen:?}");

    for (user, row, why) in [
        ("u3", 3, "cannot go in the URL"),
        ("u4", 4, "has no value for it"),
        ("u5", 5, "cannot go in the URL"),
    ] {
        let latest = f.latest(user).await;
        assert_eq!(latest.state, RequestState::Failed, "{user}");
        let reason = latest.last_error.unwrap_or_default();
        assert!(reason.contains(&format!("token {row} ")), "{user}: {reason}");
        assert!(reason.contains(why), "{user}: {reason}");
        assert!(!reason.contains("tok-") && !reason.contains("evil"), "{user}: {reason}");
    }
}

on_both_backends!(each_token_reaches_its_tenants_path);
