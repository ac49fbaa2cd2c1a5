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

/// Whether a URL parameter's value is hidden when the URL is shown: a name (of any case)
/// containing `pass` (`password`, `sslpassword`, `passfile`), `pwd`, `secret`, `token`,
/// `key` (`sslkey`, `api_key`), `credential`, `auth` or `sig`, or no name at all. `passfile`
/// and `sslkey` name files rather than hold secrets; hiding them costs little.
fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.is_empty()
        || ["pass", "pwd", "secret", "token", "key", "credential", "auth", "sig"]
            .iter()
            .any(|word| name.contains(word))
}

/// A query string with the value of each parameter that [`looks_secret`] replaced by
/// `REDACTED`; everything else is kept as written.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if looks_secret(&decode_name(name)) => format!("{name}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A parameter name as a server reads it (form-decoded).
fn decode_name(name: &str) -> String {
    url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// What is shown in place of a URL that does not parse, so nothing of it is shown.
const UNPARSEABLE: &str = "[unparseable URL hidden]";

/// The connection parameters sqlx reads from a PostgreSQL URL (besides `options[NAME]`).
/// Any other is refused: sqlx would ignore it, and log its value as it did.
const POSTGRES_PARAMS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The parameters sqlx reads from an SQLite URL; it refuses any other.
const SQLITE_PARAMS: [&str; 4] = ["mode", "cache", "immutable", "vfs"];

/// A database URL: `sqlite:` or `postgres:`/`postgresql:`, with only the parameters sqlx
/// knows. It is shown only through [`DatabaseUrl::redacted`] (its `Debug` too).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseUrl(String);

impl DatabaseUrl {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres:") || self.0.starts_with("postgresql:")
    }

    /// The URL for messages: the password of the user info and the value of every query
    /// parameter that looks secret (see [`looks_secret`]) replaced by `REDACTED`, a fragment
    /// hidden. A URL that does not parse shows its scheme and `[unparseable URL hidden]`.
    /// SQLite URLs are paths, not parsed URLs (as sqlx reads them): only their query is
    /// redacted.
    pub(crate) fn redacted(&self) -> String {
        let raw = self.0.as_str();
        let Some((scheme, rest)) = raw.split_once(':') else {
            return UNPARSEABLE.to_owned();
        };
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return UNPARSEABLE.to_owned();
        }
        if scheme == "sqlite" {
            return match rest.split_once('?') {
                Some((path, query)) => format!("sqlite:{path}?{}", redact_query(query)),
                None => raw.to_owned(),
            };
        }
        let Ok(mut url) = url::Url::parse(raw) else {
            return format!("{scheme}://{UNPARSEABLE}");
        };
        if url.password().is_some() && url.set_password(Some("REDACTED")).is_err() {
            return format!("{scheme}://{UNPARSEABLE}");
        }
        let query = url.query().map(redact_query);
        let fragment = url.fragment().is_some();
        url.set_query(None);
        url.set_fragment(None);
        let mut out = url.to_string();
        if let Some(query) = query {
            out.push('?');
            out.push_str(&query);
        }
        if fragment {
            out.push_str("#REDACTED");
        }
        out
    }

    /// The values [`DatabaseUrl::redacted`] hides (decoded), for scrubbing them from text
    /// that may quote them, such as a driver's error.
    pub(crate) fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        let query = match url::Url::parse(&self.0) {
            Ok(url) => {
                if let Some(password) = url.password() {
                    out.push(password.to_owned());
                    out.push(percent_decode(password));
                }
                url.query().map(str::to_owned)
            }
            Err(_) => self.0.split_once('?').map(|(_, q)| q.to_owned()),
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            if looks_secret(&name) {
                out.push(value.into_owned());
            }
        }
        out
    }
}

/// Percent-decoding as sqlx applies it to user info (`+` stays `+`; a bad escape stays).
fn percent_decode(text: &str) -> String {
    let hex = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi << 4) | lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// Refuses parameters outside `known` (and PostgreSQL's `options[NAME]`), naming the first.
fn check_params(query: &str, known: &[&str], postgres: bool) -> Result<(), String> {
    for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
        let options = postgres && name.starts_with("options[") && name.ends_with(']');
        if !(known.contains(&name.as_ref()) || options) {
            return Err(format!(
                "unknown connection parameter `{name}` (known: {})",
                known.join(", ")
            ));
        }
    }
    Ok(())
}

