//! Lambda entry point of the outbound function: typed config from the environment, clients built
//! once, then the runtime loop over SQS batches of the outbound FIFO queue.

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::{load_sdk_config, DynamoAccountStore, SecretsManagerStore};
use omniline_line::api::HttpLineApi;
use omniline_runtime::config::{base_url, optional, required};
use outbound::lambda::{handle_sqs, SqsRetryDelay};
use outbound::{ChannelTokens, MediaLinks, OutboundDeps, OutboundService};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    omniline_runtime::telemetry::init();
    let config_table = required("CONFIG_TABLE")?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let queue_url = required("OUTBOUND_QUEUE_URL")?;
    let prefix = optional("SECRET_PREFIX").unwrap_or_default();
    let line_config = omniline_wiring::line_api_from_env()?;
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    let secrets = Arc::new(SecretsManagerStore::new(&sdk, prefix));
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
    let tokens = ChannelTokens::new(
        Arc::new(DynamoAccountStore::new(&sdk, &config_table)),
        secrets,
        line.clone(),
    );
    let service = Arc::new(OutboundService::new(OutboundDeps {
        deliveries: Arc::new(DynamoDeliveryStore::new(&sdk, &conversations_table)),
        conversations: Arc::new(DynamoConversationStore::new(&sdk, &conversations_table)),
        line,
        tokens: Arc::new(tokens),
        media,
        clock: Arc::new(omniline_domain::clock::now_millis),
    }));
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
