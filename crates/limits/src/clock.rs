//! Injected time source: the engine never reads the wall clock itself, so tests drive time by hand.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

#[cfg(test)]
mod tests;

/// Where the limits engine gets "now" from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system wall clock (what production uses).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Shared between threads through an `Arc`.
#[derive(Debug)]
pub struct ManualClock {
    /// Unix nanoseconds: an `i64` covers 1677..2262, far beyond any window we care about.
    nanos: AtomicI64,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: Timestamp) -> Self {
        Self { nanos: AtomicI64::new(timestamp_nanos(at)) }
    }

    /// Moves the clock to `at` (backwards is allowed: it models a wall-clock step).
    pub fn set(&self, at: Timestamp) {
        self.nanos.store(timestamp_nanos(at), Ordering::SeqCst);
    }

    /// Moves the clock forward (or backward, for a negative duration) by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let delta = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.nanos.fetch_add(delta, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        nanos_timestamp(self.nanos.load(Ordering::SeqCst))
    }
}

/// Unix nanoseconds of `at`, saturated to the `i64` range (years 1677..2262).
pub(crate) fn timestamp_nanos(at: Timestamp) -> i64 {
    i64::try_from(at.as_nanosecond()).unwrap_or(if at.as_second() < 0 { i64::MIN } else { i64::MAX })
}

/// The instant `nanos` after the Unix epoch. Every `i64` is inside jiff's range.
pub(crate) fn nanos_timestamp(nanos: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(Timestamp::UNIX_EPOCH)
}
