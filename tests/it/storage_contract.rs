//! The storage contract: every test here runs unchanged against SQLite and PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use offboard::outcome::{Decision, Outcome, RequestState, Unsettled};
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::storage::{AuditAction, AuditRow, ClaimedRequest, Results, Store, StoreError};
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

/// An attempt at the token `token_id` holding `value`.
fn audit(claimed: &ClaimedRequest, token_id: i64, value: &str, outcome: Outcome, settled: bool) -> AuditRow {
    AuditRow {
        request_id: claimed.id,
        user_id: claimed.user_id.clone(),
        token_id,
        provider: "acme".into(),
        token_type: "refresh_token".into(),
        token_fingerprint: TokenValue::new(value.into()).fingerprint().as_str().to_owned(),
        attempt: 1,
        outcome,
        settled,
        http_status: Some(200),
        provider_request_id: None,
        error: None,
        duration_ms: 3,
        worker: claimed.fence.worker().to_owned(),
        attempted_at: Utc::now(),
        verified: None,
        verified_by: None,
    }
}

/// Attempt rows, with every dead token's value recorded as the one revoked.
fn results(rows: Vec<AuditRow>, values: &[(i64, &str)]) -> Results {
    let dead = rows
        .iter()
        .filter(|r| r.outcome.token_is_dead())
        .filter_map(|r| values.iter().find(|(id, _)| *id == r.token_id))
        .map(|(id, v)| (*id, TokenValue::new((*v).into())))
        .collect();
    Results {
        rows,
        dead,
        ..Results::default()
    }
}

fn cleared() -> Decision {
    Decision::Cleared {
        unless: Unsettled::Retry {
            after: Duration::ZERO,
            note: "attempt 1 of 8".into(),
        },
    }
}

async fn claim_one(store: &Store, worker: &str) -> ClaimedRequest {
    let mut claimed = store.claim_due(worker, 1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "{worker} expected to claim one request");
    claimed.remove(0)
}

/// Moves every running lease into the past, by the database's own clock: what a lease
/// looks like once its worker died long ago.
async fn expire_leases(store: &Store) {
    exec(
        store,
        "UPDATE offboarding_requests SET locked_until = '2000-01-01T00:00:00+00:00' WHERE state = 'running'",
    )
    .await
    .unwrap();
}

/// Makes every pending request due now.
async fn make_due(store: &Store) {
    exec(
        store,
        "UPDATE offboarding_requests SET next_attempt_at = '2000-01-01T00:00:00+00:00' WHERE state = 'pending'",
    )
    .await
    .unwrap();
}

const NOBODY: Results = Results {
    rows: Vec::new(),
    notes: Vec::new(),
    dead: Vec::new(),
};

async fn enqueueing_twice_returns_the_open_request(db: TestDb) {
    let first = db.store.enqueue("u1", Some("gdpr-job"), Some("case-1")).await.unwrap();
    let second = db.store.enqueue("u1", None, None).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.request.id, second.request.id);
    assert_eq!(second.request.external_ref.as_deref(), Some("case-1"));

    db.store.cancel(first.request.id, "ops", None).await.unwrap();
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
    assert_eq!(db.store.claim_due("w", 5, LEASE).await.unwrap().len(), 1);
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
    let claimed = claim_one(&db.store, "w1").await;
    assert_eq!((claimed.id, claimed.attempt), (id, 1));
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Running);
    assert_eq!(row.locked_by.as_deref(), Some("w1"));
    assert!(db.store.claim_due("w2", 10, LEASE).await.unwrap().is_empty());
}

/// Defect 7: the backoff is counted from when the result is written, by the database's
/// clock, not from when the run began.
async fn a_request_not_yet_due_is_not_claimed(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let claimed = claim_one(&db.store, "w1").await;
    // A run that took a while: the backoff must still start at the end of it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let decision = Decision::Retry {
        after: Duration::from_secs(1),
        reason: "later".into(),
    };
    let written_at = Utc::now();
    db.store
        .complete(&claimed.fence, "u1", &NOBODY, &decision)
        .await
        .unwrap();
    assert!(db.store.claim_due("w1", 10, LEASE).await.unwrap().is_empty());
    let next = db.store.request(id).await.unwrap().unwrap().next_attempt_at.unwrap();
    let after = (next - written_at).num_milliseconds();
    assert!((800..=1500).contains(&after), "next attempt {after} ms after the write");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = claim_one(&db.store, "w1").await;
    assert_eq!(later.attempt, 2);
}

