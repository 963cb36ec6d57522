//! Test support: a fresh database per test, created from a template that is migrated once per
//! migration set, and dropped when the test is done.
//!
//! The server comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Databases are named `webhookd_test_<unix seconds>_<random>`; those of crashed runs are
//! dropped once they are an hour old.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{PgStore, PgStoreOptions};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX: &str = "webhookd_test_";
/// Serializes template creation across test processes.
const TEMPLATE_LOCK: i64 = 0x7765_6268_6f6f_6b74;
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

static TEMPLATE: OnceCell<String> = OnceCell::const_new();

/// The server's administrative URL, from `DATABASE_URL`.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// `admin_url()` pointed at database `name`.
///
/// # Panics
/// When `DATABASE_URL` is not a URL.
pub fn database_url(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

#[derive(QueryableByName)]
struct NameRow {
    #[diesel(sql_type = Text)]
    datname: String,
}

#[derive(QueryableByName)]
struct TemplateRow {
    #[diesel(sql_type = Bool)]
    datistemplate: bool,
}

async fn admin() -> AsyncPgConnection {
    AsyncPgConnection::establish(&admin_url())
        .await
        .expect("the test PostgreSQL server accepts connections (DATABASE_URL)")
}

async fn run(conn: &mut AsyncPgConnection, sql: &str) {
    sql_query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs one statement `sql` on a connection of its own to the server's admin database.
async fn run_as_admin(sql: &str) {
    run(&mut admin().await, sql).await;
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The migrated template of this migration set, created once per server.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("webhookd_template_{}", env!("WEBHOOKD_PG_MIGRATIONS_HASH"));
            let mut conn = admin().await;
            run(
                &mut conn,
                &format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"),
            )
            .await;
            let state = sql_query("SELECT datistemplate FROM pg_database WHERE datname = $1")
                .bind::<Text, _>(&name)
                .get_results::<TemplateRow>(&mut conn)
                .await
                .expect("pg_database is readable");
            if !state.iter().any(|row| row.datistemplate) {
                // Absent, or left half-built by a crashed run.
                run(
                    &mut conn,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
                run(&mut conn, &format!("CREATE DATABASE {name}")).await;
                PgStore::migrate(&database_url(&name))
                    .await
                    .expect("the migrations apply to an empty database");
                run(
                    &mut conn,
                    &format!("ALTER DATABASE {name} IS_TEMPLATE true"),
                )
                .await;
            }
            drop_leftovers(&mut conn).await;
            run(
                &mut conn,
                &format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"),
            )
            .await;
            name
        })
        .await
}

/// Drops test databases of runs that ended without dropping theirs.
async fn drop_leftovers(conn: &mut AsyncPgConnection) {
    let names = sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
        .bind::<Text, _>(format!("{PREFIX}%"))
        .get_results::<NameRow>(conn)
        .await
        .expect("pg_database is readable");
    let now = unix_now();
    for NameRow { datname } in names {
        let created = datname
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > LEFTOVER_AGE.as_secs()) {
            run(
                conn,
                &format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"),
            )
            .await;
        }
    }
}

/// Creates an empty, migrated database and returns its name.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn create_database() -> String {
    let template = template().await;
    let name = format!(
        "{PREFIX}{}_{}",
        unix_now(),
        &Uuid::new_v4().simple().to_string()[..12]
    );
    run_as_admin(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
    name
}

/// Creates an empty database, without the schema, and returns its name.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn create_empty_database() -> String {
    let name = new_database_name();
    create_empty_database_named(&name).await;
    name
}

/// A fresh test database name, of a database not created yet: a test can point a node at it
/// and create it later with [`create_empty_database_named`].
pub fn new_database_name() -> String {
    format!(
        "{PREFIX}{}_{}",
        unix_now(),
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Creates the empty database `name`, from [`new_database_name`].
///
/// # Panics
/// When the name is not a test database's, or the server at `DATABASE_URL` cannot be used.
pub async fn create_empty_database_named(name: &str) {
    assert!(name.starts_with(PREFIX), "only test databases are created");
    run_as_admin(&format!("CREATE DATABASE {name}")).await;
}

/// Drops a database made by [`create_database`], closing whatever still uses it.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn drop_database(name: &str) {
    assert!(name.starts_with(PREFIX), "only test databases are dropped");
    run_as_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
}

/// Lets new connections into test database `name`, or refuses them (as a database that cannot
/// be reached would); connections already open stay.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn allow_connections(name: &str, allow: bool) {
    assert!(name.starts_with(PREFIX), "only test databases are changed");
    run_as_admin(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}")).await;
}

