//! Prometheus metrics, in an explicit registry (no globals, so tests can read their own).
//! Labels carry provider names, outcomes and states only: never a user, token or secret.

mod gates;
#[cfg(test)]
mod tests_pacing;

use std::time::Duration;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::outcome::RequestState;
use crate::provider::Providers;
use crate::storage::StateCounts;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    provider: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

type Latency = Family<ProviderLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    attempts: Family<AttemptLabels, Counter>,
    throttled: Family<ProviderLabels, Counter>,
    latency: Latency,
    finished: Family<StateLabels, Counter>,
    leases_lost: Counter,
    database_errors: Counter,
    queue: Family<StateLabels, Gauge>,
    effective_rate: Family<ProviderLabels, Gauge<f64, AtomicU64>>,
    // Issue 11: pacing (read from the gates at scrape), queue age, lease takeovers.
    gates: gates::Gates,
    oldest_due: Gauge<f64, AtomicU64>,
    lease_takeovers: Counter,
    chain_broken: Gauge,
    chain_rows: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// A gate's histogram of the time calls waited there: 1 ms to about a minute.
pub(crate) fn wait_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 13))
}

fn latency_histogram() -> Histogram {
    // 5 ms to about 20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("offboard");
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "revocation_attempts",
            "Revocation attempts by provider and outcome",
            attempts.clone(),
        );
        let throttled = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_throttled",
            "Answers of 429 or 503 with Retry-After, which pause the whole provider",
            throttled.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "revocation_seconds",
            "Time from sending a revocation to its answer",
            latency.clone(),
        );
        let finished = Family::<StateLabels, Counter>::default();
        registry.register(
            "request_runs",
            "Runs of a claimed request, by the state they left it in",
            finished.clone(),
        );
        let leases_lost = Counter::default();
        registry.register(
            "leases_lost",
            "Runs whose results were discarded because another worker took the lease over",
            leases_lost.clone(),
        );
        let database_errors = Counter::default();
        registry.register(
            "database_errors",
            "Database operations that failed because the database was away or busy, and were retried",
            database_errors.clone(),
        );
        let queue = Family::<StateLabels, Gauge>::default();
        registry.register(
            "requests",
            "Requests in the database by state, read at scrape time",
            queue.clone(),
        );
        let effective_rate = Family::<ProviderLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "provider_effective_rate",
            "Calls a second each provider is paced at now, for all workers together: the configured rate, lowered while the provider throttles",
            effective_rate.clone(),
        );
        // Issue 11: pacing, queue age, lease takeovers.
        let gates = gates::Gates::default();
        registry.register_collector(Box::new(gates.clone()));
        let oldest_due = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oldest_due_request_age_seconds",
            "How long the request due the longest has waited to be claimed (pending past its next attempt time, or running past its lease), read at scrape time; 0 when none is due",
            oldest_due.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Claims of a request whose earlier lease had expired (its worker stopped or stalled)",
            lease_takeovers.clone(),
        );
        let chain_broken = Gauge::default();
        registry.register(
            "audit_chain_broken",
            "1 when the daemon's check of the audit chain found a changed, deleted or misplaced row",
            chain_broken.clone(),
        );
        let chain_rows = Gauge::default();
        registry.register(
            "audit_chain_rows",
            "Audit chain rows verified so far by the daemon's check",
            chain_rows.clone(),
        );
        Metrics {
            registry,
            gates,
            oldest_due,
            lease_takeovers,
            chain_broken,
            chain_rows,
            effective_rate,
            attempts,
            throttled,
            latency,
            finished,
            leases_lost,
            database_errors,
            queue,
        }
    }
}

impl Metrics {
    pub(crate) fn record_attempt(&self, provider: &str, outcome: &str, http_status: Option<i32>, duration: Duration) {
        let provider_label = ProviderLabels {
            provider: provider.to_owned(),
        };
        self.attempts
            .get_or_create(&AttemptLabels {
                provider: provider.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if matches!(http_status, Some(429 | 503)) {
            self.throttled.get_or_create(&provider_label).inc();
        }
        if http_status.is_some() {
            self.latency
                .get_or_create(&provider_label)
                .observe(duration.as_secs_f64());
        }
    }

    pub(crate) fn record_run(&self, state: &str) {
        self.finished
            .get_or_create(&StateLabels {
                state: state.to_owned(),
            })
            .inc();
    }

    pub(crate) fn record_lease_lost(&self) {
        self.leases_lost.inc();
    }

    pub(crate) fn record_database_error(&self) {
        self.database_errors.inc();
    }

    /// Sets the queue gauges from fresh counts; states absent from `counts` read zero.
    pub(crate) fn set_queue(&self, counts: &StateCounts) {
        for state in RequestState::ALL {
            self.queue
                .get_or_create(&StateLabels {
                    state: state.as_str().to_owned(),
                })
                .set(counts.get(state));
        }
    }

    /// Sets a provider's adaptive rate (calls a second, all workers together).
    pub(crate) fn set_effective_rate(&self, provider: &str, rate: f64) {
        self.effective_rate
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
            })
            .set(rate);
    }

    // Issue 11: pacing, queue age, lease takeovers.

    /// Reports the pauses and limiter waits of `providers`' gates from now on (once: the
    /// providers of a process are fixed).
    pub(crate) fn watch_gates(&self, providers: &Providers) {
        let _ = self.gates.0.set(providers.clone());
    }

    /// Sets the age of the request due the longest (zero when none is due).
    pub(crate) fn set_oldest_due(&self, age: Duration) {
        self.oldest_due.set(age.as_secs_f64());
    }

    pub(crate) fn record_lease_takeovers(&self, claims: u64) {
        self.lease_takeovers.inc_by(claims);
    }

    /// Sets the audit chain gauges from the daemon's check.
    pub(crate) fn set_audit_chain(&self, broken: bool, rows: u64) {
        self.chain_broken.set(i64::from(broken));
        self.chain_rows.set(i64::try_from(rows).unwrap_or(i64::MAX));
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_and_runs_are_counted_by_label() {
        let m = Metrics::default();
        m.record_attempt("acme", "revoked", Some(200), Duration::from_millis(20));
        m.record_attempt("acme", "transient", Some(429), Duration::from_millis(5));
        m.record_attempt("acme", "not_revocable", None, Duration::ZERO);
        m.record_run("cleared");
        m.set_queue(&StateCounts::new(vec![(RequestState::Pending, 3)]));
        m.set_effective_rate("acme", 12.5);
        m.set_audit_chain(true, 42);
        let text = m.render();
        assert!(
            text.contains(r#"offboard_revocation_attempts_total{provider="acme",outcome="revoked"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"offboard_provider_throttled_total{provider="acme"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"offboard_revocation_seconds_count{provider="acme"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"offboard_request_runs_total{state="cleared"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"offboard_requests{state="pending"} 3"#), "{text}");
        assert!(text.contains(r#"offboard_requests{state="failed"} 0"#), "{text}");
        assert!(text.contains("offboard_audit_chain_broken 1"), "{text}");
        assert!(text.contains("offboard_audit_chain_rows 42"), "{text}");
        assert!(
            text.contains(r#"offboard_provider_effective_rate{provider="acme"} 12.5"#),
            "{text}"
        );
    }
}
