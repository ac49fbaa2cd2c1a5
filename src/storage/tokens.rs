//! Reading a user's tokens from every token source (default: the application's
//! `oauth_tokens`), with what the audit says
//! about each row's current value. Rows are decoded one by one: a row with a column that
//! is missing or does not decode is reported as a [`BadToken`] naming the row and column,
//! and the user's other tokens are still returned.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::rows::{BadToken, UserTokens};
use super::sources::{self, Sources, Sql};
use super::{ClaimedRequest, Result, Store, StoredToken};
use std::collections::HashMap;

/// Token rows read at once: a user with 100,000 tokens is read, revoked and re-checked a
/// page at a time, never held in memory whole.
pub(crate) const PAGE: i64 = 1000;

/// Where a paged read of a user's tokens stands: the source (by its place in the list)
/// and the last row id read in it (`None` before its first page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    source: usize,
    after: Option<i64>,
}

impl Store {
    /// Every token of the user, with what settled its current value (in any request) and
    /// how many attempts this request already made at it; unreadable rows apart. For
    /// tests and tools: the drain reads a page at a time ([`Store::tokens_page`]).
    pub async fn tokens_for(&self, request_id: i64, user_id: &str) -> Result<UserTokens> {
        let mut all = UserTokens::default();
        let mut cursor = Some(Cursor::default());
        while let Some(at) = cursor {
            let (page, next) = self.tokens_page(request_id, user_id, at).await?;
            all.tokens.extend(page.tokens);
            all.bad.extend(page.bad);
            cursor = next;
        }
        Ok(all)
    }

    /// One page of the user's tokens from `at` (start from `Cursor::default()`), as
    /// [`Store::tokens_for`] reads them, values decrypted; and where the next page starts,
    /// `None` after the last.
    pub async fn tokens_page(
        &self,
        request_id: i64,
        user_id: &str,
        at: Cursor,
    ) -> Result<(UserTokens, Option<Cursor>)> {
        on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let (mut tokens, next) =
                load_page::<Db>(&mut conn, &self.sources, self.sql(), user_id, Some(request_id), "", at).await?;
            self.decrypt(&mut tokens).await;
            Ok((tokens, next))
        })
    }

    /// The first page of tokens of each request of a claim's batch, read together (one read
    /// per source and two audit lookups for the batch, instead of a read and a lookup per
    /// request), each complete (no next page). Empty when the batch's users have a page of
    /// rows or more between them, or a user id reads back differently: each request then
    /// reads its own pages ([`Store::tokens_page`]).
    pub async fn first_pages(&self, claimed: &[ClaimedRequest]) -> Result<HashMap<i64, UserTokens>> {
        let users: Vec<&str> = claimed.iter().map(|r| r.user_id.as_str()).collect();
        let mut pages: HashMap<i64, UserTokens> = on_pool!(self, |pool| {
            let mut conn = pool.acquire().await?;
            let Some(rows) = recheck::read_users::<Db>(&mut conn, &self.sources, self.sql(), &users, "").await? else {
                return Ok(HashMap::new());
            };
            let request_of: HashMap<&str, i64> = claimed.iter().map(|r| (r.user_id.as_str(), r.id)).collect();
            let mut pages: HashMap<i64, UserTokens> = claimed.iter().map(|r| (r.id, UserTokens::default())).collect();
            let mut tokens = Vec::new();
            let mut owners = Vec::new();
            for (owner, row) in rows {
                let Some(&request) = request_of.get(owner.as_str()) else {
                    continue;
                };
                match row {
                    Ok(token) => {
                        tokens.push(token);
                        owners.push(request);
                    }
                    Err(bad) => pages.entry(request).or_default().bad.push(bad),
                }
            }
            marks::mark::<Db>(&mut conn, &mut tokens, None).await?;
            let ids: Vec<i64> = claimed.iter().map(|r| r.id).collect();
            let prior = marks::prior_of_requests::<Db>(&mut conn, &ids).await?;
            for (mut token, request) in tokens.into_iter().zip(owners) {
                token.prior_attempts = prior
                    .get(&(request, token.id))
                    .map_or(0, |n| i32::try_from(*n).unwrap_or(i32::MAX));
                pages.entry(request).or_default().tokens.push(token);
            }
            pages
        });
        for page in pages.values_mut() {
            self.decrypt(page).await;
        }
        Ok(pages)
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
            let mut all = UserTokens::default();
            let mut cursor = Some(Cursor::default());
            while let Some(at) = cursor {
                let (page, next) = load_page::<Db>(&mut conn, &self.sources, self.sql(), user_id, None, "", at).await?;
                all.tokens.extend(page.tokens);
                all.bad.extend(page.bad);
                cursor = next;
            }
            all
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

/// How many of the user's tokens are unsettled or unreadable, read a page at a time on
/// `conn` with `lock` appended (the clearing transaction's re-check: FOR SHARE on
/// PostgreSQL, so a row cannot change under the decision).
pub(super) async fn count_unsettled<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    sources: &Sources,
    sql: Sql,
    user_id: &str,
    lock: &str,
) -> Result<usize>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
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
    let mut unsettled = 0;
    let mut cursor = Some(Cursor::default());
    while let Some(at) = cursor {
        let (page, next) = load_page::<Db>(&mut *conn, sources, sql, user_id, None, lock, at).await?;
        unsettled += page.tokens.iter().filter(|t| !t.is_settled()).count() + page.bad.len();
        cursor = next;
    }
    Ok(unsettled)
}

/// Reads one page of the user's tokens (at most [`PAGE`] rows, across sources in order)
/// on `conn` (a pooled connection, or a transaction's, with `lock` appended to the token
/// query), from `at`; returns it and where the next page starts, `None` after the last.
#[allow(clippy::too_many_arguments)]
pub(super) async fn load_page<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    sources: &Sources,
    sql: Sql,
    user_id: &str,
    request_id: Option<i64>,
    lock: &str,
    at: Cursor,
) -> Result<(UserTokens, Option<Cursor>)>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
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
    let mut at = at;
    let mut next = None;
    while let Some(source) = sources.list.get(at.source) {
        let want = PAGE - i64::try_from(rows.len()).unwrap_or(PAGE);
        let found = sqlx::query(sqlx::AssertSqlSafe(sources::token_sql(&source.config, sql, lock)))
            .bind(user_id.to_owned())
            .bind(at.after.unwrap_or(i64::MIN))
            .bind(at.after.is_none())
            .bind(want)
            .fetch_all(&mut *conn)
            .await?;
        let full = i64::try_from(found.len()).unwrap_or(i64::MAX) >= want;
        let last = found
            .iter()
            .rev()
            .find_map(|row| row.try_get::<Option<i64>, _>(0).ok().flatten());
        rows.extend(found.into_iter().map(|row| (&source.config, row)));
        if full {
            // Rows whose id is missing come first on a source's first page; past them the
            // cursor moves on from the last id read.
            next = Some(Cursor {
                source: at.source,
                after: Some(last.or(at.after).unwrap_or(i64::MIN)),
            });
            break;
        }
        at = Cursor {
            source: at.source + 1,
            after: None,
        };
    }

    let mut out = UserTokens::default();
    for (source, row) in &rows {
        match token_of(source, row) {
            Ok(token) => out.tokens.push(token),
            Err(bad) => out.bad.push(bad),
        }
    }
    marks::mark::<Db>(conn, &mut out.tokens, request_id).await?;
    Ok((out, next))
}

mod decode;
mod marks;
mod recheck;
use decode::token_of;
pub(super) use recheck::count_unsettled_users;