/// Invariant 2: a worker that dies leaves a lease that expires; another worker takes over.
/// Invariants 4 and 8: the dead worker, if it comes back, cannot change the request's
/// state, but the calls it made are facts and are audited.
async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(db: TestDb) {
    let ids = insert_tokens(&db.store, &[token("u1", "acme", "t-1")]).await.unwrap();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let first = claim_one(&db.store, "w1").await;
    expire_leases(&db.store).await;
    let second = claim_one(&db.store, "w2").await;
    assert_eq!(second.id, id);
    assert_eq!(second.attempt, 2);

    let stale = db
        .store
        .complete(
            &first.fence,
            "u1",
            &results(
                vec![audit(&first, ids[0], "t-1", Outcome::Revoked, true)],
                &[(ids[0], "t-1")],
            ),
            &cleared(),
        )
        .await;
    assert!(
        matches!(stale, Err(StoreError::LeaseLost(lost)) if lost == id),
        "{stale:?}"
    );
    let audit_rows = db.store.audit_rows(Some(id), None).await.unwrap();
    assert_eq!(
        audit_rows.len(),
        1,
        "the fenced-out worker's call is a fact and is audited"
    );
    assert_eq!(audit_rows[0].worker, "w1");
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.locked_by.as_deref()),
        (RequestState::Running, Some("w2")),
        "the fenced-out worker changed the state"
    );
    let tokens = db.store.tokens_for(id, "u1").await.unwrap().tokens;
    assert!(
        tokens[0].revoked_at.is_some() && tokens[0].is_settled(),
        "the token it revoked is dead"
    );

    let state = db
        .store
        .complete(&second.fence, "u1", &NOBODY, &cleared())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
}

/// Defect 5b: the fencing value never repeats. An operator's retry resets `attempts`, and a
/// release takes one back, yet a worker still holding an old claim can write nothing.
async fn a_stale_claim_stays_fenced_out_after_a_retry_or_a_release(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let first = claim_one(&db.store, "w1").await;
    let failed = Decision::Failed {
        reason: "HTTP 401".into(),
    };
    db.store.complete(&first.fence, "u1", &NOBODY, &failed).await.unwrap();
    db.store.retry(id, "ops", Some("credentials fixed")).await.unwrap();
    // The same worker claims it again: same worker id, same attempt number as `first`.
    let second = claim_one(&db.store, "w1").await;
    assert_eq!(second.attempt, first.attempt);
    assert!(matches!(
        db.store.complete(&first.fence, "u1", &NOBODY, &cleared()).await,
        Err(StoreError::LeaseLost(_))
    ));

    db.store
        .complete(&second.fence, "u1", &NOBODY, &Decision::Release)
        .await
        .unwrap();
    let third = claim_one(&db.store, "w1").await;
    assert_eq!(third.attempt, second.attempt, "a release does not spend an attempt");
    for stale in [&first, &second] {
        assert!(matches!(
            db.store.complete(&stale.fence, "u1", &NOBODY, &cleared()).await,
            Err(StoreError::LeaseLost(_))
        ));
    }
    assert_eq!(
        db.store
            .complete(&third.fence, "u1", &NOBODY, &cleared())
            .await
            .unwrap(),
        RequestState::Cleared
    );
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
                let batch = store.claim_due(&format!("w{w}"), 5, LEASE).await.unwrap();
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

    let claimed = claim_one(&db.store, "w1").await;
    let rows = vec![
        audit(&claimed, ids[0], "t-1", Outcome::Revoked, true),
        audit(&claimed, ids[1], "t-2", Outcome::NotRevocable, false),
    ];
    let state = db
        .store
        .complete(&claimed.fence, "u1", &results(rows, &[(ids[0], "t-1")]), &cleared())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending, "cleared with an unsettled token");
    let row = db.store.request(id).await.unwrap().unwrap();
    assert!(row.cleared_at.is_none());
    assert!(row.last_error.unwrap().contains("1 token(s)"));

    let claimed = claim_one(&db.store, "w1").await;
    let tokens = db.store.tokens_for(id, "u1").await.unwrap().tokens;
    assert!(tokens[0].is_settled() && !tokens[1].is_settled());
    assert_eq!(tokens[1].prior_attempts, 1);
    let rows = vec![audit(&claimed, ids[1], "t-2", Outcome::AlreadyInvalid, true)];
    let state = db
        .store
        .complete(&claimed.fence, "u1", &results(rows, &[(ids[1], "t-2")]), &cleared())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
    let row = db.store.request(id).await.unwrap().unwrap();
    assert!(row.cleared_at.is_some());
    let tokens = db.store.tokens_for(id, "u1").await.unwrap().tokens;
    assert!(
        tokens.iter().all(|t| t.revoked_at.is_some()),
        "revoked_at set on dead tokens"
    );
    assert!(
        db.store.tokens_for(0, "u2").await.unwrap().tokens[0]
            .revoked_at
            .is_none(),
        "another user's token touched"
    );
    assert_eq!(db.store.audit_rows(Some(id), None).await.unwrap().len(), 3);
}

