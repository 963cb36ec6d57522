//! Rows as diesel reads them, and their conversion into the domain's entities. A value that
//! does not convert is a corrupt row (`Internal`), never a panic.

use std::net::IpAddr;

use diesel::{Queryable, QueryableByName, Selectable};
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, ApiKeyHash, ApiKeyId, CidrList, DeliveryAttempt, EndpointUrl, EventTypes, FieldRef,
    InstructionTemplate, Invocation, InvocationId, InvocationOutcome, Name, Organization,
    OrganizationId, Payload, RatePerMinute, Role, SealedSecret, Source, SourceSettings, Target,
    TargetId, TargetKind, TargetResponse, Task, TaskId, TaskSource, TaskStatus, TaskSummary,
    Timestamp, Verification, Webhook, WebhookId, WebhookStatus,
};
use webhook_domain::ports::StoreError;

use crate::error::Failure;

/// A UUID's bytes as stored.
pub(crate) fn id(uuid: &Uuid) -> Vec<u8> {
    uuid.as_bytes().to_vec()
}

pub(crate) fn uuid(bytes: &[u8], what: &'static str) -> Result<Uuid, Failure> {
    Uuid::from_slice(bytes).map_err(|_| Failure::corrupt(what))
}

/// The organization a row's `organization_id` (or an organization's `id`) names.
fn organization(bytes: &[u8]) -> Result<OrganizationId, Failure> {
    Ok(OrganizationId::from_uuid(uuid(bytes, "organization id")?))
}

pub(crate) fn ts(micros: i64) -> Timestamp {
    Timestamp::from_unix_micros(micros)
}

fn name(text: &str, what: &'static str) -> Result<Name, Failure> {
    Name::parse(text).map_err(|_| Failure::corrupt(what))
}

fn rate(value: i64, what: &'static str) -> Result<RatePerMinute, Failure> {
    u32::try_from(value)
        .ok()
        .and_then(|v| RatePerMinute::new(v).ok())
        .ok_or_else(|| Failure::corrupt(what))
}

fn unsigned<T: TryFrom<i64>>(value: i64, what: &'static str) -> Result<T, Failure> {
    T::try_from(value).map_err(|_| Failure::corrupt(what))
}

/// The value `parse` reads in a nullable column, when the column holds one.
fn parsed<T, E>(
    text: Option<&str>,
    parse: impl Fn(&str) -> Result<T, E>,
    what: &'static str,
) -> Result<Option<T>, Failure> {
    text.map(|t| parse(t).map_err(|_| Failure::corrupt(what)))
        .transpose()
}

fn ip(text: Option<&str>, what: &'static str) -> Result<Option<IpAddr>, Failure> {
    parsed(text, str::parse, what)
}

/// The stored form of an event-type list: a JSON array of patterns.
pub(crate) fn event_types_text(event_types: &EventTypes) -> String {
    serde_json::to_string(event_types).unwrap_or_else(|_| "[]".to_owned())
}

/// The stored form of a webhook's verification override: the management API's JSON object.
pub(crate) fn verification_text(
    verification: Option<&Verification>,
) -> Result<Option<String>, Failure> {
    verification
        .map(|v| serde_json::to_string(v).map_err(|e| StoreError::Internal(Box::new(e)).into()))
        .transpose()
}

/// The stored form of a webhook's allowed networks: a JSON array of CIDRs, NULL when the list
/// is empty (every address is allowed).
pub(crate) fn allowed_source_ips_text(networks: &CidrList) -> Result<Option<String>, Failure> {
    if networks.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(networks)
        .map(Some)
        .map_err(|e| StoreError::Internal(Box::new(e)).into())
}

fn source(text: &str, what: &'static str) -> Result<Source, Failure> {
    Source::parse(text).ok_or_else(|| Failure::corrupt(what))
}

fn field_ref(text: Option<&str>, what: &'static str) -> Result<Option<FieldRef>, Failure> {
    parsed(text, FieldRef::parse, what)
}

#[derive(Queryable)]
pub(crate) struct OrganizationRow {
    id: Vec<u8>,
    name: String,
    rate_limit_per_minute: i64,
    created_at: i64,
    updated_at: i64,
}

