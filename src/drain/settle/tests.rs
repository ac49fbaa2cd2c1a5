//! The settlement matrix: outcome × policy × pairing × attempts, without a database, a
//! network or a runtime. Every case the end-to-end suite reaches through real providers is
//! here as a plain function call.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::token::TokenValue;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn policy(not_revocable: NotRevocablePolicy) -> Policy {
    Policy {
        not_revocable,
        within: Duration::from_secs(24 * 3600),
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        base: Duration::from_millis(10),
        factor: 2.0,
        cap: Duration::from_millis(20),
        retry_after_cap: Duration::from_secs(60),
        durable_base: Duration::from_secs(30),
        durable_cap: Duration::from_secs(3600),
    }
}

fn token(id: i64, provider: &str, ty: &str, grant: Option<&str>) -> StoredToken {
    StoredToken {
        id,
        provider: provider.into(),
        token_type_raw: ty.into(),
        value: TokenValue::new(format!("value-{id}")),
        stored: TokenValue::new(format!("value-{id}")),
        grant_ref: grant.map(str::to_owned),
        expires_at: None,
        revoked_at: None,
        settled_as: None,
        revoked_by_application: false,
        prior_attempts: 0,
        vars: Default::default(),
    }
}

const POLICIES: [NotRevocablePolicy; 3] = [
    NotRevocablePolicy::Expiring,
    NotRevocablePolicy::Settle,
    NotRevocablePolicy::Block,
];

#[test]
fn a_provider_saying_the_token_is_dead_settles_it_under_every_policy() {
    for p in POLICIES {
        for outcome in [Outcome::Revoked, Outcome::AlreadyInvalid] {
            assert!(settles(outcome, None, policy(p), now()), "{outcome} under {p:?}");
            assert_eq!(
                end_of(&Verdict::new(outcome), None, policy(p), now()),
                TokenEnd::Settled(outcome)
            );
        }
    }
}

#[test]
fn transient_and_failed_answers_never_settle() {
    for p in POLICIES {
        for outcome in [Outcome::Transient, Outcome::Failed] {
            assert!(
                !settles(outcome, Some(now()), policy(p), now()),
                "{outcome} under {p:?}"
            );
        }
    }
    let verdict = Verdict::new(Outcome::Failed).with_error("HTTP 401: invalid_client");
    assert_eq!(
        end_of(&verdict, None, policy(NotRevocablePolicy::Settle), now()),
        TokenEnd::Failed("HTTP 401: invalid_client".into())
    );
    let verdict = Verdict::new(Outcome::Transient).with_error("HTTP 503");
    assert_eq!(
        end_of(&verdict, None, policy(NotRevocablePolicy::Settle), now()),
        TokenEnd::Transient {
            reason: "HTTP 503".into(),
            not_before: None
        }
    );
    // No error text: the outcome names itself.
    assert_eq!(
        end_of(
            &Verdict::new(Outcome::Failed),
            None,
            policy(NotRevocablePolicy::Settle),
            now()
        ),
        TokenEnd::Failed("failed".into())
    );
}

#[test]
fn not_revocable_follows_the_policy_and_the_expiry() {
    let soon = Some(now() + chrono::Duration::hours(1));
    let later = Some(now() + chrono::Duration::days(30));
    let exactly = Some(now() + chrono::Duration::hours(24));
    let expiring = policy(NotRevocablePolicy::Expiring);
    assert!(settles(Outcome::NotRevocable, soon, expiring, now()));
    assert!(settles(Outcome::NotRevocable, exactly, expiring, now()));
    assert!(!settles(Outcome::NotRevocable, later, expiring, now()));
    assert!(!settles(Outcome::NotRevocable, None, expiring, now()));
    for at in [soon, later, None] {
        assert!(settles(
            Outcome::NotRevocable,
            at,
            policy(NotRevocablePolicy::Settle),
            now()
        ));
        assert!(!settles(
            Outcome::NotRevocable,
            at,
            policy(NotRevocablePolicy::Block),
            now()
        ));
    }
}

#[test]
fn a_not_revocable_answer_that_the_policy_refuses_fails_with_both_reasons() {
    let verdict = Verdict::new(Outcome::NotRevocable).with_error("unsupported_token_type");
    let end = end_of(&verdict, None, policy(NotRevocablePolicy::Expiring), now());
    assert_eq!(
        end,
        TokenEnd::Failed(
            "not revocable (unsupported_token_type); no expiry recorded, not within 1day; \
             not settled (policy not_revocable = expiring)"
                .into()
        )
    );
    let soon = Some(now() + chrono::Duration::hours(1));
    assert_eq!(
        end_of(&verdict, soon, policy(NotRevocablePolicy::Expiring), now()),
        TokenEnd::Settled(Outcome::NotRevocable)
    );
}

