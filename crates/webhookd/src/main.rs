//! The `webhookd` binary: loads the configuration, builds the adapters, wires them to the use
//! cases and the HTTP server, and runs the subcommands. No business logic lives here.

mod config;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::{Context as _, anyhow};
use clap::Parser as _;
use serde_json::json;
use tokio::sync::{Notify, watch};
use webhook_dispatch::{
    DeliveryConfig, DispatchConfig, DispatchMetrics, Dispatcher, HttpDelivery, OutboundGuard,
    OutboundPolicy, WakeOnAccept,
};
use webhook_domain::model::{
    ApiKeyId, Name, Organization, OrganizationId, PublicUrl, RatePerMinute, Role, Timestamp,
};
use webhook_domain::ports::{Clock as _, Store};
use webhook_domain::rules::RetryPolicy;
use webhook_domain::service::manage::{Caller, CreatedApiKey, Management, NewApiKey, Stale};
use webhook_domain::service::{Ingest, IngestConfig, StoreResolver, random_id};
use webhook_http::api::{ManageContext, ManageState};
use webhook_http::{AppState, ClientIpPolicy, Metrics};
use webhook_store_mem::{CacheConfig, CachedResolver, CoalescingCounter, MemoryRateLimiter};
use webhook_store_pg::{PgStore, PgStoreOptions};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};
use webhook_system::{MasterKey, RingSealer, Sha256KeyHasher, SystemClock, SystemEntropy};

use crate::config::{ApiKeyCommand, Cli, Command, Config, DispatchSettings, LogFormat, OrgCommand};

/// How often coalesced rejections are written and idle rate-limit windows forgotten.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often invocations past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How long shutdown waits for in-flight requests.
const SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// The shortest lease on a claimed task; longer delivery timeouts get twice their length.
const MIN_LEASE: Duration = Duration::from_secs(60);
/// How long to wait for a connection to a target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.settings)?;
    init_tracing(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command.unwrap_or(Command::Serve), config))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Opens the configured store and runs `command` on it.
async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    if let Some(url) = &config.database_url {
        if matches!(command, Command::Migrate) {
            PgStore::migrate(url)
                .await
                .context("migrating the PostgreSQL database")?;
            tracing::info!("the PostgreSQL database is migrated");
            return Ok(());
        }
        let store = PgStore::connect(url, PgStoreOptions::default())
            .await
            .context("connecting to PostgreSQL")?;
        run_on(command, &config, store).await
    } else {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let path = config.data_dir.join("webhookd.db");
        let store = SqliteStore::open(SqliteOptions::new(&path))
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        let result = run_on(command, &config, store.clone()).await;
        store.close().await;
        result
    }
}

async fn run_on<S>(command: Command, config: &Config, store: S) -> anyhow::Result<()>
where
    S: Store + Clone + 'static,
{
    match command {
        Command::Migrate => {
            tracing::info!("the SQLite database is migrated");
            Ok(())
        }
        Command::Serve => serve(config, store).await,
        Command::Org(OrgCommand::Create { name }) => {
            let management = management(config, config.public_url_for(config.listen)?, store)?;
            let (organization, created) = create_organization(&management, &name).await?;
            print_json(&json!({
                "organization": organization_json(&organization),
                "api_key": created.api_key.expose(),
            }));
            Ok(())
        }
        Command::ApiKey(ApiKeyCommand::Create {
            organization,
            name,
            role,
        }) => {
            let organization_id: OrganizationId = organization.parse().map_err(|_| {
                anyhow!("--organization {organization:?} is not an organization id")
            })?;
            let management = management(config, config.public_url_for(config.listen)?, store)?;
            management
                .store
                .organization(organization_id)
                .await
                .with_context(|| format!("finding organization {organization_id}"))?;
            let created = management
                .create_api_key(
                    &operator(organization_id),
                    NewApiKey {
                        name,
                        role: role.as_str().to_owned(),
                    },
                )
                .await
                .context("creating the API key")?;
            print_json(&json!({
                "id": created.key.id,
                "organization_id": created.key.organization_id,
                "name": created.key.name.as_str(),
                "role": created.key.role.as_str(),
                "created_at": created.key.created_at,
                "api_key": created.api_key.expose(),
            }));
            Ok(())
        }
    }
}

#[expect(clippy::print_stdout, reason = "the command's output is its result")]
fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

fn organization_json(organization: &Organization) -> serde_json::Value {
    json!({
        "id": organization.id,
        "name": organization.name.as_str(),
        "rate_limit_per_minute": organization.rate_limit_per_minute.get(),
        "created_at": organization.created_at,
        "updated_at": organization.updated_at,
    })
}

type NodeManagement<S> =
    Management<S, RingSealer, Sha256KeyHasher, SystemClock, SystemEntropy, OutboundGuard>;

fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::from_base64(text).context("reading --master-key");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("master.key");
    MasterKey::load_or_create(&path).context("loading the master key")
}

