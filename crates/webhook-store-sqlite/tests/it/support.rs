//! Stores on temporary files.

use std::path::{Path, PathBuf};

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

/// Removes the database at `path` with its WAL and shared-memory files, as far as they exist.
pub(crate) fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_owned().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
