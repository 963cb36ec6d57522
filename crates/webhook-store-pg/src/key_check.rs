//! `KeyCheckStore` on [`PgStore`]: the master key's check, one row kept by the first node.

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use diesel_async::pooled_connection::PoolableConnection as _;
use webhook_domain::model::SealedSecret;
use webhook_domain::ports::{KeyCheckStore, StoreError};

use crate::PgStore;
use crate::error::{TxError, store_error};
use crate::schema::master_key_check;

/// The one row's id.
const ROW: i16 = 1;

impl KeyCheckStore for PgStore {
    async fn keep_key_check(&self, check: &SealedSecret) -> Result<SealedSecret, StoreError> {
        let mut conn = self.conn().await?;
        // Two statements, not one: a concurrent first insert makes `ON CONFLICT DO NOTHING`
        // wait for its commit, and only a statement begun after that commit (the select,
        // under read committed) sees the row it kept.
        let kept: Result<Vec<u8>, TxError> = async {
            diesel::insert_into(master_key_check::table)
                .values((
                    master_key_check::id.eq(ROW),
                    master_key_check::sealed.eq(check.as_bytes()),
                ))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?;
            Ok(master_key_check::table
                .find(ROW)
                .select(master_key_check::sealed)
                .first(&mut conn)
                .await?)
        }
        .await;
        kept.map(SealedSecret::from_bytes)
            .map_err(|e| store_error(e, conn.is_broken()))
    }
}
