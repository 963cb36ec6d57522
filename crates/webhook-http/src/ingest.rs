//! `POST /api/webhooks/{webhook_id}`: reads the request head, runs `Ingest::begin`, streams
//! the body within the limit, runs `Ingest::finish` and maps the outcome to an answer.

use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError as _, web};
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::Serialize;
use utoipa::ToSchema;
use webhook_domain::model::{InvocationId, RequestHeaders, TaskId};
use webhook_domain::ports::Adapters;
use webhook_domain::rules::{Handshake, RateStatus};
use webhook_domain::service::{
    BodyRead, IngestBody, IngestHead, IngestOutcome, IngestRejection, Sender,
};

use crate::AppState;
use crate::problem::{ErrorChain, Problem, log_server_error, rate_headers};

/// A request's headers as the domain's source rules read them, without a copy.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a>(pub &'a HeaderMap);

impl RequestHeaders for Headers<'_> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(header::HeaderValue::as_bytes)
    }

    fn each(&self, visit: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in self.0 {
            visit(name.as_str(), value.as_bytes());
        }
    }
}

/// 202: the event is stored, with its task.
#[derive(Serialize, ToSchema)]
#[schema(as = IngestAccepted)]
struct AcceptedBody {
    /// `accepted`.
    #[schema(value_type = String, pattern = "^accepted$", example = "accepted")]
    status: &'static str,
    #[schema(value_type = uuid::Uuid)]
    invocation_id: InvocationId,
    #[schema(value_type = uuid::Uuid)]
    task_id: TaskId,
}

impl AcceptedBody {
    /// An accepted event's answer, with its invocation and task.
    fn new(invocation_id: InvocationId, task_id: TaskId) -> Self {
        Self {
            status: "accepted",
            invocation_id,
            task_id,
        }
    }
}

/// 200: the event is logged but makes no task: the webhook does not subscribe to its type.
#[derive(Serialize, ToSchema)]
#[schema(as = IngestIgnored)]
struct IgnoredBody {
    /// `ignored`.
    #[schema(value_type = String, pattern = "^ignored$", example = "ignored")]
    status: &'static str,
    #[schema(value_type = uuid::Uuid)]
    invocation_id: InvocationId,
}

/// 200: a repeat of a delivery id already accepted (or ignored) on this webhook within the
/// dedup window; no task was made. The ids are the first request's.
#[derive(Serialize, ToSchema)]
#[schema(as = IngestDuplicate)]
struct DuplicateBody {
    /// `duplicate`.
    #[schema(value_type = String, pattern = "^duplicate$", example = "duplicate")]
    status: &'static str,
    #[schema(value_type = uuid::Uuid)]
    invocation_id: InvocationId,
    /// Null when the first request was ignored.
    #[schema(value_type = Option<uuid::Uuid>)]
    task_id: Option<TaskId>,
}

/// 200: the sender's ping (GitHub `ping`, `PagerDuty` `pagey.ping`), logged; no task.
#[derive(Serialize, ToSchema)]
#[schema(as = IngestHandshake)]
struct HandshakeBody {
    /// `handshake`.
    #[schema(value_type = String, pattern = "^handshake$", example = "handshake")]
    status: &'static str,
    #[schema(value_type = uuid::Uuid)]
    invocation_id: InvocationId,
}

/// 200: the request was logged and made no task: ignored, a duplicate, or a handshake.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = IngestNoTask)]
enum NoTaskBody {
    Ignored(IgnoredBody),
    Duplicate(DuplicateBody),
    Handshake(HandshakeBody),
}

impl NoTaskBody {
    /// An ignored event's answer.
    fn ignored(invocation_id: InvocationId) -> Self {
        Self::Ignored(IgnoredBody {
            status: "ignored",
            invocation_id,
        })
    }

    /// A repeat's answer, with the first request's ids.
    fn duplicate(invocation_id: InvocationId, task_id: Option<TaskId>) -> Self {
        Self::Duplicate(DuplicateBody {
            status: "duplicate",
            invocation_id,
            task_id,
        })
    }

