//! The ports: every trait through which the domain reaches the outside world. Adapters
//! implement them; the use cases in [`crate::service`] are written over them.
//!
//! Each method's `# Errors` section says what an implementation MUST return; the store contract
//! suite (`webhook-store-contract`) has a case for each of these obligations.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::model::{
    ApiKey, ApiKeyHash, ApiKeyId, DeliveryAttempt, EndpointUrl, EventTypes, Invocation,
    InvocationId, Organization, OrganizationId, OutcomeFilter, Page, PageRequest, RatePerMinute,
    SealedSecret, Secret, Target, TargetId, Task, TaskFilter, TaskId, TaskStatus, Timestamp,
    Webhook, WebhookId, WebhookStatus,
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
    /// The store answered with something that should not happen (corrupt row, bug).
    #[error("the store failed")]
    Internal(#[source] BoxError),
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

/// One request to charge against a webhook's and its organization's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRequest {
    pub webhook_id: WebhookId,
    pub webhook_quota: RatePerMinute,
    pub organization_id: OrganizationId,
    pub organization_quota: RatePerMinute,
    pub now: Timestamp,
}

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
}

// ---------------------------------------------------------------------------------------------
// Stores

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

    /// The organization's webhooks that are not deleted, newest first by (`created_at`, id).
    fn webhooks(
        &self,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Webhook>, StoreError>> + Send;

    /// Replaces every field but id, organization, `created_at` and `last_triggered_at` (which
    /// only [`InvocationLog::record_invocation`] moves, so a read-modify-write never takes it
    /// back). Deleting is an update to [`WebhookStatus::Deleted`].
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
    /// # Errors
    /// MUST return `Conflict` when the invocation or task id exists, `NotFound` when the
    /// webhook does not exist in the invocation's organization, `Unavailable` when the store
    /// cannot commit (and then nothing is written — except when the connection broke during
    /// the commit itself, where a networked store cannot know; the sender's retry then makes a
    /// second invocation, which delivery being at-least-once already allows).
    fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// # Errors
    /// MUST return `NotFound` when the invocation does not exist in this organization.
    fn invocation(
        &self,
        organization_id: OrganizationId,
        id: InvocationId,
    ) -> impl Future<Output = Result<Invocation, StoreError>> + Send;

    /// A webhook's invocations, newest first by (`received_at`, id), optionally filtered.
    /// Pages are stable while new invocations arrive: no item is repeated or skipped.
    fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: Option<OutcomeFilter>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Invocation>, StoreError>> + Send;

    /// Deletes invocations received before `before` whose task is absent or finished
    /// (completed or failed), with those tasks and their attempts. Returns how many
    /// invocations were deleted.
    fn purge_invocations(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Proof that a dispatcher holds a task: the lease is held while `now < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub task_id: TaskId,
    pub token: Uuid,
    pub until: Timestamp,
}

/// A task handed to a dispatcher, with what it needs to deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub task: Task,
    pub lease: Lease,
    pub endpoint_url: EndpointUrl,
    pub signing_secret: SealedSecret,
}

/// What becomes of a task after a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// The target answered 2xx: `queued → delivered`.
    Delivered,
    /// Try again no earlier than this; the task stays `queued`.
    RetryAt(Timestamp),
    /// Permanent refusal or retries exhausted: `queued → failed`.
    Failed,
}

/// How many tasks wait for delivery, for the dispatcher's gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Tasks waiting for delivery: `queued`, of a live target with an endpoint (the tasks
    /// [`TaskQueue::claim_tasks`] may return, leased or not, due or not).
    pub queued: u64,
    /// Of those, the tasks whose `next_attempt_at` has come.
    pub due: u64,
    /// The earliest `created_at` among them; `None` when none waits.
    pub oldest_queued_at: Option<Timestamp>,
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

    /// Sets the status to `to` if it is still `from` (compare and set) and `updated_at` to `at`,
    /// clearing any lease. A task set back to `queued` (a manual retry: the only way there)
    /// starts a new delivery round: it is due at `at`, `attempts_before_round` becomes its
    /// `attempts` and `last_error` is cleared. `attempts` is kept, so attempt numbers stay
    /// unique over a task's life. Returns the updated task. The caller checked the transition
    /// with [`crate::rules::task_transition`].
    ///
    /// # Errors
    /// MUST return `NotFound` as [`TaskQueue::task`] does, and `Conflict` when the status is no
    /// longer `from`.
    fn set_task_status(
        &self,
        organization_id: OrganizationId,
        id: TaskId,
        from: TaskStatus,
        to: TaskStatus,
        at: Timestamp,
    ) -> impl Future<Output = Result<Task, StoreError>> + Send;

    /// Leases up to `limit` due tasks: `queued`, `next_attempt_at <= now`, not leased or with
    /// an expired lease, whose target is live, has an endpoint and is not in `skip_targets`.
    /// Oldest due first. Two concurrent claims never return the same task while its lease
    /// lasts.
    ///
    /// `skip_targets` are the targets the caller cannot deliver to now (at their concurrency
    /// limit): their tasks are passed over, so a backlog of one target at the head of the queue
    /// does not hide the due tasks of the others.
    fn claim_tasks(
        &self,
        now: Timestamp,
        lease_for: Duration,
        token: Uuid,
        limit: u32,
        skip_targets: &[TargetId],
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

/// Everything a store adapter provides; the contract suite checks all of it.
pub trait Store:
    OrganizationStore + TargetStore + WebhookStore + InvocationLog + TaskQueue
{
}

impl<T> Store for T where
    T: OrganizationStore + TargetStore + WebhookStore + InvocationLog + TaskQueue
{
}

// ---------------------------------------------------------------------------------------------
// Ingest's hot path

/// What ingest needs to know of a webhook, with its secret already unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRoute {
    pub webhook_id: WebhookId,
    pub organization_id: OrganizationId,
    pub target_id: TargetId,
    pub status: WebhookStatus,
    pub secret: Option<Secret>,
    pub event_types: EventTypes,
    pub webhook_quota: RatePerMinute,
    pub organization_quota: RatePerMinute,
}

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

/// Why a coalesced rejection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoalescedReason {
    /// 403 `webhook_disabled`.
    Disabled,
    /// 429 `rate_limited`.
    RateLimited,
}

/// A rejection that is counted, not written one by one, so a flood cannot become a flood of
/// writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescedRejection {
    pub webhook_id: WebhookId,
    pub organization_id: OrganizationId,
    pub reason: CoalescedReason,
    pub source_ip: Option<IpAddr>,
    pub at: Timestamp,
    pub test: bool,
}

/// Collects coalesced rejections until they are written as one log entry per webhook and
/// reason.
pub trait RejectionCounter: Send + Sync {
    /// Counts one rejection; cheap and infallible.
    fn count(&self, rejection: CoalescedRejection);
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// Why a delivery attempt got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryFailure {
    /// No answer within the timeout.
    Timeout,
    /// The connection could not be made or broke.
    Connection(String),
    /// The endpoint resolves to an address that outbound policy forbids.
    Blocked(String),
}

/// What a target answered to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryReport {
    /// An HTTP answer.
    Answered {
        status_code: u16,
        /// At most [`DeliveryAttempt::EXCERPT_MAX`] bytes of the body.
        body_excerpt: String,
        /// The `Retry-After` the target asked for, if any.
        retry_after: Option<Duration>,
        latency: Duration,
    },
    /// No HTTP answer.
    Failed {
        failure: DeliveryFailure,
        latency: Duration,
    },
}

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
