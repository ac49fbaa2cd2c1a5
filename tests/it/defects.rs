//! Issue 7's defects, end to end: each test drives the real worker against the real
//! simulator (on both backends unless it says otherwise) and asserts what would break if
//! its fix were taken out. No assertion is about how long something took: the tests compare
//! orders (which request cleared first, which call came after which write) and counts (calls
//! at the provider against audit rows).

use std::time::Duration;

use offboard::outcome::{Outcome, RequestState};
use offboard::provider::dialect::Dialect;
use offboard::simulate::{Behaviour, InvalidTokenAnswer, SimProvider};
use offboard::storage::AuditAction;
use offboard::token::TokenType::{AccessToken, RefreshToken};
use sqlx::Connection;

use crate::end_to_end::{Fixture, Seeded, Spec, provider};
use crate::helpers::{TestDb, exec_built, on_both_backends};

/// Polls `check` every 10 ms until it holds; panics naming `what` after 30 s, so a broken
/// run fails instead of hanging. Only for waiting on a precondition, never as an assertion.
pub(crate) async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..3000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

fn slow(name: &str, dialect: Dialect, latency: Duration) -> SimProvider {
    provider(
        name,
        dialect,
        Behaviour {
            latency,
            ..Behaviour::default()
        },
    )
}

/// Defect 3, invariant 10: a drain with a request in flight keeps looking for due work
/// every poll interval. The slow user's call takes 3 s; the fast user, enqueued while it is
/// in flight, is claimed and cleared by the same drain before the slow one finishes. The old
/// drain, with nothing due at the moment it looked, waited for the in-flight request before
/// claiming again, so the fast user cleared after the slow one.
async fn a_request_enqueued_while_another_is_in_flight_clears_first_in_the_same_drain(db: TestDb) {
    let providers = vec![
        slow("slow", Dialect::Stitch, Duration::from_secs(3)),
        SimProvider::new("fast", Dialect::Rfc7009),
    ];
    let f = Fixture::new(db, providers, "[worker]\npoll_interval = \"100ms\"\n").await;
    f.user_with("slow-user", "slow", AccessToken).await;

    let (report, ()) = tokio::join!(f.drain(), async {
        wait_for("the slow user's claim", async || {
            f.state("slow-user").await == RequestState::Running
        })
        .await;
        // The drain has looked again, found nothing due and is waiting.
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.user_with("fast-user", "fast", AccessToken).await;
    });

    assert_eq!((report.claimed, report.cleared), (2, 2), "{report:?}");
    let slow_row = f.latest("slow-user").await;
    let fast_row = f.latest("fast-user").await;
    let (slow_at, fast_at) = (slow_row.cleared_at.unwrap(), fast_row.cleared_at.unwrap());
    assert!(
        fast_at < slow_at,
        "the fast user cleared at {fast_at}, after the slow one at {slow_at}: claiming waited for the request in flight"
    );
    let audit = f.store().audit_rows(None, None).await.unwrap();
    let order: Vec<&str> = audit.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(order, ["fast-user", "slow-user"]);
}

