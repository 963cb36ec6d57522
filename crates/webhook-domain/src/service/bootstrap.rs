//! The first start, and the creation of an organization with its first admin key: on an empty
//! store, [`Bootstrap::run_once`] creates the default organization and hands back its admin key,
//! which only the caller (the binary) shows. Before either, [`Bootstrap::check_master_key`]
//! makes sure the node holds the master key the store's secrets are sealed with.

use crate::model::{ApiKeyId, Name, Organization, OrganizationId, RatePerMinute, Role, Secret};
use crate::ports::{
    Adapters, Clock as _, KeyCheckStore as _, OrganizationInsert, OrganizationStore as _,
    SecretSealer as _, StoreError,
};
use crate::service::manage::{Caller, CreatedApiKey, Invalid, ManageError, Management, NewApiKey};
use crate::service::random_id;

/// The name of the organization a first start creates.
pub const DEFAULT_ORGANIZATION_NAME: &str = "Default";

/// An organization just created, with its first admin key in clear text (shown once).
#[derive(Debug)]
pub struct NewOrganization {
    pub organization: Organization,
    pub admin_key: CreatedApiKey,
}

impl NewOrganization {
    /// The admin key, to show its owner once.
    pub fn api_key(&self) -> &Secret {
        &self.admin_key.api_key
    }
}

/// The known text whose sealed form is the store's master-key check.
const KEY_CHECK_TEXT: &str = "webhookd master key check v1";

/// How a node's master key compares with the store's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The store kept no check yet: this node's key is now the store's.
    Kept,
    /// The store's check was sealed with this node's key.
    Matched,
}

/// Why a node may not serve with its master key.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The store's check was sealed with another key: secrets sealed by other nodes would not
    /// open here, nor this node's there.
    #[error("this node's master key is not the key the store's secrets are sealed with")]
    Mismatch,
    #[error("the master key's check could not be read or kept")]
    Store(#[source] StoreError),
}

/// Creates organizations for the operator (the command line and the first start).
#[derive(Debug)]
pub struct Bootstrap<'a, A: Adapters> {
    management: &'a Management<A>,
}

impl<'a, A: Adapters> Bootstrap<'a, A> {
    /// Bootstrap through `management`'s adapters.
    pub const fn new(management: &'a Management<A>) -> Self {
        Self { management }
    }

    /// Compares this node's master key with the store's check, keeping a check sealed with it
    /// when the store has none (the first node to start on a database decides its key).
    ///
    /// # Errors
    /// [`KeyCheckError::Mismatch`] when the store's check was sealed with another key, and
    /// [`KeyCheckError::Store`] with the store's error.
    pub async fn check_master_key(&self) -> Result<KeyCheck, KeyCheckError> {
        let management = self.management;
        let ours = management
            .sealer
            .seal(&Secret::from_unsealed(KEY_CHECK_TEXT.to_owned()));
        let kept = management
            .store
            .keep_key_check(&ours)
            .await
            .map_err(KeyCheckError::Store)?;
        if kept == ours {
            return Ok(KeyCheck::Kept);
        }
        match management.sealer.unseal(&kept) {
            Ok(text) if text.expose() == KEY_CHECK_TEXT => Ok(KeyCheck::Matched),
            _ => Err(KeyCheckError::Mismatch),
        }
    }

    /// On a store without organizations, creates the default one with its admin key; `None`
    /// when an organization exists. The check and the creation are one atomic store operation,
    /// so nodes starting together on one empty database create one organization.
    ///
    /// # Errors
    /// The store's errors.
    pub async fn run_once(&self) -> Result<Option<NewOrganization>, ManageError> {
        self.create(DEFAULT_ORGANIZATION_NAME, OrganizationInsert::FirstOnly)
            .await
    }

    /// Creates an organization with the default limit and its first admin key, in one
    /// transaction: a crash never leaves an organization whose key nobody saw.
    ///
    /// # Errors
    /// [`ManageError::Invalid`] for a name that is not a name; the store's errors.
    pub async fn create_organization(&self, name: &str) -> Result<NewOrganization, ManageError> {
        self.create(name, OrganizationInsert::Always)
            .await?
            .ok_or_else(|| {
                ManageError::Store(StoreError::Internal(
                    "the store declined an unconditional insert".into(),
                ))
            })
    }

    /// Every organization, oldest first (`webhookd org list`).
    ///
    /// # Errors
    /// The store's errors.
    pub async fn organizations(&self) -> Result<Vec<Organization>, ManageError> {
        Ok(self.management.store.organizations().await?)
    }

    async fn create(
        &self,
        name: &str,
        mode: OrganizationInsert,
    ) -> Result<Option<NewOrganization>, ManageError> {
        let management = self.management;
        let name = Name::parse(name).map_err(|e| Invalid::new("name", e))?;
        let now = management.clock.now();
        let organization = Organization {
            id: OrganizationId::from_uuid(random_id(&management.entropy)),
            name,
            rate_limit_per_minute: RatePerMinute::ORGANIZATION_DEFAULT,
            created_at: now,
            updated_at: now,
        };
        let admin_key = management.new_api_key(
            organization.id,
            &NewApiKey {
                name: "admin".to_owned(),
                role: Role::Admin.as_str().to_owned(),
            },
        )?;
        let created = management
            .store
            .insert_organization_with_key(&organization, &admin_key.key, mode)
            .await?;
        Ok(created.then_some(NewOrganization {
            organization,
            admin_key,
        }))
    }

    /// Creates an API key in an existing organization, for the operator.
    ///
    /// # Errors
    /// [`ManageError::NotFound`] when the organization does not exist; as
    /// [`Management::create_api_key`] otherwise.
    pub async fn create_api_key(
        &self,
        organization_id: OrganizationId,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, ManageError> {
        self.management.store.organization(organization_id).await?;
        self.management
            .create_api_key(&self.operator(organization_id), new)
            .await
    }

    /// The operator, acting as an admin of `organization_id` from the command line.
    fn operator(&self, organization_id: OrganizationId) -> Caller {
        Caller {
            organization_id,
            role: Role::Admin,
            key_id: ApiKeyId::from_uuid(random_id(&self.management.entropy)),
        }
    }
}
