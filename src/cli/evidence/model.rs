//! The evidence document: one user's requests, each token by fingerprint with every attempt
//! at it, the notes of who acted on the requests, and the chain hashes of every row. Built
//! from what the database holds and nothing else: it never reads a token value, so none can
//! reach it. Its JSON shape is `schemas/evidence.schema.json`; change both together.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::storage::{EvidenceRow, RequestRow, UserRecord};

/// Names the shape of the document, for readers that check it.
pub(super) const FORMAT: &str = "offboard-evidence/1";

/// The command that re-checks the chain the row hashes belong to.
pub(super) const VERIFY_COMMAND: &str = "offboard audit verify";

#[derive(Debug, Serialize)]
pub(crate) struct Evidence {
    pub(super) format: &'static str,
    pub(super) generated_at: String,
    pub(super) generator: String,
    /// `postgres` or `sqlite`.
    pub(super) database: &'static str,
    pub(super) user_id: String,
    pub(super) summary: Summary,
    pub(super) requests: Vec<Request>,
    pub(super) chain: Chain,
}

#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) latest_request_id: i64,
    pub(super) latest_state: String,
    /// Whether the latest request is cleared: the user's data may be deleted.
    pub(super) cleared: bool,
    pub(super) cleared_at: Option<String>,
    pub(super) requests: usize,
    pub(super) tokens: usize,
    pub(super) tokens_settled: usize,
    pub(super) attempts: usize,
}

#[derive(Debug, Serialize)]
pub(super) struct Request {
    pub(super) id: i64,
    pub(super) state: String,
    pub(super) requested_by: Option<String>,
    pub(super) requested_at: String,
    pub(super) external_ref: Option<String>,
    pub(super) cleared_at: Option<String>,
    /// Claims of the request since it was queued or last put back by an operator.
    pub(super) claims: i32,
    pub(super) last_error: Option<String>,
    /// By token id; a value rotated in place after the value it replaced.
    pub(super) tokens: Vec<Token>,
    pub(super) notes: Vec<Note>,
}

/// A token value as the audit saw it: a token row rotated in place during the request shows
/// as two entries with the same `token_id` and different fingerprints.
#[derive(Debug, Serialize)]
pub(super) struct Token {
    pub(super) token_id: i64,
    pub(super) fingerprint: String,
    pub(super) provider: Option<String>,
    pub(super) token_type: Option<String>,
    pub(super) settled: bool,
    /// The settling attempt's outcome, else the last attempt's.
    pub(super) final_outcome: String,
    pub(super) settled_at: Option<String>,
    pub(super) attempts: Vec<Attempt>,
}

#[derive(Debug, Serialize)]
pub(super) struct Attempt {
    pub(super) audit_id: i64,
    pub(super) attempt: Option<i32>,
    pub(super) outcome: String,
    pub(super) settled: bool,
    pub(super) http_status: Option<i32>,
    pub(super) provider_request_id: Option<String>,
    pub(super) error: Option<String>,
    pub(super) duration_ms: i64,
    pub(super) worker: String,
    pub(super) attempted_at: String,
    /// `None` when nothing was checked (the provider allows no check, or none is
    /// configured, or the answer was not a success).
    pub(super) verification: Option<Verification>,
    #[serde(flatten)]
    pub(super) chain: RowChain,
}

#[derive(Debug, Serialize)]
pub(super) struct Verification {
    /// `true`: proven dead; `false`: the token still worked after the provider's success.
    pub(super) dead: bool,
    pub(super) method: Option<String>,
}

/// An audit row about the request itself: an operator's retry or cancel (who, why), a
/// request cleared with no tokens, or any other action the table records.
#[derive(Debug, Serialize)]
pub(super) struct Note {
    pub(super) audit_id: i64,
    pub(super) action: String,
    /// The operator, or the worker for rows a worker wrote.
    pub(super) by: String,
    pub(super) reason: Option<String>,
    pub(super) at: String,
    #[serde(flatten)]
    pub(super) chain: RowChain,
}

