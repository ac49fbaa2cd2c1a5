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
//! | `url` | a template: `https://{subdomain}.example.com/revoke`, filled from the provider's own keys (`subdomain = "acme"`) |
//! | `body` | `form`, `json` or `none` |
//! | `auth` | `client_secret_basic` (HTTP Basic), `client_secret_post` (fields in the body), `bearer` (the token itself), `none`, or `{ authorization = "TEMPLATE" }` (a header of the provider's own) |
//! | `basic_form_encoded` | Basic credentials form-encoded first, as RFC 6749 §2.3.1 asks (default `true`) |
//! | `token_field`, `token_type_hint_field` | body field names; no hint field, no hint |
//! | `client_id_field`, `client_secret_field` | body field names for `client_secret_post` (default `client_id`, `client_secret`) |
//! | `credentials_first` | body auth fields before the token fields (default `false`) |
//! | `public_clients` | a client with no secret may call (it sends none) |
//! | `extra_headers` | `{ name = "TEMPLATE" }` |
//! | `request_id_header` | where the provider puts its request id |
//! | `revocable`, `not_revocable_reason` | which token types can be revoked, and why the others cannot |
//! | `pairing`, `unpaired_reason` | `refresh_token_dies_with_access_token`: a refresh token is settled through its paired access token |
//! | `success` | `{ status = ["2xx"], body = { pointer, equals, label }, status_in_body }` |
//! | `already_invalid`, `errors` | rules `{ status, body, outcome }` checked before the shared classifier |
//! | `rate_limit_headers` | the headers the provider sends about its limits |
//! | `source` | `{ url, notes, unverified }`: where the entry was written from |
//!
//! Any other key is a template variable, and must be used by a template: a key that no
//! template uses is a typo, and is refused as one. Reading a definition is strict in the same
//! way everywhere: every error names its key.

use std::collections::BTreeMap;

use reqwest::header::HeaderName;
use serde::Deserialize;
use serde_json::Value as Json;

use super::catalog::close_names;
use super::template::{RUNTIME_NAMES, Template};
use crate::outcome::Outcome;
use crate::token::TokenType;

/// The keys of a definition; every other key of the table is a template variable.
pub(crate) const KEYS: [&str; 25] = [
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
    "source",
    // Reserved for discovery and verification (issue 8), refused until they do something.
    "issuer",
    "verify",
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

/// A status, or a class of them (`"2xx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusPattern {
    Exact(u16),
    Class(u16),
}

impl StatusPattern {
    fn matches(self, status: u16) -> bool {
        match self {
            StatusPattern::Exact(s) => s == status,
            StatusPattern::Class(c) => status / 100 == c,
        }
    }

    /// Whether every status this pattern matches is a 2xx.
    fn within_2xx(self) -> bool {
        match self {
            StatusPattern::Exact(s) => (200..=299).contains(&s),
            StatusPattern::Class(c) => c == 2,
        }
    }
}

impl std::fmt::Display for StatusPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusPattern::Exact(s) => write!(f, "{s}"),
            StatusPattern::Class(c) => write!(f, "{c}xx"),
        }
    }
}

impl<'de> Deserialize<'de> for StatusPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let bad =
            |shown: String| D::Error::custom(format!("{shown} is not an HTTP status (100 to 599) or class (\"2xx\")"));
        match toml::Value::deserialize(d)? {
            toml::Value::Integer(i) => u16::try_from(i)
                .ok()
                .filter(|s| (100..=599).contains(s))
                .map(StatusPattern::Exact)
                .ok_or_else(|| bad(i.to_string())),
            toml::Value::String(s) => match s.as_bytes() {
                [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => Ok(StatusPattern::Class(u16::from(c - b'0'))),
                _ => Err(bad(format!("'{s}'"))),
            },
            other => Err(bad(other.to_string())),
        }
    }
}

/// A condition on a JSON body: the value at `pointer` (RFC 6901) equals `equals`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BodyCondition {
    pub(crate) pointer: String,
    pub(crate) equals: Json,
    /// What the pointer points into, for messages ("OneLogin's status object").
    pub(crate) label: Option<String>,
}

/// What a body says about a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    Holds,
    /// The body has a value of the same kind at the pointer, and it differs: the body
    /// answers the question, and says no.
    Contradicted,
    /// Not JSON, nothing at the pointer, or a value of another kind.
    Absent,
}

