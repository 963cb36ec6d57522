//! [`CoalescingCounter`]: flood rejections counted in memory and written as one log entry per
//! webhook, reason and test flag.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use webhook_domain::model::{
    CoalescedReason, CoalescedRejection, Invocation, InvocationId, InvocationOutcome,
    OrganizationId, RequestRecord, Timestamp, WebhookId,
};
use webhook_domain::ports::{Entropy, InvocationLog, RejectionCounter, StoreError};
use webhook_domain::service::time_ordered_id;

/// What one log entry is about: the same webhook, reason and test flag (and, for duplicates,
/// the same first request).
type Key = (WebhookId, CoalescedReason, bool, Option<InvocationId>);

/// Rejections of one key since the last drain.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tally {
    organization_id: OrganizationId,
    count: u32,
    first_at: Timestamp,
    last_at: Timestamp,
    last_source_ip: Option<IpAddr>,
    /// The first request's record.
    record: RequestRecord,
}

impl Tally {
    /// Adds `other`'s rejections; the earlier of the two keeps its record, the later its
    /// source address.
    fn merge(&mut self, other: Self) {
        self.count = self.count.saturating_add(other.count);
        if other.first_at < self.first_at {
            self.first_at = other.first_at;
            self.record = other.record;
        }
        if other.last_at >= self.last_at {
            self.last_at = other.last_at;
            self.last_source_ip = other.last_source_ip;
        }
    }
}

/// The [`RejectionCounter`] of one node. Counting is a map update, so a flood of requests to a
/// deleted or disabled webhook, over a quota or with a wrong secret costs no write; [`CoalescingCounter::flush_into`], run periodically
/// (say every 10 seconds) and at shutdown, writes one rejected invocation per webhook, reason
/// and test flag, whose `repeat_count` says how many requests it stands for.
///
/// Cheap to clone; clones share the counts, so ingest can count while a background task
/// flushes.
#[derive(Debug)]
pub struct CoalescingCounter<E> {
    inner: Arc<Inner<E>>,
}

#[derive(Debug)]
struct Inner<E> {
    tallies: DashMap<Key, Tally>,
    entropy: E,
}

impl<E> Clone for CoalescingCounter<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E: Entropy> CoalescingCounter<E> {
    /// A counter with nothing counted; `entropy` makes the ids of the entries it writes.
    pub fn new(entropy: E) -> Self {
        Self {
            inner: Arc::new(Inner {
                tallies: DashMap::new(),
                entropy,
            }),
        }
    }

    /// How many entries a drain would produce now.
    pub fn pending(&self) -> usize {
        self.inner.tallies.len()
    }

    /// Takes every count and turns each into a rejected invocation, oldest first: the status
    /// and code of its reason (410, 403, 429 or 401), `repeat_count` the number of requests,
    /// `received_at` the first one's time and record, `source_ip` the last one's, no payload.
    pub fn drain(&self) -> Vec<Invocation> {
        self.take()
            .into_iter()
            .map(|(key, tally)| self.invocation(key, &tally))
            .collect()
    }

