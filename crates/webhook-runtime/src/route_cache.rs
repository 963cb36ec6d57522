//! [`CachedResolver`]: a time-bounded cache of ingest routes in front of a resolver, and
//! [`RouteCache`], the handle that drops its stale entries when a change is announced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use webhook_domain::model::{IngestRoute, OrganizationId, Stale, Timestamp, WebhookId};
use webhook_domain::ports::{Clock, StoreError, WebhookResolver};

/// How long [`CachedResolver`] trusts what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a found route is served from memory. Changes drop it sooner through the
    /// [`RouteCache`] handle: the node's notifier after its own changes, and on PostgreSQL the
    /// listener after every node's. This bounds how late a change is seen only while the
    /// listener cannot listen.
    pub ttl: Duration,
    /// How long an unknown id is remembered as unknown, so a flood of random ids does not reach
    /// the store. Shorter than `ttl`: a webhook created on another node becomes reachable here
    /// within this time.
    pub negative_ttl: Duration,
    /// Most unknown ids remembered at once; beyond that, unknown ids go to the store.
    pub max_negative: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(5),
            negative_ttl: Duration::from_secs(1),
            max_negative: 10_000,
        }
    }
}

/// A [`WebhookResolver`] that remembers routes of `R` for [`CacheConfig::ttl`] and unknown ids
/// for [`CacheConfig::negative_ttl`]. Errors are never remembered.
///
/// Cheap to clone; clones share the cache. Its [`RouteCache`] handle drops stale entries: the
/// node's notifier calls it after a webhook is created, updated, disabled or deleted, and after
/// an organization's limit changes; on PostgreSQL, so does the listener for every node's
/// changes.
#[derive(Debug)]
pub struct CachedResolver<R, K> {
    cache: RouteCache,
    source: Arc<Source<R, K>>,
}

#[derive(Debug)]
struct Source<R, K> {
    resolver: R,
    clock: K,
}

/// The remembered routes of a [`CachedResolver`], without the resolver behind them: what a
/// notifier holds to drop stale entries. Cheap to clone; clones share the entries.
#[derive(Debug, Clone)]
pub struct RouteCache {
    inner: Arc<Entries>,
}

#[derive(Debug)]
struct Entries {
    config: CacheConfig,
    found: DashMap<WebhookId, (Arc<IngestRoute>, Timestamp)>,
    unknown: DashMap<WebhookId, Timestamp>,
    /// Counts invalidations. Each one counts before it removes anything, and a read remembers
    /// what it read only if no invalidation counted since the read began: what was read may
    /// predate the change the invalidation announced.
    invalidations: AtomicU64,
}

/// A fresh answer from the cache.
enum Known {
    Found(Arc<IngestRoute>),
    Unknown,
}

impl<R, K> Clone for CachedResolver<R, K> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            source: Arc::clone(&self.source),
        }
    }
}

impl<R, K> CachedResolver<R, K> {
    /// A cache in front of `resolver`, its ages measured with `clock`.
    pub fn new(resolver: R, clock: K, config: CacheConfig) -> Self {
        Self {
            cache: RouteCache {
                inner: Arc::new(Entries {
                    config,
                    found: DashMap::new(),
                    unknown: DashMap::new(),
                    invalidations: AtomicU64::new(0),
                }),
            },
            source: Arc::new(Source { resolver, clock }),
        }
    }

    /// The handle that drops this cache's stale entries.
    pub fn cache(&self) -> &RouteCache {
        &self.cache
    }
}

impl RouteCache {
    /// Drops the entries a change made stale.
    pub fn invalidate_stale(&self, stale: Stale) {
        match stale {
            Stale::Webhook(id) => self.invalidate(id),
            Stale::Organization(id) => self.invalidate_organization(id),
        }
    }

    /// Forgets what is known of `id`: the next request reads it from the resolver.
    pub fn invalidate(&self, id: WebhookId) {
        self.count_invalidation();
        self.inner.found.remove(&id);
        self.inner.unknown.remove(&id);
    }

    /// Forgets the routes of every webhook of `organization_id` (its limit changed).
    pub fn invalidate_organization(&self, organization_id: OrganizationId) {
        self.count_invalidation();
        self.inner
            .found
            .retain(|_, (route, _)| route.organization_id != organization_id);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.count_invalidation();
        self.inner.found.clear();
        self.inner.unknown.clear();
    }

