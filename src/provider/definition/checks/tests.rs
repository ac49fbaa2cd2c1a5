//! Unit tests of the discovery and verification keys: what they accept, what they refuse
//! (each error naming its key), and the catalogue's checks.

use super::super::{merge, resolve};
use super::*;
use crate::config::ProviderUrl;
use crate::provider::catalog;
use crate::provider::discovery::Discovery;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

const BASE: &str = r#"
    method = "POST"
    url = "https://idp.example/revoke"
    body = "form"
    auth = "client_secret_basic"
    token_field = "token"
"#;

const PROBE: &str = r#"
    [probe]
    by = "acme whoami"
    method = "GET"
    url = "https://{host}/whoami"
    query = { access_token = "{token}" }
    dead = [{ status = [401] }]
    alive = [{ status = [200], body = { pointer = "/ok", equals = true } }]
"#;

fn with(extra: &str) -> Result<super::super::Resolved, DefinitionError> {
    let mut t = table(BASE);
    merge(&mut t, table(extra));
    resolve(t, "p", &[])
}

#[test]
fn a_probe_reads_with_its_rules_and_a_variable_only_it_uses() {
    let r = with(&format!("verify = \"probe\"\nhost = \"api.idp.example\"\n{PROBE}")).unwrap();
    let checks = &r.definition.checks;
    assert_eq!(checks.verify, VerifyMode::Probe);
    let probe = checks.probe.as_ref().unwrap();
    assert_eq!(probe.by, "acme whoami");
    assert_eq!(probe.token_types, [TokenType::AccessToken, TokenType::RefreshToken]);
    assert!(probe.dead[0].matches(401, None));
    assert!(!probe.dead[0].matches(400, None));
    let ok = serde_json::json!({"ok": true});
    assert!(probe.alive[0].matches(200, Some(&ok)));
    assert!(!probe.alive[0].matches(200, None));
    let (introspection, url) = fill_urls(checks, &r.vars, "p", "c").unwrap();
    assert_eq!(
        (introspection, url.as_deref()),
        (None, Some("https://api.idp.example/whoami"))
    );
    // Off, its template needs nothing: the variable is not asked for.
    let r = with(PROBE).unwrap();
    assert_eq!(
        fill_urls(&r.definition.checks, &r.vars, "p", "c").unwrap(),
        (None, None)
    );
}

#[test]
fn check_keys_that_cannot_work_are_refused_naming_the_key() {
    for (extra, key, says) in [
        ("verify = \"always\"", "verify", "is not one of none, introspect"),
        ("verify = \"probe\"", "verify", "probe needs a probe table"),
        (
            "verify = \"introspect\"\nauth = \"bearer\"",
            "verify",
            "introspect needs client authentication (RFC 7662 §2.1)",
        ),
        ("issuer = \" \"", "issuer", "must not be empty"),
        (
            "introspection_url = \"https://{x\"",
            "introspection_url",
            "never closed",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/{token}\", dead = [{ status = [401] }], alive = [{ status = [200] }] }",
            "probe.url",
            "use probe.query",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", query = { s = \"{client_secret}\" }, auth = \"bearer\", dead = [{ status = [401] }], alive = [{ status = [200] }] }",
            "probe.query.s",
            "a secret never goes in a URL",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", dead = [{ status = [401] }], alive = [{ status = [200] }] }",
            "probe",
            "the token goes nowhere",
        ),
        (
            "probe = { by = \"b\", method = \"DELETE\", url = \"https://x/\", auth = \"bearer\", dead = [{ status = [401] }], alive = [{ status = [200] }] }",
            "probe.method",
            "is not GET or POST",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", auth = \"bearer\", alive = [{ status = [200] }] }",
            "probe.dead",
            "at least one answer that means dead",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", auth = \"bearer\", dead = [{}], alive = [{ status = [200] }] }",
            "probe.dead[0]",
            "needs a status, a body condition, or both",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", auth = \"bearer\", dead = [{ body = { pointer = \"error\", equals = 1 } }], alive = [{ status = [200] }] }",
            "probe.dead[0].body.pointer",
            "not a JSON pointer",
        ),
        (
            "probe = { by = \"b\", method = \"GET\", url = \"https://x/\", auth = \"bearer\", dead = [{ status = [401] }], alive = [{ status = [200] }], tokens = [] }",
            "probe.tokens",
            "unknown field `tokens`",
        ),
    ] {
        let e = with(extra).map(|_| ()).unwrap_err();
        assert_eq!(e.key, key, "{extra}: {e:?}");
        assert!(e.message.contains(says), "{extra}: {}", e.message);
    }
}

