//! Migrations: idempotent, and safe when several nodes start at once.

use tokio::task::JoinSet;
use webhook_domain::ports::OrganizationStore as _;
use webhook_store_contract::ContractStore as _;
use webhook_store_pg::test_db::{create_empty_database, database_url};
use webhook_store_pg::{PgStore, PgStoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let url = database_url(&create_empty_database().await);
    let mut nodes = JoinSet::new();
    for _ in 0..4 {
        let url = url.clone();
        nodes.spawn(async move { PgStore::migrate(&url).await });
    }
    for result in nodes.join_all().await {
        result.unwrap();
    }
    let store = PgStore::connect(&url, PgStoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.count_organizations().await.unwrap(), 0);
    store.teardown().await;
}
