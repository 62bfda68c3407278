//! The agent use cases of `RouterService` (pick, transfer, close with the survey, agent messages,
//! account links) and the inbound side they need (survey answers, accountLink, message
//! notifications), over the embedded adapters with LINE served by wiremock and a fake clock.

use omniline_domain::agents::{Agent, AgentStatus, NOTIFICATION_ASSIGNED, NOTIFICATION_MESSAGE};
use omniline_domain::contacts::{
    contact_kind, LinkNonce, LinkRequest, LINK_NONCE_KIND, LINK_REQUEST_KIND,
};
use omniline_domain::conversation::{ConversationState, SurveyState};
use omniline_domain::line::api::LineApiError;
use omniline_domain::outbound::{Origin, OutboundMessage};
use omniline_domain::workstream::Workstream;
use omniline_embedded::config_docs::SqliteConfigStore;
use omniline_embedded::objects::FsObjectStore;
use omniline_embedded::sqlite_agents::SqliteAgentStore;
use omniline_embedded::sqlite_conversations::SqliteConversationStore;
use omniline_embedded::workstreams::SqliteWorkstreamStore;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore};
use omniline_line::bot::HttpBotHook;
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::AgentStore;
use omniline_ports::{ConfigStore, ConversationStore, EventQueue, Expect, WorkstreamStore};
use router::agent_ops::{AgentOpError, TransferTarget};
use router::{Processed, RouteError, RouterDeps, RouterService};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;
use common::{agent, inbound, text_from, texts, ACCOUNT, T0};

/// Counts the messages queued for the outbound function (then queues them).
struct CountingQueue {
    inner: SqliteEventQueue,
    sent: AtomicUsize,
}

