//! `[[tokens.source]]`: where the application keeps its tokens, and how its columns map to
//! what offboard needs (issue 9). With no entry, the one source is today's `oauth_tokens`.
//!
//! Every identifier (table, column) is checked here, letters, digits and `_` with one
//! optional `schema.` prefix, and is only ever spliced into SQL double-quoted
//! ([`Ident::quoted`]). Constants (`provider_value`, `token_type_value`) and JSON pointer
//! segments have their own narrow alphabets, so nothing in a mapping can reach SQL raw.
//!
//! Token ids across sources: a source has a `number`, and the id offboard uses for a row (in
//! the audit, in errors, in the settlement table) is `number × 2^40 + the row's id`. The
//! default source is number 0, so the ids of `oauth_tokens` are unchanged. A number must
//! never be reused for another table, as the audit refers to rows by it.

use super::ConfigError;
use crate::decrypt::EncryptionConfig;
pub(super) use file::TokensFile;

#[path = "sources_file.rs"]
mod file;

/// Rows of one source have ids below this; the source's number multiplies it.
pub(crate) const ID_SPACE: i64 = 1 << 40;
/// Largest source number: `number × 2^40` must fit in an `i64`.
const MAX_NUMBER: i64 = i64::MAX / ID_SPACE - 1;

/// A checked SQL identifier: `name` or `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    parts: Vec<String>,
}

impl Ident {
    pub(crate) fn parse(key: &str, raw: &str) -> Result<Ident, ConfigError> {
        let parts: Vec<&str> = raw.split('.').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 63
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !p.starts_with(|c: char| c.is_ascii_digit())
        };
        if parts.len() > 2 || !parts.iter().all(|p| ok(p)) {
            return Err(ConfigError::key(
                key,
                "must be an identifier (letters, digits and _, not starting with a digit), with one optional \
                 `schema.` prefix",
            ));
        }
        Ok(Ident {
            parts: parts.into_iter().map(str::to_owned).collect(),
        })
    }

    pub(super) fn column(key: &str, raw: &str) -> Result<Ident, ConfigError> {
        let ident = Ident::parse(key, raw)?;
        if ident.parts.len() > 1 {
            return Err(ConfigError::key(
                key,
                "must be a column name, without a table or schema",
            ));
        }
        Ok(ident)
    }

    /// Double-quoted, part by part: safe to splice (the alphabet has no quote).
    pub(crate) fn quoted(&self) -> String {
        self.parts
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The schema, if one was named, and the bare name.
    pub(crate) fn schema_and_name(&self) -> (Option<&str>, &str) {
        match self.parts.as_slice() {
            [schema, name] => (Some(schema), name),
            [name] => (None, name),
            _ => unreachable!("checked in parse"),
        }
    }

    pub(crate) fn as_written(&self) -> String {
        self.parts.join(".")
    }
}

/// A column, or one value for every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnOr {
    Column(Ident),
    Value(String),
}

/// Where the token value is: a column, or a JSON pointer into a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ValueAt {
    Column(Ident),
    Json { column: Ident, path: Vec<String> },
}

/// Where a settlement is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    /// `revoked_at` set on the application's row (value-conditionally).
    Column(Ident),
    /// A row in offboard's own `offboard_token_settlements`; the application's table is only
    /// read.
    Offboard,
}

/// One source, checked.
#[derive(Debug, Clone)]
pub(crate) struct TokenSource {
    /// For messages and the settlement table.
    pub(crate) name: String,
    pub(crate) number: i64,
    /// `tokens.source[N]`, for messages.
    pub(crate) at: String,
    pub(crate) table: Ident,
    pub(crate) id: Ident,
    pub(crate) user_id: Ident,
    pub(crate) provider: ColumnOr,
    pub(crate) token_type: ColumnOr,
    pub(crate) value: ValueAt,
    pub(crate) grant_ref: Option<Ident>,
    pub(crate) expires_at: Option<Ident>,
    pub(crate) settlement: Settlement,
    pub(crate) encryption: Option<EncryptionConfig>,
    /// Provider URL template variables filled from the row's columns, by name.
    pub(crate) vars: Vec<(String, Ident)>,
}

