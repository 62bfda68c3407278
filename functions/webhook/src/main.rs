//! Lambda entry point of the webhook function: typed config from the environment, clients built
//! once, then the router served on Lambda (or on `$PORT` outside Lambda).

use shared::adapters::aws::{
    load_sdk_config, DynamoAccountStore, SecretsManagerStore, SqsEventQueue,
};
use shared::config::{optional, required};
use shared::ingest::WebhookIngest;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let table = required("CONFIG_TABLE")?;
    let queue_url = required("INBOUND_QUEUE_URL")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    let ingest = WebhookIngest::new(
        Arc::new(DynamoAccountStore::new(&sdk, table)),
        Arc::new(SecretsManagerStore::new(&sdk, prefix)),
        Arc::new(SqsEventQueue::new(&sdk, queue_url)),
    );
    shared::http::serve(webhook::router(Arc::new(ingest)), 9001).await
}
