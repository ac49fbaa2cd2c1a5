//! The value types of the config: durations, counts, rates, cron schedules, URLs and
//! addresses, each parsed from its written form with a message that says what was expected.
//!
//! They live apart from the schema so that a section reads as a list of keys, and so that
//! every rule about one kind of value (a 5-field cron line is refused, plain http only to
//! loopback, a database password never in `Debug`) sits in one place. Each parses from a
//! string with `FromStr` (environment overrides are always strings); numeric ones also take
//! a TOML number.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Generates a `Deserialize` impl for a newtype parsed from a string with `FromStr`, so a
/// parse error carries its message and `serde_path_to_error` adds the key.
macro_rules! deserialize_via_from_str {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A socket address such as `127.0.0.1:9187`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListenAddr(pub(crate) Option<SocketAddr>);

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "off" | "" => Ok(ListenAddr(None)),
            addr => addr
                .parse()
                .map(|a| ListenAddr(Some(a)))
                .map_err(|_| format!("'{raw}' is not an address such as \"127.0.0.1:9187\" (or \"off\")")),
        }
    }
}
deserialize_via_from_str!(ListenAddr);

/// Milliseconds in a second, a minute, an hour, a day and a year as `humantime` counts it
/// (365.25 days), for writing the bounds of duration keys.
pub(crate) const SECOND: u64 = 1000;
pub(crate) const MINUTE: u64 = 60 * SECOND;
pub(crate) const HOUR: u64 = 60 * MINUTE;
pub(crate) const DAY: u64 = 24 * HOUR;
pub(crate) const YEAR: u64 = 31_557_600 * SECOND;

/// A duration written as `60s`, `500ms`, `1h 30m`, from `MIN_MS` to `MAX_MS` milliseconds.
///
/// Every duration key of the config states its own bounds in its type, so a value can
/// never overflow the time arithmetic it feeds (DESIGN.md §3, invariant 9), and a value out
/// of bounds is refused with the key named, as every other parse error:
/// `worker.lease: must be at most 1h, got 10y`. The defaults (no bounds) are for files
/// other than the config, such as the simulator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration<const MIN_MS: u64 = 0, const MAX_MS: u64 = { u64::MAX }>(pub(crate) Duration);

impl<const MIN_MS: u64, const MAX_MS: u64> HumanDuration<MIN_MS, MAX_MS> {
    pub(crate) const MIN: Duration = Duration::from_millis(MIN_MS);
    pub(crate) const MAX: Duration = Duration::from_millis(MAX_MS);
}

impl<const MIN_MS: u64, const MAX_MS: u64> FromStr for HumanDuration<MIN_MS, MAX_MS> {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let value = humantime::parse_duration(raw.trim())
            .map_err(|e| format!("'{raw}' is not a duration such as \"60s\" or \"500ms\" ({e})"))?;
        if value < Self::MIN {
            return Err(format!(
                "must be at least {}, got {}",
                humantime::format_duration(Self::MIN),
                raw.trim()
            ));
        }
        if value > Self::MAX {
            return Err(format!(
                "must be at most {}, got {}",
                humantime::format_duration(Self::MAX),
                raw.trim()
            ));
        }
        Ok(HumanDuration(value))
    }
}

impl<'de, const MIN_MS: u64, const MAX_MS: u64> Deserialize<'de> for HumanDuration<MIN_MS, MAX_MS> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// A positive whole number up to `MAX`. Accepts a TOML integer or a string of digits, so
/// that environment overrides (always strings) work for numeric keys. Keys where a huge
/// value is nonsense (a pool of a billion connections) state a smaller `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count<const MAX: u32 = { u32::MAX }>(pub(crate) u32);

impl<const MAX: u32> Count<MAX> {
    pub(crate) fn get(self) -> u32 {
        self.0
    }
    pub(crate) fn usize(self) -> usize {
        self.0 as usize
    }
}

impl<'de, const MAX: u32> Deserialize<'de> for Count<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value: i64 = number_or_string(d, "a whole number")?;
        match u32::try_from(value) {
            Ok(n) if (1..=MAX).contains(&n) => Ok(Count(n)),
            _ => Err(serde::de::Error::custom(format!(
                "must be a whole number from 1 to {MAX}, got {value}"
            ))),
        }
    }
}

/// A multiplier such as 2 or 1.5, from a TOML number or a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Factor(pub(crate) f64);

impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value: f64 = number_or_string(d, "a number")?;
        if (1.0..=10.0).contains(&value) {
            Ok(Factor(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "must be between 1 and 10, got {value}"
            )))
        }
    }
}

/// A number written as a TOML number or as a string of one (environment overrides are
/// always strings), parsed with `FromStr` either way.
fn number_or_string<'de, D, T>(d: D, what: &str) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
{
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(n) => n.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected {what}, got a {}",
                other.type_str()
            )));
        }
    };
    text.parse::<T>()
        .map_err(|_| serde::de::Error::custom(format!("'{text}' is not {what}")))
}

