//! `/agent/v1/conversations…`: what an agent sees and does in a conversation.

use crate::{AgentState, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use omniline_app::router::agent_ops::TransferTarget;
use omniline_domain::agents::Agent;
use omniline_domain::contacts::{contact_kind, Contact};
use omniline_domain::conversation::{
    Conversation, ConversationFilter, ConversationState, Customer, SourceType, TranscriptEntry,
};
use omniline_domain::input::{Fields, Query};
use omniline_domain::media_links::{link_expiry, media_link, DEFAULT_LINK_LIFETIME};
use omniline_domain::queues::{Queue, QUEUE_KIND};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most conversations one list returns.
const LIST_LIMIT: usize = 100;
/// Transcript page size bounds.
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 200;

pub(crate) fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFound("conversation"))
}

/// Whether the agent may see the conversation: it holds it, or it is in one of its queues.
pub(crate) fn may_see(agent: &Agent, c: &Conversation) -> bool {
    c.agent_id.as_deref() == Some(agent.id.as_str())
        || c.queue_id
            .as_ref()
            .is_some_and(|q| agent.queues.contains(q))
}

/// The conversation, 404 when unknown, 403 when the agent may not see it.
pub(crate) async fn visible(
    state: &AgentState,
    agent: &Agent,
    id: &str,
) -> Result<Conversation, ApiError> {
    let c = state
        .router
        .deps()
        .conversations
        .conversation(id)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    if may_see(agent, &c) {
        Ok(c)
    } else {
        Err(ApiError::Forbidden(
            "the conversation is neither in one of your queues nor assigned to you".into(),
        ))
    }
}

fn state_name(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

pub(crate) fn conversation_json(c: &Conversation) -> Value {
    json!({
        "id": c.id,
        "accountId": c.account_id,
        "status": state_name(c.state),
        "sourceType": c.source_type.as_str(),
        "sourceId": c.source_id,
        "workstreamId": c.workstream_id,
        "queueId": c.queue_id,
        "agentId": c.agent_id,
        "botId": c.bot_id,
        "priority": c.priority,
        "skills": c.skills,
        "ruleId": c.rule_id,
        "openedAt": c.opened_at,
        "lastActivityAt": c.last_activity_at,
        "closedAt": c.closed_at,
        "closeReason": c.close_reason,
        "survey": c.survey,
    })
}

pub(crate) fn contact_json(c: &Contact) -> Value {
    json!({
        "id": c.id, "accountId": c.account_id, "name": c.name, "email": c.email, "phone": c.phone, "company": c.company,
        "createdAt": c.created_at, "updatedAt": c.updated_at,
    })
}

/// The contact `id` of `account_id` (contacts are per account).
pub(crate) async fn contact(
    state: &AgentState,
    account_id: &str,
    id: &str,
) -> Result<Option<Contact>, ApiError> {
    let doc = state
        .router
        .deps()
        .config
        .get_doc(&contact_kind(account_id), id)
        .await?;
    Ok(doc.and_then(|d| serde_json::from_str(&d.doc).ok()))
}

/// The customer of a 1:1 conversation (the source user), if stored.
pub(crate) async fn customer_of(
    state: &AgentState,
    c: &Conversation,
) -> Result<Option<Customer>, ApiError> {
    if c.source_type != SourceType::User {
        return Ok(None);
    }
    Ok(state
        .router
        .deps()
        .conversations
        .customer(&c.account_id, &c.source_id)
        .await?)
}

/// The customer's details as agents see them: profile, linked contact.
pub(crate) async fn customer_json(
    state: &AgentState,
    customer: Option<&Customer>,
) -> Result<Value, ApiError> {
    let Some(customer) = customer else {
        return Ok(Value::Null);
    };
    let contact = match &customer.linked_contact_id {
        Some(id) => contact(state, &customer.account_id, id)
            .await?
            .map(|c| contact_json(&c)),
        None => None,
    };
    Ok(json!({
        "userId": customer.user_id,
        "displayName": customer.display_name,
        "pictureUrl": customer.picture_url,
        "language": customer.language,
        "contact": contact,
    }))
}

pub(crate) async fn queue_json(state: &AgentState, id: Option<&str>) -> Result<Value, ApiError> {
    let Some(id) = id else {
        return Ok(Value::Null);
    };
    let name = state
        .router
        .deps()
        .config
        .get_doc(QUEUE_KIND, id)
        .await?
        .and_then(|d| serde_json::from_str::<Queue>(&d.doc).ok())
        .map(|q| q.name);
    Ok(json!({ "id": id, "name": name }))
}

/// `GET /agent/v1/conversations?status=waiting|active|closed`: the agent's queues' and its own.
pub(crate) async fn list(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["status"])?;
    let status = match query.get("status") {
        None => None,
        Some("waiting") => Some(ConversationState::Waiting),
        Some("active") => Some(ConversationState::Active),
        Some("closed") => Some(ConversationState::Closed),
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "status must be waiting, active or closed",
            ))
        }
    };
    let filter = ConversationFilter {
        state: status,
        queue_ids: agent.queues.clone(),
        agent_id: Some(agent.id.clone()),
        limit: LIST_LIMIT,
    };
    let conversations = state
        .router
        .deps()
        .conversations
        .list_conversations(&filter)
        .await?;
    let mut items = Vec::with_capacity(conversations.len());
    for c in &conversations {
        let customer = customer_of(&state, c).await?;
        let mut item = conversation_json(c);
        item["customer"] = customer_json(&state, customer.as_ref()).await?;
        items.push(item);
    }
    Ok(Json(json!({ "conversations": items })).into_response())
}

