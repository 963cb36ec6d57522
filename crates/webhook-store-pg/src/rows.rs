//! Rows as diesel reads and writes them, and their translation to and from domain entities.

use std::net::IpAddr;

use diesel::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, ApiKeyHash, ApiKeyId, CidrList, DeliveryAttempt, EndpointUrl, EventTypes, FieldRef,
    InstructionTemplate, Invocation, InvocationId, InvocationOutcome, Name, Organization,
    OrganizationId, Payload, RatePerMinute, Role, SealedSecret, Source, SourceSettings, Target,
    TargetId, TargetKind, TargetResponse, Task, TaskId, TaskSource, TaskStatus, TaskSummary,
    Timestamp, Verification, Webhook, WebhookId, WebhookStatus,
};
use webhook_domain::ports::StoreError;

use crate::error::corrupt;
use crate::schema::{
    api_keys, delivery_attempts, invocations, organizations, targets, tasks, webhooks,
};

pub(crate) fn at(ts: Timestamp) -> OffsetDateTime {
    ts.to_datetime()
}

pub(crate) fn ts(at: OffsetDateTime) -> Timestamp {
    Timestamp::from_datetime(at)
}

/// A count or size the domain keeps as unsigned, in an `integer` column.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn unsigned(n: i32, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| corrupt(what))
}

fn name(text: &str) -> Result<Name, StoreError> {
    Name::parse(text).map_err(|_| corrupt("name"))
}

fn rate(n: i32) -> Result<RatePerMinute, StoreError> {
    RatePerMinute::new(unsigned(n, "rate")?).map_err(|_| corrupt("rate"))
}

pub(crate) fn source(text: &str) -> Result<Source, StoreError> {
    Source::parse(text).ok_or_else(|| corrupt("source"))
}

/// The value `parse` reads in a nullable column, when the column holds one.
fn parsed<I: ?Sized, T, E>(
    value: Option<&I>,
    parse: impl Fn(&I) -> Result<T, E>,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    value
        .map(|v| parse(v).map_err(|_| corrupt(what)))
        .transpose()
}

