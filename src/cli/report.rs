//! `offboard report`: the audit trail as CSV or JSON Lines, for auditors and scripts.

use std::io::Write;

use super::ReportFormat;
use crate::storage::AuditRow;

const REPORT_COLUMNS: [&str; 15] = [
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
];

fn report_fields(r: &AuditRow) -> [String; 15] {
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
    ]
}

/// RFC 4180 quoting: fields with a comma, quote or line break are quoted, quotes doubled.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

pub(crate) fn write_report(out: &mut impl Write, format: ReportFormat, rows: &[AuditRow]) -> std::io::Result<()> {
    match format {
        ReportFormat::Csv => {
            writeln!(out, "{}", REPORT_COLUMNS.join(","))?;
            for r in rows {
                let fields = report_fields(r);
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
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

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
