//! The management API's request and response bodies, with their `OpenAPI` schemas. Requests
//! refuse unknown fields; times are RFC 3339 in UTC.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, Invocation, Organization, Page, Target, TargetResponse, Task, Timestamp,
};
use webhook_domain::service::manage::{TargetSummary, WebhookView};

// ---------------------------------------------------------------------------------------------
// Requests

/// `POST /api/v1/targets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    /// `agent` or `team`.
    #[schema(example = "agent")]
    pub kind: String,
    #[schema(example = "Deploy bot")]
    pub name: String,
    /// Where tasks are pushed; without one, tasks wait on the board.
    #[serde(default)]
    #[schema(example = "https://agent.example.com/tasks")]
    pub endpoint_url: Option<String>,
}

/// `PATCH /api/v1/targets/{id}`: absent fields stay; `endpoint_url: null` removes the endpoint.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTarget {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub endpoint_url: Option<Option<String>>,
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    #[schema(example = "CI pipeline")]
    pub name: String,
    pub target_id: String,
    /// Exact names or `prefix.*`; empty or absent subscribes to every event.
    #[serde(default)]
    #[schema(example = json!(["deploy.*"]))]
    pub event_types: Option<Vec<String>>,
    /// A secret of 16 to 256 visible ASCII characters senders put in `X-Webhook-Secret`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Generate a secret (returned once in the answer); exclusive with `secret`.
    #[serde(default)]
    pub generate_secret: Option<bool>,
    /// 1 to 1,000,000; default 100.
    #[serde(default)]
    pub rate_limit_per_minute: Option<i64>,
}

/// `PATCH /api/v1/webhooks/{id}`: absent fields stay.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub target_id: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(default)]
    #[schema(example = "disabled")]
    pub status: Option<String>,
    #[serde(default)]
    pub rate_limit_per_minute: Option<i64>,
}

/// `POST /api/v1/webhooks/{id}/rotate-secret`: the new secret, or none to generate one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[serde(default)]
    pub secret: Option<String>,
}

/// `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestWebhook {
    /// A JSON object; default `{"message":"Test event","test":true}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
}

/// `PATCH /api/v1/tasks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    /// The new status, as the task lifecycle allows.
    #[schema(example = "in_progress")]
    pub status: String,
}

/// `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: String,
    /// `admin` or `viewer`.
    #[schema(example = "viewer")]
    pub role: String,
}

/// `PATCH /api/v1/organization`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOrganization {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub rate_limit_per_minute: Option<i64>,
}

/// `limit` and `cursor` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500; default 50.
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of the invocation log.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvocationQuery {
    /// `accepted`, `ignored`, `rejected` or `failed` (rejected, plus accepted ones whose latest
    /// delivery attempt or whose task failed).
    pub outcome: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Query of the task board.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    pub target_id: Option<String>,
    /// `queued`, `delivered`, `in_progress`, `completed` or `failed`.
    pub status: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Deserializes a present field, `null` included, as `Some(value)`; with `#[serde(default)]`
/// an absent one stays `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Responses
//
// Every field of an answer is always there: an `Option` is `null` when empty, and is documented
// as required and nullable. Times are RFC 3339 in UTC.

fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

/// A webhook's target, as webhooks show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetRef {
    pub id: Uuid,
    #[schema(example = "agent")]
    pub kind: &'static str,
    pub name: String,
}

impl From<TargetSummary> for TargetRef {
    fn from(target: TargetSummary) -> Self {
        Self {
            id: *target.id.as_uuid(),
            kind: target.kind.as_str(),
            name: target.name.into(),
        }
    }
}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    pub id: Uuid,
    pub name: String,
    /// The URL senders post events to.
    pub url: String,
    /// Null only for a deleted webhook whose target was deleted since.
    #[schema(required = true)]
    pub target: Option<TargetRef>,
    pub event_types: Vec<String>,
    pub has_secret: bool,
    /// `active`, `disabled` or `deleted`.
    #[schema(example = "active")]
    pub status: &'static str,
    pub rate_limit_per_minute: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime, required = true)]
    pub last_triggered_at: Option<String>,
}

impl From<WebhookView> for WebhookOut {
    fn from(view: WebhookView) -> Self {
        let webhook = view.webhook;
        Self {
            id: *webhook.id.as_uuid(),
            name: webhook.name.into(),
            url: view.url,
            target: view.target.map(TargetRef::from),
            event_types: webhook
                .event_types
                .patterns()
                .iter()
                .map(ToString::to_string)
                .collect(),
            has_secret: webhook.secret.is_some(),
            status: webhook.status.as_str(),
            rate_limit_per_minute: webhook.rate_limit_per_minute.get(),
            created_at: time(webhook.created_at),
            updated_at: time(webhook.updated_at),
            last_triggered_at: webhook.last_triggered_at.map(time),
        }
    }
}

/// A webhook as created or re-keyed: its fields plus its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookOut,
    /// The secret in clear; null when the webhook has none. Never shown again.
    #[schema(required = true)]
    pub secret: Option<String>,
}

