//! Helpers for tests of the functions and the local stack: embedded adapters in a temporary
//! directory and seeded accounts. Not used by production code paths.

use crate::adapters::embedded::{
    EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore,
};
use crate::conversation::{CommitOutcome, EventCommit};
use crate::domain::{
    credentials_secret_name, now_millis, rfc3339_millis, Account, ChannelCredentials,
};
use crate::ports::{AccountStore, ConversationStore, PortError, SecretStore};
use crate::secret::SecretString;
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

/// Contract of every [`crate::ports::ConfigStore`]: documents per kind, created once
/// (`Expect::Absent`), replaced only at the stored version, listed in id order, deleted once, and
/// created again from version 1.
pub async fn config_store_contract(store: &dyn crate::ports::ConfigStore) {
    use crate::ports::{ConfigDoc, Expect};
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
