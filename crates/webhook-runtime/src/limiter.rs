//! [`MemoryRateLimiter`]: the rate-limit windows of one node, in memory.

use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use dashmap::DashMap;
use webhook_domain::model::RateRequest;
use webhook_domain::model::{OrganizationId, RatePerMinute, Timestamp, WebhookId};
use webhook_domain::ports::{RateLimiter, RateLimiterUnavailable};
use webhook_domain::rules::{RateDecision, SlidingWindow, decide, peek};

type Window = Arc<Mutex<SlidingWindow>>;

/// The [`RateLimiter`] of one node: a sliding window per webhook and per organization, decided
/// with [`webhook_domain::rules::decide`].
///
/// Cheap to clone; clones share the windows, so every worker of a server can hold one. Windows
/// of different webhooks are locked independently. A request locks its webhook's window, then
/// its organization's (always in that order, so two requests never wait on each other in a
/// cycle), and decides while holding both, so concurrent requests never both take the last slot.
///
/// Call [`MemoryRateLimiter::forget_idle`] now and then (say every minute) so that windows of
/// webhooks that stopped receiving requests do not stay in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryRateLimiter {
    windows: Arc<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    webhooks: DashMap<WebhookId, Window>,
    organizations: DashMap<OrganizationId, Window>,
}

/// The window of `key`, created at `now` when missing. The map's shard lock is released before
/// this returns: only the window's own mutex is ever held while deciding.
fn window_of<K: Eq + Hash + Copy>(map: &DashMap<K, Window>, key: K, now: Timestamp) -> Window {
    if let Some(window) = map.get(&key) {
        return Arc::clone(window.value());
    }
    Arc::clone(
        map.entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(SlidingWindow::new(now))))
            .value(),
    )
}

/// Drops the windows of `map` that are idle at `now` and that no request holds. Returns how many.
fn forget<K: Eq + Hash>(map: &DashMap<K, Window>, now: Timestamp) -> usize {
    let before = map.len();
    map.retain(|_, window| {
        // `retain` holds the shard's write lock, so nobody can clone the window out meanwhile:
        // a count of one means no request is deciding on it or about to.
        if Arc::strong_count(window) > 1 {
            return true;
        }
        match window.try_lock() {
            Ok(window) => !window.is_idle(now),
            Err(_) => true,
        }
    });
    before.saturating_sub(map.len())
}

impl MemoryRateLimiter {
    /// A limiter with no windows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every window that holds no request at `now`; forgetting one changes no future
    /// decision. Returns how many windows were dropped.
    pub fn forget_idle(&self, now: Timestamp) -> usize {
        forget(&self.windows.webhooks, now) + forget(&self.windows.organizations, now)
    }

    /// How many windows are kept (webhooks and organizations).
    pub fn len(&self) -> usize {
        self.windows.webhooks.len() + self.windows.organizations.len()
    }

    /// Whether no window is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides `request` synchronously; [`RateLimiter::acquire`] is this, and cannot fail.
    pub fn decide(&self, request: RateRequest) -> RateDecision {
        self.with_windows(request, decide)
    }

    /// What [`MemoryRateLimiter::decide`] would answer, charging nothing; [`RateLimiter::peek`]
    /// is this, and cannot fail.
    pub fn peek(&self, request: RateRequest) -> RateDecision {
        self.with_windows(request, peek)
    }

    fn with_windows(
        &self,
        request: RateRequest,
        rule: fn(
            &mut SlidingWindow,
            RatePerMinute,
            &mut SlidingWindow,
            RatePerMinute,
            Timestamp,
        ) -> RateDecision,
    ) -> RateDecision {
        let webhook = window_of(&self.windows.webhooks, request.webhook_id, request.now);
        let organization = window_of(
            &self.windows.organizations,
            request.organization_id,
            request.now,
        );
        // A panic while a window was locked cannot leave it inconsistent for `decide` (its
        // invariants are restored by `advance`), so a poisoned lock is used as it is.
        let mut webhook = webhook.lock().unwrap_or_else(PoisonError::into_inner);
        let mut organization = organization.lock().unwrap_or_else(PoisonError::into_inner);
        rule(
            &mut webhook,
            request.webhook_quota,
            &mut organization,
            request.organization_quota,
            request.now,
        )
    }
}

impl RateLimiter for MemoryRateLimiter {
    async fn acquire(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        Ok(self.decide(request))
    }

    async fn peek(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        Ok(MemoryRateLimiter::peek(self, request))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;
    use webhook_domain::rules::RateScope;

    use super::*;

    fn request(webhook: u128, quota: u32, org_quota: u32, now: Timestamp) -> RateRequest {
        RateRequest {
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(webhook)),
            webhook_quota: RatePerMinute::new(quota).unwrap(),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(1)),
            organization_quota: RatePerMinute::new(org_quota).unwrap(),
            now,
        }
    }

    #[test]
    fn webhook_and_organization_quotas_hold() {
        let limiter = MemoryRateLimiter::new();
        let now = Timestamp::from_unix_micros(1_000_000_000);
        // Per request, in order: the webhook and the quota that refused it, if one did.
        let expected = [
            (1, None),
            (1, None),
            (1, Some(RateScope::Webhook)),
            (2, None),
            (3, Some(RateScope::Organization)),
        ];
        for (webhook, refused_by) in expected {
            let scope = match limiter.decide(request(webhook, 2, 3, now)) {
                RateDecision::Admitted(_) => None,
                RateDecision::Denied { scope, .. } => Some(scope),
            };
            assert_eq!(scope, refused_by, "webhook {webhook}");
        }
    }

    #[test]
    fn idle_windows_are_forgotten_and_busy_ones_kept() {
        let limiter = MemoryRateLimiter::new();
        let now = Timestamp::from_unix_micros(1_000_000_000);
        limiter.decide(request(1, 5, 5, now));
        limiter.decide(request(2, 5, 5, now.plus(Duration::from_secs(30))));
        assert_eq!(limiter.len(), 3);
        assert_eq!(limiter.forget_idle(now.plus(Duration::from_secs(10))), 0);
        // At +61 s webhook 1's window is empty; webhook 2's and the organization's are not.
        assert_eq!(limiter.forget_idle(now.plus(Duration::from_secs(61))), 1);
        assert_eq!(limiter.len(), 2);
        assert_eq!(limiter.forget_idle(now.plus(Duration::from_secs(120))), 2);
        assert!(limiter.is_empty());
    }

    #[test]
    fn concurrent_requests_never_exceed_the_quota() {
        let limiter = MemoryRateLimiter::new();
        let now = Timestamp::from_unix_micros(1_000_000_000);
        let admitted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let limiter = limiter.clone();
                    scope.spawn(move || {
                        (0..200)
                            .filter(|n| {
                                let webhook = u128::from((i + n) % 3 == 0);
                                if n % 50 == 0 {
                                    limiter.forget_idle(now);
                                }
                                matches!(
                                    limiter.decide(request(webhook, 150, 250, now)),
                                    RateDecision::Admitted(_)
                                )
                            })
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 250);
    }
}
