//! The LINE Messaging API: the [`LineApi`] port and [`HttpLineApi`], its reqwest adapter.
//!
//! Request and response bodies follow LINE's OpenAPI spec (`messaging-api.yml`). Base URLs come
//! from configuration (`LINE_API_BASE`, `LINE_DATA_API_BASE`) so tests and the local stack can
//! point them at a mock.

use crate::secret::SecretString;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `GET /v2/bot/info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotInfo {
    pub user_id: String,
    pub basic_id: String,
    pub display_name: String,
    #[serde(default)]
    pub premium_id: Option<String>,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub chat_mode: Option<String>,
    #[serde(default)]
    pub mark_as_read_mode: Option<String>,
}

/// `POST /v2/bot/channel/webhook/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestResult {
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub status_code: i32,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub detail: String,
}

/// A failed call to LINE. `Rejected` is LINE's definite answer (4xx); `Unavailable` is a 5xx, a
/// timeout or a connection error: the outcome may be unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineApiError {
    #[error("LINE refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("LINE API unavailable: {0}")]
    Unavailable(String),
}

/// What omniline asks of the Messaging API.
#[async_trait]
pub trait LineApi: Send + Sync {
    /// The bot behind `token`; `Rejected { status: 401 }` when the token is invalid.
    async fn bot_info(&self, token: &SecretString) -> Result<BotInfo, LineApiError>;
    /// Sets the channel's webhook URL.
    async fn set_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: &str,
    ) -> Result<(), LineApiError>;
    /// Has LINE send a test webhook to `endpoint` (the configured one when `None`).
    async fn test_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: Option<&str>,
    ) -> Result<WebhookTestResult, LineApiError>;
}

/// Base URLs and timeouts of the Messaging API.
#[derive(Debug, Clone)]
pub struct LineApiConfig {
    pub api_base: String,
    pub data_api_base: String,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Default for LineApiConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.line.me".into(),
            data_api_base: "https://api-data.line.me".into(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
        }
    }
}

/// [`LineApi`] over HTTPS with reqwest (rustls).
#[derive(Debug, Clone)]
pub struct HttpLineApi {
    client: reqwest::Client,
    api_base: String,
    #[allow(dead_code)] // content downloads (router, issue 2/8) use the data API
    data_api_base: String,
}

#[derive(Deserialize)]
struct LineErrorBody {
    message: Option<String>,
    #[serde(default)]
    details: Vec<LineErrorDetail>,
}

#[derive(Deserialize)]
struct LineErrorDetail {
    message: Option<String>,
    property: Option<String>,
}

impl HttpLineApi {
    pub fn new(config: &LineApiConfig) -> Result<Self, LineApiError> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("omniline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LineApiError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            data_api_base: config.data_api_base.trim_end_matches('/').to_owned(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LineApiError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let request_id = response
            .headers()
            .get("x-line-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let message = describe_error(&text, status);
        tracing::warn!(
            status = status.as_u16(),
            request_id,
            "LINE API error: {message}"
        );
        if status.is_server_error() {
            Err(LineApiError::Unavailable(format!("{status}: {message}")))
        } else {
            Err(LineApiError::Rejected {
                status: status.as_u16(),
                message,
            })
        }
    }
}

fn transport_error(e: reqwest::Error) -> LineApiError {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's Display holds the URL (no secret: tokens travel in headers).
    LineApiError::Unavailable(format!("{kind}: {e}"))
}

fn describe_error(body: &str, status: reqwest::StatusCode) -> String {
    match serde_json::from_str::<LineErrorBody>(body) {
        Ok(err) => {
            let mut message = err.message.unwrap_or_else(|| status.to_string());
            for d in err.details {
                message.push_str(&format!(
                    "; {}: {}",
                    d.property.unwrap_or_default(),
                    d.message.unwrap_or_default()
                ));
            }
            message
        }
        Err(_) => status.to_string(),
    }
}

async fn json_body<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, LineApiError> {
    response
        .json()
        .await
        .map_err(|e| LineApiError::Unavailable(format!("unexpected response from LINE: {e}")))
}

#[async_trait]
impl LineApi for HttpLineApi {
    async fn bot_info(&self, token: &SecretString) -> Result<BotInfo, LineApiError> {
        let response = self
            .send(
                self.client
                    .get(self.url("/v2/bot/info"))
                    .bearer_auth(token.expose()),
            )
            .await?;
        json_body(response).await
    }

