//! A provider's endpoint: its URL, checked when the config is read, and, for a provider that
//! puts the token in the URL (HubSpot's legacy `DELETE /oauth/v1/refresh-tokens/{token}`),
//! the place of the token in its path.
//!
//! The token is the one secret that may go into a URL, and only into its path. It is filled
//! for each request, percent-encoded as one path segment (every byte but `A-Z a-z 0-9 - . _
//! ~`), so no token can add a segment, a query or a fragment; a URL whose path the parser
//! would still rewrite (a token `.` or `..`, a dot-segment) or an empty token is refused, not
//! sent. The filled URL lives only in the request being sent: `Display` and `Debug` show
//! `{token}`, and the errors of a call are stripped of their URL (`Provider::send`).
//!
//! `{client_id}` is public (RFC 6749 §2.2) and filled when the config is read, as the
//! provider's own variables are, and likewise may hold only characters that cannot move the
//! request to another host or path (GitHub's `/applications/{client_id}/token`).

use std::collections::BTreeMap;
use std::fmt;

use reqwest::Url;

use super::template::{Template, url_safe};
use crate::config::ProviderUrl;
use crate::token::TokenValue;

/// Stands for the token in the URL checked when the config is read: text no URL parser
/// changes in a path, and that no variable filled into a URL can hold (`(` and `)` are not
/// [`url_safe`]).
const MARKER: &str = "(offboard-token)";

/// A provider's URL, with the token's place in its path if it has one.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// With [`MARKER`] where the token goes (and, with per-token variables, a placeholder
    /// for each, only to check the URL's shape).
    url: ProviderUrl,
    token_in_path: bool,
    /// With variables from the token's source (`[[tokens.source]] vars`): the template,
    /// `{client_id}` filled, and those variables' names; the URL is made for each token.
    per_token: Option<(String, Vec<String>)>,
}

/// Why a URL template cannot be an endpoint: the key to name (`url` or `client_id`) and what
/// is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointError {
    pub(crate) key: &'static str,
    pub(crate) message: String,
}

impl Endpoint {
    /// The endpoint of `template`: a URL whose variables are filled but for `{client_id}`,
    /// filled here with `client_id`, and `{token}`, which may stand in its path only.
    pub(crate) fn new(template: &str, client_id: &str) -> Result<Endpoint, EndpointError> {
        let error = |key, message: String| EndpointError {
            key,
            message: message.replace(MARKER, "{token}"),
        };
        let template = Template::parse(template).map_err(|m| error("url", m))?;
        let names = template.names();
        if names.contains(&"client_id") && !url_safe(client_id) {
            return Err(error(
                "client_id",
                format!(
                    "'{client_id}' cannot go in the URL ('{template}' uses {{client_id}}): letters, digits, '-', '.', \
                     '_' and '~' only"
                ),
            ));
        }
        // Any other name comes from the token's source: a placeholder checks the URL's shape.
        let filled = template.render(|n| match n {
            "client_id" => Some(client_id),
            "token" => Some(MARKER),
            _ => Some("offboard-var"),
        });
        let per_token: Vec<String> = names
            .iter()
            .filter(|n| !matches!(**n, "client_id" | "token"))
            .map(|n| (*n).to_owned())
            .collect();
        let per_token = (!per_token.is_empty()).then(|| {
            let braces: Vec<(String, String)> = names.iter().map(|n| (n.to_string(), format!("{{{n}}}"))).collect();
            let kept = template.render(|n| match n {
                "client_id" => Some(client_id),
                _ => braces.iter().find(|(b, _)| b == n).map(|(_, v)| v.as_str()),
            });
            (kept, per_token)
        });
        let url: ProviderUrl = filled.parse().map_err(|e| error("url", e))?;
        let token_in_path = names.contains(&"token");
        if token_in_path {
            let whole = url.0.as_str().matches(MARKER).count();
            let in_path = url.0.path().matches(MARKER).count();
            if in_path == 0 || in_path != whole {
                return Err(error(
                    "url",
                    format!("'{template}' puts {{token}} outside the URL's path; the token may go in the path only"),
                ));
            }
        }
        Ok(Endpoint {
            url,
            token_in_path,
            per_token,
        })
    }

    /// An endpoint with no place for the token (an issuer's discovered endpoint, a check's).
    pub(crate) fn fixed(url: ProviderUrl) -> Endpoint {
        Endpoint {
            url,
            token_in_path: false,
            per_token: None,
        }
    }

    /// The URL itself, for an endpoint that takes no token in its path ([`Endpoint::fixed`]);
    /// with a place for the token, the place is still marked.
    pub(crate) fn base(&self) -> Url {
        self.url.0.clone()
    }

