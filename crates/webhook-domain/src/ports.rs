//! The ports: every trait through which the domain reaches the outside world. Adapters
//! implement them; the use cases in [`crate::service`] are written over them.
//!
//! Each method's `# Errors` section says what an implementation MUST return; the store contract
//! suite (`webhook-store-contract`) has a case for each of these obligations.
//!
//! [`Adapters`] names one implementation of each port: the use cases and the dispatcher take
//! that one bundle as their type parameter (`Ingest<A>`, `Management<A>`), so a bound reads
//! `A::Store` or `A::Clock` wherever it appears.

use std::future::Future;
use std::sync::Arc;

use crate::model::{
    ApiKey, ApiKeyHash, ApiKeyId, AttemptVerdict, ClaimOutcome, ClaimRequest, ClaimedTask,
    CoalescedRejection, DeliveryAttempt, DeliveryClaim, DeliveryReport, EndpointUrl,
    FinishedAttempt, IngestRoute, Invocation, InvocationFilter, InvocationId, InvocationSummary,
    Lease, Organization, OrganizationId, Page, PageRequest, QueueStats, RateRequest, RequestRecord,
    SealedSecret, Secret, Stale, Target, TargetId, Task, TaskFilter, TaskId, TaskStatusChange,
    TaskSummary, Timestamp, Webhook, WebhookFilter, WebhookHealth, WebhookId,
};
use crate::rules::RateDecision;

