//! The wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use webhook_domain::model::Timestamp;
use webhook_domain::ports::Clock;

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Timestamp::from_unix_micros(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_after_2025() {
        assert!(SystemClock.now() > Timestamp::parse_rfc3339("2025-01-01T00:00:00Z").unwrap());
    }
}
