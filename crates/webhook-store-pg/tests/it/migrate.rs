//! Migrations: idempotent, safe when several nodes start at once, and applied to databases
//! that an earlier release wrote, with data in them.

use diesel::sql_query;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{
    AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _, SimpleAsyncConnection as _,
};
use diesel_migrations::{FileBasedMigrations, MigrationHarness as _};
use std::time::Duration;
use tokio::task::JoinSet;

use uuid::Uuid;
use webhook_domain::model::{
    CidrList, Invocation, InvocationFilter, InvocationId, InvocationOutcome, OrganizationId,
    Payload, RatePerMinute, RateRequest, SearchWords, Source, SourceSettings, TaskId, Timestamp,
    WebhookId,
};
use webhook_domain::ports::{
    InvocationLog as _, OrganizationStore as _, RateLimiter as _, TaskQueue as _, WebhookStore as _,
};
use webhook_domain::rules::{RateDecision, RateScope, RateStatus};
use webhook_store_contract::ContractStore as _;
use webhook_store_contract::fixtures::{
    FirstSchemaIds, accepted, at, check_task_from_the_first_schema, ignored, page,
};
use webhook_store_pg::test_db::{create_empty_database, database_url};
use webhook_store_pg::{PgStore, PgStoreOptions, RateLimiterOptions};

use crate::support::{Count, execute};

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
    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        invocation,
        task,
    } = ids;
    let url = database_with_webhook_up_to(
        "20250101000000",
        &ids,
        &format!(
            "INSERT INTO invocations VALUES ('{invocation}', '{org}', '{webhook}', {T}, NULL, NULL,
             '{{\"message\":\"Deploy\"}}', 'accepted', 202, NULL, '{task}', 1, false,
             503, NULL, 12, 'the target answered HTTP 503', {T}, false);
         INSERT INTO tasks VALUES ('{task}', '{org}', '{target}', '{webhook}', '{invocation}',
             'Deploy', NULL, NULL, 'failed', false, true, NULL, {T}, 3, {T},
             'the target answered HTTP 503', NULL, NULL, {T}, {T});"
        ),
    )
    .await;
    let store = migrated(&url).await;
    let retry_at = Timestamp::from_unix_micros(1_800_000_000_000_000);
    check_task_from_the_first_schema(&store, &ids, retry_at).await;
    store.teardown().await;
}

/// The time of every row written with SQL, as an SQL literal.
const T: &str = "'2026-01-01T00:00:00Z'";

/// A new database with the migrations up to and including `last` applied, then `rows` (SQL)
/// written to it; its URL.
async fn database_up_to(last: &'static str, rows: &str) -> String {
    let url = database_url(&create_empty_database().await);
    migrate_up_to(&url, last).await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    conn.batch_execute(rows)
        .await
        .unwrap_or_else(|e| panic!("the rows of the schema up to {last}: {e}"));
    url
}

/// A new database with the migrations up to and including `last` applied, the organization,
/// target and webhook of `ids` written under the first schema ([`first_schema_webhook`]), then
/// `rows`; its URL.
async fn database_with_webhook_up_to(
    last: &'static str,
    ids: &FirstSchemaIds,
    rows: &str,
) -> String {
    database_up_to(last, &format!("{}\n{rows}", first_schema_webhook(ids))).await
}

/// SQL that writes the organization and the target of `ids` under the first schema.
fn first_schema_owners(ids: &FirstSchemaIds) -> String {
    let FirstSchemaIds {
        organization: org,
        target,
        ..
    } = ids;
    format!(
        "INSERT INTO organizations VALUES ('{org}', 'Acme', 1000, {T}, {T});
         INSERT INTO targets VALUES ('{target}', '{org}', 'agent', 'Bot', NULL, '\\x00', false,
             {T}, {T});"
    )
}