impl OrganizationRow {
    pub(crate) fn into_domain(self) -> Result<Organization, Failure> {
        Ok(Organization {
            id: organization(&self.id)?,
            name: name(&self.name, "organization name")?,
            rate_limit_per_minute: rate(self.rate_limit_per_minute, "organization rate")?,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Queryable)]
pub(crate) struct ApiKeyRow {
    id: Vec<u8>,
    organization_id: Vec<u8>,
    name: String,
    role: String,
    hash: Vec<u8>,
    created_at: i64,
}

impl ApiKeyRow {
    pub(crate) fn into_domain(self) -> Result<ApiKey, Failure> {
        let hash: [u8; 32] = self
            .hash
            .as_slice()
            .try_into()
            .map_err(|_| Failure::corrupt("api key hash"))?;
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(uuid(&self.id, "api key id")?),
            organization_id: organization(&self.organization_id)?,
            name: name(&self.name, "api key name")?,
            role: Role::parse(&self.role).ok_or_else(|| Failure::corrupt("api key role"))?,
            hash: ApiKeyHash::from_bytes(hash),
            created_at: ts(self.created_at),
        })
    }
}

#[derive(Queryable)]
pub(crate) struct TargetRow {
    id: Vec<u8>,
    organization_id: Vec<u8>,
    kind: String,
    name: String,
    endpoint_url: Option<String>,
    signing_secret: Vec<u8>,
    created_at: i64,
    updated_at: i64,
    #[expect(dead_code, reason = "read with the row; lookups filter on it in SQL")]
    deleted_at: Option<i64>,
}