/// `GET /agent/v1/conversations/{id}`: the conversation, the customer (with the linked contact
/// and their previous conversations), the queue and the workstream.
pub(crate) async fn detail(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let c = visible(&state, &agent, &id).await?;
    let deps = state.router.deps();
    let customer = customer_of(&state, &c).await?;
    let mut customer_value = customer_json(&state, customer.as_ref()).await?;
    if !customer_value.is_null() {
        let mut previous: Vec<&Conversation> = Vec::new();
        let all = deps
            .conversations
            .conversations_of_source(&c.account_id, &c.source_id)
            .await?;
        previous.extend(
            all.iter()
                .filter(|o| o.id != c.id && o.opened_at <= c.opened_at),
        );
        customer_value["previousConversations"] = json!({
            "count": previous.len(),
            "items": previous.iter().map(|o| json!({
                "id": o.id, "openedAt": o.opened_at, "closedAt": o.closed_at, "status": state_name(o.state),
            })).collect::<Vec<_>>(),
        });
    }
    let workstream = deps
        .workstreams
        .workstream_for_account(&c.account_id)
        .await?;
    Ok(Json(json!({
        "conversation": conversation_json(&c),
        "customer": customer_value,
        "queue": queue_json(&state, c.queue_id.as_deref()).await?,
        "workstream": workstream.map(|w| json!({
            "id": w.id, "name": w.name,
            "attachments": {"agentCanSend": w.attachments.agent_can_send},
        })),
    }))
    .into_response())
}

/// A signed link to a stored object, when the stack signs media.
fn signed(state: &AgentState, key: &str) -> Option<String> {
    let signer = state.media.as_ref()?;
    let expires = link_expiry((state.router.deps().clock)() / 1000, DEFAULT_LINK_LIFETIME);
    // Read by the authentication layer before any handler runs.
    let secret = signer.signing_secret.loaded()?;
    media_link(&signer.base_url, key, expires, &secret).ok()
}

