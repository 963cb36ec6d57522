//! The bound on a request head (request line and headers): 32 KiB, answered 431 problem+json.
//!
//! actix-http has no setting for it: its HTTP/1 parser buffers a head of up to 128 KiB and at
//! most 96 headers, and answers beyond those with a bare 431 of its own. Between 32 and 128
//! KiB the head is parsed, and [`limit_request_head`] refuses it before any handler runs.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, ResponseError as _};

use crate::problem::Problem;

/// The largest request head served: the request line and every header, as sent.
pub const MAX_REQUEST_HEAD_BYTES: usize = 32 * 1024;

/// The size of `request`'s head as it was sent on HTTP/1.1: `METHOD target HTTP/1.1\r\n`, each
/// `name: value\r\n`, and the blank line.
pub fn head_size(request: &HttpRequest) -> usize {
    let uri = request.uri();
    let target = uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    let line = request.method().as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    line + headers + 2
}

/// The answer to a head of `size` bytes over [`MAX_REQUEST_HEAD_BYTES`]: 431
/// `request_header_too_large`, closing the connection.
pub fn head_too_large(size: usize) -> Problem {
    Problem::request_header_too_large(size, MAX_REQUEST_HEAD_BYTES)
}

/// Middleware (for [`actix_web::middleware::from_fn`]) answering a head over
/// [`MAX_REQUEST_HEAD_BYTES`] with [`head_too_large`] before the handler runs.
pub async fn limit_request_head(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let size = head_size(request.request());
    if size > MAX_REQUEST_HEAD_BYTES {
        let response = head_too_large(size).error_response();
        return Ok(request.into_response(response).map_into_right_body());
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn counts_the_head_as_sent() {
        let request = TestRequest::post()
            .uri("/api/webhooks/x?a=1")
            .insert_header(("x-event-type", "deploy"))
            .to_http_request();
        let sent = "POST /api/webhooks/x?a=1 HTTP/1.1\r\nx-event-type: deploy\r\n\r\n";
        assert_eq!(head_size(&request), sent.len());
    }
}