    /// `host[:port]/path`, with `{token}` where the token goes: what `offboard plan` says a
    /// call goes to. No scheme, and no query, which may hold a key.
    pub(crate) fn host_and_path(&self) -> String {
        match &self.per_token {
            // The template as written, from its host to the end of its path.
            Some((template, _)) => {
                let rest = template.split_once("://").map_or(template.as_str(), |(_, r)| r);
                rest.split(['?', '#']).next().unwrap_or(rest).to_owned()
            }
            None => host_and_path(&self.url.0).replace(MARKER, "{token}"),
        }
    }

    /// The values of the URL's query, for scrubbing them from provider error text.
    pub(crate) fn query_values(&self) -> Vec<String> {
        self.url.query_values()
    }

    /// The URL of the request revoking `token`: the endpoint's, with the token in its place
    /// if it has one. An error says why the token cannot go there, never what it is.
    pub(crate) fn url_for(&self, token: &TokenValue) -> Result<Url, String> {
        self.url_for_token(token, &BTreeMap::new())
    }

    /// The endpoint for a token whose source maps `vars` (`[[tokens.source]] vars`): each
    /// variable the URL uses filled with the token's value, which must be letters, digits,
    /// `-`, `.`, `_` or `~` (the rule for the config's variables) and not a dot segment. An
    /// error names the variable, never its value (a wrong mapping could name a token column).
    pub(crate) fn for_token(&self, vars: &BTreeMap<String, String>) -> Result<Endpoint, String> {
        let Some((template, names)) = &self.per_token else {
            return Ok(self.clone());
        };
        for name in names {
            match vars.get(name) {
                None => {
                    return Err(format!(
                        "not sent: the URL uses {{{name}}}, and this token's row has no value for it (NULL, or its \
                         source maps no column to {name})"
                    ));
                }
                Some(v) if !url_safe(v) || v.chars().all(|c| c == '.') => {
                    return Err(format!(
                        "not sent: this token's {{{name}}} cannot go in the URL: letters, digits, '-', '.', '_' and \
                         '~' only, and not '.' or '..'"
                    ));
                }
                Some(_) => {}
            }
        }
        let filled = Template::parse(template)
            .map_err(|m| format!("not sent: {m}"))?
            .render(|n| match n {
                "token" => Some("{token}"),
                other => vars.get(other).map(String::as_str),
            });
        Endpoint::new(&filled, "")
            .map_err(|_| "not sent: the URL made with this token's variables is not one offboard may call".to_owned())
    }

    /// As [`Endpoint::url_for`], for a token whose source maps `vars`.
    pub(crate) fn url_for_token(&self, token: &TokenValue, vars: &BTreeMap<String, String>) -> Result<Url, String> {
        if self.per_token.is_some() {
            return self.for_token(vars)?.url_for(token);
        }
        let mut url = self.url.0.clone();
        if !self.token_in_path {
            return Ok(url);
        }
        let value = token.expose();
        if value.is_empty() {
            return Err("not sent: the token is empty, and this provider takes it in the URL's path".into());
        }
        let path = self.url.0.path().replace(MARKER, &encode_segment(value));
        url.set_path(&path);
        if url.path() != path {
            return Err(
                "not sent: this token would not stay one segment of the URL's path (a '.' or '..' segment)".into(),
            );
        }
        Ok(url)
    }
}

/// `host[:port]/path` of `url`, without its scheme, user info, query or fragment.
pub(crate) fn host_and_path(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{host}:{port}{}", url.path()),
        None => format!("{host}{}", url.path()),
    }
}

