//! Integration tests of the SQLite store: the shared contract suite on temporary files, plus
//! durability, failure and group-commit behaviour specific to SQLite.

mod durability;
mod migrate;
mod permissions;
mod sources;
mod support;

use webhook_store_sqlite::SqliteStore;

async fn fresh_store() -> SqliteStore {
    support::open_temp().await
}

webhook_store_contract::store_contract_tests!(fresh_store());
