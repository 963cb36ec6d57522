//! Replay: a logged request's payload and headers sent through the ingest pipeline again, as a
//! correctly authenticated sender would send them.

use super::{Caller, ConflictCode, ManageError, Management, TestResult, TestSender, written_id};
use crate::model::{Invocation, InvocationId, WebhookId, WebhookStatus};
use crate::ports::{Adapters, InvocationLog};

/// A logged request to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub webhook_id: WebhookId,
    /// The invocation sent again; the new one names it as `replay_of`.
    pub of: InvocationId,
    /// Marked `test` only when the original was.
    pub test: bool,
    /// The recorded headers that were not redacted, `Content-Type` set to the body's.
    pub headers: Vec<(String, Vec<u8>)>,
    pub content_type: String,
    pub body: String,
}

impl Replay {
    /// The replay of `original`, or `None` when its body was not kept whole (refused before
    /// or while it was read, or kept only as an excerpt). A payload is sent as the JSON it was
    /// stored as; a refused request's body as it came, with its own `Content-Type`.
    pub fn of(original: &Invocation) -> Option<Self> {
        let record = original.request.as_ref();
        let (content_type, body) = match (&original.payload, record) {
            (Some(payload), _) => ("application/json".to_owned(), payload.as_str().to_owned()),
            (None, Some(record)) if record.body_kept == crate::model::BodyKept::Whole => {
                let body = record.body_text.clone()?;
                let content_type = record.header("content-type").unwrap_or_default();
                (content_type.to_owned(), body)
            }
            (None, _) => return None,
        };
        let mut headers: Vec<(String, Vec<u8>)> = record
            .map(|record| {
                record
                    .headers
                    .iter()
                    .filter(|(name, value)| {
                        value != crate::model::REDACTED
                            && !name.eq_ignore_ascii_case("content-type")
                            && !name.eq_ignore_ascii_case("content-length")
                    })
                    .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
                    .collect()
            })
            .unwrap_or_default();
        if !content_type.is_empty() {
            headers.push(("content-type".to_owned(), content_type.clone().into_bytes()));
        }
        Some(Self {
            webhook_id: original.webhook_id,
            of: original.id,
            test: original.test,
            headers,
            content_type,
            body,
        })
    }
}

impl<A: Adapters> Management<A> {
    /// Sends one of the caller's logged requests through `sender` again: quotas and the
    /// event-type filter apply, deduplication does not (a replay claims no delivery id).
    ///
    /// # Errors
    /// `Forbidden` for a viewer, `NotFound` for another organization's invocation,
    /// `WebhookDeleted` when its webhook is deleted, and a `not_replayable` conflict when its
    /// body was not kept whole. A disabled webhook is the pipeline's refusal, answered as a
    /// result.
    pub async fn replay_invocation(
        &self,
        caller: &Caller,
        id: &str,
        sender: &impl TestSender,
    ) -> Result<TestResult, ManageError> {
        let id: InvocationId = written_id(caller, id)?;
        let original = self.store.invocation(caller.organization_id, id).await?;
        let webhook = self.owned(caller, original.webhook_id).await?;
        if webhook.status == WebhookStatus::Deleted {
            return Err(ManageError::WebhookDeleted);
        }
        let replay = Replay::of(&original).ok_or_else(|| {
            ManageError::conflict(
                ConflictCode::NotReplayable,
                "this request's body was not kept whole (it was refused before or while it was read, or only an excerpt was kept), so it cannot be sent again",
            )
        })?;
        super::test_send::test_result(sender.send_replay(replay).await)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::model::{
        BodyKept, InvocationOutcome, OrganizationId, Payload, REDACTED, RequestRecord, Timestamp,
    };

    fn invocation(payload: Option<&str>, request: Option<RequestRecord>) -> Invocation {
        Invocation {
            id: InvocationId::from_uuid(Uuid::from_u128(1)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(2)),
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(3)),
            received_at: Timestamp::from_unix_micros(0),
            source_ip: None,
            event_type: None,
            payload: payload.map(|p| Payload::from_stored(p.to_owned())),
            outcome: InvocationOutcome::Rejected,
            http_status: 400,
            error_code: None,
            task_id: None,
            repeat_count: 1,
            test: true,
            target_response: None,
            delivery_id: None,
            duplicate_of: None,
            instruction_fallback: None,
            request,
            replay_of: None,
        }
    }

    fn record(body_kept: BodyKept, text: Option<&str>) -> RequestRecord {
        RequestRecord {
            headers: [
                ("content-type", "text/plain"),
                ("x-github-event", "push"),
                ("authorization", REDACTED),
                ("content-length", "9"),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
            body_kept,
            body_text: text.map(str::to_owned),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn only_bodies_kept_whole_are_replayed() {
        let header_names = |replay: &Replay| -> Vec<String> {
            replay.headers.iter().map(|(n, _)| n.clone()).collect()
        };
        // A payload is sent as JSON, with the headers that were not redacted.
        let replay = Replay::of(&invocation(
            Some("{\"a\":1}"),
            Some(record(BodyKept::Whole, None)),
        ))
        .unwrap();
        assert_eq!(
            (replay.content_type.as_str(), replay.body.as_str()),
            ("application/json", "{\"a\":1}")
        );
        assert_eq!(header_names(&replay), ["x-github-event", "content-type"]);
        assert!(replay.test, "a test stays a test");
        assert_eq!(replay.of, InvocationId::from_uuid(Uuid::from_u128(1)));
        // A refused body kept whole goes as it came.
        let replay = Replay::of(&invocation(
            None,
            Some(record(BodyKept::Whole, Some("not json"))),
        ))
        .unwrap();
        assert_eq!(
            (replay.content_type.as_str(), replay.body.as_str()),
            ("text/plain", "not json")
        );
        // Entries logged before records were kept: the payload is enough.
        let bare = Replay::of(&invocation(Some("{}"), None)).unwrap();
        assert_eq!(header_names(&bare), ["content-type"]);
        for refused in [
            invocation(None, Some(record(BodyKept::Excerpt, Some("{\"cut")))),
            invocation(None, Some(record(BodyKept::NotRead, None))),
            invocation(None, None),
        ] {
            assert_eq!(Replay::of(&refused), None, "{:?}", refused.request);
        }
    }
}
