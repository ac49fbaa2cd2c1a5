//! The providers' gates, read at scrape time: how long each provider has been paused by
//! `Retry-After` (or a spent rate-limit window), the calls in flight to it, and how long
//! calls waited at its rate limiter before being sent. The gates keep all three; this
//! collector only encodes them, so a gate never needs the metrics.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::ProviderLabels;
use crate::provider::gate::Gate;
use crate::provider::{Provider, Providers};

/// The providers whose gates are reported; none until [`super::Metrics::watch_gates`].
#[derive(Clone, Debug, Default)]
pub(super) struct Gates(pub(super) Arc<OnceLock<Providers>>);

impl Collector for Gates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(providers) = self.0.get() else {
            return Ok(());
        };
        let mut by_name: Vec<_> = providers.iter().collect();
        by_name.sort_by(|a, b| a.0.cmp(b.0));
        family(
            &mut encoder,
            &by_name,
            "provider_paused_seconds",
            "Time each provider has been paused because it asked for quiet (Retry-After, or a rate-limit window with nothing left).",
            MetricType::Counter,
            |gate, to| ConstCounter::new(gate.paused_so_far().as_secs_f64()).encode(to),
        )?;
        family(
            &mut encoder,
            &by_name,
            "provider_calls_in_flight",
            "Calls this worker has sent to each provider and not yet had answered (at most its max_in_flight).",
            MetricType::Gauge,
            |gate, to| ConstGauge::new(i64::try_from(gate.calls_in_flight()).unwrap_or(i64::MAX)).encode(to),
        )?;
        family(
            &mut encoder,
            &by_name,
            "rate_limit_wait_seconds",
            "Time a call waited at its provider's gate (pause and rate limiter) before being sent.",
            MetricType::Histogram,
            |gate, to| gate.waits().encode(to),
        )
    }
}

/// One metric family with a value for each provider, read from its gate by `value`.
fn family(
    encoder: &mut DescriptorEncoder,
    by_name: &[(&String, &Arc<Provider>)],
    name: &str,
    help: &str,
    kind: MetricType,
    value: impl Fn(&Gate, MetricEncoder) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (provider, p) in by_name {
        let label = ProviderLabels {
            provider: (*provider).clone(),
        };
        value(&p.gate, family.encode_family(&label)?)?;
    }
    Ok(())
}
