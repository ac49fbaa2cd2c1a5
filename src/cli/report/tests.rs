use super::*;
use crate::storage::AuditAction;

fn row(user: &str, error: &str) -> AuditRecord {
    AuditRecord {
        id: 99,
        request_id: 7,
        user_id: user.into(),
        action: AuditAction::Revoke,
        token_id: Some(42),
        provider: Some("acme".into()),
        token_type: Some("access_token".into()),
        token_fingerprint: Some("sha256:00ff".into()),
        attempt: Some(1),
        outcome: Some(Outcome::Failed),
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

fn csv_of(rows: &[AuditRecord]) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(REPORT_COLUMNS).unwrap();
    for r in rows {
        write_csv(&mut csv, r).unwrap();
    }
    String::from_utf8(csv.into_inner().unwrap()).unwrap()
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
             \"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",12,'-2+3,2023-11-14T22:13:20.000Z,,,revoke,99"
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
fn json_lines_keep_the_values_as_they_are_and_empty_cells_are_null() {
    let mut out = Vec::new();
    write_json_line(&mut out, &row("+u", "=1+1")).unwrap();
    assert!(out.ends_with(b"}\n"), "{}", String::from_utf8_lossy(&out));
    let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(line["user_id"], "+u");
    assert_eq!(line["error"], "=1+1");
    assert_eq!(line["http_status"], 400);
    assert_eq!(line["token_id"], 42);
    assert_eq!(line["audit_id"], 99);
    assert_eq!(line["action"], "revoke");
    assert_eq!(line["verified"], serde_json::Value::Null);
    assert_eq!(line["attempted_at"], "2023-11-14T22:13:20.000Z");
    let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
    let mut columns = REPORT_COLUMNS.to_vec();
    columns.sort_unstable();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort_unstable();
    assert_eq!(keys_sorted, columns, "JSON keys and CSV columns differ");
}

#[test]
fn csv_fields_are_quoted_only_when_needed() {
    let csv = csv_of(&[row("plain", "a,b and say \"hi\"")]);
    let line = csv.lines().nth(1).unwrap();
    assert!(line.starts_with("7,plain,42,"), "{line}");
    assert!(line.contains(",\"a,b and say \"\"hi\"\"\","), "{line}");
    assert!(csv.ends_with('\n') && !csv.contains("\r\n"), "{csv:?}");
}

#[test]
fn a_bad_time_or_outcome_is_refused_with_what_is_expected() {
    assert_eq!(
        time("2026-11-01T02:00:00+02:00").unwrap(),
        chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap()
    );
    assert_eq!(time("2026-11-01").unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
    let e = time("yesterday").unwrap_err();
    assert!(e.starts_with("'yesterday' is not an RFC 3339 time"), "{e}");
    assert!(time("2026-13-01T00:00:00Z").is_err());
    assert_eq!(outcome("revoked").unwrap(), Outcome::Revoked);
    let e = outcome("gone").unwrap_err();
    assert!(
        e.contains("unknown outcome 'gone' (known: revoked, already_invalid"),
        "{e}"
    );
}
