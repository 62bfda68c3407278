//! `/agent/v1/conversations…`: what an agent sees and does in a conversation.

use crate::{AgentState, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use omniline_app::agent::conversations::{
    Assigned, CustomerView, ListView, QueueRef, TimelineLine, LIST_LIMIT,
};
use omniline_app::agent::AgentError;
use omniline_app::router::agent_ops::TransferTarget;
use omniline_domain::agents::Agent;
use omniline_domain::clock::parse_rfc3339_millis;
use omniline_domain::contacts::Contact;
use omniline_domain::conversation::{Conversation, ConversationState, ListCursor, TranscriptEntry};
use omniline_domain::delivery::{DeliveredContent, Delivery};
use omniline_domain::input::{Fields, Query};
use omniline_domain::line::messages::{is_quote_token, MAX_QUOTE_TOKEN_LENGTH, QUOTING_TYPES};
use omniline_domain::line::stickers::sticker_view;
use omniline_runtime::http::is_blank;
use serde_json::{json, Value};

/// Transcript page size bounds.
const PAGE_DEFAULT: usize = 50;
const PAGE_MAX: usize = 200;

/// A path's `{id}`.
pub(crate) type PathId = Result<Path<String>, PathRejection>;

/// The path's `{id}`; a path that does not parse names no conversation (404).
pub(crate) fn path_id(path: PathId) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| AgentError::NotFound("conversation").into())
}

/// The path's `{id}` of a route that takes no body (nothing, white space or `{}`).
fn bodiless(path: PathId, body: &[u8]) -> Result<String, ApiError> {
    let id = path_id(path)?;
    if !is_blank(body) {
        Fields::parse(body)?.finish()?;
    }
    Ok(id)
}

/// The conversation an operation left, or its error.
fn conversation_response(done: Result<Conversation, AgentError>) -> Result<Response, ApiError> {
    Ok(Json(conversation_json(&done?)).into_response())
}

fn state_name(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

pub(crate) fn conversation_json(c: &Conversation) -> Value {
    // Closed, its agent still wrapping up: `wrapUp` until it records the outcome or its time
    // passes (the schedule ends it within a minute of `wrapUp.until`).
    let status = if c.wrapping_up() {
        "wrapUp"
    } else {
        state_name(c.state)
    };
    json!({
        "id": c.id,
        "accountId": c.account_id,
        "status": status,
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
        "snoozedUntil": c.snoozed_until,
        "followUp": c.follow_up,
        "offer": c.offer.as_ref().map(|o| json!({"agentId": o.agent_id, "expiresAt": o.expires_at})),
        // What the bot handed off with (names as the workstream declares them).
        "context": c.context,
        "wrapUp": c.wrap_up.as_ref().map(|w| json!({
            "until": w.until, "disposition": w.disposition, "notes": w.notes, "doneAt": w.done_at,
        })),
        // A group chat's name and icon (LINE's group summary); null elsewhere.
        "group": c.group.as_ref().map(|g| json!({"name": g.name, "pictureUrl": g.picture_url})),
        // The inbox: the customer's messages since its agent read or answered it, the latest
        // message's preview, and since when it waits in its queue (null unless waiting).
        "unread": c.unread,
        "lastMessage": c.last_message,
        "waitingSince": c.waiting_since(),
        "tags": c.tags,
    })
}

pub(crate) fn contact_json(c: &Contact) -> Value {
    json!({
        "id": c.id, "accountId": c.account_id, "name": c.name, "email": c.email, "phone": c.phone, "company": c.company,
        "createdAt": c.created_at, "updatedAt": c.updated_at,
    })
}

/// The customer's details as agents see them: profile, linked contact.
pub(crate) fn customer_json(view: Option<&CustomerView>) -> Value {
    let Some(CustomerView { customer, contact }) = view else {
        return Value::Null;
    };
    json!({
        "userId": customer.user_id,
        "displayName": customer.display_name,
        "pictureUrl": customer.picture_url,
        "language": customer.language,
        "contact": contact.as_ref().map(contact_json),
    })
}

pub(crate) fn queue_json(queue: Option<&QueueRef>) -> Value {
    match queue {
        Some(q) => json!({ "id": q.id, "name": q.name }),
        None => Value::Null,
    }
}

/// `GET /agent/v1/conversations?status=waiting|active|closed`: the agent's queues' and its own.
pub(crate) async fn list(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(
        query.as_deref(),
        &[
            "status", "snoozed", "followUp", "assigned", "tag", "limit", "cursor",
        ],
    )?;
    let flag = |name: &str| match query.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid(
            name,
            format!("{name} must be true or false"),
        )),
    };
    let (snoozed, follow_up) = (flag("snoozed")?, flag("followUp")?);
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
    let assigned = match query.get("assigned") {
        None => None,
        Some("me") => Some(Assigned::Me),
        Some("unassigned") => Some(Assigned::Unassigned),
        Some(_) => {
            return Err(ApiError::invalid(
                "assigned",
                "assigned must be me or unassigned",
            ))
        }
    };
    let tag = match query.get("tag") {
        None => None,
        Some(t) => Some(
            omniline_domain::tags::normalize(t)
                .map_err(|problem| ApiError::invalid("tag", problem))?,
        ),
    };
    let limit = match query.get("limit") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=LIST_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::invalid("limit", format!("limit must be 1 to {LIST_LIMIT}"))
            })?,
    };
    let after = match query.get("cursor") {
        None => None,
        Some(c) => Some(ListCursor::decode(c).ok_or_else(|| {
            ApiError::invalid("cursor", "cursor must be a nextCursor this list gave")
        })?),
    };
    let view = ListView {
        state: status,
        snoozed,
        follow_up,
        assigned,
        tag,
        limit,
        after,
    };
    let page = state.service.list_conversations(&agent, view).await?;
    let next_cursor = page.next.as_ref().map(ListCursor::encode);
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|s| {
            let mut item = conversation_json(&s.conversation);
            item["customer"] = customer_json(s.customer.as_ref());
            item
        })
        .collect();
    Ok(Json(json!({ "conversations": items, "nextCursor": next_cursor })).into_response())
}

