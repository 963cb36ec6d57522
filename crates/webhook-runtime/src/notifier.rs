//! [`NodeNotifier`]: the node's [`Notifier`]. A committed task wakes the dispatcher; a change
//! drops the cached ingest routes it made stale.

use std::sync::Arc;

use tokio::sync::Notify;
use webhook_domain::model::Stale;
use webhook_domain::ports::Notifier;

use crate::RouteCache;

/// Wakes the dispatcher through `wake` and invalidates `routes`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeNotifier {
    wake: Arc<Notify>,
    routes: RouteCache,
}

impl NodeNotifier {
    /// Wakes `wake` (the dispatcher's, see `Dispatcher::waker`) after each committed task, and
    /// drops stale entries of `routes`.
    pub fn new(wake: Arc<Notify>, routes: RouteCache) -> Self {
        Self { wake, routes }
    }
}

impl Notifier for NodeNotifier {
    fn task_queued(&self) {
        // Kept as a permit while the dispatcher is busy, so the task is not missed.
        self.wake.notify_one();
    }

    fn routes_changed(&self, stale: Stale) {
        self.routes.invalidate_stale(stale);
    }
}
