//! Stores on temporary files.

use std::path::PathBuf;

use webhook_store_sqlite::{SqliteOptions, SqliteStore};

/// A path for a new database in the temporary directory; the contract teardown removes it.
pub(crate) fn temp_path() -> PathBuf {
    std::env::temp_dir().join(format!("webhookd-test-{}.sqlite", uuid::Uuid::new_v4()))
}

/// A new, empty, migrated store on a file of its own.
pub(crate) async fn open_temp() -> SqliteStore {
    SqliteStore::open(SqliteOptions::new(temp_path()))
        .await
        .expect("open a temporary store")
}