/// `GET /agent/v1/conversations/{id}`: the conversation, the customer (with the linked contact
/// and their previous conversations), the queue and the workstream.
pub(crate) async fn detail(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let detail = state.service.conversation_detail(&agent, &id).await?;
    let mut customer_value = customer_json(detail.customer.as_ref());
    if !customer_value.is_null() {
        customer_value["attributes"] = json!(detail.attributes);
        customer_value["tags"] = json!(detail.customer_tags);
        customer_value["previousConversations"] = json!({
            "count": detail.previous.len(),
            "items": detail.previous.iter().map(|o| json!({
                "id": o.id, "openedAt": o.opened_at, "closedAt": o.closed_at, "status": state_name(o.state),
            })).collect::<Vec<_>>(),
        });
    }
    Ok(Json(json!({
        "conversation": conversation_json(&detail.conversation),
        "customer": customer_value,
        "queue": queue_json(detail.queue.as_ref()),
        "workstream": detail.workstream.map(|w| json!({
            "id": w.id, "name": w.name,
            "attachments": {"agentCanSend": w.attachments.agent_can_send},
            "wrapUpSeconds": w.wrap_up_seconds.unwrap_or(0),
            "dispositions": w.dispositions,
            "contextVariables": w.context_variables.iter().map(|v| json!({
                "name": v.name, "type": v.kind.as_str(), "label": v.label,
            })).collect::<Vec<_>>(),
        })),
    }))
    .into_response())
}

