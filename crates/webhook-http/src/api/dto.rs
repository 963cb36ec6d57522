//! The management API's request and response bodies, with their `OpenAPI` schemas. Requests
//! refuse unknown fields; times are RFC 3339 in UTC.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use webhook_domain::model::{
    self, ApiKey, Invocation, InvocationSummary, Organization, Page, Target, TargetResponse, Task,
    TaskSource, TaskSummary, Timestamp,
};
use webhook_domain::service::manage::{
    CreatedApiKey, CreatedTarget, CreatedWebhook, InvocationRecord, MAX_PREVIOUS_SECRET_SECONDS,
    TargetSummary, TestResult, WebhookView,
};

// ---------------------------------------------------------------------------------------------
// Schemas of the values the server checks
//
// These types exist for the `OpenAPI` document only: each states, as a JSON Schema, exactly
// what the domain accepts (`webhook_domain::model::{Name, Secret, EventTypePattern, …}`), so
// a generated client or a schema-driven tester agrees with the server.

macro_rules! value_schemas {
    ($($(#[doc = $doc:literal])* $name:ident => $schema:expr;)*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let description = [$($doc),*].map(str::trim).join("\n");
                let schema: ObjectBuilder = $schema;
                RefOr::T(Schema::Object(schema.description(Some(description)).build()))
            }
        }

        impl ToSchema for $name {}
    )*};
}

/// [`DisplayName`]'s pattern: optional white space, 1 to 200 characters without control
/// characters that neither start nor end with white space, optional white space.
const NAME_PATTERN: &str = r"^[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f](?:[^\u0000-\u001f\u007f-\u009f]{0,198}[^\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

fn text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// A string that is one of `names`: the API's names of a domain enum's values, so the document
/// lists exactly the values the server reads and writes.
fn names<const N: usize>(names: [&'static str; N]) -> ObjectBuilder {
    text().enum_values(Some(names))
}

value_schemas! {
    /// A display name: 1 to 200 characters once white space is trimmed from both ends, and no
    /// control characters within them. (White space is Unicode's, as the pattern lists it.)
    DisplayName => text()
        .min_length(Some(1))
        .pattern(Some(NAME_PATTERN))
        .examples(["Deploy bot"]);
    /// An event type (`deploy.finished`) or a prefix of them (`deploy.*`): letters, digits and
    /// `. _ - : /`, with an optional trailing `.*` after a prefix; at most 128 characters.
    EventTypePattern => text()
        .min_length(Some(1))
        .max_length(Some(128))
        .pattern(Some(r"^(?:[A-Za-z0-9._:/-]+|[A-Za-z0-9._:/-]+\.\*)$"))
        .examples(["deploy.*"]);
    /// A webhook secret, which senders put in `X-Webhook-Secret` as is: 16 to 256 visible
    /// ASCII characters.
    WebhookSecret => text()
        .min_length(Some(16))
        .max_length(Some(256))
        .pattern(Some("^[!-~]{16,256}$"));
    /// Where a value is read from: a request header, `header:X-Name`, or an RFC 6901 JSON
    /// Pointer into the payload, `/event/id`; at most 256 characters.
    FieldReference => text()
        .max_length(Some(256))
        .pattern(Some(r"^(?:header:[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}|(?:/(?:[^~/]|~[01])*)+)$"))
        .examples(["/event/id"]);
    /// A template over the payload making the task's instruction (minijinja syntax: `{{ a.b }}`,
    /// `{% if %}`, filters); 1 to 4096 bytes, checked when saved.
    InstructionTemplate => text()
        .min_length(Some(1))
        .max_length(Some(4096))
        .pattern(Some(r"\S"))
        .examples(["Deploy of {{ service }} to {{ environment }}: {{ status }}"]);
    /// A network in CIDR notation (`192.0.2.0/24`, `2001:db8::/32`) or one address.
    Cidr => text()
        .min_length(Some(2))
        .max_length(Some(64))
        .pattern(Some(r"^[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?$"))
        .examples(["192.0.2.0/24"]);
    /// How many seconds the replaced secret keeps verifying: 0 (it stops at once, the
    /// default) to 604800 (seven days).
    PreviousValidForSeconds => ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(MAX_PREVIOUS_SECRET_SECONDS))
        .examples([86_400]);
    /// A rate limit in requests per minute: 1 to 1,000,000.
    RateLimitPerMinute => ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(1_000_000))
        .examples([100]);
}

/// How a generic webhook's sender authenticates with its secret, instead of `X-Webhook-Secret`:
/// the secret in a header of its choice, an HMAC of the body, `Authorization: Bearer`, or
/// `Authorization: Basic` with the secret as password.
#[derive(Debug)]
pub struct Verification;

