//! The rules that decide how a token's run ended and where its request goes next. Pure
//! functions: the clock (`now`) and the random draw (`unit`, uniform in [0, 1)) are
//! arguments, so every case is a unit test that needs no database, network or runtime.
//!
//! What must stay true: a token is settled only by a provider's word that it is dead, or
//! by the configured not-revocable policy with its reason recorded; a request is `Cleared`
//! only when no token ended failed, transient or stopped (and the database re-checks that
//! inside the clearing transaction).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::outcome::{Decision, Outcome, Unsettled, Verdict};
use crate::retry::RetryPolicy;
use crate::storage::StoredToken;
use crate::token::TokenType;

/// Longest `last_error` kept on a request.
const MAX_REASON_LEN: usize = 1000;

/// Whether a token that cannot be revoked settles its request (config key
/// `policy.not_revocable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NotRevocablePolicy {
    /// Settled when it expires within `not_revocable_within`.
    Expiring,
    /// Always settled; the reason is recorded.
    Settle,
    /// Never settled: the request fails and deletion stays blocked.
    Block,
}

/// What the not-revocable policy needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) not_revocable: NotRevocablePolicy,
    /// Under `expiring`, a token that lapses within this settles.
    pub(crate) within: Duration,
}

/// How one token ended in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenEnd {
    Settled(Outcome),
    /// Permanent: the request fails with this reason.
    Failed(String),
    /// Worth another claim; `not_before` is a provider's pause still to run.
    Transient {
        reason: String,
        not_before: Option<Duration>,
    },
    /// Shutdown stopped it before it was sent.
    Stopped,
    /// Waits on another token (a OneLogin refresh token whose access token did not die).
    Blocked,
    /// Never sent in this run: its provider's backlog (a pause, or the callers ahead of it
    /// at the provider's rate) was longer than `worker.max_queue_wait`, so the token did not
    /// hold its request's slot waiting for it. Comes back after `not_before`; no attempt is
    /// spent, since nothing was tried.
    Deferred {
        not_before: Duration,
    },
}

/// Whether `outcome` settles a token that expires at `expires_at`, under `policy`.
pub(crate) fn settles(outcome: Outcome, expires_at: Option<DateTime<Utc>>, policy: Policy, now: DateTime<Utc>) -> bool {
    match outcome {
        Outcome::Revoked | Outcome::AlreadyInvalid => true,
        Outcome::Transient | Outcome::Failed | Outcome::StillActive | Outcome::Refreshed => false,
        Outcome::NotRevocable => match policy.not_revocable {
            NotRevocablePolicy::Settle => true,
            NotRevocablePolicy::Block => false,
            NotRevocablePolicy::Expiring => expires_at.is_some_and(|at| {
                // A horizon past what a timestamp can hold is beyond every expiry.
                let horizon = chrono::TimeDelta::from_std(policy.within)
                    .ok()
                    .and_then(|within| now.checked_add_signed(within));
                horizon.is_none_or(|horizon| at <= horizon)
            }),
        },
    }
}

