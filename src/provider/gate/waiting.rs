//! The count of callers waiting at a gate, kept right however a caller leaves.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts a caller as waiting for as long as it is inside [`super::Gate::slot`] or
/// [`super::Gate::ready_within`], however it leaves (let through, paused, out of time, or
/// dropped by shutdown).
pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub(super) fn enter(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
