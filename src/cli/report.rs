//! `offboard report`: the audit trail as CSV or JSON Lines, for auditors and scripts.
//!
//! Rows are streamed from the database to the writer one at a time
//! ([`Store::each_audit_record`]), so a report of millions of rows runs in the memory of a
//! few. CSV goes through the `csv` crate (RFC 4180 quoting) and JSON Lines through serde, one
//! `serde_json::to_writer` per row. A reader that goes away (`offboard report | head`) ends
//! the report quietly, with exit code 0: what it read was complete rows.

use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use clap::ValueEnum;
use serde::Serialize;

use crate::outcome::Outcome;
use crate::storage::{AuditFilter, AuditRecord, Store, StoreError};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum ReportFormat {
    Csv,
    Jsonl,
}

// The command's description is on `Command::Report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    #[arg(long, value_enum, default_value_t = ReportFormat::Csv)]
    format: ReportFormat,
    /// Only rows written at or after TIME (RFC 3339, e.g. 2026-11-01T00:00:00Z; a date alone
    /// is midnight UTC)
    #[arg(long, value_name = "TIME", value_parser = time)]
    since: Option<DateTime<Utc>>,
    /// Only rows written before TIME (RFC 3339, or a date: midnight UTC)
    #[arg(long, value_name = "TIME", value_parser = time)]
    until: Option<DateTime<Utc>>,
    /// Only this user's rows
    #[arg(long)]
    user: Option<String>,
    /// Only rows of this provider (the key of `[providers.NAME]`)
    #[arg(long)]
    provider: Option<String>,
    /// Only attempts with this outcome: revoked, already_invalid, not_revocable, transient,
    /// failed, still_active, refreshed
    #[arg(long, value_parser = outcome)]
    outcome: Option<Outcome>,
    /// Only this request's rows
    #[arg(long, value_name = "ID")]
    request: Option<i64>,
    /// Write to FILE (created or replaced) instead of standard output
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// `--since` and `--until`: an RFC 3339 time, or a date (midnight UTC).
fn time(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "'{raw}' is not an RFC 3339 time (like 2026-11-01T00:00:00Z or 2026-11-01T02:00:00+02:00) or a date \
         (2026-11-01)"
    ))
}

fn outcome(raw: &str) -> Result<Outcome, String> {
    Outcome::parse(raw.trim()).ok_or_else(|| {
        let known: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        format!("unknown outcome '{raw}' (known: {})", known.join(", "))
    })
}

impl ReportArgs {
    fn filter(&self) -> anyhow::Result<AuditFilter> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            anyhow::ensure!(
                since < until,
                "--since ({}) must be before --until ({}): no row could match",
                stamp(&since),
                stamp(&until)
            );
        }
        Ok(AuditFilter {
            request_id: self.request,
            user_id: self.user.clone(),
            provider: self.provider.clone(),
            outcome: self.outcome,
            since: self.since,
            until: self.until,
        })
    }
}

/// Why a report stopped early: the database, or the writer.
enum Stop {
    Store(StoreError),
    Write(std::io::Error),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Store(e)
    }
}

/// Runs `offboard report`: writes to `stdout` unless `--output` names a file.
pub(super) async fn report(stdout: &mut impl Write, store: &Store, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let filter = args.filter()?;
    let written = match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            stream(store, &filter, args.format, file).await
        }
        None => stream(store, &filter, args.format, stdout).await,
    };
    match written {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The reader has all it wanted (`| head`): not an error.
        Err(Stop::Write(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(Stop::Write(e)) => Err(anyhow::Error::new(e).context("cannot write the report")),
        Err(Stop::Store(e)) => Err(anyhow::Error::new(e).context("cannot read the audit trail")),
    }
}

/// A CSV error as the writer's I/O error, keeping its kind (a closed pipe must stay one:
/// `From<csv::Error> for io::Error` wraps every error as `Other`).
fn csv_stop(e: csv::Error) -> Stop {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Stop::Write(io),
        other => Stop::Write(std::io::Error::other(format!("{other:?}"))),
    }
}

/// Writes the rows `filter` selects to `out` in `format`; returns how many.
async fn stream(store: &Store, filter: &AuditFilter, format: ReportFormat, out: impl Write) -> Result<u64, Stop> {
    let out = BufWriter::with_capacity(64 * 1024, out);
    match format {
        ReportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(REPORT_COLUMNS).map_err(csv_stop)?;
            let n = store
                .each_audit_record(filter, |r| write_csv(&mut csv, &r).map_err(csv_stop))
                .await?;
            csv.flush().map_err(Stop::Write)?;
            Ok(n)
        }
        ReportFormat::Jsonl => {
            let mut out = out;
            let n = store
                .each_audit_record(filter, |r| write_json_line(&mut out, &r).map_err(Stop::Write))
                .await?;
            out.flush().map_err(Stop::Write)?;
            Ok(n)
        }
    }
}