/// SQL that writes the organization, target and webhook of `ids` under the first schema; the
/// webhook without a secret, last triggered at [`T`].
fn first_schema_webhook(ids: &FirstSchemaIds) -> String {
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        ..
    } = ids;
    format!(
        "{}
         INSERT INTO webhooks VALUES ('{webhook}', '{org}', 'CI', '{target}', '{{}}', NULL, 100,
             'active', {T}, {T}, {T});",
        first_schema_owners(ids)
    )
}

/// A store on the database at `url`, which runs the migrations still to run.
async fn migrated(url: &str) -> PgStore {
    PgStore::connect(url, PgStoreOptions::default())
        .await
        .expect("migrate and connect")
}

/// The migrations up to and including `last`, applied to the empty database at `url`.
async fn migrate_up_to(url: &str, last: &'static str) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn: AsyncConnectionWrapper<AsyncPgConnection> =
            diesel::Connection::establish(&url).expect("connect");
        let migrations = FileBasedMigrations::from_path(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../migrations/postgres"
        ))
        .expect("the migrations directory");
        loop {
            let version = conn
                .run_next_migration(migrations.clone())
                .expect("the next migration")
                .to_string();
            if version == last {
                return;
            }
        }
    })
    .await
    .expect("join");
}

/// A webhook, an accepted invocation and its task stored before webhooks had sources read back
/// as the `generic` source's, with no overrides, allowlist, previous secret, delivery id,
/// duplicate or template note; and the log then takes duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_stored_before_sources_are_generic() {
    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        invocation,
        task,
    } = ids;
    let url = database_up_to(
        "20261127110000",
        &format!(
            "{}
         INSERT INTO webhooks VALUES ('{webhook}', '{org}', 'CI', '{target}', '{{}}', '\\x01',
             100, 'active', {T}, {T}, NULL);
         INSERT INTO invocations VALUES ('{invocation}', '{org}', '{webhook}', {T}, NULL, NULL,
             '{{\"message\":\"Deploy\"}}', 'accepted', 202, NULL, '{task}', 1, false,
             NULL, NULL, NULL, NULL, NULL, NULL);
         INSERT INTO tasks (id, organization_id, target_id, webhook_id, invocation_id,
             instruction, context, event_type, status, test, source_verified, source_ip,
             source_received_at, attempts, next_attempt_at, last_error, lease_token,
             lease_until, created_at, updated_at, attempts_before_round)
         VALUES ('{task}', '{org}', '{target}', '{webhook}', '{invocation}', 'Deploy', NULL,
             NULL, 'queued', false, true, NULL, {T}, 0, {T}, NULL, NULL, NULL, {T}, {T}, 0);",
            first_schema_owners(&ids)
        ),
    )
    .await;
    let store = migrated(&url).await;
    let organization = OrganizationId::from_uuid(org);
    let stored = store
        .webhook(WebhookId::from_uuid(webhook))
        .await
        .expect("the webhook");
    assert_eq!(stored.source, SourceSettings::default());
    assert_eq!(stored.allowed_source_ips, CidrList::default());
    assert!(stored.previous_secret.is_none(), "{stored:?}");
    assert_eq!(stored.previous_secret_expires_at, None);
    let logged = store
        .invocation(organization, InvocationId::from_uuid(invocation))
        .await
        .expect("the invocation");
    assert_eq!(
        (
            logged.delivery_id.as_deref(),
            logged.duplicate_of,
            logged.instruction_fallback.as_deref()
        ),
        (None, None, None)
    );
    // Logged before requests were recorded: no record, and not a replay.
    assert_eq!((&logged.request, logged.replay_of), (&None, None));
    let queued = store
        .task(organization, TaskId::from_uuid(task))
        .await
        .expect("the task");
    assert_eq!(queued.source.provider, Source::Generic);

    let duplicate = Invocation {
        outcome: InvocationOutcome::Duplicate,
        http_status: 200,
        duplicate_of: Some(logged.id),
        ..ignored(&stored, at(1))
    };
    store
        .record_invocation(&duplicate, None)
        .await
        .expect("a duplicate");
    assert_eq!(
        store
            .invocation(organization, duplicate.id)
            .await
            .expect("read"),
        duplicate
    );
    store.teardown().await;
}

