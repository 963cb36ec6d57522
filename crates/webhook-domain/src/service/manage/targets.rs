//! Targets: the agents and teams tasks go to, each with a signing secret for its deliveries.

use super::{
    Caller, ConflictCode, Invalid, ManageError, Management, apply, parse_id, parse_name,
    patch_name, written_id,
};
use crate::model::{EndpointUrl, Page, PageRequest, Secret, Target, TargetId, TargetKind};
use crate::ports::{
    Adapters, Clock, EndpointGuard, Entropy, SecretSealer, StoreError, TargetStore,
};
use crate::service::time_ordered_id;

/// Prefix of generated signing secrets (`whsec_` + standard base64 of 32 random bytes, the
/// Standard Webhooks form).
pub const SIGNING_SECRET_PREFIX: &str = Secret::SIGNING_KEY_PREFIX;

/// A target to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    /// `agent` or `team`.
    pub kind: String,
    pub name: String,
    pub endpoint_url: Option<String>,
}

/// Changes to a target; absent fields stay as they are, `endpoint_url: Some(None)` removes the
/// endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPatch {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub endpoint_url: Option<Option<String>>,
}

/// A created target and its signing secret in clear, which is never shown again: the target
/// verifies our signatures with it.
#[derive(Debug)]
pub struct CreatedTarget {
    pub target: Target,
    pub signing_secret: Secret,
}

fn parse_kind(text: &str) -> Result<TargetKind, Invalid> {
    TargetKind::parse(text).ok_or_else(|| Invalid::new("kind", "must be `agent` or `team`"))
}

fn parse_endpoint(text: &str) -> Result<EndpointUrl, Invalid> {
    EndpointUrl::parse(text).map_err(|e| Invalid::new("endpoint_url", e))
}

impl<A: Adapters> Management<A> {
    /// An endpoint that outbound policy allows, or the refusal of `endpoint_url`.
    async fn checked_endpoint(&self, text: &str) -> Result<EndpointUrl, Invalid> {
        let endpoint = parse_endpoint(text)?;
        self.endpoints
            .check(&endpoint)
            .await
            .map_err(|refused| Invalid::new("endpoint_url", refused))?;
        Ok(endpoint)
    }

    /// Creates a target with a fresh signing secret. Its endpoint, if any, must be allowed by
    /// outbound policy.
    pub async fn create_target(
        &self,
        caller: &Caller,
        new: NewTarget,
    ) -> Result<CreatedTarget, ManageError> {
        caller.require_write()?;
        let kind = parse_kind(&new.kind)?;
        let name = parse_name("name", &new.name)?;
        let endpoint_url = match new.endpoint_url.as_deref() {
            Some(text) => Some(self.checked_endpoint(text).await?),
            None => None,
        };
        let now = self.clock.now();
        let mut random = [0u8; Secret::GENERATED_BYTES];
        self.entropy.fill(&mut random);
        let signing_secret = Secret::signing_key_from_random(&random);
        let target = Target {
            id: TargetId::from_uuid(time_ordered_id(&self.entropy, now)),
            organization_id: caller.organization_id,
            kind,
            name,
            endpoint_url,
            signing_secret: self.sealer.seal(&signing_secret),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_target(&target).await?;
        Ok(CreatedTarget {
            target,
            signing_secret,
        })
    }

    /// One target of the caller's organization.
    pub async fn target(&self, caller: &Caller, id: &str) -> Result<Target, ManageError> {
        let id: TargetId = parse_id("id", id)?;
        Ok(self.store.target(caller.organization_id, id).await?)
    }

    /// The caller's organization's targets, newest first.
    pub async fn targets(
        &self,
        caller: &Caller,
        page: PageRequest,
    ) -> Result<Page<Target>, ManageError> {
        Ok(self.store.targets(caller.organization_id, page).await?)
    }

    /// Changes a target's kind, name or endpoint; a new endpoint must be allowed by outbound
    /// policy.
    pub async fn update_target(
        &self,
        caller: &Caller,
        id: &str,
        patch: TargetPatch,
    ) -> Result<Target, ManageError> {
        let id: TargetId = written_id(caller, id)?;
        let kind = patch.kind.as_deref().map(parse_kind).transpose()?;
        let name = patch_name(patch.name.as_deref())?;
        let endpoint_url = match patch.endpoint_url {
            Some(Some(text)) => Some(Some(self.checked_endpoint(&text).await?)),
            Some(None) => Some(None),
            None => None,
        };
        let mut target = self.store.target(caller.organization_id, id).await?;
        apply(&mut target.kind, kind);
        apply(&mut target.name, name);
        apply(&mut target.endpoint_url, endpoint_url);
        target.updated_at = self.clock.now();
        self.store.update_target(&target).await?;
        Ok(target)
    }

    /// Deletes a target that no live webhook points at; its tasks stay on the board.
    pub async fn delete_target(&self, caller: &Caller, id: &str) -> Result<(), ManageError> {
        let id: TargetId = written_id(caller, id)?;
        match self.store.delete_target(caller.organization_id, id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => Err(ManageError::conflict(
                ConflictCode::TargetInUse,
                "webhooks still point at this target; point them elsewhere or delete them first",
            )),
            Err(e) => Err(e.into()),
        }
    }
}
