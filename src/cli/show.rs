//! `offboard status ID|USER`: requests in detail, each with its audit rows (attempts at its
//! tokens and notes about it: operators' retries and cancels, a request with no tokens), as
//! text or JSON. The audit rows are streamed from the database as they are printed.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};

use super::report::JsonRecord;
use crate::storage::{AuditAction, AuditFilter, AuditRecord, RequestRow, Store};

/// Shows the request named by `target` (an id), or the requests of the user it names,
/// newest first. A number is an id when a request has it, else a user id; `user:NAME`
/// forces a user id and `id:N` an id.
pub(super) async fn target(out: &mut impl Write, store: &Store, target: &str, json: bool) -> anyhow::Result<ExitCode> {
    let rows = if let Some(user) = target.strip_prefix("user:") {
        store.requests_for_user(user).await?
    } else if let Ok(id) = target.trim_start_matches("id:").parse::<i64>() {
        match store.request(id).await? {
            Some(row) => vec![row],
            None if target.starts_with("id:") => vec![],
            None => store.requests_for_user(target).await?,
        }
    } else {
        store.requests_for_user(target).await?
    };
    anyhow::ensure!(!rows.is_empty(), "no request or user matches '{target}'");
    show(out, store, &rows, json).await
}

/// Shows request `id`; an error when there is none.
pub(super) async fn request(out: &mut impl Write, store: &Store, id: i64, json: bool) -> anyhow::Result<ExitCode> {
    let row = store
        .request(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no request with id {id}"))?;
    show(out, store, &[row], json).await
}

async fn show(out: &mut impl Write, store: &Store, rows: &[RequestRow], json: bool) -> anyhow::Result<ExitCode> {
    if json {
        // {"requests": [{"request": {...}, "audit": [...]}, ...]}, each audit row written
        // as it is read.
        out.write_all(b"{\"requests\":[")?;
        for (k, row) in rows.iter().enumerate() {
            if k > 0 {
                out.write_all(b",")?;
            }
            out.write_all(b"{\"request\":")?;
            serde_json::to_writer(&mut *out, &request_json(row))?;
            out.write_all(b",\"audit\":[")?;
            let mut first = true;
            store
                .each_audit_record(&for_request(row.id), |r| {
                    if !std::mem::take(&mut first) {
                        out.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut *out, &JsonRecord::from(&r))?;
                    anyhow::Ok(())
                })
                .await?;
            out.write_all(b"]}")?;
        }
        out.write_all(b"]}\n")?;
    } else {
        for row in rows {
            print_request(out, row)?;
            writeln!(out, "  audit:")?;
            let n = store
                .each_audit_record(&for_request(row.id), |r| {
                    writeln!(out, "    {}", audit_line(&r))?;
                    anyhow::Ok(())
                })
                .await?;
            if n == 0 {
                writeln!(out, "    (no rows yet)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn for_request(id: i64) -> AuditFilter {
    AuditFilter {
        request_id: Some(id),
        ..AuditFilter::default()
    }
}

pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn request_json(r: &RequestRow) -> serde_json::Value {
    let at = |t: &Option<DateTime<Utc>>| t.as_ref().map(ts);
    serde_json::json!({
        "id": r.id,
        "user_id": r.user_id,
        "state": r.state.as_str(),
        "attempts": r.attempts,
        "requested_at": ts(&r.requested_at),
        "requested_by": r.requested_by,
        "external_ref": r.external_ref,
        "next_attempt_at": at(&r.next_attempt_at),
        "locked_by": r.locked_by,
        "locked_until": at(&r.locked_until),
        "last_error": r.last_error,
        "cleared_at": at(&r.cleared_at),
    })
}

pub(super) fn print_request(out: &mut impl Write, r: &RequestRow) -> std::io::Result<()> {
    writeln!(
        out,
        "request {}  user {}  {}  attempts {}",
        r.id, r.user_id, r.state, r.attempts
    )?;
    writeln!(
        out,
        "  requested {}{}{}",
        ts(&r.requested_at),
        r.requested_by.as_ref().map(|b| format!(" by {b}")).unwrap_or_default(),
        r.external_ref
            .as_ref()
            .map(|x| format!(" (ref {x})"))
            .unwrap_or_default()
    )?;
    if let Some(at) = &r.cleared_at {
        writeln!(out, "  cleared {}", ts(at))?;
    }
    if let Some(at) = &r.next_attempt_at {
        writeln!(out, "  next attempt {}", ts(at))?;
    }
    if let (Some(by), Some(until)) = (&r.locked_by, &r.locked_until) {
        writeln!(out, "  leased by {by} until {}", ts(until))?;
    }
    if let Some(e) = &r.last_error {
        writeln!(out, "  last error: {e}")?;
    }
    Ok(())
}

/// One audit row on one line: when, which row, then what happened. Error text from
/// providers may hold line breaks; they are shown as `\n` so a row stays one line.
fn audit_line(r: &AuditRecord) -> String {
    let when = r.attempted_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let error = r
        .error
        .as_deref()
        .map(|e| format!(": {}", e.replace('\r', "\\r").replace('\n', "\\n")))
        .unwrap_or_default();
    if r.action != AuditAction::Revoke {
        return format!("{when}  #{}  {} by {}{error}", r.id, r.action.as_str(), r.worker);
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut line = format!(
        "{when}  #{}  token {} ({} {} {})  attempt {}  {}",
        r.id,
        r.token_id.map_or(String::new(), |t| t.to_string()),
        opt(&r.provider),
        opt(&r.token_type),
        opt(&r.token_fingerprint),
        r.attempt.unwrap_or_default(),
        r.outcome.map_or("", |o| o.as_str()),
    );
    if r.settled {
        line.push_str(" (settled)");
    }
    if let Some(status) = r.http_status {
        line.push_str(&format!("  HTTP {status}"));
    }
    line.push_str(&format!("  {} ms", r.duration_ms));
    match (r.verified, &r.verified_by) {
        (Some(true), by) => line.push_str(&format!("  proven dead{}", by_what(by))),
        (Some(false), by) => line.push_str(&format!("  STILL ACTIVE{}", by_what(by))),
        (None, _) => {}
    }
    if let Some(id) = &r.provider_request_id {
        line.push_str(&format!("  provider request {id}"));
    }
    line.push_str(&format!("  worker {}{error}", r.worker));
    line
}

fn by_what(by: &Option<String>) -> String {
    by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
}
