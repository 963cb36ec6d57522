//! Migrations applied to a database that an earlier release wrote, with data in it.

use std::path::{Path, PathBuf};

use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{QueryableByName, RunQueryDsl as _};
use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};
use uuid::Uuid;
use webhook_domain::model::{
    ClaimOutcome, DeliveryClaim, Invocation, InvocationFilter, InvocationId, InvocationOutcome,
    OrganizationId, OutcomeFilter, Payload, SearchWords, Source, SourceSettings, TaskId, Timestamp,
    WebhookId,
};
use webhook_domain::ports::{InvocationLog as _, TaskQueue as _, WebhookStore as _};
use webhook_store_contract::fixtures::{
    FirstSchemaIds, accepted, check_task_from_the_first_schema, page,
};
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

use crate::support::{remove_database, temp_path};

fn blob(id: Uuid) -> String {
    format!("X'{}'", id.simple())
}

/// A file holding the first schema's data of `ids`, and a store opened on it, which migrates it.
async fn migrated_first_schema(ids: &FirstSchemaIds) -> (PathBuf, SqliteStore) {
    let path = file_with_first_schema_data(ids);
    let store = SqliteStore::open(SqliteOptions::new(path.clone()))
        .await
        .expect("open and migrate");
    (path, store)
}

/// A new database file under the first schema only, holding the rows of `ids`: a webhook last
/// triggered at 2 µs, and its accepted invocation whose task failed after three attempts, the
/// last one the invocation's response.
fn file_with_first_schema_data(ids: &FirstSchemaIds) -> PathBuf {
    let path = temp_path();
    let mut conn = SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("create");
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
             'the target answered HTTP 503', NULL, NULL, 2, 9);
         INSERT INTO delivery_attempts VALUES
             ({task}, 1, 503, NULL, 10, 'the target answered HTTP 503', 3, 0),
             ({task}, 2, 503, NULL, 11, 'the target answered HTTP 503', 5, 0),
             ({task}, 3, 503, NULL, 12, 'the target answered HTTP 503', 9, 0);",
        org = blob(ids.organization),
        target = blob(ids.target),
        webhook = blob(ids.webhook),
        invocation = blob(ids.invocation),
        task = blob(ids.task),
    ))
    .expect("data of the first schema");
    path
}

/// A task that failed after three attempts, stored under the first schema: no delivery rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_stored_before_delivery_rounds_is_in_its_first_round() {
    let ids = FirstSchemaIds::random();
    let (path, store) = migrated_first_schema(&ids).await;
    check_task_from_the_first_schema(&store, &ids, Timestamp::from_unix_micros(20)).await;

    store.close().await;
    remove_database(&path);
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Rows stored before webhooks had sources read as `generic` ones with no overrides, no
/// allowlist and no previous secret; the invocation log, rebuilt so that its outcomes admit
/// `duplicate`, keeps every invocation, its indexes and the tasks' references to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stored_before_sources_read_as_generic_and_the_log_admits_duplicates() {
    let ids = FirstSchemaIds::random();
    let (path, store) = migrated_first_schema(&ids).await;
    let org = OrganizationId::from_uuid(ids.organization);

    let webhook = store
        .webhook(WebhookId::from_uuid(ids.webhook))
        .await
        .expect("the webhook");
    assert_eq!(webhook.source, SourceSettings::default());
    assert!(webhook.allowed_source_ips.is_empty());
    assert_eq!(webhook.previous_secret, None);
    assert_eq!(webhook.previous_secret_expires_at, None);
    assert_eq!(
        webhook.last_triggered_at,
        Some(Timestamp::from_unix_micros(2))
    );

    let invocation = store
        .invocation(org, InvocationId::from_uuid(ids.invocation))
        .await
        .expect("the invocation, copied into the rebuilt log");
    assert_eq!(invocation.outcome, InvocationOutcome::Accepted);
    assert_eq!(invocation.task_id, Some(TaskId::from_uuid(ids.task)));
    assert_eq!(
        invocation.payload.as_ref().map(Payload::as_str),
        Some("{\"message\":\"Deploy\"}")
    );
    let response = invocation.target_response.as_ref().expect("its response");
    assert_eq!(
        (
            response.status_code,
            response.latency_ms,
            response.succeeded
        ),
        (Some(503), 12, false)
    );
    assert_eq!(
        (
            &invocation.delivery_id,
            invocation.duplicate_of,
            &invocation.instruction_fallback
        ),
        (&None, None, &None)
    );
    // Logged before requests were recorded: no record, and not a replay.
    assert_eq!((&invocation.request, invocation.replay_of), (&None, None));
    let task = store
        .task(org, TaskId::from_uuid(ids.task))
        .await
        .expect("the task, with its context read from the rebuilt log");
    assert_eq!(task.source.provider, Source::Generic);
    assert_eq!(task.context.as_str(), "{\"message\":\"Deploy\"}");

    // New writes use the new columns: a claimed delivery, and a duplicate of it.
    let (first, first_task) = accepted(&webhook, Timestamp::from_unix_micros(30));
    let claim = DeliveryClaim {
        delivery_id: "delivery-1".to_owned(),
        window_start: Timestamp::from_unix_micros(0),
    };
    let outcome = store
        .record_claimed(&first, Some(&first_task), &claim)
        .await
        .expect("claim");
    assert_eq!(outcome, ClaimOutcome::Recorded);
    let duplicate = Invocation {
        id: InvocationId::from_uuid(Uuid::now_v7()),
        received_at: Timestamp::from_unix_micros(31),
        outcome: InvocationOutcome::Duplicate,
        http_status: 200,
        task_id: None,
        duplicate_of: Some(first.id),
        delivery_id: Some("delivery-1".to_owned()),
        ..first.clone()
    };
    store
        .record_invocation(&duplicate, None)
        .await
        .expect("the log admits duplicates");
    let listed = store
        .invocations(
            org,
            webhook.id,
            &InvocationFilter::outcome(OutcomeFilter::Duplicate),
            page(10),
        )
        .await
        .expect("list");
    assert_eq!(listed.items, vec![duplicate]);
    store.close().await;

    check_rebuilt_log(&path);
    remove_database(&path);
}

