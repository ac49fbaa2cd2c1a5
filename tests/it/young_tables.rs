//! Issue 10, PostgreSQL: a database that starts empty and fills fast (a new deployment
//! with a backlog) must not keep the plans it chose while empty. PostgreSQL caches a
//! generic plan for a prepared statement after five runs; chosen while `revocation_audit`
//! was empty, the settled-rows lookup scanned the whole audit on every read and every
//! clearance check (8.6 ms each at 45,000 rows: 732 tokens/s instead of 2,158 in
//! `offboard bench unlimited`). Every statement is planned for its values instead.

use offboard::storage::Cursor;
use offboard::storage::seed::{self, NewToken};
use offboard::token::TokenType::RefreshToken;
use offboard::token::TokenValue;

use crate::helpers::{TestDb, open_store_with, scalar};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_are_not_frozen_into_generic_plans() {
    let db = TestDb::postgres().await;
    // One connection, so the prepared statements counted below are the reads'.
    let store = open_store_with(&db.url, "max_connections = 1").await;
    let token = NewToken {
        user_id: "young".into(),
        provider: "rfc7009".into(),
        token_type: RefreshToken,
        value: TokenValue::new("young-token-value".into()),
        grant_ref: None,
        expires_at: None,
    };
    seed::insert_tokens(&store, &[token]).await.unwrap();
    for _ in 0..20 {
        let (page, _) = store.tokens_page(1, "young", Cursor::default()).await.unwrap();
        assert_eq!(page.tokens.len(), 1);
    }
    let generic = scalar(
        &store,
        "SELECT COALESCE(sum(generic_plans), 0)::bigint FROM pg_prepared_statements
          WHERE statement LIKE '%revocation_audit%' AND statement NOT LIKE '%pg_prepared%'",
    )
    .await;
    let custom = scalar(
        &store,
        "SELECT COALESCE(sum(custom_plans), 0)::bigint FROM pg_prepared_statements
          WHERE statement LIKE '%revocation_audit%' AND statement NOT LIKE '%pg_prepared%'",
    )
    .await;
    assert_eq!(
        generic, 0,
        "{generic} runs of audit lookups used a plan made for no values"
    );
    assert!(
        custom >= 20,
        "the audit lookups were planned for their values {custom} times"
    );
}
