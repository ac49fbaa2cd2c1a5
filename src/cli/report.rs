//! `offboard report`: the audit trail as CSV or JSON Lines, for auditors and scripts.

use std::borrow::Cow;
use std::io::Write;

use super::ReportFormat;
use crate::storage::AuditRow;

const REPORT_COLUMNS: [&str; 17] = [
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
];

fn report_fields(r: &AuditRow) -> [String; 17] {
    let opt = |v: Option<String>| v.unwrap_or_default();
    [
        r.request_id.to_string(),
        r.user_id.clone(),
        r.token_id.to_string(),
        r.provider.clone(),
        r.token_type.clone(),
        r.token_fingerprint.clone(),
        r.attempt.to_string(),
        r.outcome.to_string(),
        r.settled.to_string(),
        opt(r.http_status.map(|s| s.to_string())),
        opt(r.provider_request_id.clone()),
        opt(r.error.clone()),
        r.duration_ms.to_string(),
        r.worker.clone(),
        r.attempted_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        opt(r.verified.map(|v| v.to_string())),
        opt(r.verified_by.clone()),
    ]
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

pub(crate) fn write_report(out: &mut impl Write, format: ReportFormat, rows: &[AuditRow]) -> std::io::Result<()> {
    match format {
        ReportFormat::Csv => {
            // RFC 4180 quoting, only where needed; records end in "\n".
            let mut csv = csv::Writer::from_writer(out);
            csv.write_record(REPORT_COLUMNS)?;
            for r in rows {
                let fields = report_fields(r);
                csv.write_record(fields.iter().map(|f| neutralised(f).into_owned()))?;
            }
            csv.flush()?;
        }
        ReportFormat::Jsonl => {
            for r in rows {
                let mut object = serde_json::Map::new();
                for (name, value) in REPORT_COLUMNS.iter().zip(report_fields(r)) {
                    object.insert((*name).to_owned(), serde_json::Value::String(value));
                }
                object.insert(
                    "http_status".into(),
                    r.http_status.map_or(serde_json::Value::Null, Into::into),
                );
                object.insert("settled".into(), r.settled.into());
                object.insert(
                    "verified".into(),
                    r.verified.map_or(serde_json::Value::Null, Into::into),
                );
                object.insert(
                    "verified_by".into(),
                    r.verified_by.clone().map_or(serde_json::Value::Null, Into::into),
                );
                for (name, n) in [
                    ("request_id", r.request_id),
                    ("token_id", r.token_id),
                    ("duration_ms", r.duration_ms),
                ] {
                    object.insert(name.into(), n.into());
                }
                object.insert("attempt".into(), r.attempt.into());
                writeln!(out, "{}", serde_json::Value::Object(object))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn row(user: &str, error: &str) -> AuditRow {
        AuditRow {
            request_id: 7,
            user_id: user.into(),
            token_id: 42,
            provider: "acme".into(),
            token_type: "access_token".into(),
            token_fingerprint: "sha256:00ff".into(),
            attempt: 1,
            outcome: Outcome::Failed,
            settled: false,
            http_status: Some(400),
            provider_request_id: Some("@SUM(1+1)".into()),
            error: Some(error.into()),
            duration_ms: 12,
            worker: "-2+3".into(),
            attempted_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            verified: None,
            verified_by: None,
        }
    }

    fn csv_of(rows: &[AuditRow]) -> String {
        let mut out = Vec::new();
        write_report(&mut out, ReportFormat::Csv, rows).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_cells_a_spreadsheet_would_run_are_neutralised() {
        let csv = csv_of(&[row("+cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example\",\"x\")")]);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(REPORT_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some(
                "7,'+cmd|' /C calc'!A0,42,acme,access_token,sha256:00ff,1,failed,false,400,'@SUM(1+1),\
                 \"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",12,'-2+3,2023-11-14T22:13:20.000Z,,"
            )
        );
        for lead in ["\tx", "\rx", "-x", "@x", "+x", "=x"] {
            let csv = csv_of(&[row("u", lead)]);
            let error_cell = csv
                .lines()
                .nth(1)
                .unwrap_or_default()
                .split(',')
                .nth(11)
                .unwrap_or_default();
            assert!(
                error_cell.trim_start_matches('"').starts_with('\''),
                "{lead:?} not neutralised: {csv:?}"
            );
        }
    }

    #[test]
    fn json_lines_keep_the_values_as_they_are() {
        let mut out = Vec::new();
        write_report(&mut out, ReportFormat::Jsonl, &[row("+u", "=1+1")]).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["user_id"], "+u");
        assert_eq!(line["error"], "=1+1");
        assert_eq!(line["http_status"], 400);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let csv = csv_of(&[row("plain", "a,b and say \"hi\"")]);
        let line = csv.lines().nth(1).unwrap();
        assert!(line.starts_with("7,plain,42,"), "{line}");
        assert!(line.contains(",\"a,b and say \"\"hi\"\"\","), "{line}");
        assert!(csv.ends_with('\n') && !csv.contains("\r\n"), "{csv:?}");
    }
}