/// A target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    pub id: Uuid,
    /// `agent` or `team`.
    pub kind: &'static str,
    pub name: String,
    #[schema(required = true)]
    pub endpoint_url: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<Target> for TargetOut {
    fn from(target: Target) -> Self {
        Self {
            id: *target.id.as_uuid(),
            kind: target.kind.as_str(),
            name: target.name.into(),
            endpoint_url: target.endpoint_url.map(|u| u.as_str().to_owned()),
            created_at: time(target.created_at),
            updated_at: time(target.updated_at),
        }
    }
}

/// A created target: its fields plus the secret that signs its deliveries, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTargetOut {
    #[serde(flatten)]
    pub target: TargetOut,
    /// Verify the `webhook-signature` header of deliveries with it. Never shown again.
    pub signing_secret: String,
}

/// An API key (never its value).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    /// `admin` or `viewer`.
    pub role: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<ApiKey> for ApiKeyOut {
    fn from(key: ApiKey) -> Self {
        Self {
            id: *key.id.as_uuid(),
            name: key.name.into(),
            role: key.role.as_str(),
            created_at: time(key.created_at),
        }
    }
}

/// A created API key: its fields plus the key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyOut {
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// Send it as `Authorization: Bearer <api_key>`. Never shown again.
    pub api_key: String,
}

/// The caller's organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationOut {
    pub id: Uuid,
    pub name: String,
    /// Requests per minute across all of the organization's webhooks.
    pub rate_limit_per_minute: u32,
}

impl From<Organization> for OrganizationOut {
    fn from(organization: Organization) -> Self {
        Self {
            id: *organization.id.as_uuid(),
            name: organization.name.into(),
            rate_limit_per_minute: organization.rate_limit_per_minute.get(),
        }
    }
}

/// The target's answer to the latest delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetResponseOut {
    /// Null when no HTTP answer came (timeout, refused connection).
    #[schema(required = true)]
    pub status_code: Option<u16>,
    #[schema(required = true)]
    pub body_excerpt: Option<String>,
    pub latency_ms: u32,
    #[schema(required = true)]
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
}

impl From<TargetResponse> for TargetResponseOut {
    fn from(response: TargetResponse) -> Self {
        Self {
            status_code: response.status_code,
            body_excerpt: response.body_excerpt,
            latency_ms: response.latency_ms,
            error: response.error,
            at: time(response.at),
        }
    }
}

fn raw_json(text: &str) -> Option<Box<RawValue>> {
    RawValue::from_string(text.to_owned()).ok()
}

/// One entry of the invocation log.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationOut {
    pub id: Uuid,
    pub webhook_id: Uuid,
    #[schema(format = DateTime)]
    pub received_at: String,
    #[schema(required = true)]
    pub source_ip: Option<String>,
    #[schema(required = true)]
    pub event_type: Option<String>,
    /// The body received, when it was a JSON object.
    #[schema(value_type = Option<Object>, required = true)]
    pub payload: Option<Box<RawValue>>,
    /// `accepted`, `ignored` or `rejected`.
    pub outcome: &'static str,
    /// The HTTP status answered to the sender.
    pub http_status: u16,
    /// The problem `code` answered, for rejections.
    #[schema(required = true)]
    pub error_code: Option<String>,
    #[schema(required = true)]
    pub task_id: Option<Uuid>,
    /// How many identical rejections this entry stands for (floods are coalesced).
    pub repeat_count: u32,
    /// Sent by the test endpoint.
    pub test: bool,
    #[schema(required = true)]
    pub target_response: Option<TargetResponseOut>,
}

impl From<Invocation> for InvocationOut {
    fn from(invocation: Invocation) -> Self {
        Self {
            id: *invocation.id.as_uuid(),
            webhook_id: *invocation.webhook_id.as_uuid(),
            received_at: time(invocation.received_at),
            source_ip: invocation.source_ip.map(|ip| ip.to_string()),
            event_type: invocation.event_type,
            payload: invocation.payload.and_then(|p| raw_json(p.as_str())),
            outcome: invocation.outcome.as_str(),
            http_status: invocation.http_status,
            error_code: invocation.error_code,
            task_id: invocation.task_id.map(|t| *t.as_uuid()),
            repeat_count: invocation.repeat_count,
            test: invocation.test,
            target_response: invocation.target_response.map(TargetResponseOut::from),
        }
    }
}

/// Where a task's event came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskSourceOut {
    /// Whether the sender proved it knew the webhook's secret.
    pub verified: bool,
    #[schema(required = true)]
    pub source_ip: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
}

