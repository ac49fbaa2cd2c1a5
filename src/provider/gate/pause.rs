//! A provider's pause (a `Retry-After`, or a rate-limit window with nothing left): until when
//! it lasts, and how long the provider has been paused so far, for
//! `offboard_provider_paused_seconds_total`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Default)]
pub(super) struct Pauses(Mutex<State>);

#[derive(Default)]
struct State {
    until: Option<Instant>,
    /// The length of every pause set so far, the current one whole; overlaps counted once.
    booked: Duration,
}

impl State {
    fn left(&self, now: Instant) -> Option<Duration> {
        self.until?.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

impl Pauses {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every change under this lock is two assignments: a panic cannot leave it torn.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How much of the pause is left, if any.
    pub(super) fn left(&self) -> Option<Duration> {
        self.lock().left(Instant::now())
    }

    /// Pauses until `until`, unless a pause already lasts that long: a pause only grows.
    pub(super) fn extend_to(&self, until: Instant) {
        let now = Instant::now();
        let mut state = self.lock();
        let from = match state.until {
            Some(current) if current >= until => return,
            Some(current) => current.max(now),
            None => now,
        };
        state.booked = state.booked.saturating_add(until.saturating_duration_since(from));
        state.until = Some(until);
    }

    /// How long the provider has been paused until now: the pauses set so far, less what is
    /// left of the current one. Never decreases.
    pub(super) fn so_far(&self) -> Duration {
        let state = self.lock();
        let left = state.left(Instant::now()).unwrap_or_default();
        state.booked.saturating_sub(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Paused time grows as the pause passes, counts an overlap once, and not a shorter
    /// pause inside a longer one.
    #[tokio::test(start_paused = true)]
    async fn paused_time_counts_what_has_passed_and_overlaps_once() {
        let pauses = Pauses::default();
        assert_eq!(pauses.so_far(), Duration::ZERO);
        pauses.extend_to(Instant::now() + 4 * S);
        assert_eq!(pauses.so_far(), Duration::ZERO);
        tokio::time::advance(S).await;
        assert_eq!(pauses.so_far(), S);
        pauses.extend_to(Instant::now() + 2 * S);
        assert_eq!(pauses.left(), Some(3 * S), "a shorter pause does not cut a longer one");
        pauses.extend_to(Instant::now() + 5 * S);
        tokio::time::advance(10 * S).await;
        assert_eq!(pauses.so_far(), 6 * S, "1 s + 5 s, the overlap once");
        assert_eq!(pauses.left(), None);
        pauses.extend_to(Instant::now() + 2 * S);
        tokio::time::advance(10 * S).await;
        assert_eq!(pauses.so_far(), 8 * S, "the calm between pauses is not counted");
    }
}
