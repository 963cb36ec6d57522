//! The invocation log: one entry per request that reached an existing webhook.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{InvocationId, OrganizationId, TaskId, Timestamp, WebhookId};

/// A request body that is a JSON object, kept as the exact text received.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(Arc<str>);

/// The body is not JSON, or is JSON but not an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPayload {
    /// Not valid UTF-8 JSON.
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    /// Valid JSON, but an array, string, number, boolean or null.
    #[error("the body must be a JSON object")]
    NotAnObject,
    /// Objects and arrays nested deeper than `limit`: readers that walk the payload (the
    /// console, targets) would run out of stack.
    #[error("the body nests objects and arrays deeper than {limit} levels")]
    TooDeep { limit: usize },
    /// A form body that does not carry what the webhook's source sends in one.
    #[error("the form is not one this source sends: {0}")]
    InvalidForm(String),
}

/// The deepest nesting of objects and arrays a payload may have: `{}` is 1, `{"a":[]}` is 2.
pub const MAX_PAYLOAD_DEPTH: usize = 128;

/// Whether `body` nests objects and arrays deeper than `limit`, in one pass without recursion.
///
/// `serde_json` bounds recursion only where it builds values; the values it skips or keeps raw
/// (every member here: `message` and `event_type` are read as raw values) are walked
/// iteratively with no bound, so the depth is checked before parsing. Brackets inside strings, escaped quotes included, do not
/// count. The answer is exact for valid JSON; for invalid JSON it only decides which of two
/// refusals is reported.
fn nests_deeper_than(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The fields of a payload that ingest reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFields {
    /// `message`: a string as is, any other JSON value as its JSON text.
    pub message: Option<String>,
    /// `event_type`, when it is a string.
    pub event_type: Option<String>,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_type: Option<&'a RawValue>,
}

fn string_or_json(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text == "null" {
        None
    } else if text.starts_with('"') {
        serde_json::from_str(text).ok()
    } else {
        Some(text.to_owned())
    }
}

impl Payload {
    /// Validates that `body` is one JSON object nested at most [`MAX_PAYLOAD_DEPTH`] deep and
    /// reads its `message` and `event_type`.
    pub fn parse_object(body: &[u8]) -> Result<(Self, PayloadFields), InvalidPayload> {
        let text =
            std::str::from_utf8(body).map_err(|e| InvalidPayload::Malformed(e.to_string()))?;
        if nests_deeper_than(body, MAX_PAYLOAD_DEPTH) {
            return Err(InvalidPayload::TooDeep {
                limit: MAX_PAYLOAD_DEPTH,
            });
        }
        if !text.trim_start().starts_with('{') {
            // Check it is JSON at all, to say which of the two is wrong.
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => InvalidPayload::NotAnObject,
                Err(e) => InvalidPayload::Malformed(e.to_string()),
            });
        }
        let peek: Peek<'_> =
            serde_json::from_str(text).map_err(|e| InvalidPayload::Malformed(e.to_string()))?;
        let fields = PayloadFields {
            message: peek.message.and_then(string_or_json),
            event_type: peek
                .event_type
                .filter(|raw| raw.get().starts_with('"'))
                .and_then(|raw| serde_json::from_str(raw.get()).ok()),
        };
        Ok((Self(Arc::from(text)), fields))
    }

    /// Wraps payload text read back from a store, which validated it when it was written.
    pub fn from_stored(text: String) -> Self {
        Self(Arc::from(text))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvocationOutcome {
    /// Committed with a task (202).
    Accepted,
    /// Valid, but its event type is not subscribed (200).
    Ignored,
    /// Refused (403, 429, 401, 413, 415, 400).
    Rejected,
    /// Its delivery id was already accepted on the webhook within the dedup window (200).
    Duplicate,
}

impl InvocationOutcome {
    /// Every outcome.
    pub const ALL: [Self; 4] = [
        Self::Accepted,
        Self::Ignored,
        Self::Rejected,
        Self::Duplicate,
    ];

    /// The outcome's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
        }
    }

    /// Parses an outcome name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// The `outcome` filter of the invocation log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeFilter {
    Accepted,
    Ignored,
    Rejected,
    Duplicate,
    /// Rejected requests, plus accepted ones whose latest delivery attempt failed (even while
    /// retries are pending) or whose task failed.
    Failed,
}

