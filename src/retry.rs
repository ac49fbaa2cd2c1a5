//! Retry policy as plain data: in-process retries of one token (exponential backoff with
//! full jitter, through `backon`), and the durable backoff between claims of a request.

use std::time::Duration;

use backon::ExponentialBuilder;

use crate::config::RetryConfig;

#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Tries per token within one claim, the first included.
    pub(crate) attempts: u32,
    pub(crate) base: Duration,
    pub(crate) factor: f64,
    pub(crate) cap: Duration,
    /// A `Retry-After` longer than this is not waited out in process.
    pub(crate) retry_after_cap: Duration,
    pub(crate) durable_base: Duration,
    pub(crate) durable_cap: Duration,
}

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        RetryPolicy {
            attempts: c.attempts.get(),
            base: c.base.0,
            factor: c.factor.0,
            cap: c.cap.0,
            retry_after_cap: c.retry_after_cap.0,
            durable_base: c.durable_base.0,
            durable_cap: c.durable_cap.0,
        }
    }
}

impl RetryPolicy {
    /// backon's exponential schedule without its own jitter: [`RetryPolicy::jitter`] applies
    /// full jitter (a uniform draw from zero to the delay) on top.
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_factor(self.factor as f32)
            .with_max_delay(self.cap)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }

    /// Full jitter: `unit` is a uniform draw from [0, 1) (anything else counts as 0 or 1, so
    /// no value can make the conversion panic).
    pub(crate) fn jitter(delay: Duration, unit: f64) -> Duration {
        let unit = if unit.is_nan() { 0.0 } else { unit.clamp(0.0, 1.0) };
        Duration::try_from_secs_f64(delay.as_secs_f64() * unit)
            .unwrap_or(delay)
            .min(delay)
    }

    /// The pause before the next in-process try, at most `cap`, or `None` when the budget is
    /// spent or the provider asked for a longer pause than is worth waiting out here.
    pub(crate) fn next_delay(
        &self,
        scheduled: Option<Duration>,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let delay = scheduled?;
        match retry_after {
            // The provider's gate holds every caller until the pause ends, so the jittered
            // delay is only a floor.
            Some(wait) if wait > self.retry_after_cap => None,
            _ => Some(Self::jitter(delay.min(self.cap), unit)),
        }
    }

    /// Durable backoff before claim `attempt + 1`: equal jitter over
    /// `durable_base × 2^(attempt-1)`, capped: half the delay is fixed and half is drawn, so
    /// a failing request is never re-claimed at once, while many requests failing together
    /// still spread out. Never earlier than `not_before` (the end of a provider's pause), but
    /// never later than `durable_cap` either, whatever `not_before` says: a provider's pause
    /// is already clamped to `retry.max_provider_pause`, and `durable_cap` is the promise
    /// that a request comes back within it (if the pause outlasts it, the request finds the
    /// provider still paused and goes round again).
    pub(crate) fn durable_delay(&self, attempt: i32, unit: f64, not_before: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let ceiling = self
            .durable_base
            .checked_mul(1u32 << exponent)
            .map_or(self.durable_cap, |d| d.min(self.durable_cap));
        let half = ceiling / 2;
        let not_before = not_before.unwrap_or_default().min(self.durable_cap);
        half.saturating_add(Self::jitter(ceiling.saturating_sub(half), unit))
            .max(not_before)
    }
}

impl RetryPolicy {
    /// Whether an answer is the provider asking to slow down (429, or 503 with
    /// `Retry-After`) for no longer than a caller waits out in process.
    pub(crate) fn is_throttle(&self, verdict: &crate::outcome::Verdict) -> bool {
        let asked = match verdict.http_status {
            Some(429) => true,
            Some(503) => verdict.retry_after.is_some(),
            _ => false,
        };
        asked && verdict.retry_after.is_none_or(|wait| wait <= self.retry_after_cap)
    }

