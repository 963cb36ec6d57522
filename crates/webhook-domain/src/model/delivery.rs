//! What delivery works with besides the entities: a lease on a claimed task, the verdict of an
//! attempt, what a target answered, and the size of the queue.

use std::time::Duration;

use uuid::Uuid;

use super::{DeliveryAttempt, EndpointUrl, SealedSecret, TargetId, Task, TaskId, Timestamp};

/// A dispatcher's claim on due tasks (see [`crate::ports::TaskQueue::claim_tasks`]): up to
/// `limit` tasks due at `now`, none of them of a target in `skip_targets`, each leased with
/// `token` for `lease_for`; a store may pass over a target's tasks due before its entry in
/// `floors`, and may stop at `per_target` tasks of one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest<'a> {
    pub now: Timestamp,
    pub lease_for: Duration,
    pub token: Uuid,
    pub limit: u32,
    pub skip_targets: &'a [TargetId],
    pub floors: &'a [ClaimFloor],
    pub per_target: u32,
}

/// Where a claim may start looking among one target's queued tasks: the dispatcher's last claim
/// found none of that target's claimable tasks due before `due_at`. A hint for stores whose
/// queue index keeps the entries of delivered tasks until a vacuum: starting there, a claim
/// does not walk them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimFloor {
    pub target_id: TargetId,
    pub due_at: Timestamp,
}

impl ClaimRequest<'static> {
    /// A claim of up to `limit` tasks due at `now`, leased with `token` for `lease_for`, of any
    /// target.
    pub const fn new(now: Timestamp, lease_for: Duration, token: Uuid, limit: u32) -> Self {
        Self {
            now,
            lease_for,
            token,
            limit,
            skip_targets: &[],
            floors: &[],
            per_target: limit,
        }
    }
}

impl<'a> ClaimRequest<'a> {
    /// The same claim, passing over the tasks of `targets`.
    #[must_use]
    pub const fn skipping(self, targets: &'a [TargetId]) -> ClaimRequest<'a> {
        ClaimRequest {
            skip_targets: targets,
            ..self
        }
    }

    /// The same claim, starting each target of `floors` at its floor.
    #[must_use]
    pub const fn from_floors(self, floors: &'a [ClaimFloor]) -> ClaimRequest<'a> {
        ClaimRequest { floors, ..self }
    }

    /// The same claim, taking at most `per_target` tasks of one target: what a dispatcher can
    /// hold of one target, the rest of a target's backlog would only be given back.
    #[must_use]
    pub const fn at_most_per_target(self, per_target: u32) -> Self {
        Self { per_target, ..self }
    }

    /// When the leases this claim takes end.
    pub fn lease_until(&self) -> Timestamp {
        self.now.plus(self.lease_for)
    }
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

/// A delivery attempt to record under the lease it was made with, and what becomes of its task
/// (see [`crate::ports::TaskQueue::finish_attempts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub lease: Lease,
    pub attempt: DeliveryAttempt,
    pub verdict: AttemptVerdict,
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
        /// At most [`crate::model::DeliveryAttempt::EXCERPT_MAX`] bytes of the body.
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
