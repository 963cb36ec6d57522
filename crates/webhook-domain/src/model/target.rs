//! Targets: the agents and teams that receive tasks.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Name, OrganizationId, SealedSecret, TargetId, Timestamp};

/// Whether a target is a single agent or a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Agent,
    Team,
}

impl TargetKind {
    /// The kind's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Team => "team",
        }
    }

    /// Parses a kind name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "agent" => Some(Self::Agent),
            "team" => Some(Self::Team),
            _ => None,
        }
    }
}

/// Where a target's tasks are pushed: an absolute `http` or `https` URL without credentials.
/// Whether its host may be reached (SSRF policy) is decided by the delivery adapter.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EndpointUrl(Url);

/// Why an endpoint URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEndpointUrl {
    /// Not an absolute URL.
    #[error("must be an absolute URL")]
    NotAUrl,
    /// A scheme other than http or https.
    #[error("must use http or https")]
    UnsupportedScheme,
    /// User name or password in the URL.
    #[error("must not contain credentials")]
    HasCredentials,
    /// No host.
    #[error("must name a host")]
    NoHost,
    /// Longer than [`EndpointUrl::MAX_LEN`].
    #[error("must be at most {} characters", EndpointUrl::MAX_LEN)]
    TooLong,
}

impl EndpointUrl {
    /// Longest URL accepted.
    pub const MAX_LEN: usize = 2048;

    /// Validates an endpoint URL.
    pub fn parse(text: &str) -> Result<Self, InvalidEndpointUrl> {
        if text.len() > Self::MAX_LEN {
            return Err(InvalidEndpointUrl::TooLong);
        }
        let url = Url::parse(text).map_err(|_| InvalidEndpointUrl::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidEndpointUrl::UnsupportedScheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidEndpointUrl::HasCredentials);
        }
        if url.host().is_none() {
            return Err(InvalidEndpointUrl::NoHost);
        }
        Ok(Self(url))
    }

    /// The URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

/// An agent or team that receives tasks, pushed to `endpoint_url` when it has one, otherwise kept
/// on its board for it to read and update through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: TargetId,
    pub organization_id: OrganizationId,
    pub kind: TargetKind,
    pub name: Name,
    pub endpoint_url: Option<EndpointUrl>,
    /// Key of the signatures on deliveries to this target.
    pub signing_secret: SealedSecret,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Target {
    /// The target's place in its organization's list, newest first: what a page after it
    /// starts from.
    pub fn cursor(&self) -> super::Cursor {
        super::Cursor {
            at: self.created_at,
            id: *self.id.as_uuid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert!(EndpointUrl::parse("https://agent.example.com/hooks?x=1").is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/").is_ok());
        let check = |text: &str, expected: InvalidEndpointUrl| {
            assert_eq!(EndpointUrl::parse(text), Err(expected), "{text}");
        };
        check("not a url", InvalidEndpointUrl::NotAUrl);
        check("/relative", InvalidEndpointUrl::NotAUrl);
        check("ftp://example.com/", InvalidEndpointUrl::UnsupportedScheme);
        check("file:///etc/passwd", InvalidEndpointUrl::UnsupportedScheme);
        check(
            "https://user:pw@example.com/",
            InvalidEndpointUrl::HasCredentials,
        );
        check(
            &format!("https://example.com/{}", "a".repeat(2048)),
            InvalidEndpointUrl::TooLong,
        );
    }
}
