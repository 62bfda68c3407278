//! The simulated Messaging API (`/sandbox/line/...`): what the stack's `HttpLineApi` calls in
//! sandbox mode. Answers as LINE does (status codes, `{"message"}` error bodies,
//! `x-line-request-id`, 409 with `x-line-accepted-request-id` for a retry key seen before), so the
//! real client code runs unchanged.

use super::platform::{Platform, PlatformError, PushOutcome};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

/// Where the routes are mounted; the stack's `LINE_API_BASE` and `LINE_DATA_API_BASE`.
pub const PREFIX: &str = "/sandbox/line";

pub fn router(platform: Platform) -> Router {
    Router::new()
        .route("/v2/bot/info", get(bot_info))
        .route("/v2/bot/channel/webhook/endpoint", put(ok_empty))
        .route("/v2/bot/channel/webhook/test", post(webhook_test))
        .route("/v2/bot/profile/{user_id}", get(profile))
        .route(
            "/v2/bot/group/{group_id}/member/{user_id}",
            get(not_a_member),
        )
        .route("/v2/bot/room/{room_id}/member/{user_id}", get(not_a_member))
        .route("/v2/bot/message/{message_id}/content", get(content))
        .route("/v2/bot/message/reply", post(reply))
        .route("/v2/bot/message/push", post(push))
        .route("/v2/bot/chat/loading/start", post(loading))
        .route("/v2/bot/message/markAsRead", post(mark_as_read))
        .route("/v2/bot/chat/markAsRead", post(mark_as_read_by_token))
        .route("/v2/bot/user/{user_id}/linkToken", post(link_token))
        .route("/oauth2/v3/token", post(issue_token))
        .with_state(platform)
}

/// LINE's error answer: a status and `{"message"}`.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct LineError {
    status: StatusCode,
    message: String,
}

impl LineError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not found")
    }
}

impl From<PlatformError> for LineError {
    fn from(e: PlatformError) -> Self {
        tracing::error!("sandbox LINE platform: {e}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

impl IntoResponse for LineError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "message": self.message }))).into_response();
        with_request_id(response.headers_mut(), &uuid::Uuid::new_v4().to_string());
        response
    }
}

type Result<T = Response, E = LineError> = std::result::Result<T, E>;

fn with_request_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-line-request-id", v);
    }
}

fn ok(body: Value) -> Response {
    let mut response = Json(body).into_response();
    with_request_id(response.headers_mut(), &uuid::Uuid::new_v4().to_string());
    response
}

/// LINE's 401 unless the request carries the sandbox channel's access token.
fn authorize(platform: &Platform, headers: &HeaderMap) -> Result<()> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token {
        Some(token) if platform.accepts_token(token) => Ok(()),
        _ => Err(LineError::new(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        )),
    }
}

async fn bot_info(State(p): State<Platform>, headers: HeaderMap) -> Result {
    authorize(&p, &headers)?;
    let c = p.channel().ok_or_else(LineError::not_found)?;
    Ok(ok(json!({
        "userId": c.bot_user_id,
        "basicId": "@sandbox",
        "displayName": "Sandbox shop",
        "chatMode": "chat",
        "markAsReadMode": "manual"
    })))
}

async fn ok_empty(State(p): State<Platform>, headers: HeaderMap) -> Result {
    authorize(&p, &headers)?;
    Ok(ok(json!({})))
}

async fn webhook_test(State(p): State<Platform>, headers: HeaderMap) -> Result {
    authorize(&p, &headers)?;
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Ok(ok(json!({
        "success": true, "timestamp": timestamp, "statusCode": 200, "reason": "OK", "detail": "200"
    })))
}

async fn profile(
    State(p): State<Platform>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result {
    authorize(&p, &headers)?;
    let u = p.user(&user_id).await?.ok_or_else(LineError::not_found)?;
    Ok(ok(json!({
        "userId": u.id, "displayName": u.name, "pictureUrl": u.picture_url,
        "language": u.language, "statusMessage": "Trying omniline's sandbox"
    })))
}

/// The sandbox has no group chats.
async fn not_a_member(State(p): State<Platform>, headers: HeaderMap) -> Result {
    authorize(&p, &headers)?;
    Err(LineError::not_found())
}

async fn content(
    State(p): State<Platform>,
    headers: HeaderMap,
    Path(message_id): Path<String>,
) -> Result {
    authorize(&p, &headers)?;
    let (content_type, bytes) = p
        .content(&message_id)
        .await?
        .ok_or_else(LineError::not_found)?;
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// `messages`: 1 to 5 objects, each with a `type`, as LINE requires.
fn messages_of(body: &Value) -> Result<Vec<Value>> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            LineError::bad_request("The request body has 1 error(s): messages: must be specified")
        })?;
    if messages.is_empty() || messages.len() > 5 {
        return Err(LineError::bad_request("Size must be between 1 and 5"));
    }
    for (i, message) in messages.iter().enumerate() {
        if let Err((property, problem)) = check_message(message) {
            return Err(LineError::bad_request(format!(
                "The request body has 1 error(s): messages[{i}].{property}: {problem}"
            )));
        }
    }
    Ok(messages.clone())
}

