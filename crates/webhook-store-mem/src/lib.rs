//! In-memory adapters of the domain's ports, for tests and for services that embed the domain:
//! a complete [`MemoryStore`], a [`MemoryRateLimiter`] shared by every worker of one node, a
//! [`CoalescingCounter`] of flood rejections, a [`CachedResolver`] for ingest's hot path and a
//! settable [`ManualClock`].
//!
//! Nothing here survives a restart; everything else is the real behaviour the ports promise.

mod clock;
mod coalesce;
mod limiter;
mod resolver;
mod store;

pub use clock::ManualClock;
pub use coalesce::CoalescingCounter;
pub use limiter::MemoryRateLimiter;
pub use resolver::{CacheConfig, CachedResolver};
pub use store::{MemoryStore, StoreSetUnavailable};
