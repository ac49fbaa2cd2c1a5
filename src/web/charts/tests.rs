//! Unit tests of the hour's numbers and the charts' geometry.

use super::*;

fn cell(
    provider: &str,
    bucket: i64,
    outcome: &str,
    calls: i64,
    throttled: i64,
    total_ms: i64,
    max_ms: i64,
) -> HourCell {
    HourCell {
        provider: provider.into(),
        bucket,
        outcome: outcome.into(),
        calls,
        throttled,
        total_ms,
        max_ms,
    }
}

fn values<'a>(chart: &'a Chart, series: &str) -> Vec<(usize, &'a str)> {
    chart
        .bars
        .iter()
        .chain(&chart.ticks)
        .filter(|m| m.series == series)
        .map(|m| (m.bucket, m.value.as_str()))
        .collect()
}

#[test]
fn totals_and_bars_carry_the_database_numbers() {
    let cells = [
        cell("acme", 1, "revoked", 3, 0, 600, 300),
        cell("acme", 11, "transient", 2, 2, 200, 150),
        cell("acme", 11, "failed", 1, 0, 10, 10),
    ];
    let configured = BTreeMap::from([("acme".to_owned(), 20.0), ("quiet".to_owned(), 0.5)]);
    let hours = provider_hours(&cells, Utc::now(), &configured, &[]);
    assert_eq!(hours.len(), 2, "a configured provider without calls is listed too");
    let acme = &hours[0];
    assert_eq!(
        (acme.calls, acme.throttled, acme.mean_ms, acme.max_ms),
        (6, 2, Some(135), Some(300))
    );
    assert_eq!(acme.outcomes.iter().find(|(o, _)| *o == "revoked").unwrap().1, 3);
    assert_eq!(acme.effective_rate.as_deref(), Some("20"));
    assert_eq!(acme.rate_source, "configured");
    let calls = &acme.charts[0];
    assert_eq!(values(calls, "revoked"), [(1, "3")]);
    assert_eq!(values(calls, "transient"), [(11, "2")]);
    assert_eq!(values(calls, "failed"), [(11, "1")]);
    assert_eq!(values(&acme.charts[1], "429"), [(11, "2")]);
    assert_eq!(values(&acme.charts[2], "mean"), [(1, "200"), (11, "70")]);
    assert_eq!(values(&acme.charts[2], "max"), [(1, "300"), (11, "150")]);
    assert_eq!(values(&acme.charts[3], "observed"), [(1, "0.01"), (11, "0.01")]);
    assert_eq!(acme.charts[3].lines[0].value, "20");
    assert_eq!(hours[1].calls, 0);
    assert_eq!(hours[1].mean_ms, None);
}

#[test]
fn stacked_bars_sit_on_each_other_within_the_plot() {
    let cells = [
        cell("acme", 0, "revoked", 4, 0, 4, 1),
        cell("acme", 0, "transient", 4, 0, 4, 1),
    ];
    let hours = provider_hours(&cells, Utc::now(), &BTreeMap::new(), &[]);
    let bars = &hours[0].charts[0].bars;
    let (low, high) = (&bars[0], &bars[1]);
    let f = |s: &str| s.parse::<f64>().unwrap();
    assert!(
        (f(&high.y) + f(&high.h) - f(&low.y)).abs() < 0.11,
        "the upper bar starts where the lower ends"
    );
    assert!((f(&high.y) - TOP).abs() < 0.11, "the tallest stack reaches the top");
    assert!((f(&low.y) + f(&low.h) - (HEIGHT - BOTTOM)).abs() < 0.11);
    assert_eq!(hours[0].rate_source, "not configured");
}

#[test]
fn the_shared_rate_wins_over_the_configured_one_and_late_rows_count_in_the_last_bucket() {
    let cells = [cell("acme", 12, "revoked", 1, 0, 5, 5)];
    let configured = BTreeMap::from([("acme".to_owned(), 20.0)]);
    let hours = provider_hours(&cells, Utc::now(), &configured, &[("acme".into(), 7.5)]);
    assert_eq!(hours[0].effective_rate.as_deref(), Some("7.5"));
    assert_eq!(hours[0].rate_source, "shared");
    assert_eq!(hours[0].configured_rate.as_deref(), Some("20"));
    assert_eq!(values(&hours[0].charts[0], "revoked"), [(11, "1")]);
}

#[test]
fn numbers_drop_trailing_zeros() {
    assert_eq!(number(20.0), "20");
    assert_eq!(number(7.5), "7.5");
    assert_eq!(number(1.0 / 300.0), "0.003");
    assert_eq!(number(0.0), "0");
}