impl utoipa::PartialSchema for Verification {
    fn schema() -> RefOr<Schema> {
        let scheme = |name: &str| {
            ObjectBuilder::new()
                .property("scheme", text().enum_values(Some([name])))
                .required("scheme")
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        let header = || {
            text()
                .min_length(Some(1))
                .max_length(Some(64))
                .pattern(Some(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))
        };
        let one_of = OneOfBuilder::new()
            .item(
                scheme("header")
                    .description(Some("The header's value equals the secret"))
                    .property("header", header())
                    .required("header"),
            )
            .item(
                scheme("hmac")
                    .description(Some(
                        "The header carries `prefix` + the HMAC of the body keyed with the secret",
                    ))
                    .property("header", header())
                    .required("header")
                    .property(
                        "algorithm",
                        text().enum_values(Some(["sha1", "sha256", "sha512"])),
                    )
                    .required("algorithm")
                    .property("encoding", text().enum_values(Some(["hex", "base64"])))
                    .required("encoding")
                    .property(
                        "prefix",
                        text()
                            .min_length(Some(1))
                            .max_length(Some(32))
                            .pattern(Some("^[!-~]+$")),
                    ),
            )
            .item(scheme("bearer").description(Some("`Authorization: Bearer <secret>`")))
            .item(scheme("basic").description(Some(
                "`Authorization: Basic`, the secret as password, any user name",
            )));
        RefOr::T(Schema::OneOf(
            one_of
                .description(Some(
                    "How a generic webhook's sender authenticates with the secret",
                ))
                .build(),
        ))
    }
}

impl ToSchema for Verification {}

value_schemas! {
    /// The sender a webhook expects: how it authenticates, where its event type and delivery id
    /// are, and the task's default instruction (docs/SOURCES.md).
    Source => names(model::Source::ALL.map(model::Source::as_str));
}

/// What an API key may do: `admin` reads and writes, `viewer` only reads.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Viewer,
}

/// A target: one `agent` or a `team`.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TargetKind {
    Agent,
    Team,
}

/// A webhook's status; `deleted` is a tombstone whose URL answers 410.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WebhookStatus {
    Active,
    Disabled,
    Deleted,
}

/// The statuses a webhook can be set to.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SettableWebhookStatus {
    Active,
    Disabled,
}

value_schemas! {
    /// A task's place in its lifecycle.
    TaskStatus => names(model::TaskStatus::ALL.map(model::TaskStatus::as_str));
}

value_schemas! {
    /// What happened to a request to a webhook URL.
    InvocationOutcome => names(model::InvocationOutcome::ALL.map(model::InvocationOutcome::as_str));
}

/// Where an accepted invocation's task stands in delivery: `queued` (waiting for an attempt, or
/// on a board agents read), `retrying` (the latest attempt failed and another is pending),
/// `delivered` (the target acknowledged it; the task may since be in progress or completed),
/// `failed` (delivery gave up, or the target reported failure).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Retrying,
    Delivered,
    Failed,
}

/// What the task board's list adds to each task: `context`, the whole payload.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TaskInclude {
    Context,
}

value_schemas! {
    /// What of a request's body the log kept: `not_read` (refused before its body was read, or
    /// the body was over the limit or broke off), `excerpt` (only its first 4 KiB, or a body
    /// that is not UTF-8 with its invalid bytes replaced), `whole`.
    BodyKept => names(model::BodyKept::ALL.map(model::BodyKept::as_str));
}

