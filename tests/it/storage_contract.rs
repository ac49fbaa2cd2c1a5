//! The storage contract: every test here runs unchanged against SQLite and PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use offboard::outcome::{Decision, Outcome, RequestState};
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::storage::{AuditRow, ClaimedRequest, Store, StoreError};
use offboard::token::{TokenType, TokenValue};

use crate::helpers::{TestDb, exec, on_both_backends, scalar};

const LEASE: Duration = Duration::from_secs(60);

fn token(user: &str, provider: &str, value: &str) -> NewToken {
    NewToken {
        user_id: user.into(),
        provider: provider.into(),
        token_type: TokenType::RefreshToken,
        value: TokenValue::new(value.into()),
        grant_ref: None,
        expires_at: None,
    }
}

fn audit(claimed: &ClaimedRequest, token_id: i64, outcome: Outcome, settled: bool) -> AuditRow {
    AuditRow {
        request_id: claimed.id,
        user_id: claimed.user_id.clone(),
        token_id,
        provider: "acme".into(),
        token_type: "refresh_token".into(),
        token_fingerprint: format!("sha256:{token_id:032x}"),
        attempt: 1,
        outcome,
        settled,
        http_status: Some(200),
        provider_request_id: None,
        error: None,
        duration_ms: 3,
        worker: claimed.fence.worker().to_owned(),
        attempted_at: Utc::now(),
    }
}

async fn claim_one(store: &Store, worker: &str, now: DateTime<Utc>) -> ClaimedRequest {
    let mut claimed = store.claim_due(worker, 1, LEASE, now).await.unwrap();
    assert_eq!(claimed.len(), 1, "{worker} expected to claim one request");
    claimed.remove(0)
}

async fn enqueueing_twice_returns_the_open_request(db: TestDb) {
    let first = db.store.enqueue("u1", Some("gdpr-job"), Some("case-1")).await.unwrap();
    let second = db.store.enqueue("u1", None, None).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.request.id, second.request.id);
    assert_eq!(second.request.external_ref.as_deref(), Some("case-1"));

    db.store.cancel(first.request.id).await.unwrap();
    let third = db.store.enqueue("u1", None, None).await.unwrap();
    assert!(third.created, "a cancelled request is closed, so a new one is made");
    assert_ne!(third.request.id, first.request.id);
}

/// The SQL the README gives the deletion job returns the open request on a second insert.
async fn the_documented_sql_insert_returns_the_open_request(db: TestDb) {
    const INSERT: &str = "INSERT INTO offboarding_requests (user_id, requested_by, external_ref)
         VALUES ('alice', 'gdpr-job', 'case-42')
         ON CONFLICT (user_id) WHERE state IN ('pending', 'running', 'failed')
         DO UPDATE SET user_id = excluded.user_id
         RETURNING id";
    let first = scalar(&db.store, INSERT).await;
    let second = scalar(&db.store, INSERT).await;
    assert_eq!(first, second);
    assert_eq!(db.store.enqueue("alice", None, None).await.unwrap().request.id, first);
    let plain = exec(&db.store, "INSERT INTO offboarding_requests (user_id) VALUES ('alice')").await;
    assert!(plain.is_err(), "a second open request was inserted");
    assert_eq!(scalar(&db.store, "SELECT count(*) FROM offboarding_requests").await, 1);
    // The inserted request is due at once.
    assert_eq!(db.store.claim_due("w", 5, LEASE, Utc::now()).await.unwrap().len(), 1);
}

async fn concurrent_enqueues_make_one_request(db: TestDb) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store.enqueue("same-user", None, None).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let e = t.await.unwrap();
        ids.insert(e.request.id);
        created += usize::from(e.created);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(created, 1);
}

async fn a_claim_leases_the_request_and_others_skip_it(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let now = Utc::now();
    let claimed = claim_one(&db.store, "w1", now).await;
    assert_eq!((claimed.id, claimed.attempt), (id, 1));
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Running);
    assert_eq!(row.locked_by.as_deref(), Some("w1"));
    assert!(db.store.claim_due("w2", 10, LEASE, now).await.unwrap().is_empty());
}

