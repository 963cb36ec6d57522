//! The ingest use case: `POST /api/webhooks/{id}`, step by step as the design's ingest table
//! orders it. Split in two so the HTTP adapter can refuse a request before reading its body:
//! [`Ingest::begin`] runs every step that needs only the request head (lookup, status, a peek
//! at the rate limits that charges nothing, secret), [`Ingest::finish`] the steps that need the
//! body (size, the charge to the quotas, media type, JSON, event type, commit). A request that
//! fails authentication therefore consumes no quota.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{
    CoalescedReason, CoalescedRejection, IngestRoute, InvalidPayload, Invocation, InvocationId,
    InvocationOutcome, Payload, RateRequest, Task, TaskId, TaskSource, TaskStatus, Timestamp,
    WebhookId, WebhookStatus,
};
use crate::ports::{
    Adapters, Clock as _, InvocationLog as _, Notifier as _, RateLimiter as _,
    RejectionCounter as _, StoreError, WebhookResolver as _,
};
use crate::rules::{RateDecision, RateScope, RateStatus};
use crate::service::time_ordered_id;

/// Settings of the ingest use case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConfig {
    /// Largest body accepted, in bytes.
    pub body_limit: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
        }
    }
}

/// Who is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender<'a> {
    /// An outside system, with the `X-Webhook-Secret` it presented, if any.
    Http { secret: Option<&'a [u8]> },
    /// The management API's test endpoint, acting as a correctly authenticated sender; the
    /// invocation and task are marked `test`.
    TestEndpoint,
}

/// What ingest reads from a request before its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestHead<'a> {
    /// The `{webhook_id}` path segment, unparsed.
    pub webhook_id: &'a str,
    pub source_ip: Option<IpAddr>,
    pub sender: Sender<'a>,
    /// The `X-Event-Type` header, which takes precedence over the payload's `event_type`.
    pub event_type: Option<&'a str>,
}

/// A request that passed every check on its head; hand it to [`Ingest::finish`] with the body.
#[derive(Debug, Clone)]
pub struct Admission {
    route: Arc<IngestRoute>,
    received_at: Timestamp,
    source_ip: Option<IpAddr>,
    verified: bool,
    test: bool,
    event_type: Option<String>,
    rate: RateStatus,
}

