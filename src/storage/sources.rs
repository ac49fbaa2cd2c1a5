//! The token sources as SQL: each configured `[[tokens.source]]` (or the default
//! `oauth_tokens`) turned into the queries that read a user's rows, find the audit rows that
//! settled them, and write a settlement, per backend. Identifiers come checked from
//! `config::sources` and are spliced only quoted; values are always bound.
//!
//! The token query returns the columns `tokens.rs` decodes, in its order: id, provider,
//! token type, value, grant ref, then expiry and `revoked_at` each as (time within years 1 to
//! 9999, else the raw text).

use std::sync::Arc;

use crate::config::ConfigError;
use crate::config::sources::{ColumnOr, ID_SPACE, Settlement, TokenSource, ValueAt};
use crate::decrypt::Decryptor;

/// Which SQL dialect to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sql {
    Postgres,
    Sqlite,
}

/// One source and, for an encrypted one, its decryptor (keys read once, at start-up).
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) config: TokenSource,
    pub(crate) decryptor: Option<Decryptor>,
}

/// Every source of the application's tokens.
#[derive(Debug)]
pub(crate) struct Sources {
    pub(crate) list: Vec<Source>,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            list: vec![Source {
                config: TokenSource::default_oauth_tokens(),
                decryptor: None,
            }],
        }
    }
}

