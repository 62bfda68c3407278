//! Lambda entry point of the webhook function: typed config from the environment, clients built
//! once, then the router served on Lambda (or on `$PORT` outside Lambda). It also serves the
//! signed media links LINE fetches outbound media through (`GET /media/{key}`).

use omniline_app::ingest::WebhookIngest;
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::{load_sdk_config, DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_runtime::config::{optional, required};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    omniline_runtime::telemetry::init();
    let table = required("CONFIG_TABLE")?;
    let queue_url = required("INBOUND_QUEUE_URL")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let endpoint = optional("AWS_ENDPOINT_URL");
    let sdk = load_sdk_config(endpoint.as_deref()).await;
    let secrets = Arc::new(SecretsManagerStore::new(&sdk, prefix));
    let ingest = WebhookIngest::new(
        Arc::new(DynamoAccountStore::new(&sdk, table)),
        secrets.clone(),
        Arc::new(SqsEventQueue::new(&sdk, queue_url)),
    );
    let mut app = webhook::router(Arc::new(ingest));
    if let (Some(bucket), Some(secret_id)) = (
        optional("MEDIA_BUCKET"),
        optional("MEDIA_SIGNING_SECRET_ID"),
    ) {
        // Read on the first media request: init makes no network call.
        let signing_secret = secrets.lazy_by_id(&secret_id, "MEDIA_SIGNING_SECRET_ID");
        app = app.merge(webhook::media::router(webhook::media::MediaState {
            objects: Arc::new(S3ObjectStore::new(&sdk, bucket, endpoint.is_some())),
            signing_secret,
            clock: Arc::new(omniline_domain::clock::now_millis),
        }));
    }
    omniline_runtime::http::serve(app, 9001).await
}