    /// Routes and unknown ids currently remembered, fresh or not.
    pub fn len(&self) -> usize {
        self.inner.found.len() + self.inner.unknown.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count_invalidation(&self) {
        self.inner.invalidations.fetch_add(1, Ordering::SeqCst);
    }

    /// Where the count of invalidations stands, taken before reading a route.
    fn invalidations(&self) -> u64 {
        self.inner.invalidations.load(Ordering::SeqCst)
    }

    /// Remembers what a read begun at `invalidations` found, unless an invalidation came
    /// meanwhile. Checked again after inserting: an invalidation that counts after the first
    /// check removes after the insert, and one that counted before the second check is seen.
    fn remember(
        &self,
        id: WebhookId,
        resolved: Option<&Arc<IngestRoute>>,
        now: Timestamp,
        invalidations: u64,
    ) {
        let entries = &self.inner;
        if self.invalidations() != invalidations {
            return;
        }
        if let Some(route) = resolved {
            entries.unknown.remove(&id);
            entries.found.insert(id, (Arc::clone(route), now));
        } else {
            entries.found.remove(&id);
            self.remember_unknown(id, now);
        }
        if self.invalidations() != invalidations {
            entries.found.remove(&id);
            entries.unknown.remove(&id);
        }
    }

    fn fresh(&self, id: WebhookId, now: Timestamp) -> Option<Known> {
        let config = &self.inner.config;
        if let Some(entry) = self.inner.found.get(&id) {
            let (route, fetched_at) = entry.value();
            if now.since(*fetched_at) < config.ttl && *fetched_at <= now {
                return Some(Known::Found(Arc::clone(route)));
            }
        }
        if let Some(fetched_at) = self.inner.unknown.get(&id).map(|entry| *entry.value())
            && now.since(fetched_at) < config.negative_ttl
            && fetched_at <= now
        {
            return Some(Known::Unknown);
        }
        None
    }

    fn remember_unknown(&self, id: WebhookId, now: Timestamp) {
        let config = &self.inner.config;
        let unknown = &self.inner.unknown;
        if unknown.len() >= config.max_negative {
            unknown.retain(|_, fetched_at| now.since(*fetched_at) < config.negative_ttl);
        }
        if unknown.len() < config.max_negative {
            unknown.insert(id, now);
        }
    }
}

impl<R: WebhookResolver, K: Clock> WebhookResolver for CachedResolver<R, K> {
    async fn resolve(&self, id: WebhookId) -> Result<Option<Arc<IngestRoute>>, StoreError> {
        let now = self.source.clock.now();
        let cache = &self.cache;
        match cache.fresh(id, now) {
            Some(Known::Found(route)) => return Ok(Some(route)),
            Some(Known::Unknown) => return Ok(None),
            None => {}
        }
        let invalidations = cache.invalidations();
        let resolved = self.source.resolver.resolve(id).await?;
        cache.remember(id, resolved.as_ref(), now, invalidations);
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use uuid::Uuid;
    use webhook_domain::model::{EventTypes, RatePerMinute, TargetId, WebhookStatus};

    use super::*;
    use webhook_system::ManualClock;

    /// A resolver over a settable map that counts its calls and can fail.
    #[derive(Debug, Clone, Default)]
    struct Source {
        routes: Arc<Mutex<Vec<Arc<IngestRoute>>>>,
        calls: Arc<Mutex<u32>>,
        down: Arc<Mutex<bool>>,
    }

    impl WebhookResolver for Source {
        async fn resolve(&self, id: WebhookId) -> Result<Option<Arc<IngestRoute>>, StoreError> {
            *self.calls.lock().unwrap() += 1;
            if *self.down.lock().unwrap() {
                return Err(StoreError::Unavailable("down".into()));
            }
            Ok(self
                .routes
                .lock()
                .unwrap()
                .iter()
                .find(|r| r.webhook_id == id)
                .cloned())
        }
    }

    fn route(n: u128, org: u128) -> Arc<IngestRoute> {
        Arc::new(IngestRoute {
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(n)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(org)),
            target_id: TargetId::from_uuid(Uuid::from_u128(99)),
            status: WebhookStatus::Active,
            secret: None,
            previous_secret: None,
            event_types: EventTypes::all(),
            webhook_quota: RatePerMinute::WEBHOOK_DEFAULT,
            organization_quota: RatePerMinute::ORGANIZATION_DEFAULT,
            source: webhook_domain::model::SourceSettings::default(),
            allowed_source_ips: webhook_domain::model::CidrList::default(),
        })
    }

    fn setup(config: CacheConfig) -> (Source, ManualClock, CachedResolver<Source, ManualClock>) {
        let source = Source::default();
        let clock = ManualClock::new(Timestamp::from_unix_micros(1_000_000_000));
        let cache = CachedResolver::new(source.clone(), clock.clone(), config);
        (source, clock, cache)
    }

    fn calls(source: &Source) -> u32 {
        *source.calls.lock().unwrap()
    }

