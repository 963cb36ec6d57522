//! webhookd's embedded default store: every store port of `webhook_domain::ports` on one SQLite
//! file, with no database server to run.
//!
//! # Durability
//!
//! The file is opened in WAL mode. With [`Synchronous::Full`] (the default) every commit is
//! flushed to stable storage (`fsync` of the WAL) before the caller is answered, so an
//! acknowledged event survives a process crash *and* a power loss or kernel panic.
//!
//! [`Synchronous::Normal`] flushes only at checkpoints. It stays safe against a crash of the
//! process (the commit is in the OS's page cache and the database is never corrupted), but the
//! last commits before a power loss or an OS crash may be rolled back: an event answered with
//! 202 could then be lost. It makes each commit cheaper; with group commit the gain is small,
//! so choose it only where losing the last moments of writes on power failure is acceptable.
//!
//! # Concurrency
//!
//! SQLite allows one writer at a time. All writes go to one writer thread that owns the write
//! connection; it takes every write queued since its last commit (up to
//! [`SqliteOptions::max_batch`]) and commits them in one `BEGIN IMMEDIATE` transaction, each
//! inside its own savepoint — group commit: concurrent callers share one `fsync`, and each
//! still gets its own result (see `writer`). Reads run on a small pool of read-only
//! connections on blocking threads. Nothing blocks the async runtime.
//!
//! # Files
//!
//! The database and its `-wal` and `-shm` companions are readable by their owner only (mode
//! 0600 on Unix, whatever the umask): the file is created private before SQLite opens it, and
//! SQLite gives the companions the database file's mode. Files left more open by an older
//! version are made private when the store opens, and a data directory other users can enter
//! is warned about.
//!
//! # Schema
//!
//! The migrations in `migrations/sqlite/` are embedded and applied when the store is opened,
//! with foreign keys off so that a migration may rebuild a table others reference; the foreign
//! keys are checked once they are applied.

mod checkpoint;
#[cfg(feature = "test-util")]
mod contract;
mod error;
mod files;
mod prepared;
mod readers;
mod rows;
mod schema;
mod search;
mod store;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use diesel::RunQueryDsl as _;
use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};
use webhook_domain::ports::StoreError;

use crate::checkpoint::Checkpointer;
use crate::error::Failure;
use crate::readers::ReadPool;
use crate::writer::WriterHandle;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// SQLite's `synchronous` setting: how hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// Every commit is on stable storage before it is acknowledged.
    #[default]
    Full,
    /// Commits survive a process crash but the last ones may be lost on power failure.
    Normal,
}

impl Synchronous {
    const fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

/// How to open the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file; created with its directory's `-wal` and `-shm` companions.
    pub path: PathBuf,
    /// See [`Synchronous`]; `Full` by default.
    pub synchronous: Synchronous,
    /// Reads that may run at once, each on its own connection.
    pub read_connections: usize,
    /// How long a statement waits for a lock held by another connection or process before the
    /// operation fails with `Unavailable`.
    pub busy_timeout: Duration,
    /// Most writes committed in one transaction.
    pub max_batch: usize,
    /// Writes that may wait for the writer before callers wait to queue theirs.
    pub write_queue: usize,
}

impl SqliteOptions {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            synchronous: Synchronous::Full,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            max_batch: 256,
            write_queue: 4096,
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file could not be opened or configured.
    #[error("cannot open the SQLite database {path}")]
    Connection {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// A migration failed.
    #[error("cannot migrate the SQLite database {path}")]
    Migration {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The writer thread could not be started.
    #[error("cannot start the SQLite writer thread")]
    Thread(#[source] std::io::Error),
}

/// The store on one SQLite file. Cheap to clone: clones share the writer and the readers.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Option<WriterHandle>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpoint_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReadPool>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, applies pending migrations and starts the
    /// writer. Blocking work runs off the async runtime.
    pub async fn open(options: SqliteOptions) -> Result<Self, OpenError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(&options))
            .await
            .map_err(|e| OpenError::Thread(std::io::Error::other(e)))?
    }