/// The invocation log at `path`, rebuilt by a migration, has its indexes, the tasks still
/// reference it, and no row references one that does not exist.
fn check_rebuilt_log(path: &Path) {
    let mut conn = SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("open");
    let names = |conn: &mut SqliteConnection, sql: &str| -> Vec<String> {
        diesel::sql_query(sql)
            .load::<Name>(conn)
            .expect("schema")
            .into_iter()
            .map(|n| n.name)
            .collect()
    };
    assert_eq!(
        names(
            &mut conn,
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'invocations' \
             AND sql IS NOT NULL ORDER BY name"
        ),
        // The rebuild made `invocations_by_received_at` again; `2026-12-08-040000_purge_by_webhook`
        // dropped it.
        ["invocations_by_webhook"]
    );
    assert_eq!(
        names(
            &mut conn,
            "SELECT \"table\" AS name FROM pragma_foreign_key_list('tasks') ORDER BY name"
        ),
        ["invocations", "targets", "webhooks"]
    );
    let broken = diesel::sql_query("SELECT count(*) AS count FROM pragma_foreign_key_check")
        .get_result::<Count>(&mut conn)
        .expect("check");
    assert_eq!(broken.count, 0);
}

/// Invocations logged before the word index existed are indexed when the store opens, a batch
/// at a time, and found by a search like those logged since; opening again indexes nothing
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_logged_before_the_word_index_are_found() {
    let ids = FirstSchemaIds::random();
    let path = file_with_first_schema_data(&ids);
    let mut conn = SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("open");
    conn.batch_execute(&format!(
        "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1100)
         INSERT INTO invocations SELECT randomblob(16), {org}, {webhook}, 100 + n, NULL, NULL,
             '{{\"message\":\"Bulk ' || n || '\"}}', 'ignored', 200, NULL, NULL, 1, 0,
             NULL, NULL, NULL, NULL, NULL, NULL FROM c;",
        org = blob(ids.organization),
        webhook = blob(ids.webhook),
    ))
    .expect("a long log under the first schema");
    drop(conn);
    let org = OrganizationId::from_uuid(ids.organization);
    let webhook = WebhookId::from_uuid(ids.webhook);
    let words = |q: &str| InvocationFilter {
        words: Some(SearchWords::parse(q).expect("a search")),
        ..InvocationFilter::default()
    };
    for _ in 0..2 {
        let store = SqliteStore::open(SqliteOptions::new(path.clone()))
            .await
            .expect("open and migrate");
        let search = async |q: &str, limit: u32| {
            store
                .invocations(org, webhook, &words(q), page(limit))
                .await
                .expect("search")
                .items
        };
        let found: Vec<Uuid> = search("deploy", 10)
            .await
            .iter()
            .map(|i| *i.id.as_uuid())
            .collect();
        assert_eq!(found, [ids.invocation]);
        let bulk = search("bulk", 500).await;
        assert_eq!(bulk.len(), 500);
        assert_eq!(bulk[0].received_at, Timestamp::from_unix_micros(1200));
        let one = search("BULK 777", 10).await;
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].received_at, Timestamp::from_unix_micros(877));
        store.close().await;
    }
    let mut conn = SqliteConnection::establish(path.to_str().expect("utf-8 path")).expect("open");
    let rows: Count = diesel::sql_query("SELECT count(*) AS count FROM invocation_search")
        .get_result(&mut conn)
        .expect("count");
    assert_eq!(rows.count, 1101, "each invocation indexed once");
    drop(conn);
    remove_database(&path);
}
