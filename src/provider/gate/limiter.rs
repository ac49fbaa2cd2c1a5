//! The local rate limiter: what one worker's share of a provider's rate allows, and the
//! `governor` limiter built for it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The limiter callers wait on now; `None` while this worker's share is zero.
#[derive(Clone)]
pub(super) struct Limiter {
    pub(super) limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub(super) jitter: Duration,
    pub(super) generation: u64,
}

/// The local limiter for `rate` calls a second for all workers and `share` of them: rate ×
/// share, burst max(1, ⌊burst × share⌋). Where that rounding gives each of n workers a burst
/// of one though the configured burst is smaller than n, each worker's rate gives up the
/// excess, so all of them together stay within rate + burst over any second.
pub(super) fn local(rate: f64, burst: u32, share: f64) -> (f64, u32) {
    let mine = (f64::from(burst) * share).floor().max(1.0);
    let excess = (mine - f64::from(burst) * share).max(0.0);
    let local_rate = (rate * share - excess).max(rate * share / 2.0);
    (local_rate, mine as u32)
}

pub(super) fn build(rate: f64, burst: u32) -> Limiter {
    let rate = rate.max(0.001);
    let period = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::from_secs(1000));
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst);
    Limiter {
        limiter: Some(Arc::new(RateLimiter::direct(quota))),
        // Spread callers released together over a slice of one period.
        jitter: (period / 4).min(Duration::from_millis(50)),
        generation: 0,
    }
}
