//! Group commit for [`InvocationLog::record_invocation`](webhook_domain::ports::InvocationLog)
//! and `record_claimed`: concurrent callers share one transaction, and each still gets its own
//! result.
//!
//! Writers take every request queued (up to the batch size) and write them with one statement
//! ([`RecordBatch`]), outside an explicit transaction: it claims the delivery ids, inserts the
//! invocations and tasks and commits, in one round trip. When a batch fails for a reason that
//! may be one caller's (a duplicate id, a missing webhook), each request is written again on its
//! own so that only that caller sees the failure; when the database is unavailable (or the
//! batch lost a deadlock), every caller gets that answer at once.
//!
//! A claim the statement finds held writes nothing of its request, and leaves the rest of the
//! batch alone; once the batch has committed, the writer reads the holder and answers that
//! request `Duplicate`. One batch claims each (webhook, delivery id) once: a later request of
//! the batch claiming the same id waits for the first, as it would have in a batch after it,
//! and is answered from its outcome (a `Duplicate` of whatever holds the claim then), or written
//! in a round of its own when that outcome does not settle it.
//!
//! A connection lost while the statement was in flight hides whether it committed: the server
//! may have committed it and died before answering. Then the writer reads the batch's ids back
//! ([`confirm`]) until the database answers, within [`PgStoreOptions::outcome_timeout`]:
//! committed → every caller gets its answer (a claiming request whose invocation is absent was
//! a duplicate), not committed → `Unavailable` (nothing was written), no answer in time →
//! `OutcomeUnknown`. A `503 store_unavailable` thus never hides an event that was stored.
//!
//! [`PgStoreOptions::outcome_timeout`]: crate::PgStoreOptions::outcome_timeout

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use diesel::{ExpressionMethods as _, QueryDsl as _, QueryableByName};
use diesel_async::RunQueryDsl as _;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::pooled_connection::deadpool::Object;
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;
use uuid::Uuid;
use webhook_domain::model::{
    ClaimOutcome, DeliveryClaim, Invocation, InvocationId, Task, TaskId, Timestamp,
};
use webhook_domain::ports::StoreError;

use crate::Inner;
use crate::error::{TxError, corrupt, may_have_committed, store_error};
use crate::record::RecordBatch;
use crate::rows::ts;
use crate::schema::invocations;

/// How many rounds a claiming request may be written in before it is answered `Unavailable`:
/// a round leaves a request unsettled only when the claim it found held is gone or has lapsed
/// by the time its holder is read, or when that read fails.
const MAX_ROUNDS: u8 = 3;

struct Request {
    invocation: Invocation,
    task: Option<Task>,
    claim: Option<DeliveryClaim>,
    /// The rounds this request was written in without being settled.
    rounds: u8,
    reply: oneshot::Sender<Result<ClaimOutcome, StoreError>>,
}

/// A delivery id claimed on a webhook.
type ClaimKey = (Uuid, String);

impl Request {
    fn claim_key(&self) -> Option<ClaimKey> {
        self.claim.as_ref().map(|claim| {
            (
                *self.invocation.webhook_id.as_uuid(),
                claim.delivery_id.clone(),
            )
        })
    }

    /// Answers the caller; one that stopped waiting no longer needs the answer.
    fn answer(self, result: Result<ClaimOutcome, StoreError>) {
        let _ = self.reply.send(result);
    }
}

/// The invocation that holds a claim, and since when.
#[derive(Debug, Clone, Copy)]
struct Holder {
    invocation_id: InvocationId,
    task_id: Option<TaskId>,
    claimed_at: Timestamp,
}

impl Holder {
    fn duplicate(self) -> ClaimOutcome {
        ClaimOutcome::Duplicate {
            invocation_id: self.invocation_id,
            task_id: self.task_id,
        }
    }
}

