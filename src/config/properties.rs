//! Property tests of the config parser (issue 7): whatever the text, and whatever value a
//! bounded key is given, in the file or in the environment, parsing never panics and ends
//! either in a config whose values are within their documented bounds, or in an error that
//! names the key.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;

use super::tests::{ACME, COUNT_KEYS, DURATION_KEYS};
use super::{Config, ConfigError};

const CASES: u32 = 256;

fn from_toml(text: &str, env: Vec<(String, String)>) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("prop.toml"), env)
}

fn duration_of(config: &Config, section: &str, key: &str) -> Duration {
    match (section, key) {
        ("database", "busy_timeout") => config.database.busy_timeout.0,
        ("worker", "lease") => config.worker.lease.0,
        ("worker", "shutdown_grace") => config.worker.shutdown_grace.0,
        ("worker", "idle_poll") => config.worker.idle_poll.0,
        ("worker", "max_queue_wait") => config.worker.max_queue_wait.0,
        ("retry", "base") => config.retry.base.0,
        ("retry", "cap") => config.retry.cap.0,
        ("retry", "retry_after_cap") => config.retry.retry_after_cap.0,
        ("retry", "max_provider_pause") => config.retry.max_provider_pause.0,
        ("retry", "durable_base") => config.retry.durable_base.0,
        ("retry", "durable_cap") => config.retry.durable_cap.0,
        ("policy", "not_revocable_within") => config.policy.not_revocable_within.0,
        ("http", "connect_timeout") => config.http.connect_timeout.0,
        other => panic!("no duration key {other:?}"),
    }
}

fn count_of(config: &Config, section: &str, key: &str) -> u32 {
    match (section, key) {
        ("database", "max_connections") => config.database.max_connections.get(),
        ("worker", "concurrency") => config.worker.concurrency.get(),
        ("worker", "max_attempts") => config.worker.max_attempts.get(),
        ("worker", "batch_size") => config.worker.batch_size.get(),
        ("retry", "attempts") => config.retry.attempts.get(),
        ("http", "max_body_bytes") => config.http.max_body_bytes.get(),
        other => panic!("no count key {other:?}"),
    }
}

/// Durations as people (and typos) write them, many out of bounds or out of range.
fn duration_text() -> impl Strategy<Value = String> {
    "[0-9]{1,24} ?(ns|us|ms|s|sec|m|min|h|hr|d|w|M|y|years|parsec)?( [0-9]{1,4}(ms|s|m))?"
}

/// Rates as people (and typos) write them.
fn rate_text() -> impl Strategy<Value = String> {
    "-?[0-9]{1,12} ?/ ?(s|m|h|sec|min|hour|day)?"
}

/// Any value a key might be given in TOML.
fn value() -> impl Strategy<Value = toml::Value> {
    prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        (-2i64..=20_000_000).prop_map(toml::Value::Integer),
        any::<f64>().prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        ".{0,30}".prop_map(toml::Value::String),
        duration_text().prop_map(toml::Value::String),
        rate_text().prop_map(toml::Value::String),
        Just(toml::Value::Array(vec![toml::Value::Integer(1)])),
    ]
}

/// A value as an environment variable holds it: always a string.
fn env_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The error names `key`: as the key it is about, or in a rule between keys that it broke
/// (`retry.cap: must not be below retry.base`).
fn names(error: &ConfigError, key: &str) -> bool {
    match error {
        ConfigError::Key { key: k, message } => k == key || message.contains(key),
        _ => false,
    }
}

/// TOML-ish text: lines of sections and keys the config knows, with any values.
fn tomlish() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[database]",
        "[worker]",
        "[retry]",
        "[policy]",
        "[http]",
        "[log]",
        "[server]",
        "[providers.p]",
        "[providers]",
        "[[worker]]",
        "[retry",
    ])
    .prop_map(str::to_owned);
    let key = prop::sample::select(vec![
        "lease",
        "concurrency",
        "base",
        "cap",
        "durable_cap",
        "max_provider_pause",
        "max_body_bytes",
        "timeout",
        "rate",
        "burst",
        "dialect",
        "url",
        "client_id",
        "client_secret_env",
        "schedule",
        "listen",
        "url.x",
    ]);
    let assignment = (key, value()).prop_map(|(k, v)| format!("{k} = {v}"));
    let line = prop_oneof![section, assignment, ".{0,20}"];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

/// A config with one key set to `value`, in the file or through its environment variable.
fn set_key(section: &str, key: &str, value: &toml::Value, from_env: bool) -> Result<Config, ConfigError> {
    if from_env {
        let var = format!("OFFBOARD_{section}__{key}").to_ascii_uppercase();
        from_toml("", vec![(var, env_text(value))])
    } else {
        from_toml(&format!("[{section}]\n{key} = {value}"), Vec::new())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn any_text_parses_or_fails_without_panicking(text in ".{0,300}") {
        let _ = from_toml(&text, Vec::new());
    }

    #[test]
    fn tomlish_text_parses_or_fails_without_panicking(text in tomlish()) {
        let _ = from_toml(&text, Vec::new());
    }

    #[test]
    fn a_duration_key_is_within_its_bound_or_named_in_the_error(
        (section, key, max) in prop::sample::select(DURATION_KEYS.to_vec()),
        value in value(),
        from_env in any::<bool>(),
    ) {
        let full = format!("{section}.{key}");
        let result = set_key(section, key, &value, from_env);
        match result {
            Ok(config) => {
                let max = humantime::parse_duration(max).unwrap();
                let got = duration_of(&config, section, key);
                prop_assert!(got <= max, "{full} = {value}: {got:?} over {max:?}");
            }
            Err(e) => prop_assert!(names(&e, &full), "{full} = {value}: {e}"),
        }
    }

    #[test]
    fn a_count_key_is_within_its_bound_or_named_in_the_error(
        (section, key, max) in prop::sample::select(COUNT_KEYS.to_vec()),
        value in value(),
        from_env in any::<bool>(),
    ) {
        let full = format!("{section}.{key}");
        let result = set_key(section, key, &value, from_env);
        match result {
            Ok(config) => {
                let got = count_of(&config, section, key);
                prop_assert!((1..=max).contains(&got), "{full} = {value}: {got}");
            }
            Err(e) => prop_assert!(names(&e, &full), "{full} = {value}: {e}"),
        }
    }

    #[test]
    fn a_provider_key_is_within_its_bound_or_named_in_the_error(
        key in prop::sample::select(vec!["rate", "burst", "max_in_flight", "timeout"]),
        value in value(),
    ) {
        let full = format!("providers.acme.{key}");
        match from_toml(&format!("{ACME}\n{key} = {value}"), Vec::new()) {
            Ok(config) => {
                let acme = &config.providers["acme"];
                let per_sec = f64::from(acme.rate.count.get()) / acme.rate.per.as_secs_f64();
                prop_assert!(per_sec <= 10_000.0, "{full} = {value}: {per_sec}/s");
                prop_assert!((1..=10_000).contains(&acme.burst.get()));
                prop_assert!((1..=10_000).contains(&acme.max_in_flight.get()));
                let timeout = acme.timeout.0;
                prop_assert!(timeout >= Duration::from_millis(1) && timeout <= Duration::from_secs(300));
            }
            Err(e) => prop_assert!(names(&e, &full), "{full} = {value}: {e}"),
        }
    }
}
