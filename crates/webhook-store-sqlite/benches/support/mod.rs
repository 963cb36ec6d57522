//! What the store's bench programs share: where a new database file goes, and removing it (with
//! its WAL and shared-memory files) afterwards.

use std::path::{Path, PathBuf};

/// A new database file's path in the temporary directory, named for the bench `name`.
pub(crate) fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "webhookd-bench-{name}-{}.sqlite",
        uuid::Uuid::new_v4()
    ))
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
