//! The rows the storage layer reads and writes, decoded once at the edge into domain types
//! (`sqlx::FromRow`, which works on both backends, with states and outcomes parsed from their
//! text), so nothing past this module handles a raw state string.

use chrono::{DateTime, Utc};

use crate::outcome::{Outcome, RequestState};
use crate::token::{Fingerprint, TokenType, TokenValue};

/// What the worker holds while it works on a request. Every write of results checks it.
/// Only a claim makes one, so a fence always names a lease that was really granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    request_id: i64,
    worker: String,
    /// The request's `attempts` after this claim.
    attempt: i32,
}

impl Fence {
    pub(super) fn new(request_id: i64, worker: String, attempt: i32) -> Fence {
        Fence {
            request_id,
            worker,
            attempt,
        }
    }

    pub(crate) fn request_id(&self) -> i64 {
        self.request_id
    }

    pub fn worker(&self) -> &str {
        &self.worker
    }

    pub(super) fn attempt(&self) -> i32 {
        self.attempt
    }
}

#[derive(Clone, Debug)]
pub struct ClaimedRequest {
    pub id: i64,
    pub user_id: String,
    pub attempt: i32,
    pub fence: Fence,
}

/// A row of `oauth_tokens` with what this request already knows about it.
#[derive(Clone, Debug)]
pub struct StoredToken {
    pub id: i64,
    pub(crate) provider: String,
    /// The raw `token_type`; [`StoredToken::token_type`] parses it.
    pub(crate) token_type_raw: String,
    pub(crate) value: TokenValue,
    pub(crate) grant_ref: Option<String>,
    pub(crate) expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// A settling audit row exists for this token in this request.
    pub(crate) settled_in_request: bool,
    /// Audit rows already written for this token in this request.
    pub prior_attempts: i32,
}

impl StoredToken {
    pub(crate) fn token_type(&self) -> Option<TokenType> {
        TokenType::parse(&self.token_type_raw)
    }

    /// Settled tokens are never sent to a provider again.
    pub fn is_settled(&self) -> bool {
        self.revoked_at.is_some() || self.settled_in_request
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint {
        self.value.fingerprint()
    }
}

/// `oauth_tokens` joined with this request's audit counts, as read.
#[derive(sqlx::FromRow)]
pub(super) struct TokenRecord {
    id: i64,
    provider: String,
    token_type: String,
    token: String,
    grant_ref: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    settled_rows: i64,
    prior_rows: i64,
}

impl From<TokenRecord> for StoredToken {
    fn from(r: TokenRecord) -> Self {
        StoredToken {
            id: r.id,
            provider: r.provider,
            token_type_raw: r.token_type,
            value: TokenValue::new(r.token),
            grant_ref: r.grant_ref,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            settled_in_request: r.settled_rows > 0,
            prior_attempts: i32::try_from(r.prior_rows).unwrap_or(i32::MAX),
        }
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