/// Rate-limit windows charged before windows were kept one row per key are moved over with
/// their counts: a webhook that had used its quota is still refused, until its oldest charge
/// leaves the window; seconds already out of the window are not carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_charged_before_the_counters_keep_refusing() {
    let (webhook, organization) = (Uuid::new_v4(), Uuid::new_v4());
    // A second in 2026.
    let second: i64 = 1_796_000_000;
    let url = database_up_to(
        "20261207050000",
        &format!(
            "INSERT INTO rate_limit_windows VALUES
             (0, '{webhook}', {}, 50), (0, '{webhook}', {}, 3), (0, '{webhook}', {second}, 2),
             (1, '{organization}', {second}, 5);",
            second - 100,
            second - 10,
        ),
    )
    .await;
    let store = migrated(&url).await;
    let limiter = store.rate_limiter(RateLimiterOptions::default());
    let request = |quota: u32| RateRequest {
        webhook_id: WebhookId::from_uuid(webhook),
        webhook_quota: RatePerMinute::new(quota).expect("a quota"),
        organization_id: OrganizationId::from_uuid(organization),
        organization_quota: RatePerMinute::new(1000).expect("a quota"),
        now: Timestamp::from_unix_micros(second * 1_000_000),
    };
    let decision = limiter
        .acquire(request(5))
        .await
        .expect("the database is up");
    assert_eq!(
        decision,
        RateDecision::Denied {
            scope: RateScope::Webhook,
            retry_after: Duration::from_secs(51),
            status: RateStatus {
                limit: 5,
                remaining: 0,
                reset_after: Duration::from_secs(61),
            },
        },
        "the 5 charges of the last 61 seconds hold, the 50 of 100 seconds ago do not"
    );
    store.teardown().await;
}

/// Invocations logged before the word index existed are indexed when a node starts, a batch at
/// a time, and found by a search like those logged since; a second start has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_logged_before_the_word_index_are_found() {
    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        webhook,
        ..
    } = ids;
    let url = database_with_webhook_up_to(
        "20250101000000",
        &ids,
        &format!(
            "INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload, outcome,
             http_status, repeat_count, test)
         SELECT gen_random_uuid(), '{org}', '{webhook}', {T}::timestamptz + n * interval '1 ms',
             '{{\"message\":\"Bulk ' || n || '\"}}', 'ignored', 200, 1, false
         FROM generate_series(1, 1100) AS n;
         INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload, outcome,
             http_status, repeat_count, test)
         VALUES (gen_random_uuid(), '{org}', '{webhook}', {T}, NULL, 'rejected', 401, 1, false);"
        ),
    )
    .await;
    let (org, webhook) = (
        OrganizationId::from_uuid(org),
        WebhookId::from_uuid(webhook),
    );
    let search = |q: &str| InvocationFilter {
        words: Some(SearchWords::parse(q).expect("a search")),
        ..InvocationFilter::default()
    };
    for _ in 0..2 {
        let store = migrated(&url).await;
        let bulk = store
            .invocations(org, webhook, &search("bulk"), page(500))
            .await
            .expect("search");
        assert_eq!(bulk.items.len(), 500);
        let one = store
            .invocations(org, webhook, &search("BULK 777"), page(10))
            .await
            .expect("search");
        assert_eq!(one.items.len(), 1);
        assert_eq!(
            one.items[0].payload.as_ref().map(Payload::as_str),
            Some(r#"{"message":"Bulk 777"}"#)
        );
        assert_eq!(store.index_unsearchable().await.expect("index"), 0);
        drop(store);
    }
    let store = migrated(&url).await;
    store.teardown().await;
}