value_schemas! {
    /// The invocation log's filter: an outcome, or `failed` (rejected, plus accepted ones whose
    /// latest delivery attempt or whose task failed).
    OutcomeFilter => names(model::OutcomeFilter::ALL.map(model::OutcomeFilter::as_str));
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `POST /api/v1/targets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    #[schema(value_type = TargetKind)]
    pub kind: String,
    #[schema(value_type = DisplayName)]
    pub name: String,
    /// Where tasks are pushed; without one, tasks wait on the board. An `http` or `https` URL
    /// of at most 2048 characters, without credentials, whose host resolves to addresses the
    /// outbound policy allows (private, loopback and link-local ones are refused unless the
    /// operator allows them): checked when saved, 422 otherwise.
    #[serde(default)]
    #[schema(
        example = "https://agent.example.com/tasks",
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://"
    )]
    pub endpoint_url: Option<String>,
}

/// `PATCH /api/v1/targets/{id}`: absent fields stay; `endpoint_url: null` removes the endpoint.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTarget {
    #[serde(default)]
    #[schema(value_type = Option<TargetKind>)]
    pub kind: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<DisplayName>)]
    pub name: Option<String>,
    /// As in `CreateTarget`; `null` removes the endpoint.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://")]
    pub endpoint_url: Option<Option<String>>,
}

/// Declares the bodies that create or change a webhook: each takes its own fields (`$own`),
/// then the webhook's source and its overrides, which `source_fields!` hands on.
macro_rules! webhook_bodies {
    ($($(#[$attr:meta])* pub struct $name:ident { $($own:tt)* })*) => {$(
        $(#[$attr])*
        pub struct $name {
            $($own)*
            /// The sender's dialect; default `generic`.
            #[serde(default)]
            #[schema(value_type = Option<Source>)]
            pub source: Option<String>,
            /// For a `generic` webhook only: how its sender authenticates instead of
            /// `X-Webhook-Secret`; `null` for the default.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<Verification>)]
            pub verification: Option<Option<serde_json::Value>>,
            /// Where the event type is, instead of the source's place; `null` for the source's.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<FieldReference>)]
            pub event_type_from: Option<Option<String>>,
            /// Where the delivery id that deduplicates is, instead of the source's; `null` for the
            /// source's.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<FieldReference>)]
            pub dedup_key_from: Option<Option<String>>,
            /// Makes the task's instruction from the payload, before its `message` and the source's
            /// own; `null` for none.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<InstructionTemplate>)]
            pub instruction_template: Option<Option<String>>,
            /// The networks requests may come from (at most 100), matched on the source IP as
            /// resolved through trusted proxies; `null` or `[]` for any.
            #[serde(default, deserialize_with = "present")]
            #[schema(value_type = Option<Vec<Cidr>>, max_items = 100)]
            pub allowed_source_ips: Option<Option<Vec<String>>>,
        }
    )*};
}

webhook_bodies! {
    /// `POST /api/v1/webhooks`.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CreateWebhook {
        #[schema(value_type = DisplayName)]
        pub name: String,
        /// A target of the caller's organization.
        #[schema(value_type = Uuid)]
        pub target_id: String,
        /// Exact names or `prefix.*`, at most 64 (duplicates dropped); empty or absent subscribes
        /// to every event.
        #[serde(default)]
        #[schema(value_type = Option<Vec<EventTypePattern>>, max_items = 64, example = json!(["deploy.*"]))]
        pub event_types: Option<Vec<String>>,
        /// The secret senders put in `X-Webhook-Secret`; exclusive with `generate_secret: true`.
        #[serde(default)]
        #[schema(value_type = Option<WebhookSecret>)]
        pub secret: Option<String>,
        /// Generate a secret (returned once in the answer); exclusive with `secret`.
        #[serde(default)]
        pub generate_secret: Option<bool>,
        /// Default 100.
        #[serde(default, deserialize_with = "integer")]
        #[schema(value_type = Option<RateLimitPerMinute>)]
        pub rate_limit_per_minute: Option<i64>,
    }

    /// `PATCH /api/v1/webhooks/{id}`: absent fields stay.
    #[derive(Debug, Default, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PatchWebhook {
        #[serde(default)]
        #[schema(value_type = Option<DisplayName>)]
        pub name: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<Uuid>)]
        pub target_id: Option<String>,
        /// As in `CreateWebhook`; `[]` subscribes to every event.
        #[serde(default)]
        #[schema(value_type = Option<Vec<EventTypePattern>>, max_items = 64)]
        pub event_types: Option<Vec<String>>,
        #[serde(default)]
        #[schema(value_type = Option<SettableWebhookStatus>)]
        pub status: Option<String>,
        #[serde(default, deserialize_with = "integer")]
        #[schema(value_type = Option<RateLimitPerMinute>)]
        pub rate_limit_per_minute: Option<i64>,
    }
}

/// The source fields of a [`CreateWebhook`] or a [`PatchWebhook`], as the management use cases
/// take them.
macro_rules! source_fields {
    ($body:expr) => {
        webhook_domain::service::manage::SourceFields {
            source: $body.source,
            verification: $body.verification,
            event_type_from: $body.event_type_from,
            dedup_key_from: $body.dedup_key_from,
            instruction_template: $body.instruction_template,
            allowed_source_ips: $body.allowed_source_ips,
        }
    };
}

pub(crate) use source_fields;

/// `POST /api/v1/webhooks/{id}/rotate-secret`: the new secret, or none to generate one, and
/// how long the replaced one keeps verifying.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[serde(default)]
    #[schema(value_type = Option<WebhookSecret>)]
    pub secret: Option<String>,
    /// Seconds during which the replaced secret keeps verifying beside the new one, so a
    /// sender can be switched over without losing events; 0 or absent ends it at once.
    #[serde(default, deserialize_with = "integer")]
    #[schema(value_type = Option<PreviousValidForSeconds>)]
    pub previous_valid_for_seconds: Option<i64>,
}

/// `POST /api/v1/webhooks/{id}/test`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestWebhook {
    /// A JSON object nested at most 128 levels deep; default
    /// `{"message":"Test event","test":true}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<RawValue>>,
}

/// `PATCH /api/v1/tasks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    /// The new status, as the task lifecycle allows.
    #[schema(value_type = TaskStatus)]
    pub status: String,
}

