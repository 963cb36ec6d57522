//! Retention: invocations older than the retention period are purged, with their finished
//! tasks, and delivery-id claims older than the dedup window. [`Retention::run_once`] is one
//! pass; the node schedules it.

use std::time::Duration;

use crate::ports::{Adapters, Clock as _, InvocationLog as _, StoreError};

/// Purges the invocation log past its retention period.
#[derive(Debug)]
pub struct Retention<A: Adapters> {
    pub store: A::Store,
    pub clock: A::Clock,
    /// How long invocations are kept.
    pub keep: Duration,
    /// How long a delivery id's claim holds; older claims have lapsed.
    pub dedup_window: Duration,
}

impl<A: Adapters> Retention<A> {
    /// Deletes the invocations received more than `keep` ago whose task is absent or finished,
    /// and the lapsed delivery-id claims; returns how many invocations were deleted.
    ///
    /// # Errors
    /// The store's errors; nothing is lost by retrying later.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        self.store
            .purge_delivery_claims(now.minus(self.dedup_window))
            .await?;
        self.store.purge_invocations(now.minus(self.keep)).await
    }
}
