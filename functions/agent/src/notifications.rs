//! `GET /agent/v1/notifications?after={cursor}&wait={seconds}`: a long poll of the agent's new
//! assignments and new customer messages, each with the customer's details, queue, workstream
//! and last message, and a cursor for the next call.
//!
//! The cursor is the (created_at, id) of the last notification returned; the store returns
//! those strictly after it in that order. A notification is only handed out once it is
//! [`SETTLE_MS`] old, so one written concurrently with an earlier timestamp has landed before the
//! cursor moves past it: nothing is missed between calls.

use crate::conversations::{conversation_json, customer_json, may_see, queue_json};
use crate::{AgentState, ApiError};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use omniline_domain::agents::{Agent, AgentNotification};
use omniline_domain::input::Query;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Longest `wait`, in seconds.
pub const MAX_WAIT_SECS: u64 = 20;
/// Age a notification must have before it is handed out.
const SETTLE_MS: i64 = 300;
/// How often the store is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Most notifications per answer.
const BATCH: usize = 50;

fn encode_cursor(n: &AgentNotification) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{}", n.created_at, n.id))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once('\n')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// The notification as handed out, or `None` when `agent` may no longer see its conversation
/// (removed from the queue, transferred away, erased): access is checked when a notification is
/// handed out, not only when it was written.
async fn enrich(
    state: &AgentState,
    agent: &Agent,
    n: &AgentNotification,
) -> Result<Option<Value>, ApiError> {
    let deps = state.router.deps();
    let conversation = deps.conversations.conversation(&n.conversation_id).await?;
    if !conversation.as_ref().is_some_and(|c| may_see(agent, c)) {
        return Ok(None);
    }
    let customer = match &n.customer_user_id {
        Some(user) => deps.conversations.customer(&n.account_id, user).await?,
        None => None,
    };
    let mut customer_value = customer_json(state, customer.as_ref()).await?;
    if customer_value.is_null() {
        customer_value = json!({
            "userId": n.customer_user_id, "displayName": n.customer_name,
            "pictureUrl": n.customer_picture_url, "language": n.customer_language, "contact": null,
        });
    }
    let last_message = match &conversation {
        Some(c) => deps
            .conversations
            .transcript(&c.id)
            .await?
            .iter()
            .rev()
            .find(|e| !e.retracted && (e.event_type == "message" || e.event_type == "agentMessage"))
            .map(|e| {
                let message = if e.event_type == "agentMessage" {
                    e.event["messages"][0].clone()
                } else {
                    e.event["message"].clone()
                };
                json!({
                    "at": e.timestamp,
                    "direction": if e.event_type == "agentMessage" { "out" } else { "in" },
                    "type": message["type"],
                    "text": message["text"],
                })
            }),
        None => None,
    };
    let workstream = deps
        .workstreams
        .workstream_for_account(&n.account_id)
        .await?
        .map(|w| json!({ "id": w.id, "name": w.name }));
    Ok(Some(json!({
        "id": n.id,
        "kind": n.kind,
        "createdAt": n.created_at,
        "conversationId": n.conversation_id,
        "conversation": conversation.as_ref().map(conversation_json),
        "customer": customer_value,
        "queue": queue_json(state, Some(&n.queue_id)).await?,
        "workstream": workstream,
        "lastMessage": last_message,
    })))
}

pub(crate) async fn poll(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["after", "wait"])?;
    let after = match query.get("after") {
        None | Some("") => None,
        Some(v) => Some(decode_cursor(v).ok_or_else(|| {
            ApiError::invalid("after", "after must be a cursor from an earlier answer")
        })?),
    };
    let wait = match query.get("wait") {
        None => 0,
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|w| *w <= MAX_WAIT_SECS)
            .ok_or_else(|| {
                ApiError::invalid("wait", format!("wait must be 0 to {MAX_WAIT_SECS} seconds"))
            })?,
    };
    let deadline = Instant::now() + Duration::from_secs(wait).min(state.max_wait);
    let agents = &state.router.deps().agents;
    loop {
        let cursor = after.as_ref().map(|(at, id)| (*at, id.as_str()));
        let settled_before = (state.router.deps().clock)() - SETTLE_MS;
        let fresh: Vec<AgentNotification> = agents
            .notifications_after(&agent.id, cursor, BATCH)
            .await?
            .into_iter()
            .take_while(|n| n.created_at <= settled_before)
            .collect();
        if !fresh.is_empty() || Instant::now() >= deadline {
            let mut items = Vec::with_capacity(fresh.len());
            if !fresh.is_empty() {
                // The agent as stored now (an admin may have changed its queues mid-poll).
                let now_agent = agents
                    .agent(&agent.id)
                    .await?
                    .ok_or(ApiError::NotFound("agent"))?;
                for n in &fresh {
                    items.extend(enrich(&state, &now_agent, n).await?);
                }
            }
            let cursor = match fresh.last() {
                Some(last) => Some(encode_cursor(last)),
                None => after
                    .as_ref()
                    .map(|(at, id)| URL_SAFE_NO_PAD.encode(format!("{at}\n{id}"))),
            };
            return Ok(Json(json!({ "notifications": items, "cursor": cursor })).into_response());
        }
        tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let n = AgentNotification {
            id: "c1:a1:assigned".into(),
            agent_id: "a1".into(),
            conversation_id: "c1".into(),
            account_id: "acc".into(),
            kind: "assigned".into(),
            customer_user_id: None,
            customer_name: "Taro".into(),
            customer_picture_url: None,
            customer_language: None,
            queue_id: "q".into(),
            created_at: 1_700_000_000_123,
        };
        let cursor = encode_cursor(&n);
        assert_eq!(
            decode_cursor(&cursor),
            Some((1_700_000_000_123, "c1:a1:assigned".to_owned()))
        );
        assert_eq!(decode_cursor("%%%"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("no-newline")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("x\nid")), None);
    }
}