/// LINE's rules for a message object, those a product bug would break: a message LINE would
/// refuse is refused here too, so the sandbox does not hide it. (property, problem) when broken.
fn check_message(m: &Value) -> std::result::Result<(), (&'static str, String)> {
    let text_of = |field: &'static str| m.get(field).and_then(Value::as_str);
    let required = |field: &'static str, max: usize| match text_of(field) {
        Some(v) if !v.is_empty() && v.encode_utf16().count() <= max => Ok(v),
        Some(_) => Err((field, format!("1 to {max} characters"))),
        None => Err((field, "must be specified".to_owned())),
    };
    // LINE fetches media itself, so it wants https; the sandbox also takes http to this machine
    // (the stack's own signed media links when no https PUBLIC_BASE_URL is set).
    let url = |field: &'static str| {
        let v = required(field, 2000)?;
        let loopback = [
            "http://127.",
            "http://localhost:",
            "http://localhost/",
            "http://[::1]",
        ]
        .iter()
        .any(|p| v.starts_with(p));
        if v.starts_with("https://") || loopback {
            Ok(())
        } else {
            Err((field, "must be an https URL".to_owned()))
        }
    };
    match m.get("type").and_then(Value::as_str) {
        None => return Err(("type", "must be specified".to_owned())),
        Some("text") => {
            required("text", 5000)?;
        }
        Some("sticker") => {
            required("packageId", 20)?;
            required("stickerId", 20)?;
        }
        Some("image") | Some("video") => {
            url("originalContentUrl")?;
            url("previewImageUrl")?;
        }
        Some("audio") => {
            url("originalContentUrl")?;
        }
        Some("location") => {
            required("title", 100)?;
            required("address", 100)?;
            for field in ["latitude", "longitude"] {
                if !m.get(field).is_some_and(Value::is_number) {
                    return Err((field, "must be a number".to_owned()));
                }
            }
        }
        Some("template") => {
            required("altText", 400)?;
        }
        Some("flex") => {
            required("altText", 1500)?;
        }
        Some("imagemap") | Some("textV2") => {}
        Some(other) => return Err(("type", format!("unknown message type {other:?}"))),
    }
    if let Some(items) = m.pointer("/quickReply/items") {
        match items.as_array() {
            Some(items) if (1..=13).contains(&items.len()) => {}
            _ => return Err(("quickReply.items", "1 to 13 items".to_owned())),
        }
    }
    Ok(())
}

fn json_body(body: &Bytes) -> Result<Value> {
    serde_json::from_slice(body)
        .map_err(|_| LineError::bad_request("The request body is not valid JSON"))
}

/// A known simulated user, or LINE's 400 naming the property.
async fn known_user(p: &Platform, id: &str, property: &str) -> Result<()> {
    match p.user(id).await? {
        Some(_) => Ok(()),
        None => Err(LineError::bad_request(format!(
            "The property, '{property}', in the request body is invalid (line: -, column: -)"
        ))),
    }
}

async fn reply(State(p): State<Platform>, headers: HeaderMap, body: Bytes) -> Result {
    authorize(&p, &headers)?;
    let body = json_body(&body)?;
    let messages = messages_of(&body)?;
    let token = body.get("replyToken").and_then(Value::as_str).unwrap_or("");
    let user_id = p
        .use_reply_token(token)
        .ok_or_else(|| LineError::bad_request("Invalid reply token"))?;
    let sent = p.deliver(&user_id, "reply", messages).await?;
    Ok(ok(json!({ "sentMessages": sent })))
}

async fn push(State(p): State<Platform>, headers: HeaderMap, body: Bytes) -> Result {
    authorize(&p, &headers)?;
    let body = json_body(&body)?;
    let messages = messages_of(&body)?;
    let to = body.get("to").and_then(Value::as_str).unwrap_or("");
    known_user(&p, to, "to").await?;
    let retry_key = match headers.get("x-line-retry-key") {
        Some(v) => v
            .to_str()
            .ok()
            .filter(|k| uuid::Uuid::parse_str(k).is_ok())
            .ok_or_else(|| LineError::bad_request("The retry key must be a UUID"))?
            .to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    Ok(match p.push_once(to, &retry_key, messages).await? {
        PushOutcome::Accepted { request_id, sent } => {
            let mut response = Json(json!({ "sentMessages": sent })).into_response();
            with_request_id(response.headers_mut(), &request_id);
            response
        }
        PushOutcome::AlreadyAccepted { request_id, sent } => {
            let mut response = (
                StatusCode::CONFLICT,
                Json(json!({
                    "message": "The retry key is already accepted",
                    "sentMessages": sent
                })),
            )
                .into_response();
            with_request_id(response.headers_mut(), &uuid::Uuid::new_v4().to_string());
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert("x-line-accepted-request-id", v);
            }
            response
        }
    })
}

