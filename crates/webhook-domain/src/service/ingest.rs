//! The ingest use case: `POST /api/webhooks/{id}`, step by step as the design's ingest table
//! orders it. Split in two so the HTTP adapter can refuse a request before reading its body:
//! [`Ingest::begin`] runs every step that needs only the request head (lookup, status, the
//! source-IP allowlist, a peek at the rate limits that charges nothing, header
//! authentication), [`Ingest::finish`] the steps that need the body (size, the body signature,
//! the charge to the quotas, media type, JSON, the source's handshakes, deduplication, event
//! type, commit). A request that fails authentication therefore consumes no quota.
//!
//! What each sender's headers and payload mean is the webhook's source's business: the rules
//! are in [`crate::rules`] (`rules/source`), the HMAC arithmetic and template rendering behind
//! the [`crate::ports::SignatureMac`] and [`crate::ports::InstructionTemplates`] ports.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{
    AnsweredProblem, ClaimOutcome, CoalescedReason, CoalescedRejection, DeliveryClaim, IngestRoute,
    InvalidPayload, Invocation, InvocationId, InvocationOutcome, Payload, PayloadFields,
    RateRequest, RequestHeaders, RequestRecord, Secret, Task, TaskId, Timestamp, Verification,
    WebhookId, WebhookStatus,
};
use crate::ports::{
    Adapters, Clock as _, InvocationLog as _, Notifier as _, RateLimiter as _,
    RejectionCounter as _, StoreError, WebhookResolver as _,
};
use crate::rules::{
    AuthFailure, Authenticity, BodyRefused, EventFields, Extraction, Handshake, HeadCheck,
    InstructionOrigin, MAX_DELIVERY_ID_BYTES, MediaType, RateDecision, RateScope, RateStatus,
};
use crate::service::time_ordered_id;

/// Settings of the ingest use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConfig {
    /// Largest body accepted, in bytes.
    pub body_limit: usize,
    /// How long an accepted delivery id makes its repeats duplicates.
    pub dedup_window: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            dedup_window: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Who is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// An outside system, which authenticates as the webhook's source says.
    Http,
    /// The management API's test endpoint, acting as a correctly authenticated sender; the
    /// invocation and task are marked `test`, and it claims no delivery id.
    TestEndpoint,
    /// The management API's replay of a logged request, acting as a correctly authenticated
    /// sender: it claims no delivery id, its invocation names the original (`replay_of`), and
    /// it is marked `test` only when the original was.
    Replay { of: InvocationId, test: bool },
}

impl Sender {
    /// Whether the invocation and task are marked `test`.
    const fn test(self) -> bool {
        match self {
            Self::Http => false,
            Self::TestEndpoint => true,
            Self::Replay { test, .. } => test,
        }
    }

    /// Whether the management API sends it: authenticated already, from no network address,
    /// and never a sender's retry, so it claims no delivery id.
    const fn internal(self) -> bool {
        !matches!(self, Self::Http)
    }

    /// The invocation a replay sends again.
    const fn replay_of(self) -> Option<InvocationId> {
        match self {
            Self::Replay { of, .. } => Some(of),
            Self::Http | Self::TestEndpoint => None,
        }
    }
}

/// What ingest reads from a request before its body, besides its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestHead<'a> {
    /// The `{webhook_id}` path segment, unparsed.
    pub webhook_id: &'a str,
    pub source_ip: Option<IpAddr>,
    pub sender: Sender,
}

/// Where authentication stands after the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authentication {
    Decided(Authenticity),
    /// The source signs the body: verified once it is read.
    AwaitBody,
}

/// A request that passed every check on its head; hand it to [`Ingest::finish`] with the body.
#[derive(Debug, Clone)]
pub struct Admission {
    route: Arc<IngestRoute>,
    received_at: Timestamp,
    source_ip: Option<IpAddr>,
    authentication: Authentication,
    sender: Sender,
    rate: RateStatus,
}

/// Who sent a request to which webhook, and when: what a coalesced log entry is counted under.
#[derive(Debug, Clone, Copy)]
struct Sent<'r> {
    route: &'r IngestRoute,
    source_ip: Option<IpAddr>,
    at: Timestamp,
    test: bool,
}

