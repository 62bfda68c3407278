//! An OpenID Connect issuer's signing keys over HTTP ([`HttpKeySource`], the
//! `omniline_ports::KeySource` adapter): the discovery document
//! (`{issuer}/.well-known/openid-configuration`) names the `jwks_uri`, which holds the keys.
//!
//! Both must be `https` (a loopback `http` issuer is allowed for local development and tests),
//! the discovery document must name the configured issuer (OpenID Connect Discovery §4.3: a
//! document for another issuer is refused), and each answer is read up to [`MAX_DOCUMENT_BYTES`]
//! within [`TIMEOUT`].

use crate::http::{body_at_most, USER_AGENT};
use async_trait::async_trait;
use omniline_domain::identity::JwkSet;
use omniline_ports::{KeySource, PortError};
use serde::Deserialize;
use std::time::Duration;

/// Longest wait for each of the two requests.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The keys of `issuer`, fetched through its discovery document.
pub struct HttpKeySource {
    issuer: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl HttpKeySource {
    /// `Err` when the issuer is not an https URL (or a loopback http one).
    pub fn new(issuer: impl Into<String>) -> Result<Self, PortError> {
        let issuer = issuer.into();
        allowed_url(&issuer).map_err(|why| {
            PortError::Unavailable(format!("OIDC_ISSUER must be an https URL: {why}"))
        })?;
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PortError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self { issuer, client })
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, PortError> {
        let unavailable = |why: String| PortError::Unavailable(format!("{what}: {why}"));
        let response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "unreachable".into()
                })
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        let body = body_at_most(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|_| unavailable("the body could not be read".into()))?
            .ok_or_else(|| unavailable("too large".into()))?;
        serde_json::from_slice(&body)
            .map_err(|e| unavailable(format!("not the expected JSON: {e}")))
    }
}

#[async_trait]
impl KeySource for HttpKeySource {
    async fn fetch_keys(&self) -> Result<JwkSet, PortError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&url, "OIDC discovery").await?;
        if discovery.issuer != self.issuer {
            return Err(PortError::Unavailable(
                "OIDC discovery: the document names another issuer".into(),
            ));
        }
        allowed_url(&discovery.jwks_uri)
            .map_err(|why| PortError::Unavailable(format!("OIDC discovery: jwks_uri {why}")))?;
        self.get_json(&discovery.jwks_uri, "OIDC keys").await
    }
}

/// `https`, or `http` to a loopback host.
fn allowed_url(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || ip
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("is http to a host that is not loopback")
            }
        }
        _ => Err("is not https"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn issuer_with(discovery: ResponseTemplate, jwks: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(discovery)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(jwks)
            .mount(&server)
            .await;
        server
    }

    fn discovery_for(server_uri: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "issuer": server_uri,
            "jwks_uri": format!("{server_uri}/jwks"),
            "authorization_endpoint": format!("{server_uri}/authorize"),
        }))
    }

    fn keys() -> serde_json::Value {
        json!({"keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256", "use": "sig", "n": "AQAB", "e": "AQAB"}]})
    }

    #[tokio::test]
    async fn keys_come_through_the_discovery_document() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(discovery_for(&uri))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(keys()))
            .expect(1)
            .mount(&server)
            .await;
        let set = HttpKeySource::new(uri).unwrap().fetch_keys().await.unwrap();
        assert_eq!(set.keys.len(), 1);
        assert!(set.find(Some("k1")).is_some());
    }

    #[tokio::test]
    async fn errors_timeouts_and_wrong_documents_are_unavailable() {
        // 404 on discovery; 500 on the keys; a key set that is not JSON.
        let cases: Vec<(Option<ResponseTemplate>, ResponseTemplate, &str)> = vec![
            (
                Some(ResponseTemplate::new(404)),
                ResponseTemplate::new(200),
                "HTTP 404",
            ),
            (None, ResponseTemplate::new(500), "HTTP 500"),
            (
                None,
                ResponseTemplate::new(200).set_body_string("<html>"),
                "not the expected JSON",
            ),
            (
                None,
                ResponseTemplate::new(200)
                    .set_body_json(keys())
                    .set_delay(TIMEOUT + Duration::from_secs(1)),
                "timed out",
            ),
        ];
        for (discovery, jwks, expected) in cases {
            let server = MockServer::start().await;
            let uri = server.uri();
            let discovery = discovery.unwrap_or_else(|| discovery_for(&uri));
            Mock::given(method("GET"))
                .and(path("/.well-known/openid-configuration"))
                .respond_with(discovery)
                .mount(&server)
                .await;
            Mock::given(method("GET"))
                .and(path("/jwks"))
                .respond_with(jwks)
                .mount(&server)
                .await;
            let e = HttpKeySource::new(uri)
                .unwrap()
                .fetch_keys()
                .await
                .unwrap_err();
            assert!(e.to_string().contains(expected), "{expected}: {e}");
        }
    }

    #[tokio::test]
    async fn a_document_for_another_issuer_is_refused() {
        let server = issuer_with(
            ResponseTemplate::new(200).set_body_json(json!({
                "issuer": "https://evil.example",
                "jwks_uri": "https://evil.example/jwks",
            })),
            ResponseTemplate::new(200).set_body_json(keys()),
        )
        .await;
        let e = HttpKeySource::new(server.uri())
            .unwrap()
            .fetch_keys()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another issuer"), "{e}");
    }

    #[test]
    fn only_https_or_loopback_issuers() {
        assert!(
            HttpKeySource::new("https://cognito-idp.ap-northeast-1.amazonaws.com/pool").is_ok()
        );
        assert!(HttpKeySource::new("http://127.0.0.1:9000").is_ok());
        assert!(HttpKeySource::new("http://localhost:9000/realm").is_ok());
        assert!(HttpKeySource::new("http://issuer.example").is_err());
        assert!(HttpKeySource::new("ftp://issuer.example").is_err());
        assert!(HttpKeySource::new("not a url").is_err());
    }
}