/// Issue 8: a refresh-then-revoke's first attempt (`refreshed`) and a success answer that
/// verification contradicted (`still_active`) are stored with how death was checked, and
/// neither settles the token: the clearing transaction refuses. A verified revocation then
/// clears, and its row says death was proven.
async fn verification_and_refresh_attempts_are_stored_and_settle_nothing(db: TestDb) {
    let ids = insert_tokens(&db.store, &[token("u1", "acme", "t-1")]).await.unwrap();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let claimed = claim_one(&db.store, "w1").await;
    let mut refreshed = audit(&claimed, ids[0], "t-1", Outcome::Refreshed, false);
    refreshed.error = Some("exchanged for a fresh access token".into());
    let mut still = audit(&claimed, ids[0], "t-1", Outcome::StillActive, false);
    still.attempt = 2;
    still.verified = Some(false);
    still.verified_by = Some("introspection".into());
    let state = db
        .store
        .complete(&claimed.fence, "u1", &results(vec![refreshed, still], &[]), &cleared())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending, "cleared on a token that still works");

    let claimed = claim_one(&db.store, "w1").await;
    let mut revoked = audit(&claimed, ids[0], "t-1", Outcome::Revoked, true);
    revoked.attempt = 3;
    revoked.verified = Some(true);
    revoked.verified_by = Some("introspection".into());
    let state = db
        .store
        .complete(
            &claimed.fence,
            "u1",
            &results(vec![revoked], &[(ids[0], "t-1")]),
            &cleared(),
        )
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
    let rows = db.store.audit_rows(Some(id), None).await.unwrap();
    let seen: Vec<(Outcome, Option<bool>, Option<&str>)> = rows
        .iter()
        .map(|r| (r.outcome, r.verified, r.verified_by.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            (Outcome::Refreshed, None, None),
            (Outcome::StillActive, Some(false), Some("introspection")),
            (Outcome::Revoked, Some(true), Some("introspection")),
        ]
    );
}

