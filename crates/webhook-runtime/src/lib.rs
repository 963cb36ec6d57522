//! The runtime parts every webhookd node runs beside its store: the in-memory rate limiter, the
//! counter that coalesces flood rejections into log entries, the cache of ingest routes, and
//! the notifier that wakes delivery and drops stale routes after a change.
//!
//! None of them keeps anything across a restart, and none is a store: the store crates keep
//! what must survive.

mod coalesce;
mod limiter;
mod notifier;
mod route_cache;

pub use coalesce::CoalescingCounter;
pub use limiter::MemoryRateLimiter;
pub use notifier::NodeNotifier;
pub use route_cache::{CacheConfig, CachedResolver, RouteCache};
