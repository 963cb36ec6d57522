//! The dispatcher: claims due tasks from the queue under a lease, delivers them within the
//! node's and each target's concurrency limits, and records every attempt with its verdict.
//!
//! A dispatcher that dies leaves its leases to expire; the tasks are then claimed again, so
//! delivery is at least once (the task id, sent as `webhook-id`, lets targets deduplicate).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument as _, debug, error, info_span, warn};
use webhook_domain::model::{
    AttemptVerdict, ClaimRequest, ClaimedTask, DeliveryFailure, DeliveryReport, FinishedAttempt,
    QueueStats,
};
use webhook_domain::model::{DeliveryAttempt, TargetId, TargetResponse, Timestamp};
use webhook_domain::ports::{
    Adapters, Clock as _, Entropy as _, SecretSealer as _, StoreError, TargetDelivery as _,
    TaskQueue as _,
};
use webhook_domain::rules::{RetryPolicy, attempt_verdict, next_attempt_number, next_delay};

use crate::floors::Floors;
use crate::metrics::{AttemptResult, DispatchMetrics};

/// How a dispatcher works the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchConfig {
    /// Most tasks claimed in one store round trip.
    pub batch_size: u32,
    /// Most claimed tasks on this node at once, in delivery or waiting for a slot at their
    /// target (at most `max_in_flight_per_target` of a target wait); as many finished attempts
    /// again may wait to be recorded, each holding its task's lease.
    pub max_in_flight: usize,
    /// Most deliveries in progress at once to one target, and most of its claimed tasks waiting
    /// for one of them: a slow target holds at most twice this of the node's `max_in_flight`.
    pub max_in_flight_per_target: usize,
    /// How long a claimed task is reserved for this dispatcher. Must exceed the delivery's
    /// total timeout: an attempt still running when its lease ends is cut short.
    pub lease_for: Duration,
    /// The delivery's total timeout. A claimed task waiting for its target starts only while
    /// its lease can still hold an attempt this long; later it goes back to the queue.
    pub attempt_timeout: Duration,
    /// How often the queue is polled when nothing wakes the dispatcher earlier, and how often a
    /// claim goes without floors (see [`webhook_domain::model::ClaimFloor`]), reaching the tasks
    /// given back by other nodes or left by a node that died.
    pub poll_interval: Duration,
    /// On shutdown, how long attempts in progress may run before they are abandoned and their
    /// leases given back.
    pub shutdown_grace: Duration,
    /// When failed attempts are retried.
    pub retry: RetryPolicy,
    /// How often the queue gauges are read from the store while the dispatcher runs.
    pub queue_stats_every: Duration,
    /// After a claim that found nothing due, how long the next claim waits, so that a stream
    /// of accepted events whose tasks nobody can deliver yet (targets without an endpoint, or
    /// at their limit) costs one claim per window rather than one per event.
    pub settle_after_idle: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_in_flight: 64,
            max_in_flight_per_target: 4,
            lease_for: Duration::from_secs(60),
            attempt_timeout: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            queue_stats_every: Duration::from_secs(15),
            settle_after_idle: Duration::from_millis(10),
        }
    }
}

impl DispatchConfig {
    /// What an attempt started now needs of its lease: the whole timeout, and the last tenth of
    /// the lease to record it in.
    fn lease_needed(&self) -> Duration {
        self.attempt_timeout + self.lease_for / 10
    }

    /// The fewest free slots worth a claim, a quarter of a batch: under load, slots freed one
    /// by one are claimed for together.
    fn smallest_claim(&self) -> usize {
        (self.batch_size as usize)
            .min(self.max_in_flight)
            .div_ceil(4)
    }

    /// Most tasks of one target a claim takes: what the node can hold of it, in delivery and
    /// waiting; more would only be given back.
    fn claim_per_target(&self) -> u32 {
        let hold = self.max_in_flight_per_target + self.waiting_per_target();
        u32::try_from(hold).unwrap_or(u32::MAX)
    }

    /// Most claimed tasks of one target that wait on the node for one of its slots: none when
    /// the lease leaves less than a tenth of itself to wait in.
    fn waiting_per_target(&self) -> usize {
        if self.lease_for.saturating_sub(self.lease_needed()) >= self.lease_for / 10 {
            self.max_in_flight_per_target
        } else {
            0
        }
    }
}

