//! LINE: webhook signature, the webhook envelope (hot path), the typed event model and the
//! Messaging API client.

pub mod api;
pub mod envelope;
pub mod events;
pub mod message_rules;
pub mod messages;
pub mod rich;
pub mod signature;
pub mod stickers;
pub mod text_v2;