async fn a_request_not_yet_due_is_not_claimed(db: TestDb) {
    db.store.enqueue("u1", None, None).await.unwrap();
    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let at = Utc::now() + chrono::Duration::seconds(30);
    let decision = Decision::Retry {
        at,
        reason: "later".into(),
    };
    db.store
        .complete(&claimed.fence, "u1", &[], &decision, Utc::now())
        .await
        .unwrap();
    assert!(
        db.store
            .claim_due("w1", 10, LEASE, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    let later = claim_one(&db.store, "w1", at + chrono::Duration::seconds(1)).await;
    assert_eq!(later.attempt, 2);
}

/// Invariant 2: a worker that dies leaves a lease that expires; another worker takes over.
/// Invariant 4: the dead worker, if it comes back, cannot write.
async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(db: TestDb) {
    insert_tokens(&db.store, &[token("u1", "acme", "t-1")]).await.unwrap();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let now = Utc::now();
    let first = claim_one(&db.store, "w1", now).await;
    let later = now + chrono::Duration::from_std(LEASE).unwrap() + chrono::Duration::seconds(1);
    let second = claim_one(&db.store, "w2", later).await;
    assert_eq!(second.id, id);
    assert_eq!(second.attempt, 2);

    let token_id = db.store.tokens_for(id, "u1").await.unwrap()[0].id;
    let stale = db
        .store
        .complete(
            &first.fence,
            "u1",
            &[audit(&first, token_id, Outcome::Revoked, true)],
            &Decision::Cleared,
            later,
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost(lost)) if lost == id),
        "{stale:?}"
    );
    assert!(
        db.store.audit_rows(Some(id), None).await.unwrap().is_empty(),
        "a fenced-out worker wrote audit rows"
    );
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.locked_by.as_deref()),
        (RequestState::Running, Some("w2"))
    );
    assert!(db.store.tokens_for(id, "u1").await.unwrap()[0].revoked_at.is_none());

    let state = db
        .store
        .complete(
            &second.fence,
            "u1",
            &[audit(&second, token_id, Outcome::Revoked, true)],
            &Decision::Cleared,
            later,
        )
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
}

/// Invariant 4: concurrent claimers never get the same request.
async fn concurrent_claimers_never_share_a_request(db: TestDb) {
    for i in 0..60 {
        db.store.enqueue(&format!("user-{i}"), None, None).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(&format!("w{w}"), 5, LEASE, Utc::now()).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 60);
    assert_eq!(unique.len(), 60, "a request was claimed twice");
}

/// Invariant 1: `Cleared` is written only when every token of the user has a settling row,
/// checked inside the same transaction.
async fn a_request_clears_only_when_every_token_is_settled(db: TestDb) {
    let ids = insert_tokens(
        &db.store,
        &[
            token("u1", "acme", "t-1"),
            token("u1", "acme", "t-2"),
            token("u2", "acme", "t-3"),
        ],
    )
    .await
    .unwrap();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;

    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let rows = [
        audit(&claimed, ids[0], Outcome::Revoked, true),
        audit(&claimed, ids[1], Outcome::NotRevocable, false),
    ];
    let state = db
        .store
        .complete(&claimed.fence, "u1", &rows, &Decision::Cleared, Utc::now())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending, "cleared with an unsettled token");
    let row = db.store.request(id).await.unwrap().unwrap();
    assert!(row.cleared_at.is_none());
    assert!(row.last_error.unwrap().contains("1 token(s)"));

    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let tokens = db.store.tokens_for(id, "u1").await.unwrap();
    assert!(tokens[0].is_settled() && !tokens[1].is_settled());
    assert_eq!(tokens[1].prior_attempts, 1);
    let rows = [audit(&claimed, ids[1], Outcome::AlreadyInvalid, true)];
    let state = db
        .store
        .complete(&claimed.fence, "u1", &rows, &Decision::Cleared, Utc::now())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
    let row = db.store.request(id).await.unwrap().unwrap();
    assert!(row.cleared_at.is_some());
    let tokens = db.store.tokens_for(id, "u1").await.unwrap();
    assert!(
        tokens.iter().all(|t| t.revoked_at.is_some()),
        "revoked_at set on dead tokens"
    );
    assert!(
        db.store.tokens_for(0, "u2").await.unwrap()[0].revoked_at.is_none(),
        "another user's token touched"
    );
    assert_eq!(db.store.audit_rows(Some(id), None).await.unwrap().len(), 3);
}

