//! Group commit for [`InvocationLog::record_invocation`](webhook_domain::ports::InvocationLog):
//! concurrent callers share one transaction, and each still gets its own result.
//!
//! Writers take every request queued (up to the batch size) and write them with one statement
//! ([`RecordBatch`]), outside an explicit transaction: it inserts the invocations and tasks
//! and commits, in one round trip. When a batch fails for a reason that may be one caller's (a
//! duplicate id, a missing webhook), each request is written again on its own so that only that
//! caller sees the failure; when the database is unavailable (or the batch lost a deadlock),
//! every caller gets that answer at once.

use std::fmt;
use std::sync::Arc;

use diesel_async::RunQueryDsl as _;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::pooled_connection::deadpool::Object;
use tokio::sync::{Mutex, mpsc, oneshot};
use webhook_domain::model::{Invocation, Task};
use webhook_domain::ports::StoreError;

use crate::Inner;
use crate::error::{TxError, store_error};
use crate::record::RecordBatch;

struct Request {
    invocation: Invocation,
    task: Option<Task>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle callers use; the writers stop when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Request>,
}

/// The writers are gone (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the invocation writer has stopped")]
struct WriterStopped;

/// The shared transaction of a group failed; its cause is shared by every caller in it.
#[derive(Debug, thiserror::Error)]
#[error("the group commit failed")]
struct GroupFailed(#[source] Arc<StoreError>);

impl GroupCommit {
    /// Starts `writers` background writers on the current tokio runtime.
    pub(crate) fn start(inner: &Arc<Inner>, writers: usize, max_batch: usize) -> Self {
        let (queue, requests) = mpsc::channel(max_batch * writers * 4);
        let requests = Arc::new(Mutex::new(requests));
        for _ in 0..writers {
            tokio::spawn(write_loop(
                Arc::clone(inner),
                Arc::clone(&requests),
                max_batch,
            ));
        }
        Self { queue }
    }

    /// Queues the write and waits for its commit.
    pub(crate) async fn record(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            invocation: invocation.clone(),
            task: task.cloned(),
            reply,
        };
        self.queue
            .send(request)
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(WriterStopped)))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(WriterStopped)))?
    }
}

impl fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

async fn write_loop(
    inner: Arc<Inner>,
    requests: Arc<Mutex<mpsc::Receiver<Request>>>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // One writer gathers while the others commit: the lock is held only to take a batch.
        let taken = requests.lock().await.recv_many(&mut batch, max_batch).await;
        if taken == 0 {
            return;
        }
        commit(&inner, &mut batch).await;
    }
}

async fn commit(inner: &Inner, batch: &mut Vec<Request>) {
    let result = write(inner, batch).await;
    match result {
        Ok(()) => {
            for request in batch.drain(..) {
                // A caller that stopped waiting no longer needs its answer.
                let _ = request.reply.send(Ok(()));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some(request) = batch.pop() {
                let _ = request.reply.send(Err(error));
            }
        }
        Err(StoreError::Unavailable(cause)) => {
            // Nothing was written, and writing one by one would fail alike.
            let shared = Arc::new(StoreError::Unavailable(cause));
            tracing::warn!(error = %shared, batch.size = batch.len(), "group commit failed");
            for request in batch.drain(..) {
                let error = StoreError::Unavailable(Box::new(GroupFailed(Arc::clone(&shared))));
                let _ = request.reply.send(Err(error));
            }
        }
        Err(_) => {
            for request in batch.drain(..) {
                let result = write(inner, std::slice::from_ref(&request)).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

/// Writes `batch` with one statement, which is atomic on its own.
async fn write(inner: &Inner, batch: &[Request]) -> Result<(), StoreError> {
    let mut statement = RecordBatch::default();
    for request in batch {
        statement.push(&request.invocation, request.task.as_ref());
    }
    let mut conn = inner.conn().await?;
    let Err(error) = statement.execute(&mut conn).await else {
        return Ok(());
    };
    let error = store_error(TxError::Db(error), conn.is_broken());
    if matches!(error, StoreError::Unavailable(_)) {
        // The server may have ended the connection, and says so only in its last message: the
        // pool would hand it out again before it notices. (Outside a transaction no failed
        // rollback marks it broken.)
        drop(Object::take(conn));
    }
    Err(error)
}