/// Defect 1 and invariant 1: a settlement belongs to the value revoked. A token rotated in
/// place while its old value was being revoked is unsettled again: `revoked_at` is not set
/// on the new value, the clearing transaction refuses, and the new value is sent next time.
async fn a_token_rotated_in_place_is_not_settled_by_revoking_its_old_value(db: TestDb) {
    let ids = insert_tokens(&db.store, &[token("u1", "acme", "old-value")])
        .await
        .unwrap();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let claimed = claim_one(&db.store, "w1").await;
    let read = db.store.tokens_for(id, "u1").await.unwrap().tokens;
    assert_eq!(read[0].value.expose(), "old-value");

    // The application refreshes the token in the same row while the call is in flight.
    exec(
        &db.store,
        "UPDATE oauth_tokens SET token = 'new-value' WHERE token = 'old-value'",
    )
    .await
    .unwrap();
    let rows = vec![audit(&claimed, ids[0], "old-value", Outcome::Revoked, true)];
    let state = db
        .store
        .complete(
            &claimed.fence,
            "u1",
            &results(rows, &[(ids[0], "old-value")]),
            &cleared(),
        )
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending, "cleared while the new value is alive");

    let now = db.store.tokens_for(id, "u1").await.unwrap().tokens;
    assert_eq!(now[0].value.expose(), "new-value");
    assert!(now[0].revoked_at.is_none(), "revoked_at set on a value nobody revoked");
    assert!(!now[0].is_settled(), "the new value counts as settled");

    make_due(&db.store).await;
    let again = claim_one(&db.store, "w1").await;
    let rows = vec![audit(&again, ids[0], "new-value", Outcome::Revoked, true)];
    let state = db
        .store
        .complete(&again.fence, "u1", &results(rows, &[(ids[0], "new-value")]), &cleared())
        .await
        .unwrap();
    assert_eq!(state, RequestState::Cleared);
}

/// Defect 8: a token row that does not decode is reported by row and column; the user's
/// other tokens are still read.
async fn an_unreadable_token_row_is_named_and_the_rest_are_read(db: TestDb) {
    insert_tokens(
        &db.store,
        &[
            token("u1", "acme", "good-1"),
            token("u1", "acme", "bad"),
            token("u1", "acme", "good-2"),
        ],
    )
    .await
    .unwrap();
    exec(
        &db.store,
        "UPDATE oauth_tokens SET expires_at = 'next tuesday' WHERE token = 'bad'",
    )
    .await
    .ok();
    // PostgreSQL refuses that text for a timestamptz column; a value it accepts but chrono
    // cannot hold does the same harm.
    exec(
        &db.store,
        "UPDATE oauth_tokens SET expires_at = 'infinity' WHERE token = 'bad'",
    )
    .await
    .ok();
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let read = db.store.tokens_for(id, "u1").await.unwrap();
    let values: Vec<&str> = read.tokens.iter().map(|t| t.value.expose()).collect();
    assert_eq!(values, ["good-1", "good-2"]);
    assert_eq!(read.bad.len(), 1, "{:?}", read.bad);
    assert_eq!(read.bad[0].column, "expires_at");
    assert!(read.bad[0].describe().starts_with(&format!(
        "token row {} is unreadable: column expires_at",
        read.bad[0].id
    )));
    assert!(
        !read.bad[0].describe().contains("bad"),
        "the value leaked into the reason"
    );
}

