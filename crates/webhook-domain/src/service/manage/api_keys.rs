//! API keys: created with a random key shown once, stored only as a hash.

use super::{
    Caller, ConflictCode, Invalid, ManageError, Management, generate_secret, parse_name, written_id,
};
use crate::model::{ApiKey, ApiKeyId, OrganizationId, Role, Secret};
use crate::ports::{Adapters, Clock, KeyHasher, OrganizationStore};
use crate::service::random_id;

/// Prefix of generated API keys, so that scanners and people recognize them.
pub const API_KEY_PREFIX: &str = "whk_";

/// A key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    /// `admin` or `viewer`.
    pub role: String,
}

/// A created key and its clear text, which is never available again.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub api_key: Secret,
}

impl<A: Adapters> Management<A> {
    /// Creates a key in the caller's organization.
    pub async fn create_api_key(
        &self,
        caller: &Caller,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, ManageError> {
        caller.require_write()?;
        let created = self.new_api_key(caller.organization_id, &new)?;
        self.store.insert_api_key(&created.key).await?;
        Ok(created)
    }

    /// A fresh key of `organization_id`, checked but not stored yet.
    pub(crate) fn new_api_key(
        &self,
        organization_id: OrganizationId,
        new: &NewApiKey,
    ) -> Result<CreatedApiKey, ManageError> {
        let name = parse_name("name", &new.name)?;
        let role = Role::parse(&new.role)
            .ok_or_else(|| Invalid::new("role", "must be `admin` or `viewer`"))?;
        let api_key = generate_secret(&self.entropy, API_KEY_PREFIX);
        let key = ApiKey {
            id: ApiKeyId::from_uuid(random_id(&self.entropy)),
            organization_id,
            name,
            role,
            hash: self.hasher.hash(&api_key),
            created_at: self.clock.now(),
        };
        Ok(CreatedApiKey { key, api_key })
    }

    /// The caller's organization's keys, oldest first.
    pub async fn api_keys(&self, caller: &Caller) -> Result<Vec<ApiKey>, ManageError> {
        Ok(self.store.api_keys(caller.organization_id).await?)
    }

    /// Deletes a key. A key cannot delete itself (the caller would lock itself out mid-session;
    /// another admin key deletes it), and the organization's last admin key cannot be deleted:
    /// nobody could manage it any more.
    pub async fn delete_api_key(&self, caller: &Caller, id: &str) -> Result<(), ManageError> {
        let id: ApiKeyId = written_id(caller, id)?;
        if id == caller.key_id {
            return Err(ManageError::conflict(
                ConflictCode::OwnKey,
                "an API key cannot delete itself; delete it with another admin key",
            ));
        }
        let keys = self.store.api_keys(caller.organization_id).await?;
        let key = keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(ManageError::NotFound)?;
        let admins = keys.iter().filter(|k| k.role == Role::Admin).count();
        if key.role == Role::Admin && admins <= 1 {
            return Err(ManageError::conflict(
                ConflictCode::LastAdminKey,
                "this is the organization's last admin key; create another admin key first",
            ));
        }
        Ok(self
            .store
            .delete_api_key(caller.organization_id, id)
            .await?)
    }
}
