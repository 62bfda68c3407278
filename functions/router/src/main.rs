//! Lambda entry point of the router: typed config from the environment, clients built once,
//! then the runtime loop (SQS batches and the auto-close schedule).

use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use serde_json::Value;
use shared::adapters::aws::load_sdk_config;
use shared::config::optional;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    let router = Arc::new(router::wiring::aws_router_service(&sdk)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let router = Arc::clone(&router);
        async move {
            router::lambda::handle(&router, event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
