//! The DynamoDB [`AgentStore`] against moto's server (started by `./infra/test.sh`, which sets
//! `OMNILINE_TEST_AWS_ENDPOINT`): the AgentStore contract (omniline_testkit::agent_contract, as
//! the SQLite adapter's tests run it), each followed by checks of the raw items it leaves (the
//! active count beside the set, the `AGENTS` index, queue memberships, notification markers),
//! and DynamoDB's own limit of 100 operations a transaction.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_sdk_dynamodb::types::AttributeValue;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_ports::AgentStore;
use omniline_testkit::agent_contract::{self as contract, agent};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_capacity_is_never_exceeded_by_concurrent_assignments() {
    let f = fixture().await;
    // The routers race for the slots; DynamoDB's conditional update decides.
    let winners =
        contract::capacity_is_never_exceeded_by_concurrent_assignments(Arc::new(f.store.clone()))
            .await;
    let (count, set) = f.raw_active("a").await;
    assert_eq!(count, 3, "activeCount");
    assert_eq!(set, winners, "activeConversations");
    // Read back in the set's order.
    let a = f.store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, winners);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_assign_is_idempotent_and_release_frees_a_slot() {
    let f = fixture().await;
    let store = &f.store;
    contract::assign_is_idempotent_and_release_frees_a_slot(store).await;
    assert!(
        f.raw("AGENT#ghost", "PROFILE").await.is_none(),
        "no item created"
    );
    // Releasing everything leaves no (empty) set behind, and the count at zero.
    let item = f.raw("AGENT#a", "PROFILE").await.unwrap();
    assert!(!item.contains_key("activeConversations"));
    assert_eq!(item["activeCount"].as_n().unwrap(), "0");

    // The count follows the set through the same steps.
    assert!(store.try_assign("a", "c1", 600).await.unwrap());
    assert!(store.try_assign("a", "c2", 700).await.unwrap());
    assert!(store.try_assign("a", "c1", 800).await.unwrap());
    assert_eq!(f.raw_active("a").await, (2, vec!["c1".into(), "c2".into()]));
    assert!(!store.try_assign("a", "c3", 900).await.unwrap());
    store.release("a", "c1").await.unwrap();
    store.release("a", "c1").await.unwrap();
    store.release("a", "never").await.unwrap();
    assert_eq!(f.raw_active("a").await, (1, vec!["c2".into()]));
    store.release("a", "c2").await.unwrap();
    assert_eq!(f.raw_active("a").await, (0, vec![]));
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_unavailable_or_unknown_agents_are_refused() {
    let f = fixture().await;
    contract::unavailable_or_unknown_agents_are_refused(&f.store).await;
    assert!(
        f.raw("AGENT#ghost", "PROFILE").await.is_none(),
        "neither try_assign nor set_status creates an item"
    );
    assert_eq!(f.raw_active("busy").await, (1, vec!["c1".into()]));
    assert_eq!(f.raw_active("offline").await, (0, vec![]));
    assert_eq!(f.raw_active("zero").await, (0, vec![]));
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_put_agent_moves_queue_membership_and_keeps_assignments() {
    let f = fixture().await;
    contract::put_agent_moves_queue_membership_and_keeps_assignment_state(&f.store).await;
    // The membership items: one per (queue, agent); stale ones deleted.
    assert!(f.raw("QUEUE#q2", "AGENT#b").await.is_some());
    for queue in ["q1", "q2", "q3"] {
        assert!(
            f.raw(&format!("QUEUE#{queue}"), "AGENT#a").await.is_none(),
            "stale membership of {queue} deleted"
        );
    }
    assert_eq!(f.raw_active("a").await, (1, vec!["c1".into()]));
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_are_idempotent_by_id_and_ordered() {
    let f = fixture().await;
    contract::notifications_are_idempotent_by_id_and_ordered(&f.store).await;
    // The marker of n2, and no second item for its retry (another createdAt, another sort key).
    assert!(f.raw("NOTIFICATION#n2", "NOTIFICATION").await.is_some());
    assert!(f
        .raw("AGENT#a", "NOTIFY#00000000000000000300#n2")
        .await
        .is_none());
    assert!(f
        .raw("AGENT#a", "NOTIFY#00000000000000000200#n2")
        .await
        .is_some());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_list_agents_is_ordered_by_id_from_the_index() {
    let f = fixture().await;
    let store = &f.store;
    contract::list_agents_is_ordered_by_id_and_carries_whole_agents(store).await;
    // The index items: pk AGENTS, sk the agent id.
    let index = f.raw("AGENTS", "b").await.unwrap();
    assert_eq!(index["agentId"].as_s().unwrap(), "b");

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
    let ids = |agents: Vec<omniline_domain::agents::Agent>| {
        agents.into_iter().map(|a| a.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(store.list_agents().await.unwrap()), ["a", "b"]);
    assert!(store.agent("c").await.unwrap().is_some());
    store.put_agent(&agent("c", &[], 1)).await.unwrap();
    assert_eq!(ids(store.list_agents().await.unwrap()), ["a", "b", "c"]);
}

/// More than one BatchGetItem (100 keys).
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_list_agents_reads_more_than_one_batch() {
    contract::list_agents_lists_many_agents_in_id_order(&fixture().await.store).await;
}

/// The contract's two steps; between them, no item of the deleted agent is left (profile,
/// index, memberships, notifications, markers: more than one BatchWriteItem of 25), and trying
/// to assign or release recreates none; after them, the new agent's count starts from zero.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_delete_agent_removes_everything_of_the_agent_only() {
    let f = fixture().await;
    contract::delete_agent_removes_everything_of_the_agent_only(&f.store).await;
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
    assert!(f.raw("NOTIFICATION#nb", "NOTIFICATION").await.is_some());
    assert_eq!(f.raw_active("b").await, (1, vec!["c2".into()]));

    contract::a_deleted_agents_id_starts_clean(&f.store).await;
    assert_eq!(f.raw_active("a").await, (1, vec!["c9".into()]));
    assert!(f.raw("NOTIFICATION#na00", "NOTIFICATION").await.is_some());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_delete_agent_without_profile_still_clears_notifications() {
    let f = fixture().await;
    contract::delete_agent_without_profile_still_clears_notifications(&f.store).await;
    assert!(f.raw("NOTIFICATION#n1", "NOTIFICATION").await.is_none());
    assert!(f.raw("AGENT#ghost", "PROFILE").await.is_none());
}

/// DynamoDB's limit of 100 operations a transaction (the SQLite store has none).
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

/// Negative times are clamped to 0 in the sort key (so not in key order); the profile shares
/// the partition.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_after_pages_through_every_notification_once_in_order() {
    contract::notifications_after_pages_through_every_notification_once_in_order(
        &fixture().await.store,
    )
    .await;
}

/// Big items (about 30 kB each): a 1 MB Query page holds far fewer than asked for.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_after_reads_past_dynamodb_pages() {
    contract::notifications_after_reads_past_a_page_of_big_notifications(&fixture().await.store)
        .await;
}

/// Two missed offers in a row set an agent away.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_two_missed_offers_in_a_row_set_an_agent_away() {
    contract::two_missed_offers_in_a_row_set_an_agent_away(&fixture().await.store).await;
}

/// Writing first takes a slot whatever the presence, within the capacity.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_claim_own_ignores_presence_but_not_capacity() {
    contract::claim_own_ignores_presence_but_not_capacity(&fixture().await.store).await;
}

/// A heartbeat records when the agent was heard from; the timeout sets away only agents not
/// heard from since the cutoff.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_presence_expires_only_for_agents_not_heard_from() {
    contract::presence_expires_only_for_agents_not_heard_from(&fixture().await.store).await;
}

