//! The rate-limit policy: a sliding window of one minute, kept as 61 one-second buckets.
//!
//! The whole quota may arrive at once; after that, requests are admitted as earlier ones leave
//! the window. A request is counted against the buckets of the last 61 seconds (the current
//! second and the 60 before it), so in **any** 60-second interval, however it is aligned, no
//! more than the quota is admitted; the price is that a slot frees up to one second late. State
//! per key is a fixed 256 bytes whatever the quota, and every decision is O(1) amortized.
//!
//! A request is admitted only if both the webhook's and the organization's windows admit it; a
//! denied request is charged to neither.

use std::time::Duration;

use crate::model::{RatePerMinute, Timestamp};

const BUCKETS: usize = 61;
// BUCKETS as the bucket-index type; 61 fits every integer type.
const BUCKETS_I64: i64 = 61;
const MICROS_PER_BUCKET: i64 = 1_000_000;

/// Requests admitted in each of the last 61 one-second buckets of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    counts: [u32; BUCKETS],
    /// Index (seconds since the epoch) of the newest bucket.
    newest: i64,
    /// Sum of `counts`.
    total: u32,
}

/// Which quota refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateScope {
    Webhook,
    Organization,
}

impl RateScope {
    /// The scope's name in problem details.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Organization => "organization",
        }
    }
}

/// What the `RateLimit-*` headers report: the quota closest to exhaustion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: u32,
    /// Requests still admitted right now.
    pub remaining: u32,
    /// Time until the window holds no request at all.
    pub reset_after: Duration,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Admitted and charged to both windows.
    Admitted(RateStatus),
    /// Refused and charged to neither.
    Denied {
        scope: RateScope,
        /// Time until this request would be admitted, if nothing else arrives meanwhile.
        retry_after: Duration,
        status: RateStatus,
    },
}

fn bucket_of(now: Timestamp) -> i64 {
    now.unix_micros().div_euclid(MICROS_PER_BUCKET)
}

fn slot(bucket: i64) -> usize {
    // rem_euclid by 61 is in 0..61, which always fits usize.
    usize::try_from(bucket.rem_euclid(BUCKETS_I64)).unwrap_or(0)
}

fn micros_until(bucket_start: i64, now: Timestamp) -> Duration {
    let at = bucket_start.saturating_mul(MICROS_PER_BUCKET);
    Timestamp::from_unix_micros(at).since(now)
}

impl SlidingWindow {
    /// A window with nothing admitted yet, positioned at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            counts: [0; BUCKETS],
            newest: bucket_of(now),
            total: 0,
        }
    }

    /// Requests counted in the window.
    pub const fn total(&self) -> u32 {
        self.total
    }

    /// Moves the window to `now`, dropping buckets that left it. A clock that went backwards
    /// leaves the window where it is, so such requests count in the newest bucket.
    pub fn advance(&mut self, now: Timestamp) {
        let bucket = bucket_of(now);
        if bucket <= self.newest {
            return;
        }
        if bucket - self.newest >= BUCKETS_I64 {
            self.counts = [0; BUCKETS];
            self.total = 0;
        } else {
            for b in self.newest + 1..=bucket {
                let expired = std::mem::take(&mut self.counts[slot(b)]);
                self.total -= expired;
            }
        }
        self.newest = bucket;
    }

    /// Whether the window is empty at `now`: its state can be forgotten.
    pub fn is_idle(&self, now: Timestamp) -> bool {
        self.total == 0 || bucket_of(now) - self.newest >= BUCKETS_I64
    }

    fn status(&self, quota: RatePerMinute, now: Timestamp) -> RateStatus {
        let newest_used = (0..BUCKETS_I64)
            .map(|age| self.newest - age)
            .find(|b| self.counts[slot(*b)] > 0);
        RateStatus {
            limit: quota.get(),
            remaining: quota.get().saturating_sub(self.total),
            reset_after: newest_used.map_or(Duration::ZERO, |b| micros_until(b + BUCKETS_I64, now)),
        }
    }

    /// For a full window: time until enough requests leave it for one more to fit.
    fn retry_after(&self, quota: RatePerMinute, now: Timestamp) -> Duration {
        let must_leave = self.total - quota.get() + 1;
        let mut left = 0;
        for b in self.newest - (BUCKETS_I64 - 1)..=self.newest {
            left += self.counts[slot(b)];
            if left >= must_leave {
                return micros_until(b + BUCKETS_I64, now);
            }
        }
        micros_until(self.newest + BUCKETS_I64, now)
    }

    fn admits(&self, quota: RatePerMinute) -> bool {
        self.total < quota.get()
    }

    fn charge(&mut self) {
        self.counts[slot(self.newest)] += 1;
        self.total += 1;
    }
}