/// A database written before tasks lost their foreign keys upgrades: the keys and the indexes
/// only they used are gone, the purge still deletes an old finished invocation with its task
/// and the task's attempts (and the finished task a purge of the previous release left behind
/// when it deleted the task's invocation), keeps an open task's invocation, and new events are
/// recorded with their tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_stored_before_their_foreign_keys_were_dropped_are_purged() {
    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        invocation: done,
        task: done_task,
    } = ids;
    let (open, open_task) = (Uuid::new_v4(), Uuid::new_v4());
    let (left, left_task) = (Uuid::new_v4(), Uuid::new_v4());
    let rows = |invocation: Uuid, task: Uuid, status: &str| {
        format!(
            "INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload,
                 outcome, http_status, task_id, repeat_count, test)
             VALUES ('{invocation}', '{org}', '{webhook}', {T}, '{{\"message\":\"Deploy\"}}',
                 'accepted', 202, '{task}', 1, false);
             INSERT INTO tasks (id, organization_id, target_id, webhook_id, invocation_id,
                 instruction, status, test, source_verified, source_received_at, attempts,
                 next_attempt_at, created_at, updated_at)
             VALUES ('{task}', '{org}', '{target}', '{webhook}', '{invocation}', 'Deploy',
                 '{status}', false, true, {T}, 1, {T}, {T}, {T});
             INSERT INTO delivery_attempts VALUES ('{task}', 1, 200, 'ok', 12, NULL, {T}, true);"
        )
    };
    let url = database_with_webhook_up_to(
        "20261207080000",
        &ids,
        &format!(
            "{}
             {}
             {}",
            rows(done, done_task, "completed"),
            rows(open, open_task, "delivered"),
            rows(left, left_task, "failed"),
        ),
    )
    .await;
    let store = migrated(&url).await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    assert_eq!(foreign_keys_of_tasks(&mut conn).await, 0);
    assert_eq!(
        count(
            &mut conn,
            "pg_indexes WHERE indexname IN ('tasks_by_invocation', 'invocations_by_received_at')"
        )
        .await,
        0,
        "the purge's old indexes are gone"
    );
    // What a node of the previous release purging meanwhile does: it deletes the invocation
    // and counts on a cascade that no longer exists.
    execute(
        &mut conn,
        &format!("DELETE FROM invocations WHERE id = '{left}'"),
    )
    .await;

    let purged = store
        .purge_invocations(Timestamp::from_unix_micros(1_780_272_000_000_000))
        .await
        .expect("purge");
    assert_eq!(
        purged, 1,
        "the finished invocation; the open task keeps its own"
    );
    let organization = OrganizationId::from_uuid(org);
    assert!(
        store
            .invocation(organization, InvocationId::from_uuid(open))
            .await
            .is_ok(),
        "an open task keeps its invocation"
    );
    for (task, kept) in [(done_task, 0), (left_task, 0), (open_task, 1)] {
        let tasks = count(&mut conn, &format!("tasks WHERE id = '{task}'")).await;
        let attempts = count(
            &mut conn,
            &format!("delivery_attempts WHERE task_id = '{task}'"),
        )
        .await;
        assert_eq!((tasks, attempts), (kept, kept), "task {task}, its attempts");
    }

    let stored = store
        .webhook(WebhookId::from_uuid(webhook))
        .await
        .expect("the webhook");
    let (invocation, task) = accepted(&stored, at(1));
    store
        .record_invocation(&invocation, Some(&task))
        .await
        .expect("an event");
    assert_eq!(
        store.task(organization, task.id).await.expect("its task"),
        task
    );
    drop(conn);
    store.teardown().await;
}