fn management<S>(
    config: &Config,
    public_url: PublicUrl,
    store: S,
) -> anyhow::Result<NodeManagement<S>> {
    Ok(Management {
        store,
        sealer: RingSealer::new(&master_key(config)?),
        hasher: Sha256KeyHasher,
        clock: SystemClock,
        entropy: SystemEntropy::new(),
        endpoints: OutboundGuard(OutboundPolicy {
            allow_private_targets: config.allow_private_targets,
        }),
        public_url,
    })
}

/// The operator, acting as an admin of `organization_id` from the command line.
fn operator(organization_id: OrganizationId) -> Caller {
    Caller {
        organization_id,
        role: Role::Admin,
        key_id: ApiKeyId::from_uuid(random_id(&SystemEntropy::new())),
    }
}

/// Creates an organization with the default limit and its first admin key.
async fn create_organization<S>(
    management: &NodeManagement<S>,
    name: &str,
) -> anyhow::Result<(Organization, CreatedApiKey)>
where
    S: Store,
{
    let now: Timestamp = management.clock.now();
    let organization = Organization {
        id: OrganizationId::from_uuid(random_id(&management.entropy)),
        name: Name::parse(name).context("invalid organization name")?,
        rate_limit_per_minute: RatePerMinute::ORGANIZATION_DEFAULT,
        created_at: now,
        updated_at: now,
    };
    management
        .store
        .insert_organization(&organization)
        .await
        .context("storing the organization")?;
    let created = management
        .create_api_key(
            &operator(organization.id),
            NewApiKey {
                name: "admin".to_owned(),
                role: Role::Admin.as_str().to_owned(),
            },
        )
        .await
        .context("creating the admin API key")?;
    Ok((organization, created))
}

/// On an empty store, creates the default organization and prints its admin key, once.
async fn first_start<S: Store>(management: &NodeManagement<S>) -> anyhow::Result<()> {
    let count = management
        .store
        .count_organizations()
        .await
        .context("counting organizations")?;
    if count > 0 {
        return Ok(());
    }
    let (organization, created) = create_organization(management, "Default").await?;
    tracing::info!(org.id = %organization.id, "created the default organization");
    print_first_start(&organization, created.api_key.expose());
    Ok(())
}

#[expect(
    clippy::print_stdout,
    reason = "the admin key is shown to the operator once"
)]
fn print_first_start(organization: &Organization, api_key: &str) {
    println!(
        "\nwebhookd: created organization {:?} ({}).\nIts admin API key, shown only this once:\n\n    {api_key}\n\nKeep it: it is stored only as a hash.\n",
        organization.name.as_str(),
        organization.id,
    );
}

async fn serve<S>(config: &Config, store: S) -> anyhow::Result<()>
where
    S: Store + Clone + 'static,
{
    let key = master_key(config)?;
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener
        .local_addr()
        .context("reading the listening address")?;
    let public_url = config.public_url_for(address)?;
    let management = management(config, public_url.clone(), store.clone())?;
    first_start(&management).await?;

    let resolver = CachedResolver::new(
        StoreResolver::new(store.clone(), RingSealer::new(&key)),
        SystemClock,
        CacheConfig::default(),
    );
    let (stop_dispatch, dispatch_stopped) = watch::channel(false);
    let dispatch = Dispatch::start(config, store.clone(), &key, dispatch_stopped)?;
    let limiter = MemoryRateLimiter::new();
    let rejections = CoalescingCounter::new(SystemEntropy::new());
    let ingest = Arc::new(Ingest {
        resolver: resolver.clone(),
        limiter: limiter.clone(),
        log: WakeOnAccept::new(store.clone(), Arc::clone(&dispatch.wake)),
        rejections: rejections.clone(),
        clock: SystemClock,
        entropy: SystemEntropy::new(),
        config: IngestConfig {
            body_limit: config.body_limit,
        },
    });
    let state = web::Data::new(AppState {
        ingest: Arc::clone(&ingest),
        store: store.clone(),
        client_ip: ClientIpPolicy::new(config.trusted_proxies.clone()),
        metrics: Metrics::new_with(|registry| dispatch.metrics.register(registry)),
    });
    let invalidating = resolver.clone();
    let manage = web::Data::new(ManageState {
        management,
        tester: ingest,
        invalidate: move |stale| match stale {
            Stale::Webhook(id) => invalidating.invalidate(id),
            Stale::Organization(id) => invalidating.invalidate_organization(id),
        },
    });

    let server = HttpServer::new(move || {
        App::new().configure(|cfg| {
            webhook_http::configure(cfg, &state);
            register_api(cfg, &manage);
        })
    })
    .workers(config.workers)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
    .listen(listener)
    .with_context(|| format!("serving on {address}"))?;
    tracing::info!(
        public_url = public_url.as_str(),
        workers = config.workers,
        body_limit = config.body_limit,
        "listening on http://{address}"
    );
    if config.allow_private_targets {
        tracing::warn!("delivery to private, loopback and link-local addresses is allowed");
    }
    let server = server.run();
    let handle = server.handle();
    let mut server = tokio::spawn(server);

    let (stop, stopped) = watch::channel(false);
    let maintenance = tokio::spawn(maintain(
        store,
        rejections,
        limiter,
        config.retention_days,
        stopped,
    ));
    let outcome = tokio::select! {
        result = &mut server => {
            result.context("the HTTP server task failed").and_then(|r| r.context("the HTTP server failed"))
        }
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down: finishing in-flight requests and deliveries");
            // Deliveries stop claiming now and drain while the server drains.
            let _ = stop_dispatch.send(true);
            handle.stop(true).await;
            server.await.context("the HTTP server task failed").and_then(|r| r.context("the HTTP server failed"))
        }
    };
    let _ = stop_dispatch.send(true);
    dispatch.finish().await?;
    let _ = stop.send(true);
    maintenance.await.context("the maintenance task failed")?;
    outcome?;
    tracing::info!("stopped");
    Ok(())
}