/// A rate such as `20/s`, `600/m` or `1000/h`, at most [`Rate::MAX_PER_SEC`] a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub(crate) count: NonZeroU32,
    pub(crate) per: Duration,
}

impl Rate {
    /// No provider takes more revocations a second than this; a higher rate is a typo.
    pub(crate) const MAX_PER_SEC: u64 = 10_000;
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("'{raw}' is not a rate such as \"20/s\", \"600/m\" or \"1000/h\"");
        let (count, unit) = raw.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let count = NonZeroU32::new(count).ok_or_else(|| format!("'{raw}': rate must be above zero"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if u64::from(count.get()) > Rate::MAX_PER_SEC * per.as_secs() {
            return Err(format!("must be at most {}/s, got {}", Rate::MAX_PER_SEC, raw.trim()));
        }
        Ok(Rate { count, per })
    }
}
deserialize_via_from_str!(Rate);

/// A cron expression with seconds (6 or 7 fields).
#[derive(Debug, Clone)]
pub(crate) struct CronSchedule(pub(crate) cron::Schedule);

impl FromStr for CronSchedule {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let fields = raw.split_whitespace().count();
        if fields == 5 {
            return Err(format!(
                "'{raw}' has 5 fields; offboard's cron needs 6 or 7, seconds first \
                 (for every minute write \"0 * * * * *\")"
            ));
        }
        cron::Schedule::from_str(raw)
            .map(CronSchedule)
            .map_err(|e| format!("'{raw}' is not a cron expression with seconds first ({e})"))
    }
}
deserialize_via_from_str!(CronSchedule);

/// A database URL: `sqlite:` or `postgres:`/`postgresql:`. Its `Debug` hides any password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseUrl(String);

impl DatabaseUrl {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres:") || self.0.starts_with("postgresql:")
    }
    /// The URL with any password replaced, for messages.
    pub(crate) fn redacted(&self) -> String {
        match reqwest::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("REDACTED"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("sqlite:") || raw.starts_with("postgres:") || raw.starts_with("postgresql:") {
            Ok(DatabaseUrl(raw.to_owned()))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}
deserialize_via_from_str!(DatabaseUrl);

/// A provider endpoint: `https://`, or `http://` to a loopback address only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProviderUrl(pub(crate) reqwest::Url);

impl FromStr for ProviderUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => Ok(ProviderUrl(url)),
            "http" if loopback => Ok(ProviderUrl(url)),
            "http" => Err(format!(
                "'{raw}' must use https:// (plain http is allowed only to loopback addresses)"
            )),
            other => Err(format!("'{raw}' has scheme {other}; use https://")),
        }
    }
}
deserialize_via_from_str!(ProviderUrl);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{ACME, parse};

    #[test]
    fn a_five_field_cron_line_is_explained() {
        let err = parse("[worker]\nschedule = \"*/5 * * * *\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("worker.schedule: '*/5 * * * *' has 5 fields"), "{err}");
    }

    #[test]
    fn plain_http_is_refused_except_to_loopback() {
        let text = ACME.replace("https://auth.acme.example", "http://auth.acme.example");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert!(err.starts_with("providers.acme.url: "), "{err}");
        assert!(err.contains("must use https://"), "{err}");
        let text = ACME.replace("https://auth.acme.example", "http://127.0.0.1:8080");
        assert!(parse(&text, &[("ACME_SECRET", "x")]).is_ok());
    }

    #[test]
    fn rates_parse_with_their_unit() {
        assert_eq!("20/s".parse::<Rate>().unwrap().count.get(), 20);
        assert_eq!("600/m".parse::<Rate>().unwrap().per, Duration::from_secs(60));
        assert!("20 per second".parse::<Rate>().is_err());
        assert!("0/s".parse::<Rate>().is_err());
    }

    #[test]
    fn rates_have_an_upper_bound() {
        assert_eq!("10000/s".parse::<Rate>().unwrap().count.get(), 10_000);
        assert_eq!("600000/m".parse::<Rate>().unwrap().count.get(), 600_000);
        assert_eq!(
            "10001/s".parse::<Rate>().unwrap_err(),
            "must be at most 10000/s, got 10001/s"
        );
        assert!("4000000000/h".parse::<Rate>().is_err());
        let text = format!("{ACME}\nrate = \"1000000/s\"");
        let err = parse(&text, &[("ACME_SECRET", "x")]).unwrap_err().to_string();
        assert_eq!(err, "providers.acme.rate: must be at most 10000/s, got 1000000/s");
    }

    #[test]
    fn a_duration_too_large_for_any_clock_is_an_error_not_a_panic() {
        let err = "99999999999999999999999s"
            .parse::<HumanDuration<0, HOUR>>()
            .unwrap_err();
        assert!(err.starts_with("'99999999999999999999999s' is not a duration"), "{err}");
        let err = "500000000y".parse::<HumanDuration<0, HOUR>>().unwrap_err();
        assert!(
            err.contains("must be at most 1h") || err.contains("is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn database_url_debug_hides_the_password() {
        let url: DatabaseUrl = "postgres://user:hunter2@db/offboard".parse().unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
