//! Webhooks: create with a supplied or generated secret shown once, list, read, change, rotate
//! the secret, and delete into a tombstone whose URL answers 410 forever.

use std::collections::HashMap;

use super::{
    Caller, ConflictCode, Invalid, ManageError, Management, apply, generate_secret, parse_id,
    parse_name, patch_name, patch_rate, written_id,
};
use std::time::Duration;

use serde_json::Value;

use crate::model::{
    CidrList, EventTypePattern, EventTypes, FieldRef, HEALTH_WINDOW, InstructionTemplate,
    InvalidSetting, Name, OrganizationId, Page, PageRequest, RatePerMinute, Secret, Source,
    SourceSettings, Stale, TargetId, TargetKind, Verification, Webhook, WebhookFilter,
    WebhookHealth, WebhookId, WebhookStatus,
};
use crate::ports::{
    Adapters, Clock, InvocationLog, Notifier as _, SecretSealer, StoreError, TargetStore,
    WebhookStore,
};
use crate::rules::webhook_transition;
use crate::service::random_id;

/// Prefix of generated webhook secrets.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// Longest overlap a rotation may give the previous secret: seven days.
pub const MAX_PREVIOUS_SECRET_SECONDS: i64 = 7 * 24 * 60 * 60;

/// The source settings a create or a change names. On a change an absent field stays as it
/// is, and `Some(None)` (JSON `null`) clears an override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceFields {
    pub source: Option<String>,
    pub verification: Option<Option<Value>>,
    pub event_type_from: Option<Option<String>>,
    pub dedup_key_from: Option<Option<String>>,
    pub instruction_template: Option<Option<String>>,
    /// CIDRs; empty (or `Some(None)`, JSON `null`) allows every address.
    pub allowed_source_ips: Option<Option<Vec<String>>>,
}

/// A webhook to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewWebhook {
    pub name: String,
    pub target_id: String,
    /// Empty subscribes to every event.
    pub event_types: Vec<String>,
    /// A secret chosen by the caller; exclusive with `generate_secret`.
    pub secret: Option<String>,
    pub generate_secret: bool,
    pub rate_limit_per_minute: Option<i64>,
    pub source: SourceFields,
}

/// Changes to a webhook; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookPatch {
    pub name: Option<String>,
    pub target_id: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `active` or `disabled`; deleting is its own use case.
    pub status: Option<String>,
    pub rate_limit_per_minute: Option<i64>,
    pub source: SourceFields,
}

/// A rotation of a webhook's secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretRotation {
    /// The new secret; generated when absent.
    pub secret: Option<String>,
    /// How long the replaced secret keeps verifying, 0 to
    /// [`MAX_PREVIOUS_SECRET_SECONDS`]; absent or 0 ends it at once.
    pub previous_valid_for_seconds: Option<i64>,
}

/// What a webhook's answer shows of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSummary {
    pub id: TargetId,
    pub kind: TargetKind,
    pub name: Name,
}

/// A webhook as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookView {
    pub webhook: Webhook,
    /// The URL senders post to.
    pub url: String,
    /// `None` only for a deleted webhook whose target was deleted after it.
    pub target: Option<TargetSummary>,
    /// How it fared over the last [`HEALTH_WINDOW`].
    pub health: WebhookHealth,
}

/// A created webhook, with its secret in clear when it has one; never shown again.
#[derive(Debug)]
pub struct CreatedWebhook {
    pub view: WebhookView,
    pub secret: Option<Secret>,
}

fn parse_event_types(patterns: &[String]) -> Result<EventTypes, Invalid> {
    EventTypes::parse(patterns).map_err(|(index, e)| {
        let entry_is_valid = patterns
            .get(index)
            .is_some_and(|p| EventTypePattern::parse(p).is_ok());
        if entry_is_valid || index >= patterns.len() {
            Invalid::new(
                "event_types",
                format!("must list at most {} patterns", EventTypes::MAX_PATTERNS),
            )
        } else {
            Invalid::new(format!("event_types[{index}]"), e)
        }
    })
}