    /// A ping's answer.
    fn handshake(invocation_id: InvocationId) -> Self {
        Self::Handshake(HandshakeBody {
            status: "handshake",
            invocation_id,
        })
    }

    /// The answer's `status`, which is also the outcome's label in the metrics.
    fn status(&self) -> &'static str {
        match self {
            Self::Ignored(body) => body.status,
            Self::Duplicate(body) => body.status,
            Self::Handshake(body) => body.status,
        }
    }
}

/// An RFC 9457 problem as ingest and the operations endpoints answer it.
#[derive(Debug, ToSchema)]
pub struct IngestProblem {
    /// `urn:webhookd:problem:{code}`.
    #[schema(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code: `webhook_not_found`, `webhook_deleted`,
    /// `webhook_disabled`, `source_not_allowed`, `rate_limited`, `invalid_secret`,
    /// `invalid_signature`, `signature_expired`, `payload_too_large`, `request_timeout`,
    /// `unsupported_media_type`, `invalid_payload`, `store_unavailable`, `outcome_unknown`,
    /// `internal_error`, `not_found`, `method_not_allowed`, `request_header_too_large`.
    pub code: String,
    /// For `rate_limited`: the quota that is exhausted, `webhook` or `organization`.
    #[schema(value_type = Option<String>, pattern = "^(webhook|organization)$")]
    pub scope: Option<String>,
}

