//! Several router workers at once, as separate Lambda instances would run: each worker is its own
//! `RouterService` with its own adapters opened on the same SQLite data directory (so its own
//! connection, as another process would have), and they process batches of inbound events,
//! close conversations and run the schedule concurrently on a multi-thread runtime.
//!
//! One workstream, push distribution to one queue with three available agents of capacities 1, 2
//! and 3 (six slots), sixty customers each writing a first message. Whatever the interleaving:
//! no agent ever holds more than its capacity (its stored slots, and the Active conversations
//! the conversation store gives it, checked while the workers run and at the end, where both
//! must agree), every event is stored once, every customer has one conversation, and the
//! automated messages are one per event or assignment (the queue deduplicates racing copies by
//! id). While each conversation is handled by one worker only, what they say is exact: the agent
//! who holds it, and `assigned` notifications only to that agent.
//!
//! Where workers race for the same conversation (a redelivered event, two ticks), what the
//! customer is told is the winner's: the messages are committed with the event (the outbox) and
//! queued only after the commit lands, so a loser queues nothing of its own plan (asserted).
//! Known issue, printed rather than asserted: the loser notified the agent it had claimed before
//! its commit lost, so that agent keeps an `assigned` notification for a conversation it never
//! held. Capacity is not affected: the loser gives the slot back.

use omniline_app::consumer::{BatchMessage, BatchOutcome};
use omniline_domain::agents::{Agent, AgentStatus, NOTIFICATION_ASSIGNED};
use omniline_domain::conversation::{Conversation, ConversationState};
use omniline_domain::line::envelope::QueueMessage;
use omniline_domain::outbound::OutboundMessage;
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
use omniline_ports::{ConversationStore, EventQueue, PortError, WorkstreamStore};
use router::{RouterDeps, RouterService, ScheduleOutcome};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;
use common::{agent, ACCOUNT, T0};
const QUEUE: &str = "q-general";
const WORKERS: usize = 4;
const CUSTOMERS: usize = 60;
/// Messages of distinct customers per batch (a chunk): 12 chunks, 3 per worker.
const CHUNK: usize = 5;
const AGENTS: [(&str, u32); 3] = [("ag1", 1), ("ag2", 2), ("ag3", 3)];
const SLOTS: usize = 6;

/// Workers sharing one data directory, and an observer with its own connection.
struct Cluster {
    _dir: tempfile::TempDir,
    workers: Vec<Arc<RouterService>>,
    conversations: Arc<SqliteConversationStore>,
    agents: Arc<SqliteAgentStore>,
    outbound: SqliteEventQueue,
    now: Arc<AtomicI64>,
    /// How many times each outbound message id was sent, by any worker.
    sent: Arc<Mutex<BTreeMap<String, usize>>>,
    _line: MockServer,
}

/// The outbound queue of every worker, counting what each worker sends under each id (the
/// queue deduplicates them): an id sent twice is an event both copies of which were processed
/// up to the point of queueing its reply, i.e. a race that really happened.
struct CountingQueue {
    inner: SqliteEventQueue,
    sent: Arc<Mutex<BTreeMap<String, usize>>>,
}

#[async_trait::async_trait]
impl EventQueue for CountingQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Result<(), PortError> {
        if let Ok(mut sent) = self.sent.lock() {
            for m in messages {
                *sent.entry(m.dedup_id.clone()).or_default() += 1;
            }
        }
        self.inner.send(messages).await
    }
}

/// One router worker: every adapter on its own connection to the data directory.
fn worker(
    dir: &Path,
    line: &MockServer,
    now: &Arc<AtomicI64>,
    sent: &Arc<Mutex<BTreeMap<String, usize>>>,
) -> RouterService {
    let db = EmbeddedDb::open(dir).unwrap();
    let accounts = Arc::new(SqliteAccountStore::new(db.clone()));
    let secrets = Arc::new(SqliteSecretStore::new(db.clone()));
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
    let clock_now = Arc::clone(now);
    RouterService::new(RouterDeps {
        accounts,
        secrets,
        conversations: Arc::new(SqliteConversationStore::new(db.clone()).unwrap()),
        workstreams: Arc::new(SqliteWorkstreamStore::new(db.clone()).unwrap()),
        agents: Arc::new(SqliteAgentStore::new(db.clone()).unwrap()),
        config: Arc::new(SqliteConfigStore::new(db.clone()).unwrap()),
        outbound: Arc::new(CountingQueue {
            inner: SqliteEventQueue::new(db.clone(), "outbound", 5),
            sent: Arc::clone(sent),
        }),
        media: Arc::new(FsObjectStore::new(dir.join("media"))),
        line: api,
        bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
        tokens,
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    })
}

