//! The DynamoDB `DeliveryStore` over the wire, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`). Each test has its own table.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_config::SdkConfig;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationState, ConversationWrite, EventCommit, SourceType,
    TranscriptEntry,
};
use omniline_domain::delivery::Delivery;
use omniline_ports::{ConversationStore, DeliveryStore};
use omniline_tests::{endpoint, pk_sk_table, sdk_config};
use serde_json::json;
use std::sync::Arc;

/// A store on a fresh table, with the table name and config for raw access.
async fn store() -> (DynamoDeliveryStore, SdkConfig, String) {
    let config = sdk_config(&endpoint()).await;
    let name = pk_sk_table(&config, "conversations").await;
    (DynamoDeliveryStore::new(&config, &name), config, name)
}

use omniline_testkit::delivery_contract::{delivery, ids, purge_to_the_end, sent};

/// The DeliveryStore contract, as the SQLite adapter's tests run it.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn begin_twice_keeps_the_first_retry_key() {
    omniline_testkit::delivery_contract::begin_twice_keeps_the_first_retry_key(&store().await.0)
        .await;
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn concurrent_begins_agree_on_one_record() {
    let (store, _, _) = store().await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let d = delivery("m1", "c1", &format!("key-{i}"), 1000 + i);
                store.begin(&d).await.unwrap()
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.unwrap());
    }
    let winner = store.delivery("m1").await.unwrap().unwrap();
    assert!(stored.iter().all(|d| *d == winner), "{stored:?}");
    assert_eq!(
        store.deliveries_for_conversation("c1").await.unwrap(),
        vec![winner]
    );
}

/// Issue 3/7: `begin` puts the delivery and then its index item, outside a transaction (one
/// write unit each, not two). An attempt that died between the two puts leaves a delivery the
/// conversation's index does not name; the retry's `begin` (another attempt, another clock)
/// indexes the stored delivery, under its own creation time, exactly once.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_delivery_whose_index_item_was_lost_is_indexed_by_the_retry() {
    let (store, config, table) = store().await;
    let first = store
        .begin(&delivery("m1", "c1", "key-1", 1000))
        .await
        .unwrap();
    omniline_tests::delete_raw(&config, &table, "CONV#c1", "D#00000000000000001000#m1").await;
    assert!(store
        .deliveries_for_conversation("c1")
        .await
        .unwrap()
        .is_empty());
    let retried = store
        .begin(&delivery("m1", "c1", "key-2", 5000))
        .await
        .unwrap();
    assert_eq!(retried, first);
    assert_eq!(
        store.deliveries_for_conversation("c1").await.unwrap(),
        vec![first]
    );
}

/// The DeliveryStore contract, as the SQLite adapter's tests run it.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn update_needs_the_previous_version() {
    omniline_testkit::delivery_contract::update_needs_the_previous_version(&store().await.0).await;
}

/// The DeliveryStore contract, as the SQLite adapter's tests run it.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn concurrent_updates_exactly_one_wins() {
    omniline_testkit::delivery_contract::concurrent_updates_exactly_one_wins(Arc::new(
        store().await.0,
    ))
    .await;
}

/// The DeliveryStore contract, as the SQLite adapter's tests run it.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn listed_per_conversation_in_creation_order() {
    omniline_testkit::delivery_contract::listed_per_conversation_in_creation_order(
        &store().await.0,
    )
    .await;
}

/// The DeliveryStore contract, as the SQLite adapter's tests run it: the purge in one page,
/// then in pages of one item (each run twice), which takes a page per item of the table.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn purge_erases_one_accounts_deliveries() {
    let pages = omniline_testkit::delivery_contract::purge_erases_one_accounts_deliveries(
        &store().await.0,
        1000,
        false,
    )
    .await;
    assert_eq!(pages, 1);
    let pages = omniline_testkit::delivery_contract::purge_erases_one_accounts_deliveries(
        &store().await.0,
        1,
        true,
    )
    .await;
    // 7 deliveries, two items each: a page and its second run read two of them.
    assert!(pages >= 7, "{pages}");
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn more_than_a_batch_of_deliveries() {
    let (store, _, _) = store().await;
    let count = 130;
    for i in 0..count {
        store
            .begin(&delivery(&format!("m{i:03}"), "c1", "k", 1000 + i))
            .await
            .unwrap();
    }
    let listed = store.deliveries_for_conversation("c1").await.unwrap();
    let expected: Vec<String> = (0..count).map(|i| format!("m{i:03}")).collect();
    assert_eq!(ids(&listed), expected);
}