/// What one claim did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// Tasks the store handed over.
    pub claimed: usize,
    /// Of those, tasks given back at once because their target reached its limit within the
    /// batch (targets already at their limit are passed over by the claim).
    pub deferred: usize,
}

/// Delivers queued tasks; see the module docs. Cheap to clone: clones share everything, the
/// concurrency limits included.
pub struct Dispatcher<A: Adapters> {
    inner: Arc<Inner<A>>,
}

impl<A: Adapters> Clone for Dispatcher<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Adapters> std::fmt::Debug for Dispatcher<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner<A: Adapters> {
    store: A::Store,
    delivery: A::Delivery,
    sealer: A::Sealer,
    clock: A::Clock,
    entropy: A::Entropy,
    config: DispatchConfig,
    metrics: Arc<DispatchMetrics>,
    node: Arc<Semaphore>,
    targets: Arc<TargetSlots>,
    /// Attempts delivered and not yet recorded: a delivery gives its slot to the next task as
    /// soon as it has a place here, so that recording overlaps the next claim and deliveries;
    /// when recording falls behind, this bounds the leases held without progress.
    unrecorded: Arc<Semaphore>,
    /// Signalled when a delivery gives its slot back, so the work loop claims again.
    slot_freed: Notify,
    wake: Arc<Notify>,
    recorder: Mutex<Recorder>,
    floors: Mutex<Floors>,
}

/// Finished attempts waiting to be recorded, each with its caller's answer; and whether a
/// task is recording them. One batch is recorded at a time, and the attempts that finish
/// meanwhile wait for the next: under load each batch takes what finished while the one before
/// it was written, so the store commits many attempts at once rather than one per attempt.
#[derive(Default)]
struct Recorder {
    pending: Vec<(FinishedAttempt, oneshot::Sender<Result<(), StoreError>>)>,
    recording: bool,
}

/// The task recording attempts ended without answering.
#[derive(Debug, thiserror::Error)]
#[error("the task recording delivery attempts ended without an answer")]
struct RecorderGone;

impl<A: Adapters> Dispatcher<A> {
    /// A dispatcher over `store`, pushing with `delivery`; `sealer` opens the targets' signing
    /// secrets.
    pub fn new(
        store: A::Store,
        delivery: A::Delivery,
        sealer: A::Sealer,
        clock: A::Clock,
        entropy: A::Entropy,
        config: DispatchConfig,
    ) -> Self {
        let config = DispatchConfig {
            batch_size: config.batch_size.max(1),
            max_in_flight: config.max_in_flight.max(1),
            max_in_flight_per_target: config.max_in_flight_per_target.max(1),
            queue_stats_every: config.queue_stats_every.max(Duration::from_millis(10)),
            ..config
        };
        Self {
            inner: Arc::new(Inner {
                store,
                delivery,
                sealer,
                clock,
                entropy,
                node: Arc::new(Semaphore::new(config.max_in_flight)),
                targets: TargetSlots::new(config.max_in_flight_per_target),
                unrecorded: Arc::new(Semaphore::new(config.max_in_flight)),
                slot_freed: Notify::new(),
                config,
                metrics: Arc::new(DispatchMetrics::default()),
                wake: Arc::new(Notify::new()),
                recorder: Mutex::new(Recorder::default()),
                floors: Mutex::new(Floors::new(config.poll_interval)),
            }),
        }
    }

    /// The counters and gauges, to register with the `/metrics` registry.
    pub fn metrics(&self) -> Arc<DispatchMetrics> {
        Arc::clone(&self.inner.metrics)
    }