/// One transcript line as agents see it. A customer's message carries its `quoteToken` (to
/// quote it in a reply) and, when it quotes another message, `quotedMessageId` (LINE's id) and
/// `quotedEntryId` (that message's line here, when it is one).
fn entry_json(
    entry: &TranscriptEntry,
    delivery: Option<&Delivery>,
    media_url: Option<&str>,
    quoted_line_id: Option<&str>,
) -> Value {
    let mut v = json!({
        "id": entry.event_id,
        "at": entry.timestamp,
        "type": entry.event_type,
        "retracted": entry.retracted,
    });
    if entry.event_type == omniline_domain::conversation::NOTE_ENTRY {
        // An agent's internal note: never sent to LINE.
        v["direction"] = json!("internal");
        v["agentId"] = entry.event["agentId"].clone();
        v["agentName"] = entry.event["agentName"].clone();
        v["text"] = entry.event["text"].clone();
        return v;
    }
    if entry.event_type == "agentMessage" {
        v["direction"] = json!("out");
        v["agentId"] = entry.event["agentId"].clone();
        v["agentName"] = entry.event["agentName"].clone();
        v["messages"] = with_sticker_images(&entry.event["messages"]);
        v["delivery"] = match delivery {
            Some(d) => json!({"status": d.status, "error": d.error}),
            None => json!({"status": "queued"}),
        };
        return v;
    }
    v["direction"] = json!("in");
    v["senderUserId"] = json!(entry.sender_user_id);
    if let Some(name) = &entry.sender_name {
        v["senderName"] = json!(name);
    }
    if entry.retracted {
        return v;
    }
    if let Some(message) = entry.event.get("message") {
        v["message"] = message.clone();
        // LINE's read token is the server's to use (the read route), not the agent's.
        if let Some(fields) = v["message"].as_object_mut() {
            fields.remove("markAsReadToken");
        }
        if let Some(sticker) = sticker_view(message) {
            v["sticker"] = sticker;
        }
        if let Some(token) = message.get("quoteToken").filter(|t| t.is_string()) {
            v["quoteToken"] = token.clone();
        }
        if let Some(quoted) = message.get("quotedMessageId").filter(|q| q.is_string()) {
            v["quotedMessageId"] = quoted.clone();
            v["quotedEntryId"] = json!(quoted_line_id);
        }
    }
    if let Some(postback) = entry.event.get("postback") {
        v["postback"] = postback.clone();
    }
    if entry.event["omnilineMedia"]["key"].is_string() {
        v["media"] = json!({
            "status": entry.event["omnilineMedia"]["status"],
            "contentType": entry.event["omnilineMedia"]["contentType"],
            "url": media_url,
        });
    }
    v
}

