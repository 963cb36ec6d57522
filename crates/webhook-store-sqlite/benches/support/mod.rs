//! What the store's bench programs share: a new seeded database file in the temporary
//! directory, and removing it (with its WAL and shared-memory files) afterwards.

use std::path::{Path, PathBuf};

use webhook_store_contract::fixtures::World;
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

/// A new database file's path in the temporary directory, named for the bench `name`.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "webhookd-bench-{name}-{}.sqlite",
        uuid::Uuid::new_v4()
    ))
}

/// A store on a new database file named for the bench `name`, seeded with a [`World`].
pub(crate) async fn seeded_store(name: &str) -> (SqliteStore, World) {
    let store = SqliteStore::open(SqliteOptions::new(temp_path(name)))
        .await
        .expect("open");
    let world = World::seed(&store).await;
    (store, world)
}

/// Closes `store` and removes its files.
pub(crate) async fn discard(store: SqliteStore) {
    store.close().await;
    remove(store.path());
}

/// Removes the database at `path` and the files SQLite keeps beside it; a file that is not
/// there is no error.
pub(crate) fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.to_owned().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