/// The node's dispatcher, running unless `--no-dispatch`.
struct Dispatch {
    /// Wakes the dispatcher when ingest has committed a task.
    wake: Arc<Notify>,
    /// Its counters and gauges, for `/metrics`.
    metrics: Arc<DispatchMetrics>,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Dispatch {
    /// Builds the dispatcher and, unless disabled, runs it until `stopped` turns true.
    fn start<S>(
        config: &Config,
        store: S,
        key: &MasterKey,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<Self>
    where
        S: Store + Clone + 'static,
    {
        let dispatcher = Dispatcher::new(
            store,
            HttpDelivery::new(delivery_config(config))
                .context("building the HTTP client for deliveries")?,
            RingSealer::new(key),
            SystemClock,
            SystemEntropy::new(),
            dispatch_config(config.dispatch),
        );
        let wake = dispatcher.waker();
        let metrics = dispatcher.metrics();
        if !config.dispatch.enabled {
            tracing::info!("not delivering tasks: this node only ingests (--no-dispatch)");
            return Ok(Self {
                wake,
                metrics,
                running: None,
            });
        }
        tracing::info!(
            concurrency = config.dispatch.concurrency,
            per_target = config.dispatch.per_target,
            "delivering tasks to their targets"
        );
        let running = tokio::spawn(async move {
            dispatcher
                .run(async move {
                    let _ = stopped.wait_for(|stopped| *stopped).await;
                })
                .await;
        });
        Ok(Self {
            wake,
            metrics,
            running: Some(running),
        })
    }

    /// Waits until the stopped dispatcher has let its attempts finish or given their leases back.
    async fn finish(self) -> anyhow::Result<()> {
        if let Some(running) = self.running {
            running.await.context("the dispatcher task failed")?;
        }
        Ok(())
    }
}

/// The HTTP client's settings for deliveries.
fn delivery_config(config: &Config) -> DeliveryConfig {
    DeliveryConfig {
        connect_timeout: CONNECT_TIMEOUT.min(config.dispatch.timeout),
        timeout: config.dispatch.timeout,
        policy: OutboundPolicy {
            allow_private_targets: config.allow_private_targets,
        },
    }
}

/// The dispatcher's settings: the configured limits, a lease that outlasts an attempt.
fn dispatch_config(settings: DispatchSettings) -> DispatchConfig {
    let defaults = DispatchConfig::default();
    DispatchConfig {
        max_in_flight: settings.concurrency,
        max_in_flight_per_target: settings.per_target,
        lease_for: MIN_LEASE.max(settings.timeout * 2),
        retry: RetryPolicy {
            max_attempts: settings.max_attempts,
            ..defaults.retry
        },
        ..defaults
    }
}

fn register_api<A: ManageContext>(cfg: &mut web::ServiceConfig, manage: &web::Data<A>) {
    cfg.app_data(manage.clone());
    webhook_http::api::configure::<A>(cfg);
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("listening for Ctrl-C")?;
    }
    Ok(())
}

/// The background work of a node: writes coalesced rejections every second, forgets idle
/// rate-limit windows, purges invocations past retention every hour; writes the last counts
/// when stopped.
async fn maintain<S: Store>(
    store: S,
    rejections: CoalescingCounter<SystemEntropy>,
    limiter: MemoryRateLimiter,
    retention_days: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let retention = Duration::from_secs(u64::from(retention_days) * 24 * 3600);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                flush_rejections(&rejections, &store).await;
                limiter.forget_idle(SystemClock.now());
            }
            _ = purge.tick() => {
                let before = SystemClock.now().minus(retention);
                match store.purge_invocations(before).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "purged invocations past retention"),
                    Err(e) => tracing::warn!(error = %webhook_http::problem::ErrorChain(&e), "purging old invocations failed; will retry"),
                }
            }
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
        tracing::warn!(error = %webhook_http::problem::ErrorChain(&e), "writing coalesced rejections failed; will retry");
    }
}
