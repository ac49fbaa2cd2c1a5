//! The provider definition format: how one provider's revocation endpoint is called and how
//! its answers are read, as plain data (TOML). The built-in catalogue (`catalog/*.toml`) is
//! written in it, and the same keys are accepted under `[providers.NAME]`, either over a
//! catalogue entry (`dialect = "NAME"`) or alone, for a provider the catalogue lacks.
//!
//! Keys (see `catalog/rfc7009.toml` for a commented example, and README "Providers"):
//!
//! | key | what |
//! |---|---|
//! | `title` | the provider's name, for people |
//! | `method` | `POST`, `DELETE`, … |
//! | `url` | a template: `https://{subdomain}.example.com/revoke`, filled from the provider's own keys (`subdomain = "acme"`), `{client_id}`, and `{token}` in the path (percent-encoded, per request) |
//! | `body` | `form`, `json` or `none` |
//! | `auth` | `client_secret_basic` (HTTP Basic), `client_secret_post` (fields in the body), `bearer` (the token itself), `none`, or `{ authorization = "TEMPLATE" }` (a header of the provider's own) |
//! | `basic_form_encoded` | Basic credentials form-encoded first, as RFC 6749 §2.3.1 asks (default `true`) |
//! | `token_field`, `token_type_hint_field` | body field names; no hint field, no hint |
//! | `client_id_field`, `client_secret_field` | body field names for `client_secret_post` (default `client_id`, `client_secret`) |
//! | `credentials_first` | body auth fields before the token fields (default `false`) |
//! | `public_clients` | a client with no secret may call (it sends none) |
//! | `client_secret_jwt` | `{ alg = "ES256", audience, lifetime }`: the client secret is a JWT signed with the provider's key (`jwt.rs`) |
//! | `extra_headers` | `{ name = "TEMPLATE" }` |
//! | `request_id_header` | where the provider puts its request id |
//! | `revocable`, `not_revocable_reason` | which token types can be revoked, and why the others cannot |
//! | `pairing`, `unpaired_reason` | `refresh_token_dies_with_access_token`: a refresh token is settled through its paired access token |
//! | `success` | `{ status = ["2xx"], body = { pointer, equals, label }, status_in_body }` |
//! | `already_invalid`, `errors` | rules `{ status, body, outcome }` checked before the shared classifier |
//! | `rate_limit_headers` | the headers the provider sends about its limits |
//! | `refresh` | refresh-then-revoke: a token endpoint that turns a refresh token into a fresh access token to revoke (see `definition/refresh.rs`) |
//! | `org_wide` | why the call acts on a whole organisation: nothing is sent unless the provider sets `allow_org_wide = true` |
//! | `source` | `{ url, notes, unverified }`: where the entry was written from |
//! | `issuer`, `verify`, `introspection_url`, `probe` | OIDC discovery and proof of death (`checks.rs`) |
//!
//! Any other key is a template variable, and must be used by a template: a key that no
//! template uses is a typo, and is refused as one. Reading a definition is strict in the same
//! way everywhere: every error names its key.

use std::collections::BTreeMap;

use reqwest::header::HeaderName;
use serde::Deserialize;

use super::catalog::close_names;
use super::jwt::JwtSpec;
use super::template::{RUNTIME_NAMES, Template, URL_RUNTIME_NAMES, url_safe};
use crate::token::TokenType;

/// The keys of a definition; every other key of the table is a template variable.
pub(crate) const KEYS: [&str; 30] = [
    "title",
    "method",
    "url",
    "body",
    "auth",
    "basic_form_encoded",
    "token_field",
    "token_type_hint_field",
    "client_id_field",
    "client_secret_field",
    "credentials_first",
    "public_clients",
    "client_secret_jwt",
    "extra_headers",
    "request_id_header",
    "revocable",
    "not_revocable_reason",
    "pairing",
    "unpaired_reason",
    "success",
    "already_invalid",
    "errors",
    "rate_limit_headers",
    "refresh",
    "org_wide",
    "source",
    "issuer",
    "verify",
    "introspection_url",
    "probe",
];

/// A definition that cannot be read: the key (relative to the table, `success.status`) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DefinitionError {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl DefinitionError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        DefinitionError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// How the request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BodyEncoding {
    Form,
    Json,
    None,
}

/// Where the client's credentials (or the token, standing in for them) go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `Authorization: Basic base64(id:secret)`.
    ClientSecretBasic,
    /// `client_id` and `client_secret` fields in the body.
    ClientSecretPost,
    /// `Authorization: Bearer <the token being revoked>` (Slack, Dropbox, Zendesk).
    Bearer,
    /// No client authentication (Google, Salesforce).
    None,
    /// `Authorization: <template>` (OneLogin's `client_id:…, client_secret:…`).
    Authorization(Template),
}

