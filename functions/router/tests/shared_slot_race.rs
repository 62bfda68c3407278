//! A slot shared by two assignments in flight: worker W1 claims agent X's slot for conversation C
//! and its commit loses (C changed meanwhile); worker W2 reads C, finds X already holding it
//! ("already held": W1's claim) and commits C with X. W1 then gives back its claim unless C is
//! X's. Reading C and then releasing is not enough: the release can land after W2's commit (C
//! Active with X, X's slot gone, X then takes a second customer over its capacity), and a
//! release that checks C atomically can still land before W2's commit, which must then fail.
//!
//! The commit lands only while the slot holds C (`ConversationStore::commit_assignment`), and the
//! undo is atomic with respect to it (`ConversationStore::release_unless_assigned`). Both orders
//! are driven here by wrappers that pause the stores at the right moments (timing only).

use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationFilter, ConversationState, Customer, EventCommit,
    TranscriptEntry,
};
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
use omniline_ports::{ConversationStore, PortError, PurgeCounts, PurgePage, WorkstreamStore};
use router::{RouterDeps, RouterService};
use serde_json::json;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCOUNT: &str = "acc1";
const T0: i64 = 1_795_575_600_000;

/// Holds the next `armed` callers until the test lets each go.
struct Gate {
    armed: AtomicUsize,
    reached: Semaphore,
    go: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            armed: AtomicUsize::new(0),
            reached: Semaphore::new(0),
            go: Semaphore::new(0),
        }
    }
}

impl Gate {
    fn arm(&self) {
        self.armed.fetch_add(1, Ordering::SeqCst);
    }

    async fn pass(&self) {
        let held = self
            .armed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if held {
            self.reached.add_permits(1);
            self.go.acquire().await.unwrap().forget();
        }
    }

    /// Waits until a caller is held.
    async fn reached(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.reached.acquire())
            .await
            .expect("the gate was never reached")
            .unwrap()
            .forget();
    }

    fn open(&self) {
        self.go.add_permits(1);
    }
}

/// Holds `agents_in_queue` (timing only).
struct GatedAgents {
    inner: SqliteAgentStore,
    queue: Gate,
}