#[async_trait::async_trait]
impl EventQueue for CountingQueue {
    async fn send(
        &self,
        messages: &[omniline_domain::line::envelope::QueueMessage],
    ) -> Result<(), omniline_domain::PortError> {
        self.sent.fetch_add(messages.len(), Ordering::SeqCst);
        self.inner.send(messages).await
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    router: Arc<RouterService>,
    conversations: Arc<SqliteConversationStore>,
    workstreams: Arc<SqliteWorkstreamStore>,
    agents: Arc<SqliteAgentStore>,
    config: Arc<SqliteConfigStore>,
    outbound: SqliteEventQueue,
    queued: Arc<CountingQueue>,
    line: MockServer,
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
        ("Udave", "Dave", Some("en")),
    ] {
        let mut profile = json!({"userId": user, "displayName": name});
        if let Some(language) = language {
            profile["language"] = json!(language);
        }
        Mock::given(method("GET"))
            .and(path(format!("/v2/bot/profile/{user}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(profile))
            .mount(&line)
            .await;
    }
    let conversations = Arc::new(SqliteConversationStore::new(db.clone()).unwrap());
    let workstreams = Arc::new(SqliteWorkstreamStore::new(db.clone()).unwrap());
    let agents = Arc::new(SqliteAgentStore::new(db.clone()).unwrap());
    let config = Arc::new(SqliteConfigStore::new(db.clone()).unwrap());
    let outbound = SqliteEventQueue::new(db.clone(), "outbound", 5);
    let queued = Arc::new(CountingQueue {
        inner: outbound.clone(),
        sent: AtomicUsize::new(0),
    });
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = Arc::clone(&now);
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
    let router = Arc::new(RouterService::new(RouterDeps {
        accounts,
        secrets,
        conversations: conversations.clone(),
        workstreams: workstreams.clone(),
        agents: agents.clone(),
        config: config.clone(),
        outbound: queued.clone(),
        media: Arc::new(FsObjectStore::new(dir.path().join("media"))),
        line: api,
        bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
        tokens,
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    }));
    Fixture {
        _dir: dir,
        router,
        conversations,
        workstreams,
        agents,
        config,
        outbound,
        queued,
        line,
        now,
    }
}

fn workstream(overrides: Value) -> Workstream {
    let mut ws = json!({
        "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
        "distribution": "pick", "defaultQueue": "q-general",
        "timezone": "Asia/Tokyo",
        "automatedMessages": [
            {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true},
            {"trigger": "agentEnded", "language": "en", "text": "Thanks {customerName}, {agentName} closed this chat.", "enabled": true},
            {"trigger": "agentEnded", "language": "ja", "text": "{customerName}様、ありがとうございました。", "enabled": true}
        ],
        "survey": {"enabled": true, "question": "How did we do?", "scale": 5},
        "version": 1
    });
    if let (Some(base), Some(extra)) = (ws.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(ws).unwrap()
}

fn postback_from(user: &str, id: &str, data: &str, ts: i64) -> Value {
    json!({
        "type": "postback", "mode": "active", "timestamp": ts, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"),
        "source": {"type": "user", "userId": user},
        "postback": {"data": data}
    })
}

fn account_link(user: &str, id: &str, result: &str, nonce: &str) -> Value {
    json!({
        "type": "accountLink", "mode": "active", "timestamp": T0, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "user", "userId": user},
        "link": {"result": result, "nonce": nonce}
    })
}

/// Every message queued for the outbound function since the last drain.
async fn drain(f: &Fixture) -> Vec<OutboundMessage> {
    let mut out = Vec::new();
    loop {
        let batch = f
            .outbound
            .receive(100, Duration::from_secs(60))
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        for m in batch {
            f.outbound.delete(&m.receipt).await.unwrap();
            out.push(serde_json::from_str(&m.body).unwrap());
        }
    }
}

/// A conversation opened by `user` writing `text` (event `event_id`).
async fn open(f: &Fixture, user: &str, event_id: &str) -> String {
    let processed = f
        .router
        .process_message(&inbound(text_from(user, event_id, "hello", T0)), 1)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(id),
    } = processed
    else {
        panic!("{processed:?}")
    };
    id
}

async fn stored_agent(f: &Fixture, id: &str) -> Agent {
    f.agents.agent(id).await.unwrap().unwrap()
}

fn is_conflict(r: &Result<impl std::fmt::Debug, AgentOpError>) -> bool {
    matches!(r, Err(AgentOpError::Conflict(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_agents_picking_at_once_exactly_one_gets_the_conversation() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let agents: Vec<Agent> = (0..8)
        .map(|i| agent(&format!("ag{i}"), "q-general", 1))
        .collect();
    for a in &agents {
        f.agents.put_agent(a).await.unwrap();
    }
    let id = open(&f, "Ubob", "E1").await;
    drain(&f).await;

    let mut tasks = tokio::task::JoinSet::new();
    for a in agents.clone() {
        let (router, id) = (f.router.clone(), id.clone());
        tasks.spawn(async move { (a.id.clone(), router.pick(&id, &a).await) });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (agent_id, result) = joined.unwrap();
        match result {
            Ok(c) => {
                assert_eq!(c.agent_id.as_deref(), Some(agent_id.as_str()));
                assert_eq!(c.state, ConversationState::Active);
                winners.push(agent_id);
            }
            Err(AgentOpError::Conflict(_)) => {}
            Err(e) => panic!("{agent_id}: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one pick wins: {winners:?}");
    let winner = &winners[0];
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.agent_id.as_ref(), Some(winner));
    assert_eq!(c.state, ConversationState::Active);
    let mut held = 0;
    for a in &agents {
        let stored = stored_agent(&f, &a.id).await;
        held += stored.active_conversations.len();
        if &a.id == winner {
            assert_eq!(stored.active_conversations, [id.as_str()]);
        }
    }
    assert_eq!(held, 1, "the losers' slots were given back");
    let notes = f.agents.notifications(winner).await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NOTIFICATION_ASSIGNED);
    assert_eq!(notes[0].customer_name, "Bob");
    let out = drain(&f).await;
    assert_eq!(texts(&out), [format!("Agent {winner} will help you.")]);
    assert_eq!(out[0].reply_token, None);

    // Picking it again: it is taken.
    assert!(is_conflict(&f.router.pick(&id, &agents[0]).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_picking_several_at_once_never_exceeds_its_capacity() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let solo = agent("solo", "q-general", 1);
    f.agents.put_agent(&solo).await.unwrap();
    let mut ids = Vec::new();
    for (i, user) in ["Ualice", "Ubob", "Ucarol", "Udave"].iter().enumerate() {
        ids.push(open(&f, user, &format!("E{i}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let (router, solo) = (f.router.clone(), solo.clone());
        tasks.spawn(async move { router.pick(&id, &solo).await });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(_) => ok += 1,
            Err(AgentOpError::Conflict(m)) => assert!(m.contains("capacity"), "{m}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(stored_agent(&f, "solo").await.active_conversations.len(), 1);
    let mut active = 0;
    for id in &ids {
        let c = f.conversations.conversation(id).await.unwrap().unwrap();
        if c.state == ConversationState::Active {
            active += 1;
        } else {
            assert_eq!(c.state, ConversationState::Waiting);
            assert_eq!(c.agent_id, None);
        }
    }
    assert_eq!(active, 1);
}

#[tokio::test]
async fn picking_needs_a_waiting_conversation_and_an_available_agent() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let mut away = agent("away", "q-general", 2);
    away.status = AgentStatus::Away;
    f.agents.put_agent(&away).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    let r = f.router.pick(&id, &away).await;
    assert!(
        matches!(&r, Err(AgentOpError::Conflict(m)) if m.contains("not available")),
        "{r:?}"
    );
    assert!(matches!(
        f.router.pick("nope", &away).await,
        Err(AgentOpError::NotFound)
    ));
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Waiting);
}

#[tokio::test]
async fn transfers_to_an_agent_and_to_a_queue() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    let ag2 = agent("ag2", "q-general", 2);
    let full = agent("full", "q-general", 0);
    for a in [&ag1, &ag2, &full] {
        f.agents.put_agent(a).await.unwrap();
    }
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;

    // To an agent who cannot take it, or who does not exist: nothing changes.
    let before = f.conversations.conversation(&id).await.unwrap().unwrap();
    for to in ["full", "ghost"] {
        let r = f
            .router
            .transfer(&id, &ag1, TransferTarget::Agent(to.into()))
            .await;
        assert!(is_conflict(&r), "{to}: {r:?}");
    }
    assert_eq!(
        f.conversations.conversation(&id).await.unwrap().unwrap(),
        before
    );
    assert_eq!(
        stored_agent(&f, "ag1").await.active_conversations,
        [id.as_str()]
    );

    // To ag2: ag1 is released, ag2 holds it and is told.
    f.now.store(T0 + 60_000, Ordering::SeqCst);
    let moved = f
        .router
        .transfer(&id, &ag1, TransferTarget::Agent("ag2".into()))
        .await
        .unwrap();
    assert_eq!(moved.agent_id.as_deref(), Some("ag2"));
    assert_eq!(moved.state, ConversationState::Active);
    assert_eq!(moved.version, before.version + 1);
    assert_eq!(
        f.conversations.conversation(&id).await.unwrap().unwrap(),
        moved
    );
    assert!(stored_agent(&f, "ag1")
        .await
        .active_conversations
        .is_empty());
    assert_eq!(
        stored_agent(&f, "ag2").await.active_conversations,
        [id.as_str()]
    );
    let notes = f.agents.notifications("ag2").await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NOTIFICATION_ASSIGNED);
    assert_eq!(notes[0].conversation_id, id);
    assert_eq!(notes[0].customer_name, "Bob");
    assert_eq!(texts(&drain(&f).await), ["Agent ag2 will help you."]);

    // To a queue of a pick-mode workstream: waiting there, ag2 released.
    let waiting = f
        .router
        .transfer(&id, &ag2, TransferTarget::Queue("q-billing".into()))
        .await
        .unwrap();
    assert_eq!(waiting.state, ConversationState::Waiting);
    assert_eq!(waiting.queue_id.as_deref(), Some("q-billing"));
    assert_eq!(waiting.agent_id, None);
    assert!(stored_agent(&f, "ag2")
        .await
        .active_conversations
        .is_empty());
    assert!(drain(&f).await.is_empty());

    // To a queue of a push-mode workstream: an agent of that queue gets it at once.
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "push", "version": 2})))
        .await
        .unwrap();
    f.agents.put_agent(&agent("vip", "q-vip", 1)).await.unwrap();
    let assigned = f
        .router
        .transfer(&id, &ag2, TransferTarget::Queue("q-vip".into()))
        .await
        .unwrap();
    assert_eq!(assigned.state, ConversationState::Active);
    assert_eq!(assigned.agent_id.as_deref(), Some("vip"));
    assert_eq!(assigned.queue_id.as_deref(), Some("q-vip"));
    assert_eq!(
        f.conversations.conversation(&id).await.unwrap().unwrap(),
        assigned
    );
    assert_eq!(
        stored_agent(&f, "vip").await.active_conversations,
        [id.as_str()]
    );
    assert_eq!(f.agents.notifications("vip").await.unwrap().len(), 1);
    assert_eq!(texts(&drain(&f).await), ["Agent vip will help you."]);

    // A closed conversation is not transferred.
    f.router
        .close_by_agent(&id, &agent("vip", "q-vip", 1))
        .await
        .unwrap();
    assert!(is_conflict(
        &f.router
            .transfer(&id, &ag1, TransferTarget::Queue("q-general".into()))
            .await
    ));
}

/// Bob's conversation, picked by ag1 and closed by ag1 at `T0 + 60 s`.
async fn closed_with_survey(f: &Fixture) -> (String, Agent) {
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    let id = open(f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(f).await;
    f.now.store(T0 + 60_000, Ordering::SeqCst);
    f.router.close_by_agent(&id, &ag1).await.unwrap();
    (id, ag1)
}

#[tokio::test]
async fn closing_says_goodbye_sends_the_survey_and_releases_the_agent() {
    let f = fixture().await;
    let (id, ag1) = closed_with_survey(&f).await;
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Closed);
    assert_eq!(c.close_reason.as_deref(), Some("agent"));
    assert_eq!(c.closed_at, Some(T0 + 60_000));
    assert_eq!(
        c.survey,
        Some(SurveyState {
            sent_at: T0 + 60_000,
            scale: Some(5),
            score: None,
            answered_at: None
        })
    );
    assert!(f
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .is_none());
    assert!(stored_agent(&f, "ag1")
        .await
        .active_conversations
        .is_empty());

    let out = drain(&f).await;
    assert_eq!(out.len(), 1, "{out:?}");
    let message = &out[0];
    assert_eq!(message.id, format!("close:{id}:{}:0", c.version - 1));
    assert_eq!(message.to, "Ubob");
    assert_eq!(message.conversation_id, id);
    assert_eq!(message.reply_token, None, "pushed");
    assert_eq!(
        texts(&out),
        ["Thanks Bob, Agent ag1 closed this chat.", "How did we do?"]
    );
    let items = message.messages[1]["quickReply"]["items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        let n = i + 1;
        assert_eq!(item["type"], "action");
        assert_eq!(item["action"]["type"], "postback");
        assert_eq!(item["action"]["label"], n.to_string());
        assert_eq!(item["action"]["displayText"], n.to_string());
        assert_eq!(item["action"]["data"], format!("survey:{id}:{n}"));
    }

    // Closing again: a conflict, nothing sent.
    assert!(is_conflict(&f.router.close_by_agent(&id, &ag1).await));
    assert!(drain(&f).await.is_empty());
}

#[tokio::test]
async fn a_link_survey_and_no_survey() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "survey": {"enabled": true, "url": "https://survey.example.com/s"}
        })))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    let id = open(&f, "Ualice", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;
    let closed = f.router.close_by_agent(&id, &ag1).await.unwrap();
    assert_eq!(closed.survey.as_ref().map(|s| s.scale), Some(None));
    // Alice's language is Japanese: the agentEnded message in Japanese.
    assert_eq!(
        texts(&drain(&f).await),
        [
            "Alice様、ありがとうございました。",
            "Please tell us how we did:\nhttps://survey.example.com/s"
        ]
    );

    f.workstreams
        .put_workstream(&workstream(
            json!({"survey": {"enabled": false}, "version": 2}),
        ))
        .await
        .unwrap();
    let id = open(&f, "Ucarol", "E2").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;
    let closed = f.router.close_by_agent(&id, &ag1).await.unwrap();
    assert_eq!(closed.survey, None);
    assert_eq!(
        texts(&drain(&f).await),
        ["Thanks Carol, Agent ag1 closed this chat."]
    );
}

