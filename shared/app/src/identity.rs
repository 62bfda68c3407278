//! Sign-in with OpenID Connect: an ID token from the configured issuer, verified against the
//! issuer's keys ([`omniline_domain::identity::verify`]), the keys cached per container.
//!
//! The keys are fetched on first use and kept [`KEYS_TTL`]; a token signed by a key not in the
//! cached set (the issuer rotated its keys) fetches them again, at most once per
//! [`REFETCH_INTERVAL`], so a stream of tokens naming made-up keys costs the issuer one request
//! per interval, not one per token.

use crate::cache::Cache;
use omniline_domain::clock::Clock;
use omniline_domain::identity::{
    self, CodeExchange, Identity, IdentityError, JwkSet, OidcConfig, OidcEndpoints, TokenAnswer,
};
use omniline_ports::{IdentityProvider, PortError};
use std::sync::Arc;
use std::time::Duration;

/// How long fetched keys are used before they are fetched again.
pub const KEYS_TTL: Duration = Duration::from_secs(3600);
/// Shortest time between two fetches for an unknown key.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After the issuer failed to answer, how long it is not asked again (requests meanwhile are
/// answered "unavailable" at once: a burst of sign-ins while the issuer is down costs it one
/// request, and costs them no timeout each).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// Why a token did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The token is not acceptable: 401.
    #[error(transparent)]
    Refused(#[from] IdentityError),
    /// The issuer refused the authorization code (used, expired, another verifier): sign in
    /// again.
    #[error("the identity provider refused the sign-in ({0}); sign in again")]
    CodeRefused(String),
    /// The issuer could not be reached: 503, try again.
    #[error("the identity provider cannot be reached now: {0}")]
    Unavailable(#[from] PortError),
}

/// Verifies ID tokens of one issuer and client.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: Arc<dyn IdentityProvider>,
    clock: Clock,
    cache: Cache<(), JwkSet>,
    endpoints: Cache<(), OidcEndpoints>,
    /// The last failure to reach the issuer, and what it was.
    failed: Cache<(), String>,
}

impl OidcVerifier {
    pub fn new(config: OidcConfig, keys: Arc<dyn IdentityProvider>, clock: Clock) -> Self {
        Self {
            config,
            keys,
            clock,
            cache: Cache::default(),
            endpoints: Cache::default(),
            failed: Cache::default(),
        }
    }

    /// `Err` while a failure to reach the issuer is recent ([`RETRY_AFTER_FAILURE`]).
    fn not_failed_lately(&self) -> Result<(), PortError> {
        match self.failed.fresh(&(), RETRY_AFTER_FAILURE) {
            Some(why) => Err(PortError::Unavailable(why)),
            None => Ok(()),
        }
    }

    /// Remembers a failure to reach the issuer.
    fn failing<T>(&self, result: Result<T, PortError>) -> Result<T, PortError> {
        if let Err(e) = &result {
            self.failed.insert((), e.to_string());
        }
        result
    }

    /// The issuer's authorization and token endpoints, kept [`KEYS_TTL`].
    pub async fn endpoints(&self) -> Result<OidcEndpoints, PortError> {
        if let Some(endpoints) = self.endpoints.fresh(&(), KEYS_TTL) {
            return Ok(endpoints);
        }
        self.not_failed_lately()?;
        let endpoints = self.failing(self.keys.endpoints().await)?;
        self.endpoints.insert((), endpoints.clone());
        Ok(endpoints)
    }

    /// Exchanges a browser's authorization code (with its PKCE verifier, for `redirect_uri`)
    /// for the person's ID token, verified as every bearer token is.
    pub async fn sign_in(
        &self,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<(Identity, String), SignInError> {
        let endpoints = self.endpoints().await?;
        let exchange = CodeExchange {
            code: code.to_owned(),
            code_verifier: code_verifier.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            client_id: self.config.client_id.clone(),
        };
        match self
            .keys
            .exchange_code(&endpoints.token_endpoint, &exchange)
            .await?
        {
            TokenAnswer::Issued { id_token } => {
                let identity = self.verify(&id_token).await?;
                Ok((identity, id_token))
            }
            TokenAnswer::Refused { error } => Err(SignInError::CodeRefused(error)),
        }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The person `token` names, if the issuer signed it for this client and it is current.
    pub async fn verify(&self, token: &str) -> Result<Identity, SignInError> {
        let header = identity::header(token)?;
        let now = (self.clock)() / 1000;
        let keys = match self.cache.get(&()) {
            Some((keys, age)) if age < KEYS_TTL => {
                if keys.find(header.kid.as_deref()).is_some() || age < REFETCH_INTERVAL {
                    keys
                } else {
                    self.fetch().await?
                }
            }
            _ => self.fetch().await?,
        };
        Ok(identity::verify(token, &keys, &self.config, now)?)
    }

    async fn fetch(&self) -> Result<JwkSet, PortError> {
        self.not_failed_lately()?;
        let keys = self.failing(self.keys.fetch_keys().await)?;
        tracing::info!(keys = keys.keys.len(), "identity provider keys fetched");
        self.cache.insert((), keys.clone());
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    struct Counting {
        sets: Mutex<Vec<JwkSet>>,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl IdentityProvider for Counting {
        async fn fetch_keys(&self) -> Result<JwkSet, PortError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let sets = self.sets.lock().unwrap();
            sets.first()
                .cloned()
                .ok_or_else(|| PortError::Unavailable("issuer down".into()))
        }

        async fn endpoints(&self) -> Result<OidcEndpoints, PortError> {
            Err(PortError::Unavailable("not used".into()))
        }

        async fn exchange_code(&self, _: &str, _: &CodeExchange) -> Result<TokenAnswer, PortError> {
            Err(PortError::Unavailable("not used".into()))
        }
    }

    #[tokio::test]
    async fn keys_are_fetched_once_and_unknown_kids_do_not_hammer_the_issuer() {
        let source = Arc::new(Counting {
            sets: Mutex::new(vec![JwkSet::default()]),
            calls: AtomicUsize::new(0),
        });
        let verifier = OidcVerifier::new(
            OidcConfig::new("https://issuer.example", "client"),
            source.clone(),
            Arc::new(|| 1_800_000_000_000),
        );
        // A well-formed RS256 token whose key the (empty) set does not have.
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln";
        for _ in 0..5 {
            let e = verifier.verify(token).await.unwrap_err();
            assert!(matches!(e, SignInError::Refused(IdentityError::UnknownKey)));
        }
        assert_eq!(
            source.calls.load(Ordering::SeqCst),
            1,
            "one fetch within the refetch interval"
        );
        // A token with another algorithm is refused before any fetch.
        let hs = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln";
        assert!(matches!(
            verifier.verify(hs).await.unwrap_err(),
            SignInError::Refused(IdentityError::Algorithm(_))
        ));
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable_not_refused() {
        let source = Arc::new(Counting {
            sets: Mutex::new(vec![]),
            calls: AtomicUsize::new(0),
        });
        let verifier = OidcVerifier::new(
            OidcConfig::new("https://issuer.example", "client"),
            source.clone(),
            Arc::new(|| 0),
        );
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.e30.c2ln";
        for _ in 0..5 {
            assert!(matches!(
                verifier.verify(token).await.unwrap_err(),
                SignInError::Unavailable(_)
            ));
        }
        assert_eq!(
            source.calls.load(Ordering::SeqCst),
            1,
            "a burst while the issuer is down asks it once"
        );
    }
}
