//! RFC 9457 problem details (`application/problem+json`): the one shape every error answer of
//! the service takes, with a stable machine-readable `code`.

use std::error::Error as StdError;
use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, Responder, ResponseError};
use serde::Serialize;
use webhook_domain::model::InvalidPayload;
use webhook_domain::rules::RateStatus;
use webhook_domain::service::IngestRejection;

use crate::log_limit::{LogDecision, LogLimiter};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Prefix of every problem `type`: `urn:webhookd:problem:{code}`.
pub const TYPE_PREFIX: &str = "urn:webhookd:problem:";

/// An error answer: status, stable `code`, human title and detail, optional extra headers.
///
/// Handlers return it as their error type; it renders itself as problem+json.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    scope: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
    close: bool,
}

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
}

impl Problem {
    /// A problem with `status`, a stable `code` (snake case), a short `title` that is the same
    /// for every occurrence of the code, and a `detail` about this occurrence.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
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
        self.status
    }

    /// The stable code.
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// 404 `not_found`, for paths no route serves.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "no resource at this path",
        )
    }

    /// 405 `method_not_allowed`, with the `Allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &'static str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            format!("this resource accepts {allowed}"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static(allowed))
    }

    /// 408 `request_timeout`: the whole body did not arrive within `after` (slow or stalled
    /// senders). Close the connection with it: the rest of the body is not read.
    pub fn request_timeout(after: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "Request timeout",
            format!(
                "the request body did not arrive within {} s",
                after.as_secs_f64()
            ),
        )
    }

    /// 503 `store_unavailable`, the answer whenever the store cannot be reached.
    pub fn store_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "Store unavailable",
            "the store could not be reached; nothing was changed, try again later",
        )
    }

    /// 500 `internal_error`: the service failed in a way retrying will not mend (a corrupt
    /// row, a secret that cannot be unsealed). Its cause is logged, never answered.
    pub fn internal_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
            "the service failed to process this request; its operator has the details in the log",
        )
    }

    /// The problem for an ingest rejection. Its cause, if any, stays out of the body: log it
    /// with [`log_server_error`] first.
    pub fn from_rejection(rejection: &IngestRejection) -> Self {
        let status = StatusCode::from_u16(rejection.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = rejection.code();
        match rejection {
            IngestRejection::WebhookNotFound => {
                Self::new(status, code, "Webhook not found", "no webhook has this id")
            }
            IngestRejection::WebhookDeleted => Self::new(
                status,
                code,
                "Webhook deleted",
                "this webhook was deleted and accepts no more events",
            ),
            IngestRejection::WebhookDisabled => Self::new(
                status,
                code,
                "Webhook disabled",
                "this webhook is disabled; its owner can enable it again",
            ),
            IngestRejection::RateLimited {
                scope,
                retry_after,
                status: rate,
            } => Self::new(
                status,
                code,
                "Rate limited",
                format!(
                    "the {} rate limit of {} requests per minute is exhausted; retry after {} s",
                    scope.as_str(),
                    rate.limit,
                    whole_seconds_up(*retry_after)
                ),
            )
            .with_scope(scope.as_str())
            .with_header(
                header::RETRY_AFTER,
                HeaderValue::from(whole_seconds_up(*retry_after).max(1)),
            )
            .with_rate_headers(*rate),
            IngestRejection::InvalidSecret => Self::new(
                status,
                code,
                "Invalid secret",
                "the X-Webhook-Secret header is missing or does not match this webhook's secret",
            ),
            IngestRejection::PayloadTooLarge { limit } => Self::new(
                status,
                code,
                "Payload too large",
                format!("the body is larger than the limit of {limit} bytes"),
            ),
            IngestRejection::UnsupportedMediaType => Self::new(
                status,
                code,
                "Unsupported media type",
                "the body must be sent with Content-Type: application/json",
            ),
            IngestRejection::InvalidPayload(InvalidPayload::NotAnObject) => Self::new(
                status,
                code,
                "Invalid payload",
                "the body must be a JSON object",
            ),
            IngestRejection::InvalidPayload(InvalidPayload::Malformed(reason)) => Self::new(
                status,
                code,
                "Invalid payload",
                format!("the body is not valid JSON: {reason}"),
            ),
            IngestRejection::InvalidPayload(InvalidPayload::TooDeep { limit }) => Self::new(
                status,
                code,
                "Invalid payload",
                format!("the body nests objects and arrays deeper than {limit} levels"),
            ),
            IngestRejection::StoreUnavailable(_) => Self::new(
                status,
                code,
                "Store unavailable",
                "the event could not be stored; nothing was accepted, send it again later",
            ),
            IngestRejection::Internal(_) => Self::internal_error(),
        }
    }

    /// Adds the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers.
    #[must_use]
    pub fn with_rate_headers(mut self, rate: RateStatus) -> Self {
        self.headers.extend(rate_headers(rate));
        self
    }

    fn respond(&self) -> HttpResponse {
        let body = Body {
            kind: format!("{TYPE_PREFIX}{}", self.code),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
            scope: self.scope,
        };
        let mut response = HttpResponseBuilder::new(self.status);
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
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
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
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.respond()
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

/// `duration` in whole seconds, rounded up.
pub fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// An error and its sources, joined by `: `, for one log line.
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

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
    use webhook_domain::ports::StoreError;
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
            IngestRejection::UnsupportedMediaType,
            IngestRejection::InvalidPayload(InvalidPayload::NotAnObject),
            IngestRejection::StoreUnavailable(StoreError::Unavailable("db down".into())),
            IngestRejection::store(StoreError::Internal("db down".into())),
        ];
        for rejection in &rejections {
            let problem = Problem::from_rejection(rejection);
            assert_eq!(problem.status().as_u16(), rejection.http_status());
            assert_eq!(problem.code(), rejection.code());
            assert!(!problem.detail.contains("db down"), "cause leaked");
        }
        assert_eq!(
            (rejections[8].http_status(), rejections[8].code()),
            (503, "store_unavailable")
        );
        assert_eq!(
            (rejections[9].http_status(), rejections[9].code()),
            (500, "internal_error")
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

    #[test]
    fn chains_error_sources() {
        let error = StoreError::Unavailable("connection refused".into());
        assert_eq!(
            ErrorChain(&error).to_string(),
            "the store is unavailable: connection refused"
        );
    }
}
