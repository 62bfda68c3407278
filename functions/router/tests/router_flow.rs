//! The router over the embedded adapters, with LINE's API and a bot served by wiremock and a
//! fake clock: exactly once, conversations, profiles, rules, distribution, bot, media, auto-close.

use omniline_app::consumer::BatchMessage;
use omniline_domain::agents::AgentStatus;
use omniline_domain::conversation::{Consent, ConversationState, DEDUPE_RETENTION_SECS};
use omniline_domain::outbound::OutboundMessage;
use omniline_domain::secret::SecretString;
use omniline_domain::workstream::Workstream;
use omniline_embedded::objects::FsObjectStore;
use omniline_embedded::sqlite_agents::SqliteAgentStore;
use omniline_embedded::sqlite_conversations::SqliteConversationStore;
use omniline_embedded::workstreams::SqliteWorkstreamStore;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore};
use omniline_line::bot::HttpBotHook;
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::AgentStore;
use omniline_ports::ObjectStore;
use omniline_ports::{ConversationStore, SecretStore, WorkstreamStore};
use router::{Processed, RouteError, RouterDeps, RouterService};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;
use common::{agent, inbound, text_from, texts, ACCOUNT, T0};

struct Fixture {
    _dir: tempfile::TempDir,
    router: RouterService,
    conversations: Arc<SqliteConversationStore>,
    workstreams: Arc<SqliteWorkstreamStore>,
    agents: Arc<SqliteAgentStore>,
    outbound: SqliteEventQueue,
    secrets: Arc<SqliteSecretStore>,
    media: Arc<FsObjectStore>,
    line: MockServer,
    bot: MockServer,
    now: Arc<AtomicI64>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(dir.path()).unwrap();
    let accounts = Arc::new(SqliteAccountStore::new(db.clone()));
    let secrets = Arc::new(SqliteSecretStore::new(db.clone()));
    omniline_testkit::seed_account(
        accounts.as_ref(),
        secrets.as_ref(),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let line = MockServer::start().await;
    for (user, name, language) in [
        ("Ualice", "Alice", Some("ja")),
        ("Ubob", "Bob", Some("en")),
        ("Ucarol", "Carol", None),
    ] {
        let mut profile = json!({"userId": user, "displayName": name, "pictureUrl": format!("https://profile.line-scdn.net/{user}")});
        if let Some(language) = language {
            profile["language"] = json!(language);
        }
        Mock::given(method("GET"))
            .and(path(format!("/v2/bot/profile/{user}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(profile))
            .mount(&line)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v2/bot/profile/Ughost"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not found"})))
        .mount(&line)
        .await;
    let bot = MockServer::start().await;
    let conversations = Arc::new(SqliteConversationStore::new(db.clone()).unwrap());
    let workstreams = Arc::new(SqliteWorkstreamStore::new(db.clone()).unwrap());
    let agents = Arc::new(SqliteAgentStore::new(db.clone()).unwrap());
    let outbound = SqliteEventQueue::new(db.clone(), "outbound", 5);
    let media = Arc::new(FsObjectStore::new(dir.path().join("media")));
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
    let router = RouterService::new(RouterDeps {
        accounts,
        secrets: secrets.clone(),
        conversations: conversations.clone(),
        workstreams: workstreams.clone(),
        agents: agents.clone(),
        config: Arc::new(
            omniline_embedded::config_docs::SqliteConfigStore::new(db.clone()).unwrap(),
        ),
        outbound: Arc::new(outbound.clone()),
        media: media.clone(),
        line: api,
        bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
        tokens: tokens.clone(),
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    });
    Fixture {
        _dir: dir,
        router,
        conversations,
        workstreams,
        agents,
        outbound,
        secrets,
        media,
        line,
        bot,
        now,
    }
}

fn workstream(overrides: Value) -> Workstream {
    let mut ws = json!({
        "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
        "distribution": "push", "defaultQueue": "q-general",
        "attachments": {"customerCanSend": true},
        "autoCloseMinutes": 30, "timezone": "Asia/Tokyo",
        "businessHours": [{"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "18:00"}],
        "automatedMessages": [
            {"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}, thanks for writing.", "enabled": true},
            {"trigger": "conversationStarted", "language": "ja", "text": "{customerName}様、お問い合わせありがとうございます。", "enabled": true},
            {"trigger": "noAgentAvailable", "language": "en", "text": "All agents are busy, please wait.", "enabled": true},
            {"trigger": "queued", "language": "en", "text": "You are in the queue.", "enabled": true},
            {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true},
            {"trigger": "outsideBusinessHours", "language": "en", "text": "We are closed now.", "enabled": true},
            {"trigger": "attachmentsNotAccepted", "language": "en", "text": "We cannot accept attachments.", "enabled": true},
            {"trigger": "unsupportedMessageType", "language": "en", "text": "We cannot read that message.", "enabled": true}
        ],
        "rules": [
            {"id": "billing", "name": "Billing", "condition": {"field": "message.text", "op": "contains", "value": "invoice"},
             "result": {"queue": "q-billing", "priority": 5, "skills": []}},
            {"id": "japanese", "name": "Japanese", "condition": {"field": "customer.language", "op": "equals", "value": "ja"},
             "result": {"queue": "q-ja", "priority": 1}}
        ],
        "version": 1
    });
    if let (Some(base), Some(extra)) = (ws.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(ws).unwrap()
}

async fn outbound(f: &Fixture) -> Vec<OutboundMessage> {
    let messages = f
        .outbound
        .receive(100, Duration::from_secs(60))
        .await
        .unwrap();
    for m in &messages {
        f.outbound
            .change_visibility(&m.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    messages
        .into_iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

/// The guard of the one-clock rule, through the router: with the router's clock years before or
/// after today, a redelivered event is still a duplicate for as long as the window lasts by that
/// clock (a store comparing with the wall clock stores it again at one of the two).
#[tokio::test]
async fn a_redelivery_is_a_duplicate_whatever_year_the_routers_clock_reads() {
    for start_secs in [
        omniline_testkit::FAR_PAST_SECS,
        omniline_testkit::FAR_FUTURE_SECS,
    ] {
        let start = start_secs * 1000;
        let f = fixture().await;
        f.workstreams
            .put_workstream(&workstream(json!({})))
            .await
            .unwrap();
        f.now.store(start, Ordering::SeqCst);
        let body = json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": start,
            "event": text_from("Ubob", "E1", "hello", start)})
        .to_string();
        let Processed::Stored {
            conversation_id: Some(id),
        } = f.router.process_message(&body, 1).await.unwrap()
        else {
            panic!("not stored at {start_secs}")
        };
        // At once, a day later and a second before the 7-day window ends, by the router's clock.
        for later in [0, 86_400_000, (DEDUPE_RETENTION_SECS - 1) * 1000] {
            f.now.store(start + later, Ordering::SeqCst);
            assert_eq!(
                f.router.process_message(&body, 2).await.unwrap(),
                Processed::Duplicate,
                "redelivered {later} ms after {start_secs}"
            );
        }
        assert_eq!(f.conversations.transcript(&id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_new_customer_gets_a_conversation_a_profile_a_route_an_agent_and_a_greeting() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag1", "q-billing", 2))
        .await
        .unwrap();

    let body = inbound(text_from("Ubob", "E1", "Where is my INVOICE?", T0));
    let processed = f.router.process_message(&body, 1).await.unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = processed
    else {
        panic!("{processed:?}")
    };

    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Active);
    assert_eq!(c.queue_id.as_deref(), Some("q-billing"));
    assert_eq!(c.rule_id.as_deref(), Some("billing"));
    assert_eq!(c.priority, 5);
    assert_eq!(c.agent_id.as_deref(), Some("ag1"));
    assert_eq!(
        f.conversations
            .open_conversation(ACCOUNT, "Ubob")
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );

    let customer = f
        .conversations
        .customer(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.display_name, "Bob");
    assert_eq!(customer.language.as_deref(), Some("en"));
    assert!(customer.profile_found);

    let transcript = f.conversations.transcript(&id).await.unwrap();
    assert_eq!(transcript.len(), 1);
    assert_eq!(
        transcript[0].event["message"]["text"],
        "Where is my INVOICE?"
    );

    let out = outbound(&f).await;
    assert_eq!(out.len(), 1, "one reply for the event");
    assert_eq!(
        texts(&out),
        ["Hello Bob, thanks for writing.", "Agent ag1 will help you."]
    );
    assert_eq!(out[0].reply_token.as_deref(), Some("rt-E1"));
    assert_eq!(out[0].reply_token_received_at, Some(T0));
    assert_eq!(out[0].to, "Ubob");
    assert_eq!(out[0].conversation_id, id);

    let notes = f.agents.notifications("ag1").await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].customer_name, "Bob");
    assert_eq!(notes[0].conversation_id, id);

    // The same event again, at once and hours later (past the FIFO deduplication window).
    for later in [0, 5 * 60_000 + 1, 6 * 3_600_000] {
        f.now.store(T0 + later, Ordering::SeqCst);
        assert_eq!(
            f.router.process_message(&body, 1).await.unwrap(),
            Processed::Duplicate
        );
    }
    assert_eq!(f.conversations.transcript(&id).await.unwrap().len(), 1);
    assert_eq!(
        f.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .version,
        c.version
    );
    assert!(outbound(&f).await.len() == 1, "nothing more was queued");
    assert_eq!(f.agents.notifications("ag1").await.unwrap().len(), 1);
    assert_eq!(
        f.agents
            .agent("ag1")
            .await
            .unwrap()
            .unwrap()
            .active_conversations
            .len(),
        1
    );
}

#[tokio::test]
async fn later_messages_join_the_open_conversation_in_timestamp_order() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    // Events arrive out of order: E3 (latest) first.
    for (id, ts) in [("E3", T0 + 3000), ("E1", T0 + 1000), ("E2", T0 + 2000)] {
        f.router
            .process_message(&inbound(text_from("Ualice", id, id, ts)), 1)
            .await
            .unwrap();
    }
    let c = f
        .conversations
        .open_conversation(ACCOUNT, "Ualice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.state,
        ConversationState::Waiting,
        "pick mode waits for an agent"
    );
    assert_eq!(
        c.queue_id.as_deref(),
        Some("q-ja"),
        "customer.language = ja"
    );
    let order: Vec<_> = f
        .conversations
        .transcript(&c.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.event_id)
        .collect();
    assert_eq!(order, ["E1", "E2", "E3"]);
    // Greeting in Japanese (the customer's LINE language) and the queued message, once.
    let out = texts(&outbound(&f).await);
    assert_eq!(
        out,
        [
            "Alice様、お問い合わせありがとうございます。",
            "You are in the queue."
        ]
    );
}

#[tokio::test]
async fn no_agent_free_leaves_the_conversation_waiting_with_a_notice() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag1", "q-general", 1))
        .await
        .unwrap();
    let first = f
        .router
        .process_message(&inbound(text_from("Ucarol", "E1", "hi", T0)), 1)
        .await
        .unwrap();
    let second = f
        .router
        .process_message(&inbound(text_from("Ughost", "E2", "hello", T0)), 1)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(first),
    } = first
    else {
        panic!()
    };
    let Processed::Stored {
        conversation_id: Some(second),
    } = second
    else {
        panic!()
    };
    assert_eq!(
        f.conversations
            .conversation(&first)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Active
    );
    let waiting = f
        .conversations
        .conversation(&second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waiting.state, ConversationState::Waiting);
    assert_eq!(waiting.agent_id, None);
    // Profile 404: routed anyway, with a placeholder name.
    let ghost = f
        .conversations
        .customer(ACCOUNT, "Ughost")
        .await
        .unwrap()
        .unwrap();
    assert!(!ghost.profile_found);
    assert_eq!(
        ghost.display_name,
        omniline_domain::conversation::UNKNOWN_CUSTOMER_NAME
    );
    let out = texts(&outbound(&f).await);
    assert!(
        out.contains(&"All agents are busy, please wait.".to_owned()),
        "{out:?}"
    );
    assert!(
        out.contains(&"Hello LINE user, thanks for writing.".to_owned()),
        "{out:?}"
    );
}

#[tokio::test]
async fn outside_business_hours_the_customer_is_told() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    // 23:00 in Tokyo.
    let late = T0 + 11 * 3_600_000;
    f.router
        .process_message(&inbound(text_from("Ubob", "E1", "hi", late)), 1)
        .await
        .unwrap();
    let out = texts(&outbound(&f).await);
    assert!(out.contains(&"We are closed now.".to_owned()), "{out:?}");
}

#[tokio::test]
async fn a_poison_message_fails_alone_with_the_rest_of_its_group() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    let m = |id: &str, group: &str, body: String| {
        (
            BatchMessage {
                message_id: id.into(),
                group_id: group.into(),
                body,
            },
            1,
        )
    };
    let batch = vec![
        m(
            "1",
            "acc1:Ualice",
            inbound(text_from("Ualice", "E1", "one", T0)),
        ),
        m("2", "acc1:Ualice", "{not json".into()),
        m(
            "3",
            "acc1:Ualice",
            inbound(text_from("Ualice", "E3", "three", T0 + 2)),
        ),
        m(
            "4",
            "acc1:Ubob",
            inbound(text_from("Ubob", "E4", "four", T0 + 3)),
        ),
    ];
    let outcome = f.router.handle_batch(&batch).await;
    assert_eq!(outcome.failed, ["2", "3"]);
    assert_eq!(outcome.succeeded, ["1", "4"]);
    assert!(
        !f.conversations
            .event_recorded(ACCOUNT, "E3", T0 / 1000)
            .await
            .unwrap(),
        "3 was not processed"
    );
    assert!(f
        .conversations
        .event_recorded(ACCOUNT, "E4", T0 / 1000)
        .await
        .unwrap());
}

