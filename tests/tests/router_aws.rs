//! The router on the AWS adapters (DynamoDB, SQS FIFO, S3, Secrets Manager) against moto, with
//! LINE served by wiremock: the same use case as on the embedded adapters, over the wire.

use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::meter::{MeterSnapshot, WireMeter};
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::agents::{Agent, AgentStatus};
use omniline_domain::conversation::ConversationState;
use omniline_domain::outbound::OutboundMessage;
use omniline_line::bot::HttpBotHook;
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::AgentStore;
use omniline_ports::ObjectStore;
use omniline_ports::{ConversationStore, WorkstreamStore};
use omniline_tests::{bucket, drain, endpoint, fifo_queue, pk_sk_table, sdk_config, unique};
use router::{Processed, RouterDeps, RouterService};
use serde_json::{json, Value};
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
    conversations_table: String,
    router_config_table: String,
    agents: Arc<DynamoAgentStore>,
    media: Arc<S3ObjectStore>,
    config: aws_config::SdkConfig,
    outbound_url: String,
    now: Arc<AtomicI64>,
    /// Counts every AWS request of the router (and of the test's own reads).
    meter: WireMeter,
    _line: MockServer,
}

async fn aws() -> Aws {
    let meter = WireMeter::new();
    let config = meter.wrap(&sdk_config(&endpoint()).await);
    let config_table = pk_sk_table(&config, "config").await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    meter
        .learn_tables(&config, &[&config_table, &conversations_table])
        .await
        .unwrap();
    let outbound_url = fifo_queue(&config, "outbound").await;
    let media_bucket = bucket(&config).await;
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
    let conversations = Arc::new(
        DynamoConversationStore::new(&config, &conversations_table)
            .with_agents_table(&config_table),
    );
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
    let tokens = Arc::new(omniline_app::tokens::ChannelTokens::new(
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
        config: Arc::new(omniline_aws::config_docs::DynamoConfigStore::new(
            &config,
            &config_table,
        )),
        outbound: Arc::new(SqsEventQueue::new(&config, &outbound_url)),
        media: media.clone(),
        line: api,
        bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
        tokens: tokens.clone(),
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    }));
    Aws {
        router,
        conversations,
        conversations_table,
        router_config_table: config_table,
        agents,
        media,
        config,
        outbound_url,
        now,
        meter,
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
        last_seen_at: None,
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

/// The agent's marks over DynamoDB: a snooze and a follow-up flag are stored with the
/// conversation's version; the customer's next message ends the snooze; presence times out
/// (the schedule sets the quiet agent away, conditionally).
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn snooze_follow_up_and_presence_timeout_over_the_aws_adapters() {
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 2)).await.unwrap();
    aws.agents
        .set_status("ag1", AgentStatus::Available, T0)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(&inbound(text_from("Ualice", "S1", "hello")), 1)
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    let snoozed = aws
        .router
        .snooze(&id, &ag1, Some(T0 + 3_600_000))
        .await
        .unwrap();
    let flagged = aws.router.set_follow_up(&id, &ag1, true).await.unwrap();
    let stored = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(stored.snoozed_until, Some(T0 + 3_600_000));
    assert!(stored.follow_up);
    assert_eq!(stored.version, snoozed.version + 1);
    assert_eq!(stored, flagged);
    aws.router
        .process_message(&inbound(text_from("Ualice", "S2", "still there?")), 1)
        .await
        .unwrap();
    let stored = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.snoozed_until, None,
        "the customer's message ends the snooze"
    );
    assert!(stored.follow_up, "the flag stays");

    // 91 s without a heartbeat: away, its conversation kept.
    aws.now.store(T0 + 91_000, Ordering::SeqCst);
    assert_eq!(aws.router.run_schedule().await.unwrap().away, 1);
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    assert_eq!(ag1.status, AgentStatus::Away);
    assert_eq!(ag1.active_conversations, [id]);
}

/// Writing first over DynamoDB: the agent opens a conversation on one of its slots (the
/// assignment commit creates it and its open pointer); the same key finds it again; another
/// key for the same customer loses to the open pointer and gives its slot back.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn an_agent_writes_first_over_the_aws_adapters() {
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 2)).await.unwrap();
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    let ws = aws
        .router
        .deps()
        .workstreams
        .workstream_for_account(ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    let queue = ws.default_queue.clone();
    let opened = aws
        .router
        .start_conversation(ACCOUNT, "Ubob", &ws, &queue, &ag1, "k1")
        .await
        .unwrap();
    assert_eq!(opened.state, ConversationState::Active);
    assert_eq!(opened.agent_id.as_deref(), Some("ag1"));
    let open = aws
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(open.id, opened.id);
    let again = aws
        .router
        .start_conversation(ACCOUNT, "Ubob", &ws, &queue, &ag1, "k1")
        .await
        .unwrap();
    assert_eq!(again, opened);
    let other = aws
        .router
        .start_conversation(ACCOUNT, "Ubob", &ws, &queue, &ag1, "k2")
        .await;
    assert!(
        matches!(other, Err(router::AgentOpError::Conflict(_))),
        "{other:?}"
    );
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    assert_eq!(
        ag1.active_conversations,
        [opened.id],
        "the loser's slot given back"
    );
}