/// `POST /api/v1/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(value_type = DisplayName)]
    pub name: String,
    #[schema(value_type = Role)]
    pub role: String,
}

/// `PATCH /api/v1/organization`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchOrganization {
    #[serde(default)]
    #[schema(value_type = Option<DisplayName>)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    #[schema(value_type = Option<RateLimitPerMinute>)]
    pub rate_limit_per_minute: Option<i64>,
}

/// `limit` and `cursor` of a list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 500; default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{48}$")]
    pub cursor: Option<String>,
}

/// Query of the webhook list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// Only webhooks with this status: `active`, `disabled`, or `deleted` for the tombstones
    /// (their invocation logs stay readable). Without it, the webhooks that are not deleted.
    #[param(value_type = Option<WebhookStatus>)]
    pub status: Option<String>,
    /// Items per page, 1 to 500; default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{48}$")]
    pub cursor: Option<String>,
}

/// An IPv4 or IPv6 address (`203.0.113.7`, `2001:db8::1`).
#[derive(Debug)]
pub struct IpAddress;

impl utoipa::PartialSchema for IpAddress {
    fn schema() -> RefOr<Schema> {
        let address = |format: &str| {
            text()
                .format(Some(SchemaFormat::Custom(format.to_owned())))
                .build()
        };
        RefOr::T(Schema::AnyOf(
            AnyOfBuilder::new()
                .item(address("ipv4"))
                .item(address("ipv6"))
                .description(Some(
                    "An IPv4 or IPv6 address (`203.0.113.7`, `2001:db8::1`).",
                ))
                .build(),
        ))
    }
}

impl ToSchema for IpAddress {}

/// Query of the invocation log. Every filter given applies; a cursor is valid with the filters
/// of the list it came from.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvocationQuery {
    /// `accepted`, `ignored`, `duplicate`, `rejected` or `failed` (rejected, plus accepted ones whose latest
    /// delivery attempt or whose task failed).
    #[param(value_type = Option<OutcomeFilter>)]
    pub outcome: Option<String>,
    /// Only invocations of exactly this event type.
    #[param(value_type = Option<String>, min_length = 1, example = "deploy.finished")]
    pub event_type: Option<String>,
    /// Only invocations sent from exactly this address.
    #[param(value_type = Option<IpAddress>)]
    pub source_ip: Option<String>,
    /// Only invocations received at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only invocations received before this time (RFC 3339); later than `since`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// `true`: only invocations sent by the test endpoint; `false`: none of them.
    #[param(value_type = Option<bool>)]
    pub test: Option<String>,
    /// Words the payload must all have, in any order, case-insensitive: a word is a run of
    /// letters and digits (anything else separates words, so `deploy.finished` is two), of at
    /// most 64; up to 16 words. String values and numbers of the payload are searched, member
    /// names are not; whole words only (`deplo` does not find `deploy`); accents count
    /// (`cafe` does not find `café`).
    #[param(value_type = Option<String>, min_length = 1, example = "deploy api")]
    pub q: Option<String>,
    /// Items per page, 1 to 500; default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{48}$")]
    pub cursor: Option<String>,
}

/// Query of the task board.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only this target's tasks.
    #[param(value_type = Option<Uuid>)]
    pub target_id: Option<String>,
    /// Only tasks with this status.
    #[param(value_type = Option<TaskStatus>)]
    pub status: Option<String>,
    /// `context`: each task carries its `context` (the whole payload). The page is then at most
    /// 50 tasks (`limit` above 50 is refused with 422), and the answer is streamed.
    #[param(value_type = Option<TaskInclude>)]
    pub include: Option<String>,
    /// Items per page, 1 to 500 (1 to 50 with `include=context`); default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{48}$")]
    pub cursor: Option<String>,
}

/// Deserializes an optional whole number, also when it is written with a zero fraction
/// (`100.0`): JSON Schema's `integer`, which the document promises, is any number without a
/// fractional part.
fn integer<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(whole) = number.as_i64() {
        return Ok(Some(whole));
    }
    match number.as_f64() {
        // Beyond i64's range the value is out of every range the server accepts anyway.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a float without a fraction, within i64's range"
        )]
        Some(float) if float.fract() == 0.0 => Ok(Some(if float.abs() < 9.2e18 {
            float as i64
        } else {
            i64::MAX
        })),
        _ => Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Other(&number.to_string()),
            &"a whole number",
        )),
    }
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
    #[schema(value_type = TargetKind)]
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
    #[schema(value_type = WebhookStatus)]
    pub status: &'static str,
    pub rate_limit_per_minute: u32,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime, required = true)]
    pub last_triggered_at: Option<String>,
    /// The sender's dialect.
    #[schema(value_type = Source)]
    pub source: &'static str,
    /// A generic webhook's own authentication scheme; null for the source's.
    #[schema(value_type = Option<Verification>, required = true)]
    pub verification: Option<webhook_domain::model::Verification>,
    #[schema(value_type = Option<FieldReference>, required = true)]
    pub event_type_from: Option<String>,
    #[schema(value_type = Option<FieldReference>, required = true)]
    pub dedup_key_from: Option<String>,
    #[schema(value_type = Option<InstructionTemplate>, required = true)]
    pub instruction_template: Option<String>,
    /// Null when requests are accepted from any address.
    #[schema(value_type = Option<Vec<Cidr>>, required = true)]
    pub allowed_source_ips: Option<Vec<String>>,
    /// Until when the secret replaced by the last rotation keeps verifying; null when it no
    /// longer does.
    #[schema(format = DateTime, required = true)]
    pub previous_secret_expires_at: Option<String>,
    pub health: HealthOut,
}