impl Auth {
    fn uses(&self, name: &str) -> bool {
        match self {
            Auth::ClientSecretBasic | Auth::ClientSecretPost => matches!(name, "client_id" | "client_secret"),
            Auth::Bearer => name == "token",
            Auth::None => false,
            Auth::Authorization(t) => t.names().contains(&name),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Auth::ClientSecretBasic => "client_secret_basic".into(),
            Auth::ClientSecretPost => "client_secret_post".into(),
            Auth::Bearer => "bearer".into(),
            Auth::None => "none".into(),
            Auth::Authorization(t) => format!("authorization \"{t}\""),
        }
    }
}

impl<'de> Deserialize<'de> for Auth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const EXPECTED: &str = "expected one of `client_secret_basic`, `client_secret_post`, `bearer`, `none`, \
                                or a table { authorization = \"TEMPLATE\" }";
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => match s.as_str() {
                "client_secret_basic" => Ok(Auth::ClientSecretBasic),
                "client_secret_post" => Ok(Auth::ClientSecretPost),
                "bearer" => Ok(Auth::Bearer),
                "none" => Ok(Auth::None),
                other => Err(D::Error::custom(format!("unknown variant `{other}`, {EXPECTED}"))),
            },
            toml::Value::Table(t) => match (t.get("authorization"), t.len()) {
                (Some(toml::Value::String(raw)), 1) => {
                    Template::parse(raw).map(Auth::Authorization).map_err(D::Error::custom)
                }
                _ => Err(D::Error::custom(EXPECTED)),
            },
            _ => Err(D::Error::custom(EXPECTED)),
        }
    }
}

/// What revoking one token does to its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Pairing {
    /// OneLogin API v1: only access tokens are sent, and a refresh token dies with the
    /// access token of its grant (`grant_ref`).
    RefreshTokenDiesWithAccessToken,
}

mod refresh;
use refresh::RefreshFile;
pub(crate) use refresh::{REFRESH_NAMES, Refresh};
pub(crate) mod checks;
mod rules;
pub(crate) use checks::{Checks, VerifyMode};
#[cfg(test)]
use rules::BodyCondition;
pub(crate) use rules::{Rule, Success, Test};
use rules::{RuleFile, SuccessFile};

/// Where an entry was written from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Source {
    /// The documentation page the entry was written from.
    pub(crate) url: String,
    pub(crate) notes: Option<String>,
    /// What the documentation does not settle, and the entry assumes.
    pub(crate) unverified: Option<String>,
}

/// The name of a token type as definitions write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenTypeName(TokenType);

impl<'de> Deserialize<'de> for TokenTypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        TokenType::parse(&raw).map(TokenTypeName).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown token type `{raw}`, expected `access_token` or `refresh_token`"
            ))
        })
    }
}

/// A definition as written, before the rules between its keys are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionFile {
    title: Option<String>,
    method: Option<String>,
    url: Option<String>,
    body: Option<BodyEncoding>,
    auth: Option<Auth>,
    basic_form_encoded: Option<bool>,
    token_field: Option<String>,
    token_type_hint_field: Option<String>,
    client_id_field: Option<String>,
    client_secret_field: Option<String>,
    credentials_first: Option<bool>,
    public_clients: Option<bool>,
    client_secret_jwt: Option<JwtSpec>,
    #[serde(default)]
    extra_headers: BTreeMap<String, String>,
    request_id_header: Option<String>,
    revocable: Option<Vec<TokenTypeName>>,
    not_revocable_reason: Option<String>,
    pairing: Option<Pairing>,
    unpaired_reason: Option<String>,
    success: Option<SuccessFile>,
    #[serde(default)]
    already_invalid: Vec<RuleFile>,
    #[serde(default)]
    errors: Vec<RuleFile>,
    #[serde(default)]
    rate_limit_headers: Vec<String>,
    refresh: Option<RefreshFile>,
    org_wide: Option<String>,
    source: Option<Source>,
    issuer: Option<String>,
    verify: Option<String>,
    introspection_url: Option<String>,
    probe: Option<checks::ProbeFile>,
}

/// A provider definition, checked: what [`super::Provider`] sends and how it reads answers.
#[derive(Debug, Clone)]
pub(crate) struct Definition {
    pub(crate) title: Option<String>,
    pub(crate) method: reqwest::Method,
    /// The URL template; `None` when the provider must give its own (`rfc7009`).
    pub(crate) url: Option<Template>,
    pub(crate) body: BodyEncoding,
    pub(crate) auth: Auth,
    pub(crate) basic_form_encoded: bool,
    pub(crate) token_field: Option<String>,
    pub(crate) token_type_hint_field: Option<String>,
    pub(crate) client_id_field: String,
    pub(crate) client_secret_field: String,
    pub(crate) credentials_first: bool,
    pub(crate) public_clients: bool,
    /// The client secret is a JWT the provider signs (Sign in with Apple).
    pub(crate) client_secret_jwt: Option<JwtSpec>,
    pub(crate) extra_headers: Vec<(HeaderName, Template)>,
    pub(crate) request_id_header: Option<HeaderName>,
    pub(crate) revocable: Vec<TokenType>,
    pub(crate) not_revocable_reason: Option<String>,
    pub(crate) pairing: Option<Pairing>,
    pub(crate) unpaired_reason: Option<String>,
    pub(crate) success: Success,
    pub(crate) already_invalid: Vec<Rule>,
    pub(crate) errors: Vec<Rule>,
    pub(crate) rate_limit_headers: Vec<String>,
    /// Refresh-then-revoke, where the entry has it and it is enabled.
    pub(crate) refresh: Option<Refresh>,
    /// Why the call acts on a whole organisation (Xero's revocation disconnects every tenant):
    /// refused unless the provider sets `allow_org_wide = true`.
    pub(crate) org_wide: Option<String>,
    pub(crate) source: Option<Source>,
    /// Discovery and verification: `issuer`, `verify`, `introspection_url`, `probe`.
    pub(crate) checks: Checks,
}

