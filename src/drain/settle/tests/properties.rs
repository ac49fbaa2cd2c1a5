//! Property tests of the settlement rules: whatever the outcome, expiry, bound, policy,
//! pairing and attempt, no panic, and the rules hold.

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
        (0u64..100_000_000).prop_map(|ms| TokenEnd::Deferred {
            not_before: Duration::from_millis(ms)
        }),
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
        let deferred = ends.iter().any(|e| matches!(e, TokenEnd::Deferred { .. }));
        match &decision {
            Decision::Cleared { .. } => {
                prop_assert!(!failed && !stopped && !transient && !deferred);
            }
            Decision::Defer { after, .. } => {
                prop_assert!(deferred && !failed && !stopped && !transient);
                prop_assert!(*after <= retry().durable_cap);
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
