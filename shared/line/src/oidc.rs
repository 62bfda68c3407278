//! An OpenID Connect issuer over HTTP ([`HttpIdentityProvider`], the
//! `omniline_ports::IdentityProvider` adapter): the discovery document
//! (`{issuer}/.well-known/openid-configuration`) names the `jwks_uri`, which holds the keys, and
//! the authorization and token endpoints; an authorization code is exchanged at the token
//! endpoint as a public client with PKCE (form-encoded, no client secret).
//!
//! Every URL must be `https` (a loopback `http` issuer is allowed for local development and tests),
//! the discovery document must name the configured issuer (OpenID Connect Discovery §4.3: a
//! document for another issuer is refused), and each answer is read up to [`MAX_DOCUMENT_BYTES`]
//! within [`TIMEOUT`].

use crate::http::{body_at_most, USER_AGENT};
use async_trait::async_trait;
use omniline_domain::identity::{CodeExchange, JwkSet, OidcEndpoints, TokenAnswer};
use omniline_ports::{IdentityProvider, PortError};
use serde::Deserialize;
use std::time::Duration;

/// Longest wait for each of the two requests.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The keys of `issuer`, fetched through its discovery document.
pub struct HttpIdentityProvider {
    issuer: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

/// The token endpoint's answer (RFC 6749 §5).
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

impl HttpIdentityProvider {
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

