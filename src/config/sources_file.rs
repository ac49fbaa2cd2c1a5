//! `[[tokens.source]]` as written, checked into [`super::TokenSource`]s; every error names
//! the source (`tokens.source[N]`) and the key.

use serde::Deserialize;

use super::{ColumnOr, ConfigError, Ident, MAX_NUMBER, Settlement, TokenSource, ValueAt};
use crate::decrypt::EncryptionFile;

/// `[tokens]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensFile {
    #[serde(default)]
    source: Vec<SourceFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceFile {
    name: Option<String>,
    number: Option<i64>,
    table: String,
    #[serde(default = "default_id")]
    id: String,
    #[serde(default = "default_user_id")]
    user_id: String,
    provider: Option<String>,
    provider_value: Option<String>,
    token_type: Option<String>,
    token_type_value: Option<String>,
    value: Option<String>,
    value_json: Option<JsonFile>,
    grant_ref: Option<String>,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    settlement: Option<String>,
    encryption: Option<EncryptionFile>,
    /// Provider URL template variables from columns: `{ subdomain = "tenant_subdomain" }`.
    #[serde(default)]
    vars: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    column: String,
    path: String,
}

fn default_id() -> String {
    "id".into()
}

fn default_user_id() -> String {
    "user_id".into()
}

impl TokensFile {
    /// The sources, checked; the default `oauth_tokens` when none is written.
    pub(crate) fn validate(self) -> Result<Vec<TokenSource>, ConfigError> {
        if self.source.is_empty() {
            return Ok(vec![TokenSource::default_oauth_tokens()]);
        }
        let several = self.source.len() > 1;
        let mut out: Vec<TokenSource> = Vec::new();
        for (i, s) in self.source.into_iter().enumerate() {
            let source = s.validate(i, several)?;
            if let Some(other) = out.iter().find(|o| o.number == source.number) {
                return Err(ConfigError::key(
                    format!("{}.number", source.at),
                    format!("{} is already the number of {}", source.number, other.at),
                ));
            }
            if let Some(other) = out.iter().find(|o| o.name == source.name) {
                return Err(ConfigError::key(
                    format!("{}.name", source.at),
                    format!("'{}' is already the name of {}", source.name, other.at),
                ));
            }
            out.push(source);
        }
        Ok(out)
    }
}

