//! `offboard audit verify` and `offboard audit anchor`: the audit chain for operators and
//! scripts. `verify` exits 0 when the chain is intact, 1 when it is broken (the first bad
//! row named), and 2 when it could not be checked (bad usage, bad config, database error);
//! `main` maps its errors to 2.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use crate::storage::{Anchor, ChainReport, Store};

/// Exit code of `audit verify` when the chain is broken.
const BROKEN: u8 = 1;
/// Exit code of `audit verify` when it could not check (usage, config, database).
pub(crate) const COULD_NOT_VERIFY: u8 = 2;

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Walk the audit chain, recompute every hash, and name the first row that was
    /// changed, deleted or inserted out of order. Exit 0 intact, 1 broken, 2 not checked
    Verify {
        /// Also check that the chain still contains this head, as `audit anchor` printed it
        #[arg(long, value_name = "SEQ:HASH")]
        anchor: Option<Anchor>,
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
    /// Print the chain's head (sequence number and hash) with the time, one line, for
    /// publishing elsewhere
    Anchor {
        /// One JSON object instead of text
        #[arg(long)]
        json: bool,
    },
}

impl AuditCommand {
    /// The exit code for an error: `verify`'s scripts tell "broken" (1) from "not checked".
    pub(crate) fn failure_code(&self) -> u8 {
        match self {
            AuditCommand::Verify { .. } => COULD_NOT_VERIFY,
            AuditCommand::Anchor { .. } => 1,
        }
    }
}

pub(crate) async fn audit(out: &mut impl Write, store: &Store, command: &AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { anchor, json } => {
            let report = store.verify_audit_chain(None, anchor.as_ref()).await?;
            if *json {
                writeln!(out, "{}", verify_json(&report, anchor.as_ref()))?;
            } else {
                writeln!(out, "{}", verify_text(&report, anchor.as_ref()))?;
            }
            Ok(if report.intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(BROKEN)
            })
        }
        AuditCommand::Anchor { json } => {
            let head = store.audit_chain_head().await?;
            let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            if *json {
                let line =
                    serde_json::json!({ "at": at, "seq": head.seq, "hash": head.hash, "anchor": head.to_string() });
                writeln!(out, "{line}")?;
            } else {
                writeln!(out, "{at} {head}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn verify_text(report: &ChainReport, anchor: Option<&Anchor>) -> String {
    match &report.fault {
        Some(fault) => format!("audit chain BROKEN: {fault}"),
        None => {
            let mut text = format!("audit chain intact: {} rows, head {}", report.rows, report.head);
            if report.prechain_rows > 0 {
                text.push_str(&format!(
                    "; {} rows written before the chain began are not covered by it",
                    report.prechain_rows
                ));
            }
            if let Some(anchor) = anchor {
                text.push_str(&format!("; contains anchor {anchor}"));
            }
            text
        }
    }
}

fn verify_json(report: &ChainReport, anchor: Option<&Anchor>) -> serde_json::Value {
    serde_json::json!({
        "intact": report.intact(),
        "rows": report.rows,
        "head": report.head,
        "prechain_rows": report.prechain_rows,
        "anchor": anchor.map(ToString::to_string),
        "fault": report.fault,
    })
}
