//! An OpenID Connect issuer: its signing keys, its endpoints, its token endpoint.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::identity::{CodeExchange, JwkSet, OidcEndpoints, TokenAnswer};

/// The issuer people sign in with: the keys that sign its ID tokens (its JWKS), its endpoints
/// (its discovery document), and the exchange of an authorization code for tokens. The caller
/// caches; each call asks the issuer.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    async fn fetch_keys(&self) -> Result<JwkSet, PortError>;
    async fn endpoints(&self) -> Result<OidcEndpoints, PortError>;
    /// Posts `exchange` to `token_endpoint`: the ID token, or the issuer's refusal.
    async fn exchange_code(
        &self,
        token_endpoint: &str,
        exchange: &CodeExchange,
    ) -> Result<TokenAnswer, PortError>;
}