/// What a committed batch did with one request.
#[derive(Debug, Clone, Copy)]
enum Written {
    /// Its invocation and task were written (and hold its claim, if it made one).
    Recorded,
    /// Its claim was held by another invocation: nothing of it was written.
    Duplicate(Holder),
    /// Its claim was held, but the holder could not be read as such: nothing of it was
    /// written, and it goes to the next round.
    Unsettled,
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

/// A claim was found held in every round, and its holder could not be read in any of them.
#[derive(Debug, thiserror::Error)]
#[error("the holder of a claimed delivery id could not be read")]
struct ClaimUnsettled;

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
        self.submit(invocation, task, None).await.map(drop)
    }

    /// Queues the write with its claim and waits for its commit, or for the claim's holder.
    pub(crate) async fn record_claimed(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: &DeliveryClaim,
    ) -> Result<ClaimOutcome, StoreError> {
        self.submit(invocation, task, Some(claim.clone())).await
    }

    async fn submit(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: Option<DeliveryClaim>,
    ) -> Result<ClaimOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            invocation: invocation.clone(),
            task: task.cloned(),
            claim,
            rounds: 0,
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

/// Writes `batch` and answers every request of it, in rounds: each round claims a delivery id
/// once, and the later requests claiming it are answered from that round's outcome, or written
/// in the next round.
async fn commit(inner: &Inner, batch: &mut Vec<Request>) {
    while !batch.is_empty() {
        let later = take_repeated_claims(batch);
        let mut next = Vec::new();
        let holders = match commit_round(inner, batch, &mut next).await {
            Ok(holders) => holders,
            Err(shared) => {
                // The round failed as a whole; the later requests were never sent.
                share_failure(later, &shared, StoreError::Unavailable);
                share_failure(next, &shared, StoreError::Unavailable);
                return;
            }
        };
        for request in later {
            let held = request
                .claim_key()
                .and_then(|key| holders.get(&key).copied())
                .filter(|holder| {
                    request
                        .claim
                        .as_ref()
                        .is_some_and(|claim| holder.claimed_at >= claim.window_start)
                });
            match held {
                Some(holder) => request.answer(Ok(holder.duplicate())),
                None => next.push(request),
            }
        }
        *batch = next;
    }
}

