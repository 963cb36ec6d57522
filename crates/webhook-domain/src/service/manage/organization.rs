//! The caller's organization: its name and its rate limit.

use super::{Caller, ManageError, Management, parse_name, parse_rate};
use crate::model::Organization;
use crate::model::Stale;
use crate::ports::{Adapters, Clock, Notifier as _, OrganizationStore};

/// Changes to an organization; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub rate_limit_per_minute: Option<i64>,
}

impl<A: Adapters> Management<A> {
    /// The caller's organization.
    pub async fn organization(&self, caller: &Caller) -> Result<Organization, ManageError> {
        Ok(self.store.organization(caller.organization_id).await?)
    }

    /// Renames the organization or changes its limit.
    pub async fn update_organization(
        &self,
        caller: &Caller,
        patch: OrganizationPatch,
    ) -> Result<Organization, ManageError> {
        caller.require_write()?;
        let name = patch
            .name
            .as_deref()
            .map(|n| parse_name("name", n))
            .transpose()?;
        let rate = patch
            .rate_limit_per_minute
            .map(|r| parse_rate("rate_limit_per_minute", r))
            .transpose()?;
        let mut organization = self.store.organization(caller.organization_id).await?;
        if let Some(name) = name {
            organization.name = name;
        }
        if let Some(rate) = rate {
            organization.rate_limit_per_minute = rate;
        }
        organization.updated_at = self.clock.now();
        self.store.update_organization(&organization).await?;
        self.notifier
            .routes_changed(Stale::Organization(organization.id));
        Ok(organization)
    }
}