    /// How many throttles one token goes through in process before it is left to the
    /// durable backoff: four times its tries, so a throttle costs a wait at the (slower)
    /// gate rather than a trip through the queue, and still a bounded number of attempts,
    /// each audited (and no longer than `retry_after_cap` of waiting on throttles in all, so
    /// a provider that keeps throttling does not hold the request's slot for long:
    /// invariant 10).
    pub(crate) fn throttled_tries(&self) -> u32 {
        self.attempts.saturating_mul(4)
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    impl RetryPolicy {
        /// The in-process delays a token would see with no jitter.
        fn schedule(&self) -> Vec<Duration> {
            self.backoff().build().collect()
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(100),
            factor: 2.0,
            cap: Duration::from_millis(300),
            retry_after_cap: Duration::from_secs(10),
            durable_base: Duration::from_secs(30),
            durable_cap: Duration::from_secs(100),
        }
    }

    #[test]
    fn in_process_schedule_is_exponential_capped_and_bounded() {
        // backon multiplies in f32, so compare whole milliseconds.
        let millis: Vec<u128> = policy().schedule().iter().map(Duration::as_millis).collect();
        assert_eq!(millis, vec![100, 200, 300]);
    }

    #[test]
    fn full_jitter_draws_between_zero_and_the_delay() {
        let d = Duration::from_secs(10);
        assert_eq!(RetryPolicy::jitter(d, 0.0), Duration::ZERO);
        assert_eq!(RetryPolicy::jitter(d, 0.5), Duration::from_secs(5));
        assert!(RetryPolicy::jitter(d, 0.999) < d);
        assert_eq!(RetryPolicy::jitter(d, f64::NAN), Duration::ZERO);
        assert_eq!(RetryPolicy::jitter(d, f64::INFINITY), d);
        assert_eq!(RetryPolicy::jitter(Duration::MAX, 1.0), Duration::MAX);
    }

    #[test]
    fn a_spent_budget_or_a_long_retry_after_stops_in_process_retries() {
        let p = policy();
        assert_eq!(p.next_delay(None, None, 0.5), None);
        assert_eq!(
            p.next_delay(Some(Duration::from_secs(1)), Some(Duration::from_secs(11)), 0.5),
            None
        );
        assert_eq!(
            p.next_delay(Some(Duration::from_millis(200)), Some(Duration::from_secs(2)), 0.5),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn durable_delay_doubles_caps_and_respects_a_pause() {
        let p = policy();
        assert_eq!(p.durable_delay(1, 1.0, None), Duration::from_secs(30));
        assert_eq!(p.durable_delay(2, 1.0, None), Duration::from_secs(60));
        assert_eq!(p.durable_delay(3, 1.0, None), Duration::from_secs(100));
        assert_eq!(p.durable_delay(40, 1.0, None), Duration::from_secs(100));
        assert_eq!(p.durable_delay(1, 0.0, None), Duration::from_secs(15), "half is fixed");
        assert_eq!(
            p.durable_delay(1, 0.0, Some(Duration::from_secs(17))),
            Duration::from_secs(17)
        );
    }

    /// Issue 7: a provider's year-long pause once pushed `next_attempt_at` a year out,
    /// past `durable_cap`.
    #[test]
    fn durable_delay_never_exceeds_its_cap_whatever_the_pause() {
        let p = policy();
        for pause in [
            Duration::from_secs(101),
            Duration::from_secs(31_536_000),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            for attempt in [i32::MIN, -1, 0, 1, 2, 31, i32::MAX] {
                let delay = p.durable_delay(attempt, 1.0, Some(pause));
                assert_eq!(delay, p.durable_cap, "attempt {attempt}, pause {pause:?}");
            }
        }
    }

    #[test]
    fn next_delay_never_exceeds_its_cap() {
        let p = policy();
        let long = Some(Duration::from_secs(u64::MAX));
        assert_eq!(p.next_delay(long, None, 1.0), Some(p.cap));
        assert_eq!(p.next_delay(long, Some(Duration::from_secs(1)), 0.5), Some(p.cap / 2));
        assert_eq!(p.next_delay(long, Some(Duration::MAX), 0.5), None);
    }
}