#[tokio::test]
async fn media_is_downloaded_after_line_finishes_preparing_it() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-V1/content"))
        .respond_with(ResponseTemplate::new(202))
        .up_to_n_times(1)
        .mount(&f.line)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-V1/content"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "video/mp4")
                .set_body_bytes(vec![7u8; 2048]),
        )
        .mount(&f.line)
        .await;
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": "V1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "user", "userId": "Ubob"},
        "message": {"type": "video", "id": "m-V1", "quoteToken": "q", "duration": 1000, "contentProvider": {"type": "line"}}
    });
    let body = inbound(event);
    let first = f.router.process_message(&body, 1).await;
    assert!(
        matches!(first, Err(RouteError::MediaPending(_))),
        "{first:?}"
    );
    assert!(!f
        .conversations
        .event_recorded(ACCOUNT, "V1", T0 / 1000)
        .await
        .unwrap());
    let Processed::Stored {
        conversation_id: Some(id),
    } = f.router.process_message(&body, 2).await.unwrap()
    else {
        panic!()
    };
    let entry = &f.conversations.transcript(&id).await.unwrap()[0];
    assert_eq!(entry.event["omnilineMedia"]["status"], "stored");
    assert_eq!(entry.event["omnilineMedia"]["size"], 2048);
    let (bytes, content_type) = f
        .media
        .get(&format!("media/{ACCOUNT}/m-V1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bytes.len(), 2048);
    assert_eq!(content_type.as_deref(), Some("video/mp4"));

    // Unsend retracts it and removes the content.
    let unsend = json!({"type": "unsend", "mode": "active", "timestamp": T0 + 10, "webhookEventId": "U1",
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "Ubob"}, "unsend": {"messageId": "m-V1"}});
    f.router.process_message(&inbound(unsend), 1).await.unwrap();
    let transcript = f.conversations.transcript(&id).await.unwrap();
    assert!(transcript[0].retracted);
    assert_eq!(transcript[0].event, Value::Null);
    assert_eq!(transcript[1].event_type, "unsend");
    assert!(f
        .media
        .get(&format!("media/{ACCOUNT}/m-V1"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn media_still_pending_after_several_receives_is_stored_without_content() {
    let f = fixture().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-A1/content"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&f.line)
        .await;
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": "A1",
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "Ubob"},
        "message": {"type": "audio", "id": "m-A1", "duration": 1000, "contentProvider": {"type": "line"}}
    });
    let processed = f
        .router
        .process_message(&inbound(event), router::MEDIA_PENDING_MAX_RECEIVES)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = processed
    else {
        panic!()
    };
    assert_eq!(
        f.conversations.transcript(&id).await.unwrap()[0].event["omnilineMedia"]["status"],
        "not-ready"
    );
}

#[tokio::test]
async fn attachments_turned_off_are_not_downloaded_and_the_customer_is_told() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(
            json!({"distribution": "pick", "attachments": {"customerCanSend": false}}),
        ))
        .await
        .unwrap();
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-I1/content"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![1u8; 10]))
        .expect(0)
        .mount(&f.line)
        .await;
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": "I1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "user", "userId": "Ubob"},
        "message": {"type": "image", "id": "m-I1", "quoteToken": "q", "contentProvider": {"type": "line"}}
    });
    f.router.process_message(&inbound(event), 1).await.unwrap();
    assert!(texts(&outbound(&f).await).contains(&"We cannot accept attachments.".to_owned()));
}

