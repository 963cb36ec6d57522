//! The database files' permissions: readable by their owner only.

use std::io;
use std::path::{Path, PathBuf};

/// The files SQLite keeps for the database at `path`: itself, its WAL and its shared memory.
pub(crate) fn database_files(path: &Path) -> [PathBuf; 3] {
    let with_suffix = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [path.to_owned(), with_suffix("-wal"), with_suffix("-shm")]
}

/// Creates the database file private when it does not exist, so that SQLite, which gives the
/// `-wal` and `-shm` files the database file's mode, creates those private too; makes existing
/// files private; and warns when other users can enter the directory.
#[cfg(unix)]
pub(crate) fn make_private(path: &Path) -> io::Result<()> {
    use std::fs;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty())
        && let Ok(metadata) = fs::metadata(dir)
        && open_to_others(metadata.permissions().mode())
    {
        tracing::warn!(
            data_dir = %dir.display(),
            "the data directory is open to other users; run `chmod 700` on it"
        );
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    for file in database_files(path) {
        let metadata = match fs::metadata(&file) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mode = metadata.permissions().mode();
        if open_to_others(mode) {
            tracing::warn!(
                file = %file.display(),
                mode = format_args!("{:o}", mode & 0o777),
                "the database file was readable by other users; making it private (0600)"
            );
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn make_private(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Whether a Unix mode gives the group or other users any access.
#[cfg(unix)]
const fn open_to_others(mode: u32) -> bool {
    mode & 0o077 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_companion_files() {
        assert_eq!(
            database_files(Path::new("/data/webhookd.db")),
            [
                PathBuf::from("/data/webhookd.db"),
                PathBuf::from("/data/webhookd.db-wal"),
                PathBuf::from("/data/webhookd.db-shm"),
            ]
        );
    }
}