/// Defects 5c and 6, invariants 4 and 8: an operator cancels a request while its worker is
/// sending its ten tokens, two a second. The worker learns at its next write that its lease
/// is gone and stops sending at once; every call it made, before and after the cancel, has
/// its audit row with the provider's status, and every value the provider revoked is marked
/// revoked. The old worker kept sending all ten after its write failed, and its final write
/// was refused whole, so the calls made since the last progress write had no audit row.
async fn a_cancelled_request_stops_sending_and_every_call_it_made_is_audited(db: TestDb) {
    let paced = Fixture::new(db, vec![SimProvider::new("paced", Dialect::Rfc7009)], "").await;
    let text = paced
        .text
        .replace("rate = \"1000/s\"\nburst = 50", "rate = \"2/s\"\nburst = 1");
    assert_ne!(text, paced.text);
    let f = Fixture::with_config(paced.db, paced.sim, text, paced.env);
    let mut tokens: Vec<Seeded> = Vec::new();
    for _ in 0..10 {
        tokens.push(f.seed("u1", "paced", AccessToken).await);
    }
    let id = f.enqueue("u1").await;

    let (report, sent_before_cancel) = tokio::join!(f.drain(), async {
        wait_for("two calls at the provider", async || f.sim.calls().len() >= 2).await;
        f.store().cancel(id, "ops", Some("test")).await.unwrap();
        f.sim.calls().len()
    });

    assert_eq!(report.lease_lost, 1, "{report:?}");
    assert_eq!(f.latest("u1").await.state, RequestState::Cancelled);
    let calls = f.sim.calls().len();
    assert!(
        calls < tokens.len(),
        "the worker sent all {calls} tokens of a cancelled request"
    );
    // At 2/s the worker hears of the cancel at the answer to the call after it, and sends
    // nothing more: the call it learns on is the only one after the cancel (one more at most
    // when that answer and the cancel cross).
    assert!(
        calls <= sent_before_cancel + 2,
        "{calls} calls, {sent_before_cancel} of them before the cancel: the worker did not stop"
    );

    let audit = f.store().audit_rows(Some(id), None).await.unwrap();
    let answered = |t: &Seeded| {
        audit
            .iter()
            .filter(|r| r.token_id == t.id && r.http_status.is_some())
            .count()
    };
    for t in &tokens {
        assert_eq!(
            answered(t),
            f.sim.calls_for(&t.value),
            "token {}: the provider's calls and the audit rows with a status differ",
            t.id
        );
    }
    assert_eq!(audit.len(), calls, "a row without a call, or a call without a row");
    let revoked_at_sim = tokens
        .iter()
        .filter(|t| f.sim.is_revoked(&t.value) == Some(true))
        .count();
    assert_eq!(revoked_at_sim, calls);
    let marked = f
        .count("SELECT count(*) FROM oauth_tokens WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(
        marked as usize, revoked_at_sim,
        "a value the provider revoked is not marked revoked"
    );
    let notes = f.store().audit_notes(Some(id)).await.unwrap();
    let seen: Vec<_> = notes
        .iter()
        .map(|n| (n.action, n.worker.as_str(), n.error.as_deref()))
        .collect();
    assert_eq!(seen, [(AuditAction::Cancel, "ops", Some("test"))]);
}

/// A timestamp the worker cannot use: SQLite stores any text; PostgreSQL refuses that text
/// for a `timestamptz` but takes `infinity`, which no `DateTime` holds.
fn unreadable_time(db: &TestDb) -> &'static str {
    if db.url.starts_with("sqlite:") {
        "next tuesday"
    } else {
        "infinity"
    }
}

/// Defect 8, invariant 7: the middle of a user's three tokens has an `expires_at` that does
/// not decode. The two others are revoked at the provider; the request fails with a reason
/// naming the row and the column (and not the token); another user in the same drain
/// clears. The old worker read the user's rows in one query that failed (SQLite) or panicked
/// (PostgreSQL's `infinity`) on the bad row, so nothing of the user was revoked and the
/// request sat `running` until its lease ran out, again and again.
async fn an_unreadable_token_row_fails_its_request_by_name_and_the_other_tokens_are_revoked(db: TestDb) {
    let unreadable = unreadable_time(&db);
    let f = Fixture::new(db, vec![SimProvider::new("acme", Dialect::Rfc7009)], "").await;
    let first = f.seed("u1", "acme", AccessToken).await;
    let bad = f.seed("u1", "acme", RefreshToken).await;
    let last = f.seed("u1", "acme", AccessToken).await;
    let changed = exec_built(
        f.store(),
        format!(
            "UPDATE oauth_tokens SET expires_at = '{unreadable}' WHERE id = {}",
            bad.id
        ),
    )
    .await
    .unwrap();
    assert_eq!(changed, 1);
    let id = f.enqueue("u1").await;
    let other = f.user_with("u2", "acme", AccessToken).await;

    let report = f.drain().await;

    assert_eq!((report.claimed, report.cleared), (2, 1), "{report:?}");
    let u1 = f.latest("u1").await;
    assert_eq!(u1.state, RequestState::Failed);
    let reason = u1.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!("token row {} is unreadable: column expires_at", bad.id)),
        "{reason}"
    );
    assert!(!reason.contains(&bad.value), "the token is in the reason: {reason}");
    for good in [&first, &last] {
        assert_eq!(
            f.sim.is_revoked(&good.value),
            Some(true),
            "token {} not revoked",
            good.id
        );
    }
    assert_eq!(f.sim.calls_for(&bad.value), 0, "the unreadable row was sent");
    // The auditor sees the bad row too, without its value.
    let audit = f.store().audit_rows(Some(id), None).await.unwrap();
    let bad_rows: Vec<_> = audit.iter().filter(|r| r.token_id == bad.id).collect();
    assert_eq!(bad_rows.len(), 1, "{bad_rows:?}");
    assert_eq!((bad_rows[0].outcome, bad_rows[0].settled), (Outcome::Failed, false));
    let note = bad_rows[0].error.as_deref().unwrap_or_default();
    assert!(
        note.contains("column expires_at") && !note.contains(&bad.value),
        "{note}"
    );

    assert_eq!(f.state("u2").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&other.value), Some(true));
}

