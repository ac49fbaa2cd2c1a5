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

use crate::helpers::{TestDb, exec, open_store_with, scalar};

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

/// A backlog enqueued at once into a new database: claims analyze the requests table
/// when it was never analyzed or has outgrown its statistics. Without statistics the claim
/// estimated one due request and fetched and sorted all 3,000 on every claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_in_a_new_database_gets_statistics() {
    let db = TestDb::postgres().await;
    exec(
        &db.store,
        "INSERT INTO offboarding_requests (user_id, requested_by, requested_at, updated_at)
         SELECT 'backlog-' || g, 'test', now(), now() FROM generate_series(1, 3000) g",
    )
    .await
    .unwrap();
    let counted = "SELECT reltuples::bigint FROM pg_class WHERE relname = 'offboarding_requests'";
    assert!(scalar(&db.store, counted).await < 1000, "analyzed before any claim");
    let claimed = db
        .store
        .claim_due("young", 10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let mut numbers: Vec<u32> = claimed
        .iter()
        .map(|r| r.user_id["backlog-".len()..].parse().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>(), "oldest first");
    let tuples = scalar(&db.store, counted).await;
    assert!(tuples >= 2900, "the planner still counts {tuples} requests of 3,000");
}
