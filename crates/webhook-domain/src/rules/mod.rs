//! The domain's rules as pure functions: status transitions, the rate-limit policy, the
//! delivery retry policy, and the senders' dialects (sources).

mod rate_limit;
mod retry;
mod source;
mod status;

pub use rate_limit::{
    RateDecision, RateScope, RateStatus, SlidingWindow, decide, peek, whole_seconds_up,
};
pub use retry::{
    AttemptNumber, Disposition, RetryPolicy, attempt_verdict, classify, next_attempt_number,
    next_delay, task_status_change,
};
pub use source::{
    AuthFailure, AuthStage, Authenticity, BodyRefused, EventFields, Extraction, Handshake,
    HeadCheck, InstructionOrigin, MAX_DELIVERY_ID_BYTES, MAX_INSTRUCTION_BYTES, MediaType,
    SIGNATURE_TOLERANCE, TemplateFallback, cap_instruction,
};
pub use status::{
    TaskTransitionError, WebhookTransitionError, task_transition, webhook_transition,
};
