//! The last hour per provider: totals for the table and four charts (calls by outcome, 429s,
//! latency, observed rate against the effective one), computed from the database's
//! aggregates ([`HourCell`]) into plain geometry that the template draws as inline SVG.
//!
//! Every mark carries its number twice, as `data-value` and in its `<title>` (the tooltip),
//! so a person can hover and a test can read exactly what the database said. Pure code:
//! no I/O, unit-tested below.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::outcome::Outcome;
use crate::storage::HourCell;

/// The window: twelve buckets of five minutes, the oldest first.
pub(super) const BUCKETS: usize = 12;
pub(super) const BUCKET_SECS: i64 = 300;

const WIDTH: f64 = 360.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// One provider's hour.
pub(super) struct ProviderHour {
    pub(super) name: String,
    pub(super) calls: i64,
    /// Every outcome, in [`Outcome::ALL`]'s order, with its count (zeros included).
    pub(super) outcomes: Vec<(&'static str, i64)>,
    pub(super) throttled: i64,
    /// Mean and longest attempt, in milliseconds; none without calls.
    pub(super) mean_ms: Option<i64>,
    pub(super) max_ms: Option<i64>,
    /// Calls a second the provider is paced at now, and where that number comes from.
    pub(super) effective_rate: Option<String>,
    pub(super) rate_source: &'static str,
    pub(super) configured_rate: Option<String>,
    pub(super) charts: Vec<Chart>,
}

/// A chart: bars (stacked when several share a bucket), short marks and horizontal lines.
pub(super) struct Chart {
    pub(super) kind: &'static str,
    pub(super) title: String,
    pub(super) width: String,
    pub(super) height: String,
    pub(super) bars: Vec<Mark>,
    pub(super) ticks: Vec<Mark>,
    pub(super) lines: Vec<Mark>,
    pub(super) top_label: String,
    pub(super) top_y: String,
    pub(super) base_y: String,
    pub(super) plot_left: String,
    pub(super) plot_right: String,
    /// Where the value labels (left of the plot) and the time labels (below it) are.
    pub(super) label_x: String,
    pub(super) top_text_y: String,
    pub(super) base_text_y: String,
    pub(super) axis_text_y: String,
    pub(super) labels: Vec<AxisLabel>,
}

/// A rectangle (bar), a short line across a bucket (tick, drawn 2 high at `y`) or a line
/// across the plot (from `x`,`y` to `w`,`h`).
pub(super) struct Mark {
    pub(super) x: String,
    pub(super) y: String,
    pub(super) w: String,
    pub(super) h: String,
    pub(super) class: String,
    /// The bucket, for bars and ticks (0 is the oldest).
    pub(super) bucket: usize,
    pub(super) series: String,
    pub(super) value: String,
    pub(super) title: String,
}

pub(super) struct AxisLabel {
    pub(super) x: String,
    pub(super) text: &'static str,
    /// SVG `text-anchor`: `start`, `middle` or `end`.
    pub(super) anchor: &'static str,
}

/// A number for people and for `data-value`: at most three decimals, no trailing zeros.
pub(super) fn number(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.into() }
}

fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// Per provider: its bucket cells, summed over outcomes where a chart wants them.
#[derive(Default)]
struct Buckets {
    by_outcome: BTreeMap<String, [i64; BUCKETS]>,
    calls: [i64; BUCKETS],
    throttled: [i64; BUCKETS],
    total_ms: [i64; BUCKETS],
    max_ms: [Option<i64>; BUCKETS],
}