impl Admission {
    /// The rate-limit status to report on the answer.
    pub const fn rate(&self) -> RateStatus {
        self.rate
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

/// Why ingest refused a request. Each has one HTTP status and one stable problem `code`.
#[derive(Debug, thiserror::Error)]
pub enum IngestRejection {
    #[error("no webhook has this id")]
    WebhookNotFound,
    #[error("this webhook was deleted")]
    WebhookDeleted,
    #[error("this webhook is disabled")]
    WebhookDisabled,
    #[error("the {} rate limit is exhausted", scope.as_str())]
    RateLimited {
        scope: RateScope,
        retry_after: Duration,
        status: RateStatus,
    },
    #[error("the X-Webhook-Secret header is missing or wrong")]
    InvalidSecret,
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the body could not be read to its end")]
    BodyUnreadable,
    #[error("the body must be sent as application/json")]
    UnsupportedMediaType,
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
        match self {
            Self::WebhookNotFound => 404,
            Self::WebhookDeleted => 410,
            Self::WebhookDisabled => 403,
            Self::RateLimited { .. } => 429,
            Self::InvalidSecret => 401,
            Self::PayloadTooLarge { .. } => 413,
            Self::UnsupportedMediaType => 415,
            Self::BodyUnreadable | Self::InvalidPayload(_) => 400,
            Self::StoreUnavailable(_) | Self::OutcomeUnknown(_) => 503,
            Self::Internal(_) => 500,
        }
    }

    /// The stable problem `code` of the design's ingest table.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::WebhookNotFound => "webhook_not_found",
            Self::WebhookDeleted => "webhook_deleted",
            Self::WebhookDisabled => "webhook_disabled",
            Self::RateLimited { .. } => "rate_limited",
            Self::InvalidSecret => "invalid_secret",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BodyUnreadable | Self::InvalidPayload(_) => "invalid_payload",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::Internal(_) => "internal_error",
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

    /// The head's steps: the webhook exists, is not deleted, is not disabled, neither quota is
    /// already exhausted (a peek: nothing is charged), and the secret matches. Deleted,
    /// disabled, rate-limited and unauthenticated requests are counted into coalesced log
    /// entries, so a flood of them costs no write each.
    pub async fn begin(&self, head: IngestHead<'_>) -> Result<Admission, IngestOutcome> {
        let not_found = || IngestOutcome::rejected(IngestRejection::WebhookNotFound);
        let webhook_id: WebhookId = head.webhook_id.parse().map_err(|_| not_found())?;
        let route = match self.resolver.resolve(webhook_id).await {
            Ok(Some(route)) => route,
            Ok(None) => return Err(not_found()),
            Err(e) => {
                return Err(IngestOutcome::rejected(IngestRejection::store(e)));
            }
        };
        let now = self.clock.now();
        let test = matches!(head.sender, Sender::TestEndpoint);
        let count = |reason| self.count(&route, reason, head.source_ip, now, test);
        match route.status {
            WebhookStatus::Active => {}
            WebhookStatus::Deleted => {
                count(CoalescedReason::Deleted);
                return Err(IngestOutcome::rejected(IngestRejection::WebhookDeleted));
            }
            WebhookStatus::Disabled => {
                count(CoalescedReason::Disabled);
                return Err(IngestOutcome::rejected(IngestRejection::WebhookDisabled));
            }
        }
        // A peek: an exhausted quota is refused before anything else, but nothing is charged
        // until the request is known to be authentic.
        let rate = match self.limit(&route, now, Limit::Peek).await {
            Ok(rate) => rate,
            Err(rejection) => {
                if let IngestRejection::RateLimited { .. } = rejection {
                    count(CoalescedReason::RateLimited);
                }
                return Err(IngestOutcome::rejected(rejection));
            }
        };
        let verified = match (head.sender, &route.secret) {
            (Sender::TestEndpoint, secret) => secret.is_some(),
            (Sender::Http { .. }, None) => false,
            (
                Sender::Http {
                    secret: Some(presented),
                },
                Some(secret),
            ) if secret.matches(presented) => true,
            (Sender::Http { .. }, Some(_)) => {
                // Counted, not written one by one: a flood of wrong secrets costs no write.
                count(CoalescedReason::InvalidSecret);
                return Err(IngestOutcome::rejected(IngestRejection::InvalidSecret));
            }
        };
        Ok(Admission {
            route,
            received_at: now,
            source_ip: head.source_ip,
            verified,
            test,
            event_type: head.event_type.filter(|t| !t.is_empty()).map(str::to_owned),
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

    /// The body's steps: size (or a body that broke off), the charge to both quotas, media
    /// type, JSON object, event type, and the commit of the invocation with its task.
    pub async fn finish(
        &self,
        admission: Admission,
        content_type_is_json: bool,
        body: BodyRead<'_>,
    ) -> IngestOutcome {
        let (body, admission) = match self.charge(admission, body).await {
            Ok(admitted) => admitted,
            Err(outcome) => return outcome,
        };
        if !content_type_is_json {
            let rejection = IngestRejection::UnsupportedMediaType;
            return self.reject_logged(&admission, rejection).await;
        }
        let (payload, fields) = match Payload::parse_object(body) {
            Ok(parsed) => parsed,
            Err(e) => {
                let rejection = IngestRejection::InvalidPayload(e);
                return self.reject_logged(&admission, rejection).await;
            }
        };
        let Admission {
            route,
            received_at,
            source_ip,
            verified,
            test,
            event_type,
            rate,
        } = admission;
        let event_type = event_type.or(fields.event_type);
        let invocation_id = InvocationId::from_uuid(time_ordered_id(&self.entropy, received_at));
        let mut invocation = Invocation {
            id: invocation_id,
            organization_id: route.organization_id,
            webhook_id: route.webhook_id,
            received_at,
            source_ip,
            event_type: event_type.clone(),
            payload: Some(payload.clone()),
            outcome: InvocationOutcome::Ignored,
            http_status: 200,
            error_code: None,
            task_id: None,
            repeat_count: 1,
            test,
            target_response: None,
        };
        if !route.event_types.selects(event_type.as_deref()) {
            return match self.store.record_invocation(&invocation, None).await {
                Ok(()) => IngestOutcome::Ignored {
                    invocation_id,
                    rate,
                },
                Err(e) => IngestOutcome::rejected(IngestRejection::store(e)),
            };
        }
        let task_id = TaskId::from_uuid(time_ordered_id(&self.entropy, received_at));
        invocation.outcome = InvocationOutcome::Accepted;
        invocation.http_status = 202;
        invocation.task_id = Some(task_id);
        let task = Task {
            id: task_id,
            organization_id: route.organization_id,
            target_id: route.target_id,
            webhook_id: route.webhook_id,
            invocation_id,
            instruction: fields.message,
            context: payload,
            event_type,
            status: TaskStatus::Queued,
            test,
            source: TaskSource {
                verified,
                source_ip,
                received_at,
            },
            attempts: 0,
            attempts_before_round: 0,
            next_attempt_at: received_at,
            last_error: None,
            created_at: received_at,
            updated_at: received_at,
        };
        match self.store.record_invocation(&invocation, Some(&task)).await {
            Ok(()) => {
                self.notifier.task_queued();
                IngestOutcome::Accepted {
                    invocation_id,
                    task_id,
                    rate,
                }
            }
            Err(e) => IngestOutcome::rejected(IngestRejection::store(e)),
        }
    }

    /// The body is whole and within the limit: the request is charged to both quotas. A
    /// refusal is logged (an oversized or broken body) or counted (a quota exhausted meanwhile).
    async fn charge<'b>(
        &self,
        admission: Admission,
        body: BodyRead<'b>,
    ) -> Result<(&'b [u8], Admission), IngestOutcome> {
        let body = match body {
            BodyRead::Complete(body) if body.len() <= self.config.body_limit => body,
            BodyRead::Complete(_) | BodyRead::TooLarge => {
                let limit = self.config.body_limit;
                let rejection = IngestRejection::PayloadTooLarge { limit };
                return Err(self.reject_logged(&admission, rejection).await);
            }
            BodyRead::Broken => {
                let rejection = IngestRejection::BodyUnreadable;
                return Err(self.reject_logged(&admission, rejection).await);
            }
        };
        // The request is authentic and whole: now it is charged to the quotas.
        let rate = match self
            .limit(&admission.route, admission.received_at, Limit::Charge)
            .await
        {
            Ok(rate) => rate,
            Err(rejection) => {
                if let IngestRejection::RateLimited { .. } = rejection {
                    self.count(
                        &admission.route,
                        CoalescedReason::RateLimited,
                        admission.source_ip,
                        admission.received_at,
                        admission.test,
                    );
                }
                return Err(IngestOutcome::rejected(rejection));
            }
        };
        let admission = Admission { rate, ..admission };
        Ok((body, admission))
    }

    fn count(
        &self,
        route: &IngestRoute,
        reason: CoalescedReason,
        source_ip: Option<IpAddr>,
        at: Timestamp,
        test: bool,
    ) {
        self.rejections.count(CoalescedRejection {
            webhook_id: route.webhook_id,
            organization_id: route.organization_id,
            reason,
            source_ip,
            at,
            test,
        });
    }

    async fn reject_logged(
        &self,
        admission: &Admission,
        rejection: IngestRejection,
    ) -> IngestOutcome {
        let invocation = Invocation {
            id: InvocationId::from_uuid(time_ordered_id(&self.entropy, admission.received_at)),
            organization_id: admission.route.organization_id,
            webhook_id: admission.route.webhook_id,
            received_at: admission.received_at,
            source_ip: admission.source_ip,
            event_type: admission.event_type.clone(),
            payload: None,
            outcome: InvocationOutcome::Rejected,
            http_status: rejection.http_status(),
            error_code: Some(rejection.code().to_owned()),
            task_id: None,
            repeat_count: 1,
            test: admission.test,
            target_response: None,
        };
        let unlogged = self.store.record_invocation(&invocation, None).await.err();
        IngestOutcome::Rejected {
            rejection,
            unlogged,
        }
    }
}
