//! The domain's rules as pure functions: status transitions and the rate-limit policy.

mod rate_limit;
mod status;

pub use rate_limit::{RateDecision, RateScope, RateStatus, SlidingWindow, decide};
pub use status::{
    TaskTransitionError, WebhookTransitionError, task_transition, webhook_transition,
};
