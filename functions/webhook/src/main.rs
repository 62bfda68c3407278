//! Lambda entry point of the webhook function: typed config from the environment, clients built
//! once, then the router served on Lambda (or on `$PORT` outside Lambda). It also serves the
//! signed media links LINE fetches outbound media through (`GET /media/{key}`).

use omniline_aws::s3::S3ObjectStore;
use omniline_runtime::config::optional;
use omniline_wiring::aws::load_sdk_config;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    omniline_runtime::telemetry::init();
    let endpoint = optional("AWS_ENDPOINT_URL");
    let sdk = load_sdk_config(endpoint.as_deref()).await;
    let secrets = omniline_wiring::aws::secrets(&sdk);
    let ingest = omniline_wiring::aws::webhook_ingest(&sdk, secrets.clone())?;
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
            clock: omniline_domain::clock::system_clock(),
        }));
    }
    omniline_runtime::http::serve(app, 9001).await
}