#[tokio::test]
async fn unknown_content_is_stored_and_answered_as_unsupported() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": "X1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "user", "userId": "Ubob"},
        "message": {"type": "hologram", "id": "m-X1"}
    });
    let Processed::Stored {
        conversation_id: Some(id),
    } = f.router.process_message(&inbound(event), 1).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        f.conversations.transcript(&id).await.unwrap()[0].event["message"]["type"],
        "hologram"
    );
    assert!(texts(&outbound(&f).await).contains(&"We cannot read that message.".to_owned()));
}

async fn with_bot(f: &Fixture) {
    let mut ws = workstream(json!({
        "bot": {"id": "faq", "url": format!("{}/hook", f.bot.uri()), "secretName": "bots/faq", "timeoutMs": 300}
    }));
    ws.rules.clear();
    f.workstreams.put_workstream(&ws).await.unwrap();
    f.secrets
        .put("bots/faq", &SecretString::new("bot-secret"))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag1", "q-general", 5))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_bot_answers_then_hands_off_to_a_queue() {
    let f = fixture().await;
    with_bot(&f).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"messages": [{"type": "text", "text": "I am the FAQ bot."}]}),
            ),
        )
        .up_to_n_times(1)
        .mount(&f.bot)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": [{"type": "text", "text": "Passing you to a human."}], "handoff": true})))
        .mount(&f.bot)
        .await;
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "B1", "hi", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.bot_id.as_deref(), Some("faq"));
    assert_eq!(c.state, ConversationState::Waiting);
    assert_eq!(c.agent_id, None, "with the bot, not an agent");

    f.router
        .process_message(
            &inbound(text_from("Ubob", "B2", "a human please", T0 + 1000)),
            1,
        )
        .await
        .unwrap();
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.bot_id, None);
    assert_eq!(c.agent_id.as_deref(), Some("ag1"));
    assert_eq!(c.state, ConversationState::Active);
    let out = texts(&outbound(&f).await);
    assert!(out.contains(&"I am the FAQ bot.".to_owned()));
    assert!(out.contains(&"Passing you to a human.".to_owned()));
    assert!(out.contains(&"Agent ag1 will help you.".to_owned()));

    // The bot received signed requests for both turns.
    let requests = f.bot.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let signature = requests[0]
        .headers
        .get("x-omniline-signature")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(omniline_domain::line::signature::verify_signature(
        b"bot-secret",
        &requests[0].body,
        Some(signature)
    )
    .is_ok());
}

#[tokio::test]
async fn a_bot_timeout_hands_off() {
    let f = fixture().await;
    with_bot(&f).await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(2))
                .set_body_json(json!({"messages": []})),
        )
        .mount(&f.bot)
        .await;
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "B1", "hi", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.bot_id, None);
    assert_eq!(c.agent_id.as_deref(), Some("ag1"));
}

