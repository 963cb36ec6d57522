//! [`RouteChanges`]: keeps a node's cached ingest routes in step with the changes every node
//! commits to a shared PostgreSQL database, and shows in `/metrics` whether it can.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use webhook_http::problem::ErrorChain;
use webhook_runtime::RouteCache;
use webhook_store_pg::{ChangeEvent, ChangeListener, ListenerOptions};

/// Drops the cached routes each announced change made stale, and all of them whenever the
/// listener starts listening again (changes may have gone unheard meanwhile). While it cannot
/// listen, routes are trusted for the cache's TTL, as on a node alone. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct RouteChanges {
    routes: RouteCache,
    connected: Gauge,
    notifications: Counter,
}

impl RouteChanges {
    /// Keeps `routes` in step.
    pub(crate) fn new(routes: RouteCache) -> Self {
        Self {
            routes,
            connected: Gauge::default(),
            notifications: Counter::default(),
        }
    }

    /// Adds the gauge and the counter to the `/metrics` registry.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhookd_route_listener_connected",
            "1 while this node listens for route changes on PostgreSQL, 0 while it cannot \
             (cached routes then expire by their TTL)",
            self.connected.clone(),
        );
        registry.register(
            "webhookd_route_notifications",
            "Route changes announced by any node and heard by this one",
            self.notifications.clone(),
        );
    }

    fn apply(&self, event: ChangeEvent) {
        match event {
            ChangeEvent::Listening => {
                self.routes.clear();
                self.connected.set(1);
            }
            ChangeEvent::Changed(stale) => {
                self.notifications.inc();
                self.routes.invalidate_stale(stale);
            }
            ChangeEvent::Lost => {
                self.connected.set(0);
            }
        }
    }

    /// Listens on the database at `url` until `stopped` completes.
    pub(crate) async fn follow(
        &self,
        url: &str,
        options: ListenerOptions,
        stopped: impl Future<Output = ()>,
    ) {
        match ChangeListener::new(url, options) {
            Ok(listener) => listener.run(|event| self.apply(event), stopped).await,
            Err(e) => tracing::warn!(
                error = %ErrorChain(&e),
                "cannot listen for route changes; other nodes' changes reach this node when \
                 its cached routes expire"
            ),
        }
    }
}
