//! The sandbox API the page calls (`/sandbox/api/...`): the simulated users' side of LINE. A
//! user's message becomes LINE's webhook body, signed with the sandbox channel's secret and POSTed
//! to the stack's real webhook route, exactly as LINE's platform would.

use super::platform::{now_ms, PlatformError, Sent, TimelineEntry, AVATARS, LANGUAGES};
use super::SandboxState;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The most a long poll waits.
const MAX_WAIT: Duration = Duration::from_secs(25);
/// The largest image a simulated user can send (decoded).
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// The largest body of a send: the image in base64 (4/3) and the JSON around it.
const MAX_BODY_BYTES: usize = MAX_IMAGE_BYTES / 3 * 4 + 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown user")]
    UnknownUser,
    #[error("unknown group")]
    UnknownGroup,
    #[error("no such content")]
    NoContent,
    #[error("the sandbox is still starting")]
    Starting,
    #[error("{0}")]
    WebhookRefused(String),
    #[error("the webhook did not answer in time; the message may have arrived")]
    WebhookTimeout,
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
}

impl From<PlatformError> for PhoneError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Invalid(m) => Self::Invalid(m),
            PlatformError::Store(m) => Self::Unavailable(m),
        }
    }
}

impl IntoResponse for PhoneError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::UnknownUser => (StatusCode::NOT_FOUND, "unknown_user"),
            Self::UnknownGroup => (StatusCode::NOT_FOUND, "unknown_group"),
            Self::NoContent => (StatusCode::NOT_FOUND, "not_found"),
            Self::Starting => (StatusCode::SERVICE_UNAVAILABLE, "sandbox_starting"),
            Self::WebhookRefused(_) => (StatusCode::BAD_GATEWAY, "webhook_refused"),
            Self::WebhookTimeout => (StatusCode::GATEWAY_TIMEOUT, "webhook_timeout"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Unavailable(m) => {
                tracing::error!("sandbox: {m}");
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
        };
        let message = match &self {
            Self::Unavailable(_) => "the sandbox's store is unavailable; try again".to_owned(),
            other => other.to_string(),
        };
        (
            status,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

type Result<T, E = PhoneError> = std::result::Result<T, E>;

pub fn router(state: SandboxState) -> Router {
    Router::new()
        .route("/sandbox/api/session", get(session))
        .route("/sandbox/api/users", get(users).post(create_user))
        .route(
            "/sandbox/api/users/{user_id}/send",
            post(send).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/sandbox/api/users/{user_id}/timeline", get(timeline))
        .route("/sandbox/api/groups", get(groups).post(create_group))
        .route(
            "/sandbox/api/groups/{group_id}/send",
            post(send_in_group).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route(
            "/sandbox/api/groups/{group_id}/timeline",
            get(group_timeline),
        )
        .route("/sandbox/api/content/{message_id}", get(content))
        .route("/sandbox/api/glance", get(super::glance::glance))
        .with_state(state)
}

async fn session(State(s): State<SandboxState>) -> Result<Response> {
    let channel = s.ready_channel()?;
    let (Some(account_id), Some(agent_id), Some(agent_token)) = (
        channel.account_id.as_deref(),
        channel.agent_id.as_deref(),
        channel.agent_token.as_deref(),
    ) else {
        return Err(PhoneError::Starting);
    };
    let avatars: Vec<String> = (0..AVATARS).map(|n| s.platform.avatar_url(n)).collect();
    Ok(Json(json!({
        "accountId": account_id,
        "accountName": super::setup::ACCOUNT_NAME,
        "callbackUrl": format!("{}/line/webhook/{account_id}", s.base_url),
        "agent": {"id": agent_id, "name": super::setup::AGENT_NAME, "token": agent_token},
        "avatars": avatars,
        "languages": LANGUAGES,
    }))
    .into_response())
}

async fn users(State(s): State<SandboxState>) -> Result<Response> {
    Ok(Json(json!({ "users": s.platform.users().await? })).into_response())
}

#[derive(Deserialize)]
struct NewUser {
    name: Option<String>,
    language: Option<String>,
    avatar: Option<u8>,
}

/// The JSON body, or a JSON error (413 over the route's limit, 422 otherwise).
fn parse<T: serde::de::DeserializeOwned>(
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<T> {
    parse_json(&body_bytes(body)?)
}

/// The body's bytes, or 413 over the route's limit (422 for another failure).
fn body_bytes(body: std::result::Result<Bytes, BytesRejection>) -> Result<Bytes> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => PhoneError::TooLarge(MAX_BODY_BYTES),
        other => PhoneError::Invalid(format!("body: {}", other.body_text())),
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| PhoneError::Invalid(format!("body: {e}")))
}

fn path_value(path: std::result::Result<Path<String>, PathRejection>) -> Result<String> {
    path.map(|Path(v)| v)
        .map_err(|e| PhoneError::Invalid(format!("path: {}", e.body_text())))
}

async fn create_user(
    State(s): State<SandboxState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let channel = s.ready_channel()?;
    let new: NewUser = parse(body)?;
    let name = new
        .name
        .ok_or_else(|| PhoneError::Invalid("name: required".into()))?;
    let user = s
        .platform
        .create_user(&name, new.language.as_deref(), new.avatar)
        .await?;
    // The user adds the account as a friend: LINE's follow event, shown in the chat too.
    let seq = s
        .platform
        .append(&user.id, "user", "webhook", vec![json!({"type": "follow"})])
        .await?
        .first()
        .copied()
        .unwrap_or_default();
    let token = s.platform.issue_reply_token(&user.id);
    let event = json!({
        "type": "follow", "mode": "active", "timestamp": now_ms(),
        "webhookEventId": event_id(), "deliveryContext": {"isRedelivery": false},
        "source": {"type": "user", "userId": user.id}, "replyToken": token,
        "follow": {"isUnblocked": false}
    });
    if let Err(e) = s.post_webhook(&channel, event).await {
        tracing::warn!("sandbox: the follow event was not accepted: {e}");
        s.platform.mark_failed(seq).await?;
    }
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

async fn groups(State(s): State<SandboxState>) -> Result<Response> {
    Ok(Json(json!({ "groups": s.platform.groups().await? })).into_response())
}

#[derive(Deserialize)]
struct NewGroup {
    name: Option<String>,
    members: Option<Vec<String>>,
}

/// A group chat of simulated users that invites the account: LINE's `join` event.
async fn create_group(
    State(s): State<SandboxState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let channel = s.ready_channel()?;
    let new: NewGroup = parse(body)?;
    let name = new
        .name
        .ok_or_else(|| PhoneError::Invalid("name: required".into()))?;
    let members = new
        .members
        .ok_or_else(|| PhoneError::Invalid("members: required".into()))?;
    let group = s.platform.create_group(&name, &members).await?;
    let seq = s
        .platform
        .append(&group.id, "user", "webhook", vec![json!({"type": "join"})])
        .await?
        .first()
        .copied()
        .unwrap_or_default();
    let event = json!({
        "type": "join", "mode": "active", "timestamp": now_ms(),
        "webhookEventId": event_id(), "deliveryContext": {"isRedelivery": false},
        "source": {"type": "group", "groupId": group.id},
        "replyToken": s.platform.issue_reply_token(&group.id),
    });
    if let Err(e) = s.post_webhook(&channel, event).await {
        tracing::warn!("sandbox: the join event was not accepted: {e}");
        s.platform.mark_failed(seq).await?;
    }
    Ok((StatusCode::CREATED, Json(group)).into_response())
}

/// A webhookEventId as LINE's: a ULID (26 Crockford base32 characters).
fn event_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let ms = now_ms() as u128;
    let random = uuid::Uuid::new_v4().as_u128() & ((1u128 << 80) - 1);
    let value = (ms << 80) | random;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum Outgoing {
    Text {
        text: String,
    },
    #[serde(rename_all = "camelCase")]
    Sticker {
        package_id: String,
        sticker_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Image {
        content_type: String,
        data_base64: String,
    },
    Location {
        title: Option<String>,
        address: Option<String>,
        latitude: f64,
        longitude: f64,
    },
    #[serde(rename_all = "camelCase")]
    Postback {
        data: String,
        display_text: Option<String>,
    },
}

fn digits(name: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PhoneError::Invalid(format!("{name}: digits")));
    }
    Ok(())
}

/// What a send says besides its message: who in a group sends it, and the message it quotes.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendExtras {
    from: Option<String>,
    quoted_message_id: Option<String>,
}

/// The chat a simulated user writes in.
enum Chat {
    /// A user's one-on-one chat with the account.
    User(String),
    /// A group chat, and the member who writes.
    Group { group_id: String, member: String },
}

impl Chat {
    fn id(&self) -> &str {
        match self {
            Chat::User(id) => id,
            Chat::Group { group_id, .. } => group_id,
        }
    }

    /// The webhook's `source`.
    fn source(&self) -> Value {
        match self {
            Chat::User(id) => json!({"type": "user", "userId": id}),
            Chat::Group { group_id, member } => {
                json!({"type": "group", "groupId": group_id, "userId": member})
            }
        }
    }
}

async fn send(
    State(s): State<SandboxState>,
    user_id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let user_id = path_value(user_id)?;
    let body = body_bytes(body)?;
    let extras: SendExtras = parse_json(&body)?;
    if extras.from.is_some() {
        return Err(PhoneError::Invalid(
            "from: only in a group chat (POST /sandbox/api/groups/{groupId}/send)".into(),
        ));
    }
    if s.platform.user(&user_id).await?.is_none() {
        return Err(PhoneError::UnknownUser);
    }
    send_in(&s, Chat::User(user_id), extras, &body).await
}

async fn send_in_group(
    State(s): State<SandboxState>,
    group_id: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let group_id = path_value(group_id)?;
    let body = body_bytes(body)?;
    let mut extras: SendExtras = parse_json(&body)?;
    let group = s
        .platform
        .group(&group_id)
        .await?
        .ok_or(PhoneError::UnknownGroup)?;
    let member = extras
        .from
        .take()
        .ok_or_else(|| PhoneError::Invalid("from: required (the member who writes)".into()))?;
    if !group.members.contains(&member) {
        return Err(PhoneError::Invalid(format!(
            "from: {member} is not a member of this group"
        )));
    }
    send_in(&s, Chat::Group { group_id, member }, extras, &body).await
}

async fn send_in(
    s: &SandboxState,
    chat: Chat,
    extras: SendExtras,
    body: &[u8],
) -> Result<Response> {
    let channel = s.ready_channel()?;
    let outgoing: Outgoing = parse_json(body)?;
    // LINE's message events carry `quotedMessageId` on a text or a sticker that quotes an
    // earlier message of the same chat.
    if let Some(quoted) = &extras.quoted_message_id {
        if !matches!(outgoing, Outgoing::Text { .. } | Outgoing::Sticker { .. }) {
            return Err(PhoneError::Invalid(
                "quotedMessageId: only a text or a sticker quotes a message".into(),
            ));
        }
        if s.platform
            .message_in_chat(chat.id(), quoted)
            .await?
            .is_none()
        {
            return Err(PhoneError::Invalid(format!(
                "quotedMessageId: no message {quoted} in this chat"
            )));
        }
    }
    let message_id = s.platform.next_message_id();
    let quote_token = uuid::Uuid::new_v4().simple().to_string();
    // The webhook's message object, and the bubble the customer's phone shows.
    let (event_type, payload, shown): (&str, Value, Value) = match outgoing {
        Outgoing::Text { text } => {
            let n = text.encode_utf16().count();
            if text.trim().is_empty() || n > 5000 {
                return Err(PhoneError::Invalid("text: 1 to 5000 characters".into()));
            }
            (
                "message",
                json!({"type": "text", "id": message_id, "quoteToken": quote_token, "text": text}),
                json!({"type": "text", "text": text}),
            )
        }
        Outgoing::Sticker {
            package_id,
            sticker_id,
        } => {
            digits("packageId", &package_id)?;
            digits("stickerId", &sticker_id)?;
            (
                "message",
                json!({"type": "sticker", "id": message_id, "quoteToken": quote_token,
                       "packageId": package_id, "stickerId": sticker_id,
                       "stickerResourceType": "STATIC", "keywords": []}),
                json!({"type": "sticker", "packageId": package_id, "stickerId": sticker_id}),
            )
        }
        Outgoing::Image {
            content_type,
            data_base64,
        } => {
            if !["image/png", "image/jpeg", "image/gif", "image/webp"]
                .contains(&content_type.as_str())
            {
                return Err(PhoneError::Invalid(
                    "contentType: image/png, image/jpeg, image/gif or image/webp".into(),
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data_base64.trim())
                .map_err(|_| PhoneError::Invalid("dataBase64: not base64".into()))?;
            if bytes.is_empty() || bytes.len() > MAX_IMAGE_BYTES {
                return Err(PhoneError::Invalid("dataBase64: 1 byte to 5 MB".into()));
            }
            s.platform
                .put_content(&message_id, &content_type, bytes)
                .await?;
            (
                "message",
                json!({"type": "image", "id": message_id, "quoteToken": quote_token,
                       "contentProvider": {"type": "line"}}),
                json!({"type": "image", "contentUrl": format!("/sandbox/api/content/{message_id}")}),
            )
        }
        Outgoing::Location {
            title,
            address,
            latitude,
            longitude,
        } => {
            if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
                return Err(PhoneError::Invalid(
                    "latitude/longitude: out of range".into(),
                ));
            }
            let title = title.unwrap_or_else(|| "Location".into());
            let address = address.unwrap_or_default();
            // LINE's limits for a location message.
            if title.chars().count() > 100 || address.chars().count() > 100 {
                return Err(PhoneError::Invalid(
                    "title/address: at most 100 characters".into(),
                ));
            }
            (
                "message",
                json!({"type": "location", "id": message_id, "title": title, "address": address,
                       "latitude": latitude, "longitude": longitude}),
                json!({"type": "location", "title": title, "address": address,
                       "latitude": latitude, "longitude": longitude}),
            )
        }
        Outgoing::Postback { data, display_text } => {
            if data.is_empty() || data.chars().count() > 300 {
                return Err(PhoneError::Invalid("data: 1 to 300 characters".into()));
            }
            if display_text
                .as_ref()
                .is_some_and(|t| t.trim().is_empty() || t.chars().count() > 300)
            {
                return Err(PhoneError::Invalid(
                    "displayText: 1 to 300 characters".into(),
                ));
            }
            let shown = match &display_text {
                Some(t) => json!({"type": "text", "text": t}),
                None => json!({"type": "postback", "data": data}),
            };
            ("postback", json!({"data": data}), shown)
        }
    };
    let (mut payload, mut shown) = (payload, shown);
    if let Some(quoted) = &extras.quoted_message_id {
        payload["quotedMessageId"] = json!(quoted);
        shown["quotedMessageId"] = json!(quoted);
    }
    let member = match &chat {
        Chat::User(_) => None,
        Chat::Group { member, .. } => Some(member.as_str()),
    };
    let seq = s
        .platform
        .append_sent(Sent {
            chat: chat.id(),
            member,
            message_id: (event_type == "message").then_some(message_id.as_str()),
            shown,
        })
        .await?;
    let mut event = json!({
        "type": event_type, "mode": "active", "timestamp": now_ms(),
        "webhookEventId": event_id(), "deliveryContext": {"isRedelivery": false},
        "source": chat.source(),
        "replyToken": s.platform.issue_reply_token(chat.id()),
    });
    if event_type == "message" {
        event["message"] = payload;
        event["message"]["markAsReadToken"] =
            Value::String(s.platform.issue_read_token(chat.id(), seq));
    } else {
        event["postback"] = payload;
    }
    let status = match s.post_webhook(&channel, event).await {
        Ok(status) => status,
        // No answer in time: the stack may have queued it, so the bubble stays as sent and the
        // page must not offer to send it again (that could double the message).
        Err(PhoneError::WebhookTimeout) => return Err(PhoneError::WebhookTimeout),
        Err(e) => {
            s.platform.mark_failed(seq).await?;
            return Err(e);
        }
    };
    let entry = s.platform.entry(seq).await?;
    Ok(Json(json!({"entry": entry, "webhook": {"status": status}})).into_response())
}

#[derive(Deserialize)]
struct TimelineQuery {
    after: Option<String>,
    wait: Option<String>,
    /// The `typingUntil` the page shows (0 for none): an answer differing from it is news.
    typing: Option<String>,
    /// The `readUpTo` the page shows (0 for none).
    read: Option<String>,
}

async fn timeline(
    State(s): State<SandboxState>,
    user_id: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Response> {
    let user_id = path_value(user_id)?;
    chat_timeline(&s, Chat::User(user_id), q).await
}

async fn group_timeline(
    State(s): State<SandboxState>,
    group_id: std::result::Result<Path<String>, PathRejection>,
    q: std::result::Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Response> {
    let group_id = path_value(group_id)?;
    let chat = Chat::Group {
        group_id,
        member: String::new(),
    };
    chat_timeline(&s, chat, q).await
}

/// A chat's bubbles after `after` (long polled), with its typing and read marks.
async fn chat_timeline(
    s: &SandboxState,
    chat: Chat,
    q: std::result::Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Response> {
    let Query(q) = q.map_err(|e| PhoneError::Invalid(format!("query: {}", e.body_text())))?;
    let number = |name: &str, v: Option<&str>| -> Result<i64> {
        match v.filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| PhoneError::Invalid(format!("{name}: a whole number ≥ 0"))),
        }
    };
    let after = number("after", q.after.as_deref())?;
    let typing_shown = number("typing", q.typing.as_deref())?;
    let read_shown = number("read", q.read.as_deref())?;
    let wait = Duration::from_secs(number("wait", q.wait.as_deref())? as u64).min(MAX_WAIT);
    // The query first, then the chat: a bad query is a 422 whoever's chat it names.
    match &chat {
        Chat::User(id) if s.platform.user(id).await?.is_none() => {
            return Err(PhoneError::UnknownUser)
        }
        Chat::Group { group_id, .. } if s.platform.group(group_id).await?.is_none() => {
            return Err(PhoneError::UnknownGroup)
        }
        _ => {}
    }
    let chat_id = chat.id();
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = s.platform.subscribe();
    // What the page shows besides the bubbles (as it says, else as it is now): a change there
    // answers the poll too, so the typing dots and "Read" are not missed between two polls.
    let typing0 = match q.typing {
        Some(_) => typing_shown,
        None => s.platform.typing_until(chat_id).unwrap_or(0),
    };
    let read0 = match q.read {
        Some(_) => read_shown,
        None => s.platform.read_up_to(chat_id).unwrap_or(0),
    };
    let entries: Vec<TimelineEntry> = loop {
        changes.borrow_and_update();
        let entries = s.platform.timeline(chat_id, after).await?;
        let moved = s.platform.typing_until(chat_id).unwrap_or(0) != typing0
            || s.platform.read_up_to(chat_id).unwrap_or(0) != read0;
        if !entries.is_empty() || moved || tokio::time::Instant::now() >= deadline {
            break entries;
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break Vec::new();
        }
    };
    Ok(Json(json!({
        "entries": entries,
        "typingUntil": s.platform.typing_until(chat_id),
        "readUpTo": s.platform.read_up_to(chat_id),
    }))
    .into_response())
}

async fn content(
    State(s): State<SandboxState>,
    message_id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let message_id = path_value(message_id)?;
    let (content_type, bytes) = s
        .platform
        .content(&message_id)
        .await?
        .ok_or(PhoneError::NoContent)?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Refuses a request whose `Host` is not this machine: the sandbox hands out its agent's token
/// and acts for its users, so it must not be reachable through a tunnel or a rebinding DNS name.
pub fn is_local_host(headers: &HeaderMap) -> bool {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_authority)
}

/// `host[:port]` naming this machine: `localhost` or a loopback address, nothing else.
fn is_loopback_authority(host: &str) -> bool {
    let port_ok = |port: &str| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let name = match host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`, nothing else after the bracket.
        Some(rest) => match rest.split_once(']') {
            Some((name, "")) => name,
            Some((name, tail)) if tail.strip_prefix(':').is_some_and(port_ok) => name,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port_ok(port) => name,
            Some(_) => return false,
            None => host,
        },
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers a proxy, tunnel, load balancer or CDN adds to say whom it forwards for: any of them
/// (or any `X-Forwarded-*`) marks a request that did not start on this machine.
pub const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "via",
    "x-forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-prefix",
    "x-original-forwarded-for",
    "x-original-host",
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "cf-connecting-ipv6",
    "fastly-client-ip",
    "x-proxyuser-ip",
    "x-envoy-external-address",
    "x-azure-clientip",
    "x-azure-socketip",
    "x-appengine-user-ip",
    "cdn-loop",
];

/// Whether the request came through a proxy or tunnel (which may have rewritten `Host`, and
/// whose local client connects from loopback): a forwarding header is present.
pub fn is_proxied(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| {
        let name = name.as_str(); // lower case, as `HeaderName` keeps it
        FORWARDING_HEADERS.contains(&name) || name.starts_with("x-forwarded-")
    })
}

/// Whether the connection comes from this machine (`127.0.0.0/8`, `::1`, or `::ffff:127.x`).
pub fn is_loopback_peer(peer: std::net::SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

/// A write the sandbox page made: JSON, and from a loopback origin when the browser names one.
pub fn is_own_page_write(headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(is_loopback_authority),
    };
    json && origin_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_look_like_ulids() {
        let id = event_id();
        assert_eq!(id.len(), 26);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, event_id());
    }

    #[test]
    fn only_loopback_hosts_are_local() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h.parse().unwrap());
            is_local_host(&m)
        };
        assert!(host("127.0.0.1:3000"));
        assert!(host("localhost:3000"));
        assert!(host("localhost"));
        assert!(host("[::1]:3000"));
        assert!(!host("example.ngrok.app"));
        assert!(!host("127.0.0.1.evil.example:80"));
        assert!(!is_local_host(&HeaderMap::new()));
        assert!(!host("[::1]x"));
        assert!(!host("localhost.example.com:3000"));
    }

    #[test]
    fn only_json_from_a_loopback_origin_is_the_pages_write() {
        let write = |content_type: Option<&str>, origin: Option<&str>| {
            let mut m = HeaderMap::new();
            if let Some(t) = content_type {
                m.insert(header::CONTENT_TYPE, t.parse().unwrap());
            }
            if let Some(o) = origin {
                m.insert(header::ORIGIN, o.parse().unwrap());
            }
            is_own_page_write(&m)
        };
        assert!(write(Some("application/json"), None));
        assert!(write(
            Some("application/json; charset=utf-8"),
            Some("http://127.0.0.1:3000")
        ));
        assert!(write(
            Some("application/json"),
            Some("http://localhost:3000")
        ));
        assert!(!write(Some("text/plain"), None));
        assert!(!write(None, None));
        assert!(!write(
            Some("application/x-www-form-urlencoded"),
            Some("http://127.0.0.1:3000")
        ));
        assert!(!write(
            Some("application/json"),
            Some("https://evil.example")
        ));
        assert!(!write(Some("application/json"), Some("null")));
    }

    #[test]
    fn proxy_headers_mark_a_tunnel() {
        let mut m = HeaderMap::new();
        assert!(!is_proxied(&m));
        m.insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert!(is_proxied(&m));
        for name in FORWARDING_HEADERS.iter().copied().chain([
            "X-Forwarded-Whatever",
            "CF-Connecting-IP",
            "Via",
        ]) {
            let mut m = HeaderMap::new();
            m.insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "1.1 proxy".parse().unwrap(),
            );
            assert!(is_proxied(&m), "{name}");
        }
        let mut m = HeaderMap::new();
        m.insert(header::HOST, "127.0.0.1:3000".parse().unwrap());
        m.insert(header::USER_AGENT, "Mozilla/5.0".parse().unwrap());
        m.insert(header::ORIGIN, "http://127.0.0.1:3000".parse().unwrap());
        assert!(!is_proxied(&m));
    }

    #[test]
    fn only_loopback_peers_are_local() {
        let peer = |s: &str| is_loopback_peer(s.parse().unwrap());
        assert!(peer("127.0.0.1:50000"));
        assert!(peer("127.0.0.2:50000"));
        assert!(peer("[::1]:50000"));
        assert!(peer("[::ffff:127.0.0.1]:50000"));
        assert!(!peer("192.168.1.10:50000"));
        assert!(!peer("203.0.113.9:50000"));
        assert!(!peer("0.0.0.0:50000"));
        assert!(!peer("[::ffff:203.0.113.9]:50000"));
        assert!(!peer("[2001:db8::1]:50000"));
    }
}
