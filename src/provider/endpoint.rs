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
    /// With [`MARKER`] where the token goes.
    url: ProviderUrl,
    token_in_path: bool,
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
        let filled = template.render(|n| match n {
            "client_id" => Some(client_id),
            "token" => Some(MARKER),
            _ => None,
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
        Ok(Endpoint { url, token_in_path })
    }

    /// An endpoint with no place for the token (an issuer's discovered endpoint, a check's).
    pub(crate) fn fixed(url: ProviderUrl) -> Endpoint {
        Endpoint {
            url,
            token_in_path: false,
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
        host_and_path(&self.url.0).replace(MARKER, "{token}")
    }

    /// The values of the URL's query, for scrubbing them from provider error text.
    pub(crate) fn query_values(&self) -> Vec<String> {
        self.url.query_values()
    }

    /// The URL of the request revoking `token`: the endpoint's, with the token in its place
    /// if it has one. An error says why the token cannot go there, never what it is.
    pub(crate) fn url_for(&self, token: &TokenValue) -> Result<Url, &'static str> {
        let mut url = self.url.0.clone();
        if !self.token_in_path {
            return Ok(url);
        }
        let value = token.expose();
        if value.is_empty() {
            return Err("not sent: the token is empty, and this provider takes it in the URL's path");
        }
        let path = self.url.0.path().replace(MARKER, &encode_segment(value));
        url.set_path(&path);
        if url.path() != path {
            return Err("not sent: this token would not stay one segment of the URL's path (a '.' or '..' segment)");
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
        f.write_str(&self.url.to_string().replace(MARKER, "{token}"))
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

    fn url_for(template: &str, token: &str) -> Result<Url, &'static str> {
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
    fn it_shows_the_template_of_the_token_never_a_value() {
        let e = Endpoint::new(LEGACY, "").unwrap();
        assert_eq!(e.to_string(), LEGACY);
        assert_eq!(format!("{e:?}"), format!("Endpoint({LEGACY})"));
    }
}