/// `value` percent-encoded as the bytes of one path segment: every byte but the unreserved
/// characters of RFC 3986 (`A-Z a-z 0-9 - . _ ~`), so `/`, `?`, `#`, `%` and the rest cannot
/// end the segment.
fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.per_token {
            Some((template, _)) => f.write_str(template),
            None => f.write_str(&self.url.to_string().replace(MARKER, "{token}")),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "https://api.hubapi.com/oauth/v1/refresh-tokens/{token}";

    fn url_for(template: &str, token: &str) -> Result<Url, String> {
        Endpoint::new(template, "")
            .unwrap()
            .url_for(&TokenValue::new(token.into()))
    }

    #[test]
    fn a_token_in_the_path_is_one_encoded_segment_whatever_it_holds() {
        for token in [
            "na1-abc",
            "a/b",
            "../../admin",
            "a?b=c",
            "a#frag",
            "100%",
            "%2e%2e",
            "a/../b",
            "sp ace+plus",
            "é",
            "...",
        ] {
            let url = url_for(LEGACY, token).unwrap();
            assert_eq!(url.host_str(), Some("api.hubapi.com"), "{token}");
            assert_eq!(url.query(), None, "{token}");
            assert_eq!(url.fragment(), None, "{token}");
            let segments: Vec<&str> = url.path_segments().unwrap().collect();
            assert_eq!(segments.len(), 4, "{token}: {}", url.path());
            assert_eq!(&segments[..3], ["oauth", "v1", "refresh-tokens"], "{token}");
            // Encoded, a segment holds no '+', '=' or '&': form decoding is percent decoding.
            let (decoded, _) = url::form_urlencoded::parse(segments[3].as_bytes()).next().unwrap();
            assert_eq!(decoded, token, "{token}");
        }
        assert_eq!(
            url_for(LEGACY, "a/b?c#d%e").unwrap().path(),
            "/oauth/v1/refresh-tokens/a%2Fb%3Fc%23d%25e"
        );
    }

    #[test]
    fn a_token_the_path_would_not_keep_is_not_sent() {
        for token in [".", "..", ""] {
            let err = url_for(LEGACY, token).unwrap_err();
            assert!(err.starts_with("not sent:"), "{token:?}: {err}");
        }
    }

    #[test]
    fn a_url_without_the_token_is_sent_as_it_is() {
        let e = Endpoint::new("https://api.github.com/applications/{client_id}/token", "Iv1.8a61f9b3").unwrap();
        let url = e.url_for(&TokenValue::new("gho_x/y".into())).unwrap();
        assert_eq!(url.as_str(), "https://api.github.com/applications/Iv1.8a61f9b3/token");
        assert_eq!(e.to_string(), "https://api.github.com/applications/Iv1.8a61f9b3/token");
    }

    #[test]
    fn the_token_may_go_in_the_path_only() {
        for template in [
            "https://{token}.example.com/revoke",
            "https://auth.example.com/revoke?token={token}",
            "https://auth.example.com/revoke#{token}",
            "https://auth.example.com/{token}/x?again={token}",
        ] {
            let err = Endpoint::new(template, "").unwrap_err();
            assert_eq!(err.key, "url", "{template}");
            assert!(
                err.message.contains("outside the URL's path") || err.message.contains("is not a URL"),
                "{template}: {}",
                err.message
            );
            assert!(!err.message.contains(MARKER), "{}", err.message);
        }
    }

    #[test]
    fn a_client_id_that_could_move_the_request_is_refused() {
        for id in ["", "evil.example/x?", "a b", "id#"] {
            let err = Endpoint::new("https://api.github.com/applications/{client_id}/token", id).unwrap_err();
            assert_eq!(err.key, "client_id", "{id}");
            assert!(err.message.contains("cannot go in the URL"), "{}", err.message);
        }
    }

    #[test]
    fn a_variable_from_the_token_fills_the_url_when_it_is_url_safe() {
        let e = Endpoint::new("https://{subdomain}.zendesk.com/api/{token}", "").unwrap();
        assert_eq!(e.host_and_path(), "{subdomain}.zendesk.com/api/{token}");
        let vars = |v: &str| BTreeMap::from([("subdomain".to_owned(), v.to_owned())]);
        let url = e
            .url_for_token(&TokenValue::new("t/1".into()), &vars("acme-1"))
            .unwrap();
        assert_eq!(url.as_str(), "https://acme-1.zendesk.com/api/t%2F1");
        for bad in ["evil.com/x", "a?b", "", "..", "a b", "x#"] {
            let err = e.url_for_token(&TokenValue::new("t".into()), &vars(bad)).unwrap_err();
            assert!(err.starts_with("not sent: this token's {subdomain}"), "{bad:?}: {err}");
        }
        let err = e
            .url_for_token(&TokenValue::new("t".into()), &BTreeMap::new())
            .unwrap_err();
        assert!(err.contains("has no value for it"), "{err}");
        let p = Endpoint::new("http://127.0.0.1:9/{tenant}/revoke", "").unwrap();
        let err = p.url_for_token(&TokenValue::new("t".into()), &vars("x")).unwrap_err();
        assert!(err.contains("{tenant}"), "{err}");
        let ok = BTreeMap::from([("tenant".to_owned(), ".x".to_owned())]);
        assert_eq!(
            p.url_for_token(&TokenValue::new("t".into()), &ok).unwrap().path(),
            "/.x/revoke"
        );
    }

    #[test]
    fn it_shows_the_template_of_the_token_never_a_value() {
        let e = Endpoint::new(LEGACY, "").unwrap();
        assert_eq!(e.to_string(), LEGACY);
        assert_eq!(format!("{e:?}"), format!("Endpoint({LEGACY})"));
    }
}
