//! RFC 9457 problem details (`application/problem+json`): the one type every error answer of
//! the service takes, with a stable machine-readable `code`, and the one table ([`Kind`]) from
//! every rejection and error of the domain and of HTTP to its status, code and title.

use std::error::Error as StdError;
use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, Responder, ResponseError};
use serde::Serialize;
pub use webhook_domain::ports::ErrorChain;
use webhook_domain::ports::StoreError;
use webhook_domain::rules::RateStatus;
use webhook_domain::service::IngestRejection;
use webhook_domain::service::manage::{AuthError, ConflictCode, Invalid, ManageError};

use crate::log_limit::{LogDecision, LogLimiter};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type`: `urn:webhookd:problem:{code}`.
pub const TYPE_PREFIX: &str = "urn:webhookd:problem:";

/// Every kind of problem the service answers. [`Kind::answer`] is the one table from a kind to
/// its status, stable `code` and title; the detail is the occurrence's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No route serves the path, or no such object in the caller's organization.
    NotFound,
    /// The path does not accept the method.
    MethodNotAllowed,
    /// A body over the limit.
    PayloadTooLarge,
    /// A request line and headers over the limit.
    RequestHeaderTooLarge,
    /// A body that did not arrive within the body timeout.
    RequestTimeout,
    /// No valid API key.
    Unauthorized,
    /// A management request that is not well-formed (malformed JSON, unknown field, wrong type).
    Malformed,
    /// Ingest: no webhook has the id.
    WebhookNotFound,
    /// Ingest: the webhook was deleted.
    WebhookDeleted,
    /// Ingest: the webhook is disabled.
    WebhookDisabled,
    /// Ingest: a rate limit is exhausted.
    RateLimited,
    /// Ingest: the secret is missing or wrong.
    InvalidSecret,
    /// Ingest: the body's signature is missing or wrong.
    InvalidSignature,
    /// Ingest: the body's signature is right but its timestamp is too far from now.
    SignatureExpired,
    /// Ingest: the source address is outside the webhook's allowed networks.
    SourceNotAllowed,
    /// Ingest: the body is not sent as JSON.
    UnsupportedMediaType,
    /// Ingest: the body is not a JSON object, or could not be read.
    InvalidPayload,
    /// Management: the key may only read.
    Forbidden,
    /// Management: a well-formed value was refused.
    Invalid,
    /// Management: the write contradicts the stored state.
    Conflict(ConflictCode),
    /// The store could not be reached; nothing was changed.
    StoreUnavailable,
    /// The store was lost during a commit and did not answer again in time: the change may
    /// have been made.
    OutcomeUnknown,
    /// A failure retrying will not mend (a corrupt row, a secret that cannot be unsealed).
    Internal,
}

impl Kind {
    /// The kind's status, stable `code` (snake case) and title (the same for every occurrence).
    pub const fn answer(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::RequestHeaderTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_too_large",
                "Request header too large",
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::Malformed => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Validation failed",
            ),
            Self::WebhookNotFound => (
                StatusCode::NOT_FOUND,
                "webhook_not_found",
                "Webhook not found",
            ),
            Self::WebhookDeleted => (StatusCode::GONE, "webhook_deleted", "Webhook deleted"),
            Self::WebhookDisabled => (
                StatusCode::FORBIDDEN,
                "webhook_disabled",
                "Webhook disabled",
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Rate limited",
            ),
            Self::InvalidSecret => (StatusCode::UNAUTHORIZED, "invalid_secret", "Invalid secret"),
            Self::InvalidSignature => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "Invalid signature",
            ),
            Self::SignatureExpired => (
                StatusCode::UNAUTHORIZED,
                "signature_expired",
                "Signature expired",
            ),
            Self::SourceNotAllowed => (
                StatusCode::FORBIDDEN,
                "source_not_allowed",
                "Source not allowed",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            Self::InvalidPayload => (
                StatusCode::BAD_REQUEST,
                "invalid_payload",
                "Invalid payload",
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::Invalid => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            Self::Conflict(code) => (StatusCode::CONFLICT, code.as_str(), "Conflict"),
            Self::StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "Store unavailable",
            ),
            Self::OutcomeUnknown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "outcome_unknown",
                "Outcome unknown",
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Internal error",
            ),
        }
    }

    /// The kind of an ingest rejection.
    pub const fn of_rejection(rejection: &IngestRejection) -> Self {
        match rejection {
            IngestRejection::WebhookNotFound => Self::WebhookNotFound,
            IngestRejection::WebhookDeleted => Self::WebhookDeleted,
            IngestRejection::WebhookDisabled => Self::WebhookDisabled,
            IngestRejection::RateLimited { .. } => Self::RateLimited,
            IngestRejection::InvalidSecret => Self::InvalidSecret,
            IngestRejection::InvalidSignature => Self::InvalidSignature,
            IngestRejection::SignatureExpired => Self::SignatureExpired,
            IngestRejection::SourceNotAllowed => Self::SourceNotAllowed,
            IngestRejection::PayloadTooLarge { .. } => Self::PayloadTooLarge,
            IngestRejection::UnsupportedMediaType { .. } => Self::UnsupportedMediaType,
            IngestRejection::BodyUnreadable | IngestRejection::InvalidPayload(_) => {
                Self::InvalidPayload
            }
            IngestRejection::StoreUnavailable(_) => Self::StoreUnavailable,
            IngestRejection::OutcomeUnknown(_) => Self::OutcomeUnknown,
            IngestRejection::Internal(_) => Self::Internal,
        }
    }
}

/// An error answer: status, stable `code`, human title and detail, the refused `field` or the
/// refusing quota's `scope`, extra headers, and whether the connection closes after it.
///
/// Handlers return it as their error type; it renders itself as problem+json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    kind: Kind,
    detail: String,
    field: Option<String>,
    scope: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
    close: bool,
}

/// The body every problem is answered with (the management API documents it as
/// `crate::api::error::ProblemBody`; at most one of `scope` and `field` is present).
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl Problem {
    /// A problem of `kind` (its status, code and title from [`Kind::answer`]) with a `detail`
    /// about this occurrence.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            field: None,
            scope: None,
            headers: Vec::new(),
            close: false,
        }
    }

    /// Adds the `scope` member (which quota refused a request).
    #[must_use]
    pub fn with_scope(mut self, scope: &'static str) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Adds the `field` member (which field was refused).
    #[must_use]
    pub fn with_field(mut self, field: Option<String>) -> Self {
        self.field = field;
        self
    }

    /// Adds a header to the answer.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Closes the connection after the answer instead of reading what is left of the request.
    #[must_use]
    pub fn closing_connection(mut self) -> Self {
        self.close = true;
        self
    }

    /// The HTTP status.
    pub const fn status(&self) -> StatusCode {
        self.kind.answer().0
    }

    /// The stable code.
    pub const fn code(&self) -> &'static str {
        self.kind.answer().1
    }

    /// The refused field, for validation failures.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// 404 `not_found`, for paths no route serves.
    pub fn not_found() -> Self {
        Self::new(Kind::NotFound, "no resource at this path")
    }

    /// 405 `method_not_allowed`, with the `Allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        Self::new(
            Kind::MethodNotAllowed,
            format!("this resource accepts {allowed}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allowed))
    }

    /// 405 `method_not_allowed` for a management path, with the `Allow` header listing `allow`
    /// (left out if it is not a valid header value).
    pub fn api_method_not_allowed(allow: &str) -> Self {
        let problem = Self::new(
            Kind::MethodNotAllowed,
            "this resource does not accept this method; see /api/v1/openapi.json",
        );
        match HeaderValue::from_str(allow) {
            Ok(value) => problem.with_header(header::ALLOW, value),
            Err(_) => problem,
        }
    }

    /// 413 `payload_too_large`: a management request body over `limit` bytes; the rest of it is
    /// not read.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            Kind::PayloadTooLarge,
            format!("the request body is over the limit of {limit} bytes"),
        )
        .closing_connection()
    }

    /// 431 `request_header_too_large`: a request line and headers of `size` bytes, over
    /// `limit`; the connection closes.
    pub fn request_header_too_large(size: usize, limit: usize) -> Self {
        Self::new(
            Kind::RequestHeaderTooLarge,
            format!("the request line and headers take {size} bytes, over the limit of {limit}"),
        )
        .closing_connection()
    }

    /// 400 `validation_failed`: a management request body that could not be read to its end.
    pub fn unreadable_body(error: &actix_web::error::PayloadError) -> Self {
        Self::malformed(None, format!("the request body could not be read: {error}"))
            .closing_connection()
    }

    /// 401 `unauthorized`: no valid API key; asks for a bearer token.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(Kind::Unauthorized, detail)
            .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 400 `validation_failed`: the request is not well-formed (malformed JSON, unknown field,
    /// wrong type), naming the `field` when it is known.
    pub fn malformed(field: Option<String>, detail: impl Into<String>) -> Self {
        Self::new(Kind::Malformed, detail).with_field(field)
    }

    /// 422 `validation_failed`: a well-formed value was refused.
    pub fn invalid(invalid: Invalid) -> Self {
        Self::new(
            Kind::Invalid,
            format!("`{}` {}", invalid.field, invalid.reason),
        )
        .with_field(Some(invalid.field))
    }

    /// 408 `request_timeout`: the whole body did not arrive within `after` (slow or stalled
    /// senders). The connection closes with it: the rest of the body is not read.
    pub fn request_timeout(after: std::time::Duration) -> Self {
        Self::new(
            Kind::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                after.as_secs_f64()
            ),
        )
        .closing_connection()
    }

    /// 503 `store_unavailable`, the answer whenever the store cannot be reached.
    pub fn store_unavailable() -> Self {
        Self::new(
            Kind::StoreUnavailable,
            "the store could not be reached; nothing was changed, try again later",
        )
    }

    /// 500 `internal_error`: the service failed in a way retrying will not mend (a corrupt
    /// row, a secret that cannot be unsealed). Its cause is logged, never answered.
    pub fn internal_error() -> Self {
        Self::new(
            Kind::Internal,
            "the service failed to process this request; its operator has the details in the log",
        )
    }

    /// A management request the store failed: 500 `internal_error` when it failed in a way
    /// retrying cannot mend, else 503 `store_unavailable`. Logged with its chain either way.
    fn store(error: &StoreError) -> Self {
        match error {
            StoreError::Internal(_) => {
                log_server_error("management request failed: the store failed", error);
                Self::internal_error()
            }
            StoreError::OutcomeUnknown(_) => {
                log_server_error(
                    "management request failed: its commit's outcome is unknown",
                    error,
                );
                Self::new(
                    Kind::OutcomeUnknown,
                    "the store was lost while the change was committed; it may have been made, read it back before trying again",
                )
            }
            StoreError::NotFound | StoreError::Conflict(_) | StoreError::Unavailable(_) => {
                log_server_error("management request failed in the store", error);
                Self::new(
                    Kind::StoreUnavailable,
                    "the store could not complete the request; nothing was changed, try again later",
                )
            }
        }
    }

    /// The problem for an ingest rejection. Its cause, if any, stays out of the body: log it
    /// with [`log_server_error`] first.
    pub fn from_rejection(rejection: &IngestRejection) -> Self {
        // The detail is the domain's, which the invocation log records as answered.
        let problem = Self::new(Kind::of_rejection(rejection), rejection.detail());
        if let IngestRejection::RateLimited {
            scope,
            retry_after,
            status: rate,
        } = rejection
        {
            problem
                .with_scope(scope.as_str())
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from(whole_seconds_up(*retry_after).max(1)),
                )
                .with_rate_headers(*rate)
        } else {
            problem
        }
    }

    /// Adds the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers.
    #[must_use]
    pub fn with_rate_headers(mut self, rate: RateStatus) -> Self {
        self.headers.extend(rate_headers(rate));
        self
    }

    fn respond(&self) -> HttpResponse {
        let (status, code, title) = self.kind.answer();
        let body = Body {
            kind: format!("{TYPE_PREFIX}{code}"),
            title,
            status: status.as_u16(),
            detail: &self.detail,
            code,
            scope: self.scope,
            field: self.field.as_deref(),
        };
        let mut response = HttpResponseBuilder::new(status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        if self.close {
            response.force_close();
        }
        // Serializing this struct of strings and numbers cannot fail.
        response.body(serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code(),
            self.detail
        )
    }
}

