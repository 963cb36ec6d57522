//! [`Node`]: the one composition root. It builds every adapter of a node, wires them to the use
//! cases, the dispatcher and the HTTP app, and runs them. The binary, the HTTP and end-to-end
//! tests and the benches all build through [`Node::build`].

use std::marker::PhantomData;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use tokio::sync::watch;
use webhook_dispatch::{
    DeliveryConfig, DispatchConfig, Dispatcher, HttpDelivery, OutboundGuard, OutboundPolicy,
};
use webhook_domain::model::PublicUrl;
use webhook_domain::ports::{Adapters, Clock, EndpointGuard, Store};
use webhook_domain::rules::RetryPolicy;
use webhook_domain::service::manage::Management;
use webhook_domain::service::{Bootstrap, Ingest, IngestConfig, Retention, StoreResolver};
use webhook_http::api::ManageState;
use webhook_http::ingest::BodyTimeout;
use webhook_http::problem::ErrorChain;
use webhook_http::{AppState, ClientIpPolicy, Metrics};
use webhook_runtime::{CacheConfig, CachedResolver, CoalescingCounter, NodeNotifier, RouteCache};
use webhook_store_pg::ListenerOptions;
use webhook_system::{
    MasterKey, MiniJinjaTemplates, RingMac, RingSealer, Sha256KeyHasher, SystemClock, SystemEntropy,
};

use crate::config::{Config, DispatchSettings};
use crate::limiter::{NodeLimiter, SWEEP_WINDOWS_EVERY};
use crate::route_changes::RouteChanges;

/// How often coalesced rejections are written and idle rate-limit windows forgotten.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often invocations past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// How long to wait for a connection to a target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The adapters of a webhookd node: the store `S`, the clock `C` and the endpoint guard `G`
/// are chosen by whoever builds the node (the binary: a durable store, the system clock, the
/// outbound policy; a test: a manual clock or a guard without DNS); every other port has its
/// one production adapter.
pub struct NodeAdapters<S, C = SystemClock, G = OutboundGuard>(Chosen<S, C, G>);

/// The chosen types, held by no value: the bundle is only ever a type.
type Chosen<S, C, G> = PhantomData<fn() -> (S, C, G)>;

impl<S, C, G> std::fmt::Debug for NodeAdapters<S, C, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeAdapters")
    }
}

impl<S, C, G> Adapters for NodeAdapters<S, C, G>
where
    S: Store + Clone + 'static,
    C: Clock + Clone + 'static,
    G: EndpointGuard + 'static,
{
    type Store = S;
    type Clock = C;
    type Entropy = SystemEntropy;
    type Sealer = RingSealer;
    type Hasher = Sha256KeyHasher;
    type Limiter = NodeLimiter;
    type Rejections = CoalescingCounter<SystemEntropy>;
    type Resolver = CachedResolver<StoreResolver<S, RingSealer>, C>;
    type Endpoints = G;
    type Delivery = HttpDelivery;
    type Notifier = NodeNotifier;
    type Mac = RingMac;
    type Templates = MiniJinjaTemplates;
}

/// What the builder of a node chooses; see [`NodeAdapters`].
#[derive(Debug)]
pub struct NodeParts<S, C = SystemClock, G = OutboundGuard> {
    pub store: S,
    pub clock: C,
    pub endpoints: G,
    /// Seals the secrets of this node's store.
    pub master_key: MasterKey,
    /// Base of the webhook URLs handed out.
    pub public_url: PublicUrl,
}

impl<S> NodeParts<S> {
    /// A production node's parts: `store`, the system clock and the configured outbound policy.
    pub fn production(
        config: &Config,
        store: S,
        master_key: MasterKey,
        public_url: PublicUrl,
    ) -> Self {
        Self {
            store,
            clock: SystemClock,
            endpoints: OutboundGuard(outbound_policy(config)),
            master_key,
            public_url,
        }
    }
}

/// A built node: its use cases, dispatcher and runtime parts, ready to serve.
pub struct Node<A: Adapters> {
    /// The ingest use case.
    pub ingest: Arc<Ingest<A>>,
    /// The management use cases and the ingest their test events run through.
    pub manage: web::Data<ManageState<A>>,
    /// What the ingest and operations endpoints share.
    pub app: web::Data<AppState<A>>,
    /// Delivers the queued tasks.
    pub dispatcher: Dispatcher<A>,
    /// The cached ingest routes.
    pub routes: RouteCache,
    /// The rejections counted, not yet written.
    pub rejections: A::Rejections,
    /// The rate-limit windows.
    pub limiter: A::Limiter,
    /// The retention use case.
    pub retention: Retention<A>,
    /// Keeps `routes` in step with other nodes' changes, on a PostgreSQL node.
    route_changes: Option<RouteChanges>,
    config: Config,
}

