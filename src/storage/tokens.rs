//! Reading a user's tokens from the application's `oauth_tokens`, with what this request's
//! audit rows already say about each one.

use super::rows::TokenRecord;
use super::{Result, Store, StoredToken};

impl Store {
    /// Every token of the user, with whether this request already settled it.
    pub async fn tokens_for(&self, request_id: i64, user_id: &str) -> Result<Vec<StoredToken>> {
        let records: Vec<TokenRecord> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT t.id, t.provider, t.token_type, t.token, t.grant_ref, t.expires_at, t.revoked_at,
                        (SELECT count(*) FROM revocation_audit a
                          WHERE a.request_id = $1 AND a.token_id = t.id AND a.settled) AS settled_rows,
                        (SELECT count(*) FROM revocation_audit a
                          WHERE a.request_id = $1 AND a.token_id = t.id) AS prior_rows
                   FROM oauth_tokens t
                  WHERE t.user_id = $2
                  ORDER BY t.id",
            )
            .bind(request_id)
            .bind(user_id.to_owned())
            .fetch_all(pool)
            .await?
        });
        Ok(records.into_iter().map(StoredToken::from).collect())
    }
}
