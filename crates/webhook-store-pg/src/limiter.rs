//! [`PgRateLimiter`]: the rate-limit windows of every node of one database, kept in PostgreSQL,
//! so that a webhook's and an organization's quotas hold across the cluster.
//!
//! **Mechanism.** The windows are rows of `rate_limit_windows`, one per key (webhook or
//! organization) and second that admitted a request. One statement, the function
//! `rate_limit_acquire`, decides a batch of requests: it locks each key of the batch (an
//! advisory lock held until the statement commits, taken in one global order), reads their last
//! 61 buckets, decides every request in order with the rule of
//! [`webhook_domain::rules::decide`] (both quotas or neither), adds the admitted ones to their
//! buckets and answers each decision. Decisions on one key are therefore serialized whatever
//! node makes them, as the in-memory limiter serializes them on one node: no 60-second window
//! admits more than the quota (worst-case overshoot zero).
//!
//! **Batching.** A node's concurrent [`RateLimiter::acquire`]s queue for one background task,
//! which sends everything queued as one statement, and the next batch when that one returns
//! (group commit): an admitted request costs at most one statement, shared with the requests
//! that arrived with it.
//!
//! **Refusals.** A refusal carries the time until the full window admits again, and until then
//! nothing can make room in it (only requests leaving the window do). The node remembers it
//! and refuses that webhook's requests itself until then, without a statement: a flood that is
//! being refused costs the database about one statement per node, webhook and retry, not one
//! per request. [`RateLimiter::peek`] answers from these refusals alone: a key not known refused
//! is answered admitted, and the charge that follows decides.
//!
//! A database that cannot be reached answers [`RateLimiterUnavailable`] (ingest answers 503,
//! as it could not commit anyway).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Nullable, SmallInt, Uuid as SqlUuid};
use diesel_async::RunQueryDsl as _;
use diesel_async::pooled_connection::PoolableConnection as _;
use diesel_async::pooled_connection::deadpool::Object;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use webhook_domain::model::{RatePerMinute, RateRequest, Timestamp};
use webhook_domain::ports::{RateLimiter, RateLimiterUnavailable, StoreError};
use webhook_domain::rules::{RateDecision, RateScope, RateStatus};

use crate::error::{TxError, corrupt, store_error};
use crate::{Inner, PgStore};

/// How old a bucket must be, beyond the 61 seconds of a window, before
/// [`PgRateLimiter::delete_old_windows`] deletes it: room for nodes whose clocks lag.
const CLOCK_MARGIN_SECS: i64 = 300;
/// The shortest time between two warnings that the windows cannot be reached.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// How a [`PgRateLimiter`] batches.
#[derive(Debug, Clone, Copy)]
pub struct RateLimiterOptions {
    /// Most requests one statement decides.
    pub max_batch: usize,
}

impl Default for RateLimiterOptions {
    fn default() -> Self {
        Self { max_batch: 256 }
    }
}

/// The [`RateLimiter`] shared by every node of one PostgreSQL database; see the module
/// documentation. Cheap to clone: clones share the batcher and the remembered refusals.
#[derive(Clone)]
pub struct PgRateLimiter {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    queue: mpsc::Sender<Pending>,
}

struct Shared {
    /// Webhooks known refused, by which quota and until when.
    refusals: Mutex<HashMap<Uuid, Refusal>>,
    /// Statements sent to the database.
    statements: Counter,
    /// Requests refused from `refusals`, without a statement.
    local_refusals: Counter,
}

/// A webhook's requests are refused by the `scope` quota until `until`, as long as its quotas
/// stay these.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    scope: RateScope,
    webhook_quota: u32,
    organization_quota: u32,
    until: Timestamp,
    /// When the window holds no request at all, if nothing is admitted meanwhile (nothing can
    /// be before `until`).
    reset_at: Timestamp,
}

struct Pending {
    request: RateRequest,
    reply: oneshot::Sender<Result<RateDecision, RateLimiterUnavailable>>,
}

impl fmt::Debug for PgRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRateLimiter")
            .field("statements", &self.shared.statements.get())
            .field("local_refusals", &self.shared.local_refusals.get())
            .finish_non_exhaustive()
    }
}

/// The batcher is gone (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the rate limiter's batcher has stopped")]
struct BatcherStopped;

