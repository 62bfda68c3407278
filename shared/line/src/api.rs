//! [`LineApi`] over HTTPS with reqwest (rustls): the Messaging API client.

use async_trait::async_trait;
use omniline_domain::line::api::*;
use omniline_domain::secret::SecretString;
use omniline_ports::LineApi;
use reqwest::Method;
use serde::Deserialize;
use std::time::Duration;

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
    details: Option<Vec<LineErrorDetail>>,
    /// The OAuth endpoints' shape (`channel-access-token.yml`): `error`, `error_description`.
    error: Option<String>,
    error_description: Option<String>,
}

/// `sentMessages` of a reply, a push, or a 409 `ErrorResponse`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentMessagesBody {
    #[serde(default)]
    sent_messages: Vec<SentMessageBody>,
}

#[derive(Deserialize)]
struct SentMessageBody {
    id: String,
}

/// `POST /v2/bot/user/{userId}/linkToken`'s answer (`IssueLinkTokenResponse`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkTokenBody {
    link_token: String,
}

/// `POST /oauth2/v3/token`'s answer.
#[derive(Deserialize)]
struct StatelessTokenBody {
    access_token: String,
    expires_in: u64,
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
            .user_agent(crate::http::USER_AGENT)
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

    /// A `method` request to `url` with the channel access token.
    fn authorized(
        &self,
        method: Method,
        url: String,
        token: &SecretString,
    ) -> reqwest::RequestBuilder {
        self.client.request(method, url).bearer_auth(token.expose())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LineApiError> {
        let response = request.send().await.map_err(transport_error)?;
        check_status(response).await
    }

    /// `method` on the Messaging API's `path` with a JSON `body`, for a call whose 2xx answer
    /// holds nothing to read.
    async fn send_json(
        &self,
        token: &SecretString,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(), LineApiError> {
        self.send(self.authorized(method, self.url(path), token).json(body))
            .await
            .map(drop)
    }

    /// A reply or a push (`POST path` with `body`, and `X-Line-Retry-Key` when given): LINE's
    /// answer as a [`Sent`] or a [`SendError`]. A 2xx is delivered even if its body cannot be
    /// read. Logs the request id and LINE's error, never the messages.
    async fn send_messages(
        &self,
        kind: &'static str,
        token: &SecretString,
        path: &str,
        retry_key: Option<&str>,
        body: serde_json::Value,
    ) -> Result<Sent, SendError> {
        let mut request = self.authorized(Method::POST, self.url(path), token);
        if let Some(retry_key) = retry_key {
            request = request.header("X-Line-Retry-Key", retry_key);
        }
        let response = request
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Unavailable(transport_message(&e)))?;
        let status = response.status();
        let request_id = header_value(response.headers(), REQUEST_ID);
        if status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let sent_message_ids = sent_message_ids(&text);
            if sent_message_ids.is_empty() {
                tracing::warn!(
                    kind,
                    request_id,
                    "LINE accepted the messages without sentMessages"
                );
            } else {
                tracing::debug!(
                    kind,
                    request_id,
                    sent = sent_message_ids.len(),
                    "LINE accepted the messages"
                );
            }
            return Ok(Sent {
                request_id,
                sent_message_ids,
                already_accepted: false,
            });
        }
        let accepted_request_id = header_value(response.headers(), "x-line-accepted-request-id");
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let message = describe_error(&text, status);
        if status == reqwest::StatusCode::CONFLICT && retry_key.is_some() {
            tracing::info!(
                kind,
                request_id,
                accepted_request_id,
                "LINE had already accepted this retry key: {message}"
            );
            return Ok(Sent {
                request_id: accepted_request_id.or(request_id),
                sent_message_ids: sent_message_ids(&text),
                already_accepted: true,
            });
        }
        tracing::warn!(
            kind,
            status = status.as_u16(),
            request_id,
            "LINE {kind} failed: {message}"
        );
        Err(classify_send_error(
            status,
            message,
            retry_after,
            request_id,
        ))
    }

