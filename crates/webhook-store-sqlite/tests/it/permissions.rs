//! The database files are readable by their owner only, whatever the umask.

#![cfg(unix)]
#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use webhook_domain::ports::OrganizationStore as _;
use webhook_store_sqlite::{SqliteOptions, SqliteStore};

fn mode(path: &Path) -> String {
    format!(
        "{:o}",
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    )
}

/// A new directory as `webhookd` creates its data directory under umask 022: mode 0755.
fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("webhookd-perm-{}", uuid::Uuid::new_v4()));
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn companions(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| PathBuf::from(format!("{}{suffix}", db.display()));
    [db.to_owned(), with("-wal"), with("-shm")]
}

async fn open_and_write(db: &Path) -> SqliteStore {
    let store = SqliteStore::open(SqliteOptions::new(db)).await.unwrap();
    // A write, so that the WAL and the shared memory exist.
    let organization =
        webhook_store_contract::fixtures::organization(webhook_store_contract::fixtures::at(0));
    store.insert_organization(&organization).await.unwrap();
    store
}

#[tokio::test]
async fn database_files_are_created_private() {
    let dir = data_dir();
    // What the umask lets a plain new file have here (0644 under umask 022).
    let probe = dir.join("probe");
    fs::write(&probe, b"").unwrap();
    let default_mode = mode(&probe);
    let db = dir.join("webhookd.db");
    let store = open_and_write(&db).await;
    for file in companions(&db) {
        assert!(file.exists(), "{}", file.display());
        assert_eq!(
            mode(&file),
            "600",
            "{} (a new file gets {default_mode} here)",
            file.display()
        );
    }
    store.close().await;
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn database_files_left_readable_are_made_private() {
    let dir = data_dir();
    let db = dir.join("webhookd.db");
    let store = open_and_write(&db).await;
    // As an older version left them under umask 022.
    for file in companions(&db) {
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let reopened = open_and_write(&db).await;
    for file in companions(&db) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
    reopened.close().await;
    store.close().await;
    fs::remove_dir_all(&dir).unwrap();
}