/// The statement of a batch failed; its cause is shared by every request in it.
#[derive(Debug, thiserror::Error)]
#[error("the shared rate-limit windows could not be read or written")]
struct WindowsUnavailable(#[source] Arc<StoreError>);

impl PgStore {
    /// The shared rate limiter on this store's database and connection pool. Starts its batcher
    /// on the current tokio runtime.
    pub fn rate_limiter(&self, options: RateLimiterOptions) -> PgRateLimiter {
        PgRateLimiter::start(&self.inner, options)
    }
}

impl PgRateLimiter {
    fn start(inner: &Arc<Inner>, options: RateLimiterOptions) -> Self {
        let max_batch = options.max_batch.max(1);
        let (queue, requests) = mpsc::channel(max_batch * 4);
        let shared = Arc::new(Shared {
            refusals: Mutex::default(),
            statements: Counter::default(),
            local_refusals: Counter::default(),
        });
        tokio::spawn(batch_loop(
            Arc::clone(inner),
            Arc::clone(&shared),
            requests,
            max_batch,
        ));
        Self {
            inner: Arc::clone(inner),
            shared,
            queue,
        }
    }

    /// Adds the limiter's counters to the `/metrics` registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "webhookd_rate_limit_statements",
            "Statements this node sent to decide rate limits on the shared windows (each decides \
             a batch of requests)",
            self.shared.statements.clone(),
        );
        registry.register(
            "webhookd_rate_limit_local_refusals",
            "Requests this node refused from a rate-limit refusal it remembers, without asking \
             the database",
            self.shared.local_refusals.clone(),
        );
    }

    /// Statements sent to the database so far.
    pub fn statements(&self) -> u64 {
        self.shared.statements.get()
    }

    /// Requests refused without a statement so far.
    pub fn local_refusals(&self) -> u64 {
        self.shared.local_refusals.get()
    }

    /// Forgets the refusals that ended by `now`. Returns how many were forgotten.
    pub fn forget_expired(&self, now: Timestamp) -> usize {
        let mut refusals = self.shared.refusals();
        let before = refusals.len();
        refusals.retain(|_, refusal| now < refusal.until);
        before - refusals.len()
    }

    /// Deletes the buckets that left every window by `now` (with a margin for lagging clocks).
    /// Any node may run it; it changes no decision. Returns how many buckets were deleted.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn delete_old_windows(&self, now: Timestamp) -> Result<usize, StoreError> {
        let oldest_kept = bucket_of(now) - 60 - CLOCK_MARGIN_SECS;
        let mut conn = self.inner.conn().await?;
        let deleted = diesel::sql_query("DELETE FROM rate_limit_windows WHERE bucket < $1")
            .bind::<BigInt, _>(oldest_kept)
            .execute(&mut conn)
            .await;
        deleted.map_err(|e| store_error(TxError::Db(e), conn.is_broken()))
    }

    /// The refusal `request` gets from a remembered one, counted as a local refusal.
    fn refused_locally(&self, request: &RateRequest) -> Option<RateDecision> {
        let refused = self.shared.refused(request);
        if refused.is_some() {
            self.shared.local_refusals.inc();
        }
        refused
    }
}

