//! What the store's bench programs share: a connection of their own to the store's test
//! database, and a fresh database filled through the store and then vacuumed as autovacuum
//! would after their load.

use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use webhook_store_contract::fixtures::World;
use webhook_store_pg::PgStore;
use webhook_store_pg::test_db::{database_url, fresh_store};

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

/// A store on a fresh test database with a seeded [`World`], filled by `fill`, whose
/// `tables` (a comma-separated list) are then vacuumed and analyzed: the store, the world and
/// what `fill` returned.
pub(crate) async fn filled_store<T>(
    tables: &str,
    fill: impl AsyncFnOnce(&PgStore, &World) -> T,
) -> (PgStore, World, T) {
    let store = fresh_store().await;
    let world = World::seed(&store).await;
    let filled = fill(&store, &world).await;
    vacuum_analyze(&store, tables).await;
    (store, world, filled)
}