async fn cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(dir.path()).unwrap();
    omniline_testkit::seed_account(
        &SqliteAccountStore::new(db.clone()),
        &SqliteSecretStore::new(db.clone()),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let ws: omniline_domain::workstream::Workstream = serde_json::from_value(json!({
        "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
        "distribution": "push", "defaultQueue": QUEUE, "timezone": "Asia/Tokyo",
        "autoCloseMinutes": null,
        "automatedMessages": [
            {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true},
            {"trigger": "noAgentAvailable", "language": "en", "text": "All agents are busy, please wait.", "enabled": true},
            {"trigger": "agentEnded", "language": "en", "text": "{agentName} closed the chat.", "enabled": true}
        ],
        "version": 1
    }))
    .unwrap();
    SqliteWorkstreamStore::new(db.clone())
        .unwrap()
        .put_workstream(&ws)
        .await
        .unwrap();
    let agents = Arc::new(SqliteAgentStore::new(db.clone()).unwrap());
    for (id, capacity) in AGENTS {
        agents.put_agent(&agent(id, QUEUE, capacity)).await.unwrap();
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
    let sent = Arc::new(Mutex::new(BTreeMap::new()));
    let workers = (0..WORKERS)
        .map(|_| Arc::new(worker(dir.path(), &line, &now, &sent)))
        .collect();
    Cluster {
        conversations: Arc::new(SqliteConversationStore::new(db.clone()).unwrap()),
        agents,
        outbound: SqliteEventQueue::new(db, "outbound", 5),
        workers,
        now,
        sent,
        _dir: dir,
        _line: line,
    }
}

fn customer(i: usize) -> String {
    format!("Ucust{i:02}")
}

fn event_id(i: usize) -> String {
    format!("E{i:02}")
}

/// Customer `i`'s first message, as the webhook queues it (the SQS message id `sqs_id`).
fn message(i: usize, sqs_id: &str) -> (BatchMessage, u32) {
    let id = event_id(i);
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0 + i as i64, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"),
        "source": {"type": "user", "userId": customer(i)},
        "message": {"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": "help"}
    });
    let body =
        json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event})
            .to_string();
    (
        BatchMessage {
            message_id: sqs_id.into(),
            group_id: format!("{ACCOUNT}:{}", customer(i)),
            body,
        },
        1,
    )
}

/// Chunk `k` (of `CUSTOMERS / CHUNK`): customers spread over the whole range, so every worker
/// handles early and late customers and the slots are raced for.
fn chunk(k: usize, copy: &str) -> Vec<(BatchMessage, u32)> {
    let chunks = CUSTOMERS / CHUNK;
    (0..CHUNK)
        .map(|j| {
            let i = k + j * chunks;
            message(i, &format!("sqs-{copy}-{i}"))
        })
        .collect()
}

