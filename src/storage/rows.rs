//! The rows the storage layer reads and writes, decoded once at the edge into domain types
//! (`sqlx::FromRow`, which works on both backends, with states and outcomes parsed from their
//! text), so nothing past this module handles a raw state string.

use chrono::{DateTime, Utc};

use crate::outcome::{Outcome, RequestState};
use crate::token::{Fingerprint, TokenType, TokenValue};

/// What the worker holds while it works on a request. Every state change checks it.
/// Only a claim makes one, so a fence always names a lease that was really granted, and its
/// value is never handed out again (not after an operator's retry, not after a release).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    request_id: i64,
    worker: String,
    value: i64,
}

impl Fence {
    pub(super) fn new(request_id: i64, worker: String, value: i64) -> Fence {
        Fence {
            request_id,
            worker,
            value,
        }
    }

    pub(crate) fn request_id(&self) -> i64 {
        self.request_id
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub(super) fn value(&self) -> i64 {
        self.value
    }
}

#[derive(Clone, Debug)]
pub struct ClaimedRequest {
    pub id: i64,
    pub user_id: String,
    /// How many times the request was claimed, this claim included.
    pub attempt: i32,
    pub fence: Fence,
    /// Why the previous run did not finish it, if it said.
    pub last_error: Option<String>,
    /// Whether this claim took the request over from a worker whose lease had expired.
    pub taken_over: bool,
}

/// A row of `oauth_tokens` with what the audit already says about its current value.
#[derive(Clone, Debug)]
pub struct StoredToken {
    /// Unique across sources: `source number × 2^40 + row id` (`config::sources`).
    pub id: i64,
    pub(crate) provider: String,
    /// The raw `token_type`; [`StoredToken::token_type`] parses it.
    pub(crate) token_type_raw: String,
    /// The value to send: decrypted in memory for an encrypted source.
    pub value: TokenValue,
    /// The value as stored (the ciphertext, for an encrypted source): what settlement and
    /// the clearance re-check compare, through its fingerprint.
    pub(crate) stored: TokenValue,
    pub(crate) grant_ref: Option<String>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What settled the value the row holds now, if anything did (in any request). A
    /// settlement is tied to the fingerprint of the value revoked, so a token rotated in
    /// place is unsettled again.
    pub settled_as: Option<Outcome>,
    /// `revoked_at` is set and offboard never settled any value of this row: the
    /// application revoked it itself.
    pub(crate) revoked_by_application: bool,
    /// Audit rows already written for this token in this request.
    pub prior_attempts: i32,
    /// Provider URL template variables from the row (its source's `vars`), by name; a NULL
    /// column gives none.
    pub(crate) vars: std::collections::BTreeMap<String, String>,
}

impl StoredToken {
    pub(crate) fn token_type(&self) -> Option<TokenType> {
        TokenType::parse(&self.token_type_raw)
    }

    /// Settled tokens are never sent to a provider again.
    pub fn is_settled(&self) -> bool {
        self.settled_as.is_some() || self.revoked_by_application
    }

    /// Of the value as stored (the ciphertext, for an encrypted source).
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.stored.fingerprint()
    }
}

/// A token row the worker cannot use as it stands: a column that is missing or does not
/// decode. Its request fails naming the row and column; the user's other tokens are still
/// revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadToken {
    pub id: i64,
    pub column: &'static str,
    pub reason: String,
    /// Of the value, when the value itself could be read.
    pub fingerprint: Option<Fingerprint>,
}

impl BadToken {
    pub fn describe(&self) -> String {
        format!(
            "token row {} is unreadable: column {}: {}",
            self.id, self.column, self.reason
        )
    }
}

/// A user's token rows as read: the usable ones and the ones that are not.
#[derive(Clone, Debug, Default)]
pub struct UserTokens {
    pub tokens: Vec<StoredToken>,
    pub bad: Vec<BadToken>,
}