/// How a webhook fared over the last 24 hours, read from its invocation log when the webhook
/// is read.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthOut {
    /// Invocations accepted.
    #[schema(minimum = 0)]
    pub accepted_24h: u64,
    /// Requests that failed: the entries the log's `outcome=failed` filter selects (rejected,
    /// or accepted and then failed in delivery or by their task), each counting the requests
    /// it stands for (`repeat_count`).
    #[schema(minimum = 0)]
    pub failed_24h: u64,
    /// When the newest of those failures was received; null when there was none in the last
    /// 24 hours.
    #[schema(format = DateTime, required = true)]
    pub last_failure_at: Option<String>,
}

impl From<model::WebhookHealth> for HealthOut {
    fn from(health: model::WebhookHealth) -> Self {
        Self {
            accepted_24h: health.accepted,
            failed_24h: health.failed,
            last_failure_at: health.last_failure_at.map(time),
        }
    }
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
            source: webhook.source.source().as_str(),
            verification: webhook.source.verification().cloned(),
            event_type_from: webhook.source.event_type_from().map(ToString::to_string),
            dedup_key_from: webhook.source.dedup_key_from().map(ToString::to_string),
            instruction_template: webhook
                .source
                .instruction_template()
                .map(|t| t.as_str().to_owned()),
            allowed_source_ips: (!webhook.allowed_source_ips.is_empty()).then(|| {
                webhook
                    .allowed_source_ips
                    .as_slice()
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }),
            previous_secret_expires_at: webhook
                .previous_secret
                .and(webhook.previous_secret_expires_at)
                .map(time),
            health: HealthOut::from(view.health),
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

impl From<CreatedWebhook> for WebhookWithSecret {
    fn from(created: CreatedWebhook) -> Self {
        Self {
            secret: created.secret.map(|s| s.expose().to_owned()),
            webhook: WebhookOut::from(created.view),
        }
    }
}

/// A target.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    pub id: Uuid,
    #[schema(value_type = TargetKind)]
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

impl From<CreatedTarget> for CreatedTargetOut {
    fn from(created: CreatedTarget) -> Self {
        Self {
            signing_secret: created.signing_secret.expose().to_owned(),
            target: TargetOut::from(created.target),
        }
    }
}

/// An API key (never its value).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Role)]
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

impl From<CreatedApiKey> for CreatedApiKeyOut {
    fn from(created: CreatedApiKey) -> Self {
        Self {
            api_key: created.api_key.expose().to_owned(),
            key: ApiKeyOut::from(created.key),
        }
    }
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

/// Declares the views of an invocation: each shows the fields they all share, with its own
/// fields (`$own`) between `event_type` and `outcome`.
macro_rules! invocation_views {
    ($($(#[doc = $doc:literal])* $name:ident { $($own:tt)* })*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub id: Uuid,
            pub webhook_id: Uuid,
            #[schema(format = DateTime)]
            pub received_at: String,
            #[schema(required = true)]
            pub source_ip: Option<String>,
            #[schema(required = true)]
            pub event_type: Option<String>,
            $($own)*
            #[schema(value_type = InvocationOutcome)]
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
            /// The sender's delivery id, when its source has one and the request carried it.
            #[schema(required = true)]
            pub delivery_id: Option<String>,
            /// For a duplicate: the invocation first accepted with the same delivery id.
            #[schema(required = true)]
            pub duplicate_of: Option<Uuid>,
            /// Why the webhook's instruction template did not make the task's instruction (the
            /// payload's `message` or the source's instruction was used instead).
            #[schema(required = true)]
            pub instruction_fallback: Option<String>,
        }
    )*};
}

/// `Self`, a view of `$invocation` (an [`Invocation`]): the fields every view shares, and the
/// view's own.
macro_rules! invocation_view {
    ($invocation:ident, $($own:ident: $value:expr),* $(,)?) => {
        Self {
            id: *$invocation.id.as_uuid(),
            webhook_id: *$invocation.webhook_id.as_uuid(),
            received_at: time($invocation.received_at),
            source_ip: $invocation.source_ip.map(|ip| ip.to_string()),
            event_type: $invocation.event_type,
            outcome: $invocation.outcome.as_str(),
            http_status: $invocation.http_status,
            error_code: $invocation.error_code,
            task_id: $invocation.task_id.map(|t| *t.as_uuid()),
            repeat_count: $invocation.repeat_count,
            test: $invocation.test,
            target_response: $invocation.target_response.map(TargetResponseOut::from),
            delivery_id: $invocation.delivery_id,
            duplicate_of: $invocation.duplicate_of.map(|i| *i.as_uuid()),
            instruction_fallback: $invocation.instruction_fallback,
            $($own: $value,)*
        }
    };
}

invocation_views! {
    /// One entry of the invocation log.
    InvocationOut {
        /// The body received, when it was a JSON object.
        #[schema(value_type = Option<Object>, required = true)]
        pub payload: Option<Box<RawValue>>,
    }

    /// An entry of an invocation list: the invocation without its payload, summarized. The whole
    /// payload is in `GET /api/v1/invocations/{id}`.
    InvocationSummaryOut {
        /// The first 200 characters of the payload's `message`, when it is a string.
        #[schema(required = true, max_length = 200)]
        pub message_preview: Option<String>,
        /// The first bytes (at most 1 KiB, cut on a character boundary) of the payload's JSON
        /// text; null when no JSON object was received. Not JSON itself when it is cut.
        #[schema(required = true)]
        pub payload_excerpt: Option<String>,
        /// Where the task of an accepted invocation stands in delivery; null without a task.
        #[schema(value_type = Option<DeliveryStatus>, required = true)]
        pub delivery_status: Option<&'static str>,
    }
}

impl From<Invocation> for InvocationOut {
    fn from(invocation: Invocation) -> Self {
        invocation_view!(
            invocation,
            payload: invocation.payload.and_then(|p| raw_json(p.as_str())),
        )
    }
}

impl From<InvocationSummary> for InvocationSummaryOut {
    fn from(summary: InvocationSummary) -> Self {
        let invocation = summary.invocation;
        invocation_view!(
            invocation,
            message_preview: summary.message_preview,
            payload_excerpt: summary.payload_excerpt,
            delivery_status: summary
                .delivery_status
                .map(webhook_domain::model::DeliveryStatus::as_str),
        )
    }
}

/// A request header as received.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderOut {
    /// In lower case.
    pub name: String,
    /// As text (bytes that are not UTF-8 replaced); `[redacted]` for a credential.
    pub value: String,
}

/// A request as the log kept it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestOut {
    /// The headers, sorted by name. `Authorization`, `Proxy-Authorization`, `Cookie`,
    /// `X-Webhook-Secret`, `X-Gitlab-Token` and the header a webhook's `verification` names
    /// for its secret carry `[redacted]`: their values are never stored.
    pub headers: Vec<HeaderOut>,
    /// Headers left out because the record was full: at most 64 headers and 8 KiB of names and
    /// values are kept, by name, skipping any that does not fit.
    pub headers_omitted: u32,
    /// The body as text when the invocation has no `payload` to show it (a request refused
    /// after its body was read, a duplicate): whole, or its first 4 KiB when `body_kept` is
    /// `excerpt`. Null when the body is the invocation's `payload`, or was not read.
    #[schema(required = true)]
    pub body: Option<String>,
    #[schema(value_type = BodyKept)]
    pub body_kept: &'static str,
}

