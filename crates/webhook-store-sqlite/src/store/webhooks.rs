//! `WebhookStore`: webhooks and their tombstones.

use diesel::dsl::Eq;
use diesel::prelude::*;
use webhook_domain::model::{
    InstructionTemplate, OrganizationId, Page, PageRequest, SealedSecret, Timestamp, Webhook,
    WebhookFilter, WebhookId, WebhookStatus,
};
use webhook_domain::ports::{StoreError, WebhookStore};

use super::targets::live_target_exists;
use super::{found, into_page};
use crate::SqliteStore;
use crate::error::Failure;
use crate::rows::{WebhookRow, allowed_source_ips_text, event_types_text, id, verification_text};
use crate::schema::webhooks;

/// The assignments of what an owner sets on a webhook, the same for an insert and an update.
#[expect(
    clippy::type_complexity,
    reason = "diesel's types of six assignments, written once here"
)]
fn settings(
    hook: &Webhook,
) -> (
    Eq<webhooks::name, &str>,
    Eq<webhooks::target_id, Vec<u8>>,
    Eq<webhooks::event_types, String>,
    Eq<webhooks::secret, Option<&[u8]>>,
    Eq<webhooks::rate_limit_per_minute, i64>,
    Eq<webhooks::status, &'static str>,
) {
    (
        webhooks::name.eq(hook.name.as_str()),
        webhooks::target_id.eq(id(hook.target_id.as_uuid())),
        webhooks::event_types.eq(event_types_text(&hook.event_types)),
        webhooks::secret.eq(hook.secret.as_ref().map(SealedSecret::as_bytes)),
        webhooks::rate_limit_per_minute.eq(i64::from(hook.rate_limit_per_minute.get())),
        webhooks::status.eq(hook.status.as_str()),
    )
}

/// The stored forms of a webhook's source settings, allowlist and previous secret that are
/// not the domain's values as they are.
struct SourceColumns {
    verification: Option<String>,
    allowed_source_ips: Option<String>,
}

impl SourceColumns {
    fn of(hook: &Webhook) -> Result<Self, Failure> {
        Ok(Self {
            verification: verification_text(hook.source.verification())?,
            allowed_source_ips: allowed_source_ips_text(&hook.allowed_source_ips)?,
        })
    }

    /// The columns' assignments, for an insert or an update.
    #[expect(
        clippy::type_complexity,
        reason = "diesel's types of eight assignments, written once here"
    )]
    fn values<'a>(
        &'a self,
        hook: &'a Webhook,
    ) -> (
        Eq<webhooks::source, &'a str>,
        Eq<webhooks::verification, Option<&'a str>>,
        Eq<webhooks::event_type_from, Option<String>>,
        Eq<webhooks::dedup_key_from, Option<String>>,
        Eq<webhooks::instruction_template, Option<&'a str>>,
        Eq<webhooks::allowed_source_ips, Option<&'a str>>,
        Eq<webhooks::previous_secret, Option<&'a [u8]>>,
        Eq<webhooks::previous_secret_expires_at, Option<i64>>,
    ) {
        let source = &hook.source;
        (
            webhooks::source.eq(source.source().as_str()),
            webhooks::verification.eq(self.verification.as_deref()),
            webhooks::event_type_from.eq(source.event_type_from().map(ToString::to_string)),
            webhooks::dedup_key_from.eq(source.dedup_key_from().map(ToString::to_string)),
            webhooks::instruction_template.eq(source
                .instruction_template()
                .map(InstructionTemplate::as_str)),
            webhooks::allowed_source_ips.eq(self.allowed_source_ips.as_deref()),
            webhooks::previous_secret.eq(hook.previous_secret.as_ref().map(SealedSecret::as_bytes)),
            webhooks::previous_secret_expires_at
                .eq(hook.previous_secret_expires_at.map(Timestamp::unix_micros)),
        )
    }
}

impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let hook = webhook.clone();
        self.write(move |conn| {
            let exists: bool = diesel::select(diesel::dsl::exists(
                webhooks::table.find(id(hook.id.as_uuid())),
            ))
            .get_result(conn)?;
            if exists {
                return Err(Failure::conflict("a webhook with this id exists"));
            }
            if !live_target_exists(conn, hook.organization_id, hook.target_id)? {
                return Err(Failure::not_found());
            }
            let sources = SourceColumns::of(&hook)?;
            diesel::insert_into(webhooks::table)
                .values((
                    (
                        webhooks::id.eq(id(hook.id.as_uuid())),
                        webhooks::organization_id.eq(id(hook.organization_id.as_uuid())),
                        webhooks::created_at.eq(hook.created_at.unix_micros()),
                        webhooks::updated_at.eq(hook.updated_at.unix_micros()),
                        webhooks::last_triggered_at
                            .eq(hook.last_triggered_at.map(Timestamp::unix_micros)),
                    ),
                    settings(&hook),
                    sources.values(&hook),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn webhook(&self, webhook_id: WebhookId) -> Result<Webhook, StoreError> {
        self.read(move |conn| {
            let row = webhooks::table.find(id(webhook_id.as_uuid())).first(conn);
            found::<WebhookRow>(row)?.into_domain()
        })
        .await
    }

    async fn webhooks(
        &self,
        organization_id: OrganizationId,
        filter: WebhookFilter,
        page: PageRequest,
    ) -> Result<Page<Webhook>, StoreError> {
        self.read(move |conn| {
            let query = webhooks::table
                .filter(webhooks::organization_id.eq(id(organization_id.as_uuid())))
                .into_boxed();
            let query = match filter.status {
                Some(status) => query.filter(webhooks::status.eq(status.as_str())),
                None => query.filter(webhooks::status.ne(WebhookStatus::Deleted.as_str())),
            };
            let rows = newest_first!(query, webhooks, page).load::<WebhookRow>(conn)?;
            into_page(rows, page, WebhookRow::into_domain, Webhook::cursor)
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let hook = webhook.clone();
        self.write(move |conn| {
            let status: Option<String> = webhooks::table
                .filter(webhooks::id.eq(id(hook.id.as_uuid())))
                .filter(webhooks::organization_id.eq(id(hook.organization_id.as_uuid())))
                .select(webhooks::status)
                .first(conn)
                .optional()?;
            match status.as_deref() {
                None => return Err(Failure::not_found()),
                Some("deleted") => return Err(Failure::conflict("the webhook is deleted")),
                Some(_) => {}
            }
            let target: Vec<u8> = webhooks::table
                .find(id(hook.id.as_uuid()))
                .select(webhooks::target_id)
                .first(conn)?;
            if target.as_slice() != hook.target_id.as_uuid().as_bytes()
                && !live_target_exists(conn, hook.organization_id, hook.target_id)?
            {
                return Err(Failure::not_found());
            }
            let sources = SourceColumns::of(&hook)?;
            diesel::update(webhooks::table.find(id(hook.id.as_uuid())))
                .set((
                    webhooks::updated_at.eq(hook.updated_at.unix_micros()),
                    settings(&hook),
                    sources.values(&hook),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
    }
}
