//! The JSON body a target receives for a task.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::value::RawValue;
use webhook_domain::model::{Source, TargetId, Task, TaskId, Timestamp, WebhookId};

#[derive(Serialize)]
struct TaskMessage<'a> {
    task_id: TaskId,
    webhook_id: WebhookId,
    target_id: TargetId,
    instruction: Option<&'a str>,
    /// The payload, as the JSON object received (not a string holding it).
    context: &'a RawValue,
    event_type: Option<&'a str>,
    test: bool,
    created_at: Timestamp,
    source: SourceMessage,
}

#[derive(Serialize)]
struct SourceMessage {
    /// Whether the sender proved it knew the webhook's secret; the instruction is untrusted
    /// text either way.
    verified: bool,
    source_ip: Option<IpAddr>,
    received_at: Timestamp,
    /// The webhook's source: whose dialect the event came in (`github`, `stripe`, …).
    provider: Source,
}

/// The body of the `POST` for `task`: `{task_id, webhook_id, target_id, instruction, context,
/// event_type, test, created_at, source: {verified, source_ip, received_at, provider}}`.
pub fn task_body(task: &Task) -> Vec<u8> {
    let stored = task.context.as_str();
    // Payloads are validated JSON objects when they are accepted; should a stored one not
    // parse, it is sent as a JSON string rather than dropped.
    let quoted;
    let context: &RawValue = if let Ok(raw) = serde_json::from_str::<&RawValue>(stored) {
        raw
    } else {
        quoted = RawValue::from_string(serde_json::Value::from(stored).to_string())
            .unwrap_or_else(|_| RawValue::NULL.to_owned());
        &quoted
    };
    let message = TaskMessage {
        task_id: task.id,
        webhook_id: task.webhook_id,
        target_id: task.target_id,
        instruction: task.instruction.as_deref(),
        context,
        event_type: task.event_type.as_deref(),
        test: task.test,
        created_at: task.created_at,
        source: SourceMessage {
            verified: task.source.verified,
            source_ip: task.source.source_ip,
            received_at: task.source.received_at,
            provider: task.source.provider,
        },
    };
    // Serializing plain fields and a valid RawValue into a Vec cannot fail.
    serde_json::to_vec(&message).unwrap_or_default()
}
