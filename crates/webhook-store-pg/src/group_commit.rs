//! Group commit for [`InvocationLog::record_invocation`](webhook_domain::ports::InvocationLog):
//! concurrent callers share one transaction, and each still gets its own result.
//!
//! Writers take every request queued (up to the batch size), insert the invocations and tasks
//! with multi-row `INSERT`s, move the webhooks' `last_triggered_at`, and commit once. When a
//! batch fails for a reason that may be one caller's (a duplicate id), each request is written
//! again in its own transaction so that only that caller sees the failure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use diesel::sql_types;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::{AsyncConnection as _, RunQueryDsl as _};
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;
use webhook_domain::model::{Invocation, InvocationOutcome, Task};
use webhook_domain::ports::StoreError;

use crate::Inner;
use crate::error::{TxError, store_error};
use crate::rows::{NewInvocation, NewTask, at};
use crate::schema::{invocations, tasks};

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

/// Moves the `last_triggered_at` of the webhooks `$1` forward to the matching `$2`, in one
/// round trip. The rows are locked in id order (the sort under the lock, in a CTE that is always
/// run first) so that concurrent writers lock webhooks in one order. The lock is `FOR NO KEY
/// UPDATE`, as a plain UPDATE takes: `FOR UPDATE` would conflict with the key-share locks that
/// another writer's task and invocation inserts hold on the same webhooks, and deadlock.
const TOUCH_WEBHOOKS: &str = "\
WITH locked AS MATERIALIZED (
    SELECT w.id, v.at
    FROM webhooks w JOIN unnest($1::uuid[], $2::timestamptz[]) AS v(id, at) ON w.id = v.id
    WHERE w.last_triggered_at IS NULL OR w.last_triggered_at < v.at
    ORDER BY w.id
    FOR NO KEY UPDATE OF w
)
UPDATE webhooks AS w SET last_triggered_at = l.at
FROM locked l
WHERE w.id = l.id AND (w.last_triggered_at IS NULL OR w.last_triggered_at < l.at)";

/// Writes `batch` in one transaction.
async fn write(inner: &Inner, batch: &[Request]) -> Result<(), StoreError> {
    let invocation_rows: Vec<NewInvocation<'_>> = batch
        .iter()
        .map(|r| NewInvocation::from(&r.invocation))
        .collect();
    let task_rows: Vec<NewTask<'_>> = batch
        .iter()
        .filter_map(|r| r.task.as_ref().map(|t| NewTask::new(t, &r.invocation)))
        .collect();
    // The latest accepted invocation per webhook, in id order so that writers lock webhooks
    // in one order and never deadlock.
    let mut triggered: BTreeMap<Uuid, OffsetDateTime> = BTreeMap::new();
    for request in batch {
        let invocation = &request.invocation;
        if invocation.outcome == InvocationOutcome::Accepted {
            let received = at(invocation.received_at);
            triggered
                .entry(*invocation.webhook_id.as_uuid())
                .and_modify(|t| *t = (*t).max(received))
                .or_insert(received);
        }
    }

    let (webhook_ids, received_ats): (Vec<Uuid>, Vec<OffsetDateTime>) =
        triggered.iter().map(|(id, at)| (*id, *at)).unzip();

    let mut conn = inner.conn().await?;
    let result = conn
        .transaction(async |conn| {
            diesel::insert_into(invocations::table)
                .values(&invocation_rows)
                .execute(conn)
                .await?;
            if !task_rows.is_empty() {
                diesel::insert_into(tasks::table)
                    .values(&task_rows)
                    .execute(conn)
                    .await?;
            }
            if !triggered.is_empty() {
                diesel::sql_query(TOUCH_WEBHOOKS)
                    .bind::<sql_types::Array<sql_types::Uuid>, _>(&webhook_ids)
                    .bind::<sql_types::Array<sql_types::Timestamptz>, _>(&received_ats)
                    .execute(conn)
                    .await?;
            }
            Ok::<_, TxError>(())
        })
        .await;
    result.map_err(|e| store_error(e, conn.is_broken()))
}
