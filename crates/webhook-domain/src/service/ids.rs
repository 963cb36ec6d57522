//! Identifier generation from the [`Entropy`] port.

use uuid::{Builder, Uuid};

use crate::model::Timestamp;
use crate::ports::Entropy;

/// A random (v4) UUID, for ids that act as capabilities (webhook URLs).
pub fn random_id(entropy: &impl Entropy) -> Uuid {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    Builder::from_random_bytes(bytes).into_uuid()
}

/// A time-ordered (v7) UUID, for log entries and tasks: new rows land at the end of indexes.
pub fn time_ordered_id(entropy: &impl Entropy, now: Timestamp) -> Uuid {
    let mut bytes = [0u8; 10];
    entropy.fill(&mut bytes);
    let millis = u64::try_from(now.unix_micros().div_euclid(1_000)).unwrap_or(0);
    Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(std::sync::atomic::AtomicU8);

    impl Entropy for Counter {
        fn fill(&self, dest: &mut [u8]) {
            for byte in dest {
                *byte = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn versions_and_order() {
        let entropy = Counter(0.into());
        assert_eq!(random_id(&entropy).get_version_num(), 4);
        let early = time_ordered_id(&entropy, Timestamp::from_unix_micros(1_000_000));
        let late = time_ordered_id(&entropy, Timestamp::from_unix_micros(2_000_000));
        assert_eq!(early.get_version_num(), 7);
        assert!(early < late);
    }
}
