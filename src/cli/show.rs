//! What `offboard status` prints: counts by state, or requests in detail.

use std::io::Write;
use std::process::ExitCode;

use crate::storage::{RequestRow, Store};

pub(super) async fn status(store: &Store, target: Option<&str>, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let Some(target) = target else {
        let counts = store.state_counts().await?;
        if counts.is_empty() {
            writeln!(out, "no requests")?;
        }
        for (state, n) in counts.iter() {
            writeln!(out, "{:<10} {n}", state.as_str())?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let rows = if let Some(user) = target.strip_prefix("user:") {
        store.requests_for_user(user).await?
    } else if let Ok(id) = target.trim_start_matches("id:").parse::<i64>() {
        match store.request(id).await? {
            Some(row) => vec![row],
            None => store.requests_for_user(target).await?,
        }
    } else {
        store.requests_for_user(target).await?
    };
    anyhow::ensure!(!rows.is_empty(), "no request or user matches '{target}'");
    for row in &rows {
        print_request(out, row)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_request(out: &mut impl Write, r: &RequestRow) -> std::io::Result<()> {
    let ts = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
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
