//! Migrations applied to a database that an earlier release wrote, with data in it.

use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};
use uuid::Uuid;
use webhook_domain::model::Timestamp;
use webhook_store_contract::fixtures::{FirstSchemaIds, check_task_from_the_first_schema};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

use crate::support::{remove_database, temp_path};

fn blob(id: Uuid) -> String {
    format!("X'{}'", id.simple())
}

/// A task that failed after three attempts, stored under the first schema: no delivery rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stored_before_delivery_rounds_is_in_its_first_round() {
    let path = temp_path();
    let ids = FirstSchemaIds::random();
    {
        let mut conn =
            SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("create");
        let migrations = FileBasedMigrations::from_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/sqlite"
        ))
        .expect("the migrations directory");
        let first = conn
            .run_next_migration(migrations)
            .expect("the first schema");
        assert_eq!(first.to_string(), "20250101000000");
        conn.batch_execute(&format!(
            "INSERT INTO organizations VALUES ({org}, 'Acme', 1000, 1, 1);
             INSERT INTO targets VALUES ({target}, {org}, 'agent', 'Bot', NULL, X'00', 1, 1, NULL);
             INSERT INTO webhooks VALUES ({webhook}, {org}, 'CI', {target}, '[]', NULL, 100,
                 'active', 1, 1, 2);
             INSERT INTO invocations VALUES ({invocation}, {org}, {webhook}, 2, NULL, NULL,
                 '{{\"message\":\"Deploy\"}}', 'accepted', 202, NULL, {task}, 1, 0,
                 503, NULL, 12, 'the target answered HTTP 503', 9, 0);
             INSERT INTO tasks VALUES ({task}, {org}, {target}, {webhook}, {invocation},
                 'Deploy', NULL, NULL, 'failed', 0, 1, NULL, 2, 3, 8,
                 'the target answered HTTP 503', NULL, NULL, 2, 9);",
            org = blob(ids.organization),
            target = blob(ids.target),
            webhook = blob(ids.webhook),
            invocation = blob(ids.invocation),
            task = blob(ids.task),
        ))
        .expect("data of the first schema");
    }

    let store = SqliteStore::open(SqliteOptions::new(path.clone()))
        .await
        .expect("open and migrate");
    check_task_from_the_first_schema(&store, &ids, Timestamp::from_unix_micros(20)).await;

    store.close().await;
    remove_database(&path);
}
