//! Building the evidence document from rows, without a database.

use super::*;
use crate::outcome::RequestState;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
}

fn row(id: i64, action: &str, token: Option<(i64, &str, &str, bool)>) -> EvidenceRow {
    EvidenceRow {
        id,
        request_id: 1,
        action: action.into(),
        token_id: token.map(|t| t.0),
        provider: token.map(|_| "acme".into()),
        token_type: token.map(|_| "access_token".into()),
        token_fingerprint: token.map(|t| t.1.into()),
        attempt: token.map(|_| 1),
        outcome: token.map(|t| t.2.into()),
        settled: token.is_some_and(|t| t.3),
        http_status: token.map(|_| 200),
        provider_request_id: None,
        error: None,
        duration_ms: 3,
        worker: "w1".into(),
        attempted_at: at(id),
        verified: None,
        verified_by: None,
        chain_seq: None,
        prev_hash: None,
        row_hash: None,
    }
}

/// Request 1 of user `u`, cleared at second 9.
fn cleared_request() -> RequestRow {
    RequestRow {
        id: 1,
        user_id: "u".into(),
        requested_by: Some("dpo".into()),
        external_ref: None,
        state: RequestState::Cleared,
        attempts: 2,
        next_attempt_at: None,
        locked_by: None,
        locked_until: None,
        last_error: None,
        requested_at: at(0),
        cleared_at: Some(at(9)),
    }
}

/// A value rotated in place is a second entry of the same token row; a token settles at
/// its first settling attempt; rows about the request, known or not, are notes.
#[test]
fn attempts_are_filed_by_token_value_and_notes_kept_apart() {
    let request = cleared_request();
    let rows = vec![
        row(1, "revoke", Some((7, "sha256:aa", "transient", false))),
        row(2, "retry", None),
        row(3, "revoke", Some((7, "sha256:aa", "revoked", true))),
        row(4, "revoke", Some((7, "sha256:bb", "revoked", true))),
        row(5, "dashboard_retry", None),
    ];
    let record = UserRecord {
        requests: vec![request],
        rows,
        chained: false,
    };
    let e = Evidence::build("u", record, "sqlite", at(10)).unwrap();
    let tokens = &e.requests[0].tokens;
    assert_eq!(tokens.len(), 2);
    assert_eq!((tokens[0].token_id, tokens[0].fingerprint.as_str()), (7, "sha256:aa"));
    assert_eq!(
        tokens[0].attempts.iter().map(|a| a.audit_id).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(tokens[0].settled_at.as_deref(), Some(time(&at(3)).as_str()));
    assert_eq!((tokens[1].fingerprint.as_str(), tokens[1].settled), ("sha256:bb", true));
    let notes: Vec<&str> = e.requests[0].notes.iter().map(|n| n.action.as_str()).collect();
    assert_eq!(notes, ["retry", "dashboard_retry"]);
    assert_eq!(
        (
            e.summary.cleared,
            e.summary.tokens,
            e.summary.tokens_settled,
            e.summary.attempts
        ),
        (true, 2, 2, 3)
    );
    assert!(!e.chain.recorded);
}

/// Tokens are listed by token id, whichever provider answered first: concurrent
/// revocations write their rows in the order they finish, and an auditor reading two
/// records of one user should find the same order. A value rotated in place stays after
/// the value it replaced.
#[test]
fn tokens_are_listed_by_id_whatever_order_their_attempts_finished() {
    let request = cleared_request();
    let rows = vec![
        row(1, "revoke", Some((9, "sha256:cc", "revoked", true))),
        row(2, "revoke", Some((8, "sha256:bb", "revoked", true))),
        row(3, "revoke", Some((9, "sha256:aa", "revoked", true))),
        row(4, "revoke", Some((3, "sha256:dd", "revoked", true))),
    ];
    let record = UserRecord {
        requests: vec![request],
        rows,
        chained: false,
    };
    let e = Evidence::build("u", record, "sqlite", at(10)).unwrap();
    let listed: Vec<(i64, &str)> = e.requests[0]
        .tokens
        .iter()
        .map(|t| (t.token_id, t.fingerprint.as_str()))
        .collect();
    assert_eq!(
        listed,
        [(3, "sha256:dd"), (8, "sha256:bb"), (9, "sha256:cc"), (9, "sha256:aa")]
    );
}

#[test]
fn a_user_without_requests_has_no_evidence() {
    let record = UserRecord {
        requests: Vec::new(),
        rows: Vec::new(),
        chained: true,
    };
    assert!(Evidence::build("nobody", record, "postgres", at(0)).is_none());
}
