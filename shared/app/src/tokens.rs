//! Channel access tokens: the account's long-lived token from the secret store, or — for an
//! account registered with channel ID and secret only — a stateless token issued by LINE
//! (`POST /oauth2/v3/token`) and renewed before its 15 minutes are up. Cached per account.

use omniline_domain::account::{credentials_secret_name, ChannelCredentials};
use omniline_domain::line::api::LineApiError;
use omniline_domain::secret::SecretString;
use omniline_ports::LineApi;
use omniline_ports::{AccountStore, PortError, SecretStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    cache: Mutex<HashMap<String, (SecretString, Instant)>>,
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
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The account's token, from the cache while it is valid.
    pub async fn token(&self, account_id: &str) -> Result<SecretString, TokenError> {
        if let Ok(cache) = self.cache.lock() {
            if let Some((token, valid_until)) = cache.get(account_id) {
                if Instant::now() < *valid_until {
                    return Ok(token.clone());
                }
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
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                account_id.to_owned(),
                (token.clone(), Instant::now() + lifetime),
            );
        }
        Ok(token)
    }

    /// Drops the cached token (LINE answered 401: it was rotated or revoked).
    pub fn forget(&self, account_id: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(account_id);
        }
    }
}