impl SourceFile {
    fn validate(self, index: usize, several: bool) -> Result<TokenSource, ConfigError> {
        let at = format!("tokens.source[{index}]");
        let key = |k: &str| format!("{at}.{k}");
        let col = |k: &str, raw: &str| Ident::column(&key(k), raw);
        let table = Ident::parse(&key("table"), &self.table)?;
        let number = match self.number {
            Some(n) if (0..=MAX_NUMBER).contains(&n) => n,
            Some(_) => {
                return Err(ConfigError::key(
                    key("number"),
                    format!("must be from 0 to {MAX_NUMBER}"),
                ));
            }
            None if several => {
                return Err(ConfigError::key(
                    key("number"),
                    "is required when there are several sources: it keeps token ids apart (id = number × 2^40 + \
                     row id); never reuse one",
                ));
            }
            None => 0,
        };
        let name = match self.name {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 64
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) =>
            {
                n
            }
            Some(_) => {
                return Err(ConfigError::key(
                    key("name"),
                    "must be 1 to 64 letters, digits, '_', '-' or '.'",
                ));
            }
            None => format!("{}#{number}", table.as_written()),
        };
        let provider = one_of(
            &key("provider"),
            &key("provider_value"),
            self.provider,
            self.provider_value,
            |v| constant(&key("provider_value"), v),
        )?;
        let token_type = one_of(
            &key("token_type"),
            &key("token_type_value"),
            self.token_type,
            self.token_type_value,
            |v| match crate::token::TokenType::parse(v) {
                Some(_) => Ok(()),
                None => Err(ConfigError::key(
                    key("token_type_value"),
                    "must be \"access_token\" or \"refresh_token\"",
                )),
            },
        )?;
        let value = match (self.value, self.value_json) {
            (Some(c), None) => ValueAt::Column(col("value", &c)?),
            (None, Some(j)) => ValueAt::Json {
                column: col("value_json.column", &j.column)?,
                path: pointer(&key("value_json.path"), &j.path)?,
            },
            _ => {
                return Err(ConfigError::key(
                    key("value"),
                    "give exactly one of `value` and `value_json`",
                ));
            }
        };
        let settlement = match (self.settlement.as_deref(), self.revoked_at) {
            (Some("offboard"), None) => Settlement::Offboard,
            (Some("column") | None, Some(c)) => Settlement::Column(col("revoked_at", &c)?),
            (Some("offboard"), Some(_)) => {
                return Err(ConfigError::key(
                    key("revoked_at"),
                    "is not written with settlement = \"offboard\": remove one of them",
                ));
            }
            (Some("column") | None, None) => {
                return Err(ConfigError::key(
                    key("revoked_at"),
                    "is required (the column offboard sets), unless settlement = \"offboard\"",
                ));
            }
            (Some(_), _) => {
                return Err(ConfigError::key(
                    key("settlement"),
                    "must be \"column\" or \"offboard\"",
                ));
            }
        };
        let encryption = self.encryption.map(|e| e.validate(&key("encryption"))).transpose()?;
        let mut vars = Vec::with_capacity(self.vars.len());
        for (name, column) in &self.vars {
            let at = key(&format!("vars.{name}"));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::key(
                    at,
                    "a template variable's name is letters, digits and '_'",
                ));
            }
            if crate::provider::template::RUNTIME_NAMES.contains(&name.as_str()) {
                return Err(ConfigError::key(
                    at,
                    "is filled for each request (client_id, client_secret, token, token_type), not from a column",
                ));
            }
            let column = Ident::column(&at, column)?;
            let value_column = match &value {
                ValueAt::Column(c) => c,
                ValueAt::Json { column, .. } => column,
            };
            if &column == value_column {
                // It would put the token in the URL, and in what `offboard plan` prints.
                return Err(ConfigError::key(at, "must not be the token's own column"));
            }
            vars.push((name.clone(), column));
        }
        Ok(TokenSource {
            name,
            number,
            table,
            id: col("id", &self.id)?,
            user_id: col("user_id", &self.user_id)?,
            provider,
            token_type,
            value,
            grant_ref: self.grant_ref.map(|c| col("grant_ref", &c)).transpose()?,
            expires_at: self.expires_at.map(|c| col("expires_at", &c)).transpose()?,
            settlement,
            encryption,
            vars,
            at,
        })
    }
}

/// A column key or a constant key, exactly one.
fn one_of(
    column_key: &str,
    value_key: &str,
    column: Option<String>,
    value: Option<String>,
    check: impl Fn(&str) -> Result<(), ConfigError>,
) -> Result<ColumnOr, ConfigError> {
    match (column, value) {
        (Some(c), None) => Ok(ColumnOr::Column(Ident::column(column_key, &c)?)),
        (None, Some(v)) => {
            check(&v)?;
            Ok(ColumnOr::Value(v))
        }
        _ => Err(ConfigError::key(
            column_key,
            format!("give exactly one of `{}` and `{}`", last(column_key), last(value_key)),
        )),
    }
}

fn last(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// A constant spliced as an SQL string literal: a narrow alphabet, so it needs no escaping.
fn constant(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() || v.len() > 128 || !v.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        return Err(ConfigError::key(
            key,
            "must be 1 to 128 letters, digits, '_', '-' or '.'",
        ));
    }
    Ok(())
}

/// An RFC 6901 JSON pointer, `/a/b/0`, restricted to segments of letters, digits, `_` and `-`.
pub(super) fn pointer(key: &str, raw: &str) -> Result<Vec<String>, ConfigError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(ConfigError::key(
            key,
            "must be a JSON pointer such as \"/refresh_token\"",
        ));
    };
    let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
    let ok =
        |s: &String| !s.is_empty() && s.len() <= 63 && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    if segments.len() > 8 || !segments.iter().all(ok) {
        return Err(ConfigError::key(
            key,
            "each segment of the pointer must be letters, digits, '_' or '-' (at most 8 segments)",
        ));
    }
    Ok(segments)
}