/// One transcript line as agents see it.
fn entry_json(
    state: &AgentState,
    entry: &TranscriptEntry,
    deliveries: &HashMap<String, omniline_domain::delivery::Delivery>,
) -> Value {
    let mut v = json!({
        "id": entry.event_id,
        "at": entry.timestamp,
        "type": entry.event_type,
        "retracted": entry.retracted,
    });
    if entry.event_type == "agentMessage" {
        v["direction"] = json!("out");
        v["agentId"] = entry.event["agentId"].clone();
        v["agentName"] = entry.event["agentName"].clone();
        v["messages"] = entry.event["messages"].clone();
        let message_id = entry.event["messageId"].as_str().unwrap_or(&entry.event_id);
        v["delivery"] = match deliveries.get(message_id) {
            Some(d) => json!({"status": d.status, "error": d.error}),
            None => json!({"status": "queued"}),
        };
        return v;
    }
    v["direction"] = json!("in");
    v["senderUserId"] = json!(entry.sender_user_id);
    if entry.retracted {
        return v;
    }
    if let Some(message) = entry.event.get("message") {
        v["message"] = message.clone();
    }
    if let Some(postback) = entry.event.get("postback") {
        v["postback"] = postback.clone();
    }
    if let Some(key) = entry.event["omnilineMedia"]["key"].as_str() {
        v["media"] = json!({
            "status": entry.event["omnilineMedia"]["status"],
            "contentType": entry.event["omnilineMedia"]["contentType"],
            "url": signed(state, key),
        });
    }
    v
}

/// An automated or bot message as a transcript line (`automatedMessage` / `botMessage`, out).
fn sent_content_json(
    delivery: &omniline_domain::delivery::Delivery,
    content: &omniline_domain::delivery::DeliveredContent,
) -> Value {
    let kind = match content.origin {
        omniline_domain::outbound::Origin::Bot => "botMessage",
        _ => "automatedMessage",
    };
    json!({
        "id": delivery.id,
        "at": content.queued_at,
        "type": kind,
        "retracted": false,
        "direction": "out",
        "trigger": content.trigger,
        "messages": content.messages,
        "delivery": {"status": delivery.status, "error": delivery.error},
    })
}

/// `GET …/{id}/messages?before=&limit=`: the transcript in timestamp order (the page before
/// `before`, epoch ms), with outbound messages' delivery status.
pub(crate) async fn messages(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let query = Query::parse(query.as_deref(), &["before", "limit"])?;
    let before = query
        .get("before")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::invalid("before", "before must be a time in epoch milliseconds")
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => PAGE_DEFAULT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=PAGE_MAX).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", format!("limit must be 1 to {PAGE_MAX}")))?,
    };
    let c = visible(&state, &agent, &id).await?;
    let deps = state.router.deps();
    let transcript = deps.conversations.transcript(&c.id).await?;
    let deliveries: HashMap<String, omniline_domain::delivery::Delivery> = state
        .deliveries
        .deliveries_for_conversation(&c.id)
        .await?
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    // The customer's events and the agents' messages (the transcript), and what the stack sent
    // on its own — greetings, the survey, bot answers — from their delivery records: one
    // timeline, in time order.
    let mut lines: Vec<(i64, &str, Value)> = transcript
        .iter()
        .map(|e| {
            (
                e.timestamp,
                e.event_id.as_str(),
                entry_json(&state, e, &deliveries),
            )
        })
        .collect();
    lines.extend(deliveries.values().filter_map(|d| {
        let content = d.content.as_ref()?;
        Some((
            content.queued_at,
            d.id.as_str(),
            sent_content_json(d, content),
        ))
    }));
    lines.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let eligible: Vec<(i64, Value)> = lines
        .into_iter()
        .filter(|(at, _, _)| before.is_none_or(|b| *at < b))
        .map(|(at, _, v)| (at, v))
        .collect();
    let start = page_start(&eligible, |e| e.0, limit);
    let page = &eligible[start..];
    let next_before = (start > 0).then(|| page.first().map(|e| e.0)).flatten();
    let items: Vec<Value> = page.iter().map(|(_, v)| v.clone()).collect();
    Ok(Json(json!({ "messages": items, "nextBefore": next_before })).into_response())
}

/// Where the last page of `lines` (in time order) starts: the last `limit` lines, and the lines
/// before them that share the first one's millisecond. The next page is asked for with
/// `before` = that millisecond, so a tie cut by the page boundary would never be seen.
fn page_start<T>(lines: &[T], at: impl Fn(&T) -> i64, limit: usize) -> usize {
    let mut start = lines.len().saturating_sub(limit);
    while start > 0 && start < lines.len() && at(&lines[start - 1]) == at(&lines[start]) {
        start -= 1;
    }
    start
}