/// Security review 1/7 #2: agent B, in A's queue, took A's conversation by transferring it to
/// itself. Only the holder transfers an assigned conversation.
#[tokio::test]
async fn only_the_holder_transfers_an_assigned_conversation() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    let ag2 = agent("ag2", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    f.agents.put_agent(&ag2).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    let before = f.conversations.conversation(&id).await.unwrap().unwrap();
    for target in [
        TransferTarget::Agent("ag2".into()),
        TransferTarget::Agent("ag1".into()),
        TransferTarget::Queue("q-general".into()),
    ] {
        let r = f.router.transfer(&id, &ag2, target.clone()).await;
        assert!(
            matches!(r, Err(AgentOpError::Forbidden(_))),
            "{target:?}: {r:?}"
        );
    }
    assert_eq!(
        f.conversations.conversation(&id).await.unwrap().unwrap(),
        before
    );
    assert!(stored_agent(&f, "ag2")
        .await
        .active_conversations
        .is_empty());
    // The holder may; and a waiting conversation, anyone who sees it.
    let moved = f
        .router
        .transfer(&id, &ag1, TransferTarget::Queue("q-general".into()))
        .await
        .unwrap();
    assert_eq!(moved.agent_id, None);
    let taken = f
        .router
        .transfer(&id, &ag2, TransferTarget::Agent("ag2".into()))
        .await
        .unwrap();
    assert_eq!(taken.agent_id.as_deref(), Some("ag2"));
}