#[tokio::test]
async fn idle_conversations_close_and_the_next_message_opens_a_new_one() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag1", "q-general", 1))
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(first),
    } = f
        .router
        .process_message(&inbound(text_from("Ucarol", "E1", "hi", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    f.now.store(T0 + 29 * 60_000, Ordering::SeqCst);
    assert_eq!(f.router.close_idle_conversations().await.unwrap(), 0);
    f.now.store(T0 + 31 * 60_000, Ordering::SeqCst);
    assert_eq!(f.router.close_idle_conversations().await.unwrap(), 1);
    let closed = f.conversations.conversation(&first).await.unwrap().unwrap();
    assert_eq!(closed.state, ConversationState::Closed);
    assert_eq!(closed.close_reason.as_deref(), Some("inactive"));
    assert!(
        f.agents
            .agent("ag1")
            .await
            .unwrap()
            .unwrap()
            .active_conversations
            .is_empty(),
        "agent freed"
    );
    assert!(f
        .conversations
        .open_conversation(ACCOUNT, "Ucarol")
        .await
        .unwrap()
        .is_none());

    let later = T0 + 32 * 60_000;
    let Processed::Stored {
        conversation_id: Some(second),
    } = f
        .router
        .process_message(&inbound(text_from("Ucarol", "E2", "me again", later)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_ne!(first, second);
    assert_eq!(
        f.conversations
            .conversation(&second)
            .await
            .unwrap()
            .unwrap()
            .agent_id
            .as_deref(),
        Some("ag1")
    );
}

#[tokio::test]
async fn follow_unfollow_and_group_membership() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    let follow = json!({"type": "follow", "mode": "active", "timestamp": T0, "webhookEventId": "F1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt", "source": {"type": "user", "userId": "Ubob"},
        "follow": {"isUnblocked": false}});
    f.router.process_message(&inbound(follow), 1).await.unwrap();
    assert_eq!(
        f.conversations
            .customer(ACCOUNT, "Ubob")
            .await
            .unwrap()
            .unwrap()
            .consent,
        Consent::Followed
    );
    let unfollow = json!({"type": "unfollow", "mode": "active", "timestamp": T0 + 1, "webhookEventId": "F2",
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": "Ubob"}});
    f.router
        .process_message(&inbound(unfollow), 1)
        .await
        .unwrap();
    assert_eq!(
        f.conversations
            .customer(ACCOUNT, "Ubob")
            .await
            .unwrap()
            .unwrap()
            .consent,
        Consent::Unfollowed
    );

    Mock::given(method("GET"))
        .and(path("/v2/bot/group/Cteam/member/Ualice"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "Ualice", "displayName": "Alice in group"})),
        )
        .mount(&f.line)
        .await;
    let group_message = json!({"type": "message", "mode": "active", "timestamp": T0 + 5, "webhookEventId": "G1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "group", "groupId": "Cteam", "userId": "Ualice"},
        "message": {"type": "text", "id": "m-G1", "quoteToken": "q", "text": "from the group"}});
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(group_message), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let joined = json!({"type": "memberJoined", "mode": "active", "timestamp": T0 + 6, "webhookEventId": "G2",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt", "source": {"type": "group", "groupId": "Cteam"},
        "joined": {"members": [{"type": "user", "userId": "Udave"}]}});
    f.router.process_message(&inbound(joined), 1).await.unwrap();
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.members, ["Ualice", "Udave"]);
    let transcript = f.conversations.transcript(&id).await.unwrap();
    assert_eq!(transcript[0].sender_user_id.as_deref(), Some("Ualice"));
    assert_eq!(
        f.conversations
            .customer(ACCOUNT, "Ualice")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Alice in group"
    );

    let left = json!({"type": "leave", "mode": "active", "timestamp": T0 + 7, "webhookEventId": "G3",
        "deliveryContext": {"isRedelivery": false}, "source": {"type": "group", "groupId": "Cteam"}});
    f.router.process_message(&inbound(left), 1).await.unwrap();
    assert_eq!(
        f.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Closed
    );
}

#[tokio::test]
async fn events_of_deleted_accounts_and_without_a_workstream_never_fail() {
    let f = fixture().await;
    let other = json!({"accountId": "gone", "destination": "U", "receivedAt": T0, "event": text_from("Ubob", "Z1", "hi", T0)});
    assert_eq!(
        f.router
            .process_message(&other.to_string(), 1)
            .await
            .unwrap(),
        Processed::AccountGone
    );
    // No workstream: the conversation is stored, waiting, nothing is sent.
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "Z2", "hi", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        f.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Waiting
    );
    assert!(outbound(&f).await.is_empty());
    // Account-level events are stored too.
    let suspended = json!({"type": "botSuspended", "mode": "active", "timestamp": T0, "webhookEventId": "S1",
        "deliveryContext": {"isRedelivery": false}});
    assert!(matches!(
        f.router
            .process_message(&inbound(suspended), 1)
            .await
            .unwrap(),
        Processed::Stored {
            conversation_id: None
        }
    ));
    assert_eq!(
        f.conversations
            .transcript(&format!("log:{ACCOUNT}"))
            .await
            .unwrap()
            .len(),
        1
    );
}

fn sqs_record(id: &str, group: &str, body: &str, receive_count: u32) -> Value {
    json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(), "MessageGroupId": group,
                       "MessageDeduplicationId": id, "SentTimestamp": "1795575600000",
                       "ApproximateFirstReceiveTimestamp": "1795575600000", "SenderId": "AIDA", "SequenceNumber": "1"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-northeast-1:123456789012:inbound.fifo", "awsRegion": "ap-northeast-1"
    })
}

#[tokio::test]
async fn the_lambda_handler_reports_exactly_the_failed_message_ids() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    let event = json!({"Records": [
        sqs_record("m1", "acc1:Ualice", &inbound(text_from("Ualice", "L1", "one", T0)), 1),
        sqs_record("m2", "acc1:Ubob", "not json at all", 1),
        sqs_record("m3", "acc1:Ubob", &inbound(text_from("Ubob", "L3", "three", T0)), 1),
        sqs_record("m4", "acc1:Ucarol", &inbound(text_from("Ucarol", "L4", "four", T0)), 1)
    ]});
    let response = router::lambda::handle(&f.router, event).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]})
    );
    assert!(f
        .conversations
        .event_recorded(ACCOUNT, "L1", T0 / 1000)
        .await
        .unwrap());
    assert!(!f
        .conversations
        .event_recorded(ACCOUNT, "L3", T0 / 1000)
        .await
        .unwrap());
    assert!(f
        .conversations
        .event_recorded(ACCOUNT, "L4", T0 / 1000)
        .await
        .unwrap());

    // A batch that all succeeds reports nothing; LINE redeliveries in it are no-ops.
    let again = json!({"Records": [sqs_record("m5", "acc1:Ualice", &inbound(text_from("Ualice", "L1", "one", T0)), 2)]});
    assert_eq!(
        router::lambda::handle(&f.router, again).await.unwrap(),
        json!({"batchItemFailures": []})
    );
}

/// Records the retries the handler asks for.
#[derive(Default)]
struct RecordedDelays(std::sync::Mutex<Vec<(String, Duration)>>);

#[async_trait::async_trait]
impl omniline_ports::RetryDelay for RecordedDelays {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((receipt_handle.to_owned(), delay));
    }
}

#[tokio::test]
async fn failed_messages_are_retried_after_a_growing_delay_and_processed_ones_are_not() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    let event = json!({"Records": [
        sqs_record("m1", "acc1:Ualice", &inbound(text_from("Ualice", "R1", "one", T0)), 1),
        sqs_record("m2", "acc1:Ubob", "not json at all", 3),
        sqs_record("m3", "acc1:Ubob", &inbound(text_from("Ubob", "R3", "three", T0)), 1)
    ]});
    let delays = RecordedDelays::default();
    let response = router::lambda::handle_with_retry(&f.router, event, Some(&delays))
        .await
        .unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m3"}]})
    );
    let recorded = delays.0.lock().unwrap().clone();
    assert_eq!(
        recorded,
        vec![
            ("rh-m2".to_owned(), Duration::from_secs(20)),
            ("rh-m3".to_owned(), Duration::from_secs(5)),
        ],
        "the third receive waits 20 s, a first 5 s; the processed m1 is not delayed"
    );
}

#[tokio::test]
async fn the_lambda_handler_runs_auto_close_on_schedule_events_and_refuses_others() {
    let f = fixture().await;
    let scheduled = json!({
        "version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-25T03:00:00Z", "region": "ap-northeast-1",
        "resources": ["arn:aws:events:ap-northeast-1:123456789012:rule/auto-close"], "detail": {}
    });
    assert_eq!(
        router::lambda::handle(&f.router, scheduled).await.unwrap(),
        json!({"closed": 0, "assigned": 0})
    );
    assert!(router::lambda::handle(&f.router, json!({"hello": "world"}))
        .await
        .is_err());
}