impl Sources {
    /// The sources the config names, with a [`Decryptor`] built for each encrypted one
    /// (its keys looked up with `env`). Errors name the key.
    pub(crate) fn build(
        sources: &[TokenSource],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Arc<Sources>, ConfigError> {
        let list = sources
            .iter()
            .map(|s| {
                Ok(Source {
                    decryptor: s.encryption.as_ref().map(|e| Decryptor::new(e, env)).transpose()?,
                    config: s.clone(),
                })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Arc::new(Sources { list }))
    }

    /// The source whose id space holds `token_id`.
    pub(crate) fn of_token(&self, token_id: i64) -> Option<&Source> {
        let number = token_id.div_euclid(ID_SPACE);
        self.list.iter().find(|s| s.config.number == number)
    }
}

/// `1` unless the source is the built-in default: a configured source skips rows whose value
/// is NULL or empty (no token of this type in that row, as with a side-by-side
/// `refresh_token` column left empty).
fn has_value(s: &TokenSource, value: &str) -> String {
    if s.is_builtin() {
        "1 = 1".into()
    } else {
        format!("{value} IS NOT NULL AND {value} <> ''")
    }
}

/// The row's id where it is compared with bound ids: as [`id_expr`] on PostgreSQL; bare on
/// SQLite, where a cast hides the column from its index (every `revoked_at` update scanned
/// the whole token table, 184 ms each with 1,000,000 tokens, found by `offboard bench
/// rss`), and SQLite's affinity rules already compare a text id column with an integer.
pub(super) fn id_match(s: &TokenSource, sql: Sql) -> String {
    match sql {
        Sql::Postgres => id_expr(s),
        Sql::Sqlite => s.id.quoted(),
    }
}

/// The row's id as a 64-bit integer.
pub(super) fn id_expr(s: &TokenSource) -> String {
    format!("CAST({} AS BIGINT)", s.id.quoted())
}

/// The user column, compared with the bound user id (text). On PostgreSQL it is cast to
/// text, so an integer user column compares too (a text or varchar column keeps its
/// index: the cast is a no-op the planner sees through). On SQLite it is left bare: a cast
/// there hides the column from its index, scanning the whole token table for every request
/// (found by `offboard bench rss` with 1,000,000 tokens queued), and SQLite's affinity
/// rules already compare an integer column with a text id.
fn user_expr(s: &TokenSource, sql: Sql) -> String {
    match sql {
        Sql::Postgres => format!("CAST({} AS TEXT)", s.user_id.quoted()),
        Sql::Sqlite => s.user_id.quoted(),
    }
}

/// The stored value (a ciphertext, for an encrypted source) as text.
pub(super) fn value_expr(s: &TokenSource, sql: Sql) -> String {
    match (&s.value, sql) {
        (ValueAt::Column(c), _) => format!("CAST({} AS TEXT)", c.quoted()),
        (ValueAt::Json { column, path }, Sql::Postgres) => {
            format!("(CAST({} AS jsonb) #>> '{{{}}}')", column.quoted(), path.join(","))
        }
        (ValueAt::Json { column, path }, Sql::Sqlite) => {
            let path: String = path
                .iter()
                .map(|seg| {
                    if seg.chars().all(|c| c.is_ascii_digit()) {
                        format!("[{seg}]")
                    } else {
                        format!(".\"{seg}\"")
                    }
                })
                .collect();
            let c = column.quoted();
            format!("(CASE WHEN json_valid({c}) THEN CAST(json_extract({c}, '${path}') AS TEXT) END)")
        }
    }
}

fn text_or_constant(c: &ColumnOr) -> String {
    match c {
        ColumnOr::Column(c) => format!("CAST({} AS TEXT)", c.quoted()),
        // Checked to letters, digits, '_', '-' and '.': no quote can appear.
        ColumnOr::Value(v) => format!("CAST('{v}' AS TEXT)"),
    }
}

/// A time column as (time within years 1 to 9999, else its raw text), or two NULLs.
fn time_exprs(column: Option<String>, sql: Sql) -> String {
    const RANGE: &str = "BETWEEN '0001-01-01T00:00:00+00:00' AND '9999-12-31T23:59:59.999+00:00'";
    match (column, sql) {
        (None, Sql::Postgres) => "CAST(NULL AS timestamptz), CAST(NULL AS TEXT)".into(),
        (None, Sql::Sqlite) => "NULL, NULL".into(),
        (Some(c), sql) => {
            let t = match sql {
                Sql::Postgres => format!("CAST({c} AS timestamptz)"),
                Sql::Sqlite => c,
            };
            format!("CASE WHEN {t} {RANGE} THEN {t} END, CASE WHEN NOT ({t} {RANGE}) THEN CAST({t} AS TEXT) END")
        }
    }
}

/// One page of the user's rows of `s`, in id order, with `lock` appended (FOR SHARE on
/// PostgreSQL in the clearing transaction): `$1` the user id, `$2` the last row id read,
/// `$3` whether this is the source's first page (which also holds any rows whose id is
/// missing, so that they are reported, never skipped), `$4` the page size.
pub(super) fn token_sql(s: &TokenSource, sql: Sql, lock: &str) -> String {
    format!(
        "SELECT {columns}
           FROM {table} WHERE {user} = $1 AND {has}
            AND ({id} > $2 OR ($3 AND {id} IS NULL))
          ORDER BY 1 NULLS FIRST LIMIT $4 {lock}",
        columns = token_columns(s, sql),
        id = id_expr(s),
        table = s.table.quoted(),
        user = user_expr(s, sql),
        has = has_value(s, &value_expr(s, sql)),
    )
}

/// As [`token_sql`], for the rows of several users at once (a group commit's clearance
/// re-checks), with the user's id after the provider URL variables. The caller appends
/// the bound user ids, then `)`, and the order, limit and lock.
pub(super) fn token_sql_users(s: &TokenSource, sql: Sql) -> String {
    format!(
        "SELECT {columns}, CAST({user_column} AS TEXT)
           FROM {table} WHERE {has} AND {user} IN (",
        columns = token_columns(s, sql),
        user_column = s.user_id.quoted(),
        table = s.table.quoted(),
        user = user_expr(s, sql),
        has = has_value(s, &value_expr(s, sql)),
    )
}

/// The columns a token is decoded from: id, provider, type, value, grant, expiry, when
/// revoked, then the provider URL variables from column 9 on, in the source's order.
fn token_columns(s: &TokenSource, sql: Sql) -> String {
    let grant = match &s.grant_ref {
        Some(c) => format!("CAST({} AS TEXT)", c.quoted()),
        None => "CAST(NULL AS TEXT)".into(),
    };
    let revoked = match &s.settlement {
        Settlement::Column(c) => Some(c.quoted()),
        // Settled rows live in offboard's table; the audit says which value was settled.
        Settlement::Offboard => None,
    };
    let vars: String = s
        .vars
        .iter()
        .map(|(_, c)| format!(", CAST({} AS TEXT)", c.quoted()))
        .collect();
    format!(
        "{id}, {provider}, {ty}, {value}, {grant}, {expires}, {revoked}{vars}",
        id = id_expr(s),
        provider = text_or_constant(&s.provider),
        ty = text_or_constant(&s.token_type),
        value = value_expr(s, sql),
        expires = time_exprs(s.expires_at.as_ref().map(|c| c.quoted()), sql),
        revoked = time_exprs(revoked, sql),
    )
}

/// Checks every table and column a source names against the live database; the first
/// problem, naming the source's key, or `None`.
pub(super) fn missing(s: &TokenSource, columns_found: Option<&[String]>) -> Option<ConfigError> {
    let Some(found) = columns_found else {
        return Some(ConfigError::key(
            format!("{}.table", s.at),
            format!("no table or view {} in the database", s.table.as_written()),
        ));
    };
    s.columns().into_iter().find_map(|(key, c)| {
        let name = c.as_written();
        (!found.contains(&name)).then(|| {
            ConfigError::key(
                key,
                format!(
                    "no column {name} in {} (it has: {})",
                    s.table.as_written(),
                    found.join(", ")
                ),
            )
        })
    })
}

impl super::Store {
    /// Checks every source's table and columns against the live database (start-up and
    /// `offboard check-config`): the first problem, naming the source and key, or `None`.
    pub(crate) async fn check_sources(&self) -> super::Result<Option<ConfigError>> {
        for source in &self.sources.list {
            let s = &source.config;
            let found: Vec<String> = on_pool!(self, |pool| match self.sql() {
                Sql::Postgres => {
                    sqlx::query_scalar(
                        "SELECT CAST(attname AS TEXT) FROM pg_attribute
                          WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    )
                    .bind(s.table.quoted())
                    .fetch_all(pool)
                    .await?
                }
                Sql::Sqlite => {
                    let (schema, name) = s.table.schema_and_name();
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1, $2) ORDER BY cid")
                        .bind(name.to_owned())
                        .bind(schema.unwrap_or("main").to_owned())
                        .fetch_all(pool)
                        .await?
                }
            });
            let found = (!found.is_empty()).then_some(found);
            if let Some(problem) = missing(s, found.as_deref()) {
                return Ok(Some(problem));
            }
        }
        Ok(None)
    }
}