/// Sent messages (LINE's JSON) with each sticker's images beside its ids (`sticker`: see
/// [`sticker_view`]).
fn with_sticker_images(messages: &Value) -> Value {
    match messages {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|m| match sticker_view(m) {
                    Some(sticker) => {
                        let mut m = m.clone();
                        m["sticker"] = sticker;
                        m
                    }
                    None => m.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An automated or bot message as a transcript line (`automatedMessage` / `botMessage`, out).
fn sent_content_json(delivery: &Delivery, content: &DeliveredContent) -> Value {
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
        "messages": with_sticker_images(&json!(content.messages)),
        "delivery": {"status": delivery.status, "error": delivery.error},
    })
}

pub(crate) fn line_json(line: &TimelineLine) -> Value {
    match line {
        TimelineLine::Entry {
            entry,
            delivery,
            media_url,
            quoted_line_id,
        } => entry_json(
            entry,
            delivery.as_ref(),
            media_url.as_deref(),
            quoted_line_id.as_deref(),
        ),
        TimelineLine::Sent { delivery, content } => sent_content_json(delivery, content),
    }
}

/// `GET …/{id}/messages?before=&limit=`: the transcript in timestamp order (the page before
/// `before`, epoch ms), with outbound messages' delivery status.
pub(crate) async fn messages(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let (before, limit) = page_query(query.as_deref())?;
    let page = state.service.timeline(&agent, &id, before, limit).await?;
    let items: Vec<Value> = page.lines.iter().map(line_json).collect();
    Ok(Json(json!({ "messages": items, "nextBefore": page.next_before })).into_response())
}

/// `?before=&limit=` of a timeline page: (before, limit).
pub(crate) fn page_query(query: Option<&str>) -> Result<(Option<i64>, usize), ApiError> {
    let query = Query::parse(query, &["before", "limit"])?;
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
    Ok((before, limit))
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

/// A reply's optional `quoteToken` (a customer message's, from the transcript): quoting is for
/// text and sticker messages, with a token of 1 to [`MAX_QUOTE_TOKEN_LENGTH`] printable ASCII
/// characters; anything else is 422 naming the field.
fn quote_token(f: &mut Fields, kind: &str) -> Result<Option<String>, ApiError> {
    let unusable = |message: String| {
        ApiError::Agent(AgentError::Unprocessable {
            field: "quoteToken".into(),
            message,
        })
    };
    let token = match f.take("quoteToken") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(token)) if is_quote_token(&token) => token,
        Some(_) => {
            return Err(unusable(format!(
                "quoteToken must be a string of 1 to {MAX_QUOTE_TOKEN_LENGTH} printable ASCII characters without spaces"
            )))
        }
    };
    if !QUOTING_TYPES.contains(&kind) {
        return Err(unusable(
            "quoteToken is for text and sticker messages only".into(),
        ));
    }
    Ok(Some(token))
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
            &[
                "text", "textV2", "sticker", "location", "image", "video", "audio", "file",
                "template", "flex",
            ],
        )?
        .ok_or_else(|| f.missing("type"))?;
    let quote = quote_token(&mut f, &kind)?;
    // LINE's rules on a rich part, as a 422 naming the property.
    let rich = |checked: Result<(), omniline_domain::line::rich::Problem>| {
        checked.map_err(|(field, problem)| {
            ApiError::Agent(AgentError::Unprocessable {
                message: format!("{field} {problem}"),
                field,
            })
        })
    };
    let quick_reply = f.take("quickReply").filter(|v| !v.is_null());
    if let Some(quick_reply) = &quick_reply {
        rich(omniline_domain::line::rich::check_quick_reply(quick_reply))?;
    }
    let media_url = |f: &mut Fields, url_field: &str| -> Result<String, ApiError> {
        if let Some(media_id) = f.text("mediaId", 1, 512)? {
            return Ok(state.service.upload_link(agent, &media_id)?);
        }
        let url = f
            .text(url_field, 9, 2000)?
            .ok_or_else(|| f.missing(url_field))?;
        https_url(url_field, url)
    };
    let mut message = match kind.as_str() {
        "text" => {
            let text = f.text("text", 1, 5000)?.ok_or_else(|| f.missing("text"))?;
            json!({"type": "text", "text": text})
        }
        "textV2" => {
            let text = f.text("text", 1, 5000)?.ok_or_else(|| f.missing("text"))?;
            let substitution = f.take("substitution").filter(|v| !v.is_null());
            // LINE's rules that need no conversation; a mention's member and `all` are checked
            // against the conversation by the use case.
            omniline_domain::line::text_v2::check(
                &text,
                substitution.as_ref(),
                omniline_domain::line::text_v2::Chat::Unknown,
            )
            .map_err(|(field, problem)| {
                ApiError::Agent(AgentError::Unprocessable {
                    message: format!("{field} {problem}"),
                    field,
                })
            })?;
            let mut message = json!({"type": "textV2", "text": text});
            if let Some(substitution) = substitution {
                message["substitution"] = substitution;
            }
            message
        }
        "template" | "flex" => {
            let mut message = json!({"type": kind});
            for name in [
                "altText",
                if kind == "template" {
                    "template"
                } else {
                    "contents"
                },
            ] {
                if let Some(value) = f.take(name) {
                    message[name] = value;
                }
            }
            rich(if kind == "template" {
                omniline_domain::line::rich::check_template(&message)
            } else {
                omniline_domain::line::rich::check_flex(&message)
            })?;
            message
        }
        "file" => {
            let url = media_url(&mut f, "url")?;
            let name = f
                .text("fileName", 1, 100)?
                .ok_or_else(|| f.missing("fileName"))?;
            // LINE has no outbound file message: it goes as a text with the name and the link.
            json!({"type": "file", "fileName": name, "url": url})
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
    if let Some(token) = quote {
        message["quoteToken"] = Value::String(token);
    }
    if let Some(quick_reply) = quick_reply {
        message["quickReply"] = quick_reply;
    }
    let attachment = matches!(kind.as_str(), "image" | "video" | "audio" | "file");
    Ok((vec![message], attachment))
}

/// A message template to send (`{"type": "messageTemplate", "templateId", "variables"?: {name:
/// text}}`), or `None` for any other message.
#[allow(clippy::type_complexity)]
fn template_request(
    body: &[u8],
) -> Result<Option<(String, std::collections::BTreeMap<String, String>)>, ApiError> {
    let mut f = Fields::parse(body)?;
    if f.one_of("type", &["messageTemplate"])
        .ok()
        .flatten()
        .is_none()
    {
        return Ok(None);
    }
    let template_id = f
        .text("templateId", 1, 64)?
        .ok_or_else(|| f.missing("templateId"))?;
    let variables = match f.take("variables") {
        None | Some(Value::Null) => Default::default(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k, s)),
                _ => Err(ApiError::invalid(
                    &format!("variables.{k}"),
                    "each variable is a string",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "variables",
                "variables must be an object",
            ))
        }
    };
    f.finish()?;
    Ok(Some((template_id, variables)))
}

