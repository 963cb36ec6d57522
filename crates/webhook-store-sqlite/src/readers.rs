//! Read-only connections used on blocking threads, so that readers never wait for the writer
//! (WAL lets them read the last commit while a write is in progress).

use std::sync::{Arc, Mutex};

use diesel::sqlite::SqliteConnection;
use tokio::sync::Semaphore;
use webhook_domain::ports::StoreError;

use crate::error::Failure;

/// Opens one configured connection.
pub(crate) type Opener = Arc<dyn Fn() -> Result<SqliteConnection, Failure> + Send + Sync>;

/// A small pool: at most `size` reads run at once, each on a blocking thread with a connection
/// of its own. Connections are opened on first need and reused.
pub(crate) struct ReadPool {
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    open: Opener,
}

impl std::fmt::Debug for ReadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadPool")
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

/// A read whose blocking task ended without an answer (it panicked).
#[derive(Debug, thiserror::Error)]
#[error("a read of the store did not complete")]
struct ReadAborted(#[source] tokio::task::JoinError);

impl ReadPool {
    pub(crate) fn new(size: usize, open: Opener) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size.max(1))),
            open,
        }
    }

    /// Runs `query` on a read connection on a blocking thread.
    pub(crate) async fn read<T, F>(self: &Arc<Self>, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<T, Failure> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let pool = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
            let mut conn = match idle {
                Some(conn) => conn,
                None => (pool.open)().map_err(Failure::into_store)?,
            };
            let result = query(&mut conn).map_err(Failure::into_store);
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            result
        });
        task.await
            .map_err(|e| StoreError::Internal(Box::new(ReadAborted(e))))?
    }
}