/// Whether a token row's current value counts as settled: offboard settled that very value
/// (its fingerprint is among the row's settling audit rows, with the strongest outcome
/// returned), or the application marked the row revoked and offboard never settled any
/// value of it. The one rule, used when choosing what to send and when the clearing
/// transaction re-checks.
pub(super) fn settlement(
    fingerprint: &Fingerprint,
    revoked_at_set: bool,
    settling_rows: &[(String, Outcome)],
) -> (Option<Outcome>, bool) {
    let mine = settling_rows
        .iter()
        .filter(|(fp, _)| fp == fingerprint.as_str())
        .map(|(_, outcome)| *outcome)
        .max_by_key(|outcome| match outcome {
            Outcome::Revoked => 3,
            Outcome::AlreadyInvalid => 2,
            _ => 1,
        });
    let by_application = revoked_at_set && settling_rows.is_empty();
    (mine, by_application)
}

/// What an audit row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    /// One attempt at one token.
    Revoke,
    /// The user had no tokens: cleared with nothing to revoke.
    NoTokens,
    /// An operator put a failed request back to pending.
    Retry,
    /// An operator cancelled a request.
    Cancel,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Revoke => "revoke",
            AuditAction::NoTokens => "no_tokens",
            AuditAction::Retry => "retry",
            AuditAction::Cancel => "cancel",
        }
    }
}

/// An audit row about a request rather than a token: who did what, and why.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditNote {
    pub request_id: i64,
    pub user_id: String,
    #[sqlx(try_from = "String")]
    pub action: AuditAction,
    /// Why, in the actor's words.
    pub error: Option<String>,
    /// A worker id, or the operator.
    pub worker: String,
    pub attempted_at: DateTime<Utc>,
}

impl TryFrom<String> for AuditAction {
    type Error = crate::outcome::UnknownValue;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        [
            AuditAction::Revoke,
            AuditAction::NoTokens,
            AuditAction::Retry,
            AuditAction::Cancel,
        ]
        .into_iter()
        .find(|a| a.as_str() == raw)
        .ok_or_else(|| crate::outcome::UnknownValue::new("audit action", raw))
    }
}

/// One row of `revocation_audit`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub request_id: i64,
    pub user_id: String,
    pub token_id: i64,
    pub provider: String,
    pub token_type: String,
    pub token_fingerprint: String,
    pub attempt: i32,
    #[sqlx(try_from = "String")]
    pub outcome: Outcome,
    pub settled: bool,
    pub http_status: Option<i32>,
    pub provider_request_id: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub worker: String,
    pub attempted_at: DateTime<Utc>,
    /// After a success answer: `true` if death was proven, `false` if the token still
    /// worked (`still_active`); `None` when nothing was checked.
    pub verified: Option<bool>,
    /// How death was checked (`introspection`, `slack auth.test`, …).
    pub verified_by: Option<String>,
}

/// A row of `offboarding_requests`, for `status` and the gate.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RequestRow {
    pub id: i64,
    pub(crate) user_id: String,
    pub(crate) requested_by: Option<String>,
    pub external_ref: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub(crate) requested_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
}

/// The columns of [`RequestRow`], for `SELECT` and `RETURNING`.
pub(super) const REQUEST_COLUMNS: &str = "id, user_id, requested_by, external_ref, state, attempts, \
    next_attempt_at, locked_by, locked_until, last_error, requested_at, cleared_at";

/// How many requests are in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts(Vec<(RequestState, i64)>);

impl StateCounts {
    pub(crate) fn new(counts: Vec<(RequestState, i64)>) -> StateCounts {
        StateCounts(counts)
    }

    /// Requests in `state`; zero when there are none.
    pub(crate) fn get(&self, state: RequestState) -> i64 {
        self.0.iter().find(|(s, _)| *s == state).map_or(0, |(_, n)| *n)
    }

    /// Requests not yet finished: pending or running.
    pub(crate) fn open(&self) -> i64 {
        self.get(RequestState::Pending) + self.get(RequestState::Running)
    }

    /// The states that have requests, by state name, with their counts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (RequestState, i64)> + '_ {
        self.0.iter().copied()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What `enqueue` did.
#[derive(Clone, Debug)]
pub struct Enqueued {
    pub request: RequestRow,
    /// False when an open request for the user already existed and was returned.
    pub created: bool,
}
