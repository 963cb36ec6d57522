//! `KeyCheckStore`: the master key's check, one row kept by the first start.

use diesel::prelude::*;
use webhook_domain::model::SealedSecret;
use webhook_domain::ports::{KeyCheckStore, StoreError};

use crate::SqliteStore;
use crate::schema::master_key_check;

/// The one row's id.
const ROW: i64 = 1;

impl KeyCheckStore for SqliteStore {
    async fn keep_key_check(&self, check: &SealedSecret) -> Result<SealedSecret, StoreError> {
        let check = check.as_bytes().to_vec();
        // One write job: the insert and the read run in one transaction of the one writer.
        self.write(move |conn| {
            diesel::insert_or_ignore_into(master_key_check::table)
                .values((
                    master_key_check::id.eq(ROW),
                    master_key_check::sealed.eq(&check),
                ))
                .execute(conn)?;
            let kept: Vec<u8> = master_key_check::table
                .find(ROW)
                .select(master_key_check::sealed)
                .first(conn)?;
            Ok(SealedSecret::from_bytes(kept))
        })
        .await
    }
}