impl Responder for Problem {
    type Body = BoxBody;

    fn respond_to(self, _request: &HttpRequest) -> HttpResponse {
        self.respond()
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.respond()
    }
}

impl From<ManageError> for Problem {
    fn from(error: ManageError) -> Self {
        match error {
            ManageError::NotFound => {
                Self::new(Kind::NotFound, "no such object in this organization")
            }
            ManageError::Forbidden => Self::new(
                Kind::Forbidden,
                "this API key may only read; writing needs an admin key",
            ),
            ManageError::Invalid(invalid) => Self::invalid(invalid),
            ManageError::Conflict { code, message } => Self::new(Kind::Conflict(code), message),
            ManageError::WebhookDeleted => Self::from_rejection(&IngestRejection::WebhookDeleted),
            ManageError::Store(e) => Self::store(&e),
        }
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized => Self::unauthorized("the API key is unknown or was deleted"),
            AuthError::Store(e) => Self::store(&e),
        }
    }
}

impl From<Invalid> for Problem {
    fn from(invalid: Invalid) -> Self {
        Self::invalid(invalid)
    }
}

/// The three `RateLimit-*` headers for `rate` (reset in whole seconds, rounded up).
pub fn rate_headers(rate: RateStatus) -> [(HeaderName, HeaderValue); 3] {
    [
        (
            HeaderName::from_static("ratelimit-limit"),
            HeaderValue::from(rate.limit),
        ),
        (
            HeaderName::from_static("ratelimit-remaining"),
            HeaderValue::from(rate.remaining),
        ),
        (
            HeaderName::from_static("ratelimit-reset"),
            HeaderValue::from(whole_seconds_up(rate.reset_after)),
        ),
    ]
}

