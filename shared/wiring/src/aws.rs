//! The router use case on the AWS adapters, configured from the environment: shared by the
//! router function and the agent function (which runs the same use cases for agents).

use omniline_app::router::{RouterDeps, RouterService};
use omniline_app::tokens::ChannelTokens;
use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::clock::system_clock;
use omniline_line::api::HttpLineApi;
use omniline_line::bot::HttpBotHook;
use omniline_runtime::config::{optional, required};
use std::sync::Arc;

/// Builds the [`RouterService`] from `CONFIG_TABLE`, `CONVERSATIONS_TABLE`, `OUTBOUND_QUEUE_URL`,
/// `MEDIA_BUCKET`, `SECRET_PREFIX`, `LINE_API_BASE`, `LINE_DATA_API_BASE` and the optional
/// `AWS_ENDPOINT_URL`, over one `SdkConfig`.
pub fn router_service(
    sdk: &aws_config::SdkConfig,
) -> Result<RouterService, Box<dyn std::error::Error + Send + Sync>> {
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let outbound_queue_url = required("OUTBOUND_QUEUE_URL")?;
    let media_bucket = required("MEDIA_BUCKET")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let line_config = crate::line_api_from_env()?;
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
