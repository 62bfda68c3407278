//! The AWS backend: adapters over one `SdkConfig`, named by the environment (`template.yaml` sets
//! each function's variables). Every Lambda's `main.rs` calls one function here and serves it.

use crate::Stores;
use omniline_app::ingest::WebhookIngest;
use omniline_app::jobs::{PurgeDeps, PurgeJobs};
use omniline_app::outbound::{MediaLinks, OutboundDeps, OutboundService};
use omniline_app::router::{RouterDeps, RouterService};
use omniline_app::tokens::ChannelTokens;
use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::clock::system_clock;
use omniline_line::{HttpBotHook, HttpLineApi};
use omniline_ports::ObjectStore;
use omniline_runtime::config::{base_url, optional, required};
use std::sync::Arc;

pub use omniline_aws::load_sdk_config;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where a deployment's data lives on AWS (the names `template.yaml` gives its resources).
#[derive(Debug, Clone)]
pub struct Resources {
    pub config_table: String,
    pub conversations_table: String,
    pub inbound_queue_url: String,
    pub secret_prefix: String,
    /// `None`: media go to `local_media` (the local stack's data directory).
    pub media_bucket: Option<String>,
    /// Path-style S3 addressing (moto and other local endpoints).
    pub force_path_style: bool,
}

/// Every store and queue of a deployment: the local stack's AWS backend. `local_media` holds
/// media when there is no bucket.
pub fn stores(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    local_media: impl FnOnce() -> Arc<dyn ObjectStore>,
) -> Stores {
    let Resources {
        config_table,
        conversations_table,
        inbound_queue_url,
        secret_prefix,
        media_bucket,
        force_path_style,
    } = resources;
    Stores {
        accounts: Arc::new(DynamoAccountStore::new(sdk, config_table)),
        secrets: Arc::new(SecretsManagerStore::new(sdk, secret_prefix.clone())),
        inbound: Arc::new(SqsEventQueue::new(sdk, inbound_queue_url.clone())),
        config: Arc::new(DynamoConfigStore::new(sdk, config_table)),
        workstreams: Arc::new(DynamoWorkstreamStore::new(sdk, config_table)),
        agents: Arc::new(DynamoAgentStore::new(sdk, config_table)),
        conversations: Arc::new(
            DynamoConversationStore::new(sdk, conversations_table).with_agents_table(config_table),
        ),
        deliveries: Arc::new(DynamoDeliveryStore::new(sdk, conversations_table)),
        media: match media_bucket {
            Some(bucket) => Arc::new(S3ObjectStore::new(sdk, bucket, *force_path_style)),
            None => local_media(),
        },
    }
}

/// The webhook's use case from `CONFIG_TABLE`, `INBOUND_QUEUE_URL` and `SECRET_PREFIX`.
pub fn webhook_ingest(
    sdk: &aws_config::SdkConfig,
    secrets: Arc<SecretsManagerStore>,
) -> Result<WebhookIngest, Error> {
    Ok(WebhookIngest::new(
        Arc::new(DynamoAccountStore::new(sdk, required("CONFIG_TABLE")?)),
        secrets,
        Arc::new(SqsEventQueue::new(sdk, required("INBOUND_QUEUE_URL")?)),
        system_clock(),
    )
    .with_counter_flush(omniline_app::ingest::COUNTER_FLUSH))
}

/// Secrets Manager under `SECRET_PREFIX` (empty when unset).
pub fn secrets(sdk: &aws_config::SdkConfig) -> Arc<SecretsManagerStore> {
    Arc::new(SecretsManagerStore::new(
        sdk,
        optional("SECRET_PREFIX").unwrap_or_default(),
    ))
}

/// The bot hook: public https bots only; `BOT_ALLOW_PRIVATE_NETWORKS=true` (a development stack in
/// a private network) lifts it.
fn bot_hook() -> Result<HttpBotHook, Error> {
    let connect_timeout = std::time::Duration::from_secs(3);
    Ok(
        if optional("BOT_ALLOW_PRIVATE_NETWORKS").as_deref() == Some("true") {
            HttpBotHook::allowing_private_networks(connect_timeout)?
        } else {
            HttpBotHook::new(connect_timeout)?
        },
    )
}

