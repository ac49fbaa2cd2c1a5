//! A OneLogin refresh token and its pair: found by provider and grant, dead only with a
//! dead pair, and no evidence from a pair the provider did not revoke.

use super::*;

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

proptest::proptest! {
    /// The index finds the same pair as the linear search, for any mix of providers, types
    /// and grants (issue 10: a user with many tokens is paired in linear time).
    #[test]
    fn the_pair_index_agrees_with_the_search(
        specs in proptest::collection::vec((0usize..2, 0usize..3, proptest::option::of(0usize..4)), 0..40),
    ) {
        let providers = ["onelogin", "other"];
        let types = ["access_token", "refresh_token", "bogus"];
        let grants = ["g0", "g1", "g2", "g3"];
        let all: Vec<StoredToken> = specs
            .iter()
            .enumerate()
            .map(|(i, (p, ty, g))| token(i as i64, providers[*p], types[*ty], g.map(|g| grants[g])))
            .collect();
        let pairs = Pairs::index(&all);
        for t in &all {
            proptest::prop_assert_eq!(pairs.of(t).map(|p| p.id), pair_of(t, &all).map(|p| p.id));
        }
    }
}
