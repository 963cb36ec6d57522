//! The domain's rules as pure functions: status transitions, the rate-limit policy and the
//! delivery retry policy.

mod rate_limit;
mod retry;
mod status;

pub use rate_limit::{RateDecision, RateScope, RateStatus, SlidingWindow, decide};
pub use retry::{
    AttemptNumber, Disposition, RetryPolicy, attempt_verdict, classify, next_attempt_number,
    next_delay,
};
pub use status::{
    TaskTransitionError, WebhookTransitionError, task_transition, webhook_transition,
};