/// The router's use case (shared by the router and the agent function) from `CONFIG_TABLE`,
/// `CONVERSATIONS_TABLE`, `OUTBOUND_QUEUE_URL`, `MEDIA_BUCKET`, `SECRET_PREFIX`, `LINE_API_BASE`,
/// `LINE_DATA_API_BASE`, `BOT_ALLOW_PRIVATE_NETWORKS` and the optional `AWS_ENDPOINT_URL`.
pub fn router_service(sdk: &aws_config::SdkConfig) -> Result<RouterService, Error> {
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let outbound_queue_url = required("OUTBOUND_QUEUE_URL")?;
    let media_bucket = required("MEDIA_BUCKET")?;
    let line_config = crate::line_api_from_env()?;
    let endpoint = optional("AWS_ENDPOINT_URL");
    let accounts = Arc::new(DynamoAccountStore::new(sdk, &config_table));
    let secrets = secrets(sdk);
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
        bot: Arc::new(bot_hook()?),
        tokens,
        clock: system_clock(),
    }))
}

/// The background jobs the router's schedule runs (account purges: the conversations table's
/// conversations and deliveries, the config table's job documents and contacts, the media
/// bucket's inbound media) from `CONFIG_TABLE`, `CONVERSATIONS_TABLE`, `MEDIA_BUCKET` and the
/// optional `AWS_ENDPOINT_URL`.
pub fn purge_jobs(sdk: &aws_config::SdkConfig) -> Result<PurgeJobs, Error> {
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let media_bucket = required("MEDIA_BUCKET")?;
    let endpoint = optional("AWS_ENDPOINT_URL");
    Ok(PurgeJobs::new(
        PurgeDeps {
            config: Arc::new(DynamoConfigStore::new(sdk, &config_table)),
            conversations: Arc::new(DynamoConversationStore::new(sdk, &conversations_table)),
            deliveries: Arc::new(DynamoDeliveryStore::new(sdk, &conversations_table)),
            media: Arc::new(S3ObjectStore::new(sdk, media_bucket, endpoint.is_some())),
        },
        system_clock(),
    ))
}

/// The outbound use case from `CONFIG_TABLE`, `CONVERSATIONS_TABLE`, `SECRET_PREFIX`,
/// `PUBLIC_BASE_URL` and `MEDIA_SIGNING_SECRET_ID` (signed media links, both or neither),
/// `LINE_API_BASE` and `LINE_DATA_API_BASE`.
pub fn outbound_service(sdk: &aws_config::SdkConfig) -> Result<OutboundService, Error> {
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let line_config = crate::line_api_from_env()?;
    let secrets = secrets(sdk);
    let media = match (
        optional("PUBLIC_BASE_URL"),
        optional("MEDIA_SIGNING_SECRET_ID"),
    ) {
        (Some(base), Some(secret_id)) => Some(MediaLinks {
            base_url: base_url("PUBLIC_BASE_URL", &base)?,
            // Read on the first delivery: init makes no network call.
            signing_secret: secrets.lazy_by_id(&secret_id, "MEDIA_SIGNING_SECRET_ID"),
        }),
        _ => None,
    };
    let line = Arc::new(HttpLineApi::new(&line_config)?);
    let accounts = Arc::new(DynamoAccountStore::new(sdk, &config_table));
    let tokens = ChannelTokens::new(accounts.clone(), secrets, line.clone());
    Ok(OutboundService::new(OutboundDeps {
        accounts,
        agents: Arc::new(DynamoAgentStore::new(sdk, &config_table)),
        deliveries: Arc::new(DynamoDeliveryStore::new(sdk, &conversations_table)),
        config: Arc::new(DynamoConfigStore::new(sdk, &config_table)),
        conversations: Arc::new(DynamoConversationStore::new(sdk, &conversations_table)),
        line,
        tokens: Arc::new(tokens),
        media,
        clock: system_clock(),
    })
    // An account's message counts: one write per 10 s per instance, not one per message.
    .with_counter_flush(omniline_app::ingest::COUNTER_FLUSH))
}
