//! Over 400 lines on purpose: the whole settlement matrix in one file, so a reader sees every
//! case of outcome × policy × pairing × attempts side by side.
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

#[test]
fn a_refresh_token_finds_its_pair_by_provider_and_grant() {
    let refresh = token(2, "onelogin", "refresh_token", Some("g1"));
    let all = vec![
        token(1, "other", "access_token", Some("g1")),
        token(3, "onelogin", "refresh_token", Some("g1")),
        token(4, "onelogin", "access_token", Some("g2")),
        token(5, "onelogin", "access_token", Some("g1")),
        refresh.clone(),
    ];
    assert_eq!(pair_of(&refresh, &all).map(|t| t.id), Some(5));
    let ungranted = token(6, "onelogin", "refresh_token", None);
    assert!(pair_of(&ungranted, &all).is_none());
    let lonely = token(7, "onelogin", "refresh_token", Some("g9"));
    assert!(pair_of(&lonely, &all).is_none());
}

#[test]
fn a_paired_token_dies_only_with_a_dead_pair() {
    let pair = token(5, "onelogin", "access_token", Some("g1"));
    assert_eq!(paired_end(None, None), PairedEnd::Unpaired);
    assert_eq!(
        paired_end(Some(&pair), Some(&TokenEnd::Settled(Outcome::Revoked))),
        PairedEnd::DiedWith { pair_id: 5 }
    );
    let transient = TokenEnd::Transient {
        reason: "HTTP 503".into(),
        not_before: None,
    };
    for end in [
        None,
        Some(&transient),
        Some(&TokenEnd::Failed("x".into())),
        Some(&TokenEnd::Stopped),
    ] {
        assert_eq!(paired_end(Some(&pair), end), PairedEnd::Waiting, "{end:?}");
    }
    // Revoked by an earlier claim, as the audit says of the value it holds now.
    let mut earlier = pair.clone();
    earlier.settled_as = Some(Outcome::Revoked);
    assert_eq!(paired_end(Some(&earlier), None), PairedEnd::DiedWith { pair_id: 5 });
}

/// Defect 9: an access token that was merely expired, settled by policy, or revoked by the
/// application proves nothing about its refresh token.
#[test]
fn a_pair_that_was_not_revoked_by_the_provider_is_no_evidence() {
    let pair = token(5, "onelogin", "access_token", Some("g1"));
    for outcome in [Outcome::AlreadyInvalid, Outcome::NotRevocable] {
        assert_eq!(
            paired_end(Some(&pair), Some(&TokenEnd::Settled(outcome))),
            PairedEnd::NoEvidence { pair_id: 5 },
            "{outcome}"
        );
    }
    let mut expired_before = pair.clone();
    expired_before.settled_as = Some(Outcome::AlreadyInvalid);
    assert_eq!(
        paired_end(Some(&expired_before), None),
        PairedEnd::NoEvidence { pair_id: 5 }
    );
    let mut by_application = pair.clone();
    by_application.revoked_at = Some(now());
    by_application.revoked_by_application = true;
    assert_eq!(
        paired_end(Some(&by_application), None),
        PairedEnd::NoEvidence { pair_id: 5 }
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

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop::sample::select(Outcome::ALL.to_vec())
    }

    fn end() -> impl Strategy<Value = TokenEnd> {
        prop_oneof![
            outcome().prop_map(TokenEnd::Settled),
            ".{0,40}".prop_map(TokenEnd::Failed),
            (".{0,40}", prop::option::of(0u64..10_000_000)).prop_map(|(reason, wait)| TokenEnd::Transient {
                reason,
                not_before: wait.map(Duration::from_millis),
            }),
            Just(TokenEnd::Stopped),
            Just(TokenEnd::Blocked),
        ]
    }

    fn policy_kind() -> impl Strategy<Value = NotRevocablePolicy> {
        prop::sample::select(POLICIES.to_vec())
    }

    proptest! {
        /// The request's decision, over any mix of token ends and attempts: never a panic;
        /// cleared only when nothing failed, stayed transient or was stopped; failed when
        /// anything failed; a retry never later than the durable cap.
        #[test]
        fn the_decision_follows_the_worst_token(
            ends in prop::collection::vec(end(), 0..12),
            attempt in 1i32..12,
            max_attempts in 1i32..12,
            unit in 0.0f64..1.0,
        ) {
            let decision = decide_for(&ends, attempt, max_attempts, unit);
            let failed = ends.iter().any(|e| matches!(e, TokenEnd::Failed(_)));
            let stopped = ends.iter().any(|e| matches!(e, TokenEnd::Stopped));
            let transient = ends.iter().any(|e| matches!(e, TokenEnd::Transient { .. }));
            match &decision {
                Decision::Cleared { .. } => {
                    prop_assert!(!failed && !stopped && !transient);
                }
                Decision::Failed { reason } => {
                    prop_assert!(failed || (transient && !stopped && attempt >= max_attempts));
                    prop_assert!(reason.len() <= MAX_REASON_LEN + '…'.len_utf8());
                }
                Decision::Release => {
                    prop_assert!(stopped && !failed);
                }
                Decision::Retry { after, .. } => {
                    prop_assert!(transient && !failed && !stopped && attempt < max_attempts);
                    prop_assert!(*after <= retry().durable_cap);
                }
            }
            let is_failed = matches!(decision, Decision::Failed { .. });
            prop_assert!(!failed || is_failed);
        }

        /// Settlement of one answer, for any expiry (past, far future, none) and any bound:
        /// no panic; a provider's word that the token is dead always settles it; a failure
        /// or a transient answer never does.
        #[test]
        fn an_answer_settles_only_as_the_rules_say(
            outcome in outcome(),
            expires_secs in prop::option::of(-8_000_000_000_000i64..8_000_000_000_000),
            within_secs in 0u64..40_000_000_000,
            kind in policy_kind(),
        ) {
            let expires_at = expires_secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
            let policy = Policy { not_revocable: kind, within: Duration::from_secs(within_secs) };
            let settled = settles(outcome, expires_at, policy, now());
            let end = end_of(&Verdict::new(outcome), expires_at, policy, now());
            match outcome {
                Outcome::Revoked | Outcome::AlreadyInvalid => {
                    prop_assert!(settled);
                    prop_assert_eq!(end, TokenEnd::Settled(outcome));
                }
                Outcome::Failed => {
                    let failed = matches!(end, TokenEnd::Failed(_));
                    prop_assert!(!settled && failed);
                }
                Outcome::Transient | Outcome::StillActive | Outcome::Refreshed => {
                    let transient = matches!(end, TokenEnd::Transient { .. });
                    prop_assert!(!settled && transient);
                }
                Outcome::NotRevocable => prop_assert_eq!(settled, end == TokenEnd::Settled(Outcome::NotRevocable)),
            }
            let _ = policy_note(expires_at, policy, settled);
        }
    }
}
