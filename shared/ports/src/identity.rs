//! An OpenID Connect issuer's signing keys.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::identity::JwkSet;

/// Where the keys that sign ID tokens come from: the issuer's JWKS (found through its discovery
/// document). The caller caches; each call fetches.
#[async_trait]
pub trait KeySource: Send + Sync {
    async fn fetch_keys(&self) -> Result<JwkSet, PortError>;
}