impl TokenSource {
    /// Today's `oauth_tokens`, DESIGN.md §1.
    pub(crate) fn default_oauth_tokens() -> TokenSource {
        let c = |n: &str| Ident::parse("tokens", n).expect("built-in identifier");
        TokenSource {
            name: "oauth_tokens".into(),
            number: 0,
            at: "tokens (default source)".into(),
            table: c("oauth_tokens"),
            id: c("id"),
            user_id: c("user_id"),
            provider: ColumnOr::Column(c("provider")),
            token_type: ColumnOr::Column(c("token_type")),
            value: ValueAt::Column(c("token")),
            grant_ref: Some(c("grant_ref")),
            expires_at: Some(c("expires_at")),
            settlement: Settlement::Column(c("revoked_at")),
            encryption: None,
            vars: Vec::new(),
        }
    }

    /// Whether this is the built-in `oauth_tokens`, used when no source is configured.
    pub(crate) fn is_builtin(&self) -> bool {
        self.at.starts_with("tokens (default")
    }

    /// The id offboard uses for the row `row_id` of this source.
    pub(crate) fn token_id(&self, row_id: i64) -> Option<i64> {
        (0..ID_SPACE).contains(&row_id).then(|| self.number * ID_SPACE + row_id)
    }

    /// Every column the mapping names, with the key that names it.
    pub(crate) fn columns(&self) -> Vec<(String, &Ident)> {
        let mut out = vec![
            (format!("{}.id", self.at), &self.id),
            (format!("{}.user_id", self.at), &self.user_id),
        ];
        if let ColumnOr::Column(c) = &self.provider {
            out.push((format!("{}.provider", self.at), c));
        }
        if let ColumnOr::Column(c) = &self.token_type {
            out.push((format!("{}.token_type", self.at), c));
        }
        match &self.value {
            ValueAt::Column(c) => out.push((format!("{}.value", self.at), c)),
            ValueAt::Json { column, .. } => out.push((format!("{}.value_json.column", self.at), column)),
        }
        if let Some(c) = &self.grant_ref {
            out.push((format!("{}.grant_ref", self.at), c));
        }
        if let Some(c) = &self.expires_at {
            out.push((format!("{}.expires_at", self.at), c));
        }
        if let Settlement::Column(c) = &self.settlement {
            out.push((format!("{}.revoked_at", self.at), c));
        }
        for (name, c) in &self.vars {
            out.push((format!("{}.vars.{name}", self.at), c));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::file::pointer;
    use super::*;

    #[test]
    fn identifiers_are_checked() {
        assert!(Ident::parse("k", "public.tokens").is_ok());
        assert_eq!(Ident::parse("k", "app.tokens").unwrap().quoted(), "\"app\".\"tokens\"");
        for bad in ["", "a.b.c", "x;drop", "t\"", "1abc", "a b", "a."] {
            assert!(Ident::parse("k", bad).is_err(), "{bad}");
        }
        assert!(Ident::column("k", "s.c").is_err());
    }

    #[test]
    fn a_source_variable_may_stand_in_a_providers_url_only() {
        let config = |provider: &str, var: &str| {
            let text = format!(
                "[database]\nurl = \"sqlite://x.db\"\n[providers.t]\ndialect = \"rfc7009\"\n{provider}\nclient_id = \"c\"\nclient_secret_env = \"X\"\n\
                 [[tokens.source]]\ntable = \"c\"\nprovider_value = \"t\"\ntoken_type_value = \"access_token\"\n\
                 value = \"v\"\nrevoked_at = \"r\"\nvars = {{ {var} }}\n"
            );
            crate::config::Config::from_toml(&text, std::path::Path::new("t"), Vec::new())
        };
        let ok = config(
            "url = \"https://{tenant}.example.com/revoke\"",
            "tenant = \"tenant_col\"",
        )
        .unwrap();
        assert_eq!(ok.tokens[0].vars[0].0, "tenant");
        let err = config(
            "url = \"https://a.example.com/revoke\"\nextra_headers = { x-tenant = \"{tenant}\" }",
            "tenant = \"tenant_col\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("may stand in url only"), "{err}");
        let err = config(
            "url = \"https://{tenant}.example.com/revoke\"",
            "other = \"tenant_col\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("providers.t.tenant: must be set"), "{err}");
        let err = config("url = \"https://{v}.example.com/revoke\"", "v = \"v\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tokens.source[0].vars.v: must not be the token's own column"),
            "{err}"
        );
        let err = config("url = \"https://a.example.com/{token}\"", "token = \"tenant_col\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tokens.source[0].vars.token"), "{err}");
    }

    #[test]
    fn pointers_are_checked() {
        assert_eq!(pointer("k", "/a/0").unwrap(), vec!["a", "0"]);
        assert!(pointer("k", "a").is_err());
        assert!(pointer("k", "/a'b").is_err());
    }
}
