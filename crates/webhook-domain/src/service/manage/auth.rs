//! Authentication by API key, and the role check of writes.

use super::{AuthError, ManageError, Management};
use crate::model::{ApiKeyId, OrganizationId, Role, Secret};
use crate::ports::{Adapters, KeyHasher, OrganizationStore, StoreError};

/// Who is calling: the organization and role of a valid API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub organization_id: OrganizationId,
    pub role: Role,
    pub key_id: ApiKeyId,
}

impl Caller {
    /// Refuses callers whose role may not change objects.
    pub fn require_write(&self) -> Result<(), ManageError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(ManageError::Forbidden)
        }
    }
}

impl<A: Adapters> Management<A> {
    /// Finds the live key whose hash matches `key` (the text after `Bearer `).
    pub async fn authenticate(&self, key: &str) -> Result<Caller, AuthError> {
        // Generated keys always pass this check; anything else cannot be a stored key.
        let key = Secret::parse(key).map_err(|_| AuthError::Unauthorized)?;
        match self.store.api_key_by_hash(&self.hasher.hash(&key)).await {
            Ok(found) => Ok(Caller {
                organization_id: found.organization_id,
                role: found.role,
                key_id: found.id,
            }),
            Err(StoreError::NotFound) => Err(AuthError::Unauthorized),
            Err(e) => Err(AuthError::Store(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_write() {
        let caller = |role| Caller {
            organization_id: OrganizationId::from_uuid(uuid::Uuid::nil()),
            role,
            key_id: ApiKeyId::from_uuid(uuid::Uuid::nil()),
        };
        assert!(caller(Role::Admin).require_write().is_ok());
        assert!(matches!(
            caller(Role::Viewer).require_write(),
            Err(ManageError::Forbidden)
        ));
    }
}
