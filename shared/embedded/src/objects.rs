//! [`ObjectStore`] in a directory of the local data directory.

use async_trait::async_trait;
use omniline_domain::media::*;
use omniline_domain::PortError;
use omniline_ports::ObjectStore;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Filesystem

/// Suffix of the sidecar file holding an object's content type.
pub const CONTENT_TYPE_SUFFIX: &str = ".content-type";

/// [`ObjectStore`] in a directory: the object under `key` is the file `root/key`, its content
/// type (if any) the sidecar `root/key.content-type`. Each file is written to a temporary file
/// in the same directory, synced, then renamed over the old one, so a reader sees the old or the
/// new bytes, never a part.
///
/// Differences from S3: a key ending in `.content-type` is refused (it would be a sidecar), and
/// a key cannot be both an object and a "directory" of others (`a/b` and `a/b/c`): the second
/// `put` fails.
#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    /// `root` is made absolute (against the current directory) for the `file://` URIs; it is
    /// created on the first `put`.
    pub fn new(root: PathBuf) -> Self {
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, PortError> {
        let key = check_key(key)?;
        if key.ends_with(CONTENT_TYPE_SUFFIX) {
            return Err(invalid_key(
                key,
                "the local store keeps content types in \".content-type\" files",
            ));
        }
        Ok(self.root.join(key))
    }
}

/// Whether a file name is an object's bytes, not a content-type sidecar or a temporary file left
/// by an interrupted [`write_atomically`] (`.{name}.{32 hex}.tmp`).
fn is_object_file(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    if name.ends_with(CONTENT_TYPE_SUFFIX) {
        return false;
    }
    let temp = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp"));
    let is_temp = temp
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(_, id)| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    !is_temp
}

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CONTENT_TYPE_SUFFIX);
    PathBuf::from(name)
}

fn io_error(what: &str, key: &str, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("object store {what} {key:?}: {e}"))
}

/// Whether `e` means "no object here": missing, or a path through/at a directory.
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::IsADirectory
    )
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory.
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let parent = path
        .parent()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "no parent directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "no file name"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temp = parent.join(temp_name);
    let written = async {
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(0o600);
        let mut file = options.open(&temp).await?;
        file.write_all(bytes).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp, path).await
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    written
}

