//! What the router's integration tests share: the account, the clock's start, and builders of
//! agents, inbound queue messages and LINE events.
#![allow(dead_code)]

use omniline_domain::agents::{Agent, AgentStatus};
use omniline_domain::outbound::OutboundMessage;
use serde_json::{json, Value};

pub const ACCOUNT: &str = "acc1";
/// 2026-11-25T03:00:00Z: a Wednesday, noon in Tokyo.
pub const T0: i64 = 1_795_575_600_000;

/// An available agent of one queue, with no conversation.
pub fn agent(id: &str, queue: &str, capacity: u32) -> Agent {
    Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        queues: vec![queue.into()],
        skills: vec![],
        capacity,
        status: AgentStatus::Available,
        active_conversations: vec![],
        last_assigned_at: None,
        last_seen_at: None,
    }
}

/// The inbound queue body the webhook makes of `event`.
pub fn inbound(event: Value) -> String {
    json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event})
        .to_string()
}

/// A 1:1 text message from `user`.
pub fn text_from(user: &str, id: &str, text: &str, ts: i64) -> Value {
    json!({
        "type": "message", "mode": "active", "timestamp": ts, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"),
        "source": {"type": "user", "userId": user},
        "message": {"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": text}
    })
}

/// The texts of outbound messages, in order.
pub fn texts(messages: &[OutboundMessage]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.messages.iter())
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}
