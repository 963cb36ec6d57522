//! Retention: invocations older than the retention period are purged, with their finished
//! tasks. [`Retention::run_once`] is one pass; the node schedules it.

use std::time::Duration;

use crate::ports::{Adapters, Clock as _, InvocationLog as _, StoreError};

/// Purges the invocation log past its retention period.
#[derive(Debug)]
pub struct Retention<A: Adapters> {
    pub store: A::Store,
    pub clock: A::Clock,
    /// How long invocations are kept.
    pub keep: Duration,
}

impl<A: Adapters> Retention<A> {
    /// Deletes the invocations received more than `keep` ago whose task is absent or finished;
    /// returns how many were deleted.
    ///
    /// # Errors
    /// The store's errors; nothing is lost by retrying later.
    pub async fn run_once(&self) -> Result<u64, StoreError> {
        let before = self.clock.now().minus(self.keep);
        self.store.purge_invocations(before).await
    }
}