#[test]
fn policy_notes_say_why() {
    let at = Some(now());
    assert_eq!(
        policy_note(at, policy(NotRevocablePolicy::Settle), true),
        "expires 2026-11-22T12:00:00Z; settled by policy not_revocable = settle"
    );
    assert_eq!(
        policy_note(None, policy(NotRevocablePolicy::Block), false),
        "no expiry recorded; not settled: policy not_revocable = block"
    );
    assert_eq!(
        policy_note(at, policy(NotRevocablePolicy::Expiring), true),
        "expires 2026-11-22T12:00:00Z, within 1day; settled by policy"
    );
}

#[test]
fn immediate_ends_fail_unless_settled() {
    assert_eq!(
        immediate_end(Outcome::NotRevocable, true, "jwt"),
        TokenEnd::Settled(Outcome::NotRevocable)
    );
    assert_eq!(
        immediate_end(Outcome::NotRevocable, false, "jwt"),
        TokenEnd::Failed("not revocable: jwt".into())
    );
    assert_eq!(
        immediate_end(Outcome::Failed, false, "provider 'x' is not configured"),
        TokenEnd::Failed("provider 'x' is not configured".into())
    );
    assert_eq!(
        immediate_end(Outcome::Revoked, true, "with its pair"),
        TokenEnd::Settled(Outcome::Revoked)
    );
}

fn decide_for(ends: &[TokenEnd], attempt: i32, max_attempts: i32, unit: f64) -> Decision {
    let retry = retry();
    let limits = Limits {
        attempt,
        max_attempts,
        retry: &retry,
    };
    decide(
        ends.iter().enumerate().map(|(i, e)| (format!("token {i}"), e)),
        &limits,
        unit,
    )
}

fn transient(reason: &str, not_before: Option<Duration>) -> TokenEnd {
    TokenEnd::Transient {
        reason: reason.into(),
        not_before,
    }
}

fn cleared_unless_retry_after(secs: u64, note: &str) -> Decision {
    Decision::Cleared {
        unless: Unsettled::Retry {
            after: Duration::from_secs(secs),
            note: note.into(),
        },
    }
}

#[test]
fn every_token_settled_or_blocked_clears_including_none_at_all() {
    assert_eq!(
        decide_for(&[], 1, 3, 0.0),
        cleared_unless_retry_after(15, "attempt 1 of 3")
    );
    let ends = [
        TokenEnd::Settled(Outcome::Revoked),
        TokenEnd::Settled(Outcome::NotRevocable),
        TokenEnd::Blocked,
    ];
    assert_eq!(
        decide_for(&ends, 1, 3, 0.0),
        cleared_unless_retry_after(15, "attempt 1 of 3")
    );
}

/// Defect 7: a request bounced back by the clearing re-check backs off like any transient
/// error, and on its last attempt fails with the real reason instead of looping.
#[test]
fn a_clearance_the_database_refuses_backs_off_or_fails_with_its_reason() {
    let ends = [TokenEnd::Settled(Outcome::Revoked)];
    assert_eq!(
        decide_for(&ends, 2, 3, 0.0),
        cleared_unless_retry_after(30, "attempt 2 of 3")
    );
    assert_eq!(
        decide_for(&ends, 3, 3, 0.0),
        Decision::Cleared {
            unless: Unsettled::Fail {
                note: "attempts used up (3 of 3)".into()
            }
        }
    );
}

#[test]
fn a_permanent_failure_wins_over_everything_else() {
    let ends = [
        TokenEnd::Stopped,
        transient("HTTP 503", None),
        TokenEnd::Failed("HTTP 401".into()),
        TokenEnd::Failed("HTTP 422".into()),
    ];
    assert_eq!(
        decide_for(&ends, 1, 3, 0.5),
        Decision::Failed {
            reason: "token 2: HTTP 401; token 3: HTTP 422".into()
        }
    );
}

#[test]
fn shutdown_releases_the_request_before_transient_errors_count() {
    let ends = [
        TokenEnd::Settled(Outcome::Revoked),
        TokenEnd::Stopped,
        transient("HTTP 503", None),
    ];
    assert_eq!(decide_for(&ends, 3, 3, 0.5), Decision::Release);
}

