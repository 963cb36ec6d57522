//! [`PgRateLimiter`]: the rate-limit windows of every node of one database, kept in PostgreSQL,
//! so that a webhook's and an organization's quotas hold across the cluster.
//!
//! **Mechanism.** The windows are rows of `rate_limit_counters`, one per key (webhook or
//! organization) with the counts of its last 61 seconds. One statement, the function
//! `rate_limit_acquire`, decides a batch of requests: it locks the row of each key of the batch
//! (`FOR UPDATE`, held until the statement commits, taken in one global order), decides every
//! request in order with the rule of
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
//! **Reservations.** A stream of admitted requests of one (webhook, organization) pair at high
//! quotas would still cost a statement per batch. So a node's charge asks the database for `n`
//! slots instead of 1 ([`RateLimiterOptions`] sizes `n`: the pair's requests on this node in
//! this or the previous second, at most an eighth of the room the tighter window had at the
//! last answer, at most `max_reserved`; 1 below `reserve_from_quota`). When both windows have
//! room for `n` and the request's second is their newest bucket, the database charges `n` to
//! both; the node then admits up to `n - 1` more requests of the pair itself, in that same
//! second only, without a statement. The slots are counted whether or not they are used: the
//! node admits fewer requests than the windows count, never more, so no window admits more than
//! its quota.
//!
//! **Reservations asked ahead.** Each statement also asks, for this node's other pairs whose
//! slots will run out before the second does, the slots they are expected to use in the rest of
//! the second at their demand and half again (all of them or none, with the same bounds). The
//! first request of a new second thereby reserves for every busy pair at once, and their
//! requests are admitted without statements of their own: a node with many busy webhooks costs
//! the database a few statements per second, not one per webhook and second.
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
use webhook_domain::model::{OrganizationId, RatePerMinute, RateRequest, Timestamp, WebhookId};
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
    /// Reservations only for pairs whose both quotas are at least this many requests per
    /// minute: below it, every request is charged one by one, as the rule decides it.
    pub reserve_from_quota: u32,
    /// Most slots one reservation asks for.
    pub max_reserved: u32,
}

impl Default for RateLimiterOptions {
    fn default() -> Self {
        Self {
            max_batch: 256,
            reserve_from_quota: 1000,
            max_reserved: 1024,
        }
    }
}

/// A reservation asks for at most this fraction (1 / `ROOM_SHARE`) of the room the tighter
/// window had at the last answer: each node wastes at most that much of it per second.
const ROOM_SHARE: u32 = 8;

/// The [`RateLimiter`] shared by every node of one PostgreSQL database; see the module
/// documentation. Cheap to clone: clones share the batcher and the remembered refusals.
#[derive(Clone)]
pub struct PgRateLimiter {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    queue: mpsc::Sender<Pending>,
}

struct Shared {
    options: RateLimiterOptions,
    /// Webhooks known refused, by which quota and until when.
    refusals: Mutex<HashMap<Uuid, Refusal>>,
    /// Per webhook: its demand on this node and its reservation.
    pairs: Mutex<HashMap<Uuid, Pair>>,
    /// Statements sent to the database.
    statements: Counter,
    /// Requests refused from `refusals`, without a statement.
    local_refusals: Counter,
    /// Requests admitted from a reservation, without a statement.
    reserved_admissions: Counter,
}

/// A webhook's (and its organization's) requests on this node.
#[derive(Debug, Clone, Copy)]
struct Pair {
    organization: Uuid,
    /// The quotas of the pair's latest request.
    webhook_quota: RatePerMinute,
    organization_quota: RatePerMinute,
    /// The second `arrived` counts; `previous` counts the second before it.
    second: i64,
    arrived: u32,
    previous: u32,
    /// Requests the tighter window had room for at the last admission the database answered.
    room: u32,
    reservation: Option<Reservation>,
}

impl Pair {
    /// A pair first seen in `second` with `request`: no demand counted, no reservation.
    fn new(request: &RateRequest, second: i64) -> Self {
        Self {
            organization: *request.organization_id.as_uuid(),
            webhook_quota: request.webhook_quota,
            organization_quota: request.organization_quota,
            second,
            arrived: 0,
            previous: 0,
            room: 0,
            reservation: None,
        }
    }

    /// The pair's requests per second on this node: the more of the previous second's and
    /// this one's so far, as of `second`.
    const fn demand(&self, second: i64) -> u32 {
        if self.second == second {
            if self.previous > self.arrived {
                self.previous
            } else {
                self.arrived
            }
        } else if self.second + 1 == second {
            self.arrived
        } else {
            0
        }
    }

