//! Pacing for one provider: a `governor` rate limiter, and a pause that a 429 or 503 with
//! `Retry-After` puts on the whole provider, so every caller waits instead of hammering a
//! provider that asked for quiet. Pacing beats retrying.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::config::Rate;

pub struct Gate {
    limiter: DefaultDirectRateLimiter,
    jitter: Duration,
    paused_until: Mutex<Option<Instant>>,
}

impl Gate {
    pub(crate) fn new(rate: Rate, burst: NonZeroU32) -> Gate {
        let period = rate.per / rate.count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(rate.count))
            .allow_burst(burst);
        Gate {
            limiter: RateLimiter::direct(quota),
            // Spread callers released together over a slice of one period.
            jitter: (period / 4).min(Duration::from_millis(50)),
            paused_until: Mutex::new(None),
        }
    }

    /// How much of a pause is left, if any.
    pub fn pause_left(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().expect("pause lock"))?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Pauses the provider for `wait` from now. A pause only ever grows: a shorter
    /// `Retry-After` from a concurrent call does not cut a longer one short.
    pub(crate) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self.paused_until.lock().expect("pause lock");
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// Waits until the provider is not paused and the rate limit allows one more call.
    pub(crate) async fn ready(&self) {
        loop {
            if let Some(left) = self.pause_left() {
                tokio::time::sleep(left).await;
                continue;
            }
            self.limiter.until_ready_with_jitter(Jitter::up_to(self.jitter)).await;
            // A pause may have begun while this caller waited for the limiter.
            if self.pause_left().is_none() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Gate {
        Gate::new("100/s".parse().unwrap(), NonZeroU32::new(1).unwrap())
    }

    #[test]
    fn a_pause_never_shrinks() {
        let gate = gate();
        gate.pause(Duration::from_secs(5));
        gate.pause(Duration::from_secs(1));
        assert!(gate.pause_left().unwrap() > Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn ready_waits_out_the_pause() {
        let gate = gate();
        gate.pause(Duration::from_secs(2));
        let start = Instant::now();
        gate.ready().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(gate.pause_left().is_none());
    }
}
