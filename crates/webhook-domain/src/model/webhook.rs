//! Webhooks: the URLs external systems post events to.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{
    CidrList, EventTypes, Name, OrganizationId, RatePerMinute, SealedSecret, SourceSettings,
    TargetId, Timestamp, WebhookId,
};

/// A webhook's lifecycle state; see [`crate::rules::webhook_transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Accepts events.
    Active,
    /// Keeps its URL, rejects events with 403.
    Disabled,
    /// Tombstone: the URL answers 410 forever and the id is never reused.
    Deleted,
}

impl WebhookStatus {
    /// The status's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    /// Parses a status name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A webhook endpoint of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub target_id: TargetId,
    pub event_types: EventTypes,
    /// When set, senders must prove they hold it, as the webhook's source does.
    pub secret: Option<SealedSecret>,
    /// The secret replaced by the last rotation, which also verifies until
    /// `previous_secret_expires_at`.
    pub previous_secret: Option<SealedSecret>,
    pub previous_secret_expires_at: Option<Timestamp>,
    /// The sender's dialect and the webhook's overrides of it.
    pub source: SourceSettings,
    /// The networks requests may come from; empty allows every address.
    pub allowed_source_ips: CidrList,
    pub rate_limit_per_minute: RatePerMinute,
    pub status: WebhookStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_triggered_at: Option<Timestamp>,
}

impl Webhook {
    /// The webhook's place in its organization's list, newest first: what a page after it
    /// starts from.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor {
            at: self.created_at,
            id: *self.id.as_uuid(),
        }
    }
}

/// Which webhooks a list holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookFilter {
    /// Only webhooks with this status; `None` holds those that are not deleted (active and
    /// disabled), so tombstones are listed only when asked for.
    pub status: Option<WebhookStatus>,
}

impl WebhookFilter {
    /// Whether a webhook with `status` is in the list.
    pub fn admits(self, status: WebhookStatus) -> bool {
        match self.status {
            Some(wanted) => status == wanted,
            None => status != WebhookStatus::Deleted,
        }
    }
}

/// How long [`WebhookHealth`] looks back: the last 24 hours.
pub const HEALTH_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// How a webhook fared over a window of its invocation log (the API's `health`), read from
/// the log itself: nothing is counted as events arrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookHealth {
    /// Accepted invocations.
    pub accepted: u64,
    /// Requests that failed, as the log's [`super::OutcomeFilter::Failed`] selects their
    /// entries (rejected, or accepted and then failed in delivery or by their task); an entry
    /// that stands for several coalesced rejections counts each (its `repeat_count`).
    pub failed: u64,
    /// When the newest of those failures was received; `None` when there were none.
    pub last_failure_at: Option<Timestamp>,
}

impl WebhookHealth {
    /// One health per id of `ids`, in their order, from what a store `found` per webhook; an
    /// id it found nothing for has the default (nothing in the window).
    pub fn in_order_of(
        ids: &[WebhookId],
        found: impl IntoIterator<Item = (WebhookId, Self)>,
    ) -> Vec<Self> {
        let found: std::collections::HashMap<WebhookId, Self> = found.into_iter().collect();
        ids.iter()
            .map(|id| found.get(id).copied().unwrap_or_default())
            .collect()
    }
}

/// The externally reachable base URL of the service, e.g. `https://hooks.example.com` or
/// `https://example.com/webhookd`; webhook URLs are built on it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

/// Why a public URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPublicUrl {
    /// Not an absolute URL.
    #[error("must be an absolute URL")]
    NotAUrl,
    /// A scheme other than http or https.
    #[error("must use http or https")]
    UnsupportedScheme,
    /// A query, fragment or credentials, which cannot prefix a path.
    #[error("must not contain a query, a fragment or credentials")]
    NotABase,
}

impl PublicUrl {
    /// Validates a base URL; a trailing slash is dropped.
    pub fn parse(text: &str) -> Result<Self, InvalidPublicUrl> {
        let url = Url::parse(text).map_err(|_| InvalidPublicUrl::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidPublicUrl::UnsupportedScheme);
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.host().is_none()
        {
            return Err(InvalidPublicUrl::NotABase);
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// `{public_url}/api/webhooks/{id}`: the URL handed out for a webhook.
    pub fn webhook_url(&self, id: WebhookId) -> String {
        format!("{}/api/webhooks/{id}", self.0)
    }

    /// The base URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_webhook_urls() {
        let id: WebhookId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        let check = |base: &str, expected: &str| {
            assert_eq!(PublicUrl::parse(base).unwrap().webhook_url(id), expected);
        };
        check(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/api/webhooks/67e55044-10b1-426f-9247-bb680e5fe0c8",
        );
        check(
            "https://hooks.example.com/",
            "https://hooks.example.com/api/webhooks/67e55044-10b1-426f-9247-bb680e5fe0c8",
        );
        check(
            "https://example.com/webhookd/",
            "https://example.com/webhookd/api/webhooks/67e55044-10b1-426f-9247-bb680e5fe0c8",
        );
    }

    #[test]
    fn refuses_bad_bases() {
        for (base, refused) in [
            ("example.com", InvalidPublicUrl::NotAUrl),
            ("ftp://example.com", InvalidPublicUrl::UnsupportedScheme),
            ("https://example.com/?a=b", InvalidPublicUrl::NotABase),
            ("https://u:p@example.com/", InvalidPublicUrl::NotABase),
        ] {
            assert_eq!(PublicUrl::parse(base), Err(refused), "{base}");
        }
    }

    #[test]
    fn filters_admit_their_statuses() {
        use WebhookStatus::{Active, Deleted, Disabled};
        let check = |status: Option<WebhookStatus>, admitted: [bool; 3]| {
            let filter = WebhookFilter { status };
            assert_eq!(
                [Active, Disabled, Deleted].map(|s| filter.admits(s)),
                admitted,
                "{status:?}"
            );
        };
        check(None, [true, true, false]);
        check(Some(Active), [true, false, false]);
        check(Some(Disabled), [false, true, false]);
        check(Some(Deleted), [false, false, true]);
    }

    #[test]
    fn status_names_round_trip() {
        for status in [
            WebhookStatus::Active,
            WebhookStatus::Disabled,
            WebhookStatus::Deleted,
        ] {
            assert_eq!(WebhookStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(WebhookStatus::parse("paused"), None);
    }
}