/// Erasing a customer deletes the notifications about their conversation, whichever agent got
/// them, with their markers and the conversation's list; other conversations' stay.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_a_conversations_notifications_are_deleted_for_every_agent() {
    let f = fixture().await;
    contract::a_conversations_notifications_are_deleted_for_every_agent(&f.store).await;
    assert!(f
        .raw("NOTIFICATION#c1:a:assigned", "NOTIFICATION")
        .await
        .is_none());
    assert!(f
        .raw("NOTIFICATION#c1:b:message", "NOTIFICATION")
        .await
        .is_none());
    assert!(f.raw("CONVNOTIFY#c1", "c1:a:assigned").await.is_none());
    assert!(f.raw("CONVNOTIFY#c1", "c1:b:message").await.is_none());
    assert!(f.raw("CONVNOTIFY#c2", "c2:a:assigned").await.is_some());
    assert!(f
        .raw("NOTIFICATION#c2:a:assigned", "NOTIFICATION")
        .await
        .is_some());
}

/// A notification stored with a retention carries DynamoDB's time to live on each of its items
/// (the notification, its marker, its conversation's index entry); one without keeps none.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_agents_notifications_expire_with_retention() {
    let f = fixture().await;
    let n = contract::notification("nx", "a", 100);
    f.store.notify(&n, Some(1_900_000_000)).await.unwrap();
    let kept = contract::notification("nk", "a", 200);
    f.store.notify(&kept, None).await.unwrap();
    let mut expiring = 0;
    let mut scan = f
        .ddb
        .scan()
        .table_name(&f.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    scan.retain(|item| {
        let pk = item["pk"].as_s().unwrap();
        let sk = item["sk"].as_s().unwrap();
        pk.contains("nx") || sk.contains("nx") || pk.contains("nk") || sk.contains("nk")
    });
    assert!(scan.len() >= 4, "{scan:?}");
    for item in &scan {
        let about_nx = format!(
            "{}{}",
            item["pk"].as_s().unwrap(),
            item["sk"].as_s().unwrap()
        )
        .contains("nx");
        match item.get("expiresAt") {
            Some(at) => {
                assert!(about_nx, "{item:?}");
                assert_eq!(at.as_n().unwrap(), "1900000000");
                expiring += 1;
            }
            None => assert!(!about_nx, "{item:?}"),
        }
    }
    assert!(expiring >= 2, "{scan:?}");
}