    /// Wakes the running dispatcher before its next poll, e.g. when ingest has queued a task.
    /// A wake-up while it is busy is kept until it next waits.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.inner.wake)
    }

    /// Claims one batch of due tasks, delivers them concurrently within the limits and records
    /// every attempt; returns once all of them are recorded (or given back).
    pub async fn run_once(&self) -> Result<ClaimOutcome, StoreError> {
        let inner = &self.inner;
        let free = inner
            .node
            .available_permits()
            .min(inner.config.batch_size as usize);
        if free == 0 {
            return Ok(ClaimOutcome::default());
        }
        // Targets at their limit: their tasks would only be given back.
        let claimed = self.claim(free, &inner.targets.full()).await?;
        let (_abort, abort_rx) = watch::channel(false);
        let mut jobs = JoinSet::new();
        let mut waiting = Waiting::default();
        waiting.tasks.extend(claimed);
        let claimed = waiting.tasks.len();
        self.start_waiting(&mut waiting, &mut jobs, &abort_rx);
        let deferred = waiting.tasks.len();
        self.give_back_all(waiting.tasks.drain(..)).await;
        while jobs.join_next().await.is_some() {}
        Ok(ClaimOutcome { claimed, deferred })
    }

    /// Reads the queue's size from the store into the metrics' gauges.
    pub async fn refresh_queue_stats(&self) -> Result<QueueStats, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let stats = inner
            .store
            .queue_stats(now)
            .await
            .inspect_err(|_| inner.metrics.store_error())?;
        inner.metrics.set_queue(&stats, now);
        Ok(stats)
    }

    /// Works the queue until `shutdown` completes: claims as slots free up, when woken, and
    /// every poll interval. Then it claims nothing more, lets attempts in progress finish for
    /// up to the shutdown grace, and gives back the leases of those still running. Meanwhile
    /// it refreshes the queue gauges every `queue_stats_every`.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let (done, mut stopped) = watch::channel(false);
        let work = async {
            self.work(shutdown).await;
            let _ = done.send(true);
        };
        let gauges = async {
            let mut every = tokio::time::interval(self.inner.config.queue_stats_every);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut stop = std::pin::pin!(async {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            });
            loop {
                tokio::select! {
                    biased;
                    () = &mut stop => break,
                    _ = every.tick() => {
                        if let Err(e) = self.refresh_queue_stats().await {
                            warn!(
                                error = &e as &dyn std::error::Error,
                                "reading the queue's size failed"
                            );
                        }
                    }
                }
            }
        };
        tokio::join!(work, gauges);
    }

    /// The work loop. Claims run beside deliveries, for the node's free slots: a task whose
    /// target is at its limit waits on the node (at most `max_in_flight_per_target` of a target),
    /// so a slot its target frees takes it at once instead of waiting for the store's answer to
    /// a claim.
    async fn work(&self, shutdown: impl Future<Output = ()>) {
        let config = self.inner.config;
        let (abort, abort_rx) = watch::channel(false);
        let mut jobs = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut waiting = Waiting::default();
        let mut claiming: Option<Claiming> = None;
        // Whether tasks may be due that no claim has looked for yet.
        let mut claim_due = true;
        // After a claim that found nothing due, the next claim starts no earlier than this.
        let mut settle_until: Option<tokio::time::Instant> = None;
        loop {
            while jobs.try_join_next().is_some() {}
            self.give_back_beside(
                &mut jobs,
                waiting.expiring(self.inner.clock.now(), config.lease_needed()),
            );
            self.start_waiting(&mut waiting, &mut jobs, &abort_rx);
            let settled = settle_until.is_none_or(|until| tokio::time::Instant::now() >= until);
            if settled {
                settle_until = None;
            }
            if claiming.is_none() && claim_due && settled {
                // The node's free slots not promised to a task already waiting.
                let room = self
                    .inner
                    .node
                    .available_permits()
                    .saturating_sub(waiting.tasks.len())
                    .min(config.batch_size as usize);
                if room >= config.smallest_claim() {
                    let skip = waiting.crowded(&self.inner.targets, config.waiting_per_target());
                    let this = self.clone();
                    claiming = Some(Claiming {
                        answer: tokio::spawn(async move { this.claim(room, &skip).await }),
                        asked: room,
                    });
                    claim_due = false;
                }
            }
            // A claim held back only by the settling wakes the loop when it may start; anything
            // else waits for a claim's answer, a freed slot, a wake-up or the poll.
            let now = tokio::time::Instant::now();
            let next_poll = settle_until
                .filter(|&until| claim_due && claiming.is_none() && until > now)
                .unwrap_or(now + config.poll_interval);
            // A freed slot starts waiting tasks, and lets a claim start that lacked room; it
            // means nothing to a claim in flight or settling.
            let slot_matters = !waiting.tasks.is_empty()
                || !(claim_due && (claiming.is_some() || settle_until.is_some()));
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                answer = async {
                    match claiming.as_mut() {
                        Some(claim) => (&mut claim.answer).await,
                        None => std::future::pending().await,
                    }
                }, if claiming.is_some() => {
                    let asked = claiming.take().map_or(0, |claim| claim.asked);
                    match answer.map_err(|e| StoreError::Internal(e.into())).and_then(|a| a) {
                        Ok(claimed) => {
                            let got = claimed.len();
                            waiting.tasks.extend(claimed);
                            self.start_waiting(&mut waiting, &mut jobs, &abort_rx);
                            let deferred = waiting.beyond(config.waiting_per_target());
                            // A full batch: more may be due right now. Deferred tasks: their
                            // targets now have tasks waiting and the next claim passes over them.
                            claim_due = got == asked || !deferred.is_empty();
                            settle_until = (got == 0).then(|| {
                                tokio::time::Instant::now() + config.settle_after_idle
                            });
                            self.give_back_beside(&mut jobs, deferred);
                        }
                        Err(e) => {
                            warn!(
                                error = &e as &dyn std::error::Error,
                                "claiming due tasks failed"
                            );
                            settle_until =
                                Some(tokio::time::Instant::now() + config.settle_after_idle);
                        }
                    }
                }
                // A wake-up while a claim is already due adds nothing: it stays stored until
                // the loop listens again, so a stream of them does not spin the loop.
                () = self.inner.wake.notified(), if !claim_due => claim_due = true,
                () = self.inner.slot_freed.notified(), if slot_matters => claim_due = true,
                () = tokio::time::sleep_until(next_poll) => claim_due = true,
            }
        }
        // Tasks claimed and not started go back to the queue.
        if let Some(claim) = claiming
            && let Ok(Ok(claimed)) = claim.answer.await
        {
            waiting.tasks.extend(claimed);
        }
        self.give_back_all(waiting.tasks.drain(..)).await;
        let grace = config.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while jobs.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            // Attempts still running give their leases back.
            let _ = abort.send(true);
            while jobs.join_next().await.is_some() {}
        }
    }

    /// Claims up to `limit` due tasks, none of a target in `skip`.
    async fn claim(&self, limit: usize, skip: &[TargetId]) -> Result<Vec<ClaimedTask>, StoreError> {
        let inner = &self.inner;
        let mut token = [0; 16];
        inner.entropy.fill(&mut token);
        let token = uuid::Builder::from_random_bytes(token).into_uuid();
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let started = std::time::Instant::now();
        let floors = self.floors().for_claim(started);
        let claimed = inner
            .store
            .claim_tasks(
                ClaimRequest::new(inner.clock.now(), inner.config.lease_for, token, limit)
                    .skipping(skip)
                    .from_floors(&floors)
                    .at_most_per_target(inner.config.claim_per_target()),
            )
            .await
            .inspect_err(|_| inner.metrics.store_error())?;
        inner.metrics.claim(claimed.len(), started.elapsed());
        self.floors().claimed(&claimed);
        Ok(claimed)
    }

    /// Starts the waiting tasks, oldest first, that have a slot on the node and at their target.
    fn start_waiting(
        &self,
        waiting: &mut Waiting,
        jobs: &mut JoinSet<()>,
        abort: &watch::Receiver<bool>,
    ) {
        let inner = &self.inner;
        let mut next = 0;
        while next < waiting.tasks.len() {
            let Ok(node) = Arc::clone(&inner.node).try_acquire_owned() else {
                break;
            };
            let Some(target) = inner.targets.enter(waiting.tasks[next].task.target_id) else {
                next += 1;
                continue;
            };
            let Some(task) = waiting.tasks.remove(next) else {
                break;
            };
            let slot = DeliverySlot {
                _node: node,
                _target: target,
            };
            let span = info_span!(
                "delivery",
                task.id = %task.task.id,
                target.id = %task.task.target_id,
                webhook.id = %task.task.webhook_id,
                target.host = task.endpoint_url.as_url().host_str().unwrap_or_default(),
            );
            let this = self.clone();
            let abort = abort.clone();
            jobs.spawn(async move { attempt(&this, task, slot, abort).await }.instrument(span));
        }
    }

    /// Gives `tasks` back in a job beside the deliveries, so the work loop does not wait for
    /// the store.
    fn give_back_beside(&self, jobs: &mut JoinSet<()>, tasks: Vec<ClaimedTask>) {
        if !tasks.is_empty() {
            let this = self.clone();
            jobs.spawn(async move { this.give_back_all(tasks).await });
        }
    }

    async fn give_back_all(&self, tasks: impl IntoIterator<Item = ClaimedTask>) {
        for task in tasks {
            self.give_back(&task).await;
        }
    }

    async fn give_back(&self, task: &ClaimedTask) {
        let inner = &self.inner;
        self.floors().given_back(task);
        match inner.store.release_lease(&task.lease).await {
            Ok(()) => inner.metrics.lease_released(),
            Err(StoreError::Conflict(_)) => inner.metrics.lease_lost(),
            Err(e) => {
                inner.metrics.store_error();
                warn!(
                    task.id = %task.task.id,
                    error = &e as &dyn std::error::Error,
                    "giving a lease back failed; it will expire"
                );
            }
        }
    }

    /// Records `finished` with the attempts that finish while a batch is being recorded, and
    /// answers its own outcome.
    async fn record(&self, finished: FinishedAttempt) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut recorder = self.recorder();
            recorder.pending.push((finished, reply));
            !std::mem::replace(&mut recorder.recording, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.record_pending().await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::OutcomeUnknown(Box::new(RecorderGone))))
    }

    /// Records the pending attempts, a batch at a time, until none is left.
    async fn record_pending(&self) {
        loop {
            let batch = {
                let mut recorder = self.recorder();
                if recorder.pending.is_empty() {
                    recorder.recording = false;
                    return;
                }
                std::mem::take(&mut recorder.pending)
            };
            let (finished, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let started = std::time::Instant::now();
            let outcomes = self.inner.store.finish_attempts(&finished).await;
            self.inner.metrics.recorded_batch(started.elapsed());
            let mut outcomes = outcomes.into_iter();
            for reply in replies {
                let outcome = outcomes.next().unwrap_or_else(|| {
                    Err(StoreError::Internal(
                        "the store answered fewer attempts than it was given".into(),
                    ))
                });
                // An attempt abandoned meanwhile no longer needs its answer.
                let _ = reply.send(outcome);
            }
        }
    }

    fn floors(&self) -> std::sync::MutexGuard<'_, Floors> {
        // Every critical section leaves the floors consistent; at worst one is lower than it
        // needs to be.
        self.inner
            .floors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn recorder(&self) -> std::sync::MutexGuard<'_, Recorder> {
        // The state is a list and a flag that every critical section leaves consistent.
        self.inner
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn random_fraction(&self) -> f64 {
        let mut bytes = [0; 8];
        self.inner.entropy.fill(&mut bytes);
        // 53 random bits: every such fraction is exact in f64 and below 1.
        #[expect(
            clippy::cast_precision_loss,
            reason = "a 53-bit integer converts to f64 exactly"
        )]
        let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1_u64 << 53) as f64;
        fraction
    }
}