fn ip(text: Option<&str>) -> Result<Option<IpAddr>, StoreError> {
    parsed(text, str::parse, "source ip")
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct OrganizationRow {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) rate_limit_per_minute: i32,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

impl From<&Organization> for OrganizationRow {
    fn from(o: &Organization) -> Self {
        Self {
            id: *o.id.as_uuid(),
            name: o.name.as_str().to_owned(),
            rate_limit_per_minute: int(o.rate_limit_per_minute.get()),
            created_at: at(o.created_at),
            updated_at: at(o.updated_at),
        }
    }
}

impl TryFrom<OrganizationRow> for Organization {
    type Error = StoreError;

    fn try_from(row: OrganizationRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: OrganizationId::from_uuid(row.id),
            name: name(&row.name)?,
            rate_limit_per_minute: rate(row.rate_limit_per_minute)?,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ApiKeyRow {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) hash: Vec<u8>,
    pub(crate) created_at: OffsetDateTime,
}

impl From<&ApiKey> for ApiKeyRow {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: *k.id.as_uuid(),
            organization_id: *k.organization_id.as_uuid(),
            name: k.name.as_str().to_owned(),
            role: k.role.as_str().to_owned(),
            hash: k.hash.as_bytes().to_vec(),
            created_at: at(k.created_at),
        }
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        let hash: [u8; 32] = row.hash.try_into().map_err(|_| corrupt("api key hash"))?;
        Ok(Self {
            id: ApiKeyId::from_uuid(row.id),
            organization_id: OrganizationId::from_uuid(row.organization_id),
            name: name(&row.name)?,
            role: Role::parse(&row.role).ok_or_else(|| corrupt("role"))?,
            hash: ApiKeyHash::from_bytes(hash),
            created_at: ts(row.created_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = targets, check_for_backend(diesel::pg::Pg))]
pub(crate) struct TargetRow {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) endpoint_url: Option<String>,
    pub(crate) signing_secret: Vec<u8>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
}

impl From<&Target> for TargetRow {
    fn from(t: &Target) -> Self {
        Self {
            id: *t.id.as_uuid(),
            organization_id: *t.organization_id.as_uuid(),
            kind: t.kind.as_str().to_owned(),
            name: t.name.as_str().to_owned(),
            endpoint_url: t.endpoint_url.as_ref().map(|u| u.as_str().to_owned()),
            signing_secret: t.signing_secret.as_bytes().to_vec(),
            created_at: at(t.created_at),
            updated_at: at(t.updated_at),
        }
    }
}

pub(crate) fn endpoint(text: &str) -> Result<EndpointUrl, StoreError> {
    EndpointUrl::parse(text).map_err(|_| corrupt("endpoint url"))
}

impl TryFrom<TargetRow> for Target {
    type Error = StoreError;

    fn try_from(row: TargetRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: TargetId::from_uuid(row.id),
            organization_id: OrganizationId::from_uuid(row.organization_id),
            kind: TargetKind::parse(&row.kind).ok_or_else(|| corrupt("target kind"))?,
            name: name(&row.name)?,
            endpoint_url: row.endpoint_url.as_deref().map(endpoint).transpose()?,
            signing_secret: SealedSecret::from_bytes(row.signing_secret),
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks, check_for_backend(diesel::pg::Pg))]
pub(crate) struct WebhookRow {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) name: String,
    pub(crate) target_id: Uuid,
    pub(crate) event_types: Vec<String>,
    pub(crate) secret: Option<Vec<u8>>,
    pub(crate) rate_limit_per_minute: i32,
    pub(crate) status: String,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    /// Read as [`LAST_TRIGGERED_AT`]; written as given.
    #[diesel(select_expression = diesel::dsl::sql::<NullableTime>(LAST_TRIGGERED_AT))]
    #[diesel(select_expression_type = diesel::expression::SqlLiteral<NullableTime>)]
    pub(crate) last_triggered_at: Option<OffsetDateTime>,
    pub(crate) source: String,
    pub(crate) verification: Option<serde_json::Value>,
    pub(crate) event_type_from: Option<String>,
    pub(crate) dedup_key_from: Option<String>,
    pub(crate) instruction_template: Option<String>,
    pub(crate) allowed_source_ips: Vec<String>,
    pub(crate) previous_secret: Option<Vec<u8>>,
    pub(crate) previous_secret_expires_at: Option<OffsetDateTime>,
}

type NullableTime = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>;

/// A webhook's `last_triggered_at` as read: its latest accepted invocation (one step into the
/// partial index `invocations_accepted_by_webhook`), or the column, which keeps the latest one
/// the retention purge deleted, whichever is later. Writes of events touch no webhook row.
const LAST_TRIGGERED_AT: &str = "GREATEST(webhooks.last_triggered_at, \
     (SELECT max(i.received_at) FROM invocations i \
      WHERE i.webhook_id = webhooks.id AND i.outcome = 'accepted'))";

impl TryFrom<&Webhook> for WebhookRow {
    type Error = StoreError;

    fn try_from(w: &Webhook) -> Result<Self, StoreError> {
        let settings = &w.source;
        let verification = settings
            .verification()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| StoreError::Internal(Box::new(e)))?;
        Ok(Self {
            id: *w.id.as_uuid(),
            organization_id: *w.organization_id.as_uuid(),
            name: w.name.as_str().to_owned(),
            target_id: *w.target_id.as_uuid(),
            event_types: w
                .event_types
                .patterns()
                .iter()
                .map(ToString::to_string)
                .collect(),
            secret: w.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            rate_limit_per_minute: int(w.rate_limit_per_minute.get()),
            status: w.status.as_str().to_owned(),
            created_at: at(w.created_at),
            updated_at: at(w.updated_at),
            last_triggered_at: w.last_triggered_at.map(at),
            source: settings.source().as_str().to_owned(),
            verification,
            event_type_from: settings.event_type_from().map(ToString::to_string),
            dedup_key_from: settings.dedup_key_from().map(ToString::to_string),
            instruction_template: settings
                .instruction_template()
                .map(|t| t.as_str().to_owned()),
            allowed_source_ips: w
                .allowed_source_ips
                .as_slice()
                .iter()
                .map(ToString::to_string)
                .collect(),
            previous_secret: w.previous_secret.as_ref().map(|s| s.as_bytes().to_vec()),
            previous_secret_expires_at: w.previous_secret_expires_at.map(at),
        })
    }
}

