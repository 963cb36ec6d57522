//! Tasks: what an accepted event becomes on its target's board.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{
    Invocation, InvocationId, OrganizationId, Payload, Source, TargetId, TaskId, Timestamp,
    WebhookId,
};

/// A task's place on the board; see [`crate::rules::task_transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for delivery (or for its target to pick it up).
    Queued,
    /// The target acknowledged it with a 2xx.
    Delivered,
    /// The target reported that it works on it.
    InProgress,
    /// Done.
    Completed,
    /// Delivery retries were exhausted, or the target reported failure.
    Failed,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [Self; 5] = [
        Self::Queued,
        Self::Delivered,
        Self::InProgress,
        Self::Completed,
        Self::Failed,
    ];

    /// The status's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Delivered => "delivered",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a status name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Where a task's event came from, as the target is told: the instruction is untrusted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSource {
    /// Whether the sender proved it knew the webhook's secret.
    pub verified: bool,
    pub source_ip: Option<IpAddr>,
    pub received_at: Timestamp,
    /// The webhook's source when the event arrived: which sender's dialect it spoke.
    pub provider: Source,
}

/// A unit of work for a target, created from one accepted invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub organization_id: OrganizationId,
    pub target_id: TargetId,
    pub webhook_id: WebhookId,
    pub invocation_id: InvocationId,
    /// The payload's `message`.
    pub instruction: Option<String>,
    /// The whole payload.
    pub context: Payload,
    pub event_type: Option<String>,
    pub status: TaskStatus,
    pub test: bool,
    pub source: TaskSource,
    /// Delivery attempts made so far, over the task's whole life: attempt numbers never repeat.
    pub attempts: u32,
    /// The attempts made before the current delivery round: 0 for a new task, and `attempts`
    /// as it stood when a manual retry queued the task again. The retry policy counts only the
    /// attempts of the round (see [`crate::rules::next_attempt_number`]), so a retried task
    /// gets the whole retry schedule again.
    pub attempts_before_round: u32,
    /// When a queued task is next due for delivery.
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Task {
    /// The new task of `invocation` for its webhook's target `target_id`: queued, due at once,
    /// with no attempts yet. It takes its organization, webhook, event type, sender address,
    /// reception time and test flag from the invocation; `verified` and `provider` say how the
    /// sender authenticated and which source's dialect it spoke.
    pub fn queued(
        id: TaskId,
        invocation: &Invocation,
        target_id: TargetId,
        instruction: Option<String>,
        context: Payload,
        verified: bool,
        provider: Source,
    ) -> Self {
        let received_at = invocation.received_at;
        Self {
            id,
            organization_id: invocation.organization_id,
            target_id,
            webhook_id: invocation.webhook_id,
            invocation_id: invocation.id,
            instruction,
            context,
            event_type: invocation.event_type.clone(),
            status: TaskStatus::Queued,
            test: invocation.test,
            source: TaskSource {
                verified,
                source_ip: invocation.source_ip,
                received_at,
                provider,
            },
            attempts: 0,
            attempts_before_round: 0,
            next_attempt_at: received_at,
            last_error: None,
            created_at: received_at,
            updated_at: received_at,
        }
    }

    /// The task's place on its organization's board, newest first: what a page after it
    /// starts from.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor {
            at: self.created_at,
            id: *self.id.as_uuid(),
        }
    }
}

/// A status change of a task, as the use case decided it (see
/// [`crate::rules::task_status_change`]) and a store persists it: compare and set on `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskStatusChange {
    /// The status the task must still have.
    pub from: TaskStatus,
    /// Its new status.
    pub to: TaskStatus,
    /// When the change is made: the task's new `updated_at`.
    pub at: Timestamp,
    /// The delivery round the change starts, if any (a manual retry).
    pub round: Option<DeliveryRound>,
}

/// A new delivery round of a task: the retry policy starts counting again, and the last error
/// is cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRound {
    /// The task's `attempts` when the round starts, which becomes its `attempts_before_round`.
    pub attempts_before: u32,
    /// When the round's first attempt is due: the task's new `next_attempt_at`.
    pub due_at: Timestamp,
}

/// The task board's filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub target_id: Option<TargetId>,
    pub status: Option<TaskStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TaskStatus::parse("done"), None);
    }
}
