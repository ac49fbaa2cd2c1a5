//! The providers' gates, read at scrape time: how long each provider has been paused by
//! `Retry-After` (or a spent rate-limit window), the calls in flight to it, and how long
//! calls waited at its rate limiter before being sent. The gates keep all three; this
//! collector only encodes them, so a gate never needs the metrics.

use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::ProviderLabels;
use crate::provider::Providers;

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
        let labels = |name: &String| ProviderLabels { provider: name.clone() };
        {
            let mut family = encoder.encode_descriptor(
                "provider_paused_seconds",
                "Time each provider has been paused because it asked for quiet (Retry-After, or a rate-limit window with nothing left).",
                None,
                MetricType::Counter,
            )?;
            for (name, provider) in &by_name {
                let label = labels(name);
                let paused = provider.gate.paused_so_far().as_secs_f64();
                ConstCounter::new(paused).encode(family.encode_family(&label)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "provider_calls_in_flight",
                "Calls this worker has sent to each provider and not yet had answered (at most its max_in_flight).",
                None,
                MetricType::Gauge,
            )?;
            for (name, provider) in &by_name {
                let label = labels(name);
                let calls = i64::try_from(provider.gate.calls_in_flight()).unwrap_or(i64::MAX);
                ConstGauge::new(calls).encode(family.encode_family(&label)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "rate_limit_wait_seconds",
            "Time a call waited at its provider's gate (pause and rate limiter) before being sent.",
            None,
            MetricType::Histogram,
        )?;
        for (name, provider) in &by_name {
            let label = labels(name);
            provider.gate.waits().encode(family.encode_family(&label)?)?;
        }
        Ok(())
    }
}