/// Receive an event: a JSON object (or the form its source posts), sent by the sender to the
/// URL the webhook was created with, in the sender's own dialect (the webhook's `source`:
/// GitHub, Stripe, Slack, … see docs/SOURCES.md). The steps run in order, and the first that
/// fails answers: the webhook exists (404), is not deleted (410) and not disabled (403); the
/// source address is allowed (403); its quota and the organization's are not exhausted (429);
/// a secret presented in a header matches (401 `invalid_secret`); the body is within the limit
/// (413, 1 MiB unless configured) and the body timeout (408); a body signature matches and is
/// fresh (401 `invalid_signature` / `signature_expired`); both quotas are charged (429);
/// `Content-Type` is JSON or the source's form (415); the body is a JSON object nested at most
/// 128 levels deep (400); a handshake or ping is answered without a task (200; Slack's
/// `url_verification` with its challenge as plain text); a delivery id already accepted within
/// the dedup window answers 200 `duplicate` with the first request's ids; then the invocation
/// and its task are committed in one transaction (202), or the event is logged without a task
/// when its type is not subscribed (200). A 503 `store_unavailable` means nothing was
/// accepted.
#[utoipa::path(
    post, path = "/api/webhooks/{webhook_id}", tag = "ingest",
    operation_id = "ingest_event",
    params(
        ("webhook_id" = String, Path, format = Uuid, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "The webhook's id, canonical: lower-case and hyphenated"),
        ("X-Webhook-Secret" = Option<String>, Header, nullable = false, description = "A generic webhook's secret, when it has one; never logged or stored. Other sources authenticate with their own headers (`X-Hub-Signature-256`, `Stripe-Signature`, `X-Slack-Signature`, `X-PagerDuty-Signature`, `X-Shopify-Hmac-Sha256`, `webhook-signature`, `X-Gitlab-Token`, `Authorization`)"),
        ("X-Event-Type" = Option<String>, Header, nullable = false, description = "A generic webhook's event type; takes precedence over the payload's `event_type`"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "A generic webhook's delivery id: a repeat within the dedup window answers `duplicate`"),
    ),
    request_body(content = Object, content_type = "application/json", description = "Any JSON object nested at most 128 levels deep (also sent as `application/*+json`; GitHub and Slack webhooks also take `application/x-www-form-urlencoded`); its `message`, or what the webhook's source makes of it, becomes the task's instruction"),
    responses(
        (status = 202, description = "Accepted: the invocation and its task are stored", body = AcceptedBody, headers(
            ("RateLimit-Limit" = u32, description = "The webhook's quota, requests per minute"),
            ("RateLimit-Remaining" = u32, description = "Requests left in the current window"),
            ("RateLimit-Reset" = u32, description = "Seconds until the window ends"),
        )),
        (status = 200, description = "Ignored (the webhook does not subscribe to this event type), a duplicate of an earlier delivery id, or a handshake: logged, no task. Slack's `url_verification` is answered with its challenge as `text/plain`", body = NoTaskBody, headers(
            ("RateLimit-Limit" = u32, description = "The webhook's quota, requests per minute"),
            ("RateLimit-Remaining" = u32, description = "Requests left in the current window"),
            ("RateLimit-Reset" = u32, description = "Seconds until the window ends"),
        )),
        (status = 400, description = "`invalid_payload`: not JSON, not an object, nested deeper than 128 levels, or the body could not be read", body = IngestProblem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_secret`: the secret header is missing or wrong; `invalid_signature`: the body's signature is missing or wrong; `signature_expired`: its timestamp is more than 300 s from now", body = IngestProblem, content_type = "application/problem+json"),
        (status = 403, description = "`webhook_disabled`, or `source_not_allowed`: the source address is outside the webhook's `allowed_source_ips`", body = IngestProblem, content_type = "application/problem+json"),
        (status = 408, description = "`request_timeout`: the body did not arrive within the body timeout", body = IngestProblem, content_type = "application/problem+json"),
        (status = 404, description = "`webhook_not_found`: no webhook has this id (or it is not canonical)", body = IngestProblem, content_type = "application/problem+json"),
        (status = 410, description = "`webhook_deleted`", body = IngestProblem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body is over the limit (1 MiB unless configured); refused before it is read", body = IngestProblem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`: `Content-Type` is not `application/json`, `application/*+json`, or the form its source posts", body = IngestProblem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the webhook's or the organization's quota is exhausted (`scope` says which)", body = IngestProblem, content_type = "application/problem+json", headers(
            ("Retry-After" = u32, description = "Seconds to wait before sending again, at least 1"),
            ("RateLimit-Limit" = u32, description = "The exhausted quota, requests per minute"),
            ("RateLimit-Remaining" = u32, description = "0"),
            ("RateLimit-Reset" = u32, description = "Seconds until the window ends"),
        )),
        (status = 500, description = "`internal_error`: the store failed in a way retrying cannot mend", body = IngestProblem, content_type = "application/problem+json"),
        (status = 503, description = "`store_unavailable`: the store could not be reached; nothing was accepted, send the event again later. `outcome_unknown`: the store was lost during the commit; the event may have been accepted (a retry with the same delivery id is answered `duplicate` if it was)", body = IngestProblem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn handle<A: Adapters>(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState<A>>,
) -> HttpResponse {
    let started = Instant::now();
    let in_flight = state.metrics.ingest_in_flight();
    // On a task of its own: when the connection breaks (a body cut off, a framing error), the
    // HTTP library drops this handler, and the request would go unlogged. The task finishes
    // the request (and logs it) whatever becomes of the connection.
    let request = actix_web::rt::spawn(async move {
        let (outcome, response) = run(&request, payload, &state).await;
        state.metrics.observe_ingest(outcome, started.elapsed());
        drop(in_flight);
        response
    });
    request
        .await
        .unwrap_or_else(|_| Problem::internal_error().error_response())
}

/// `response` with the `RateLimit-*` headers of `rate`.
fn with_rate_headers(mut response: HttpResponseBuilder, rate: RateStatus) -> HttpResponseBuilder {
    for header in rate_headers(rate) {
        response.insert_header(header);
    }
    response
}

/// Runs one request; returns the metrics label of its outcome and the answer.
async fn run<A: Adapters>(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState<A>,
) -> (&'static str, HttpResponse) {
    let headers = request.headers();
    let webhook_id = request.match_info().get("webhook_id").unwrap_or_default();
    let source_ip = state.client_ip.client_ip(
        request.peer_addr().map(|peer| peer.ip()),
        headers
            .get_all(header::X_FORWARDED_FOR)
            .map(header::HeaderValue::as_bytes),
    );
    let head = IngestHead {
        webhook_id,
        source_ip,
        sender: Sender::Http,
    };
    let admission = match state.ingest.begin(head, &Headers(headers)).await {
        Ok(admission) => admission,
        Err(outcome) => return respond(outcome, None, false, webhook_id),
    };
    let rate = admission.rate();
    let limit = state.ingest.body_limit();
    let read = match read_body(request, payload, limit).await {
        Err(BodyError::TimedOut(after)) => {
            tracing::info!(
                webhook.id = webhook_id,
                code = "request_timeout",
                timeout_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                "ingest request rejected: the body did not arrive within the body timeout"
            );
            let problem = Problem::request_timeout(after)
                .with_rate_headers(rate)
                .closing_connection();
            return ("request_timeout", problem.error_response());
        }
        Err(BodyError::Payload(e)) => {
            tracing::debug!(webhook.id = webhook_id, error = %e, "the request body could not be read");
            Err(())
        }
        Ok(read) => Ok(read),
    };
    let body = match &read {
        Ok(Some(body)) => BodyRead::Complete(body),
        Ok(None) => BodyRead::TooLarge,
        Err(()) => BodyRead::Broken,
    };
    // What is left of a refused or broken body is not read: the connection is closed.
    let unread = !matches!(body, BodyRead::Complete(_));
    let request_body = IngestBody {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .map(header::HeaderValue::as_bytes),
        body,
    };
    let outcome = state
        .ingest
        .finish(admission, &Headers(headers), request_body)
        .await;
    respond(outcome, Some(rate), unread, webhook_id)
}

/// The longest the whole request body may take to arrive, from the end of the head: registered
/// as app data (`App::app_data(BodyTimeout(…))`); without it, [`BodyTimeout::default`] (30 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl Default for BodyTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// The connection failed or the body was malformed (a broken chunked encoding).
    #[error(transparent)]
    Payload(#[from] actix_web::error::PayloadError),
    /// The whole body did not arrive within the body timeout.
    #[error("the body did not arrive within {0:?}")]
    TimedOut(Duration),
}

/// Reads the whole body within the request's [`BodyTimeout`], or `None` as soon as it is known
/// to exceed `limit`: from `Content-Length` before reading anything, else when the bytes read
/// pass the limit. What is left of a refused body is never read into memory.
pub(crate) async fn read_body(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Option<Bytes>, BodyError> {
    let timeout = request
        .app_data::<BodyTimeout>()
        .copied()
        .unwrap_or_default()
        .0;
    actix_web::rt::time::timeout(timeout, read_limited(request.headers(), payload, limit))
        .await
        .map_err(|_| BodyError::TimedOut(timeout))?
        .map_err(BodyError::Payload)
}

async fn read_limited(
    headers: &HeaderMap,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Option<Bytes>, actix_web::error::PayloadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Ok(None);
    }
    // Most bodies arrive in one chunk, which is then used as is, without a copy.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut length = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        length = length.saturating_add(chunk.len());
        if length > limit {
            return Ok(None);
        }
        match (&mut joined, first.take()) {
            (Some(buffer), _) => buffer.extend_from_slice(&chunk),
            (None, None) => first = Some(chunk),
            (None, Some(previous)) => {
                let capacity = declared
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(previous.len() * 4)
                    .clamp(previous.len() + chunk.len(), limit);
                let mut buffer = BytesMut::with_capacity(capacity);
                buffer.extend_from_slice(&previous);
                buffer.extend_from_slice(&chunk);
                joined = Some(buffer);
            }
        }
    }
    Ok(Some(match joined {
        Some(buffer) => buffer.freeze(),
        None => first.unwrap_or_default(),
    }))
}

fn respond(
    outcome: IngestOutcome,
    rate: Option<RateStatus>,
    body_unread: bool,
    webhook_id: &str,
) -> (&'static str, HttpResponse) {
    match outcome {
        IngestOutcome::Accepted {
            invocation_id,
            task_id,
            rate,
        } => {
            tracing::info!(webhook.id = webhook_id, invocation.id = %invocation_id, task.id = %task_id, "event accepted");
            let body = AcceptedBody::new(invocation_id, task_id);
            let response = with_rate_headers(HttpResponse::Accepted(), rate).json(body);
            ("accepted", response)
        }
        IngestOutcome::Ignored {
            invocation_id,
            rate,
        } => {
            tracing::info!(webhook.id = webhook_id, invocation.id = %invocation_id, "event ignored: its type is not subscribed");
            no_task(NoTaskBody::ignored(invocation_id), rate)
        }
        IngestOutcome::Duplicate {
            invocation_id,
            task_id,
            rate,
        } => {
            tracing::info!(webhook.id = webhook_id, invocation.id = %invocation_id, "event answered as a duplicate of an earlier delivery");
            no_task(NoTaskBody::duplicate(invocation_id, task_id), rate)
        }
        IngestOutcome::Handshake {
            invocation_id,
            handshake,
            rate,
        } => {
            tracing::info!(webhook.id = webhook_id, invocation.id = %invocation_id, handshake = handshake.event_type(), "sender's handshake answered");
            match handshake {
                Handshake::SlackUrlVerification { challenge } => {
                    let response = with_rate_headers(HttpResponse::Ok(), rate)
                        .content_type(mime::TEXT_PLAIN_UTF_8)
                        .body(challenge);
                    ("handshake", response)
                }
                Handshake::GithubPing | Handshake::PagerdutyPing => {
                    no_task(NoTaskBody::handshake(invocation_id), rate)
                }
            }
        }
        IngestOutcome::Rejected {
            rejection,
            unlogged,
        } => {
            if let Some(e) = &unlogged {
                tracing::warn!(webhook.id = webhook_id, code = rejection.code(), error = %ErrorChain(e), "a rejected request could not be logged");
            }
            log_rejection(&rejection, webhook_id);
            let mut problem = Problem::from_rejection(&rejection);
            if let (Some(rate), false) = (
                rate,
                matches!(rejection, IngestRejection::RateLimited { .. }),
            ) {
                problem = problem.with_rate_headers(rate);
            }
            if body_unread || matches!(rejection, IngestRejection::PayloadTooLarge { .. }) {
                problem = problem.closing_connection();
            }
            (rejection.code(), problem.error_response())
        }
    }
}

/// A 200 with `body`, for a request logged without a task, labelled with its `status`.
fn no_task(body: NoTaskBody, rate: RateStatus) -> (&'static str, HttpResponse) {
    (
        body.status(),
        with_rate_headers(HttpResponse::Ok(), rate).json(body),
    )
}

/// Logs a rejection once: server-side failures as errors with their chain; client errors at
/// debug level (rate-limited and disabled ones are also counted into coalesced log entries).
fn log_rejection(rejection: &IngestRejection, webhook_id: &str) {
    match rejection {
        IngestRejection::StoreUnavailable(e) => {
            log_server_error("ingest failed: the store is unavailable", e);
        }
        IngestRejection::OutcomeUnknown(e) => {
            log_server_error(
                "ingest failed: the store was lost during the commit, whose outcome is unknown",
                e,
            );
        }
        IngestRejection::Internal(e) => {
            log_server_error("ingest failed: the store failed", e);
        }
        IngestRejection::WebhookNotFound
        | IngestRejection::WebhookDeleted
        | IngestRejection::WebhookDisabled
        | IngestRejection::RateLimited { .. }
        | IngestRejection::SourceNotAllowed
        | IngestRejection::InvalidSecret
        | IngestRejection::InvalidSignature
        | IngestRejection::SignatureExpired
        | IngestRejection::PayloadTooLarge { .. }
        | IngestRejection::BodyUnreadable
        | IngestRejection::UnsupportedMediaType { .. }
        | IngestRejection::InvalidPayload(_) => {
            tracing::debug!(
                webhook.id = webhook_id,
                code = rejection.code(),
                "ingest request rejected"
            );
        }
    }
}

/// `405` for any method but POST on the ingest path.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed("POST")
}
