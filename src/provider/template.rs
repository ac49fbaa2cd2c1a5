//! `{name}` templates in provider definitions: a URL with a tenant (`https://{subdomain}.…`),
//! a header value (`client_id:{client_id}, client_secret:{client_secret}`).
//!
//! A template is parsed once, when the config is read, so a malformed one is a config error
//! naming its key, and so are names nothing will fill (see `definition.rs`). Values are
//! inserted as they are: where a value goes into a URL, its key is checked to hold only
//! characters that cannot move the request to another host or path ([`url_safe`]); the one
//! value filled into a URL for each request, the token, is percent-encoded (`endpoint.rs`).

use std::fmt;

/// Names filled for each request, never from the config: the client's credentials and the
/// token being revoked.
pub(crate) const RUNTIME_NAMES: [&str; 4] = ["client_id", "client_secret", "token", "token_type"];

/// The names filled for each request that may go in a URL: the client id, which is public
/// (RFC 6749 §2.2), and the token, in the path only (GitHub's `/applications/{client_id}/token`,
/// HubSpot's legacy `/refresh-tokens/{token}`). The secret and the token type never do.
pub(crate) const URL_RUNTIME_NAMES: [&str; 2] = ["client_id", "token"];

/// Whether `value` may be filled into a URL as it is: none of its characters can end the host
/// or the path segment it is in, so it cannot send the request to another host or path.
pub(crate) fn url_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

#[derive(Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(String),
}

/// A string with `{name}` placeholders. `Debug` and `Display` show the template, never a
/// filled value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Template {
    raw: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `raw`. A name is a lower-case letter or `_` followed by lower-case letters,
    /// digits or `_`; a `{` that does not open one, or a stray `}`, is an error.
    pub(crate) fn parse(raw: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(i) = rest.find(['{', '}']) {
            text.push_str(&rest[..i]);
            if rest[i..].starts_with('}') {
                return Err(format!("'{raw}' has a '}}' that closes nothing"));
            }
            let after = &rest[i + 1..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("'{raw}' has a '{{' that is never closed"))?;
            let name = &after[..end];
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(format!(
                    "'{raw}' has a placeholder {{{name}}}; names are lower-case letters, digits and _"
                ));
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Name(name.to_owned()));
            rest = &after[end + 1..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            raw: raw.to_owned(),
            parts,
        })
    }

    /// The names the template uses, in order, each once.
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let Part::Name(n) = part
                && !names.contains(&n.as_str())
            {
                names.push(n);
            }
        }
        names
    }

    /// The template with every name filled by `value`; a name `value` does not know is
    /// left empty (callers check every name is known when the config is read).
    pub(crate) fn render<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(t) => t.as_str(),
                Part::Name(n) => value(n).unwrap_or_default(),
            })
            .collect()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_text_kept() {
        let t = Template::parse("client_id:{client_id}, client_secret:{client_secret}").unwrap();
        assert_eq!(t.names(), ["client_id", "client_secret"]);
        let filled = t.render(|n| match n {
            "client_id" => Some("c1"),
            "client_secret" => Some("s/1"),
            _ => None,
        });
        assert_eq!(filled, "client_id:c1, client_secret:s/1");
        let t = Template::parse("https://{subdomain}.zendesk.com/api/{subdomain}").unwrap();
        assert_eq!(t.names(), ["subdomain"]);
        assert_eq!(t.render(|_| Some("acme")), "https://acme.zendesk.com/api/acme");
        assert_eq!(Template::parse("plain").unwrap().names(), Vec::<&str>::new());
    }

    #[test]
    fn malformed_templates_are_refused_with_the_template_quoted() {
        for (raw, why) in [
            ("https://{subdomain.example", "never closed"),
            ("a}b", "closes nothing"),
            ("{Sub}", "names are lower-case"),
            ("{}", "names are lower-case"),
            ("{a b}", "names are lower-case"),
        ] {
            let err = Template::parse(raw).unwrap_err();
            assert!(err.contains(why) && err.contains(raw), "{raw}: {err}");
        }
    }
}
