//! Lambda entry point of the admin function: typed config from the environment, clients and the
//! admin token loaded once, then the router served on Lambda (or on `$PORT` outside Lambda).

use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_aws::{load_sdk_config, DynamoAccountStore, SecretsManagerStore};
use omniline_domain::clock::system_clock;
use omniline_line::api::HttpLineApi;
use omniline_runtime::config::{base_url, optional, required};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    omniline_runtime::telemetry::init();
    let table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let media_bucket = required("MEDIA_BUCKET")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let token_secret_id = required("ADMIN_TOKEN_SECRET_ID")?;
    // The base of callback URLs: the webhook's function URL when LINE posts there
    // (WebhookEntry=FunctionUrl), else the public base (the HTTP API, or its custom domain).
    let public_base_url = match optional("WEBHOOK_BASE_URL") {
        Some(url) => Some(base_url("WEBHOOK_BASE_URL", &url)?),
        None => optional("PUBLIC_BASE_URL")
            .map(|u| base_url("PUBLIC_BASE_URL", &u))
            .transpose()?,
    };
    let line_config = omniline_wiring::line_api_from_env()?;

    let endpoint = optional("AWS_ENDPOINT_URL");
    let sdk = load_sdk_config(endpoint.as_deref()).await;
    let secrets = Arc::new(SecretsManagerStore::new(&sdk, prefix));
    // Read on the first request: init makes no network call.
    let admin_token = secrets.lazy_by_id(&token_secret_id, "ADMIN_TOKEN_SECRET_ID");
    let deps = admin::AdminDeps {
        accounts: Arc::new(DynamoAccountStore::new(&sdk, &table)),
        secrets,
        line: Arc::new(HttpLineApi::new(&line_config)?),
        config: Arc::new(DynamoConfigStore::new(&sdk, &table)),
        workstreams: Arc::new(DynamoWorkstreamStore::new(&sdk, &table)),
        agents: Arc::new(DynamoAgentStore::new(&sdk, &table)),
        conversations: Arc::new(DynamoConversationStore::new(&sdk, &conversations_table)),
        deliveries: Arc::new(DynamoDeliveryStore::new(&sdk, &conversations_table)),
        media: Arc::new(S3ObjectStore::new(&sdk, media_bucket, endpoint.is_some())),
    };
    let state = admin::AdminState::new(deps, system_clock(), admin_token, public_base_url)
        .with_oidc(omniline_wiring::oidc_verifier(system_clock())?);
    omniline_runtime::http::serve(admin::router(state), 9002).await
}