    #[tokio::test]
    async fn routes_are_cached_until_the_ttl_or_an_invalidation() {
        let (source, clock, cache) = setup(CacheConfig::default());
        let one = route(1, 10);
        source
            .routes
            .lock()
            .unwrap()
            .extend([one.clone(), route(2, 10), route(3, 11)]);
        for _ in 0..3 {
            assert_eq!(
                cache.resolve(one.webhook_id).await.unwrap(),
                Some(one.clone())
            );
        }
        assert_eq!(calls(&source), 1);
        clock.advance(Duration::from_millis(4_999));
        cache.resolve(one.webhook_id).await.unwrap();
        assert_eq!(calls(&source), 1);
        clock.advance(Duration::from_millis(1));
        cache.resolve(one.webhook_id).await.unwrap();
        assert_eq!(calls(&source), 2);

        cache.cache().invalidate(one.webhook_id);
        cache.resolve(one.webhook_id).await.unwrap();
        assert_eq!(calls(&source), 3);

        for n in [2, 3] {
            cache.resolve(route(n, 0).webhook_id).await.unwrap();
        }
        assert_eq!(calls(&source), 5);
        cache.cache().invalidate_organization(one.organization_id);
        for n in [1, 2, 3] {
            cache.resolve(route(n, 0).webhook_id).await.unwrap();
        }
        assert_eq!(
            calls(&source),
            7,
            "only organization 10's routes were forgotten"
        );
    }

    #[tokio::test]
    async fn unknown_ids_are_cached_briefly_and_bounded() {
        let (source, clock, cache) = setup(CacheConfig {
            max_negative: 2,
            ..CacheConfig::default()
        });
        let unknown = route(1, 10).webhook_id;
        assert_eq!(cache.resolve(unknown).await.unwrap(), None);
        assert_eq!(cache.resolve(unknown).await.unwrap(), None);
        assert_eq!(calls(&source), 1);
        clock.advance(Duration::from_secs(1));
        cache.resolve(unknown).await.unwrap();
        assert_eq!(calls(&source), 2);

        for n in 2..10 {
            cache.resolve(route(n, 10).webhook_id).await.unwrap();
        }
        assert!(cache.cache().len() <= 2);

        // A webhook created meanwhile is found once invalidated.
        source.routes.lock().unwrap().push(route(1, 10));
        cache.cache().invalidate(unknown);
        assert!(cache.resolve(unknown).await.unwrap().is_some());
    }

    /// A resolver that reads its route when called and answers only when let go.
    #[derive(Debug, Clone)]
    struct Slow {
        route: Arc<Mutex<Arc<IngestRoute>>>,
        calls: Arc<Mutex<u32>>,
        reading: Arc<tokio::sync::Notify>,
        go_on: Arc<tokio::sync::Notify>,
    }

    impl WebhookResolver for Slow {
        async fn resolve(&self, _id: WebhookId) -> Result<Option<Arc<IngestRoute>>, StoreError> {
            *self.calls.lock().unwrap() += 1;
            let read = Arc::clone(&self.route.lock().unwrap());
            self.reading.notify_one();
            self.go_on.notified().await;
            Ok(Some(read))
        }
    }

    #[tokio::test]
    async fn a_read_overtaken_by_an_invalidation_is_not_remembered() {
        for invalidate in [false, true] {
            let old = route(1, 10);
            let slow = Slow {
                route: Arc::new(Mutex::new(old.clone())),
                calls: Arc::default(),
                reading: Arc::default(),
                go_on: Arc::default(),
            };
            let clock = ManualClock::new(Timestamp::from_unix_micros(1_000_000_000));
            let cache = CachedResolver::new(slow.clone(), clock, CacheConfig::default());
            let id = old.webhook_id;
            let read = tokio::spawn({
                let cache = cache.clone();
                async move { cache.resolve(id).await }
            });
            slow.reading.notified().await;
            // The change commits and is announced while the old route is on its way.
            let mut new = (*old).clone();
            new.status = WebhookStatus::Disabled;
            let new = Arc::new(new);
            *slow.route.lock().unwrap() = new.clone();
            if invalidate {
                cache
                    .cache()
                    .invalidate_stale(Stale::Webhook(old.webhook_id));
            }
            slow.go_on.notify_one();
            assert_eq!(read.await.unwrap().unwrap(), Some(old.clone()));

            slow.go_on.notify_one();
            let next = cache.resolve(old.webhook_id).await.unwrap();
            let calls = *slow.calls.lock().unwrap();
            if invalidate {
                assert_eq!(
                    next,
                    Some(new),
                    "read again: the old route was not remembered"
                );
                assert_eq!(calls, 2);
            } else {
                assert_eq!(next, Some(old), "served from memory");
                assert_eq!(calls, 1);
            }
        }
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let (source, _clock, cache) = setup(CacheConfig::default());
        *source.down.lock().unwrap() = true;
        let id = route(1, 10).webhook_id;
        assert!(matches!(
            cache.resolve(id).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            cache.resolve(id).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(calls(&source), 2);
        *source.down.lock().unwrap() = false;
        assert_eq!(cache.resolve(id).await.unwrap(), None);
        assert!(cache.cache().is_empty() || cache.cache().len() == 1);
    }
}