impl BodyCondition {
    pub(crate) fn test(&self, json: Option<&Json>) -> Test {
        let Some(found) = json.and_then(|j| j.pointer(&self.pointer)) else {
            return Test::Absent;
        };
        let same_kind = std::mem::discriminant(found) == std::mem::discriminant(&self.equals);
        match (found == &self.equals, same_kind) {
            (true, _) => Test::Holds,
            (false, true) => Test::Contradicted,
            (false, false) => Test::Absent,
        }
    }

    pub(crate) fn describe(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| format!("{} = {} in the body", self.pointer, self.equals))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BodyConditionFile {
    pointer: String,
    equals: toml::Value,
    label: Option<String>,
}

impl BodyConditionFile {
    fn check(self, key: &str) -> Result<BodyCondition, DefinitionError> {
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(DefinitionError::new(
                format!("{key}.pointer"),
                format!(
                    "'{}' is not a JSON pointer (RFC 6901: empty, or starting with /)",
                    self.pointer
                ),
            ));
        }
        let equals = serde_json::to_value(&self.equals)
            .map_err(|e| DefinitionError::new(format!("{key}.equals"), format!("cannot be compared with JSON: {e}")))?;
        Ok(BodyCondition {
            pointer: self.pointer,
            equals,
            label: self.label,
        })
    }
}

/// When an answer counts as a revocation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Success {
    /// Statuses (all 2xx) that may say success.
    pub(crate) status: Vec<StatusPattern>,
    /// A condition the body must meet besides.
    pub(crate) body: Option<BodyCondition>,
    /// Where the body carries the status the answer really has (OneLogin's `/status/code`):
    /// a success status whose body contradicts the condition is classified as that status.
    pub(crate) status_in_body: Option<String>,
}

impl Success {
    pub(crate) fn status_matches(&self, status: u16) -> bool {
        self.status.iter().any(|p| p.matches(status))
    }
}

