//! What ingest works with besides the entities: a webhook's route on the hot path, a request to
//! charge against the rate limits, a rejection counted rather than written, and which cached
//! routes a change made stale.

use std::net::IpAddr;

use super::{
    EventTypes, OrganizationId, RatePerMinute, Secret, TargetId, Timestamp, WebhookId,
    WebhookStatus,
};

/// One request to charge against a webhook's and its organization's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRequest {
    pub webhook_id: WebhookId,
    pub webhook_quota: RatePerMinute,
    pub organization_id: OrganizationId,
    pub organization_quota: RatePerMinute,
    pub now: Timestamp,
}

/// What ingest needs to know of a webhook, with its secret already unsealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRoute {
    pub webhook_id: WebhookId,
    pub organization_id: OrganizationId,
    pub target_id: TargetId,
    pub status: WebhookStatus,
    pub secret: Option<Secret>,
    pub event_types: EventTypes,
    pub webhook_quota: RatePerMinute,
    pub organization_quota: RatePerMinute,
}

/// Why a coalesced rejection happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoalescedReason {
    /// 410 `webhook_deleted`.
    Deleted,
    /// 403 `webhook_disabled`.
    Disabled,
    /// 429 `rate_limited`.
    RateLimited,
    /// 401 `invalid_secret`.
    InvalidSecret,
}

impl CoalescedReason {
    /// The HTTP status and problem `code` the requests were answered with.
    pub const fn answer(self) -> (u16, &'static str) {
        match self {
            Self::Deleted => (410, "webhook_deleted"),
            Self::Disabled => (403, "webhook_disabled"),
            Self::RateLimited => (429, "rate_limited"),
            Self::InvalidSecret => (401, "invalid_secret"),
        }
    }
}

/// A rejection that is counted, not written one by one, so a flood cannot become a flood of
/// writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescedRejection {
    pub webhook_id: WebhookId,
    pub organization_id: OrganizationId,
    pub reason: CoalescedReason,
    pub source_ip: Option<IpAddr>,
    pub at: Timestamp,
    pub test: bool,
}

/// Which cached ingest routes a change made stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stale {
    /// This webhook's route.
    Webhook(WebhookId),
    /// The routes of every webhook of this organization (its limit changed).
    Organization(OrganizationId),
}
