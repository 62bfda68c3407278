//! Lambda entry point of the outbound function: typed config from the environment, clients built
//! once, then the runtime loop over SQS batches of the outbound FIFO queue.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use omniline_runtime::config::{optional, required};
use omniline_wiring::aws::load_sdk_config;
use outbound::lambda::{handle_sqs, SqsRetryDelay};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    omniline_runtime::telemetry::init();
    let queue_url = required("OUTBOUND_QUEUE_URL")?;
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    let service = Arc::new(omniline_wiring::aws::outbound_service(&sdk)?);
    let delay = Arc::new(SqsRetryDelay {
        client: aws_sdk_sqs::Client::new(&sdk),
        queue_url,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (service, delay) = (Arc::clone(&service), Arc::clone(&delay));
        async move {
            Ok::<_, lambda_runtime::Error>(
                handle_sqs(&service, event.payload, delay.as_ref()).await,
            )
        }
    }))
    .await
}