/// Why the policy settled a not-revocable token or did not, for the audit row.
pub(crate) fn policy_note(expires_at: Option<DateTime<Utc>>, policy: Policy, settled: bool) -> String {
    let expiry = match expires_at {
        Some(at) => format!("expires {}", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        None => "no expiry recorded".to_owned(),
    };
    let within = humantime::format_duration(policy.within);
    match (policy.not_revocable, settled) {
        (NotRevocablePolicy::Settle, _) => format!("{expiry}; settled by policy not_revocable = settle"),
        (NotRevocablePolicy::Block, _) => format!("{expiry}; not settled: policy not_revocable = block"),
        (NotRevocablePolicy::Expiring, true) => format!("{expiry}, within {within}; settled by policy"),
        (NotRevocablePolicy::Expiring, false) => {
            format!("{expiry}, not within {within}; not settled (policy not_revocable = expiring)")
        }
    }
}

/// How a token ended, given the provider's final answer to it in this run.
pub(crate) fn end_of(
    verdict: &Verdict,
    expires_at: Option<DateTime<Utc>>,
    policy: Policy,
    now: DateTime<Utc>,
) -> TokenEnd {
    let reason = || verdict.error.clone().unwrap_or_else(|| verdict.outcome.to_string());
    match verdict.outcome {
        Outcome::Revoked | Outcome::AlreadyInvalid => TokenEnd::Settled(verdict.outcome),
        Outcome::NotRevocable if settles(Outcome::NotRevocable, expires_at, policy, now) => {
            TokenEnd::Settled(Outcome::NotRevocable)
        }
        Outcome::NotRevocable => TokenEnd::Failed(format!(
            "not revocable ({}); {}",
            reason(),
            policy_note(expires_at, policy, false)
        )),
        Outcome::Failed => TokenEnd::Failed(reason()),
        // A token that outlived a success answer is tried again, like a transient error,
        // and fails the request with the reason once attempts are used up. `Refreshed` is
        // never a final answer; were it one, nothing was revoked yet.
        Outcome::Transient | Outcome::StillActive | Outcome::Refreshed => TokenEnd::Transient {
            reason: reason(),
            not_before: None,
        },
    }
}

/// The verdict on a refresh token from revoking the fresh access token its refresh gave:
/// a revocation settles the refresh token (the grant is gone); any other answer is the
/// attempt's, except that a just-minted access token answered "already invalid" proves
/// nothing about the refresh token, so it is tried again.
pub(crate) fn after_refresh(verdict: Verdict) -> Verdict {
    match verdict.outcome {
        Outcome::Revoked => Verdict {
            error: Some("revoked through a fresh access token from this refresh token".into()),
            ..verdict
        },
        Outcome::AlreadyInvalid => Verdict {
            outcome: Outcome::Transient,
            error: Some(
                "the fresh access token from this refresh token was answered already invalid, which shows                  nothing about the refresh token"
                    .into(),
            ),
            ..verdict
        },
        _ => verdict,
    }
}

/// How a token ended that was decided without calling its provider, with the note that
/// goes into its one audit row.
pub(crate) fn immediate_end(outcome: Outcome, settled: bool, note: &str) -> TokenEnd {
    match (outcome, settled) {
        (_, true) => TokenEnd::Settled(outcome),
        (Outcome::NotRevocable, false) => TokenEnd::Failed(format!("not revocable: {note}")),
        _ => TokenEnd::Failed(note.to_owned()),
    }
}

/// The access token a OneLogin refresh token dies with: same provider, same `grant_ref`.
pub(crate) fn pair_of<'a>(token: &StoredToken, all: &'a [StoredToken]) -> Option<&'a StoredToken> {
    let grant = token.grant_ref.as_ref()?;
    all.iter().find(|t| {
        t.id != token.id
            && t.provider == token.provider
            && t.token_type() == Some(TokenType::AccessToken)
            && t.grant_ref.as_ref() == Some(grant)
    })
}

/// The access tokens refresh tokens die with, indexed by provider and `grant_ref`, so that
/// finding the pairs of a user's many tokens takes linear time. The first of several
/// access tokens with one grant is the pair, as [`pair_of`] finds it.
pub(crate) struct Pairs<'a> {
    /// The first two access tokens of each grant: a token's pair is never itself.
    by_grant: HashMap<(&'a str, &'a str), Vec<&'a StoredToken>>,
}

impl<'a> Pairs<'a> {
    pub(crate) fn index(all: &'a [StoredToken]) -> Pairs<'a> {
        let mut by_grant = HashMap::new();
        for t in all {
            if let (Some(grant), Some(TokenType::AccessToken)) = (t.grant_ref.as_deref(), t.token_type()) {
                let first: &mut Vec<&StoredToken> = by_grant.entry((t.provider.as_str(), grant)).or_default();
                if first.len() < 2 {
                    first.push(t);
                }
            }
        }
        Pairs { by_grant }
    }

    /// The same as `pair_of(token, all)`.
    pub(crate) fn of(&self, token: &StoredToken) -> Option<&'a StoredToken> {
        let grant = token.grant_ref.as_deref()?;
        self.by_grant
            .get(&(token.provider.as_str(), grant))?
            .iter()
            .find(|t| t.id != token.id)
            .copied()
    }
}

/// What a token revoked through its pair comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PairedEnd {
    /// No pair to revoke it through: not revocable.
    Unpaired,
    /// The provider accepted the pair's revocation, so this token died with it.
    DiedWith { pair_id: i64 },
    /// The pair is settled without a revocation (it had expired, or the application
    /// revoked it): nothing shows this token died; the not-revocable policy decides.
    NoEvidence { pair_id: i64 },
    /// The pair did not die in this run; its own end decides the request.
    Waiting,
}

/// `pair` is the paired access token, if any; `pair_end` how it ended in this run. Only a
/// revocation the provider accepted is evidence that the pair's grant died: an access token
/// that was merely expired (`already_invalid`) or revoked by the application says nothing
/// about its refresh token, which then falls to the not-revocable policy.
pub(crate) fn paired_end(pair: Option<&StoredToken>, pair_end: Option<&TokenEnd>) -> PairedEnd {
    let Some(pair) = pair else {
        return PairedEnd::Unpaired;
    };
    let revoked_now = matches!(pair_end, Some(TokenEnd::Settled(Outcome::Revoked)));
    let revoked_before = pair.settled_as == Some(Outcome::Revoked);
    if revoked_now || revoked_before {
        return PairedEnd::DiedWith { pair_id: pair.id };
    }
    let pair_gone = pair.is_settled() || matches!(pair_end, Some(TokenEnd::Settled(_)));
    if pair_gone {
        PairedEnd::NoEvidence { pair_id: pair.id }
    } else {
        PairedEnd::Waiting
    }
}

