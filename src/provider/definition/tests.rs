//! Unit tests of the definition format: keys, rules between them, templates and plans.

use super::*;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

const MINIMAL: &str = r#"
    method = "POST"
    url = "https://{subdomain}.example.com/oauth/revoke"
    body = "form"
    auth = "client_secret_basic"
    token_field = "token"
    subdomain = "acme"
"#;

#[test]
fn a_minimal_definition_reads_with_defaults_and_its_url_filled() {
    let r = resolve(table(MINIMAL), "p", &[]).unwrap();
    assert_eq!(r.url.as_deref(), Some("https://acme.example.com/oauth/revoke"));
    assert_eq!(
        r.definition.revocable,
        [TokenType::AccessToken, TokenType::RefreshToken]
    );
    assert_eq!(r.definition.success, Success::default());
    assert_eq!(r.definition.secret_use(), SecretUse::Required);
    assert!(r.definition.sends_client_id());
}

#[test]
fn a_missing_template_variable_names_the_key() {
    let text = MINIMAL.replace("subdomain = \"acme\"", "");
    let e = resolve(table(&text), "the zendesk entry", &[]).unwrap_err();
    assert_eq!(e.key, "subdomain");
    assert_eq!(e.message, "must be set: the url of the zendesk entry uses {subdomain}");
}

#[test]
fn a_key_no_template_uses_is_refused_with_close_names() {
    let text = MINIMAL.replace("subdomain = \"acme\"", "subdomain = \"acme\"\nsubdomian = \"x\"");
    let e = resolve(table(&text), "p", &[]).unwrap_err();
    assert_eq!(e.key, "subdomian");
    assert!(e.message.starts_with("unknown field `subdomian`"), "{}", e.message);
    assert!(e.message.contains("did you mean subdomain?"), "{}", e.message);
    let e = resolve(table(&format!("{MINIMAL}\ntimout = \"5s\"")), "p", &["timeout"]).unwrap_err();
    assert!(e.message.contains("did you mean timeout?"), "{}", e.message);
}

#[test]
fn a_url_variable_that_could_change_the_host_is_refused() {
    let text = MINIMAL.replace("\"acme\"", "\"evil.example/x?\"");
    let e = resolve(table(&text), "p", &[]).unwrap_err();
    assert_eq!(e.key, "subdomain");
    assert!(e.message.contains("cannot go in the URL"), "{}", e.message);
}

#[test]
fn rules_between_keys_name_the_key() {
    for (extra, key, says) in [
        (
            "success = { status = [400] }",
            "success.status",
            "400 is not a success status",
        ),
        ("revocable = [\"refresh_token\"]", "not_revocable_reason", "must be set"),
        ("method = \"FETCH\"", "method", "is not one of"),
        (
            "already_invalid = [{ outcome = \"failed\", status = [400] }]",
            "already_invalid[0].outcome",
            "no outcome key",
        ),
        ("errors = [{ status = [404] }]", "errors[0].outcome", "must be set"),
        (
            "errors = [{ status = [404], outcome = \"revoked\" }]",
            "errors[0].outcome",
            "is not one of",
        ),
        (
            "auth = \"client_secret_jwt\"",
            "auth",
            "unknown variant `client_secret_jwt`",
        ),
        ("auth = { authorization = \"{client_id\" }", "auth", "never closed"),
        (
            "success = { status = [\"2xx\"], body = { pointer = \"ok\", equals = true } }",
            "success.body.pointer",
            "not a JSON pointer",
        ),
        ("verify = \"sometimes\"", "verify", "is not one of none, introspect"),
    ] {
        // The later key wins in the merged table, as a provider's key over an entry's.
        let mut t = table(MINIMAL);
        merge(&mut t, table(extra));
        let e = resolve(t, "p", &[]).unwrap_err();
        assert_eq!(e.key, key, "{extra}: {e:?}");
        assert!(e.message.contains(says), "{extra}: {}", e.message);
    }
    let e = resolve(table("method = \"POST\"\nbody = \"none\"\nauth = \"none\""), "p", &[]).unwrap_err();
    assert_eq!(e.key, "token_field", "{e:?}");
    let e = resolve(
        table("method = \"POST\"\nbody = \"form\"\nauth = \"bearer\""),
        "an inline provider",
        &[],
    )
    .unwrap();
    assert_eq!(e.definition.secret_use(), SecretUse::Unused);
    assert!(e.url.is_none());
}

#[test]
fn tables_merge_key_by_key_and_everything_else_is_replaced() {
    let mut base = table("a = 1\n[t]\nx = 1\ny = 2\n");
    merge(&mut base, table("a = [2]\n[t]\ny = 3\nz = 4\n"));
    assert_eq!(base, table("a = [2]\n[t]\nx = 1\ny = 3\nz = 4\n"));
}

