//! The outbound function on the AWS path against moto: messages received from a real SQS FIFO
//! queue, delivery records in DynamoDB, credentials in Secrets Manager, LINE served by wiremock.

use aws_lambda_events::event::sqs::SqsEvent;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::delivery::DeliveryStatus;
use omniline_domain::outbound::{text_message, Origin, OutboundMessage};
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::{DeliveryStore, EventQueue};
use omniline_tests::{endpoint, fifo_queue, pk_sk_table, sdk_config, unique};
use outbound::lambda::{handle_sqs, SqsRetryDelay};
use outbound::{ChannelTokens, OutboundDeps, OutboundService};
use serde_json::json;
use std::sync::Arc;
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "acc1";

fn message(id: &str, to: &str) -> OutboundMessage {
    OutboundMessage {
        id: id.into(),
        account_id: ACCOUNT.into(),
        conversation_id: format!("conv-{to}"),
        to: to.into(),
        origin: Origin::Agent,
        trigger: None,
        messages: vec![text_message(&format!("message {id}"))],
        reply_token: None,
        reply_token_received_at: None,
        sender: None,
        created_at: 0,
        agent_id: None,
    }
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_batch_reports_exactly_the_failed_message_and_the_rest_of_its_group() {
    let config = sdk_config(&endpoint()).await;
    let config_table = pk_sk_table(&config, "config").await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    let queue_url = fifo_queue(&config, "outbound").await;
    let accounts = Arc::new(DynamoAccountStore::new(&config, &config_table));
    let secrets = Arc::new(SecretsManagerStore::new(
        &config,
        format!("{}/", unique("stack")),
    ));
    omniline_testkit::seed_account(
        accounts.as_ref(),
        secrets.as_ref(),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let line = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(body_partial_json(json!({"to": "Ubroken"})))
        .respond_with(ResponseTemplate::new(500))
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sentMessages": [{"id": "9", "quoteToken": "q"}]})),
        )
        .mount(&line)
        .await;
    let api = Arc::new(
        HttpLineApi::new(&LineApiConfig {
            api_base: line.uri(),
            data_api_base: line.uri(),
            ..LineApiConfig::default()
        })
        .unwrap(),
    );
    let deliveries = Arc::new(DynamoDeliveryStore::new(&config, &conversations_table));
    let service = OutboundService::new(OutboundDeps {
        accounts: accounts.clone(),
        agents: Arc::new(omniline_aws::dynamo_agents::DynamoAgentStore::new(
            &config,
            &config_table,
        )),
        deliveries: deliveries.clone(),
        config: Arc::new(omniline_aws::config_docs::DynamoConfigStore::new(
            &config,
            &config_table,
        )),
        conversations: Arc::new(DynamoConversationStore::new(&config, &conversations_table)),
        line: api.clone(),
        tokens: Arc::new(ChannelTokens::new(accounts, secrets, api)),
        media: None,
        clock: Arc::new(omniline_domain::clock::now_millis),
    });

    // Four messages through a real FIFO queue: two to a recipient LINE refuses (5xx), two fine.
    let queue = SqsEventQueue::new(&config, &queue_url);
    let queued: Vec<_> = [
        message("b1", "Ubroken"),
        message("ok1", "Ufine"),
        message("b2", "Ubroken"),
        message("ok2", "Uother"),
    ]
    .iter()
    .map(OutboundMessage::to_queue_message)
    .collect();
    queue.send(&queued).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .visibility_timeout(30)
        .send()
        .await
        .unwrap();
    let records: Vec<_> = received
        .messages()
        .iter()
        .map(|m| {
            let attributes = m.attributes().cloned().unwrap_or_default();
            json!({
                "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                "attributes": {
                    "MessageGroupId": attributes.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId),
                    "ApproximateReceiveCount": "1"
                },
                "messageAttributes": {}, "eventSource": "aws:sqs"
            })
        })
        .collect();
    assert_eq!(records.len(), 4);
    let ids: Vec<String> = received
        .messages()
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    let by_body = |needle: &str| {
        received
            .messages()
            .iter()
            .find(|m| m.body().unwrap().contains(needle))
            .unwrap()
            .message_id()
            .unwrap()
            .to_owned()
    };
    let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let delay = SqsRetryDelay {
        client: sqs.clone(),
        queue_url: queue_url.clone(),
    };
    let response = handle_sqs(&service, event, &delay).await;

    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    let mut expected = vec![by_body("\"b1\""), by_body("\"b2\"")];
    expected.sort();
    assert_eq!(
        failed, expected,
        "b1 failed and b2, later in its group, was held back; of {ids:?}"
    );
    assert_eq!(
        deliveries.delivery("ok1").await.unwrap().unwrap().status,
        DeliveryStatus::Sent
    );
    assert_eq!(
        deliveries.delivery("ok2").await.unwrap().unwrap().status,
        DeliveryStatus::Sent
    );
    assert_eq!(
        deliveries.delivery("b1").await.unwrap().unwrap().status,
        DeliveryStatus::Queued
    );
    assert!(
        deliveries.delivery("b2").await.unwrap().is_none(),
        "b2 was not attempted"
    );
}