/// `file:///abs/path`, percent-encoding anything but unreserved characters and `/`.
fn file_uri(path: &Path) -> String {
    let text = path.to_string_lossy();
    let text = if std::path::MAIN_SEPARATOR == '\\' {
        text.replace('\\', "/")
    } else {
        text.into_owned()
    };
    let mut uri = String::from("file://");
    if !text.starts_with('/') {
        uri.push('/');
    }
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'~' | b':') {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<StoredObject, PortError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            // Media are personal data: directories 0700, files 0600.
            let mut builder = tokio::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            builder.mode(0o700);
            builder
                .create(parent)
                .await
                .map_err(|e| io_error("put", key, e))?;
        }
        write_atomically(&path, &bytes)
            .await
            .map_err(|e| io_error("put", key, e))?;
        let sidecar = sidecar(&path);
        match content_type {
            Some(content_type) => write_atomically(&sidecar, content_type.as_bytes())
                .await
                .map_err(|e| io_error("put content type of", key, e))?,
            None => match tokio::fs::remove_file(&sidecar).await {
                Err(e) if !is_absent(&e) => {
                    return Err(io_error("put content type of", key, e));
                }
                _ => {}
            },
        }
        Ok(StoredObject {
            key: key.to_owned(),
            uri: file_uri(&path),
            size: bytes.len() as u64,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, PortError> {
        let path = self.path(key)?;
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("get", key, e)),
        };
        let content_type = match tokio::fs::read_to_string(sidecar(&path)).await {
            Ok(text) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            Err(e) if is_absent(&e) => None,
            Err(e) => return Err(io_error("get content type of", key, e)),
        };
        Ok(Some((bytes, content_type)))
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        let path = self.path(key)?;
        for file in [sidecar(&path), path] {
            match tokio::fs::remove_file(&file).await {
                Err(e) if !is_absent(&e) => return Err(io_error("delete", key, e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the directory `root/prefix` with everything under it (objects, sidecars, stray
    /// temporary files; symbolic links are removed, never followed), counting objects.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, PortError> {
        let prefix = check_prefix(prefix)?;
        let top = self.root.join(prefix.trim_end_matches('/'));
        let err = |e| io_error("delete prefix", prefix, e);
        let mut removed = 0;
        let mut pending = vec![top];
        // Parents come before their children here: removed in reverse once emptied.
        let mut directories = Vec::new();
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                // Nothing there, or an object (a file) rather than a "directory" of them.
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(err(e)),
            };
            directories.push(dir);
            while let Some(entry) = entries.next_entry().await.map_err(err)? {
                let path = entry.path();
                if entry.file_type().await.map_err(err)?.is_dir() {
                    pending.push(path);
                    continue;
                }
                match tokio::fs::remove_file(&path).await {
                    Ok(()) => {
                        if is_object_file(&entry.file_name()) {
                            removed += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(err(e)),
                }
            }
        }
        for dir in directories.iter().rev() {
            match tokio::fs::remove_dir(dir).await {
                // A concurrent `put` may have written meanwhile: its object stays.
                Err(e)
                    if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) =>
                {
                    return Err(err(e));
                }
                _ => {}
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniline_testkit::object_contract::{self as contract, binary, is_invalid_key};

    #[test]
    fn keys_are_checked() {
        let long = "a".repeat(MAX_KEY_LEN + 1);
        for bad in [
            "",
            "/media/a/1",
            "media//1",
            "media/a/",
            "media/../etc/passwd",
            "..",
            "media/./1",
            "media/a b",
            "media/a\\1",
            "media/a?1",
            "media/ü",
            "media/a\n1",
            "media/a%2F1",
            long.as_str(),
        ] {
            assert!(is_invalid_key(&check_key(bad)), "{bad:?} accepted");
        }
        let longest = "a".repeat(MAX_KEY_LEN);
        for good in [
            "media/acc-1/468789577898262530",
            "a",
            "media/a.b_c-D/..x/x..",
            ".hidden",
            longest.as_str(),
        ] {
            assert_eq!(check_key(good).ok(), Some(good));
        }
    }

    #[test]
    fn the_refused_key_is_shown_bounded() {
        let long = "x".repeat(10_000);
        let Err(err) = check_key(&long) else {
            panic!("accepted")
        };
        assert!(err.to_string().len() < 300, "{err}");
    }

    // The ObjectStore contract (omniline_testkit::object_contract), also run against S3 on moto
    // (tests/tests/s3_object_store.rs), each followed by checks of the files it leaves.

    #[tokio::test]
    async fn fs_put_get_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf());
        let stored = contract::put_then_get_round_trips(&store).await;
        // The bytes in the key's file, the content type beside them; a file:// URI.
        let path = dir.path().join(contract::KEY);
        assert!(stored.uri.starts_with("file:///"), "{}", stored.uri);
        assert!(
            stored.uri.ends_with(&format!("/{}", contract::KEY)),
            "{}",
            stored.uri
        );
        assert_eq!(stored.uri, file_uri(&path));
        assert_eq!(std::fs::read(&path).unwrap(), binary());
        assert_eq!(std::fs::read(sidecar(&path)).unwrap(), b"image/jpeg");

        contract::delete_removes_the_object(&store).await;
        assert!(!path.exists());
        assert!(!sidecar(&path).exists());
    }

    /// Here an object stored without a content type reads back without one, and no temporary
    /// file is left behind.
    #[tokio::test]
    async fn fs_overwrite_replaces_bytes_and_content_type() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf());
        contract::overwrite_replaces_bytes_and_content_type(&store).await;
        assert_eq!(
            store.get("media/acc-1/1").await.unwrap(),
            Some((Vec::new(), None))
        );
        assert_eq!(
            store.get("media/acc-2/empty").await.unwrap(),
            Some((Vec::new(), None))
        );
        for (sub, name) in [("media/acc-1", "1"), ("media/acc-2", "empty")] {
            let names: Vec<_> = std::fs::read_dir(dir.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names, vec![name.to_owned()], "{sub}");
        }
    }

    /// Here also the content-type files' names are refused; nothing is created, not even the
    /// root, and nothing outside it.
    #[tokio::test]
    async fn fs_invalid_keys_are_refused_and_touch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = FsObjectStore::new(root.clone());
        contract::invalid_keys_and_prefixes_are_refused(&store).await;
        let bad = "media/a/1.content-type";
        assert!(is_invalid_key(&store.put(bad, vec![1], None).await));
        assert!(is_invalid_key(&store.get(bad).await));
        assert!(is_invalid_key(&store.delete(bad).await));
        assert!(!root.exists());
        assert!(!dir.path().join("escape").exists());
        assert!(!dir.path().join("secrets").exists());
    }

    /// Here a key cannot be both an object and a "directory" of objects: the put under an
    /// object's key fails and leaves the object alone. (S3 keeps both: see its tests.)
    #[tokio::test]
    async fn fs_a_directory_is_not_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf());
        contract::a_keys_prefix_is_not_an_object(&store).await;
        assert!(store.put("media/a/1/x", vec![2], None).await.is_err());
        assert_eq!(
            store.get("media/a/1").await.unwrap(),
            Some((vec![1], Some("image/png".to_owned())))
        );
        assert_eq!(store.get("media/a/1/x").await.unwrap(), None);
    }

    /// Here the prefix's directory goes, with a temporary file left by an interrupted put
    /// (uncounted); under a root that does not exist there is nothing to delete.
    #[tokio::test]
    async fn fs_delete_prefix_removes_one_prefix_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf());
        let stray = dir
            .path()
            .join("media/acc-1/.0000.0123456789abcdef0123456789abcdef.tmp");
        crate::private_fs::ensure_private_dir(stray.parent().unwrap()).unwrap();
        std::fs::write(&stray, b"part").unwrap();

        contract::delete_prefix_removes_one_prefix_only(&store, 1005).await;
        assert!(!dir.path().join("media/acc-1").exists());
        contract::the_prefix_takes_objects_again(&store).await;
        assert!(!stray.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("media/acc-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "the object put afterwards: {left:?}");

        let missing = FsObjectStore::new(dir.path().join("absent"));
        assert_eq!(missing.delete_prefix("media/").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn fs_delete_prefix_needs_a_valid_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::new(dir.path().to_path_buf());
        contract::a_refused_prefix_deletes_nothing(&store).await;
    }

    /// Media are personal data: every directory made for them is 0700, every file 0600.
    #[cfg(unix)]
    #[tokio::test]
    async fn fs_media_files_and_directories_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        let store = FsObjectStore::new(root.clone());
        let key = "media/acc-1/468789577898262530";
        store.put(key, binary(), Some("image/jpeg")).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for d in [&root, &root.join("media"), &root.join("media/acc-1")] {
            assert_eq!(mode(d), 0o700, "{}", d.display());
        }
        let path = root.join(key);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&sidecar(&path)), 0o600);
    }

    #[test]
    fn relative_roots_give_absolute_file_uris() {
        let store = FsObjectStore::new(PathBuf::from("data/objects"));
        assert!(store.root().is_absolute());
        assert_eq!(
            file_uri(Path::new("/var/data dir/media/ü")),
            "file:///var/data%20dir/media/%C3%BC"
        );
    }
}
