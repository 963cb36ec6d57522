//! The HTTP push: [`HttpDelivery`] POSTs a task to its target's endpoint, signed, through the
//! SSRF guard, with a connect and a total timeout and a bounded read of the answer.

use std::error::Error as _;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER, USER_AGENT};
use reqwest::redirect::Policy;
use time::PrimitiveDateTime;
use time::macros::format_description;
use webhook_domain::model::{DeliveryAttempt, EndpointUrl, Secret, Task, Timestamp};
use webhook_domain::model::{DeliveryFailure, DeliveryReport};
use webhook_domain::ports::TargetDelivery;

use crate::guard::{BlockedAddresses, GuardedResolver, OutboundPolicy, literal_refused};
use crate::message::task_body;
use crate::signing::SigningKey;

/// How deliveries reach targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Longest wait for a connection (TCP and TLS handshakes).
    pub connect_timeout: Duration,
    /// Longest wait for the whole attempt, from connecting to the last byte read.
    pub timeout: Duration,
    /// Which addresses may be reached.
    pub policy: OutboundPolicy,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            policy: OutboundPolicy::default(),
        }
    }
}

/// The HTTP client could not be built (TLS backend initialization).
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client could not be built")]
pub struct ClientBuildError(#[source] reqwest::Error);

/// Delivers tasks over HTTP(S). Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct HttpDelivery {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl HttpDelivery {
    /// A client that connects only where `config.policy` allows, never follows redirects and
    /// ignores proxy settings of the environment (a proxy would hide the address connected to).
    pub fn new(config: DeliveryConfig) -> Result<Self, ClientBuildError> {
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver::shared(config.policy))
            .redirect(Policy::none())
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(ClientBuildError)?;
        Ok(Self {
            client,
            policy: config.policy,
        })
    }
}

const USER_AGENT_VALUE: &str = concat!("webhookd/", env!("CARGO_PKG_VERSION"));

impl TargetDelivery for HttpDelivery {
    async fn deliver(
        &self,
        endpoint: &EndpointUrl,
        signing_secret: &Secret,
        task: &Task,
        now: Timestamp,
    ) -> DeliveryReport {
        let started = Instant::now();
        if let Some(address) = literal_refused(endpoint, self.policy) {
            return DeliveryReport::Failed {
                failure: DeliveryFailure::Blocked(format!("{address} is not a public address")),
                latency: started.elapsed(),
            };
        }
        let body = task_body(task);
        let msg_id = task.id.to_string();
        let timestamp = now.unix_micros().div_euclid(1_000_000);
        let signature = SigningKey::new(signing_secret).sign(&msg_id, timestamp, &body);
        let sent = self
            .client
            .post(endpoint.as_url().clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header("webhook-id", msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status_code = response.status().as_u16();
                let retry_after = retry_after(response.headers(), now);
                let body_excerpt = read_excerpt(response).await;
                DeliveryReport::Answered {
                    status_code,
                    body_excerpt,
                    retry_after,
                    latency: started.elapsed(),
                }
            }
            Err(error) => DeliveryReport::Failed {
                failure: failure_of(&error),
                latency: started.elapsed(),
            },
        }
    }
}

/// Reads at most [`DeliveryAttempt::EXCERPT_MAX`] bytes of the answer and drops the rest (and
/// with it the connection, when more was sent). A body that breaks off or times out keeps what
/// arrived.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < DeliveryAttempt::EXCERPT_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = DeliveryAttempt::EXCERPT_MAX - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    excerpt_text(&kept)
}

/// `bytes` as text of at most [`DeliveryAttempt::EXCERPT_MAX`] bytes: invalid UTF-8 and NUL
/// (which no store keeps in text) become U+FFFD, cut at a character boundary.
pub(crate) fn excerpt_text(bytes: &[u8]) -> String {
    // A character cut in two by the bound is dropped, not replaced.
    let bytes = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    let mut text = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
    if text.len() > DeliveryAttempt::EXCERPT_MAX {
        let mut end = DeliveryAttempt::EXCERPT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The `Retry-After` header as a delay from `now`: delta-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = PrimitiveDateTime::parse(value, format).ok()?.assume_utc();
    Some(Timestamp::from_datetime(at).since(now))
}

/// What a request that got no answer failed with, its cause chain as text (without the URL,
/// whose query may carry a token).
fn failure_of(error: &reqwest::Error) -> DeliveryFailure {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<BlockedAddresses>() {
            return DeliveryFailure::Blocked(blocked.to_string());
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return DeliveryFailure::Timeout;
    }
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = error.to_string();
    }
    DeliveryFailure::Connection(text)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn reads_retry_after_in_both_forms() {
        let now = Timestamp::parse_rfc3339("2015-10-21T07:28:00Z").unwrap();
        let check = |value: &str, expected: Option<Duration>| {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            assert_eq!(retry_after(&headers, now), expected, "{value}");
        };
        check("120", Some(Duration::from_secs(120)));
        check(" 0 ", Some(Duration::ZERO));
        check(
            "Wed, 21 Oct 2015 07:30:00 GMT",
            Some(Duration::from_secs(120)),
        );
        check("Wed, 21 Oct 2015 07:00:00 GMT", Some(Duration::ZERO));
        check("-5", None);
        check("soon", None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn excerpts_are_bounded_text() {
        assert_eq!(excerpt_text(b"ok"), "ok");
        assert_eq!(excerpt_text(b"a\0b\xff"), "a\u{FFFD}b\u{FFFD}");
        let long = "é".repeat(3000);
        let excerpt = excerpt_text(&long.as_bytes()[..DeliveryAttempt::EXCERPT_MAX]);
        assert_eq!(excerpt.len(), DeliveryAttempt::EXCERPT_MAX);
        let cut = excerpt_text(&long.as_bytes()[..DeliveryAttempt::EXCERPT_MAX - 1]);
        assert_eq!(cut, "é".repeat(2047));
        let binary = excerpt_text(&[0xff; DeliveryAttempt::EXCERPT_MAX]);
        assert!(binary.len() <= DeliveryAttempt::EXCERPT_MAX);
    }
}
