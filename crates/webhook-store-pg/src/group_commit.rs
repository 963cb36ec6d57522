//! Group commit for [`InvocationLog::record_invocation`](webhook_domain::ports::InvocationLog):
//! concurrent callers share one transaction, and each still gets its own result.
//!
//! Writers take every request queued (up to the batch size) and write them with one statement
//! ([`RecordBatch`]), outside an explicit transaction: it inserts the invocations and tasks
//! and commits, in one round trip. When a batch fails for a reason that may be one caller's (a
//! duplicate id, a missing webhook), each request is written again on its own so that only that
//! caller sees the failure; when the database is unavailable (or the batch lost a deadlock),
//! every caller gets that answer at once.
//!
//! A connection lost while the statement was in flight hides whether it committed: the server
//! may have committed it and died before answering. Then the writer reads the batch's ids back
//! ([`confirm`]) until the database answers, within [`PgStoreOptions::outcome_timeout`]:
//! committed → every caller gets `Ok`, not committed → `Unavailable` (nothing was written),
//! no answer in time → `OutcomeUnknown`. A `503 store_unavailable` thus never hides an event
//! that was stored.
//!
//! [`PgStoreOptions::outcome_timeout`]: crate::PgStoreOptions::outcome_timeout

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::pooled_connection::deadpool::Object;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use webhook_domain::model::{Invocation, Task};
use webhook_domain::ports::StoreError;

use crate::Inner;
use crate::error::{TxError, corrupt, may_have_committed, store_error};
use crate::record::RecordBatch;
use crate::schema::invocations;

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

/// The connection was lost while the batch was in flight, and the database did not answer a
/// read-back before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the commit's answer was lost and the database did not answer within {0:?}")]
struct NotConfirmed(Duration, #[source] StoreError);

/// A connection loss that a test makes the next group commit suffer.
#[cfg(feature = "test-util")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitFault {
    /// The connection breaks before the statement reaches the server.
    BeforeCommit,
    /// The server commits, and the connection breaks before its answer arrives.
    AfterCommit,
}

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
        // A writer that went away with the request may have sent it already.
        answer
            .await
            .map_err(|_| StoreError::OutcomeUnknown(Box::new(WriterStopped)))?
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
            share_failure(batch, &shared, StoreError::Unavailable);
        }
        Err(StoreError::OutcomeUnknown(cause)) => {
            // The batch may be durable: writing it again one by one could duplicate it.
            let shared = Arc::new(StoreError::OutcomeUnknown(cause));
            tracing::warn!(error = %shared, batch.size = batch.len(), "group commit outcome unknown");
            share_failure(batch, &shared, StoreError::OutcomeUnknown);
        }
        Err(_) => {
            for request in batch.drain(..) {
                let result = write(inner, std::slice::from_ref(&request)).await;
                let _ = request.reply.send(result);
            }
        }
    }
}

/// Answers every request of `batch` with a `kind` error whose cause is the group's `shared` one.
fn share_failure(
    batch: &mut Vec<Request>,
    shared: &Arc<StoreError>,
    kind: fn(webhook_domain::ports::BoxError) -> StoreError,
) {
    for request in batch.drain(..) {
        let error = kind(Box::new(GroupFailed(Arc::clone(shared))));
        // A caller that stopped waiting no longer needs its answer.
        let _ = request.reply.send(Err(error));
    }
}

