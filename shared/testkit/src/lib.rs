//! Helpers for tests of the functions and the local stack: embedded adapters in a temporary
//! directory and seeded accounts. Not used by production code paths.

use omniline_domain::account::{credentials_secret_name, Account, ChannelCredentials};
use omniline_domain::clock::{now_millis, rfc3339_millis};
use omniline_domain::conversation::{CommitOutcome, EventCommit};
use omniline_domain::secret::SecretString;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore};
use omniline_ports::{AccountStore, ConversationStore, PortError, SecretStore};
use std::path::Path;
use std::sync::Arc;

/// The embedded adapters over one database.
pub struct EmbeddedAdapters {
    pub db: EmbeddedDb,
    pub accounts: Arc<SqliteAccountStore>,
    pub secrets: Arc<SqliteSecretStore>,
    pub inbound: Arc<SqliteEventQueue>,
}

impl EmbeddedAdapters {
    pub fn open(dir: &Path) -> Result<Self, PortError> {
        let db = EmbeddedDb::open(dir)?;
        Ok(Self {
            accounts: Arc::new(SqliteAccountStore::new(db.clone())),
            secrets: Arc::new(SqliteSecretStore::new(db.clone())),
            inbound: Arc::new(SqliteEventQueue::new(db.clone(), "inbound", 5)),
            db,
        })
    }
}

/// Stores an account `id` with `channel_secret` and a dummy access token.
pub async fn seed_account(
    accounts: &dyn AccountStore,
    secrets: &dyn SecretStore,
    id: &str,
    channel_secret: &str,
) -> Result<Account, PortError> {
    let now = rfc3339_millis(now_millis());
    let account = Account {
        id: id.to_owned(),
        name: format!("Account {id}"),
        channel_id: "1234567890".into(),
        bot_user_id: format!("Ubot{id}"),
        basic_id: "@bot".into(),
        display_name: "Bot".into(),
        created_at: now.clone(),
        updated_at: now,
        webhook_disabled: false,
    };
    let credentials = ChannelCredentials {
        channel_secret: SecretString::new(channel_secret),
        channel_access_token: SecretString::new("test-access-token"),
    };
    secrets
        .put(&credentials_secret_name(id), &credentials.to_secret())
        .await?;
    accounts.create(&account).await?;
    Ok(account)
}

/// Clocks far from the wall clock, for the contracts below: a store that compares a stored expiry
/// with its own clock instead of the caller's fails at one of them.
pub const FAR_PAST_SECS: i64 = 1_000_000_000; // 2001-09-09
pub const FAR_FUTURE_SECS: i64 = 4_000_000_000; // 2096-10-02

/// Contract of every [`ConversationStore`]: the deduplication window follows the caller's clock
/// (the `now_secs` of [`ConversationStore::event_recorded`] and of the commit), never the
/// store's. Run it at [`FAR_PAST_SECS`] and [`FAR_FUTURE_SECS`] (each call uses its own event id).
pub async fn dedupe_window_follows_the_callers_clock(
    store: &dyn ConversationStore,
    account_id: &str,
    now_secs: i64,
) {
    let event_id = format!("clock-{now_secs}");
    let commit = |at: i64| EventCommit {
        account_id: account_id.to_owned(),
        event_id: event_id.clone(),
        now_secs: at,
        dedupe_expires_at: at + 3600,
        retain_until: None,
        conversation: None,
        transcript: None,
        retract_message_id: None,
        customer: None,
    };
    let recorded = |at: i64| store.event_recorded(account_id, &event_id, at);
    assert!(!recorded(now_secs).await.unwrap(), "new at {now_secs}");
    assert_eq!(
        store.commit(&commit(now_secs)).await.unwrap(),
        CommitOutcome::Committed,
        "first commit at {now_secs}"
    );
    assert!(recorded(now_secs).await.unwrap(), "recorded at {now_secs}");
    assert!(
        recorded(now_secs + 3599).await.unwrap(),
        "still recorded 1 s before it expires ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 1800)).await.unwrap(),
        CommitOutcome::Duplicate,
        "a redelivery inside the window at {now_secs}"
    );
    assert!(
        !recorded(now_secs + 3600).await.unwrap(),
        "forgotten when it expires at the caller's clock ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 3600)).await.unwrap(),
        CommitOutcome::Committed,
        "stored again once the window has passed at the caller's clock ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 3601)).await.unwrap(),
        CommitOutcome::Duplicate,
        "the new record holds ({now_secs})"
    );
}