/// The limits a request's decision is taken within.
#[derive(Debug, Clone)]
pub(crate) struct Limits<'a> {
    /// The claim this run works under (1 for the first).
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) retry: &'a RetryPolicy,
}

/// Where the request goes: failed on a permanent error or spent attempts, released on
/// shutdown, cleared when nothing is left, pending again after a durable backoff when a
/// token met a transient error, and deferred (pending again when the slowest backlog is
/// through, no attempt spent) when the only tokens left were never sent. `ends` pairs each
/// token's label (for reasons) with how it ended.
pub(crate) fn decide<'e>(
    ends: impl IntoIterator<Item = (String, &'e TokenEnd)>,
    limits: &Limits<'_>,
    unit: f64,
) -> Decision {
    let mut failures = Vec::new();
    let mut transient = Vec::new();
    let mut not_before: Option<Duration> = None;
    let mut stopped = false;
    let mut deferred = Vec::new();
    let mut defer_for = Duration::ZERO;
    for (label, end) in ends {
        match end {
            TokenEnd::Settled(_) | TokenEnd::Blocked => {}
            TokenEnd::Failed(reason) => failures.push(format!("{label}: {reason}")),
            TokenEnd::Transient {
                reason,
                not_before: wait,
            } => {
                transient.push(format!("{label}: {reason}"));
                not_before = not_before.max(*wait);
            }
            TokenEnd::Stopped => stopped = true,
            TokenEnd::Deferred { not_before: wait } => {
                deferred.push(label);
                defer_for = defer_for.max(*wait);
            }
        }
    }
    if !failures.is_empty() {
        return Decision::Failed {
            reason: clip(failures.join("; ")),
        };
    }
    if stopped {
        return Decision::Release;
    }
    if transient.is_empty() && !deferred.is_empty() {
        // As a durable backoff, never later than `durable_cap`: a backlog estimated at a
        // very low rate comes round again, and is deferred again if still long.
        let after = defer_for.min(limits.retry.durable_cap);
        return Decision::Defer {
            after,
            reason: clip(format!(
                "deferred, no attempt spent: {} waited on a provider busy for {}s",
                deferred.join(", "),
                after.as_secs()
            )),
        };
    }
    // Deferred tokens beside transient ones come back with them, after the longer wait.
    not_before = not_before.max((!deferred.is_empty()).then_some(defer_for));
    if transient.is_empty() {
        // Blocked tokens only wait on a pair that failed or went transient, and those were
        // caught above; the clearing transaction re-checks every token anyway, and if it
        // disagrees the request retries (or fails) like any transient error.
        let unless = match retry_or_fail(limits, unit, None) {
            Ok((after, note)) => Unsettled::Retry { after, note },
            Err(note) => Unsettled::Fail { note },
        };
        return Decision::Cleared { unless };
    }
    let what = transient.join("; ");
    match retry_or_fail(limits, unit, not_before) {
        Ok((after, note)) => Decision::Retry {
            after,
            reason: clip(format!("{note}: {what}")),
        },
        Err(note) => Decision::Failed {
            reason: clip(format!("{note}: {what}")),
        },
    }
}

/// A transient outcome: another claim after the durable backoff (never before `not_before`,
/// the end of a provider's pause), or, with attempts used up, failure. The note says which.
fn retry_or_fail(limits: &Limits<'_>, unit: f64, not_before: Option<Duration>) -> Result<(Duration, String), String> {
    let (attempt, max) = (limits.attempt, limits.max_attempts);
    if attempt >= max {
        return Err(format!("attempts used up ({attempt} of {max})"));
    }
    let after = limits.retry.durable_delay(attempt, unit, not_before);
    Ok((after, format!("attempt {attempt} of {max}")))
}

/// A claim past the last attempt: the run of the last one never finished (its worker died,
/// lost its lease or could not write), and the request fails rather than loop forever,
/// keeping what the last run that did finish had to say.
pub(crate) fn over_budget(attempt: i32, max_attempts: i32, last_error: Option<&str>) -> Option<Decision> {
    (attempt > max_attempts).then(|| {
        let last = match last_error {
            Some(e) => format!("; before that: {e}"),
            None => String::new(),
        };
        Decision::Failed {
            reason: clip(format!(
                "attempts used up ({} of {max_attempts}): the last claim's run did not finish \
                 (its worker stopped or lost its lease){last}",
                attempt - 1
            )),
        }
    })
}

/// `token 7 (acme refresh_token)`, for reasons.
pub(crate) fn label(token: &StoredToken) -> String {
    format!("token {} ({} {})", token.id, token.provider, token.token_type_raw)
}

fn clip(mut text: String) -> String {
    if text.len() > MAX_REASON_LEN {
        let mut end = MAX_REASON_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests;