/// A row's place in the audit's hash chain; all `None` on a database without the chain.
#[derive(Debug, Serialize)]
pub(super) struct RowChain {
    pub(super) chain_seq: Option<i64>,
    pub(super) prev_hash: Option<String>,
    pub(super) row_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Chain {
    /// Whether the audit table carries the chain columns.
    pub(super) recorded: bool,
    pub(super) verify_command: &'static str,
    pub(super) how_to_check: String,
}

/// Times as RFC 3339 in UTC with milliseconds, the way every time in the document reads.
pub(super) fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Evidence {
    /// The document for `user_id`, or `None` when the user has no request.
    pub(super) fn build(
        user_id: &str,
        record: UserRecord,
        database: &'static str,
        now: DateTime<Utc>,
    ) -> Option<Evidence> {
        let latest = record.requests.last()?;
        let summary_head = (
            latest.id,
            latest.state.as_str().to_owned(),
            latest.cleared_at.as_ref().map(time),
        );
        let mut requests: Vec<Request> = record.requests.iter().map(request).collect();
        let by_id: HashMap<i64, usize> = requests.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        // Where each token value's entry is, by (request, token id, fingerprint): a user
        // with many tokens is not searched once per row.
        let mut entries: HashMap<(i64, i64, String), usize> = HashMap::new();
        for row in record.rows {
            let Some(&at) = by_id.get(&row.request_id) else {
                continue;
            };
            let request = &mut requests[at];
            match row.action.as_str() {
                "revoke" => add_attempt(&mut request.tokens, &mut entries, row),
                _ => request.notes.push(note(row)),
            }
        }
        for request in &mut requests {
            // By token id: rows are written in the order calls finish, which differs
            // between runs. The sort is stable, so a value rotated in place follows the
            // value it replaced.
            request.tokens.sort_by_key(|t| t.token_id);
            request.tokens.iter_mut().for_each(conclude);
        }
        let tokens = requests.iter().map(|r| r.tokens.len()).sum();
        let tokens_settled = requests.iter().flat_map(|r| &r.tokens).filter(|t| t.settled).count();
        let attempts = requests.iter().flat_map(|r| &r.tokens).map(|t| t.attempts.len()).sum();
        Some(Evidence {
            format: FORMAT,
            generated_at: time(&now),
            generator: format!("offboard {}", env!("CARGO_PKG_VERSION")),
            database,
            user_id: user_id.to_owned(),
            summary: Summary {
                latest_request_id: summary_head.0,
                cleared: summary_head.1 == "cleared",
                latest_state: summary_head.1,
                cleared_at: summary_head.2,
                requests: requests.len(),
                tokens,
                tokens_settled,
                attempts,
            },
            requests,
            chain: chain(record.chained),
        })
    }
}

fn request(r: &RequestRow) -> Request {
    Request {
        id: r.id,
        state: r.state.as_str().to_owned(),
        requested_by: r.requested_by.clone(),
        requested_at: time(&r.requested_at),
        external_ref: r.external_ref.clone(),
        cleared_at: r.cleared_at.as_ref().map(time),
        claims: r.attempts,
        last_error: r.last_error.clone(),
        tokens: Vec::new(),
        notes: Vec::new(),
    }
}

fn row_chain(row: &EvidenceRow) -> RowChain {
    RowChain {
        chain_seq: row.chain_seq,
        prev_hash: row.prev_hash.clone(),
        row_hash: row.row_hash.clone(),
    }
}

/// Files an attempt row under its token value (token id and fingerprint), in row order.
fn add_attempt(tokens: &mut Vec<Token>, entries: &mut HashMap<(i64, i64, String), usize>, row: EvidenceRow) {
    let token_id = row.token_id.unwrap_or_default();
    let fingerprint = row.token_fingerprint.clone().unwrap_or_default();
    let index = *entries
        .entry((row.request_id, token_id, fingerprint.clone()))
        .or_insert_with(|| {
            tokens.push(Token {
                token_id,
                fingerprint,
                provider: row.provider.clone(),
                token_type: row.token_type.clone(),
                settled: false,
                final_outcome: String::new(),
                settled_at: None,
                attempts: Vec::new(),
            });
            tokens.len() - 1
        });
    let verification = row.verified.map(|dead| Verification {
        dead,
        method: row.verified_by.clone(),
    });
    tokens[index].attempts.push(Attempt {
        audit_id: row.id,
        attempt: row.attempt,
        outcome: row.outcome.clone().unwrap_or_default(),
        settled: row.settled,
        http_status: row.http_status,
        provider_request_id: row.provider_request_id.clone(),
        error: row.error.clone(),
        duration_ms: row.duration_ms,
        worker: row.worker.clone(),
        attempted_at: time(&row.attempted_at),
        verification,
        chain: row_chain(&row),
    });
}

/// A token's conclusion: the first settling attempt, else the last attempt.
fn conclude(token: &mut Token) {
    let settling = token.attempts.iter().find(|a| a.settled);
    let last = settling.or(token.attempts.last());
    token.settled = settling.is_some();
    token.settled_at = settling.map(|a| a.attempted_at.clone());
    token.final_outcome = last.map(|a| a.outcome.clone()).unwrap_or_default();
}

fn note(row: EvidenceRow) -> Note {
    Note {
        audit_id: row.id,
        chain: row_chain(&row),
        action: row.action,
        by: row.worker,
        reason: row.error,
        at: time(&row.attempted_at),
    }
}

fn chain(recorded: bool) -> Chain {
    let how_to_check = if recorded {
        format!(
            "Every audit row carries row_hash, the SHA-256 of the row's canonical encoding and of \
             prev_hash, the hash of the row before it in the chain; chain_seq orders the chain (the \
             encoding is described in offboard's README, \"Tamper-evident audit\"). The hash covers \
             the row as stored (times to the microsecond, the user as a keyed hash), so it is \
             re-checked in the database rather than recomputed from this document: run \
             {VERIFY_COMMAND} there (with --anchor SEQ:HASH to hold it to a head published \
             earlier). It walks the whole chain and names the first row that was changed, deleted \
             or inserted out of order. The rows of this document are found there by audit_id and \
             chain_seq, with the same row_hash. Rows written before the chain began have none."
        )
    } else {
        format!(
            "This database's audit table has no hash chain yet (it predates the chained audit), so \
             the rows here carry no hashes. Once the database is migrated, {VERIFY_COMMAND} \
             checks the rows written from then on."
        )
    };
    Chain {
        recorded,
        verify_command: VERIFY_COMMAND,
        how_to_check,
    }
}

#[cfg(test)]
mod tests;
