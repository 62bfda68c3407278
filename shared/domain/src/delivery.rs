//! Delivery of outbound messages to LINE: one record per outbound message, in the conversation
//! store, readable by the agent API.
//!
//! The record is created before the first attempt with the push's `X-Line-Retry-Key`, so every
//! retry sends the same key and LINE accepts the message at most once; `reply_attempted` is set
//! before a reply is tried, so a reply whose outcome is unknown is never followed by a push.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not (entirely) accepted by LINE yet; retried.
    Queued,
    /// LINE accepted every part (reply or push).
    Sent,
    /// A reply whose outcome is unknown (timeout, 5xx): not resent as a push.
    Unconfirmed,
    /// LINE refused it for good (400/403/404): the error is recorded.
    Failed,
    /// The customer blocked the account: not sent.
    Suppressed,
    /// The channel's monthly message limit is reached: held, not retried.
    QuotaExhausted,
}

impl DeliveryStatus {
    /// A final status: nothing more is sent for this message.
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryStatus::Queued)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Unconfirmed => "unconfirmed",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::QuotaExhausted => "quota_exhausted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The outbound message id (deterministic, see `outbound::OutboundMessage::id`).
    pub id: String,
    pub account_id: String,
    pub conversation_id: String,
    pub status: DeliveryStatus,
    /// UUID sent as `X-Line-Retry-Key` with every push of this message (part `n` uses
    /// [`Delivery::retry_key_for`]).
    pub retry_key: String,
    /// Set before a reply is attempted.
    #[serde(default)]
    pub reply_attempted: bool,
    /// Set when LINE definitely refused the reply (invalid token, rate limit): pushing is safe.
    /// A reply attempted and neither accepted nor refused is never pushed (`unconfirmed`).
    #[serde(default)]
    pub reply_refused: bool,
    /// How many parts (LINE calls of at most five message objects) LINE has accepted.
    #[serde(default)]
    pub parts_sent: u32,
    /// `x-line-request-id` of every accepted call.
    #[serde(default)]
    pub request_ids: Vec<String>,
    /// Ids of the messages LINE created (`sentMessages[].id`).
    #[serde(default)]
    pub sent_message_ids: Vec<String>,
    /// LINE's error (status and message) for failed / unconfirmed / quota_exhausted.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// Optimistic concurrency: every update increments it, conditional on the previous value.
    pub version: u64,
    /// What an automated or bot message said, for the agents' transcript (an agent's own
    /// messages are in the transcript already). Erased with the conversation's deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<DeliveredContent>,
    /// When the record may be deleted (epoch seconds; DynamoDB's time to live): the retention
    /// setting from its creation. `None` keeps it until its conversation is erased or purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The message objects of an automated or bot message, and why it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredContent {
    pub origin: crate::outbound::Origin,
    /// The automated message's trigger (`conversationStarted`, `agentEnded`, `survey` …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    pub messages: Vec<serde_json::Value>,
    /// When the router (or the close) queued it, epoch ms: its place in the transcript.
    pub queued_at: i64,
}

impl Delivery {
    /// A new record, before the first attempt.
    pub fn new(
        id: &str,
        account_id: &str,
        conversation_id: &str,
        retry_key: &str,
        now: i64,
    ) -> Self {
        Self {
            id: id.to_owned(),
            account_id: account_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
            status: DeliveryStatus::Queued,
            retry_key: retry_key.to_owned(),
            reply_attempted: false,
            reply_refused: false,
            parts_sent: 0,
            request_ids: Vec::new(),
            sent_message_ids: Vec::new(),
            error: None,
            attempts: 0,
            created_at: now,
            updated_at: now,
            version: 1,
            content: None,
            expires_at: None,
        }
    }

    /// The retry key of part `part` (0-based): the record's key for part 0, and a UUID derived
    /// from it for later parts, so every part keeps its own key across retries.
    pub fn retry_key_for(&self, part: u32) -> String {
        if part == 0 {
            return self.retry_key.clone();
        }
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}:{part}", self.retry_key).as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        // A version-4-shaped UUID (LINE asks for a UUID, any version).
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_keys_are_stable_distinct_uuids() {
        let d = Delivery::new("m1", "a", "c", "123e4567-e89b-42d3-a456-426614174000", 0);
        assert_eq!(d.retry_key_for(0), "123e4567-e89b-42d3-a456-426614174000");
        let k1 = d.retry_key_for(1);
        assert_eq!(k1, d.retry_key_for(1));
        assert_ne!(k1, d.retry_key_for(2));
        assert!(uuid::Uuid::parse_str(&k1).is_ok());
    }

    #[test]
    fn only_queued_is_not_final() {
        assert!(!DeliveryStatus::Queued.is_final());
        for s in [
            DeliveryStatus::Sent,
            DeliveryStatus::Unconfirmed,
            DeliveryStatus::Failed,
            DeliveryStatus::Suppressed,
            DeliveryStatus::QuotaExhausted,
        ] {
            assert!(s.is_final());
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