/// A task its invocation does not name, which the purge could no longer find, stops the
/// migration that drops the tasks' foreign keys, and nothing of it is applied; named, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_its_invocation_does_not_name_stops_the_upgrade() {
    let ids = FirstSchemaIds::random();
    let FirstSchemaIds {
        organization: org,
        target,
        webhook,
        invocation,
        task,
    } = ids;
    let url = database_with_webhook_up_to(
        "20261207080000",
        &ids,
        &format!(
            "INSERT INTO invocations (id, organization_id, webhook_id, received_at, outcome,
                 http_status, task_id, repeat_count, test)
             VALUES ('{invocation}', '{org}', '{webhook}', {T}, 'accepted', 202, NULL, 1, false);
             INSERT INTO tasks (id, organization_id, target_id, webhook_id, invocation_id,
                 status, test, source_verified, source_received_at, attempts, next_attempt_at,
                 created_at, updated_at)
             VALUES ('{task}', '{org}', '{target}', '{webhook}', '{invocation}', 'completed',
                 false, true, {T}, 1, {T}, {T}, {T});"
        ),
    )
    .await;
    let refused = PgStore::migrate(&url).await;
    assert!(refused.is_err(), "{refused:?}");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    assert_eq!(foreign_keys_of_tasks(&mut conn).await, 2);
    // Once the invocation names its task, as the migration's hint says, the upgrade runs.
    execute(
        &mut conn,
        &format!("UPDATE invocations SET task_id = '{task}' WHERE id = '{invocation}'"),
    )
    .await;
    drop(conn);
    let store = migrated(&url).await;
    store.teardown().await;
}

/// The rows of `from` (a table and its condition, SQL).
async fn count(conn: &mut AsyncPgConnection, from: &str) -> i64 {
    sql_query(format!("SELECT count(*) AS n FROM {from}"))
        .get_result::<Count>(conn)
        .await
        .unwrap_or_else(|e| panic!("count {from}: {e}"))
        .n
}

/// How many foreign keys the `tasks` table has.
async fn foreign_keys_of_tasks(conn: &mut AsyncPgConnection) -> i64 {
    count(
        conn,
        "pg_constraint WHERE conrelid = 'tasks'::regclass AND contype = 'f'",
    )
    .await
}

/// Once migrated, a database written by an earlier release keeps its rows, and the rewrites
/// delivery makes without changing an indexed column — a task's lease, whether an invocation's
/// latest attempt succeeded — stay on their pages for the rows written since (HOT updates: no index entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrites_of_rows_written_after_the_upgrade_stay_on_their_pages() {
    let ids = FirstSchemaIds::random();
    let (org, target, webhook) = (ids.organization, ids.target, ids.webhook);
    let url = database_with_webhook_up_to("20261207090000", &ids, "").await;
    let store = migrated(&url).await;
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    assert_eq!(count(&mut conn, "webhooks").await, 1, "the earlier rows");

    conn.batch_execute(&format!(
        "BEGIN;
         INSERT INTO invocations (id, organization_id, webhook_id, received_at, payload,
             outcome, http_status, task_id, repeat_count, test)
         SELECT ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid, '{org}',
             '{webhook}', {T}, '{{\"message\":\"Deploy\"}}', 'accepted', 202,
             ('00000000-0000-0000-0001-' || lpad(n::text, 12, '0'))::uuid, 1, false
         FROM generate_series(1, 100) n;
         INSERT INTO tasks (id, organization_id, target_id, webhook_id, invocation_id,
             instruction, status, test, source_verified, source_received_at, attempts,
             next_attempt_at, created_at, updated_at)
         SELECT task_id, '{org}', '{target}', '{webhook}', id, 'Deploy', 'queued', false,
             true, {T}, 0, {T}, {T}, {T}
         FROM invocations;
         UPDATE tasks SET lease_token = gen_random_uuid(), lease_until = {T};
         UPDATE invocations SET response_succeeded = true;"
    ))
    .await
    .expect("a hundred events, leased and answered");
    // In one transaction no old version can be reclaimed, so the share of each page kept for
    // rewrites bounds how many fit: nearly all with half of each page of `tasks`, about four in
    // ten with 30 % of each page of `invocations`. With full pages, none.
    for (table, at_least) in [("tasks", 80), ("invocations", 35)] {
        let stayed = sql_query(format!(
            "SELECT pg_stat_get_xact_tuples_hot_updated('{table}'::regclass) AS n"
        ))
        .get_result::<Count>(&mut conn)
        .await
        .expect("the transaction's statistics")
        .n;
        assert!(
            stayed >= at_least,
            "{stayed} of 100 rewrites of {table} stayed on their page"
        );
    }
    execute(&mut conn, "ROLLBACK").await;
    drop(conn);
    store.teardown().await;
}