/// The CSV header. The first seventeen are the original columns, in their original order;
/// `action` (an attempt at a token, or an operator's retry or cancel, or a request with no
/// tokens) and `audit_id` (the row's id, to cite it) were added at the end so scripts that
/// read columns by position keep working.
pub(crate) const REPORT_COLUMNS: [&str; 19] = [
    "request_id",
    "user_id",
    "token_id",
    "provider",
    "token_type",
    "token_fingerprint",
    "attempt",
    "outcome",
    "settled",
    "http_status",
    "provider_request_id",
    "error",
    "duration_ms",
    "worker",
    "attempted_at",
    "verified",
    "verified_by",
    "action",
    "audit_id",
];

fn stamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn write_csv(csv: &mut csv::Writer<impl Write>, r: &AuditRecord) -> csv::Result<()> {
    fn text(v: &Option<String>) -> Cow<'_, str> {
        Cow::Borrowed(v.as_deref().unwrap_or_default())
    }
    let number = |v: Option<i64>| v.map_or(Cow::Borrowed(""), |n| Cow::Owned(n.to_string()));
    let fields: [Cow<'_, str>; 19] = [
        Cow::Owned(r.request_id.to_string()),
        Cow::Borrowed(&r.user_id),
        number(r.token_id),
        text(&r.provider),
        text(&r.token_type),
        text(&r.token_fingerprint),
        number(r.attempt.map(i64::from)),
        Cow::Borrowed(r.outcome.map_or("", Outcome::as_str)),
        Cow::Borrowed(if r.settled { "true" } else { "false" }),
        number(r.http_status.map(i64::from)),
        text(&r.provider_request_id),
        text(&r.error),
        Cow::Owned(r.duration_ms.to_string()),
        Cow::Borrowed(&r.worker),
        Cow::Owned(stamp(&r.attempted_at)),
        Cow::Borrowed(r.verified.map_or("", |v| if v { "true" } else { "false" })),
        text(&r.verified_by),
        Cow::Borrowed(r.action.as_str()),
        Cow::Owned(r.id.to_string()),
    ];
    csv.write_record(fields.iter().map(|f| neutralised(f).into_owned().into_bytes()))
}

/// A cell as written to CSV: one that a spreadsheet would take for a formula (starting with
/// `=`, `+`, `-` or `@`, or with a tab or carriage return, which some strip before looking)
/// gets a leading `'`, as OWASP's CSV injection guidance advises, so it shows as text.
/// Plain integers (`-1`) are numbers, not formulas, and stay as they are. Provider error
/// text, user ids and request ids all reach these cells.
fn neutralised(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if cell.parse::<i64>().is_err() => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// One audit row as a JSON object: the CSV's columns, with numbers and booleans as such and
/// an empty cell as `null`. Values are kept as they are (JSON has no formulas).
#[derive(Serialize)]
pub(super) struct JsonRecord<'a> {
    request_id: i64,
    user_id: &'a str,
    token_id: Option<i64>,
    provider: Option<&'a str>,
    token_type: Option<&'a str>,
    token_fingerprint: Option<&'a str>,
    attempt: Option<i32>,
    outcome: Option<&'static str>,
    settled: bool,
    http_status: Option<i32>,
    provider_request_id: Option<&'a str>,
    error: Option<&'a str>,
    duration_ms: i64,
    worker: &'a str,
    attempted_at: String,
    verified: Option<bool>,
    verified_by: Option<&'a str>,
    action: &'static str,
    audit_id: i64,
}

impl<'a> From<&'a AuditRecord> for JsonRecord<'a> {
    fn from(r: &'a AuditRecord) -> Self {
        JsonRecord {
            request_id: r.request_id,
            user_id: &r.user_id,
            token_id: r.token_id,
            provider: r.provider.as_deref(),
            token_type: r.token_type.as_deref(),
            token_fingerprint: r.token_fingerprint.as_deref(),
            attempt: r.attempt,
            outcome: r.outcome.map(Outcome::as_str),
            settled: r.settled,
            http_status: r.http_status,
            provider_request_id: r.provider_request_id.as_deref(),
            error: r.error.as_deref(),
            duration_ms: r.duration_ms,
            worker: &r.worker,
            attempted_at: stamp(&r.attempted_at),
            verified: r.verified,
            verified_by: r.verified_by.as_deref(),
            action: r.action.as_str(),
            audit_id: r.id,
        }
    }
}

fn write_json_line(out: &mut impl Write, r: &AuditRecord) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &JsonRecord::from(r))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests;
