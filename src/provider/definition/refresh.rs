//! Refresh-then-revoke (issue 8 point 5), as data: where a provider revokes a grant only
//! through an access token (Dropbox; a OneLogin pair whose access token has expired), the
//! refresh token is first exchanged at the provider's token endpoint for a fresh access
//! token, and that one is revoked with the entry's own request. Two calls, two audit rows;
//! the fresh access token is a secret like any other, held in memory for the second call
//! and never stored.
//!
//! The `[refresh]` table of a definition:
//!
//! | key | what |
//! |---|---|
//! | `url` | the token endpoint, a template filled from the provider's keys |
//! | `body` | `form` (default) or `json` |
//! | `auth` | `client_secret_post` (default), `client_secret_basic`, `none`, or `{ authorization = "TEMPLATE" }` |
//! | `fields` | `{ name = "TEMPLATE" }`, sent in name order: `{token}` is the refresh token, `{pair_token}` its paired access token (`grant_ref`) |
//! | `access_token` | JSON pointer to the fresh access token in a success answer (default `/access_token`) |
//! | `already_invalid` | rules for answers that say the refresh token is dead; RFC 6749 §5.2's `invalid_grant` always does |
//! | `enabled` | `false` keeps the table but sends nothing (default `true`); an entry may ship it off, for users to opt in |

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rules::RuleFile;
use super::{Auth, BodyEncoding, DefinitionError, Rule};
use crate::provider::template::Template;

/// The names a refresh template may use besides the provider's own keys.
pub(crate) const REFRESH_NAMES: [&str; 4] = ["client_id", "client_secret", "token", "pair_token"];

/// The `[refresh]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshFile {
    url: Option<String>,
    body: Option<BodyEncoding>,
    auth: Option<Auth>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    access_token: Option<String>,
    #[serde(default)]
    already_invalid: Vec<RuleFile>,
    enabled: Option<bool>,
}

/// How to exchange a refresh token for a fresh access token, checked.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) url: Template,
    pub(crate) body: BodyEncoding,
    pub(crate) auth: Auth,
    pub(crate) fields: Vec<(String, Template)>,
    pub(crate) access_token: String,
    pub(crate) already_invalid: Vec<Rule>,
}

impl RefreshFile {
    /// The template names used, for telling template variables from typos.
    pub(super) fn names(&self) -> Vec<String> {
        let mut raw: Vec<&String> = self.fields.values().collect();
        raw.extend(&self.url);
        let mut names: Vec<String> = raw
            .into_iter()
            .filter_map(|r| Template::parse(r).ok())
            .flat_map(|t| t.names().into_iter().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        if let Some(Auth::Authorization(t)) = &self.auth {
            names.extend(t.names().into_iter().map(str::to_owned));
        }
        names
    }

    /// Checks the table; `None` when it is switched off (`enabled = false`).
    pub(super) fn check(self) -> Result<Option<Refresh>, DefinitionError> {
        let err = |key: &str, message: String| DefinitionError::new(format!("refresh.{key}"), message);
        let url = self
            .url
            .ok_or_else(|| err("url", "must be set: the token endpoint".into()))
            .and_then(|raw| Template::parse(&raw).map_err(|m| err("url", m)))?;
        if let Some(name) = url.names().into_iter().find(|n| REFRESH_NAMES.contains(n)) {
            return Err(err(
                "url",
                format!("'{url}' uses {{{name}}}, which cannot go in the URL"),
            ));
        }
        let body = self.body.unwrap_or(BodyEncoding::Form);
        if body == BodyEncoding::None {
            return Err(err(
                "body",
                "must be form or json: the refresh token goes in the body".into(),
            ));
        }
        let auth = self.auth.unwrap_or(Auth::ClientSecretPost);
        if auth == Auth::Bearer {
            return Err(err(
                "auth",
                "bearer sends the token being revoked, and a token endpoint takes the client's credentials".into(),
            ));
        }
        let mut fields = Vec::new();
        for (name, raw) in self.fields {
            let template = Template::parse(&raw).map_err(|m| err(&format!("fields.{name}"), m))?;
            fields.push((name, template));
        }
        if !fields.iter().any(|(_, t)| t.names().contains(&"token")) {
            return Err(err(
                "fields",
                "must send the refresh token: no field uses {token}".into(),
            ));
        }
        let access_token = self.access_token.unwrap_or_else(|| "/access_token".into());
        if !access_token.starts_with('/') {
            return Err(err("access_token", format!("'{access_token}' is not a JSON pointer")));
        }
        let already_invalid = self
            .already_invalid
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.check("refresh.already_invalid", i))
            .collect::<Result<_, _>>()?;
        if self.enabled == Some(false) {
            return Ok(None);
        }
        Ok(Some(Refresh {
            url,
            body,
            auth,
            fields,
            access_token,
            already_invalid,
        }))
    }
}

impl Refresh {
    /// Every template of the table with the key it is written under.
    pub(super) fn templates(&self) -> Vec<(&Template, String)> {
        let mut all = vec![(&self.url, "refresh.url".to_owned())];
        if let Auth::Authorization(t) = &self.auth {
            all.push((t, "refresh.auth.authorization".to_owned()));
        }
        for (name, t) in &self.fields {
            all.push((t, format!("refresh.fields.{name}")));
        }
        all
    }
}
