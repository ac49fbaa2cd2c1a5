//! Pacing for one provider: a `governor` rate limiter, and a pause that a 429 or 503 with
//! `Retry-After` puts on the whole provider, so every caller waits instead of hammering a
//! provider that asked for quiet. Pacing beats retrying.
//!
//! Both ends of a pause are bounded (DESIGN.md §3, invariant 9): a pause is never longer
//! than `retry.max_provider_pause`, whatever the provider asked for, and a caller waits one
//! out only while it is no longer than `retry.retry_after_cap`; past that, [`Gate::ready`]
//! says so at once instead of holding the caller (and its request's lease) for the rest of
//! the pause.
//!
//! The limiter's rate is the provider's adaptive rate (`pace.rs`: lowered by throttles and
//! rate-limit headers, recovering slowly, never above the configured rate) times this
//! worker's share of it (1 alone; 1/n of n workers sharing a PostgreSQL database, set by
//! `drain::shares`; 0 while a newcomer waits for the others to shrink theirs). Governor's
//! quota is fixed, so a change swaps in a new limiter whose burst is spent at once: a swap
//! never releases an extra burst, and callers waiting on the old limiter go round again on
//! the new one.

mod limiter;
mod pace;
mod pause;
pub(crate) mod ratelimit;
mod slots;
mod waiting;

use std::collections::VecDeque;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Jitter};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::classify::RawResponse;
use crate::config::Rate;
use limiter::{Limiter, build, local};
pub(crate) use pace::{DECREASE_EVERY, Pace};
use pause::Pauses;
pub(crate) use slots::Busy;
use waiting::Waiting;

pub struct Gate {
    /// The configured burst, for all workers together.
    burst: u32,
    limiter: watch::Sender<Limiter>,
    tuning: Mutex<Tuning>,
    /// The longest pause this gate takes (`retry.max_provider_pause`).
    max_pause: Duration,
    /// The longest pause a caller of [`Gate::ready`] waits out (`retry.retry_after_cap`).
    max_wait: Duration,
    pauses: Pauses,
    /// How long callers let through waited (`offboard_rate_limit_wait_seconds`).
    waits: Histogram,
    /// Callers inside [`Gate::slot`] or [`Gate::ready_within`] now: the queue in front of
    /// the next one.
    waiting: AtomicUsize,
    /// The provider's call slots (`max_in_flight`): a call holds one until it is answered,
    /// so this worker keeps at most that many connections open to the provider.
    calls: Semaphore,
    in_flight: usize,
}

/// What the limiter is built from, and what the adaptive rate is measured on.
struct Tuning {
    pace: Pace,
    share: f64,
    /// The (rate, burst) of the limiter in use.
    applied: (f64, u32),
    /// When the answers of the last second or so that were not throttles came.
    accepted: VecDeque<Instant>,
    last_throttle: Option<Instant>,
    last_decrease: Option<Instant>,
    last_change: Instant,
    /// Decreases so far, so the coordinator knows whether one happened while it talked to
    /// the database.
    decreases: u64,
    /// The limiter put aside while the share is zero, with its (rate, burst) and jitter.
    parked: Option<((f64, u32), Arc<DefaultDirectRateLimiter>, Duration)>,
}

/// The most answers remembered for measuring (a second's worth at the highest rate).
const MAX_ACCEPTED: usize = 10_000;

/// [`Gate::ready`] did not wait: the provider is paused for `.0` more, longer than a caller
/// waits out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused(pub Duration);

/// A gate's adaptive state, as the coordinator shares it through the database.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shared {
    pub(crate) rate: f64,
    pub(crate) ceiling: f64,
    /// How long ago the last throttle was, if any.
    pub(crate) calm: Option<Duration>,
}

impl Gate {
    pub(crate) fn new(
        rate: Rate,
        burst: NonZeroU32,
        in_flight: NonZeroUsize,
        max_pause: Duration,
        max_wait: Duration,
    ) -> Gate {
        let configured = f64::from(rate.count.get()) / rate.per.as_secs_f64().max(1e-9);
        let pace = Pace::new(configured);
        Gate {
            burst: burst.get(),
            limiter: watch::Sender::new(build(pace.rate, burst.get())),
            tuning: Mutex::new(Tuning {
                pace,
                share: 1.0,
                applied: (pace.rate, burst.get()),
                accepted: VecDeque::new(),
                last_throttle: None,
                last_decrease: None,
                last_change: Instant::now(),
                decreases: 0,
                parked: None,
            }),
            max_pause,
            max_wait,
            pauses: Pauses::default(),
            waits: crate::metrics::wait_histogram(),
            waiting: AtomicUsize::new(0),
            calls: Semaphore::new(in_flight.get()),
            in_flight: in_flight.get(),
        }
    }

