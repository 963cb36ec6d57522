//! A clock that moves only when told to, for tests and simulations.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use webhook_domain::model::Timestamp;
use webhook_domain::ports::Clock;

/// A [`Clock`] that shows a set instant. Clones share the instant, so a test can hand one clone
/// to a use case and move time with another.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> Self {
        Self(Arc::new(AtomicI64::new(now.unix_micros())))
    }

    /// Shows `now` from here on (it may go backwards).
    pub fn set(&self, now: Timestamp) {
        self.0.store(now.unix_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`, saturating at the far future.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |micros| {
                Some(micros.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_instant() {
        let clock = ManualClock::new(Timestamp::from_unix_micros(5));
        let other = clock.clone();
        other.advance(Duration::from_micros(10));
        assert_eq!(clock.now(), Timestamp::from_unix_micros(15));
        clock.set(Timestamp::from_unix_micros(1));
        assert_eq!(other.now(), Timestamp::from_unix_micros(1));
        clock.advance(Duration::MAX);
        assert_eq!(other.now(), Timestamp::from_unix_micros(i64::MAX));
    }
}
