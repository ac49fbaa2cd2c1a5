//! What one revocation attempt came to (DESIGN.md §2), and what a request's run decided.

use std::fmt;
use std::time::Duration;

/// The result of one attempt at revoking one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The provider accepted the revocation.
    Revoked,
    /// The provider says the token was already expired or revoked.
    AlreadyInvalid,
    /// The provider offers no way to revoke this token; whether that settles the token is
    /// a matter of policy.
    NotRevocable,
    /// 408, 429, 5xx, timeout, connection error: worth another try.
    Transient,
    /// Anything else: retrying will not help; the request fails with the reason.
    Failed,
    /// The provider said success, but verification (introspection or the provider's own
    /// check) shows the token still works: retried, then failed with the reason.
    StillActive,
    /// The first half of refresh-then-revoke: the refresh token was exchanged for a fresh
    /// access token, which is revoked next. Settles nothing by itself.
    Refreshed,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 7] = [
        Outcome::Revoked,
        Outcome::AlreadyInvalid,
        Outcome::NotRevocable,
        Outcome::Transient,
        Outcome::Failed,
        Outcome::StillActive,
        Outcome::Refreshed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Revoked => "revoked",
            Outcome::AlreadyInvalid => "already_invalid",
            Outcome::NotRevocable => "not_revocable",
            Outcome::Transient => "transient",
            Outcome::Failed => "failed",
            Outcome::StillActive => "still_active",
            Outcome::Refreshed => "refreshed",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == raw)
    }

    /// Whether the token no longer works, so `oauth_tokens.revoked_at` is set.
    pub fn token_is_dead(self) -> bool {
        matches!(self, Outcome::Revoked | Outcome::AlreadyInvalid)
    }
}

impl TryFrom<String> for Outcome {
    type Error = UnknownValue;
    fn try_from(raw: String) -> Result<Self, UnknownValue> {
        Outcome::parse(&raw).ok_or(UnknownValue { what: "outcome", raw })
    }
}

/// A stored state or outcome that is not one of ours: the database was edited by hand.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} '{raw}'")]
pub struct UnknownValue {
    what: &'static str,
    raw: String,
}

impl UnknownValue {
    pub(crate) fn new(what: &'static str, raw: String) -> Self {
        UnknownValue { what, raw }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider's answer to one call, classified. Carries no token and no secret: `error` has
/// been redacted where it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub provider_request_id: Option<String>,
    pub error: Option<String>,
    /// From `Retry-After` on a 429 or 503, already converted to a wait from now.
    pub retry_after: Option<Duration>,
    /// Whether death was checked after a success answer, and what the check said.
    pub verification: Option<Verification>,
}

/// What asking the provider after a revocation showed (DESIGN.md §2: a `revoked` outcome
/// is verified where the provider allows it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// `true`: the token is proven dead; `false`: it still works (`still_active`).
    pub dead: bool,
    /// How: `introspection`, or the provider's own check (`slack auth.test`, …).
    pub by: String,
}

impl Verdict {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Verdict {
            outcome,
            http_status: None,
            provider_request_id: None,
            error: None,
            retry_after: None,
            verification: None,
        }
    }

    pub(crate) fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// Where a request goes at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every token settled: cleared, if the database agrees when the result is written;
    /// otherwise `unless` says where the request goes.
    Cleared { unless: Unsettled },
    /// Some tokens hit transient errors: back to `pending` for `after`, counted from when
    /// the result is written (by the database's clock).
    Retry { after: Duration, reason: String },
    /// A permanent error, or durable attempts used up: deletion stays blocked.
    Failed { reason: String },
    /// Shutdown stopped the run before it finished: back to `pending` at once, and the
    /// claim does not count as an attempt.
    Release,
    /// Every token left was never sent because its provider's backlog was too long to wait
    /// for in process: back to `pending` for `after`, and the claim does not count as an
    /// attempt (nothing was tried).
    Defer { after: Duration, reason: String },
}

/// Where a request goes when the clearing transaction finds a token of the user still
/// unsettled (one inserted, or rotated in place, while the run went on). The reason written
/// is `note` followed by what the database found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsettled {
    /// Back to `pending` after a durable backoff, like any transient error.
    Retry { after: Duration, note: String },
    /// Durable attempts are used up: failed.
    Fail { note: String },
}

/// The lifecycle states of DESIGN.md §2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestState {
    Pending,
    Running,
    Cleared,
    Failed,
    Cancelled,
}

impl RequestState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Running => "running",
            RequestState::Cleared => "cleared",
            RequestState::Failed => "failed",
            RequestState::Cancelled => "cancelled",
        }
    }

    pub(crate) const ALL: [RequestState; 5] = [
        RequestState::Pending,
        RequestState::Running,
        RequestState::Cleared,
        RequestState::Failed,
        RequestState::Cancelled,
    ];

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        RequestState::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// `pending, running or failed`, for messages.
    pub(crate) fn list(states: &[RequestState]) -> String {
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_owned(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

impl TryFrom<String> for RequestState {
    type Error = UnknownValue;
    fn try_from(raw: String) -> Result<Self, UnknownValue> {
        RequestState::parse(&raw).ok_or(UnknownValue {
            what: "request state",
            raw,
        })
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