/// Wrap-up over DynamoDB: the close records the pending wrap-up in the config table and holds
/// the agent's slot; past its time the schedule (one Query of the pending ones) ends it, gives
/// the slot back and drops the entry.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_wrap_up_holds_the_slot_until_its_time_over_the_aws_adapters() {
    let aws = aws().await;
    let deps = aws.router.deps();
    let mut ws = deps
        .workstreams
        .workstream_for_account(ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    ws.wrap_up_seconds = Some(60);
    ws.version += 1;
    deps.workstreams.put_workstream(&ws).await.unwrap();
    aws.agents.put_agent(&agent("ag1", 1)).await.unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(&inbound(text_from("Ualice", "WU1", "hello")), 1)
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    assert!(aws
        .router
        .close_by_agent(&id, &ag1)
        .await
        .unwrap()
        .wrapping_up());
    let pending = deps
        .config
        .list_docs(omniline_domain::conversation::WRAP_UP_PENDING_KIND)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        aws.agents
            .agent("ag1")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&id)
    );
    aws.now.store(T0 + 61_000, Ordering::SeqCst);
    assert_eq!(aws.router.run_schedule().await.unwrap().wrapped, 1);
    let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert!(!c.wrapping_up());
    assert!(aws
        .agents
        .agent("ag1")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    assert!(deps
        .config
        .list_docs(omniline_domain::conversation::WRAP_UP_PENDING_KIND)
        .await
        .unwrap()
        .is_empty());
}

