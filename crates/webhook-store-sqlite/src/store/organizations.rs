//! `OrganizationStore`: organizations and their API keys.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use webhook_domain::model::{ApiKey, ApiKeyHash, ApiKeyId, Organization, OrganizationId};
use webhook_domain::ports::{OrganizationInsert, OrganizationStore, StoreError};

use super::{changed, converted, found};
use crate::SqliteStore;
use crate::error::Failure;
use crate::rows::{ApiKeyRow, OrganizationRow, id};
use crate::schema::{api_keys, organizations};

impl OrganizationStore for SqliteStore {
    async fn insert_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let org = organization.clone();
        self.write(move |conn| insert_organization_row(conn, &org))
            .await
    }

    async fn organization(&self, org_id: OrganizationId) -> Result<Organization, StoreError> {
        self.read(move |conn| {
            let row = organizations::table.find(id(org_id.as_uuid())).first(conn);
            found::<OrganizationRow>(row)?.into_domain()
        })
        .await
    }

    async fn update_organization(&self, organization: &Organization) -> Result<(), StoreError> {
        let org = organization.clone();
        self.write(move |conn| {
            let updated = diesel::update(organizations::table.find(id(org.id.as_uuid())))
                .set((
                    organizations::name.eq(org.name.as_str()),
                    organizations::rate_limit_per_minute
                        .eq(i64::from(org.rate_limit_per_minute.get())),
                    organizations::updated_at.eq(org.updated_at.unix_micros()),
                ))
                .execute(conn)?;
            changed(updated)
        })
        .await
    }

    async fn count_organizations(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let count: i64 = organizations::table.count().get_result(conn)?;
            u64::try_from(count).map_err(|_| Failure::corrupt("organization count"))
        })
        .await
    }

    async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
        self.read(|conn| {
            let rows = organizations::table
                .order((organizations::created_at.asc(), organizations::id.asc()))
                .load(conn)?;
            converted(rows, OrganizationRow::into_domain)
        })
        .await
    }

    async fn insert_organization_with_key(
        &self,
        organization: &Organization,
        key: &ApiKey,
        mode: OrganizationInsert,
    ) -> Result<bool, StoreError> {
        let org = organization.clone();
        let key = key.clone();
        // One write job is one transaction (or one savepoint of a group commit), and the single
        // writer runs jobs one at a time: the count and the inserts cannot interleave with
        // another start's.
        self.write(move |conn| {
            if mode == OrganizationInsert::FirstOnly {
                let count: i64 = organizations::table.count().get_result(conn)?;
                if count > 0 {
                    return Ok(false);
                }
            }
            insert_organization_row(conn, &org)?;
            insert_api_key_row(conn, &key)?;
            Ok(true)
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| insert_api_key_row(conn, &key)).await
    }

    async fn api_key_by_hash(&self, hash: &ApiKeyHash) -> Result<ApiKey, StoreError> {
        let hash = hash.as_bytes().to_vec();
        self.read(move |conn| {
            let row = api_keys::table.filter(api_keys::hash.eq(hash)).first(conn);
            found::<ApiKeyRow>(row)?.into_domain()
        })
        .await
    }

    async fn api_keys(&self, organization_id: OrganizationId) -> Result<Vec<ApiKey>, StoreError> {
        self.read(move |conn| {
            let rows = api_keys::table
                .filter(api_keys::organization_id.eq(id(organization_id.as_uuid())))
                .order((api_keys::created_at.asc(), api_keys::id.asc()))
                .load(conn)?;
            converted(rows, ApiKeyRow::into_domain)
        })
        .await
    }

    async fn delete_api_key(
        &self,
        organization_id: OrganizationId,
        key_id: ApiKeyId,
    ) -> Result<(), StoreError> {
        self.write(move |conn| {
            let deleted = diesel::delete(
                api_keys::table
                    .filter(api_keys::id.eq(id(key_id.as_uuid())))
                    .filter(api_keys::organization_id.eq(id(organization_id.as_uuid()))),
            )
            .execute(conn)?;
            changed(deleted)
        })
        .await
    }
}

fn insert_organization_row(conn: &mut SqliteConnection, org: &Organization) -> Result<(), Failure> {
    diesel::insert_into(organizations::table)
        .values((
            organizations::id.eq(id(org.id.as_uuid())),
            organizations::name.eq(org.name.as_str()),
            organizations::rate_limit_per_minute.eq(i64::from(org.rate_limit_per_minute.get())),
            organizations::created_at.eq(org.created_at.unix_micros()),
            organizations::updated_at.eq(org.updated_at.unix_micros()),
        ))
        .execute(conn)?;
    Ok(())
}

fn insert_api_key_row(conn: &mut SqliteConnection, key: &ApiKey) -> Result<(), Failure> {
    diesel::insert_into(api_keys::table)
        .values((
            api_keys::id.eq(id(key.id.as_uuid())),
            api_keys::organization_id.eq(id(key.organization_id.as_uuid())),
            api_keys::name.eq(key.name.as_str()),
            api_keys::role.eq(key.role.as_str()),
            api_keys::hash.eq(key.hash.as_bytes().as_slice()),
            api_keys::created_at.eq(key.created_at.unix_micros()),
        ))
        .execute(conn)?;
    Ok(())
}