async fn the_audit_table_is_append_only(db: TestDb) {
    let ids = insert_tokens(&db.store, &[token("u1", "acme", "t-1")]).await.unwrap();
    db.store.enqueue("u1", None, None).await.unwrap();
    let claimed = claim_one(&db.store, "w1").await;
    let rows = vec![audit(&claimed, ids[0], "t-1", Outcome::Revoked, true)];
    db.store
        .complete(&claimed.fence, "u1", &results(rows, &[]), &cleared())
        .await
        .unwrap();
    let update = exec(&db.store, "UPDATE revocation_audit SET outcome = 'failed'").await;
    let delete = exec(&db.store, "DELETE FROM revocation_audit").await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

/// Operator actions change the state and are audited with who and why.
async fn operators_retry_failed_and_cancel_open_requests(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let err = db.store.retry(id, "ops", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("request {id} is pending; retry needs a request that is failed")
    );
    let claimed = claim_one(&db.store, "w1").await;
    let failed = Decision::Failed {
        reason: "HTTP 401: invalid_client".into(),
    };
    db.store.complete(&claimed.fence, "u1", &NOBODY, &failed).await.unwrap();
    assert!(
        db.store.claim_due("w1", 5, LEASE).await.unwrap().is_empty(),
        "failed requests are not claimed"
    );

    let row = db
        .store
        .retry(id, "alice", Some("rotated the client secret"))
        .await
        .unwrap();
    assert_eq!((row.state, row.attempts), (RequestState::Pending, 0));
    assert_eq!(
        row.last_error.as_deref(),
        Some("HTTP 401: invalid_client"),
        "the last reason stays visible"
    );
    let row = db.store.cancel(id, "bob", None).await.unwrap();
    assert_eq!(row.state, RequestState::Cancelled);
    assert!(matches!(
        db.store.cancel(id, "bob", None).await,
        Err(StoreError::WrongState { .. })
    ));
    assert!(matches!(
        db.store.retry(9999, "ops", None).await,
        Err(StoreError::NoSuchRequest(9999))
    ));
    let notes = db.store.audit_notes(Some(id)).await.unwrap();
    assert_eq!(
        crate::helpers::notes_said(&notes),
        [
            (AuditAction::Retry, "alice", Some("rotated the client secret")),
            (AuditAction::Cancel, "bob", None)
        ]
    );
}

/// Defect 4: renewal extends only the leases named (the requests really in flight), and
/// says which of them are no longer held.
async fn renewal_extends_only_the_leases_in_flight(db: TestDb) {
    for user in ["u1", "u2", "u3"] {
        db.store.enqueue(user, None, None).await.unwrap();
    }
    let a = claim_one(&db.store, "w1").await;
    let orphan = claim_one(&db.store, "w1").await;
    let b = claim_one(&db.store, "w2").await;
    let held = db
        .store
        .renew_leases(&[&a.fence], Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(held, [a.id]);
    let row = |id| {
        let store = db.store.clone();
        async move { store.request(id).await.unwrap().unwrap().locked_until.unwrap() }
    };
    let (a_until, orphan_until, b_until) = (row(a.id).await, row(orphan.id).await, row(b.id).await);
    assert!(
        a_until > orphan_until + chrono::Duration::seconds(500),
        "the lease in flight was not extended"
    );
    assert!(
        orphan_until < b_until + chrono::Duration::seconds(5),
        "the orphan's lease was extended"
    );

    // Taken over: the old holder's renewal finds it gone.
    expire_leases(&db.store).await;
    let taken = db.store.claim_due("w3", 10, LEASE).await.unwrap();
    assert_eq!(taken.len(), 3);
    let held = db.store.renew_leases(&[&a.fence, &orphan.fence], LEASE).await.unwrap();
    assert!(held.is_empty(), "{held:?}");
}

async fn a_release_returns_the_request_without_spending_an_attempt(db: TestDb) {
    let id = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    let claimed = claim_one(&db.store, "w1").await;
    let state = db
        .store
        .complete(&claimed.fence, "u1", &NOBODY, &Decision::Release)
        .await
        .unwrap();
    assert_eq!(state, RequestState::Pending);
    let row = db.store.request(id).await.unwrap().unwrap();
    assert_eq!((row.attempts, row.locked_by), (0, None));
}

async fn the_clearance_view_shows_each_users_latest_request(db: TestDb) {
    let first = db.store.enqueue("u1", None, None).await.unwrap().request.id;
    db.store.cancel(first, "ops", None).await.unwrap();
    db.store.enqueue("u1", None, Some("case-2")).await.unwrap();
    let claimed = claim_one(&db.store, "w1").await;
    db.store
        .complete(&claimed.fence, "u1", &NOBODY, &cleared())
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
    a_stale_claim_stays_fenced_out_after_a_retry_or_a_release,
    concurrent_claimers_never_share_a_request,
    a_request_clears_only_when_every_token_is_settled,
    a_token_rotated_in_place_is_not_settled_by_revoking_its_old_value,
    verification_and_refresh_attempts_are_stored_and_settle_nothing,
    an_unreadable_token_row_is_named_and_the_rest_are_read,
    the_audit_table_is_append_only,
    operators_retry_failed_and_cancel_open_requests,
    renewal_extends_only_the_leases_in_flight,
    a_release_returns_the_request_without_spending_an_attempt,
    the_clearance_view_shows_each_users_latest_request,
);
