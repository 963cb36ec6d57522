//! webhookd's PostgreSQL store: the store ports of `webhook-domain` on diesel-async, with a
//! deadpool connection pool, embedded migrations and a group-commit writer for ingest.
//!
//! Several nodes may share one database: tasks are claimed with `FOR UPDATE SKIP LOCKED` under
//! a lease, migrations are serialized by an advisory lock, and changes to webhooks and
//! organizations are announced to every node with `NOTIFY` ([`ChangeListener`]). The rate-limit
//! windows can be shared too ([`PgRateLimiter`]), so that quotas hold across the nodes.

mod attempt;
mod changes;
mod error;
mod group_commit;
mod key_check;
mod limiter;
mod migrate;
mod prepared;
mod record;
mod rows;
mod schema;
mod search;
mod store;
#[cfg(feature = "test-util")]
pub mod test_db;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use webhook_domain::ports::StoreError;

pub use changes::{
    APPLICATION_NAME, CHANNEL, ChangeEvent, ChangeListener, ListenerOptions, UrlError,
};
pub use limiter::{PgRateLimiter, RateLimiterOptions};
pub use migrate::MigrateError;

use crate::error::{PoolTimeout, pool_error};
use crate::group_commit::GroupCommit;

/// How a [`PgStore`] uses the database.
#[derive(Debug, Clone, Copy)]
pub struct PgStoreOptions {
    /// Most connections the pool opens, the group-commit writers' included.
    pub max_connections: usize,
    /// How long an operation waits for a connection before the store reports `Unavailable`.
    pub acquire_timeout: Duration,
    /// Background tasks that commit recorded invocations, each on its own connection.
    ///
    /// Two by default: while one waits for its commit, the other gathers and sends the next
    /// batch. More split the queue into smaller batches, which cost PostgreSQL more per event;
    /// three and four measured no faster in `cargo xtask bench ingest`.
    pub writers: usize,
    /// Most invocations one group commit writes.
    pub max_batch: usize,
    /// How long a write whose connection was lost during its commit keeps reading back its
    /// ids to find out whether it committed, before it answers `OutcomeUnknown`.
    pub outcome_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            writers: 2,
            max_batch: 128,
            outcome_timeout: Duration::from_secs(10),
        }
    }
}

/// The store ports on PostgreSQL. Cheap to clone: clones share the pool and the writers.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
    writer: GroupCommit,
}

struct Inner {
    pool: Pool<AsyncPgConnection>,
    acquire_timeout: Duration,
    outcome_timeout: Duration,
    /// A connection loss the next group commit simulates (the contract suite's hook).
    #[cfg(feature = "test-util")]
    commit_fault: std::sync::Mutex<Option<group_commit::CommitFault>>,
    /// Kept for test support, which drops the database it names; never shown.
    #[cfg_attr(
        not(feature = "test-util"),
        expect(dead_code, reason = "read by test support only")
    )]
    url: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PgStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// The store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The migrations could not be applied.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The pool could not be built.
    #[error("the connection pool could not be built")]
    Pool(#[source] diesel_async::pooled_connection::deadpool::BuildError),
    /// The database did not answer.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
}

impl PgStore {
    /// Applies pending migrations, then opens the pool and starts the group-commit writers
    /// (on the current tokio runtime).
    pub async fn connect(url: &str, options: PgStoreOptions) -> Result<Self, ConnectError> {
        Self::migrate(url).await?;
        let store = Self::open(url, options)?;
        // Fail now, not on the first request, when the database cannot be reached.
        store.ping().await.map_err(ConnectError::Unavailable)?;
        let indexed = store
            .index_unsearchable()
            .await
            .map_err(ConnectError::Unavailable)?;
        if indexed > 0 {
            tracing::info!(
                invocations = indexed,
                "indexed the words of invocations logged before the word index"
            );
        }
        Ok(store)
    }

    /// Opens the pool without migrating or connecting: the first operation connects.
    pub fn open(url: &str, options: PgStoreOptions) -> Result<Self, ConnectError> {
        let mut config = ManagerConfig::default();
        // The pool drops connections that a failure closed; checking each one with a query
        // before use would cost a round trip per operation.
        config.recycling_method = RecyclingMethod::Fast;
        let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
            url.to_owned(),
            config,
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(options.writers + 1))
            .build()
            .map_err(ConnectError::Pool)?;
        let inner = Arc::new(Inner {
            pool,
            acquire_timeout: options.acquire_timeout,
            outcome_timeout: options.outcome_timeout,
            #[cfg(feature = "test-util")]
            commit_fault: std::sync::Mutex::default(),
            url: url.to_owned(),
        });
        let writer = GroupCommit::start(&inner, options.writers.max(1), options.max_batch.max(1));
        Ok(Self { inner, writer })
    }

    /// Applies the pending migrations (`webhookd migrate`). Safe to run from several nodes at
    /// once: they take turns on an advisory lock.
    pub async fn migrate(url: &str) -> Result<(), MigrateError> {
        migrate::run(url).await
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        use diesel_async::SimpleAsyncConnection as _;
        let mut conn = self.conn().await?;
        conn.batch_execute("SELECT 1")
            .await
            .map_err(|e| error::store_error(e.into(), true))
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        self.inner.conn().await
    }
}

impl Inner {
    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        match tokio::time::timeout(self.acquire_timeout, self.pool.get()).await {
            Ok(conn) => conn.map_err(pool_error),
            Err(_) => Err(StoreError::Unavailable(Box::new(PoolTimeout))),
        }
    }
}