impl From<model::RequestRecord> for RequestOut {
    fn from(record: model::RequestRecord) -> Self {
        Self {
            headers: record
                .headers
                .into_iter()
                .map(|(name, value)| HeaderOut { name, value })
                .collect(),
            headers_omitted: record.headers_omitted,
            body: record.body_text,
            body_kept: record.body_kept.as_str(),
        }
    }
}

/// The problem a refused request was answered with.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweredProblemOut {
    pub status: u16,
    /// The stable problem `code` (see the ingest endpoint's answers).
    pub code: String,
    pub title: String,
    /// What the sender read, e.g. the parse error of a body that is not JSON.
    pub detail: String,
}

impl From<model::AnsweredProblem> for AnsweredProblemOut {
    fn from(problem: model::AnsweredProblem) -> Self {
        Self {
            status: problem.status,
            code: problem.code,
            title: problem.title,
            detail: problem.detail,
        }
    }
}

/// One delivery attempt of a task, and the target's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptOut {
    /// 1 for the task's first attempt; numbers go on over retries and never repeat.
    pub number: u32,
    /// Null when no HTTP answer came (timeout, refused connection).
    #[schema(required = true)]
    pub status_code: Option<u16>,
    pub latency_ms: u32,
    /// The start of the target's answer, at most 4 KiB.
    #[schema(required = true)]
    pub body_excerpt: Option<String>,
    /// Why the attempt failed, when it did.
    #[schema(required = true)]
    pub error: Option<String>,
    #[schema(format = DateTime)]
    pub at: String,
    /// Whether this attempt delivered the task.
    pub succeeded: bool,
}

