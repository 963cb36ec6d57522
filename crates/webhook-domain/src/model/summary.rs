//! What lists show of invocations and tasks: summaries that stay small whatever was sent. A
//! list never carries whole payloads; the single reads do.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Invocation, InvocationId, OrganizationId, Payload, TargetId, Task, TaskId, TaskSource,
    TaskStatus, Timestamp, WebhookId,
};

/// The most bytes of a payload's JSON text an invocation list shows.
pub const PAYLOAD_EXCERPT_BYTES: usize = 1024;

/// The most characters of a payload's `message` an invocation list shows.
pub const MESSAGE_PREVIEW_CHARS: usize = 200;

/// `text` cut to at most `max_bytes` bytes, on a character boundary.
pub fn cut_bytes(mut text: String, max_bytes: usize) -> String {
    text.truncate(floor(&text, max_bytes));
    text
}

/// `text` cut to at most `max_chars` characters.
pub fn cut_chars(mut text: String, max_chars: usize) -> String {
    if let Some((end, _)) = text.char_indices().nth(max_chars) {
        text.truncate(end);
    }
    text
}

/// Where an accepted invocation's task stands in delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt, or on a board that agents read.
    Queued,
    /// The latest attempt failed and another one is pending.
    Retrying,
    /// The target acknowledged it (the task may since be in progress or completed).
    Delivered,
    /// Delivery failed for good, or the target reported failure.
    Failed,
}

impl DeliveryStatus {
    /// The delivery state of a task with `status`; `last_attempt_failed` says whether the
    /// current round's latest attempt failed (the task has a `last_error`).
    pub const fn of(status: TaskStatus, last_attempt_failed: bool) -> Self {
        match status {
            TaskStatus::Queued if last_attempt_failed => Self::Retrying,
            TaskStatus::Queued => Self::Queued,
            TaskStatus::Delivered | TaskStatus::InProgress | TaskStatus::Completed => {
                Self::Delivered
            }
            TaskStatus::Failed => Self::Failed,
        }
    }

    /// The name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// An entry of an invocation list: the invocation without its payload, and a summary of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationSummary {
    /// The entry; its `payload` is always `None` here.
    pub invocation: Invocation,
    /// At most [`PAYLOAD_EXCERPT_BYTES`] of the payload's JSON text; `None` without a payload.
    pub payload_excerpt: Option<String>,
    /// At most [`MESSAGE_PREVIEW_CHARS`] of the payload's `message`, when it is a string.
    pub message_preview: Option<String>,
    /// The task's delivery state, for accepted invocations.
    pub delivery_status: Option<DeliveryStatus>,
}

impl InvocationSummary {
    /// A summary from prefixes a store read (each may be longer than the bound; it is cut
    /// here). `invocation.payload` is dropped.
    pub fn from_prefixes(
        mut invocation: Invocation,
        payload_prefix: Option<String>,
        message_prefix: Option<String>,
        delivery_status: Option<DeliveryStatus>,
    ) -> Self {
        invocation.payload = None;
        Self {
            invocation,
            payload_excerpt: payload_prefix.map(|p| cut_bytes(p, PAYLOAD_EXCERPT_BYTES)),
            message_preview: message_prefix.map(|m| cut_chars(m, MESSAGE_PREVIEW_CHARS)),
            delivery_status,
        }
    }

    /// The summary of a whole invocation, with its task's delivery state (for stores that
    /// hold payloads in memory).
    pub fn of(invocation: &Invocation, delivery_status: Option<DeliveryStatus>) -> Self {
        let payload = invocation.payload.as_ref().map(Payload::as_str);
        let excerpt = payload.map(|p| p[..floor(p, PAYLOAD_EXCERPT_BYTES)].to_owned());
        let message = payload.and_then(message_string);
        Self::from_prefixes(invocation.clone(), excerpt, message, delivery_status)
    }
}

/// The largest character boundary of `text` at most `max`.
fn floor(text: &str, max: usize) -> usize {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// The top-level `message` member of a JSON object's text, when it is a string.
fn message_string(payload: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow)]
        message: Option<&'a RawValue>,
    }
    let raw = serde_json::from_str::<Message<'_>>(payload).ok()?.message?;
    serde_json::from_str::<String>(raw.get()).ok()
}

/// A task as the board lists it: everything but its context (the payload), which the single
/// read carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    pub id: TaskId,
    pub organization_id: OrganizationId,
    pub target_id: TargetId,
    pub webhook_id: WebhookId,
    pub invocation_id: InvocationId,
    pub instruction: Option<String>,
    pub event_type: Option<String>,
    pub status: TaskStatus,
    pub test: bool,
    pub source: TaskSource,
    pub attempts: u32,
    pub attempts_before_round: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl TaskSummary {
    /// The whole task, with its context.
    pub fn with_context(self, context: Payload) -> Task {
        Task {
            id: self.id,
            organization_id: self.organization_id,
            target_id: self.target_id,
            webhook_id: self.webhook_id,
            invocation_id: self.invocation_id,
            instruction: self.instruction,
            context,
            event_type: self.event_type,
            status: self.status,
            test: self.test,
            source: self.source,
            attempts: self.attempts,
            attempts_before_round: self.attempts_before_round,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The task's place on its organization's board, as [`Task::cursor`] gives it.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor {
            at: self.created_at,
            id: *self.id.as_uuid(),
        }
    }
}

impl From<&Task> for TaskSummary {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id,
            organization_id: task.organization_id,
            target_id: task.target_id,
            webhook_id: task.webhook_id,
            invocation_id: task.invocation_id,
            instruction: task.instruction.clone(),
            event_type: task.event_type.clone(),
            status: task.status,
            test: task.test,
            source: task.source.clone(),
            attempts: task.attempts,
            attempts_before_round: task.attempts_before_round,
            next_attempt_at: task.next_attempt_at,
            last_error: task.last_error.clone(),
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_character_boundaries() {
        assert_eq!(cut_bytes("aé".to_owned(), 2), "a");
        assert_eq!(cut_bytes("aé".to_owned(), 3), "aé");
        assert_eq!(cut_chars("éééé".to_owned(), 2), "éé");
        assert_eq!(cut_chars("ab".to_owned(), 200), "ab");
    }

    #[test]
    fn messages_are_previewed_only_when_they_are_strings() {
        assert_eq!(
            message_string(r#"{"a":[1],"message":"Deploy \"x\""}"#).as_deref(),
            Some("Deploy \"x\"")
        );
        assert_eq!(message_string(r#"{"message":{"a":1}}"#), None);
        assert_eq!(message_string(r#"{"b":1}"#), None);
    }

    #[test]
    fn delivery_states() {
        for (status, attempt_failed, expected) in [
            (TaskStatus::Queued, false, DeliveryStatus::Queued),
            (TaskStatus::Queued, true, DeliveryStatus::Retrying),
            (TaskStatus::Completed, false, DeliveryStatus::Delivered),
            (TaskStatus::Failed, true, DeliveryStatus::Failed),
        ] {
            assert_eq!(
                DeliveryStatus::of(status, attempt_failed),
                expected,
                "{status:?}, latest attempt failed: {attempt_failed}"
            );
        }
    }
}
