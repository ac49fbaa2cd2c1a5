//! Decoding one token row, column by column, so that a bad column is named and no value
//! reaches a message; and numbering its id across sources.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::super::StoredToken;
use super::super::rows::BadToken;
use crate::config::sources::TokenSource;
use crate::token::TokenValue;

/// The token a row of `source` holds (read by `sources::token_sql`), numbered across
/// sources and with its provider URL variables (from column 9 on); or the row reported as
/// bad, naming the column.
pub(super) fn token_of<R>(source: &TokenSource, row: &R) -> std::result::Result<StoredToken, BadToken>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database>,
    i64: sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Type<R::Database>,
{
    let mut token = decode(row)
        .and_then(|t| numbered(source, t))
        .map_err(|bad| numbered_bad(source, bad))?;
    for (at, (name, _)) in source.vars.iter().enumerate() {
        if let Ok(Some(value)) = row.try_get::<Option<String>, _>(9 + at) {
            token.vars.insert(name.clone(), value);
        }
    }
    Ok(token)
}

/// The token with its id as offboard numbers it across sources (see `config::sources`).
fn numbered(source: &TokenSource, mut token: StoredToken) -> std::result::Result<StoredToken, BadToken> {
    match source.token_id(token.id) {
        Some(id) => {
            token.id = id;
            Ok(token)
        }
        None => Err(BadToken {
            id: token.id,
            column: "id",
            reason: format!("is outside 0 to 2^40, the ids a row of {} may have", source.name),
            fingerprint: Some(token.fingerprint()),
        }),
    }
}

fn numbered_bad(source: &TokenSource, mut bad: BadToken) -> BadToken {
    bad.id = source.token_id(bad.id).unwrap_or(bad.id);
    bad
}

/// One row, column by column, so that a bad column is named.
fn decode<R>(row: &R) -> std::result::Result<StoredToken, BadToken>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database>,
    i64: sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Type<R::Database>,
{
    // Read as nullable: SQLite hands out 0 for a NULL asked for as an integer, and a row
    // without an id must be reported, not revoked under another row's id.
    let id: i64 = match row.try_get::<Option<i64>, _>(0) {
        Ok(Some(id)) => id,
        Ok(None) => {
            return Err(BadToken {
                id: 0,
                column: "id",
                reason: "is empty (NULL): the row cannot be told apart from others".into(),
                fingerprint: None,
            });
        }
        Err(e) => {
            return Err(BadToken {
                id: 0,
                column: "id",
                reason: reason(&e),
                fingerprint: None,
            });
        }
    };
    let value: Option<TokenValue> = row.try_get::<String, _>(3).ok().map(TokenValue::new);
    let fingerprint = value.as_ref().map(TokenValue::fingerprint);
    let bad = |column: &'static str, e: sqlx::Error| BadToken {
        id,
        column,
        reason: reason(&e),
        fingerprint: fingerprint.clone(),
    };
    let provider: String = row.try_get(1).map_err(|e| bad("provider", e))?;
    let token_type_raw: String = row.try_get(2).map_err(|e| bad("token_type", e))?;
    let value = match value {
        Some(v) => v,
        None => {
            return Err(bad(
                "token",
                row.try_get::<String, _>(3).err().unwrap_or(sqlx::Error::RowNotFound),
            ));
        }
    };
    let time = |column: &'static str, at: usize| -> std::result::Result<Option<DateTime<Utc>>, BadToken> {
        if let Ok(Some(raw)) = row.try_get::<Option<String>, _>(at + 1) {
            return Err(BadToken {
                id,
                column,
                reason: format!("'{}' is not a time offboard can use", crate::token::redact(&raw, &[])),
                fingerprint: fingerprint.clone(),
            });
        }
        row.try_get(at).map_err(|e| bad(column, e))
    };
    Ok(StoredToken {
        id,
        provider,
        token_type_raw,
        stored: value.clone(),
        value,
        grant_ref: row.try_get(4).map_err(|e| bad("grant_ref", e))?,
        expires_at: time("expires_at", 5)?,
        revoked_at: time("revoked_at", 7)?,
        settled_as: None,
        revoked_by_application: false,
        prior_attempts: 0,
        vars: Default::default(),
    })
}

/// What went wrong with a column, without the value (a token must never reach a message).
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => {
            let text = source.to_string();
            if text.contains("NULL") || text.contains("null") {
                "is NULL".to_owned()
            } else {
                format!("cannot be read ({})", crate::token::redact(&text, &[]))
            }
        }
        sqlx::Error::ColumnNotFound(_) => "is missing".to_owned(),
        other => format!("cannot be read ({other})"),
    }
}