pub use webhook_domain::rules::whole_seconds_up;

/// How often one kind of server error is logged at most, after its first occurrence.
pub const SERVER_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

static SERVER_ERRORS: LazyLock<LogLimiter> =
    LazyLock::new(|| LogLimiter::new(SERVER_ERROR_LOG_INTERVAL));

/// Logs a server-side failure with its whole chain; the answer carries none of it. Repeats of
/// one `context` are bounded: the first is logged at once, then at most one line per
/// [`SERVER_ERROR_LOG_INTERVAL`], which says how many were left out before it.
pub fn log_server_error(context: &'static str, error: &(dyn StdError + 'static)) {
    match SERVER_ERRORS.decide(context, Instant::now()) {
        LogDecision::Log { left_out: 0 } => {
            tracing::error!(error = %ErrorChain(error), "{context}");
        }
        LogDecision::Log { left_out } => {
            tracing::error!(
                error = %ErrorChain(error),
                left_out,
                "{context} ({left_out} more since the last such line)"
            );
        }
        LogDecision::LeaveOut => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_domain::model::InvalidPayload;
    use webhook_domain::rules::RateScope;

    #[test]
    fn rounds_seconds_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds_up(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn every_rejection_keeps_the_domain_status_and_code() {
        let rate = RateStatus {
            limit: 10,
            remaining: 0,
            reset_after: Duration::from_millis(59_500),
        };
        let rejections = [
            IngestRejection::WebhookNotFound,
            IngestRejection::WebhookDeleted,
            IngestRejection::WebhookDisabled,
            IngestRejection::RateLimited {
                scope: RateScope::Organization,
                retry_after: Duration::from_millis(1500),
                status: rate,
            },
            IngestRejection::InvalidSecret,
            IngestRejection::PayloadTooLarge { limit: 10 },
            IngestRejection::BodyUnreadable,
            IngestRejection::UnsupportedMediaType {
                expected: "application/json",
            },
            IngestRejection::InvalidPayload(InvalidPayload::NotAnObject),
            IngestRejection::StoreUnavailable(StoreError::Unavailable("db down".into())),
            IngestRejection::store(StoreError::Internal("db down".into())),
            IngestRejection::store(StoreError::OutcomeUnknown("db down".into())),
            IngestRejection::InvalidSignature,
            IngestRejection::SignatureExpired,
            IngestRejection::SourceNotAllowed,
        ];
        for rejection in &rejections {
            let problem = Problem::from_rejection(rejection);
            assert_eq!(problem.status().as_u16(), rejection.http_status());
            assert_eq!(problem.code(), rejection.code());
            assert!(!problem.detail.contains("db down"), "cause leaked");
            // What the invocation log records is what the sender was answered.
            let recorded = rejection.problem();
            assert_eq!(recorded.title, problem.kind.answer().2);
            assert_eq!(recorded.detail, problem.detail);
            assert_eq!(
                (recorded.status, recorded.code.as_str()),
                (rejection.http_status(), rejection.code())
            );
        }
        assert_eq!(
            (rejections[9].http_status(), rejections[9].code()),
            (503, "store_unavailable")
        );
        assert_eq!(
            (rejections[10].http_status(), rejections[10].code()),
            (500, "internal_error")
        );
        assert_eq!(
            (rejections[11].http_status(), rejections[11].code()),
            (503, "outcome_unknown")
        );
        let limited = Problem::from_rejection(&rejections[3]);
        assert_eq!(limited.scope, Some("organization"));
        let header = |name: &str| {
            limited
                .headers
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(header("retry-after").as_deref(), Some("2"));
        assert_eq!(header("ratelimit-limit").as_deref(), Some("10"));
        assert_eq!(header("ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(header("ratelimit-reset").as_deref(), Some("60"));
    }

    /// `kind` answers `status` with `code` and `title`, alone and in a [`Problem`].
    fn check(kind: Kind, status: u16, code: &str, title: &str) {
        let (s, c, t) = kind.answer();
        assert_eq!((s.as_u16(), c, t), (status, code, title), "{kind:?}");
        let problem = Problem::new(kind, "detail");
        assert_eq!((problem.status().as_u16(), problem.code()), (status, code));
    }

    #[test]
    fn every_kind_has_its_status_code_and_title() {
        for (kind, status, code, title) in [
            (Kind::NotFound, 404, "not_found", "Not found"),
            (
                Kind::MethodNotAllowed,
                405,
                "method_not_allowed",
                "Method not allowed",
            ),
            (
                Kind::PayloadTooLarge,
                413,
                "payload_too_large",
                "Payload too large",
            ),
            (
                Kind::RequestHeaderTooLarge,
                431,
                "request_header_too_large",
                "Request header too large",
            ),
            (Kind::Unauthorized, 401, "unauthorized", "Unauthorized"),
            (
                Kind::Malformed,
                400,
                "validation_failed",
                "Validation failed",
            ),
        ] {
            check(kind, status, code, title);
        }
        check(Kind::Forbidden, 403, "forbidden", "Forbidden");
        check(Kind::Invalid, 422, "validation_failed", "Validation failed");
        for (code, name) in [
            (ConflictCode::InvalidTransition, "invalid_transition"),
            (ConflictCode::WebhookDeleted, "webhook_deleted"),
            (ConflictCode::TargetInUse, "target_in_use"),
            (ConflictCode::LastAdminKey, "last_admin_key"),
            (ConflictCode::OwnKey, "own_key"),
            (ConflictCode::Concurrent, "conflict"),
            (ConflictCode::NotReplayable, "not_replayable"),
        ] {
            check(Kind::Conflict(code), 409, name, "Conflict");
        }
        check(
            Kind::StoreUnavailable,
            503,
            "store_unavailable",
            "Store unavailable",
        );
        check(Kind::Internal, 500, "internal_error", "Internal error");
    }

    #[test]
    fn every_ingest_kind_has_its_status_code_and_title() {
        for (kind, status, code, title) in [
            (
                Kind::WebhookNotFound,
                404,
                "webhook_not_found",
                "Webhook not found",
            ),
            (
                Kind::WebhookDeleted,
                410,
                "webhook_deleted",
                "Webhook deleted",
            ),
            (
                Kind::WebhookDisabled,
                403,
                "webhook_disabled",
                "Webhook disabled",
            ),
            (Kind::RateLimited, 429, "rate_limited", "Rate limited"),
            (Kind::InvalidSecret, 401, "invalid_secret", "Invalid secret"),
            (
                Kind::InvalidSignature,
                401,
                "invalid_signature",
                "Invalid signature",
            ),
            (
                Kind::SignatureExpired,
                401,
                "signature_expired",
                "Signature expired",
            ),
            (
                Kind::SourceNotAllowed,
                403,
                "source_not_allowed",
                "Source not allowed",
            ),
            (
                Kind::UnsupportedMediaType,
                415,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            (
                Kind::InvalidPayload,
                400,
                "invalid_payload",
                "Invalid payload",
            ),
        ] {
            check(kind, status, code, title);
        }
    }

    #[test]
    fn store_errors_answer_500_when_internal_and_503_when_unavailable() {
        let check = |error: StoreError, status: u16, code: &str| {
            let answer = Problem::from(ManageError::Store(error));
            assert_eq!((answer.status().as_u16(), answer.code()), (status, code));
            assert!(!answer.detail.contains("corrupt row"), "cause leaked");
        };
        check(
            StoreError::Internal("corrupt row".into()),
            500,
            "internal_error",
        );
        check(
            StoreError::Unavailable("connection refused".into()),
            503,
            "store_unavailable",
        );
        let auth = Problem::from(AuthError::Store(StoreError::Internal("corrupt row".into())));
        assert_eq!(
            (auth.status().as_u16(), auth.code()),
            (500, "internal_error")
        );
    }

    #[test]
    fn only_an_unknown_key_asks_for_a_bearer_token() {
        let asks = |problem: &Problem| {
            problem
                .headers
                .iter()
                .any(|(name, value)| name == header::WWW_AUTHENTICATE && value == "Bearer")
        };
        assert!(asks(&Problem::from(AuthError::Unauthorized)));
        assert!(asks(&Problem::unauthorized("send a key")));
        assert!(!asks(&Problem::from_rejection(
            &IngestRejection::InvalidSecret
        )));
    }

    #[test]
    fn chains_error_sources() {
        let error = StoreError::Unavailable("connection refused".into());
        assert_eq!(
            ErrorChain(&error).to_string(),
            "the store is unavailable: connection refused"
        );
    }
}