    /// How long a caller arriving now would wait, as far as this gate can tell: what is
    /// left of a pause, plus the callers already waiting at this worker's rate (the
    /// provider's whole adaptive rate while this worker waits for its share). A caller that
    /// finds this longer than it is worth holding its request for goes elsewhere (issue 10:
    /// no head-of-line blocking).
    pub(crate) fn backlog(&self) -> Duration {
        let rate = {
            let t = self.tuning();
            if t.applied.0 > 0.0 { t.applied.0 } else { t.pace.rate }
        };
        let queued = self.waiting.load(Ordering::Relaxed) as f64;
        let queue = Duration::try_from_secs_f64(queued / rate.max(1e-9)).unwrap_or(Duration::MAX);
        self.pause_left().unwrap_or_default().saturating_add(queue)
    }

    /// The longest pause a caller of [`Gate::ready`] waits out.
    pub(crate) fn max_wait(&self) -> Duration {
        self.max_wait
    }

    fn tuning(&self) -> std::sync::MutexGuard<'_, Tuning> {
        // Every change under this lock is a few assignments: a panic cannot leave it torn.
        self.tuning.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The provider's adaptive rate, in calls a second for all workers together.
    pub(crate) fn effective_rate(&self) -> f64 {
        self.tuning().pace.rate
    }

    /// Sets this worker's share (0 stops its calls until a share is given).
    pub(crate) fn set_share(&self, share: f64) {
        let share = if share.is_finite() { share.clamp(0.0, 1.0) } else { 0.0 };
        let mut t = self.tuning();
        t.share = share;
        self.apply(&mut t);
    }

    /// The adaptive state to share, and the count of decreases so far.
    pub(crate) fn shared(&self) -> (Shared, u64) {
        let t = self.tuning();
        let shared = Shared {
            rate: t.pace.rate,
            ceiling: t.pace.ceiling,
            calm: t.last_throttle.map(|at| at.elapsed()),
        };
        (shared, t.decreases)
    }

    /// Adopts the rate shared by all workers, unless this worker decreased its own since
    /// `decreases` (that decrease goes to the others on the next renewal).
    pub(crate) fn adopt(&self, shared: Shared, decreases: u64) {
        let mut t = self.tuning();
        if t.decreases != decreases {
            return;
        }
        let now = Instant::now();
        if let Some(calm) = shared.calm
            && t.last_throttle.is_none_or(|at| at.elapsed() > calm)
        {
            t.last_throttle = now.checked_sub(calm);
        }
        let before = t.pace.rate;
        t.pace.ceiling = shared.ceiling.clamp(0.0, t.pace.configured);
        t.pace.rate = shared.rate.clamp(t.pace.configured * 0.01, t.pace.configured);
        if (t.pace.rate - before).abs() > f64::EPSILON {
            t.last_change = now;
            self.apply(&mut t);
        }
    }

    /// Rebuilds the limiter when rate × share moved by more than half a percent, or the
    /// local burst changed. Closing (a share of zero) parks the limiter; reopening with the
    /// same rate and burst (the next drain of a worker alone) takes it back as it was, so a
    /// new drain neither waits a period for its first call nor gets a burst afresh.
    fn apply(&self, t: &mut Tuning) {
        let same = |a: (f64, u32), b: (f64, u32)| a.1 == b.1 && (a.0 - b.0).abs() <= b.0 * 0.005;
        if t.share <= 0.0 {
            if t.applied.1 != 0 {
                let applied = std::mem::replace(&mut t.applied, (0.0, 0));
                self.limiter.send_modify(|l| {
                    t.parked = l.limiter.take().map(|limiter| (applied, limiter, l.jitter));
                    l.generation += 1;
                });
            }
            return;
        }
        let wanted = local(t.pace.rate, self.burst, t.share);
        if same(wanted, t.applied) {
            return;
        }
        t.applied = wanted;
        let fresh = match t.parked.take() {
            Some((parked, limiter, jitter)) if same(wanted, parked) => Limiter {
                limiter: Some(limiter),
                jitter,
                generation: 0,
            },
            _ => {
                let fresh = build(wanted.0, wanted.1);
                if let Some(limiter) = &fresh.limiter {
                    // Spend the new limiter's burst: the old one's budget is what callers had.
                    for _ in 0..wanted.1 {
                        let _ = limiter.check();
                    }
                }
                fresh
            }
        };
        self.limiter.send_modify(|l| {
            l.limiter = fresh.limiter;
            l.jitter = fresh.jitter;
            l.generation += 1;
        });
    }

