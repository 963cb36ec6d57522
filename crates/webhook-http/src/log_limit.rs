//! Bounds how often one kind of server error is logged: its first occurrence at once, then at
//! most one line per interval, which says how many were left out since the last line. A store
//! that is down fails every request; without a bound, each would write an ERROR line.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with one occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDecision {
    /// Log it; `left_out` occurrences of the same kind were not logged since the last line.
    Log { left_out: u64 },
    /// Count it, do not log it.
    LeaveOut,
}

#[derive(Debug)]
struct Window {
    logged_at: Instant,
    left_out: u64,
}

/// One window per kind (a `&'static str` such as the log line's context). Pure: the caller
/// passes the time, so tests drive it with a manual clock.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    windows: Mutex<HashMap<&'static str, Window>>,
}

impl LogLimiter {
    /// At most one line per kind and `interval`, beyond the first.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The interval between two lines of one kind.
    pub const fn interval(&self) -> Duration {
        self.interval
    }

    /// Decides whether an occurrence of `kind` at `now` is logged.
    pub fn decide(&self, kind: &'static str, now: Instant) -> LogDecision {
        // A poisoned lock only means a panic elsewhere; the counts are still usable.
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match windows.get_mut(kind) {
            Some(window) if now.saturating_duration_since(window.logged_at) < self.interval => {
                window.left_out += 1;
                LogDecision::LeaveOut
            }
            Some(window) => {
                let left_out = window.left_out;
                *window = Window {
                    logged_at: now,
                    left_out: 0,
                };
                LogDecision::Log { left_out }
            }
            None => {
                windows.insert(
                    kind,
                    Window {
                        logged_at: now,
                        left_out: 0,
                    },
                );
                LogDecision::Log { left_out: 0 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_one_line_per_interval_with_the_count() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |millis: u64| start + Duration::from_millis(millis);
        assert_eq!(
            limiter.decide("store", at(0)),
            LogDecision::Log { left_out: 0 }
        );
        for millis in [1, 500, 9_999] {
            assert_eq!(limiter.decide("store", at(millis)), LogDecision::LeaveOut);
        }
        // Another kind has its own window; a quiet spell logs the next one, with what was left
        // out before it.
        let expected = [
            ("other", 9_999, LogDecision::Log { left_out: 0 }),
            ("store", 10_000, LogDecision::Log { left_out: 3 }),
            ("store", 10_001, LogDecision::LeaveOut),
            ("store", 60_000, LogDecision::Log { left_out: 1 }),
            ("store", 70_000, LogDecision::Log { left_out: 0 }),
        ];
        for (kind, millis, decision) in expected {
            assert_eq!(
                limiter.decide(kind, at(millis)),
                decision,
                "{kind} at {millis} ms"
            );
        }
    }

    #[test]
    fn a_clock_that_goes_back_does_not_unblock() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(
            limiter.decide("store", start + Duration::from_secs(100)),
            LogDecision::Log { left_out: 0 }
        );
        assert_eq!(
            limiter.decide("store", start + Duration::from_secs(50)),
            LogDecision::LeaveOut
        );
    }
}