#[test]
fn an_issuer_replaces_the_entry_s_url_and_introspection_url_and_a_url_its_issuer() {
    let mut entry = table("url = \"https://{host}/revoke\"\nintrospection_url = \"https://{host}/introspect\"");
    issuer_or_url(&mut entry, &table("issuer = \"https://idp.example\"")).unwrap();
    assert!(entry.is_empty(), "{entry:?}");
    let mut entry = table("url = \"https://{host}/revoke\"\nintrospection_url = \"https://{host}/introspect\"");
    issuer_or_url(
        &mut entry,
        &table("issuer = \"https://idp.example\"\nintrospection_url = \"https://idp.example/i\""),
    )
    .unwrap();
    assert_eq!(entry.keys().collect::<Vec<_>>(), ["introspection_url"]);
    let mut entry = table("issuer = \"https://idp.example\"");
    issuer_or_url(&mut entry, &table("url = \"https://idp.example/revoke\"")).unwrap();
    assert!(entry.is_empty());
    let e = issuer_or_url(&mut table(""), &table("issuer = \"https://a\"\nurl = \"https://a/r\"")).unwrap_err();
    assert_eq!(e.key, "issuer");
}

#[test]
fn metadata_is_looked_for_at_the_oidc_then_the_rfc8414_address() {
    let urls = |issuer: &str| -> Vec<String> {
        let issuer: ProviderUrl = issuer.parse().unwrap();
        Discovery::metadata_urls(&issuer)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        urls("https://idp.example"),
        [
            "https://idp.example/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server"
        ]
    );
    assert_eq!(
        urls("https://idp.example/realms/acme/"),
        [
            "https://idp.example/realms/acme/.well-known/openid-configuration",
            "https://idp.example/.well-known/oauth-authorization-server/realms/acme"
        ]
    );
}

/// The catalogue's checks: Slack and Google probe, Okta and Keycloak introspect, each at
/// an https URL once its variables are filled, and all off until `verify` turns them on.
#[test]
fn the_catalogue_s_checks_are_https_and_off_by_default() {
    let mut probes = Vec::new();
    let mut introspects = Vec::new();
    for entry in catalog::entries() {
        let checks = &entry.definition.checks;
        assert_eq!(checks.verify, VerifyMode::None, "{}", entry.name);
        assert_eq!(checks.issuer, None, "{}", entry.name);
        if let Some(probe) = &checks.probe {
            assert!(probe.url.to_string().starts_with("https://"), "{}", entry.name);
            probes.push((entry.name, probe.by.as_str()));
        }
        if let Some(url) = &checks.introspection_url {
            let filled = url.render(|_| Some("acme"));
            let _: ProviderUrl = filled.parse().unwrap();
            assert!(filled.starts_with("https://"), "{}", entry.name);
            introspects.push(entry.name);
        }
    }
    assert_eq!(
        probes,
        [
            ("github", "github check a token"),
            ("google", "google tokeninfo"),
            ("slack", "slack auth.test"),
            ("twitch", "twitch validate"),
            ("zendesk", "zendesk users/me")
        ]
    );
    assert_eq!(introspects, ["keycloak", "okta"]);
}