/// The hour of every provider that is configured or was called, by name.
/// `configured` and `shared` are rates in calls a second; `shared` wins (it is what the
/// workers pace at now), else the configured rate.
pub(super) fn provider_hours(
    cells: &[HourCell],
    since: DateTime<Utc>,
    configured: &BTreeMap<String, f64>,
    shared: &[(String, f64)],
) -> Vec<ProviderHour> {
    let mut per: BTreeMap<String, Buckets> = configured.keys().map(|n| (n.clone(), Buckets::default())).collect();
    for cell in cells {
        let b = per.entry(cell.provider.clone()).or_default();
        // A row stamped a moment after the database's now (another host's clock) counts in
        // the last bucket; nothing is before `since`.
        let i = usize::try_from(cell.bucket.max(0)).unwrap_or(0).min(BUCKETS - 1);
        b.by_outcome.entry(cell.outcome.clone()).or_insert([0; BUCKETS])[i] += cell.calls;
        b.calls[i] += cell.calls;
        b.throttled[i] += cell.throttled;
        b.total_ms[i] += cell.total_ms;
        b.max_ms[i] = Some(b.max_ms[i].unwrap_or(0).max(cell.max_ms));
    }
    per.into_iter()
        .map(|(name, b)| {
            let shared_rate = shared.iter().find(|(p, _)| *p == name).map(|(_, r)| *r);
            let configured_rate = configured.get(&name).copied();
            let (effective, rate_source) = match (shared_rate, configured_rate) {
                (Some(r), _) => (Some(r), "shared"),
                (None, Some(r)) => (Some(r), "configured"),
                (None, None) => (None, "not configured"),
            };
            let calls: i64 = b.calls.iter().sum();
            let total_ms: i64 = b.total_ms.iter().sum();
            let outcomes = Outcome::ALL
                .iter()
                .map(|o| (o.as_str(), b.by_outcome.get(o.as_str()).map_or(0, |c| c.iter().sum())))
                .collect();
            let charts = vec![
                calls_chart(&b, since),
                throttled_chart(&b, since),
                latency_chart(&b, since),
                rate_chart(&b, since, effective),
            ];
            ProviderHour {
                name,
                calls,
                outcomes,
                throttled: b.throttled.iter().sum(),
                mean_ms: (calls > 0).then(|| (total_ms as f64 / calls as f64).round() as i64),
                max_ms: b.max_ms.iter().flatten().max().copied(),
                effective_rate: effective.map(number),
                rate_source,
                configured_rate: configured_rate.map(number),
                charts,
            }
        })
        .collect()
}

/// The plot's geometry for values up to `max`.
struct Plot {
    max: f64,
}

impl Plot {
    fn new(max: f64) -> Plot {
        Plot {
            max: if max > 0.0 { max } else { 1.0 },
        }
    }
    fn height() -> f64 {
        HEIGHT - TOP - BOTTOM
    }
    fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - v / self.max * Plot::height()
    }
    fn slot() -> f64 {
        (WIDTH - LEFT - RIGHT) / BUCKETS as f64
    }
    fn x(bucket: usize) -> f64 {
        LEFT + bucket as f64 * Plot::slot() + 1.0
    }
}

fn when(since: DateTime<Utc>, bucket: usize) -> String {
    let start = since + Duration::seconds(BUCKET_SECS * bucket as i64);
    let end = start + Duration::seconds(BUCKET_SECS);
    format!("{}–{} UTC", start.format("%H:%M:%S"), end.format("%H:%M:%S"))
}

fn bar(plot: &Plot, bucket: usize, from: f64, value: f64, class: &str, series: &str, title: String) -> Mark {
    let top = plot.y(from + value);
    Mark {
        x: coord(Plot::x(bucket)),
        y: coord(top),
        w: coord(Plot::slot() - 2.0),
        h: coord(plot.y(from) - top),
        class: class.to_owned(),
        bucket,
        series: series.to_owned(),
        value: number(value),
        title,
    }
}

fn chart(kind: &'static str, title: &str, plot: &Plot, bars: Vec<Mark>, ticks: Vec<Mark>, lines: Vec<Mark>) -> Chart {
    let label = |x: f64, text, anchor| AxisLabel {
        x: coord(x),
        text,
        anchor,
    };
    Chart {
        kind,
        title: title.to_owned(),
        width: coord(WIDTH),
        height: coord(HEIGHT),
        bars,
        ticks,
        lines,
        top_label: number(plot.max),
        top_y: coord(TOP),
        base_y: coord(HEIGHT - BOTTOM),
        plot_left: coord(LEFT),
        plot_right: coord(WIDTH - RIGHT),
        label_x: coord(LEFT - 4.0),
        top_text_y: coord(TOP + 4.0),
        base_text_y: coord(HEIGHT - BOTTOM),
        axis_text_y: coord(HEIGHT - 8.0),
        labels: vec![
            label(LEFT, "−60 min", "start"),
            label(LEFT + (WIDTH - LEFT - RIGHT) / 2.0, "−30 min", "middle"),
            label(WIDTH - RIGHT, "now", "end"),
        ],
    }
}

