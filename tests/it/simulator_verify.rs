//! Proof of death and refresh-then-revoke end to end against the simulator, on both
//! backends: a worker, a real database, and the config the simulator writes with `verify`
//! turned on. An RFC 7009 server checked by introspection, Slack by `auth.test` and Google by
//! `tokeninfo` (each entry's probe, its URL pointed at the simulator): an honest provider's
//! revocation is audited `revoked`, verified, and its user clears; a liar
//! (`still_active_after_revoke`) is caught, audited `still_active` at every attempt, and its
//! user fails once the attempts are used up. And a Dropbox refresh token alone, revoked
//! through a fresh access token from the simulator's token endpoint.

use offboard::outcome::{Outcome, RequestState};
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, SimProvider, Simulator};
use offboard::storage::AuditRow;
use offboard::storage::seed::{NewToken, insert_tokens};
use offboard::token::{TokenType, TokenValue};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestDb, app_for, config_toml, exec, on_both_backends};
use crate::simulator_catalog::with_keys;

/// Two tries per claim, two claims: a token that never dies fails its request after four.
const TWO_BY_TWO: &str = "[worker]\nmax_attempts = 2\n[retry]\nattempts = 2\nbase = \"10ms\"\ncap = \"20ms\"\n\
                          durable_base = \"1h\"\ndurable_cap = \"1h\"\n";

async fn seed(db: &TestDb, user: &str, provider: &str, token_type: TokenType, value: &str) -> i64 {
    let token = NewToken {
        user_id: user.into(),
        provider: provider.into(),
        token_type,
        value: TokenValue::new(value.into()),
        grant_ref: None,
        expires_at: None,
    };
    insert_tokens(&db.store, &[token]).await.unwrap();
    db.store.enqueue(user, None, None).await.unwrap().request.id
}

/// (attempt, outcome, settled, verified, verified_by) of an audit row.
type Row<'a> = (i32, Outcome, bool, Option<bool>, Option<&'a str>);

fn rows(audit: &[AuditRow]) -> Vec<Row<'_>> {
    audit
        .iter()
        .map(|r| (r.attempt, r.outcome, r.settled, r.verified, r.verified_by.as_deref()))
        .collect()
}

/// A provider of `dialect` named `name`, lying when `liar`.
fn provider(name: &str, dialect: Dialect, liar: bool) -> SimProvider {
    SimProvider {
        behaviour: Behaviour {
            still_active_after_revoke: liar,
            ..Behaviour::default()
        },
        ..SimProvider::new(name, dialect)
    }
}

async fn each_check_vouches_for_an_honest_provider_and_catches_a_liar(db: TestDb) {
    // (dialect, verify, how the audit names the check)
    let checks = [
        (Dialect::Rfc7009, "introspect", "introspection"),
        (Dialect::Slack, "probe", "slack auth.test"),
        (Dialect::Google, "probe", "google tokeninfo"),
    ];
    let mut sims = Vec::new();
    for (dialect, _, _) in checks {
        sims.push(provider(dialect.as_str(), dialect, false));
        sims.push(provider(&format!("{dialect}_liar"), dialect, true));
    }
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), sims).await.unwrap();
    let (mut text, env) = config_toml(&db.url, &sim, TWO_BY_TWO);
    for (dialect, verify, _) in checks {
        for name in [dialect.to_string(), format!("{dialect}_liar")] {
            text = with_keys(&text, &name, &format!("verify = \"{verify}\"\n"));
        }
    }
    let app = app_for(&db.store, &text, &env);
    // One user per provider, each with one live access token.
    let mut users = Vec::new();
    for (dialect, _, by) in checks {
        for name in [dialect.to_string(), format!("{dialect}_liar")] {
            let token = sim.issue(&name, TokenType::AccessToken, None);
            let request = seed(&db, &format!("user-{name}"), &name, TokenType::AccessToken, &token).await;
            users.push((name, by, token, request));
        }
    }

    app.worker().drain(&CancellationToken::new()).await.unwrap();
    for (name, by, token, request) in &users {
        let row = db.store.request(*request).await.unwrap().unwrap();
        let audit = db.store.audit_rows(Some(*request), None).await.unwrap();
        if name.ends_with("_liar") {
            assert_eq!(row.state, RequestState::Pending, "{name}: {:?}", row.last_error);
            let still = (Outcome::StillActive, false, Some(false), Some(*by));
            let want: Vec<_> = [1, 2].map(|n| (n, still.0, still.1, still.2, still.3)).to_vec();
            assert_eq!(rows(&audit), want, "{name}");
        } else {
            assert_eq!(row.state, RequestState::Cleared, "{name}: {:?}", row.last_error);
            assert_eq!(
                rows(&audit),
                [(1, Outcome::Revoked, true, Some(true), Some(*by))],
                "{name}"
            );
            assert_eq!(sim.is_revoked(token), Some(true), "{name}");
        }
    }

    // The liars' requests are due again (now, rather than in an hour): the second claim
    // revokes and checks twice more, and the attempts are used up.
    exec(&db.store, "UPDATE offboarding_requests SET next_attempt_at = NULL")
        .await
        .unwrap();
    app.worker().drain(&CancellationToken::new()).await.unwrap();
    let stats = sim.stats();
    for (name, by, token, request) in &users {
        let row = db.store.request(*request).await.unwrap().unwrap();
        let audit = db.store.audit_rows(Some(*request), None).await.unwrap();
        let (calls, probes) = (stats[name].calls, stats[name].probes);
        if !name.ends_with("_liar") {
            assert_eq!(
                (row.state, audit.len(), calls, probes),
                (RequestState::Cleared, 1, 1, 1),
                "{name}"
            );
            continue;
        }
        assert_eq!(row.state, RequestState::Failed, "{name}");
        assert!(row.cleared_at.is_none(), "{name}");
        let error = row.last_error.unwrap();
        assert!(
            error.contains(&format!("{by} shows the token still works")),
            "{name}: {error}"
        );
        assert!(!error.contains(token.as_str()), "{name}: {error}");
        assert_eq!(audit.len(), 4, "{name}");
        assert!(
            audit
                .iter()
                .all(|r| (r.outcome, r.settled, r.verified) == (Outcome::StillActive, false, Some(false))),
            "{name}: {:?}",
            rows(&audit)
        );
        // Four revocations accepted, four checks made, and the token still alive.
        assert_eq!((calls, probes, sim.calls_for(token)), (4, 4, 4), "{name}");
        assert_eq!(sim.is_revoked(token), Some(false), "{name}");
        let clearance = db.store.clearance(&format!("user-{name}")).await.unwrap().unwrap();
        assert!(clearance.cleared_at.is_none(), "{name}");
    }
}