    /// Writes what [`CoalescingCounter::drain`] gives into `log`, one entry at a time. Returns
    /// how many entries were written.
    ///
    /// # Errors
    /// The first error of `log`; the counts of the entries not written are put back, so the
    /// next flush writes them.
    pub async fn flush_into(&self, log: &impl InvocationLog) -> Result<usize, StoreError> {
        let taken = self.take();
        let mut written = 0;
        let mut pending = taken.into_iter();
        while let Some((key, tally)) = pending.next() {
            let invocation = self.invocation(key, &tally);
            if let Err(e) = log.record_invocation(&invocation, None).await {
                self.put_back(key, tally);
                for (key, tally) in pending {
                    self.put_back(key, tally);
                }
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }

    /// Removes every tally, oldest first.
    fn take(&self) -> Vec<(Key, Tally)> {
        let keys: Vec<Key> = self
            .inner
            .tallies
            .iter()
            .map(|entry| *entry.key())
            .collect();
        let mut taken: Vec<(Key, Tally)> = keys
            .into_iter()
            .filter_map(|key| self.inner.tallies.remove(&key))
            .collect();
        taken.sort_by_key(|(_, tally)| tally.first_at);
        taken
    }

    fn put_back(&self, key: Key, tally: Tally) {
        match self.inner.tallies.entry(key) {
            Entry::Occupied(mut newer) => newer.get_mut().merge(tally),
            Entry::Vacant(vacant) => {
                vacant.insert(tally);
            }
        }
    }

    fn invocation(
        &self,
        (webhook_id, reason, test, duplicate_of): Key,
        tally: &Tally,
    ) -> Invocation {
        let (http_status, code) = reason.answer();
        let (outcome, error_code) = match reason {
            CoalescedReason::Duplicate => (InvocationOutcome::Duplicate, None),
            _ => (InvocationOutcome::Rejected, Some(code.to_owned())),
        };
        Invocation {
            id: InvocationId::from_uuid(time_ordered_id(&self.inner.entropy, tally.first_at)),
            organization_id: tally.organization_id,
            webhook_id,
            received_at: tally.first_at,
            source_ip: tally.last_source_ip,
            event_type: None,
            payload: None,
            outcome,
            http_status,
            error_code,
            task_id: None,
            repeat_count: tally.count,
            test,
            target_response: None,
            delivery_id: None,
            duplicate_of,
            instruction_fallback: None,
            request: Some(tally.record.clone()),
            replay_of: None,
        }
    }
}

impl<E: Entropy> RejectionCounter for CoalescingCounter<E> {
    fn count(&self, rejection: CoalescedRejection, record: impl FnOnce() -> RequestRecord) {
        let key = (
            rejection.webhook_id,
            rejection.reason,
            rejection.test,
            rejection.duplicate_of,
        );
        match self.inner.tallies.entry(key) {
            // A repeat: counted, its record never made.
            Entry::Occupied(mut tally) => {
                let tally = tally.get_mut();
                tally.count = tally.count.saturating_add(1);
                if rejection.at < tally.first_at {
                    // Out of order: this one came first.
                    tally.first_at = rejection.at;
                    tally.record = record();
                }
                if rejection.at >= tally.last_at {
                    tally.last_at = rejection.at;
                    tally.last_source_ip = rejection.source_ip;
                }
            }
            Entry::Vacant(vacant) => {
                vacant.insert(Tally {
                    organization_id: rejection.organization_id,
                    count: 1,
                    first_at: rejection.at,
                    last_at: rejection.at,
                    last_source_ip: rejection.source_ip,
                    record: record(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicU8, Ordering};

    use uuid::Uuid;

    use super::*;

    #[derive(Debug, Default)]
    struct Counting(AtomicU8);

    impl Entropy for Counting {
        fn fill(&self, dest: &mut [u8]) {
            for byte in dest {
                *byte = self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn rejection(webhook: u128, reason: CoalescedReason, at: i64, ip: u8) -> CoalescedRejection {
        CoalescedRejection {
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(webhook)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(9)),
            reason,
            source_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, ip))),
            at: Timestamp::from_unix_micros(at),
            test: false,
            duplicate_of: None,
        }
    }

    #[test]
    fn duplicates_are_entries_of_their_own_naming_the_first_request() {
        let counter = CoalescingCounter::new(Counting::default());
        let first = InvocationId::from_uuid(Uuid::from_u128(77));
        let other = InvocationId::from_uuid(Uuid::from_u128(78));
        let duplicate = |of, at| CoalescedRejection {
            duplicate_of: Some(of),
            ..rejection(1, CoalescedReason::Duplicate, at, 1)
        };
        counter.count(duplicate(first, 10), RequestRecord::default);
        counter.count(duplicate(first, 11), RequestRecord::default);
        counter.count(duplicate(other, 12), RequestRecord::default);
        let mut drained = counter.drain();
        drained.sort_by_key(|i| i.received_at);
        assert_eq!(drained.len(), 2, "one entry per first request");
        assert_eq!(drained[0].outcome, InvocationOutcome::Duplicate);
        assert_eq!(drained[0].duplicate_of, Some(first));
        assert_eq!(drained[0].repeat_count, 2);
        assert_eq!(drained[0].http_status, 200);
        assert_eq!(drained[0].error_code, None);
        assert_eq!(drained[1].duplicate_of, Some(other));
    }

    #[test]
    fn one_entry_per_webhook_and_reason() {
        let counter = CoalescingCounter::new(Counting::default());
        for request in [
            rejection(1, CoalescedReason::RateLimited, 20, 1),
            rejection(1, CoalescedReason::RateLimited, 10, 2),
            rejection(1, CoalescedReason::RateLimited, 30, 3),
            rejection(1, CoalescedReason::Disabled, 40, 4),
            rejection(2, CoalescedReason::RateLimited, 5, 5),
            CoalescedRejection {
                test: true,
                ..rejection(2, CoalescedReason::RateLimited, 6, 6)
            },
        ] {
            counter.count(request, RequestRecord::default);
        }
        assert_eq!(counter.pending(), 4);
        let drained = counter.drain();
        assert_eq!(counter.pending(), 0);
        let summary: Vec<_> = drained
            .iter()
            .map(|i| {
                (
                    i.received_at.unix_micros(),
                    i.http_status,
                    i.error_code.as_deref(),
                    i.repeat_count,
                    i.source_ip,
                    i.test,
                )
            })
            .collect();
        let ip = |n| Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)));
        assert_eq!(
            summary,
            vec![
                (5, 429, Some("rate_limited"), 1, ip(5), false),
                (6, 429, Some("rate_limited"), 1, ip(6), true),
                (10, 429, Some("rate_limited"), 3, ip(3), false),
                (40, 403, Some("webhook_disabled"), 1, ip(4), false),
            ]
        );
        assert!(
            drained
                .iter()
                .all(|i| i.outcome == InvocationOutcome::Rejected
                    && i.payload.is_none()
                    && i.task_id.is_none()
                    && i.id.as_uuid().get_version_num() == 7)
        );
        assert!(counter.drain().is_empty());
    }

    /// A record naming the request it was made for, in its only header.
    fn record_of(n: u32) -> RequestRecord {
        RequestRecord {
            headers: vec![("x-request".to_owned(), n.to_string())],
            ..RequestRecord::default()
        }
    }

    #[test]
    fn an_entry_keeps_the_first_request_record_made_once() {
        let counter = CoalescingCounter::new(Counting::default());
        let made = std::cell::Cell::new(0);
        let count = |at: i64, n: u32| {
            counter.count(rejection(1, CoalescedReason::InvalidSecret, at, 1), || {
                made.set(made.get() + 1);
                record_of(n)
            });
        };
        count(20, 1);
        for n in 2..100 {
            count(30, n);
        }
        assert_eq!(made.get(), 1, "repeats make no record");
        // Out of order: an earlier request's record replaces the later one's.
        count(10, 100);
        assert_eq!(made.get(), 2);
        let drained = counter.drain();
        assert_eq!(drained.len(), 1);
        assert_eq!(drained[0].repeat_count, 100);
        assert_eq!(drained[0].request, Some(record_of(100)));

        // Put back after a failed write, a drained entry merges with newer counts and keeps
        // the older record.
        let older = Tally {
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(9)),
            count: 3,
            first_at: Timestamp::from_unix_micros(1),
            last_at: Timestamp::from_unix_micros(2),
            last_source_ip: None,
            record: record_of(1),
        };
        let key = (
            WebhookId::from_uuid(Uuid::from_u128(1)),
            CoalescedReason::InvalidSecret,
            false,
            None,
        );
        counter.count(rejection(1, CoalescedReason::InvalidSecret, 50, 1), || {
            record_of(50)
        });
        counter.put_back(key, older);
        let drained = counter.drain();
        assert_eq!(drained[0].repeat_count, 4);
        assert_eq!(drained[0].request, Some(record_of(1)));
    }
}
