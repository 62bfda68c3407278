//! Object storage (media): S3, or files under a directory.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::media::StoredObject;

/// Object storage for media.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Stores `bytes` under `key`, replacing any object there.
    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<StoredObject, PortError>;
    /// The object's bytes and content type; `None` when there is no object under `key`.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>, PortError>;
    /// Removes the object; deleting a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), PortError>;
    /// Removes every object whose key starts with `prefix` (which ends with `/`); returns how
    /// many were removed.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, PortError>;
}