/// Any error from infrastructure, kept as the source of a domain error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store operation can fail with; each variant is a decision for the caller.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist (or belongs to another organization).
    #[error("not found")]
    NotFound,
    /// The write contradicts what is stored: a duplicate id, a stale status, a lost lease.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The store cannot be reached or did not answer in time; retrying later may succeed.
    /// Nothing of the failed operation was written.
    #[error("the store is unavailable")]
    Unavailable(#[source] BoxError),
    /// The connection was lost while a write was being committed and the store could not find
    /// out, before its deadline, whether the write committed: it may be durable or not.
    #[error("the store was lost during the commit; whether it committed is unknown")]
    OutcomeUnknown(#[source] BoxError),
    /// The store answered with something that should not happen (corrupt row, bug).
    #[error("the store failed")]
    Internal(#[source] BoxError),
}

impl StoreError {
    /// The answer of each of `count` operations written together that failed together (a
    /// batch in one statement or one commit): the same kind for each, with this failure as the
    /// shared cause.
    pub fn shared(self, count: usize) -> Vec<Self> {
        let shared = Arc::new(self);
        (0..count)
            .map(|_| {
                let cause = || Box::new(SharedFailure(Arc::clone(&shared)));
                match &*shared {
                    Self::NotFound => Self::NotFound,
                    Self::Conflict(what) => Self::Conflict(what),
                    Self::Unavailable(_) => Self::Unavailable(cause()),
                    Self::OutcomeUnknown(_) => Self::OutcomeUnknown(cause()),
                    Self::Internal(_) => Self::Internal(cause()),
                }
            })
            .collect()
    }
}

/// The failure of a batch, shared by the answers of its operations.
#[derive(Debug, thiserror::Error)]
#[error("a batch written together failed")]
struct SharedFailure(#[source] Arc<StoreError>);

/// An error and its sources, joined by `: `, for one log line: a port's error says little
/// without the infrastructure's causes behind it.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

// ---------------------------------------------------------------------------------------------
// Time, randomness and secrets

/// The current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC with microsecond precision.
    fn now(&self) -> Timestamp;
}

/// A cryptographically secure source of random bytes.
pub trait Entropy: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}

/// A sealed secret could not be opened (wrong master key, corrupted bytes).
#[derive(Debug, thiserror::Error)]
#[error("the secret could not be unsealed")]
pub struct UnsealError;

/// Encrypts secrets for storage: webhook secrets and target signing secrets.
pub trait SecretSealer: Send + Sync {
    /// Encrypts `secret` (authenticated encryption, fresh nonce each time).
    fn seal(&self, secret: &Secret) -> SealedSecret;

    /// Decrypts what [`SecretSealer::seal`] produced.
    ///
    /// # Errors
    /// MUST return [`UnsealError`] when `sealed` was not produced under this master key or was
    /// altered.
    fn unseal(&self, sealed: &SealedSecret) -> Result<Secret, UnsealError>;
}

/// Hashes API keys for storage and lookup.
pub trait KeyHasher: Send + Sync {
    /// The digest stored for `key`; equal keys give equal digests.
    fn hash(&self, key: &Secret) -> ApiKeyHash;
}

// ---------------------------------------------------------------------------------------------
// Rate limiting

/// The limiter's state could not be read or written (a shared limiter that is down).
#[derive(Debug, thiserror::Error)]
#[error("the rate limiter is unavailable")]
pub struct RateLimiterUnavailable(#[source] pub BoxError);

/// Keeps the rate-limit windows of webhooks and organizations, on one node or shared.
pub trait RateLimiter: Send + Sync {
    /// Decides `request` with [`crate::rules::decide`] against the stored windows and stores
    /// the result, atomically: concurrent requests never both take the last slot.
    ///
    /// # Errors
    /// MUST return [`RateLimiterUnavailable`] when the windows cannot be read or written.
    fn acquire(
        &self,
        request: RateRequest,
    ) -> impl Future<Output = Result<RateDecision, RateLimiterUnavailable>> + Send;

    /// What [`RateLimiter::acquire`] would decide now, with [`crate::rules::peek`], charging
    /// nothing: ingest asks before it authenticates a request, so that an exhausted quota is
    /// refused early and a request that fails authentication consumes none.
    ///
    /// A refusal MUST be one that `acquire` would answer now (the same scope and retry-after).
    /// An admission is advice: the charge that follows decides, so a limiter whose windows are
    /// elsewhere (shared by several nodes) MAY answer admitted, with the status of windows that
    /// hold nothing, when it knows of no refusal, rather than read the windows for every
    /// request and then again to charge it.
    ///
    /// # Errors
    /// MUST return [`RateLimiterUnavailable`] when the windows it reads cannot be read (a
    /// limiter that reads none for a request never fails it: its charge will).
    fn peek(
        &self,
        request: RateRequest,
    ) -> impl Future<Output = Result<RateDecision, RateLimiterUnavailable>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Stores

/// When [`OrganizationStore::insert_organization_with_key`] creates its organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrganizationInsert {
    /// Whatever organizations exist (`webhookd org create`).
    Always,
    /// Only when no organization exists (the first start).
    FirstOnly,
}

/// Organizations and their API keys.
pub trait OrganizationStore: Send + Sync {
    /// # Errors
    /// MUST return `Conflict` when an organization with this id exists.
    fn insert_organization(
        &self,
        organization: &Organization,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// # Errors
    /// MUST return `NotFound` when no organization has this id.
    fn organization(
        &self,
        id: OrganizationId,
    ) -> impl Future<Output = Result<Organization, StoreError>> + Send;

    /// Replaces name, limit and `updated_at`.
    ///
    /// # Errors
    /// MUST return `NotFound` when no organization has this id.
    fn update_organization(
        &self,
        organization: &Organization,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many organizations exist (the first start creates one when there are none).
    fn count_organizations(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Every organization, oldest first by (`created_at`, id).
    fn organizations(&self) -> impl Future<Output = Result<Vec<Organization>, StoreError>> + Send;

    /// Creates `organization` with its first API key `key` (whose `organization_id` is
    /// `organization.id`) in one transaction: when this returns `Ok(true)` both are durable,
    /// otherwise neither was written, so a crash can never leave an organization without a key.
    ///
    /// With [`OrganizationInsert::FirstOnly`] it writes nothing and returns `Ok(false)` when any
    /// organization exists; the check and the insert are atomic, so of concurrent first-only
    /// calls (several nodes starting on one empty database) exactly one creates an
    /// organization.
    ///
    /// # Errors
    /// MUST return `Conflict` when an organization with this id exists, or when the key's id or
    /// hash is stored, and then write nothing (neither the organization nor the key).
    fn insert_organization_with_key(
        &self,
        organization: &Organization,
        key: &ApiKey,
        mode: OrganizationInsert,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// # Errors
    /// MUST return `Conflict` when the id or the hash is already stored, `NotFound` when the
    /// organization does not exist.
    fn insert_api_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// # Errors
    /// MUST return `NotFound` when no live key has this hash.
    fn api_key_by_hash(
        &self,
        hash: &ApiKeyHash,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;

    /// The organization's keys, oldest first.
    fn api_keys(
        &self,
        organization_id: OrganizationId,
    ) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Deletes a key; it no longer authenticates.
    ///
    /// # Errors
    /// MUST return `NotFound` when the key does not exist in this organization.
    fn delete_api_key(
        &self,
        organization_id: OrganizationId,
        id: ApiKeyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Targets (agents and teams).
pub trait TargetStore: Send + Sync {
    /// # Errors
    /// MUST return `Conflict` when a target with this id exists, `NotFound` when its
    /// organization does not exist.
    fn insert_target(&self, target: &Target)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// # Errors
    /// MUST return `NotFound` when the target does not exist, is deleted, or belongs to another
    /// organization.
    fn target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> impl Future<Output = Result<Target, StoreError>> + Send;

    /// Live targets, newest first by (`created_at`, id).
    fn targets(
        &self,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Target>, StoreError>> + Send;

    /// Replaces kind, name, endpoint, signing secret and `updated_at`.
    ///
    /// # Errors
    /// MUST return `NotFound` as [`TargetStore::target`] does.
    fn update_target(&self, target: &Target)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a target from lists and lookups; its tasks stay on the board.
    ///
    /// # Errors
    /// MUST return `NotFound` as [`TargetStore::target`] does, and `Conflict` while a webhook
    /// that is not deleted points at it.
    fn delete_target(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Webhooks, including their tombstones.
pub trait WebhookStore: Send + Sync {
    /// # Errors
    /// MUST return `Conflict` when a webhook with this id exists, deleted or not (ids are never
    /// reused), and `NotFound` when its target does not exist in its organization.
    fn insert_webhook(
        &self,
        webhook: &Webhook,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Any webhook by id, whatever its organization and status (deleted ones are tombstones).
    ///
    /// # Errors
    /// MUST return `NotFound` when no webhook ever had this id.
    fn webhook(&self, id: WebhookId) -> impl Future<Output = Result<Webhook, StoreError>> + Send;

    /// The organization's webhooks that `filter` admits ([`WebhookFilter::admits`]: without a
    /// status, those that are not deleted), newest first by (`created_at`, id).
    fn webhooks(
        &self,
        organization_id: OrganizationId,
        filter: WebhookFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Webhook>, StoreError>> + Send;

    /// Replaces every field but id, organization, `created_at` and `last_triggered_at` (which
    /// only [`InvocationLog::record_invocation`] moves, so a read-modify-write never takes it
    /// back). Deleting is an update to [`crate::model::WebhookStatus::Deleted`].
    ///
    /// # Errors
    /// MUST return `NotFound` when no webhook of this organization has the id, and `Conflict`
    /// when the stored webhook is deleted (a tombstone never changes).
    fn update_webhook(
        &self,
        webhook: &Webhook,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The invocation log, and the one write that accepts an event.
pub trait InvocationLog: Send + Sync {
    /// Records an invocation and, for an accepted one, its task, in one transaction: either
    /// both are durable when this returns `Ok`, or neither was written. An accepted invocation
    /// also sets its webhook's `last_triggered_at` to `received_at` when that is later.
    ///
    /// An invocation's `target_response` is the latest attempt of its task
    /// ([`TaskQueue::finish_attempt`] records it), which the reads answer; of a response given
    /// here (ingest gives none: no attempt precedes the invocation) a store keeps at most
    /// whether it succeeded, which the log's `failed` filter and the health counts read.
    ///
    /// # Errors
    /// MUST return `Conflict` when the invocation or task id exists, `NotFound` when the
    /// webhook does not exist in the invocation's organization, and `Unavailable` when the
    /// store cannot commit, and then nothing is written.
    ///
    /// When the connection breaks during the commit itself (a networked store cannot tell
    /// whether the commit happened), the store MUST find out by reading back the ids, which
    /// are known before the write, until it answers or its deadline passes: `Ok` when the
    /// write is durable, `Unavailable` when nothing was written, and `OutcomeUnknown` only when
    /// the deadline passed first. It MUST NOT answer `Unavailable` for a write that is durable:
    /// a sender retries after that answer, and its retry would make a second task.
    fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records an invocation as [`InvocationLog::record_invocation`] does, and in the same
    /// transaction claims `claim.delivery_id` on the invocation's webhook. When another
    /// invocation claimed that id at or after `claim.window_start`, nothing is written and the
    /// answer names it; an older claim has lapsed and is taken over.
    ///
    /// MUST be exact under concurrency, across connections and nodes sharing the store (a
    /// unique constraint, not a read-then-write): of requests claiming one id at once, exactly
    /// one is `Recorded`.
    ///
    /// # Errors
    /// As [`InvocationLog::record_invocation`].
    fn record_claimed(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
        claim: &DeliveryClaim,
    ) -> impl Future<Output = Result<ClaimOutcome, StoreError>> + Send;

    /// Deletes delivery-id claims made before `before` (they have lapsed). Returns how many.
    fn purge_delivery_claims(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// # Errors
    /// MUST return `NotFound` when the invocation does not exist in this organization.
    fn invocation(
        &self,
        organization_id: OrganizationId,
        id: InvocationId,
    ) -> impl Future<Output = Result<Invocation, StoreError>> + Send;

    /// A webhook's invocations, newest first by (`received_at`, id), that pass every filter
    /// of `filter` that is set. Pages are stable while new invocations arrive: no item is
    /// repeated or skipped, and a cursor stays valid with the same filter.
    ///
    /// `filter.words` MUST keep exactly the invocations whose payload has each of the words
    /// among those [`crate::model::indexed_words`] makes of it, whatever the store: no
    /// tokenizer, stemmer or locale of the store's own may change what a word is.
    fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Invocation>, StoreError>> + Send;

    /// The same entries as [`InvocationLog::invocations`], summarized for a list: no payload,
    /// but its first bytes (`payload_excerpt`, at most
    /// [`crate::model::PAYLOAD_EXCERPT_BYTES`]), the first characters of its `message` when
    /// that is a string (`message_preview`, at most [`crate::model::MESSAGE_PREVIEW_CHARS`]),
    /// and the delivery state of an accepted invocation's task
    /// ([`crate::model::DeliveryStatus::of`]).
    ///
    /// A store SHOULD read only prefixes of the payloads, so that the memory a list read takes
    /// is bounded by the page size whatever was sent.
    fn invocation_summaries(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: &InvocationFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<InvocationSummary>, StoreError>> + Send;

    /// How each webhook of `webhook_ids` fared from `since` on, read from the log in one
    /// statement for all of them, in the order of `webhook_ids` (one [`WebhookHealth`] each):
    /// over its invocations of this organization received at or after `since`, `accepted`
    /// counts those accepted, and `failed` the requests of those that
    /// [`InvocationLog::invocations`] selects with [`crate::model::OutcomeFilter::Failed`]
    /// and the same `since` (each entry counting its `repeat_count`), with `last_failure_at`
    /// the `received_at` of the newest of them. A webhook without such invocations, unknown,
    /// or of another organization, has `WebhookHealth::default()`. Deleted webhooks count as
    /// the others.
    ///
    /// Reads only: nothing is counted as events are recorded, so this costs ingest nothing. A
    /// store SHOULD walk each webhook's invocations by time from `since` on (the index lists
    /// are read by) rather than its whole log.
    fn webhook_health(
        &self,
        organization_id: OrganizationId,
        webhook_ids: &[WebhookId],
        since: Timestamp,
    ) -> impl Future<Output = Result<Vec<WebhookHealth>, StoreError>> + Send;

    /// Deletes invocations received before `before` whose task is absent or finished
    /// (completed or failed), with those tasks and their attempts. Returns how many
    /// invocations were deleted.
    fn purge_invocations(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Checks that the store can commit a write now (readiness): a cheap write that leaves
    /// nothing any other method can read.
    ///
    /// # Errors
    /// MUST return `Unavailable` when a write could not be committed now (the store is
    /// unreachable, read-only or full, or its writer is stopped), even while reads work.
    fn check_writable(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The task board and the delivery queue.
pub trait TaskQueue: Send + Sync {
    /// # Errors
    /// MUST return `NotFound` when the task does not exist in this organization.
    fn task(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;

    /// Tasks newest first by (`created_at`, id), filtered by target and status.
    fn tasks(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Task>, StoreError>> + Send;

    /// The same tasks as [`TaskQueue::tasks`], without their contexts, which a store SHOULD
    /// NOT read: the board's list, whose memory is then bounded whatever was sent.
    fn task_summaries(
        &self,
        organization_id: OrganizationId,
        filter: TaskFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<TaskSummary>, StoreError>> + Send;

    /// Persists `change` as it is given, if the task's status is still `change.from` (compare
    /// and set): the status becomes `change.to` and `updated_at` `change.at`, and any lease ends.
    /// When the change starts a [`crate::model::DeliveryRound`] (a manual retry, decided by
    /// [`crate::rules::task_status_change`]), `attempts_before_round` becomes
    /// `round.attempts_before`, `next_attempt_at` `round.due_at`, and `last_error` is cleared;
    /// otherwise those fields are kept. `attempts` is always kept. Returns the updated task.
    ///
    /// # Errors
    /// MUST return `NotFound` as [`TaskQueue::task`] does, and `Conflict` when the status is no
    /// longer `change.from` or, for a change that starts a round, the task's `attempts` is no
    /// longer `round.attempts_before` (another round ran meanwhile); then nothing is written.
    fn set_task_status(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
        change: TaskStatusChange,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;

    /// Leases up to `claim.limit` due tasks with `claim.token` until
    /// [`ClaimRequest::lease_until`]: `queued`, `next_attempt_at <= claim.now`, not leased or
    /// with an expired lease, whose target is live, has an endpoint and is not in
    /// `claim.skip_targets`. Oldest due first. Two concurrent claims never return the same task
    /// while its lease lasts.
    ///
    /// `skip_targets` are the targets the caller cannot deliver to now (at their concurrency
    /// limit): their tasks are passed over, so a backlog of one target at the head of the queue
    /// does not hide the due tasks of the others.
    ///
    /// `floors` are a hint: a store MAY pass over the tasks of a target in `claim.floors` whose
    /// `next_attempt_at` is before that target's floor, and MUST return the others as it would
    /// without floors. A claim without floors reaches every claimable task.
    ///
    /// `per_target` is a hint too: a store MAY return at most that many tasks of one target,
    /// the oldest of it, taking other targets' tasks in their place.
    fn claim_tasks(
        &self,
        claim: ClaimRequest<'_>,
    ) -> impl Future<Output = Result<Vec<ClaimedTask>, StoreError>> + Send;

    /// Records a delivery attempt under a lease, in one transaction: the attempt row, the
    /// invocation's latest target response, the task's `attempts` (set to `attempt.number`),
    /// status, `next_attempt_at` and `last_error` (the attempt's error) as `verdict` says, and
    /// the release of the lease. The round (`attempts_before_round`) stays as it is.
    ///
    /// # Errors
    /// MUST return `Conflict` when the lease is no longer held (expired and claimed by another,
    /// or the task is not queued), and then record nothing.
    fn finish_attempt(
        &self,
        lease: &Lease,
        attempt: &DeliveryAttempt,
        verdict: AttemptVerdict,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;

    /// Records each of `finished` as [`TaskQueue::finish_attempt`] would (without reading the
    /// task back), and answers one result per attempt, in order. A store SHOULD write them
    /// together (one statement or one commit): this is how a dispatcher records the attempts
    /// that end while others are being recorded. Each attempt is recorded in full or not at
    /// all; whether the others are is not tied to it. An empty slice answers an empty list.
    ///
    /// # Errors
    /// An attempt whose lease is no longer held MUST be answered `Conflict`, record nothing,
    /// and leave the other attempts to their own outcome. The attempts are taken in order, as
    /// calls of `finish_attempt` one after the other would take them: of two attempts of one
    /// task under one lease, the second conflicts. `Unavailable` and `OutcomeUnknown` mean for
    /// each attempt they answer what they mean for [`TaskQueue::finish_attempt`].
    fn finish_attempts(
        &self,
        finished: &[FinishedAttempt],
    ) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;

    /// Gives a leased task back untouched (graceful shutdown).
    ///
    /// # Errors
    /// MUST return `Conflict` when the lease is no longer held.
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts the tasks waiting for delivery at `now` (see [`QueueStats`]) in one read: a
    /// consistent snapshot, cheap enough to call every few seconds.
    ///
    /// # Errors
    /// MUST return `Unavailable` when the store cannot be asked; an empty queue is
    /// `QueueStats::default()`, never an error.
    fn queue_stats(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<QueueStats, StoreError>> + Send;

    /// A task's delivery attempts, oldest first.
    ///
    /// # Errors
    /// MUST return `NotFound` as [`TaskQueue::task`] does.
    fn delivery_attempts(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
    ) -> impl Future<Output = Result<Vec<DeliveryAttempt>, StoreError>> + Send;
}

/// The master key's check: a known value sealed under the key that seals the store's secrets,
/// kept by the store so that a node holding another key finds out before it serves (every
/// node on one database must hold the same key). Never the key itself.
pub trait KeyCheckStore: Send + Sync {
    /// Keeps `check` when the store keeps none yet, and returns the check the store keeps:
    /// `check` itself on the first call, the first check kept on every later one. The first
    /// check is never replaced, and of concurrent first calls (nodes starting together on one
    /// empty database) exactly one check is kept and every call returns it.
    ///
    /// # Errors
    /// MUST return `Unavailable` when the store cannot be reached, having kept nothing.
    fn keep_key_check(
        &self,
        check: &SealedSecret,
    ) -> impl Future<Output = Result<SealedSecret, StoreError>> + Send;
}

/// Everything a store adapter provides; the contract suite checks all of it.
pub trait Store:
    OrganizationStore + TargetStore + WebhookStore + InvocationLog + TaskQueue + KeyCheckStore
{
}

impl<T> Store for T where
    T: OrganizationStore + TargetStore + WebhookStore + InvocationLog + TaskQueue + KeyCheckStore
{
}

// ---------------------------------------------------------------------------------------------
// Ingest's hot path

/// Finds the route of a webhook id, typically from a cache in front of the stores.
pub trait WebhookResolver: Send + Sync {
    /// `None` when no webhook ever had this id.
    ///
    /// # Errors
    /// MUST return `Unavailable` when the store cannot be asked.
    fn resolve(
        &self,
        id: WebhookId,
    ) -> impl Future<Output = Result<Option<Arc<IngestRoute>>, StoreError>> + Send;
}

/// Collects coalesced rejections until they are written as one log entry per webhook and
/// reason.
pub trait RejectionCounter: Send + Sync {
    /// Counts one rejection; cheap and infallible. `record` makes the request's record
    /// (headers, body, problem), which the entry keeps from the first request it stands for: a
    /// counter MUST call it only for a rejection that starts an entry, so a flood costs no
    /// record each.
    fn count(&self, rejection: CoalescedRejection, record: impl FnOnce() -> RequestRecord);
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// An endpoint that outbound policy forbids, or whose host cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct EndpointRefused {
    /// Why, for the person saving the target (e.g. "10.0.0.7 is not a public address").
    pub reason: String,
}

/// Checks a target's endpoint when it is saved, so a forbidden one is refused at once rather
/// than failing every delivery. Deliveries check again, connection by connection.
pub trait EndpointGuard: Send + Sync {
    /// # Errors
    /// MUST return [`EndpointRefused`] when the endpoint's host is, or resolves to, an address
    /// the operator's outbound policy forbids (private, loopback, link-local and other
    /// non-public addresses, unless private targets are allowed), or resolves to no address.
    fn check(&self, url: &EndpointUrl) -> impl Future<Output = Result<(), EndpointRefused>> + Send;
}

/// Pushes a task to its target.
pub trait TargetDelivery: Send + Sync {
    /// POSTs the task to `endpoint`, signed with `signing_secret`. Every failure is part of the
    /// report: there is no error case.
    fn deliver(
        &self,
        endpoint: &EndpointUrl,
        signing_secret: &Secret,
        task: &Task,
        now: Timestamp,
    ) -> impl Future<Output = DeliveryReport> + Send;
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// What the use cases tell the rest of the node (and, on a shared store, the other nodes) once a
/// change is committed. Both calls are cheap and infallible: they wake or invalidate, they never
/// write.
pub trait Notifier: Send + Sync {
    /// A task was committed: delivery may start it now rather than at its next poll.
    fn task_queued(&self);

    /// A change to a webhook or an organization made these cached ingest routes stale. Called
    /// before the change is answered, so the next request of this node sees it.
    fn routes_changed(&self, stale: Stale);
}

// ---------------------------------------------------------------------------------------------
// The bundle

/// One adapter for each port: what a node (or a test, or a service embedding the domain) is
/// built from. The use cases and the dispatcher take this one type parameter, and name the
/// adapters they use as `A::Store`, `A::Clock`, … .
///
/// Implement it on a marker type (the crate-level example builds a complete one):
///
/// ```ignore
/// struct MyAdapters;
/// impl Adapters for MyAdapters {
///     type Store = MemoryStore;
///     type Clock = SystemClock;
///     // …
/// }
/// ```
pub trait Adapters: Send + Sync + 'static {
    /// Organizations, keys, targets, webhooks, the invocation log and the task queue.
    type Store: Store + Clone + 'static;
    /// The current time.
    type Clock: Clock + Clone + 'static;
    /// Random bytes: ids, secrets, keys.
    type Entropy: Entropy + 'static;
    /// Seals secrets at rest.
    type Sealer: SecretSealer + 'static;
    /// Hashes API keys.
    type Hasher: KeyHasher + 'static;
    /// The rate-limit windows.
    type Limiter: RateLimiter + 'static;
    /// Counts flood rejections instead of writing each.
    type Rejections: RejectionCounter + 'static;
    /// Webhook id → ingest route, usually cached.
    type Resolver: WebhookResolver + 'static;
    /// Checks target endpoints when they are saved.
    type Endpoints: EndpointGuard + 'static;
    /// Pushes tasks to their targets.
    type Delivery: TargetDelivery + 'static;
    /// Wakes delivery and invalidates cached routes after a change.
    type Notifier: Notifier + 'static;
    /// The HMAC arithmetic of the senders' body signatures.
    type Mac: SignatureMac + 'static;
    /// Renders webhooks' instruction templates.
    type Templates: InstructionTemplates + 'static;
}

// ---------------------------------------------------------------------------------------------
// Sources: signature arithmetic and instruction templates

/// The HMAC arithmetic behind the senders' body signatures (see [`crate::rules`]'s source
/// rules for what is signed). The domain decides which headers, which bytes and which
/// tolerance; this port only computes and compares.
pub trait SignatureMac: Send + Sync {
    /// The HMAC of the concatenation of `message`'s parts under `key`. Any key length is
    /// accepted (keys longer than the hash's block are hashed first, as HMAC defines).
    fn sign(&self, algorithm: crate::model::MacAlgorithm, key: &[u8], message: &[&[u8]])
    -> Vec<u8>;

    /// Whether `tag` is the HMAC of the concatenation of `message`'s parts under `key`. MUST
    /// compare in time independent of where the tags differ, and MUST return `false` (never
    /// panic) for a tag of the wrong length.
    fn verify(
        &self,
        algorithm: crate::model::MacAlgorithm,
        key: &[u8],
        message: &[&[u8]],
        tag: &[u8],
    ) -> bool;
}

/// A template's syntax is wrong; `reason` says what and where, for the person saving it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct TemplateInvalid {
    pub reason: String,
}

/// A render did not produce an instruction; ingest falls back to the next instruction and
/// notes why on the invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderFailed {
    /// The render used up its budget of work (a loop that runs away).
    #[error("the template took too much work to render")]
    BudgetExhausted,
    /// The output grew past `limit` bytes.
    #[error("the template rendered more than {limit} bytes")]
    TooLarge { limit: usize },
    /// Any other failure: a syntax error, an operation on a value of the wrong type, a filter
    /// that refused its input.
    #[error("the template failed: {reason}")]
    Failed { reason: String },
}

/// Renders webhooks' `instruction_template`s over their payloads, sandboxed: no file system,
/// no network, no environment, bounded work and output.
pub trait InstructionTemplates: Send + Sync {
    /// Checks the syntax of `template`, as it is saved.
    ///
    /// # Errors
    /// MUST return [`TemplateInvalid`] when `template` cannot be parsed, saying what is wrong
    /// and where; MUST NOT refuse a template because of what a payload might hold (a field it
    /// names being absent is a render-time matter).
    fn check(&self, template: &str) -> Result<(), TemplateInvalid>;

    /// Renders `template` with the payload's fields as its variables (`{{ event.type }}`
    /// reads `payload["event"]["type"]`), as plain text (no HTML escaping). A field that is
    /// absent renders as nothing.
    ///
    /// # Errors
    /// MUST return [`RenderFailed::BudgetExhausted`] when the render exceeds its bounded
    /// budget of work (so a runaway loop ends in milliseconds, not seconds),
    /// [`RenderFailed::TooLarge`] when the output would exceed the adapter's output limit
    /// (without first producing unbounded output), and [`RenderFailed::Failed`] for any other
    /// failure, syntax errors included. MUST NOT panic, whatever the template and payload.
    fn render(&self, template: &str, payload: &serde_json::Value) -> Result<String, RenderFailed>;
}
