//! What the store's bench programs share: a connection of their own to the store's test
//! database, and the vacuum that autovacuum would run after their load.

use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use webhook_store_pg::PgStore;
use webhook_store_pg::test_db::database_url;

/// A new connection to `store`'s test database.
pub(crate) async fn connect(store: &PgStore) -> AsyncPgConnection {
    let url = database_url(&store.test_database().expect("a test database"));
    AsyncPgConnection::establish(&url).await.expect("connect")
}

/// Vacuums and analyzes `tables` (a comma-separated list) of `store`'s test database, as
/// autovacuum would after a large load.
pub(crate) async fn vacuum_analyze(store: &PgStore, tables: &str) {
    connect(store)
        .await
        .batch_execute(&format!("VACUUM ANALYZE {tables}"))
        .await
        .expect("vacuum");
}
