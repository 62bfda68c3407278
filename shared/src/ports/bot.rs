//! Bots' webhooks.

use crate::bot::{BotEndpoint, BotError, BotReply, BotRequest};
use async_trait::async_trait;

/// Delivers customer events to bots.
#[async_trait]
pub trait BotHook: Send + Sync {
    async fn deliver(
        &self,
        endpoint: &BotEndpoint,
        request: &BotRequest,
    ) -> Result<BotReply, BotError>;
}