fn conversation(id: &str) -> Conversation {
    Conversation {
        id: id.into(),
        account_id: "acc1".into(),
        source_type: SourceType::User,
        source_id: "U1".into(),
        state: ConversationState::Waiting,
        workstream_id: None,
        queue_id: None,
        priority: 0,
        skills: vec![],
        bot_id: None,
        agent_id: None,
        rule_id: None,
        members: vec![],
        opened_at: 1_700_000_000_000,
        last_activity_at: 1_700_000_000_000,
        closed_at: None,
        close_reason: None,
        group: None,
        survey: None,
        snoozed_until: None,
        follow_up: false,
        context: Default::default(),
        offer: None,
        declined_by: Vec::new(),
        wrap_up: None,
        unread: 0,
        last_message: None,
        waiting_since: None,
        assigned_at: None,
        first_response_at: None,
        messages_in: 0,
        messages_out: 0,
        tags: Vec::new(),
        version: 1,
    }
}

/// The delivery index shares the conversation's partition with its `META` and transcript items:
/// neither store sees the other's items.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn shares_the_conversations_table_without_mixing() {
    let (deliveries, config, table) = store().await;
    let conversations = DynamoConversationStore::new(&config, &table);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let commit = EventCommit {
        account_id: "acc1".into(),
        event_id: "e1".into(),
        now_secs: now,
        dedupe_expires_at: now + 3600,
        retain_until: None,
        conversation: Some(ConversationWrite::Create(conversation("c1"))),
        transcript: Some(TranscriptEntry {
            conversation_id: "c1".into(),
            event_id: "e1".into(),
            timestamp: 1_700_000_000_000,
            event_type: "message".into(),
            sender_user_id: Some("U1".into()),
            message_id: Some("lm1".into()),
            event: json!({"type": "message", "message": {"type": "text", "text": "hi"}}),
            retracted: false,
            sender_name: None,
        }),
        retract_message_id: None,
        customer: None,
        outbox: Vec::new(),
        notifications: Vec::new(),
    };
    assert_eq!(
        conversations.commit(&commit).await.unwrap(),
        CommitOutcome::Committed
    );
    let d = deliveries
        .begin(&delivery("m1", "c1", "k", 1_700_000_000_500))
        .await
        .unwrap();

    assert_eq!(
        deliveries.deliveries_for_conversation("c1").await.unwrap(),
        vec![d]
    );
    let transcript = conversations.transcript("c1").await.unwrap();
    assert_eq!(transcript.len(), 1);
    assert_eq!(transcript[0].event_id, "e1");
    assert_eq!(
        conversations.conversation("c1").await.unwrap(),
        Some(conversation("c1"))
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn delete_for_conversation_erases_its_deliveries_only() {
    let (deliveries, config, table) = store().await;
    let conversations = DynamoConversationStore::new(&config, &table);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let commit = EventCommit {
        account_id: "acc1".into(),
        event_id: "e1".into(),
        now_secs: now,
        dedupe_expires_at: now + 3600,
        retain_until: None,
        conversation: Some(ConversationWrite::Create(conversation("c1"))),
        transcript: Some(TranscriptEntry {
            conversation_id: "c1".into(),
            event_id: "e1".into(),
            timestamp: 1_700_000_000_000,
            event_type: "message".into(),
            sender_user_id: Some("U1".into()),
            message_id: Some("lm1".into()),
            event: json!({"type": "message", "message": {"type": "text", "text": "hi"}}),
            retracted: false,
            sender_name: None,
        }),
        retract_message_id: None,
        customer: None,
        outbox: Vec::new(),
        notifications: Vec::new(),
    };
    assert_eq!(
        conversations.commit(&commit).await.unwrap(),
        CommitOutcome::Committed
    );
    // More than one BatchWriteItem's worth (25) for c1, and one of c2.
    for i in 0..30 {
        deliveries
            .begin(&delivery(
                &format!("m{i:02}"),
                "c1",
                "k",
                1_700_000_000_000 + i,
            ))
            .await
            .unwrap();
    }
    let other = deliveries
        .begin(&delivery("x1", "c2", "k", 1_700_000_000_000))
        .await
        .unwrap();

    assert_eq!(deliveries.delete_for_conversation("c1").await.unwrap(), 30);
    assert!(deliveries
        .deliveries_for_conversation("c1")
        .await
        .unwrap()
        .is_empty());
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    for pk in ["DELIVERY#m00", "DELIVERY#m29"] {
        let item = ddb
            .get_item()
            .table_name(&table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("DELIVERY".into()),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(item.item.is_none(), "{pk}");
    }
    assert_eq!(deliveries.delivery("m00").await.unwrap(), None);

    // The conversation's own items in the partition, and another conversation's deliveries, stay.
    assert_eq!(
        conversations.conversation("c1").await.unwrap(),
        Some(conversation("c1"))
    );
    assert_eq!(conversations.transcript("c1").await.unwrap().len(), 1);
    assert_eq!(
        deliveries.deliveries_for_conversation("c2").await.unwrap(),
        vec![other]
    );

    // Nothing left to delete; an id can be used again.
    assert_eq!(deliveries.delete_for_conversation("c1").await.unwrap(), 0);
    assert_eq!(deliveries.delete_for_conversation("nope").await.unwrap(), 0);
    let again = delivery("m00", "c3", "k2", 1_700_000_100_000);
    assert_eq!(deliveries.begin(&again).await.unwrap(), again);
}

/// Every item of the table, read consistently: (pk, sk, item).
async fn raw_items(
    config: &SdkConfig,
    table: &str,
) -> Vec<(
    String,
    String,
    std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
)> {
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let mut pages = ddb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        for item in page.unwrap().items() {
            let pk = item["pk"].as_s().unwrap().clone();
            let sk = item["sk"].as_s().unwrap().clone();
            items.push((pk, sk, item.clone()));
        }
    }
    items
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn purge_account_erases_its_deliveries_only() {
    let (deliveries, config, table) = store().await;
    let conversations = DynamoConversationStore::new(&config, &table);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let commit = EventCommit {
        account_id: "acc1".into(),
        event_id: "e1".into(),
        now_secs: now,
        dedupe_expires_at: now + 3600,
        retain_until: None,
        conversation: Some(ConversationWrite::Create(conversation("c1"))),
        transcript: None,
        retract_message_id: None,
        customer: None,
        outbox: Vec::new(),
        notifications: Vec::new(),
    };
    assert_eq!(
        conversations.commit(&commit).await.unwrap(),
        CommitOutcome::Committed
    );
    // acc1: more than one BatchWriteItem's worth (25) of each kind of item, in two conversations.
    for i in 0..40 {
        let conversation = if i % 4 == 0 { "c2" } else { "c1" };
        deliveries
            .begin(&delivery(
                &format!("m{i:02}"),
                conversation,
                "k",
                1_700_000_000_000 + i,
            ))
            .await
            .unwrap();
    }
    // acc2: three deliveries in its own conversation.
    for i in 0..3 {
        deliveries
            .begin(&Delivery::new(
                &format!("x{i}"),
                "acc2",
                "c3",
                "k",
                1_700_000_000_000 + i,
            ))
            .await
            .unwrap();
    }
    // An update (replacing the document) keeps the account attribute.
    let m01 = deliveries.delivery("m01").await.unwrap().unwrap();
    assert!(deliveries.update(&sent(&m01)).await.unwrap());
    let x0 = deliveries.delivery("x0").await.unwrap().unwrap();
    assert!(deliveries.update(&sent(&x0)).await.unwrap());
    let items = raw_items(&config, &table).await;
    for (pk, account) in [("DELIVERY#m01", "acc1"), ("DELIVERY#x0", "acc2")] {
        let (_, _, item) = items.iter().find(|(p, _, _)| p == pk).unwrap();
        assert_eq!(item["accountId"].as_s().unwrap(), account, "{pk}");
    }
    let acc2 = deliveries.deliveries_for_conversation("c3").await.unwrap();
    assert_eq!(ids(&acc2), ["x0", "x1", "x2"]);
    assert_eq!(acc2[0], sent(&x0));

    // In pages of 7 items: the Scan pages through every item of the table.
    let (erased, pages) = purge_to_the_end(&deliveries, "acc1", 7, false).await;
    assert_eq!(erased, 40);
    assert!(pages > 10, "{pages}");

    let items = raw_items(&config, &table).await;
    let left_of_acc1: Vec<_> = items
        .iter()
        .filter(|(pk, sk, _)| {
            pk.starts_with("DELIVERY#m")
                || ((pk == "CONV#c1" || pk == "CONV#c2") && sk.starts_with("D#"))
        })
        .map(|(pk, sk, _)| (pk, sk))
        .collect();
    assert!(left_of_acc1.is_empty(), "{left_of_acc1:?}");
    // acc2's items, both kinds, are intact.
    let mut acc2_deliveries: Vec<_> = items
        .iter()
        .filter(|(pk, sk, _)| pk.starts_with("DELIVERY#x") && sk == "DELIVERY")
        .map(|(pk, _, _)| pk.as_str())
        .collect();
    acc2_deliveries.sort();
    assert_eq!(
        acc2_deliveries,
        ["DELIVERY#x0", "DELIVERY#x1", "DELIVERY#x2"]
    );
    let acc2_index = items
        .iter()
        .filter(|(pk, sk, _)| pk == "CONV#c3" && sk.starts_with("D#"))
        .count();
    assert_eq!(acc2_index, 3);
    assert_eq!(
        deliveries.deliveries_for_conversation("c3").await.unwrap(),
        acc2
    );
    // Through the port: nothing of acc1 left; the conversation itself is not a delivery record.
    for c in ["c1", "c2"] {
        assert!(deliveries
            .deliveries_for_conversation(c)
            .await
            .unwrap()
            .is_empty());
    }
    assert_eq!(deliveries.delivery("m01").await.unwrap(), None);
    assert_eq!(
        conversations.conversation("c1").await.unwrap(),
        Some(conversation("c1"))
    );

    // Nothing left to purge; an unknown account is 0 too.
    assert_eq!(
        purge_to_the_end(&deliveries, "acc1", 1000, false).await.0,
        0
    );
    assert_eq!(
        purge_to_the_end(&deliveries, "nope", 1000, false).await.0,
        0
    );
    assert_eq!(
        purge_to_the_end(&deliveries, "acc2", 1000, false).await.0,
        3
    );
    assert!(raw_items(&config, &table)
        .await
        .iter()
        .all(|(pk, sk, _)| !pk.starts_with("DELIVERY#") && !sk.starts_with("D#")));
}

/// Issue 3/7: a delivery record with an expiry carries it as the table's time to live on both
/// its items (the record and the conversation's index entry); one without has none.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn the_expiry_is_the_time_to_live_of_both_items() {
    let (store, config, table) = store().await;
    let expiring = Delivery {
        expires_at: Some(1_900_000_000),
        ..delivery("d-exp", "conv-exp", "k1", 1_000)
    };
    store.begin(&expiring).await.unwrap();
    store
        .begin(&delivery("d-kept", "conv-exp", "k2", 2_000))
        .await
        .unwrap();
    let items = aws_sdk_dynamodb::Client::new(&config)
        .scan()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let ttl_of = |needle: &str| -> Vec<Option<String>> {
        items
            .iter()
            .filter(|i| {
                i.values()
                    .any(|v| v.as_s().is_ok_and(|s| s.contains(needle)))
            })
            .map(|i| i.get("expiresAt").and_then(|v| v.as_n().ok()).cloned())
            .collect()
    };
    let at = Some("1900000000".to_owned());
    assert_eq!(ttl_of("d-exp"), [at.clone(), at]);
    assert_eq!(ttl_of("d-kept"), [None, None]);
    // Updates keep it.
    let mut updated = store.delivery("d-exp").await.unwrap().unwrap();
    updated.version += 1;
    assert!(store.update(&updated).await.unwrap());
    assert_eq!(
        store.delivery("d-exp").await.unwrap().unwrap().expires_at,
        Some(1_900_000_000)
    );
}