/// A user with nothing to revoke clears in one drain, and the audit says why there are no
/// rows for them: one `no_tokens` note by the worker. Before, the clearance had no audit
/// row at all.
async fn a_user_with_no_tokens_clears_with_a_note_saying_so(db: TestDb) {
    let f = Fixture::new(db, vec![SimProvider::new("acme", Dialect::Rfc7009)], "").await;
    let id = f.enqueue("nobody-home").await;

    let report = f.drain().await;

    assert_eq!((report.claimed, report.cleared), (1, 1), "{report:?}");
    let row = f.latest("nobody-home").await;
    assert_eq!(row.state, RequestState::Cleared);
    assert!(row.cleared_at.is_some());
    let notes = f.store().audit_notes(Some(id)).await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].action, AuditAction::NoTokens);
    assert_eq!(notes[0].worker, f.worker.settings().id);
    assert!(f.store().audit_rows(Some(id), None).await.unwrap().is_empty());
    assert!(f.sim.calls().is_empty());
}

/// A OneLogin access token the provider already considers dead (revoked elsewhere: it
/// answers 400 `invalid_token`), paired by `grant_ref` with a refresh token the provider
/// still honours.
async fn dead_access_token_with_live_refresh(f: &Fixture, user: &str) -> (Seeded, Seeded) {
    let grant = format!("grant-{user}");
    let access = f
        .seed_with(
            user,
            "onelogin",
            AccessToken,
            Spec {
                grant_ref: Some(&grant),
                ..Spec::default()
            },
        )
        .await;
    let refresh = f
        .seed_with(
            user,
            "onelogin",
            RefreshToken,
            Spec {
                grant_ref: Some(&grant),
                paired_with: Some(&access.value),
                ..Spec::default()
            },
        )
        .await;
    f.sim.revoke_out_of_band(&access.value);
    f.enqueue(user).await;
    (access, refresh)
}