/// Cuts every connection to test database `name` that listens for route changes (as a
/// restarted server or a network cut would), by their `application_name`.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn cut_change_listeners(name: &str) {
    assert!(name.starts_with(PREFIX), "only test databases are changed");
    run_as_admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND application_name = '{}'",
        crate::APPLICATION_NAME
    ))
    .await;
}

/// A session of a test database holding a lock in an open transaction, as a long migration or
/// another writer would: every statement that needs what it holds waits until
/// [`Lock::release`] (or until it is dropped).
pub struct Lock {
    conn: AsyncPgConnection,
}

impl Lock {
    /// Locks `table` of test database `name` in `ACCESS EXCLUSIVE` mode: no statement reads or
    /// writes it meanwhile.
    ///
    /// # Panics
    /// When the name is not a test database's, the table's name is not a plain identifier, or
    /// the server at `DATABASE_URL` cannot be used.
    pub async fn table(name: &str, table: &str) -> Self {
        assert!(
            table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{table} is a plain table name"
        );
        Self::holding(
            name,
            &format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"),
        )
        .await
    }

    /// Holds the row of webhook `webhook_id` in test database `name` (`FOR UPDATE`): a write
    /// whose foreign key refers to it waits, inside its transaction.
    ///
    /// # Panics
    /// When the name is not a test database's or the server at `DATABASE_URL` cannot be used.
    pub async fn webhook_row(name: &str, webhook_id: Uuid) -> Self {
        Self::holding(
            name,
            &format!("SELECT 1 FROM webhooks WHERE id = '{webhook_id}' FOR UPDATE"),
        )
        .await
    }

    async fn holding(name: &str, statement: &str) -> Self {
        assert!(name.starts_with(PREFIX), "only test databases are locked");
        let mut conn = AsyncPgConnection::establish(&database_url(name))
            .await
            .expect("the test database accepts connections");
        run(&mut conn, "BEGIN").await;
        run(&mut conn, statement).await;
        Self { conn }
    }

    /// Ends the transaction, and with it the lock.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn release(mut self) {
        run(&mut self.conn, "ROLLBACK").await;
    }
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
}

/// Whether a statement of test database `name` whose text contains `text` (case aside) waits
/// for a lock.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn statement_waits_for_lock(name: &str, text: &str) -> bool {
    let waiting = sql_query(
        "SELECT count(*) AS count FROM pg_stat_activity \
         WHERE datname = $1 AND wait_event_type = 'Lock' AND strpos(lower(query), lower($2)) > 0",
    )
    .bind::<Text, _>(name)
    .bind::<Text, _>(text)
    .get_result::<CountRow>(&mut admin().await)
    .await
    .expect("pg_stat_activity is readable");
    waiting.count > 0
}

/// A store on a fresh database; [`webhook_store_contract::ContractStore::teardown`] drops it.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn fresh_store() -> PgStore {
    fresh_store_with(PgStoreOptions::default()).await
}

/// [`fresh_store`] with `options`.
///
/// # Panics
/// When the server at `DATABASE_URL` cannot be used.
pub async fn fresh_store_with(options: PgStoreOptions) -> PgStore {
    let name = create_database().await;
    PgStore::open(&database_url(&name), options).expect("the pool builds")
}

/// A store whose database cannot be reached (nothing listens on port 1): every connection it
/// asks for fails once `acquire_timeout` has passed.
///
/// # Panics
/// When the pool cannot be built, which needs no connection.
pub fn unreachable_store(acquire_timeout: Duration) -> PgStore {
    PgStore::open(
        "postgres://postgres@127.0.0.1:1/webhookd",
        PgStoreOptions {
            acquire_timeout,
            ..PgStoreOptions::default()
        },
    )
    .expect("the pool builds without connecting")
}

impl PgStore {
    /// The name of the database this store uses, when it is a test database.
    pub fn test_database(&self) -> Option<String> {
        let url = url::Url::parse(&self.inner.url).ok()?;
        let name = url.path().trim_start_matches('/');
        name.starts_with(PREFIX).then(|| name.to_owned())
    }
}

impl webhook_store_contract::ContractStore for PgStore {
    async fn teardown(self) {
        let database = self.test_database();
        drop(self);
        if let Some(name) = database {
            drop_database(&name).await;
        }
    }

    fn break_next_commit(&self, fault: webhook_store_contract::CommitFault) -> bool {
        use crate::group_commit::CommitFault;
        let fault = match fault {
            webhook_store_contract::CommitFault::BeforeCommit => CommitFault::BeforeCommit,
            webhook_store_contract::CommitFault::AfterCommit => CommitFault::AfterCommit,
        };
        *self
            .inner
            .commit_fault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fault);
        true
    }
}