    /// A profile endpoint: LINE's 404 (not a friend, blocked, not a member) is `None`.
    async fn fetch_profile(
        &self,
        token: &SecretString,
        path: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let response = self
            .authorized(Method::GET, self.url(path), token)
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

    /// A member's profile in a group chat (`chat` = `group`) or a multi-person chat (`room`).
    async fn member_profile(
        &self,
        token: &SecretString,
        chat: &str,
        chat_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let path = format!(
            "/v2/bot/{chat}/{}/member/{}",
            checked_id(chat_id)?,
            checked_id(user_id)?
        );
        self.fetch_profile(token, &path).await
    }
}

/// The header that names a call in LINE's logs (and in ours).
const REQUEST_ID: &str = "x-line-request-id";

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
        Err(rejected_locally("invalid id"))
    }
}

/// A call refused before any request is made.
fn rejected_locally(message: &str) -> LineApiError {
    LineApiError::Rejected {
        status: 400,
        message: message.into(),
    }
}

/// A reply or push refused before any request is made.
fn refused_locally(message: impl Into<String>) -> SendError {
    SendError::Refused {
        status: 400,
        message: message.into(),
        request_id: None,
    }
}

/// LINE takes 1 to [`MAX_MESSAGES_PER_CALL`](omniline_domain::line::messages::MAX_MESSAGES_PER_CALL)
/// message objects per call (see [`omniline_domain::line::messages::prepare`]).
fn check_message_count(messages: &[serde_json::Value]) -> Result<(), SendError> {
    let max = omniline_domain::line::messages::MAX_MESSAGES_PER_CALL;
    if (1..=max).contains(&messages.len()) {
        Ok(())
    } else {
        Err(refused_locally(format!(
            "messages: 1 to {max} per call, got {}",
            messages.len()
        )))
    }
}

/// `X-Line-Retry-Key` must be a UUID in hexadecimal form (`123e4567-e89b-12d3-a456-426614174000`).
fn check_retry_key(key: &str) -> Result<&str, SendError> {
    if key.len() == 36 && uuid::Uuid::try_parse(key).is_ok() {
        Ok(key)
    } else {
        Err(refused_locally("invalid retry key (must be a UUID)"))
    }
}

/// `loadingSeconds`: a multiple of 5 within 5..=60, rounding up.
fn loading_seconds(seconds: u32) -> u32 {
    seconds.clamp(5, 60).div_ceil(5) * 5
}

