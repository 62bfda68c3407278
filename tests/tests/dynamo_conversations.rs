//! The DynamoDB `ConversationStore` over the wire, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`). Each test has its own table.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_domain::conversation::{
    CommitOutcome, Consent, Conversation, ConversationFilter, ConversationState, ConversationWrite,
    Customer, EventCommit, SourceType, TranscriptEntry,
};
use omniline_domain::delivery::Delivery;
use omniline_ports::{ConversationStore, DeliveryStore, PortError, PurgeCounts};
use omniline_tests::{endpoint, pk_sk_table, sdk_config};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const ACCOUNT: &str = "acc1";

/// A store on a fresh table, with the table name and config for raw access.
async fn store() -> (DynamoConversationStore, SdkConfig, String) {
    let config = sdk_config(&endpoint()).await;
    let name = pk_sk_table(&config, "conversations").await;
    (DynamoConversationStore::new(&config, &name), config, name)
}

/// The tests' clock (2026-11-25T03:00:00Z), never the wall clock's: the store compares expiries
/// with the caller's clock only.
const NOW: i64 = 1_795_575_600;

fn conversation(id: &str, source: &str, state: ConversationState, version: u64) -> Conversation {
    Conversation {
        id: id.into(),
        account_id: ACCOUNT.into(),
        source_type: SourceType::User,
        source_id: source.into(),
        state,
        workstream_id: None,
        queue_id: Some("q1".into()),
        priority: 1,
        skills: vec!["ja".into()],
        bot_id: None,
        agent_id: None,
        rule_id: None,
        members: vec![],
        opened_at: 1_700_000_000_000,
        last_activity_at: 1_700_000_000_000 + version as i64,
        closed_at: (state == ConversationState::Closed).then_some(1_700_000_100_000),
        close_reason: None,
        survey: None,
        version,
    }
}

fn entry(conversation_id: &str, event_id: &str, timestamp: i64) -> TranscriptEntry {
    TranscriptEntry {
        conversation_id: conversation_id.into(),
        event_id: event_id.into(),
        timestamp,
        event_type: "message".into(),
        sender_user_id: Some("Uuser".into()),
        message_id: Some(format!("m-{event_id}")),
        event: json!({"type": "message", "message": {"type": "text", "text": format!("こんにちは {event_id} 😀")}}),
        retracted: false,
    }
}

fn customer(user_id: &str, name: &str, updated_at: i64) -> Customer {
    Customer {
        account_id: ACCOUNT.into(),
        user_id: user_id.into(),
        display_name: name.into(),
        picture_url: None,
        language: Some("ja".into()),
        profile_found: true,
        consent: Consent::Followed,
        linked_contact_id: None,
        created_at: 1_700_000_000_000,
        updated_at,
    }
}

fn commit(event_id: &str) -> EventCommit {
    EventCommit {
        account_id: ACCOUNT.into(),
        event_id: event_id.into(),
        now_secs: NOW,
        dedupe_expires_at: NOW + 3600,
        retain_until: None,
        conversation: None,
        transcript: None,
        retract_message_id: None,
        customer: None,
    }
}

/// A first message: creates conversation `id` for `source`, with one transcript entry.
fn create(event_id: &str, id: &str, source: &str, timestamp: i64) -> EventCommit {
    EventCommit {
        conversation: Some(ConversationWrite::Create(conversation(
            id,
            source,
            ConversationState::Waiting,
            1,
        ))),
        transcript: Some(entry(id, event_id, timestamp)),
        ..commit(event_id)
    }
}

fn update(event_id: &str, c: Conversation, timestamp: i64) -> EventCommit {
    EventCommit {
        transcript: Some(entry(&c.id, event_id, timestamp)),
        conversation: Some(ConversationWrite::Update(c)),
        ..commit(event_id)
    }
}