impl WebhookRow {
    /// The source settings the row's columns hold.
    fn source_settings(&self) -> Result<SourceSettings, StoreError> {
        let field = |text: &Option<String>, what| parsed(text.as_deref(), FieldRef::parse, what);
        SourceSettings::new(
            source(&self.source)?,
            parsed(
                self.verification.as_ref(),
                Verification::from_json,
                "verification",
            )?,
            field(&self.event_type_from, "event_type_from")?,
            field(&self.dedup_key_from, "dedup_key_from")?,
            parsed(
                self.instruction_template.as_deref(),
                InstructionTemplate::parse,
                "instruction template",
            )?,
        )
        .map_err(|_| corrupt("source settings"))
    }
}

impl TryFrom<WebhookRow> for Webhook {
    type Error = StoreError;

    fn try_from(row: WebhookRow) -> Result<Self, StoreError> {
        let source = row.source_settings()?;
        Ok(Self {
            id: WebhookId::from_uuid(row.id),
            organization_id: OrganizationId::from_uuid(row.organization_id),
            name: name(&row.name)?,
            target_id: TargetId::from_uuid(row.target_id),
            event_types: EventTypes::parse(&row.event_types).map_err(|_| corrupt("event types"))?,
            secret: row.secret.map(SealedSecret::from_bytes),
            previous_secret: row.previous_secret.map(SealedSecret::from_bytes),
            previous_secret_expires_at: row.previous_secret_expires_at.map(ts),
            source,
            allowed_source_ips: CidrList::parse(&row.allowed_source_ips)
                .map_err(|_| corrupt("allowed source ips"))?,
            rate_limit_per_minute: rate(row.rate_limit_per_minute)?,
            status: WebhookStatus::parse(&row.status).ok_or_else(|| corrupt("webhook status"))?,
            created_at: ts(row.created_at),
            updated_at: ts(row.updated_at),
            last_triggered_at: row.last_triggered_at.map(ts),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = invocations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct InvocationRow {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) webhook_id: Uuid,
    pub(crate) received_at: OffsetDateTime,
    pub(crate) source_ip: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) payload: Option<String>,
    pub(crate) outcome: String,
    pub(crate) http_status: i32,
    pub(crate) error_code: Option<String>,
    pub(crate) task_id: Option<Uuid>,
    pub(crate) repeat_count: i32,
    pub(crate) test: bool,
    pub(crate) response_succeeded: Option<bool>,
    pub(crate) delivery_id: Option<String>,
    pub(crate) duplicate_of: Option<Uuid>,
    pub(crate) instruction_fallback: Option<String>,
}

fn status_code(code: Option<i32>) -> Result<Option<u16>, StoreError> {
    code.map(|c| u16::try_from(c).map_err(|_| corrupt("status code")))
        .transpose()
}

impl InvocationRow {
    /// The invocation's task, when the invocation was answered by an attempt of it: the store
    /// sets `response_succeeded` with each attempt of the task the invocation made (and keeps
    /// it from a response given with the invocation, which ingest never gives), never on a
    /// duplicate that names its holder's task.
    pub(crate) fn answered_task(&self) -> Option<Uuid> {
        self.response_succeeded.and(self.task_id)
    }

    /// The invocation, with `latest` (the latest attempt of [`Self::answered_task`]) as the
    /// target's response.
    pub(crate) fn into_domain(self, latest: Option<AttemptRow>) -> Result<Invocation, StoreError> {
        let target_response = latest
            .map(|attempt| DeliveryAttempt::try_from(attempt).map(|a| a.response))
            .transpose()?;
        Ok(Invocation {
            id: InvocationId::from_uuid(self.id),
            organization_id: OrganizationId::from_uuid(self.organization_id),
            webhook_id: WebhookId::from_uuid(self.webhook_id),
            received_at: ts(self.received_at),
            source_ip: ip(self.source_ip.as_deref())?,
            event_type: self.event_type,
            payload: self.payload.map(Payload::from_stored),
            outcome: InvocationOutcome::parse(&self.outcome).ok_or_else(|| corrupt("outcome"))?,
            http_status: status_code(Some(self.http_status))?.unwrap_or_default(),
            error_code: self.error_code,
            task_id: self.task_id.map(TaskId::from_uuid),
            repeat_count: unsigned(self.repeat_count, "repeat count")?,
            test: self.test,
            target_response,
            delivery_id: self.delivery_id,
            duplicate_of: self.duplicate_of.map(InvocationId::from_uuid),
            instruction_fallback: self.instruction_fallback,
            request: None,
            replay_of: None,
        })
    }
}

/// What an invocation row holds besides the fields lists read: the request's record and the
/// invocation a replay sent again.
#[derive(Queryable, Selectable)]
#[diesel(table_name = invocations, check_for_backend(diesel::pg::Pg))]
pub(crate) struct RequestRow {
    pub(crate) request_record: Option<String>,
    pub(crate) replay_of: Option<Uuid>,
}

impl RequestRow {
    /// `invocation` with this row's record and replay.
    pub(crate) fn fill(self, invocation: Invocation) -> Result<Invocation, StoreError> {
        let replay_of = self.replay_of.map(InvocationId::from_uuid);
        invocation
            .with_request(self.request_record.as_deref(), replay_of)
            .map_err(|_| corrupt("request record"))
    }
}

#[derive(Queryable, QueryableByName, Selectable)]
#[diesel(table_name = tasks, check_for_backend(diesel::pg::Pg))]
pub(crate) struct TaskRow {
    pub(crate) id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) target_id: Uuid,
    pub(crate) webhook_id: Uuid,
    pub(crate) invocation_id: Uuid,
    pub(crate) instruction: Option<String>,
    pub(crate) context: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) status: String,
    pub(crate) test: bool,
    pub(crate) source_verified: bool,
    pub(crate) source_ip: Option<String>,
    pub(crate) source_received_at: OffsetDateTime,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: OffsetDateTime,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: OffsetDateTime,
    pub(crate) updated_at: OffsetDateTime,
    pub(crate) attempts_before_round: i32,
    pub(crate) source_provider: String,
}