/// Decides one request against a webhook's and its organization's windows, charging both only
/// when both admit it. Pure: the outcome depends only on the arguments.
pub fn decide(
    webhook: &mut SlidingWindow,
    webhook_quota: RatePerMinute,
    organization: &mut SlidingWindow,
    organization_quota: RatePerMinute,
    now: Timestamp,
) -> RateDecision {
    let verdict = peek(
        webhook,
        webhook_quota,
        organization,
        organization_quota,
        now,
    );
    if let RateDecision::Denied { .. } = verdict {
        return verdict;
    }
    webhook.charge();
    organization.charge();
    RateDecision::Admitted(closest_to_exhaustion(
        webhook.status(webhook_quota, now),
        organization.status(organization_quota, now),
    ))
}

/// What [`decide`] would answer now, charging neither window: ingest asks this before it knows
/// whether the request is authentic, so that a request that fails authentication consumes no
/// quota. Moving the windows to `now` changes no later decision.
pub fn peek(
    webhook: &mut SlidingWindow,
    webhook_quota: RatePerMinute,
    organization: &mut SlidingWindow,
    organization_quota: RatePerMinute,
    now: Timestamp,
) -> RateDecision {
    webhook.advance(now);
    organization.advance(now);
    if !webhook.admits(webhook_quota) {
        return RateDecision::Denied {
            scope: RateScope::Webhook,
            retry_after: webhook.retry_after(webhook_quota, now),
            status: webhook.status(webhook_quota, now),
        };
    }
    if !organization.admits(organization_quota) {
        return RateDecision::Denied {
            scope: RateScope::Organization,
            retry_after: organization.retry_after(organization_quota, now),
            status: organization.status(organization_quota, now),
        };
    }
    RateDecision::Admitted(closest_to_exhaustion(
        webhook.status(webhook_quota, now),
        organization.status(organization_quota, now),
    ))
}

/// The status the `RateLimit-*` headers report: the quota with fewer requests left.
fn closest_to_exhaustion(webhook: RateStatus, organization: RateStatus) -> RateStatus {
    if organization.remaining < webhook.remaining {
        organization
    } else {
        webhook
    }
}