fn header_value(
    headers: &reqwest::header::HeaderMap,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Retry-After` as seconds or an HTTP date (a past date is zero).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - time::OffsetDateTime::now_utc()).unwrap_or(Duration::ZERO))
}

fn sent_message_ids(body: &str) -> Vec<String> {
    serde_json::from_str::<SentMessagesBody>(body)
        .map(|b| b.sent_messages.into_iter().map(|m| m.id).collect())
        .unwrap_or_default()
}

fn classify_send_error(
    status: reqwest::StatusCode,
    message: String,
    retry_after: Option<Duration>,
    request_id: Option<String>,
) -> SendError {
    let lower = message.to_ascii_lowercase();
    match status.as_u16() {
        400 if lower.contains("reply token") || lower.contains("replytoken") => {
            SendError::InvalidReplyToken { message }
        }
        401 => SendError::Unauthorized { message },
        429 if lower.contains("monthly limit") => SendError::MonthlyLimit { message },
        429 => SendError::RateLimited {
            retry_after,
            message,
        },
        s if status.is_server_error() => SendError::Unavailable(format!("{s}: {message}")),
        s => SendError::Refused {
            status: s,
            message,
            request_id,
        },
    }
}

/// `application/x-www-form-urlencoded`: every byte but `A-Za-z0-9-._~` percent-encoded.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [name, value].into_iter().enumerate() {
            if j > 0 {
                out.push('=');
            }
            for b in part.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
    out
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
    let request_id = header_value(response.headers(), REQUEST_ID);
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
    LineApiError::Unavailable(transport_message(&e))
}

fn transport_message(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's Display holds the URL (no secret: tokens travel in headers and bodies).
    format!("{kind}: {e}")
}

fn describe_error(body: &str, status: reqwest::StatusCode) -> String {
    match serde_json::from_str::<LineErrorBody>(body) {
        Ok(err) => {
            let oauth = err.error.map(|e| match err.error_description {
                Some(d) => format!("{e}: {d}"),
                None => e,
            });
            let mut message = err.message.or(oauth).unwrap_or_else(|| status.to_string());
            for d in err.details.unwrap_or_default() {
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
        let request = self.authorized(Method::GET, self.url("/v2/bot/info"), token);
        json_body(self.send(request).await?).await
    }

    async fn set_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: &str,
    ) -> Result<(), LineApiError> {
        let body = serde_json::json!({ "endpoint": endpoint });
        self.send_json(
            token,
            Method::PUT,
            "/v2/bot/channel/webhook/endpoint",
            &body,
        )
        .await
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
        let url = self.url("/v2/bot/channel/webhook/test");
        let response = self
            .send(self.authorized(Method::POST, url, token).json(&body))
            .await?;
        json_body(response).await
    }

    async fn profile(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        let path = format!("/v2/bot/profile/{}", checked_id(user_id)?);
        self.fetch_profile(token, &path).await
    }

    async fn group_member_profile(
        &self,
        token: &SecretString,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        self.member_profile(token, "group", group_id, user_id).await
    }

    async fn room_member_profile(
        &self,
        token: &SecretString,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError> {
        self.member_profile(token, "room", room_id, user_id).await
    }

    async fn message_quota(&self, token: &SecretString) -> Result<MessageQuota, LineApiError> {
        let response = self
            .authorized(Method::GET, self.url("/v2/bot/message/quota"), token)
            .send()
            .await
            .map_err(transport_error)?;
        json_body(check_status(response).await?).await
    }

    async fn quota_consumption(
        &self,
        token: &SecretString,
    ) -> Result<QuotaConsumption, LineApiError> {
        let response = self
            .authorized(
                Method::GET,
                self.url("/v2/bot/message/quota/consumption"),
                token,
            )
            .send()
            .await
            .map_err(transport_error)?;
        json_body(check_status(response).await?).await
    }

    async fn group_summary(
        &self,
        token: &SecretString,
        group_id: &str,
    ) -> Result<Option<GroupSummary>, LineApiError> {
        let path = format!("/v2/bot/group/{}/summary", checked_id(group_id)?);
        let response = self
            .authorized(Method::GET, self.url(&path), token)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            tracing::debug!("LINE has no summary of this group for us (404)");
            return Ok(None);
        }
        let response = check_status(response).await?;
        json_body(response).await.map(Some)
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
        let response = self.send(self.authorized(Method::GET, url, token)).await?;
        if response.status() == reqwest::StatusCode::ACCEPTED {
            return Ok(Content::Pending);
        }
        let content_type = header_value(response.headers(), reqwest::header::CONTENT_TYPE);
        let max = self.max_content_bytes;
        let bytes = crate::http::body_at_most(response, max)
            .await
            .map_err(transport_error)?
            .ok_or_else(|| content_too_large(max))?;
        Ok(Content::Ready {
            bytes,
            content_type,
        })
    }

    async fn reply(
        &self,
        token: &SecretString,
        reply_token: &str,
        messages: &[serde_json::Value],
    ) -> Result<Sent, SendError> {
        if reply_token.is_empty() {
            return Err(SendError::InvalidReplyToken {
                message: "empty reply token".into(),
            });
        }
        check_message_count(messages)?;
        let body = serde_json::json!({ "replyToken": reply_token, "messages": messages });
        self.send_messages("reply", token, "/v2/bot/message/reply", None, body)
            .await
    }

    async fn push(
        &self,
        token: &SecretString,
        to: &str,
        messages: &[serde_json::Value],
        retry_key: &str,
    ) -> Result<Sent, SendError> {
        let to = checked_id(to).map_err(|_| refused_locally("invalid id"))?;
        check_message_count(messages)?;
        let retry_key = check_retry_key(retry_key)?;
        let body = serde_json::json!({ "to": to, "messages": messages });
        self.send_messages("push", token, "/v2/bot/message/push", Some(retry_key), body)
            .await
    }

    async fn start_loading(
        &self,
        token: &SecretString,
        chat_id: &str,
        seconds: u32,
    ) -> Result<(), LineApiError> {
        let body = serde_json::json!({
            "chatId": checked_id(chat_id)?,
            "loadingSeconds": loading_seconds(seconds),
        });
        self.send_json(token, Method::POST, "/v2/bot/chat/loading/start", &body)
            .await
    }

    async fn mark_as_read_by_token(
        &self,
        token: &SecretString,
        mark_as_read_token: &str,
    ) -> Result<(), LineApiError> {
        if mark_as_read_token.is_empty() {
            return Err(rejected_locally("empty markAsReadToken"));
        }
        let body = serde_json::json!({ "markAsReadToken": mark_as_read_token });
        self.send_json(token, Method::POST, "/v2/bot/chat/markAsRead", &body)
            .await
    }

    async fn issue_link_token(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<String, LineApiError> {
        let url = self.url(&format!("/v2/bot/user/{}/linkToken", checked_id(user_id)?));
        let response = self.send(self.authorized(Method::POST, url, token)).await?;
        let body: LinkTokenBody = json_body(response).await?;
        if body.link_token.is_empty() {
            return Err(LineApiError::Unavailable(
                "LINE answered an empty link token".into(),
            ));
        }
        Ok(body.link_token)
    }

    async fn issue_stateless_token(
        &self,
        channel_id: &str,
        channel_secret: &SecretString,
    ) -> Result<IssuedToken, LineApiError> {
        let body = form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", checked_id(channel_id)?),
            ("client_secret", channel_secret.expose()),
        ]);
        let response = self
            .send(
                self.client
                    .post(self.url("/oauth2/v3/token"))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body),
            )
            .await?;
        let bytes = response.bytes().await.map_err(transport_error)?;
        // serde's message could quote the token: say only that the answer was unexpected.
        let token: StatelessTokenBody = serde_json::from_slice(&bytes).map_err(|_| {
            LineApiError::Unavailable("unexpected response from LINE's token endpoint".into())
        })?;
        Ok(IssuedToken {
            access_token: SecretString::new(token.access_token),
            expires_in: Duration::from_secs(token.expires_in),
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
    async fn quota_and_consumption_200_401_5xx() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/quota"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"type": "limited", "value": 200})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/quota/consumption"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"totalUsage": 161})),
            )
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        let quota = api.message_quota(&token()).await.unwrap();
        assert_eq!(quota.limit(), Some(200));
        assert_eq!(
            api.quota_consumption(&token()).await.unwrap().total_usage,
            161
        );
        assert_eq!(
            MessageQuota {
                kind: "none".into(),
                value: None
            }
            .limit(),
            None
        );
        let refused = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/quota"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"message": "Authentication failed"})),
            )
            .mount(&refused)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/message/quota/consumption"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&refused)
            .await;
        let api = super::tests::api(&refused, Duration::from_secs(2));
        assert!(matches!(
            api.message_quota(&token()).await,
            Err(LineApiError::Rejected { status: 401, .. })
        ));
        assert!(matches!(
            api.quota_consumption(&token()).await,
            Err(LineApiError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn group_summary_200_404_5xx_timeout_and_bad_ids() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cgroup1/summary"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "groupId": "Cgroup1", "groupName": "Shop regulars",
                "pictureUrl": "https://profile.line-scdn.net/abcdefghijklmn"
            })))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cgone/summary"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(serde_json::json!({"message": "Not found"})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cdown/summary"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/v2/bot/group/Cslow/summary"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(1));
        let summary = api
            .group_summary(&token(), "Cgroup1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(summary.group_name, "Shop regulars");
        assert_eq!(
            summary.picture_url.as_deref(),
            Some("https://profile.line-scdn.net/abcdefghijklmn")
        );
        assert_eq!(api.group_summary(&token(), "Cgone").await.unwrap(), None);
        assert!(matches!(
            api.group_summary(&token(), "Cdown").await,
            Err(LineApiError::Unavailable(_))
        ));
        assert!(matches!(
            api.group_summary(&token(), "Cslow").await,
            Err(LineApiError::Unavailable(m)) if m.contains("timeout")
        ));
        assert!(matches!(
            api.group_summary(&token(), "C1/../x").await,
            Err(LineApiError::Rejected { status: 400, .. })
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

    const RETRY_KEY: &str = "123e4567-e89b-12d3-a456-426614174000";

    fn text(t: &str) -> serde_json::Value {
        serde_json::json!({"type": "text", "text": t})
    }

    /// A server answering every request with `response`.
    async fn answering(response: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(response)
            .mount(&server)
            .await;
        server
    }

    fn line_error(status: u16, message: &str) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .insert_header("x-line-request-id", "req-err")
            .set_body_json(serde_json::json!({ "message": message }))
    }

    #[tokio::test]
    async fn reply_200_parses_request_id_and_sent_messages() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/reply"))
            .and(header("authorization", "Bearer tok-123"))
            .and(header("content-type", "application/json"))
            .and(body_json(serde_json::json!({
                "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                "messages": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "World"}]
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-line-request-id", "req-1")
                    .set_body_json(serde_json::json!({"sentMessages": [
                        {"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b..."},
                        {"id": "461230966842064898"}
                    ]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let sent = api(&server, Duration::from_secs(2))
            .reply(
                &token(),
                "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
                &[text("Hello"), text("World")],
            )
            .await
            .unwrap();
        assert_eq!(
            sent,
            Sent {
                request_id: Some("req-1".into()),
                sent_message_ids: vec!["461230966842064897".into(), "461230966842064898".into()],
                already_accepted: false,
            }
        );
    }

    #[tokio::test]
    async fn a_2xx_without_a_readable_body_is_still_delivered() {
        let server = answering(ResponseTemplate::new(200).set_body_string("not json")).await;
        let sent = api(&server, Duration::from_secs(2))
            .reply(&token(), "rt", &[text("Hello")])
            .await
            .unwrap();
        assert_eq!(sent, Sent::default());
    }

    #[tokio::test]
    async fn push_sends_the_retry_key_and_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/message/push"))
            .and(header("authorization", "Bearer tok-123"))
            .and(header("x-line-retry-key", RETRY_KEY))
            .and(body_json(serde_json::json!({
                "to": "U4af4980629",
                "messages": [{"type": "text", "text": "Hello"}]
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("x-line-request-id", "req-2")
                    .set_body_json(serde_json::json!({"sentMessages": [{"id": "1"}]})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let sent = api(&server, Duration::from_secs(2))
            .push(&token(), "U4af4980629", &[text("Hello")], RETRY_KEY)
            .await
            .unwrap();
        assert_eq!(sent.request_id.as_deref(), Some("req-2"));
        assert_eq!(sent.sent_message_ids, vec!["1".to_owned()]);
        assert!(!sent.already_accepted);
    }

    #[tokio::test]
    async fn push_409_is_already_accepted() {
        let server = answering(
            ResponseTemplate::new(409)
                .insert_header("x-line-request-id", "req-retry")
                .insert_header("x-line-accepted-request-id", "req-first")
                .set_body_json(serde_json::json!({
                    "message": "The retry key is already accepted",
                    "sentMessages": [{"id": "461230966842064897"}]
                })),
        )
        .await;
        let sent = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("Hello")], RETRY_KEY)
            .await
            .unwrap();
        assert_eq!(
            sent,
            Sent {
                request_id: Some("req-first".into()),
                sent_message_ids: vec!["461230966842064897".into()],
                already_accepted: true,
            }
        );
        // Without the accepted request's id nor sentMessages: still accepted.
        let server =
            answering(ResponseTemplate::new(409).insert_header("x-line-request-id", "req-retry"))
                .await;
        let sent = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("Hello")], RETRY_KEY)
            .await
            .unwrap();
        assert_eq!(sent.request_id.as_deref(), Some("req-retry"));
        assert!(sent.already_accepted);
        // A reply carries no retry key: its 409 is a refusal.
        let err = api(&server, Duration::from_secs(2))
            .reply(&token(), "rt", &[text("Hello")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Refused { status: 409, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn send_5xx_is_unavailable() {
        let server = answering(line_error(500, "Internal server error")).await;
        let api = api(&server, Duration::from_secs(2));
        let err = api.reply(&token(), "rt", &[text("a")]).await.unwrap_err();
        assert!(
            matches!(err, SendError::Unavailable(ref m) if m.contains("500")),
            "{err:?}"
        );
        let err = api
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn send_timeout_and_connection_errors_are_unavailable() {
        let server = answering(ResponseTemplate::new(200).set_delay(Duration::from_secs(3))).await;
        let err = api(&server, Duration::from_millis(200))
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Unavailable(ref m) if m.contains("timeout")),
            "{err:?}"
        );
        let nowhere = HttpLineApi::new(&LineApiConfig {
            api_base: "http://127.0.0.1:9".into(),
            ..LineApiConfig::default()
        })
        .unwrap();
        let err = nowhere
            .reply(&token(), "rt", &[text("a")])
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn reply_400_invalid_reply_token() {
        let server = answering(line_error(400, "Invalid reply token")).await;
        let err = api(&server, Duration::from_secs(2))
            .reply(&token(), "expired", &[text("a")])
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SendError::InvalidReplyToken {
                message: "Invalid reply token".into()
            }
        );
    }

    #[tokio::test]
    async fn a_400_on_a_message_is_refused_with_details_and_request_id() {
        let server = answering(
            ResponseTemplate::new(400)
                .insert_header("x-line-request-id", "req-400")
                .set_body_json(serde_json::json!({
                    "message": "The request body has 1 error(s)",
                    "details": [{"message": "May not be empty", "property": "messages[0].text"}]
                })),
        )
        .await;
        let err = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("")], RETRY_KEY)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SendError::Refused {
                status: 400,
                message: "The request body has 1 error(s); messages[0].text: May not be empty"
                    .into(),
                request_id: Some("req-400".into()),
            }
        );
    }

    #[tokio::test]
    async fn a_429_monthly_limit_is_not_a_rate_limit() {
        let server = answering(line_error(429, "You have reached your monthly limit.")).await;
        let err = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SendError::MonthlyLimit {
                message: "You have reached your monthly limit.".into()
            }
        );
    }

    #[tokio::test]
    async fn other_429s_are_rate_limited_with_retry_after() {
        let server = answering(
            line_error(
                429,
                "The API rate limit has been exceeded. Try again later.",
            )
            .insert_header("retry-after", "7"),
        )
        .await;
        let err = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SendError::RateLimited {
                retry_after: Some(Duration::from_secs(7)),
                message: "The API rate limit has been exceeded. Try again later.".into(),
            }
        );
        let server = answering(line_error(429, "Too many requests")).await;
        let err = api(&server, Duration::from_secs(2))
            .reply(&token(), "rt", &[text("a")])
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                SendError::RateLimited {
                    retry_after: None,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "120".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
        headers.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        headers.insert("retry-after", date.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(500) && wait <= Duration::from_secs(600),
            "{wait:?}"
        );
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[tokio::test]
    async fn send_401_is_unauthorized() {
        let server = answering(line_error(
            401,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        ))
        .await;
        let err = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::Unauthorized { ref message } if message.starts_with("Authentication failed")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn send_403_is_refused() {
        let server = answering(line_error(
            403,
            "Access to this API is not available for your account",
        ))
        .await;
        let err = api(&server, Duration::from_secs(2))
            .push(&token(), "U1", &[text("a")], RETRY_KEY)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            SendError::Refused {
                status: 403,
                message: "Access to this API is not available for your account".into(),
                request_id: Some("req-err".into()),
            }
        );
    }

    #[tokio::test]
    async fn invalid_sends_make_no_request() {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        let refused = |r: Result<Sent, SendError>, what: &str| {
            assert!(
                matches!(r, Err(SendError::Refused { status: 400, request_id: None, ref message }) if message.contains(what)),
                "{r:?}"
            )
        };
        for to in ["", "U1/../info", "U1?x", "U 1", "Ü1"] {
            refused(
                api.push(&token(), to, &[text("a")], RETRY_KEY).await,
                "invalid id",
            );
        }
        let six: Vec<_> = (0..6).map(|_| text("a")).collect();
        refused(api.push(&token(), "U1", &[], RETRY_KEY).await, "messages");
        refused(api.push(&token(), "U1", &six, RETRY_KEY).await, "messages");
        refused(api.reply(&token(), "rt", &[]).await, "messages");
        refused(api.reply(&token(), "rt", &six).await, "messages");
        for key in [
            "",
            "not-a-uuid",
            "123e4567e89b12d3a456426614174000",
            "123e4567-e89b-12d3-a456-426614174000\r\nX: y",
        ] {
            refused(
                api.push(&token(), "U1", &[text("a")], key).await,
                "retry key",
            );
        }
        assert!(matches!(
            api.reply(&token(), "", &[text("a")]).await,
            Err(SendError::InvalidReplyToken { .. })
        ));
        let invalid = |r: Result<(), LineApiError>| {
            matches!(r, Err(LineApiError::Rejected { status: 400, .. }))
        };
        assert!(invalid(api.start_loading(&token(), "U1/..", 5).await));
        assert!(invalid(api.mark_as_read_by_token(&token(), "").await));
        assert!(invalid(
            api.issue_stateless_token("12/34", &SecretString::new("s"))
                .await
                .map(drop)
        ));
    }

    #[tokio::test]
    async fn loading_seconds_are_rounded_to_multiples_of_5() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/chat/loading/start"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(202).set_body_json(serde_json::json!({})))
            .expect(6)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        let cases = [(0, 5), (5, 5), (7, 10), (58, 60), (61, 60), (u32::MAX, 60)];
        for (seconds, _) in cases {
            api.start_loading(&token(), "U4af4980629", seconds)
                .await
                .unwrap();
        }
        let bodies: Vec<serde_json::Value> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        let expected: Vec<_> = cases
            .iter()
            .map(|&(_, s)| serde_json::json!({"chatId": "U4af4980629", "loadingSeconds": s}))
            .collect();
        assert_eq!(bodies, expected);
    }

    #[tokio::test]
    async fn loading_400_is_rejected() {
        let server = answering(line_error(400, "Invalid chatId")).await;
        let err = api(&server, Duration::from_secs(2))
            .start_loading(&token(), "Cgroup", 20)
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Rejected { status: 400, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn mark_as_read_by_token_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/chat/markAsRead"))
            .and(header("authorization", "Bearer tok-123"))
            .and(body_json(
                serde_json::json!({"markAsReadToken": "nz0x74mZT2mRn"}),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .expect(1)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        api.mark_as_read_by_token(&token(), "nz0x74mZT2mRn")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn stateless_token_is_issued_from_a_form() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/v3/token"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(wiremock::matchers::body_string(
                "grant_type=client_credentials&client_id=1234567890&client_secret=8a7b%20c%26d%3De%2Bf%2F",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "token_type": "Bearer", "access_token": "eyJhbGciOiJIUz.secret", "expires_in": 899
            })))
            .expect(1)
            .mount(&server)
            .await;
        let issued = api(&server, Duration::from_secs(2))
            .issue_stateless_token("1234567890", &SecretString::new("8a7b c&d=e+f/"))
            .await
            .unwrap();
        assert_eq!(issued.access_token.expose(), "eyJhbGciOiJIUz.secret");
        assert_eq!(issued.expires_in, Duration::from_secs(899));
        assert!(!format!("{issued:?}").contains("eyJ"), "{issued:?}");
    }

    #[tokio::test]
    async fn stateless_token_400_is_rejected_and_bad_answers_are_unavailable() {
        let server = answering(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": "invalid_client", "error_description": "invalid client secret"
        })))
        .await;
        let err = api(&server, Duration::from_secs(2))
            .issue_stateless_token("1234567890", &SecretString::new("wrong"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            LineApiError::Rejected {
                status: 400,
                message: "invalid_client: invalid client secret".into()
            }
        );
        // A malformed answer never quotes the token.
        let server = answering(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "eyJ.secret", "expires_in": "eyJ.secret"
        })))
        .await;
        let err = api(&server, Duration::from_secs(2))
            .issue_stateless_token("1234567890", &SecretString::new("s"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Unavailable(ref m) if !m.contains("eyJ")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn link_token_200_is_parsed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v2/bot/user/U4af4980629/linkToken"))
            .and(header("authorization", "Bearer tok-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"linkToken": "NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY"}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let link_token = api(&server, Duration::from_secs(2))
            .issue_link_token(&token(), "U4af4980629")
            .await
            .unwrap();
        assert_eq!(link_token, "NMZTNuVrPTqlr2IF8Bnymkb7rXfYv5EY");
    }

    #[tokio::test]
    async fn link_token_4xx_is_rejected() {
        for status in [400, 401, 403, 404] {
            let server = answering(line_error(status, "The user hasn't added the bot")).await;
            let err = api(&server, Duration::from_secs(2))
                .issue_link_token(&token(), "U4af4980629")
                .await
                .unwrap_err();
            assert!(
                matches!(err, LineApiError::Rejected { status: s, ref message } if s == status && message.contains("hasn't added")),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn link_token_5xx_timeouts_and_bad_answers_are_unavailable() {
        let server = answering(ResponseTemplate::new(500)).await;
        let err = api(&server, Duration::from_secs(2))
            .issue_link_token(&token(), "U1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Unavailable(ref m) if m.contains("500")),
            "{err:?}"
        );

        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"linkToken": "x"}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let err = api(&server, Duration::from_millis(200))
            .issue_link_token(&token(), "U1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, LineApiError::Unavailable(ref m) if m.contains("timeout")),
            "{err:?}"
        );

        for body in [serde_json::json!({}), serde_json::json!({"linkToken": ""})] {
            let server = answering(ResponseTemplate::new(200).set_body_json(body)).await;
            let err = api(&server, Duration::from_secs(2))
                .issue_link_token(&token(), "U1")
                .await
                .unwrap_err();
            assert!(matches!(err, LineApiError::Unavailable(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn link_token_for_an_invalid_user_id_makes_no_request() {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let api = api(&server, Duration::from_secs(2));
        for id in ["", "U1/../../info", "U1?x=1"] {
            assert_eq!(
                api.issue_link_token(&token(), id).await,
                Err(LineApiError::Rejected {
                    status: 400,
                    message: "invalid id".into()
                }),
                "{id:?}"
            );
        }
    }

    #[test]
    fn form_encoding_escapes_everything_but_unreserved() {
        assert_eq!(
            form_encode(&[("a b", "x-y_z.~1"), ("c", "é&=+%")]),
            "a%20b=x-y_z.~1&c=%C3%A9%26%3D%2B%25"
        );
    }
}