#[tokio::test]
async fn only_the_holder_closes_an_active_conversation() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    let ag2 = agent("ag2", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    f.agents.put_agent(&ag2).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    assert!(matches!(
        f.router.close_by_agent(&id, &ag2).await,
        Err(AgentOpError::Forbidden(_))
    ));
    // A waiting one: any agent who may see it.
    let waiting = open(&f, "Ucarol", "E2").await;
    let closed = f.router.close_by_agent(&waiting, &ag2).await.unwrap();
    assert_eq!(closed.state, ConversationState::Closed);
}

#[tokio::test]
async fn a_survey_postback_is_recorded_once_on_the_closed_conversation() {
    let f = fixture().await;
    let (id, _) = closed_with_survey(&f).await;
    drain(&f).await;
    f.now.store(T0 + 120_000, Ordering::SeqCst);

    let answer = inbound(postback_from(
        "Ubob",
        "P1",
        &format!("survey:{id}:4"),
        T0 + 110_000,
    ));
    assert_eq!(
        f.router.process_message(&answer, 1).await.unwrap(),
        Processed::Stored {
            conversation_id: Some(id.clone())
        }
    );
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Closed);
    let survey = c.survey.clone().unwrap();
    assert_eq!(survey.score, Some(4));
    assert_eq!(survey.answered_at, Some(T0 + 120_000));
    assert!(
        f.conversations
            .open_conversation(ACCOUNT, "Ubob")
            .await
            .unwrap()
            .is_none(),
        "an answer opens no conversation"
    );

    // Another tap (another score) and a redelivery: the first answer stands.
    let again = inbound(postback_from(
        "Ubob",
        "P2",
        &format!("survey:{id}:1"),
        T0 + 111_000,
    ));
    f.router.process_message(&again, 1).await.unwrap();
    assert_eq!(
        f.router.process_message(&answer, 1).await.unwrap(),
        Processed::Duplicate
    );
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.survey.unwrap().score, Some(4));
    assert_eq!(
        f.conversations
            .conversations_of_source(ACCOUNT, "Ubob")
            .await
            .unwrap()
            .len(),
        1,
        "no new conversation"
    );
    let transcript: Vec<String> = f
        .conversations
        .transcript(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.event_id)
        .collect();
    assert_eq!(transcript, ["E1", "P1", "P2"], "each event stored once");
    assert!(drain(&f).await.is_empty(), "nothing is sent back");

    // Someone else's postback naming Bob's conversation changes nothing there.
    let forged = inbound(postback_from(
        "Ualice",
        "P3",
        &format!("survey:{id}:1"),
        T0 + 112_000,
    ));
    let processed = f.router.process_message(&forged, 1).await.unwrap();
    assert_ne!(
        processed,
        Processed::Stored {
            conversation_id: Some(id.clone())
        }
    );
    assert_eq!(f.conversations.transcript(&id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn an_out_of_scale_postback_records_nothing() {
    let f = fixture().await;
    let (id, _) = closed_with_survey(&f).await;
    for (event, score) in [("P1", 0), ("P2", 6), ("P3", 9)] {
        let body = inbound(postback_from(
            "Ubob",
            event,
            &format!("survey:{id}:{score}"),
            T0 + 70_000,
        ));
        f.router.process_message(&body, 1).await.unwrap();
    }
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.survey.unwrap().score, None);
    assert!(f
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_typed_number_answers_a_recent_survey_instead_of_opening_a_conversation() {
    let f = fixture().await;
    let (id, _) = closed_with_survey(&f).await;
    f.now.store(T0 + 3_600_000, Ordering::SeqCst);
    let processed = f
        .router
        .process_message(&inbound(text_from("Ubob", "T1", " 5 ", T0 + 3_600_000)), 1)
        .await
        .unwrap();
    assert_eq!(
        processed,
        Processed::Stored {
            conversation_id: Some(id.clone())
        }
    );
    let c = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(c.survey.unwrap().score, Some(5));
    assert!(f
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .is_none());
    let transcript = f.conversations.transcript(&id).await.unwrap();
    assert_eq!(transcript.last().unwrap().event_id, "T1");

    // Answered: the next number is an ordinary message and opens a conversation.
    let processed = f
        .router
        .process_message(&inbound(text_from("Ubob", "T2", "3", T0 + 3_600_001)), 1)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(new_id),
    } = processed
    else {
        panic!("{processed:?}")
    };
    assert_ne!(new_id, id);
    assert_eq!(
        f.conversations
            .conversation(&id)
            .await
            .unwrap()
            .unwrap()
            .survey
            .unwrap()
            .score,
        Some(5)
    );
}

#[tokio::test]
async fn a_typed_number_after_a_day_or_out_of_scale_opens_a_conversation() {
    let f = fixture().await;
    let (id, _) = closed_with_survey(&f).await;
    // Out of the scale.
    let processed = f
        .router
        .process_message(&inbound(text_from("Ubob", "T1", "7", T0 + 70_000)), 1)
        .await
        .unwrap();
    assert_ne!(
        processed,
        Processed::Stored {
            conversation_id: Some(id.clone())
        }
    );
    let other = f
        .conversations
        .open_conversation(ACCOUNT, "Ubob")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(other.id, id);
    let ag1 = agent("ag1", "q-general", 2);
    f.router.close_by_agent(&other.id, &ag1).await.unwrap();

    // Over 24 hours after the (second) survey was sent.
    f.now.store(T0 + 70_000 + 25 * 3_600_000, Ordering::SeqCst);
    let processed = f
        .router
        .process_message(&inbound(text_from("Ubob", "T2", "4", T0 + 90_000_000)), 1)
        .await
        .unwrap();
    let Processed::Stored {
        conversation_id: Some(third),
    } = processed
    else {
        panic!("{processed:?}")
    };
    assert_ne!(third, other.id);
    for c in [&id, &other.id] {
        let c = f.conversations.conversation(c).await.unwrap().unwrap();
        assert_eq!(c.survey.unwrap().score, None);
    }
}

#[tokio::test]
async fn agent_messages_are_queued_once_per_key_and_kept_in_the_transcript() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "agentIdentity": {"enabled": true, "iconUrl": "https://cdn.example.com/agent.png"}
        })))
        .await
        .unwrap();
    let mut ag1 = agent("ag1", "q-general", 2);
    ag1.name = "Hanako Yamada of Customer Care".into();
    let ag2 = agent("ag2", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    f.agents.put_agent(&ag2).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;
    let before = f.conversations.conversation(&id).await.unwrap().unwrap();
    let sent_before = f.queued.sent.load(Ordering::SeqCst);

    f.now.store(T0 + 5_000, Ordering::SeqCst);
    let messages = vec![
        json!({"type": "text", "text": "Hello Bob, how can I help?"}),
        json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
    ];
    let message_id = f
        .router
        .send_agent_message(&id, &ag1, messages.clone(), "k-1")
        .await
        .unwrap();
    assert_eq!(message_id, format!("agent:{id}:k-1"));
    // A retry with the same key: the same id, nothing queued.
    f.now.store(T0 + 6_000, Ordering::SeqCst);
    let again = f
        .router
        .send_agent_message(&id, &ag1, messages.clone(), "k-1")
        .await
        .unwrap();
    assert_eq!(again, message_id);
    assert_eq!(f.queued.sent.load(Ordering::SeqCst), sent_before + 1);

    let out = drain(&f).await;
    assert_eq!(out.len(), 1);
    let m = &out[0];
    assert_eq!(m.id, message_id);
    assert_eq!(m.origin, Origin::Agent);
    assert_eq!(m.to, "Ubob");
    // 5 s after the customer wrote, and nothing of the router's used the token: a reply.
    assert_eq!(m.reply_token.as_deref(), Some("rt-E1"));
    assert_eq!(m.messages, messages);
    let sender = m.sender.clone().unwrap();
    assert_eq!(sender.name, "Hanako Yamada of Cus");
    assert_eq!(
        sender.icon_url.as_deref(),
        Some("https://cdn.example.com/agent.png")
    );

    let transcript = f.conversations.transcript(&id).await.unwrap();
    let entries: Vec<_> = transcript
        .iter()
        .filter(|t| t.event_type == "agentMessage")
        .collect();
    assert_eq!(entries.len(), 1);
    let entry = entries[0];
    assert_eq!(entry.event_id, message_id);
    assert_eq!(entry.timestamp, T0 + 5_000);
    assert_eq!(entry.sender_user_id, None);
    assert_eq!(entry.event["type"], "agentMessage");
    assert_eq!(entry.event["messageId"], message_id.as_str());
    assert_eq!(entry.event["agentId"], "ag1");
    assert_eq!(entry.event["agentName"], "Hanako Yamada of Customer Care");
    assert_eq!(entry.event["messages"], Value::Array(messages.clone()));
    let after = f.conversations.conversation(&id).await.unwrap().unwrap();
    assert_eq!(after.last_activity_at, T0 + 5_000);
    assert_eq!(after.version, before.version + 1);

    // Another key is another message.
    let second = f
        .router
        .send_agent_message(&id, &ag1, vec![json!({"type": "text", "text": "x"})], "k-2")
        .await
        .unwrap();
    assert_ne!(second, message_id);
    assert_eq!(drain(&f).await.len(), 1);

    // Not this agent's, not active, closed.
    assert!(matches!(
        f.router
            .send_agent_message(&id, &ag2, messages.clone(), "k-3")
            .await,
        Err(AgentOpError::Forbidden(_))
    ));
    let waiting = open(&f, "Ucarol", "E2").await;
    assert!(matches!(
        f.router
            .send_agent_message(&waiting, &ag1, messages.clone(), "k-4")
            .await,
        Err(AgentOpError::Forbidden(_))
    ));
    assert!(matches!(
        f.router.send_agent_message(&id, &ag1, vec![], "k-5").await,
        Err(AgentOpError::Invalid { .. })
    ));
    f.router.close_by_agent(&id, &ag1).await.unwrap();
    assert!(is_conflict(
        &f.router
            .send_agent_message(&id, &ag1, messages, "k-6")
            .await
    ));
}

