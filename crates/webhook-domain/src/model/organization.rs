//! Organizations (tenants) and their API keys.

use serde::{Deserialize, Serialize};

use super::{ApiKeyHash, ApiKeyId, Name, OrganizationId, RatePerMinute, Timestamp};

/// A tenant: everything else belongs to exactly one organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: OrganizationId,
    pub name: Name,
    /// Requests per minute across all of the organization's webhooks.
    pub rate_limit_per_minute: RatePerMinute,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads and manages everything of its organization.
    Admin,
    /// Reads everything of its organization, changes nothing.
    Viewer,
}

impl Role {
    /// The role's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }

    /// Parses a role name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "viewer" => Some(Self::Viewer),
            _ => None,
        }
    }

    /// Whether this role may change objects.
    pub const fn can_write(self) -> bool {
        matches!(self, Self::Admin)
    }
}

/// An API key; only its hash is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub organization_id: OrganizationId,
    pub name: Name,
    pub role: Role,
    pub hash: ApiKeyHash,
    pub created_at: Timestamp,
}
