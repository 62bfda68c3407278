//! Inbound media (images, video, audio, files customers send) kept in object storage: the
//! [`ObjectStore`] port, [`S3ObjectStore`] on AWS and [`FsObjectStore`] under the local data
//! directory.
//!
//! Callers build keys like `media/{accountId}/{messageId}`. Every adapter checks keys with
//! [`check_key`] before touching storage: 1 to 512 characters of `[A-Za-z0-9/._-]`, `/`-separated
//! segments that are neither empty, `.` nor `..` (so no leading or trailing `/`). A refused key is
//! a [`PortError::Unavailable`] starting with `invalid object key`.

use crate::PortError;

/// The longest accepted key.
pub const MAX_KEY_LEN: usize = 512;

/// A stored object: its key, where it lives and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    /// `s3://bucket/key` or `file:///abs/path`.
    pub uri: String,
    pub size: u64,
}

/// `Ok(key)` when `key` is acceptable to every adapter (see the module docs).
pub fn check_key(key: &str) -> Result<&str, PortError> {
    let valid = (1..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
        && key
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."));
    if valid {
        Ok(key)
    } else {
        Err(invalid_key(key, "expected 1-512 characters of [A-Za-z0-9/._-] in non-empty segments other than . and .."))
    }
}

/// `Ok(prefix)` when `prefix` is an acceptable key followed by `/` (what
/// [`ObjectStore::delete_prefix`] takes): so `media/acc1/` never reaches `media/acc10/…`.
pub fn check_prefix(prefix: &str) -> Result<&str, PortError> {
    match prefix.strip_suffix('/') {
        Some(dir) if check_key(dir).is_ok() => Ok(prefix),
        _ => Err(invalid_key(
            prefix,
            "expected a prefix: a valid key followed by \"/\"",
        )),
    }
}

pub fn invalid_key(key: &str, why: &str) -> PortError {
    // Bounded: a refused key may be arbitrarily long.
    let shown: String = key.chars().take(64).collect();
    let ellipsis = if shown.len() < key.len() { "…" } else { "" };
    PortError::Unavailable(format!("invalid object key {shown:?}{ellipsis}: {why}"))
}
