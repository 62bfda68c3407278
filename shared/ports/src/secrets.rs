//! Named secrets.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::secret::SecretString;

/// Named secrets (AWS Secrets Manager, or a table of the embedded database).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, PortError>;
    /// Creates or replaces.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), PortError>;
    /// Deletes at once (no recovery window); deleting a missing secret is not an error.
    async fn delete(&self, name: &str) -> Result<(), PortError>;
}
