//! webhookd as a library: its configuration, and [`Node`], the one composition root through
//! which the binary, the end-to-end tests and the benches build a node. The binary (`main.rs`)
//! only parses the command line, calls these, and prints what they return.

pub mod config;
mod limiter;
mod node;
mod route_changes;

use std::net::TcpListener;
use std::pin::Pin;
use std::time::Duration;

use actix_web::{App, HttpServer};

use anyhow::{Context as _, anyhow};
use webhook_domain::model::{Organization, OrganizationId, PublicUrl};
use webhook_domain::ports::Store;
use webhook_domain::service::manage::{CreatedApiKey, NewApiKey};
use webhook_domain::service::{KeyCheck, KeyCheckError, NewOrganization};
use webhook_store_pg::{PgStore, PgStoreOptions, RateLimiterOptions};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};
use webhook_system::MasterKey;

pub use limiter::NodeLimiter;
pub use node::{Node, NodeAdapters, NodeParts, outbound_policy};

use crate::config::{Config, RateLimiterKind};

/// The store `config` names: PostgreSQL with a database URL, else SQLite in the data directory.
#[derive(Debug)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Opens (and migrates) the configured store.
    ///
    /// # Errors
    /// When the data directory cannot be made or the store cannot be opened.
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        if let Some(url) = &config.database_url {
            let store = PgStore::connect(url, PgStoreOptions::default())
                .await
                .context("connecting to PostgreSQL")?;
            return Ok(Self::Postgres(store));
        }
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let path = config.data_dir.join("webhookd.db");
        let store = SqliteStore::open(SqliteOptions::new(&path))
            .await
            .with_context(|| format!("opening the SQLite database {}", path.display()))?;
        Ok(Self::Sqlite(store))
    }

    /// Lets go of the store: SQLite's writer finishes and stops.
    pub async fn close(self) {
        if let Self::Sqlite(store) = self {
            store.close().await;
        }
    }
}

/// The master key `config` names (`--master-key`), or the one in the data directory, made on
/// first use.
///
/// # Errors
/// When the key is malformed, or cannot be read or written.
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(text) = &config.master_key {
        return MasterKey::from_base64(text).context("reading --master-key");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("master.key");
    MasterKey::load_or_create(&path).context("loading the master key")
}

/// Applies the PostgreSQL migrations (SQLite migrates when it opens).
///
/// # Errors
/// When the database cannot be reached or a migration fails.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    if let Some(url) = &config.database_url {
        return PgStore::migrate(url)
            .await
            .context("migrating the PostgreSQL database");
    }
    AnyStore::open(config).await?.close().await;
    Ok(())
}

/// Serves until SIGTERM or SIGINT. On an empty store it first creates the default organization
/// and hands it, with its admin key, to `first_start` (which shows the key once).
///
/// A PostgreSQL database that cannot be reached at start is waited for: the node retries with
/// exponential backoff (from [`FIRST_RETRY`] up to [`MAX_RETRY`]), logging each try, while its
/// listener answers `/healthz` 200 and everything else 503 `store_unavailable`; a signal stops
/// the wait.
///
/// # Errors
/// When the SQLite store, the master key or the listener cannot be had, or the server fails.
pub async fn serve(
    config: &Config,
    first_start: impl FnOnce(&NewOrganization),
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener
        .local_addr()
        .context("reading the listening address")?;
    let public_url = config.public_url_for(address)?;
    let key = master_key(config)?;
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let Some(store) = open_while_starting(config, &listener, shutdown.as_mut()).await? else {
        tracing::info!("stopped before the store opened");
        return Ok(());
    };
    on_store(
        config,
        public_url,
        key,
        store,
        Serve {
            listener,
            first_start,
            shutdown,
            key_source: KeySource::of(config),
        },
    )
    .await
}

/// Where a node's master key came from and which store it serves, for the message that
/// refuses another key.
struct KeySource {
    /// The key file, or `None` when the key was configured.
    file: Option<std::path::PathBuf>,
    postgres: bool,
}