/// The agent's message of `key` sent now, as queued for the outbound function.
async fn agent_says(f: &Fixture, id: &str, agent: &Agent, key: &str) -> OutboundMessage {
    f.router
        .send_agent_message(id, agent, vec![json!({"type": "text", "text": key})], key)
        .await
        .unwrap();
    let mut out = drain(f).await;
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

/// The `replyTo` of the agent message `key`'s transcript entry.
async fn reply_to(f: &Fixture, id: &str, key: &str) -> Value {
    let transcript = f.conversations.transcript(id).await.unwrap();
    let entry = transcript
        .iter()
        .find(|t| t.event_id == format!("agent:{id}:{key}"))
        .expect("the agent message in the transcript");
    entry.event.get("replyTo").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn an_agent_answer_replies_with_the_latest_customer_events_unused_young_token() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    // No greeting: the router sends nothing for E1, so its token is unused.
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    let announced = drain(&f).await;
    assert!(announced.iter().all(|m| m.reply_token.is_none()));

    // 20 s after the customer's message: a reply with that message's token.
    f.now.store(T0 + 20_000, Ordering::SeqCst);
    let first = agent_says(&f, &id, &ag1, "a1").await;
    assert_eq!(first.reply_token.as_deref(), Some("rt-E1"));
    assert_eq!(first.reply_token_received_at, Some(T0));
    assert_eq!(reply_to(&f, &id, "a1").await, "E1");
    // The token is given once: the next answer to the same event is pushed.
    let second = agent_says(&f, &id, &ag1, "a2").await;
    assert_eq!(second.reply_token, None);
    assert_eq!(reply_to(&f, &id, "a2").await, Value::Null);

    // The customer writes again; the agent answers 25 s later: too old to reply, pushed.
    let later = T0 + 30_000;
    f.router
        .process_message(&inbound(text_from("Ubob", "E2", "still there?", later)), 1)
        .await
        .unwrap();
    drain(&f).await;
    f.now.store(
        later + omniline_app::outbound::REPLY_TOKEN_FIRST_USE_MS,
        Ordering::SeqCst,
    );
    let late = agent_says(&f, &id, &ag1, "a3").await;
    assert_eq!(late.reply_token, None);
    assert_eq!(reply_to(&f, &id, "a3").await, Value::Null);

    // A third message, answered at once: its token.
    let third = later + 60_000;
    f.router
        .process_message(&inbound(text_from("Ubob", "E3", "hello?", third)), 1)
        .await
        .unwrap();
    drain(&f).await;
    f.now.store(third + 1_000, Ordering::SeqCst);
    let answer = agent_says(&f, &id, &ag1, "a4").await;
    assert_eq!(answer.reply_token.as_deref(), Some("rt-E3"));
    assert_eq!(answer.reply_token_received_at, Some(third));
}

#[tokio::test]
async fn an_agent_answer_is_pushed_when_the_greeting_used_the_token() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({
            "automatedMessages": [
                {"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}.", "enabled": true}
            ]
        })))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    let greeting = drain(&f).await;
    assert_eq!(greeting[0].reply_token.as_deref(), Some("rt-E1"));
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;

    f.now.store(T0 + 2_000, Ordering::SeqCst);
    let answer = agent_says(&f, &id, &ag1, "a1").await;
    assert_eq!(answer.reply_token, None, "the greeting replied with it");
    assert_eq!(reply_to(&f, &id, "a1").await, Value::Null);
}