impl OutcomeFilter {
    /// Every filter: one per outcome, then `failed`.
    pub const ALL: [Self; 5] = [
        Self::Accepted,
        Self::Ignored,
        Self::Rejected,
        Self::Duplicate,
        Self::Failed,
    ];

    /// The filter's name in the API: an outcome's name, or `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => InvocationOutcome::Accepted.as_str(),
            Self::Ignored => InvocationOutcome::Ignored.as_str(),
            Self::Rejected => InvocationOutcome::Rejected.as_str(),
            Self::Duplicate => InvocationOutcome::Duplicate.as_str(),
            Self::Failed => "failed",
        }
    }

    /// Parses a filter name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The filter that keeps exactly the invocations of `outcome`.
    pub const fn outcome(outcome: InvocationOutcome) -> Self {
        match outcome {
            InvocationOutcome::Accepted => Self::Accepted,
            InvocationOutcome::Ignored => Self::Ignored,
            InvocationOutcome::Rejected => Self::Rejected,
            InvocationOutcome::Duplicate => Self::Duplicate,
        }
    }
}

/// The target's answer to the latest delivery attempt of an invocation's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetResponse {
    /// HTTP status, absent when no answer came (timeout, refused connection).
    pub status_code: Option<u16>,
    /// The start of the answer's body, at most [`DeliveryAttempt::EXCERPT_MAX`] bytes.
    pub body_excerpt: Option<String>,
    pub latency_ms: u32,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    pub at: Timestamp,
    /// Whether this attempt delivered the task.
    pub succeeded: bool,
}

/// One attempt to push a task to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub task_id: TaskId,
    /// 1 for the first attempt.
    pub number: u32,
    pub response: TargetResponse,
}

impl DeliveryAttempt {
    /// Most bytes of a target's answer kept.
    pub const EXCERPT_MAX: usize = 4096;
}

/// One entry of the invocation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub id: InvocationId,
    pub organization_id: OrganizationId,
    pub webhook_id: WebhookId,
    pub received_at: Timestamp,
    pub source_ip: Option<IpAddr>,
    pub event_type: Option<String>,
    /// The body, when it was a JSON object.
    pub payload: Option<Payload>,
    pub outcome: InvocationOutcome,
    /// The HTTP status answered.
    pub http_status: u16,
    /// The problem `code` answered, for rejections.
    pub error_code: Option<String>,
    pub task_id: Option<TaskId>,
    /// How many identical rejections this entry stands for (rate-limited and disabled requests
    /// are coalesced); 1 otherwise.
    pub repeat_count: u32,
    /// Sent by the test endpoint, not by an outside system.
    pub test: bool,
    /// Filled in by delivery attempts.
    pub target_response: Option<TargetResponse>,
    /// The sender's delivery id, when its source has one and the request carried it.
    pub delivery_id: Option<String>,
    /// For a duplicate: the invocation that was accepted with the same delivery id.
    pub duplicate_of: Option<InvocationId>,
    /// Why the webhook's instruction template did not make the task's instruction, when it
    /// did not.
    pub instruction_fallback: Option<String>,
    /// The request as received: headers (credentials redacted), what of its body was kept, the
    /// problem answered, the subscriptions an ignored event was matched against. `None` for
    /// entries logged before requests were recorded.
    pub request: Option<super::RequestRecord>,
    /// For a replay: the invocation whose request it sent again.
    pub replay_of: Option<InvocationId>,
}

