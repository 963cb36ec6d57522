//! Builds ingest routes straight from the stores (no cache).

use std::sync::Arc;

use crate::model::{IngestRoute, WebhookId};
use crate::ports::{OrganizationStore, SecretSealer, StoreError, WebhookResolver, WebhookStore};

/// A [`WebhookResolver`] that reads the webhook and its organization on every call. Put a cache
/// in front of it on the hot path.
#[derive(Debug, Clone)]
pub struct StoreResolver<S, K> {
    store: S,
    sealer: K,
}

impl<S, K> StoreResolver<S, K> {
    /// Resolves through `store`, unsealing secrets with `sealer`.
    pub const fn new(store: S, sealer: K) -> Self {
        Self { store, sealer }
    }
}

impl<S, K> WebhookResolver for StoreResolver<S, K>
where
    S: WebhookStore + OrganizationStore,
    K: SecretSealer,
{
    async fn resolve(&self, id: WebhookId) -> Result<Option<Arc<IngestRoute>>, StoreError> {
        let webhook = match self.store.webhook(id).await {
            Ok(webhook) => webhook,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let organization = self.store.organization(webhook.organization_id).await?;
        let secret = webhook
            .secret
            .as_ref()
            .map(|sealed| self.sealer.unseal(sealed))
            .transpose()
            .map_err(|e| StoreError::Internal(Box::new(e)))?;
        let previous_secret = match (&webhook.previous_secret, webhook.previous_secret_expires_at) {
            (Some(sealed), Some(expires_at)) => Some((
                self.sealer
                    .unseal(sealed)
                    .map_err(|e| StoreError::Internal(Box::new(e)))?,
                expires_at,
            )),
            _ => None,
        };
        Ok(Some(Arc::new(IngestRoute {
            webhook_id: webhook.id,
            organization_id: webhook.organization_id,
            target_id: webhook.target_id,
            status: webhook.status,
            secret,
            previous_secret,
            event_types: webhook.event_types,
            webhook_quota: webhook.rate_limit_per_minute,
            organization_quota: organization.rate_limit_per_minute,
            source: webhook.source,
            allowed_source_ips: webhook.allowed_source_ips,
        })))
    }
}