    fn open_blocking(options: &SqliteOptions) -> Result<Self, OpenError> {
        let path = options.path.clone();
        let connection_error = |failure: Failure| OpenError::Connection {
            path: path.clone(),
            source: failure.into_store(),
        };
        files::make_private(&path)
            .map_err(|e| connection_error(Failure::Store(StoreError::Unavailable(Box::new(e)))))?;
        let mut conn = connect(options, false).map_err(connection_error)?;
        conn.batch_execute("PRAGMA journal_mode = WAL;")
            .map_err(|e| connection_error(e.into()))?;
        migrate(&mut conn).map_err(|source| OpenError::Migration {
            path: path.clone(),
            source,
        })?;
        let indexed = search::backfill(&mut conn).map_err(|failure| OpenError::Migration {
            path: path.clone(),
            source: Box::new(failure.into_store()),
        })?;
        if indexed > 0 {
            tracing::info!(
                invocations = indexed,
                "indexed the words of invocations logged before the word index"
            );
        }
        let reader_options = options.clone();
        let readers = Arc::new(ReadPool::new(
            options.read_connections,
            Arc::new(move || connect(&reader_options, true)),
        ));
        let (checkpointer, checkpoint_thread) =
            Checkpointer::spawn(connect(options, false).map_err(connection_error)?)
                .map_err(OpenError::Thread)?;
        let (writer, thread) =
            writer::spawn(conn, checkpointer, options.write_queue, options.max_batch)
                .map_err(OpenError::Thread)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(Some(writer)),
                writer_thread: Mutex::new(Some(thread)),
                checkpoint_thread: Mutex::new(Some(checkpoint_thread)),
                readers,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops accepting writes, lets the writer commit what is queued, and waits for it and the
    /// checkpointer to end.
    /// Writes through any clone then fail with `Unavailable`; reads keep working.
    pub async fn close(&self) {
        let writer = self.inner.writer.lock().ok().and_then(|mut w| w.take());
        drop(writer);
        let threads = [&self.inner.writer_thread, &self.inner.checkpoint_thread]
            .map(|slot| slot.lock().ok().and_then(|mut t| t.take()));
        // Other handles may still be sending; the writer ends once they are done, and the
        // checkpointer after it, with a last checkpoint.
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads.into_iter().flatten() {
                let _ = thread.join();
            }
        })
        .await;
    }

    /// Whether the database answers a trivial query (for readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| {
            conn.batch_execute("SELECT 1;")?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut SqliteConnection) -> Result<T, Failure> + Send + 'static,
    {
        let writer = self
            .inner
            .writer
            .lock()
            .ok()
            .and_then(|w| w.as_ref().cloned())
            .ok_or_else(|| StoreError::Unavailable(Box::new(error::WriterClosed)))?;
        writer.write(op).await
    }

    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, Failure> + Send + 'static,
    {
        self.inner.readers.read(query).await
    }
}

/// Applies the pending migrations as SQLite's procedure for schema changes asks: with foreign
/// keys off, each migration in a transaction of its own (with its record in
/// `__diesel_schema_migrations`), and every foreign key checked once they are done. A migration
/// that rebuilds a table drops the old one while other tables still reference it; with foreign
/// keys on, that drop would delete the old rows first and fail on their references.
fn migrate(
    conn: &mut SqliteConnection,
) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    conn.batch_execute("PRAGMA foreign_keys = OFF;")?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.len());
    conn.batch_execute("PRAGMA foreign_keys = ON;")?;
    if applied? == 0 {
        return Ok(());
    }
    let broken: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM pragma_foreign_key_check)",
    ))
    .get_result(conn)?;
    if broken > 0 {
        return Err(Box::new(error::BrokenReferences(broken)));
    }
    Ok(())
}

/// Pages (4 KiB) the WAL may hold before the writer checkpoints it itself: 16 MiB.
const WAL_CHECKPOINT_PAGES: u32 = 4_000;

/// Opens one connection with the store's pragmas.
fn connect(options: &SqliteOptions, read_only: bool) -> Result<SqliteConnection, Failure> {
    let url = options.path.to_str().ok_or_else(|| {
        Failure::Store(StoreError::Unavailable(
            "the database path is not valid UTF-8".into(),
        ))
    })?;
    let mut conn = SqliteConnection::establish(url)
        .map_err(|e| Failure::Store(StoreError::Unavailable(Box::new(e))))?;
    let millis = u64::try_from(options.busy_timeout.as_millis()).unwrap_or(u64::MAX);
    // The checkpointer thread copies the WAL back into the database as the writer commits; the
    // writer itself checkpoints only once the WAL holds `WAL_CHECKPOINT_PAGES` pages (SQLite's
    // default is 1,000), which lets the WAL start over under a load that never pauses.
    conn.batch_execute(&format!(
        "PRAGMA busy_timeout = {millis};
         PRAGMA synchronous = {};
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES};
         PRAGMA query_only = {};",
        options.synchronous.pragma(),
        if read_only { "ON" } else { "OFF" },
    ))?;
    Ok(conn)
}