fn invalid(setting: InvalidSetting) -> Invalid {
    Invalid::new(setting.field, setting.reason)
}

fn parse_field_ref(field: &str, text: Option<&str>) -> Result<Option<FieldRef>, Invalid> {
    text.map(|t| FieldRef::parse(t).map_err(|e| Invalid::new(field, e)))
        .transpose()
}

/// The settings `fields` make of `current`: every field validated, the combination checked.
/// Changing the source away from `generic` drops a verification the change does not name, since
/// only a generic webhook takes one.
fn source_settings(
    current: &SourceSettings,
    fields: &SourceFields,
) -> Result<SourceSettings, Invalid> {
    let source = match fields.source.as_deref() {
        Some(text) => Source::parse_field(text).map_err(invalid)?,
        None => current.source(),
    };
    let verification = match &fields.verification {
        Some(Some(value)) => Some(Verification::from_json(value).map_err(invalid)?),
        None if source == Source::Generic => current.verification().cloned(),
        Some(None) | None => None,
    };
    let event_type_from = match &fields.event_type_from {
        Some(text) => parse_field_ref("event_type_from", text.as_deref())?,
        None => current.event_type_from().cloned(),
    };
    let dedup_key_from = match &fields.dedup_key_from {
        Some(text) => parse_field_ref("dedup_key_from", text.as_deref())?,
        None => current.dedup_key_from().cloned(),
    };
    let instruction_template = match &fields.instruction_template {
        Some(Some(text)) => Some(
            InstructionTemplate::parse(text)
                .map_err(|e| Invalid::new("instruction_template", e))?,
        ),
        Some(None) => None,
        None => current.instruction_template().cloned(),
    };
    SourceSettings::new(
        source,
        verification,
        event_type_from,
        dedup_key_from,
        instruction_template,
    )
    .map_err(invalid)
}

fn parse_allowed_source_ips(entries: &[String]) -> Result<CidrList, Invalid> {
    CidrList::parse(entries).map_err(invalid)
}

fn parse_previous_validity(seconds: Option<i64>) -> Result<Duration, Invalid> {
    match seconds {
        None => Ok(Duration::ZERO),
        Some(s @ 0..=MAX_PREVIOUS_SECRET_SECONDS) => Ok(Duration::from_secs(s.unsigned_abs())),
        Some(_) => Err(Invalid::new(
            "previous_valid_for_seconds",
            format!("must be between 0 and {MAX_PREVIOUS_SECRET_SECONDS} (seven days)"),
        )),
    }
}

fn parse_secret(text: &str) -> Result<Secret, Invalid> {
    Secret::parse(text).map_err(|e| Invalid::new("secret", e))
}

fn parse_settable_status(text: &str) -> Result<WebhookStatus, Invalid> {
    match WebhookStatus::parse(text) {
        Some(status @ (WebhookStatus::Active | WebhookStatus::Disabled)) => Ok(status),
        Some(WebhookStatus::Deleted) => Err(Invalid::new(
            "status",
            "must be `active` or `disabled`; delete a webhook with DELETE",
        )),
        None => Err(Invalid::new("status", "must be `active` or `disabled`")),
    }
}

/// Reads the `status` filter of the webhook list: any status, tombstones included.
pub fn parse_webhook_status_filter(text: &str) -> Result<WebhookStatus, Invalid> {
    WebhookStatus::parse(text)
        .ok_or_else(|| Invalid::new("status", "must be `active`, `disabled` or `deleted`"))
}

fn deleted_conflict() -> ManageError {
    ManageError::conflict(
        ConflictCode::WebhookDeleted,
        "this webhook was deleted; a deleted webhook never changes",
    )
}

