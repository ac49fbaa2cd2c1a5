//! Issue 10: a user with thousands of tokens is read, revoked and re-checked a page at a
//! time (1,000 rows), never held whole. Every token on every page is sent exactly once, a
//! failure on a late page still fails the request, and other users' rows never leak into
//! a page.

use std::collections::HashSet;
use std::time::Duration;

use offboard::outcome::RequestState;
use offboard::simulate::SimProvider;
use offboard::storage::Cursor;
use offboard::storage::seed::{self, NewToken};
use offboard::token::TokenType::RefreshToken;
use offboard::token::TokenValue;

use crate::defects::wait_for;
use crate::end_to_end::Fixture;
use crate::helpers::{TestDb, exec_built, on_both_backends, sqlite_connection};
use crate::token_sources::fixture;
use offboard::provider::dialect::Dialect;

/// `count` refresh tokens for `user` at the simulator's `rfc7009`, every tenth of them
/// followed by one for `other`, so the two users' rows interleave across every page.
async fn seed_interleaved(f: &Fixture, user: &str, other: &str, count: usize) -> Vec<String> {
    let mut mine = Vec::new();
    let mut rows = Vec::new();
    for i in 0..count {
        let value = f.sim.issue("rfc7009", RefreshToken, None);
        mine.push(value.clone());
        rows.push(new_token(user, "rfc7009", value));
        if i % 10 == 0 {
            rows.push(new_token(other, "rfc7009", f.sim.issue("rfc7009", RefreshToken, None)));
        }
    }
    for chunk in rows.chunks(500) {
        seed::insert_tokens(f.store(), chunk).await.unwrap();
    }
    mine
}

fn new_token(user: &str, provider: &str, value: String) -> NewToken {
    NewToken {
        user_id: user.into(),
        provider: provider.into(),
        token_type: RefreshToken,
        value: TokenValue::new(value),
        grant_ref: None,
        expires_at: None,
    }
}

/// Calls the simulator answered for the revocation of each of `values`, by fingerprint.
fn calls_for(f: &Fixture, values: &[String]) -> (usize, usize) {
    let wanted: HashSet<String> = values
        .iter()
        .map(|v| TokenValue::new(v.clone()).fingerprint().as_str().to_owned())
        .collect();
    let calls = f.sim.calls();
    let mine: Vec<&str> = calls
        .iter()
        .filter_map(|c| c.token_fingerprint())
        .filter(|fp| wanted.contains(*fp))
        .collect();
    let distinct: HashSet<&str> = mine.iter().copied().collect();
    (mine.len(), distinct.len())
}

const CONFIG: &str = "[worker]\nconcurrency = 32\n";

/// 2,345 tokens (three pages) with another user's rows between them: cleared, each token
/// revoked exactly once, the other user's tokens untouched.
async fn a_user_with_thousands_of_tokens_is_revoked_page_by_page(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("rfc7009", Dialect::Rfc7009)], CONFIG).await;
    let mine = seed_interleaved(&f, "big", "neighbour", 2345).await;
    f.enqueue("big").await;

    let report = f.drain().await;

    assert_eq!(report.cleared, 1, "{report:?}");
    assert_eq!(f.state("big").await, RequestState::Cleared);
    assert_eq!(calls_for(&f, &mine), (2345, 2345), "every token once, none twice");
    assert_eq!(f.sim.calls().len(), 2345, "the neighbour's tokens were never sent");
    assert_eq!(
        f.count("SELECT count(*) FROM revocation_audit WHERE user_id = 'big' AND settled")
            .await,
        2345
    );
}

/// Exactly two full pages, then one token at a provider that is not configured, alone on
/// the third page: every readable token is revoked, and the request fails naming the one
/// on the last page (a page boundary never ends the read early, and a late failure counts).
async fn a_failure_on_the_last_page_fails_the_request(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("rfc7009", Dialect::Rfc7009)], CONFIG).await;
    let mine = seed_interleaved(&f, "big", "neighbour", 2000).await;
    let late = seed::insert_tokens(f.store(), &[new_token("big", "nowhere", "opaque-value".into())])
        .await
        .unwrap()[0];
    f.enqueue("big").await;

    f.drain().await;

    let row = f.latest("big").await;
    assert_eq!(row.state, RequestState::Failed);
    let why = row.last_error.unwrap_or_default();
    assert!(
        why.contains(&format!("token {late}")) && why.contains("nowhere"),
        "{why}"
    );
    assert_eq!(calls_for(&f, &mine), (2000, 2000));
}

/// The store hands a user's tokens out a page at a time: 2,345 tokens come as pages of
/// 1,000, 1,000 and 345, each with no other user's row, and together every token once.
async fn the_store_reads_a_users_tokens_in_pages_of_a_thousand(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("rfc7009", Dialect::Rfc7009)], CONFIG).await;
    seed_interleaved(&f, "big", "neighbour", 2345).await;
    let id = f.enqueue("big").await;
    let mut sizes = Vec::new();
    let mut seen = HashSet::new();
    let mut cursor = Some(Cursor::default());
    while let Some(at) = cursor {
        let (page, next) = f.store().tokens_page(id, "big", at).await.unwrap();
        assert!(page.bad.is_empty());
        sizes.push(page.tokens.len());
        for t in page.tokens {
            assert!(seen.insert(t.id), "token {} twice", t.id);
        }
        cursor = next;
    }
    assert_eq!(sizes, [1000, 1000, 345]);
    assert_eq!(seen.len(), 2345);
    let neighbours = f.store().tokens_for(0, "neighbour").await.unwrap().tokens;
    assert_eq!(neighbours.len(), 235);
    assert!(
        neighbours.iter().all(|t| !seen.contains(&t.id)),
        "another user's row in a page"
    );
}