#[tokio::test]
async fn agent_messages_carry_no_sender_without_agent_identity() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;
    f.router
        .send_agent_message(&id, &ag1, vec![json!({"type": "text", "text": "hi"})], "k")
        .await
        .unwrap();
    let out = drain(&f).await;
    assert_eq!(out[0].sender, None);
}

async fn put_contact(f: &Fixture, id: &str) {
    let contact = json!({"id": id, "name": "Bob Smith", "createdAt": "2026-11-25T00:00:00Z", "updatedAt": "2026-11-25T00:00:00Z"});
    f.config
        .put_doc(
            &contact_kind(ACCOUNT),
            id,
            &contact.to_string(),
            Expect::Absent,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_account_link_request_stores_the_request_and_sends_the_link() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/v2/bot/user/Ubob/linkToken"))
        .and(header("authorization", "Bearer test-access-token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"linkToken": "LINKTOKEN123"})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    put_contact(&f, "ct1").await;
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    let id = open(&f, "Ubob", "E1").await;
    f.router.pick(&id, &ag1).await.unwrap();
    drain(&f).await;

    let url = f
        .router
        .request_account_link(&id, &ag1, "ct1", "https://omni.example.com/")
        .await
        .unwrap();
    let request_id = url
        .strip_prefix("https://omni.example.com/line/link/")
        .unwrap();
    assert!(!request_id.is_empty() && !request_id.contains('/'), "{url}");
    let doc = f
        .config
        .get_doc(LINK_REQUEST_KIND, request_id)
        .await
        .unwrap()
        .unwrap();
    let request: LinkRequest = serde_json::from_str(&doc.doc).unwrap();
    assert_eq!(
        request,
        LinkRequest {
            id: request_id.to_owned(),
            account_id: ACCOUNT.into(),
            user_id: "Ubob".into(),
            contact_id: "ct1".into(),
            conversation_id: id.clone(),
            link_token: "LINKTOKEN123".into(),
            created_at: T0,
        }
    );
    let out = drain(&f).await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, format!("link:{request_id}"));
    assert_eq!(out[0].origin, Origin::Agent);
    assert_eq!(out[0].to, "Ubob");
    assert_eq!(out[0].reply_token, None);
    assert!(texts(&out)[0].ends_with(&format!("\n{url}")), "{out:?}");

    // An unknown contact: refused before asking LINE.
    assert!(matches!(
        f.router
            .request_account_link(&id, &ag1, "ct-none", "https://omni.example.com")
            .await,
        Err(AgentOpError::Invalid { field, .. }) if field == "contactId"
    ));
}

#[tokio::test]
async fn account_links_need_a_1_to_1_chat_and_lines_token() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    put_contact(&f, "ct1").await;
    let ag1 = agent("ag1", "q-general", 2);
    Mock::given(method("GET"))
        .and(path("/v2/bot/group/Cteam/member/Ualice"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "Ualice", "displayName": "Alice"})),
        )
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/user/Ucarol/linkToken"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"message": "The user hasn't added the bot"})),
        )
        .mount(&f.line)
        .await;
    let group = json!({"type": "message", "mode": "active", "timestamp": T0, "webhookEventId": "G1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt",
        "source": {"type": "group", "groupId": "Cteam", "userId": "Ualice"},
        "message": {"type": "text", "id": "m-G1", "quoteToken": "q", "text": "hi"}});
    let Processed::Stored {
        conversation_id: Some(group_id),
    } = f.router.process_message(&inbound(group), 1).await.unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        f.router
            .request_account_link(&group_id, &ag1, "ct1", "https://omni.example.com")
            .await,
        Err(AgentOpError::Invalid { .. })
    ));
    let carol = open(&f, "Ucarol", "E1").await;
    let r = f
        .router
        .request_account_link(&carol, &ag1, "ct1", "https://omni.example.com")
        .await;
    assert!(
        matches!(
            r,
            Err(AgentOpError::Route(RouteError::Line(
                LineApiError::Rejected { status: 400, .. }
            )))
        ),
        "{r:?}"
    );
    assert!(f
        .config
        .list_docs(LINK_REQUEST_KIND)
        .await
        .unwrap()
        .is_empty());
}