/// One attempt of a claimed task, from unsealing its target's secret to recording the result.
async fn attempt<A: Adapters>(
    dispatcher: &Dispatcher<A>,
    claimed: ClaimedTask,
    slot: DeliverySlot,
    abort: watch::Receiver<bool>,
) {
    let inner = &dispatcher.inner;
    inner.metrics.in_flight_add(1);
    let started_at = inner.clock.now();
    // The log numbers attempts over the task's life; the policy counts those of its round.
    let number = next_attempt_number(claimed.task.attempts, claimed.task.attempts_before_round);
    let Some((report, verdict)) =
        deliver(dispatcher, &claimed, number.in_round, started_at, abort).await
    else {
        inner.metrics.in_flight_add(-1);
        dispatcher.give_back(&claimed).await;
        drop(slot);
        return;
    };
    inner.metrics.in_flight_add(-1);
    // The delivery is over: once its recording has a place, its slot serves the next task.
    let unrecorded = Arc::clone(&inner.unrecorded)
        .acquire_owned()
        .await
        .expect("the semaphore of unrecorded attempts is never closed");
    drop(slot);
    inner.slot_freed.notify_one();
    let attempt = DeliveryAttempt {
        task_id: claimed.task.id,
        number: number.overall,
        response: response_of(report.as_ref(), started_at),
    };
    let latency = report.as_ref().map_or(Duration::ZERO, report_latency);
    let status = attempt.response.status_code;
    let latency_ms = attempt.response.latency_ms;
    let recorded = dispatcher
        .record(FinishedAttempt {
            lease: claimed.lease,
            attempt,
            verdict,
        })
        .await;
    drop(unrecorded);
    match recorded {
        Ok(()) => {
            let result = match verdict {
                AttemptVerdict::Delivered => AttemptResult::Delivered,
                AttemptVerdict::RetryAt(_) => AttemptResult::Retry,
                AttemptVerdict::Failed => AttemptResult::Failed,
            };
            inner.metrics.record_attempt(result, latency);
            debug!(
                attempt = number.overall,
                attempt.in_round = number.in_round,
                status,
                latency_ms,
                result = ?result,
                "delivery attempt recorded"
            );
        }
        Err(StoreError::Conflict(_)) => {
            inner.metrics.lease_lost();
            warn!(
                attempt = number.overall,
                "the lease expired before the attempt was recorded; another dispatcher has the task"
            );
        }
        Err(e) => {
            inner.metrics.store_error();
            error!(
                attempt = number.overall,
                error = &e as &dyn std::error::Error,
                "recording a delivery attempt failed; the task will be attempted again when its lease expires"
            );
        }
    }
}

