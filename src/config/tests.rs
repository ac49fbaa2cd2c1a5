//! Unit tests of loading the config: defaults, the shipped file, key-named errors.

use super::*;

/// Parses `text` with `env` as the whole environment, then reads every provider secret
/// from it, as a command that calls providers would.
pub(super) fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let config = Config::from_toml(text, Path::new("test.toml"), vars.clone())?;
    config.resolve_secrets(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
    Ok(config)
}

pub(super) const ACME: &str = r#"
    [providers.acme]
    dialect = "rfc7009"
    url = "https://auth.acme.example/oauth2/revoke"
    client_id = "offboard"
    client_secret_env = "ACME_SECRET"
"#;

#[test]
fn a_syntax_error_says_where_without_quoting_the_line() {
    let text = "[database]\nurl = \"postgres://app:hunter2@db/offboard\n";
    let err = Config::from_toml(text, Path::new("bad.toml"), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config file bad.toml is not valid TOML: "), "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn defaults_fill_every_key_but_the_providers() {
    let config = parse("", &[]).unwrap();
    assert_eq!(config.worker.concurrency, Count(64));
    assert_eq!(config.worker.lease.0, Duration::from_secs(60));
    assert_eq!(config.database.url.as_str(), "sqlite://offboard.db");
    assert!(config.providers.is_empty());
}

#[test]
fn the_shipped_default_file_parses_to_the_built_in_defaults() {
    let shipped = parse(include_str!("../../config/offboard.toml"), &[]).unwrap();
    let defaults = parse("", &[]).unwrap();
    assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
}

/// The commented `[[tokens.source]]` example of the shipped file, uncommented, parses: its
/// table headers and key lines are valid and fit together (a provider whose url takes the
/// source's `vars`).
#[test]
fn the_shipped_token_source_example_parses() {
    let shipped = include_str!("../../config/offboard.toml");
    let example = &shipped[shipped
        .find("# Where the application keeps its tokens")
        .expect("the example")..];
    let text: String = example
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.starts_with("[") || l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = parse(&text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let source = &config.tokens[0];
    assert_eq!(source.vars[0].0, "subdomain");
    assert!(source.encryption.is_some());
    assert!(config.providers.contains_key("zendesk"));
}

#[test]
fn type_errors_name_the_key() {
    let err = parse("[worker]\nconcurrency = \"lots\"", &[]).unwrap_err().to_string();
    assert!(
        err.starts_with("worker.concurrency: 'lots' is not a whole number"),
        "{err}"
    );
    let err = parse("[worker]\nlease = \"soon\"", &[]).unwrap_err().to_string();
    assert!(err.starts_with("worker.lease: 'soon' is not a duration"), "{err}");
    let err = parse("[worker]\nconcurrency = 2.5", &[]).unwrap_err().to_string();
    assert_eq!(err, "worker.concurrency: '2.5' is not a whole number");
    let err = parse("[retry]\nfactor = true", &[]).unwrap_err().to_string();
    assert_eq!(err, "retry.factor: expected a number, got a boolean");
    let err = parse("[worker]\nconcurency = 3", &[]).unwrap_err().to_string();
    assert!(err.contains("unknown field `concurency`"), "{err}");
}

/// Every duration key outside `[providers]`, with its upper bound as messages write it
/// (the same bounds are listed in `config/offboard.toml`).
pub(super) const DURATION_KEYS: [(&str, &str, &str); 13] = [
    ("database", "busy_timeout", "5m"),
    ("worker", "lease", "1h"),
    ("worker", "shutdown_grace", "1h"),
    ("worker", "idle_poll", "1h"),
    ("worker", "max_queue_wait", "1h"),
    ("retry", "base", "1m"),
    ("retry", "cap", "10m"),
    ("retry", "retry_after_cap", "10m"),
    ("retry", "max_provider_pause", "1day"),
    ("retry", "durable_base", "1h"),
    ("retry", "durable_cap", "1day"),
    ("policy", "not_revocable_within", "1year"),
    ("http", "connect_timeout", "1m"),
];

/// Every count key outside `[providers]`, with its upper bound.
pub(super) const COUNT_KEYS: [(&str, &str, u32); 6] = [
    ("database", "max_connections", 1000),
    ("worker", "concurrency", 10_000),
    ("worker", "max_attempts", 1000),
    ("worker", "batch_size", 10_000),
    ("retry", "attempts", 100),
    ("http", "max_body_bytes", 16 * 1024 * 1024),
];

/// Issue 7: a duration from the config once overflowed the time arithmetic it fed.
/// Every duration key has an upper bound, and a value past it stops start-up with the
/// key named, from the file or from the environment.
#[test]
fn every_duration_key_has_an_upper_bound_named_in_its_error() {
    for (section, key, max) in DURATION_KEYS {
        let err = parse(&format!("[{section}]\n{key} = \"10y\""), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("{section}.{key}: must be at most {max}, got 10y"));
        let var = format!("OFFBOARD_{section}__{key}").to_ascii_uppercase();
        let err = parse("", &[(&var, "10y")]).unwrap_err().to_string();
        assert_eq!(err, format!("{section}.{key}: must be at most {max}, got 10y"));
    }
    let text = format!("{ACME}\ntimeout = \"1h\"");
    let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
    assert_eq!(err, "providers.acme.timeout: must be at most 5m, got 1h");
}

#[test]
fn durations_that_must_not_be_zero_say_so() {
    let err = parse("[worker]\nlease = \"1s\"", &[]).unwrap_err().to_string();
    assert_eq!(err, "worker.lease: must be at least 2s, got 1s");
    let err = parse("[worker]\nidle_poll = \"0s\"", &[]).unwrap_err().to_string();
    assert_eq!(err, "worker.idle_poll: must be at least 10ms, got 0s");
    let err = parse("[retry]\nmax_provider_pause = \"0s\"", &[])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "retry.max_provider_pause: must be at least 1s, got 0s");
    let text = format!("{ACME}\ntimeout = \"0s\"");
    let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
    assert_eq!(err, "providers.acme.timeout: must be at least 1ms, got 0s");
    let err = parse("[http]\nconnect_timeout = \"0s\"", &[]).unwrap_err().to_string();
    assert_eq!(err, "http.connect_timeout: must be at least 1ms, got 0s");
}

#[test]
fn every_count_key_has_an_upper_bound_named_in_its_error() {
    for (section, key, max) in COUNT_KEYS {
        let ok = parse(&format!("[{section}]\n{key} = {max}"), &[]);
        assert!(ok.is_ok(), "{section}.{key} = {max}: {ok:?}");
        let over = u64::from(max) + 1;
        let err = parse(&format!("[{section}]\n{key} = {over}"), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("{section}.{key}: must be a whole number from 1 to {max}, got {over}")
        );
    }
    let text = format!("{ACME}\nburst = 10001");
    let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
    assert_eq!(
        err,
        "providers.acme.burst: must be a whole number from 1 to 10000, got 10001"
    );
}

#[test]
fn the_longest_provider_pause_is_a_key_of_its_own() {
    assert_eq!(
        parse("", &[]).unwrap().retry.max_provider_pause.0,
        Duration::from_secs(3600)
    );
    let config = parse("[retry]\nmax_provider_pause = \"5m\"", &[]).unwrap();
    assert_eq!(config.retry.max_provider_pause.0, Duration::from_secs(300));
}

const XERO: &str = "[providers.xero]\ndialect = \"xero\"\nclient_id = \"c\"\nclient_secret_env = \"S\"\n";

/// `allow_org_wide` is a key of every provider, a boolean (or its environment override's
/// "true"/"false"); anything else is refused with the key named.
#[test]
fn allow_org_wide_is_a_boolean_of_any_provider() {
    let refusal =
        |text: &str, env: &[(&str, &str)]| parse(text, env).unwrap().providers["xero"].org_wide_refusal("xero");
    let why = refusal(XERO, &[("S", "x")]).expect("refused without the key");
    assert!(why.contains("tenant connection"), "{why}");
    assert!(
        why.ends_with("(org-wide); set providers.xero.allow_org_wide = true to allow it"),
        "{why}"
    );
    assert_eq!(refusal(&format!("{XERO}allow_org_wide = true\n"), &[("S", "x")]), None);
    assert!(refusal(&format!("{XERO}allow_org_wide = false\n"), &[("S", "x")]).is_some());
    let env = [("S", "x"), ("OFFBOARD_PROVIDERS__XERO__ALLOW_ORG_WIDE", "true")];
    assert_eq!(refusal(XERO, &env), None);
    for bad in ["\"yes\"", "1", "\"TRUE\""] {
        let err = parse(&format!("{XERO}allow_org_wide = {bad}\n"), &[("S", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("providers.xero.allow_org_wide: expected true or false, got "),
            "{bad}: {err}"
        );
    }
    // Accepted, and without effect, where nothing is org-wide.
    let acme = parse(&format!("{ACME}allow_org_wide = true\n"), &[("ACME_SECRET", "x")]).unwrap();
    assert_eq!(acme.providers["acme"].org_wide_refusal("acme"), None);
}