/// A task on the board.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskOut {
    pub id: Uuid,
    pub target_id: Uuid,
    pub webhook_id: Uuid,
    pub invocation_id: Uuid,
    /// The payload's `message`: untrusted text from outside.
    #[schema(required = true)]
    pub instruction: Option<String>,
    /// The whole payload.
    #[schema(value_type = Object, required = true)]
    pub context: Option<Box<RawValue>>,
    #[schema(required = true)]
    pub event_type: Option<String>,
    /// `queued`, `delivered`, `in_progress`, `completed` or `failed`.
    pub status: &'static str,
    pub test: bool,
    pub source: TaskSourceOut,
    /// Delivery attempts made so far, over the task's whole life; attempts are numbered from 1
    /// and their numbers never repeat.
    pub attempts: u32,
    /// The attempts made before the current delivery round: 0 until the task is retried by
    /// hand, then `attempts` as it was at the retry. A retry grants the whole retry schedule
    /// again, so `attempts - attempts_before_round` is what counts against the limit.
    pub attempts_before_round: u32,
    /// When a queued task is next due for delivery.
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    /// Why the latest attempt of the current round failed; cleared by a retry.
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<Task> for TaskOut {
    fn from(task: Task) -> Self {
        Self {
            id: *task.id.as_uuid(),
            target_id: *task.target_id.as_uuid(),
            webhook_id: *task.webhook_id.as_uuid(),
            invocation_id: *task.invocation_id.as_uuid(),
            instruction: task.instruction,
            context: raw_json(task.context.as_str()),
            event_type: task.event_type,
            status: task.status.as_str(),
            test: task.test,
            source: TaskSourceOut {
                verified: task.source.verified,
                source_ip: task.source.source_ip.map(|ip| ip.to_string()),
                received_at: time(task.source.received_at),
            },
            attempts: task.attempts,
            attempts_before_round: task.attempts_before_round,
            next_attempt_at: time(task.next_attempt_at),
            last_error: task.last_error,
            created_at: time(task.created_at),
            updated_at: time(task.updated_at),
        }
    }
}

/// What the pipeline did with a test event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// `accepted`, `ignored` or `rejected`, as for a real sender.
    pub status: &'static str,
    /// The HTTP status a real sender would have received.
    pub http_status: u16,
    #[schema(required = true)]
    pub invocation_id: Option<Uuid>,
    #[schema(required = true)]
    pub task_id: Option<Uuid>,
    /// The problem `code` a real sender would have received, for rejections.
    #[schema(required = true)]
    pub code: Option<&'static str>,
    #[schema(required = true)]
    pub detail: Option<String>,
}

macro_rules! list_types {
    ($($list:ident of $item:ty),* $(,)?) => {$(
        #[doc = concat!("A page of `", stringify!($item), "`, newest first.")]
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $list {
            pub items: Vec<$item>,
            /// Pass as `cursor` to read the next page; null on the last page.
            #[schema(required = true)]
            pub next_cursor: Option<String>,
        }

        impl $list {
            pub(crate) fn from_page<T>(page: Page<T>) -> Self where $item: From<T> {
                Self {
                    items: page.items.into_iter().map(<$item>::from).collect(),
                    next_cursor: page.next.map(|c| c.encode()),
                }
            }
        }
    )*};
}

list_types!(
    TargetList of TargetOut,
    WebhookList of WebhookOut,
    InvocationList of InvocationOut,
    TaskList of TaskOut,
    ApiKeyList of ApiKeyOut,
);

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use webhook_domain::model::{
        InvocationId, OrganizationId, Payload, TargetId, TaskId, TaskSource, TaskStatus, WebhookId,
    };

    use super::*;

    /// A task retried by hand after three attempts, one attempt into its second round.
    fn retried_task() -> Task {
        let at = Timestamp::from_unix_micros(1_767_225_600_000_000);
        Task {
            id: TaskId::from_uuid(Uuid::from_u128(1)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(2)),
            target_id: TargetId::from_uuid(Uuid::from_u128(3)),
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(4)),
            invocation_id: InvocationId::from_uuid(Uuid::from_u128(5)),
            instruction: Some("Deploy".to_owned()),
            context: Payload::from_stored("{\"message\":\"Deploy\"}".to_owned()),
            event_type: None,
            status: TaskStatus::Queued,
            test: false,
            source: TaskSource {
                verified: true,
                source_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
                received_at: at,
            },
            attempts: 4,
            attempts_before_round: 3,
            next_attempt_at: at,
            last_error: Some("the target answered HTTP 503".to_owned()),
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_task_shows_its_attempts_over_its_life_and_before_its_round() {
        let json = serde_json::to_value(TaskOut::from(retried_task())).unwrap();
        assert_eq!(json["attempts"], 4);
        assert_eq!(json["attempts_before_round"], 3);
        assert_eq!(json["status"], "queued");
        assert_eq!(json["last_error"], "the target answered HTTP 503");
    }

    #[test]
    fn the_openapi_document_describes_the_round() {
        let document: serde_json::Value =
            serde_json::from_str(&super::super::openapi_json()).unwrap();
        let task = &document["components"]["schemas"]["TaskOut"];
        let required: Vec<&str> = task["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(serde_json::Value::as_str)
            .collect();
        assert!(required.contains(&"attempts_before_round"), "{required:?}");
        let field = &task["properties"]["attempts_before_round"];
        assert_eq!(field["type"], "integer", "{field}");
        let description = field["description"].as_str().unwrap_or_default();
        assert!(
            description.starts_with("The attempts made before the current delivery round"),
            "{description:?}"
        );
    }
}