impl TargetRow {
    pub(crate) fn into_domain(self) -> Result<Target, Failure> {
        Ok(Target {
            id: TargetId::from_uuid(uuid(&self.id, "target id")?),
            organization_id: organization(&self.organization_id)?,
            kind: TargetKind::parse(&self.kind).ok_or_else(|| Failure::corrupt("target kind"))?,
            name: name(&self.name, "target name")?,
            endpoint_url: parsed(
                self.endpoint_url.as_deref(),
                EndpointUrl::parse,
                "endpoint url",
            )?,
            signing_secret: SealedSecret::from_bytes(self.signing_secret),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Queryable)]
pub(crate) struct WebhookRow {
    id: Vec<u8>,
    organization_id: Vec<u8>,
    name: String,
    target_id: Vec<u8>,
    event_types: String,
    secret: Option<Vec<u8>>,
    rate_limit_per_minute: i64,
    status: String,
    created_at: i64,
    updated_at: i64,
    last_triggered_at: Option<i64>,
    source: String,
    verification: Option<String>,
    event_type_from: Option<String>,
    dedup_key_from: Option<String>,
    instruction_template: Option<String>,
    allowed_source_ips: Option<String>,
    previous_secret: Option<Vec<u8>>,
    previous_secret_expires_at: Option<i64>,
}

impl WebhookRow {
    fn source_settings(&self) -> Result<SourceSettings, Failure> {
        let verification = parsed(
            self.verification.as_deref(),
            |text| serde_json::from_str::<Verification>(text),
            "webhook verification",
        )?;
        let instruction_template = parsed(
            self.instruction_template.as_deref(),
            InstructionTemplate::parse,
            "webhook instruction template",
        )?;
        SourceSettings::new(
            source(&self.source, "webhook source")?,
            verification,
            field_ref(self.event_type_from.as_deref(), "webhook event type field")?,
            field_ref(self.dedup_key_from.as_deref(), "webhook delivery id field")?,
            instruction_template,
        )
        .map_err(|_| Failure::corrupt("webhook source settings"))
    }

    pub(crate) fn into_domain(self) -> Result<Webhook, Failure> {
        let source = self.source_settings()?;
        let allowed_source_ips = parsed(
            self.allowed_source_ips.as_deref(),
            |text| serde_json::from_str::<CidrList>(text),
            "webhook allowed source ips",
        )?
        .unwrap_or_default();
        Ok(Webhook {
            id: WebhookId::from_uuid(uuid(&self.id, "webhook id")?),
            organization_id: organization(&self.organization_id)?,
            name: name(&self.name, "webhook name")?,
            target_id: TargetId::from_uuid(uuid(&self.target_id, "target id")?),
            event_types: serde_json::from_str(&self.event_types)
                .map_err(|_| Failure::corrupt("webhook event types"))?,
            secret: self.secret.map(SealedSecret::from_bytes),
            previous_secret: self.previous_secret.map(SealedSecret::from_bytes),
            previous_secret_expires_at: self.previous_secret_expires_at.map(ts),
            source,
            allowed_source_ips,
            rate_limit_per_minute: rate(self.rate_limit_per_minute, "webhook rate")?,
            status: WebhookStatus::parse(&self.status)
                .ok_or_else(|| Failure::corrupt("webhook status"))?,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            last_triggered_at: self.last_triggered_at.map(ts),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::invocations, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct InvocationRow {
    id: Vec<u8>,
    organization_id: Vec<u8>,
    webhook_id: Vec<u8>,
    received_at: i64,
    source_ip: Option<String>,
    event_type: Option<String>,
    payload: Option<String>,
    outcome: String,
    http_status: i64,
    error_code: Option<String>,
    task_id: Option<Vec<u8>>,
    repeat_count: i64,
    test: bool,
    response_succeeded: Option<bool>,
    delivery_id: Option<String>,
    duplicate_of: Option<Vec<u8>>,
    instruction_fallback: Option<String>,
}

impl InvocationRow {
    /// Takes what was read in the payload's place (a list reads a prefix there).
    pub(crate) fn take_payload(&mut self) -> Option<String> {
        self.payload.take()
    }

    /// The invocation's task, when the invocation was answered by an attempt of it: the store
    /// sets `response_succeeded` with each attempt of the task the invocation made (and keeps
    /// it from a response given with the invocation, which ingest never gives), never on a
    /// duplicate that names its holder's task.
    pub(crate) fn answered_task(&self) -> Option<&[u8]> {
        self.response_succeeded.and(self.task_id.as_deref())
    }

    /// The invocation, with `latest` (the latest attempt of [`Self::answered_task`]) as the
    /// target's response.
    pub(crate) fn into_domain(self, latest: Option<AttemptRow>) -> Result<Invocation, Failure> {
        let target_response = latest
            .map(|attempt| attempt.into_domain().map(|a| a.response))
            .transpose()?;
        Ok(Invocation {
            id: InvocationId::from_uuid(uuid(&self.id, "invocation id")?),
            organization_id: organization(&self.organization_id)?,
            webhook_id: WebhookId::from_uuid(uuid(&self.webhook_id, "webhook id")?),
            received_at: ts(self.received_at),
            source_ip: ip(self.source_ip.as_deref(), "invocation source ip")?,
            event_type: self.event_type,
            payload: self.payload.map(Payload::from_stored),
            outcome: InvocationOutcome::parse(&self.outcome)
                .ok_or_else(|| Failure::corrupt("invocation outcome"))?,
            http_status: unsigned(self.http_status, "http status")?,
            error_code: self.error_code,
            task_id: self
                .task_id
                .map(|t| uuid(&t, "task id").map(TaskId::from_uuid))
                .transpose()?,
            repeat_count: unsigned(self.repeat_count, "repeat count")?,
            test: self.test,
            target_response,
            delivery_id: self.delivery_id,
            duplicate_of: self
                .duplicate_of
                .map(|i| uuid(&i, "invocation id").map(InvocationId::from_uuid))
                .transpose()?,
            instruction_fallback: self.instruction_fallback,
            request: None,
            replay_of: None,
        })
    }
}

/// What an invocation row holds besides the fields lists read: the request's record and the
/// invocation a replay sent again.
#[derive(Queryable, Selectable)]
#[diesel(table_name = crate::schema::invocations, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct RequestRow {
    request_record: Option<String>,
    replay_of: Option<Vec<u8>>,
}

impl RequestRow {
    /// `invocation` with this row's record and replay.
    pub(crate) fn fill(self, invocation: Invocation) -> Result<Invocation, Failure> {
        let replay_of = self
            .replay_of
            .map(|i| uuid(&i, "replayed invocation id").map(InvocationId::from_uuid))
            .transpose()?;
        invocation
            .with_request(self.request_record.as_deref(), replay_of)
            .map_err(|_| Failure::corrupt("request record"))
    }
}
#[derive(Queryable)]
pub(crate) struct TaskRow {
    id: Vec<u8>,
    organization_id: Vec<u8>,
    target_id: Vec<u8>,
    webhook_id: Vec<u8>,
    invocation_id: Vec<u8>,
    instruction: Option<String>,
    context: Option<String>,
    event_type: Option<String>,
    status: String,
    test: bool,
    source_verified: bool,
    source_ip: Option<String>,
    source_received_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    #[expect(dead_code, reason = "read with the row; claims filter on it in SQL")]
    lease_token: Option<Vec<u8>>,
    #[expect(dead_code, reason = "read with the row; claims filter on it in SQL")]
    lease_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    attempts_before_round: i64,
    source_provider: String,
}

impl TaskRow {
    /// `invocation_payload` is the payload of the task's invocation, read by join: the task's
    /// context unless the row stores a context of its own.
    pub(crate) fn into_domain(
        mut self,
        invocation_payload: Option<String>,
    ) -> Result<Task, Failure> {
        let context = self
            .context
            .take()
            .or(invocation_payload)
            .ok_or_else(|| Failure::corrupt("task context"))?;
        Ok(self
            .into_summary()?
            .with_context(Payload::from_stored(context)))
    }

    /// The task without its context (which a list does not read).
    pub(crate) fn into_summary(self) -> Result<TaskSummary, Failure> {
        Ok(TaskSummary {
            id: TaskId::from_uuid(uuid(&self.id, "task id")?),
            organization_id: organization(&self.organization_id)?,
            target_id: TargetId::from_uuid(uuid(&self.target_id, "target id")?),
            webhook_id: WebhookId::from_uuid(uuid(&self.webhook_id, "webhook id")?),
            invocation_id: InvocationId::from_uuid(uuid(&self.invocation_id, "invocation id")?),
            instruction: self.instruction,
            event_type: self.event_type,
            status: TaskStatus::parse(&self.status)
                .ok_or_else(|| Failure::corrupt("task status"))?,
            test: self.test,
            source: TaskSource {
                verified: self.source_verified,
                source_ip: ip(self.source_ip.as_deref(), "task source ip")?,
                received_at: ts(self.source_received_at),
                provider: source(&self.source_provider, "task source provider")?,
            },
            attempts: unsigned(self.attempts, "task attempts")?,
            attempts_before_round: unsigned(
                self.attempts_before_round,
                "task attempts before the round",
            )?,
            next_attempt_at: ts(self.next_attempt_at),
            last_error: self.last_error,
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
        })
    }
}

#[derive(Queryable, QueryableByName)]
#[diesel(table_name = crate::schema::delivery_attempts)]
pub(crate) struct AttemptRow {
    task_id: Vec<u8>,
    number: i64,
    status_code: Option<i64>,
    body_excerpt: Option<String>,
    latency_ms: i64,
    error: Option<String>,
    at: i64,
    succeeded: bool,
}

impl AttemptRow {
    /// The attempt's task id, as stored.
    pub(crate) fn task_key(&self) -> &[u8] {
        &self.task_id
    }

    pub(crate) fn into_domain(self) -> Result<DeliveryAttempt, Failure> {
        Ok(DeliveryAttempt {
            task_id: TaskId::from_uuid(uuid(&self.task_id, "task id")?),
            number: unsigned(self.number, "attempt number")?,
            response: TargetResponse {
                status_code: self
                    .status_code
                    .map(|c| unsigned(c, "attempt status"))
                    .transpose()?,
                body_excerpt: self.body_excerpt,
                latency_ms: unsigned(self.latency_ms, "attempt latency")?,
                error: self.error,
                at: ts(self.at),
                succeeded: self.succeeded,
            },
        })
    }
}
