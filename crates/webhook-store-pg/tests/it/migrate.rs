//! Migrations: idempotent, safe when several nodes start at once, and applied to databases
//! that an earlier release wrote, with data in them.

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, SimpleAsyncConnection as _};
use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};
use tokio::task::JoinSet;
use webhook_domain::model::Timestamp;
use webhook_domain::ports::OrganizationStore as _;
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{FirstSchemaIds, check_task_from_the_first_schema};
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

/// A task that failed after three attempts, stored under the first schema (no delivery rounds),
/// reads back in its first round once the later migrations have run, and a retry starts the
/// next round after its attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stored_before_delivery_rounds_is_in_its_first_round() {
    let name = create_empty_database().await;
    let url = database_url(&name);
    let first_schema = url.clone();
    let first = tokio::task::spawn_blocking(move || {
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            diesel::Connection::establish(&first_schema).expect("connect");
        let migrations = FileBasedMigrations::from_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/postgres"
        ))
        .expect("the migrations directory");
        conn.run_next_migration(migrations)
            .expect("the first schema")
            .to_string()
    })
    .await
    .expect("join");
    assert_eq!(first, "20250101000000");

    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        invocation,
        task,
    } = ids;
    let t = "'2026-01-01T00:00:00Z'";
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    conn.batch_execute(&format!(
        "INSERT INTO organizations VALUES ('{org}', 'Acme', 1000, {t}, {t});
         INSERT INTO targets VALUES ('{target}', '{org}', 'agent', 'Bot', NULL, '\\x00', false,
             {t}, {t});
         INSERT INTO webhooks VALUES ('{webhook}', '{org}', 'CI', '{target}', '{{}}', NULL, 100,
             'active', {t}, {t}, {t});
         INSERT INTO invocations VALUES ('{invocation}', '{org}', '{webhook}', {t}, NULL, NULL,
             '{{\"message\":\"Deploy\"}}', 'accepted', 202, NULL, '{task}', 1, false,
             503, NULL, 12, 'the target answered HTTP 503', {t}, false);
         INSERT INTO tasks VALUES ('{task}', '{org}', '{target}', '{webhook}', '{invocation}',
             'Deploy', NULL, NULL, 'failed', false, true, NULL, {t}, 3, {t},
             'the target answered HTTP 503', NULL, NULL, {t}, {t});"
    ))
    .await
    .expect("data of the first schema");
    drop(conn);

    let store = PgStore::connect(&url, PgStoreOptions::default())
        .await
        .expect("migrate and connect");
    let retry_at = Timestamp::from_unix_micros(1_800_000_000_000_000);
    check_task_from_the_first_schema(&store, &ids, retry_at).await;
    store.teardown().await;
}