    /// Records one answer of the provider: a throttle (429, or 503 with `Retry-After`)
    /// lowers the rate to what was accepted over the last second (at most once a second);
    /// rate-limit headers that leave fewer calls than the rate until their reset lower it to
    /// that, and a window with none left pauses the provider until its reset, as a
    /// `Retry-After` would. Other answers count as accepted.
    pub(crate) fn answered(&self, response: &RawResponse, names: &[String]) {
        let now = Instant::now();
        let status = response.status;
        let throttled = status == 429 || (status == 503 && response.retry_after(self.max_pause).is_some());
        let limits = ratelimit::read(&response.headers, names, SystemTime::now(), self.max_pause);
        let mut t = self.tuning();
        while t
            .accepted
            .front()
            .is_some_and(|at| now.duration_since(*at) > Duration::from_secs(1))
        {
            t.accepted.pop_front();
        }
        if throttled {
            t.last_throttle = Some(now);
            if t.last_decrease
                .is_none_or(|at| now.duration_since(at) >= DECREASE_EVERY)
            {
                let accepted = t.accepted.len() as f64 / t.share.max(0.01);
                if t.pace.throttled(accepted) {
                    self.decreased(&mut t, now);
                }
            }
        } else {
            if t.accepted.len() >= MAX_ACCEPTED {
                t.accepted.pop_front();
            }
            t.accepted.push_back(now);
        }
        let Some(limits) = limits else { return };
        if let Some(allowed) = limits.allowed_rate()
            && t.last_decrease
                .is_none_or(|at| now.duration_since(at) >= DECREASE_EVERY)
            && t.pace.capped(allowed)
        {
            self.decreased(&mut t, now);
        }
        drop(t);
        if limits.remaining == Some(0.0)
            && let Some(reset) = limits.reset
        {
            self.pause(reset);
        }
    }

    fn decreased(&self, t: &mut Tuning, now: Instant) {
        t.last_decrease = Some(now);
        t.last_change = now;
        t.decreases += 1;
        self.apply(t);
    }

    /// Applies recovery when its time has come.
    fn recover(&self) {
        let mut t = self.tuning();
        let calm = t.last_throttle.map_or(Duration::MAX, |at| at.elapsed());
        let since_change = t.last_change.elapsed();
        if t.pace.recover(calm, since_change) {
            t.last_change = Instant::now();
            self.apply(&mut t);
        }
    }

    /// How much of a pause is left, if any.
    pub fn pause_left(&self) -> Option<Duration> {
        self.pauses.left()
    }

    /// How long the provider has been paused so far, and how long callers let through
    /// waited here: read by the metrics at scrape time.
    pub(crate) fn paused_so_far(&self) -> Duration {
        self.pauses.so_far()
    }

    pub(crate) fn waits(&self) -> &Histogram {
        &self.waits
    }

    /// Pauses the provider for `wait` from now, at most for the gate's longest pause. A
    /// pause only ever grows: a shorter `Retry-After` from a concurrent call does not cut a
    /// longer one short. Never panics: the end of the pause is computed with checked
    /// arithmetic (and with the cap bounded by the config, it cannot overflow anyway).
    pub(crate) fn pause(&self, wait: Duration) {
        if let Some(until) = Instant::now().checked_add(wait.min(self.max_pause)) {
            self.pauses.extend_to(until);
        }
    }

    /// Waits until the provider is not paused and the rate limit allows one more call; or,
    /// when the provider is paused for longer than a caller waits out (a pause may also
    /// begin while the caller waits for the limiter), returns at once with what is left.
    /// A caller whose limiter was swapped while it waited waits again on the new one.
    pub(crate) async fn ready(&self) -> Result<(), Paused> {
        self.ready_within(self.max_wait).await
    }

    /// As [`Gate::ready`], waiting out a pause only while it is no longer than `max_wait`
    /// (at most the gate's own): a caller that would rather defer its token than hold its
    /// request's slot through a pause says how long it is willing to wait.
    pub(crate) async fn ready_within(&self, max_wait: Duration) -> Result<(), Paused> {
        let max_wait = max_wait.min(self.max_wait);
        let _waiting = Waiting::enter(&self.waiting);
        let arrived = Instant::now();
        let mut changes = self.limiter.subscribe();
        loop {
            if let Some(left) = self.pause_left() {
                if left > max_wait {
                    return Err(Paused(left));
                }
                tokio::time::sleep(left).await;
                continue;
            }
            self.recover();
            let current = changes.borrow_and_update().clone();
            let Some(limiter) = current.limiter else {
                // No share yet: wait for one (the coordinator gives it within a renewal).
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            };
            limiter.until_ready_with_jitter(Jitter::up_to(current.jitter)).await;
            if self.limiter.borrow().generation != current.generation {
                continue;
            }
            // A pause may have begun while this caller waited for the limiter.
            if self.pause_left().is_none() {
                self.waits.observe(arrived.elapsed().as_secs_f64());
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
