//! Reading a user's tokens from every token source (default: the application's
//! `oauth_tokens`), with what the audit says
//! about each row's current value. Rows are decoded one by one: a row with a column that
//! is missing or does not decode is reported as a [`BadToken`] naming the row and column,
//! and the user's other tokens are still returned.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{BadToken, UserTokens, settlement};
use super::sources::{self, Sources, Sql};
use super::{Result, Store, StoredToken};
use crate::config::sources::TokenSource;
use crate::outcome::Outcome;
use crate::token::TokenValue;

/// Settling audit rows of the tokens whose ids follow (from any request), by the partial
/// index on settled rows. The ids are bound rather than read by a subquery on the user: a
/// planner without statistics on a young audit table (a fresh database filling fast) chose
/// to scan the whole audit for every clearance check.
const SETTLED_SQL: &str = "SELECT a.token_id, a.token_fingerprint, a.outcome FROM revocation_audit a
                            WHERE a.settled AND a.action = 'revoke' AND a.token_id IN (";

/// Most ids bound in one settled-rows query.
const ID_CHUNK: usize = 500;

/// Attempts already audited in this request, per token, to number the next ones.
const PRIOR_SQL: &str = "SELECT token_id, count(*) FROM revocation_audit
                          WHERE request_id = $1 AND action = 'revoke' GROUP BY token_id";

impl Store {
    /// Every token of the user, with what settled its current value (in any request) and
    /// how many attempts this request already made at it; unreadable rows apart.
    pub async fn tokens_for(&self, request_id: i64, user_id: &str) -> Result<UserTokens> {
        on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let mut tokens = load::<Db>(&mut conn, &self.sources, self.sql(), user_id, Some(request_id), "").await?;
            self.decrypt(&mut tokens).await;
            Ok(tokens)
        })
    }

    /// Every token of the user as `offboard plan` shows them, with no request's attempts
    /// counted: each readable row with why its value does not decrypt (`None` when it does,
    /// or needs no decryption), and the unreadable rows. The plaintexts are dropped here.
    pub(crate) async fn planned_tokens(
        &self,
        user_id: &str,
    ) -> Result<(Vec<(StoredToken, Option<String>)>, Vec<BadToken>)> {
        let tokens = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            load::<Db>(&mut conn, &self.sources, self.sql(), user_id, None, "").await?
        });
        let mut out = Vec::with_capacity(tokens.tokens.len());
        for token in tokens.tokens {
            let failed = match self.sources.of_token(token.id).and_then(|s| s.decryptor.as_ref()) {
                Some(decryptor) => decryptor
                    .decrypt(token.stored.expose())
                    .await
                    .err()
                    .map(|e| e.to_string()),
                None => None,
            };
            out.push((token, failed));
        }
        Ok((out, tokens.bad))
    }

    /// Decrypts the values of encrypted sources in memory. A value that does not decrypt
    /// makes its row a [`BadToken`] naming the token id and the reason (never the value).
    async fn decrypt(&self, tokens: &mut UserTokens) {
        let mut kept = Vec::with_capacity(tokens.tokens.len());
        for mut token in std::mem::take(&mut tokens.tokens) {
            let Some(decryptor) = self.sources.of_token(token.id).and_then(|s| s.decryptor.as_ref()) else {
                kept.push(token);
                continue;
            };
            match decryptor.decrypt(token.stored.expose()).await {
                Ok(plain) => {
                    token.value = plain;
                    kept.push(token);
                }
                Err(e) => tokens.bad.push(BadToken {
                    id: token.id,
                    column: "token",
                    reason: format!("cannot be decrypted: {e}"),
                    fingerprint: Some(token.fingerprint()),
                }),
            }
        }
        tokens.tokens = kept;
    }
}

/// Reads the user's tokens on `conn` (a pooled connection, or a transaction's, with `lock`
/// appended to the token query).
pub(super) async fn load<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    sources: &Sources,
    sql: Sql,
    user_id: &str,
    request_id: Option<i64>,
    lock: &str,
) -> Result<UserTokens>
where
    Db: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    for<'r> String: sqlx::Decode<'r, Db>,
    for<'r> Option<String>: sqlx::Decode<'r, Db>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, Db>,
    DateTime<Utc>: sqlx::Type<Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    let mut rows = Vec::new();
    for source in &sources.list {
        let found = sqlx::query(sqlx::AssertSqlSafe(sources::token_sql(&source.config, sql, lock)))
            .bind(user_id.to_owned())
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(found.into_iter().map(|row| (&source.config, row)));
    }
    let ids: Vec<i64> = rows
        .iter()
        .filter_map(|(source, row)| source.token_id(row.try_get::<i64, _>(0).ok()?))
        .collect();
    let mut settled: Vec<(i64, String, String)> = Vec::new();
    for chunk in ids.chunks(ID_CHUNK) {
        let mut query = sqlx::QueryBuilder::<Db>::new(SETTLED_SQL);
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        settled.extend(query.build_query_as().fetch_all(&mut *conn).await?);
    }
    let prior: Vec<(i64, i64)> = match request_id {
        Some(id) => sqlx::query_as(PRIOR_SQL).bind(id).fetch_all(&mut *conn).await?,
        None => Vec::new(),
    };

    let mut out = UserTokens::default();
    for (source, row) in &rows {
        match decode(row).and_then(|t| numbered(source, t)) {
            Ok(mut token) => {
                for (at, (name, _)) in source.vars.iter().enumerate() {
                    if let Ok(Some(value)) = row.try_get::<Option<String>, _>(9 + at) {
                        token.vars.insert(name.clone(), value);
                    }
                }
                let rows_of_token: Vec<(String, Outcome)> = settled
                    .iter()
                    .filter(|(id, _, _)| *id == token.id)
                    .filter_map(|(_, fp, outcome)| Some((fp.clone(), Outcome::parse(outcome)?)))
                    .collect();
                let (settled_as, by_application) =
                    settlement(&token.fingerprint(), token.revoked_at.is_some(), &rows_of_token);
                token.settled_as = settled_as;
                token.revoked_by_application = by_application;
                token.prior_attempts = prior
                    .iter()
                    .find(|(id, _)| *id == token.id)
                    .map_or(0, |(_, n)| i32::try_from(*n).unwrap_or(i32::MAX));
                out.tokens.push(token);
            }
            Err(bad) => out.bad.push(numbered_bad(source, bad)),
        }
    }
    Ok(out)
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
    for<'r> String: sqlx::Decode<'r, R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database>,
    i64: sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    DateTime<Utc>: sqlx::Type<R::Database>,
{
    let id: i64 = row.try_get(0).map_err(|e| BadToken {
        id: 0,
        column: "id",
        reason: reason(&e),
        fingerprint: None,
    })?;
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