    /// The slots of `second` a reservation made at `now` should hold for the rest of the
    /// second at the pair's demand, beyond those it still has.
    fn wanted(&self, now: Timestamp) -> u32 {
        let second = bucket_of(now);
        let left_of_second = 1_000_000 - now.unix_micros().rem_euclid(1_000_000);
        let demand = u64::from(self.demand(second));
        let expected = (demand * u64::try_from(left_of_second).unwrap_or(0)).div_ceil(1_000_000);
        let held = self
            .reservation
            .filter(|r| r.bucket == second)
            .map_or(0, |r| r.left);
        u32::try_from(expected)
            .unwrap_or(u32::MAX)
            .saturating_sub(held)
    }
}

/// Slots the database charged to both windows in `bucket` and this node has not used yet.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    bucket: i64,
    webhook_quota: u32,
    organization_quota: u32,
    left: u32,
    /// The status of the next admission: the tighter quota, the requests left in it counting
    /// the unused slots, and when the windows empty.
    limit: u32,
    remaining: u32,
    reset_at: Timestamp,
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
            options,
            refusals: Mutex::default(),
            pairs: Mutex::default(),
            statements: Counter::default(),
            local_refusals: Counter::default(),
            reserved_admissions: Counter::default(),
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
        registry.register(
            "webhookd_rate_limit_reserved_admissions",
            "Requests this node admitted from slots the database reserved for it, without asking \
             the database",
            self.shared.reserved_admissions.clone(),
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

    /// Requests admitted from reservations, without a statement, so far.
    pub fn reserved_admissions(&self) -> u64 {
        self.shared.reserved_admissions.get()
    }

    /// Forgets the refusals that ended by `now`, and the demand and reservations of pairs with
    /// no request since the second before `now`'s. Returns how many refusals were forgotten.
    pub fn forget_expired(&self, now: Timestamp) -> usize {
        let second = bucket_of(now);
        self.shared
            .pairs()
            .retain(|_, pair| pair.second >= second - 1);
        let mut refusals = self.shared.refusals();
        let before = refusals.len();
        refusals.retain(|_, refusal| now < refusal.until);
        before - refusals.len()
    }

    /// Deletes the windows of keys whose every charge left them by `now` (with a margin for
    /// lagging clocks). Any node may run it; it changes no decision. Returns how many windows
    /// were deleted.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn delete_old_windows(&self, now: Timestamp) -> Result<usize, StoreError> {
        let oldest_kept = bucket_of(now) - 60 - CLOCK_MARGIN_SECS;
        let mut conn = self.inner.conn().await?;
        let deleted = diesel::sql_query("DELETE FROM rate_limit_counters WHERE newest < $1")
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

    fn pairs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Pair>> {
        // Every update leaves a valid pair (a panic loses at most unused slots).
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `request` in its pair's demand, and admits it from the pair's reservation if
    /// that has a slot for it.
    fn arrive(&self, request: &RateRequest) -> Option<RateDecision> {
        let second = bucket_of(request.now);
        let mut pairs = self.pairs();
        let pair = pairs
            .entry(*request.webhook_id.as_uuid())
            .or_insert_with(|| Pair::new(request, second));
        if pair.organization != *request.organization_id.as_uuid() {
            // The webhook moved to another organization: nothing of its pair holds.
            *pair = Pair::new(request, second);
        }
        pair.webhook_quota = request.webhook_quota;
        pair.organization_quota = request.organization_quota;
        if second > pair.second {
            pair.previous = if second == pair.second + 1 {
                pair.arrived
            } else {
                0
            };
            pair.arrived = 0;
            pair.second = second;
        }
        pair.arrived = pair.arrived.saturating_add(1);
        self.take_slot(pair, request)
    }

    /// Admits `request` from its pair's reservation, if one has a slot in its second under its
    /// quotas: the slot is already counted in both windows' bucket of that second.
    fn reserved(&self, request: &RateRequest) -> Option<RateDecision> {
        let mut pairs = self.pairs();
        let pair = pairs.get_mut(request.webhook_id.as_uuid())?;
        if pair.organization != *request.organization_id.as_uuid() {
            return None;
        }
        self.take_slot(pair, request)
    }

    fn take_slot(&self, pair: &mut Pair, request: &RateRequest) -> Option<RateDecision> {
        let reservation = pair.reservation.as_mut()?;
        let usable = reservation.left > 0
            && reservation.bucket == bucket_of(request.now)
            && reservation.webhook_quota == request.webhook_quota.get()
            && reservation.organization_quota == request.organization_quota.get();
        if !usable {
            return None;
        }
        reservation.left -= 1;
        reservation.remaining = reservation.remaining.saturating_sub(1);
        let status = RateStatus {
            limit: reservation.limit,
            remaining: reservation.remaining,
            reset_after: reservation.reset_at.since(request.now),
        };
        if reservation.left == 0 {
            pair.reservation = None;
        }
        self.reserved_admissions.inc();
        Some(RateDecision::Admitted(status))
    }

    /// The slots `request`'s charge asks for: 1, or the pair's demand on this node (this or
    /// the previous second's requests) bounded by a share of the room and by `max_reserved`.
    fn slots(&self, request: &RateRequest) -> u32 {
        if !self.reserves(request.webhook_quota, request.organization_quota) {
            return 1;
        }
        let pairs = self.pairs();
        let Some(pair) = pairs.get(request.webhook_id.as_uuid()) else {
            return 1;
        };
        let second = bucket_of(request.now);
        let demand = if pair.second == second {
            pair.demand(second)
        } else {
            1
        };
        self.bounded(pair, demand)
    }

    /// Whether pairs under these quotas reserve slots.
    fn reserves(&self, webhook_quota: RatePerMinute, organization_quota: RatePerMinute) -> bool {
        webhook_quota.get().min(organization_quota.get()) >= self.options.reserve_from_quota
    }

    /// `slots`, at most a share of the room the pair's tighter window had and `max_reserved`;
    /// at least 1.
    fn bounded(&self, pair: &Pair, slots: u32) -> u32 {
        slots
            .min(pair.room / ROOM_SHARE)
            .min(self.options.max_reserved)
            .max(1)
    }

    /// Reservations to ask ahead of demand in a statement sent at `now`, at most `room` of
    /// them: for each pair not in `asked` whose reservation will run out before the second
    /// does, the slots it is expected to use in the rest of the second, and half again. A
    /// statement is sent anyway; adding a pair to it costs the database far less than the
    /// statement the pair's next request would need alone.
    fn ahead(&self, now: Timestamp, asked: &[Uuid], room: usize) -> Vec<(RateRequest, u32)> {
        let second = bucket_of(now);
        let pairs = self.pairs();
        let mut ahead = Vec::new();
        for (webhook, pair) in pairs.iter() {
            if ahead.len() >= room {
                break;
            }
            if asked.contains(webhook)
                || !self.reserves(pair.webhook_quota, pair.organization_quota)
            {
                continue;
            }
            // Only a pair that would otherwise need a statement of its own soon: it expects
            // at least two more requests than it holds, and more than twice what it holds.
            let wanted = pair.wanted(now);
            let held = pair
                .reservation
                .filter(|r| r.bucket == second)
                .map_or(0, |r| r.left);
            if wanted < 2 || wanted < held {
                continue;
            }
            // Half again what is expected, so that a second that brings more requests than the
            // last seldom needs another statement for them.
            let slots = self.bounded(pair, wanted.saturating_add(wanted / 2));
            if slots < 2 {
                continue;
            }
            let request = RateRequest {
                webhook_id: WebhookId::from_uuid(*webhook),
                webhook_quota: pair.webhook_quota,
                organization_id: OrganizationId::from_uuid(pair.organization),
                organization_quota: pair.organization_quota,
                now,
            };
            ahead.push((request, slots));
        }
        ahead
    }

    /// Keeps the room and the reservation the database answered `request`'s charge of
    /// `charged` slots with; all of them are spare for a reservation asked ahead.
    fn record(&self, request: &RateRequest, decision: &RateDecision, charged: u32, ahead: bool) {
        let mut pairs = self.pairs();
        let Some(pair) = pairs.get_mut(request.webhook_id.as_uuid()) else {
            return;
        };
        if pair.organization != *request.organization_id.as_uuid() {
            return;
        }
        let status = match *decision {
            RateDecision::Admitted(status) | RateDecision::Denied { status, .. } => status,
        };
        if ahead && charged == 0 {
            // No room for all of it: nothing was charged, and the next request asks itself.
            return;
        }
        pair.room = status.remaining;
        let spare = if ahead {
            charged
        } else {
            charged.saturating_sub(1)
        };
        if spare == 0 {
            return;
        }
        let bucket = bucket_of(request.now);
        let webhook_quota = request.webhook_quota.get();
        let organization_quota = request.organization_quota.get();
        // Slots left from an earlier reservation of the same second stay usable: they are
        // counted as well.
        let earlier = pair
            .reservation
            .filter(|r| {
                r.bucket == bucket
                    && r.webhook_quota == webhook_quota
                    && r.organization_quota == organization_quota
            })
            .map_or(0, |r| r.left);
        pair.reservation = Some(Reservation {
            bucket,
            webhook_quota,
            organization_quota,
            left: spare + earlier,
            limit: status.limit,
            remaining: status.remaining.saturating_add(earlier),
            reset_at: request.now.plus(status.reset_after),
        });
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
        if let Some(admitted) = self.shared.arrive(&request) {
            return Ok(admitted);
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
        // A refusal or a reservation the previous statement answered settles the requests that
        // queued for the same key meanwhile.
        for pending in std::mem::take(&mut batch) {
            if let Some(refused) = shared.refused(&pending.request) {
                shared.local_refusals.inc();
                let _ = pending.reply.send(Ok(refused));
            } else if let Some(admitted) = shared.reserved(&pending.request) {
                let _ = pending.reply.send(Ok(admitted));
            } else {
                batch.push(pending);
            }
        }
        if batch.is_empty() {
            continue;
        }
        // One reservation per webhook and batch: the batch's later requests of a pair are
        // charged one by one (they are decided in the same statement).
        let mut asked: Vec<Uuid> = Vec::new();
        let slots: Vec<u32> = batch
            .iter()
            .map(|pending| {
                let webhook = *pending.request.webhook_id.as_uuid();
                if asked.contains(&webhook) {
                    return 1;
                }
                asked.push(webhook);
                shared.slots(&pending.request)
            })
            .collect();
        let now = batch
            .iter()
            .map(|pending| pending.request.now)
            .max()
            .unwrap_or(Timestamp::from_unix_micros(0));
        let ahead = shared.ahead(now, &asked, max_batch.saturating_sub(batch.len()));
        let mut charges: Vec<Charge> = batch
            .iter()
            .zip(&slots)
            .map(|(pending, &slots)| Charge {
                request: pending.request,
                slots,
                ahead: false,
            })
            .collect();
        charges.extend(ahead.into_iter().map(|(request, slots)| Charge {
            request,
            slots,
            ahead: true,
        }));
        shared.statements.inc();
        match decide(&inner, &charges).await {
            Ok(decisions) => {
                let mut decisions = charges.iter().zip(decisions);
                for (pending, (_, (decision, charged))) in batch.drain(..).zip(decisions.by_ref()) {
                    shared.remember(&pending.request, &decision);
                    shared.record(&pending.request, &decision, charged, false);
                    let _ = pending.reply.send(Ok(decision));
                }
                for (charge, (decision, charged)) in decisions {
                    shared.record(&charge.request, &decision, charged, true);
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
    #[diesel(sql_type = Integer)]
    charged: i32,
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

/// One charge of a statement: a request asking for `slots`, or a reservation asked ahead of
/// the pair's requests.
struct Charge {
    request: RateRequest,
    slots: u32,
    ahead: bool,
}

/// Decides `charges` with one statement, in order; answers each decision with the slots
/// charged (a reservation asked ahead answers admitted when it was charged, and its decision
/// is no refusal when it was not).
async fn decide(inner: &Inner, charges: &[Charge]) -> Result<Vec<(RateDecision, u32)>, StoreError> {
    let requests = charges.iter().map(|c| &c.request);
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
    let slots: Vec<i32> = charges
        .iter()
        .map(|c| i32::try_from(c.slots).unwrap_or(1))
        .collect();
    let ahead: Vec<bool> = charges.iter().map(|c| c.ahead).collect();
    let mut conn = inner.conn().await?;
    let rows = diesel::sql_query("SELECT * FROM rate_limit_acquire($1, $2, $3, $4, $5, $6, $7)")
        .bind::<Array<SqlUuid>, _>(webhooks)
        .bind::<Array<Integer>, _>(webhook_quotas)
        .bind::<Array<SqlUuid>, _>(organizations)
        .bind::<Array<Integer>, _>(organization_quotas)
        .bind::<Array<BigInt>, _>(nows)
        .bind::<Array<Integer>, _>(slots)
        .bind::<Array<Bool>, _>(ahead)
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
    if rows.len() != charges.len() {
        return Err(corrupt(
            "a rate-limit batch answered for another number of requests",
        ));
    }
    rows.into_iter()
        .zip(charges)
        .map(|(row, charge)| {
            let status = RateStatus {
                limit: count(row.status_limit),
                remaining: count(row.status_remaining),
                reset_after: micros(row.status_reset_after_us),
            };
            if charge.ahead {
                return Ok((RateDecision::Admitted(status), count(row.charged)));
            }
            if row.admitted {
                return Ok((RateDecision::Admitted(status), count(row.charged).max(1)));
            }
            let scope = match row.denied_scope {
                Some(0) => RateScope::Webhook,
                Some(1) => RateScope::Organization,
                _ => return Err(corrupt("a rate-limit refusal without its scope")),
            };
            let denied = RateDecision::Denied {
                scope,
                retry_after: micros(row.retry_after_us),
                status,
            };
            Ok((denied, 0))
        })
        .collect()
}