/// Moves out of `batch` every request that claims an id an earlier request of it claims,
/// keeping the order of both.
fn take_repeated_claims(batch: &mut Vec<Request>) -> Vec<Request> {
    if batch.iter().filter(|r| r.claim.is_some()).take(2).count() < 2 {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut later = Vec::new();
    let mut kept = Vec::with_capacity(batch.len());
    for request in batch.drain(..) {
        let repeated = request.claim_key().is_some_and(|key| !seen.insert(key));
        if repeated {
            later.push(request);
        } else {
            kept.push(request);
        }
    }
    *batch = kept;
    later
}

/// Writes one round, answering each request that it settles and moving the others to `next`.
/// Returns the holder of every claim the round settled, or the failure shared by all of it.
async fn commit_round(
    inner: &Inner,
    round: &mut Vec<Request>,
    next: &mut Vec<Request>,
) -> Result<HashMap<ClaimKey, Holder>, Arc<StoreError>> {
    let mut holders = HashMap::new();
    match write(inner, round).await {
        Ok(written) => {
            for (request, written) in round.drain(..).zip(written) {
                settle(request, written, &mut holders, next);
            }
        }
        Err(error) if round.len() == 1 => {
            if let Some(request) = round.pop() {
                request.answer(Err(error));
            }
        }
        Err(StoreError::Unavailable(cause)) => {
            // Nothing was written, and writing one by one would fail alike.
            let shared = Arc::new(StoreError::Unavailable(cause));
            tracing::warn!(error = %shared, batch.size = round.len(), "group commit failed");
            share_failure(round.drain(..), &shared, StoreError::Unavailable);
            return Err(shared);
        }
        Err(StoreError::OutcomeUnknown(cause)) => {
            // The batch may be durable: writing it again one by one could duplicate it.
            let shared = Arc::new(StoreError::OutcomeUnknown(cause));
            tracing::warn!(error = %shared, batch.size = round.len(), "group commit outcome unknown");
            share_failure(round.drain(..), &shared, StoreError::OutcomeUnknown);
            return Err(shared);
        }
        Err(_) => {
            for request in round.drain(..) {
                match write(inner, std::slice::from_ref(&request)).await {
                    Ok(mut written) => match written.pop() {
                        Some(written) => settle(request, written, &mut holders, next),
                        None => request.answer(Err(corrupt("a write without its outcome"))),
                    },
                    Err(error) => request.answer(Err(error)),
                }
            }
        }
    }
    Ok(holders)
}

/// Answers `request` as `written` says, noting the holder of its claim; or moves it to `next`.
fn settle(
    mut request: Request,
    written: Written,
    holders: &mut HashMap<ClaimKey, Holder>,
    next: &mut Vec<Request>,
) {
    let key = request.claim_key();
    match written {
        Written::Recorded => {
            if let Some(key) = key {
                let holder = Holder {
                    invocation_id: request.invocation.id,
                    task_id: request.task.as_ref().map(|t| t.id),
                    claimed_at: request.invocation.received_at,
                };
                holders.insert(key, holder);
            }
            request.answer(Ok(ClaimOutcome::Recorded));
        }
        Written::Duplicate(holder) => {
            if let Some(key) = key {
                holders.insert(key, holder);
            }
            request.answer(Ok(holder.duplicate()));
        }
        Written::Unsettled => {
            request.rounds += 1;
            if request.rounds < MAX_ROUNDS {
                next.push(request);
            } else {
                request.answer(Err(StoreError::Unavailable(Box::new(ClaimUnsettled))));
            }
        }
    }
}

/// Answers every request of `requests` with a `kind` error whose cause is the group's `shared`
/// one.
fn share_failure(
    requests: impl IntoIterator<Item = Request>,
    shared: &Arc<StoreError>,
    kind: fn(webhook_domain::ports::BoxError) -> StoreError,
) {
    for request in requests {
        request.answer(Err(kind(Box::new(GroupFailed(Arc::clone(shared))))));
    }
}

/// Writes `batch` with one statement, which is atomic on its own, and says what it did with
/// each request. When the connection is lost with the statement in flight, finds out whether it
/// committed ([`confirm`]).
async fn write(inner: &Inner, batch: &[Request]) -> Result<Vec<Written>, StoreError> {
    let mut statement = RecordBatch::default();
    for request in batch {
        statement.push(
            &request.invocation,
            request.task.as_ref(),
            request.claim.as_ref(),
        );
    }
    let mut conn = live_conn(inner).await?;
    let error = match execute(inner, &statement, &mut conn).await {
        Ok(taken) => {
            drop(conn);
            let taken: HashSet<Uuid> = taken.into_iter().collect();
            return Ok(outcomes(inner, batch, |r| taken.contains(r.invocation.id.as_uuid())).await);
        }
        Err(error) => error,
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
    let stored = confirm(inner, &ids, error).await?;
    // The batch committed: every request that claims nothing was written with it, and a
    // claiming one whose invocation is absent found its claim held.
    if batch
        .iter()
        .any(|r| r.claim.is_none() && !stored.contains(r.invocation.id.as_uuid()))
    {
        return Err(corrupt("a batch of invocations stored in part"));
    }
    Ok(outcomes(inner, batch, |r| stored.contains(r.invocation.id.as_uuid())).await)
}

/// What a committed batch did with each request of `batch`, given which of them it `wrote`:
/// reads the holders of the claims it found held.
async fn outcomes(
    inner: &Inner,
    batch: &[Request],
    wrote: impl Fn(&Request) -> bool,
) -> Vec<Written> {
    let held: Vec<&Request> = batch
        .iter()
        .filter(|r| r.claim.is_some() && !wrote(r))
        .collect();
    let holders = if held.is_empty() {
        HashMap::new()
    } else {
        match claim_holders(inner, &held).await {
            Ok(holders) => holders,
            Err(error) => {
                // Nothing of those requests was written: the next round claims again.
                tracing::warn!(error = %error, "the holders of claimed delivery ids could not be read");
                HashMap::new()
            }
        }
    };
    batch
        .iter()
        .map(|request| {
            if request.claim.is_none() || wrote(request) {
                return Written::Recorded;
            }
            let holder = request.claim.as_ref().and_then(|claim| {
                request
                    .claim_key()
                    .and_then(|key| holders.get(&key).copied())
                    .filter(|holder| holder.claimed_at >= claim.window_start)
            });
            holder.map_or(Written::Unsettled, Written::Duplicate)
        })
        .collect()
}

#[derive(QueryableByName)]
struct HolderRow {
    #[diesel(sql_type = SqlUuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = Text)]
    delivery_id: String,
    #[diesel(sql_type = SqlUuid)]
    invocation_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<SqlUuid>)]
    task_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    claimed_at: OffsetDateTime,
}