/// Defect 9: a OneLogin refresh token dies with its access token only when the provider
/// accepts that access token's revocation. Here the access token was already dead, so
/// nothing killed the (still live) refresh token: it must not be audited `revoked`. Under
/// the default policy (`expiring`, and the refresh token has no `expires_at`) it is
/// `not_revocable`, naming its pair, and the request fails with the reason; under `settle`
/// the request clears with `not_revocable` recorded. The old worker audited the refresh
/// token "revoked with its paired access token" and cleared.
async fn a_onelogin_refresh_token_whose_pair_was_already_dead_is_never_audited_revoked(db: TestDb) {
    let onelogin = provider(
        "onelogin",
        Dialect::Onelogin,
        Behaviour {
            invalid_token_answer: InvalidTokenAnswer::InvalidToken400,
            ..Behaviour::default()
        },
    );
    let f = Fixture::new(db, vec![onelogin], "").await;
    let (access, refresh) = dead_access_token_with_live_refresh(&f, "expiring").await;

    f.drain().await;

    let row = f.latest("expiring").await;
    assert_eq!(row.state, RequestState::Failed);
    let reason = row.last_error.unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "token {} (onelogin refresh_token): not revocable: its paired access token {} was not revoked by the provider",
            refresh.id, access.id
        )),
        "{reason}"
    );
    assert!(
        reason.contains("not settled (policy not_revocable = expiring)"),
        "{reason}"
    );
    let audit = f.store().audit_rows(Some(row.id), None).await.unwrap();
    let access_rows: Vec<_> = audit.iter().filter(|r| r.token_id == access.id).collect();
    assert_eq!(access_rows.len(), 1, "{access_rows:?}");
    assert_eq!(
        (access_rows[0].outcome, access_rows[0].http_status),
        (Outcome::AlreadyInvalid, Some(400))
    );
    let refresh_rows: Vec<_> = audit.iter().filter(|r| r.token_id == refresh.id).collect();
    assert_eq!(refresh_rows.len(), 1, "{refresh_rows:?}");
    assert_eq!(
        (refresh_rows[0].outcome, refresh_rows[0].settled),
        (Outcome::NotRevocable, false)
    );
    let note = refresh_rows[0].error.as_deref().unwrap_or_default();
    assert!(note.contains(&format!("paired access token {}", access.id)), "{note}");
    // It is alive at the provider, and nothing here says otherwise.
    assert_eq!(f.sim.is_revoked(&refresh.value), Some(false));
    let stored = f.store().tokens_for(row.id, "expiring").await.unwrap().tokens;
    let stored_refresh = stored.iter().find(|t| t.id == refresh.id).unwrap();
    assert!(
        stored_refresh.revoked_at.is_none(),
        "the live refresh token is marked revoked"
    );

    // An operator who accepts the risk settles such tokens by policy.
    let (access, refresh) = dead_access_token_with_live_refresh(&f, "settled").await;
    let settling = f.another_worker("[policy]\nnot_revocable = \"settle\"\n");
    settling
        .drain(&tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();

    let row = f.latest("settled").await;
    assert_eq!(row.state, RequestState::Cleared);
    let audit = f.store().audit_rows(Some(row.id), None).await.unwrap();
    let refresh_rows: Vec<_> = audit.iter().filter(|r| r.token_id == refresh.id).collect();
    assert_eq!(refresh_rows.len(), 1, "{refresh_rows:?}");
    assert_eq!(
        (refresh_rows[0].outcome, refresh_rows[0].settled),
        (Outcome::NotRevocable, true)
    );
    let note = refresh_rows[0].error.as_deref().unwrap_or_default();
    assert!(
        note.contains(&format!("paired access token {}", access.id))
            && note.contains("settled by policy not_revocable = settle"),
        "{note}"
    );
    assert!(
        !audit.iter().any(|r| r.outcome == Outcome::Revoked),
        "a token audited revoked: {audit:?}"
    );
}

/// Defect 1, invariant 1, end to end: the application rotates a token in place while its
/// old value's revocation is in flight. Revoking the old value does not settle the row, so
/// that run does not clear the user; the next run (after a short durable backoff) revokes
/// the new value, and only then is the user cleared, with both values dead. The old worker
/// settled the row by id and cleared at once, leaving the new value alive.
async fn a_token_rotated_during_its_call_is_revoked_again_before_the_user_clears(db: TestDb) {
    let f = Fixture::new(
        db,
        vec![slow("slow", Dialect::Rfc7009, Duration::from_millis(500))],
        "[retry]\ndurable_base = \"200ms\"\ndurable_cap = \"200ms\"\n",
    )
    .await;
    let old = f.user_with("u1", "slow", AccessToken).await;

    let (first, (new_value, rotated_at)) = tokio::join!(f.drain(), async {
        wait_for("the claim", async || f.state("u1").await == RequestState::Running).await;
        // The run has read the token; its call is in flight.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let new_value = f.sim.issue("slow", AccessToken, None);
        let sql = format!("UPDATE oauth_tokens SET token = '{new_value}' WHERE id = {}", old.id);
        assert_eq!(exec_built(f.store(), sql).await.unwrap(), 1);
        (new_value, tokio::time::Instant::now())
    });

    // The old value was the one sent, and it was answered after the row changed.
    let old_calls: Vec<_> = f
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.token_fingerprint() == Some(offboard::token::Fingerprint::of(&old.value).as_str()))
        .collect();
    assert_eq!(old_calls.len(), 1);
    assert!(
        old_calls[0].at > rotated_at,
        "the rotation came after the call was answered"
    );
    assert_eq!((first.claimed, first.cleared, first.retrying), (1, 0, 1), "{first:?}");
    let row = f.latest("u1").await;
    assert_eq!(row.state, RequestState::Pending, "cleared while the new value is alive");
    assert!(row.cleared_at.is_none());
    assert_eq!(f.sim.is_revoked(&old.value), Some(true));
    assert_eq!(f.sim.is_revoked(&new_value), Some(false));
    let stored = f.store().tokens_for(row.id, "u1").await.unwrap().tokens;
    assert!(stored[0].revoked_at.is_none(), "the new value is marked revoked");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = f.drain().await;

    assert_eq!((second.claimed, second.cleared), (1, 1), "{second:?}");
    assert_eq!(f.state("u1").await, RequestState::Cleared);
    assert_eq!(f.sim.is_revoked(&old.value), Some(true));
    assert_eq!(f.sim.is_revoked(&new_value), Some(true));
    assert_eq!((f.sim.calls_for(&old.value), f.sim.calls_for(&new_value)), (1, 1));
}

