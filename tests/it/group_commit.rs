//! Group commit (issue 10 point 4) on both backends: many requests finishing together are
//! written in fewer transactions than requests, and within one batch each request keeps the
//! invariants of DESIGN.md §3 on its own: a request whose lease was taken over is not
//! cleared (its rows are written) while the others are; a clearance is re-checked per
//! request; every answered call has its audit row.

use std::time::Duration;

use chrono::Utc;
use offboard::outcome::{Decision, Outcome, RequestState, Unsettled};
use offboard::provider::dialect::Dialect;
use offboard::simulate::SimProvider;
use offboard::storage::{AuditRow, ClaimedRequest, Results, StoreError, Write};
use offboard::token::{TokenType, TokenValue};

use crate::end_to_end::{Fixture, Seeded};
use crate::helpers::{TestDb, on_both_backends};

on_both_backends!(
    many_requests_share_transactions,
    lease_lost_in_a_batch_stops_only_that_request,
    clearance_is_rechecked_per_request_in_a_batch,
);

const PROVIDER: &str = "rfc7009";

async fn fixture(db: TestDb) -> Fixture {
    let sim = vec![SimProvider::new(PROVIDER, Dialect::Rfc7009)];
    Fixture::new(db, sim, "[worker]\nconcurrency = 64\nbatch_size = 64\n").await
}

/// 60 users with two tokens each, drained by one worker: every request cleared, every
/// answered call audited, and the results written in fewer transactions than requests
/// (one transaction per write, as before group commit, would be at least 120).
async fn many_requests_share_transactions(db: TestDb) {
    let f = fixture(db).await;
    const USERS: usize = 60;
    for i in 0..USERS {
        let user = format!("gc-{i}");
        f.seed(&user, PROVIDER, TokenType::RefreshToken).await;
        f.seed(&user, PROVIDER, TokenType::RefreshToken).await;
        f.enqueue(&user).await;
    }
    let report = f.drain().await;
    assert_eq!(report.cleared, USERS as u64, "{report:?}");

    let (transactions, writes) = f.worker.commit_counts();
    assert!(writes >= USERS as u64, "one completion per request at least: {writes}");
    assert!(
        transactions < USERS as u64,
        "{writes} writes of {USERS} requests took {transactions} transactions: not grouped"
    );

    // Every answered call has its audit row, and every token is settled by one.
    let calls = f.sim.calls().into_iter().filter(|c| c.is_revocation()).count();
    let rows = f.store().audit_rows(None, None).await.unwrap();
    assert_eq!(calls, 2 * USERS);
    assert_eq!(rows.len(), calls, "one audit row per answered call");
    assert!(rows.iter().all(|r| r.settled && r.outcome == Outcome::Revoked));
}

/// A settling audit row for `token`, as a worker writes it after the provider's answer.
fn settling_row(claimed: &ClaimedRequest, token: &Seeded, worker: &str) -> AuditRow {
    AuditRow {
        request_id: claimed.id,
        user_id: claimed.user_id.clone(),
        token_id: token.id,
        provider: PROVIDER.into(),
        token_type: "refresh_token".into(),
        token_fingerprint: TokenValue::new(token.value.clone()).fingerprint().as_str().to_owned(),
        attempt: 1,
        outcome: Outcome::Revoked,
        settled: true,
        http_status: Some(200),
        provider_request_id: None,
        error: None,
        duration_ms: 1,
        worker: worker.into(),
        attempted_at: Utc::now(),
        verified: None,
        verified_by: None,
    }
}

fn revoked(claimed: &ClaimedRequest, tokens: &[&Seeded], worker: &str) -> Results {
    Results {
        rows: tokens.iter().map(|t| settling_row(claimed, t, worker)).collect(),
        notes: Vec::new(),
        dead: tokens
            .iter()
            .map(|t| (t.id, TokenValue::new(t.value.clone())))
            .collect(),
    }
}

fn cleared() -> Decision {
    Decision::Cleared {
        unless: Unsettled::Retry {
            after: Duration::from_secs(60),
            note: "re-check".into(),
        },
    }
}

