//! The caller's organization: its name and its rate limit.

use super::{Caller, ManageError, Management, apply, patch_name, patch_rate};
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
        let name = patch_name(patch.name.as_deref())?;
        let rate = patch_rate(patch.rate_limit_per_minute)?;
        let mut organization = self.store.organization(caller.organization_id).await?;
        apply(&mut organization.name, name);
        apply(&mut organization.rate_limit_per_minute, rate);
        organization.updated_at = self.clock.now();
        self.store.update_organization(&organization).await?;
        self.notifier
            .routes_changed(Stale::Organization(organization.id));
        Ok(organization)
    }
}