/// `url` if it is an https URL with a host (LINE fetches media over https only; anything else,
/// `javascript:` included, is refused naming `field`).
fn https_url(field: &str, url: String) -> Result<String, ApiError> {
    let host_ok = url
        .strip_prefix("https://")
        .and_then(|rest| rest.split(['/', '?', '#']).next())
        .is_some_and(|host| !host.is_empty() && !host.contains(char::is_whitespace));
    if host_ok && !url.chars().any(char::is_control) {
        Ok(url)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be an https URL"),
        ))
    }
}

/// Whether `media_id` is an upload of `agent_id` (`agent-media/{agentId}/{file}`, as
/// [`upload`] names them).
fn is_own_upload(media_id: &str, agent_id: &str) -> bool {
    media_id
        .strip_prefix("agent-media/")
        .and_then(|rest| rest.strip_prefix(agent_id))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|file| {
            !file.is_empty()
                && file.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
                && !file.starts_with('.')
        })
}

/// The LINE message objects of an agent's reply, and whether it is an attachment.
fn reply_messages(
    state: &AgentState,
    agent: &Agent,
    body: &[u8],
) -> Result<(Vec<Value>, bool), ApiError> {
    let mut f = Fields::parse(body)?;
    let kind = f
        .one_of(
            "type",
            &["text", "sticker", "location", "image", "video", "audio"],
        )?
        .ok_or_else(|| f.missing("type"))?;
    let media_url = |f: &mut Fields, url_field: &str| -> Result<String, ApiError> {
        if let Some(media_id) = f.text("mediaId", 1, 512)? {
            // An upload is its uploader's: another agent's mediaId is refused like any other.
            if !is_own_upload(&media_id, &agent.id) {
                return Err(ApiError::invalid(
                    "mediaId",
                    "mediaId must come from your own POST /agent/v1/media",
                ));
            }
            return signed(state, &media_id)
                .ok_or_else(|| ApiError::invalid("mediaId", "this stack cannot sign media links"));
        }
        let url = f
            .text(url_field, 9, 2000)?
            .ok_or_else(|| f.missing(url_field))?;
        https_url(url_field, url)
    };
    let message = match kind.as_str() {
        "text" => {
            let text = f.text("text", 1, 5000)?.ok_or_else(|| f.missing("text"))?;
            json!({"type": "text", "text": text})
        }
        "sticker" => {
            let package = f
                .text("packageId", 1, 20)?
                .ok_or_else(|| f.missing("packageId"))?;
            let sticker = f
                .text("stickerId", 1, 20)?
                .ok_or_else(|| f.missing("stickerId"))?;
            json!({"type": "sticker", "packageId": package, "stickerId": sticker})
        }
        "location" => {
            let title = f.text("title", 1, 100)?.ok_or_else(|| f.missing("title"))?;
            let address = f
                .text("address", 1, 100)?
                .ok_or_else(|| f.missing("address"))?;
            let coordinate = |f: &mut Fields, name: &str, bound: f64| -> Result<f64, ApiError> {
                match f.take(name) {
                    Some(Value::Number(n)) => {
                        n.as_f64().filter(|v| v.abs() <= bound).ok_or_else(|| {
                            ApiError::invalid(name, format!("{name} must be within ±{bound}"))
                        })
                    }
                    None | Some(Value::Null) => Err(f.missing(name).into()),
                    Some(_) => Err(ApiError::invalid(name, format!("{name} must be a number"))),
                }
            };
            let latitude = coordinate(&mut f, "latitude", 90.0)?;
            let longitude = coordinate(&mut f, "longitude", 180.0)?;
            json!({"type": "location", "title": title, "address": address, "latitude": latitude, "longitude": longitude})
        }
        "image" => {
            let url = media_url(&mut f, "originalContentUrl")?;
            let preview = match f.text("previewImageUrl", 9, 2000)? {
                Some(preview) => https_url("previewImageUrl", preview)?,
                None => url.clone(),
            };
            json!({"type": "image", "originalContentUrl": url, "previewImageUrl": preview})
        }
        "video" => {
            let url = media_url(&mut f, "originalContentUrl")?;
            let preview = f
                .text("previewImageUrl", 9, 2000)?
                .ok_or_else(|| f.missing("previewImageUrl"))?;
            let preview = https_url("previewImageUrl", preview)?;
            json!({"type": "video", "originalContentUrl": url, "previewImageUrl": preview})
        }
        _ => {
            let url = media_url(&mut f, "originalContentUrl")?;
            let duration = f
                .integer("duration", 1, 3_600_000)?
                .ok_or_else(|| f.missing("duration"))?;
            json!({"type": "audio", "originalContentUrl": url, "duration": duration})
        }
    };
    f.finish()?;
    let attachment = matches!(kind.as_str(), "image" | "video" | "audio");
    Ok((vec![message], attachment))
}