async fn put_nonce(f: &Fixture, nonce: &str, user: &str, contact: &str) {
    let n = LinkNonce {
        nonce: nonce.into(),
        account_id: ACCOUNT.into(),
        user_id: user.into(),
        contact_id: contact.into(),
        created_at: T0,
    };
    f.config
        .put_doc(
            LINK_NONCE_KIND,
            nonce,
            &serde_json::to_string(&n).unwrap(),
            Expect::Absent,
        )
        .await
        .unwrap();
}

async fn linked(f: &Fixture, user: &str) -> Option<String> {
    f.conversations
        .customer(ACCOUNT, user)
        .await
        .unwrap()
        .and_then(|c| c.linked_contact_id)
}

/// Review 1/7 #15: nonces never expired. One is good for LINE's link token's ten minutes.
#[tokio::test]
async fn an_account_link_nonce_older_than_ten_minutes_links_nothing() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    put_nonce(&f, "nonce-old", "Ubob", "ct1").await;
    f.now.store(
        T0 + omniline_domain::contacts::LINK_LIFETIME_MS + 1,
        Ordering::SeqCst,
    );
    f.router
        .process_message(&inbound(account_link("Ubob", "L9", "ok", "nonce-old")), 1)
        .await
        .unwrap();
    assert_eq!(linked(&f, "Ubob").await, None);
}

