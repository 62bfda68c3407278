//! Channel access tokens: the account's long-lived token from the secret store, or — for an
//! account registered with channel ID and secret only — a stateless token issued by LINE
//! (`POST /oauth2/v3/token`) and renewed before its 15 minutes are up. Cached per account.

use crate::cache::Cache;
use omniline_domain::account::{credentials_secret_name, ChannelCredentials};
use omniline_domain::line::api::LineApiError;
use omniline_domain::secret::SecretString;
use omniline_ports::LineApi;
use omniline_ports::{AccountStore, PortError, SecretStore};
use std::sync::Arc;
use std::time::Duration;

/// A long-lived token is re-read from the secret store at least this often (rotation).
const STORED_TOKEN_TTL: Duration = Duration::from_secs(300);
/// A stateless token is renewed this long before it expires.
const RENEW_MARGIN: Duration = Duration::from_secs(120);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no credentials stored for the account")]
    Missing,
    #[error(transparent)]
    Store(#[from] PortError),
    /// LINE refused to issue a stateless token, or could not be reached.
    #[error(transparent)]
    Line(#[from] LineApiError),
}

/// Channel access tokens per account, cached (see the module documentation).
pub struct ChannelTokens {
    accounts: Arc<dyn AccountStore>,
    secrets: Arc<dyn SecretStore>,
    line: Arc<dyn LineApi>,
    /// Per account: the token and how long it may be used from when it was kept.
    cache: Cache<String, (SecretString, Duration)>,
}

impl ChannelTokens {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        secrets: Arc<dyn SecretStore>,
        line: Arc<dyn LineApi>,
    ) -> Self {
        Self {
            accounts,
            secrets,
            line,
            cache: Cache::default(),
        }
    }

    /// The account's token, from the cache while it is valid.
    pub async fn token(&self, account_id: &str) -> Result<SecretString, TokenError> {
        if let Some(((token, lifetime), age)) = self.cache.get(account_id) {
            if age < lifetime {
                return Ok(token);
            }
        }
        let stored = self
            .secrets
            .get(&credentials_secret_name(account_id))
            .await?
            .ok_or(TokenError::Missing)?;
        let credentials = ChannelCredentials::from_secret(&stored).ok_or(TokenError::Missing)?;
        let (token, lifetime) = if credentials.channel_access_token.expose().is_empty() {
            let account = self
                .accounts
                .get(account_id)
                .await?
                .ok_or(TokenError::Missing)?;
            let issued = self
                .line
                .issue_stateless_token(&account.channel_id, &credentials.channel_secret)
                .await?;
            let lifetime = issued
                .expires_in
                .saturating_sub(RENEW_MARGIN)
                .max(Duration::from_secs(30));
            (issued.access_token, lifetime)
        } else {
            (credentials.channel_access_token, STORED_TOKEN_TTL)
        };
        self.cache
            .insert(account_id.to_owned(), (token.clone(), lifetime));
        Ok(token)
    }

    /// Drops the cached token (LINE answered 401: it was rotated or revoked).
    pub fn forget(&self, account_id: &str) {
        self.cache.remove(account_id);
    }
}