/// `POST …/{id}/messages`: queues the agent's reply; 202 with its id. An `Idempotency-Key`
/// header makes a retried request queue nothing new.
pub(crate) async fn send(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let (messages, attachment) = reply_messages(&state, &agent, &body)?;
    let c = visible(&state, &agent, &id).await?;
    if attachment {
        let ws = state
            .router
            .deps()
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        if ws.is_some_and(|w| !w.attachments.agent_can_send) {
            return Err(ApiError::Forbidden(
                "this workstream does not let agents send attachments (attachments.agentCanSend is off)".into(),
            ));
        }
    }
    let key = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        Some(k)
            if !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            k.to_owned()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 64 characters of [A-Za-z0-9_-]",
            ))
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let message_id = state
        .router
        .send_agent_message(&c.id, &agent, messages, &key)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": message_id, "status": "queued" })),
    )
        .into_response())
}

/// `POST /agent/v1/media`: stores an image, video or audio file for a reply (body: the bytes,
/// `Content-Type` image/jpeg, image/png, video/mp4 or audio/m4a) → `{"mediaId", "url"}`.
pub(crate) async fn upload(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ext = match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "video/mp4" => "mp4",
        "audio/m4a" | "audio/x-m4a" | "audio/mp4" => "m4a",
        _ => {
            return Err(ApiError::invalid(
                "Content-Type",
                "Content-Type must be image/jpeg, image/png, video/mp4 or audio/m4a",
            ))
        }
    };
    if body.is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the body must be the file's bytes",
        ));
    }
    if state.media.is_none() {
        return Err(ApiError::Forbidden(
            "this stack does not store agent media".into(),
        ));
    }
    let key = format!(
        "agent-media/{}/{}.{ext}",
        agent.id,
        uuid::Uuid::new_v4().simple()
    );
    state
        .router
        .deps()
        .media
        .put(&key, body.to_vec(), Some(content_type))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "mediaId": key, "url": signed(&state, &key) })),
    )
        .into_response())
}

fn empty_body(body: &[u8]) -> Result<(), ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        Fields::parse(body)?.finish()?;
    }
    Ok(())
}

pub(crate) async fn pick(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    empty_body(&body)?;
    let c = visible(&state, &agent, &id).await?;
    let picked = state.router.pick(&c.id, &agent).await?;
    Ok(Json(conversation_json(&picked)).into_response())
}

/// The LINE chat id and the account's token, for typing and read.
async fn chat(
    state: &AgentState,
    c: &Conversation,
) -> Result<omniline_domain::secret::SecretString, ApiError> {
    if c.state == ConversationState::Closed {
        return Err(ApiError::Conflict("the conversation is closed".into()));
    }
    state
        .router
        .deps()
        .tokens
        .token(&c.account_id)
        .await
        .map_err(|e| ApiError::Line(e.to_string()))
}

/// A conversation the agent sees, in a 1:1 chat (else 422 with `why`), open, and the account's
/// token: what typing and read need.
async fn one_to_one_chat(
    state: &AgentState,
    agent: &Agent,
    id: &str,
    why: &str,
) -> Result<(Conversation, omniline_domain::secret::SecretString), ApiError> {
    let c = visible(state, agent, id).await?;
    if c.source_type != SourceType::User {
        return Err(ApiError::Unprocessable {
            field: "conversation".into(),
            message: why.into(),
        });
    }
    let token = chat(state, &c).await?;
    Ok((c, token))
}