#[tokio::test]
async fn waiting_conversations_go_to_an_agent_who_comes_online_highest_priority_first() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"autoCloseMinutes": null})))
        .await
        .unwrap();
    // No agent online: both wait. Bob's "invoice" message matches the priority-5 billing rule.
    let Processed::Stored {
        conversation_id: Some(carol),
    } = f
        .router
        .process_message(&inbound(text_from("Ucarol", "W1", "hello", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let Processed::Stored {
        conversation_id: Some(bob),
    } = f
        .router
        .process_message(
            &inbound(text_from("Ubob", "W2", "my invoice", T0 + 1000)),
            1,
        )
        .await
        .unwrap()
    else {
        panic!()
    };
    // What was queued so far is consumed (as the outbound function would).
    for m in f
        .outbound
        .receive(100, Duration::from_secs(60))
        .await
        .unwrap()
    {
        f.outbound.delete(&m.receipt).await.unwrap();
    }
    assert_eq!(
        f.router.run_schedule().await.unwrap(),
        router::ScheduleOutcome {
            closed: 0,
            assigned: 0,
            away: 0,
            wrapped: 0,
            offers_expired: 0,
        }
    );

    // An agent of both queues comes online with one slot: the higher priority conversation wins.
    let mut online = agent("ag9", "q-billing", 1);
    online.queues.push("q-general".into());
    f.agents.put_agent(&online).await.unwrap();
    f.now.store(T0 + 60_000, Ordering::SeqCst);
    assert_eq!(f.router.run_schedule().await.unwrap().assigned, 1);
    let bob_c = f.conversations.conversation(&bob).await.unwrap().unwrap();
    assert_eq!(bob_c.state, ConversationState::Active);
    assert_eq!(bob_c.agent_id.as_deref(), Some("ag9"));
    assert_eq!(
        f.conversations
            .conversation(&carol)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Waiting
    );
    let pushed = outbound(&f).await;
    assert_eq!(texts(&pushed), ["Agent ag9 will help you."]);
    assert_eq!(pushed[0].reply_token, None, "no event to reply to: a push");
    assert_eq!(f.agents.notifications("ag9").await.unwrap().len(), 1);

    // Running again changes nothing: the agent is full.
    assert_eq!(f.router.run_schedule().await.unwrap().assigned, 0);
    assert_eq!(
        f.agents
            .agent("ag9")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        [bob]
    );
}

/// Fails the first settings read, then delegates: a router attempt that dies after assigning an
/// agent (the settings are read once the effects are done, before the commit).
struct FlakySettings {
    inner: Arc<dyn omniline_ports::ConfigStore>,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl omniline_ports::ConfigStore for FlakySettings {
    async fn get_doc(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<omniline_ports::ConfigDoc>, omniline_domain::PortError> {
        if kind == omniline_domain::settings::SETTINGS_KIND
            && !self.failed.swap(true, Ordering::SeqCst)
        {
            return Err(omniline_domain::PortError::Unavailable(
                "config store down".into(),
            ));
        }
        self.inner.get_doc(kind, id).await
    }
    async fn list_docs(
        &self,
        kind: &str,
    ) -> Result<Vec<omniline_ports::ConfigDoc>, omniline_domain::PortError> {
        self.inner.list_docs(kind).await
    }
    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: &str,
        expect: omniline_ports::Expect,
    ) -> Result<Option<u64>, omniline_domain::PortError> {
        self.inner.put_doc(kind, id, doc, expect).await
    }
    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, omniline_domain::PortError> {
        self.inner.delete_doc(kind, id).await
    }
}

/// Fails the first send, then delegates: the outbound queue down right after a commit.
struct FlakyQueue {
    inner: SqliteEventQueue,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl omniline_ports::EventQueue for FlakyQueue {
    async fn send(
        &self,
        messages: &[omniline_domain::line::envelope::QueueMessage],
    ) -> Result<(), omniline_domain::PortError> {
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(omniline_domain::PortError::Unavailable(
                "outbound queue down".into(),
            ));
        }
        self.inner.send(messages).await
    }
}

#[tokio::test]
async fn a_retry_after_a_failure_past_the_assignment_keeps_the_same_agent_and_one_slot() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag-a", "q-general", 1))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag-b", "q-general", 1))
        .await
        .unwrap();
    let mut deps = f.router.deps().clone();
    deps.config = Arc::new(FlakySettings {
        inner: deps.config.clone(),
        failed: Default::default(),
    });
    let router = RouterService::new(deps);
    let body = inbound(text_from("Ucarol", "R1", "hi", T0));
    assert!(
        router.process_message(&body, 1).await.is_err(),
        "the settings read failed"
    );
    assert!(
        outbound(&f).await.is_empty(),
        "nothing queued before a commit"
    );
    let Processed::Stored {
        conversation_id: Some(id),
    } = router.process_message(&body, 2).await.unwrap()
    else {
        panic!()
    };
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    let holder = c.agent_id.clone().unwrap();
    let a = f.agents.agent("ag-a").await.unwrap().unwrap();
    let b = f.agents.agent("ag-b").await.unwrap().unwrap();
    assert_eq!(
        a.active_conversations.len() + b.active_conversations.len(),
        1,
        "one slot held, not two"
    );
    let holder_agent = if holder == "ag-a" { a } else { b };
    assert_eq!(holder_agent.active_conversations, [id]);
    let out = outbound(&f).await;
    assert_eq!(out.len(), 1, "the committed reply, queued once");
    assert!(
        texts(&out).contains(&format!("Agent {holder} will help you.")),
        "{:?}",
        texts(&out)
    );
}

/// The outbox survives a crash between the commit and the queueing: the commit lands, the
/// queue refuses the send (the message fails), and the redelivery finds the event recorded and
/// queues the recorded outbox, once, naming the agent the conversation was stored with.
#[tokio::test]
async fn a_send_failing_after_the_commit_is_queued_by_the_redelivery() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag-a", "q-general", 1))
        .await
        .unwrap();
    let mut deps = f.router.deps().clone();
    deps.outbound = Arc::new(FlakyQueue {
        inner: f.outbound.clone(),
        failed: Default::default(),
    });
    let router = RouterService::new(deps);
    let body = inbound(text_from("Ucarol", "S1", "hi", T0));
    assert!(
        router.process_message(&body, 1).await.is_err(),
        "the outbound queue failed after the commit"
    );
    assert!(f
        .conversations
        .event_recorded(ACCOUNT, "S1", T0 / 1000)
        .await
        .unwrap());
    let c = f
        .conversations
        .open_conversation(ACCOUNT, "Ucarol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.agent_id.as_deref(), Some("ag-a"));
    let recorded = f
        .conversations
        .recorded_outbox(ACCOUNT, "S1", T0 / 1000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(outbound(&f).await.is_empty(), "the send failed");

    assert_eq!(
        router.process_message(&body, 2).await.unwrap(),
        Processed::Duplicate
    );
    let out = outbound(&f).await;
    assert_eq!(
        out, recorded,
        "the recorded outbox, queued by the redelivery"
    );
    assert_eq!(out[0].conversation_id, c.id);
    assert!(texts(&out).contains(&"Agent ag-a will help you.".to_owned()));
    // Another redelivery queues it again: the queue (and after it the outbound function)
    // deduplicate it by id.
    assert_eq!(
        router.process_message(&body, 3).await.unwrap(),
        Processed::Duplicate
    );
    assert_eq!(outbound(&f).await, recorded, "still once");
    assert_eq!(
        f.agents
            .agent("ag-a")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        [c.id]
    );
}

#[tokio::test]
async fn a_late_redelivery_is_fresh_activity_for_auto_close() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "pick"})))
        .await
        .unwrap();
    // The event happened 40 minutes before we received it (LINE redelivered it).
    let event = text_from("Ubob", "L1", "sent long ago", T0 - 40 * 60_000);
    let body =
        json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event})
            .to_string();
    let Processed::Stored {
        conversation_id: Some(id),
    } = f.router.process_message(&body, 1).await.unwrap()
    else {
        panic!()
    };
    f.now.store(T0 + 60_000, Ordering::SeqCst);
    assert_eq!(
        f.router.run_schedule().await.unwrap().closed,
        0,
        "30 minutes count from receipt"
    );
    assert_eq!(
        f.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .state,
        ConversationState::Waiting
    );
}