/// Contract of every [`omniline_ports::ConfigStore`]: documents per kind, created once
/// (`Expect::Absent`), replaced only at the stored version, listed in id order, deleted once, and
/// created again from version 1.
pub async fn config_store_contract(store: &dyn omniline_ports::ConfigStore) {
    use omniline_ports::{ConfigDoc, Expect};
    fn ids(docs: &[ConfigDoc]) -> Vec<&str> {
        docs.iter().map(|d| d.id.as_str()).collect()
    }
    assert_eq!(store.get_doc("queue", "q1").await.unwrap(), None);
    assert!(store.list_docs("queue").await.unwrap().is_empty());

    assert_eq!(
        store
            .put_doc("queue", "q2", r#"{"n":2}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":1}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    // Same id, another kind: a separate document.
    assert_eq!(
        store
            .put_doc("agent", "q1", r#"{"agent":true}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store.get_doc("queue", "q1").await.unwrap(),
        Some(ConfigDoc {
            id: "q1".into(),
            doc: r#"{"n":1}"#.into(),
            version: 1
        })
    );
    let queues = store.list_docs("queue").await.unwrap();
    assert_eq!(ids(&queues), ["q1", "q2"]);
    assert_eq!(ids(&store.list_docs("agent").await.unwrap()), ["q1"]);

    // Optimistic update: the right version wins once, a stale one loses.
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":10}"#, Expect::Version(1))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":11}"#, Expect::Version(1))
            .await
            .unwrap(),
        None
    );
    let q1 = store.get_doc("queue", "q1").await.unwrap().unwrap();
    assert_eq!((q1.doc.as_str(), q1.version), (r#"{"n":10}"#, 2));
    assert_eq!(
        store
            .put_doc("queue", "q1", r#"{"n":12}"#, Expect::Version(2))
            .await
            .unwrap(),
        Some(3)
    );

    // Creating an existing id fails and leaves it alone; updating a missing one fails.
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Absent)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_doc("queue", "q1").await.unwrap().unwrap().version,
        3
    );
    assert_eq!(
        store
            .put_doc("queue", "nope", "{}", Expect::Version(1))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_doc("queue", "nope").await.unwrap(), None);

    // Delete: once true, then false; other kinds untouched; the id can be created again.
    assert!(store.delete_doc("queue", "q1").await.unwrap());
    assert!(!store.delete_doc("queue", "q1").await.unwrap());
    assert_eq!(store.get_doc("queue", "q1").await.unwrap(), None);
    assert_eq!(ids(&store.list_docs("queue").await.unwrap()), ["q2"]);
    assert!(store.get_doc("agent", "q1").await.unwrap().is_some());
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Version(3))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .put_doc("queue", "q1", "{}", Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
}

/// Contract of every [`omniline_ports::DeliveryStore`], written once and run against each adapter:
/// the union of what the SQLite and DynamoDB adapters' tests asserted.
pub mod delivery_contract {
    use omniline_domain::delivery::{Delivery, DeliveryStatus};
    use omniline_ports::DeliveryStore;
    use std::sync::Arc;

    /// A new delivery of account `acc1`.
    pub fn delivery(id: &str, conversation_id: &str, retry_key: &str, now: i64) -> Delivery {
        Delivery::new(id, "acc1", conversation_id, retry_key, now)
    }

    /// `d` as the next version, sent.
    pub fn sent(d: &Delivery) -> Delivery {
        Delivery {
            status: DeliveryStatus::Sent,
            reply_attempted: true,
            parts_sent: d.parts_sent + 1,
            request_ids: vec![format!("req-{}", d.version)],
            sent_message_ids: vec!["461230966842064897".into()],
            attempts: d.attempts + 1,
            updated_at: d.updated_at + 1,
            version: d.version + 1,
            ..d.clone()
        }
    }

    /// The deliveries' ids, in order.
    pub fn ids(deliveries: &[Delivery]) -> Vec<&str> {
        deliveries.iter().map(|d| d.id.as_str()).collect()
    }

    /// A second `begin` of an id returns the first record: the retry key chosen first is kept.
    pub async fn begin_twice_keeps_the_first_retry_key(store: &dyn DeliveryStore) {
        assert_eq!(store.delivery("m1").await.unwrap(), None);
        let first = delivery("m1", "c1", "key-first", 1_700_000_000_000);
        assert_eq!(store.begin(&first).await.unwrap(), first);
        let again = delivery("m1", "c1", "key-second", 1_700_000_001_000);
        let stored = store.begin(&again).await.unwrap();
        assert_eq!(stored, first);
        assert_eq!(stored.retry_key, "key-first");
        assert_eq!(store.delivery("m1").await.unwrap(), Some(first.clone()));
        assert_eq!(
            store.deliveries_for_conversation("c1").await.unwrap(),
            vec![first]
        );
    }

    /// An update goes through only on top of the stored version; nothing is created by one.
    pub async fn update_needs_the_previous_version(store: &dyn DeliveryStore) {
        let d1 = store.begin(&delivery("m1", "c1", "k", 1000)).await.unwrap();
        let d2 = sent(&d1);
        assert!(store.update(&d2).await.unwrap());
        assert_eq!(store.delivery("m1").await.unwrap(), Some(d2.clone()));

        // Stale (built from version 1 again), skipping a version, version 0, missing record.
        let stale = Delivery {
            error: Some("stale".into()),
            ..sent(&d1)
        };
        assert!(!store.update(&stale).await.unwrap());
        assert!(!store.update(&sent(&sent(&d2))).await.unwrap());
        assert!(!store
            .update(&Delivery {
                version: 0,
                ..d2.clone()
            })
            .await
            .unwrap());
        assert!(!store
            .update(&sent(&delivery("m2", "c1", "k", 1)))
            .await
            .unwrap());
        assert_eq!(store.delivery("m1").await.unwrap(), Some(d2.clone()));
        assert_eq!(store.delivery("m2").await.unwrap(), None);
        assert_eq!(
            store.deliveries_for_conversation("c1").await.unwrap(),
            vec![d2.clone()]
        );

        let d3 = Delivery {
            status: DeliveryStatus::Failed,
            error: Some("400 Bad Request: こんにちは 😀".into()),
            ..sent(&d2)
        };
        assert!(store.update(&d3).await.unwrap());
        assert_eq!(store.delivery("m1").await.unwrap(), Some(d3));
    }

    /// Of eight updates built on one version, exactly one wins.
    pub async fn concurrent_updates_exactly_one_wins(store: Arc<dyn DeliveryStore>) {
        let d1 = store.begin(&delivery("m1", "c1", "k", 1000)).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                let next = Delivery {
                    error: Some(format!("worker {i}")),
                    ..sent(&d1)
                };
                tokio::spawn(async move {
                    let won = store.update(&next).await.unwrap();
                    (next, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (next, won) = task.await.unwrap();
            if won {
                winners.push(next);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one update wins");
        assert_eq!(store.delivery("m1").await.unwrap(), winners.pop());
    }

    /// A conversation's deliveries in creation order (then id); an update keeps its place.
    pub async fn listed_per_conversation_in_creation_order(store: &dyn DeliveryStore) {
        for (id, conversation, at) in [
            ("m3", "c1", 3000),
            ("m1", "c1", 1000),
            ("x1", "c2", 500),
            ("m2b", "c1", 2000),
            ("m2a", "c1", 2000),
            ("m0", "c1", 999),
        ] {
            store
                .begin(&delivery(id, conversation, "k", at))
                .await
                .unwrap();
        }
        let c1 = store.deliveries_for_conversation("c1").await.unwrap();
        assert_eq!(ids(&c1), ["m0", "m1", "m2a", "m2b", "m3"]);
        assert!(c1.iter().all(|d| d.conversation_id == "c1"));
        let c2 = store.deliveries_for_conversation("c2").await.unwrap();
        assert_eq!(ids(&c2), ["x1"]);
        assert!(store
            .deliveries_for_conversation("c3")
            .await
            .unwrap()
            .is_empty());

        // An update keeps the record in its place, with its new content.
        let m1 = c1[1].clone();
        assert!(store.update(&sent(&m1)).await.unwrap());
        let c1 = store.deliveries_for_conversation("c1").await.unwrap();
        assert_eq!(ids(&c1), ["m0", "m1", "m2a", "m2b", "m3"]);
        assert_eq!(c1[1], sent(&m1));
    }
}