async fn loading(State(p): State<Platform>, headers: HeaderMap, body: Bytes) -> Result {
    authorize(&p, &headers)?;
    let body = json_body(&body)?;
    let chat = body.get("chatId").and_then(Value::as_str).unwrap_or("");
    let seconds = body
        .get("loadingSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(20);
    if !(5..=60).contains(&seconds) || seconds % 5 != 0 {
        return Err(LineError::bad_request("loadingSeconds: 5 to 60, by 5"));
    }
    known_user(&p, chat, "chatId").await?;
    p.start_typing(chat, seconds as u32);
    let mut response = (StatusCode::ACCEPTED, Json(json!({}))).into_response();
    with_request_id(response.headers_mut(), &uuid::Uuid::new_v4().to_string());
    Ok(response)
}

async fn mark_as_read(State(p): State<Platform>, headers: HeaderMap, body: Bytes) -> Result {
    authorize(&p, &headers)?;
    let body = json_body(&body)?;
    let user = body
        .pointer("/chat/userId")
        .and_then(Value::as_str)
        .unwrap_or("");
    known_user(&p, user, "chat.userId").await?;
    p.mark_read(user, None).await?;
    Ok(ok(json!({})))
}

async fn mark_as_read_by_token(
    State(p): State<Platform>,
    headers: HeaderMap,
    body: Bytes,
) -> Result {
    authorize(&p, &headers)?;
    let body = json_body(&body)?;
    let token = body
        .get("markAsReadToken")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (user, seq) = p
        .read_token(token)
        .ok_or_else(|| LineError::bad_request("Invalid markAsReadToken"))?;
    p.mark_read(&user, Some(seq)).await?;
    Ok(ok(json!({})))
}

async fn link_token(
    State(p): State<Platform>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result {
    authorize(&p, &headers)?;
    if p.user(&user_id).await?.is_none() {
        return Err(LineError::bad_request("The user is not a friend"));
    }
    Ok(ok(
        json!({ "linkToken": uuid::Uuid::new_v4().simple().to_string() }),
    ))
}

/// Stateless tokens, for an account connected with the channel ID and secret only.
async fn issue_token(State(p): State<Platform>, body: Bytes) -> Result {
    let form: Vec<(String, String)> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match p.channel() {
        Some(c)
            if field("client_id") == Some(c.channel_id.as_str())
                && field("client_secret") == Some(c.channel_secret.as_str()) =>
        {
            Ok(ok(
                json!({"token_type": "Bearer", "access_token": c.access_token, "expires_in": 900}),
            ))
        }
        _ => Err(LineError::bad_request("invalid client")),
    }
}

/// The stack's own LINE client (`HttpLineApi`) against the simulated Messaging API over HTTP.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::platform::SandboxChannel;
    use omniline_domain::line::api::{LineApiError, SendError};
    use omniline_domain::secret::SecretString;
    use omniline_line::HttpLineApi;
    use omniline_line::LineApiConfig;
    use omniline_ports::LineApi;

    struct Sim {
        platform: Platform,
        line: HttpLineApi,
        token: SecretString,
        _dir: tempfile::TempDir,
    }

    async fn sim() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::open(dir.path(), "http://127.0.0.1:1").unwrap();
        let channel = SandboxChannel::generate();
        let token = SecretString::new(channel.access_token.clone());
        platform.set_channel(channel).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().nest(PREFIX, router(platform.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let line = HttpLineApi::new(&LineApiConfig {
            api_base: format!("{base}{PREFIX}"),
            data_api_base: format!("{base}{PREFIX}"),
            ..LineApiConfig::default()
        })
        .unwrap();
        Sim {
            platform,
            line,
            token,
            _dir: dir,
        }
    }

    fn text(t: &str) -> Vec<Value> {
        vec![json!({"type": "text", "text": t})]
    }

    #[tokio::test]
    async fn bot_info_needs_the_channel_token() {
        let s = sim().await;
        let info = s.line.bot_info(&s.token).await.unwrap();
        assert_eq!(info.user_id, s.platform.channel().unwrap().bot_user_id);
        let refused = s.line.bot_info(&SecretString::new("wrong")).await;
        assert!(
            matches!(refused, Err(LineApiError::Rejected { status: 401, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn profiles_exist_for_simulated_users_only() {
        let s = sim().await;
        let user = s
            .platform
            .create_user("Mai", Some("ja"), Some(1))
            .await
            .unwrap();
        let profile = s.line.profile(&s.token, &user.id).await.unwrap().unwrap();
        assert_eq!(profile.display_name, "Mai");
        assert_eq!(profile.language.as_deref(), Some("ja"));
        assert_eq!(
            profile.picture_url.as_deref(),
            Some(user.picture_url.as_str())
        );
        let nobody = format!("U{}", "0".repeat(32));
        assert_eq!(s.line.profile(&s.token, &nobody).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_reply_token_delivers_once_then_is_invalid() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        let token = s.platform.issue_reply_token(&user.id);
        let sent = s.line.reply(&s.token, &token, &text("hi")).await.unwrap();
        assert_eq!(sent.sent_message_ids.len(), 1);
        let again = s.line.reply(&s.token, &token, &text("hi")).await;
        assert!(
            matches!(again, Err(SendError::InvalidReplyToken { .. })),
            "{again:?}"
        );
        let chat = s.platform.timeline(&user.id, 0).await.unwrap();
        assert_eq!(chat.len(), 1);
        assert_eq!(
            (chat[0].from.as_str(), chat[0].via.as_str()),
            ("account", "reply")
        );
    }

    #[tokio::test]
    async fn a_push_retried_with_its_key_is_shown_once() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        let key = uuid::Uuid::new_v4().to_string();
        let first = s
            .line
            .push(&s.token, &user.id, &text("once"), &key)
            .await
            .unwrap();
        let second = s
            .line
            .push(&s.token, &user.id, &text("once"), &key)
            .await
            .unwrap();
        assert!(!first.already_accepted && second.already_accepted);
        assert_eq!(second.request_id, first.request_id);
        assert_eq!(second.sent_message_ids, first.sent_message_ids);
        assert_eq!(s.platform.timeline(&user.id, 0).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_push_to_a_stranger_is_refused_for_good() {
        let s = sim().await;
        let stranger = format!("U{}", "1".repeat(32));
        let key = uuid::Uuid::new_v4().to_string();
        let refused = s.line.push(&s.token, &stranger, &text("x"), &key).await;
        assert!(
            matches!(refused, Err(SendError::Refused { status: 400, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn content_loading_and_read_reach_the_chat() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        s.platform
            .put_content("42", "image/png", vec![1, 2, 3])
            .await
            .unwrap();
        let content = s.line.message_content(&s.token, "42").await.unwrap();
        assert_eq!(
            content,
            omniline_domain::line::api::Content::Ready {
                bytes: vec![1, 2, 3],
                content_type: Some("image/png".into())
            }
        );
        assert!(s.line.message_content(&s.token, "43").await.is_err());

        s.line.start_loading(&s.token, &user.id, 20).await.unwrap();
        assert!(s.platform.typing_until(&user.id).is_some());
        let seq = s
            .platform
            .append(&user.id, "user", "webhook", text("hello"))
            .await
            .unwrap()[0];
        let read_token = s.platform.issue_read_token(&user.id, seq);
        s.line
            .mark_as_read_by_token(&s.token, &read_token)
            .await
            .unwrap();
        assert_eq!(s.platform.read_up_to(&user.id), Some(seq));
        // A message from the account stops the loading animation, as on LINE.
        let token = s.platform.issue_reply_token(&user.id);
        s.line.reply(&s.token, &token, &text("here")).await.unwrap();
        assert_eq!(s.platform.typing_until(&user.id), None);
    }

    #[tokio::test]
    async fn messages_line_would_refuse_are_refused() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        for bad in [
            json!({"type": "text", "text": ""}),
            json!({"type": "text", "text": "x".repeat(5001)}),
            json!({"type": "image", "originalContentUrl": "http://shop.example/a.png", "previewImageUrl": "https://shop.example/a.png"}),
            json!({"type": "image", "originalContentUrl": "https://shop.example/a.png"}),
            json!({"type": "template", "template": {}}),
            json!({"type": "location", "title": "t", "address": "a", "latitude": "35"}),
            json!({"type": "text", "text": "q", "quickReply": {"items": vec![json!({}); 14]}}),
            json!({"type": "hologram"}),
        ] {
            let key = uuid::Uuid::new_v4().to_string();
            let refused = s
                .line
                .push(&s.token, &user.id, std::slice::from_ref(&bad), &key)
                .await;
            assert!(
                matches!(refused, Err(SendError::Refused { status: 400, .. })),
                "{bad}: {refused:?}"
            );
        }
        let fine = json!({"type": "image", "originalContentUrl": "http://127.0.0.1:3000/media/a", "previewImageUrl": "https://cdn.example/a.png"});
        let key = uuid::Uuid::new_v4().to_string();
        s.line
            .push(&s.token, &user.id, &[fine], &key)
            .await
            .unwrap();
        assert_eq!(s.platform.timeline(&user.id, 0).await.unwrap().len(), 1);
    }
}
