//! The router use case on the AWS adapters, configured from the environment: shared by the
//! router function and the agent function (which runs the same use cases for agents).

use crate::{system_clock, RouterDeps, RouterService};
use shared::adapters::aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use shared::adapters::config_docs::DynamoConfigStore;
use shared::adapters::dynamo_agents::DynamoAgentStore;
use shared::adapters::dynamo_conversations::DynamoConversationStore;
use shared::adapters::workstreams::DynamoWorkstreamStore;
use shared::bot::HttpBotHook;
use shared::config::{optional, required};
use shared::line::api::HttpLineApi;
use shared::line::tokens::ChannelTokens;
use shared::media::S3ObjectStore;
use std::sync::Arc;

/// Builds the [`RouterService`] from `CONFIG_TABLE`, `CONVERSATIONS_TABLE`, `OUTBOUND_QUEUE_URL`,
/// `MEDIA_BUCKET`, `SECRET_PREFIX`, `LINE_API_BASE`, `LINE_DATA_API_BASE` and the optional
/// `AWS_ENDPOINT_URL`, over one `SdkConfig`.
pub fn aws_router_service(
    sdk: &aws_config::SdkConfig,
) -> Result<RouterService, Box<dyn std::error::Error + Send + Sync>> {
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let outbound_queue_url = required("OUTBOUND_QUEUE_URL")?;
    let media_bucket = required("MEDIA_BUCKET")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let line_config = shared::config::line_api_from_env()?;
    let endpoint = optional("AWS_ENDPOINT_URL");
    let accounts = Arc::new(DynamoAccountStore::new(sdk, &config_table));
    let secrets = Arc::new(SecretsManagerStore::new(sdk, prefix));
    let line = Arc::new(HttpLineApi::new(&line_config)?);
    let tokens = Arc::new(ChannelTokens::new(
        accounts.clone(),
        secrets.clone(),
        line.clone(),
    ));
    Ok(RouterService::new(RouterDeps {
        accounts,
        secrets,
        conversations: Arc::new(
            DynamoConversationStore::new(sdk, conversations_table).with_agents_table(&config_table),
        ),
        workstreams: Arc::new(DynamoWorkstreamStore::new(sdk, &config_table)),
        agents: Arc::new(DynamoAgentStore::new(sdk, &config_table)),
        config: Arc::new(DynamoConfigStore::new(sdk, &config_table)),
        outbound: Arc::new(SqsEventQueue::new(sdk, outbound_queue_url)),
        media: Arc::new(S3ObjectStore::new(sdk, media_bucket, endpoint.is_some())),
        line,
        // Public https bots only; `BOT_ALLOW_PRIVATE_NETWORKS=true` (a development stack in a
        // private network) lifts it.
        bot: Arc::new(
            if optional("BOT_ALLOW_PRIVATE_NETWORKS").as_deref() == Some("true") {
                HttpBotHook::allowing_private_networks(std::time::Duration::from_secs(3))?
            } else {
                HttpBotHook::new(std::time::Duration::from_secs(3))?
            },
        ),
        tokens,
        clock: system_clock(),
    }))
}