#[tokio::test]
async fn an_account_link_event_with_our_nonce_links_the_customer() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    put_nonce(&f, "nonce-bob-1", "Ubob", "ct1").await;
    put_nonce(&f, "nonce-carol-1", "Ucarol", "ct3").await;

    f.router
        .process_message(&inbound(account_link("Ubob", "L1", "ok", "nonce-bob-1")), 1)
        .await
        .unwrap();
    assert_eq!(linked(&f, "Ubob").await.as_deref(), Some("ct1"));
    assert!(
        f.config
            .get_doc(LINK_NONCE_KIND, "nonce-bob-1")
            .await
            .unwrap()
            .is_none(),
        "a nonce is used once"
    );

    // An unknown nonce, a failed link, another user's nonce: no link.
    f.router
        .process_message(&inbound(account_link("Ualice", "L2", "ok", "made-up")), 1)
        .await
        .unwrap();
    f.router
        .process_message(
            &inbound(account_link("Udave", "L3", "failed", "nonce-carol-1")),
            1,
        )
        .await
        .unwrap();
    f.router
        .process_message(
            &inbound(account_link("Udave", "L4", "ok", "nonce-carol-1")),
            1,
        )
        .await
        .unwrap();
    assert_eq!(linked(&f, "Ualice").await, None);
    assert_eq!(linked(&f, "Udave").await, None);
    assert!(f
        .config
        .get_doc(LINK_NONCE_KIND, "nonce-carol-1")
        .await
        .unwrap()
        .is_some());

    // The customer record carries the link into later conversations.
    let id = open(&f, "Ubob", "E1").await;
    assert!(!id.is_empty());
    assert_eq!(linked(&f, "Ubob").await.as_deref(), Some("ct1"));
}

#[tokio::test]
async fn the_holding_agent_is_notified_of_each_customer_message_once() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({})))
        .await
        .unwrap();
    let ag1 = agent("ag1", "q-general", 2);
    f.agents.put_agent(&ag1).await.unwrap();
    // Waiting: no one to notify.
    let id = open(&f, "Ubob", "E1").await;
    f.router
        .process_message(&inbound(text_from("Ubob", "E2", "anyone?", T0 + 1)), 1)
        .await
        .unwrap();
    assert!(f.agents.notifications("ag1").await.unwrap().is_empty());

    f.router.pick(&id, &ag1).await.unwrap();
    let body = inbound(text_from("Ubob", "E3", "my order is late", T0 + 2));
    f.router.process_message(&body, 1).await.unwrap();
    assert_eq!(
        f.router.process_message(&body, 1).await.unwrap(),
        Processed::Duplicate
    );
    let notes = f.agents.notifications("ag1").await.unwrap();
    let messages: Vec<_> = notes
        .iter()
        .filter(|n| n.kind == NOTIFICATION_MESSAGE)
        .collect();
    assert_eq!(messages.len(), 1, "{notes:?}");
    let note = messages[0];
    assert_eq!(note.id, format!("{id}:E3:message"));
    assert_eq!(note.conversation_id, id);
    assert_eq!(note.account_id, ACCOUNT);
    assert_eq!(note.customer_user_id.as_deref(), Some("Ubob"));
    assert_eq!(note.customer_name, "Bob");
    assert_eq!(note.customer_language.as_deref(), Some("en"));
    assert_eq!(note.queue_id, "q-general");

    // A follow event is not a message.
    let follow = json!({"type": "follow", "mode": "active", "timestamp": T0 + 3, "webhookEventId": "F1",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rt", "source": {"type": "user", "userId": "Ubob"},
        "follow": {"isUnblocked": true}});
    f.router.process_message(&inbound(follow), 1).await.unwrap();
    assert_eq!(
        f.agents
            .notifications("ag1")
            .await
            .unwrap()
            .iter()
            .filter(|n| n.kind == NOTIFICATION_MESSAGE)
            .count(),
        1
    );
}

#[tokio::test]
async fn a_push_assignment_notifies_assigned_not_message() {
    let f = fixture().await;
    f.workstreams
        .put_workstream(&workstream(json!({"distribution": "push"})))
        .await
        .unwrap();
    f.agents
        .put_agent(&agent("ag1", "q-general", 2))
        .await
        .unwrap();
    let id = open(&f, "Ubob", "E1").await;
    let notes = f.agents.notifications("ag1").await.unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, NOTIFICATION_ASSIGNED);
    assert_eq!(notes[0].conversation_id, id);
}

/// The schedule reads every account's message quota once an hour (alerts come unasked): the
/// first run reads it, the next runs within the hour do not, the first after the hour does.
#[tokio::test]
async fn the_schedule_reads_every_accounts_quota_hourly() {
    let f = fixture().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/quota"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"type": "limited", "value": 200})),
        )
        .mount(&f.line)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/quota/consumption"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"totalUsage": 190})))
        .mount(&f.line)
        .await;
    let quota_calls = || async {
        f.line
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == "/v2/bot/message/quota")
            .count()
    };
    f.router.run_schedule().await.unwrap();
    assert_eq!(quota_calls().await, 1);
    let stored = f
        .config
        .get_doc(omniline_domain::account::QUOTA_KIND, ACCOUNT)
        .await
        .unwrap()
        .expect("the reading is kept");
    let status: omniline_domain::account::QuotaStatus = serde_json::from_str(&stored.doc).unwrap();
    assert_eq!((status.limit, status.used), (Some(200), 190));
    assert_eq!(
        status.alert(),
        Some(omniline_domain::account::QuotaAlert::Near)
    );
    f.now.fetch_add(59 * 60_000, Ordering::SeqCst);
    f.router.run_schedule().await.unwrap();
    assert_eq!(quota_calls().await, 1, "not again within the hour");
    f.now.fetch_add(60_000, Ordering::SeqCst);
    f.router.run_schedule().await.unwrap();
    assert_eq!(quota_calls().await, 2, "again after the hour");
}
