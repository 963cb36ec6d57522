//! The master key that seals secrets at rest.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::{SecureRandom as _, SystemRandom};

/// A 256-bit key. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Why the master key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("could not read or write the master key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the master key must be 32 bytes in standard base64 (44 characters)")]
    Malformed,
    #[error(
        "the master key file {path} is empty or incomplete, as an interrupted first start of an \
         older webhookd could leave it; if no secret was ever stored with it, delete it and start \
         again, otherwise restore it from a backup"
    )]
    Incomplete { path: PathBuf },
    #[error("the master key file {path} is readable by other users; run `chmod 600` on it")]
    TooOpen { path: PathBuf },
}

/// Length of a key in standard base64.
const BASE64_LEN: usize = 44;

impl MasterKey {
    /// A key from raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A key from its base64 text (as configured by an operator).
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| MasterKeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(Self(bytes))
    }

    /// Reads the key file at `path`, or creates it with a new random key (mode 0600) when it
    /// does not exist.
    ///
    /// A new key is written to a temporary file in the same directory, flushed, and only then
    /// published under `path`, and the directory is flushed: a crash at any moment leaves
    /// either no key file or the whole key, never an empty or partial one. Of several starts
    /// that create the key at once, one publishes its key and the others read it.
    pub fn load_or_create(path: &Path) -> Result<Self, MasterKeyError> {
        Self::load_or_create_with(path, |_| Ok(()))
    }

    /// [`Self::load_or_create`], calling `before_publish` with the temporary file's path once
    /// it holds the whole key and before it is published.
    fn load_or_create_with(
        path: &Path,
        before_publish: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<Self, MasterKeyError> {
        let io_error = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        remove_stale_temporaries(path);
        match fs::read_to_string(path) {
            Ok(text) => Self::from_file_text(path, &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let random = SystemRandom::new();
                let mut bytes = [0u8; 32];
                random
                    .fill(&mut bytes)
                    .map_err(|_| io_error(io::Error::other("no randomness available")))?;
                let text = STANDARD.encode(bytes);
                match publish_new(path, text.as_bytes(), &random, before_publish)
                    .map_err(io_error)?
                {
                    Published::Ours => Ok(Self(bytes)),
                    Published::Theirs => {
                        let text = fs::read_to_string(path).map_err(io_error)?;
                        Self::from_file_text(path, &text)
                    }
                }
            }
            Err(e) => Err(io_error(e)),
        }
    }

    fn from_file_text(path: &Path, text: &str) -> Result<Self, MasterKeyError> {
        check_private(path)?;
        if text.trim().len() < BASE64_LEN {
            return Err(MasterKeyError::Incomplete {
                path: path.to_owned(),
            });
        }
        Self::from_base64(text)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Whose key ended up under the final name.
enum Published {
    Ours,
    /// Another start published its key first.
    Theirs,
}

/// Prefix of the temporary files a key is written to before it is published.
fn temporary_prefix(path: &Path) -> String {
    let name = path.file_name().map_or_else(
        || "master.key".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    format!(".{name}.tmp-")
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Writes `contents` to a new private temporary file beside `path`, flushes it, and publishes it
/// as `path` unless a file is already there, then flushes the directory.
fn publish_new(
    path: &Path,
    contents: &[u8],
    random: &SystemRandom,
    before_publish: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<Published> {
    let dir = directory_of(path);
    let mut suffix = [0u8; 8];
    random
        .fill(&mut suffix)
        .map_err(|_| io::Error::other("no randomness available"))?;
    let suffix = u64::from_le_bytes(suffix);
    let temporary = dir.join(format!("{}{suffix:016x}", temporary_prefix(path)));
    let written = create_private(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()?;
        before_publish(&temporary)?;
        // A hard link publishes atomically and, unlike a rename, never replaces a key another
        // start published meanwhile. Where the file system has no hard links, rename.
        match fs::hard_link(&temporary, path) {
            Ok(()) => Ok(Published::Ours),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Published::Theirs),
            Err(_) => fs::rename(&temporary, path).map(|()| Published::Ours),
        }
    });
    let _ = fs::remove_file(&temporary);
    let published = written?;
    sync_directory(dir)?;
    Ok(published)
}

/// Removes temporary key files a crash left behind, once they are old enough not to be the
/// work in progress of a start running at the same time.
fn remove_stale_temporaries(path: &Path) {
    const STALE_AFTER: Duration = Duration::from_secs(60);
    let prefix = temporary_prefix(path);
    let Ok(entries) = fs::read_dir(directory_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if stale && entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn sync_directory(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), MasterKeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path)
        .map_err(|source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        })?
        .permissions()
        .mode();
    #[expect(
        clippy::verbose_bit_mask,
        reason = "permission bits read best as an octal mask"
    )]
    let private = mode & 0o077 == 0;
    if private {
        Ok(())
    } else {
        Err(MasterKeyError::TooOpen {
            path: path.to_owned(),
        })
    }
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), MasterKeyError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let loaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(created.bytes(), loaded.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{created:?}").contains(&STANDARD.encode(created.bytes())));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_key_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(MasterKeyError::TooOpen { .. })
        ));
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn names_in(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_new_key_file_appears_only_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut checked = false;
        let created = MasterKey::load_or_create_with(&path, |temporary| {
            // The whole key is on disk, under another name, before the final name exists.
            assert!(!path.exists(), "the key file exists before it is complete");
            assert_eq!(temporary.parent(), Some(dir.path()));
            assert_eq!(fs::read_to_string(temporary).unwrap().len(), BASE64_LEN);
            #[cfg(unix)]
            assert_eq!(mode(temporary), 0o600);
            checked = true;
            Ok(())
        })
        .unwrap();
        assert!(checked);
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            STANDARD.encode(created.bytes())
        );
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names_in(dir.path()), ["master.key"], "no temporary left");
    }

    #[test]
    fn a_write_interrupted_before_publishing_leaves_no_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let failed = MasterKey::load_or_create_with(&path, |_| Err(io::Error::other("crash")));
        assert!(matches!(failed, Err(MasterKeyError::Io { .. })));
        assert!(!path.exists());
        // The next start creates the key.
        let created = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(
            MasterKey::load_or_create(&path).unwrap().bytes(),
            created.bytes()
        );
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master.key");
            let keys: Vec<[u8; 32]> = std::thread::scope(|scope| {
                let starts: Vec<_> = (0..6)
                    .map(|_| scope.spawn(|| MasterKey::load_or_create(&path).map(|k| k.0)))
                    .collect();
                starts
                    .into_iter()
                    .map(|start| start.join().unwrap().unwrap())
                    .collect()
            });
            assert!(keys.iter().all(|key| *key == keys[0]), "keys differ");
            assert_eq!(names_in(dir.path()), ["master.key"]);
        }
    }

    #[cfg(unix)]
    #[test]
    fn an_empty_or_partial_key_file_fails_with_a_clear_message() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        for text in ["", "\n", &STANDARD.encode([1u8; 32])[..20]] {
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let error = MasterKey::load_or_create(&path).unwrap_err();
            assert!(
                matches!(error, MasterKeyError::Incomplete { .. }),
                "{text:?}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("master.key") && message.contains("empty or incomplete"),
                "{message}"
            );
            // Nothing replaced it: the operator decides.
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }

    #[test]
    fn parses_base64_keys() {
        assert!(MasterKey::from_base64(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(matches!(
            MasterKey::from_base64("c2hvcnQ="),
            Err(MasterKeyError::Malformed)
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(MasterKeyError::Malformed)
        ));
    }
}
