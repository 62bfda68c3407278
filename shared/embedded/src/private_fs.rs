//! Files that hold secrets or personal data (the embedded database with its WAL, media, the
//! sandbox's users): made private before anything is written (directories 0700, files 0600), and
//! refused when an earlier run or another program left them open to other users.

use std::path::{Path, PathBuf};

/// A directory or file other users of the machine can read or write.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error(
        "{path} is open to other users (mode {mode:04o}); it holds secrets and personal data: \
         run `chmod {want:o} {path}` (and check who could read it), then start again"
    )]
    TooOpen { path: String, mode: u32, want: u32 },
    #[error("cannot create {path}: {reason}")]
    Io { path: String, reason: String },
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

fn io(path: &Path, e: std::io::Error) -> PrivacyError {
    PrivacyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, want: u32) -> Result<(), PrivacyError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| io(path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PrivacyError::TooOpen {
            path: path.display().to_string(),
            mode,
            want,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _want: u32) -> Result<(), PrivacyError> {
    Ok(())
}

/// Creates `dir` (and missing parents) readable by its owner only, or checks that an existing
/// one is (refused when group or others have any access).
pub fn ensure_private_dir(dir: &Path) -> Result<(), PrivacyError> {
    create_private_dir(dir)?;
    check_mode(dir, DIR_MODE)
}

/// Creates `dir` (and missing parents) with mode 0700 unless it exists; an existing directory is
/// left as it is (the composition root checks it: [`check_private_tree`]).
pub fn create_private_dir(dir: &Path) -> Result<(), PrivacyError> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(DIR_MODE);
        }
        builder.create(dir).map_err(|e| io(dir, e))?;
    }
    Ok(())
}

/// Creates an empty `file` readable by its owner only unless it exists, and checks an existing
/// one. SQLite then gives its `-wal` and `-shm` files the database file's mode.
pub fn ensure_private_file(file: &Path) -> Result<(), PrivacyError> {
    if create_private_file(file)? {
        Ok(())
    } else {
        check_mode(file, FILE_MODE)
    }
}

/// Creates an empty `file` with mode 0600 unless it exists: `true` if it made it. SQLite then
/// gives the database's `-wal` and `-shm` files the same mode, from their first byte.
pub fn create_private_file(file: &Path) -> Result<bool, PrivacyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    match options.open(file) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(file, e)),
    }
}

/// Checks `dir` and every entry directly in it (files 0600 or narrower, directories 0700):
/// what `omniline-local` checks at start. Entries deeper down are protected by their directory.
pub fn check_private_tree(dir: &Path) -> Result<(), PrivacyError> {
    if !dir.exists() {
        return Ok(());
    }
    check_mode(dir, DIR_MODE)?;
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    for path in entries {
        let want = if path.is_dir() { DIR_MODE } else { FILE_MODE };
        check_mode(&path, want)?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_and_file_are_private_and_open_ones_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f.db");
        ensure_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        ensure_private_file(&file).unwrap();
        check_private_tree(&dir).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let refused = ensure_private_file(&file).unwrap_err().to_string();
        assert!(refused.contains("mode 0644"), "{refused}");
        assert!(refused.contains("chmod 600"), "{refused}");
        assert!(check_private_tree(&dir).is_err());

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let refused = ensure_private_dir(&dir).unwrap_err().to_string();
        assert!(refused.contains("chmod 700"), "{refused}");
        assert!(check_private_tree(&dir).is_err());
    }
}