impl<A: Adapters> std::fmt::Debug for Node<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, C, G> Node<NodeAdapters<S, C, G>>
where
    S: Store + Clone + 'static,
    C: Clock + Clone + 'static,
    G: EndpointGuard + 'static,
{
    /// Builds every adapter and use case of a node from `config` and `parts`, with rate-limit
    /// windows of its own in memory. Nothing runs yet.
    ///
    /// # Errors
    /// When the HTTP client for deliveries cannot be built.
    pub fn build(config: &Config, parts: NodeParts<S, C, G>) -> anyhow::Result<Self> {
        Self::build_with_limiter(config, parts, NodeLimiter::memory())
    }

    /// [`Node::build`] with `limiter` (the windows shared on PostgreSQL, say).
    ///
    /// # Errors
    /// When the HTTP client for deliveries cannot be built.
    pub fn build_with_limiter(
        config: &Config,
        parts: NodeParts<S, C, G>,
        limiter: NodeLimiter,
    ) -> anyhow::Result<Self> {
        let NodeParts {
            store,
            clock,
            endpoints,
            master_key,
            public_url,
        } = parts;
        let dispatcher = Dispatcher::new(
            store.clone(),
            HttpDelivery::new(delivery_config(config))
                .context("building the HTTP client for deliveries")?,
            RingSealer::new(&master_key),
            clock.clone(),
            SystemEntropy::new(),
            dispatch_config(config.dispatch),
        );
        let resolver = CachedResolver::new(
            StoreResolver::new(store.clone(), RingSealer::new(&master_key)),
            clock.clone(),
            CacheConfig::default(),
        );
        let routes = resolver.cache().clone();
        let notifier = NodeNotifier::new(dispatcher.waker(), routes.clone());
        let rejections = CoalescingCounter::new(SystemEntropy::new());
        let ingest = Arc::new(Ingest {
            resolver,
            limiter: limiter.clone(),
            store: store.clone(),
            rejections: rejections.clone(),
            clock: clock.clone(),
            entropy: SystemEntropy::new(),
            notifier: notifier.clone(),
            mac: RingMac,
            templates: MiniJinjaTemplates::new(),
            config: IngestConfig {
                body_limit: config.body_limit,
                dedup_window: config.dedup_window,
            },
        });
        let route_changes = config
            .database_url
            .is_some()
            .then(|| RouteChanges::new(routes.clone()));
        let metrics = Metrics::new_with(|registry| {
            dispatcher.metrics().register(registry);
            if let Some(route_changes) = &route_changes {
                route_changes.register(registry);
            }
            if let NodeLimiter::Shared(limiter) = &limiter {
                limiter.register(registry);
            }
        });
        let app = web::Data::new(AppState {
            ingest: Arc::clone(&ingest),
            client_ip: ClientIpPolicy::new(config.trusted_proxies.clone()),
            metrics,
        });
        let manage = web::Data::new(ManageState {
            management: Management {
                store: store.clone(),
                sealer: RingSealer::new(&master_key),
                hasher: Sha256KeyHasher,
                clock: clock.clone(),
                entropy: SystemEntropy::new(),
                endpoints,
                notifier,
                templates: MiniJinjaTemplates::new(),
                public_url,
            },
            ingest: Arc::clone(&ingest),
        });
        let retention = Retention {
            store,
            clock,
            keep: Duration::from_secs(u64::from(config.retention_days) * 24 * 3600),
            dedup_window: config.dedup_window,
        };
        Ok(Self {
            ingest,
            manage,
            app,
            dispatcher,
            routes,
            rejections,
            limiter,
            retention,
            route_changes,
            config: config.clone(),
        })
    }

    /// The organization bootstrap over this node's adapters.
    pub fn bootstrap(&self) -> Bootstrap<'_, NodeAdapters<S, C, G>> {
        Bootstrap::new(&self.manage.management)
    }

    /// The HTTP server of this node (ingest, management API, operations, console) on
    /// `listener`, not yet running. Signals are left to the caller.
    ///
    /// # Errors
    /// When the listener cannot be used.
    pub fn http_server(&self, listener: TcpListener) -> std::io::Result<Server> {
        let app = self.app.clone();
        let manage = self.manage.clone();
        let body_timeout = BodyTimeout(self.config.body_timeout);
        let server = HttpServer::new(move || {
            App::new().app_data(body_timeout).configure(|cfg| {
                webhook_http::configure(cfg, &app);
                cfg.app_data(manage.clone());
                webhook_http::api::configure::<NodeAdapters<S, C, G>>(cfg);
            })
        })
        .workers(self.config.workers)
        .max_connections(self.config.max_connections)
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?;
        Ok(server.run())
    }

    /// Serves on `listener`, delivers (unless dispatch is disabled) and keeps the node's
    /// background work going until `shutdown` completes; then finishes in-flight requests and
    /// deliveries, writes the last counted rejections, and returns.
    ///
    /// # Errors
    /// When the server cannot start or fails.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let address = listener
            .local_addr()
            .context("reading the listening address")?;
        let server = self
            .http_server(listener)
            .with_context(|| format!("serving on {address}"))?;
        tracing::info!(
            public_url = self.manage.management.public_url.as_str(),
            workers = self.config.workers,
            body_limit = self.config.body_limit,
            body_timeout_s = self.config.body_timeout.as_secs_f64(),
            max_connections = self
                .config
                .max_connections
                .saturating_mul(self.config.workers),
            "listening on http://{address}"
        );
        if self.config.allow_private_targets {
            tracing::warn!("delivery to private, loopback and link-local addresses is allowed");
        }
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        let (stop_dispatch, dispatch_stopped) = watch::channel(false);
        let dispatch = self.start_dispatch(dispatch_stopped);
        let (stop, stopped) = watch::channel(false);
        let route_changes = self.follow_route_changes(stopped.clone());
        let maintenance = tokio::spawn(maintain(
            self.rejections.clone(),
            self.limiter.clone(),
            self.retention,
            self.ingest.store.clone(),
            stopped,
        ));
        let outcome = tokio::select! {
            result = &mut server => flatten(result),
            signal = shutdown => {
                signal?;
                tracing::info!("shutting down: finishing in-flight requests and deliveries");
                // Deliveries stop claiming now and drain while the server drains.
                let _ = stop_dispatch.send(true);
                handle.stop(true).await;
                flatten(server.await)
            }
        };
        let _ = stop_dispatch.send(true);
        if let Some(dispatch) = dispatch {
            dispatch.await.context("the dispatcher task failed")?;
        }
        let _ = stop.send(true);
        maintenance.await.context("the maintenance task failed")?;
        if let Some(route_changes) = route_changes {
            route_changes
                .await
                .context("the route listener task failed")?;
        }
        outcome?;
        tracing::info!("stopped");
        Ok(())
    }

    /// On a PostgreSQL node, listens for the route changes every node commits and drops the
    /// cached routes they made stale, until `stopped` turns true (see `RouteChanges`).
    pub fn follow_route_changes(
        &self,
        mut stopped: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let route_changes = self.route_changes.clone()?;
        let url = self.config.database_url.clone()?;
        Some(tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            route_changes
                .follow(&url, ListenerOptions::default(), stopped)
                .await;
        }))
    }

    /// Runs the dispatcher until `stopped` turns true, unless this node only ingests.
    fn start_dispatch(
        &self,
        mut stopped: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.config.dispatch.enabled {
            tracing::info!("not delivering tasks: this node only ingests (--no-dispatch)");
            return None;
        }
        tracing::info!(
            concurrency = self.config.dispatch.concurrency,
            per_target = self.config.dispatch.per_target,
            lease_s = self.config.dispatch.lease().as_secs(),
            "delivering tasks to their targets"
        );
        let dispatcher = self.dispatcher.clone();
        Some(tokio::spawn(async move {
            dispatcher
                .run(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                })
                .await;
        }))
    }
}