impl KeySource {
    fn of(config: &Config) -> Self {
        Self {
            file: config
                .master_key
                .is_none()
                .then(|| config.data_dir.join("master.key")),
            postgres: config.database_url.is_some(),
        }
    }

    /// Refuses to serve: the store's secrets are sealed with another key than this node's.
    fn mismatch(&self) -> anyhow::Error {
        let ours = match &self.file {
            None => "the key set with --master-key or WEBHOOKD_MASTER_KEY".to_owned(),
            Some(path) => format!("the key in {}", path.display()),
        };
        let remedy = if self.postgres {
            "Every node on one database must hold the same key: copy master.key from a node \
             that serves this database into this node's data directory (mode 0600), or set \
             WEBHOOKD_MASTER_KEY to its contents on every node"
        } else {
            "Start with the key this database was first started with: the data directory's \
             master.key, or the --master-key (WEBHOOKD_MASTER_KEY) given then"
        };
        anyhow!(
            "refusing to start: this node's master key ({ours}) is not the key this database's \
             secrets are sealed with, so none of them would open. {remedy}"
        )
    }
}

/// The first wait before opening the store again.
pub const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between two tries to open the store.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Opens the store; while a PostgreSQL database cannot be reached, answers on `listener` as a
/// node that is not ready and tries again with backoff. `None` when `shutdown` came first.
async fn open_while_starting(
    config: &Config,
    listener: &TcpListener,
    mut shutdown: Pin<&mut impl Future<Output = anyhow::Result<()>>>,
) -> anyhow::Result<Option<AnyStore>> {
    let mut error = match AnyStore::open(config).await {
        Ok(store) => return Ok(Some(store)),
        // A SQLite file that cannot be opened will not mend by waiting.
        Err(e) if config.database_url.is_none() => return Err(e),
        Err(e) => e,
    };
    let address = listener
        .local_addr()
        .context("reading the listening address")?;
    let starting = HttpServer::new(|| App::new().configure(webhook_http::configure_starting))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener.try_clone().context("sharing the listener")?)
        .with_context(|| format!("serving on {address}"))?
        .run();
    let handle = starting.handle();
    let starting = tokio::spawn(starting);
    tracing::info!("listening on http://{address} (not ready until the store opens)");
    let mut delay = FIRST_RETRY;
    let mut tries: u32 = 1;
    let outcome = loop {
        tracing::warn!(
            tries,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error = format!("{error:#}"),
            "the store cannot be opened; trying again"
        );
        let opened = tokio::select! {
            signal = shutdown.as_mut() => break signal.map(|()| None),
            opened = async {
                tokio::time::sleep(delay).await;
                AnyStore::open(config).await
            } => opened,
        };
        tries += 1;
        match opened {
            Ok(store) => {
                tracing::info!(tries, "the store is open");
                break Ok(Some(store));
            }
            Err(e) => error = e,
        }
        delay = (delay * 2).min(MAX_RETRY);
    };
    handle.stop(true).await;
    let _ = starting.await;
    outcome
}

/// Creates an organization and its first admin key.
///
/// # Errors
/// When the name is invalid or the store fails.
pub async fn create_organization(config: &Config, name: &str) -> anyhow::Result<NewOrganization> {
    on_node(
        config,
        config.public_url_for(config.listen)?,
        CreateOrganization(name),
    )
    .await
}

/// Every organization, oldest first.
///
/// # Errors
/// When the store fails.
pub async fn organizations(config: &Config) -> anyhow::Result<Vec<Organization>> {
    on_node(
        config,
        config.public_url_for(config.listen)?,
        ListOrganizations,
    )
    .await
}

/// Creates an API key in an existing organization.
///
/// # Errors
/// When the organization does not exist, the input is invalid or the store fails.
pub async fn create_api_key(
    config: &Config,
    organization: &str,
    new: NewApiKey,
) -> anyhow::Result<CreatedApiKey> {
    let organization_id: OrganizationId = organization
        .parse()
        .map_err(|_| anyhow!("--organization {organization:?} is not an organization id"))?;
    let public_url = config.public_url_for(config.listen)?;
    on_node(config, public_url, CreateApiKey(organization_id, new)).await
}