    /// Sends `request` and reads its answer's status and body (at most
    /// [`MAX_DOCUMENT_BYTES`]); a transport failure is `Unavailable`, named `what`.
    async fn send_and_read(
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), PortError> {
        let unavailable = |why: &str| PortError::Unavailable(format!("{what}: {why}"));
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                })
            })?;
        let status = response.status();
        let body = body_at_most(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|_| unavailable("the body could not be read"))?
            .ok_or_else(|| unavailable("too large"))?;
        Ok((status, body))
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        what: &str,
    ) -> Result<T, PortError> {
        let (status, body) = Self::send_and_read(self.client.get(url), what).await?;
        if !status.is_success() {
            return Err(PortError::Unavailable(format!(
                "{what}: HTTP {}",
                status.as_u16()
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| PortError::Unavailable(format!("{what}: not the expected JSON: {e}")))
    }
}

impl HttpIdentityProvider {
    /// The issuer's discovery document, checked to be its own.
    async fn discovery(&self) -> Result<Discovery, PortError> {
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
        Ok(discovery)
    }
}

#[async_trait]
impl IdentityProvider for HttpIdentityProvider {
    async fn fetch_keys(&self) -> Result<JwkSet, PortError> {
        let discovery = self.discovery().await?;
        allowed_url(&discovery.jwks_uri)
            .map_err(|why| PortError::Unavailable(format!("OIDC discovery: jwks_uri {why}")))?;
        self.get_json(&discovery.jwks_uri, "OIDC keys").await
    }

    async fn endpoints(&self) -> Result<OidcEndpoints, PortError> {
        let discovery = self.discovery().await?;
        let endpoint = |name: &str, url: Option<String>| {
            let url =
                url.ok_or_else(|| PortError::Unavailable(format!("OIDC discovery: no {name}")))?;
            allowed_url(&url)
                .map_err(|why| PortError::Unavailable(format!("OIDC discovery: {name} {why}")))?;
            Ok::<String, PortError>(url)
        };
        Ok(OidcEndpoints {
            authorization_endpoint: endpoint(
                "authorization_endpoint",
                discovery.authorization_endpoint,
            )?,
            token_endpoint: endpoint("token_endpoint", discovery.token_endpoint)?,
            end_session_endpoint: discovery
                .end_session_endpoint
                .filter(|url| allowed_url(url).is_ok()),
        })
    }

    async fn exchange_code(
        &self,
        token_endpoint: &str,
        exchange: &CodeExchange,
    ) -> Result<TokenAnswer, PortError> {
        allowed_url(token_endpoint)
            .map_err(|why| PortError::Unavailable(format!("OIDC token endpoint {why}")))?;
        let unavailable = |why: String| PortError::Unavailable(format!("OIDC token: {why}"));
        let request = self.client.post(token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", exchange.code.as_str()),
            ("redirect_uri", exchange.redirect_uri.as_str()),
            ("client_id", exchange.client_id.as_str()),
            ("code_verifier", exchange.code_verifier.as_str()),
        ]);
        let (status, body) = Self::send_and_read(request, "OIDC token").await?;
        let answer: Option<TokenResponse> = serde_json::from_slice(&body).ok();
        if status.is_client_error() {
            // invalid_grant, invalid_request …: this code will not work again.
            let error = answer
                .and_then(|a| a.error)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
            return Ok(TokenAnswer::Refused {
                error: error.chars().take(100).collect(),
            });
        }
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        match answer.and_then(|a| a.id_token) {
            Some(id_token) => Ok(TokenAnswer::Issued { id_token }),
            None => Err(unavailable(
                "no id_token in the answer (is openid a scope?)".into(),
            )),
        }
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
        let set = HttpIdentityProvider::new(uri)
            .unwrap()
            .fetch_keys()
            .await
            .unwrap();
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
            let e = HttpIdentityProvider::new(uri)
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
        let e = HttpIdentityProvider::new(server.uri())
            .unwrap()
            .fetch_keys()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another issuer"), "{e}");
    }

    #[tokio::test]
    async fn endpoints_come_from_discovery_and_codes_are_exchanged_as_a_public_client() {
        use wiremock::matchers::body_string_contains;
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": uri, "jwks_uri": format!("{uri}/jwks"),
                "authorization_endpoint": format!("{uri}/authorize"),
                "token_endpoint": format!("{uri}/token"),
                "end_session_endpoint": "http://evil.example/logout",
            })))
            .mount(&server)
            .await;
        let provider = HttpIdentityProvider::new(uri.clone()).unwrap();
        let endpoints = provider.endpoints().await.unwrap();
        assert_eq!(endpoints.authorization_endpoint, format!("{uri}/authorize"));
        assert_eq!(endpoints.token_endpoint, format!("{uri}/token"));
        assert_eq!(endpoints.end_session_endpoint, None, "not https: dropped");

        // The code goes as a form, with the verifier and no secret.
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("grant_type=authorization_code"))
            .and(body_string_contains("code=good"))
            .and(body_string_contains("code_verifier=v3rifier"))
            .and(body_string_contains("client_id=console"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id_token": "a.b.c", "access_token": "x", "token_type": "Bearer", "expires_in": 3600
            })))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("code=used"))
            .respond_with(
                ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains("code=down"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let exchange = |code: &str| CodeExchange {
            code: code.into(),
            code_verifier: "v3rifier".into(),
            redirect_uri: "http://127.0.0.1/console/".into(),
            client_id: "console".into(),
        };
        let token_endpoint = format!("{uri}/token");
        assert_eq!(
            provider
                .exchange_code(&token_endpoint, &exchange("good"))
                .await
                .unwrap(),
            TokenAnswer::Issued {
                id_token: "a.b.c".into()
            }
        );
        assert_eq!(
            provider
                .exchange_code(&token_endpoint, &exchange("used"))
                .await
                .unwrap(),
            TokenAnswer::Refused {
                error: "invalid_grant".into()
            }
        );
        assert!(provider
            .exchange_code(&token_endpoint, &exchange("down"))
            .await
            .is_err());
        assert!(
            provider
                .exchange_code("http://evil.example/token", &exchange("good"))
                .await
                .is_err(),
            "never posts a code to a non-https endpoint"
        );
    }

    #[test]
    fn only_https_or_loopback_issuers() {
        assert!(
            HttpIdentityProvider::new("https://cognito-idp.ap-northeast-1.amazonaws.com/pool")
                .is_ok()
        );
        assert!(HttpIdentityProvider::new("http://127.0.0.1:9000").is_ok());
        assert!(HttpIdentityProvider::new("http://localhost:9000/realm").is_ok());
        assert!(HttpIdentityProvider::new("http://issuer.example").is_err());
        assert!(HttpIdentityProvider::new("ftp://issuer.example").is_err());
        assert!(HttpIdentityProvider::new("not a url").is_err());
    }
}
