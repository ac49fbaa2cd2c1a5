//! The clearance re-check of many users at once, for the completions a group commit
//! writes together: one locked read of their token rows per source and one audit lookup,
//! instead of a paged read and a lookup for each user. Past a page of rows in all, each
//! user is re-checked alone, a page at a time, so memory stays bounded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::super::sources::{self, Sources, Sql};
use super::super::{Result, StoredToken};
use super::{PAGE, count_unsettled, marks, token_of};

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
    Db: sqlx::Database,
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
    if users.is_empty() {
        return Ok(unsettled);
    }
    let mut tokens: Vec<StoredToken> = Vec::new();
    let mut owners: Vec<String> = Vec::new();
    let mut read = 0;
    for source in &sources.list {
        use sqlx::Row;
        let mut query = sqlx::QueryBuilder::<Db>::new(sources::token_sql_users(&source.config, sql));
        let mut list = query.separated(", ");
        for user in users {
            list.push_bind((*user).to_owned());
        }
        query.push(") ORDER BY 1 NULLS FIRST LIMIT ");
        query.push_bind(PAGE - read);
        query.push(" ");
        query.push(lock);
        let rows = query.build().fetch_all(&mut *conn).await?;
        read += i64::try_from(rows.len()).unwrap_or(PAGE);
        let user_column = 9 + source.config.vars.len();
        // Too many rows to hold at once, or a row whose user reads back differently from
        // the id it matched (SQLite compares an integer column with "007" as 7): each user
        // alone, a page at a time.
        let strays = rows.iter().any(|row| {
            !row.try_get::<String, _>(user_column)
                .is_ok_and(|u| unsettled.contains_key(&u))
        });
        if read >= PAGE || strays {
            for user in users {
                let n = count_unsettled::<Db>(&mut *conn, sources, sql, user, lock).await?;
                unsettled.insert((*user).to_owned(), n);
            }
            return Ok(unsettled);
        }
        for row in &rows {
            let owner: String = row.try_get(user_column).unwrap_or_default();
            match token_of(&source.config, row) {
                Ok(token) => {
                    tokens.push(token);
                    owners.push(owner);
                }
                // An unreadable row keeps its user from clearing, as in the paged re-check.
                Err(_) => *unsettled.entry(owner).or_default() += 1,
            }
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