/// `POST …/{id}/messages`: queues the agent's reply; 202 with its id. An `Idempotency-Key`
/// header makes a retried request queue nothing new.
pub(crate) async fn send(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    if let Some((template_id, variables)) = template_request(&body)? {
        let message_id = state
            .service
            .send_template(&agent, &id, &template_id, variables, key)
            .await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": message_id, "status": "queued" })),
        )
            .into_response());
    }
    let (messages, attachment) = reply_messages(&state, &agent, &body)?;
    let message_id = state
        .service
        .send_reply(&agent, &id, messages, attachment, key)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": message_id, "status": "queued" })),
    )
        .into_response())
}

/// `POST /agent/v1/customers/{customerId}/conversations` `{"message": {…}}` (a message as
/// `POST …/messages` takes it; `Idempotency-Key` optional): the agent writes first. 201 with
/// the conversation (active, the agent's) and the queued message's id.
pub(crate) async fn start(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    customer: PathId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let customer = path_id(customer)?;
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let mut fields = Fields::parse(&body)?;
    let message = fields.take("message").filter(|m| !m.is_null());
    let Some(message) = message else {
        return Err(fields.missing("message").into());
    };
    fields.finish()?;
    if !message.is_object() {
        return Err(ApiError::invalid("message", "message must be an object"));
    }
    let bytes = serde_json::to_vec(&message).unwrap_or_default();
    let (messages, attachment) = reply_messages(&state, &agent, &bytes).map_err(|e| match e {
        ApiError::Input(e) => ApiError::invalid(&format!("message.{}", e.field()), e.message()),
        other => other,
    })?;
    let (conversation, message_id) = state
        .service
        .start_conversation(&agent, &customer, messages, attachment, key)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "conversation": conversation_json(&conversation),
            "message": {"id": message_id, "status": "queued"},
        })),
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
    let upload = state
        .service
        .upload_media(&agent, content_type, body.to_vec())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "mediaId": upload.media_id, "url": upload.url })),
    )
        .into_response())
}

pub(crate) async fn pick(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = bodiless(id, &body)?;
    conversation_response(state.service.pick(&agent, &id).await)
}