/// Something to do with a production node, whichever store it has.
trait WithNode {
    type Output;

    async fn run<S: Store + Clone + 'static>(
        self,
        node: Node<NodeAdapters<S>>,
    ) -> anyhow::Result<Self::Output>;
}

/// Builds a production node on the configured store, runs `work` on it, and closes the store.
async fn on_node<W: WithNode>(
    config: &Config,
    public_url: PublicUrl,
    work: W,
) -> anyhow::Result<W::Output> {
    let key = master_key(config)?;
    let store = AnyStore::open(config).await?;
    on_store(config, public_url, key, store, work).await
}

/// Builds a production node on `store`, runs `work` on it, and closes the store.
async fn on_store<W: WithNode>(
    config: &Config,
    public_url: PublicUrl,
    key: MasterKey,
    store: AnyStore,
    work: W,
) -> anyhow::Result<W::Output> {
    match store {
        AnyStore::Sqlite(store) => {
            let parts = NodeParts::production(config, store.clone(), key, public_url);
            let result = match Node::build(config, parts) {
                Ok(node) => work.run(node).await,
                Err(e) => Err(e),
            };
            store.close().await;
            result
        }
        AnyStore::Postgres(store) => {
            let limiter = match config.rate_limiter() {
                RateLimiterKind::Shared => {
                    NodeLimiter::Shared(store.rate_limiter(RateLimiterOptions::default()))
                }
                RateLimiterKind::Memory => NodeLimiter::memory(),
            };
            let parts = NodeParts::production(config, store, key, public_url);
            work.run(Node::build_with_limiter(config, parts, limiter)?)
                .await
        }
    }
}

struct Serve<F, D> {
    listener: TcpListener,
    first_start: F,
    shutdown: D,
    key_source: KeySource,
}

impl<F: FnOnce(&NewOrganization), D: Future<Output = anyhow::Result<()>>> WithNode for Serve<F, D> {
    type Output = ();

    async fn run<S: Store + Clone + 'static>(
        self,
        node: Node<NodeAdapters<S>>,
    ) -> anyhow::Result<()> {
        match node.bootstrap().check_master_key().await {
            Ok(KeyCheck::Kept) => tracing::info!(
                "the store now keeps a check of this node's master key: every node on it must \
                 hold the same key"
            ),
            Ok(KeyCheck::Matched) => {}
            Err(KeyCheckError::Mismatch) => return Err(self.key_source.mismatch()),
            Err(e) => return Err(e.into()),
        }
        if let Some(created) = node
            .bootstrap()
            .run_once()
            .await
            .context("creating the default organization")?
        {
            tracing::info!(org.id = %created.organization.id, "created the default organization");
            (self.first_start)(&created);
        }
        node.run(self.listener, self.shutdown).await
    }
}

struct CreateOrganization<'a>(&'a str);

impl WithNode for CreateOrganization<'_> {
    type Output = NewOrganization;

    async fn run<S: Store + Clone + 'static>(
        self,
        node: Node<NodeAdapters<S>>,
    ) -> anyhow::Result<NewOrganization> {
        node.bootstrap()
            .create_organization(self.0)
            .await
            .context("creating the organization")
    }
}

struct ListOrganizations;

impl WithNode for ListOrganizations {
    type Output = Vec<Organization>;

    async fn run<S: Store + Clone + 'static>(
        self,
        node: Node<NodeAdapters<S>>,
    ) -> anyhow::Result<Vec<Organization>> {
        node.bootstrap()
            .organizations()
            .await
            .context("listing the organizations")
    }
}

struct CreateApiKey(OrganizationId, NewApiKey);

impl WithNode for CreateApiKey {
    type Output = CreatedApiKey;

    async fn run<S: Store + Clone + 'static>(
        self,
        node: Node<NodeAdapters<S>>,
    ) -> anyhow::Result<CreatedApiKey> {
        let Self(organization_id, new) = self;
        node.bootstrap()
            .create_api_key(organization_id, new)
            .await
            .with_context(|| format!("creating an API key in organization {organization_id}"))
    }
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