/// A mapped source whose id column is empty on one row, among 1,500 (two pages): the row
/// is read (rows without an id come first on a source's first page) and fails the
/// request naming the column; it is never skipped by the paging, which would clear a user
/// whose token was never sent.
async fn a_row_without_an_id_is_reported_not_skipped(db: TestDb) {
    exec_built(
        &db.store,
        "CREATE TABLE legacy_tokens (ref BIGINT, owner TEXT, token TEXT)".into(),
    )
    .await
    .unwrap();
    let sources = r#"
[[tokens.source]]
number = 0
table = "oauth_tokens"
provider = "provider"
token_type = "token_type"
value = "token"
revoked_at = "revoked_at"

[[tokens.source]]
number = 3
table = "legacy_tokens"
id = "ref"
user_id = "owner"
provider_value = "rfc7009"
token_type_value = "refresh_token"
value = "token"
settlement = "offboard"
"#;
    let f = fixture(db, vec![SimProvider::new("rfc7009", Dialect::Rfc7009)], sources, &[]).await;
    let mut values = Vec::new();
    let mut inserts = Vec::new();
    for i in 1..=1500 {
        let value = f.sim.issue("rfc7009", RefreshToken, None);
        inserts.push(format!("({i}, 'big', '{value}')"));
        values.push(value);
    }
    let hidden = f.sim.issue("rfc7009", RefreshToken, None);
    inserts.insert(700, format!("(NULL, 'big', '{hidden}')"));
    for chunk in inserts.chunks(250) {
        let text = format!(
            "INSERT INTO legacy_tokens (ref, owner, token) VALUES {}",
            chunk.join(", ")
        );
        exec_built(f.store(), text).await.unwrap();
    }
    f.enqueue("big").await;
    f.drain_until_settled().await;

    let row = f.latest("big").await;
    assert_eq!(row.state, RequestState::Failed, "a row without an id was skipped");
    assert!(row.cleared_at.is_none());
    let why = row.last_error.unwrap_or_default();
    assert!(why.contains("column id: is empty (NULL)"), "{why}");
    assert_eq!(
        row.attempts, 1,
        "failed on the first run, not after attempts were used up"
    );
    assert_eq!(f.sim.is_revoked(&hidden), Some(false));
    assert_eq!(calls_for(&f, &values).1, 1500, "every readable row was sent");
}

/// Takes the database's write lock (the audit table's on PostgreSQL, which every group
/// commit inserts into) for `hold`; answers how many calls the simulator received meanwhile.
async fn calls_while_writes_wait(f: &Fixture, url: &str, hold: Duration) -> usize {
    use sqlx::{Connection, Executor};
    let calls_during_hold = async || {
        let before = f.sim.calls().len();
        tokio::time::sleep(hold).await;
        f.sim.calls().len() - before
    };
    if url.starts_with("sqlite:") {
        let mut conn = sqlite_connection(url).await;
        let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let during = calls_during_hold().await;
        tx.commit().await.unwrap();
        during
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        tx.execute("LOCK TABLE revocation_audit IN EXCLUSIVE MODE")
            .await
            .unwrap();
        let during = calls_during_hold().await;
        tx.commit().await.unwrap();
        during
    }
}

/// A database that takes writes slower than the providers answer: the run waits for its
/// write in flight once a few hundred results are waiting, so neither memory nor the calls
/// a crash would lose grow with the user's number of tokens. While no write can land (the
/// database locked for two seconds) it sends at most a few hundred of a user's 3,000
/// tokens; then the request clears with every token sent once. The old run went on
/// sending every token with its results held in memory.
async fn a_run_waits_for_its_writes_when_the_database_falls_behind(db: TestDb) {
    let url = db.url.clone();
    let f = Fixture::new(db, vec![SimProvider::new("rfc7009", Dialect::Rfc7009)], CONFIG).await;
    let mine = seed_interleaved(&f, "big", "neighbour", 3000).await;
    f.enqueue("big").await;

    let never = tokio_util::sync::CancellationToken::new();
    let (drained, during) = tokio::join!(f.worker.drain(&never), async {
        wait_for("the first calls", async || f.sim.calls().len() >= 100).await;
        calls_while_writes_wait(&f, &url, Duration::from_secs(2)).await
    });

    // 32 tokens in flight, up to 128 results waiting (4 × concurrency), some slack.
    assert!(during <= 400, "{during} tokens sent while no write could land");
    let report = drained.expect("drain");
    assert_eq!(report.cleared, 1, "{report:?}");
    assert_eq!(calls_for(&f, &mine), (3000, 3000), "every token once, none twice");
}

on_both_backends!(
    a_run_waits_for_its_writes_when_the_database_falls_behind,
    a_row_without_an_id_is_reported_not_skipped,
    the_store_reads_a_users_tokens_in_pages_of_a_thousand,
    a_user_with_thousands_of_tokens_is_revoked_page_by_page,
    a_failure_on_the_last_page_fails_the_request
);
