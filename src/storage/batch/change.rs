//! Where a completion moves its request, from the run's decision and (for a clearance)
//! the re-check.

use super::super::requests::millis;
use crate::outcome::{Decision, RequestState, Unsettled};

/// The state change a decision comes to.
pub(super) struct Change {
    pub(super) state: RequestState,
    pub(super) next_after_ms: Option<i64>,
    pub(super) error: Option<String>,
    pub(super) attempts_delta: i32,
}

impl Change {
    fn to(state: RequestState) -> Change {
        Change {
            state,
            next_after_ms: None,
            error: None,
            attempts_delta: 0,
        }
    }

    /// A `Cleared` decision, given how many of the user's tokens the re-check found
    /// unsettled (inserted, or rotated in place, during the run): cleared only at none.
    pub(super) fn cleared_unless(unsettled: usize, unless: &Unsettled) -> Change {
        if unsettled == 0 {
            return Change::to(RequestState::Cleared);
        }
        let found = format!("{unsettled} token(s) of the user appeared or stayed unsettled during the run");
        match unless {
            Unsettled::Retry { after, note } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(format!("{note}: {found}")),
                ..Change::to(RequestState::Pending)
            },
            Unsettled::Fail { note } => Change {
                error: Some(format!("{note}: {found}")),
                ..Change::to(RequestState::Failed)
            },
        }
    }

    /// Any other decision.
    pub(super) fn of(decision: &Decision) -> Change {
        match decision {
            Decision::Cleared { unless } => Change::cleared_unless(usize::MAX, unless),
            Decision::Retry { after, reason } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(reason.clone()),
                ..Change::to(RequestState::Pending)
            },
            Decision::Failed { reason } => Change {
                error: Some(reason.clone()),
                ..Change::to(RequestState::Failed)
            },
            Decision::Release => Change {
                attempts_delta: -1,
                ..Change::to(RequestState::Pending)
            },
            Decision::Defer { after, reason } => Change {
                next_after_ms: Some(millis(*after)),
                error: Some(reason.clone()),
                attempts_delta: -1,
                ..Change::to(RequestState::Pending)
            },
        }
    }
}