impl Default for Success {
    fn default() -> Self {
        Success {
            status: vec![StatusPattern::Class(2)],
            body: None,
            status_in_body: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuccessFile {
    status: Option<Vec<StatusPattern>>,
    body: Option<BodyConditionFile>,
    status_in_body: Option<String>,
}

/// An answer the provider documents, and what it means.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// Statuses it applies to; empty, any.
    pub(crate) status: Vec<StatusPattern>,
    pub(crate) body: Option<BodyCondition>,
    pub(crate) outcome: Outcome,
}

impl Rule {
    pub(crate) fn matches(&self, status: u16, json: Option<&Json>) -> bool {
        (self.status.is_empty() || self.status.iter().any(|p| p.matches(status)))
            && self.body.as_ref().is_none_or(|c| c.test(json) == Test::Holds)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    status: Vec<StatusPattern>,
    body: Option<BodyConditionFile>,
    outcome: Option<String>,
}

impl RuleFile {
    /// `list` is `already_invalid` or `errors`; `i` the rule's place in it.
    fn check(self, list: &str, i: usize) -> Result<Rule, DefinitionError> {
        let key = format!("{list}[{i}]");
        if self.status.is_empty() && self.body.is_none() {
            return Err(DefinitionError::new(
                key,
                "a rule needs a status, a body condition, or both",
            ));
        }
        let outcome = match (list, self.outcome.as_deref()) {
            ("already_invalid", None) => Outcome::AlreadyInvalid,
            ("already_invalid", Some(_)) => {
                return Err(DefinitionError::new(
                    format!("{key}.outcome"),
                    "already_invalid rules have no outcome key: their outcome is already_invalid",
                ));
            }
            (_, Some(raw)) => match Outcome::parse(raw) {
                Some(o @ (Outcome::Failed | Outcome::Transient | Outcome::NotRevocable)) => o,
                _ => {
                    return Err(DefinitionError::new(
                        format!("{key}.outcome"),
                        format!("'{raw}' is not one of failed, transient, not_revocable"),
                    ));
                }
            },
            (_, None) => {
                return Err(DefinitionError::new(
                    format!("{key}.outcome"),
                    "must be set: failed, transient or not_revocable",
                ));
            }
        };
        let body = self.body.map(|b| b.check(&format!("{key}.body"))).transpose()?;
        Ok(Rule {
            status: self.status,
            body,
            outcome,
        })
    }
}

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
    source: Option<Source>,
    issuer: Option<toml::Value>,
    verify: Option<toml::Value>,
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
    pub(crate) source: Option<Source>,
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
}

impl Definition {
    pub(crate) fn plan(&self, token_type: TokenType) -> Plan<'_> {
        if self.revocable.contains(&token_type) {
            return Plan::Call;
        }
        match (self.pairing, token_type) {
            (Some(Pairing::RefreshTokenDiesWithAccessToken), TokenType::RefreshToken) => Plan::ViaPairedAccessToken,
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
        self.auth.uses("client_id") || self.extra_headers.iter().any(|(_, t)| t.names().contains(&"client_id"))
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
                Plan::NotRevocable(_) => out.push_str(&format!(" ({ty}: not revocable)")),
            }
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

/// Characters a variable filled into a URL may hold: none of them can end the host or the
/// path segment it is in, so a value cannot send the token to another host.
fn url_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~'))
}

/// Overlays `over` on `base`: tables are merged key by key, anything else is replaced.
pub(crate) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Reads a definition from `table` (a catalogue entry with a provider's keys laid over it,
/// or a provider's keys alone). `what` names it in messages: "the rfc7009 entry".
/// `known` are keys the caller reads itself, offered as close names of a typo.
pub(crate) fn resolve(table: toml::Table, what: &str, known: &[&str]) -> Result<Resolved, DefinitionError> {
    let (definition, vars) = read(table, what, known)?;
    let used = used_names(&definition);
    for (name, template_key) in &used {
        if !RUNTIME_NAMES.contains(&name.as_str()) && !vars.contains_key(name) {
            return Err(DefinitionError::new(
                name.clone(),
                format!("must be set: {template_key} of {what} uses {{{name}}}"),
            ));
        }
    }
    let url = match &definition.url {
        None => None,
        Some(template) => {
            for name in template.names() {
                if RUNTIME_NAMES.contains(&name) {
                    return Err(DefinitionError::new(
                        "url",
                        format!("'{template}' uses {{{name}}}, which cannot go in the URL (yet)"),
                    ));
                }
                if !url_safe(&vars[name]) {
                    return Err(DefinitionError::new(
                        name,
                        format!(
                            "'{}' cannot go in the URL: letters, digits, '-', '.', '_' and '~' only",
                            vars[name]
                        ),
                    ));
                }
            }
            Some(template.render(|n| vars.get(n).map(String::as_str)))
        }
    };
    Ok(Resolved { definition, url, vars })
}

/// Reads the definition in `table` without filling its templates: the definition, and its
/// template variables (the keys that are not definition keys, each used by a template;
/// [`resolve`] checks that every name a template uses is given).
pub(crate) fn read(
    mut table: toml::Table,
    what: &str,
    known: &[&str],
) -> Result<(Definition, BTreeMap<String, String>), DefinitionError> {
    let var_keys: Vec<String> = table.keys().filter(|k| !KEYS.contains(&k.as_str())).cloned().collect();
    let mut raw_vars = toml::Table::new();
    for key in var_keys {
        if let Some(value) = table.remove(&key) {
            raw_vars.insert(key, value);
        }
    }
    let file: DefinitionFile = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        DefinitionError::new(key, message.lines().next().unwrap_or_default().trim())
    })?;
    // Unknown keys first: a typo is the likeliest cause of any other error.
    let used = file_template_names(&file);
    let mut vars = BTreeMap::new();
    for (key, value) in raw_vars {
        if RUNTIME_NAMES.contains(&key.as_str()) {
            return Err(DefinitionError::new(
                key,
                "is filled for each request (client_id, client_secret, token, token_type), not from the config",
            ));
        }
        if !used.contains(&key) {
            let mut candidates: Vec<&str> = KEYS.iter().copied().chain(known.iter().copied()).collect();
            candidates.extend(used.iter().map(String::as_str));
            let close = close_names(&key, &candidates);
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(" or "))
            };
            return Err(DefinitionError::new(
                key.clone(),
                format!("unknown field `{key}`: not a provider key, and no template of {what} uses {{{key}}}{hint}"),
            ));
        }
        let toml::Value::String(text) = value else {
            return Err(DefinitionError::new(key, "a template variable must be a string"));
        };
        vars.insert(key, text);
    }
    Ok((check(file, what)?, vars))
}