async fn the_audit_table_is_append_only(db: TestDb) {
    let ids = insert_tokens(&db.store, &[token("u1", "acme", "t-1")]).await.unwrap();
    db.store.enqueue("u1", None, None).await.unwrap();
    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let rows = [audit(&claimed, ids[0], Outcome::Revoked, true)];
    db.store
        .complete(&claimed.fence, "u1", &rows, &Decision::Cleared, Utc::now())
        .await
        .unwrap();
    let update = exec(&db.store, "UPDATE revocation_audit SET outcome = 'failed'").await;
    let delete = exec(&db.store, "DELETE FROM revocation_audit").await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

async fn operators_retry_failed_and_cancel_open_requests(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let err = db.store.retry(id).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("request {id} is pending; retry needs a request that is failed")
    );
    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let failed = Decision::Failed {
        reason: "HTTP 401: invalid_client".into(),
    };
    db.store
        .complete(&claimed.fence, "u1", &[], &failed, Utc::now())
        .await
        .unwrap();
    assert!(
        db.store.claim_due("w1", 5, LEASE, Utc::now()).await.unwrap().is_empty(),
        "failed requests are not claimed"
    );

    let row = db.store.retry(id).await.unwrap();
    assert_eq!((row.state, row.attempts), (RequestState::Pending, 0));
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 401: invalid_client"),
        "the last reason stays visible"
    );
    let row = db.store.cancel(id).await.unwrap();
    assert_eq!(row.state, RequestState::Cancelled);
    assert!(matches!(db.store.cancel(id).await, Err(StoreError::WrongState { .. })));
    assert!(matches!(
        db.store.retry(9999).await,
        Err(StoreError::NoSuchRequest(9999))
    ));
}

async fn renewal_extends_only_the_workers_own_live_leases(db: TestDb) {
    db.store.enqueue("u1", None, None).await.unwrap();
    db.store.enqueue("u2", None, None).await.unwrap();
    let now = Utc::now();
    let a = claim_one(&db.store, "w1", now).await;
    let b = claim_one(&db.store, "w2", now).await;
    assert_eq!(
        db.store
            .renew_leases("w1", Duration::from_secs(600), now)
            .await
            .unwrap(),
        1
    );
    let a_row = db.store.request(a.id).await.unwrap().unwrap();
    let b_row = db.store.request(b.id).await.unwrap().unwrap();
    assert!(a_row.locked_until.unwrap() > b_row.locked_until.unwrap() + chrono::Duration::seconds(500));
    // An expired lease is not revived: another worker may already be taking it over.
    let late = now + chrono::Duration::seconds(3600);
    assert_eq!(db.store.renew_leases("w2", LEASE, late).await.unwrap(), 0);
}

async fn a_release_returns_the_request_without_spending_an_attempt(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    let state = db
        .store
        .complete(&claimed.fence, "u1", &[], &Decision::Release, Utc::now())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending);
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!((row.attempts, row.locked_by), (0, None));
}

async fn the_clearance_view_shows_each_users_latest_request(db: TestDb) {
    let first = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    db.store.cancel(first).await.unwrap();
    db.store.enqueue("u1", None, Some("case-2")).await.unwrap();
    let claimed = claim_one(&db.store, "w1", Utc::now()).await;
    db.store
        .complete(&claimed.fence, "u1", &[], &Decision::Cleared, Utc::now())
        .await
        .unwrap();
    let cleared = scalar(&db.store, "SELECT count(*) FROM deletion_clearance WHERE cleared").await;
    let latest = scalar(
        &db.store,
        "SELECT request_id FROM deletion_clearance WHERE user_id = 'u1'",
    )
    .await;
    let rows = scalar(&db.store, "SELECT count(*) FROM deletion_clearance").await;
    assert_eq!((cleared, latest, rows), (1, claimed.id, 1));
}

on_both_backends!(
    enqueueing_twice_returns_the_open_request,
    concurrent_enqueues_make_one_request,
    the_documented_sql_insert_returns_the_open_request,
    a_claim_leases_the_request_and_others_skip_it,
    a_request_not_yet_due_is_not_claimed,
    an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out,
    concurrent_claimers_never_share_a_request,
    a_request_clears_only_when_every_token_is_settled,
    the_audit_table_is_append_only,
    operators_retry_failed_and_cancel_open_requests,
    renewal_extends_only_the_workers_own_live_leases,
    a_release_returns_the_request_without_spending_an_attempt,
    the_clearance_view_shows_each_users_latest_request,
);