impl Admission {
    fn sent(&self) -> Sent<'_> {
        Sent {
            route: &self.route,
            source_ip: self.source_ip,
            at: self.received_at,
            test: self.sender.test(),
        }
    }

    /// The rate-limit status to report on the answer.
    pub const fn rate(&self) -> RateStatus {
        self.rate
    }

    /// Whether the body must be read before authentication is decided.
    pub const fn awaits_body_signature(&self) -> bool {
        matches!(self.authentication, Authentication::AwaitBody)
    }
}

/// The body as the adapter read it, within the body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRead<'a> {
    /// The whole body.
    Complete(&'a [u8]),
    /// The body is longer than [`IngestConfig::body_limit`]; the adapter stopped reading.
    TooLarge,
    /// The body broke off before its end (the connection failed, or its framing was wrong).
    Broken,
}

/// The request's body as [`Ingest::finish`] receives it.
#[derive(Debug, Clone, Copy)]
pub struct IngestBody<'a> {
    /// The `Content-Type` header's value.
    pub content_type: Option<&'a [u8]>,
    pub body: BodyRead<'a>,
}

/// Why ingest refused a request. Each has one HTTP status and one stable problem `code`.
#[derive(Debug, thiserror::Error)]
pub enum IngestRejection {
    #[error("no webhook has this id")]
    WebhookNotFound,
    #[error("this webhook was deleted")]
    WebhookDeleted,
    #[error("this webhook is disabled")]
    WebhookDisabled,
    #[error("this webhook does not accept requests from this address")]
    SourceNotAllowed,
    #[error("the {} rate limit is exhausted", scope.as_str())]
    RateLimited {
        scope: RateScope,
        retry_after: Duration,
        status: RateStatus,
    },
    #[error("the webhook's secret is missing from the request or wrong")]
    InvalidSecret,
    #[error("the body's signature is missing or does not match the webhook's secret")]
    InvalidSignature,
    #[error("the signature's timestamp is more than 300 seconds away from now")]
    SignatureExpired,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read to its end")]
    BodyUnreadable,
    #[error("the body must be sent as {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error(transparent)]
    InvalidPayload(InvalidPayload),
    #[error("the event could not be stored; nothing was accepted, send it again later")]
    StoreUnavailable(#[source] StoreError),
    /// The store was lost during the commit and did not come back before the deadline: the
    /// event may have been accepted, and a retry may make a duplicate.
    #[error("the store was lost during the commit; the event may have been accepted")]
    OutcomeUnknown(#[source] StoreError),
    /// The store answered with something that should not happen (a corrupt row, a secret
    /// that cannot be unsealed): retrying will not help.
    #[error("the event could not be processed: the service failed")]
    Internal(#[source] StoreError),
}

impl IngestRejection {
    /// The rejection for a store error: an internal one (500) when the store failed in a way
    /// retrying cannot mend, outcome unknown (503) when a commit may or may not have happened,
    /// else unavailable (503).
    pub fn store(error: StoreError) -> Self {
        match error {
            StoreError::Internal(_) => Self::Internal(error),
            StoreError::OutcomeUnknown(_) => Self::OutcomeUnknown(error),
            StoreError::NotFound | StoreError::Conflict(_) | StoreError::Unavailable(_) => {
                Self::StoreUnavailable(error)
            }
        }
    }

    /// The HTTP status of the design's ingest table.
    pub const fn http_status(&self) -> u16 {
        self.table_row().0
    }

    /// The stable problem `code` of the design's ingest table.
    pub const fn code(&self) -> &'static str {
        self.table_row().1
    }

    /// The problem's title (the same for every occurrence of a code).
    pub const fn title(&self) -> &'static str {
        self.table_row().2
    }

    /// The rejection's row of the design's ingest table: HTTP status, problem `code` and
    /// title, side by side so that they cannot disagree.
    const fn table_row(&self) -> (u16, &'static str, &'static str) {
        match self {
            Self::WebhookNotFound => (404, "webhook_not_found", "Webhook not found"),
            Self::WebhookDeleted => (410, "webhook_deleted", "Webhook deleted"),
            Self::WebhookDisabled => (403, "webhook_disabled", "Webhook disabled"),
            Self::SourceNotAllowed => (403, "source_not_allowed", "Source not allowed"),
            Self::RateLimited { .. } => (429, "rate_limited", "Rate limited"),
            Self::InvalidSecret => (401, "invalid_secret", "Invalid secret"),
            Self::InvalidSignature => (401, "invalid_signature", "Invalid signature"),
            Self::SignatureExpired => (401, "signature_expired", "Signature expired"),
            Self::PayloadTooLarge { .. } => (413, "payload_too_large", "Payload too large"),
            Self::UnsupportedMediaType { .. } => {
                (415, "unsupported_media_type", "Unsupported media type")
            }
            Self::BodyUnreadable | Self::InvalidPayload(_) => {
                (400, "invalid_payload", "Invalid payload")
            }
            Self::StoreUnavailable(_) => (503, "store_unavailable", "Store unavailable"),
            Self::OutcomeUnknown(_) => (503, "outcome_unknown", "Outcome unknown"),
            Self::Internal(_) => (500, "internal_error", "Internal error"),
        }
    }

    /// The problem's detail, as the sender reads it: what is wrong and what to do. Never the
    /// cause of a store failure.
    pub fn detail(&self) -> String {
        match self {
            Self::WebhookNotFound => "no webhook has this id".to_owned(),
            Self::WebhookDeleted => "this webhook was deleted and accepts no more events".to_owned(),
            Self::WebhookDisabled => {
                "this webhook is disabled; its owner can enable it again".to_owned()
            }
            Self::RateLimited {
                scope,
                retry_after,
                status,
            } => format!(
                "the {} rate limit of {} requests per minute is exhausted; retry after {} s",
                scope.as_str(),
                status.limit,
                crate::rules::whole_seconds_up(*retry_after)
            ),
            Self::InvalidSecret => "the header carrying this webhook's secret (X-Webhook-Secret, or the one its source uses: X-Gitlab-Token, Authorization, a configured header) is missing or does not match".to_owned(),
            Self::InvalidSignature => "the body's signature header is missing, malformed, or does not match this webhook's secret".to_owned(),
            Self::SignatureExpired => "the signature is right but its timestamp is more than 300 seconds from now; a replayed or delayed request is refused".to_owned(),
            Self::SourceNotAllowed => {
                "this webhook accepts requests only from the networks its owner listed".to_owned()
            }
            Self::PayloadTooLarge { limit } => {
                format!("the body is larger than the limit of {limit} bytes")
            }
            Self::BodyUnreadable => "the request body could not be read".to_owned(),
            Self::UnsupportedMediaType { expected } => {
                format!("the body must be sent with Content-Type: {expected}")
            }
            Self::InvalidPayload(e) => e.to_string(),
            Self::StoreUnavailable(_) => {
                "the event could not be stored; nothing was accepted, send it again later".to_owned()
            }
            Self::OutcomeUnknown(_) => "the store was lost while the event was committed: it may have been accepted, and sending it again may make a duplicate".to_owned(),
            Self::Internal(_) => "the service failed to process this request; its operator has the details in the log".to_owned(),
        }
    }

    /// The problem a sender is answered with, as the invocation log records it.
    pub fn problem(&self) -> AnsweredProblem {
        AnsweredProblem {
            status: self.http_status(),
            code: self.code().to_owned(),
            title: self.title().to_owned(),
            detail: self.detail(),
        }
    }

    /// The rejection of an authentication failure, and the reason its repeats are counted
    /// under.
    const fn of_auth(failure: AuthFailure) -> (Self, CoalescedReason) {
        match failure {
            AuthFailure::InvalidSecret => (Self::InvalidSecret, CoalescedReason::InvalidSecret),
            AuthFailure::InvalidSignature => {
                (Self::InvalidSignature, CoalescedReason::InvalidSignature)
            }
            AuthFailure::SignatureExpired => {
                (Self::SignatureExpired, CoalescedReason::SignatureExpired)
            }
        }
    }
}

/// The result of one ingest request.
#[derive(Debug)]
pub enum IngestOutcome {
    /// 202: the invocation and its task are committed.
    Accepted {
        invocation_id: InvocationId,
        task_id: TaskId,
        rate: RateStatus,
    },
    /// 200: logged, but the event type is not subscribed.
    Ignored {
        invocation_id: InvocationId,
        rate: RateStatus,
    },
    /// 200: the delivery id was accepted (or ignored) before, within the dedup window; these
    /// are the first request's ids. No task was made.
    Duplicate {
        invocation_id: InvocationId,
        task_id: Option<TaskId>,
        rate: RateStatus,
    },
    /// 200: the source's handshake or ping, logged as ignored; no task. Slack's challenge is
    /// to be answered.
    Handshake {
        invocation_id: InvocationId,
        handshake: Handshake,
        rate: RateStatus,
    },
    /// Refused. `unlogged` holds the store's error when the rejection should have been logged
    /// but could not be; the answer is the rejection all the same.
    Rejected {
        rejection: IngestRejection,
        unlogged: Option<StoreError>,
    },
}

impl IngestOutcome {
    fn rejected(rejection: IngestRejection) -> Self {
        Self::Rejected {
            rejection,
            unlogged: None,
        }
    }
}

/// Whether a limiter call charges the quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Peek,
    Charge,
}