/// Pushes `claimed` to its target and judges the answer; the report is `None` when the target's
/// secret cannot be unsealed (no request is made). `None` when shutdown abandoned the attempt.
async fn deliver<A: Adapters>(
    dispatcher: &Dispatcher<A>,
    claimed: &ClaimedTask,
    attempt_in_round: u32,
    started_at: Timestamp,
    mut abort: watch::Receiver<bool>,
) -> Option<(Option<DeliveryReport>, AttemptVerdict)> {
    let inner = &dispatcher.inner;
    let Ok(secret) = inner.sealer.unseal(&claimed.signing_secret) else {
        error!("the target's signing secret cannot be unsealed with this master key");
        let verdict = next_delay(
            &inner.config.retry,
            attempt_in_round,
            dispatcher.random_fraction(),
            None,
        )
        .map_or(AttemptVerdict::Failed, |delay| {
            AttemptVerdict::RetryAt(inner.clock.now().plus(delay))
        });
        return Some((None, verdict));
    };
    // An attempt still running when the lease ends could no longer be recorded.
    let deadline = claimed
        .lease
        .until
        .since(started_at)
        .saturating_sub(inner.config.lease_for / 10);
    let delivery = tokio::time::timeout(
        deadline,
        inner
            .delivery
            .deliver(&claimed.endpoint_url, &secret, &claimed.task, started_at),
    );
    let report = tokio::select! {
        result = delivery => result.unwrap_or(DeliveryReport::Failed {
            failure: DeliveryFailure::Timeout,
            latency: deadline,
        }),
        _ = abort.wait_for(|abort| *abort) => return None,
    };
    let verdict = attempt_verdict(
        &inner.config.retry,
        attempt_in_round,
        &report,
        dispatcher.random_fraction(),
        inner.clock.now(),
    );
    Some((Some(report), verdict))
}

