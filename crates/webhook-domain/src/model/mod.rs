//! Entities and value types of the webhook domain.

mod delivery;
mod event_type;
mod ids;
mod ingest;
mod invocation;
mod organization;
mod page;
mod record;
mod search;
mod secret;
mod source;
mod summary;
mod target;
mod task;
mod timestamp;
mod validated;
mod webhook;

pub use delivery::{
    AttemptVerdict, ClaimFloor, ClaimRequest, ClaimedTask, DeliveryFailure, DeliveryReport,
    FinishedAttempt, Lease, QueueStats,
};
pub use event_type::{EventTypePattern, EventTypes, InvalidEventTypePattern};
pub use ids::{ApiKeyId, IdParseError, InvocationId, OrganizationId, TargetId, TaskId, WebhookId};
pub use ingest::{
    ClaimOutcome, CoalescedReason, CoalescedRejection, DeliveryClaim, IngestRoute, RateRequest,
    Stale,
};
pub use invocation::{
    DeliveryAttempt, InvalidPayload, Invocation, InvocationOutcome, MAX_PAYLOAD_DEPTH,
    OutcomeFilter, Payload, PayloadFields, TargetResponse,
};
pub use organization::{ApiKey, Organization, Role};
pub use page::{Cursor, InvalidPageLimit, Page, PageRequest};
pub use record::{
    AnsweredProblem, BODY_EXCERPT_BYTES, BodyKept, MAX_RECORDED_HEADER_BYTES, MAX_RECORDED_HEADERS,
    REDACTED, RequestRecord,
};
pub use search::{
    InvalidSearch, InvocationFilter, MAX_INDEXED_BYTES, MAX_QUERY_WORDS, MAX_WORD_CHARS,
    SearchWords, indexed_words,
};
pub use secret::{ApiKeyHash, InvalidSecret, SealedSecret, Secret};
pub use source::{
    Cidr, CidrList, FieldRef, HeaderName, InstructionTemplate, InvalidCidr, InvalidFieldRef,
    InvalidHeaderName, InvalidInstructionTemplate, InvalidSetting, MacAlgorithm, RequestHeaders,
    SignatureEncoding, Source, SourceSettings, Verification,
};
pub(crate) use source::{header_text, scalar_text};
pub use summary::{
    DeliveryStatus, InvocationSummary, MESSAGE_PREVIEW_CHARS, PAYLOAD_EXCERPT_BYTES, TaskSummary,
    cut_bytes, cut_chars,
};
pub use target::{EndpointUrl, InvalidEndpointUrl, Target, TargetKind};
pub use task::{DeliveryRound, Task, TaskFilter, TaskSource, TaskStatus, TaskStatusChange};
pub use timestamp::Timestamp;
pub use validated::{InvalidName, InvalidRate, Name, RatePerMinute};
pub use webhook::{
    HEALTH_WINDOW, InvalidPublicUrl, PublicUrl, Webhook, WebhookFilter, WebhookHealth,
    WebhookStatus,
};
