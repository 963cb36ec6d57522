//! The management API's error answers: problem+json with a stable `code`, and a `field` for
//! validation failures. One exhaustive mapping from the domain's errors.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;
use webhook_domain::ports::StoreError;
use webhook_domain::service::manage::{AuthError, Invalid, ManageError};

use crate::problem::{PROBLEM_JSON, TYPE_PREFIX, log_server_error};

/// An error answer of the management API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    field: Option<String>,
    /// Close the connection after the answer instead of reading the rest of the request.
    close: bool,
}

/// An RFC 9457 problem as the management API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:webhookd:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `invalid_transition`, `webhook_deleted`, `target_in_use`,
    /// `own_key`, `last_admin_key`, `conflict`, `method_not_allowed`, `payload_too_large`,
    /// `store_unavailable`, `internal_error`.
    pub code: String,
    /// For `validation_failed`: the refused field (`name`, `event_types[1]`, `limit`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    fn new(
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
            field: None,
            close: false,
        }
    }

    /// 401: no valid API key.
    pub fn unauthorized(detail: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 400: the request is not well-formed (malformed JSON, unknown field, wrong type).
    pub fn malformed(field: Option<String>, detail: impl Into<String>) -> Self {
        Self {
            field,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Validation failed",
                detail,
            )
        }
    }

    /// 422: a well-formed value was refused.
    pub fn invalid(invalid: Invalid) -> Self {
        Self {
            detail: format!("`{}` {}", invalid.field, invalid.reason),
            field: Some(invalid.field),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
                "",
            )
        }
    }

    /// 413: the request body is over `limit` bytes; the rest of it is not read.
    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            close: true,
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                format!("the request body is over the limit of {limit} bytes"),
            )
        }
    }

    /// 408 `request_timeout`: the whole body did not arrive within `after`; the connection is
    /// closed.
    pub fn request_timeout(after: std::time::Duration) -> Self {
        Self {
            close: true,
            ..Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
                format!(
                    "the request body did not arrive within {} s",
                    after.as_secs_f64()
                ),
            )
        }
    }

    /// 400: the request body could not be read to its end.
    pub fn unreadable_body(error: &actix_web::error::PayloadError) -> Self {
        Self {
            close: true,
            ..Self::malformed(None, format!("the request body could not be read: {error}"))
        }
    }

    /// 405, for a method a management path does not serve.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this resource does not accept this method; see /api/v1/openapi.json",
        )
    }

    /// 503 `store_unavailable` when the store could not be reached; 500 `internal_error` when
    /// it failed in a way retrying cannot mend. Logged with its chain either way.
    fn store(error: &StoreError) -> Self {
        match error {
            StoreError::Internal(_) => {
                log_server_error("management request failed: the store failed", error);
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    "the service failed to process this request; its operator has the details in the log",
                )
            }
            StoreError::NotFound | StoreError::Conflict(_) | StoreError::Unavailable(_) => {
                log_server_error("management request failed in the store", error);
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable",
                    "the store could not complete the request; nothing was changed, try again later",
                )
            }
        }
    }

    /// The stable code.
    pub const fn code(&self) -> &'static str {
        self.code
    }

    /// The refused field, for validation failures.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = ProblemBody {
            kind: format!("{TYPE_PREFIX}{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            field: self.field.clone(),
        };
        let mut response = HttpResponseBuilder::new(self.status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if self.close {
            response.force_close();
        }
        response.body(serde_json::to_vec(&body).unwrap_or_default())
    }
}

impl From<ManageError> for ApiError {
    fn from(error: ManageError) -> Self {
        match error {
            ManageError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "no such object in this organization",
            ),
            ManageError::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "this API key may only read; writing needs an admin key",
            ),
            ManageError::Invalid(invalid) => Self::invalid(invalid),
            ManageError::Conflict { code, message } => {
                Self::new(StatusCode::CONFLICT, code.as_str(), "Conflict", message)
            }
            ManageError::Store(e) => Self::store(&e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthorized => Self::unauthorized("the API key is unknown or was deleted"),
            AuthError::Store(e) => Self::store(&e),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::invalid(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_answer_500_when_internal_and_503_when_unavailable() {
        let check = |error: StoreError, status: u16, code: &str| {
            let answer = ApiError::from(ManageError::Store(error));
            assert_eq!((answer.status.as_u16(), answer.code), (status, code));
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
        let auth = ApiError::from(AuthError::Store(StoreError::Internal("corrupt row".into())));
        assert_eq!((auth.status.as_u16(), auth.code), (500, "internal_error"));
    }
}