/// The ingest use case over a node's [`Adapters`].
pub struct Ingest<A: Adapters> {
    pub resolver: A::Resolver,
    pub limiter: A::Limiter,
    pub store: A::Store,
    pub rejections: A::Rejections,
    pub clock: A::Clock,
    pub entropy: A::Entropy,
    /// Told when a task is committed, so delivery starts at once.
    pub notifier: A::Notifier,
    /// Verifies body signatures.
    pub mac: A::Mac,
    /// Renders instruction templates.
    pub templates: A::Templates,
    pub config: IngestConfig,
}

impl<A: Adapters> std::fmt::Debug for Ingest<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<A: Adapters> Ingest<A> {
    /// The largest body accepted, in bytes.
    pub const fn body_limit(&self) -> usize {
        self.config.body_limit
    }

    /// The head's steps: the webhook exists, is not deleted, is not disabled, the source IP is
    /// allowed, neither quota is already exhausted (a peek: nothing is charged), and a secret
    /// presented in a header matches. Deleted, disabled, disallowed, rate-limited and
    /// unauthenticated requests are counted into coalesced log entries, so a flood of them
    /// costs no write each.
    pub async fn begin(
        &self,
        head: IngestHead<'_>,
        headers: &impl RequestHeaders,
    ) -> Result<Admission, IngestOutcome> {
        let not_found = || IngestOutcome::rejected(IngestRejection::WebhookNotFound);
        // Only the canonical form: one URL is one webhook for every cache, balancer and log.
        let webhook_id = WebhookId::parse_canonical(head.webhook_id).map_err(|_| not_found())?;
        let route = match self.resolver.resolve(webhook_id).await {
            Ok(Some(route)) => route,
            Ok(None) => return Err(not_found()),
            Err(e) => {
                return Err(IngestOutcome::rejected(IngestRejection::store(e)));
            }
        };
        let now = self.clock.now();
        let internal = head.sender.internal();
        let sent = Sent {
            route: &route,
            source_ip: head.source_ip,
            at: now,
            test: head.sender.test(),
        };
        // Refused before the body is read: counted, with the first request's headers.
        let refuse =
            |reason, rejection| self.refuse_counted(sent, reason, rejection, headers, None);
        match route.status {
            WebhookStatus::Active => {}
            WebhookStatus::Deleted => {
                return Err(refuse(
                    CoalescedReason::Deleted,
                    IngestRejection::WebhookDeleted,
                ));
            }
            WebhookStatus::Disabled => {
                return Err(refuse(
                    CoalescedReason::Disabled,
                    IngestRejection::WebhookDisabled,
                ));
            }
        }
        if !internal && !route.allowed_source_ips.admits(head.source_ip) {
            return Err(refuse(
                CoalescedReason::SourceNotAllowed,
                IngestRejection::SourceNotAllowed,
            ));
        }
        // A peek: an exhausted quota is refused before anything else, but nothing is charged
        // until the request is known to be authentic.
        let rate = match self.limit(&route, now, Limit::Peek).await {
            Ok(rate) => rate,
            Err(rejection @ IngestRejection::RateLimited { .. }) => {
                return Err(refuse(CoalescedReason::RateLimited, rejection));
            }
            Err(rejection) => return Err(IngestOutcome::rejected(rejection)),
        };
        let authentication = if internal {
            Authentication::Decided(if route.secret.is_some() {
                Authenticity::Verified
            } else {
                Authenticity::Unverified
            })
        } else {
            match route
                .source
                .authenticate_head(headers, &route.secrets_at(now))
            {
                Ok(HeadCheck::Done(authenticity)) => Authentication::Decided(authenticity),
                Ok(HeadCheck::AwaitBody) => Authentication::AwaitBody,
                Err(failure) => {
                    // Counted, not written one by one: a flood of wrong secrets costs no write.
                    let (rejection, reason) = IngestRejection::of_auth(failure);
                    return Err(refuse(reason, rejection));
                }
            }
        };
        Ok(Admission {
            route,
            received_at: now,
            source_ip: head.source_ip,
            authentication,
            sender: head.sender,
            rate,
        })
    }