/// Issue 10: a token never sent because its provider's backlog was too long defers its
/// request without spending an attempt, even on the last one; beside a transient error it
/// comes back with it (an attempt spent, never before the backlog is through).
#[test]
fn tokens_never_sent_defer_the_request_without_spending_an_attempt() {
    let deferred = |secs| TokenEnd::Deferred {
        not_before: Duration::from_secs(secs),
    };
    let ends = [TokenEnd::Settled(Outcome::Revoked), deferred(40), deferred(90)];
    let Decision::Defer { after, reason } = decide_for(&ends, 3, 3, 0.5) else {
        panic!("expected a deferral on the last attempt");
    };
    assert_eq!(after, Duration::from_secs(90));
    assert!(reason.contains("token 1, token 2"), "{reason}");
    // Capped like a durable backoff.
    let Decision::Defer { after, .. } = decide_for(&[deferred(1_000_000)], 1, 3, 0.5) else {
        panic!("expected a deferral");
    };
    assert_eq!(after, retry().durable_cap);
    // Beside a transient error: a retry, not before the backlog is through.
    let mixed = [transient("HTTP 500", None), deferred(3000)];
    let Decision::Retry { after, .. } = decide_for(&mixed, 1, 3, 0.0) else {
        panic!("expected a retry");
    };
    assert_eq!(after, Duration::from_secs(3000).min(retry().durable_cap));
    // A failure still wins.
    let failed = [deferred(10), TokenEnd::Failed("HTTP 401".into())];
    assert!(matches!(decide_for(&failed, 1, 3, 0.5), Decision::Failed { .. }));
}

#[test]
fn transient_errors_retry_after_a_durable_backoff_until_attempts_run_out() {
    let ends = [TokenEnd::Settled(Outcome::Revoked), transient("HTTP 500", None)];
    // Attempt 1: durable_base 30s, equal jitter: between 15s and 30s.
    for (unit, secs) in [(0.0, 15), (0.5, 22), (0.999, 29)] {
        match decide_for(&ends, 1, 3, unit) {
            Decision::Retry { after, reason } => {
                assert_eq!(after.as_secs(), secs, "unit {unit}");
                assert_eq!(reason, "attempt 1 of 3: token 1: HTTP 500");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }
    // Attempt 2 doubles the ceiling.
    let Decision::Retry { after, .. } = decide_for(&ends, 2, 3, 0.0) else {
        panic!("expected a retry")
    };
    assert_eq!(after.as_secs(), 30);
    // The last attempt fails the request with what went wrong.
    assert_eq!(
        decide_for(&ends, 3, 3, 0.5),
        Decision::Failed {
            reason: "attempts used up (3 of 3): token 1: HTTP 500".into()
        }
    );
}

#[test]
fn a_provider_pause_pushes_the_retry_past_its_end() {
    let ends = [
        transient("HTTP 429", Some(Duration::from_secs(600))),
        transient("HTTP 503", Some(Duration::from_secs(90))),
    ];
    let Decision::Retry { after, .. } = decide_for(&ends, 1, 3, 0.0) else {
        panic!("expected a retry")
    };
    assert_eq!(after.as_secs(), 600);
}

#[test]
fn long_reasons_are_clipped_on_a_character_boundary() {
    let ends: Vec<TokenEnd> = (0..100).map(|_| TokenEnd::Failed("é".repeat(20))).collect();
    let Decision::Failed { reason } = decide_for(&ends, 1, 3, 0.5) else {
        panic!("expected failure")
    };
    assert!(reason.len() <= MAX_REASON_LEN + '…'.len_utf8());
    assert!(reason.ends_with('…'));
}

#[test]
fn a_claim_past_the_last_attempt_fails_without_calling_anyone_keeping_the_last_reason() {
    assert_eq!(over_budget(3, 3, None), None);
    assert_eq!(
        over_budget(4, 3, None),
        Some(Decision::Failed {
            reason: "attempts used up (3 of 3): the last claim's run did not finish (its worker stopped or lost \
                     its lease)"
                .into()
        })
    );
    let Some(Decision::Failed { reason }) =
        over_budget(4, 3, Some("attempt 2 of 3: token 7 (acme access_token): HTTP 503"))
    else {
        panic!("expected failure")
    };
    assert!(
        reason.ends_with("; before that: attempt 2 of 3: token 7 (acme access_token): HTTP 503"),
        "{reason}"
    );
}

#[test]
fn labels_name_the_token_row_provider_and_type() {
    assert_eq!(
        label(&token(7, "acme", "refresh_token", None)),
        "token 7 (acme refresh_token)"
    );
}

mod pairing;
mod properties;