impl FromStr for DatabaseUrl {
    type Err = String;
    /// Errors never quote the URL: it may hold a password.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("sqlite:") {
            if let Some((_, query)) = raw.split_once('?') {
                check_params(query, &SQLITE_PARAMS, false)?;
            }
        } else if raw.starts_with("postgres:") || raw.starts_with("postgresql:") {
            let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
            check_params(url.query().unwrap_or_default(), &POSTGRES_PARAMS, true)?;
        } else {
            return Err("must start with sqlite:// or postgres://".into());
        }
        Ok(DatabaseUrl(raw.to_owned()))
    }
}
deserialize_via_from_str!(DatabaseUrl);

/// A provider endpoint: `https://`, or `http://` to a loopback address only, with no user
/// info (credentials belong in `client_id` and the secret source). It is shown (`Display`,
/// `Debug`, errors) without its query and fragment, which may hold an API key or signature:
/// `https://host/path?[query hidden]`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProviderUrl(pub(crate) reqwest::Url);

impl ProviderUrl {
    /// The values of the query, decoded, for scrubbing them from provider error text.
    pub(crate) fn query_values(&self) -> Vec<String> {
        self.0.query_pairs().map(|(_, v)| v.into_owned()).collect()
    }
}

/// `url` as it may be shown.
fn shown(url: &reqwest::Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    let mut out = bare.to_string();
    if url.query().is_some() {
        out.push_str("?[query hidden]");
    }
    if url.fragment().is_some() {
        out.push_str("#[fragment hidden]");
    }
    out
}

impl fmt::Display for ProviderUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shown(&self.0))
    }
}

impl fmt::Debug for ProviderUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProviderUrl({})", shown(&self.0))
    }
}