impl From<model::DeliveryAttempt> for AttemptOut {
    fn from(attempt: model::DeliveryAttempt) -> Self {
        let response = attempt.response;
        Self {
            number: attempt.number,
            status_code: response.status_code,
            latency_ms: response.latency_ms,
            body_excerpt: response.body_excerpt,
            error: response.error,
            at: time(response.at),
            succeeded: response.succeeded,
        }
    }
}

/// Every delivery attempt of a task, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptList {
    pub items: Vec<AttemptOut>,
}

/// The whole record of a request: the invocation, the request as received, the problem
/// answered, the subscriptions it was matched against, its task and every delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationRecordOut {
    #[serde(flatten)]
    pub invocation: InvocationOut,
    /// Null for entries logged before requests were recorded. A coalesced entry (`repeat_count`
    /// above 1) keeps the first request's.
    #[schema(required = true)]
    pub request: Option<RequestOut>,
    /// The problem the sender was answered; null unless the request was refused.
    #[schema(required = true)]
    pub problem: Option<AnsweredProblemOut>,
    /// For an event ignored because its type is not subscribed: the webhook's event types it
    /// was matched against; otherwise null.
    #[schema(required = true)]
    pub subscriptions: Option<Vec<String>>,
    /// For a replay: the invocation whose request it sent again.
    #[schema(required = true)]
    pub replay_of: Option<Uuid>,
    /// The task the invocation made, when it was accepted.
    #[schema(required = true)]
    pub task: Option<TaskOut>,
    /// Every delivery attempt of the task, oldest first.
    pub attempts: Vec<AttemptOut>,
}

