//! The DynamoDB `ConversationStore` over the wire, against moto's server (started by
//! `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`). Each test has its own table.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use omniline_tests::{endpoint, pk_sk_table, sdk_config};
use serde_json::json;
use shared::adapters::dynamo_conversations::DynamoConversationStore;
use shared::conversation::{
    CommitOutcome, Consent, Conversation, ConversationState, ConversationWrite, Customer,
    EventCommit, SourceType, TranscriptEntry,
};
use shared::ports::{ConversationStore, PortError};
use std::sync::Arc;

const ACCOUNT: &str = "acc1";

/// A store on a fresh table, with the table name and config for raw access.
async fn store() -> (DynamoConversationStore, SdkConfig, String) {
    let config = sdk_config(&endpoint()).await;
    let name = pk_sk_table(&config, "conversations").await;
    (DynamoConversationStore::new(&config, &name), config, name)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

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
        dedupe_expires_at: now_secs() + 3600,
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
    assert!(!store.event_recorded(ACCOUNT, "e1").await.unwrap());
    let first = EventCommit {
        customer: Some(customer("Uuser", "Taro", 1)),
        ..create("e1", "c1", "Uuser", 1000)
    };
    assert_eq!(
        store.commit(&first).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded(ACCOUNT, "e1").await.unwrap());

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
    assert!(!store.event_recorded("acc2", "e1").await.unwrap());
    assert_eq!(
        store.commit(&other).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded("acc2", "e1").await.unwrap());
    assert_eq!(
        store.commit(&other).await.unwrap(),
        CommitOutcome::Duplicate
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn an_expired_dedupe_record_lets_the_event_through() {
    let (store, _, _) = store().await;
    let expired = EventCommit {
        dedupe_expires_at: now_secs() - 10,
        ..commit("e1")
    };
    assert_eq!(
        store.commit(&expired).await.unwrap(),
        CommitOutcome::Committed
    );
    // Still in the table (TTL deletion is lazy) but forgotten.
    assert!(!store.event_recorded(ACCOUNT, "e1").await.unwrap());
    let fresh = create("e1", "c1", "Uuser", 1000);
    assert_eq!(
        store.commit(&fresh).await.unwrap(),
        CommitOutcome::Committed
    );
    assert!(store.event_recorded(ACCOUNT, "e1").await.unwrap());
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
    assert!(!store.event_recorded(ACCOUNT, "e2").await.unwrap());
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
    assert!(!store.event_recorded(ACCOUNT, "e3").await.unwrap());
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
    assert!(store.event_recorded(ACCOUNT, "e4").await.unwrap());
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
    assert!(store.event_recorded(ACCOUNT, "e-same").await.unwrap());
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