impl FromStr for ProviderUrl {
    type Err = String;
    /// Errors quote the URL only as it may be shown.
    fn from_str(raw: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("is not a URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "'{}' must not carry a user name or password; the client's credentials go in \
                 client_id and client_secret_env or client_secret_file",
                shown(&url)
            ));
        }
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
                "'{}' must use https:// (plain http is allowed only to loopback addresses)",
                shown(&url)
            )),
            other => Err(format!("'{}' has scheme {other}; use https://", shown(&url))),
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

    /// A URL as written, whether or not the config would accept it: what is shown of it
    /// must hide its secrets either way.
    fn shown(raw: &str) -> String {
        DatabaseUrl(raw.to_owned()).redacted()
    }

    #[test]
    fn database_url_redaction_hides_passwords_in_user_info_and_query() {
        for (raw, want) in [
            (
                "postgres://user:hunter2@db/offboard",
                "postgres://user:REDACTED@db/offboard",
            ),
            (
                "postgres://user@db/offboard?password=hunter2",
                "postgres://user@db/offboard?password=REDACTED",
            ),
            (
                "postgresql://user:hunter2@db:5432/offboard?sslmode=require&password=hunter2",
                "postgresql://user:REDACTED@db:5432/offboard?sslmode=require&password=REDACTED",
            ),
            (
                "postgres:///offboard?host=/run/pg&user=u&password=hunter2",
                "postgres:///offboard?host=/run/pg&user=u&password=REDACTED",
            ),
            (
                "postgres://u@db/o?sslpassword=hunter2",
                "postgres://u@db/o?sslpassword=REDACTED",
            ),
            (
                "postgres://u@db/o?PassWord=hunter2",
                "postgres://u@db/o?PassWord=REDACTED",
            ),
            (
                "postgres://u@db/o?api_token=hunter2",
                "postgres://u@db/o?api_token=REDACTED",
            ),
            (
                "postgres://u@db/o?client_secret=hunter2",
                "postgres://u@db/o?client_secret=REDACTED",
            ),
            ("postgres://u@db/o?sslkey=hunter2", "postgres://u@db/o?sslkey=REDACTED"),
            (
                "postgres://u@db/o?passfile=hunter2",
                "postgres://u@db/o?passfile=REDACTED",
            ),
            (
                "postgres://u@db/o?pass%77ord=hunter2",
                "postgres://u@db/o?pass%77ord=REDACTED",
            ),
            ("sqlite://offboard.db?key=hunter2", "sqlite://offboard.db?key=REDACTED"),
            ("sqlite://offboard.db?mode=rwc", "sqlite://offboard.db?mode=rwc"),
            ("sqlite://my data/offboard.db", "sqlite://my data/offboard.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://user@db/offboard", "postgres://user@db/offboard"),
        ] {
            assert_eq!(shown(raw), want, "{raw}");
        }
    }

    #[test]
    fn database_url_redaction_hides_percent_encoded_and_odd_passwords() {
        for raw in [
            "postgres://user:hunter%32@db/offboard",
            "postgres://user:hunter2@db/offboard?password=hunter%32",
            "postgres://user@db/o?password=hunter2&password=hunter2",
            "postgres://user@db/o#hunter2",
            "postgres://us:er:hunter2@db/o",
            "postgres://user:hun@ter2@db/o",
        ] {
            let out = shown(raw);
            assert!(!out.contains("hunter"), "{raw} shown as {out}");
            assert!(out.starts_with("postgres"), "{raw} shown as {out}");
        }
    }

    #[test]
    fn an_unparseable_database_url_is_hidden_not_shown_raw() {
        for raw in [
            "postgres://u:hun/ter2@h/db",
            "postgres://u:hun?ter2@h/db",
            "postgres://u:hun#ter2@h/db",
            "postgres://u:hunter2@h1:5432,h2:5433/db",
            "postgres://u:hunter2@[::1/db",
            "postgresql://u:hunter2@h:99999/db",
        ] {
            let out = shown(raw);
            assert!(!out.contains("ter2"), "{raw} shown as {out}");
            assert!(out.ends_with("[unparseable URL hidden]"), "{raw} shown as {out}");
        }
    }

    #[test]
    fn database_url_redaction_never_panics() {
        let odd = [
            "",
            "postgres:",
            "postgres://",
            "postgres://@",
            "postgres://:@/",
            "postgres://:hunter2@/",
            "postgres://%zz:%zz@h/%zz?%zz=%zz",
            "postgres://ü:ß@høst/db?pässword=ß",
            "sqlite:",
            "sqlite://",
            "sqlite://?",
            "sqlite://?&&=&",
            "sqlite://x?password",
            "sqlite://x?=hunter2&key",
            "postgres:?password=hunter2",
            "postgres://h/db?password",
            "postgres://h/db?&=&password=&",
            "postgres://[::1]:5432/db?password=hunter2",
        ];
        for raw in odd {
            let out = shown(raw);
            assert!(!out.contains("hunter2"), "{raw} shown as {out}");
            assert!(!out.contains("ß"), "{raw} shown as {out}");
        }
    }

    #[test]
    fn database_urls_with_unknown_or_unparseable_parts_are_refused_without_echoing_them() {
        for raw in [
            "postgres://u@h/db?sslpassword=hunter2",
            "postgres://u@h/db?connect_timeout=hunter2",
            "postgres://u:hun/ter2@h/db",
            "sqlite://offboard.db?key=hunter2",
        ] {
            let err = raw.parse::<DatabaseUrl>().unwrap_err();
            assert!(!err.contains("ter2"), "{raw}: {err}");
        }
        let err = "postgres://u@h/db?sslpassword=x".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.contains("`sslpassword`"), "{err}");
        for ok in [
            "postgres://u:p@h:5432/db?sslmode=require&password=p&application_name=x&options[search_path]=a",
            "postgresql:///db?host=/run/postgresql&user=u",
            "sqlite://offboard.db?mode=rwc",
            "sqlite::memory:",
            "sqlite://offboard.db",
        ] {
            assert!(ok.parse::<DatabaseUrl>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn provider_url_debug_hides_query_values() {
        let url: ProviderUrl = "https://auth.acme.example/revoke?api_key=hunter2&v=2".parse().unwrap();
        let debug = format!("{url:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("https://auth.acme.example/revoke"), "{debug}");
    }

    #[test]
    fn provider_url_with_user_info_is_refused_and_not_echoed() {
        for raw in [
            "https://user:hunter2@auth.acme.example/revoke",
            "https://hunter2@auth.acme.example/revoke",
            "http://user:hunter2@auth.acme.example/revoke?key=hunter2",
            "http://127.0.0.1:8080/revoke?key=hunter2#x",
            "ftp://auth.acme.example/revoke?key=hunter2",
            "not a url hunter2",
        ] {
            match raw.parse::<ProviderUrl>() {
                Ok(url) => assert!(!format!("{url:?}").contains("hunter2"), "{raw}"),
                Err(err) => assert!(!err.contains("hunter2"), "{raw}: {err}"),
            }
        }
        let err = "https://user:hunter2@auth.acme.example/revoke"
            .parse::<ProviderUrl>()
            .unwrap_err();
        assert!(err.contains("user name or password"), "{err}");
    }
}
