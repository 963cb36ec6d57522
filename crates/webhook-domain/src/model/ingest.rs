//! What ingest works with besides the entities: a webhook's route on the hot path, a request to
//! charge against the rate limits, a rejection counted rather than written, and which cached
//! routes a change made stale.

use std::net::IpAddr;

use super::{
    CidrList, EventTypes, InvocationId, OrganizationId, RatePerMinute, Secret, SourceSettings,
    TargetId, Timestamp, WebhookId, WebhookStatus,
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
    /// The secret a rotation replaced, with the time it stops verifying.
    pub previous_secret: Option<(Secret, Timestamp)>,
    pub event_types: EventTypes,
    pub webhook_quota: RatePerMinute,
    pub organization_quota: RatePerMinute,
    pub source: SourceSettings,
    /// Empty allows every address.
    pub allowed_source_ips: CidrList,
}

impl IngestRoute {
    /// The secrets that verify a request at `now`: the current one and, during a rotation's
    /// overlap, the previous one. Empty when the webhook has no secret.
    pub fn secrets_at(&self, now: Timestamp) -> Vec<&Secret> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, expires_at)| now < *expires_at)
            .map(|(secret, _)| secret);
        self.secret.iter().chain(previous).collect()
    }
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
    /// 401 `invalid_signature`.
    InvalidSignature,
    /// 401 `signature_expired`.
    SignatureExpired,
    /// 403 `source_not_allowed`.
    SourceNotAllowed,
    /// 200 `duplicate`: a delivery id already accepted within the dedup window.
    Duplicate,
}

impl CoalescedReason {
    /// The HTTP status and problem `code` the requests were answered with.
    pub const fn answer(self) -> (u16, &'static str) {
        match self {
            Self::Deleted => (410, "webhook_deleted"),
            Self::Disabled => (403, "webhook_disabled"),
            Self::RateLimited => (429, "rate_limited"),
            Self::InvalidSecret => (401, "invalid_secret"),
            Self::InvalidSignature => (401, "invalid_signature"),
            Self::SignatureExpired => (401, "signature_expired"),
            Self::SourceNotAllowed => (403, "source_not_allowed"),
            Self::Duplicate => (200, "duplicate"),
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
    /// For [`CoalescedReason::Duplicate`]: the invocation that claimed the delivery id first.
    pub duplicate_of: Option<InvocationId>,
}

/// A delivery id an accepted or ignored event claims on its webhook, so that a sender's retry
/// within the window is answered as a duplicate instead of becoming a second task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    /// At most [`crate::rules::MAX_DELIVERY_ID_BYTES`] bytes.
    pub delivery_id: String,
    /// A claim of the same id made before this time has lapsed and is taken over.
    pub window_start: Timestamp,
}

/// What [`crate::ports::InvocationLog::record_claimed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The invocation (and its task) were written and now hold the claim.
    Recorded,
    /// Another invocation holds the claim within the window; nothing was written.
    Duplicate {
        invocation_id: InvocationId,
        task_id: Option<super::TaskId>,
    },
}

/// Which cached ingest routes a change made stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stale {
    /// This webhook's route.
    Webhook(WebhookId),
    /// The routes of every webhook of this organization (its limit changed).
    Organization(OrganizationId),
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn route(secret: Option<&str>, previous: Option<(&str, i64)>) -> IngestRoute {
        let secret_of = |text: &str| Secret::parse(text).unwrap();
        IngestRoute {
            webhook_id: WebhookId::from_uuid(Uuid::from_u128(1)),
            organization_id: OrganizationId::from_uuid(Uuid::from_u128(2)),
            target_id: TargetId::from_uuid(Uuid::from_u128(3)),
            status: WebhookStatus::Active,
            secret: secret.map(secret_of),
            previous_secret: previous
                .map(|(text, until)| (secret_of(text), Timestamp::from_unix_micros(until))),
            event_types: EventTypes::all(),
            webhook_quota: RatePerMinute::WEBHOOK_DEFAULT,
            organization_quota: RatePerMinute::ORGANIZATION_DEFAULT,
            source: SourceSettings::default(),
            allowed_source_ips: CidrList::default(),
        }
    }

    #[test]
    fn the_previous_secret_verifies_until_its_overlap_ends() {
        let new = "whsec_the-new-secret-0001";
        let old = "whsec_the-old-secret-0001";
        let route = route(Some(new), Some((old, 1_000)));
        let names = |at: i64| -> Vec<String> {
            route
                .secrets_at(Timestamp::from_unix_micros(at))
                .iter()
                .map(|s| s.expose().to_owned())
                .collect()
        };
        assert_eq!(names(999), [new, old]);
        assert_eq!(names(1_000), [new], "the overlap ends at its expiry");
        assert_eq!(names(5_000), [new]);
    }

    #[test]
    fn a_webhook_without_a_secret_has_none_to_verify() {
        assert!(
            route(None, None)
                .secrets_at(Timestamp::from_unix_micros(0))
                .is_empty()
        );
    }
}