/// Writes `batch` with one statement, which is atomic on its own. When the connection is lost
/// with the statement in flight, finds out whether it committed ([`confirm`]).
async fn write(inner: &Inner, batch: &[Request]) -> Result<(), StoreError> {
    let mut statement = RecordBatch::default();
    for request in batch {
        statement.push(&request.invocation, request.task.as_ref());
    }
    let mut conn = live_conn(inner).await?;
    let Err(error) = execute(inner, &statement, &mut conn).await else {
        return Ok(());
    };
    let broken = conn.is_broken();
    let in_doubt = may_have_committed(&error, broken);
    let error = store_error(TxError::Db(error), broken);
    if matches!(error, StoreError::Unavailable(_)) || in_doubt {
        // The server may have ended the connection, and says so only in its last message: the
        // pool would hand it out again before it notices. (Outside a transaction no failed
        // rollback marks it broken.)
        drop(Object::take(conn));
    } else {
        drop(conn);
    }
    if !in_doubt {
        return Err(error);
    }
    let ids: Vec<Uuid> = batch.iter().map(|r| *r.invocation.id.as_uuid()).collect();
    tracing::warn!(error = %error, batch.size = batch.len(), "connection lost during a group commit; reading it back");
    confirm(inner, &ids, error).await
}

/// A pooled connection that is not known to be closed: one that the server closed while it sat
/// in the pool is dropped before anything is sent on it, so that its failure cannot be mistaken
/// for a commit whose answer was lost. (Checking costs no round trip.)
async fn live_conn(inner: &Inner) -> Result<Object<diesel_async::AsyncPgConnection>, StoreError> {
    let status = inner.pool.status();
    for _ in 0..=status.max_size {
        let mut conn = inner.conn().await?;
        if !conn.is_broken() {
            return Ok(conn);
        }
        drop(Object::take(conn));
    }
    inner.conn().await
}

/// Runs `statement` on `conn`, or fails as a test asked ([`CommitFault`]).
async fn execute(
    inner: &Inner,
    statement: &RecordBatch<'_>,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<(), diesel::result::Error> {
    #[cfg(feature = "test-util")]
    {
        let fault = inner
            .commit_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let lost = || {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UnableToSendCommand,
                Box::new(String::from("connection closed (simulated)")),
            )
        };
        match fault {
            Some(CommitFault::BeforeCommit) => return Err(lost()),
            Some(CommitFault::AfterCommit) => {
                statement.execute(conn).await?;
                return Err(lost());
            }
            None => {}
        }
    }
    #[cfg(not(feature = "test-util"))]
    let _ = inner;
    statement.execute(conn).await.map(drop)
}

/// Reads back the invocations `ids` of a batch whose commit's answer was lost (`lost`), until
/// the database answers or [`Inner::outcome_timeout`] passes: `Ok` when the batch is stored,
/// `Unavailable` when it is not (the statement is atomic: all of it or none), `OutcomeUnknown`
/// when the deadline passes first.
async fn confirm(inner: &Inner, ids: &[Uuid], lost: StoreError) -> Result<(), StoreError> {
    let deadline = Instant::now() + inner.outcome_timeout;
    let mut pause = Duration::from_millis(50);
    let mut cause = lost;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(StoreError::OutcomeUnknown(Box::new(NotConfirmed(
                inner.outcome_timeout,
                cause,
            ))));
        }
        match tokio::time::timeout(remaining, stored(inner, ids)).await {
            Ok(Ok(n)) if n == ids.len() => return Ok(()),
            Ok(Ok(0)) => return Err(StoreError::Unavailable(Box::new(cause))),
            Ok(Ok(_)) => return Err(corrupt("a batch of invocations stored in part")),
            Ok(Err(error)) => cause = error,
            Err(_) => continue,
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(remaining)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// How many of the invocations `ids` are stored.
async fn stored(inner: &Inner, ids: &[Uuid]) -> Result<usize, StoreError> {
    let mut conn = inner.conn().await?;
    let result = invocations::table
        .filter(invocations::id.eq_any(ids))
        .count()
        .get_result::<i64>(&mut conn)
        .await;
    match result {
        Ok(n) => usize::try_from(n).map_err(|_| corrupt("a negative count")),
        Err(error) => {
            let broken = conn.is_broken();
            let error = store_error(TxError::Db(error), broken);
            if matches!(error, StoreError::Unavailable(_)) {
                drop(Object::take(conn));
            }
            Err(error)
        }
    }
}
