//! Bot hooks: a workstream may name a bot that answers customers first. Each customer message is
//! POSTed to the bot ([`BotRequest`]); the bot answers the messages to send back and may hand the
//! conversation off to a human queue ([`BotReply`]). [`BotHook`] is the port, [`HttpBotHook`] its
//! reqwest adapter.
//!
//! The request is signed like LINE signs its webhooks: `x-omniline-signature` is base64 of
//! HMAC-SHA256 over the exact body bytes, keyed by the bot's secret (verify it with
//! [`crate::line::signature::verify_signature`]). `x-omniline-event-id` carries the LINE webhook
//! event id so the bot can deduplicate retries.
//!
//! The caller hands the conversation off to a human on any [`BotError`]. Neither the secret nor
//! the bodies (customer messages, bot answers) are ever logged or put in an error.

use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// LINE's reply and push APIs take at most five message objects per call.
pub const MAX_REPLY_MESSAGES: usize = 5;

/// The largest reply body read from a bot; a larger one is an [`BotError::InvalidReply`].
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-omniline-signature";

/// Header carrying the LINE webhook event id (for the bot's deduplication of retries).
pub const EVENT_ID_HEADER: &str = "x-omniline-event-id";

/// Where and how to reach a bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotEndpoint {
    pub url: String,
    /// Signs each request body; never logged (`SecretString` redacts itself).
    pub secret: SecretString,
    /// Whole-request timeout (connect, send, wait, read the reply).
    pub timeout: Duration,
}

/// The customer as the bot sees them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotCustomer {
    /// The LINE user id; absent when LINE gives none (some group events).
    pub user_id: Option<String>,
    pub display_name: String,
    /// BCP 47 tag from the LINE profile, when known.
    pub language: Option<String>,
}

impl std::fmt::Debug for BotCustomer {
    // No display name: a debug log is not the place for personal data.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotCustomer")
            .field("user_id", &self.user_id)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

/// What is POSTed to the bot, as camelCase JSON.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotRequest {
    pub bot_id: String,
    pub account_id: String,
    pub conversation_id: String,
    /// The LINE `webhookEventId`; also sent as `x-omniline-event-id`.
    pub event_id: String,
    pub customer: BotCustomer,
    /// The LINE webhook event as received.
    pub event: serde_json::Value,
}

impl std::fmt::Debug for BotRequest {
    // The event's type, not the event: it holds what the customer wrote.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotRequest")
            .field("bot_id", &self.bot_id)
            .field("account_id", &self.account_id)
            .field("conversation_id", &self.conversation_id)
            .field("event_id", &self.event_id)
            .field("customer", &self.customer)
            .field(
                "event.type",
                &self.event.get("type").and_then(|t| t.as_str()),
            )
            .finish()
    }
}

/// The bot's answer, read from camelCase JSON; every field is optional (`{}` says nothing and
/// keeps the conversation with the bot).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BotReply {
    /// LINE message objects to send, at most [`MAX_REPLY_MESSAGES`], each with a string `type`.
    pub messages: Vec<serde_json::Value>,
    /// Hand the conversation off to a human.
    pub handoff: bool,
    /// The queue to hand off to; the workstream's default when `None`. Ignored without `handoff`.
    pub queue: Option<String>,
    /// Values for the agents and the routing rules (`"context": {"orderId": "A-17", "vip":
    /// true}`): kept as the workstream declares them (`contextVariables`), the rest dropped.
    /// Ignored without `handoff`.
    pub context: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for BotReply {
    // Message types only: the texts are customer-facing content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<Option<&str>> = self
            .messages
            .iter()
            .map(|m| m.get("type").and_then(|t| t.as_str()))
            .collect();
        f.debug_struct("BotReply")
            .field("message_types", &types)
            .field("handoff", &self.handoff)
            .field("queue", &self.queue)
            // Names only: values may be personal data.
            .field("context", &self.context.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BotReply {
    /// At most [`MAX_REPLY_MESSAGES`] messages, each a JSON object with a non-empty string `type`.
    pub fn validate(&self) -> Result<(), BotError> {
        if self.messages.len() > MAX_REPLY_MESSAGES {
            return Err(BotError::InvalidReply(format!(
                "{} messages (at most {MAX_REPLY_MESSAGES})",
                self.messages.len()
            )));
        }
        for (i, message) in self.messages.iter().enumerate() {
            let typed = message
                .as_object()
                .and_then(|m| m.get("type"))
                .and_then(|t| t.as_str())
                .is_some_and(|t| !t.is_empty());
            if !typed {
                return Err(BotError::InvalidReply(format!(
                    "message {i} is not an object with a string \"type\""
                )));
            }
        }
        Ok(())
    }
}

/// A failed delivery. The caller hands the conversation off to a human on every variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    #[error("bot did not answer in time")]
    Timeout,
    /// Connection failure or a 5xx: the bot may or may not have seen the request.
    #[error("bot unavailable: {0}")]
    Unavailable(String),
    /// The bot's definite refusal (4xx), or a redirect (not followed).
    #[error("bot refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A 2xx whose body is not a valid [`BotReply`].
    #[error("invalid bot reply: {0}")]
    InvalidReply(String),
    /// The bot's URL is one this stack does not call: not https, or an address that is not
    /// public (loopback, private, link-local…: the Lambda runtime API, the VPC, the metadata
    /// service), unless private networks are allowed (local development).
    #[error("bot URL not allowed: {0}")]
    Forbidden(String),
}
