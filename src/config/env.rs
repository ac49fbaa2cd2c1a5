//! Environment overrides: `OFFBOARD_SECTION__KEY=value` replaces key `section.key` of the
//! file before it is parsed.
//!
//! Overrides are applied to the TOML table, not to the parsed config, so an overridden value
//! goes through the same parsing and validation as one written in the file, and its errors
//! name the key the same way. A container gets its settings this way without a rewritten
//! file (DESIGN.md §9; the naming is documented in the README and `config/offboard.toml`).

use super::ConfigError;

/// Prefix of every override variable (and of `OFFBOARD_CONFIG`, which is not one).
const ENV_PREFIX: &str = "OFFBOARD_";

/// Applies `OFFBOARD_A__B__C=value` as key `a.b.c`. Segments match existing keys without
/// regard to case (so `OFFBOARD_PROVIDERS__ACME__URL` finds `[providers.Acme]`); new keys
/// are lower-cased. Values are strings; numeric keys parse them. Variables without `__`
/// (such as `OFFBOARD_CONFIG`) are not overrides.
pub(super) fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let segments: Vec<&str> = rest.split("__").collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::key(
                name.clone(),
                "environment override has an empty key segment",
            ));
        }
        let mut current = &mut *table;
        for (i, segment) in segments.iter().enumerate() {
            let existing = current
                .keys()
                .find(|k| k.eq_ignore_ascii_case(segment))
                .cloned()
                .unwrap_or_else(|| segment.to_ascii_lowercase());
            if i + 1 == segments.len() {
                current.insert(existing, toml::Value::String(value.clone()));
            } else {
                let entry = current
                    .entry(existing.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                current = entry.as_table_mut().ok_or_else(|| {
                    ConfigError::key(
                        name.clone(),
                        format!("{existing} is not a table, so it cannot be overridden by key"),
                    )
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Count;
    use crate::config::tests::{ACME, parse};

    #[test]
    fn environment_overrides_keys_case_insensitively_and_parses_numbers() {
        let config = parse(
            ACME,
            &[
                ("ACME_SECRET", "x"),
                ("OFFBOARD_WORKER__CONCURRENCY", "7"),
                ("OFFBOARD_PROVIDERS__ACME__RATE", "3/m"),
                ("OFFBOARD_DATABASE__URL", "postgres://u@h/db"),
                ("OFFBOARD_CONFIG", "ignored.toml"),
            ],
        )
        .unwrap();
        assert_eq!(config.worker.concurrency, Count(7));
        assert_eq!(config.providers["acme"].rate.per, Duration::from_secs(60));
        assert!(config.database.url.is_postgres());
        let err = parse("", &[("OFFBOARD_WORKER__MAX_ATTEMPTS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("worker.max_attempts: must be a whole number from 1"),
            "{err}"
        );
    }
}
