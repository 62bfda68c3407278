//! The AWS adapters over the real wire protocols, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`), plus SQS partial failures from a
//! wiremock server speaking SQS's JSON protocol.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::line::envelope::QueueMessage;
use omniline_domain::secret::SecretString;
use omniline_ports::{AccountStore, EventQueue, PortError};
use omniline_tests::{drain, endpoint, fifo_queue, pk_sk_table, sdk_config, unique};
use serde_json::json;
use std::collections::HashMap;

fn message(group: &str, i: usize) -> QueueMessage {
    QueueMessage {
        group_id: group.to_owned(),
        dedup_id: format!("01HEVENT{i:018}"),
        body: json!({"i": i, "text": "こんにちは 😀\n\"q\""}).to_string(),
    }
}

/// The EventQueue contract (omniline_testkit::event_queue_contract), as the SQLite adapter's
/// test runs it: 23 messages are three SendMessageBatch calls; SQS drops the redelivery by its
/// deduplication ids. Drained with ReceiveMessage and DeleteMessage.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn sqs_fifo_send_batches_keeps_group_order_and_deduplicates() {
    let config = sdk_config(&endpoint()).await;
    let url = fifo_queue(&config, "inbound").await;
    let queue = SqsEventQueue::new(&config, &url);
    let drain = async || {
        drain(&config, &url)
            .await
            .into_iter()
            .map(|(group_id, dedup_id, body)| QueueMessage {
                group_id,
                dedup_id,
                body,
            })
            .collect()
    };
    let received = omniline_testkit::event_queue_contract::sends_each_message_once_in_group_order(
        &queue, drain,
    )
    .await;
    assert_eq!(received[0].dedup_id, "01HEVENT000000000000000000");
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn sqs_errors_are_errors() {
    let config = sdk_config(&endpoint()).await;
    let queue = SqsEventQueue::new(
        &config,
        format!("{}/123456789012/does-not-exist.fifo", endpoint()),
    );
    let err = queue.send(&[message("g", 1)]).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
}

/// SendMessageBatch answers 200 even when entries fail: the adapter must read `Failed`.
#[tokio::test]
async fn sqs_partial_batch_failure_is_an_error() {
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSQS.SendMessageBatch"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-amz-json-1.0")
                .set_body_json(json!({
                    "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "00000000000000000000000000000000"}],
                    "Failed": [{"Id": "1", "SenderFault": false, "Code": "InternalError", "Message": "try again"}]
                })),
        )
        .expect(1)
        .mount(&server)
        .await;
    let config = sdk_config(&server.uri()).await;
    let queue = SqsEventQueue::new(&config, format!("{}/123456789012/q.fifo", server.uri()));
    let err = queue
        .send(&[message("g", 0), message("g", 1)])
        .await
        .unwrap_err();
    match err {
        PortError::PartialBatch {
            failed,
            total,
            reason,
        } => {
            assert_eq!((failed, total), (1, 2));
            assert!(reason.contains("InternalError"));
        }
        other => panic!("expected a partial failure, got {other:?}"),
    }
}

/// The AccountStore contract (omniline_testkit::account_contract), as the SQLite adapter's
/// test runs it: accounts and their counters in the config table.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_account_store_crud_conflicts_and_counters() {
    let config = sdk_config(&endpoint()).await;
    let store = DynamoAccountStore::new(&config, pk_sk_table(&config, "config").await);
    omniline_testkit::account_contract::crud_conflicts_and_counters(&store).await;
}

/// The account list is the `ACCOUNTS` partition: an account written before it (a profile item
/// alone) is not listed until the backfill job lists it; a deleted account's profile is gone, and
/// the backfill does not bring it back.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_account_list_backfill_lists_accounts_written_before_the_list() {
    use omniline_testkit::account_contract::account;
    let config = sdk_config(&endpoint()).await;
    let table = pk_sk_table(&config, "config").await;
    let store = DynamoAccountStore::new(&config, &table);
    store
        .create(&account("old", "2024-01-01T00:00:00.000Z"))
        .await
        .unwrap();
    store
        .create(&account("new", "2025-01-01T00:00:00.000Z"))
        .await
        .unwrap();
    // "old" as written before the list: its profile only.
    omniline_tests::delete_raw(&config, &table, "ACCOUNTS", "old").await;
    let ids = |accounts: Vec<omniline_domain::account::Account>| {
        accounts.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(store.list().await.unwrap()), ["new"]);
    assert_eq!(store.backfill_account_index().await.unwrap(), 2);
    assert_eq!(ids(store.list().await.unwrap()), ["old", "new"]);
    assert!(store.delete("old").await.unwrap());
    assert_eq!(store.backfill_account_index().await.unwrap(), 1);
    assert_eq!(ids(store.list().await.unwrap()), ["new"]);
}

