//! The record of a request the invocation log keeps beside its outcome: the request's headers
//! (secrets redacted, bounded), what of its body was kept, the problem the sender was answered,
//! and the subscriptions an ignored event was matched against.

use serde::{Deserialize, Serialize};

use super::RequestHeaders;

/// Most headers a record keeps; the rest are counted in [`RequestRecord::headers_omitted`].
pub const MAX_RECORDED_HEADERS: usize = 64;

/// Most bytes (names and values) of the headers a record keeps.
pub const MAX_RECORDED_HEADER_BYTES: usize = 8 * 1024;

/// Most bytes of a body a record keeps when the invocation has no payload to show it.
pub const BODY_EXCERPT_BYTES: usize = 4096;

/// What a redacted header's value is recorded as: its name is kept, its value never.
pub const REDACTED: &str = "[redacted]";

/// Headers that carry credentials whatever the webhook's source: never stored.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-webhook-secret",
    "x-gitlab-token",
];

/// What of a request's body the log kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKept {
    /// The request was refused before its body was read (or the body broke off or was over
    /// the limit): nothing of it is known.
    #[default]
    NotRead,
    /// Only the body's first [`BODY_EXCERPT_BYTES`] bytes (or a body that is not UTF-8, with
    /// its invalid bytes replaced).
    Excerpt,
    /// The whole body: the invocation's payload, or [`RequestRecord::body_text`].
    Whole,
}

impl BodyKept {
    /// Every value.
    pub const ALL: [Self; 3] = [Self::NotRead, Self::Excerpt, Self::Whole];

    /// The value's name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotRead => "not_read",
            Self::Excerpt => "excerpt",
            Self::Whole => "whole",
        }
    }
}

/// The problem a refused request was answered with, as the sender received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredProblem {
    pub status: u16,
    pub code: String,
    pub title: String,
    pub detail: String,
}

/// A request as the invocation log keeps it, beside the invocation's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The request's headers as (name, value) sorted by name (a repeated header's values in
    /// the order received), names in lower case, values as text (invalid UTF-8 replaced); credentials as [`REDACTED`].
    pub headers: Vec<(String, String)>,
    /// Headers left out because the record was full ([`MAX_RECORDED_HEADERS`],
    /// [`MAX_RECORDED_HEADER_BYTES`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub headers_omitted: u32,
    pub body_kept: BodyKept,
    /// The body's text when the invocation has no payload to show it (a request refused after
    /// its body was read, a duplicate): whole, or its first [`BODY_EXCERPT_BYTES`] bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_text: Option<String>,
    /// The problem answered, for a refused request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<AnsweredProblem>,
    /// For an event ignored because its type is not subscribed: the webhook's event types it
    /// was matched against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<Vec<String>>,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
const fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RequestRecord {
    /// The record of a request with `headers`, of which `secret_header` (the header a generic
    /// webhook's `verification` names for its secret, lower case) is redacted besides the
    /// credential headers. Nothing of its body is known yet.
    pub fn of_headers(headers: &impl RequestHeaders, secret_header: Option<&str>) -> Self {
        let mut all = Vec::new();
        headers.each(&mut |name, value| {
            let redacted = CREDENTIAL_HEADERS
                .iter()
                .any(|credential| name.eq_ignore_ascii_case(credential))
                || secret_header.is_some_and(|secret| name.eq_ignore_ascii_case(secret));
            let value = if redacted {
                REDACTED.to_owned()
            } else {
                String::from_utf8_lossy(value).into_owned()
            };
            all.push((name.to_ascii_lowercase(), value));
        });
        // An HTTP server's header map does not keep the order of arrival; sorted, the record
        // reads (and is cut) the same every time. The sort is stable: a repeated header's
        // values keep their order.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept = Vec::new();
        let mut omitted = 0u32;
        let mut bytes = 0usize;
        for (name, value) in all {
            let size = name.len() + value.len();
            if kept.len() >= MAX_RECORDED_HEADERS || bytes + size > MAX_RECORDED_HEADER_BYTES {
                omitted = omitted.saturating_add(1);
                continue;
            }
            bytes += size;
            kept.push((name, value));
        }
        Self {
            headers: kept,
            headers_omitted: omitted,
            ..Self::default()
        }
    }

    /// This record, with the body that was read: kept whole when it is UTF-8 and at most
    /// [`BODY_EXCERPT_BYTES`] bytes, else its first bytes.
    #[must_use]
    pub fn with_body_text(mut self, body: &[u8]) -> Self {
        let whole = body.len() <= BODY_EXCERPT_BYTES;
        let head = &body[..body.len().min(BODY_EXCERPT_BYTES)];
        let text = match std::str::from_utf8(head) {
            Ok(text) => Some(text.to_owned()),
            // Cut inside a character: keep what precedes it.
            Err(e) if !whole && e.error_len().is_none() => {
                Some(String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned())
            }
            Err(_) => None,
        };
        let (body_kept, text) = match text {
            Some(text) if whole => (BodyKept::Whole, text),
            Some(text) => (BodyKept::Excerpt, text),
            None => (
                BodyKept::Excerpt,
                super::cut_bytes(
                    String::from_utf8_lossy(head).into_owned(),
                    BODY_EXCERPT_BYTES,
                ),
            ),
        };
        self.body_kept = body_kept;
        self.body_text = Some(text);
        self
    }

    /// This record, with the body kept whole as the invocation's payload.
    #[must_use]
    pub fn with_payload(mut self) -> Self {
        self.body_kept = BodyKept::Whole;
        self.body_text = None;
        self
    }

    /// This record, with the problem answered.
    #[must_use]
    pub fn with_problem(mut self, problem: AnsweredProblem) -> Self {
        self.problem = Some(problem);
        self
    }

    /// The value of the first recorded header called `name` that was not redacted.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .filter(|value| *value != REDACTED)
    }

    /// The record as the stores keep it: compact JSON.
    pub fn to_json(&self) -> String {
        // Strings, numbers and enums of names only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads what [`RequestRecord::to_json`] wrote.
    ///
    /// # Errors
    /// The JSON is not a record (a corrupt row).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect()
    }

    #[test]
    fn credentials_and_the_verification_header_are_redacted() {
        let sent = headers(&[
            ("Content-Type", b"application/json"),
            ("Authorization", b"Bearer s3cret"),
            ("proxy-authorization", b"Basic eDp5"),
            ("Cookie", b"session=1"),
            ("X-Webhook-Secret", b"whsec_abc"),
            ("x-gitlab-token", b"glt"),
            ("X-My-Token", b"custom"),
            ("X-Hub-Signature-256", b"sha256=00"),
        ]);
        let record = RequestRecord::of_headers(&sent, Some("x-my-token"));
        // Sorted by name, whatever order they came in.
        let expected: Vec<(String, String)> = [
            ("authorization", REDACTED),
            ("content-type", "application/json"),
            ("cookie", REDACTED),
            ("proxy-authorization", REDACTED),
            ("x-gitlab-token", REDACTED),
            ("x-hub-signature-256", "sha256=00"),
            ("x-my-token", REDACTED),
            ("x-webhook-secret", REDACTED),
        ]
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(record.headers, expected);
        assert_eq!(record.headers_omitted, 0);
        let json = record.to_json();
        for secret in ["s3cret", "eDp5", "session", "whsec_abc", "glt", "custom"] {
            assert!(!json.contains(secret), "{secret} in {json}");
        }
        assert_eq!(record.header("authorization"), None);
        assert_eq!(record.header("Content-Type"), Some("application/json"));
    }

    #[test]
    fn headers_are_bounded_in_number_and_bytes() {
        let many: Vec<(String, Vec<u8>)> = (0..100)
            .map(|n| (format!("x-h{n}"), b"v".to_vec()))
            .collect();
        let record = RequestRecord::of_headers(&many, None);
        assert_eq!(record.headers.len(), MAX_RECORDED_HEADERS);
        assert_eq!(record.headers_omitted, 100 - 64);

        let big = vec![b'a'; 5000];
        let sent = headers(&[("x-a", &big), ("x-b", &big), ("x-c", b"small")]);
        let record = RequestRecord::of_headers(&sent, None);
        let names: Vec<&str> = record.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-a", "x-c"],
            "a header that does not fit is skipped"
        );
        assert_eq!(record.headers_omitted, 1);
    }

    #[test]
    fn bodies_are_kept_whole_when_small_and_text() {
        let check = |body: &[u8], kept: BodyKept, text: &str| {
            let record = RequestRecord::default().with_body_text(body);
            assert_eq!(record.body_kept, kept, "{body:?}");
            assert_eq!(record.body_text.as_deref(), Some(text));
        };
        check(b"{\"a\":", BodyKept::Whole, "{\"a\":");
        check(b"", BodyKept::Whole, "");
        check(b"\xff{}", BodyKept::Excerpt, "\u{fffd}{}");
        let long = "é".repeat(BODY_EXCERPT_BYTES);
        let cut = "é".repeat(BODY_EXCERPT_BYTES / 2);
        check(long.as_bytes(), BodyKept::Excerpt, &cut);
        let odd = format!("a{long}");
        let cut = format!("a{}", "é".repeat(BODY_EXCERPT_BYTES / 2 - 1));
        check(odd.as_bytes(), BodyKept::Excerpt, &cut);
        let exact = "a".repeat(BODY_EXCERPT_BYTES);
        check(exact.as_bytes(), BodyKept::Whole, &exact);
    }

    #[test]
    fn the_stored_form_reads_back() {
        let record = RequestRecord {
            subscriptions: Some(vec!["deploy.*".to_owned()]),
            problem: Some(AnsweredProblem {
                status: 400,
                code: "invalid_payload".to_owned(),
                title: "Invalid payload".to_owned(),
                detail: "the body is not valid JSON".to_owned(),
            }),
            ..RequestRecord::of_headers(&headers(&[("a", b"b")]), None).with_body_text(b"{")
        };
        let json = record.to_json();
        assert_eq!(RequestRecord::from_json(&json).unwrap(), record);
        let bare = RequestRecord::default().with_payload().to_json();
        assert_eq!(bare, r#"{"headers":[],"body_kept":"whole"}"#);
        assert_eq!(
            BodyKept::ALL.map(BodyKept::as_str),
            ["not_read", "excerpt", "whole"]
        );
    }
}