fn report_latency(report: &DeliveryReport) -> Duration {
    match report {
        DeliveryReport::Answered { latency, .. } | DeliveryReport::Failed { latency, .. } => {
            *latency
        }
    }
}

/// What the invocation log shows of an attempt; `None` when no request could be made.
fn response_of(report: Option<&DeliveryReport>, at: Timestamp) -> TargetResponse {
    let Some(report) = report else {
        return TargetResponse {
            status_code: None,
            body_excerpt: None,
            latency_ms: 0,
            error: Some("the target's signing secret could not be unsealed".to_owned()),
            at,
            succeeded: false,
        };
    };
    let latency_ms = u32::try_from(report_latency(report).as_millis()).unwrap_or(u32::MAX);
    match report {
        DeliveryReport::Answered {
            status_code,
            body_excerpt,
            ..
        } => {
            let succeeded = (200..300).contains(status_code);
            TargetResponse {
                status_code: Some(*status_code),
                body_excerpt: Some(body_excerpt.clone()),
                latency_ms,
                error: (!succeeded).then(|| format!("the target answered HTTP {status_code}")),
                at,
                succeeded,
            }
        }
        DeliveryReport::Failed { failure, .. } => TargetResponse {
            status_code: None,
            body_excerpt: None,
            latency_ms,
            error: Some(match failure {
                DeliveryFailure::Timeout => "no answer before the timeout".to_owned(),
                DeliveryFailure::Connection(detail) => format!("connection failed: {detail}"),
                DeliveryFailure::Blocked(detail) => {
                    format!("refused by the outbound address policy: {detail}")
                }
            }),
            at,
            succeeded: false,
        },
    }
}

