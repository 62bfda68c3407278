//! The router on the AWS adapters (DynamoDB, SQS FIFO, S3, Secrets Manager) against moto, with
//! LINE served by wiremock: the same use case as on the embedded adapters, over the wire.

use omniline_tests::{bucket, drain, endpoint, fifo_queue, pk_sk_table, sdk_config, unique};
use router::{Processed, RouterDeps, RouterService};
use serde_json::{json, Value};
use shared::adapters::aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use shared::adapters::dynamo_agents::DynamoAgentStore;
use shared::adapters::dynamo_conversations::DynamoConversationStore;
use shared::adapters::workstreams::DynamoWorkstreamStore;
use shared::agents::{Agent, AgentStatus, AgentStore};
use shared::bot::HttpBotHook;
use shared::conversation::ConversationState;
use shared::line::api::{HttpLineApi, LineApiConfig};
use shared::media::{ObjectStore, S3ObjectStore};
use shared::outbound::OutboundMessage;
use shared::ports::{ConversationStore, WorkstreamStore};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "acc1";
const T0: i64 = 1_795_575_600_000;

struct Aws {
    router: Arc<RouterService>,
    conversations: Arc<DynamoConversationStore>,
    agents: Arc<DynamoAgentStore>,
    media: Arc<S3ObjectStore>,
    config: aws_config::SdkConfig,
    outbound_url: String,
    now: Arc<AtomicI64>,
    _line: MockServer,
}

async fn aws() -> Aws {
    let config = sdk_config(&endpoint()).await;
    let config_table = pk_sk_table(&config, "config").await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    let outbound_url = fifo_queue(&config, "outbound").await;
    let media_bucket = bucket(&config).await;
    let accounts = Arc::new(DynamoAccountStore::new(&config, &config_table));
    let secrets = Arc::new(SecretsManagerStore::new(
        &config,
        format!("{}/", unique("stack")),
    ));
    shared::testkit::seed_account(
        accounts.as_ref(),
        secrets.as_ref(),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let line = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/bot/profile/U[a-z0-9]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "U", "displayName": "Customer", "language": "en"})),
        )
        .mount(&line)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-img/content"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "image/jpeg")
                .set_body_bytes(vec![0xFF, 0xD8, 0xFF, 0xE0]),
        )
        .mount(&line)
        .await;
    let workstreams = DynamoWorkstreamStore::new(&config, &config_table);
    let ws = serde_json::from_value(json!({
        "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
        "distribution": "push", "defaultQueue": "q-general", "timezone": "UTC", "autoCloseMinutes": 10,
        "automatedMessages": [{"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}.", "enabled": true}],
        "version": 1
    }))
    .unwrap();
    workstreams.put_workstream(&ws).await.unwrap();
    let conversations = Arc::new(DynamoConversationStore::new(&config, &conversations_table));
    let agents = Arc::new(DynamoAgentStore::new(&config, &config_table));
    let media = Arc::new(S3ObjectStore::new(&config, media_bucket, true));
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = Arc::clone(&now);
    let api = HttpLineApi::new(&LineApiConfig {
        api_base: line.uri(),
        data_api_base: line.uri(),
        ..LineApiConfig::default()
    })
    .unwrap();
    let api = Arc::new(api);
    let tokens = Arc::new(shared::line::tokens::ChannelTokens::new(
        accounts.clone(),
        secrets.clone(),
        api.clone(),
    ));
    let router = Arc::new(RouterService::new(RouterDeps {
        accounts,
        secrets,
        conversations: conversations.clone(),
        workstreams: Arc::new(workstreams),
        agents: agents.clone(),
        config: Arc::new(shared::adapters::config_docs::DynamoConfigStore::new(
            &config,
            &config_table,
        )),
        outbound: Arc::new(SqsEventQueue::new(&config, &outbound_url)),
        media: media.clone(),
        line: api,
        bot: Arc::new(HttpBotHook::new(Duration::from_secs(2)).unwrap()),
        tokens: tokens.clone(),
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    }));
    Aws {
        router,
        conversations,
        agents,
        media,
        config,
        outbound_url,
        now,
        _line: line,
    }
}

