//! `offboard status`: the queue at a glance for the on-call engineer. With no argument,
//! requests by state, the oldest pending request (how long it has waited, when it is tried
//! next) and the latest failures with their reasons; with a request id or a user, those
//! requests in detail with their audit rows (`show.rs`). Text for people, `--json` for
//! scripts.

use std::io::Write;
use std::process::ExitCode;

use chrono::Utc;

use super::show::{self, request_json, ts};
use crate::outcome::RequestState;
use crate::storage::{FailedRequest, RequestRow, Store};

// The command's description is on `Command::Status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// A request id or a user id (user:NAME forces a user id, id:N a request id); with
    /// none, the whole queue
    #[arg(value_name = "ID|USER")]
    target: Option<String>,
    /// Show this request in detail, with its audit rows
    #[arg(long, value_name = "ID", conflicts_with = "target")]
    request: Option<i64>,
    /// Failed requests listed with the queue, latest first
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
    /// Print JSON for scripts instead of text
    #[arg(long)]
    json: bool,
}

pub(super) async fn status(out: &mut impl Write, store: &Store, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let shown = match (args.request, &args.target) {
        (Some(id), _) => show::request(out, store, id, args.json).await,
        (None, Some(target)) => show::target(out, store, target, args.json).await,
        (None, None) => queue(out, store, args.limit, args.json).await,
    };
    match shown {
        // The reader has all it wanted (`| head`): not an error.
        Err(e) if closed_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

/// Whether writing failed because the reader went away.
fn closed_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|json| json.io_error_kind() == Some(BrokenPipe))
    })
}

/// Counts by state, the oldest pending request and the latest failures.
async fn queue(out: &mut impl Write, store: &Store, limit: u32, json: bool) -> anyhow::Result<ExitCode> {
    let counts = store.state_counts().await?;
    let oldest = if counts.get(RequestState::Pending) > 0 {
        store.oldest_pending().await?
    } else {
        None
    };
    let failed = counts.get(RequestState::Failed);
    let failures = if failed > 0 {
        store.recent_failures(limit).await?
    } else {
        Vec::new()
    };
    let now = Utc::now();
    if json {
        let counts: serde_json::Map<String, serde_json::Value> = RequestState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), counts.get(*s).into()))
            .collect();
        let oldest = oldest.as_ref().map(|r| {
            let mut v = request_json(r);
            v["age_seconds"] = age_seconds(r, now).into();
            v["due"] = r.next_attempt_at.is_none_or(|at| at <= now).into();
            v
        });
        let failures: Vec<serde_json::Value> = failures.iter().map(failure_json).collect();
        let body = serde_json::json!({
            "counts": counts,
            "oldest_pending": oldest,
            "failed": failed,
            "failures": failures,
        });
        serde_json::to_writer(&mut *out, &body)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if counts.is_empty() {
        writeln!(out, "no requests")?;
    }
    for (state, n) in counts.iter() {
        writeln!(out, "{:<10} {n}", state.as_str())?;
    }
    if let Some(r) = &oldest {
        let next = match r.next_attempt_at {
            Some(at) if at > now => format!("next attempt {} (in {})", ts(&at), seconds((at - now).num_seconds())),
            _ => "due now".to_owned(),
        };
        writeln!(
            out,
            "oldest pending: request {} for user {}, waiting {} (since {}), attempts {}, {next}",
            r.id,
            r.user_id,
            seconds(age_seconds(r, now)),
            ts(&r.requested_at),
            r.attempts
        )?;
    }
    if failed > 0 {
        let shown = failures.len() as i64;
        let of = if shown < failed {
            format!(", the latest {shown} (--limit N for more)")
        } else {
            String::new()
        };
        writeln!(out, "failures: {failed}{of}:")?;
        for f in &failures {
            let r = &f.request;
            writeln!(
                out,
                "  request {} for user {}, failed {} after {} attempt(s): {}",
                r.id,
                r.user_id,
                ts(&f.failed_at),
                r.attempts,
                one_line(r.last_error.as_deref().unwrap_or("no reason recorded"))
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn failure_json(f: &FailedRequest) -> serde_json::Value {
    let mut v = request_json(&f.request);
    v["failed_at"] = ts(&f.failed_at).into();
    v
}

fn age_seconds(r: &RequestRow, now: chrono::DateTime<Utc>) -> i64 {
    (now - r.requested_at).num_seconds().max(0)
}

/// Whole seconds for people: `3h 2m 5s`.
fn seconds(s: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0).unsigned_abs())).to_string()
}

fn one_line(text: &str) -> String {
    text.replace('\r', "\\r").replace('\n', "\\n")
}