    /// Asks the limiter about `route`'s quotas at `now`: a peek charges nothing, a charge takes
    /// one slot of each. A refusal is the rejection to answer.
    async fn limit(
        &self,
        route: &IngestRoute,
        now: Timestamp,
        how: Limit,
    ) -> Result<RateStatus, IngestRejection> {
        let request = RateRequest {
            webhook_id: route.webhook_id,
            webhook_quota: route.webhook_quota,
            organization_id: route.organization_id,
            organization_quota: route.organization_quota,
            now,
        };
        let decision = match how {
            Limit::Peek => self.limiter.peek(request).await,
            Limit::Charge => self.limiter.acquire(request).await,
        }
        .map_err(|e| IngestRejection::StoreUnavailable(StoreError::Unavailable(Box::new(e))))?;
        match decision {
            RateDecision::Admitted(status) => Ok(status),
            RateDecision::Denied {
                scope,
                retry_after,
                status,
            } => Err(IngestRejection::RateLimited {
                scope,
                retry_after,
                status,
            }),
        }
    }

    /// The body's steps: size (or a body that broke off), the body signature, the charge to
    /// both quotas, media type, JSON object, the source's handshake, the delivery id, the
    /// event type, and the commit of the invocation with its task.
    pub async fn finish(
        &self,
        admission: Admission,
        headers: &impl RequestHeaders,
        request: IngestBody<'_>,
    ) -> IngestOutcome {
        let (body, admission) = match self
            .authenticate_and_charge(admission, headers, request.body)
            .await
        {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        let (payload, fields) = match self
            .parse_payload(&admission, headers, request.content_type, body)
            .await
        {
            Ok(parsed) => parsed,
            Err(outcome) => return outcome,
        };
        let extraction = self.read_event(&admission, headers, &payload, fields);
        let invocation = Invocation {
            payload: Some(payload.clone()),
            request: Some(request_record(&admission.route, headers).with_payload()),
            ..self.new_invocation(&admission)
        };
        match extraction {
            Extraction::Handshake(handshake) => {
                self.answer_handshake(invocation, handshake, admission.rate)
                    .await
            }
            Extraction::Event(event) => {
                self.commit_event(admission, invocation, payload, event)
                    .await
            }
        }
    }

    /// The media type and the JSON object: the body as the source posts it (forms turned into
    /// the JSON they carry), validated. A refusal is logged.
    async fn parse_payload(
        &self,
        admission: &Admission,
        headers: &impl RequestHeaders,
        content_type: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(Payload, PayloadFields), IngestOutcome> {
        let media = MediaType::of(content_type);
        let rejection = match admission.route.source.payload_json(media, body) {
            Ok(json) => match Payload::parse_object(&json) {
                Ok(parsed) => return Ok(parsed),
                Err(e) => IngestRejection::InvalidPayload(e),
            },
            Err(BodyRefused::UnsupportedMediaType { expected }) => {
                IngestRejection::UnsupportedMediaType { expected }
            }
            Err(BodyRefused::InvalidForm(reason)) => {
                IngestRejection::InvalidPayload(InvalidPayload::InvalidForm(reason))
            }
        };
        Err(self
            .reject_logged(admission, rejection, headers, Some(body))
            .await)
    }

    /// A handshake or ping: logged as ignored under its own event type, answered without a
    /// task.
    async fn answer_handshake(
        &self,
        mut invocation: Invocation,
        handshake: Handshake,
        rate: RateStatus,
    ) -> IngestOutcome {
        invocation.event_type = Some(handshake.event_type().to_owned());
        match self.store.record_invocation(&invocation, None).await {
            Ok(()) => IngestOutcome::Handshake {
                invocation_id: invocation.id,
                handshake,
                rate,
            },
            Err(e) => IngestOutcome::rejected(IngestRejection::store(e)),
        }
    }

    /// An event: its task when its type is subscribed, committed with the invocation, and its
    /// delivery id claimed in the same transaction; a repeat of a claimed id is a duplicate.
    async fn commit_event(
        &self,
        admission: Admission,
        mut invocation: Invocation,
        payload: Payload,
        event: EventFields,
    ) -> IngestOutcome {
        let EventFields {
            event_type,
            delivery_id,
            instruction,
            instruction_origin: _,
            template_fallback,
        } = event;
        invocation.event_type.clone_from(&event_type);
        invocation.delivery_id.clone_from(&delivery_id);
        invocation.instruction_fallback = template_fallback.map(|f| f.to_string());
        let event_types = &admission.route.event_types;
        let task = if event_types.selects(event_type.as_deref()) {
            Some(self.new_task(&admission, &mut invocation, payload, instruction))
        } else {
            // Ignored: say what it was matched against.
            if let Some(record) = &mut invocation.request {
                record.subscriptions = Some(
                    event_types
                        .patterns()
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                );
            }
            None
        };
        let rate = admission.rate;
        // Only outside senders claim their delivery ids: a test or a replay is never a
        // sender's retry, so deduplication never refuses it.
        let claim = delivery_id
            .filter(|_| !admission.sender.internal())
            .map(|delivery_id| DeliveryClaim {
                delivery_id,
                window_start: admission.received_at.minus(self.config.dedup_window),
            });
        let recorded = match &claim {
            Some(claim) => {
                self.store
                    .record_claimed(&invocation, task.as_ref(), claim)
                    .await
            }
            None => self
                .store
                .record_invocation(&invocation, task.as_ref())
                .await
                .map(|()| ClaimOutcome::Recorded),
        };
        match recorded {
            Ok(ClaimOutcome::Recorded) => match task {
                Some(task) => {
                    self.notifier.task_queued();
                    IngestOutcome::Accepted {
                        invocation_id: invocation.id,
                        task_id: task.id,
                        rate,
                    }
                }
                None => IngestOutcome::Ignored {
                    invocation_id: invocation.id,
                    rate,
                },
            },
            Ok(ClaimOutcome::Duplicate {
                invocation_id,
                task_id,
            }) => {
                // Coalesced: the entry keeps the first repeat's record, with its body as text.
                let Invocation {
                    request, payload, ..
                } = invocation;
                self.count(
                    admission.sent(),
                    CoalescedReason::Duplicate,
                    Some(invocation_id),
                    || {
                        let record = request.unwrap_or_default();
                        match &payload {
                            Some(payload) => record.with_body_text(payload.as_str().as_bytes()),
                            None => record,
                        }
                    },
                );
                IngestOutcome::Duplicate {
                    invocation_id,
                    task_id,
                    rate,
                }
            }
            Err(e) => IngestOutcome::rejected(IngestRejection::store(e)),
        }
    }

    /// The invocation `admission` logs, with a new id: ignored, without a payload, until the
    /// request says more.
    fn new_invocation(&self, admission: &Admission) -> Invocation {
        Invocation {
            id: InvocationId::from_uuid(time_ordered_id(&self.entropy, admission.received_at)),
            organization_id: admission.route.organization_id,
            webhook_id: admission.route.webhook_id,
            received_at: admission.received_at,
            source_ip: admission.source_ip,
            event_type: None,
            payload: None,
            outcome: InvocationOutcome::Ignored,
            http_status: 200,
            error_code: None,
            task_id: None,
            repeat_count: 1,
            test: admission.sender.test(),
            target_response: None,
            delivery_id: None,
            duplicate_of: None,
            instruction_fallback: None,
            request: None,
            replay_of: admission.sender.replay_of(),
        }
    }

    /// The queued task of `invocation`, which becomes accepted and names it.
    fn new_task(
        &self,
        admission: &Admission,
        invocation: &mut Invocation,
        payload: Payload,
        instruction: Option<String>,
    ) -> Task {
        let received_at = admission.received_at;
        let task_id = TaskId::from_uuid(time_ordered_id(&self.entropy, received_at));
        invocation.outcome = InvocationOutcome::Accepted;
        invocation.http_status = 202;
        invocation.task_id = Some(task_id);
        let route = &admission.route;
        Task::queued(
            task_id,
            invocation,
            route.target_id,
            instruction,
            payload,
            matches!(
                admission.authentication,
                Authentication::Decided(Authenticity::Verified)
            ),
            route.source.source(),
        )
    }

    /// What the payload says, as the webhook's source reads it. A plain generic webhook (no
    /// overrides, no template) reads only the fields [`Payload::parse_object`] already found,
    /// so the seed's path parses nothing twice.
    fn read_event(
        &self,
        admission: &Admission,
        headers: &impl RequestHeaders,
        payload: &Payload,
        fields: PayloadFields,
    ) -> Extraction {
        let source = &admission.route.source;
        if source.is_plain_generic() {
            let header = |name| {
                headers
                    .get(name)
                    .and_then(|value| std::str::from_utf8(value).ok())
                    .map(str::trim)
                    .filter(|value| !value.is_empty())
            };
            let instruction_origin = if fields.message.is_some() {
                InstructionOrigin::Message
            } else {
                InstructionOrigin::Absent
            };
            return Extraction::Event(EventFields {
                event_type: header("x-event-type")
                    .map(str::to_owned)
                    .or(fields.event_type),
                delivery_id: header("idempotency-key")
                    .filter(|id| id.len() <= MAX_DELIVERY_ID_BYTES)
                    .map(str::to_owned),
                instruction: fields.message.map(crate::rules::cap_instruction),
                instruction_origin,
                template_fallback: None,
            });
        }
        // The payload was validated as a JSON object just before; parsing it again cannot fail.
        let value = serde_json::from_str(payload.as_str()).unwrap_or_default();
        source.extract(headers, &value, &self.templates)
    }

    /// The body is whole and within the limit, and (for a source that signs the body) its
    /// signature is verified: the request is charged to both quotas. A refusal is logged (an
    /// oversized or broken body) or counted (a bad signature, a quota exhausted meanwhile).
    async fn authenticate_and_charge<'b>(
        &self,
        admission: Admission,
        headers: &impl RequestHeaders,
        body: BodyRead<'b>,
    ) -> Result<(&'b [u8], Admission), IngestOutcome> {
        let body = match body {
            BodyRead::Complete(body) if body.len() <= self.config.body_limit => body,
            BodyRead::Complete(_) | BodyRead::TooLarge => {
                let limit = self.config.body_limit;
                let rejection = IngestRejection::PayloadTooLarge { limit };
                return Err(self
                    .reject_logged(&admission, rejection, headers, None)
                    .await);
            }
            BodyRead::Broken => {
                let rejection = IngestRejection::BodyUnreadable;
                return Err(self
                    .reject_logged(&admission, rejection, headers, None)
                    .await);
            }
        };
        let route = &admission.route;
        let authentication = match admission.authentication {
            Authentication::Decided(authenticity) => Authentication::Decided(authenticity),
            Authentication::AwaitBody => {
                let secrets: Vec<&Secret> = route.secrets_at(admission.received_at);
                match route.source.verify_body(
                    headers,
                    body,
                    &secrets,
                    admission.received_at,
                    &self.mac,
                ) {
                    Ok(authenticity) => Authentication::Decided(authenticity),
                    Err(failure) => {
                        let (rejection, reason) = IngestRejection::of_auth(failure);
                        let sent = admission.sent();
                        return Err(self.refuse_counted(
                            sent,
                            reason,
                            rejection,
                            headers,
                            Some(body),
                        ));
                    }
                }
            }
        };
        // The request is authentic and whole: now it is charged to the quotas.
        let rate = match self
            .limit(route, admission.received_at, Limit::Charge)
            .await
        {
            Ok(rate) => rate,
            Err(rejection @ IngestRejection::RateLimited { .. }) => {
                let sent = admission.sent();
                return Err(self.refuse_counted(
                    sent,
                    CoalescedReason::RateLimited,
                    rejection,
                    headers,
                    Some(body),
                ));
            }
            Err(rejection) => return Err(IngestOutcome::rejected(rejection)),
        };
        let admission = Admission {
            authentication,
            rate,
            ..admission
        };
        Ok((body, admission))
    }

    /// Counts a request into the coalesced log entry of its webhook and `reason`; `record`
    /// makes the request's record, called only when the request starts an entry.
    fn count(
        &self,
        sent: Sent<'_>,
        reason: CoalescedReason,
        duplicate_of: Option<InvocationId>,
        record: impl FnOnce() -> RequestRecord,
    ) {
        let rejection = CoalescedRejection {
            webhook_id: sent.route.webhook_id,
            organization_id: sent.route.organization_id,
            reason,
            source_ip: sent.source_ip,
            at: sent.at,
            test: sent.test,
            duplicate_of,
        };
        self.rejections.count(rejection, record);
    }

    /// Refuses a request with `rejection`, counted under `reason` rather than written one by
    /// one; the entry keeps the first request's record: its headers, `body` when it was read,
    /// and the problem answered.
    fn refuse_counted(
        &self,
        sent: Sent<'_>,
        reason: CoalescedReason,
        rejection: IngestRejection,
        headers: &impl RequestHeaders,
        body: Option<&[u8]>,
    ) -> IngestOutcome {
        self.count(sent, reason, None, || {
            refused_record(sent.route, headers, body, &rejection)
        });
        IngestOutcome::rejected(rejection)
    }

    /// Logs a refused request, with its record: `body` is what was read of it (nothing for a
    /// body over the limit or broken off).
    async fn reject_logged(
        &self,
        admission: &Admission,
        rejection: IngestRejection,
        headers: &impl RequestHeaders,
        body: Option<&[u8]>,
    ) -> IngestOutcome {
        let invocation = Invocation {
            outcome: InvocationOutcome::Rejected,
            http_status: rejection.http_status(),
            error_code: Some(rejection.code().to_owned()),
            request: Some(refused_record(&admission.route, headers, body, &rejection)),
            ..self.new_invocation(admission)
        };
        let unlogged = self.store.record_invocation(&invocation, None).await.err();
        IngestOutcome::Rejected {
            rejection,
            unlogged,
        }
    }
}

/// The record of a request to `route`: its headers, with the header a generic webhook's
/// `verification` names for its secret redacted besides the credential headers.
fn request_record(route: &IngestRoute, headers: &impl RequestHeaders) -> RequestRecord {
    let secret_header = match route.source.verification() {
        Some(Verification::Header { header }) => Some(header.as_str()),
        Some(Verification::Hmac { .. } | Verification::Bearer | Verification::Basic) | None => None,
    };
    RequestRecord::of_headers(headers, secret_header)
}

/// The record of a refused request: its headers, `body` as text when it was read, and the
/// problem answered.
fn refused_record(
    route: &IngestRoute,
    headers: &impl RequestHeaders,
    body: Option<&[u8]>,
    rejection: &IngestRejection,
) -> RequestRecord {
    let record = request_record(route, headers);
    match body {
        Some(body) => record.with_body_text(body),
        None => record,
    }
    .with_problem(rejection.problem())
}
