//! Walking the chain: the checks made on each row read, in `chain_seq` order, and at the
//! end against the head. Pure: the rows come from `verify.rs`, which streams them.

use chrono::{DateTime, Utc};

use super::encode::{Fields, GENESIS, row_hash, to_micros, user_ref};

/// A position in the chain: a row's sequence number and hash (0 and the genesis hash
/// before the first row). The head is the position of the last row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: String,
}

impl ChainHead {
    pub(crate) fn genesis() -> ChainHead {
        ChainHead {
            seq: 0,
            hash: GENESIS.to_owned(),
        }
    }
}

impl std::fmt::Display for ChainHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

/// A head published earlier (`SEQ:HASH`, as `offboard audit anchor` prints it) that the
/// chain must still contain.
pub type Anchor = ChainHead;

impl std::str::FromStr for ChainHead {
    type Err = String;
    fn from_str(s: &str) -> Result<ChainHead, String> {
        let (seq, hash) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not SEQ:HASH (as `offboard audit anchor` prints it)"))?;
        let seq: i64 = seq
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("'{seq}' is not a sequence number (a whole number, 0 or more)"))?;
        let hash = hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{hash}' is not a SHA-256 hash (64 hexadecimal digits)"));
        }
        Ok(ChainHead { seq, hash })
    }
}

/// What is wrong at the first bad place of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// A row's columns do not match its hash: edited (or contents swapped).
    Changed,
    /// A row's user id matches neither its user reference nor that reference itself.
    UserChanged,
    /// A row cannot be read as an audit row (a column of the wrong type).
    Unreadable,
    /// A sequence number is missing: a row was deleted (or taken out of the chain).
    Missing,
    /// A row's `prev_hash` is not the hash of the row before it: reordered, inserted, or
    /// the row before was changed and re-hashed.
    OutOfOrder,
    /// A row without a chain position that was not there when the chain began, or fewer
    /// such rows than then: inserted outside the chain, or deleted.
    Unchained,
    /// The head does not match the last row, or a row lies beyond the head.
    Head,
    /// The chain does not contain the anchor given.
    Anchor,
}

/// The first bad place found: what, and which row (`seq`, `id`) where one can be named.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainFault {
    pub kind: FaultKind,
    pub seq: Option<i64>,
    pub id: Option<i64>,
    pub message: String,
}

impl std::fmt::Display for ChainFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One chained row as read back.
#[derive(sqlx::FromRow)]
pub(super) struct ChainRow {
    prev_hash: Option<String>,
    row_hash: Option<String>,
    user_ref: Option<String>,
    request_id: i64,
    user_id: String,
    action: String,
    token_id: Option<i64>,
    provider: Option<String>,
    token_type: Option<String>,
    token_fingerprint: Option<String>,
    attempt: Option<i32>,
    outcome: Option<String>,
    settled: bool,
    http_status: Option<i32>,
    provider_request_id: Option<String>,
    error: Option<String>,
    duration_ms: i64,
    worker: String,
    attempted_at: DateTime<Utc>,
    verified: Option<bool>,
    verified_by: Option<String>,
}

/// The columns of [`ChainRow`], after `id` and `chain_seq`.
pub(super) const ROW_COLUMNS: &str = "id, chain_seq, prev_hash, row_hash, user_ref, request_id, user_id, action, \
    token_id, provider, token_type, token_fingerprint, attempt, outcome, settled, http_status, \
    provider_request_id, error, duration_ms, worker, attempted_at, verified, verified_by";

impl ChainRow {
    fn fields(&self) -> Option<Fields<'_>> {
        Some(Fields {
            request_id: self.request_id,
            user_ref: self.user_ref.as_deref()?,
            action: &self.action,
            token_id: self.token_id,
            provider: self.provider.as_deref(),
            token_type: self.token_type.as_deref(),
            token_fingerprint: self.token_fingerprint.as_deref(),
            attempt: self.attempt,
            outcome: self.outcome.as_deref(),
            settled: self.settled,
            http_status: self.http_status,
            provider_request_id: self.provider_request_id.as_deref(),
            error: self.error.as_deref(),
            duration_ms: self.duration_ms,
            worker: &self.worker,
            attempted_at: to_micros(self.attempted_at).1,
            verified: self.verified,
            verified_by: self.verified_by.as_deref(),
        })
    }
}

/// The state of a walk from a known position.
pub(super) struct Walk<'a> {
    key: &'a str,
    head: &'a ChainHead,
    anchor: Option<&'a Anchor>,
    /// The last row verified.
    pub(super) last: ChainHead,
    pub(super) rows: u64,
    pub(super) fault: Option<ChainFault>,
}

fn fault(kind: FaultKind, seq: Option<i64>, id: Option<i64>, message: String) -> Option<ChainFault> {
    Some(ChainFault { kind, seq, id, message })
}