/// Runs each worker's batches (in order, one at a time, as one Lambda instance would) with all
/// workers at once; returns every outcome.
async fn run_batches(c: &Cluster, plan: Vec<Vec<Vec<(BatchMessage, u32)>>>) -> Vec<BatchOutcome> {
    let start = Arc::new(tokio::sync::Barrier::new(plan.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for (w, batches) in plan.into_iter().enumerate() {
        let (router, start) = (Arc::clone(&c.workers[w]), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            let mut outcomes = Vec::new();
            for batch in batches {
                outcomes.push(router.handle_batch(&batch).await);
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.extend(joined.unwrap());
    }
    outcomes
}

fn capacity(agent_id: &str) -> usize {
    AGENTS
        .iter()
        .find(|(id, _)| *id == agent_id)
        .map(|(_, c)| *c as usize)
        .unwrap()
}

/// Samples the stores (on its own connection) while the workers run: any agent above its
/// capacity, by its slots or by the Active conversations it has, is recorded.
struct Monitor {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, BTreeSet<String>)>,
}

fn monitor(c: &Cluster) -> Monitor {
    let stop = Arc::new(AtomicBool::new(false));
    let (agents, conversations, flag) = (
        Arc::clone(&c.agents),
        Arc::clone(&c.conversations),
        Arc::clone(&stop),
    );
    let task = tokio::spawn(async move {
        let (mut samples, mut violations) = (0, BTreeSet::new());
        loop {
            let done = flag.load(Ordering::SeqCst);
            for a in agents.agents_in_queue(QUEUE).await.unwrap() {
                if a.active_conversations.len() > a.capacity as usize {
                    violations.insert(format!(
                        "{} holds {} slots: {:?}",
                        a.id,
                        a.active_conversations.len(),
                        a.active_conversations
                    ));
                }
            }
            for (agent, ids) in active_by_agent(&conversations.open_conversations().await.unwrap())
            {
                if ids.len() > capacity(&agent) {
                    violations.insert(format!("{agent} has {} Active: {ids:?}", ids.len()));
                }
            }
            samples += 1;
            if done {
                return (samples, violations);
            }
            tokio::task::yield_now().await;
        }
    });
    Monitor { stop, task }
}

impl Monitor {
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        let (samples, violations) = self.task.await.unwrap();
        assert!(
            violations.is_empty(),
            "capacity exceeded while the workers ran: {violations:#?}"
        );
        samples
    }
}

/// Active conversations per agent (every agent listed, none Active without an agent).
fn active_by_agent(open: &[Conversation]) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_agent: BTreeMap<String, BTreeSet<String>> = AGENTS
        .iter()
        .map(|(id, _)| ((*id).to_owned(), BTreeSet::new()))
        .collect();
    for conversation in open.iter().filter(|c| c.state == ConversationState::Active) {
        let agent = conversation
            .agent_id
            .clone()
            .unwrap_or_else(|| format!("Active without an agent: {}", conversation.id));
        by_agent
            .entry(agent)
            .or_default()
            .insert(conversation.id.clone());
    }
    by_agent
}

/// What the stores hold once the workers stopped.
struct Settled {
    /// Every conversation by customer index.
    conversations: Vec<Conversation>,
    /// Active conversation ids per agent.
    holding: BTreeMap<String, BTreeSet<String>>,
    /// `assigned` notifications of an agent for a conversation it never held.
    phantom_notifications: Vec<String>,
}

/// Checks the invariants at rest: each agent's stored slots are exactly the Active
/// conversations the conversation store gives it, never above capacity, and it was notified of
/// each conversation it was given (`ever_held`, updated here); every event is stored once, in
/// the one conversation of its customer; Waiting conversations have no agent.
async fn settled(c: &Cluster, ever_held: &mut BTreeMap<String, BTreeSet<String>>) -> Settled {
    let mut conversations = Vec::new();
    for i in 0..CUSTOMERS {
        let (user, event) = (customer(i), event_id(i));
        assert!(
            c.conversations
                .event_recorded(ACCOUNT, &event, T0 / 1000)
                .await
                .unwrap(),
            "{event} recorded"
        );
        let of_customer = c
            .conversations
            .conversations_of_source(ACCOUNT, &user)
            .await
            .unwrap();
        assert_eq!(of_customer.len(), 1, "one conversation for {user}");
        let conversation = of_customer.into_iter().next().unwrap();
        let transcript = c.conversations.transcript(&conversation.id).await.unwrap();
        let events: Vec<_> = transcript.iter().map(|t| t.event_id.as_str()).collect();
        assert_eq!(events, [event.as_str()], "{event} stored once");
        match conversation.state {
            ConversationState::Active => assert!(conversation.agent_id.is_some()),
            ConversationState::Waiting => {
                assert_eq!(conversation.agent_id, None, "{user} waits with no agent")
            }
            ConversationState::Closed => {}
        }
        if conversation.state != ConversationState::Closed {
            let open = c
                .conversations
                .open_conversation(ACCOUNT, &user)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(open.id, conversation.id);
        }
        conversations.push(conversation);
    }
    let holding = active_by_agent(&c.conversations.open_conversations().await.unwrap());
    assert_eq!(
        holding.keys().collect::<Vec<_>>(),
        AGENTS.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        "Active conversations only with the queue's agents"
    );
    let mut phantom_notifications = Vec::new();
    for (agent_id, capacity) in AGENTS {
        let stored = c.agents.agent(agent_id).await.unwrap().unwrap();
        let slots: BTreeSet<String> = stored.active_conversations.iter().cloned().collect();
        assert_eq!(slots.len(), stored.active_conversations.len());
        assert!(
            slots.len() <= capacity as usize,
            "{agent_id} holds {} slots, capacity {capacity}",
            slots.len()
        );
        assert_eq!(
            slots, holding[agent_id],
            "{agent_id}: stored slots and Active conversations agree"
        );
        let held = ever_held.entry(agent_id.to_owned()).or_default();
        held.extend(slots);
        let notified: BTreeSet<String> = c
            .agents
            .notifications(agent_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.kind == NOTIFICATION_ASSIGNED)
            .map(|n| n.conversation_id)
            .collect();
        assert!(
            notified.is_superset(held),
            "{agent_id} is told of every conversation it was given: {held:?} {notified:?}"
        );
        phantom_notifications.extend(
            notified
                .difference(held)
                .map(|id| format!("{agent_id} notified of {id}")),
        );
    }
    Settled {
        conversations,
        holding,
        phantom_notifications,
    }
}

/// Everything queued for the outbound function since the last call (consumed).
async fn drain_outbound(c: &Cluster) -> Vec<OutboundMessage> {
    let received = c
        .outbound
        .receive(10_000, Duration::from_secs(60))
        .await
        .unwrap();
    for m in &received {
        assert!(c.outbound.delete(&m.receipt).await.unwrap());
    }
    received
        .iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

fn text(m: &OutboundMessage) -> &str {
    assert_eq!(m.messages.len(), 1, "{m:?}");
    m.messages[0]["text"].as_str().unwrap()
}

/// The inbound phase's messages: exactly one reply per event (the queue deduplicates the
/// copies by id). Returns the replies that do not say what happened (`agentAssigned` naming
/// the agent who holds the conversation, `noAgentAvailable` for those waiting).
fn check_replies(out: &[OutboundMessage], settled: &Settled) -> Vec<String> {
    assert_eq!(out.len(), CUSTOMERS, "one reply per event");
    let by_conversation: BTreeMap<&str, &OutboundMessage> = out
        .iter()
        .map(|m| (m.conversation_id.as_str(), m))
        .collect();
    assert_eq!(by_conversation.len(), CUSTOMERS, "one per conversation");
    let mut wrong = Vec::new();
    for (i, conversation) in settled.conversations.iter().enumerate() {
        let m = by_conversation[conversation.id.as_str()];
        assert_eq!(m.id, format!("{}:router:0", event_id(i)));
        assert_eq!(m.to, customer(i));
        let expected = match &conversation.agent_id {
            Some(agent) => ("agentAssigned", format!("Agent {agent} will help you.")),
            None => (
                "noAgentAvailable",
                "All agents are busy, please wait.".to_owned(),
            ),
        };
        if (m.trigger.as_deref(), text(m)) != (Some(expected.0), expected.1.as_str()) {
            wrong.push(format!(
                "{}: told {:?}, but it is {:?} with {:?}",
                conversation.id,
                text(m),
                conversation.state,
                conversation.agent_id
            ));
        }
    }
    wrong
}

/// The pushed messages of a phase: the conversations told `agentEnded`, and the
/// `agentAssigned` texts by conversation (exactly one each); nothing else.
fn pushed(out: &[OutboundMessage]) -> (BTreeSet<String>, BTreeMap<String, String>) {
    let mut ended = BTreeSet::new();
    let mut assigned = BTreeMap::new();
    for m in out {
        assert_eq!(m.reply_token, None, "pushed: {m:?}");
        let fresh = match m.trigger.as_deref() {
            Some("agentEnded") => ended.insert(m.conversation_id.clone()),
            Some("agentAssigned") => assigned
                .insert(m.conversation_id.clone(), text(m).to_owned())
                .is_none(),
            _ => panic!("unexpected message {m:?}"),
        };
        assert!(fresh, "one message per close and per assignment: {out:#?}");
    }
    (ended, assigned)
}

/// Active conversations of `after` that were not Active in `before`, with their agent.
fn newly_active(before: &Settled, after: &Settled) -> BTreeMap<String, String> {
    after
        .conversations
        .iter()
        .filter(|c| c.state == ConversationState::Active)
        .filter(|c| !before.holding.values().any(|ids| ids.contains(&c.id)))
        .map(|c| (c.id.clone(), c.agent_id.clone().unwrap()))
        .collect()
}

fn count(settled: &Settled, state: ConversationState) -> usize {
    settled
        .conversations
        .iter()
        .filter(|c| c.state == state)
        .count()
}

fn assert_full(settled: &Settled) {
    for (agent, capacity) in AGENTS {
        assert_eq!(
            settled.holding[agent].len(),
            capacity as usize,
            "{agent} is full: {:?}",
            settled.holding
        );
    }
}

/// Every worker runs the schedule `rounds` times, all at once; returns the outcomes.
async fn schedule_everywhere(c: &Cluster, rounds: usize) -> Vec<ScheduleOutcome> {
    let start = Arc::new(tokio::sync::Barrier::new(c.workers.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for router in &c.workers {
        let (router, start) = (Arc::clone(router), Arc::clone(&start));
        tasks.spawn(async move {
            start.wait().await;
            let mut outcomes = Vec::new();
            for _ in 0..rounds {
                outcomes.push(router.run_schedule().await.unwrap());
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.extend(joined.unwrap());
    }
    outcomes
}

/// Closes each (agent, conversation) on its own worker while every worker runs the schedule
/// `rounds` times; returns the closed conversations and the schedule outcomes.
async fn close_while_ticking(
    c: &Cluster,
    closing: Vec<(Agent, String)>,
    rounds: usize,
) -> (Vec<Conversation>, Vec<ScheduleOutcome>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (w, (agent, id)) in closing.into_iter().enumerate() {
        let router = Arc::clone(&c.workers[w % WORKERS]);
        tasks.spawn(async move { router.close_by_agent(&id, &agent).await });
    }
    let mut closed = Vec::new();
    let (schedules, ()) = tokio::join!(schedule_everywhere(c, rounds), async {
        while let Some(joined) = tasks.join_next().await {
            closed.push(joined.unwrap().unwrap());
        }
    });
    assert!(closed.iter().all(|c| c.state == ConversationState::Closed));
    (closed, schedules)
}

fn assigned(outcomes: &[ScheduleOutcome]) -> usize {
    assert!(outcomes.iter().all(|o| o.closed == 0), "{outcomes:?}");
    outcomes.iter().map(|o| o.assigned).sum()
}

/// How many outbound ids matching `filter` more than one worker sent (the races that happened).
fn raced(c: &Cluster, filter: impl Fn(&str) -> bool) -> usize {
    c.sent
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, n)| filter(id) && **n > 1)
        .count()
}

async fn stored_agent(c: &Cluster, id: &str) -> Agent {
    c.agents.agent(id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn several_router_workers_at_once_never_assign_an_agent_above_capacity() {
    let started = Instant::now();
    let c = cluster().await;
    let mut ever_held = BTreeMap::new();

    // 1. Sixty first messages in twelve batches, three per worker, all workers at once.
    let chunks = CUSTOMERS / CHUNK;
    let plan: Vec<Vec<_>> = (0..WORKERS)
        .map(|w| {
            (w..chunks)
                .step_by(WORKERS)
                .map(|k| chunk(k, "first"))
                .collect()
        })
        .collect();
    let watch = monitor(&c);
    let outcomes = run_batches(&c, plan).await;
    let samples = watch.finish().await;
    assert!(samples > 1, "the monitor sampled while the workers ran");
    assert!(outcomes.iter().all(|o| o.failed.is_empty()), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().map(|o| o.succeeded.len()).sum::<usize>(),
        CUSTOMERS
    );
    let inbound = settled(&c, &mut ever_held).await;
    assert_full(&inbound);
    assert_eq!(count(&inbound, ConversationState::Active), SLOTS);
    assert_eq!(
        count(&inbound, ConversationState::Waiting),
        CUSTOMERS - SLOTS
    );
    // Each conversation was handled by one worker only: everything said is exact.
    assert_eq!(inbound.phantom_notifications, Vec::<String>::new());
    assert_eq!(
        check_replies(&drain_outbound(&c).await, &inbound),
        Vec::<String>::new()
    );

    // 2. A minute later each agent closes one conversation, on three workers at once, while
    // every worker runs the schedule: the freed slots go to waiting conversations, never more.
    c.now.store(T0 + 60_000, Ordering::SeqCst);
    let mut closing = Vec::new();
    for (agent, _) in AGENTS {
        let id = inbound.holding[agent].iter().next().unwrap().clone();
        closing.push((stored_agent(&c, agent).await, id));
    }
    let watch = monitor(&c);
    let (closed, mut schedules) = close_while_ticking(&c, closing, 5).await;
    // Whatever the ticks raced past is assigned by the next ones.
    schedules.extend(schedule_everywhere(&c, 2).await);
    watch.finish().await;
    assert_eq!(assigned(&schedules), AGENTS.len(), "one per freed slot");
    let freed = settled(&c, &mut ever_held).await;
    assert_full(&freed);
    assert_eq!(count(&freed, ConversationState::Active), SLOTS);
    assert_eq!(count(&freed, ConversationState::Closed), AGENTS.len());
    assert_eq!(
        count(&freed, ConversationState::Waiting),
        CUSTOMERS - SLOTS - AGENTS.len()
    );
    let new = newly_active(&inbound, &freed);
    assert_eq!(new.len(), AGENTS.len());
    let (ended, told) = pushed(&drain_outbound(&c).await);
    assert_eq!(ended, closed.iter().map(|c| c.id.clone()).collect());
    assert_eq!(
        told.keys().collect::<Vec<_>>(),
        new.keys().collect::<Vec<_>>(),
        "one agentAssigned per assignment"
    );
    // A tick that lost the race for a conversation queued nothing (its agentAssigned is queued
    // only after its commit): the text names the agent who holds the conversation. (Known issue:
    // the loser notified the agent it had claimed, who keeps a notification for a conversation it
    // never held.)
    let misnamed: Vec<_> = told
        .iter()
        .filter(|(id, text)| **text != format!("Agent {} will help you.", new[*id]))
        .collect();
    assert!(misnamed.is_empty(), "misnamed agentAssigned: {misnamed:?}");
    for text in told.values() {
        assert!(
            AGENTS
                .iter()
                .any(|(a, _)| *text == format!("Agent {a} will help you.")),
            "{text}"
        );
    }

    // 3. ag3 goes away and closes two of its conversations: nothing reaches it while away.
    // Back online, every worker ticks at once: it gets exactly two, the others none.
    let mut ag3 = stored_agent(&c, "ag3").await;
    ag3.status = AgentStatus::Away;
    assert!(c
        .agents
        .set_status("ag3", AgentStatus::Away, c.now.load(Ordering::SeqCst))
        .await
        .unwrap());
    let closing: Vec<_> = freed.holding["ag3"]
        .iter()
        .take(2)
        .map(|id| (ag3.clone(), id.clone()))
        .collect();
    let watch = monitor(&c);
    let (closed, schedules) = close_while_ticking(&c, closing, 3).await;
    assert_eq!(assigned(&schedules), 0, "the only agent with room is away");
    assert_eq!(stored_agent(&c, "ag3").await.active_conversations.len(), 1);
    ag3.status = AgentStatus::Available;
    assert!(c
        .agents
        .set_status("ag3", AgentStatus::Available, c.now.load(Ordering::SeqCst))
        .await
        .unwrap());
    let schedules = schedule_everywhere(&c, 2).await;
    watch.finish().await;
    assert_eq!(assigned(&schedules), 2);
    let back = settled(&c, &mut ever_held).await;
    assert_full(&back);
    assert_eq!(count(&back, ConversationState::Active), SLOTS);
    assert_eq!(count(&back, ConversationState::Closed), AGENTS.len() + 2);
    let new = newly_active(&freed, &back);
    assert!(new.values().all(|agent| agent == "ag3"), "{new:?}");
    let (ended, told) = pushed(&drain_outbound(&c).await);
    assert_eq!(ended, closed.iter().map(|c| c.id.clone()).collect());
    let expected: BTreeMap<_, _> = new
        .keys()
        .map(|id| (id.clone(), "Agent ag3 will help you.".to_owned()))
        .collect();
    assert_eq!(told, expected, "one agentAssigned per assignment");

    // 4. Nothing left to do: more ticks everywhere change nothing.
    let idle = schedule_everywhere(&c, 1).await;
    assert!(idle.iter().all(|o| *o == ScheduleOutcome::default()));
    assert!(drain_outbound(&c).await.is_empty());
    eprintln!(
        "concurrent workers: {:?}; ticks racing for one assignment: {}; misnamed agentAssigned: \
         {misnamed:?}; phantom notifications: {:?}",
        started.elapsed(),
        raced(&c, |id| id.starts_with("assign:")),
        back.phantom_notifications
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn an_event_delivered_to_two_workers_at_once_is_stored_once() {
    let started = Instant::now();
    let c = cluster().await;
    let mut ever_held = BTreeMap::new();
    // LINE redelivers every event, and the two copies reach two workers at the same moment:
    // chunk k goes to worker k % 4 and its copy to the next worker, at the same position of
    // their batches (even workers put their own chunk first, odd ones the copy).
    let chunks = CUSTOMERS / CHUNK;
    let plan: Vec<Vec<_>> = (0..WORKERS)
        .map(|w| {
            (w..chunks)
                .step_by(WORKERS)
                .map(|k| {
                    let previous = if k % WORKERS == 0 {
                        k + WORKERS - 1
                    } else {
                        k - 1
                    };
                    let (own, copy) = (chunk(k, "first"), chunk(previous, "again"));
                    let (a, b) = if w % 2 == 0 { (own, copy) } else { (copy, own) };
                    a.into_iter()
                        .zip(b)
                        .flat_map(|(x, y)| [x, y])
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .collect();
    // Each event is in exactly two batches, of two different workers.
    let mut copies: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (w, batches) in plan.iter().enumerate() {
        for (m, _) in batches.iter().flatten() {
            let i: usize = m.message_id.rsplit('-').next().unwrap().parse().unwrap();
            copies.entry(event_id(i)).or_default().insert(w);
        }
    }
    assert_eq!(copies.len(), CUSTOMERS);
    assert!(copies.values().all(|w| w.len() == 2), "{copies:?}");

    let watch = monitor(&c);
    let outcomes = run_batches(&c, plan).await;
    watch.finish().await;
    assert!(outcomes.iter().all(|o| o.failed.is_empty()), "{outcomes:?}");
    assert_eq!(
        outcomes.iter().map(|o| o.succeeded.len()).sum::<usize>(),
        2 * CUSTOMERS
    );
    let inbound = settled(&c, &mut ever_held).await;
    let active = count(&inbound, ConversationState::Active);
    assert!(active <= SLOTS);
    // The copy that lost queued only the winner's recorded outbox: every reply says what was
    // stored.
    let misleading = check_replies(&drain_outbound(&c).await, &inbound);
    assert!(
        misleading.is_empty(),
        "replies not matching the outcome: {misleading:?}"
    );

    // A copy that lost the race may have held a slot for a moment; the next ticks fill it.
    let late = assigned(&schedule_everywhere(&c, 2).await);
    assert_eq!(late, SLOTS - active);
    let ticked = settled(&c, &mut ever_held).await;
    assert_full(&ticked);
    assert_eq!(count(&ticked, ConversationState::Active), SLOTS);
    let (ended, told) = pushed(&drain_outbound(&c).await);
    assert!(ended.is_empty());
    assert_eq!(told.len(), late, "one agentAssigned per late assignment");
    eprintln!(
        "redelivery race: {:?}; events processed by both workers at once: {}; replies not \
         matching the outcome: {misleading:?}; phantom notifications: {:?}",
        started.elapsed(),
        raced(&c, |id| id.ends_with(":router:0")),
        ticked.phantom_notifications
    );
}