fn inbound(event: Value) -> String {
    json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event})
        .to_string()
}

fn text_from(user: &str, id: &str, text: &str) -> Value {
    json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"),
        "source": {"type": "user", "userId": user},
        "message": {"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": text}
    })
}

fn agent(id: &str, capacity: u32) -> Agent {
    Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        queues: vec!["q-general".into()],
        skills: vec![],
        capacity,
        status: AgentStatus::Available,
        active_conversations: vec![],
        last_assigned_at: None,
    }
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_message_is_stored_once_assigned_and_greeted_over_the_aws_adapters() {
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 1)).await.unwrap();
    let body = inbound(text_from("Ualice", "E1", "hello"));
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws.router.process_message(&body, 1).await.unwrap()
    else {
        panic!("not stored")
    };
    let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Active);
    assert_eq!(c.agent_id.as_deref(), Some("ag1"));
    assert_eq!(
        aws.conversations
            .customer(ACCOUNT, "Ualice")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Customer"
    );

    assert_eq!(
        aws.router.process_message(&body, 2).await.unwrap(),
        Processed::Duplicate
    );
    assert_eq!(aws.conversations.transcript(&id).await.unwrap().len(), 1);

    let queued = drain(&aws.config, &aws.outbound_url).await;
    assert_eq!(queued.len(), 1, "the greeting once");
    let (group, dedup, body) = &queued[0];
    assert_eq!(group, "acc1:Ualice");
    assert_eq!(dedup, "E1:router:0");
    let greeting: OutboundMessage = serde_json::from_str(body).unwrap();
    assert_eq!(greeting.messages[0]["text"], "Hello Customer.");

    // Media goes to S3 under the message id.
    let image = json!({
        "type": "message", "mode": "active", "timestamp": T0 + 1, "webhookEventId": "E2",
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "Ualice"},
        "message": {"type": "image", "id": "m-img", "quoteToken": "q", "contentProvider": {"type": "line"}}
    });
    aws.router
        .process_message(&inbound(image), 1)
        .await
        .unwrap();
    let (bytes, content_type) = aws
        .media
        .get(&format!("media/{ACCOUNT}/m-img"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes, [0xFF, 0xD8, 0xFF, 0xE0]);
    assert_eq!(content_type.as_deref(), Some("image/jpeg"));
    let transcript = aws.conversations.transcript(&id).await.unwrap();
    assert!(transcript[1].event["omnilineMedia"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("s3://"));
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn concurrent_routers_never_assign_an_agent_above_capacity() {
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 2)).await.unwrap();
    aws.agents.put_agent(&agent("ag2", 1)).await.unwrap();
    // Eight customers write at once; each is handled by its own router task.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let router = Arc::clone(&aws.router);
            tokio::spawn(async move {
                let body = inbound(text_from(&format!("Ucust{i}"), &format!("C{i}"), "help"));
                router.process_message(&body, 1).await
            })
        })
        .collect();
    let mut active = 0;
    for task in tasks {
        let Processed::Stored {
            conversation_id: Some(id),
        } = task.await.unwrap().unwrap()
        else {
            panic!()
        };
        let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
        if c.state == ConversationState::Active {
            active += 1;
        }
    }
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    let ag2 = aws.agents.agent("ag2").await.unwrap().unwrap();
    assert_eq!(ag1.active_conversations.len(), 2);
    assert_eq!(ag2.active_conversations.len(), 1);
    assert_eq!(
        active, 3,
        "three slots, three active conversations, five waiting"
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn auto_close_scans_the_conversations_table() {
    let aws = aws().await;
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(&inbound(text_from("Ubob", "A1", "hi")), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        aws.router.close_idle_conversations().await.unwrap(),
        0,
        "not idle yet"
    );
    assert_eq!(
        aws.conversations.open_conversations().await.unwrap().len(),
        1
    );
    aws.now.store(T0 + 11 * 60_000, Ordering::SeqCst);
    assert_eq!(aws.router.close_idle_conversations().await.unwrap(), 1);
    assert_eq!(
        aws.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Closed
    );
    assert!(aws
        .conversations
        .open_conversations()
        .await
        .unwrap()
        .is_empty());
    assert!(aws
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .is_none());
}
