//! `GET /agent/v1/notifications?after={cursor}&wait={seconds}`: a long poll of the agent's new
//! assignments and new customer messages, each with the customer's details, queue, workstream
//! and last message, and a cursor for the next call.
//!
//! The cursor is the (created_at, id) of the last notification read, opaque to the agent; the
//! use case ([`omniline_app::agent::AgentService::poll_notifications`]) hands out only settled
//! notifications after it, so nothing is missed between calls.

use crate::conversations::{conversation_json, customer_json, queue_json};
use crate::{AgentState, ApiError};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use omniline_app::agent::notifications::NotificationView;
use omniline_domain::agents::{Agent, AgentNotification};
use omniline_domain::input::Query;
use serde_json::{json, Value};
use std::time::Duration;

/// Longest `wait`, in seconds.
pub use omniline_app::agent::notifications::MAX_WAIT_SECS;

fn encode_cursor(n: &AgentNotification) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}\n{}", n.created_at, n.id))
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once('\n')?;
    Some((at.parse().ok()?, id.to_owned()))
}

/// A notification as handed out. Without a stored customer, the details the notification was
/// written with.
fn notification_json(view: &NotificationView) -> Value {
    let n = &view.notification;
    let customer = match &view.customer {
        Some(customer) => customer_json(Some(customer)),
        None => json!({
            "userId": n.customer_user_id, "displayName": n.customer_name,
            "pictureUrl": n.customer_picture_url, "language": n.customer_language, "contact": null,
        }),
    };
    let last_message = view.last_message.as_ref().map(|m| {
        let mut preview = json!({
            "at": m.at,
            "direction": if m.outgoing { "out" } else { "in" },
            "type": m.message["type"],
            "text": m.message["text"],
        });
        if let Some(sticker) = omniline_domain::line::stickers::sticker_view(&m.message) {
            preview["sticker"] = sticker;
        }
        preview
    });
    let mut body = json!({
        "id": n.id,
        "kind": n.kind,
        "createdAt": n.created_at,
        "conversationId": n.conversation_id,
        "conversation": view.conversation.as_ref().map(conversation_json),
        "customer": customer,
        "queue": queue_json(Some(&view.queue)),
        "workstream": view.workstream.as_ref().map(|w| json!({ "id": w.id, "name": w.name })),
        "lastMessage": last_message,
    });
    if let Some(expires_at) = n.expires_at {
        // An offer: accept or reject it before then.
        body["expiresAt"] = json!(expires_at);
    }
    if let Some(failure) = &n.delivery {
        body["delivery"] = json!({
            "messageId": failure.message_id, "status": failure.status, "reason": failure.reason,
        });
    }
    body
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
    let batch = state
        .service
        .poll_notifications(
            &agent,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
            Duration::from_secs(wait).min(state.max_wait),
        )
        .await?;
    let items: Vec<Value> = batch.items.iter().map(notification_json).collect();
    let cursor = match &batch.last {
        Some(last) => Some(encode_cursor(last)),
        None => after
            .as_ref()
            .map(|(at, id)| URL_SAFE_NO_PAD.encode(format!("{at}\n{id}"))),
    };
    Ok(Json(json!({ "notifications": items, "cursor": cursor })).into_response())
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
            delivery: None,
            expires_at: None,
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
