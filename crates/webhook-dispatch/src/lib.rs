//! webhookd's dispatcher: claims queued tasks from the store under a lease and pushes each to
//! its target's endpoint over HTTP, signed per Standard Webhooks, retried with backoff, and
//! only to addresses the SSRF guard allows.
//!
//! - [`Dispatcher`]: the claim → deliver → record loop, with per-node and per-target limits.
//! - [`HttpDelivery`]: the [`webhook_domain::ports::TargetDelivery`] adapter on `reqwest`.
//! - [`check_endpoint`]: the SSRF check for an endpoint URL when a target is saved, and
//!   [`OutboundGuard`], the same as the management use cases' endpoint guard.
//! - [`DispatchMetrics`]: counters rendered in the Prometheus text format.

mod dispatcher;
mod floors;
mod guard;
mod http;
mod message;
mod metrics;
mod signing;

pub use dispatcher::{ClaimOutcome, DispatchConfig, Dispatcher};
pub use guard::{EndpointRefused, OutboundGuard, OutboundPolicy, check_endpoint, is_public};
pub use http::{ClientBuildError, DeliveryConfig, HttpDelivery};
pub use message::task_body;
pub use metrics::{AttemptResult, DispatchMetrics};
pub use signing::{SECRET_PREFIX, SigningKey, standard_form};