/// `duration` in whole seconds, rounded up: how a wait is announced (`Retry-After`, the
/// `RateLimit-Reset` header, a refusal's detail).
pub fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn rate(n: u32) -> RatePerMinute {
        RatePerMinute::new(n).unwrap()
    }

    fn at_secs(s: f64) -> Timestamp {
        #[expect(clippy::cast_possible_truncation, reason = "test instants are small")]
        Timestamp::from_unix_micros((s * 1e6) as i64)
    }

    #[test]
    fn whole_quota_at_once_then_refill_after_the_window() {
        let now = at_secs(1000.5);
        let (mut w, mut o) = (SlidingWindow::new(now), SlidingWindow::new(now));
        for i in 0..3 {
            match decide(&mut w, rate(3), &mut o, rate(100), now) {
                RateDecision::Admitted(status) => assert_eq!(status.remaining, 2 - i),
                denied @ RateDecision::Denied { .. } => panic!("request {i}: {denied:?}"),
            }
        }
        let RateDecision::Denied {
            scope,
            retry_after,
            status,
        } = decide(&mut w, rate(3), &mut o, rate(100), now)
        else {
            panic!("fourth request admitted");
        };
        assert_eq!(scope, RateScope::Webhook);
        assert_eq!(status.remaining, 0);
        // Bucket 1000 leaves the window when bucket 1061 starts.
        assert_eq!(retry_after, Duration::from_millis(60_500));
        assert!(matches!(
            decide(&mut w, rate(3), &mut o, rate(100), at_secs(1060.9)),
            RateDecision::Denied { .. }
        ));
        assert!(matches!(
            decide(&mut w, rate(3), &mut o, rate(100), now.plus(retry_after)),
            RateDecision::Admitted(_)
        ));
    }

    #[test]
    fn organization_denial_charges_neither() {
        let now = at_secs(50.0);
        let (mut w, mut o) = (SlidingWindow::new(now), SlidingWindow::new(now));
        assert!(matches!(
            decide(&mut w, rate(10), &mut o, rate(1), now),
            RateDecision::Admitted(_)
        ));
        let before = w.clone();
        let decision = decide(&mut w, rate(10), &mut o, rate(1), now);
        assert!(matches!(
            decision,
            RateDecision::Denied {
                scope: RateScope::Organization,
                ..
            }
        ));
        assert_eq!(
            w, before,
            "the webhook's window was charged for a denied request"
        );
        assert_eq!(o.total(), 1);
    }

    #[test]
    fn reports_the_tighter_quota() {
        let now = at_secs(7.0);
        let (mut w, mut o) = (SlidingWindow::new(now), SlidingWindow::new(now));
        let RateDecision::Admitted(status) = decide(&mut w, rate(100), &mut o, rate(5), now) else {
            panic!("denied")
        };
        assert_eq!((status.limit, status.remaining), (5, 4));
        assert_eq!(status.reset_after, Duration::from_secs(61));
    }

    #[test]
    fn clock_going_backwards_counts_in_the_newest_bucket() {
        let (mut w, mut o) = (
            SlidingWindow::new(at_secs(10.0)),
            SlidingWindow::new(at_secs(10.0)),
        );
        decide(&mut w, rate(2), &mut o, rate(2), at_secs(100.0));
        decide(&mut w, rate(2), &mut o, rate(2), at_secs(90.0));
        assert_eq!(w.total(), 2);
        w.advance(at_secs(161.0));
        assert_eq!(w.total(), 0);
    }

    #[test]
    fn idle_windows_can_be_forgotten() {
        let mut w = SlidingWindow::new(at_secs(0.0));
        assert!(w.is_idle(at_secs(0.0)));
        let mut o = SlidingWindow::new(at_secs(0.0));
        decide(&mut w, rate(2), &mut o, rate(2), at_secs(0.0));
        assert!(!w.is_idle(at_secs(60.9)));
        assert!(w.is_idle(at_secs(61.0)));
    }

    /// Requests as gaps in milliseconds from the previous one, each to one of two webhooks of
    /// one organization.
    fn traffic() -> impl Strategy<Value = Vec<(u32, bool)>> {
        prop::collection::vec(
            (
                prop_oneof![Just(0u32), 0..50u32, 0..3_000u32, 0..70_000u32],
                any::<bool>(),
            ),
            1..400,
        )
    }

    fn max_in_any_minute(times: &[i64]) -> usize {
        let mut max = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= 60_000_000 {
                start += 1;
            }
            max = max.max(end - start + 1);
        }
        max
    }

    proptest! {
        #[test]
        fn never_admits_more_than_the_quota_in_any_minute(
            traffic in traffic(),
            webhook_quota in 1u32..20,
            organization_quota in 1u32..30,
            start in -10_000_000_000i64..10_000_000_000,
        ) {
            let now = Timestamp::from_unix_micros(start);
            let mut webhooks = [SlidingWindow::new(now), SlidingWindow::new(now)];
            let mut org = SlidingWindow::new(now);
            let mut admitted: [Vec<i64>; 2] = [Vec::new(), Vec::new()];
            let mut t = start;
            for (gap_ms, second) in traffic {
                t += i64::from(gap_ms) * 1000;
                let i = usize::from(second);
                let decision = decide(
                    &mut webhooks[i], rate(webhook_quota),
                    &mut org, rate(organization_quota),
                    Timestamp::from_unix_micros(t),
                );
                if let RateDecision::Admitted(_) = decision {
                    admitted[i].push(t);
                }
            }
            let mut all: Vec<i64> = admitted.concat();
            all.sort_unstable();
            prop_assert!(max_in_any_minute(&admitted[0]) <= webhook_quota as usize);
            prop_assert!(max_in_any_minute(&admitted[1]) <= webhook_quota as usize);
            prop_assert!(max_in_any_minute(&all) <= organization_quota as usize);
        }

        #[test]
        fn a_denial_charges_nothing_and_retry_after_is_honest(
            traffic in traffic(),
            webhook_quota in 1u32..10,
            organization_quota in 1u32..15,
        ) {
            let now = Timestamp::from_unix_micros(0);
            let (mut w, mut o) = (SlidingWindow::new(now), SlidingWindow::new(now));
            let mut t = 0i64;
            for (gap_ms, _) in traffic {
                t += i64::from(gap_ms) * 1000;
                let now = Timestamp::from_unix_micros(t);
                let (mut w_before, mut o_before) = (w.clone(), o.clone());
                w_before.advance(now);
                o_before.advance(now);
                let decision = decide(&mut w, rate(webhook_quota), &mut o, rate(organization_quota), now);
                if let RateDecision::Denied { retry_after, status, .. } = decision {
                    prop_assert_eq!(&w, &w_before);
                    prop_assert_eq!(&o, &o_before);
                    prop_assert_eq!(status.remaining, 0);
                    prop_assert!(retry_after > Duration::ZERO);
                    prop_assert!(retry_after <= Duration::from_secs(61));
                    // Just before retry_after it is still refused; at retry_after it is admitted.
                    let (mut w2, mut o2) = (w.clone(), o.clone());
                    let later = now.plus(retry_after);
                    let admitted_later = matches!(
                        decide(&mut w2, rate(webhook_quota), &mut o2, rate(organization_quota), later),
                        RateDecision::Admitted(_)
                    );
                    // The other quota may still refuse, but the one that denied must admit.
                    let (mut w3, mut o3) = (w.clone(), o.clone());
                    w3.advance(later);
                    o3.advance(later);
                    prop_assert!(admitted_later || !w3.admits(rate(webhook_quota)) || !o3.admits(rate(organization_quota)));
                    let scope_window_admits = match decision {
                        RateDecision::Denied { scope: RateScope::Webhook, .. } => w3.admits(rate(webhook_quota)),
                        _ => o3.admits(rate(organization_quota)),
                    };
                    prop_assert!(scope_window_admits);
                }
            }
        }
    }

    #[test]
    fn a_peek_charges_nothing() {
        let now = at_secs(1000.5);
        let (mut w, mut o) = (SlidingWindow::new(now), SlidingWindow::new(now));
        for _ in 0..5 {
            assert!(matches!(
                peek(&mut w, rate(2), &mut o, rate(100), now),
                RateDecision::Admitted(RateStatus { remaining: 2, .. })
            ));
        }
        assert_eq!((w.total(), o.total()), (0, 0));
        for _ in 0..2 {
            decide(&mut w, rate(2), &mut o, rate(100), now);
        }
        let check = |w: &mut SlidingWindow, o: &mut SlidingWindow, q_w, q_o, scope| {
            let RateDecision::Denied { scope: got, .. } = peek(w, rate(q_w), o, rate(q_o), now)
            else {
                panic!("a full window is refused by a peek too");
            };
            assert_eq!(got, scope);
        };
        check(&mut w, &mut o, 2, 100, RateScope::Webhook);
        check(&mut w, &mut o, 100, 2, RateScope::Organization);
        assert_eq!(
            (w.total(), o.total()),
            (2, 2),
            "a refused peek charges nothing"
        );
    }
}
