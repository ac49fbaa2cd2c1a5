//! The URLs of the config: the database's and each provider's. Both are shown in messages
//! and `check-config`, so both know how to show themselves without what is secret in them
//! (a password in user info or in a query parameter), and a provider URL must be `https://`
//! except to loopback.

use std::fmt;
use std::str::FromStr;

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
pub(crate) struct DatabaseUrl(pub(super) String);

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