fn flatten(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")
}

/// The outbound policy `config` sets for deliveries and for saved endpoints.
pub fn outbound_policy(config: &Config) -> OutboundPolicy {
    OutboundPolicy {
        allow_private_targets: config.allow_private_targets,
    }
}

/// The HTTP client's settings for deliveries.
fn delivery_config(config: &Config) -> DeliveryConfig {
    DeliveryConfig {
        connect_timeout: CONNECT_TIMEOUT.min(config.dispatch.timeout),
        timeout: config.dispatch.timeout,
        policy: outbound_policy(config),
    }
}

/// The dispatcher's settings: the configured limits, a lease that outlasts an attempt.
fn dispatch_config(settings: DispatchSettings) -> DispatchConfig {
    let defaults = DispatchConfig::default();
    DispatchConfig {
        max_in_flight: settings.concurrency,
        max_in_flight_per_target: settings.per_target,
        lease_for: settings.lease(),
        attempt_timeout: settings.timeout,
        retry: RetryPolicy {
            max_attempts: settings.max_attempts,
            ..defaults.retry
        },
        ..defaults
    }
}

/// The background work of a node: writes coalesced rejections every second, forgets idle
/// rate-limit windows (and ended refusals), deletes shared buckets that left every window every
/// minute, purges invocations past retention every hour; writes the last counts when stopped.
async fn maintain<
    A: Adapters<Rejections = CoalescingCounter<SystemEntropy>, Limiter = NodeLimiter>,
>(
    rejections: CoalescingCounter<SystemEntropy>,
    limiter: NodeLimiter,
    retention: Retention<A>,
    store: A::Store,
    mut stopped: watch::Receiver<bool>,
) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = tokio::time::interval(SWEEP_WINDOWS_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                flush_rejections(&rejections, &store).await;
                limiter.forget_idle(retention.clock.now());
            }
            _ = sweep.tick() => limiter.sweep(retention.clock.now()).await,
            _ = purge.tick() => match retention.run_once().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged invocations past retention"),
                Err(e) => tracing::warn!(error = %ErrorChain(&e), "purging old invocations failed; will retry"),
            },
            _ = stopped.changed() => break,
        }
    }
    flush_rejections(&rejections, &store).await;
}

async fn flush_rejections<S: Store>(rejections: &CoalescingCounter<SystemEntropy>, store: &S) {
    if rejections.pending() == 0 {
        return;
    }
    if let Err(e) = rejections.flush_into(store).await {
        tracing::warn!(error = %ErrorChain(&e), "writing coalesced rejections failed; will retry");
    }
}
