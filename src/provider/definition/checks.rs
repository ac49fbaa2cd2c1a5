//! The keys of a definition for OIDC discovery and proof of death, read and checked:
//!
//! | key | what |
//! |---|---|
//! | `issuer` | an OIDC / RFC 8414 issuer, in place of `url`: its metadata gives the revocation endpoint, the client authentication methods and the introspection endpoint (see `provider::discovery`) |
//! | `verify` | `none` (the default), `introspect` (RFC 7662) or `probe` (the entry's own check, `probe`): after a `revoked` answer, ask whether the token is dead (see `provider::verify`) |
//! | `introspection_url` | a template, like `url`: the RFC 7662 endpoint for `verify = "introspect"`; with `issuer`, the metadata's `introspection_endpoint` unless this is set |
//! | `probe` | `{ by, method, url, query, body, auth, token_field, token_types, dead, alive }`: a call that tells a dead token from a live one by its answer (`dead` and `alive` are lists of rules `{ status, body }`, as in `already_invalid`) |

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rules::{BodyCondition, BodyConditionFile, StatusPattern};
use super::{Auth, BodyEncoding, DefinitionError, TokenTypeName};
use crate::provider::template::{RUNTIME_NAMES, Template};
use crate::token::TokenType;

/// Whether, and how, a revocation is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyMode {
    None,
    /// RFC 7662 token introspection at `introspection_url` or the issuer's endpoint.
    Introspect,
    /// The definition's own `probe`.
    Probe,
}

impl VerifyMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            VerifyMode::None => "none",
            VerifyMode::Introspect => "introspect",
            VerifyMode::Probe => "probe",
        }
    }
}

/// The discovery and verification keys of a definition, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Checks {
    /// The issuer as written; `config` checks it as a provider URL.
    pub(crate) issuer: Option<String>,
    pub(crate) verify: VerifyMode,
    pub(crate) introspection_url: Option<Template>,
    pub(crate) probe: Option<Probe>,
}

/// A provider's own check of a token (Slack's `auth.test`, Google's `tokeninfo`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probe {
    /// How the audit names the check: `slack auth.test`.
    pub(crate) by: String,
    pub(crate) method: reqwest::Method,
    pub(crate) url: Template,
    /// Query parameters, each a template that may use `{token}`: sent encoded, and shown
    /// nowhere (a URL with a token in it is a secret).
    pub(crate) query: Vec<(String, Template)>,
    pub(crate) body: BodyEncoding,
    pub(crate) auth: Auth,
    pub(crate) token_field: Option<String>,
    /// The token types the check can tell about; others are settled unchecked.
    pub(crate) token_types: Vec<TokenType>,
    pub(crate) dead: Vec<Answer>,
    pub(crate) alive: Vec<Answer>,
}

/// An answer a check may give: a status (any, if none listed) and a body condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: Vec<StatusPattern>,
    pub(crate) body: Option<BodyCondition>,
}

