//! Bots' webhooks.

use async_trait::async_trait;
use omniline_domain::bot::{BotEndpoint, BotError, BotReply, BotRequest};

/// Delivers customer events to bots.
#[async_trait]
pub trait BotHook: Send + Sync {
    async fn deliver(
        &self,
        endpoint: &BotEndpoint,
        request: &BotRequest,
    ) -> Result<BotReply, BotError>;
}