/// `POST …/{id}/typing`: LINE's loading animation in the customer's chat (1:1 chats only).
pub(crate) async fn typing(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let seconds = if is_blank(&body) {
        20
    } else {
        let mut f = Fields::parse(&body)?;
        let s = f.integer("seconds", 5, 60)?.unwrap_or(20);
        f.finish()?;
        // LINE takes multiples of 5.
        (s / 5 * 5) as u32
    };
    state.service.start_typing(&agent, &id, seconds).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST …/{id}/read`: marks the customer's messages as read.
pub(crate) async fn read(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = bodiless(id, &body)?;
    state.service.mark_read(&agent, &id).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST …/{id}/transfer` `{"queueId"}` or `{"agentId"}`.
pub(crate) async fn transfer(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut f = Fields::parse(&body)?;
    let queue = f.text("queueId", 1, 100)?;
    let to_agent = f.text("agentId", 1, 100)?;
    f.finish()?;
    let target = match (queue, to_agent) {
        (Some(q), None) => TransferTarget::Queue(q),
        (None, Some(a)) => TransferTarget::Agent(a),
        _ => {
            return Err(ApiError::invalid(
                "queueId",
                "give exactly one of queueId or agentId",
            ))
        }
    };
    conversation_response(state.service.transfer(&agent, &id, target).await)
}

/// `GET /agent/v1/transfer-targets`: the agent's queues and the other agents serving them, with
/// their presence and load — where a conversation can be transferred.
pub(crate) async fn transfer_targets(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
) -> Result<Response, ApiError> {
    let (queues, agents) = state.service.transfer_targets(&agent).await?;
    Ok(Json(json!({
        "queues": queues.iter().map(|q| json!({"id": q.id, "name": q.name})).collect::<Vec<_>>(),
        "agents": agents.iter().map(agent_row_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Another agent as a transfer choice: presence and load.
fn agent_row_json(a: &Agent) -> Value {
    json!({
        "id": a.id, "name": a.name, "status": a.status.as_str(), "queueIds": a.queues,
        "activeConversations": a.active_count(), "capacity": a.capacity,
    })
}

fn note_json(n: &omniline_domain::conversation::Note) -> Value {
    json!({"id": n.id, "text": n.text, "agentId": n.agent_id, "agentName": n.agent_name, "at": n.at})
}

/// `{"text"}`: 1 to 2,000 characters.
fn note_text(body: &[u8]) -> Result<String, ApiError> {
    let mut fields = Fields::parse(body)?;
    let text = fields
        .text("text", 1, omniline_domain::conversation::NOTE_MAX_CHARS)?
        .ok_or_else(|| fields.missing("text"))?;
    fields.finish()?;
    Ok(text)
}

/// `POST /agent/v1/conversations/{id}/notes` `{"text"}`: an internal note (never sent to LINE,
/// shown in the transcript as internal) → 201 the note.
pub(crate) async fn add_note(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let text = note_text(&body)?;
    let note = state
        .service
        .add_conversation_note(&agent, &id, &text)
        .await?;
    Ok((StatusCode::CREATED, Json(note_json(&note))).into_response())
}

/// `GET /agent/v1/conversations/{id}/notes`: the conversation's notes, oldest first.
pub(crate) async fn notes(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let notes = state.service.conversation_notes(&agent, &id).await?;
    Ok(Json(json!({"notes": notes.iter().map(note_json).collect::<Vec<_>>()})).into_response())
}

/// `POST /agent/v1/customers/{accountId}:{userId}/notes` `{"text"}`: a note about the customer
/// (kept across their conversations) → 201 the note.
pub(crate) async fn add_customer_note(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let text = note_text(&body)?;
    let note = state.service.add_customer_note(&agent, &id, &text).await?;
    Ok((StatusCode::CREATED, Json(note_json(&note))).into_response())
}

/// `GET /agent/v1/customers/{accountId}:{userId}/notes`: the notes about the customer.
pub(crate) async fn customer_notes(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let notes = state.service.customer_notes(&agent, &id).await?;
    Ok(Json(json!({"notes": notes.iter().map(note_json).collect::<Vec<_>>()})).into_response())
}

/// `GET /agent/v1/quick-replies?q=&language=`: the quick replies of the agent's queues (and of
/// every queue) matching `q` (a shortcut's start, a word of the title or a text), by shortcut,
/// each with `text` in the customer's `language` (else its first) and all its `texts`.
pub(crate) async fn quick_replies(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["q", "language"])?;
    let q = query.get("q").unwrap_or("");
    if q.chars().count() > 100 {
        return Err(ApiError::invalid("q", "q is at most 100 characters"));
    }
    let language = query.get("language").filter(|l| !l.is_empty());
    if language.is_some_and(|l| l.len() > 35) {
        return Err(ApiError::invalid("language", "language is a language tag"));
    }
    let found = state.service.quick_replies(&agent, q, language).await?;
    Ok(Json(json!({
        "quickReplies": found.iter().map(|(r, chosen)| json!({
            "id": r.id,
            "shortcut": r.shortcut,
            "title": r.title,
            "language": chosen,
            "text": chosen.as_ref().and_then(|l| r.texts.get(l)),
            "texts": r.texts,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /agent/v1/queues`: the agent's queues, with how many conversations wait and are being
/// answered in each.
pub(crate) async fn queues(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Query::parse(query.as_deref(), &[])?;
    let queues = state.service.queues_of(&agent).await?;
    Ok(Json(json!({
        "queues": queues.iter().map(|q| json!({
            "id": q.queue.id, "name": q.queue.name, "waiting": q.waiting, "active": q.active,
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /agent/v1/agents?queueId=`: the agents serving one of the caller's queues (all of them
/// without `queueId`), with their presence and load.
pub(crate) async fn agents(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["queueId"])?;
    let agents = state
        .service
        .agents_of(&agent, query.get("queueId"))
        .await?;
    Ok(Json(json!({
        "agents": agents.iter().map(agent_row_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `POST …/{id}/close`: closes; the "agent ended" message and the survey go to the customer.
pub(crate) async fn close(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = bodiless(id, &body)?;
    conversation_response(state.service.close(&agent, &id).await)
}

/// `POST …/{id}/snooze` `{"until": RFC 3339 | null}`: out of the active list until then (or
/// until the customer writes); `null` wakes it.
pub(crate) async fn snooze(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut fields = Fields::parse(&body)?;
    // Required, and `null` wakes the conversation: absent is a mistake.
    let until = match fields.take("until") {
        None => return Err(fields.missing("until").into()),
        Some(Value::Null) => None,
        Some(Value::String(text)) => Some(parse_rfc3339_millis(&text).ok_or_else(|| {
            ApiError::invalid(
                "until",
                "until must be an RFC 3339 time, e.g. 2026-12-08T09:00:00+09:00",
            )
        })?),
        Some(_) => {
            return Err(ApiError::invalid(
                "until",
                "until must be an RFC 3339 time or null",
            ))
        }
    };
    fields.finish()?;
    conversation_response(state.service.snooze(&agent, &id, until).await)
}

/// `POST …/{id}/accept`: the agent takes the conversation offered to it.
pub(crate) async fn accept(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = bodiless(id, &body)?;
    conversation_response(state.service.accept_offer(&agent, &id).await)
}

/// `POST …/{id}/reject`: the agent declines the conversation offered to it; the next agent
/// gets the offer.
pub(crate) async fn reject(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = bodiless(id, &body)?;
    conversation_response(state.service.reject_offer(&agent, &id).await)
}

/// `POST …/{id}/wrap-up` `{"disposition", "notes"?}`: the outcome of a conversation the agent
/// closed with wrap-up on; its slot comes back.
pub(crate) async fn wrap_up(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut fields = Fields::parse(&body)?;
    let disposition = fields
        .text(
            "disposition",
            1,
            omniline_domain::workstream::DISPOSITION_MAX_CHARS,
        )?
        .ok_or_else(|| fields.missing("disposition"))?;
    let notes = fields.text("notes", 1, 2000)?;
    fields.finish()?;
    conversation_response(
        state
            .service
            .finish_wrap_up(&agent, &id, disposition, notes)
            .await,
    )
}

/// `PUT …/{id}/follow-up` `{"followUp": bool}`.
pub(crate) async fn follow_up(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut fields = Fields::parse(&body)?;
    let flag = fields
        .boolean("followUp")?
        .ok_or_else(|| fields.missing("followUp"))?;
    fields.finish()?;
    conversation_response(state.service.set_follow_up(&agent, &id, flag).await)
}

/// `GET …/{id}/survey`: the survey sent at close and its answer.
pub(crate) async fn survey(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let answer = state.service.survey(&agent, &id).await?;
    let survey = &answer.survey;
    Ok(Json(json!({
        "conversationId": answer.conversation_id,
        "sentAt": survey.sent_at,
        "scale": survey.scale,
        "score": survey.score,
        "answeredAt": survey.answered_at,
    }))
    .into_response())
}

/// The body of `PUT …/tags`: `{"tags": [string, …]}`.
fn tags_body(body: &[u8]) -> Result<Vec<String>, ApiError> {
    let mut fields = Fields::parse(body)?;
    let value = fields.take("tags").ok_or_else(|| fields.missing("tags"))?;
    fields.finish()?;
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            "tags",
            "tags must be an array of strings",
        ));
    };
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(ApiError::invalid(
                "tags",
                "tags must be an array of strings",
            )),
        })
        .collect()
}

/// `PUT /agent/v1/conversations/{id}/tags` `{"tags": […]}` → `{"tags"}` as kept: a conversation
/// the agent sees; at most 10 tags of 1 to 20 characters, 200 distinct per account (409
/// `too_many_tags`).
pub(crate) async fn conversation_tags(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let tags = tags_body(&body)?;
    let kept = state
        .service
        .set_conversation_tags(&agent, &id, &tags)
        .await?;
    Ok(Json(json!({ "tags": kept })).into_response())
}

/// `PUT /agent/v1/customers/{accountId}:{userId}/tags` `{"tags": […]}` → `{"tags"}` as kept: a
/// customer of an account the agent serves (routing rules test them as `customer.tags`).
pub(crate) async fn customer_tags(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let tags = tags_body(&body)?;
    let kept = state.service.set_customer_tags(&agent, &id, &tags).await?;
    Ok(Json(json!({ "tags": kept })).into_response())
}