/// A claim the work loop has sent and not yet heard back from.
struct Claiming {
    answer: JoinHandle<Result<Vec<ClaimedTask>, StoreError>>,
    /// How many tasks it asked for.
    asked: usize,
}

/// Claimed tasks waiting on the node for a slot, oldest claim first.
#[derive(Default)]
struct Waiting {
    tasks: VecDeque<ClaimedTask>,
}

impl Waiting {
    /// The targets at their limit with `max` tasks waiting: a claim passes over them.
    fn crowded(&self, targets: &TargetSlots, max: usize) -> Vec<TargetId> {
        let mut full = targets.full();
        full.retain(|target| {
            self.tasks
                .iter()
                .filter(|task| task.task.target_id == *target)
                .count()
                >= max
        });
        full
    }

    /// Takes out the tasks beyond the first `max` waiting for each target.
    fn beyond(&mut self, max: usize) -> Vec<ClaimedTask> {
        let mut counts: HashMap<TargetId, usize> = HashMap::new();
        let (keep, beyond): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|task| {
                let count = counts.entry(task.task.target_id).or_insert(0);
                *count += 1;
                *count <= max
            });
        self.tasks = keep;
        beyond.into()
    }

    /// Takes out the tasks whose lease no longer holds `needed` from `now`: too late to start.
    fn expiring(&mut self, now: Timestamp, needed: Duration) -> Vec<ClaimedTask> {
        let limit = now.plus(needed);
        if self.tasks.iter().all(|task| task.lease.until > limit) {
            return Vec::new();
        }
        let (keep, expiring): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|task| task.lease.until > limit);
        self.tasks = keep;
        expiring.into()
    }
}

/// A delivery's places in the node's and its target's limits; dropping it frees both.
struct DeliverySlot {
    _node: tokio::sync::OwnedSemaphorePermit,
    _target: TargetSlot,
}

/// Deliveries in progress per target, each target capped.
struct TargetSlots {
    max: usize,
    busy: Mutex<HashMap<TargetId, usize>>,
}

/// One delivery's place in its target's count; dropping it frees the place.
struct TargetSlot {
    slots: Arc<TargetSlots>,
    target: TargetId,
}

impl TargetSlots {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            busy: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TargetId, usize>> {
        // The map holds plain counts that every critical section leaves consistent.
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The targets at their limit.
    fn full(&self) -> Vec<TargetId> {
        self.lock()
            .iter()
            .filter(|&(_, &count)| count >= self.max)
            .map(|(&target, _)| target)
            .collect()
    }

    /// A place for one more delivery to `target`, unless it is at its limit.
    fn enter(self: &Arc<Self>, target: TargetId) -> Option<TargetSlot> {
        let mut busy = self.lock();
        let count = busy.entry(target).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(TargetSlot {
            slots: Arc::clone(self),
            target,
        })
    }
}

impl Drop for TargetSlot {
    fn drop(&mut self) {
        let mut busy = self.slots.lock();
        if let Some(count) = busy.get_mut(&self.target) {
            *count -= 1;
            if *count == 0 {
                busy.remove(&self.target);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_tasks_wait_for_their_target_only_when_the_lease_leaves_time_to() {
        let defaults = DispatchConfig::default();
        // 60 s less 15 s of attempt and 6 s to record it: 39 s to wait.
        assert_eq!(defaults.lease_needed(), Duration::from_secs(21));
        assert_eq!(defaults.waiting_per_target(), 4);
        // The shortest lease the configuration allows for a 15 s timeout leaves none.
        let tight = DispatchConfig {
            lease_for: Duration::from_secs(17),
            ..defaults
        };
        assert_eq!(tight.waiting_per_target(), 0);
        // A claim takes of one target what the node can hold of it: delivering and waiting.
        assert_eq!(defaults.claim_per_target(), 8);
        assert_eq!(tight.claim_per_target(), 4);
    }

    #[test]
    fn a_claim_waits_for_a_quarter_of_a_batch_of_free_slots() {
        assert_eq!(DispatchConfig::default().smallest_claim(), 8);
        let small = DispatchConfig {
            batch_size: 4,
            max_in_flight: 2,
            ..DispatchConfig::default()
        };
        assert_eq!(small.smallest_claim(), 1);
    }
}
