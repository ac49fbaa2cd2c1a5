//! The value types of the config: durations, counts, rates, cron schedules, URLs and
//! addresses, each parsed from its written form with a message that says what was expected.
//!
//! They live apart from the schema so that a section reads as a list of keys, and so that
//! every rule about one kind of value (a 5-field cron line is refused, plain http only to
//! loopback, a database password never in `Debug`) sits in one place. Each parses from a
//! string with `FromStr` (environment overrides are always strings); numeric ones also take
//! a TOML number.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Generates a `Deserialize` impl for a newtype parsed from a string with `FromStr`, so a
/// parse error carries its message and `serde_path_to_error` adds the key.
macro_rules! deserialize_via_from_str {
    ($ty:ty) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

mod urls;
pub(crate) use urls::{DatabaseUrl, ProviderUrl};

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

#[cfg(test)]
mod tests;