/// A definition read from a table, with its template variables and its URL filled in.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) definition: Definition,
    /// The URL with every variable filled, not yet parsed; `None` when there is none.
    pub(crate) url: Option<String>,
    /// The template variables, by name.
    pub(crate) vars: BTreeMap<String, String>,
}

/// What to do with one token, decided before any call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan<'a> {
    /// Send a revocation request.
    Call,
    /// The provider cannot revoke this token; the reason goes into the audit row.
    NotRevocable(&'a str),
    /// A refresh token that dies with its paired access token (`grant_ref`): settled
    /// after its pair (OneLogin API v1).
    ViaPairedAccessToken,
    /// A refresh token exchanged for a fresh access token, which is revoked (Dropbox).
    RefreshThenRevoke,
}

impl Definition {
    pub(crate) fn plan(&self, token_type: TokenType) -> Plan<'_> {
        if self.revocable.contains(&token_type) {
            return Plan::Call;
        }
        match (self.pairing, token_type) {
            (Some(Pairing::RefreshTokenDiesWithAccessToken), TokenType::RefreshToken) => Plan::ViaPairedAccessToken,
            (None, TokenType::RefreshToken) if self.refresh.is_some() => Plan::RefreshThenRevoke,
            _ => Plan::NotRevocable(
                self.not_revocable_reason
                    .as_deref()
                    .unwrap_or("the provider cannot revoke it"),
            ),
        }
    }

    /// Whether a client secret must be configured, may be, or must not be.
    pub(crate) fn secret_use(&self) -> SecretUse {
        let sent = self.auth.uses("client_secret")
            || self.refresh.as_ref().is_some_and(|r| {
                r.auth.uses("client_secret") || r.fields.iter().any(|(_, t)| t.names().contains(&"client_secret"))
            })
            || self
                .extra_headers
                .iter()
                .any(|(_, t)| t.names().contains(&"client_secret"));
        match (sent, self.public_clients) {
            (false, _) => SecretUse::Unused,
            (true, true) => SecretUse::Optional,
            (true, false) => SecretUse::Required,
        }
    }

    /// Whether the request carries the client id.
    pub(crate) fn sends_client_id(&self) -> bool {
        self.auth.uses("client_id")
            || self.extra_headers.iter().any(|(_, t)| t.names().contains(&"client_id"))
            || self.refresh.as_ref().is_some_and(|r| {
                r.auth.uses("client_id") || r.fields.iter().any(|(_, t)| t.names().contains(&"client_id"))
            })
            || self.url.as_ref().is_some_and(|t| t.names().contains(&"client_id"))
    }

    /// What the entry revokes, in a few words: `access_token, refresh_token`, or
    /// `refresh_token (access_token: not revocable)`.
    pub(crate) fn revokes(&self) -> String {
        let mut text: Vec<&str> = self.revocable.iter().map(|t| t.as_str()).collect();
        if text.is_empty() {
            text.push("nothing");
        }
        let mut out = text.join(", ");
        for ty in [TokenType::AccessToken, TokenType::RefreshToken] {
            match self.plan(ty) {
                Plan::Call => {}
                Plan::ViaPairedAccessToken => out.push_str(&format!(" ({ty}: with its paired access token)")),
                Plan::RefreshThenRevoke => out.push_str(&format!(" ({ty}: through a fresh access token)")),
                Plan::NotRevocable(_) => out.push_str(&format!(" ({ty}: not revocable)")),
            }
        }
        if self.org_wide.is_some() {
            out.push_str(" (org-wide: needs allow_org_wide)");
        }
        out
    }
}

/// What a definition does with the client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretUse {
    Required,
    /// A public client sends none (`public_clients = true`).
    Optional,
    /// Nothing sends it (`auth = "none"` or `"bearer"`): configuring one is a mistake.
    Unused,
}

mod read;
mod resolve;
pub(crate) use read::{merge, read};
#[cfg(test)]
pub(crate) use resolve::resolve;
pub(crate) use resolve::resolve_with;

#[cfg(test)]
mod tests;