/// Presence follows the person: an agent who set its own presence and went quiet for the
/// timeout (90 s by default) is passed over by distribution at once, set away by the schedule
/// (its conversation stays its own), and comes back with its next heartbeat; an agent heard
/// from keeps working; the timeout and a customer's first message racing never give the quiet
/// agent the conversation, whichever lands first.
#[tokio::test]
async fn an_agent_not_heard_from_for_the_timeout_gets_no_new_work_and_goes_away() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"autoCloseMinutes": null})))
        .await
        .unwrap();
    // Quiet holds a conversation and keeps its presence alive until T0; Loud beats later.
    f.agents
        .put_agent(&agent("quiet", "q-general", 3))
        .await
        .unwrap();
    f.agents
        .set_status("quiet", AgentStatus::Available, T0)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(held),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "P1", "hello", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let held_c = f.conversations.conversation(&held).await.unwrap().unwrap();
    assert_eq!(held_c.agent_id.as_deref(), Some("quiet"));
    f.agents
        .put_agent(&agent("loud", "q-general", 4))
        .await
        .unwrap();
    // Loud is busier than Quiet: ranked by load alone, Quiet would get the next conversation.
    for other in ["x1", "x2"] {
        assert!(f.agents.try_assign("loud", other, T0).await.unwrap());
    }

    // 91 s later: Quiet lapsed; Loud was heard from 1 s ago. Before the schedule has run,
    // Carol's first message already passes Quiet over.
    f.now.store(T0 + 91_000, Ordering::SeqCst);
    f.agents
        .set_status("loud", AgentStatus::Available, T0 + 90_000)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(carol),
    } = f
        .router
        .process_message(&inbound(text_from("Ucarol", "P2", "hi", T0 + 91_000)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let carol_c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(
        carol_c.agent_id.as_deref(),
        Some("loud"),
        "never the quiet agent"
    );
    assert_eq!(
        f.agents.agent("quiet").await.unwrap().unwrap().status,
        AgentStatus::Available,
        "not set away yet"
    );
    // The timeout (the schedule) and Dave's first message race: Dave's goes to Loud too.
    let message = inbound(text_from("Udave", "P4", "hi", T0 + 91_500));
    let (schedule, routed) = tokio::join!(
        f.router.run_schedule(),
        f.router.process_message(&message, 1)
    );
    assert_eq!(schedule.unwrap().away, 1);
    let Processed::Stored {
        conversation_id: Some(dave),
    } = routed.unwrap()
    else {
        panic!()
    };
    let dave_c = f.conversations.conversation(&dave).await.unwrap().unwrap();
    assert_eq!(dave_c.agent_id.as_deref(), Some("loud"));
    let quiet = f.agents.agent("quiet").await.unwrap().unwrap();
    assert_eq!(quiet.status, AgentStatus::Away);
    assert_eq!(
        quiet.active_conversations,
        std::slice::from_ref(&held),
        "its conversation stays"
    );
    let held_c = f.conversations.conversation(&held).await.unwrap().unwrap();
    assert_eq!(held_c.agent_id.as_deref(), Some("quiet"));
    assert_eq!(held_c.state, ConversationState::Active);
    // Loud is still heard from: the schedule leaves it alone.
    assert_eq!(f.router.run_schedule().await.unwrap().away, 0);

    // Quiet's heartbeat brings it back: the next conversation goes to it (Loud is full).
    f.agents
        .set_status("quiet", AgentStatus::Available, T0 + 92_000)
        .await
        .unwrap();
    f.now.store(T0 + 93_000, Ordering::SeqCst);
    let Processed::Stored {
        conversation_id: Some(ghost),
    } = f
        .router
        .process_message(&inbound(text_from("Ughost", "P3", "hey", T0 + 93_000)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let ghost_c = f.conversations.conversation(&ghost).await.unwrap().unwrap();
    assert_eq!(ghost_c.agent_id.as_deref(), Some("quiet"));
}

/// Affinity: a returning customer's new conversation goes first to the agent of their last one
/// (within the workstream's days), even when distribution alone would pick another agent; two
/// routers applying it at once to an agent with one free slot give it exactly one of them, and
/// the other goes on as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_customer_goes_to_the_agent_of_their_last_conversation() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "autoCloseMinutes": null,
            "affinity": {"enabled": true, "days": 30}
        })))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("fav", "q-general", 1))
        .await
        .unwrap();
    let fav = f.agents.agent("fav").await.unwrap().unwrap();
    // Bob, then Carol, each talks with Fav (its one slot), who closes.
    for (user, event) in [("Ubob", "A1"), ("Ucarol", "A2")] {
        let Processed::Stored {
            conversation_id: Some(id),
        } = f
            .router
            .process_message(&inbound(text_from(user, event, "hello", T0)), 1)
            .await
            .unwrap()
        else {
            panic!()
        };
        let c = f.conversations.conversation(&id).await.unwrap().unwrap();
        assert_eq!(c.agent_id.as_deref(), Some("fav"));
        f.router.close_by_agent(&id, &fav).await.unwrap();
    }
    // Other joins: never assigned, it is first by distribution alone.
    f.agents
        .put_agent(&agent("other", "q-general", 5))
        .await
        .unwrap();
    f.now.store(T0 + 3_600_000, Ordering::SeqCst);
    let bob = inbound(text_from("Ubob", "A3", "me again", T0 + 3_600_000));
    let carol = inbound(text_from("Ucarol", "A4", "me again", T0 + 3_600_000));
    let (bob, carol) = tokio::join!(
        f.router.process_message(&bob, 1),
        f.router.process_message(&carol, 1)
    );
    let mut holders = Vec::new();
    for processed in [bob.unwrap(), carol.unwrap()] {
        let Processed::Stored {
            conversation_id: Some(id),
        } = processed
        else {
            panic!()
        };
        let c = f.conversations.conversation(&id).await.unwrap().unwrap();
        holders.push(c.agent_id.unwrap());
    }
    holders.sort();
    assert_eq!(
        holders,
        ["fav", "other"],
        "one back to Fav (one slot), one as usual"
    );
    let fav = f.agents.agent("fav").await.unwrap().unwrap();
    assert_eq!(fav.active_conversations.len(), 1);
}