impl Shared {
    fn refusals(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Refusal>> {
        // A panic while the map was locked leaves it a valid map of refusals.
        self.refusals.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The refusal a remembered one gives `request`: the one the database answered for its
    /// webhook under the same quotas, while it lasts.
    ///
    /// It is the refusal [`webhook_domain::rules::decide`] would answer now. Until `until` the
    /// window that refused stays full, whatever any node does: requests only leave it, on
    /// schedule. A refusal by the organization's quota was answered while the webhook's window
    /// had room, and while the organization's window is full nothing is admitted to its
    /// webhooks, so the webhook's still has room and the organization's quota is still the one
    /// that refuses. (Another webhook's refusal by the organization's says nothing of this
    /// webhook's window, so this webhook asks the database once itself.)
    fn refused(&self, request: &RateRequest) -> Option<RateDecision> {
        let refusals = self.refusals();
        let refusal = refusals.get(request.webhook_id.as_uuid())?;
        let current = request.now < refusal.until
            && request.webhook_quota.get() == refusal.webhook_quota
            && request.organization_quota.get() == refusal.organization_quota;
        current.then(|| RateDecision::Denied {
            scope: refusal.scope,
            retry_after: refusal.until.since(request.now),
            status: RateStatus {
                limit: match refusal.scope {
                    RateScope::Webhook => refusal.webhook_quota,
                    RateScope::Organization => refusal.organization_quota,
                },
                remaining: 0,
                reset_after: refusal.reset_at.since(request.now),
            },
        })
    }

    /// Remembers the refusal the database answered `request`.
    fn remember(&self, request: &RateRequest, decision: &RateDecision) {
        let RateDecision::Denied {
            scope,
            retry_after,
            status,
        } = *decision
        else {
            return;
        };
        let refusal = Refusal {
            scope,
            webhook_quota: request.webhook_quota.get(),
            organization_quota: request.organization_quota.get(),
            until: request.now.plus(retry_after),
            reset_at: request.now.plus(status.reset_after),
        };
        self.refusals()
            .insert(*request.webhook_id.as_uuid(), refusal);
    }
}

impl RateLimiter for PgRateLimiter {
    async fn acquire(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        if let Some(refused) = self.refused_locally(&request) {
            return Ok(refused);
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .await
            .map_err(|_| RateLimiterUnavailable(Box::new(BatcherStopped)))?;
        answer
            .await
            .map_err(|_| RateLimiterUnavailable(Box::new(BatcherStopped)))?
    }

    /// A remembered refusal, or else admitted with the status of windows that hold nothing:
    /// the windows are not read (see the port's documentation).
    async fn peek(&self, request: RateRequest) -> Result<RateDecision, RateLimiterUnavailable> {
        if let Some(refused) = self.refused_locally(&request) {
            return Ok(refused);
        }
        // The tighter quota, as `rules::peek` reports on empty windows.
        let quota = request
            .webhook_quota
            .get()
            .min(request.organization_quota.get());
        Ok(RateDecision::Admitted(RateStatus {
            limit: quota,
            remaining: quota,
            reset_after: Duration::ZERO,
        }))
    }
}

/// Sends everything queued as one statement, answers it, and goes on with what queued
/// meanwhile; stops when every handle is gone.
async fn batch_loop(
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<Pending>,
    max_batch: usize,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    let mut warned: Option<Instant> = None;
    while queue.recv_many(&mut batch, max_batch).await > 0 {
        // A refusal the previous statement answered settles the requests that queued for the
        // same key meanwhile.
        for pending in std::mem::take(&mut batch) {
            match shared.refused(&pending.request) {
                Some(refused) => {
                    shared.local_refusals.inc();
                    let _ = pending.reply.send(Ok(refused));
                }
                None => batch.push(pending),
            }
        }
        if batch.is_empty() {
            continue;
        }
        shared.statements.inc();
        match decide(&inner, &batch).await {
            Ok(decisions) => {
                for (pending, decision) in batch.drain(..).zip(decisions) {
                    shared.remember(&pending.request, &decision);
                    let _ = pending.reply.send(Ok(decision));
                }
            }
            Err(error) => {
                if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(error = %error, batch.size = batch.len(), "the shared rate-limit windows cannot be reached; ingest answers 503");
                    warned = Some(Instant::now());
                }
                let shared_error = Arc::new(error);
                for pending in batch.drain(..) {
                    let cause = WindowsUnavailable(Arc::clone(&shared_error));
                    let _ = pending
                        .reply
                        .send(Err(RateLimiterUnavailable(Box::new(cause))));
                }
            }
        }
    }
}

#[derive(QueryableByName)]
struct DecisionRow {
    #[diesel(sql_type = Bool)]
    admitted: bool,
    #[diesel(sql_type = Nullable<SmallInt>)]
    denied_scope: Option<i16>,
    #[diesel(sql_type = BigInt)]
    retry_after_us: i64,
    #[diesel(sql_type = Integer)]
    status_limit: i32,
    #[diesel(sql_type = Integer)]
    status_remaining: i32,
    #[diesel(sql_type = BigInt)]
    status_reset_after_us: i64,
}

fn quota(q: RatePerMinute) -> i32 {
    // Quotas are far below 2³¹; a larger one is as good as unlimited.
    i32::try_from(q.get()).unwrap_or(i32::MAX)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn bucket_of(now: Timestamp) -> i64 {
    now.unix_micros().div_euclid(1_000_000)
}

/// Decides `batch` with one statement, in order.
async fn decide(inner: &Inner, batch: &[Pending]) -> Result<Vec<RateDecision>, StoreError> {
    let requests = batch.iter().map(|p| &p.request);
    let webhooks: Vec<Uuid> = requests.clone().map(|r| *r.webhook_id.as_uuid()).collect();
    let webhook_quotas: Vec<i32> = requests.clone().map(|r| quota(r.webhook_quota)).collect();
    let organizations: Vec<Uuid> = requests
        .clone()
        .map(|r| *r.organization_id.as_uuid())
        .collect();
    let organization_quotas: Vec<i32> = requests
        .clone()
        .map(|r| quota(r.organization_quota))
        .collect();
    let nows: Vec<i64> = requests.map(|r| r.now.unix_micros()).collect();
    let mut conn = inner.conn().await?;
    let rows = diesel::sql_query("SELECT * FROM rate_limit_acquire($1, $2, $3, $4, $5)")
        .bind::<Array<SqlUuid>, _>(webhooks)
        .bind::<Array<Integer>, _>(webhook_quotas)
        .bind::<Array<SqlUuid>, _>(organizations)
        .bind::<Array<Integer>, _>(organization_quotas)
        .bind::<Array<BigInt>, _>(nows)
        .load::<DecisionRow>(&mut conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => {
            let broken = conn.is_broken();
            let error = store_error(TxError::Db(error), broken);
            if matches!(error, StoreError::Unavailable(_)) {
                // The server may have ended the connection and say so only in its last message.
                drop(Object::take(conn));
            }
            return Err(error);
        }
    };
    if rows.len() != batch.len() {
        return Err(corrupt(
            "a rate-limit batch answered for another number of requests",
        ));
    }
    rows.into_iter()
        .map(|row| {
            let status = RateStatus {
                limit: count(row.status_limit),
                remaining: count(row.status_remaining),
                reset_after: micros(row.status_reset_after_us),
            };
            if row.admitted {
                return Ok(RateDecision::Admitted(status));
            }
            let scope = match row.denied_scope {
                Some(0) => RateScope::Webhook,
                Some(1) => RateScope::Organization,
                _ => return Err(corrupt("a rate-limit refusal without its scope")),
            };
            Ok(RateDecision::Denied {
                scope,
                retry_after: micros(row.retry_after_us),
                status,
            })
        })
        .collect()
}
