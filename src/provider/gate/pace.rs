//! Adaptive pacing: the rate a provider really accepts, found from its answers. A configured
//! rate that is too high costs more than its excess: every call past the provider's limit
//! comes back 429 with a pause, and the drain spends its time paused instead of calling
//! (a drain configured 1.67× above the limit ran at about 60% of what the provider accepts).
//!
//! The controller is additive increase, multiplicative decrease with a measured floor:
//! - a throttle (429, or 503 with `Retry-After`) sets the rate to what the provider accepted
//!   over the last second, less a small margin, and never cuts deeper than half the rate
//!   nor less than 10% (so one 429 caused by a burst does not collapse the rate); at most
//!   one decrease a second, as one over-fast second brings a flurry of 429s;
//! - headers that say how much is left before a reset cap the rate to what that allows;
//! - without throttles the rate climbs back: quickly (5% of the configured rate every 2 s)
//!   while below the accepted rate last measured, then, once 10 s have passed calmly,
//!   probing above it slowly (2% every 3 s), so a provider that raised its limit is found
//!   again, but a fixed limit costs one throttle about every 15 s. Never above the configured
//!   rate: that stays the operator's promise to the provider.
//!
//! Rates here are the provider's whole rate, for all workers together; a worker paces at
//! its share of it (see `gate.rs`). The rules are pure (durations in, rate out) so that the
//! coordinator can apply the same ones to the rate shared in the database.

use std::time::Duration;

/// What a throttle leaves of the accepted rate: a little under it, so the next second
/// stays within the limit despite jitter.
const MARGIN: f64 = 0.97;
/// A throttle cuts at least this much of the current rate...
const MIN_CUT: f64 = 0.9;
/// ...and at most this much.
const MAX_CUT: f64 = 0.5;
/// At most one decrease in this long.
pub(crate) const DECREASE_EVERY: Duration = Duration::from_secs(1);
/// The slowest a provider is ever paced, as a fraction of its configured rate.
const FLOOR: f64 = 0.01;
/// Climbing back below the last accepted rate: this fraction of the configured rate...
const CLIMB_STEP: f64 = 0.05;
/// ...every this long.
const CLIMB_EVERY: Duration = Duration::from_secs(2);
/// Probing above the last accepted rate: after this long without a throttle...
const PROBE_AFTER: Duration = Duration::from_secs(10);
/// ...this fraction of the configured rate...
const PROBE_STEP: f64 = 0.02;
/// ...every this long.
const PROBE_EVERY: Duration = Duration::from_secs(3);

/// One provider's adaptive rate, in calls a second for all workers together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pace {
    pub(crate) configured: f64,
    pub(crate) rate: f64,
    /// The accepted rate measured at the last throttle (the configured rate before any).
    pub(crate) ceiling: f64,
}

impl Pace {
    pub(crate) fn new(configured: f64) -> Pace {
        let configured = if configured.is_finite() && configured > 0.0 {
            configured
        } else {
            1.0
        };
        Pace {
            configured,
            rate: configured,
            ceiling: configured,
        }
    }

    fn floor(&self) -> f64 {
        self.configured * FLOOR
    }

    /// A throttle, with the rate the provider accepted over the last second (`accepted`,
    /// for all workers). Returns whether the rate changed; the caller keeps to one decrease
    /// every [`DECREASE_EVERY`].
    pub(crate) fn throttled(&mut self, accepted: f64) -> bool {
        let accepted = if accepted.is_finite() {
            accepted.max(0.0)
        } else {
            self.rate
        };
        let target = (accepted * MARGIN).min(self.rate * MIN_CUT).max(self.rate * MAX_CUT);
        self.ceiling = accepted.max(self.floor()).min(self.configured);
        self.set(target)
    }

    /// Headers said that `allowed` calls a second are all that is left until the reset:
    /// the rate comes down to that (never below the floor), without moving the ceiling.
    pub(crate) fn capped(&mut self, allowed: f64) -> bool {
        if !allowed.is_finite() || allowed >= self.rate {
            return false;
        }
        self.set(allowed)
    }