/// A user with nothing but a Dropbox refresh token: the simulator's token endpoint trades it
/// for a fresh access token, whose revocation kills the refresh token; two audit rows. A
/// refresh token already dead is `invalid_grant` there: settled, nothing revoked.
async fn a_dropbox_refresh_token_alone_is_revoked_through_the_simulator_s_token_endpoint(db: TestDb) {
    let dropbox = provider("dropbox", Dialect::Dropbox, false);
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), vec![dropbox.clone()])
        .await
        .unwrap();
    let (text, env) = config_toml(&db.url, &sim, "");
    let app = app_for(&db.store, &text, &env);
    let live = sim.issue("dropbox", TokenType::RefreshToken, None);
    let dead = sim.issue("dropbox", TokenType::RefreshToken, None);
    sim.revoke_out_of_band(&dead);
    let rhea = seed(&db, "rhea", "dropbox", TokenType::RefreshToken, &live).await;
    let ravi = seed(&db, "ravi", "dropbox", TokenType::RefreshToken, &dead).await;
    app.worker().drain(&CancellationToken::new()).await.unwrap();

    let row = db.store.request(rhea).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Cleared, "{:?}", row.last_error);
    let audit = db.store.audit_rows(Some(rhea), None).await.unwrap();
    assert_eq!(
        rows(&audit),
        [
            (1, Outcome::Refreshed, false, None, None),
            (2, Outcome::Revoked, true, None, None)
        ]
    );
    assert_eq!(
        sim.is_revoked(&live),
        Some(true),
        "the refresh token outlived its grant"
    );
    // The simulator says so: its token endpoint now refuses the refresh token.
    let answer: serde_json::Value = reqwest::Client::new()
        .post(sim.token_url("dropbox").unwrap())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", live.as_str()),
            ("client_id", dropbox.client_id.as_str()),
            ("client_secret", dropbox.client_secret.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["error"], "invalid_grant");
    // The revocation carried the fresh access token, never the refresh token.
    let revocations: Vec<_> = sim.calls().into_iter().filter(|c| c.is_revocation()).collect();
    assert_eq!(revocations.len(), 1);
    assert!(revocations[0].token_fingerprint().is_some());
    assert_eq!(sim.calls_for(&live), 0);

    let row = db.store.request(ravi).await.unwrap().unwrap();
    assert_eq!(row.state, RequestState::Cleared, "{:?}", row.last_error);
    let audit = db.store.audit_rows(Some(ravi), None).await.unwrap();
    assert_eq!(rows(&audit), [(1, Outcome::AlreadyInvalid, true, None, None)]);
    assert!(
        audit[0].error.as_deref().unwrap().contains("invalid_grant"),
        "{audit:?}"
    );
    let stats = &sim.stats()["dropbox"];
    assert_eq!(
        (stats.refreshes, stats.calls),
        (3, 1),
        "two refreshes by offboard, one by hand"
    );
}

on_both_backends!(
    each_check_vouches_for_an_honest_provider_and_catches_a_liar,
    a_dropbox_refresh_token_alone_is_revoked_through_the_simulator_s_token_endpoint,
);
