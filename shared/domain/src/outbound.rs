//! Outbound messages: what the router (automated and bot messages) and agents put on the outbound
//! FIFO queue for the outbound function to send to LINE.
//!
//! Every message has a deterministic id (derived from what caused it), used as the queue's
//! deduplication id and, by the outbound function, as the idempotency key of the push
//! (`X-Line-Retry-Key`), so a retried router never makes the customer receive a message twice.

use crate::line::envelope::{sqs_id, QueueMessage};
use serde::{Deserialize, Serialize};

/// Who produced the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Automated,
    Bot,
    Agent,
}

/// One outbound message (up to five LINE message objects, sent in one call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    /// Deterministic: e.g. `{webhookEventId}:auto:{trigger}` or `{webhookEventId}:bot`.
    pub id: String,
    pub account_id: String,
    pub conversation_id: String,
    /// LINE recipient: userId, groupId or roomId.
    pub to: String,
    pub origin: Origin,
    /// The automated-message trigger, when `origin` is automated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// LINE message objects (`{"type":"text","text":…}` …), as the Messaging API takes them.
    pub messages: Vec<serde_json::Value>,
    /// The reply token of the inbound event this answers, if any, and when it was received
    /// (epoch ms): outbound replies (free) while the token is young, pushes otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token_received_at: Option<i64>,
    /// Agent identity shown instead of the account's (when the workstream enables it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    /// Epoch ms.
    pub created_at: i64,
    /// The agent who wrote it (an agent's message): told if it cannot be delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// LINE's `sender` of a message: the name (at most 20 characters) and icon shown to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

impl OutboundMessage {
    /// The queue message: grouped per recipient (order kept per conversation), deduplicated by id.
    pub fn to_queue_message(&self) -> QueueMessage {
        QueueMessage {
            group_id: sqs_id(&format!("{}:{}", self.account_id, self.to)),
            dedup_id: sqs_id(&self.id),
            // Serialising owned strings and JSON values cannot fail.
            body: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}

/// A LINE text message object.
pub fn text_message(text: &str) -> serde_json::Value {
    serde_json::json!({ "type": "text", "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_message_is_grouped_by_recipient_and_deduplicated_by_id() {
        let m = OutboundMessage {
            id: "01HEVENT:auto:conversationStarted".into(),
            account_id: "acc".into(),
            conversation_id: "c1".into(),
            to: "Uabc".into(),
            origin: Origin::Automated,
            trigger: Some("conversationStarted".into()),
            messages: vec![text_message("こんにちは")],
            reply_token: Some("rt".into()),
            reply_token_received_at: Some(5),
            sender: None,
            created_at: 6,
            agent_id: None,
        };
        let q = m.to_queue_message();
        assert_eq!(q.group_id, "acc:Uabc");
        assert_eq!(q.dedup_id, "01HEVENT:auto:conversationStarted");
        let back: OutboundMessage = serde_json::from_str(&q.body).unwrap();
        assert_eq!(back, m);
        assert_eq!(sqs_id(&"x".repeat(200)).len(), 64);
    }
}