on_both_backends!(
    a_request_enqueued_while_another_is_in_flight_clears_first_in_the_same_drain,
    a_cancelled_request_stops_sending_and_every_call_it_made_is_audited,
    an_unreadable_token_row_fails_its_request_by_name_and_the_other_tokens_are_revoked,
    a_user_with_no_tokens_clears_with_a_note_saying_so,
    a_onelogin_refresh_token_whose_pair_was_already_dead_is_never_audited_revoked,
    a_token_rotated_during_its_call_is_revoked_again_before_the_user_clears,
);

/// Value of a counter in the Prometheus text, zero when absent.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// SQLite only: another process holds the write lock when the run writes its result
/// (`database.busy_timeout = "50ms"`, the lock held for a second). The write meets
/// SQLITE_BUSY and is retried until the lock is free: the request clears, nothing fails.
/// The old worker gave up on the first SQLITE_BUSY: the answered call's row was lost and
/// the request sat `running` until its lease ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_write_that_meets_a_locked_database_is_retried_until_it_lands() {
    let db = TestDb::sqlite_with("busy_timeout = \"50ms\"").await;
    let url = db.url.clone();
    // No poll while the lock is held: this test is about the result's write. (A claim that
    // met the lock would end the drain with the error, as `Worker::drain` documents.)
    let extra = "busy_timeout = \"50ms\"\n[worker]\npoll_interval = \"1m\"\n";
    let f = Fixture::new(
        db,
        vec![slow("slow", Dialect::Rfc7009, Duration::from_millis(300))],
        extra,
    )
    .await;
    let token = f.user_with("u1", "slow", AccessToken).await;

    let never = tokio_util::sync::CancellationToken::new();
    let (drained, (locked_at, unlocked_at)) = tokio::join!(f.worker.drain(&never), async {
        wait_for("the claim", async || f.state("u1").await == RequestState::Running).await;
        let mut conn = crate::helpers::sqlite_connection(&url).await;
        let tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        let locked_at = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.commit().await.unwrap();
        (locked_at, tokio::time::Instant::now())
    });

    // The lock was taken while the call was in flight, and held past its answer.
    let calls = f.sim.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        locked_at < calls[0].at && calls[0].at < unlocked_at,
        "the lock missed the final write"
    );
    assert_eq!(f.state("u1").await, RequestState::Cleared, "the result was not written");
    let busy = counter(&f.metrics.render(), "offboard_database_errors_total");
    assert!(busy >= 1, "the final write never met the lock");
    let report = drained.expect("drain");
    assert_eq!((report.claimed, report.cleared), (1, 1), "{report:?}");
    assert_eq!(
        f.count("SELECT count(*) FROM offboarding_requests WHERE state <> 'cleared'")
            .await,
        0
    );
    let audit = f.store().audit_rows(None, Some("u1")).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!((audit[0].outcome, audit[0].http_status), (Outcome::Revoked, Some(200)));
    assert_eq!(f.sim.is_revoked(&token.value), Some(true));
}