/// The SecretStore contract (omniline_testkit::secret_contract), as the SQLite adapter's test
/// runs it; then Secrets Manager's own: the names are under the store's prefix.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn secrets_manager_store_creates_replaces_reads_and_deletes() {
    let config = sdk_config(&endpoint()).await;
    let prefix = format!("{}/", unique("stack"));
    let store = SecretsManagerStore::new(&config, &prefix);
    omniline_testkit::secret_contract::creates_replaces_reads_and_deletes(&store).await;
    // The prefix is applied: the full id reads the same secret; the bare name is another one.
    let full = store
        .get_by_id(&format!("{prefix}accounts/y"))
        .await
        .unwrap();
    assert_eq!(full.unwrap().expose(), "{\"v\":\"y\"}");
    assert_eq!(store.get_by_id("accounts/y").await.unwrap(), None);
    assert_eq!(
        store
            .get_by_id(&format!("{prefix}accounts/x"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn the_local_stack_on_aws_adapters_queues_signed_webhooks_to_sqs() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let endpoint = endpoint();
    let config = sdk_config(&endpoint).await;
    let table = pk_sk_table(&config, "config").await;
    let queue_url = fifo_queue(&config, "inbound").await;
    let line = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "Uaws", "basicId": "@aws", "displayName": "AWS Shop", "chatMode": "chat", "markAsReadMode": "manual"
        })))
        .mount(&line)
        .await;
    // The stack builds its own SDK config from the environment, as on Lambda.
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "ap-northeast-1");
    let data = tempfile::tempdir().unwrap();
    // Media live under DATA_DIR here (no bucket): omniline-local wants it private.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let stack = omniline_local::start(omniline_local::LocalConfig {
        port: 0,
        admin_token: Some(SecretString::new("aws-admin")),
        public_base_url: None,
        line: omniline_line::LineApiConfig {
            api_base: line.uri(),
            data_api_base: line.uri(),
            timeout: std::time::Duration::from_secs(10),
            ..omniline_line::LineApiConfig::default()
        },
        data_dir: data.path().to_owned(),
        backend: omniline_local::Backend::Aws {
            endpoint_url: Some(endpoint.clone()),
            config_table: table,
            inbound_queue_url: queue_url.clone(),
            secret_prefix: format!("{}/", unique("stack")),
            conversations_table: None,
            media_bucket: None,
        },
        durability: omniline_embedded::Durability::Machine,
        router_workers: 1,
        outbound_workers: 1,
        schedule_every: std::time::Duration::from_secs(60),
        sandbox: false,
        aws_workers: None,
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    // The agent console is served on the AWS backend too (no router in this process).
    let console = client
        .get(format!("{}/console", stack.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(console.status(), 200);
    assert!(console.text().await.unwrap().contains("/console/v/"));
    let secret = "00112233445566778899aabbccddeeff";
    let r = client
        .post(format!("{}/admin/v1/accounts", stack.base_url))
        .bearer_auth("aws-admin")
        .json(&json!({"name": "AWS", "channelId": "1", "channelSecret": secret, "channelAccessToken": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: serde_json::Value = r.json().await.unwrap();
    let body = json!({"destination": "Uaws", "events": [
        {"type": "message", "webhookEventId": "01AWS000000000000000000001", "timestamp": omniline_domain::clock::now_millis(), "mode": "active",
         "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "Ux"},
         "message": {"type": "sticker", "id": "5", "packageId": "1", "stickerId": "1", "stickerResourceType": "STATIC"}}
    ]})
    .to_string();
    let signature = omniline_domain::line::signature::sign(secret.as_bytes(), body.as_bytes());
    let r = client
        .post(created["callbackUrl"].as_str().unwrap())
        .header("x-line-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let received = drain(&config, &queue_url).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].0,
        format!("{}:Ux", created["id"].as_str().unwrap())
    );
    assert_eq!(received[0].1, "01AWS000000000000000000001");
    let stats: HashMap<String, serde_json::Value> = client
        .get(format!(
            "{}/admin/v1/accounts/{}/webhook-stats",
            stack.base_url,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth("aws-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["queued"], 1);
    stack.shutdown().await.unwrap();
}

/// The webhook over the real SQS adapter: a batch that SQS accepts only in part is a 503, so LINE
/// redelivers (and the deduplication ids make the resend harmless).
#[tokio::test]
async fn a_partly_failed_batch_makes_the_webhook_answer_503() {
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", "AmazonSQS.SendMessageBatch"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/x-amz-json-1.0")
                .set_body_json(json!({
                    "Successful": [],
                    "Failed": [{"Id": "0", "SenderFault": false, "Code": "ServiceUnavailable", "Message": "busy"}]
                })),
        )
        .mount(&server)
        .await;
    let config = sdk_config(&server.uri()).await;
    let dir = tempfile::tempdir().unwrap();
    let embedded = omniline_testkit::EmbeddedAdapters::open(dir.path()).unwrap();
    let secret = "8c570fa6dd201bb328f1c1eac23a96d8";
    omniline_testkit::seed_account(
        embedded.accounts.as_ref(),
        embedded.secrets.as_ref(),
        "acc",
        secret,
    )
    .await
    .unwrap();
    let ingest = omniline_app::ingest::WebhookIngest::new(
        embedded.accounts.clone(),
        embedded.secrets.clone(),
        std::sync::Arc::new(SqsEventQueue::new(
            &config,
            format!("{}/123456789012/q.fifo", server.uri()),
        )),
        // The events' timestamp (1 ms after the epoch) is then a second old.
        std::sync::Arc::new(|| 1_000),
    );
    let app = webhook::router(std::sync::Arc::new(ingest));
    let body = json!({"destination": "U", "events": [{"type": "unfollow", "webhookEventId": "E1", "timestamp": 1,
        "mode": "active", "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "U1"}}]})
    .to_string();
    let status = post_webhook(
        app,
        "acc",
        &omniline_domain::line::signature::sign(secret.as_bytes(), body.as_bytes()),
        body,
    )
    .await;
    assert_eq!(status, 503);
    let stats = embedded.accounts.webhook_stats("acc").await.unwrap();
    assert_eq!((stats.received, stats.queued), (1, 0));
}

/// Serves `app` on a loopback port for one request, over real HTTP.
async fn post_webhook(app: axum::Router, account: &str, signature: &str, body: String) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/line/webhook/{account}"))
        .header("x-line-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    server.abort();
    status
}