/// Offers over DynamoDB: the offer holds the agent's slot (commit on the slot), a reject
/// gives it back and offers the next agent, an accept makes it the agent's, an expiry at the
/// schedule passes it on and counts the miss.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn offers_over_the_aws_adapters() {
    let aws = aws().await;
    let deps = aws.router.deps();
    let mut ws = deps
        .workstreams
        .workstream_for_account(ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    ws.offer = Some(omniline_domain::workstream::OfferSettings {
        mode: omniline_domain::workstream::OfferMode::Accept,
        timeout_seconds: 30,
    });
    ws.version += 1;
    deps.workstreams.put_workstream(&ws).await.unwrap();
    for id in ["ag1", "ag2"] {
        aws.agents.put_agent(&agent(id, 2)).await.unwrap();
    }
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(&inbound(text_from("Ualice", "OF1", "hello")), 1)
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    let offer = |c: &omniline_domain::conversation::Conversation| {
        c.offer.as_ref().map(|o| o.agent_id.clone())
    };
    let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(offer(&c).as_deref(), Some("ag1"));
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    assert_eq!(ag1.active_conversations, std::slice::from_ref(&id));
    let next = aws.router.reject_offer(&id, &ag1).await.unwrap();
    assert_eq!(offer(&next).as_deref(), Some("ag2"));
    assert!(aws
        .agents
        .agent("ag1")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    // Ag2 lets it expire: back to waiting (Ag1 declined: nobody left this round), the miss
    // counted; the next run offers it to Ag1 again, who accepts.
    aws.now.store(T0 + 31_000, Ordering::SeqCst);
    let run = aws.router.run_schedule().await.unwrap();
    assert_eq!(run.offers_expired, 1);
    assert!(aws
        .agents
        .agent("ag2")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    aws.router.run_schedule().await.unwrap();
    let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(offer(&c).as_deref(), Some("ag1"));
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    let accepted = aws.router.accept_offer(&id, &ag1).await.unwrap();
    assert_eq!(accepted.state, ConversationState::Active);
    assert_eq!(accepted.agent_id.as_deref(), Some("ag1"));
    let stored = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(stored, accepted);
}

/// Accept racing the offer's expiry over DynamoDB, on two routers whose clocks stand either side
/// of the deadline: each round exactly one lands (the version-conditional commits), and the
/// agent's slot follows the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn accept_racing_the_offer_expiry_over_the_aws_adapters() {
    let aws = aws().await;
    let deps = aws.router.deps();
    let mut ws = deps
        .workstreams
        .workstream_for_account(ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    ws.offer = Some(omniline_domain::workstream::OfferSettings {
        mode: omniline_domain::workstream::OfferMode::Accept,
        timeout_seconds: 15,
    });
    ws.version += 1;
    deps.workstreams.put_workstream(&ws).await.unwrap();
    aws.agents.put_agent(&agent("ag1", 10)).await.unwrap();
    let (mut accepted, mut expired) = (0, 0);
    for round in 0..4_i64 {
        let at = T0 + round * 100_000;
        aws.now.store(at, Ordering::SeqCst);
        aws.agents
            .set_status("ag1", AgentStatus::Available, at)
            .await
            .unwrap();
        let mut event = text_from(&format!("Urace{round}"), &format!("RC{round}"), "hi");
        event["timestamp"] = json!(at);
        let Processed::Stored {
            conversation_id: Some(id),
        } = aws
            .router
            .process_message(&inbound(event), 1)
            .await
            .unwrap()
        else {
            panic!("not stored")
        };
        let offered = aws.conversations.conversation(&id).await.unwrap().unwrap();
        let deadline = offered.offer.as_ref().expect("offered").expires_at;
        let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
        let mut early = deps.clone();
        early.clock = Arc::new(move || deadline - 1);
        let mut late = deps.clone();
        late.clock = Arc::new(move || deadline);
        let (early, late) = (RouterService::new(early), RouterService::new(late));
        let (accept, expire) = tokio::join!(early.accept_offer(&id, &ag1), late.expire_offers());
        let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
        let holds = aws
            .agents
            .agent("ag1")
            .await
            .unwrap()
            .unwrap()
            .active_conversations
            .contains(&id);
        match accept {
            Ok(_) => {
                accepted += 1;
                assert_eq!(expire.unwrap(), 0, "round {round}");
                assert_eq!(c.state, ConversationState::Active);
                assert!(holds, "round {round}");
            }
            Err(router::AgentOpError::Conflict(_)) => {
                expired += 1;
                assert_eq!(expire.unwrap(), 1, "round {round}");
                assert_eq!(c.state, ConversationState::Waiting);
                assert!(c.offer.is_none());
                assert!(!holds, "round {round}");
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    eprintln!("accept vs expiry over DynamoDB: {accepted} accepted, {expired} expired of 4");
}

/// Customer attributes over DynamoDB: a routing rule on `customer.attributes.tier` reads the
/// customer's attributes document (by key, from the config table) when a conversation opens.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn customer_attributes_route_over_the_aws_adapters() {
    let aws = aws().await;
    let deps = aws.router.deps();
    let mut ws = deps
        .workstreams
        .workstream_for_account(ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    ws.rules = serde_json::from_value(json!([
        {"id": "gold", "name": "Gold", "condition": {"field": "customer.attributes.tier", "op": "equals", "value": "gold"},
         "result": {"queue": "q-gold", "priority": 7}}
    ]))
    .unwrap();
    ws.version += 1;
    deps.workstreams.put_workstream(&ws).await.unwrap();
    deps.config
        .put_doc(
            omniline_domain::conversation::CUSTOMER_ATTRIBUTES_KIND,
            &omniline_domain::conversation::customer_doc_id(ACCOUNT, "Ugold"),
            &json!({"attributes": {"tier": "gold"}}).to_string(),
            omniline_ports::Expect::Absent,
        )
        .await
        .unwrap();
    for (user, event, queue) in [("Ugold", "AT1", "q-gold"), ("Uplain", "AT2", "q-general")] {
        let Processed::Stored {
            conversation_id: Some(id),
        } = aws
            .router
            .process_message(&inbound(text_from(user, event, "hello")), 1)
            .await
            .unwrap()
        else {
            panic!("not stored")
        };
        let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
        assert_eq!(c.queue_id.as_deref(), Some(queue), "{user}");
    }
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
async fn auto_close_finds_open_conversations_through_the_sparse_index() {
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
    // The index itself forgot it: closing removed `openShard` from the conversation item.
    let indexed = aws_sdk_dynamodb::Client::new(&aws.config)
        .scan()
        .table_name(&aws.conversations_table)
        .index_name(omniline_aws::dynamo_conversations::OPEN_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(indexed.count(), 0, "{:?}", indexed.items());
    assert!(aws
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .is_none());
}

/// Router workers as separate Lambda instances: each its own `RouterService` and AWS clients
/// over the same tables and queue.
struct AwsWorkers {
    workers: Vec<Arc<RouterService>>,
    conversations: Arc<DynamoConversationStore>,
    agents: Arc<DynamoAgentStore>,
    config: aws_config::SdkConfig,
    outbound_url: String,
    now: Arc<AtomicI64>,
    _line: MockServer,
}

const AGENT_CAPACITIES: [(&str, u32); 3] = [("ag1", 1), ("ag2", 2), ("ag3", 3)];

async fn aws_workers(count: usize) -> AwsWorkers {
    let config = sdk_config(&endpoint()).await;
    let config_table = pk_sk_table(&config, "config").await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    let outbound_url = fifo_queue(&config, "outbound").await;
    let media_bucket = bucket(&config).await;
    let secrets_prefix = format!("{}/", unique("stack"));
    omniline_testkit::seed_account(
        &DynamoAccountStore::new(&config, &config_table),
        &SecretsManagerStore::new(&config, secrets_prefix.clone()),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let ws = serde_json::from_value(json!({
        "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
        "distribution": "push", "defaultQueue": "q-general", "timezone": "UTC",
        "autoCloseMinutes": null,
        "automatedMessages": [
            {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true},
            {"trigger": "noAgentAvailable", "language": "en", "text": "All agents are busy.", "enabled": true},
            {"trigger": "agentEnded", "language": "en", "text": "{agentName} closed the chat.", "enabled": true}
        ],
        "version": 1
    }))
    .unwrap();
    DynamoWorkstreamStore::new(&config, &config_table)
        .put_workstream(&ws)
        .await
        .unwrap();
    let agents = Arc::new(DynamoAgentStore::new(&config, &config_table));
    for (id, capacity) in AGENT_CAPACITIES {
        agents.put_agent(&agent(id, capacity)).await.unwrap();
    }
    let line = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/bot/profile/U[a-z0-9]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "U", "displayName": "Customer", "language": "en"})),
        )
        .mount(&line)
        .await;
    let now = Arc::new(AtomicI64::new(T0));
    let mut workers = Vec::new();
    for _ in 0..count {
        // Each worker its own SDK clients, as another Lambda instance.
        let config = sdk_config(&endpoint()).await;
        let accounts = Arc::new(DynamoAccountStore::new(&config, &config_table));
        let secrets = Arc::new(SecretsManagerStore::new(&config, secrets_prefix.clone()));
        let api = Arc::new(
            HttpLineApi::new(&LineApiConfig {
                api_base: line.uri(),
                data_api_base: line.uri(),
                ..LineApiConfig::default()
            })
            .unwrap(),
        );
        let tokens = Arc::new(omniline_app::tokens::ChannelTokens::new(
            accounts.clone(),
            secrets.clone(),
            api.clone(),
        ));
        let clock_now = Arc::clone(&now);
        workers.push(Arc::new(RouterService::new(RouterDeps {
            accounts,
            secrets,
            conversations: Arc::new(
                DynamoConversationStore::new(&config, &conversations_table)
                    .with_agents_table(&config_table),
            ),
            workstreams: Arc::new(DynamoWorkstreamStore::new(&config, &config_table)),
            agents: Arc::new(DynamoAgentStore::new(&config, &config_table)),
            config: Arc::new(omniline_aws::config_docs::DynamoConfigStore::new(
                &config,
                &config_table,
            )),
            outbound: Arc::new(SqsEventQueue::new(&config, &outbound_url)),
            media: Arc::new(S3ObjectStore::new(&config, media_bucket.clone(), true)),
            line: api,
            bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
            tokens,
            clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
        })));
    }
    AwsWorkers {
        workers,
        conversations: Arc::new(DynamoConversationStore::new(&config, &conversations_table)),
        agents,
        config,
        outbound_url,
        now,
        _line: line,
    }
}

/// Checks the stores at rest: each agent's slots are the Active conversations the conversation
/// store gives it, within capacity; each event stored once in its customer's one conversation;
/// Waiting conversations without an agent. Returns every conversation (by customer) and the
/// Active ones per agent.
async fn settled_over_aws(
    aws: &AwsWorkers,
    customers: usize,
) -> (
    Vec<omniline_domain::conversation::Conversation>,
    std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut all = Vec::new();
    for i in 0..customers {
        let (user, event) = (format!("Ucust{i:02}"), format!("E{i:02}"));
        assert!(aws
            .conversations
            .event_recorded(ACCOUNT, &event, T0 / 1000)
            .await
            .unwrap());
        let mut of_customer = aws
            .conversations
            .conversations_of_source(ACCOUNT, &user)
            .await
            .unwrap();
        assert_eq!(of_customer.len(), 1, "one conversation for {user}");
        let c = of_customer.remove(0);
        let transcript = aws.conversations.transcript(&c.id).await.unwrap();
        let events: Vec<_> = transcript.iter().map(|t| t.event_id.as_str()).collect();
        assert_eq!(events, [event.as_str()], "{event} stored once");
        if c.state == ConversationState::Waiting {
            assert_eq!(c.agent_id, None);
        }
        all.push(c);
    }
    let mut holding: BTreeMap<String, BTreeSet<String>> = AGENT_CAPACITIES
        .iter()
        .map(|(id, _)| ((*id).to_owned(), BTreeSet::new()))
        .collect();
    for c in all.iter().filter(|c| c.state == ConversationState::Active) {
        holding
            .get_mut(c.agent_id.as_deref().unwrap())
            .unwrap()
            .insert(c.id.clone());
    }
    for (id, capacity) in AGENT_CAPACITIES {
        let stored = aws.agents.agent(id).await.unwrap().unwrap();
        let slots: BTreeSet<String> = stored.active_conversations.iter().cloned().collect();
        assert!(slots.len() <= capacity as usize, "{id}: {slots:?}");
        assert_eq!(
            slots, holding[id],
            "{id}: slots and Active conversations agree"
        );
    }
    (all, holding)
}

async fn schedule_on_every_worker(aws: &AwsWorkers, rounds: usize) -> usize {
    let tasks: Vec<_> = aws
        .workers
        .iter()
        .map(|router| {
            let router = Arc::clone(router);
            tokio::spawn(async move {
                let mut assigned = 0;
                for _ in 0..rounds {
                    assigned += router.run_schedule().await.unwrap().assigned;
                }
                assigned
            })
        })
        .collect();
    let mut assigned = 0;
    for task in tasks {
        assigned += task.await.unwrap();
    }
    assigned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn several_router_workers_at_once_never_over_assign_over_the_aws_adapters() {
    use omniline_app::consumer::BatchMessage;
    use std::collections::{BTreeMap, BTreeSet};
    const WORKERS: usize = 4;
    const CUSTOMERS: usize = 60;
    const SLOTS: usize = 6;
    let aws = aws_workers(WORKERS).await;
    let message = |i: usize, copy: &str| {
        let event = text_from(&format!("Ucust{i:02}"), &format!("E{i:02}"), "help");
        (
            BatchMessage {
                message_id: format!("{copy}-{i}"),
                group_id: format!("{ACCOUNT}:Ucust{i:02}"),
                body: inbound(event),
            },
            1,
        )
    };
    // Customers spread over 12 batches of 5, three per worker; every event is also redelivered
    // to the next worker, at the same position of its batch, so the two copies race.
    let batch =
        |k: usize, copy: &str| -> Vec<_> { (0..5).map(|j| message(k + 12 * j, copy)).collect() };
    let plan: Vec<Vec<Vec<_>>> = (0..WORKERS)
        .map(|w| {
            (w..12)
                .step_by(WORKERS)
                .map(|k| {
                    let previous = if k % WORKERS == 0 {
                        k + WORKERS - 1
                    } else {
                        k - 1
                    };
                    let (own, copy) = (batch(k, "first"), batch(previous, "again"));
                    let (a, b) = if w % 2 == 0 { (own, copy) } else { (copy, own) };
                    a.into_iter().zip(b).flat_map(|(x, y)| [x, y]).collect()
                })
                .collect()
        })
        .collect();
    // Agent slots are sampled while the workers run.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = {
        let (agents, stop) = (Arc::clone(&aws.agents), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut violations = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for (id, capacity) in AGENT_CAPACITIES {
                    let a = agents.agent(id).await.unwrap().unwrap();
                    if a.active_conversations.len() > capacity as usize {
                        violations.push(format!("{id}: {:?}", a.active_conversations));
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            violations
        })
    };
    let tasks: Vec<_> = plan
        .into_iter()
        .enumerate()
        .map(|(w, batches)| {
            let router = Arc::clone(&aws.workers[w]);
            tokio::spawn(async move {
                let mut failed = Vec::new();
                for batch in batches {
                    failed.extend(router.handle_batch(&batch).await.failed);
                }
                failed
            })
        })
        .collect();
    for task in tasks {
        let failed = task.await.unwrap();
        assert!(failed.is_empty(), "{failed:?}");
    }
    let (all, holding) = settled_over_aws(&aws, CUSTOMERS).await;
    let active = holding.values().map(BTreeSet::len).sum::<usize>();
    assert!(active <= SLOTS);
    // One reply per event (the racing copies share its id). Known issue: the copy that lost may
    // have queued it first, so it may not say what happened (printed, not asserted).
    let replies: BTreeMap<String, OutboundMessage> = drain(&aws.config, &aws.outbound_url)
        .await
        .into_iter()
        .map(|(_, dedup, body)| (dedup, serde_json::from_str(&body).unwrap()))
        .collect();
    assert_eq!(replies.len(), CUSTOMERS);
    let mut misleading = Vec::new();
    for (i, c) in all.iter().enumerate() {
        let reply = &replies[&format!("E{i:02}:router:0")];
        let expected = match &c.agent_id {
            Some(agent) => format!("Agent {agent} will help you."),
            None => "All agents are busy.".to_owned(),
        };
        if reply.messages[0]["text"] != expected.as_str() {
            misleading.push((c.id.clone(), reply.messages[0]["text"].clone()));
        }
    }
    // A copy that lost its race may have held a slot for a moment: the next ticks fill it.
    let late = schedule_on_every_worker(&aws, 2).await;
    assert_eq!(late, SLOTS - active);

    // Each agent closes one conversation, from different workers, while every worker ticks.
    aws.now.store(T0 + 60_000, Ordering::SeqCst);
    let (_, holding) = settled_over_aws(&aws, CUSTOMERS).await;
    assert_eq!(holding.values().map(BTreeSet::len).sum::<usize>(), SLOTS);
    let closes: Vec<_> = AGENT_CAPACITIES
        .iter()
        .enumerate()
        .map(|(w, (id, _))| {
            let (router, agents) = (Arc::clone(&aws.workers[w]), Arc::clone(&aws.agents));
            let conversation = holding[*id].iter().next().unwrap().clone();
            let id = (*id).to_owned();
            tokio::spawn(async move {
                let agent = agents.agent(&id).await.unwrap().unwrap();
                router.close_by_agent(&conversation, &agent).await.unwrap()
            })
        })
        .collect();
    let mut assigned = schedule_on_every_worker(&aws, 3).await;
    for close in closes {
        assert_eq!(close.await.unwrap().state, ConversationState::Closed);
    }
    assigned += schedule_on_every_worker(&aws, 1).await;
    assert_eq!(
        assigned,
        AGENT_CAPACITIES.len(),
        "one assignment per freed slot"
    );
    stop.store(true, Ordering::SeqCst);
    let violations = monitor.await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");

    let (all, holding) = settled_over_aws(&aws, CUSTOMERS).await;
    for (id, capacity) in AGENT_CAPACITIES {
        assert_eq!(holding[id].len(), capacity as usize, "{id} full again");
    }
    let count = |state| all.iter().filter(|c| c.state == state).count();
    assert_eq!(count(ConversationState::Closed), 3);
    assert_eq!(count(ConversationState::Waiting), CUSTOMERS - SLOTS - 3);
    // One agentAssigned per assignment after the inbound phase, one agentEnded per close.
    let pushed: Vec<OutboundMessage> = drain(&aws.config, &aws.outbound_url)
        .await
        .into_iter()
        .map(|(_, _, body)| serde_json::from_str(&body).unwrap())
        .collect();
    let triggers = |t: &str| {
        pushed
            .iter()
            .filter(|m| m.trigger.as_deref() == Some(t))
            .count()
    };
    assert_eq!(triggers("agentEnded"), 3);
    assert_eq!(triggers("agentAssigned"), SLOTS - active + 3);
    assert_eq!(pushed.len(), SLOTS - active + 6);
    let mut told = BTreeSet::new();
    for m in pushed
        .iter()
        .filter(|m| m.trigger.as_deref() == Some("agentAssigned"))
    {
        let c = all.iter().find(|c| c.id == m.conversation_id).unwrap();
        assert_eq!(c.state, ConversationState::Active);
        assert!(
            told.insert(c.id.clone()),
            "one agentAssigned per assignment"
        );
        let expected = format!("Agent {} will help you.", c.agent_id.as_deref().unwrap());
        if m.messages[0]["text"] != expected.as_str() {
            misleading.push((c.id.clone(), m.messages[0]["text"].clone()));
        }
    }
    eprintln!("messages not matching the outcome (known issue): {misleading:?}");
}

/// Prints what one processed event cost on the wire and returns its DynamoDB (read, write) units.
fn report(what: &str, used: &MeterSnapshot) -> (f64, f64) {
    println!("{what}:");
    for o in &used.operations {
        println!(
            "  {:<16} {:<20} requests {:>2}  RRU {:>4.1}  WRU {:>4.1} (+{:.1} index)",
            o.service, o.operation, o.requests, o.read_units, o.write_units, o.index_write_units
        );
    }
    for k in &used.kinds {
        println!(
            "  {:<28} WRU {:>4.1} (+{:.1} index)",
            k.kind, k.write_units, k.index_write_units
        );
    }
    let (read, write) = used.capacity_units();
    println!("  total RRU {read:.1}, WRU {write:.1}");
    (read, write)
}

/// The DynamoDB write units of the router's events, computed from the items on the wire with
/// DynamoDB's pricing rules (`omniline_aws::meter`): a first message (new conversation, profile,
/// greeting, assignment) and a message in the open, assigned conversation (its two search terms,
/// the transaction of the event, conversation and transcript entry, the LINE message index and
/// the agent's notification with its conversation entry).
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn write_units_per_event_stay_within_budget() {
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 3)).await.unwrap();
    let before = aws.meter.snapshot();
    aws.router
        .process_message(&inbound(text_from("Ubudget", "B1", "hello")), 1)
        .await
        .unwrap();
    let first = aws.meter.snapshot();
    let (_, first_wru) = report("first message", &first.since(&before));
    aws.router
        .process_message(&inbound(text_from("Ubudget", "B2", "and another thing")), 1)
        .await
        .unwrap();
    let (_, open_wru) = report(
        "message in an open conversation",
        &aws.meter.snapshot().since(&first),
    );
    assert!(first_wru > 0.0 && open_wru > 0.0, "the meter counts writes");
    // Measured 29 and 11 (2026-12-07): the bounds catch a write moving back into a transaction
    // (each item billed twice) or an extra item per message.
    assert!(first_wru <= 32.0, "first message: {first_wru} WRU");
    assert!(open_wru <= 11.0, "open conversation: {open_wru} WRU");
    // The customer says the same words again in the conversation: its terms are indexed
    // already, so none of them is written again (the two of "and another thing").
    let second = aws.meter.snapshot();
    aws.router
        .process_message(&inbound(text_from("Ubudget", "B3", "Another thing!")), 1)
        .await
        .unwrap();
    let repeated = aws.meter.snapshot().since(&second);
    let (_, repeat_wru) = report("the same words again", &repeated);
    assert!(
        !repeated.kinds.iter().any(|k| k.kind.starts_with("SEARCH")),
        "no search term written again"
    );
    assert!(
        repeat_wru <= open_wru - 2.0,
        "{repeat_wru} WRU, {open_wru} before"
    );
}

/// Issue 7/7 over DynamoDB: a customer's messages count unread and set the preview, its agent
/// reading clears it; tags on the conversation and on the customer (kept in the customer's
/// document, registered in the account's tag list); a supervisor's overview and reassignment.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn inbox_fields_tags_and_supervision_over_the_aws_adapters() {
    use omniline_app::agent::AgentService;
    use omniline_aws::config_docs::DynamoConfigStore;
    use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
    use omniline_ports::{ConfigStore, Expect};
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 2)).await.unwrap();
    let config = DynamoConfigStore::new(&aws.config, &aws.router_config_table);
    let queue = json!({"id": "q-general", "name": "General", "createdAt": "2026-12-07T00:00:00Z", "updatedAt": "2026-12-07T00:00:00Z"});
    config
        .put_doc(
            omniline_domain::queues::QUEUE_KIND,
            "q-general",
            &queue.to_string(),
            Expect::Absent,
        )
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(&inbound(text_from("Ualice", "I1", "hello there")), 1)
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    aws.router
        .process_message(&inbound(text_from("Ualice", "I2", "are you there?")), 1)
        .await
        .unwrap();
    let c = aws.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.unread, 2);
    let last = c.last_message.clone().unwrap();
    assert_eq!(
        (last.direction.as_str(), last.text.as_deref()),
        ("in", Some("are you there?"))
    );
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    aws.router.clear_unread(&id, &ag1).await.unwrap();
    assert_eq!(
        aws.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .unread,
        0
    );

    let service = AgentService::new(
        Arc::clone(&aws.router),
        Arc::new(DynamoDeliveryStore::new(
            &aws.config,
            &aws.conversations_table,
        )),
        None,
    );
    let kept = service
        .set_conversation_tags(&ag1, &id, &["vip".into(), " vip ".into(), "late".into()])
        .await
        .unwrap();
    assert_eq!(kept, ["vip", "late"]);
    assert_eq!(
        aws.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .tags,
        ["vip", "late"]
    );
    let kept = service
        .set_customer_tags(&ag1, &format!("{ACCOUNT}:Ualice"), &["regular".into()])
        .await
        .unwrap();
    assert_eq!(kept, ["regular"]);
    let registered = config
        .get_doc(omniline_domain::tags::ACCOUNT_TAGS_KIND, ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    let registered: omniline_domain::tags::AccountTags =
        serde_json::from_str(&registered.doc).unwrap();
    assert_eq!(registered.tags, ["vip", "late", "regular"]);

    // The supervisor: one conversation in progress, none waiting; ag1 holds it; given to ag2.
    aws.agents.put_agent(&agent("ag2", 2)).await.unwrap();
    let overview = service.supervisor_overview().await.unwrap();
    let general = &overview.queues[0];
    assert_eq!(
        (general.queue.id.as_str(), general.waiting, general.active),
        ("q-general", 0, 1)
    );
    let held: Vec<&str> = overview
        .agents
        .iter()
        .flat_map(|a| a.active_conversations.iter().map(String::as_str))
        .collect();
    assert_eq!(held, [id.as_str()]);
    let moved = service.reassign("admin token", &id, "ag2").await.unwrap();
    assert_eq!(moved.agent_id.as_deref(), Some("ag2"));
    assert!(aws
        .agents
        .agent("ag1")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    assert_eq!(
        aws.agents
            .agent("ag2")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        [id]
    );
}

/// Search and reports over DynamoDB: the router indexes a customer's words (term items by
/// digest), the agent use case finds them by two words said in two messages and not by a word
/// never said; the reports read the conversation through the index by day with its first
/// response, handle time and messages.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn search_and_reports_over_the_aws_adapters() {
    use omniline_app::admin::{AdminDeps, AdminService};
    use omniline_app::agent::AgentService;
    use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
    use omniline_domain::reports::{GroupBy, ReportKind};
    let aws = aws().await;
    aws.agents.put_agent(&agent("ag1", 2)).await.unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = aws
        .router
        .process_message(
            &inbound(text_from("Ualice", "S1", "My parcel 4711 is late")),
            1,
        )
        .await
        .unwrap()
    else {
        panic!("not stored")
    };
    aws.now.fetch_add(5_000, Ordering::SeqCst);
    aws.router
        .process_message(&inbound(text_from("Ualice", "S2", "Still waiting")), 1)
        .await
        .unwrap();
    let deliveries = Arc::new(DynamoDeliveryStore::new(
        &aws.config,
        &aws.conversations_table,
    ));
    let service = AgentService::new(Arc::clone(&aws.router), deliveries.clone(), None);
    let ag1 = aws.agents.agent("ag1").await.unwrap().unwrap();
    let found = service.search(&ag1, "waiting PARCEL").await.unwrap();
    assert_eq!(found.customers.len(), 1);
    assert_eq!(found.customers[0].user_id, "Ualice");
    assert_eq!(found.customers[0].conversation.id, id);
    assert_eq!(
        found.customers[0].display_name.as_deref(),
        Some("Customer"),
        "the profile"
    );
    assert!(service
        .search(&ag1, "parcel refund")
        .await
        .unwrap()
        .customers
        .is_empty());
    let mut other = agent("ag9", 1);
    other.queues = vec!["q-other".into()];
    assert!(
        service
            .search(&other, "parcel")
            .await
            .unwrap()
            .customers
            .is_empty(),
        "not in the other agent's queues"
    );

    // The agent answers 10 s after the opening and closes a minute later.
    aws.now.fetch_add(5_000, Ordering::SeqCst);
    service
        .send_reply(
            &ag1,
            &id,
            vec![json!({"type": "text", "text": "On its way"})],
            false,
            None,
        )
        .await
        .unwrap();
    aws.now.fetch_add(60_000, Ordering::SeqCst);
    service.close(&ag1, &id).await.unwrap();
    let deps = aws.router.deps();
    let admin = AdminService::new(
        AdminDeps {
            accounts: deps.accounts.clone(),
            secrets: deps.secrets.clone(),
            line: deps.line.clone(),
            config: deps.config.clone(),
            workstreams: deps.workstreams.clone(),
            agents: deps.agents.clone(),
            conversations: deps.conversations.clone(),
            deliveries,
            media: deps.media.clone(),
        },
        deps.clock.clone(),
    );
    let report = admin
        .report(
            ReportKind::Conversations,
            GroupBy::Agent,
            Some(ACCOUNT),
            T0 - 1,
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(report.conversations, 1);
    let row = &report.rows[0];
    assert_eq!((row.key.as_str(), row.closed), ("ag1", Some(1)));
    let first = row.first_response.clone().unwrap();
    assert_eq!((first.count, first.p50_ms), (1, Some(10_000)));
    assert_eq!(row.handle_time.clone().unwrap().p50_ms, Some(70_000));
    let volume = admin
        .report(ReportKind::Volume, GroupBy::Day, None, T0 - 1, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        (volume.rows[0].messages_in, volume.rows[0].messages_out),
        (Some(2), Some(1))
    );
    let before = admin
        .report(
            ReportKind::Volume,
            GroupBy::Day,
            None,
            T0 - 90_000_000,
            T0 - 90_000_000,
        )
        .await
        .unwrap();
    assert!(before.rows.is_empty(), "another day's conversations only");

    // Erased: their words are out of the index, not merely unreachable.
    admin.erase_customer(ACCOUNT, "Ualice").await.unwrap();
    for word in ["parcel", "waiting", "customer"] {
        assert!(
            aws.conversations
                .search(ACCOUNT, &[word.to_owned()], 10)
                .await
                .unwrap()
                .is_empty(),
            "{word}"
        );
    }
}