#[async_trait::async_trait]
impl AgentStore for GatedAgents {
    async fn put_agent(&self, a: &Agent) -> Result<(), PortError> {
        self.inner.put_agent(a).await
    }
    async fn set_status(
        &self,
        id: &str,
        status: AgentStatus,
        seen_at: i64,
    ) -> Result<bool, PortError> {
        self.inner.set_status(id, status, seen_at).await
    }
    async fn expire_presence(&self, id: &str, seen_before: i64) -> Result<bool, PortError> {
        self.inner.expire_presence(id, seen_before).await
    }
    async fn agent(&self, id: &str) -> Result<Option<Agent>, PortError> {
        self.inner.agent(id).await
    }
    async fn list_agents(&self) -> Result<Vec<Agent>, PortError> {
        self.inner.list_agents().await
    }
    async fn delete_agent(&self, id: &str) -> Result<bool, PortError> {
        self.inner.delete_agent(id).await
    }
    async fn agents_in_queue(&self, q: &str) -> Result<Vec<Agent>, PortError> {
        self.queue.pass().await;
        self.inner.agents_in_queue(q).await
    }
    async fn try_assign(&self, a: &str, c: &str, at: i64) -> Result<bool, PortError> {
        self.inner.try_assign(a, c, at).await
    }
    async fn record_offer(&self, a: &str, missed: bool) -> Result<bool, PortError> {
        self.inner.record_offer(a, missed).await
    }
    async fn claim_own(&self, a: &str, c: &str, at: i64) -> Result<bool, PortError> {
        self.inner.claim_own(a, c, at).await
    }
    async fn release(&self, a: &str, c: &str) -> Result<(), PortError> {
        self.inner.release(a, c).await
    }
    async fn notify(
        &self,
        n: &AgentNotification,
        expires_at: Option<i64>,
    ) -> Result<(), PortError> {
        self.inner.notify(n, expires_at).await
    }
    async fn notifications(&self, a: &str) -> Result<Vec<AgentNotification>, PortError> {
        self.inner.notifications(a).await
    }
    async fn delete_conversation_notifications(&self, c: &str) -> Result<u64, PortError> {
        self.inner.delete_conversation_notifications(c).await
    }
    async fn notifications_after(
        &self,
        a: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<AgentNotification>, PortError> {
        self.inner.notifications_after(a, after, limit).await
    }
}

/// Holds `commit_assignment` and `release_unless_assigned` (timing only).
struct GatedConversations {
    inner: SqliteConversationStore,
    assignment_commit: Gate,
    release: Gate,
}

#[async_trait::async_trait]
impl ConversationStore for GatedConversations {
    async fn event_recorded(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<bool, PortError> {
        self.inner
            .event_recorded(account_id, event_id, now_secs)
            .await
    }
    async fn recorded_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<omniline_domain::outbound::OutboundMessage>>, PortError> {
        self.inner
            .recorded_outbox(account_id, event_id, now_secs)
            .await
    }
    async fn open_conversation(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Option<Conversation>, PortError> {
        self.inner.open_conversation(account_id, source_id).await
    }
    async fn conversation(&self, id: &str) -> Result<Option<Conversation>, PortError> {
        self.inner.conversation(id).await
    }
    async fn open_conversations(&self) -> Result<Vec<Conversation>, PortError> {
        self.inner.open_conversations().await
    }
    async fn customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Customer>, PortError> {
        self.inner.customer(account_id, user_id).await
    }
    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError> {
        self.inner.commit(commit).await
    }
    async fn commit_assignment(
        &self,
        commit: &EventCommit,
        agent_id: &str,
    ) -> Result<CommitOutcome, PortError> {
        self.assignment_commit.pass().await;
        self.inner.commit_assignment(commit, agent_id).await
    }
    async fn release_unless_assigned(&self, a: &str, c: &str) -> Result<bool, PortError> {
        self.release.pass().await;
        self.inner.release_unless_assigned(a, c).await
    }
    async fn transcript(&self, id: &str) -> Result<Vec<TranscriptEntry>, PortError> {
        self.inner.transcript(id).await
    }
    async fn latest_transcript(
        &self,
        id: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, PortError> {
        self.inner.latest_transcript(id, limit).await
    }
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError> {
        self.inner.list_conversations(filter).await
    }
    async fn count_in_queue(
        &self,
        queue_id: &str,
        state: omniline_domain::conversation::ConversationState,
        cap: usize,
    ) -> Result<usize, PortError> {
        self.inner.count_in_queue(queue_id, state, cap).await
    }
    async fn conversations_of_source(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Vec<Conversation>, PortError> {
        self.inner
            .conversations_of_source(account_id, source_id)
            .await
    }
    async fn delete_conversation(&self, id: &str) -> Result<bool, PortError> {
        self.inner.delete_conversation(id).await
    }
    async fn delete_customer(&self, account_id: &str, user_id: &str) -> Result<bool, PortError> {
        self.inner.delete_customer(account_id, user_id).await
    }
    async fn purge_account_page(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<PurgePage<PurgeCounts>, PortError> {
        self.inner
            .purge_account_page(account_id, cursor, page_size)
            .await
    }
    async fn sweep_expired(&self, now_secs: i64) -> Result<u64, PortError> {
        self.inner.sweep_expired(now_secs).await
    }
    async fn conversations_opened_on(
        &self,
        account_id: &str,
        day_start: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, PortError> {
        self.inner
            .conversations_opened_on(account_id, day_start, limit)
            .await
    }
    async fn index_search(
        &self,
        entry: &omniline_domain::search::SearchEntry,
        retain_until: Option<i64>,
    ) -> Result<(), PortError> {
        self.inner.index_search(entry, retain_until).await
    }
    async fn unindex_search(
        &self,
        account_id: &str,
        user_id: &str,
        terms: &[String],
    ) -> Result<(), PortError> {
        self.inner.unindex_search(account_id, user_id, terms).await
    }
    async fn search(
        &self,
        account_id: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<omniline_domain::search::SearchHit>, PortError> {
        self.inner.search(account_id, terms, limit).await
    }
}

/// A worker with its own connection to the data directory; its stores hold as their gates say.
fn worker(dir: &Path, line: &MockServer) -> Worker {
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
    let conversations = Arc::new(GatedConversations {
        inner: SqliteConversationStore::new(db.clone()).unwrap(),
        assignment_commit: Gate::default(),
        release: Gate::default(),
    });
    let agents = Arc::new(GatedAgents {
        inner: SqliteAgentStore::new(db.clone()).unwrap(),
        queue: Gate::default(),
    });
    let service = RouterService::new(RouterDeps {
        accounts,
        secrets,
        conversations: conversations.clone(),
        workstreams: Arc::new(SqliteWorkstreamStore::new(db.clone()).unwrap()),
        agents: agents.clone(),
        config: Arc::new(SqliteConfigStore::new(db.clone()).unwrap()),
        outbound: Arc::new(SqliteEventQueue::new(db.clone(), "outbound", 5)),
        media: Arc::new(FsObjectStore::new(dir.join("media"))),
        line: api,
        bot: Arc::new(HttpBotHook::allowing_private_networks(Duration::from_secs(2)).unwrap()),
        tokens,
        clock: Arc::new(|| T0),
    });
    Worker {
        service: Arc::new(service),
        agents,
        conversations,
    }
}

struct Worker {
    service: Arc<RouterService>,
    agents: Arc<GatedAgents>,
    conversations: Arc<GatedConversations>,
}

fn body(user: &str, id: &str) -> String {
    let event = json!({
        "type": "message", "mode": "active", "timestamp": T0, "webhookEventId": id,
        "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"),
        "source": {"type": "user", "userId": user},
        "message": {"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": "help"}
    });
    json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event})
        .to_string()
}

struct Setup {
    _dir: tempfile::TempDir,
    _line: MockServer,
    agents: SqliteAgentStore,
    conversations: SqliteConversationStore,
    /// The outbound queue the workers share (on its own connection).
    outbound: SqliteEventQueue,
    w1: Worker,
    w2: Worker,
    x: Agent,
}

async fn setup() -> Setup {
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
    let ws = serde_json::from_value(json!({"id": "ws1", "accountId": ACCOUNT, "name": "S", "language": "en",
        "distribution": "push", "defaultQueue": "q", "timezone": "UTC", "autoCloseMinutes": null, "version": 1,
        "automatedMessages": [
            {"trigger": "conversationStarted", "language": "en", "text": "Hello, thanks for writing.", "enabled": true},
            {"trigger": "noAgentAvailable", "language": "en", "text": "All agents are busy, please wait.", "enabled": true},
            {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true}
        ]}))
    .unwrap();
    SqliteWorkstreamStore::new(db.clone())
        .unwrap()
        .put_workstream(&ws)
        .await
        .unwrap();
    let agents = SqliteAgentStore::new(db.clone()).unwrap();
    let x = Agent {
        id: "X".into(),
        name: "X".into(),
        queues: vec!["q".into()],
        skills: vec![],
        capacity: 1,
        status: AgentStatus::Away,
        active_conversations: vec![],
        last_assigned_at: None,
        last_seen_at: None,
    };
    agents.put_agent(&x).await.unwrap();
    let conversations = SqliteConversationStore::new(db.clone()).unwrap();
    let outbound = SqliteEventQueue::new(db.clone(), "outbound", 5);
    let line = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v2/bot/profile/U[a-z0-9]+$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"userId": "U", "displayName": "C"})),
        )
        .mount(&line)
        .await;
    let w1 = worker(dir.path(), &line);
    let w2 = worker(dir.path(), &line);
    Setup {
        _dir: dir,
        _line: line,
        agents,
        conversations,
        outbound,
        w1,
        w2,
        x,
    }
}

/// What the workers queued so far, left in the queue.
async fn queued(s: &Setup) -> Vec<OutboundMessage> {
    let messages = s
        .outbound
        .receive(100, Duration::from_secs(60))
        .await
        .unwrap();
    for m in &messages {
        s.outbound
            .change_visibility(&m.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    messages
        .into_iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

/// Every queued message is about a conversation that was stored, and one naming agent X (its
/// sender, or a text) is about the conversation stored Active with X: a plan whose commit lost
/// queued nothing.
async fn assert_only_committed_messages(s: &Setup) -> Vec<OutboundMessage> {
    let out = queued(s).await;
    for m in &out {
        let stored = s
            .conversations
            .conversation(&m.conversation_id)
            .await
            .unwrap();
        let Some(stored) = stored else {
            panic!(
                "{} queued for conversation {} that was never stored: {m:?}",
                m.id, m.conversation_id
            );
        };
        let names_x = m.sender.as_ref().is_some_and(|s| s.name == "X")
            || m.messages.iter().any(|o| {
                o["text"]
                    .as_str()
                    .is_some_and(|t| t.split(|c: char| !c.is_alphanumeric()).any(|w| w == "X"))
            });
        if names_x {
            assert_eq!(
                (stored.state, stored.agent_id.as_deref()),
                (ConversationState::Active, Some("X")),
                "{} names X for a conversation X does not hold: {m:?}",
                m.id
            );
        }
    }
    out
}

/// C opens while X is away (Waiting, version 1); W1's tick reads it and holds before reading the
/// agents; the customer writes again (version 2) and X comes online; W1 claims X's slot for C,
/// its commit (version 1) conflicts and it holds before giving the slot back. Returns W1's tick
/// and C.
async fn race_to_w1_undo(
    s: &Setup,
) -> (
    tokio::task::JoinHandle<Result<router::ScheduleOutcome, router::RouteError>>,
    Conversation,
) {
    s.w1.agents.queue.arm();
    s.w1.conversations.release.arm();
    s.w2.service
        .process_message(&body("Ucarol", "C1"), 1)
        .await
        .unwrap();
    let c = s
        .conversations
        .open_conversation(ACCOUNT, "Ucarol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.state, c.version), (ConversationState::Waiting, 1));
    let tick = tokio::spawn({
        let w1 = s.w1.service.clone();
        async move { w1.run_schedule().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.w2.service
        .process_message(&body("Ucarol", "C2"), 1)
        .await
        .unwrap();
    assert!(s
        .agents
        .set_status(&s.x.id, AgentStatus::Available, T0)
        .await
        .unwrap());
    s.w1.agents.queue.open();
    s.w1.conversations.release.reached().await;
    (tick, c)
}

/// The agent's stored slots are exactly the conversations the store has Active with it, within
/// its capacity of 1.
async fn assert_consistent(s: &Setup) -> Vec<String> {
    let mut active_with_x: Vec<String> = s
        .conversations
        .open_conversations()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == ConversationState::Active && c.agent_id.as_deref() == Some("X"))
        .map(|c| c.id)
        .collect();
    active_with_x.sort();
    let slots = s
        .agents
        .agent("X")
        .await
        .unwrap()
        .unwrap()
        .active_conversations;
    assert!(
        active_with_x.len() <= 1,
        "X (capacity 1) has {} Active conversations: {active_with_x:?}",
        active_with_x.len()
    );
    assert_eq!(
        slots, active_with_x,
        "X's slots vs its Active conversations"
    );
    slots
}

/// W2 reads C while W1 holds before its undo, finds X holding C (W1's claim), shares the slot
/// and commits; W1's undo then finds C X's and keeps the slot. Before the fix W1 released it:
/// C Active with X, X's slots empty, and the next customer went to X over its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undo_after_the_sharing_commit_keeps_the_slot() {
    let s = setup().await;
    let (w1_tick, c) = race_to_w1_undo(&s).await;
    assert_eq!(s.w2.service.run_schedule().await.unwrap().assigned, 1);
    s.w1.conversations.release.open();
    assert_eq!(w1_tick.await.unwrap().unwrap().assigned, 0);

    let stored = s.conversations.conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.agent_id.as_deref()),
        (ConversationState::Active, Some("X"))
    );
    assert_eq!(assert_consistent(&s).await, std::slice::from_ref(&c.id));

    // A new customer: X is full, so D waits.
    s.w2.service
        .process_message(&body("Udave", "D1"), 1)
        .await
        .unwrap();
    let d = s
        .conversations
        .open_conversation(ACCOUNT, "Udave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state, d.agent_id), (ConversationState::Waiting, None));
    assert_eq!(assert_consistent(&s).await, [c.id]);
}

/// The other order: W2 shares the slot and holds before its commit; W1's undo finds C without an
/// agent and gives the slot back; W2's commit then finds the slot gone and fails instead of
/// storing C with X on no slot. The next tick assigns C properly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharing_commit_after_the_undo_fails_and_the_next_tick_assigns() {
    let s = setup().await;
    let (w1_tick, c) = race_to_w1_undo(&s).await;
    s.w2.conversations.assignment_commit.arm();
    let w2_tick = tokio::spawn({
        let w2 = s.w2.service.clone();
        async move { w2.run_schedule().await }
    });
    s.w2.conversations.assignment_commit.reached().await;
    s.w1.conversations.release.open();
    assert_eq!(w1_tick.await.unwrap().unwrap().assigned, 0);
    assert!(assert_consistent(&s).await.is_empty());
    s.w2.conversations.assignment_commit.open();
    assert_eq!(w2_tick.await.unwrap().unwrap().assigned, 0);

    let stored = s.conversations.conversation(&c.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state, stored.agent_id.as_deref()),
        (ConversationState::Waiting, None)
    );
    assert!(assert_consistent(&s).await.is_empty());
    // Both ticks claimed X for C and lost their commits: neither told the customer about X.
    let out = assert_only_committed_messages(&s).await;
    assert!(
        out.iter().all(|m| !m.id.starts_with("assign:")),
        "a lost assignment queued its message: {out:?}"
    );
    // Nor X: the notifications are committed with the assignment (issue 3/7).
    let told = s.agents.notifications("X").await.unwrap();
    assert!(
        told.iter().all(|n| n.conversation_id != c.id),
        "a lost assignment notified X: {told:?}"
    );

    // The next tick gives C to X, for real this time; D then waits.
    assert_eq!(s.w2.service.run_schedule().await.unwrap().assigned, 1);
    assert_eq!(assert_consistent(&s).await, std::slice::from_ref(&c.id));
    let assigned: Vec<_> = assert_only_committed_messages(&s)
        .await
        .into_iter()
        .filter(|m| m.id.starts_with("assign:"))
        .collect();
    assert_eq!(
        assigned.len(),
        1,
        "the committed assignment's message: {assigned:?}"
    );
    assert_eq!(assigned[0].conversation_id, c.id);
    let told: Vec<_> = s
        .agents
        .notifications("X")
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.conversation_id == c.id)
        .collect();
    assert_eq!(
        told.len(),
        1,
        "the committed assignment's notification: {told:?}"
    );
    s.w2.service
        .process_message(&body("Udave", "D1"), 1)
        .await
        .unwrap();
    let d = s
        .conversations
        .open_conversation(ACCOUNT, "Udave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.state, d.agent_id), (ConversationState::Waiting, None));
    assert_eq!(assert_consistent(&s).await, [c.id]);
}

/// The lost-commit race of an inbound event: W1 plans the customer's first message (a new
/// conversation, X claimed for it, "X will help you" in its outbox) and holds before its commit;
/// W2 routes the customer's second message meanwhile and stores the conversation first. W1's
/// commit conflicts: its plan's outbox must not reach the customer (its conversation was never
/// stored, and X was given back); W1's retry commits on the stored conversation and queues that.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_whose_commit_loses_queues_nothing_of_the_lost_plan() {
    let s = setup().await;
    assert!(s
        .agents
        .set_status(&s.x.id, AgentStatus::Available, T0)
        .await
        .unwrap());
    s.w1.conversations.assignment_commit.arm();
    let w1_event = tokio::spawn({
        let w1 = s.w1.service.clone();
        async move { w1.process_message(&body("Ucarol", "C1"), 1).await }
    });
    s.w1.conversations.assignment_commit.reached().await;
    let router::Processed::Stored {
        conversation_id: Some(stored_id),
    } =
        s.w2.service
            .process_message(&body("Ucarol", "C2"), 1)
            .await
            .unwrap()
    else {
        panic!("C2 stored")
    };
    assert!(queued(&s).await.iter().all(|m| !m.id.starts_with("C1:")));
    s.w1.conversations.assignment_commit.open();
    let outcome = w1_event.await.unwrap().unwrap();
    assert_eq!(
        outcome,
        router::Processed::Stored {
            conversation_id: Some(stored_id.clone())
        },
        "the retry lands on the stored conversation"
    );
    let open = s.conversations.open_conversations().await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].id, stored_id);
    assert_consistent(&s).await;
    let out = assert_only_committed_messages(&s).await;
    assert!(
        out.iter().all(|m| m.conversation_id == stored_id),
        "only the stored conversation's messages: {out:?}"
    );
    // X holds it now (the retry claimed X again): the retry's commit, and only it, says so.
    let c1: Vec<_> = out.iter().filter(|m| m.id.starts_with("C1:")).collect();
    assert_eq!(c1.len(), 1, "{out:?}");
    assert_eq!(
        c1[0].messages,
        [omniline_domain::outbound::text_message("X will help you.")]
    );
    assert_eq!(open[0].agent_id.as_deref(), Some("X"));
    // X heard of the stored conversation only, not of the lost plan's.
    let told = s.agents.notifications("X").await.unwrap();
    assert!(!told.is_empty());
    assert!(
        told.iter().all(|n| n.conversation_id == stored_id),
        "X notified of a conversation never stored: {told:?}"
    );
}