impl TaskRow {
    /// The task, with `payload` the invocation's payload read by join.
    pub(crate) fn into_task(mut self, payload: Option<String>) -> Result<Task, StoreError> {
        let context = self
            .context
            .take()
            .or(payload)
            .ok_or_else(|| corrupt("task context"))?;
        Ok(self
            .into_summary()?
            .with_context(Payload::from_stored(context)))
    }

    /// The task without its context (which a list does not read).
    pub(crate) fn into_summary(self) -> Result<TaskSummary, StoreError> {
        Ok(TaskSummary {
            id: TaskId::from_uuid(self.id),
            organization_id: OrganizationId::from_uuid(self.organization_id),
            target_id: TargetId::from_uuid(self.target_id),
            webhook_id: WebhookId::from_uuid(self.webhook_id),
            invocation_id: InvocationId::from_uuid(self.invocation_id),
            instruction: self.instruction,
            event_type: self.event_type,
            status: TaskStatus::parse(&self.status).ok_or_else(|| corrupt("task status"))?,
            test: self.test,
            source: TaskSource {
                verified: self.source_verified,
                source_ip: ip(self.source_ip.as_deref())?,
                received_at: ts(self.source_received_at),
                provider: source(&self.source_provider)?,
            },
            attempts: unsigned(self.attempts, "attempts")?,
            attempts_before_round: unsigned(
                self.attempts_before_round,
                "attempts before the round",
            )?,
            next_attempt_at: ts(self.next_attempt_at),
            last_error: self.last_error,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = delivery_attempts, check_for_backend(diesel::pg::Pg))]
pub(crate) struct AttemptRow {
    pub(crate) task_id: Uuid,
    pub(crate) number: i32,
    pub(crate) status_code: Option<i32>,
    pub(crate) body_excerpt: Option<String>,
    pub(crate) latency_ms: i32,
    pub(crate) error: Option<String>,
    pub(crate) at: OffsetDateTime,
    pub(crate) succeeded: bool,
}

impl From<&DeliveryAttempt> for AttemptRow {
    fn from(a: &DeliveryAttempt) -> Self {
        Self {
            task_id: *a.task_id.as_uuid(),
            number: int(a.number),
            status_code: a.response.status_code.map(i32::from),
            body_excerpt: a.response.body_excerpt.clone(),
            latency_ms: int(a.response.latency_ms),
            error: a.response.error.clone(),
            at: at(a.response.at),
            succeeded: a.response.succeeded,
        }
    }
}

impl TryFrom<AttemptRow> for DeliveryAttempt {
    type Error = StoreError;

    fn try_from(row: AttemptRow) -> Result<Self, StoreError> {
        Ok(Self {
            task_id: TaskId::from_uuid(row.task_id),
            number: unsigned(row.number, "attempt number")?,
            response: TargetResponse {
                status_code: status_code(row.status_code)?,
                body_excerpt: row.body_excerpt,
                latency_ms: unsigned(row.latency_ms, "latency")?,
                error: row.error,
                at: ts(row.at),
                succeeded: row.succeeded,
            },
        })
    }
}