/// Wrap-up: with `wrapUpSeconds`, an agent's close sends what it sends and leaves the
/// conversation closed with its wrap-up pending and the agent's slot held (no new work on it);
/// recording the outcome (one of the dispositions) gives the slot back; a wrap-up nobody records
/// ends when its time passes (the schedule), and its slot comes back then.
#[tokio::test]
async fn wrap_up_holds_the_slot_until_recorded_or_timed_out() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "autoCloseMinutes": null,
            "wrapUpSeconds": 120,
            "dispositions": ["resolved", "escalated"]
        })))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("solo", "q-general", 1))
        .await
        .unwrap();
    let solo = f.agents.agent("solo").await.unwrap().unwrap();
    let open = |user: &'static str, event: &'static str, at: i64| {
        let router = &f.router;
        async move {
            let Processed::Stored {
                conversation_id: Some(id),
            } = router
                .process_message(&inbound(text_from(user, event, "hello", at)), 1)
                .await
                .unwrap()
            else {
                panic!()
            };
            id
        }
    };
    let bob = open("Ubob", "W1", T0).await;
    let closed = f.router.close_by_agent(&bob, &solo).await.unwrap();
    assert!(closed.wrapping_up());
    assert_eq!(closed.wrap_up.as_ref().unwrap().until, T0 + 120_000);
    assert_eq!(
        f.agents
            .agent("solo")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&bob),
        "the slot is held during the wrap-up"
    );
    // Carol writes meanwhile: Solo has no room, she waits.
    let carol = open("Ucarol", "W2", T0 + 1_000).await;
    let carol_c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(carol_c.state, ConversationState::Waiting);
    // Not a listed disposition; then recorded.
    let wrong = f
        .router
        .finish_wrap_up(&bob, &solo, "happy".into(), None)
        .await;
    assert!(
        matches!(wrong, Err(router::AgentOpError::Invalid { .. })),
        "{wrong:?}"
    );
    let done = f
        .router
        .finish_wrap_up(&bob, &solo, "resolved".into(), Some("refund issued".into()))
        .await
        .unwrap();
    let wrap = done.wrap_up.as_ref().unwrap();
    assert_eq!(
        (
            wrap.disposition.as_deref(),
            wrap.notes.as_deref(),
            wrap.done_at
        ),
        (Some("resolved"), Some("refund issued"), Some(T0))
    );
    assert!(!done.wrapping_up());
    let again = f
        .router
        .finish_wrap_up(&bob, &solo, "resolved".into(), None)
        .await;
    assert!(
        matches!(again, Err(router::AgentOpError::Conflict(_))),
        "{again:?}"
    );
    // The slot is back: the schedule gives Carol to Solo.
    assert_eq!(f.router.run_schedule().await.unwrap().assigned, 1);
    let carol_c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(carol_c.agent_id.as_deref(), Some("solo"));

    // Carol's wrap-up is never recorded: it ends at its time, and the slot comes back.
    f.now.store(T0 + 10_000, Ordering::SeqCst);
    f.router.close_by_agent(&carol, &solo).await.unwrap();
    f.now.store(T0 + 10_000 + 119_000, Ordering::SeqCst);
    assert_eq!(f.router.run_schedule().await.unwrap().wrapped, 0, "not yet");
    assert_eq!(
        f.agents
            .agent("solo")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&carol)
    );
    f.now.store(T0 + 10_000 + 120_000, Ordering::SeqCst);
    assert_eq!(f.router.run_schedule().await.unwrap().wrapped, 1);
    let carol_c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert!(!carol_c.wrapping_up());
    assert_eq!(carol_c.wrap_up.unwrap().done_at, Some(T0 + 130_000));
    assert!(f
        .agents
        .agent("solo")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    assert_eq!(f.router.run_schedule().await.unwrap().wrapped, 0, "once");
}

/// Offers (`offer.mode` `accept`): a push assignment is offered to the best agent on one of its
/// slots (the conversation waits, the agent is notified with the deadline); accepting makes it
/// the agent's (the customer is told then); rejecting gives it to the next agent at once; an
/// offer left to expire goes to the next agent at the schedule, and a second expiry in a row
/// sets the agent away.
#[tokio::test]
async fn offers_are_accepted_rejected_or_expire_to_the_next_agent() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "autoCloseMinutes": null,
            "offer": {"mode": "accept", "timeoutSeconds": 30}
        })))
        .await
        .unwrap();
    for id in ["ann", "ben"] {
        f.agents
            .put_agent(&agent(id, "q-general", 2))
            .await
            .unwrap();
    }
    let ann = f.agents.agent("ann").await.unwrap().unwrap();
    let ben = f.agents.agent("ben").await.unwrap().unwrap();
    let open = |user: &'static str, event: &'static str, at: i64| {
        let router = &f.router;
        async move {
            let Processed::Stored {
                conversation_id: Some(id),
            } = router
                .process_message(&inbound(text_from(user, event, "hello", at)), 1)
                .await
                .unwrap()
            else {
                panic!()
            };
            id
        }
    };
    // Bob's conversation is offered to Ann (first by id): waiting, on her slot, notified.
    let bob = open("Ubob", "O1", T0).await;
    let c = f.conversations.conversation(&bob).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Waiting);
    let offer = c.offer.clone().unwrap();
    assert_eq!(
        (offer.agent_id.as_str(), offer.expires_at),
        ("ann", T0 + 30_000)
    );
    assert_eq!(
        f.agents
            .agent("ann")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&bob)
    );
    let notes = f.agents.notifications("ann").await.unwrap();
    let offered = notes.iter().find(|n| n.kind == "offer").unwrap();
    assert_eq!(offered.expires_at, Some(T0 + 30_000));
    assert!(
        !texts(&outbound(&f).await)
            .iter()
            .any(|t| t.contains("will help you")),
        "the customer hears of the agent at the accept"
    );
    // Ben may not accept Ann's offer; Ann accepts.
    assert!(matches!(
        f.router.accept_offer(&bob, &ben).await,
        Err(router::AgentOpError::Forbidden(_))
    ));
    let accepted = f.router.accept_offer(&bob, &ann).await.unwrap();
    assert_eq!(accepted.state, ConversationState::Active);
    assert_eq!(accepted.agent_id.as_deref(), Some("ann"));
    assert!(accepted.offer.is_none());
    let told = texts(&outbound(&f).await);
    assert_eq!(
        told.iter()
            .filter(|t| *t == "Agent ann will help you.")
            .count(),
        1,
        "{told:?}"
    );

    // Carol's goes to Ben (Ann is busier); he rejects: offered to Ann at once.
    let carol = open("Ucarol", "O2", T0 + 1_000).await;
    let c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(c.offer.as_ref().unwrap().agent_id, "ben");
    let next = f.router.reject_offer(&carol, &ben).await.unwrap();
    assert_eq!(next.offer.as_ref().unwrap().agent_id, "ann");
    assert_eq!(next.declined_by, ["ben"]);
    assert!(f
        .agents
        .agent("ben")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
    // Ann lets it expire: back to waiting; nobody else is left this round (Ben declined).
    f.now.store(T0 + 1_000 + 30_000, Ordering::SeqCst);
    let run = f.router.run_schedule().await.unwrap();
    assert_eq!(run.offers_expired, 1);
    let c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert!(c.offer.is_none());
    assert_eq!(c.state, ConversationState::Waiting);
    assert_eq!(
        f.agents
            .agent("ann")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&bob),
        "the expired offer's slot is back"
    );
    // The next run starts a new round: offered to Ben again (less busy); he lets it expire
    // too: one miss for him; Ann gets it, lets it expire: her second in a row — away.
    f.now.store(T0 + 40_000, Ordering::SeqCst);
    f.router.run_schedule().await.unwrap();
    let c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(c.offer.as_ref().unwrap().agent_id, "ben");
    f.now.store(T0 + 71_000, Ordering::SeqCst);
    let run = f.router.run_schedule().await.unwrap();
    assert_eq!(run.offers_expired, 1);
    let c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(
        c.offer.as_ref().unwrap().agent_id,
        "ann",
        "offered to the next agent"
    );
    f.now.store(T0 + 102_000, Ordering::SeqCst);
    f.router.run_schedule().await.unwrap();
    assert_eq!(
        f.agents.agent("ann").await.unwrap().unwrap().status,
        AgentStatus::Away,
        "two offers in a row let expire"
    );
    assert_eq!(
        f.agents.agent("ben").await.unwrap().unwrap().status,
        AgentStatus::Available,
        "one miss only"
    );
    assert_eq!(
        f.agents
            .agent("ann")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        std::slice::from_ref(&bob),
        "her accepted conversation stays"
    );
}

