//! [`NodeLimiter`]: the rate limiter a node was configured with (`--rate-limiter`): its own
//! windows in memory, or the windows every node of one PostgreSQL database shares.

use std::time::Duration;

use webhook_domain::model::{RateRequest, Timestamp};
use webhook_domain::ports::{RateLimiter, RateLimiterUnavailable};
use webhook_domain::rules::RateDecision;
use webhook_http::problem::ErrorChain;
use webhook_runtime::MemoryRateLimiter;
use webhook_store_pg::PgRateLimiter;

/// How often a node deletes the shared windows' buckets that left every window.
pub(crate) const SWEEP_WINDOWS_EVERY: Duration = Duration::from_secs(60);

/// A node's rate limiter. Cheap to clone: clones share the windows.
#[derive(Debug, Clone)]
pub enum NodeLimiter {
    /// This node's windows, in memory (a SQLite node, or `--rate-limiter memory`).
    Memory(MemoryRateLimiter),
    /// The windows in the PostgreSQL database, shared by every node on it.
    Shared(PgRateLimiter),
}

impl NodeLimiter {
    /// A limiter with windows of its own, in memory.
    pub fn memory() -> Self {
        Self::Memory(MemoryRateLimiter::new())
    }

    /// Forgets what no longer decides anything at `now`: idle windows in memory, or ended
    /// refusals a shared limiter remembers.
    pub fn forget_idle(&self, now: Timestamp) {
        match self {
            Self::Memory(limiter) => {
                limiter.forget_idle(now);
            }
            Self::Shared(limiter) => {
                limiter.forget_expired(now);
            }
        }
    }

    /// Deletes the shared buckets that left every window by `now` (nothing to do in memory).
    pub async fn sweep(&self, now: Timestamp) {
        if let Self::Shared(limiter) = self
            && let Err(e) = limiter.delete_old_windows(now).await
        {
            tracing::warn!(error = %ErrorChain(&e), "deleting old rate-limit buckets failed; will retry");
        }
    }
}

impl RateLimiter for NodeLimiter {
    async fn acquire(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        match self {
            Self::Memory(limiter) => limiter.acquire(request).await,
            Self::Shared(limiter) => limiter.acquire(request).await,
        }
    }

    async fn peek(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        match self {
            Self::Memory(limiter) => RateLimiter::peek(limiter, request).await,
            Self::Shared(limiter) => limiter.peek(request).await,
        }
    }
}