    async fn set_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: &str,
    ) -> Result<(), LineApiError> {
        self.send(
            self.client
                .put(self.url("/v2/bot/channel/webhook/endpoint"))
                .bearer_auth(token.expose())
                .json(&serde_json::json!({ "endpoint": endpoint })),
        )
        .await
        .map(drop)
    }

    async fn test_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: Option<&str>,
    ) -> Result<WebhookTestResult, LineApiError> {
        let body = match endpoint {
            Some(endpoint) => serde_json::json!({ "endpoint": endpoint }),
            None => serde_json::json!({}),
        };
        let response = self
            .send(
                self.client
                    .post(self.url("/v2/bot/channel/webhook/test"))
                    .bearer_auth(token.expose())
                    .json(&body),
            )
            .await?;
        json_body(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn api(server: &MockServer, timeout: Duration) -> HttpLineApi {
        HttpLineApi::new(&LineApiConfig {
            api_base: server.uri(),
            data_api_base: server.uri(),
            connect_timeout: Duration::from_secs(1),
            timeout,
        })
        .unwrap()
    }

    fn token() -> SecretString {
        SecretString::new("tok-123")
    }

    #[tokio::test]
    async fn bot_info_200_is_parsed() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/info"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "userId": "Ubot", "basicId": "@123abc", "displayName": "Shop",
                "chatMode": "chat", "markAsReadMode": "manual"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let info = api(&server, Duration::from_secs(2))
            .bot_info(&token())
            .await
            .unwrap();
        assert_eq!(info.user_id, "Ubot");
        assert_eq!(info.basic_id, "@123abc");
        assert_eq!(info.display_name, "Shop");
    }

    #[tokio::test]
    async fn bot_info_401_is_rejected_with_lines_message() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/info"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."}),
            ))
            .mount(&server)
            .await;
        let err = api(&server, Duration::from_secs(2))
            .bot_info(&token())
            .await
            .unwrap_err();
        match err {
            LineApiError::Rejected { status, message } => {
                assert_eq!(status, 401);
                assert!(message.contains("Authentication failed"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_5xx_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_string("down"))
            .mount(&server)
            .await;
        let err = api(&server, Duration::from_secs(2))
            .bot_info(&token())
            .await
            .unwrap_err();
        assert!(matches!(err, LineApiError::Unavailable(m) if m.contains("503")));
    }

    #[tokio::test]
    async fn a_timeout_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let err = api(&server, Duration::from_millis(200))
            .bot_info(&token())
            .await
            .unwrap_err();
        assert!(matches!(err, LineApiError::Unavailable(m) if m.contains("timeout")));
    }

    #[tokio::test]
    async fn a_connection_error_is_unavailable() {
        let api = HttpLineApi::new(&LineApiConfig {
            api_base: "http://127.0.0.1:9".into(),
            ..LineApiConfig::default()
        })
        .unwrap();
        assert!(matches!(
            api.bot_info(&token()).await,
            Err(LineApiError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn malformed_success_body_is_unavailable_not_a_panic() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("{\"userId\":"))
            .mount(&server)
            .await;
        assert!(matches!(
            api(&server, Duration::from_secs(2))
                .bot_info(&token())
                .await,
            Err(LineApiError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn webhook_endpoint_is_set_and_tested_with_lines_bodies() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/v2/bot/channel/webhook/endpoint"))
            .and(header("authorization", "Bearer tok-123"))
            .and(body_json(
                serde_json::json!({"endpoint": "https://x.test/line/webhook/a"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/channel/webhook/test"))
            .and(body_json(
                serde_json::json!({"endpoint": "https://x.test/line/webhook/a"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "success": true, "timestamp": "2020-09-30T05:38:20.031Z",
                "statusCode": 200, "reason": "OK", "detail": "200"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        api.set_webhook_endpoint(&token(), "https://x.test/line/webhook/a")
            .await
            .unwrap();
        let result = api
            .test_webhook_endpoint(&token(), Some("https://x.test/line/webhook/a"))
            .await
            .unwrap();
        assert_eq!(result.success, Some(true));
        assert_eq!(result.status_code, 200);
    }

    #[tokio::test]
    async fn a_400_names_lines_details() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "message": "The request body has 1 error(s)",
                "details": [{"message": "must be https", "property": "endpoint"}]
            })))
            .mount(&server)
            .await;
        let err = api(&server, Duration::from_secs(2))
            .set_webhook_endpoint(&token(), "http://x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Rejected { status: 400, ref message } if message.contains("endpoint: must be https")),
            "{err:?}"
        );
    }
}