/// Accept racing the offer's expiry, on two routers whose clocks stand either side of the
/// deadline: exactly one lands each time — accepted (active with the agent, on its slot), or
/// expired (waiting, the agent's slot given back, the accept refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_racing_the_offer_expiry_gives_exactly_one_owner() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "autoCloseMinutes": null,
            "offer": {"mode": "accept", "timeoutSeconds": 15}
        })))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ann", "q-general", 20))
        .await
        .unwrap();
    let ann = f.agents.agent("ann").await.unwrap().unwrap();
    let (mut accepted, mut expired) = (0, 0);
    for round in 0..8_i64 {
        let at = T0 + round * 100_000;
        f.now.store(at, Ordering::SeqCst);
        // Back each round (two expiries in a row set her away).
        f.agents
            .set_status("ann", AgentStatus::Available, at)
            .await
            .unwrap();
        let user = format!("Urace{round}");
        let Processed::Stored {
            conversation_id: Some(id),
        } = f
            .router
            .process_message(
                &inbound(text_from(&user, &format!("R{round}"), "hi", at)),
                1,
            )
            .await
            .unwrap()
        else {
            panic!()
        };
        let deadline = at + 15_000;
        // The accepting router sees the offer live; the schedule's, expired.
        let mut early = f.router.deps().clone();
        early.clock = Arc::new(move || deadline - 1);
        let mut late = f.router.deps().clone();
        late.clock = Arc::new(move || deadline);
        let (early, late) = (RouterService::new(early), RouterService::new(late));
        let (accept, expire) = tokio::join!(early.accept_offer(&id, &ann), late.expire_offers());
        let c = f.conversations.conversation(&id).await.unwrap().unwrap();
        let holds = f
            .agents
            .agent("ann")
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
                assert_eq!(c.agent_id.as_deref(), Some("ann"));
                assert!(holds, "round {round}: on her slot");
            }
            Err(router::AgentOpError::Conflict(why)) => {
                expired += 1;
                assert_eq!(expire.unwrap(), 1, "round {round}: {why}; {c:?}");
                assert_eq!(c.state, ConversationState::Waiting);
                assert!(c.offer.is_none() && c.agent_id.is_none());
                assert!(!holds, "round {round}: the slot is back");
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    eprintln!("accept vs expiry: {accepted} accepted, {expired} expired of 8");
}

/// An offer out holds the offered agent's slot until answered: transferring the waiting
/// conversation, or closing it, withdraws the offer and gives that slot back.
#[tokio::test]
async fn a_withdrawn_offer_gives_the_offered_agent_its_slot_back() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "autoCloseMinutes": null,
            "offer": {"mode": "accept", "timeoutSeconds": 60}
        })))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ann", "q-general", 1))
        .await
        .unwrap();
    let mut boss = agent("boss", "q-general", 1);
    boss.status = AgentStatus::Busy;
    f.agents.put_agent(&boss).await.unwrap();
    let boss = f.agents.agent("boss").await.unwrap().unwrap();
    let slots = |f: &Fixture| {
        let agents = Arc::clone(&f.agents);
        async move {
            agents
                .agent("ann")
                .await
                .unwrap()
                .unwrap()
                .active_conversations
        }
    };
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "WD1", "hello", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(slots(&f).await, std::slice::from_ref(&id));
    // Boss sends it back to the queue: the offer is withdrawn, and made again (Ann is free).
    let moved = f
        .router
        .transfer(
            &id,
            &boss,
            router::TransferTarget::Queue("q-general".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        moved.offer.as_ref().map(|o| o.agent_id.as_str()),
        Some("ann")
    );
    assert_eq!(
        slots(&f).await,
        std::slice::from_ref(&id),
        "one slot, not two"
    );
    // Boss closes the waiting conversation: Ann's slot comes back.
    let closed = f.router.close_by_agent(&id, &boss).await.unwrap();
    assert!(closed.offer.is_none());
    assert!(slots(&f).await.is_empty());
}

/// Context: a bot hands off with `"context"`; the workstream keeps what it declares (of the
/// declared type), drops the rest, and the routing rules test it (`context.vip`) to choose the
/// queue; the customer's attributes (set by an admin) are tested as
/// `customer.attributes.<name>` when a conversation opens.
#[tokio::test]
async fn a_bot_handoff_context_and_customer_attributes_drive_the_routing() {
    let f = fixture().await;
    let mut ws = workstream(json!({
        "bot": {"id": "faq", "url": format!("{}/hook", f.bot.uri()), "secretName": "bots/faq", "timeoutMs": 300},
        "contextVariables": [
            {"name": "orderId", "type": "string", "label": "Order"},
            {"name": "vip", "type": "boolean", "label": "VIP"}
        ],
        "rules": [
            {"id": "vip", "name": "VIP", "condition": {"field": "context.vip", "op": "equals", "value": true},
             "result": {"queue": "q-vip", "priority": 9}},
            {"id": "gold", "name": "Gold", "condition": {"field": "customer.attributes.tier", "op": "equals", "value": "gold"},
             "result": {"queue": "q-gold", "priority": 5}},
            {"id": "rest", "name": "To the bot", "condition": {"field": "event.type", "op": "exists"},
             "result": {"queue": "q-general", "bot": "faq"}}
        ]
    }));
    ws.version = 2;
    f.workstreams.put_workstream(&ws).await.unwrap();
    f.secrets
        .put("bots/faq", &SecretString::new("bot-secret"))
        .await
        .unwrap();
    // Carol's turn: a handoff with no context.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .and(wiremock::matchers::body_string_contains("Ucarol"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"handoff": true})))
        .mount(&f.bot)
        .await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "handoff": true,
            "context": {"orderId": "A-17", "vip": true, "undeclared": "x", "orderIdTypo": 1}
        })))
        .mount(&f.bot)
        .await;
    let Processed::Stored {
        conversation_id: Some(id),
    } = f
        .router
        .process_message(&inbound(text_from("Ubob", "C1", "hi", T0)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.bot_id, None, "handed off");
    assert_eq!(
        serde_json::to_value(&c.context).unwrap(),
        json!({"orderId": "A-17", "vip": true}),
        "declared names only"
    );
    assert_eq!(
        (c.queue_id.as_deref(), c.priority, c.rule_id.as_deref()),
        (Some("q-vip"), 9, Some("vip"))
    );

    // Carol is a gold customer: her conversation goes by the attribute (when it opens, and again
    // when the bot, which every new conversation meets first, hands it off without context).
    f.router
        .deps()
        .config
        .put_doc(
            omniline_domain::conversation::CUSTOMER_ATTRIBUTES_KIND,
            &format!("{ACCOUNT}:Ucarol"),
            &json!({"attributes": {"tier": "gold"}}).to_string(),
            omniline_ports::Expect::Absent,
        )
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(carol),
    } = f
        .router
        .process_message(&inbound(text_from("Ucarol", "C2", "hi", T0 + 1000)), 1)
        .await
        .unwrap()
    else {
        panic!()
    };
    let c = f.conversations.conversation(&carol).await.unwrap().unwrap();
    assert_eq!(
        (
            c.queue_id.as_deref(),
            c.rule_id.as_deref(),
            c.bot_id.as_deref()
        ),
        (Some("q-gold"), Some("gold"), None)
    );
    assert!(c.context.is_empty());
}