impl<A: Adapters> Management<A> {
    /// Creates a webhook with a random id (its URL is a capability).
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        new: NewWebhook,
    ) -> Result<CreatedWebhook, ManageError> {
        caller.require_write()?;
        let name = parse_name("name", &new.name)?;
        let target_id: TargetId = parse_id("target_id", &new.target_id)?;
        let event_types = parse_event_types(&new.event_types)?;
        let secret = match (new.secret.as_deref(), new.generate_secret) {
            (Some(_), true) => {
                return Err(Invalid::new(
                    "generate_secret",
                    "give either `secret` or `generate_secret: true`, not both",
                )
                .into());
            }
            (Some(text), false) => Some(parse_secret(text)?),
            (None, true) => Some(generate_secret(&self.entropy, WEBHOOK_SECRET_PREFIX)),
            (None, false) => None,
        };
        let rate = patch_rate(new.rate_limit_per_minute)?.unwrap_or(RatePerMinute::WEBHOOK_DEFAULT);
        let source = source_settings(&SourceSettings::default(), &new.source)?;
        source.check_template(&self.templates).map_err(invalid)?;
        let allowed_source_ips = match &new.source.allowed_source_ips {
            Some(Some(entries)) => parse_allowed_source_ips(entries)?,
            Some(None) | None => CidrList::default(),
        };
        let target = self
            .target_for_body(caller.organization_id, target_id)
            .await?;
        let now = self.clock.now();
        let webhook = Webhook {
            id: WebhookId::from_uuid(random_id(&self.entropy)),
            organization_id: caller.organization_id,
            name,
            target_id,
            event_types,
            secret: secret.as_ref().map(|s| self.sealer.seal(s)),
            previous_secret: None,
            previous_secret_expires_at: None,
            source,
            allowed_source_ips,
            rate_limit_per_minute: rate,
            status: WebhookStatus::Active,
            created_at: now,
            updated_at: now,
            last_triggered_at: None,
        };
        match self.store.insert_webhook(&webhook).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(target_gone()),
            Err(e) => return Err(e.into()),
        }
        // Nothing was logged for an id made just now.
        let view = self.view_with(webhook, Some(target), WebhookHealth::default());
        self.notifier
            .routes_changed(Stale::Webhook(view.webhook.id));
        Ok(CreatedWebhook { view, secret })
    }

    /// One webhook of the caller's organization, tombstones included.
    pub async fn webhook(&self, caller: &Caller, id: &str) -> Result<WebhookView, ManageError> {
        let id: WebhookId = parse_id("id", id)?;
        let webhook = self.owned(caller, id).await?;
        self.view(webhook).await
    }

    /// The caller's organization's webhooks, newest first: those with `status` (`active`,
    /// `disabled`, or `deleted` for the tombstones, whose logs stay readable), or without it
    /// those that are not deleted. The health of a whole page is one read of the store.
    pub async fn webhooks(
        &self,
        caller: &Caller,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<WebhookView>, ManageError> {
        let filter = WebhookFilter {
            status: status.map(parse_webhook_status_filter).transpose()?,
        };
        let page = self
            .store
            .webhooks(caller.organization_id, filter, page)
            .await?;
        let ids: Vec<WebhookId> = page.items.iter().map(|w| w.id).collect();
        let health = self.health(caller.organization_id, &ids).await?;
        let mut targets: HashMap<TargetId, Option<TargetSummary>> = HashMap::new();
        let mut items = Vec::with_capacity(page.items.len());
        for (webhook, health) in page.items.into_iter().zip(health) {
            let target = if let Some(target) = targets.get(&webhook.target_id) {
                target.clone()
            } else {
                let target = self
                    .summary(webhook.organization_id, webhook.target_id)
                    .await?;
                targets.insert(webhook.target_id, target.clone());
                target
            };
            items.push(self.view_with(webhook, target, health));
        }
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// Changes a webhook's name, target, event types, status or limit, all or nothing.
    pub async fn update_webhook(
        &self,
        caller: &Caller,
        id: &str,
        patch: WebhookPatch,
    ) -> Result<WebhookView, ManageError> {
        let id: WebhookId = written_id(caller, id)?;
        let name = patch_name(patch.name.as_deref())?;
        let target_id: Option<TargetId> = patch
            .target_id
            .as_deref()
            .map(|t| parse_id("target_id", t))
            .transpose()?;
        let event_types = patch
            .event_types
            .as_deref()
            .map(parse_event_types)
            .transpose()?;
        let status = patch
            .status
            .as_deref()
            .map(parse_settable_status)
            .transpose()?;
        let rate = patch_rate(patch.rate_limit_per_minute)?;
        let allowed_source_ips = match &patch.source.allowed_source_ips {
            Some(Some(entries)) => Some(parse_allowed_source_ips(entries)?),
            Some(None) => Some(CidrList::default()),
            None => None,
        };
        let mut webhook = self.changeable(caller, id).await?;
        let source = source_settings(&webhook.source, &patch.source)?;
        if patch.source.instruction_template.is_some() {
            source.check_template(&self.templates).map_err(invalid)?;
        }
        webhook.source = source;
        apply(&mut webhook.allowed_source_ips, allowed_source_ips);
        if let Some(target_id) = target_id {
            self.target_for_body(caller.organization_id, target_id)
                .await?;
            webhook.target_id = target_id;
        }
        if let Some(status) = status {
            webhook.status = webhook_transition(webhook.status, status).map_err(|e| {
                ManageError::conflict(ConflictCode::InvalidTransition, e.to_string())
            })?;
        }
        apply(&mut webhook.name, name);
        apply(&mut webhook.event_types, event_types);
        apply(&mut webhook.rate_limit_per_minute, rate);
        webhook.updated_at = self.clock.now();
        self.save(&webhook).await?;
        self.view(webhook).await
    }

    /// Replaces a webhook's secret with the rotation's, or with a generated one; the new
    /// secret is returned once. The old one keeps verifying for the overlap the rotation
    /// asks for (at most seven days), else stops at once.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        id: &str,
        rotation: SecretRotation,
    ) -> Result<CreatedWebhook, ManageError> {
        let id: WebhookId = written_id(caller, id)?;
        let secret = match rotation.secret.as_deref() {
            Some(text) => parse_secret(text)?,
            None => generate_secret(&self.entropy, WEBHOOK_SECRET_PREFIX),
        };
        let overlap = parse_previous_validity(rotation.previous_valid_for_seconds)?;
        let mut webhook = self.changeable(caller, id).await?;
        let now = self.clock.now();
        let replaced = webhook.secret.replace(self.sealer.seal(&secret));
        (webhook.previous_secret, webhook.previous_secret_expires_at) = match replaced {
            Some(previous) if !overlap.is_zero() => (Some(previous), Some(now.plus(overlap))),
            _ => (None, None),
        };
        webhook.updated_at = now;
        self.save(&webhook).await?;
        let view = self.view(webhook).await?;
        Ok(CreatedWebhook {
            view,
            secret: Some(secret),
        })
    }

    /// Deletes a webhook: it becomes a tombstone, its URL answers 410 forever.
    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> Result<(), ManageError> {
        let id: WebhookId = written_id(caller, id)?;
        let mut webhook = self.changeable(caller, id).await?;
        webhook.status = webhook_transition(webhook.status, WebhookStatus::Deleted)
            .map_err(|e| ManageError::conflict(ConflictCode::InvalidTransition, e.to_string()))?;
        webhook.updated_at = self.clock.now();
        self.save(&webhook).await?;
        Ok(())
    }

    /// A webhook of the caller's organization that a change may touch: a tombstone never
    /// changes.
    async fn changeable(&self, caller: &Caller, id: WebhookId) -> Result<Webhook, ManageError> {
        let webhook = self.owned(caller, id).await?;
        if webhook.status == WebhookStatus::Deleted {
            return Err(deleted_conflict());
        }
        Ok(webhook)
    }

    /// Stores a changed webhook and tells the route caches, once the change is written.
    async fn save(&self, webhook: &Webhook) -> Result<(), ManageError> {
        match self.store.update_webhook(webhook).await {
            Ok(()) => {}
            // Deleted by a concurrent request between our read and this write.
            Err(StoreError::Conflict(_)) => return Err(deleted_conflict()),
            Err(e) => return Err(e.into()),
        }
        self.notifier.routes_changed(Stale::Webhook(webhook.id));
        Ok(())
    }

    /// The target a request body names, which must be live in the caller's organization.
    async fn target_for_body(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<TargetSummary, ManageError> {
        self.summary(organization_id, id)
            .await?
            .ok_or_else(target_gone)
    }

    async fn summary(
        &self,
        organization_id: OrganizationId,
        id: TargetId,
    ) -> Result<Option<TargetSummary>, ManageError> {
        match self.store.target(organization_id, id).await {
            Ok(target) => Ok(Some(TargetSummary {
                id: target.id,
                kind: target.kind,
                name: target.name,
            })),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn view(&self, webhook: Webhook) -> Result<WebhookView, ManageError> {
        let target = self
            .summary(webhook.organization_id, webhook.target_id)
            .await?;
        let health = self
            .health(webhook.organization_id, &[webhook.id])
            .await?
            .pop()
            .unwrap_or_default();
        Ok(self.view_with(webhook, target, health))
    }

    /// The health of each of `ids` over the last [`HEALTH_WINDOW`], in their order.
    async fn health(
        &self,
        organization_id: OrganizationId,
        ids: &[WebhookId],
    ) -> Result<Vec<WebhookHealth>, ManageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let since = self.clock.now().minus(HEALTH_WINDOW);
        let health = self
            .store
            .webhook_health(organization_id, ids, since)
            .await?;
        if health.len() == ids.len() {
            Ok(health)
        } else {
            Err(StoreError::Internal(
                format!(
                    "the store answered {} healths for {} webhooks",
                    health.len(),
                    ids.len()
                )
                .into(),
            )
            .into())
        }
    }

    fn view_with(
        &self,
        webhook: Webhook,
        target: Option<TargetSummary>,
        health: WebhookHealth,
    ) -> WebhookView {
        WebhookView {
            url: self.public_url.webhook_url(webhook.id),
            webhook,
            target,
            health,
        }
    }
}

fn target_gone() -> ManageError {
    Invalid::new("target_id", "no target with this id in this organization").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_errors_name_the_entry() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(parse_event_types(&list(&["deploy.*", "alert.fired"])).is_ok());
        assert_eq!(
            parse_event_types(&list(&["ok", "bad*"])).unwrap_err().field,
            "event_types[1]"
        );
        let many: Vec<String> = (0..65).map(|i| format!("e{i}")).collect();
        assert_eq!(parse_event_types(&many).unwrap_err().field, "event_types");
        let long = vec!["a".repeat(129)];
        assert_eq!(
            parse_event_types(&long).unwrap_err().field,
            "event_types[0]"
        );
    }

    #[test]
    fn every_status_is_a_list_filter() {
        for status in [
            WebhookStatus::Active,
            WebhookStatus::Disabled,
            WebhookStatus::Deleted,
        ] {
            assert_eq!(parse_webhook_status_filter(status.as_str()), Ok(status));
        }
        for refused in ["", "live", "Deleted", "all"] {
            assert_eq!(
                parse_webhook_status_filter(refused).unwrap_err().field,
                "status",
                "{refused}"
            );
        }
    }

    #[test]
    fn only_active_and_disabled_are_settable() {
        assert_eq!(parse_settable_status("active"), Ok(WebhookStatus::Active));
        assert_eq!(
            parse_settable_status("disabled"),
            Ok(WebhookStatus::Disabled)
        );
        assert_eq!(
            parse_settable_status("deleted").unwrap_err().field,
            "status"
        );
        assert_eq!(parse_settable_status("paused").unwrap_err().field, "status");
    }
}
