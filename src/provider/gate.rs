//! Pacing for one provider: a `governor` rate limiter, and a pause that a 429 or 503 with
//! `Retry-After` puts on the whole provider, so every caller waits instead of hammering a
//! provider that asked for quiet. Pacing beats retrying.
//!
//! Both ends of a pause are bounded (DESIGN.md §3, invariant 9): a pause is never longer
//! than `retry.max_provider_pause`, whatever the provider asked for, and a caller waits one
//! out only while it is no longer than `retry.retry_after_cap`; past that, [`Gate::ready`]
//! says so at once instead of holding the caller (and its request's lease) for the rest of
//! the pause.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Jitter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::config::Rate;

pub struct Gate {
    limiter: DefaultDirectRateLimiter,
    jitter: Duration,
    /// The longest pause this gate takes (`retry.max_provider_pause`).
    max_pause: Duration,
    /// The longest pause a caller of [`Gate::ready`] waits out (`retry.retry_after_cap`).
    max_wait: Duration,
    paused_until: Mutex<Option<Instant>>,
    /// One call's share of the rate: the limiter lets one caller through per period.
    period: Duration,
    /// Callers inside [`Gate::ready`] now: the queue in front of the next one.
    waiting: AtomicUsize,
}

/// Counts a caller as waiting for as long as it is inside [`Gate::ready`], however it
/// leaves (answered, paused, or dropped by shutdown).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// [`Gate::ready`] did not wait: the provider is paused for `.0` more, longer than a caller
/// waits out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused(pub Duration);

impl Gate {
    pub(crate) fn new(rate: Rate, burst: NonZeroU32, max_pause: Duration, max_wait: Duration) -> Gate {
        let period = rate.per / rate.count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(rate.count))
            .allow_burst(burst);
        Gate {
            limiter: RateLimiter::direct(quota),
            // Spread callers released together over a slice of one period.
            jitter: (period / 4).min(Duration::from_millis(50)),
            max_pause,
            max_wait,
            paused_until: Mutex::new(None),
            period,
            waiting: AtomicUsize::new(0),
        }
    }

    /// How long a caller arriving now would wait, as far as the gate can tell: what is
    /// left of a pause, plus one period for each caller already waiting. A caller that
    /// finds this longer than it is worth holding its request for goes elsewhere
    /// (issue 10: no head-of-line blocking).
    pub(crate) fn backlog(&self) -> Duration {
        let queued = u32::try_from(self.waiting.load(Ordering::Relaxed)).unwrap_or(u32::MAX);
        let queue = self.period.checked_mul(queued).unwrap_or(Duration::MAX);
        self.pause_left().unwrap_or_default().saturating_add(queue)
    }

    /// The longest pause a caller of [`Gate::ready`] waits out.
    pub(crate) fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// How much of a pause is left, if any.
    pub fn pause_left(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().expect("pause lock"))?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Pauses the provider for `wait` from now, at most for the gate's longest pause. A
    /// pause only ever grows: a shorter `Retry-After` from a concurrent call does not cut a
    /// longer one short. Never panics: the end of the pause is computed with checked
    /// arithmetic (and with the cap bounded by the config, it cannot overflow anyway).
    pub(crate) fn pause(&self, wait: Duration) {
        let Some(until) = Instant::now().checked_add(wait.min(self.max_pause)) else {
            return;
        };
        let mut guard = self.paused_until.lock().expect("pause lock");
        if guard.is_none_or(|current| current < until) {
            *guard = Some(until);
        }
    }

    /// Waits until the provider is not paused and the rate limit allows one more call; or,
    /// when the provider is paused for longer than a caller waits out (a pause may also
    /// begin while the caller waits for the limiter), returns at once with what is left.
    pub(crate) async fn ready(&self) -> Result<(), Paused> {
        self.ready_within(self.max_wait).await
    }

    /// As [`Gate::ready`], waiting out a pause only while it is no longer than `max_wait`
    /// (at most the gate's own): a caller that would rather defer its token than hold its
    /// request's slot through a pause says how long it is willing to wait.
    pub(crate) async fn ready_within(&self, max_wait: Duration) -> Result<(), Paused> {
        let max_wait = max_wait.min(self.max_wait);
        let _waiting = Waiting::enter(&self.waiting);
        loop {
            if let Some(left) = self.pause_left() {
                if left > max_wait {
                    return Err(Paused(left));
                }
                tokio::time::sleep(left).await;
                continue;
            }
            self.limiter.until_ready_with_jitter(Jitter::up_to(self.jitter)).await;
            // A pause may have begun while this caller waited for the limiter.
            if self.pause_left().is_none() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn gate() -> Gate {
        Gate::new(
            "100/s".parse().unwrap(),
            NonZeroU32::new(1).unwrap(),
            HOUR,
            Duration::from_secs(60),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn the_backlog_counts_the_pause_and_the_callers_waiting() {
        let gate = std::sync::Arc::new(Gate::new(
            "2/s".parse().unwrap(),
            NonZeroU32::new(1).unwrap(),
            HOUR,
            Duration::from_secs(60),
        ));
        assert_eq!(gate.backlog(), Duration::ZERO);
        assert_eq!(gate.ready().await, Ok(()));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move { gate.ready().await })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(gate.backlog(), Duration::from_secs(2), "4 callers at 2/s");
        gate.pause(Duration::from_secs(10));
        assert!(gate.backlog() > Duration::from_secs(11), "{:?}", gate.backlog());
        for w in waiters {
            w.abort();
        }
        tokio::task::yield_now().await;
        assert!(
            gate.backlog() <= Duration::from_secs(10),
            "dropped callers leave the queue"
        );
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
        assert_eq!(gate.ready().await, Ok(()));
        assert!(start.elapsed() >= Duration::from_secs(2));
        assert!(gate.pause_left().is_none());
    }

    /// Issue 7: `Retry-After: 31536000` (a year) and a 20-digit value once paused the
    /// provider for a year or panicked in `Instant + Duration`.
    #[test]
    fn a_pause_is_clamped_to_the_cap_and_never_overflows() {
        for wait in [
            Duration::from_secs(31_536_000),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            let gate = gate();
            gate.pause(wait);
            let left = gate.pause_left().expect("paused");
            assert!(
                left <= HOUR && left > HOUR - Duration::from_secs(5),
                "{wait:?}: {left:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_does_not_wait_out_a_pause_longer_than_its_callers_wait() {
        let gate = gate();
        gate.pause(Duration::from_secs(600));
        let start = Instant::now();
        let Err(Paused(left)) = gate.ready().await else {
            panic!("ready waited out a 10 minute pause");
        };
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(
            left > Duration::from_secs(599) && left <= Duration::from_secs(600),
            "{left:?}"
        );
    }

    /// A caller already waiting for the limiter when a long pause begins gives up then,
    /// instead of sleeping through the pause.
    #[tokio::test]
    async fn a_caller_waiting_for_the_limiter_gives_up_when_a_long_pause_begins() {
        let gate = std::sync::Arc::new(Gate::new(
            "1/s".parse().unwrap(),
            NonZeroU32::new(1).unwrap(),
            HOUR,
            Duration::from_secs(60),
        ));
        assert_eq!(gate.ready().await, Ok(()));
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.ready().await }
        });
        // The limiter lets the next call through a second after the first one.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished());
        gate.pause(Duration::from_secs(31_536_000));
        let result = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting caller slept through the pause")
            .unwrap();
        assert!(matches!(result, Err(Paused(left)) if left <= HOUR), "{result:?}");
    }
}
