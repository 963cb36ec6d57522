//! The embedded migrations of `migrations/postgres`, applied under an advisory lock.

use diesel::RunQueryDsl as _;
use diesel::connection::Connection as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Serializes migrations of one database across nodes (any constant; "webhookd" in ASCII).
const MIGRATION_LOCK: i64 = 0x7765_6268_6f6f_6b64;

/// The migrations could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// No connection to the database.
    #[error("could not connect to the database")]
    Connect(#[source] diesel::ConnectionError),
    /// The migration lock could not be taken or released.
    #[error("could not take the migration lock")]
    Lock(#[source] diesel::result::Error),
    /// A migration failed; it was rolled back.
    #[error("a migration failed")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The blocking task running the migrations panicked or was cancelled.
    #[error("the migration task did not finish")]
    Task(#[source] tokio::task::JoinError),
}

pub(crate) async fn run(url: &str) -> Result<(), MigrateError> {
    let url = url.to_owned();
    // diesel's migration harness is synchronous: run it beside the async workers.
    tokio::task::spawn_blocking(move || run_blocking(&url))
        .await
        .map_err(MigrateError::Task)?
}

fn run_blocking(url: &str) -> Result<(), MigrateError> {
    let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::establish(url)
        .map_err(MigrateError::Connect)?;
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .map_err(MigrateError::Lock)?;
    let result = conn
        .run_pending_migrations(MIGRATIONS)
        .map(drop)
        .map_err(MigrateError::Migration);
    // The lock also goes with the connection; unlocking keeps a pooled caller clean.
    let unlocked = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .map(drop)
        .map_err(MigrateError::Lock);
    result.and(unlocked)
}
