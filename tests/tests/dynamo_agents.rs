//! The DynamoDB [`AgentStore`] against moto's server (started by `./infra/test.sh`, which sets
//! `OMNILINE_TEST_AWS_ENDPOINT`): capacity under concurrent assignment, idempotent assign /
//! release, queue membership, idempotent notifications, listing (the `AGENTS` index) and deletion.
//! Also checks the raw item layout.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_sdk_dynamodb::types::AttributeValue;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};
use omniline_ports::AgentStore;
use omniline_tests::{endpoint, pk_sk_table, sdk_config};
use std::collections::HashMap;
use std::sync::Arc;

struct Fixture {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    store: DynamoAgentStore,
}

async fn fixture() -> Fixture {
    let config = sdk_config(&endpoint()).await;
    let table = pk_sk_table(&config, "agents").await;
    Fixture {
        ddb: aws_sdk_dynamodb::Client::new(&config),
        store: DynamoAgentStore::new(&config, &table),
        table,
    }
}

impl Fixture {
    async fn raw(&self, pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// (activeCount, activeConversations) of the raw agent item.
    async fn raw_active(&self, agent_id: &str) -> (u32, Vec<String>) {
        let item = self
            .raw(&format!("AGENT#{agent_id}"), "PROFILE")
            .await
            .unwrap();
        let count = item["activeCount"].as_n().unwrap().parse().unwrap();
        let mut set = item
            .get("activeConversations")
            .map(|v| v.as_ss().unwrap().clone())
            .unwrap_or_default();
        set.sort();
        (count, set)
    }

    async fn in_queue(&self, queue: &str) -> Vec<String> {
        self.store
            .agents_in_queue(queue)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect()
    }
}

fn agent(id: &str, queues: &[&str], capacity: u32) -> Agent {
    Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        skills: vec!["ja".into(), "billing".into()],
        capacity,
        status: AgentStatus::Available,
        active_conversations: vec![],
        last_assigned_at: None,
    }
}