/// The names the templates of a definition as written use; a template that does not parse
/// uses none here (`check` reports it).
fn file_template_names(f: &DefinitionFile) -> Vec<String> {
    let parsed = f
        .url
        .iter()
        .chain(f.extra_headers.values())
        .filter_map(|raw| Template::parse(raw).ok());
    let mut names: Vec<String> = Vec::new();
    let auth = match &f.auth {
        Some(Auth::Authorization(t)) => Some(t.clone()),
        _ => None,
    };
    for template in parsed.chain(auth) {
        names.extend(template.names().into_iter().map(str::to_owned));
    }
    names
}

/// Every name the definition's templates use, with the key of the template.
fn used_names(d: &Definition) -> Vec<(String, String)> {
    let mut used = Vec::new();
    let mut add = |t: &Template, key: String| {
        for n in t.names() {
            if !used.iter().any(|(u, _): &(String, String)| u == n) {
                used.push((n.to_owned(), key.clone()));
            }
        }
    };
    if let Some(url) = &d.url {
        add(url, "the url".into());
    }
    if let Auth::Authorization(t) = &d.auth {
        add(t, "auth.authorization".into());
    }
    for (name, t) in &d.extra_headers {
        add(t, format!("extra_headers.{name}"));
    }
    used
}

/// The rules between keys.
fn check(f: DefinitionFile, what: &str) -> Result<Definition, DefinitionError> {
    fn err(key: impl Into<String>, message: impl Into<String>) -> DefinitionError {
        DefinitionError::new(key, message)
    }
    for (key, present) in [("issuer", f.issuer.is_some()), ("verify", f.verify.is_some())] {
        if present {
            return Err(err(
                key,
                "is not supported yet (OIDC discovery and verification come later)",
            ));
        }
    }
    let revocable: Vec<TokenType> = match f.revocable {
        Some(list) => list.into_iter().map(|t| t.0).collect(),
        None => vec![TokenType::AccessToken, TokenType::RefreshToken],
    };
    let required = |key: &str, value: bool| {
        if value {
            Ok(())
        } else {
            Err(err(key, format!("must be set, as {what} has none")))
        }
    };
    required("method", f.method.is_some())?;
    required("body", f.body.is_some())?;
    required("auth", f.auth.is_some())?;
    let raw_method = f.method.unwrap_or_default();
    let method = match raw_method.as_str() {
        "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => {
            reqwest::Method::from_bytes(raw_method.as_bytes()).expect("a standard method")
        }
        other => {
            return Err(err(
                "method",
                format!("'{other}' is not one of GET, POST, PUT, PATCH, DELETE"),
            ));
        }
    };
    let body = f.body.unwrap_or(BodyEncoding::None);
    let auth = f.auth.unwrap_or(Auth::None);
    let url = f
        .url
        .map(|raw| Template::parse(&raw).map_err(|m| err("url", m)))
        .transpose()?;
    let field = |key: &str, value: Option<String>| -> Result<Option<String>, DefinitionError> {
        match value {
            // An empty name turns a field of the entry off (`token_type_hint_field = ""`).
            Some(v) if v.is_empty() => Ok(None),
            Some(_) if body == BodyEncoding::None => Err(err(key, "body = \"none\" carries no fields")),
            other => Ok(other),
        }
    };
    let token_field = field("token_field", f.token_field)?;
    let token_type_hint_field = field("token_type_hint_field", f.token_type_hint_field)?;
    if auth == Auth::ClientSecretPost && body == BodyEncoding::None {
        return Err(err(
            "auth",
            "client_secret_post puts the credentials in the body, and body = \"none\"",
        ));
    }
    let mut extra_headers = Vec::new();
    for (name, value) in f.extra_headers {
        let key = format!("extra_headers.{name}");
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| err(key.clone(), "is not a header name"))?;
        extra_headers.push((header, Template::parse(&value).map_err(|m| err(key, m))?));
    }
    let token_travels =
        token_field.is_some() || auth.uses("token") || extra_headers.iter().any(|(_, t)| t.names().contains(&"token"));
    if !revocable.is_empty() && !token_travels {
        return Err(err(
            "token_field",
            "must be set: the token goes nowhere (no token_field, no auth = \"bearer\", no {token} in a header)",
        ));
    }
    let request_id_header = f
        .request_id_header
        .map(|h| HeaderName::from_bytes(h.as_bytes()).map_err(|_| err("request_id_header", "is not a header name")))
        .transpose()?;
    if let Some(pairing) = f.pairing {
        let Pairing::RefreshTokenDiesWithAccessToken = pairing;
        if !revocable.contains(&TokenType::AccessToken) || revocable.contains(&TokenType::RefreshToken) {
            return Err(err(
                "pairing",
                "refresh_token_dies_with_access_token needs revocable = [\"access_token\"]",
            ));
        }
        if f.unpaired_reason.is_none() {
            return Err(err(
                "unpaired_reason",
                "must be set with pairing: why a refresh token with no pair cannot be revoked",
            ));
        }
    }
    let unplanned = [TokenType::AccessToken, TokenType::RefreshToken]
        .into_iter()
        .any(|t| !(revocable.contains(&t) || t == TokenType::RefreshToken && f.pairing.is_some()));
    if unplanned && f.not_revocable_reason.is_none() {
        return Err(err(
            "not_revocable_reason",
            "must be set: some token types are not revocable, and the audit needs the reason",
        ));
    }
    let success = match f.success {
        None => Success::default(),
        Some(s) => {
            let status = s.status.unwrap_or_else(|| Success::default().status);
            if let Some(bad) = status.iter().find(|p| !p.within_2xx()) {
                return Err(err(
                    "success.status",
                    format!("{bad} is not a success status; only 2xx may be"),
                ));
            }
            if status.is_empty() {
                return Err(err("success.status", "must list at least one 2xx status"));
            }
            if let Some(p) = &s.status_in_body
                && !p.starts_with('/')
            {
                return Err(err("success.status_in_body", format!("'{p}' is not a JSON pointer")));
            }
            Success {
                status,
                body: s.body.map(|b| b.check("success.body")).transpose()?,
                status_in_body: s.status_in_body,
            }
        }
    };
    let already_invalid = f
        .already_invalid
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.check("already_invalid", i))
        .collect::<Result<_, _>>()?;
    let errors = f
        .errors
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.check("errors", i))
        .collect::<Result<_, _>>()?;
    Ok(Definition {
        title: f.title,
        method,
        url,
        body,
        auth,
        basic_form_encoded: f.basic_form_encoded.unwrap_or(true),
        token_field,
        token_type_hint_field,
        client_id_field: f.client_id_field.unwrap_or_else(|| "client_id".into()),
        client_secret_field: f.client_secret_field.unwrap_or_else(|| "client_secret".into()),
        credentials_first: f.credentials_first.unwrap_or(false),
        public_clients: f.public_clients.unwrap_or(false),
        extra_headers,
        request_id_header,
        revocable,
        not_revocable_reason: f.not_revocable_reason,
        pairing: f.pairing,
        unpaired_reason: f.unpaired_reason,
        success,
        already_invalid,
        errors,
        rate_limit_headers: f.rate_limit_headers,
        source: f.source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    const MINIMAL: &str = r#"
        method = "POST"
        url = "https://{subdomain}.example.com/oauth/revoke"
        body = "form"
        auth = "client_secret_basic"
        token_field = "token"
        subdomain = "acme"
    "#;

    #[test]
    fn a_minimal_definition_reads_with_defaults_and_its_url_filled() {
        let r = resolve(table(MINIMAL), "p", &[]).unwrap();
        assert_eq!(r.url.as_deref(), Some("https://acme.example.com/oauth/revoke"));
        assert_eq!(
            r.definition.revocable,
            [TokenType::AccessToken, TokenType::RefreshToken]
        );
        assert_eq!(r.definition.success, Success::default());
        assert_eq!(r.definition.secret_use(), SecretUse::Required);
        assert!(r.definition.sends_client_id());
    }

    #[test]
    fn a_missing_template_variable_names_the_key() {
        let text = MINIMAL.replace("subdomain = \"acme\"", "");
        let e = resolve(table(&text), "the zendesk entry", &[]).unwrap_err();
        assert_eq!(e.key, "subdomain");
        assert_eq!(e.message, "must be set: the url of the zendesk entry uses {subdomain}");
    }

    #[test]
    fn a_key_no_template_uses_is_refused_with_close_names() {
        let text = MINIMAL.replace("subdomain = \"acme\"", "subdomain = \"acme\"\nsubdomian = \"x\"");
        let e = resolve(table(&text), "p", &[]).unwrap_err();
        assert_eq!(e.key, "subdomian");
        assert!(e.message.starts_with("unknown field `subdomian`"), "{}", e.message);
        assert!(e.message.contains("did you mean subdomain?"), "{}", e.message);
        let e = resolve(table(&format!("{MINIMAL}\ntimout = \"5s\"")), "p", &["timeout"]).unwrap_err();
        assert!(e.message.contains("did you mean timeout?"), "{}", e.message);
    }

    #[test]
    fn a_url_variable_that_could_change_the_host_is_refused() {
        let text = MINIMAL.replace("\"acme\"", "\"evil.example/x?\"");
        let e = resolve(table(&text), "p", &[]).unwrap_err();
        assert_eq!(e.key, "subdomain");
        assert!(e.message.contains("cannot go in the URL"), "{}", e.message);
    }

    #[test]
    fn rules_between_keys_name_the_key() {
        for (extra, key, says) in [
            (
                "success = { status = [400] }",
                "success.status",
                "400 is not a success status",
            ),
            ("revocable = [\"refresh_token\"]", "not_revocable_reason", "must be set"),
            ("method = \"FETCH\"", "method", "is not one of"),
            (
                "already_invalid = [{ outcome = \"failed\", status = [400] }]",
                "already_invalid[0].outcome",
                "no outcome key",
            ),
            ("errors = [{ status = [404] }]", "errors[0].outcome", "must be set"),
            (
                "errors = [{ status = [404], outcome = \"revoked\" }]",
                "errors[0].outcome",
                "is not one of",
            ),
            (
                "auth = \"client_secret_jwt\"",
                "auth",
                "unknown variant `client_secret_jwt`",
            ),
            ("auth = { authorization = \"{client_id\" }", "auth", "never closed"),
            (
                "success = { status = [\"2xx\"], body = { pointer = \"ok\", equals = true } }",
                "success.body.pointer",
                "not a JSON pointer",
            ),
            ("issuer = \"https://id.example\"", "issuer", "not supported yet"),
        ] {
            // The later key wins in the merged table, as a provider's key over an entry's.
            let mut t = table(MINIMAL);
            merge(&mut t, table(extra));
            let e = resolve(t, "p", &[]).unwrap_err();
            assert_eq!(e.key, key, "{extra}: {e:?}");
            assert!(e.message.contains(says), "{extra}: {}", e.message);
        }
        let e = resolve(table("method = \"POST\"\nbody = \"none\"\nauth = \"none\""), "p", &[]).unwrap_err();
        assert_eq!(e.key, "token_field", "{e:?}");
        let e = resolve(
            table("method = \"POST\"\nbody = \"form\"\nauth = \"bearer\""),
            "an inline provider",
            &[],
        )
        .unwrap();
        assert_eq!(e.definition.secret_use(), SecretUse::Unused);
        assert!(e.url.is_none());
    }

    #[test]
    fn tables_merge_key_by_key_and_everything_else_is_replaced() {
        let mut base = table("a = 1\n[t]\nx = 1\ny = 2\n");
        merge(&mut base, table("a = [2]\n[t]\ny = 3\nz = 4\n"));
        assert_eq!(base, table("a = [2]\n[t]\nx = 1\ny = 3\nz = 4\n"));
    }

    #[test]
    fn body_conditions_tell_holds_from_contradicted_from_absent() {
        let c = BodyCondition {
            pointer: "/status/error".into(),
            equals: Json::Bool(false),
            label: None,
        };
        let json = |s: &str| serde_json::from_str::<Json>(s).unwrap();
        assert_eq!(c.test(Some(&json(r#"{"status":{"error":false}}"#))), Test::Holds);
        assert_eq!(c.test(Some(&json(r#"{"status":{"error":true}}"#))), Test::Contradicted);
        assert_eq!(c.test(Some(&json(r#"{"status":{"error":"no"}}"#))), Test::Absent);
        assert_eq!(c.test(Some(&json(r#"{}"#))), Test::Absent);
        assert_eq!(c.test(None), Test::Absent);
    }
}