impl Invocation {
    /// The entry's place in the log, newest first: what a page after it starts from.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor {
            at: self.received_at,
            id: *self.id.as_uuid(),
        }
    }

    /// The entry with what a store keeps of its request beside the fields lists read: the
    /// request's record as JSON text (see [`super::RequestRecord::from_json`]) and the
    /// invocation a replay sent again.
    ///
    /// # Errors
    ///
    /// When `record` is not a request record's JSON.
    pub fn with_request(
        mut self,
        record: Option<&str>,
        replay_of: Option<InvocationId>,
    ) -> Result<Self, serde_json::Error> {
        self.request = record.map(super::RequestRecord::from_json).transpose()?;
        self.replay_of = replay_of;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_names_are_the_outcomes_and_failed() {
        let names = OutcomeFilter::ALL.map(OutcomeFilter::as_str);
        assert_eq!(
            names,
            ["accepted", "ignored", "rejected", "duplicate", "failed"]
        );
        for outcome in InvocationOutcome::ALL {
            let name = outcome.as_str();
            assert_eq!(InvocationOutcome::parse(name), Some(outcome));
            assert_eq!(
                OutcomeFilter::parse(name),
                Some(OutcomeFilter::outcome(outcome))
            );
        }
        assert_eq!(OutcomeFilter::parse("failed"), Some(OutcomeFilter::Failed));
        assert_eq!(InvocationOutcome::parse("failed"), None);
    }

    #[test]
    fn parses_objects_and_reads_fields() {
        let (payload, fields) = Payload::parse_object(
            br#" {"message":"Deploy \"api\"","event_type":"deploy.finished","n":[1,{}]}"#,
        )
        .unwrap();
        assert!(payload.as_str().contains("\"n\":[1,{}]"));
        assert_eq!(fields.message.as_deref(), Some("Deploy \"api\""));
        assert_eq!(fields.event_type.as_deref(), Some("deploy.finished"));

        let (_, fields) = Payload::parse_object(br#"{"message":{"a":1},"event_type":7}"#).unwrap();
        assert_eq!(fields.message.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(fields.event_type, None);

        let (_, fields) = Payload::parse_object(b"{}").unwrap();
        assert_eq!(
            fields,
            PayloadFields {
                message: None,
                event_type: None
            }
        );
    }

    /// An object `depth` levels deep: arrays in one member, or objects in objects.
    fn nested(depth: usize, arrays: bool) -> String {
        if arrays {
            format!(
                r#"{{"a":{}{}}}"#,
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        } else {
            format!(
                "{}{{}}{}",
                r#"{"a":"#.repeat(depth - 1),
                "}".repeat(depth - 1)
            )
        }
    }

    #[test]
    fn refuses_nesting_deeper_than_128() {
        let too_deep = Err(InvalidPayload::TooDeep { limit: 128 });
        for arrays in [true, false] {
            let at_limit = nested(MAX_PAYLOAD_DEPTH, arrays);
            let parsed = Payload::parse_object(at_limit.as_bytes());
            assert!(parsed.is_ok(), "{arrays}: {parsed:?}");
            let over = nested(MAX_PAYLOAD_DEPTH + 1, arrays);
            assert_eq!(Payload::parse_object(over.as_bytes()), too_deep, "{arrays}");
            let far_over = nested(100_000, arrays);
            assert_eq!(
                Payload::parse_object(far_over.as_bytes()),
                too_deep,
                "{arrays}"
            );
        }
        // Under `message`, which is read as a raw value, too.
        let message = format!(r#"{{"message":{}}}"#, "[".repeat(200) + &"]".repeat(200));
        assert_eq!(Payload::parse_object(message.as_bytes()), too_deep);
        // A top-level array that deep is refused for its depth before its kind.
        assert_eq!(
            Payload::parse_object("[".repeat(100_000).as_bytes()),
            too_deep
        );
    }

    #[test]
    fn brackets_in_strings_do_not_count_as_nesting() {
        let brackets = "[{".repeat(200);
        for text in [
            format!(r#"{{"message":"{brackets}"}}"#),
            format!(r#"{{"message":"\"{brackets}\\"}}"#),
            format!(r#"{{"a\"{brackets}":1,"b":"\\\"{brackets}"}}"#),
        ] {
            assert!(Payload::parse_object(text.as_bytes()).is_ok(), "{text}");
        }
        assert!(!nests_deeper_than(br#"{"a":"\\"}"#, 1));
        assert!(nests_deeper_than(br#"{"a":"\\",{}}"#, 1));
    }

    #[test]
    fn refuses_non_objects_and_malformed_json() {
        for body in [&b"[1,2]"[..], b"\"text\"", b"42", b"null", b"true"] {
            assert_eq!(
                Payload::parse_object(body).unwrap_err(),
                InvalidPayload::NotAnObject,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [&b""[..], b"{", b"{\"a\":}", b"{} {}", b"\xff\xfe", b"nope"] {
            assert!(
                matches!(
                    Payload::parse_object(body),
                    Err(InvalidPayload::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