fn calls_chart(b: &Buckets, since: DateTime<Utc>) -> Chart {
    let plot = Plot::new(b.calls.iter().copied().max().unwrap_or(0) as f64);
    let mut bars = Vec::new();
    for i in 0..BUCKETS {
        let mut from = 0.0;
        for outcome in Outcome::ALL.iter().map(|o| o.as_str()) {
            let n = b.by_outcome.get(outcome).map_or(0, |c| c[i]);
            if n == 0 {
                continue;
            }
            let title = format!("{n} {outcome}, {}", when(since, i));
            bars.push(bar(&plot, i, from, n as f64, &format!("o-{outcome}"), outcome, title));
            from += n as f64;
        }
    }
    chart("calls", "Calls by outcome", &plot, bars, Vec::new(), Vec::new())
}

fn throttled_chart(b: &Buckets, since: DateTime<Utc>) -> Chart {
    let plot = Plot::new(b.throttled.iter().copied().max().unwrap_or(0) as f64);
    let bars = (0..BUCKETS)
        .filter(|&i| b.throttled[i] > 0)
        .map(|i| {
            let n = b.throttled[i];
            bar(
                &plot,
                i,
                0.0,
                n as f64,
                "throttled",
                "429",
                format!("{n} × 429, {}", when(since, i)),
            )
        })
        .collect();
    chart("throttled", "HTTP 429 answers", &plot, bars, Vec::new(), Vec::new())
}

fn latency_chart(b: &Buckets, since: DateTime<Utc>) -> Chart {
    let top = b.max_ms.iter().flatten().max().copied().unwrap_or(0);
    let plot = Plot::new(top as f64);
    let mut bars = Vec::new();
    let mut ticks = Vec::new();
    for i in (0..BUCKETS).filter(|&i| b.calls[i] > 0) {
        let mean = (b.total_ms[i] as f64 / b.calls[i] as f64).round();
        bars.push(bar(
            &plot,
            i,
            0.0,
            mean,
            "latency",
            "mean",
            format!("mean {mean} ms, {}", when(since, i)),
        ));
        let max = b.max_ms[i].unwrap_or(0) as f64;
        let mut tick = bar(
            &plot,
            i,
            max,
            0.0,
            "latency-max",
            "max",
            format!("max {max} ms, {}", when(since, i)),
        );
        tick.value = number(max);
        ticks.push(tick);
    }
    chart(
        "latency",
        "Latency, ms (bar: mean; tick: max)",
        &plot,
        bars,
        ticks,
        Vec::new(),
    )
}

fn rate_chart(b: &Buckets, since: DateTime<Utc>, effective: Option<f64>) -> Chart {
    let observed: Vec<f64> = b.calls.iter().map(|&n| n as f64 / BUCKET_SECS as f64).collect();
    let top = observed.iter().copied().fold(effective.unwrap_or(0.0), f64::max);
    let plot = Plot::new(top);
    let bars = (0..BUCKETS)
        .filter(|&i| b.calls[i] > 0)
        .map(|i| {
            let title = format!("{} calls/s observed, {}", number(observed[i]), when(since, i));
            bar(&plot, i, 0.0, observed[i], "observed", "observed", title)
        })
        .collect();
    let lines = effective
        .map(|rate| {
            let y = coord(plot.y(rate));
            vec![Mark {
                x: coord(LEFT),
                y: y.clone(),
                w: coord(WIDTH - RIGHT),
                h: y,
                class: "effective".into(),
                bucket: 0,
                series: "effective".into(),
                value: number(rate),
                title: format!("effective rate {} calls/s", number(rate)),
            }]
        })
        .unwrap_or_default();
    chart(
        "rate",
        "Calls a second: observed (bars), effective (line)",
        &plot,
        bars,
        Vec::new(),
        lines,
    )
}

#[cfg(test)]
mod tests;