/// `POST …/{id}/typing`: LINE's loading animation in the customer's chat (1:1 chats only).
pub(crate) async fn typing(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let seconds = if body.iter().all(u8::is_ascii_whitespace) {
        20
    } else {
        let mut f = Fields::parse(&body)?;
        let s = f.integer("seconds", 5, 60)?.unwrap_or(20);
        f.finish()?;
        // LINE takes multiples of 5.
        (s / 5 * 5) as u32
    };
    let (c, token) = one_to_one_chat(
        &state,
        &agent,
        &id,
        "LINE shows the loading animation in 1:1 chats only",
    )
    .await?;
    state
        .router
        .deps()
        .line
        .start_loading(&token, &c.source_id, seconds)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST …/{id}/read`: marks the customer's messages as read.
pub(crate) async fn read(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    empty_body(&body)?;
    let (c, token) =
        one_to_one_chat(&state, &agent, &id, "read receipts exist in 1:1 chats only").await?;
    state
        .router
        .deps()
        .line
        .mark_as_read(&token, &c.source_id)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST …/{id}/transfer` `{"queueId"}` or `{"agentId"}`.
pub(crate) async fn transfer(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut f = Fields::parse(&body)?;
    let queue = f.text("queueId", 1, 100)?;
    let to_agent = f.text("agentId", 1, 100)?;
    f.finish()?;
    let target = match (queue, to_agent) {
        (Some(q), None) => {
            let exists = state
                .router
                .deps()
                .config
                .get_doc(QUEUE_KIND, &q)
                .await?
                .is_some();
            if !exists {
                return Err(ApiError::Unprocessable {
                    field: "queueId".into(),
                    message: format!("there is no queue {q:?}"),
                });
            }
            TransferTarget::Queue(q)
        }
        (None, Some(a)) => TransferTarget::Agent(a),
        _ => {
            return Err(ApiError::invalid(
                "queueId",
                "give exactly one of queueId or agentId",
            ))
        }
    };
    let c = visible(&state, &agent, &id).await?;
    let moved = state.router.transfer(&c.id, &agent, target).await?;
    Ok(Json(conversation_json(&moved)).into_response())
}

/// `POST …/{id}/close`: closes; the "agent ended" message and the survey go to the customer.
pub(crate) async fn close(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    empty_body(&body)?;
    let c = visible(&state, &agent, &id).await?;
    let closed = state.router.close_by_agent(&c.id, &agent).await?;
    Ok(Json(conversation_json(&closed)).into_response())
}

/// `GET …/{id}/survey`: the survey sent at close and its answer.
pub(crate) async fn survey(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let c = visible(&state, &agent, &id).await?;
    let Some(survey) = &c.survey else {
        return Err(ApiError::NotFound("survey"));
    };
    Ok(Json(json!({
        "conversationId": c.id,
        "sentAt": survey.sent_at,
        "scale": survey.scale,
        "score": survey.score,
        "answeredAt": survey.answered_at,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::page_start;

    #[test]
    fn a_page_never_cuts_a_millisecond_in_two() {
        let at = |t: &i64| *t;
        // The last 2 of [1, 2, 2, 3]: 2 and 3, and the other 2 with them.
        assert_eq!(page_start(&[1, 2, 2, 3], at, 2), 1);
        assert_eq!(page_start(&[1, 2, 3, 4], at, 2), 2);
        assert_eq!(page_start(&[5, 5, 5, 5], at, 2), 0);
        assert_eq!(page_start(&[1, 2], at, 5), 0);
        assert_eq!(page_start::<i64>(&[], at, 5), 0);
        // Paging with `before` = the page's first millisecond sees every line once.
        let lines = [1, 1, 2, 3, 3, 3, 4, 5, 5];
        let mut seen = Vec::new();
        let mut before = i64::MAX;
        loop {
            let eligible: Vec<i64> = lines.iter().copied().filter(|t| *t < before).collect();
            let start = page_start(&eligible, at, 2);
            seen.splice(0..0, eligible[start..].iter().copied());
            if start == 0 {
                break;
            }
            before = eligible[start];
        }
        assert_eq!(seen, lines);
    }
}