/// The current holders of the claims of `requests`.
async fn claim_holders(
    inner: &Inner,
    requests: &[&Request],
) -> Result<HashMap<ClaimKey, Holder>, StoreError> {
    let (webhooks, delivery_ids): (Vec<Uuid>, Vec<&str>) = requests
        .iter()
        .filter_map(|r| {
            r.claim.as_ref().map(|claim| {
                (
                    *r.invocation.webhook_id.as_uuid(),
                    claim.delivery_id.as_str(),
                )
            })
        })
        .unzip();
    let mut conn = inner.conn().await?;
    let rows = diesel::sql_query(
        "SELECT d.webhook_id, d.delivery_id, d.invocation_id, d.task_id, d.claimed_at \
         FROM delivery_claims d \
         JOIN unnest($1::uuid[], $2::text[]) AS k (webhook_id, delivery_id) \
         ON d.webhook_id = k.webhook_id AND d.delivery_id = k.delivery_id",
    )
    .bind::<Array<SqlUuid>, _>(webhooks)
    .bind::<Array<Text>, _>(delivery_ids)
    .load::<HolderRow>(&mut conn)
    .await;
    match rows {
        Ok(rows) => Ok(rows
            .into_iter()
            .map(|row| {
                let holder = Holder {
                    invocation_id: InvocationId::from_uuid(row.invocation_id),
                    task_id: row.task_id.map(TaskId::from_uuid),
                    claimed_at: ts(row.claimed_at),
                };
                ((row.webhook_id, row.delivery_id), holder)
            })
            .collect()),
        Err(error) => Err(read_failed(conn, error)),
    }
}

/// The error of a read on `conn`; a connection the read found unavailable leaves the pool, since
/// the server may have ended it and the pool would hand it out again before noticing.
fn read_failed(
    mut conn: Object<diesel_async::AsyncPgConnection>,
    error: diesel::result::Error,
) -> StoreError {
    let broken = conn.is_broken();
    let error = store_error(TxError::Db(error), broken);
    if matches!(error, StoreError::Unavailable(_)) {
        drop(Object::take(conn));
    }
    error
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

/// Runs `statement` on `conn`, or fails as a test asked ([`CommitFault`]). Answers the ids of
/// the invocations whose claims it took.
async fn execute(
    inner: &Inner,
    statement: &RecordBatch<'_>,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<Vec<Uuid>, diesel::result::Error> {
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
                statement.load::<Uuid>(conn).await?;
                return Err(lost());
            }
            None => {}
        }
    }
    #[cfg(not(feature = "test-util"))]
    let _ = inner;
    statement.load::<Uuid>(conn).await
}

/// Reads back the invocations `ids` of a batch whose commit's answer was lost (`lost`), until
/// the database answers or [`Inner::outcome_timeout`] passes: the ids stored when the batch is
/// (the statement is atomic: all of it or none, less the invocations whose claims were held),
/// `Unavailable` when none is, `OutcomeUnknown` when the deadline passes first.
async fn confirm(
    inner: &Inner,
    ids: &[Uuid],
    lost: StoreError,
) -> Result<HashSet<Uuid>, StoreError> {
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
            // Nothing written: also when every request found its claim held, which wrote
            // nothing either, so that `Unavailable` hides no stored event.
            Ok(Ok(found)) if found.is_empty() => {
                return Err(StoreError::Unavailable(Box::new(cause)));
            }
            Ok(Ok(found)) => return Ok(found),
            Ok(Err(error)) => cause = error,
            Err(_) => continue,
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(pause.min(remaining)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Which of the invocations `ids` are stored.
async fn stored(inner: &Inner, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
    let mut conn = inner.conn().await?;
    let result = invocations::table
        .filter(invocations::id.eq_any(ids))
        .select(invocations::id)
        .load::<Uuid>(&mut conn)
        .await;
    match result {
        Ok(found) => Ok(found.into_iter().collect()),
        Err(error) => Err(read_failed(conn, error)),
    }
}
