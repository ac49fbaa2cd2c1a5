//! The clearance re-check of many users at once, for the completions a group commit
//! writes together: one locked read of their token rows per source and one audit lookup,
//! instead of a paged read and a lookup for each user. Past a page of rows in all, each
//! user is re-checked alone, a page at a time, so memory stays bounded.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::super::rows::BadToken;
use super::super::sources::{self, Sources, Sql};
use super::super::{Result, StoredToken};
use super::{PAGE, count_unsettled, marks, token_of};

/// Every row of `users` in every source, with the user each belongs to, read on `conn`
/// with `lock` appended (FOR SHARE on PostgreSQL); `None` when that is too many to hold at
/// once (a page in all), or a row's user reads back differently from the id it matched
/// (SQLite compares an integer column with "007" as 7): the caller then reads user by user.
pub(in crate::storage) async fn read_users<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    sources: &Sources,
    sql: Sql,
    users: &[&str],
    lock: &str,
) -> Result<Option<Vec<Owned>>>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    for<'r> Option<i64>: sqlx::Decode<'r, Db>,
    for<'r> String: sqlx::Decode<'r, Db>,
    for<'r> Option<String>: sqlx::Decode<'r, Db>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, Db>,
    DateTime<Utc>: sqlx::Type<Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    use sqlx::Row;
    let known: HashSet<&str> = users.iter().copied().collect();
    let mut out = Vec::new();
    if users.is_empty() {
        return Ok(Some(out));
    }
    let mut read = 0;
    for source in &sources.list {
        let mut query = sqlx::QueryBuilder::<Db>::new(sources::token_sql_users(&source.config, sql));
        let mut list = query.separated(", ");
        for user in users {
            list.push_bind((*user).to_owned());
        }
        query.push(") ORDER BY 1 NULLS FIRST LIMIT ");
        query.push_bind(PAGE - read);
        query.push(" ");
        query.push(lock);
        let rows = query
            .build()
            .persistent(crate::storage::keep_prepared(users.len()))
            .fetch_all(&mut *conn)
            .await?;
        read += i64::try_from(rows.len()).unwrap_or(PAGE);
        if read >= PAGE {
            return Ok(None);
        }
        let user_column = 9 + source.config.vars.len();
        for row in &rows {
            match row.try_get::<String, _>(user_column) {
                Ok(owner) if known.contains(owner.as_str()) => out.push((owner, token_of(&source.config, row))),
                _ => return Ok(None),
            }
        }
    }
    Ok(Some(out))
}

/// A token row with the user it belongs to, or the row reported as unreadable.
pub(in crate::storage) type Owned = (String, std::result::Result<StoredToken, BadToken>);

/// How many of each user's tokens are unsettled or unreadable, read on `conn` with `lock`
/// appended (FOR SHARE on PostgreSQL: the rows cannot change under the decisions). Every
/// user of `users` has an entry.
pub(in crate::storage) async fn count_unsettled_users<Db>(
    conn: &mut <Db as sqlx::Database>::Connection,
    sources: &Sources,
    sql: Sql,
    users: &[&str],
    lock: &str,
) -> Result<HashMap<String, usize>>
where
    Db: sqlx::Database + sqlx::database::HasStatementCache,
    for<'q> i64: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> bool: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'q> String: sqlx::Encode<'q, Db> + sqlx::Type<Db>,
    for<'r> i64: sqlx::Decode<'r, Db>,
    for<'r> Option<i64>: sqlx::Decode<'r, Db>,
    for<'r> String: sqlx::Decode<'r, Db>,
    for<'r> Option<String>: sqlx::Decode<'r, Db>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, Db>,
    DateTime<Utc>: sqlx::Type<Db>,
    usize: sqlx::ColumnIndex<<Db as sqlx::Database>::Row>,
    for<'q> <Db as sqlx::Database>::Arguments: sqlx::IntoArguments<Db>,
    for<'e> &'e mut <Db as sqlx::Database>::Connection: sqlx::Executor<'e, Database = Db>,
{
    let mut unsettled: HashMap<String, usize> = users.iter().map(|u| ((*u).to_owned(), 0)).collect();
    let Some(rows) = read_users::<Db>(&mut *conn, sources, sql, users, lock).await? else {
        for user in users {
            let n = count_unsettled::<Db>(&mut *conn, sources, sql, user, lock).await?;
            unsettled.insert((*user).to_owned(), n);
        }
        return Ok(unsettled);
    };
    let mut tokens: Vec<StoredToken> = Vec::new();
    let mut owners: Vec<String> = Vec::new();
    for (owner, row) in rows {
        match row {
            Ok(token) => {
                tokens.push(token);
                owners.push(owner);
            }
            // An unreadable row keeps its user from clearing, as in the paged re-check.
            Err(_) => *unsettled.entry(owner).or_default() += 1,
        }
    }
    marks::mark::<Db>(&mut *conn, &mut tokens, None).await?;
    for (token, owner) in tokens.iter().zip(owners) {
        if !token.is_settled() {
            *unsettled.entry(owner).or_default() += 1;
        }
    }
    Ok(unsettled)
}
