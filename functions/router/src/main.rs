//! Lambda entry point of the router: typed config from the environment, clients built once,
//! then the runtime loop (SQS batches and the schedule: auto-close, distribution, background
//! jobs).

use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use omniline_aws::SqsRetryDelay;
use omniline_runtime::config::{optional, required};
use omniline_wiring::aws::load_sdk_config;
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    omniline_runtime::telemetry::init();
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    // Its schedule also runs the background jobs (account purges the admin API recorded).
    let router = Arc::new(
        omniline_wiring::aws::router_service(&sdk)?
            .with_purge_jobs(omniline_wiring::aws::purge_jobs(&sdk)?),
    );
    // Failed inbound messages are retried after a growing delay (ChangeMessageVisibility).
    let delay = Arc::new(SqsRetryDelay {
        client: aws_sdk_sqs::Client::new(&sdk),
        queue_url: required("INBOUND_QUEUE_URL")?,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (router, delay) = (Arc::clone(&router), Arc::clone(&delay));
        async move {
            router::lambda::handle_with_retry(&router, event.payload, Some(delay.as_ref()))
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
