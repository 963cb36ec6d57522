//! The test endpoint: sends an event through the real ingest pipeline as a correctly
//! authenticated sender would, marked `test`; and the sending of replays, which go the same way.

use std::future::Future;
use std::sync::Arc;

use super::{Caller, Invalid, ManageError, Management, Replay, written_id};
use crate::model::{InvocationId, Payload, TaskId, WebhookId};
use crate::ports::Adapters;
use crate::service::{
    BodyRead, Ingest, IngestBody, IngestHead, IngestOutcome, IngestRejection, Sender,
};

/// The payload sent when the caller gives none.
pub const DEFAULT_TEST_PAYLOAD: &str = r#"{"message":"Test event","test":true}"#;

/// Runs events the management API sends (test events, replays) through ingest.
pub trait TestSender: Send + Sync {
    /// Sends `payload` (a JSON object) to `webhook_id` as [`Sender::TestEndpoint`].
    fn send_test(
        &self,
        webhook_id: WebhookId,
        payload: &[u8],
    ) -> impl Future<Output = IngestOutcome> + Send;

    /// Sends a logged request again, with its headers, as [`Sender::Replay`].
    fn send_replay(&self, replay: Replay) -> impl Future<Output = IngestOutcome> + Send;
}

impl<A: Adapters> Ingest<A> {
    /// Runs `body` with `headers` through both halves of the pipeline as `sender`.
    async fn send_internal(
        &self,
        webhook_id: WebhookId,
        sender: Sender,
        headers: &[(String, Vec<u8>)],
        content_type: &[u8],
        body: &[u8],
    ) -> IngestOutcome {
        let id = webhook_id.to_string();
        let head = IngestHead {
            webhook_id: &id,
            source_ip: None,
            sender,
        };
        match self.begin(head, &headers).await {
            Ok(admission) => {
                let body = IngestBody {
                    content_type: Some(content_type),
                    body: BodyRead::Complete(body),
                };
                self.finish(admission, &headers, body).await
            }
            Err(outcome) => outcome,
        }
    }
}

impl<A: Adapters> TestSender for Ingest<A> {
    async fn send_test(&self, webhook_id: WebhookId, payload: &[u8]) -> IngestOutcome {
        self.send_internal(
            webhook_id,
            Sender::TestEndpoint,
            &[],
            b"application/json",
            payload,
        )
        .await
    }

    async fn send_replay(&self, replay: Replay) -> IngestOutcome {
        let sender = Sender::Replay {
            of: replay.of,
            test: replay.test,
        };
        self.send_internal(
            replay.webhook_id,
            sender,
            &replay.headers,
            replay.content_type.as_bytes(),
            replay.body.as_bytes(),
        )
        .await
    }
}

impl<T: TestSender> TestSender for Arc<T> {
    fn send_test(
        &self,
        webhook_id: WebhookId,
        payload: &[u8],
    ) -> impl Future<Output = IngestOutcome> + Send {
        T::send_test(self, webhook_id, payload)
    }

    fn send_replay(&self, replay: Replay) -> impl Future<Output = IngestOutcome> + Send {
        T::send_replay(self, replay)
    }
}

/// What the pipeline did with a test event.
#[derive(Debug)]
pub enum TestResult {
    /// Accepted: the invocation and its task are committed, marked `test`.
    Accepted {
        invocation_id: InvocationId,
        task_id: TaskId,
    },
    /// Logged, but the webhook does not subscribe to the payload's event type.
    Ignored { invocation_id: InvocationId },
    /// A repeat of an earlier delivery id: the earlier request's ids. Neither the test
    /// endpoint nor a replay claims a delivery id, so neither is answered this today; it
    /// stays so that every outcome of the pipeline has its answer.
    Duplicate {
        invocation_id: InvocationId,
        task_id: Option<TaskId>,
    },
    /// Refused as a real sender would be (disabled, deleted, rate limited, …).
    Rejected(IngestRejection),
}

impl<A: Adapters> Management<A> {
    /// Sends `payload` (JSON text of an object; the default test event when `None`) to one of
    /// the caller's webhooks through `sender`.
    pub async fn test_webhook(
        &self,
        caller: &Caller,
        id: &str,
        payload: Option<&str>,
        sender: &impl TestSender,
    ) -> Result<TestResult, ManageError> {
        let id: WebhookId = written_id(caller, id)?;
        let payload = payload.unwrap_or(DEFAULT_TEST_PAYLOAD);
        Payload::parse_object(payload.as_bytes()).map_err(|e| Invalid::new("payload", e))?;
        let webhook = self.owned(caller, id).await?;
        test_result(sender.send_test(webhook.id, payload.as_bytes()).await)
    }
}

/// What the management API answers for an event it sent through the pipeline: a refusal of
/// the store is its own failure, any other refusal what a real sender would have been told.
pub(super) fn test_result(outcome: IngestOutcome) -> Result<TestResult, ManageError> {
    match outcome {
        IngestOutcome::Accepted {
            invocation_id,
            task_id,
            ..
        } => Ok(TestResult::Accepted {
            invocation_id,
            task_id,
        }),
        IngestOutcome::Ignored { invocation_id, .. }
        | IngestOutcome::Handshake { invocation_id, .. } => {
            Ok(TestResult::Ignored { invocation_id })
        }
        IngestOutcome::Duplicate {
            invocation_id,
            task_id,
            ..
        } => Ok(TestResult::Duplicate {
            invocation_id,
            task_id,
        }),
        IngestOutcome::Rejected {
            rejection:
                IngestRejection::StoreUnavailable(e)
                | IngestRejection::OutcomeUnknown(e)
                | IngestRejection::Internal(e),
            ..
        } => Err(ManageError::Store(e)),
        IngestOutcome::Rejected { rejection, .. } => Ok(TestResult::Rejected(rejection)),
    }
}
