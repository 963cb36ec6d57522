//! `TargetStore`: agents and teams. A deleted target keeps its row for its tasks.

use std::time::SystemTime;

use diesel::prelude::*;
use webhook_domain::model::{EndpointUrl, OrganizationId, Page, PageRequest, Target, TargetId};
use webhook_domain::ports::{StoreError, TargetStore};

use super::{changed, found, into_page};
use crate::SqliteStore;
use crate::error::Failure;
use crate::rows::{TargetRow, id};
use crate::schema::{targets, webhooks};

/// Whether a live target with this id exists in this organization.
pub(super) fn live_target_exists(
    conn: &mut SqliteConnection,
    organization_id: OrganizationId,
    target_id: TargetId,
) -> Result<bool, Failure> {
    Ok(diesel::select(diesel::dsl::exists(
        targets::table
            .filter(targets::id.eq(id(target_id.as_uuid())))
            .filter(targets::organization_id.eq(id(organization_id.as_uuid())))
            .filter(targets::deleted_at.is_null()),
    ))
    .get_result(conn)?)
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
}

impl TargetStore for SqliteStore {
    async fn insert_target(&self, target: &Target) -> Result<(), StoreError> {
        let target = target.clone();
        self.write(move |conn| {
            diesel::insert_into(targets::table)
                .values((
                    targets::id.eq(id(target.id.as_uuid())),
                    targets::organization_id.eq(id(target.organization_id.as_uuid())),
                    targets::kind.eq(target.kind.as_str()),
                    targets::name.eq(target.name.as_str()),
                    targets::endpoint_url.eq(target.endpoint_url.as_ref().map(EndpointUrl::as_str)),
                    targets::signing_secret.eq(target.signing_secret.as_bytes()),
                    targets::created_at.eq(target.created_at.unix_micros()),
                    targets::updated_at.eq(target.updated_at.unix_micros()),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn target(
        &self,
        organization_id: OrganizationId,
        target_id: TargetId,
    ) -> Result<Target, StoreError> {
        self.read(move |conn| {
            let query = targets::table
                .filter(targets::id.eq(id(target_id.as_uuid())))
                .filter(targets::organization_id.eq(id(organization_id.as_uuid())))
                .filter(targets::deleted_at.is_null());
            found(query.first::<TargetRow>(conn))?.into_domain()
        })
        .await
    }

    async fn targets(
        &self,
        organization_id: OrganizationId,
        page: PageRequest,
    ) -> Result<Page<Target>, StoreError> {
        self.read(move |conn| {
            let live = targets::table
                .filter(targets::organization_id.eq(id(organization_id.as_uuid())))
                .filter(targets::deleted_at.is_null())
                .into_boxed();
            let rows = newest_first!(live, targets, page).load::<TargetRow>(conn)?;
            into_page(rows, page, TargetRow::into_domain, Target::cursor)
        })
        .await
    }

    async fn update_target(&self, target: &Target) -> Result<(), StoreError> {
        let target = target.clone();
        self.write(move |conn| {
            let updated = diesel::update(
                targets::table
                    .filter(targets::id.eq(id(target.id.as_uuid())))
                    .filter(targets::organization_id.eq(id(target.organization_id.as_uuid())))
                    .filter(targets::deleted_at.is_null()),
            )
            .set((
                targets::kind.eq(target.kind.as_str()),
                targets::name.eq(target.name.as_str()),
                targets::endpoint_url.eq(target.endpoint_url.as_ref().map(EndpointUrl::as_str)),
                targets::signing_secret.eq(target.signing_secret.as_bytes()),
                targets::updated_at.eq(target.updated_at.unix_micros()),
            ))
            .execute(conn)?;
            changed(updated)
        })
        .await
    }

    async fn delete_target(
        &self,
        organization_id: OrganizationId,
        target_id: TargetId,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            if !live_target_exists(conn, organization_id, target_id)? {
                return Err(Failure::not_found());
            }
            let in_use: bool = diesel::select(diesel::dsl::exists(
                webhooks::table
                    .filter(webhooks::target_id.eq(id(target_id.as_uuid())))
                    .filter(webhooks::status.ne("deleted")),
            ))
            .get_result(conn)?;
            if in_use {
                return Err(Failure::conflict("a webhook still points at this target"));
            }
            diesel::update(targets::table.find(id(target_id.as_uuid())))
                .set(targets::deleted_at.eq(now_micros()))
                .execute(conn)?;
            Ok(())
        })
        .await
    }
}
