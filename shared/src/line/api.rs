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

/// A user's profile: `GET /v2/bot/profile/{userId}` (`UserProfileResponse`), or a group or
/// multi-person chat member's (`GroupUserProfileResponse`, `RoomUserProfileResponse`: those carry
/// neither `statusMessage` nor `language`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub display_name: String,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    /// BCP 47 tag; absent until the user consents to LINE's privacy policy.
    #[serde(default)]
    pub language: Option<String>,
}

/// `GET /v2/bot/message/{messageId}/content` (data API).
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// The whole body (at most [`LineApiConfig::max_content_bytes`]) and its `Content-Type`.
    Ready {
        bytes: Vec<u8>,
        content_type: Option<String>,
    },
    /// 202: LINE is still preparing the video or audio; ask again later.
    Pending,
}

impl std::fmt::Debug for Content {
    // The length, not the bytes: a debug log of a video would be megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Ready {
                bytes,
                content_type,
            } => f
                .debug_struct("Ready")
                .field("len", &bytes.len())
                .field("content_type", content_type)
                .finish(),
            Content::Pending => f.write_str("Pending"),
        }
    }
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
    /// The profile of a user who has added the bot as a friend; `None` (LINE's 404) when the user
    /// has not, or has blocked it.
    async fn profile(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The profile of a member of a group chat the bot is in; `None` on LINE's 404.
    async fn group_member_profile(
        &self,
        token: &SecretString,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The profile of a member of a multi-person chat the bot is in; `None` on LINE's 404.
    async fn room_member_profile(
        &self,
        token: &SecretString,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The image, video, audio or file a user sent. `Pending` while LINE still prepares a video or
    /// audio; `Rejected { status: 404 | 410 }` once the content has expired or is gone;
    /// `Rejected { status: 413 }` when it exceeds [`LineApiConfig::max_content_bytes`].
    async fn message_content(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Content, LineApiError>;
}

/// Base URLs and timeouts of the Messaging API.
#[derive(Debug, Clone)]
pub struct LineApiConfig {
    pub api_base: String,
    pub data_api_base: String,
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included (so it also bounds a content download).
    pub timeout: Duration,
    /// Largest message content [`LineApi::message_content`] downloads (default 50 MiB).
    pub max_content_bytes: usize,
}

/// Default [`LineApiConfig::max_content_bytes`].
pub const DEFAULT_MAX_CONTENT_BYTES: usize = 50 * 1024 * 1024;

impl Default for LineApiConfig {
    fn default() -> Self {
        Self {
            api_base: "https://api.line.me".into(),
            data_api_base: "https://api-data.line.me".into(),
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(10),
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
        }
    }
}

/// [`LineApi`] over HTTPS with reqwest (rustls).
#[derive(Debug, Clone)]
pub struct HttpLineApi {
    client: reqwest::Client,
    api_base: String,
    data_api_base: String,
    max_content_bytes: usize,
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
            max_content_bytes: config.max_content_bytes,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }

    fn data_url(&self, path: &str) -> String {
        format!("{}{path}", self.data_api_base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LineApiError> {
        let response = request.send().await.map_err(transport_error)?;
        check_status(response).await
    }

    /// A profile endpoint: LINE's 404 (not a friend, blocked, not a member) is `None`.
    async fn fetch_profile(
        &self,
        token: &SecretString,
        url: String,
    ) -> Result<Option<Profile>, LineApiError> {
        let response = self
            .client
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(transport_error)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            tracing::debug!("LINE has no profile for this user (404)");
            return Ok(None);
        }
        let response = check_status(response).await?;
        json_body(response).await.map(Some)
    }
}

/// IDs LINE hands out (`U…`/`C…`/`R…` + hex, numeric message IDs) are short and alphanumeric;
/// anything else could rewrite the request path (`/`, `?`, `#`, `..`, `%`), so it is refused
/// before any request is made.
fn checked_id(id: &str) -> Result<&str, LineApiError> {
    let valid = (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(id)
    } else {
        Err(LineApiError::Rejected {
            status: 400,
            message: "invalid id".into(),
        })
    }
}

fn content_too_large(max: usize) -> LineApiError {
    LineApiError::Rejected {
        status: 413,
        message: format!("message content is larger than {max} bytes"),
    }
}

/// `Ok(response)` on a 2xx; otherwise LINE's error as a [`LineApiError`].
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, LineApiError> {
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

    async fn profile(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let url = self.url(&format!("/v2/bot/profile/{}", checked_id(user_id)?));
        self.fetch_profile(token, url).await
    }

    async fn group_member_profile(
        &self,
        token: &SecretString,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let url = self.url(&format!(
            "/v2/bot/group/{}/member/{}",
            checked_id(group_id)?,
            checked_id(user_id)?
        ));
        self.fetch_profile(token, url).await
    }

    async fn room_member_profile(
        &self,
        token: &SecretString,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let url = self.url(&format!(
            "/v2/bot/room/{}/member/{}",
            checked_id(room_id)?,
            checked_id(user_id)?
        ));
        self.fetch_profile(token, url).await
    }

    async fn message_content(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Content, LineApiError> {
        let url = self.data_url(&format!(
            "/v2/bot/message/{}/content",
            checked_id(message_id)?
        ));
        let mut response = self
            .send(self.client.get(url).bearer_auth(token.expose()))
            .await?;
        if response.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(Content::Pending);
        }
        let max = self.max_content_bytes;
        // Refuse early when LINE announces the size; count anyway (chunked bodies announce none).
        let announced = response.content_length().unwrap_or(0);
        if announced > max as u64 {
            return Err(content_too_large(max));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut bytes = Vec::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if chunk.len() > max - bytes.len() {
                return Err(content_too_large(max));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Content::Ready {
            bytes,
            content_type,
        })
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
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
        })
        .unwrap()
    }

    /// Content downloads go to `data_api_base`, capped at `max_content_bytes`.
    fn data_api(base: String, max_content_bytes: usize) -> HttpLineApi {
        HttpLineApi::new(&LineApiConfig {
            api_base: "http://127.0.0.1:9".into(), // nothing listens: a stray call fails
            data_api_base: base,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            max_content_bytes,
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

    #[test]
    fn default_config_caps_content_at_50_mib() {
        assert_eq!(LineApiConfig::default().max_content_bytes, 50 * 1024 * 1024);
    }

    #[tokio::test]
    async fn profile_200_is_parsed_with_language() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/profile/U4af4980629"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "displayName": "LINE taro", "userId": "U4af4980629", "language": "en",
                "pictureUrl": "https://obs.line-apps.com/x", "statusMessage": "Hello, LINE!"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let profile = api(&server, Duration::from_secs(2))
            .profile(&token(), "U4af4980629")
            .await
            .unwrap();
        assert_eq!(
            profile,
            Some(Profile {
                user_id: "U4af4980629".into(),
                display_name: "LINE taro".into(),
                picture_url: Some("https://obs.line-apps.com/x".into()),
                status_message: Some("Hello, LINE!".into()),
                language: Some("en".into()),
            })
        );
    }

    #[tokio::test]
    async fn profile_404_is_none() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/profile/Ublocked"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(serde_json::json!({"message": "Not found"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let profile = api(&server, Duration::from_secs(2))
            .profile(&token(), "Ublocked")
            .await
            .unwrap();
        assert_eq!(profile, None);
    }

    #[tokio::test]
    async fn profile_401_is_rejected() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/profile/U1"))
            .respond_with(ResponseTemplate::new(401).set_body_json(
                serde_json::json!({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."}),
            ))
            .mount(&server)
            .await;
        let err = api(&server, Duration::from_secs(2))
            .profile(&token(), "U1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Rejected { status: 401, ref message } if message.contains("Authentication failed")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn profile_5xx_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        assert!(matches!(
            api(&server, Duration::from_secs(2))
                .profile(&token(), "U1")
                .await,
            Err(LineApiError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn group_member_profile_200_and_404() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cgroup1/member/Umember"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "displayName": "LINE taro", "userId": "Umember",
                "pictureUrl": "https://obs.line-apps.com/y"
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cgroup1/member/Ugone"))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        let profile = api
            .group_member_profile(&token(), "Cgroup1", "Umember")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(profile.user_id, "Umember");
        assert_eq!(profile.display_name, "LINE taro");
        assert_eq!(
            profile.picture_url.as_deref(),
            Some("https://obs.line-apps.com/y")
        );
        assert_eq!(profile.status_message, None);
        assert_eq!(profile.language, None);
        assert_eq!(
            api.group_member_profile(&token(), "Cgroup1", "Ugone")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn room_member_profile_200_and_404() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/room/Rroom1/member/Umember"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "displayName": "LINE hanako", "userId": "Umember"
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/room/Rroom1/member/Ugone"))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        assert_eq!(
            api.room_member_profile(&token(), "Rroom1", "Umember")
                .await
                .unwrap(),
            Some(Profile {
                user_id: "Umember".into(),
                display_name: "LINE hanako".into(),
                picture_url: None,
                status_message: None,
                language: None,
            })
        );
        assert_eq!(
            api.room_member_profile(&token(), "Rroom1", "Ugone")
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn content_200_is_downloaded_from_the_data_api() {
        let server = MockServer::start().await;
        let jpeg: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/325708/content"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(jpeg.clone(), "image/jpeg"))
            .expect(1)
            .mount(&server)
            .await;
        let content = data_api(server.uri(), DEFAULT_MAX_CONTENT_BYTES)
            .message_content(&token(), "325708")
            .await
            .unwrap();
        assert_eq!(
            content,
            Content::Ready {
                bytes: jpeg,
                content_type: Some("image/jpeg".into()),
            }
        );
        assert!(format!("{content:?}").contains("len: 10000"));
    }

    #[tokio::test]
    async fn content_202_is_pending() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/325708/content"))
            .respond_with(ResponseTemplate::new(202))
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            data_api(server.uri(), DEFAULT_MAX_CONTENT_BYTES)
                .message_content(&token(), "325708")
                .await
                .unwrap(),
            Content::Pending
        );
    }

    #[tokio::test]
    async fn content_404_and_410_are_rejected() {
        for status in [404u16, 410] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .and(path("/v2/bot/message/325708/content"))
                .respond_with(
                    ResponseTemplate::new(status)
                        .set_body_json(serde_json::json!({"message": "Not found"})),
                )
                .expect(1)
                .mount(&server)
                .await;
            let err = data_api(server.uri(), DEFAULT_MAX_CONTENT_BYTES)
                .message_content(&token(), "325708")
                .await
                .unwrap_err();
            assert!(
                matches!(err, LineApiError::Rejected { status: s, .. } if s == status),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn content_5xx_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
            .mount(&server)
            .await;
        let err = data_api(server.uri(), DEFAULT_MAX_CONTENT_BYTES)
            .message_content(&token(), "325708")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Unavailable(ref m) if m.contains("502")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn content_timeout_is_unavailable() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_raw(vec![1u8; 10], "video/mp4")
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let api = HttpLineApi::new(&LineApiConfig {
            api_base: "http://127.0.0.1:9".into(),
            data_api_base: server.uri(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_millis(200),
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
        })
        .unwrap();
        let err = api.message_content(&token(), "325708").await.unwrap_err();
        assert!(
            matches!(err, LineApiError::Unavailable(ref m) if m.contains("timeout")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn content_over_the_cap_is_rejected_413() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![7u8; 1001], "video/mp4"))
            .mount(&server)
            .await;
        let err = data_api(server.uri(), 1000)
            .message_content(&token(), "325708")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Rejected { status: 413, .. }),
            "{err:?}"
        );
        // Exactly at the cap is fine.
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(vec![7u8; 1000], "video/mp4"))
            .mount(&server)
            .await;
        assert!(matches!(
            data_api(server.uri(), 1000)
                .message_content(&token(), "325708")
                .await,
            Ok(Content::Ready { ref bytes, .. }) if bytes.len() == 1000
        ));
    }

    /// A one-shot HTTP/1.1 server answering with a chunked body (no `Content-Length`, so the
    /// cap must be enforced while reading). Returns its base URL.
    fn chunked_server(chunks: usize, chunk_len: usize) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: audio/m4a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            for _ in 0..chunks {
                let chunk = format!("{chunk_len:x}\r\n{}\r\n", "a".repeat(chunk_len));
                if stream.write_all(chunk.as_bytes()).is_err() {
                    return; // the client gave up: expected past the cap
                }
                let _ = stream.flush();
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        });
        base
    }

    #[tokio::test]
    async fn chunked_content_is_counted_while_reading() {
        let err = data_api(chunked_server(5, 100), 250)
            .message_content(&token(), "325708")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Rejected { status: 413, .. }),
            "{err:?}"
        );
        let content = data_api(chunked_server(2, 100), 250)
            .message_content(&token(), "325708")
            .await
            .unwrap();
        assert_eq!(
            content,
            Content::Ready {
                bytes: vec![b'a'; 200],
                content_type: Some("audio/m4a".into()),
            }
        );
    }

    #[tokio::test]
    async fn invalid_ids_make_no_request() {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        let long = "U".repeat(129);
        let bad = [
            "",
            "U1/../../info",
            "..",
            "U1?x=1",
            "U1#frag",
            "U1%2F",
            "U 1",
            "Ü1",
            long.as_str(),
        ];
        let invalid = |r: Result<_, LineApiError>| matches!(r, Err(LineApiError::Rejected { status: 400, ref message }) if message == "invalid id");
        for id in bad {
            assert!(invalid(api.profile(&token(), id).await.map(drop)), "{id:?}");
            assert!(
                invalid(api.group_member_profile(&token(), id, "U1").await.map(drop)),
                "{id:?}"
            );
            assert!(
                invalid(api.group_member_profile(&token(), "C1", id).await.map(drop)),
                "{id:?}"
            );
            assert!(
                invalid(api.room_member_profile(&token(), id, "U1").await.map(drop)),
                "{id:?}"
            );
            assert!(
                invalid(api.room_member_profile(&token(), "R1", id).await.map(drop)),
                "{id:?}"
            );
            assert!(
                invalid(api.message_content(&token(), id).await.map(drop)),
                "{id:?}"
            );
        }
        assert!(checked_id(&"U".repeat(128)).is_ok());
        assert!(checked_id("Uab-CD_09").is_ok());
    }
}