fn event_ids(entries: &[TranscriptEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.event_id.as_str()).collect()
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn commit_then_redelivery_is_a_duplicate_and_changes_nothing() {
    let (store, _, _) = store().await;
    assert!(!store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    let first = EventCommit {
        customer: Some(customer("Uuser", "Taro", 1)),
        ..create("e1", "c1", "Uuser", 1000)
    };
    assert_eq!(
        store.commit(&first).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());

    let stored = store.conversation("c1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        conversation("c1", "Uuser", ConversationState::Waiting, 1)
    );
    assert_eq!(
        store.open_conversation(ACCOUNT, "Uuser").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store.transcript("c1").await.unwrap(),
        vec![entry("c1", "e1", 1000)]
    );

    // Redelivered as is, and redelivered after the router decided differently (an update):
    // both duplicates, nothing written.
    assert_eq!(
        store.commit(&first).await.unwrap(),
        CommitOutcome::Duplicate
    );
    let mut changed = stored.clone();
    changed.version = 2;
    changed.state = ConversationState::Active;
    let again = EventCommit {
        customer: Some(customer("Uuser", "Jiro", 2)),
        ..update("e1", changed, 2000)
    };
    assert_eq!(
        store.commit(&again).await.unwrap(),
        CommitOutcome::Duplicate
    );
    assert_eq!(store.transcript("c1").await.unwrap().len(), 1);
    assert_eq!(store.conversation("c1").await.unwrap().unwrap().version, 1);
    assert_eq!(
        store
            .customer(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .display_name,
        "Taro"
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn the_same_event_id_under_another_account_is_not_a_duplicate() {
    let (store, _, _) = store().await;
    assert_eq!(
        store.commit(&commit("e1")).await.unwrap(),
        CommitOutcome::Committed
    );
    let other = EventCommit {
        account_id: "acc2".into(),
        ..commit("e1")
    };
    assert!(!store.event_recorded("acc2", "e1", NOW).await.unwrap());
    assert_eq!(
        store.commit(&other).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded("acc2", "e1", NOW).await.unwrap());
    assert_eq!(
        store.commit(&other).await.unwrap(),
        CommitOutcome::Duplicate
    );
}

/// The guard of the one-clock rule: far in the past, today and far in the future, the window
/// (the GetItem check and the commit's `expiresAt <= :now` condition) is the caller's.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn the_dedupe_window_follows_the_callers_clock_years_away_from_today() {
    let (store, _, _) = store().await;
    for now in [
        omniline_testkit::FAR_PAST_SECS,
        NOW,
        omniline_testkit::FAR_FUTURE_SECS,
    ] {
        omniline_testkit::dedupe_window_follows_the_callers_clock(&store, ACCOUNT, now).await;
    }
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn an_expired_dedupe_record_lets_the_event_through() {
    let (store, _, _) = store().await;
    let expired = EventCommit {
        dedupe_expires_at: NOW - 10,
        retain_until: None,
        ..commit("e1")
    };
    assert_eq!(
        store.commit(&expired).await.unwrap(),
        CommitOutcome::Committed
    );
    // Still in the table (TTL deletion is lazy) but forgotten.
    assert!(!store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    let fresh = create("e1", "c1", "Uuser", 1000);
    assert_eq!(
        store.commit(&fresh).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    assert_eq!(
        store.commit(&fresh).await.unwrap(),
        CommitOutcome::Duplicate
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn create_conflicts_with_an_open_conversation_and_writes_nothing() {
    let (store, _, _) = store().await;
    assert_eq!(
        store
            .commit(&create("e1", "c1", "Uuser", 1000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    let second = EventCommit {
        customer: Some(customer("Uuser", "Taro", 1)),
        ..create("e2", "c2", "Uuser", 2000)
    };
    assert_eq!(
        store.commit(&second).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert!(!store.event_recorded(ACCOUNT, "e2", NOW).await.unwrap());
    assert_eq!(store.conversation("c2").await.unwrap(), None);
    assert!(store.transcript("c2").await.unwrap().is_empty());
    assert_eq!(store.customer(ACCOUNT, "Uuser").await.unwrap(), None);
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c1"
    );
    // Another source is free.
    assert_eq!(
        store
            .commit(&create("e2", "c2", "Uother", 2000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn update_with_a_stale_version_conflicts() {
    let (store, _, _) = store().await;
    store
        .commit(&create("e1", "c1", "Uuser", 1000))
        .await
        .unwrap();
    let v2 = conversation("c1", "Uuser", ConversationState::Active, 2);
    assert_eq!(
        store.commit(&update("e2", v2.clone(), 2000)).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.open_conversation(ACCOUNT, "Uuser").await.unwrap(),
        Some(v2.clone())
    );

    // Decided on version 1, written after version 2.
    let stale = conversation("c1", "Uuser", ConversationState::Waiting, 2);
    assert_eq!(
        store.commit(&update("e3", stale, 3000)).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert!(!store.event_recorded(ACCOUNT, "e3", NOW).await.unwrap());
    assert_eq!(store.conversation("c1").await.unwrap(), Some(v2));
    assert_eq!(
        event_ids(&store.transcript("c1").await.unwrap()),
        ["e1", "e2"]
    );

    // An update of a conversation that does not exist conflicts too.
    let missing = conversation("nope", "Unone", ConversationState::Active, 2);
    assert_eq!(
        store.commit(&update("e4", missing, 4000)).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(
        store.open_conversation(ACCOUNT, "Unone").await.unwrap(),
        None
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn close_frees_the_source_for_a_new_conversation() {
    let (store, _, _) = store().await;
    store
        .commit(&create("e1", "c1", "Uuser", 1000))
        .await
        .unwrap();
    let closed = conversation("c1", "Uuser", ConversationState::Closed, 2);
    assert_eq!(
        store
            .commit(&update("e2", closed.clone(), 2000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store.open_conversation(ACCOUNT, "Uuser").await.unwrap(),
        None
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(closed));

    assert_eq!(
        store
            .commit(&create("e3", "c2", "Uuser", 3000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c2"
    );

    // A later write to the closed conversation leaves the new one's pointer alone.
    let closed_again = conversation("c1", "Uuser", ConversationState::Closed, 3);
    assert_eq!(
        store
            .commit(&update("e4", closed_again, 4000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c2"
    );
    assert_eq!(store.conversation("c1").await.unwrap().unwrap().version, 3);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn transcript_is_ordered_by_timestamp_then_event_id() {
    let (store, _, _) = store().await;
    store
        .commit(&create("e-late", "c1", "Uuser", 1_700_000_300_000))
        .await
        .unwrap();
    let out_of_order = [
        ("e-early", 5),
        ("e-b", 1_700_000_200_000),
        ("e-a", 1_700_000_200_000),
        ("e-mid", 99_999_999),
    ];
    for (event_id, timestamp) in out_of_order {
        let c = EventCommit {
            transcript: Some(entry("c1", event_id, timestamp)),
            ..commit(event_id)
        };
        assert_eq!(store.commit(&c).await.unwrap(), CommitOutcome::Committed);
    }
    // Another conversation's entries stay apart.
    store
        .commit(&create("x1", "c2", "Uother", 1))
        .await
        .unwrap();

    let transcript = store.transcript("c1").await.unwrap();
    assert_eq!(
        event_ids(&transcript),
        ["e-early", "e-mid", "e-a", "e-b", "e-late"]
    );
    assert_eq!(transcript[0], entry("c1", "e-early", 5));
    assert_eq!(event_ids(&store.transcript("c2").await.unwrap()), ["x1"]);
    assert!(store.transcript("nope").await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn unsend_retracts_the_message_and_an_unknown_message_is_a_no_op() {
    let (store, _, _) = store().await;
    store
        .commit(&create("e1", "c1", "Uuser", 1000))
        .await
        .unwrap();
    store
        .commit(&EventCommit {
            transcript: Some(entry("c1", "e2", 2000)),
            ..commit("e2")
        })
        .await
        .unwrap();

    let unsend_entry = TranscriptEntry {
        event_type: "unsend".into(),
        message_id: None,
        event: json!({"type": "unsend", "unsend": {"messageId": "m-e1"}}),
        ..entry("c1", "e3", 3000)
    };
    let unsend = EventCommit {
        transcript: Some(unsend_entry.clone()),
        retract_message_id: Some("m-e1".into()),
        ..commit("e3")
    };
    assert_eq!(
        store.commit(&unsend).await.unwrap(),
        CommitOutcome::Committed
    );
    let transcript = store.transcript("c1").await.unwrap();
    assert_eq!(event_ids(&transcript), ["e1", "e2", "e3"]);
    assert!(transcript[0].retracted);
    assert_eq!(transcript[0].event, serde_json::Value::Null);
    assert_eq!(transcript[0].message_id.as_deref(), Some("m-e1"));
    assert_eq!(transcript[1], entry("c1", "e2", 2000));
    assert_eq!(transcript[2], unsend_entry);

    // Unknown message (never seen, or from before the store): only the event is recorded.
    let unknown = EventCommit {
        retract_message_id: Some("m-unknown".into()),
        ..commit("e4")
    };
    assert_eq!(
        store.commit(&unknown).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded(ACCOUNT, "e4", NOW).await.unwrap());
    let after = store.transcript("c1").await.unwrap();
    assert_eq!(after, transcript);

    // A message id is per account: the same id under another account retracts nothing here.
    let elsewhere = EventCommit {
        account_id: "acc2".into(),
        retract_message_id: Some("m-e2".into()),
        ..commit("e5")
    };
    assert_eq!(
        store.commit(&elsewhere).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(!store.transcript("c1").await.unwrap()[1].retracted);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn customer_is_upserted() {
    let (store, _, _) = store().await;
    assert_eq!(store.customer(ACCOUNT, "Uuser").await.unwrap(), None);
    let first = customer("Uuser", "Taro", 1);
    store
        .commit(&EventCommit {
            customer: Some(first.clone()),
            ..commit("e1")
        })
        .await
        .unwrap();
    assert_eq!(
        store.customer(ACCOUNT, "Uuser").await.unwrap(),
        Some(first.clone())
    );
    let second = Customer {
        consent: Consent::Unfollowed,
        picture_url: Some("https://example.com/p.png".into()),
        ..customer("Uuser", "太郎", 2)
    };
    store
        .commit(&EventCommit {
            customer: Some(second.clone()),
            ..commit("e2")
        })
        .await
        .unwrap();
    assert_eq!(
        store.customer(ACCOUNT, "Uuser").await.unwrap(),
        Some(second)
    );
    assert_eq!(store.customer("acc2", "Uuser").await.unwrap(), None);
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn concurrent_commits_of_one_event_commit_once() {
    let (store, _, _) = store().await;
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let c = create("e-same", &format!("c{i}"), &format!("U{i}"), 1000);
                (i, store.commit(&c).await.unwrap())
            })
        })
        .collect();
    let mut committed = Vec::new();
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        match outcome {
            CommitOutcome::Committed => committed.push(i),
            CommitOutcome::Duplicate | CommitOutcome::Conflict => {}
        }
    }
    assert_eq!(committed.len(), 1, "exactly one commit wins: {committed:?}");
    let mut entries = 0;
    for i in 0..8 {
        let id = format!("c{i}");
        let transcript = store.transcript(&id).await.unwrap();
        let exists = store.conversation(&id).await.unwrap().is_some();
        let open = store
            .open_conversation(ACCOUNT, &format!("U{i}"))
            .await
            .unwrap()
            .is_some();
        assert_eq!(exists, committed == [i], "conversation c{i}");
        assert_eq!(open, committed == [i], "open pointer of U{i}");
        entries += transcript.len();
    }
    assert_eq!(entries, 1, "exactly one transcript entry");
    assert!(store.event_recorded(ACCOUNT, "e-same", NOW).await.unwrap());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_stored_doc_that_does_not_parse_is_an_error() {
    let (store, config, name) = store().await;
    let ddb = aws_sdk_dynamodb::Client::new(&config);
    for (pk, sk) in [
        ("CONV#bad", "META"),
        ("CUSTOMER#acc1#Ubad", "PROFILE"),
        ("CONV#bad", "T#00000000000000000001#e1"),
    ] {
        ddb.put_item()
            .table_name(&name)
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S(sk.into()))
            .item("doc", AttributeValue::S("{not json".into()))
            .send()
            .await
            .unwrap();
    }
    assert!(matches!(
        store.conversation("bad").await,
        Err(PortError::Unavailable(_))
    ));
    assert!(matches!(
        store.customer(ACCOUNT, "Ubad").await,
        Err(PortError::Unavailable(_))
    ));
    assert!(matches!(
        store.transcript("bad").await,
        Err(PortError::Unavailable(_))
    ));
}

type Item = HashMap<String, AttributeValue>;

/// The raw item, read consistently.
async fn raw(config: &SdkConfig, table: &str, pk: &str, sk: &str) -> Option<Item> {
    aws_sdk_dynamodb::Client::new(config)
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// The `expiresAt` of a raw item: `None` if the item is missing, `Some(None)` without TTL.
async fn ttl(config: &SdkConfig, table: &str, pk: &str, sk: &str) -> Option<Option<i64>> {
    raw(config, table, pk, sk).await.map(|item| {
        item.get("expiresAt")
            .map(|v| v.as_n().unwrap().parse().unwrap())
    })
}

/// Every item of the table.
async fn scan_all(config: &SdkConfig, table: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut pages = aws_sdk_dynamodb::Client::new(config)
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        items.extend(page.unwrap().items().iter().cloned());
    }
    items
}

fn text(item: &Item, name: &str) -> String {
    item[name].as_s().unwrap().clone()
}

/// The account an item of these tests belongs to: `X#{account}#…`, or `CONV#{account}-c…`,
/// `DELIVERY#{account}-d…` (the tests name conversations and deliveries after their account).
fn owner(item: &Item) -> String {
    let pk = text(item, "pk");
    let second = pk.split('#').nth(1).unwrap().to_owned();
    if pk.starts_with("CONV#") || pk.starts_with("DELIVERY#") {
        second.split('-').next().unwrap().to_owned()
    } else {
        second
    }
}

fn sorted(mut items: Vec<Item>) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = items
        .drain(..)
        .map(|item| {
            let mut pairs: Vec<_> = item
                .into_iter()
                .map(|(k, v)| (k, format!("{v:?}")))
                .collect();
            pairs.sort();
            pairs
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn retain_until_is_written_as_the_ttl_attribute() {
    let (store, config, table) = store().await;
    let retain = NOW + 90 * 86_400;
    let first = EventCommit {
        retain_until: Some(retain),
        customer: Some(customer("Uuser", "Taro", 1)),
        ..create("e1", "c1", "Uuser", 1000)
    };
    let dedupe = first.dedupe_expires_at;
    assert_eq!(
        store.commit(&first).await.unwrap(),
        CommitOutcome::Committed
    );
    let entry_sk = "T#00000000000000001000#e1";
    for (pk, sk) in [
        ("CONV#c1", "META"),
        ("CONV#c1", entry_sk),
        ("OPEN#acc1#Uuser", "OPEN"),
        ("LINEMSG#acc1#m-e1", "LINEMSG"),
        ("CUSTOMER#acc1#Uuser", "PROFILE"),
    ] {
        assert_eq!(
            ttl(&config, &table, pk, sk).await,
            Some(Some(retain)),
            "{pk} {sk}"
        );
    }
    // The deduplication record keeps its own expiry.
    assert_eq!(
        ttl(&config, &table, "EVENT#acc1#e1", "EVENT").await,
        Some(Some(dedupe))
    );

    // A write without retention clears it on what it writes; a retraction keeps the entry's.
    let later = EventCommit {
        customer: Some(customer("Uuser", "Taro", 2)),
        retract_message_id: Some("m-e1".into()),
        ..update(
            "e2",
            conversation("c1", "Uuser", ConversationState::Active, 2),
            2000,
        )
    };
    assert_eq!(
        store.commit(&later).await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(ttl(&config, &table, "CONV#c1", "META").await, Some(None));
    assert_eq!(
        ttl(&config, &table, "OPEN#acc1#Uuser", "OPEN").await,
        Some(None)
    );
    assert_eq!(
        ttl(&config, &table, "CUSTOMER#acc1#Uuser", "PROFILE").await,
        Some(None)
    );
    assert_eq!(
        ttl(&config, &table, "CONV#c1", "T#00000000000000002000#e2").await,
        Some(None)
    );
    assert!(store.transcript("c1").await.unwrap()[0].retracted);
    assert_eq!(
        ttl(&config, &table, "CONV#c1", entry_sk).await,
        Some(Some(retain))
    );

    // DynamoDB's TTL sweeps: the store has nothing to do.
    assert_eq!(store.sweep_expired(i64::MAX).await.unwrap(), 0);
    assert!(store.conversation("c1").await.unwrap().is_some());
}

/// TTL deletes items one by one, lazily: a conversation gone while its expired open pointer is
/// still there must not block the source's next conversation.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn an_expired_open_pointer_does_not_block_a_new_conversation() {
    let (store, config, table) = store().await;
    let expired = EventCommit {
        retain_until: Some(NOW - 10),
        ..create("e1", "c1", "Uuser", 1000)
    };
    assert_eq!(
        store.commit(&expired).await.unwrap(),
        CommitOutcome::Committed
    );
    // TTL removed the conversation first.
    aws_sdk_dynamodb::Client::new(&config)
        .delete_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("CONV#c1".into()))
        .key("sk", AttributeValue::S("META".into()))
        .send()
        .await
        .unwrap();
    assert!(raw(&config, &table, "OPEN#acc1#Uuser", "OPEN")
        .await
        .is_some());
    assert_eq!(
        store.open_conversation(ACCOUNT, "Uuser").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .commit(&create("e2", "c2", "Uuser", 2000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c2"
    );
    // A pointer that has not expired (or has no retention) still does.
    assert_eq!(
        store
            .commit(&create("e3", "c3", "Uuser", 3000))
            .await
            .unwrap(),
        CommitOutcome::Conflict
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn conversations_of_source_lists_every_state_oldest_first() {
    let (store, _, _) = store().await;
    let opened = Conversation {
        opened_at: 1_600_000_000_000,
        ..conversation("c9", "Uuser", ConversationState::Waiting, 1)
    };
    let older = Conversation {
        opened_at: 1_600_000_000_000,
        ..conversation("c9", "Uuser", ConversationState::Closed, 2)
    };
    let newer = conversation("c1", "Uuser", ConversationState::Waiting, 1);
    let elsewhere = Conversation {
        account_id: "acc2".into(),
        ..conversation("c3", "Uuser", ConversationState::Waiting, 1)
    };
    // The older one is closed before the newer one opens.
    for (event_id, write) in [
        ("e1", ConversationWrite::Create(opened)),
        ("e2", ConversationWrite::Update(older.clone())),
        ("e3", ConversationWrite::Create(newer.clone())),
        (
            "e4",
            ConversationWrite::Create(conversation("c2", "Uother", ConversationState::Waiting, 1)),
        ),
        ("e5", ConversationWrite::Create(elsewhere.clone())),
    ] {
        let write = EventCommit {
            account_id: write.conversation().account_id.clone(),
            conversation: Some(write),
            ..commit(event_id)
        };
        assert_eq!(
            store.commit(&write).await.unwrap(),
            CommitOutcome::Committed
        );
    }
    assert_eq!(
        store
            .conversations_of_source(ACCOUNT, "Uuser")
            .await
            .unwrap(),
        vec![older, newer]
    );
    assert_eq!(
        store
            .conversations_of_source("acc2", "Uuser")
            .await
            .unwrap(),
        vec![elsewhere]
    );
    assert!(store
        .conversations_of_source(ACCOUNT, "Unone")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn delete_conversation_erases_its_items_pointer_and_index_only() {
    let (store, config, table) = store().await;
    let deliveries = DynamoDeliveryStore::new(&config, &table);
    store
        .commit(&create("e1", "c1", "Uuser", 1000))
        .await
        .unwrap();
    store
        .commit(&EventCommit {
            transcript: Some(entry("c1", "e2", 2000)),
            ..commit("e2")
        })
        .await
        .unwrap();
    store
        .commit(&create("e3", "c2", "Uother", 3000))
        .await
        .unwrap();
    // The delivery store's items in the same partition are its own business.
    let d = deliveries
        .begin(&Delivery::new("d1", ACCOUNT, "c1", "k", 1_700_000_000_000))
        .await
        .unwrap();

    assert!(store.delete_conversation("c1").await.unwrap());
    assert_eq!(store.conversation("c1").await.unwrap(), None);
    assert!(store.transcript("c1").await.unwrap().is_empty());
    assert_eq!(
        store.open_conversation(ACCOUNT, "Uuser").await.unwrap(),
        None
    );
    for (pk, sk) in [
        ("OPEN#acc1#Uuser", "OPEN"),
        ("LINEMSG#acc1#m-e1", "LINEMSG"),
        ("LINEMSG#acc1#m-e2", "LINEMSG"),
    ] {
        assert!(raw(&config, &table, pk, sk).await.is_none(), "{pk}");
    }
    let left: Vec<String> = scan_all(&config, &table)
        .await
        .iter()
        .filter(|item| text(item, "pk") == "CONV#c1")
        .map(|item| text(item, "sk"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("D#"), "{left:?}");
    assert_eq!(
        deliveries.deliveries_for_conversation("c1").await.unwrap(),
        vec![d]
    );

    // A later unsend of an erased message finds nothing and writes nothing back.
    let unsend = EventCommit {
        retract_message_id: Some("m-e1".into()),
        ..commit("e4")
    };
    assert_eq!(
        store.commit(&unsend).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.transcript("c1").await.unwrap().is_empty());

    // The other conversation is whole; the source takes a new conversation.
    assert_eq!(event_ids(&store.transcript("c2").await.unwrap()), ["e3"]);
    assert!(raw(&config, &table, "LINEMSG#acc1#m-e3", "LINEMSG")
        .await
        .is_some());
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uother")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c2"
    );
    assert_eq!(
        store
            .commit(&create("e5", "c5", "Uuser", 5000))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );

    assert!(!store.delete_conversation("c1").await.unwrap());
    assert!(!store.delete_conversation("nope").await.unwrap());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn delete_conversation_leaves_a_newer_open_pointer_alone() {
    let (store, _, _) = store().await;
    store
        .commit(&create("e1", "c1", "Uuser", 1000))
        .await
        .unwrap();
    let closed = conversation("c1", "Uuser", ConversationState::Closed, 2);
    store.commit(&update("e2", closed, 2000)).await.unwrap();
    store
        .commit(&create("e3", "c2", "Uuser", 3000))
        .await
        .unwrap();
    assert!(store.delete_conversation("c1").await.unwrap());
    assert_eq!(
        store
            .open_conversation(ACCOUNT, "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "c2"
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn delete_customer_erases_one_profile() {
    let (store, _, _) = store().await;
    let other = Customer {
        account_id: "acc2".into(),
        ..customer("Uuser", "Jiro", 1)
    };
    for (event_id, c) in [
        ("e1", customer("Uuser", "Taro", 1)),
        ("e2", customer("Uother", "Hanako", 1)),
        ("e3", other.clone()),
    ] {
        store
            .commit(&EventCommit {
                account_id: c.account_id.clone(),
                customer: Some(c),
                ..commit(event_id)
            })
            .await
            .unwrap();
    }
    assert!(store.delete_customer(ACCOUNT, "Uuser").await.unwrap());
    assert_eq!(store.customer(ACCOUNT, "Uuser").await.unwrap(), None);
    assert!(!store.delete_customer(ACCOUNT, "Uuser").await.unwrap());
    assert!(store.customer(ACCOUNT, "Uother").await.unwrap().is_some());
    assert_eq!(store.customer("acc2", "Uuser").await.unwrap(), Some(other));
}

/// Writes, for `account`: conversations `{account}-c1` (closed) and `{account}-c2` (open) of
/// `Uuser` with two entries each, one more conversation per extra user (so that the purge needs
/// several batches), a customer per user, and a delivery of `{account}-c2`.
async fn populate(
    store: &DynamoConversationStore,
    deliveries: &DynamoDeliveryStore,
    account: &str,
    extra_users: usize,
) {
    let of = |c: Conversation| Conversation {
        account_id: account.into(),
        ..c
    };
    let in_account = |c: EventCommit| EventCommit {
        account_id: account.into(),
        retain_until: Some(NOW + 86_400),
        ..c
    };
    let c1 = format!("{account}-c1");
    let c2 = format!("{account}-c2");
    let writes = [
        EventCommit {
            conversation: Some(ConversationWrite::Create(of(conversation(
                &c1,
                "Uuser",
                ConversationState::Waiting,
                1,
            )))),
            transcript: Some(entry(&c1, "e1", 1000)),
            customer: Some(Customer {
                account_id: account.into(),
                ..customer("Uuser", "Taro", 1)
            }),
            ..commit("e1")
        },
        EventCommit {
            conversation: Some(ConversationWrite::Update(of(conversation(
                &c1,
                "Uuser",
                ConversationState::Closed,
                2,
            )))),
            transcript: Some(entry(&c1, "e2", 2000)),
            ..commit("e2")
        },
        EventCommit {
            conversation: Some(ConversationWrite::Create(of(conversation(
                &c2,
                "Uuser",
                ConversationState::Waiting,
                1,
            )))),
            transcript: Some(entry(&c2, "e3", 3000)),
            ..commit("e3")
        },
        EventCommit {
            transcript: Some(entry(&c2, "e4", 4000)),
            ..commit("e4")
        },
    ];
    for write in writes {
        assert_eq!(
            store.commit(&in_account(write)).await.unwrap(),
            CommitOutcome::Committed
        );
    }
    for i in 0..extra_users {
        let user = format!("Ux{i}");
        let id = format!("{account}-cx{i}");
        let write = EventCommit {
            conversation: Some(ConversationWrite::Create(of(conversation(
                &id,
                &user,
                ConversationState::Waiting,
                1,
            )))),
            transcript: Some(entry(&id, &format!("ex{i}"), 5000)),
            customer: Some(Customer {
                account_id: account.into(),
                ..customer(&user, "Extra", 1)
            }),
            ..commit(&format!("ex{i}"))
        };
        assert_eq!(
            store.commit(&in_account(write)).await.unwrap(),
            CommitOutcome::Committed
        );
    }
    deliveries
        .begin(&Delivery::new(
            &format!("{account}-d1"),
            account,
            &c2,
            "k",
            1_700_000_000_000,
        ))
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn purge_removes_one_account_and_nothing_of_another() {
    let (store, config, table) = store().await;
    let deliveries = DynamoDeliveryStore::new(&config, &table);
    // `acc10` shares the text `acc1`: key prefixes must not mix them up.
    populate(&store, &deliveries, "acc1", 6).await;
    populate(&store, &deliveries, "acc10", 1).await;
    populate(&store, &deliveries, "acc2", 1).await;
    let before = scan_all(&config, &table).await;
    let of = |items: &[Item], account: &str| {
        sorted(
            items
                .iter()
                .filter(|item| owner(item) == account)
                .cloned()
                .collect(),
        )
    };
    let acc1_items = of(&before, "acc1").len();
    // 8 conversations, 10 transcript entries with their index, 10 events, 7 customers …
    assert!(acc1_items > 50, "{acc1_items}");

    // As an erasure runs: the deliveries of each conversation first (the delivery store's),
    // then the account.
    let mut ids: Vec<String> = Vec::new();
    for source in ["Uuser", "Ux0", "Ux1", "Ux2", "Ux3", "Ux4", "Ux5"] {
        for c in store.conversations_of_source("acc1", source).await.unwrap() {
            ids.push(c.id);
        }
    }
    assert_eq!(ids.len(), 8);
    for id in &ids {
        deliveries.delete_for_conversation(id).await.unwrap();
    }
    assert_eq!(
        store.purge_account("acc1").await.unwrap(),
        PurgeCounts {
            conversations: 8,
            customers: 7,
        }
    );

    let after = scan_all(&config, &table).await;
    assert_eq!(of(&after, "acc1"), Vec::<Vec<(String, String)>>::new());
    for other in ["acc10", "acc2"] {
        assert_eq!(of(&after, other), of(&before, other), "{other}");
        assert!(!of(&after, other).is_empty());
    }
    assert_eq!(after.len(), before.len() - acc1_items);

    // Through the store: acc1 is empty, acc10 whole (its events still deduplicate).
    assert!(!store.event_recorded("acc1", "e1", NOW).await.unwrap());
    assert_eq!(store.conversation("acc1-c2").await.unwrap(), None);
    assert_eq!(store.customer("acc1", "Uuser").await.unwrap(), None);
    assert_eq!(
        store.open_conversation("acc1", "Uuser").await.unwrap(),
        None
    );
    assert!(store.event_recorded("acc10", "e1", NOW).await.unwrap());
    assert_eq!(
        store
            .open_conversation("acc10", "Uuser")
            .await
            .unwrap()
            .unwrap()
            .id,
        "acc10-c2"
    );
    assert_eq!(
        event_ids(&store.transcript("acc10-c1").await.unwrap()),
        ["e1", "e2"]
    );

    // Nothing left: a second purge finds nothing.
    assert_eq!(
        store.purge_account("acc1").await.unwrap(),
        PurgeCounts::default()
    );
    assert!(matches!(
        store.purge_account("acc1#x").await,
        Err(PortError::Unavailable(_))
    ));
}

/// A conversation in `queue` (held by `agent`) last active at `at`, on a source of its own.
fn listed(
    id: &str,
    state: ConversationState,
    queue: Option<&str>,
    agent: Option<&str>,
    at: i64,
) -> Conversation {
    Conversation {
        queue_id: queue.map(Into::into),
        agent_id: agent.map(Into::into),
        last_activity_at: at,
        ..conversation(id, &format!("U-{id}"), state, 1)
    }
}

fn filter(
    state: Option<ConversationState>,
    queues: &[&str],
    agent: Option<&str>,
    limit: usize,
) -> ConversationFilter {
    ConversationFilter {
        state,
        queue_ids: queues.iter().map(|q| (*q).to_owned()).collect(),
        agent_id: agent.map(Into::into),
        limit,
    }
}

fn conversation_ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations.iter().map(|c| c.id.as_str()).collect()
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn list_conversations_filters_orders_by_recent_activity_and_limits() {
    use ConversationState::{Active, Closed, Waiting};
    let (store, _, _) = store().await;
    let all = vec![
        listed("c1", Waiting, Some("q1"), None, 100),
        listed("c2", Active, Some("q2"), Some("a1"), 300),
        listed("c3", Active, Some("q1"), Some("a2"), 200),
        listed("c4", Active, Some("q3"), Some("a1"), 250),
        listed("c5", Closed, Some("q1"), Some("a1"), 400),
        listed("c6", Waiting, None, None, 500),
        listed("c7", Waiting, Some("q1"), None, 200),
        Conversation {
            account_id: "acc2".into(),
            ..listed("c8", Waiting, Some("q2"), None, 150)
        },
        listed("c9", Active, Some(""), Some(""), 50),
    ];
    for (i, c) in all.iter().enumerate() {
        let write = EventCommit {
            account_id: c.account_id.clone(),
            conversation: Some(ConversationWrite::Create(c.clone())),
            // Transcript items share the partition: they are not conversations.
            transcript: Some(entry(&c.id, &format!("e{i}"), 10)),
            ..commit(&format!("e{i}"))
        };
        assert_eq!(
            store.commit(&write).await.unwrap(),
            CommitOutcome::Committed
        );
    }
    // A customer and a delivery in the table are not conversations either.
    let customer_only = EventCommit {
        customer: Some(customer("Uc", "Hanako", 1)),
        ..commit("e-customer")
    };
    assert_eq!(
        store.commit(&customer_only).await.unwrap(),
        CommitOutcome::Committed
    );

    let list = |f: ConversationFilter| {
        let store = store.clone();
        async move { store.list_conversations(&f).await.unwrap() }
    };
    let got = list(filter(None, &["q1"], None, 10)).await;
    assert_eq!(conversation_ids(&got), ["c5", "c3", "c7", "c1"]);
    assert_eq!(got[1], all[2]);
    assert_eq!(
        conversation_ids(&list(filter(None, &["q1"], None, 2)).await),
        ["c5", "c3"]
    );
    assert!(list(filter(None, &["q1"], None, 0)).await.is_empty());
    assert_eq!(
        conversation_ids(&list(filter(Some(Active), &["q1", "q2"], Some("a1"), 10)).await),
        ["c2", "c4", "c3"]
    );
    assert_eq!(
        conversation_ids(&list(filter(Some(Waiting), &["q1", "q2"], None, 10)).await),
        ["c7", "c8", "c1"]
    );
    assert_eq!(
        conversation_ids(&list(filter(None, &[], Some("a1"), 10)).await),
        ["c5", "c2", "c4"]
    );
    assert_eq!(
        conversation_ids(&list(filter(Some(Closed), &[], Some("a1"), 10)).await),
        ["c5"]
    );
    assert!(list(filter(None, &[], None, 10)).await.is_empty());
    assert!(list(filter(None, &["nope"], Some("nobody"), 10))
        .await
        .is_empty());
    assert_eq!(
        conversation_ids(&list(filter(None, &[""], None, 10)).await),
        ["c9"]
    );

    // Every combination agrees with the reference semantics.
    let queue_sets: [&[&str]; 4] = [&[], &["q1"], &["q2", "q3"], &["q1", "q2", "q3"]];
    for state in [None, Some(Waiting), Some(Active), Some(Closed)] {
        for queues in queue_sets {
            for agent in [None, Some("a1"), Some("a2")] {
                for limit in [1, 3, 100] {
                    let f = filter(state, queues, agent, limit);
                    let mut want: Vec<Conversation> =
                        all.iter().filter(|c| f.matches(c)).cloned().collect();
                    want.sort_by(|a, b| {
                        b.last_activity_at
                            .cmp(&a.last_activity_at)
                            .then_with(|| a.id.cmp(&b.id))
                    });
                    want.truncate(limit);
                    assert_eq!(list(f.clone()).await, want, "{f:?}");
                }
            }
        }
    }

    // An update moves the conversation: c1 is a1's now, and the most recent.
    let taken = Conversation {
        version: 2,
        ..listed("c1", Active, Some("q1"), Some("a1"), 600)
    };
    assert_eq!(
        store
            .commit(&update("e-take", taken.clone(), 20))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    let got = list(filter(Some(Active), &[], Some("a1"), 10)).await;
    assert_eq!(conversation_ids(&got), ["c1", "c2", "c4"]);
    assert_eq!(got[0], taken);
    assert_eq!(
        conversation_ids(&list(filter(Some(Waiting), &["q1"], None, 10)).await),
        ["c7"]
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn list_conversations_reads_every_scan_page() {
    let (store, _, _) = store().await;
    // Big conversations (about 40 kB of members each): the Scan takes several 1 MB pages.
    let members: Vec<String> = (0..1_000).map(|i| format!("U{i:036}")).collect();
    let mut ids = Vec::new();
    for i in 0..60 {
        let c = Conversation {
            members: members.clone(),
            ..listed(
                &format!("c{i:02}"),
                ConversationState::Waiting,
                Some("q1"),
                None,
                i,
            )
        };
        let write = EventCommit {
            conversation: Some(ConversationWrite::Create(c)),
            ..commit(&format!("e{i}"))
        };
        assert_eq!(
            store.commit(&write).await.unwrap(),
            CommitOutcome::Committed
        );
        ids.push(format!("c{i:02}"));
    }
    ids.reverse();
    let got = store
        .list_conversations(&filter(None, &["q1"], None, 1_000))
        .await
        .unwrap();
    assert_eq!(conversation_ids(&got), ids);
    // Bounded to the limit while scanning, still the most recent.
    let got = store
        .list_conversations(&filter(Some(ConversationState::Waiting), &["q1"], None, 5))
        .await
        .unwrap();
    assert_eq!(conversation_ids(&got), ids[..5]);
}

/// A conversation store whose agents (agent "X", available, capacity 2) are in their own table,
/// as deployed (agents in the config table).
async fn store_with_agents() -> (
    DynamoConversationStore,
    omniline_aws::dynamo_agents::DynamoAgentStore,
) {
    use omniline_domain::agents::{Agent, AgentStatus};
    use omniline_ports::AgentStore;
    let config = sdk_config(&endpoint()).await;
    let conversations_table = pk_sk_table(&config, "conversations").await;
    let agents_table = pk_sk_table(&config, "agents").await;
    let agents = omniline_aws::dynamo_agents::DynamoAgentStore::new(&config, &agents_table);
    agents
        .put_agent(&Agent {
            id: "X".into(),
            name: "X".into(),
            queues: vec!["q1".into()],
            skills: vec![],
            capacity: 2,
            status: AgentStatus::Available,
            active_conversations: vec![],
            last_assigned_at: None,
        })
        .await
        .unwrap();
    let store = DynamoConversationStore::new(&config, &conversations_table)
        .with_agents_table(&agents_table);
    (store, agents)
}

fn with_agent(mut c: Conversation, agent: &str) -> Conversation {
    c.state = ConversationState::Active;
    c.agent_id = Some(agent.into());
    c
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn an_assignment_commit_needs_the_agents_slot() {
    use omniline_ports::AgentStore;
    let (store, agents) = store_with_agents().await;
    store.commit(&create("e1", "c1", "U1", 1)).await.unwrap();
    let waiting = store.conversation("c1").await.unwrap().unwrap();

    // No slot: a conflict, nothing written (the event is not recorded either).
    let assigned = with_agent(conversation("c1", "U1", ConversationState::Waiting, 2), "X");
    let e2 = update("e2", assigned.clone(), 2);
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(waiting));
    assert!(!store.event_recorded(ACCOUNT, "e2", NOW).await.unwrap());
    assert_eq!(event_ids(&store.transcript("c1").await.unwrap()), ["e1"]);
    // Another conversation's slot, or an unknown agent, does not count.
    assert!(agents.try_assign("X", "c-other", 1).await.unwrap());
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(
        store.commit_assignment(&e2, "ghost").await.unwrap(),
        CommitOutcome::Conflict
    );

    // With the slot it commits; the same event again is a duplicate, as with `commit`.
    assert!(agents.try_assign("X", "c1", 2).await.unwrap());
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(assigned));
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Duplicate
    );
    // A new conversation created with the agent: the same check.
    let fresh = with_agent(conversation("c2", "U2", ConversationState::Waiting, 1), "X");
    let create_fresh = EventCommit {
        conversation: Some(ConversationWrite::Create(fresh)),
        ..commit("e3")
    };
    assert_eq!(
        store.commit_assignment(&create_fresh, "X").await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.conversation("c2").await.unwrap(), None);
    assert!(store
        .open_conversation(ACCOUNT, "U2")
        .await
        .unwrap()
        .is_none());
    // Without a conversation there is nothing to check.
    assert!(store.commit_assignment(&commit("e4"), "X").await.is_err());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn a_claim_is_given_back_unless_the_conversation_is_the_agents() {
    use omniline_ports::AgentStore;
    let (store, agents) = store_with_agents().await;
    let slots = || async {
        let mut slots = agents
            .agent("X")
            .await
            .unwrap()
            .unwrap()
            .active_conversations;
        slots.sort();
        slots
    };

    // Unknown conversation, or not held: nothing to give back.
    assert!(!store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(!store.release_unless_assigned("ghost", "c1").await.unwrap());
    assert!(agents.try_assign("X", "c1", 1).await.unwrap());
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(slots().await.is_empty());

    // Waiting without an agent: given back (and the count with it: two slots fit again).
    store.commit(&create("e1", "c1", "U1", 1)).await.unwrap();
    assert!(agents.try_assign("X", "c1", 2).await.unwrap());
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(slots().await.is_empty());

    // Stored with the agent: kept.
    assert!(agents.try_assign("X", "c1", 3).await.unwrap());
    assert!(agents.try_assign("X", "c9", 3).await.unwrap());
    let active = with_agent(conversation("c1", "U1", ConversationState::Waiting, 2), "X");
    assert_eq!(
        store
            .commit_assignment(&update("e2", active.clone(), 2), "X")
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert!(!store.release_unless_assigned("X", "c1").await.unwrap());
    assert_eq!(slots().await, ["c1", "c9"]);

    // Closed: given back.
    let mut closed = active;
    closed.state = ConversationState::Closed;
    closed.version = 3;
    store.commit(&update("e3", closed, 3)).await.unwrap();
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert_eq!(slots().await, ["c9"]);
    assert!(agents.try_assign("X", "c10", 4).await.unwrap());
    assert!(!agents.try_assign("X", "c11", 5).await.unwrap());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn assignment_commits_and_releases_need_the_agents_table() {
    let (store, _, _) = store().await;
    let fresh = with_agent(conversation("c1", "U1", ConversationState::Waiting, 1), "X");
    let write = EventCommit {
        conversation: Some(ConversationWrite::Create(fresh)),
        ..commit("e1")
    };
    assert!(store.commit_assignment(&write, "X").await.is_err());
    assert!(store.release_unless_assigned("X", "c1").await.is_err());
    assert!(!store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
}