#[test]
fn body_conditions_tell_holds_from_contradicted_from_absent() {
    let c = BodyCondition {
        pointer: "/status/error".into(),
        equals: serde_json::Value::Bool(false),
        label: None,
    };
    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(c.test(Some(&json(r#"{"status":{"error":false}}"#))), Test::Holds);
    assert_eq!(c.test(Some(&json(r#"{"status":{"error":true}}"#))), Test::Contradicted);
    assert_eq!(c.test(Some(&json(r#"{"status":{"error":"no"}}"#))), Test::Absent);
    assert_eq!(c.test(Some(&json(r#"{}"#))), Test::Absent);
    assert_eq!(c.test(None), Test::Absent);
}

const REFRESHING: &str = r#"
    method = "POST"
    url = "https://api.example.com/revoke"
    body = "none"
    auth = "bearer"
    revocable = ["access_token"]
    not_revocable_reason = "only access tokens"
    region = "eu"
    [refresh]
    url = "https://{region}.example.com/oauth2/token"
    fields = { grant_type = "refresh_token", refresh_token = "{token}" }
"#;

#[test]
fn a_refresh_table_plans_refresh_tokens_through_a_fresh_access_token() {
    let r = resolve(table(REFRESHING), "p", &[]).unwrap();
    let d = &r.definition;
    assert_eq!(d.plan(TokenType::RefreshToken), Plan::RefreshThenRevoke);
    assert_eq!(d.plan(TokenType::AccessToken), Plan::Call);
    // The default auth of a token endpoint is client_secret_post: both credentials needed.
    assert_eq!(d.secret_use(), SecretUse::Required);
    assert!(d.sends_client_id());
    assert_eq!(d.refresh.as_ref().unwrap().access_token, "/access_token");

    let off = format!("{REFRESHING}\nenabled = false");
    let d = resolve(table(&off), "p", &[]).unwrap().definition;
    assert_eq!(
        d.plan(TokenType::RefreshToken),
        Plan::NotRevocable("only access tokens")
    );
    assert_eq!(d.secret_use(), SecretUse::Unused);
}

#[test]
fn a_bad_refresh_table_names_its_key() {
    let cases = [
        ("auth = \"bearer\"", "refresh.auth"),
        ("body = \"none\"", "refresh.body"),
        ("access_token = \"access_token\"", "refresh.access_token"),
        ("colour = \"blue\"", "refresh.colour"),
    ];
    for (line, key) in cases {
        let text = format!("{REFRESHING}\n{line}");
        let e = resolve(table(&text), "p", &[]).unwrap_err();
        assert!(e.key.starts_with(key), "{line}: {e:?}");
    }
    let no_token = REFRESHING.replace("refresh_token = \"{token}\"", "refresh_token = \"x\"");
    assert_eq!(resolve(table(&no_token), "p", &[]).unwrap_err().key, "refresh.fields");
    let http = REFRESHING.replace("https://{region}", "http://{region}");
    assert_eq!(resolve(table(&http), "p", &[]).unwrap_err().key, "refresh.url");
    let no_access = REFRESHING.replace("revocable = [\"access_token\"]", "revocable = []");
    assert_eq!(resolve(table(&no_access), "p", &[]).unwrap_err().key, "refresh");
    let unset = REFRESHING.replace("region = \"eu\"", "");
    let e = resolve(table(&unset), "p", &[]).unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.message.as_str()),
        ("region", "must be set: refresh.url of p uses {region}")
    );
}

#[test]
fn the_client_id_and_the_token_may_go_in_the_url_and_nothing_else_filled_per_request() {
    let text = MINIMAL
        .replace("/oauth/revoke", "/apps/{client_id}/tokens/{token}")
        .replace("token_field = \"token\"", "");
    let r = resolve(table(&text), "p", &[]).unwrap();
    assert_eq!(
        r.url.as_deref(),
        Some("https://acme.example.com/apps/{client_id}/tokens/{token}")
    );
    assert!(r.definition.sends_client_id());
    let text = MINIMAL.replace("/oauth/revoke", "/oauth/revoke/{client_secret}");
    let e = resolve(table(&text), "p", &[]).unwrap_err();
    assert_eq!(
        (e.key.as_str(), e.message.contains("cannot go in the URL")),
        ("url", true),
        "{e:?}"
    );
    let text = MINIMAL.replace("token_field = \"token\"", "");
    let e = resolve(table(&text), "p", &[]).unwrap_err();
    assert_eq!(e.key, "token_field", "{e:?}");
}

#[test]
fn org_wide_says_why_and_shows_in_what_the_entry_revokes() {
    let r = resolve(
        table(&format!("{MINIMAL}\norg_wide = \"it uninstalls the app\"")),
        "p",
        &[],
    )
    .unwrap();
    assert_eq!(r.definition.org_wide.as_deref(), Some("it uninstalls the app"));
    assert!(r.definition.revokes().ends_with("(org-wide: needs allow_org_wide)"));
    let e = resolve(table(&format!("{MINIMAL}\norg_wide = \" \"")), "p", &[]).unwrap_err();
    assert_eq!(e.key, "org_wide");
}