fn notification(id: &str, agent_id: &str, created_at: i64) -> AgentNotification {
    AgentNotification {
        id: id.into(),
        agent_id: agent_id.into(),
        conversation_id: format!("conv-{id}"),
        account_id: "acc".into(),
        kind: "assigned".into(),
        customer_user_id: Some("U1".into()),
        customer_name: "山田 太郎".into(),
        customer_picture_url: Some("https://profile.line-scdn.net/x".into()),
        customer_language: None,
        queue_id: "q".into(),
        created_at,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_capacity_is_never_exceeded_by_concurrent_assignments() {
    let f = fixture().await;
    let store = Arc::new(f.store.clone());
    // Sixteen routers race for one agent's three slots; DynamoDB's conditional update decides.
    store.put_agent(&agent("a", &["q"], 3)).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let conversation = format!("c{i}");
                let won = store
                    .try_assign("a", &conversation, 1_000 + i)
                    .await
                    .unwrap();
                (conversation, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (conversation, won) = task.await.unwrap();
        if won {
            winners.push(conversation);
        }
    }
    winners.sort();
    assert_eq!(winners.len(), 3, "assigned: {winners:?}");
    let (count, set) = f.raw_active("a").await;
    assert_eq!(count, 3, "activeCount");
    assert_eq!(set, winners, "activeConversations");
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, winners);
    assert!(a.last_assigned_at.is_some());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_assign_is_idempotent_and_release_frees_a_slot() {
    let f = fixture().await;
    let store = &f.store;
    store.put_agent(&agent("a", &["q"], 2)).await.unwrap();
    assert_eq!(f.raw_active("a").await, (0, vec![]));

    assert!(store.try_assign("a", "c1", 100).await.unwrap());
    assert!(store.try_assign("a", "c2", 200).await.unwrap());
    // A retry of c1: true, and nothing changes.
    assert!(store.try_assign("a", "c1", 300).await.unwrap());
    assert_eq!(f.raw_active("a").await, (2, vec!["c1".into(), "c2".into()]));
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, ["c1", "c2"]);
    assert_eq!(a.last_assigned_at, Some(200));
    // Full.
    assert!(!store.try_assign("a", "c3", 400).await.unwrap());

    store.release("a", "c1").await.unwrap();
    store.release("a", "c1").await.unwrap(); // idempotent
    store.release("a", "never").await.unwrap();
    store.release("ghost", "c1").await.unwrap();
    assert!(
        f.raw("AGENT#ghost", "PROFILE").await.is_none(),
        "no item created"
    );
    assert_eq!(f.raw_active("a").await, (1, vec!["c2".into()]));
    assert!(store.try_assign("a", "c3", 500).await.unwrap());
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, ["c2", "c3"]);
    assert_eq!(a.last_assigned_at, Some(500));

    // Releasing everything leaves no (empty) set behind, and the count at zero.
    store.release("a", "c2").await.unwrap();
    store.release("a", "c3").await.unwrap();
    let item = f.raw("AGENT#a", "PROFILE").await.unwrap();
    assert!(!item.contains_key("activeConversations"));
    assert_eq!(item["activeCount"].as_n().unwrap(), "0");
    assert!(store
        .agent("a")
        .await
        .unwrap()
        .unwrap()
        .active_conversations
        .is_empty());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_unavailable_or_unknown_agents_are_refused() {
    let f = fixture().await;
    let store = &f.store;
    let mut busy = agent("busy", &["q"], 5);
    busy.status = AgentStatus::Busy;
    let mut offline = agent("offline", &["q"], 5);
    offline.status = AgentStatus::Offline;
    store.put_agent(&busy).await.unwrap();
    store.put_agent(&offline).await.unwrap();
    store.put_agent(&agent("zero", &["q"], 0)).await.unwrap();
    for id in ["busy", "offline", "zero", "ghost"] {
        assert!(!store.try_assign(id, "c1", 1).await.unwrap(), "{id}");
    }
    assert!(
        f.raw("AGENT#ghost", "PROFILE").await.is_none(),
        "no item created"
    );
    assert_eq!(f.raw_active("busy").await, (0, vec![]));

    // Back to available: assignable.
    // An admin's edit of the profile keeps the presence.
    busy.status = AgentStatus::Available;
    store.put_agent(&busy).await.unwrap();
    assert!(!store.try_assign("busy", "c1", 1).await.unwrap());
    assert!(store
        .set_status("busy", AgentStatus::Available)
        .await
        .unwrap());
    assert!(!store.set_status("ghost", AgentStatus::Busy).await.unwrap());
    assert!(
        f.raw("AGENT#ghost", "PROFILE").await.is_none(),
        "set_status creates nothing"
    );
    assert!(store.try_assign("busy", "c1", 1).await.unwrap());
    // Going busy keeps what the agent has, refuses more, and a retry of what it has is true.
    assert!(store.set_status("busy", AgentStatus::Busy).await.unwrap());
    assert!(!store.try_assign("busy", "c2", 2).await.unwrap());
    assert!(store.try_assign("busy", "c1", 3).await.unwrap());
    assert_eq!(f.raw_active("busy").await, (1, vec!["c1".into()]));
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_put_agent_moves_queue_membership_and_keeps_assignments() {
    let f = fixture().await;
    let store = &f.store;
    store
        .put_agent(&agent("a", &["q1", "q2"], 2))
        .await
        .unwrap();
    store.put_agent(&agent("b", &["q2"], 2)).await.unwrap();
    assert_eq!(f.in_queue("q1").await, ["a"]);
    assert_eq!(f.in_queue("q2").await, ["a", "b"]);
    assert!(f.in_queue("q3").await.is_empty());
    assert!(f.raw("QUEUE#q1", "AGENT#a").await.is_some());
    assert!(store.try_assign("a", "c1", 42).await.unwrap());

    // a leaves q1, joins q3, is renamed, gets more capacity; assignments stay.
    let mut edited = agent("a", &["q2", "q3"], 4);
    edited.name = "Renamed".into();
    edited.skills = vec!["en".into()];
    store.put_agent(&edited).await.unwrap();
    assert!(f.in_queue("q1").await.is_empty());
    assert!(
        f.raw("QUEUE#q1", "AGENT#a").await.is_none(),
        "stale membership deleted"
    );
    assert_eq!(f.in_queue("q2").await, ["a", "b"]);
    assert_eq!(f.in_queue("q3").await, ["a"]);
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.name, "Renamed");
    assert_eq!(a.queues, ["q2", "q3"]);
    assert_eq!(a.skills, ["en"]);
    assert_eq!(a.capacity, 4);
    assert_eq!(a.active_conversations, ["c1"]);
    assert_eq!(a.last_assigned_at, Some(42));
    assert_eq!(f.raw_active("a").await, (1, vec!["c1".into()]));
    // The listing carries whole agents.
    let listed = store.agents_in_queue("q3").await.unwrap();
    assert_eq!(listed, [a]);

    // Out of every queue.
    store.put_agent(&agent("a", &[], 4)).await.unwrap();
    assert_eq!(f.in_queue("q2").await, ["b"]);
    assert!(f.in_queue("q3").await.is_empty());
    assert!(store.agent("nobody").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_are_idempotent_by_id_and_ordered() {
    let f = fixture().await;
    let store = &f.store;
    store.notify(&notification("n2", "a", 200)).await.unwrap();
    store.notify(&notification("n1", "a", 100)).await.unwrap();
    // Same id again: unchanged, even with another createdAt (another sort key) and content.
    store.notify(&notification("n2", "a", 200)).await.unwrap();
    let mut retry = notification("n2", "a", 300);
    retry.customer_name = "other".into();
    store.notify(&retry).await.unwrap();
    store.notify(&notification("n3", "b", 50)).await.unwrap();

    let got = store.notifications("a").await.unwrap();
    assert_eq!(
        got,
        [notification("n1", "a", 100), notification("n2", "a", 200)]
    );
    assert_eq!(
        store.notifications("b").await.unwrap(),
        [notification("n3", "b", 50)]
    );
    assert!(store.notifications("c").await.unwrap().is_empty());
    assert!(f.raw("NOTIFICATION#n2", "NOTIFICATION").await.is_some());
    assert!(f
        .raw("AGENT#a", "NOTIFY#00000000000000000300#n2")
        .await
        .is_none());

    // Notifications share the agent's partition without disturbing the profile.
    store.put_agent(&agent("a", &["q"], 1)).await.unwrap();
    assert!(store.try_assign("a", "c", 1).await.unwrap());
    assert_eq!(store.notifications("a").await.unwrap().len(), 2);
    assert_eq!(
        store
            .agent("a")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        ["c"]
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_list_agents_is_ordered_by_id_from_the_index() {
    let f = fixture().await;
    let store = &f.store;
    assert!(store.list_agents().await.unwrap().is_empty());
    store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
    store.put_agent(&agent("c", &[], 1)).await.unwrap();
    store
        .put_agent(&agent("a", &["q1", "q2"], 3))
        .await
        .unwrap();
    assert!(store.try_assign("b", "c1", 7).await.unwrap());
    // The index items: pk AGENTS, sk the agent id.
    let index = f.raw("AGENTS", "b").await.unwrap();
    assert_eq!(index["agentId"].as_s().unwrap(), "b");

    let listed = store.list_agents().await.unwrap();
    let ids: Vec<_> = listed.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(listed[0], agent("a", &["q1", "q2"], 3));
    assert_eq!(listed[1].active_conversations, ["c1"]);
    assert_eq!(listed[1].last_assigned_at, Some(7));
    // Editing an agent does not list it twice.
    store.put_agent(&agent("b", &["q2"], 5)).await.unwrap();
    assert_eq!(store.list_agents().await.unwrap().len(), 3);

    // An agent written before the index existed (a profile without an index item) is not
    // listed until its next put_agent writes the index item.
    f.ddb
        .delete_item()
        .table_name(&f.table)
        .key("pk", AttributeValue::S("AGENTS".into()))
        .key("sk", AttributeValue::S("c".into()))
        .send()
        .await
        .unwrap();
    let ids = |agents: Vec<Agent>| agents.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_agents().await.unwrap()), ["a", "b"]);
    assert!(store.agent("c").await.unwrap().is_some());
    store.put_agent(&agent("c", &[], 1)).await.unwrap();
    assert_eq!(ids(store.list_agents().await.unwrap()), ["a", "b", "c"]);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_list_agents_reads_more_than_one_batch() {
    let f = fixture().await;
    let store = &f.store;
    // More than one BatchGetItem (100 keys); ids sort as strings.
    let mut expected: Vec<String> = (0..130).map(|i| format!("ag{i:03}")).collect();
    for id in expected.iter().rev() {
        store.put_agent(&agent(id, &["q"], 1)).await.unwrap();
    }
    expected.sort();
    let listed: Vec<String> = store
        .list_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_delete_agent_removes_everything_of_the_agent_only() {
    let f = fixture().await;
    let store = &f.store;
    store
        .put_agent(&agent("a", &["q1", "q2"], 2))
        .await
        .unwrap();
    store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
    assert!(store.try_assign("a", "c1", 10).await.unwrap());
    assert!(store.try_assign("b", "c2", 11).await.unwrap());
    // More than one BatchWriteItem of 25: 30 notifications plus 30 markers.
    for i in 0..30 {
        store
            .notify(&notification(&format!("na{i:02}"), "a", 100 + i))
            .await
            .unwrap();
    }
    store.notify(&notification("nb", "b", 300)).await.unwrap();

    assert!(store.delete_agent("a").await.unwrap());
    assert!(store.agent("a").await.unwrap().is_none());
    let ids = |agents: Vec<Agent>| agents.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_agents().await.unwrap()), ["b"]);
    assert_eq!(f.in_queue("q1").await, ["b"]);
    assert!(f.in_queue("q2").await.is_empty());
    assert!(store.notifications("a").await.unwrap().is_empty());
    // No item of a's is left: profile, index, memberships, notifications, markers.
    assert!(f.raw("AGENT#a", "PROFILE").await.is_none());
    assert!(f.raw("AGENTS", "a").await.is_none());
    assert!(f.raw("QUEUE#q1", "AGENT#a").await.is_none());
    assert!(f.raw("QUEUE#q2", "AGENT#a").await.is_none());
    assert!(f.raw("NOTIFICATION#na00", "NOTIFICATION").await.is_none());
    assert!(f.raw("NOTIFICATION#na29", "NOTIFICATION").await.is_none());
    let left = f
        .ddb
        .query()
        .table_name(&f.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("AGENT#a".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(left.count(), 0, "items left under AGENT#a");
    // b is untouched.
    assert_eq!(
        store.notifications("b").await.unwrap(),
        [notification("nb", "b", 300)]
    );
    assert!(f.raw("NOTIFICATION#nb", "NOTIFICATION").await.is_some());
    assert_eq!(
        store
            .agent("b")
            .await
            .unwrap()
            .unwrap()
            .active_conversations,
        ["c2"]
    );
    // A deleted agent takes no work, and no profile is recreated by trying.
    assert!(!store.try_assign("a", "c3", 12).await.unwrap());
    store.release("a", "c1").await.unwrap();
    assert!(f.raw("AGENT#a", "PROFILE").await.is_none());

    // Gone already, or never there: false.
    assert!(!store.delete_agent("a").await.unwrap());
    assert!(!store.delete_agent("ghost").await.unwrap());

    // The same id again starts clean: no old conversations, assignment time, queues or
    // notifications; a notification id used before is new again (its marker went too).
    store.put_agent(&agent("a", &["q2"], 1)).await.unwrap();
    assert_eq!(
        store.agent("a").await.unwrap().unwrap(),
        agent("a", &["q2"], 1)
    );
    assert_eq!(f.raw_active("a").await, (0, vec![]));
    assert!(store.notifications("a").await.unwrap().is_empty());
    assert_eq!(f.in_queue("q1").await, ["b"]);
    assert_eq!(f.in_queue("q2").await, ["a"]);
    assert!(store.try_assign("a", "c9", 20).await.unwrap());
    store.notify(&notification("na00", "a", 500)).await.unwrap();
    assert_eq!(
        store.notifications("a").await.unwrap(),
        [notification("na00", "a", 500)]
    );
    assert_eq!(ids(store.list_agents().await.unwrap()), ["a", "b"]);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_delete_agent_without_profile_still_clears_notifications() {
    let f = fixture().await;
    let store = &f.store;
    // Notifications for an id with no profile (or left by a delete that failed half-way).
    store.notify(&notification("n1", "ghost", 1)).await.unwrap();
    assert!(!store.delete_agent("ghost").await.unwrap());
    assert!(store.notifications("ghost").await.unwrap().is_empty());
    assert!(f.raw("NOTIFICATION#n1", "NOTIFICATION").await.is_none());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_put_agent_keeps_the_transaction_within_100_operations() {
    let f = fixture().await;
    let store = &f.store;
    // Profile + index item + 98 memberships = 100 operations: accepted, and deletable in one go.
    let queues: Vec<String> = (0..98).map(|i| format!("q{i:02}")).collect();
    let refs: Vec<&str> = queues.iter().map(String::as_str).collect();
    store.put_agent(&agent("a", &refs, 1)).await.unwrap();
    assert_eq!(f.in_queue("q97").await, ["a"]);
    // One more membership would be 101: refused before DynamoDB is asked.
    let queues99: Vec<String> = (0..99).map(|i| format!("q{i:02}")).collect();
    let refs99: Vec<&str> = queues99.iter().map(String::as_str).collect();
    assert!(store.put_agent(&agent("b", &refs99, 1)).await.is_err());
    assert!(store.agent("b").await.unwrap().is_none());
    assert!(store.delete_agent("a").await.unwrap());
    assert!(f.in_queue("q00").await.is_empty());
    assert!(f.raw("QUEUE#q97", "AGENT#a").await.is_none());
}

/// Every page of `notifications_after` from the start, `page` at a time.
async fn pages(store: &DynamoAgentStore, agent_id: &str, page: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let got = store
            .notifications_after(
                agent_id,
                cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
                page,
            )
            .await
            .unwrap();
        assert!(got.len() <= page, "page of {} > {page}", got.len());
        let Some(last) = got.last() else {
            return out;
        };
        cursor = Some((last.created_at, last.id.clone()));
        out.push(got.into_iter().map(|n| n.id).collect());
        assert!(out.len() < 100, "pagination does not end");
    }
}

fn ids(notifications: Vec<AgentNotification>) -> Vec<String> {
    notifications.into_iter().map(|n| n.id).collect()
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_after_pages_through_every_notification_once_in_order() {
    let f = fixture().await;
    let store = &f.store;
    // Equal createdAt with different ids (written out of order), ids that are prefixes of one
    // another, negative times (clamped to 0 in the sort key, so not in key order), the agent's
    // profile in the same partition, and another agent's notifications.
    store.put_agent(&agent("a", &["q"], 1)).await.unwrap();
    for (id, at) in [
        ("n-b", 200),
        ("n-a", 200),
        ("n-ab", 200),
        ("n-c", 200),
        ("early", 100),
        ("late", 300),
        ("neg", -5),
        ("a-neg", -1),
        ("zero", 0),
        ("n", 200),
        ("last", 400),
    ] {
        store.notify(&notification(id, "a", at)).await.unwrap();
    }
    store
        .notify(&notification("other", "b", 250))
        .await
        .unwrap();
    store
        .notify(&notification("other2", "b", 150))
        .await
        .unwrap();

    let all = ids(store.notifications("a").await.unwrap());
    assert_eq!(
        all,
        ["neg", "a-neg", "zero", "early", "n", "n-a", "n-ab", "n-b", "n-c", "late", "last"]
    );
    for page in 1..=12 {
        let got = pages(store, "a", page).await;
        assert_eq!(got.concat(), all, "page size {page}");
        let full_pages = all.len() / page;
        assert!(got[..full_pages].iter().all(|p| p.len() == page));
    }

    assert_eq!(
        store.notifications_after("a", None, 100).await.unwrap(),
        store.notifications("a").await.unwrap()
    );
    assert!(store
        .notifications_after("a", None, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .notifications_after("a", Some((400, "last")), 10)
        .await
        .unwrap()
        .is_empty());
    // Cursors that are not stored notifications.
    assert_eq!(
        ids(store
            .notifications_after("a", Some((200, "n-aa")), 3)
            .await
            .unwrap()),
        ["n-ab", "n-b", "n-c"]
    );
    assert_eq!(
        ids(store
            .notifications_after("a", Some((200, "n")), 2)
            .await
            .unwrap()),
        ["n-a", "n-ab"]
    );
    assert_eq!(
        ids(store
            .notifications_after("a", Some((250, "")), 5)
            .await
            .unwrap()),
        ["late", "last"]
    );
    assert_eq!(
        ids(store
            .notifications_after("a", Some((-3, "zzz")), 3)
            .await
            .unwrap()),
        ["a-neg", "zero", "early"]
    );
    assert_eq!(
        ids(store
            .notifications_after("a", Some((0, "zero")), 1)
            .await
            .unwrap()),
        ["early"]
    );
    assert_eq!(
        ids(store
            .notifications_after("b", Some((150, "other2")), 5)
            .await
            .unwrap()),
        ["other"]
    );
    assert!(store
        .notifications_after("nobody", None, 5)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_after_reads_past_dynamodb_pages() {
    let f = fixture().await;
    let store = &f.store;
    // Big items (about 30 kB each): a 1 MB Query page holds far fewer than asked for.
    let mut written = Vec::new();
    for i in 0..60 {
        let mut n = notification(&format!("big-{i:02}"), "a", 1_000 + i / 3);
        n.customer_name = "x".repeat(30_000);
        store.notify(&n).await.unwrap();
        written.push(n.id);
    }
    let got = store.notifications_after("a", None, 60).await.unwrap();
    assert_eq!(ids(got), written);
    let got = store
        .notifications_after("a", Some((1_000, "big-00")), 59)
        .await
        .unwrap();
    assert_eq!(ids(got), written[1..]);
    assert_eq!(pages(store, "a", 7).await.concat(), written);
}

/// Erasing a customer deletes the notifications about their conversation, whichever agent got
/// them (with their markers and the conversation's list); other conversations' stay.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_a_conversations_notifications_are_deleted_for_every_agent() {
    let f = fixture().await;
    let store = &f.store;
    let mut of_c1 = vec![
        notification("c1:a:assigned", "a", 10),
        notification("c1:b:message", "b", 20),
    ];
    for n in &mut of_c1 {
        n.conversation_id = "c1".into();
    }
    let mut of_c2 = notification("c2:a:assigned", "a", 30);
    of_c2.conversation_id = "c2".into();
    for n in of_c1.iter().chain([&of_c2]) {
        store.notify(n).await.unwrap();
    }
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        2
    );
    let ids = |agent: &'static str| async move {
        store
            .notifications(agent)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("a").await, ["c2:a:assigned"]);
    assert!(ids("b").await.is_empty());
    assert!(f
        .raw("NOTIFICATION#c1:a:assigned", "NOTIFICATION")
        .await
        .is_none());
    assert!(f.raw("CONVNOTIFY#c1", "c1:b:message").await.is_none());
    assert!(f.raw("CONVNOTIFY#c2", "c2:a:assigned").await.is_some());
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        0
    );
    // A notification stored again after its erasure (a retry) is a new one, deletable again.
    store.notify(&of_c1[0]).await.unwrap();
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        1
    );
}