impl From<InvocationRecord> for InvocationRecordOut {
    fn from(record: InvocationRecord) -> Self {
        let InvocationRecord {
            mut invocation,
            task,
            attempts,
        } = record;
        let request = invocation.request.take();
        let replay_of = invocation.replay_of.map(|id| *id.as_uuid());
        let (request, problem, subscriptions) = match request {
            Some(mut record) => {
                let problem = record.problem.take().map(AnsweredProblemOut::from);
                let subscriptions = record.subscriptions.take();
                (Some(RequestOut::from(record)), problem, subscriptions)
            }
            None => (None, None, None),
        };
        Self {
            invocation: InvocationOut::from(invocation),
            request,
            problem,
            subscriptions,
            replay_of,
            task: task.map(TaskOut::from),
            attempts: attempts.into_iter().map(AttemptOut::from).collect(),
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
    /// The webhook's source when the event arrived: whose dialect it spoke.
    #[schema(value_type = Source)]
    pub provider: &'static str,
}

impl From<TaskSource> for TaskSourceOut {
    fn from(source: TaskSource) -> Self {
        Self {
            verified: source.verified,
            source_ip: source.source_ip.map(|ip| ip.to_string()),
            received_at: time(source.received_at),
            provider: source.provider.as_str(),
        }
    }
}

/// `Self`, a view of `$task` (a [`Task`] or a [`TaskSummary`]) showing `$context` as its context.
macro_rules! task_view {
    ($task:ident, context: $context:expr) => {
        Self {
            id: *$task.id.as_uuid(),
            target_id: *$task.target_id.as_uuid(),
            webhook_id: *$task.webhook_id.as_uuid(),
            invocation_id: *$task.invocation_id.as_uuid(),
            instruction: $task.instruction,
            context: $context,
            event_type: $task.event_type,
            status: $task.status.as_str(),
            test: $task.test,
            source: TaskSourceOut::from($task.source),
            attempts: $task.attempts,
            attempts_before_round: $task.attempts_before_round,
            next_attempt_at: time($task.next_attempt_at),
            last_error: $task.last_error,
            created_at: time($task.created_at),
            updated_at: time($task.updated_at),
        }
    };
}

/// Declares the views of a task: each shows the fields they all share, with its own `context`
/// and its own description of the attempt counts.
macro_rules! task_views {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident { context: { $($context:tt)* } attempts: { $($attempts:tt)* } }
    )*) => {$(
        $(#[doc = $doc])*
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub id: Uuid,
            pub target_id: Uuid,
            pub webhook_id: Uuid,
            pub invocation_id: Uuid,
            /// The payload's `message`: untrusted text from outside.
            #[schema(required = true)]
            pub instruction: Option<String>,
            $($context)*
            #[schema(required = true)]
            pub event_type: Option<String>,
            #[schema(value_type = TaskStatus)]
            pub status: &'static str,
            pub test: bool,
            pub source: TaskSourceOut,
            $($attempts)*
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
    )*};
}

task_views! {
    /// A task on the board.
    TaskOut {
        context: {
            /// The whole payload.
            #[schema(value_type = Object, required = true)]
            pub context: Option<Box<RawValue>>,
        }
        attempts: {
            /// Delivery attempts made so far, over the task's whole life; attempts are numbered from 1
            /// and their numbers never repeat.
            pub attempts: u32,
            /// The attempts made before the current delivery round: 0 until the task is retried by
            /// hand, then `attempts` as it was at the retry. A retry grants the whole retry schedule
            /// again, so `attempts - attempts_before_round` is what counts against the limit.
            pub attempts_before_round: u32,
        }
    }

    /// A task on the board's list: the task without its context, unless the list was asked for
    /// it with `include=context`.
    TaskListItem {
        context: {
            /// The whole payload; only with `include=context`.
            #[schema(value_type = Object)]
            #[serde(skip_serializing_if = "Option::is_none")]
            pub context: Option<Box<RawValue>>,
        }
        attempts: {
            /// Delivery attempts made so far, over the task's whole life.
            pub attempts: u32,
            /// The attempts made before the current delivery round (see `TaskOut`).
            pub attempts_before_round: u32,
        }
    }
}

impl From<Task> for TaskOut {
    fn from(task: Task) -> Self {
        task_view!(task, context: raw_json(task.context.as_str()))
    }
}

impl From<TaskSummary> for TaskListItem {
    fn from(task: TaskSummary) -> Self {
        task_view!(task, context: None)
    }
}

impl From<Task> for TaskListItem {
    fn from(task: Task) -> Self {
        task_view!(task, context: raw_json(task.context.as_str()))
    }
}

/// What the pipeline did with a test event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestOut {
    /// As for a real sender.
    #[schema(value_type = InvocationOutcome)]
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

impl From<TestResult> for TestOut {
    fn from(result: TestResult) -> Self {
        match result {
            TestResult::Accepted {
                invocation_id,
                task_id,
            } => Self {
                status: "accepted",
                http_status: 202,
                invocation_id: Some(*invocation_id.as_uuid()),
                task_id: Some(*task_id.as_uuid()),
                code: None,
                detail: None,
            },
            TestResult::Ignored { invocation_id } => Self {
                status: "ignored",
                http_status: 200,
                invocation_id: Some(*invocation_id.as_uuid()),
                task_id: None,
                code: None,
                detail: Some("the webhook does not subscribe to this event type".to_owned()),
            },
            TestResult::Duplicate {
                invocation_id,
                task_id,
            } => Self {
                status: "duplicate",
                http_status: 200,
                invocation_id: Some(*invocation_id.as_uuid()),
                task_id: task_id.map(|t| *t.as_uuid()),
                code: None,
                detail: Some("a request with this delivery id was accepted before".to_owned()),
            },
            TestResult::Rejected(rejection) => Self {
                status: "rejected",
                http_status: rejection.http_status(),
                invocation_id: None,
                task_id: None,
                code: Some(rejection.code()),
                detail: Some(rejection.to_string()),
            },
        }
    }
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
    InvocationList of InvocationSummaryOut,
    TaskList of TaskListItem,
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
                provider: webhook_domain::model::Source::Github,
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
    fn whole_numbers_may_carry_a_zero_fraction() {
        let rate = |body: &str| {
            crate::api::input::json_body::<PatchOrganization>(body.as_bytes())
                .map(|patch| patch.rate_limit_per_minute)
                .map_err(|e| (e.code(), e.field().map(str::to_owned)))
        };
        assert_eq!(rate(r#"{"rate_limit_per_minute": 250}"#), Ok(Some(250)));
        assert_eq!(rate(r#"{"rate_limit_per_minute": 250.0}"#), Ok(Some(250)));
        assert_eq!(rate(r#"{"rate_limit_per_minute": 2.5e2}"#), Ok(Some(250)));
        assert_eq!(rate(r#"{"rate_limit_per_minute": -3.0}"#), Ok(Some(-3)));
        assert_eq!(rate(r#"{"rate_limit_per_minute": null}"#), Ok(None));
        assert_eq!(rate("{}"), Ok(None));
        // Out of i64's range: out of every accepted range, refused by the range check (422).
        assert_eq!(
            rate(r#"{"rate_limit_per_minute": 1e30}"#),
            Ok(Some(i64::MAX))
        );
        assert_eq!(
            rate(r#"{"rate_limit_per_minute": 18446744073709551615}"#),
            Ok(Some(i64::MAX))
        );
        for refused in [
            r#"{"rate_limit_per_minute": 2.5}"#,
            r#"{"rate_limit_per_minute": "250"}"#,
            r#"{"rate_limit_per_minute": true}"#,
        ] {
            assert_eq!(
                rate(refused),
                Err((
                    "validation_failed",
                    Some("rate_limit_per_minute".to_owned())
                )),
                "{refused}"
            );
        }
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