impl Answer {
    pub(crate) fn matches(&self, status: u16, json: Option<&serde_json::Value>) -> bool {
        super::rules::answer_matches(&self.status, self.body.as_ref(), status, json)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbeFile {
    by: String,
    method: String,
    url: String,
    #[serde(default)]
    query: BTreeMap<String, String>,
    body: Option<BodyEncoding>,
    auth: Option<Auth>,
    token_field: Option<String>,
    token_types: Option<Vec<TokenTypeName>>,
    #[serde(default)]
    dead: Vec<AnswerFile>,
    #[serde(default)]
    alive: Vec<AnswerFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnswerFile {
    #[serde(default)]
    status: Vec<StatusPattern>,
    body: Option<BodyConditionFile>,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> DefinitionError {
    DefinitionError::new(key, message)
}

/// The template names the check keys as written use (`introspection_url`, the probe's URL
/// and query), so a variable only they use is not taken for a typo.
pub(super) fn file_names(introspection_url: Option<&String>, probe: Option<&ProbeFile>) -> Vec<String> {
    let raw = introspection_url
        .into_iter()
        .chain(probe.map(|p| &p.url))
        .chain(probe.into_iter().flat_map(|p| p.query.values()));
    raw.filter_map(|r| Template::parse(r).ok())
        .flat_map(|t| t.names().into_iter().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Reads the check keys. `auth` is the revocation's client authentication, which
/// introspection reuses.
pub(super) fn read(
    issuer: Option<String>,
    verify: Option<String>,
    introspection_url: Option<String>,
    probe: Option<ProbeFile>,
    auth: &Auth,
) -> Result<Checks, DefinitionError> {
    let verify = match verify.as_deref() {
        None | Some("none") => VerifyMode::None,
        Some("introspect") => VerifyMode::Introspect,
        Some("probe") => VerifyMode::Probe,
        Some(other) => {
            return Err(err(
                "verify",
                format!("'{other}' is not one of none, introspect (RFC 7662), probe (the entry's own check)"),
            ));
        }
    };
    if let Some(raw) = &issuer
        && raw.trim().is_empty()
    {
        return Err(err("issuer", "must not be empty"));
    }
    let introspection_url = introspection_url
        .map(|raw| Template::parse(&raw).map_err(|m| err("introspection_url", m)))
        .transpose()?;
    let probe = probe.map(read_probe).transpose()?;
    match verify {
        VerifyMode::Introspect if !matches!(auth, Auth::ClientSecretBasic | Auth::ClientSecretPost) => {
            return Err(err(
                "verify",
                format!(
                    "introspect needs client authentication (RFC 7662 §2.1): auth = client_secret_basic or \
                     client_secret_post, not {}",
                    auth.describe()
                ),
            ));
        }
        VerifyMode::Probe if probe.is_none() => {
            return Err(err(
                "verify",
                "probe needs a probe table: how to ask, and which answers mean dead and alive",
            ));
        }
        _ => {}
    }
    Ok(Checks {
        issuer,
        verify,
        introspection_url,
        probe,
    })
}

fn read_probe(f: ProbeFile) -> Result<Probe, DefinitionError> {
    if f.by.trim().is_empty() {
        return Err(err("probe.by", "must name the check, as the audit shows it"));
    }
    let method = match f.method.as_str() {
        "GET" | "POST" => reqwest::Method::from_bytes(f.method.as_bytes()).expect("a standard method"),
        other => return Err(err("probe.method", format!("'{other}' is not GET or POST"))),
    };
    let url = Template::parse(&f.url).map_err(|m| err("probe.url", m))?;
    // The client id is public and filled when the config is read (GitHub's check URL).
    if let Some(name) = url
        .names()
        .into_iter()
        .find(|n| RUNTIME_NAMES.contains(n) && *n != "client_id")
    {
        return Err(err(
            "probe.url",
            format!("'{url}' uses {{{name}}}, which cannot go in the URL; use probe.query"),
        ));
    }
    let mut query = Vec::new();
    for (name, raw) in f.query {
        let key = format!("probe.query.{name}");
        let template = Template::parse(&raw).map_err(|m| err(key.clone(), m))?;
        if let Some(n) = template.names().into_iter().find(|n| *n == "client_secret") {
            return Err(err(key, format!("uses {{{n}}}: a secret never goes in a URL")));
        }
        query.push((name, template));
    }
    let body = f.body.unwrap_or(BodyEncoding::None);
    let auth = f.auth.unwrap_or(Auth::None);
    let token_field = f.token_field.filter(|t| !t.is_empty());
    if token_field.is_some() && body == BodyEncoding::None {
        return Err(err("probe.token_field", "body = \"none\" carries no fields"));
    }
    if auth == Auth::ClientSecretPost && body == BodyEncoding::None {
        return Err(err(
            "probe.auth",
            "client_secret_post puts the credentials in the body, and body = \"none\"",
        ));
    }
    let in_query = query.iter().any(|(_, t)| t.names().contains(&"token"));
    let in_header = matches!(&auth, Auth::Authorization(t) if t.names().contains(&"token"));
    if token_field.is_none() && auth != Auth::Bearer && !in_query && !in_header {
        return Err(err(
            "probe",
            "the token goes nowhere: set token_field, auth = \"bearer\", an authorization with {token}, or a query \
             value \"{token}\"",
        ));
    }
    let token_types = match f.token_types {
        Some(list) if list.is_empty() => return Err(err("probe.token_types", "must list at least one")),
        Some(list) => list.into_iter().map(|t| t.0).collect(),
        None => vec![TokenType::AccessToken, TokenType::RefreshToken],
    };
    let answers = |list: Vec<AnswerFile>, which: &str| -> Result<Vec<Answer>, DefinitionError> {
        if list.is_empty() {
            return Err(err(
                format!("probe.{which}"),
                format!("must list at least one answer that means {which}"),
            ));
        }
        list.into_iter()
            .enumerate()
            .map(|(i, a)| {
                let key = format!("probe.{which}[{i}]");
                if a.status.is_empty() && a.body.is_none() {
                    return Err(err(key, "an answer needs a status, a body condition, or both"));
                }
                let body = a.body.map(|b| b.check(&format!("{key}.body"))).transpose()?;
                Ok(Answer { status: a.status, body })
            })
            .collect()
    };
    Ok(Probe {
        by: f.by,
        method,
        url,
        query,
        body,
        auth,
        token_field,
        token_types,
        dead: answers(f.dead, "dead")?,
        alive: answers(f.alive, "alive")?,
    })
}

/// The check URLs of a resolved definition, filled from `vars`: the introspection URL when
/// `verify = "introspect"` and the probe's URL when `verify = "probe"` (a template of a
/// check that is off is not filled, so its variables need not be set). Each error names
/// its key.
pub(crate) fn fill_urls(
    checks: &Checks,
    vars: &BTreeMap<String, String>,
    what: &str,
    client_id: &str,
) -> Result<(Option<String>, Option<String>), DefinitionError> {
    let value_of = |name: &str| match name {
        // Public (RFC 6749 §2.2), and in GitHub's check URL.
        "client_id" => Some(client_id),
        other => vars.get(other).map(String::as_str),
    };
    let fill = |template: &Template, key: &str| -> Result<String, DefinitionError> {
        for name in template.names() {
            if RUNTIME_NAMES.contains(&name) && name != "client_id" {
                return Err(err(
                    key,
                    format!("'{template}' uses {{{name}}}, which cannot go in the URL"),
                ));
            }
            let Some(value) = value_of(name) else {
                return Err(err(name, format!("must be set: {key} of {what} uses {{{name}}}")));
            };
            if !crate::provider::template::url_safe(value) {
                return Err(err(
                    name,
                    format!("'{value}' cannot go in the URL: letters, digits, '-', '.', '_' and '~' only"),
                ));
            }
        }
        Ok(template.render(value_of))
    };
    let introspection = match (checks.verify, &checks.introspection_url) {
        (VerifyMode::Introspect, Some(t)) => Some(fill(t, "introspection_url")?),
        _ => None,
    };
    let probe = match (checks.verify, &checks.probe) {
        (VerifyMode::Probe, Some(p)) => {
            for (name, t) in &p.query {
                for n in t.names() {
                    if !RUNTIME_NAMES.contains(&n) && !vars.contains_key(n) {
                        return Err(err(
                            n,
                            format!("must be set: probe.query.{name} of {what} uses {{{n}}}"),
                        ));
                    }
                }
            }
            Some(fill(&p.url, "probe.url")?)
        }
        _ => None,
    };
    Ok((introspection, probe))
}

/// `issuer` replaces `url`: a provider that sets `issuer` drops its entry's `url` and
/// `introspection_url` (the issuer's metadata gives both, unless the provider sets
/// `introspection_url` itself), and one that sets `url` drops its entry's `issuer`. A
/// provider that sets both is refused.
pub(crate) fn issuer_or_url(entry: &mut toml::Table, over: &toml::Table) -> Result<(), DefinitionError> {
    match (over.contains_key("issuer"), over.contains_key("url")) {
        (true, true) => Err(err(
            "issuer",
            "set url or issuer, not both: the issuer's metadata gives the revocation endpoint",
        )),
        (true, false) => {
            entry.remove("url");
            if !over.contains_key("introspection_url") {
                entry.remove("introspection_url");
            }
            Ok(())
        }
        (false, true) => {
            entry.remove("issuer");
            Ok(())
        }
        (false, false) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