impl<'a> Walk<'a> {
    pub(super) fn new(key: &'a str, head: &'a ChainHead, from: ChainHead, anchor: Option<&'a Anchor>) -> Walk<'a> {
        Walk {
            key,
            head,
            anchor,
            last: from,
            rows: 0,
            fault: None,
        }
    }

    /// Checks the next row read (`id`, `seq`, the row or why it could not be read); false
    /// once a fault is found.
    pub(super) fn step(&mut self, id: i64, seq: i64, row: Result<ChainRow, String>) -> bool {
        self.fault = self.check(id, seq, row);
        self.fault.is_none()
    }

    fn check(&mut self, id: i64, seq: i64, row: Result<ChainRow, String>) -> Option<ChainFault> {
        let expected = self.last.seq + 1;
        let before = self.last.seq;
        if seq > expected {
            let what = if seq == expected + 1 {
                format!("row seq {expected} is missing")
            } else {
                format!("rows seq {expected} to {} are missing", seq - 1)
            };
            return fault(
                FaultKind::Missing,
                Some(expected),
                None,
                format!(
                    "{what} (deleted, or taken out of the chain): the chain goes from seq {before} to seq {seq} (id {id})"
                ),
            );
        }
        if seq < expected {
            return fault(
                FaultKind::OutOfOrder,
                Some(seq),
                Some(id),
                format!("row seq {seq} (id {id}) comes after seq {before}"),
            );
        }
        if seq > self.head.seq {
            return fault(
                FaultKind::Head,
                Some(seq),
                Some(id),
                format!(
                    "row seq {seq} (id {id}) lies beyond the chain's head (seq {}): appended outside the chain, or the head was moved back",
                    self.head.seq
                ),
            );
        }
        let row = match row {
            Ok(row) => row,
            Err(why) => {
                return fault(
                    FaultKind::Unreadable,
                    Some(seq),
                    Some(id),
                    format!("row seq {seq} (id {id}) cannot be read: {why}"),
                );
            }
        };
        if row.prev_hash.as_deref() != Some(self.last.hash.as_str()) {
            return fault(
                FaultKind::OutOfOrder,
                Some(seq),
                Some(id),
                format!(
                    "row seq {seq} (id {id}) does not follow row seq {before}: its prev_hash is not that row's hash (rows reordered or inserted, or row seq {before} changed and re-hashed)"
                ),
            );
        }
        let recomputed = row.fields().map(|f| row_hash(seq, &self.last.hash, &f));
        let Some(hash) = recomputed.filter(|h| row.row_hash.as_deref() == Some(h.as_str())) else {
            return fault(
                FaultKind::Changed,
                Some(seq),
                Some(id),
                format!("row seq {seq} (id {id}) was changed: its columns do not match its hash"),
            );
        };
        let user_ref_stored = row.user_ref.as_deref().unwrap_or_default();
        if row.user_id != user_ref_stored && user_ref(self.key, &row.user_id) != user_ref_stored {
            return fault(
                FaultKind::UserChanged,
                Some(seq),
                Some(id),
                format!(
                    "row seq {seq} (id {id}) was changed: its user_id does not match the user reference the chain covers"
                ),
            );
        }
        if let Some(anchor) = self.anchor.filter(|a| a.seq == seq && a.hash != hash) {
            return fault(
                FaultKind::Anchor,
                Some(seq),
                Some(id),
                format!(
                    "row seq {seq} (id {id}) has hash {hash}, not the anchor's {}: the chain was rewritten since the anchor was taken",
                    anchor.hash
                ),
            );
        }
        self.last = ChainHead { seq, hash };
        self.rows += 1;
        None
    }

    /// After the last row: the head must be the last row verified, and the anchor within.
    pub(super) fn finish(&mut self) {
        if self.fault.is_some() {
            return;
        }
        let (last, head) = (&self.last, self.head);
        self.fault = if last.seq < head.seq {
            fault(
                FaultKind::Missing,
                Some(last.seq + 1),
                None,
                format!(
                    "rows seq {} to {} are missing (deleted): the chain ends at seq {} but its head is seq {}",
                    last.seq + 1,
                    head.seq,
                    last.seq,
                    head.seq
                ),
            )
        } else if last.seq > head.seq {
            fault(
                FaultKind::Head,
                Some(head.seq),
                None,
                format!(
                    "the chain's head (seq {}) is behind rows already verified (seq {}): the head was moved back",
                    head.seq, last.seq
                ),
            )
        } else if last.hash != head.hash {
            fault(
                FaultKind::Head,
                Some(head.seq),
                None,
                format!(
                    "the chain's head does not match row seq {}: the head or that row was changed",
                    head.seq
                ),
            )
        } else {
            None
        };
        if self.fault.is_some() {
            return;
        }
        if let Some(anchor) = self.anchor {
            if anchor.seq > last.seq {
                self.fault = fault(
                    FaultKind::Anchor,
                    Some(anchor.seq),
                    None,
                    format!(
                        "the chain ends at seq {}, before the anchor's seq {}: rows were removed, or the anchor is of another database",
                        last.seq, anchor.seq
                    ),
                );
            } else if anchor.seq == 0 && anchor.hash != GENESIS {
                self.fault = fault(
                    FaultKind::Anchor,
                    Some(0),
                    None,
                    "an anchor at seq 0 has the genesis hash (all zeros)".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_is_read_as_seq_colon_hash() {
        let a: Anchor = format!("12:{}", "AB".repeat(32)).parse().unwrap();
        assert_eq!(a.seq, 12);
        assert_eq!(a.hash, "ab".repeat(32));
        assert_eq!(a.to_string(), format!("12:{}", "ab".repeat(32)));
        for bad in ["12", "x:00", "-1:00", "3:abc", &format!("3:{}", "g".repeat(64))] {
            assert!(bad.parse::<Anchor>().is_err(), "{bad}");
        }
    }
}