/// Three requests complete in one batch; the first one's lease was taken over by another
/// worker in the meantime. It gets `LeaseLost`, stays with the new owner uncleared, and its
/// audit row is written; the other two are cleared in the same transaction.
async fn lease_lost_in_a_batch_stops_only_that_request(db: TestDb) {
    let f = fixture(db).await;
    let mut tokens = Vec::new();
    for user in ["lost", "kept-1", "kept-2"] {
        tokens.push(f.seed(user, PROVIDER, TokenType::RefreshToken).await);
        f.enqueue(user).await;
    }
    // Short leases, so another worker can take the first request over.
    let claimed = f.store().claim_due("w1", 3, Duration::from_millis(1)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = f.store().claim_due("w2", 1, Duration::from_secs(600)).await.unwrap();
    assert_eq!(
        taken[0].id, claimed[0].id,
        "the second worker takes over the first request"
    );

    let results: Vec<Results> = claimed
        .iter()
        .zip(&tokens)
        .map(|(c, t)| revoked(c, &[t], "w1"))
        .collect();
    let decision = cleared();
    let writes: Vec<Write<'_>> = claimed
        .iter()
        .zip(&results)
        .map(|(c, r)| Write {
            fence: &c.fence,
            results: r,
            decision: Some((&c.user_id, &decision)),
        })
        .collect();
    let answers = f.store().write_batch(&writes).await.expect("the batch is written");

    assert!(
        matches!(answers[0], Err(StoreError::LeaseLost(id)) if id == claimed[0].id),
        "{:?}",
        answers[0]
    );
    assert!(matches!(answers[1], Ok(RequestState::Cleared)), "{:?}", answers[1]);
    assert!(matches!(answers[2], Ok(RequestState::Cleared)), "{:?}", answers[2]);

    let lost = f.store().request(claimed[0].id).await.unwrap().unwrap();
    assert_eq!(
        lost.state,
        RequestState::Running,
        "not cleared by the worker that lost it"
    );
    assert_eq!(lost.locked_by.as_deref(), Some("w2"));
    for (c, expected) in claimed
        .iter()
        .zip([RequestState::Running, RequestState::Cleared, RequestState::Cleared])
    {
        let rows = f.store().audit_rows(Some(c.id), None).await.unwrap();
        assert_eq!(rows.len(), 1, "the call's audit row is written, lease or not");
        assert_eq!(f.latest(&c.user_id).await.state, expected);
    }
}

/// Two completions in one batch, both deciding `Cleared`: one user has a second token the
/// run did not settle (it appeared during the run), so that request goes back to pending
/// with the re-check's note; the other is cleared.
async fn clearance_is_rechecked_per_request_in_a_batch(db: TestDb) {
    let f = fixture(db).await;
    let settled_a = f.seed("with-new-token", PROVIDER, TokenType::RefreshToken).await;
    f.enqueue("with-new-token").await;
    let settled_b = f.seed("all-settled", PROVIDER, TokenType::RefreshToken).await;
    f.enqueue("all-settled").await;
    let claimed = f.store().claim_due("w1", 2, Duration::from_secs(600)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Inserted while the run went on: unsettled at the completion.
    f.seed("with-new-token", PROVIDER, TokenType::RefreshToken).await;

    let results = [
        revoked(&claimed[0], &[&settled_a], "w1"),
        revoked(&claimed[1], &[&settled_b], "w1"),
    ];
    let decision = cleared();
    let writes: Vec<Write<'_>> = claimed
        .iter()
        .zip(&results)
        .map(|(c, r)| Write {
            fence: &c.fence,
            results: r,
            decision: Some((&c.user_id, &decision)),
        })
        .collect();
    let answers = f.store().write_batch(&writes).await.expect("the batch is written");
    assert!(matches!(answers[0], Ok(RequestState::Pending)), "{:?}", answers[0]);
    assert!(matches!(answers[1], Ok(RequestState::Cleared)), "{:?}", answers[1]);

    let held_back = f.latest("with-new-token").await;
    assert_eq!(held_back.state, RequestState::Pending);
    assert!(held_back.cleared_at.is_none());
    assert!(
        held_back.last_error.as_deref().unwrap_or("").contains("1 token(s)"),
        "{:?}",
        held_back.last_error
    );
    assert_eq!(f.latest("all-settled").await.state, RequestState::Cleared);
}