    /// Recovery after `calm` without a throttle and `since_change` since the rate last
    /// moved. Returns whether the rate changed.
    pub(crate) fn recover(&mut self, calm: Duration, since_change: Duration) -> bool {
        if self.rate >= self.configured {
            return false;
        }
        let plateau = self.ceiling * MARGIN;
        let next = if self.rate < plateau {
            if since_change < CLIMB_EVERY {
                return false;
            }
            (self.rate + self.configured * CLIMB_STEP).min(plateau)
        } else {
            if calm < PROBE_AFTER || since_change < PROBE_EVERY {
                return false;
            }
            self.rate + self.configured * PROBE_STEP
        };
        self.set(next)
    }

    fn set(&mut self, rate: f64) -> bool {
        let rate = if rate.is_finite() { rate } else { self.configured };
        let rate = rate.clamp(self.floor(), self.configured);
        let changed = (rate - self.rate).abs() > f64::EPSILON * self.configured;
        self.rate = rate;
        changed
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_throttle_sets_the_rate_just_under_what_was_accepted() {
        let mut p = Pace::new(66.7);
        assert!(p.throttled(40.0));
        assert!((p.rate - 38.8).abs() < 1e-9, "{p:?}");
        assert_eq!(p.ceiling, 40.0);
    }

    #[test]
    fn a_throttle_cuts_by_at_least_a_tenth_and_at_most_a_half() {
        let mut p = Pace::new(100.0);
        p.throttled(100.0);
        assert!((p.rate - 90.0).abs() < 1e-9, "{p:?}");
        p.throttled(0.0);
        assert!((p.rate - 45.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn recovery_climbs_to_the_plateau_then_probes_slowly_and_stops_at_the_configured_rate() {
        let mut p = Pace::new(100.0);
        p.throttled(60.0);
        p.throttled(60.0);
        let low = p.rate;
        assert!((low - 58.2 * 0.9).abs() < 1e-9, "{p:?}");
        assert!(!p.recover(S, S), "not before 2 s");
        assert!(p.recover(S, 2 * S));
        assert!((p.rate - (low + 5.0)).abs() < 1e-9);
        while p.recover(S, 2 * S) {}
        assert!((p.rate - 60.0 * MARGIN).abs() < 1e-9, "plateau {p:?}");
        assert!(!p.recover(9 * S, 60 * S), "no probing before 10 s of calm");
        assert!(!p.recover(10 * S, 2 * S), "nor more often than every 3 s");
        assert!(p.recover(10 * S, 3 * S));
        assert!((p.rate - (58.2 + 2.0)).abs() < 1e-9);
        while p.recover(60 * S, 60 * S) {}
        assert_eq!(p.rate, 100.0);
    }

    #[test]
    fn headers_cap_the_rate_without_moving_the_ceiling() {
        let mut p = Pace::new(50.0);
        assert!(p.capped(20.0));
        assert_eq!((p.rate, p.ceiling), (20.0, 50.0));
        assert!(!p.capped(30.0), "a cap never raises the rate");
        assert!(p.capped(0.0));
        assert_eq!(p.rate, 0.5, "never below the floor");
    }

    proptest! {
        /// Whatever the answers, the rate stays within the floor and the configured rate.
        #[test]
        fn the_rate_stays_within_its_bounds(
            configured in 0.001f64..10_000.0,
            steps in proptest::collection::vec((0u8..3, proptest::num::f64::ANY, 0u64..100), 0..50),
        ) {
            let mut p = Pace::new(configured);
            for (kind, value, secs) in steps {
                match kind {
                    0 => { p.throttled(value); }
                    1 => { p.capped(value); }
                    _ => { p.recover(Duration::from_secs(secs), Duration::from_secs(secs)); }
                }
                prop_assert!(p.rate >= configured * FLOOR * 0.999_999 && p.rate <= configured, "{:?}", p);
            }
        }
    }
}
