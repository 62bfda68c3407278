//! [`ConversationStore`] in the embedded database: conversations (with a pointer to each source's
//! open conversation), customers, the transcript with its unsend index, and the per-account record
//! of processed events. One [`EventCommit`] is one SQLite transaction, all or nothing.

use crate::adapters::embedded::EmbeddedDb;
use crate::conversation::{
    CommitOutcome, Conversation, ConversationState, ConversationWrite, Customer, EventCommit,
    TranscriptEntry,
};
use crate::domain::now_millis;
use crate::ports::{ConversationStore, PortError};
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::Serialize;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS conversation_events (
    account_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, event_id)
);
CREATE INDEX IF NOT EXISTS conversation_events_expires ON conversation_events (expires_at);
CREATE TABLE IF NOT EXISTS conversations (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    source_id        TEXT NOT NULL,
    state            TEXT NOT NULL,
    version          INTEGER NOT NULL,
    last_activity_at INTEGER NOT NULL,
    doc              TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_source ON conversations (account_id, source_id);
CREATE TABLE IF NOT EXISTS conversation_open (
    account_id      TEXT NOT NULL,
    source_id       TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (account_id, source_id)
);
CREATE TABLE IF NOT EXISTS transcript_entries (
    conversation_id TEXT NOT NULL,
    timestamp       INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    message_id      TEXT,
    doc             TEXT NOT NULL,
    PRIMARY KEY (conversation_id, event_id)
);
CREATE INDEX IF NOT EXISTS transcript_entries_order
    ON transcript_entries (conversation_id, timestamp, event_id);
CREATE TABLE IF NOT EXISTS transcript_messages (
    account_id      TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    PRIMARY KEY (account_id, message_id)
);
CREATE TABLE IF NOT EXISTS customers (
    account_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (account_id, user_id)
);
"#;

/// [`ConversationStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteConversationStore {
    db: EmbeddedDb,
}

impl SqliteConversationStore {
    /// Creates the store's tables if needed.
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(SCHEMA)?;
        Ok(Self { db })
    }
}

fn to_doc<T: Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn from_doc<T: DeserializeOwned>(doc: &str) -> rusqlite::Result<T> {
    serde_json::from_str(doc).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn state_str(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

fn version_i64(version: u64) -> rusqlite::Result<i64> {
    i64::try_from(version).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn now_secs() -> i64 {
    now_millis().div_euclid(1000)
}

/// Whether the write went through; `false` means conflict (the caller rolls back).
fn write_conversation(tx: &Transaction<'_>, write: &ConversationWrite) -> rusqlite::Result<bool> {
    match write {
        ConversationWrite::Create(c) => {
            let inserted = tx.execute(
                "INSERT INTO conversations
                   (id, account_id, source_id, state, version, last_activity_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    c.id,
                    c.account_id,
                    c.source_id,
                    state_str(c.state),
                    version_i64(c.version)?,
                    c.last_activity_at,
                    to_doc(c)?
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            if c.state == ConversationState::Closed {
                // Created already closed: it occupies no open slot.
                return Ok(true);
            }
            let pointed = tx.execute(
                "INSERT INTO conversation_open (account_id, source_id, conversation_id)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, source_id) DO NOTHING",
                params![c.account_id, c.source_id, c.id],
            )?;
            Ok(pointed == 1)
        }
        ConversationWrite::Update(c) => {
            let Some(previous) = c.version.checked_sub(1) else {
                return Ok(false);
            };
            let updated = tx.execute(
                "UPDATE conversations
                 SET account_id = ?2, source_id = ?3, state = ?4, version = ?5,
                     last_activity_at = ?6, doc = ?7
                 WHERE id = ?1 AND version = ?8",
                params![
                    c.id,
                    c.account_id,
                    c.source_id,
                    state_str(c.state),
                    version_i64(c.version)?,
                    c.last_activity_at,
                    to_doc(c)?,
                    version_i64(previous)?
                ],
            )?;
            if updated == 0 {
                return Ok(false);
            }
            if c.state == ConversationState::Closed {
                tx.execute(
                    "DELETE FROM conversation_open
                     WHERE account_id = ?1 AND source_id = ?2 AND conversation_id = ?3",
                    params![c.account_id, c.source_id, c.id],
                )?;
                return Ok(true);
            }
            tx.execute(
                "INSERT INTO conversation_open (account_id, source_id, conversation_id)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id, source_id) DO NOTHING",
                params![c.account_id, c.source_id, c.id],
            )?;
            // Another conversation holds the source: reopening this one would make two open.
            let holder: String = tx.query_row(
                "SELECT conversation_id FROM conversation_open
                 WHERE account_id = ?1 AND source_id = ?2",
                params![c.account_id, c.source_id],
                |r| r.get(0),
            )?;
            Ok(holder == c.id)
        }
    }
}

fn write_transcript(
    tx: &Transaction<'_>,
    account_id: &str,
    entry: &TranscriptEntry,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO transcript_entries (conversation_id, timestamp, event_id, message_id, doc)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (conversation_id, event_id) DO UPDATE SET
           timestamp = excluded.timestamp,
           message_id = excluded.message_id,
           doc = excluded.doc",
        params![
            entry.conversation_id,
            entry.timestamp,
            entry.event_id,
            entry.message_id,
            to_doc(entry)?
        ],
    )?;
    if let Some(message_id) = &entry.message_id {
        tx.execute(
            "INSERT INTO transcript_messages (account_id, message_id, conversation_id, event_id)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account_id, message_id) DO UPDATE SET
               conversation_id = excluded.conversation_id,
               event_id = excluded.event_id",
            params![
                account_id,
                message_id,
                entry.conversation_id,
                entry.event_id
            ],
        )?;
    }
    Ok(())
}

/// Retracts the transcript entry of a LINE message; an unknown message is not an error.
fn retract(tx: &Transaction<'_>, account_id: &str, message_id: &str) -> rusqlite::Result<()> {
    let found: Option<(String, String, String)> = tx
        .query_row(
            "SELECT e.conversation_id, e.event_id, e.doc
             FROM transcript_messages m
             JOIN transcript_entries e
               ON e.conversation_id = m.conversation_id AND e.event_id = m.event_id
             WHERE m.account_id = ?1 AND m.message_id = ?2",
            params![account_id, message_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((conversation_id, event_id, doc)) = found else {
        return Ok(());
    };
    let mut entry: TranscriptEntry = from_doc(&doc)?;
    entry.retracted = true;
    entry.event = serde_json::Value::Null;
    tx.execute(
        "UPDATE transcript_entries SET doc = ?3 WHERE conversation_id = ?1 AND event_id = ?2",
        params![conversation_id, event_id, to_doc(&entry)?],
    )?;
    Ok(())
}

fn apply_commit(
    conn: &mut rusqlite::Connection,
    commit: &EventCommit,
    now_secs: i64,
) -> rusqlite::Result<CommitOutcome> {
    let tx = conn.transaction()?;
    // Expired deduplication records are forgotten (DynamoDB's TTL does the same, lazily).
    tx.execute(
        "DELETE FROM conversation_events WHERE expires_at <= ?1",
        params![now_secs],
    )?;
    let recorded = tx.execute(
        "INSERT INTO conversation_events (account_id, event_id, expires_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, event_id) DO NOTHING",
        params![commit.account_id, commit.event_id, commit.dedupe_expires_at],
    )?;
    if recorded == 0 {
        tx.rollback()?;
        return Ok(CommitOutcome::Duplicate);
    }
    if let Some(write) = &commit.conversation {
        if !write_conversation(&tx, write)? {
            tx.rollback()?;
            return Ok(CommitOutcome::Conflict);
        }
    }
    if let Some(entry) = &commit.transcript {
        write_transcript(&tx, &commit.account_id, entry)?;
    }
    if let Some(message_id) = &commit.retract_message_id {
        retract(&tx, &commit.account_id, message_id)?;
    }
    if let Some(customer) = &commit.customer {
        tx.execute(
            "INSERT INTO customers (account_id, user_id, doc) VALUES (?1, ?2, ?3)
             ON CONFLICT (account_id, user_id) DO UPDATE SET doc = excluded.doc",
            params![customer.account_id, customer.user_id, to_doc(customer)?],
        )?;
    }
    tx.commit()?;
    Ok(CommitOutcome::Committed)
}

#[async_trait]
impl ConversationStore for SqliteConversationStore {
    async fn event_recorded(&self, account_id: &str, event_id: &str) -> Result<bool, PortError> {
        let (account_id, event_id) = (account_id.to_owned(), event_id.to_owned());
        let now = now_secs();
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT 1 FROM conversation_events
                     WHERE account_id = ?1 AND event_id = ?2 AND expires_at > ?3",
                    params![account_id, event_id, now],
                    |_| Ok(()),
                )
                .optional()
                .map(|found| found.is_some())
            })
            .await
    }

    async fn open_conversation(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Option<Conversation>, PortError> {
        let (account_id, source_id) = (account_id.to_owned(), source_id.to_owned());
        self.db
            .run(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT c.doc FROM conversation_open o
                         JOIN conversations c ON c.id = o.conversation_id
                         WHERE o.account_id = ?1 AND o.source_id = ?2",
                        params![account_id, source_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                doc.as_deref().map(from_doc).transpose()
            })
            .await
    }

    async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, PortError> {
        let id = conversation_id.to_owned();
        self.db
            .run(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT doc FROM conversations WHERE id = ?1",
                        params![id],
                        |r| r.get(0),
                    )
                    .optional()?;
                doc.as_deref().map(from_doc).transpose()
            })
            .await
    }

    async fn open_conversations(&self) -> Result<Vec<Conversation>, PortError> {
        self.db
            .run(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT doc FROM conversations WHERE state <> 'closed' ORDER BY last_activity_at, id",
                )?;
                let docs = stmt.query_map([], |r| r.get::<_, String>(0))?;
                docs.map(|d| d.and_then(|d| from_doc(&d))).collect()
            })
            .await
    }

    async fn customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Customer>, PortError> {
        let (account_id, user_id) = (account_id.to_owned(), user_id.to_owned());
        self.db
            .run(move |conn| {
                let doc: Option<String> = conn
                    .query_row(
                        "SELECT doc FROM customers WHERE account_id = ?1 AND user_id = ?2",
                        params![account_id, user_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                doc.as_deref().map(from_doc).transpose()
            })
            .await
    }

    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError> {
        let commit = commit.clone();
        let now = now_secs();
        self.db
            .run(move |conn| apply_commit(conn, &commit, now))
            .await
    }

    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError> {
        let id = conversation_id.to_owned();
        self.db
            .run(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT doc FROM transcript_entries WHERE conversation_id = ?1
                     ORDER BY timestamp ASC, event_id ASC",
                )?;
                let docs = stmt.query_map(params![id], |r| r.get::<_, String>(0))?;
                docs.map(|d| d.and_then(|d| from_doc(&d))).collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Consent, SourceType, DEDUPE_RETENTION_SECS};
    use serde_json::json;

    const ACCOUNT: &str = "acc1";

    fn store(dir: &tempfile::TempDir) -> SqliteConversationStore {
        SqliteConversationStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    fn conversation(
        id: &str,
        source: &str,
        state: ConversationState,
        version: u64,
    ) -> Conversation {
        Conversation {
            id: id.into(),
            account_id: ACCOUNT.into(),
            source_type: SourceType::User,
            source_id: source.into(),
            state,
            workstream_id: None,
            queue_id: None,
            priority: 0,
            skills: vec![],
            bot_id: None,
            agent_id: None,
            rule_id: None,
            members: vec![],
            opened_at: 1_700_000_000_000,
            last_activity_at: 1_700_000_000_000 + version as i64,
            closed_at: None,
            close_reason: None,
            version,
        }
    }

    fn entry(
        conversation_id: &str,
        event_id: &str,
        ts: i64,
        message_id: Option<&str>,
    ) -> TranscriptEntry {
        TranscriptEntry {
            conversation_id: conversation_id.into(),
            event_id: event_id.into(),
            timestamp: ts,
            event_type: "message".into(),
            sender_user_id: Some("U1".into()),
            message_id: message_id.map(Into::into),
            event: json!({"type": "message", "message": {"type": "text", "text": event_id}}),
            retracted: false,
        }
    }

    fn customer(user_id: &str, name: &str) -> Customer {
        Customer {
            account_id: ACCOUNT.into(),
            user_id: user_id.into(),
            display_name: name.into(),
            picture_url: None,
            language: None,
            profile_found: true,
            consent: Consent::Followed,
            linked_contact_id: None,
            created_at: 1,
            updated_at: 2,
        }
    }

    /// A commit for `event_id` under [`ACCOUNT`], deduplicated for the usual retention.
    fn commit(event_id: &str) -> EventCommit {
        EventCommit {
            account_id: ACCOUNT.into(),
            event_id: event_id.into(),
            dedupe_expires_at: now_secs() + DEDUPE_RETENTION_SECS,
            conversation: None,
            transcript: None,
            retract_message_id: None,
            customer: None,
        }
    }

    fn create(event_id: &str, c: Conversation, e: Option<TranscriptEntry>) -> EventCommit {
        EventCommit {
            conversation: Some(ConversationWrite::Create(c)),
            transcript: e,
            ..commit(event_id)
        }
    }

    fn update(event_id: &str, c: Conversation, e: Option<TranscriptEntry>) -> EventCommit {
        EventCommit {
            conversation: Some(ConversationWrite::Update(c)),
            transcript: e,
            ..commit(event_id)
        }
    }

    #[tokio::test]
    async fn commit_then_duplicate_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        let first = create("e1", c1.clone(), Some(entry("c1", "e1", 10, Some("m1"))));
        assert!(!s.event_recorded(ACCOUNT, "e1").await.unwrap());
        assert_eq!(s.commit(&first).await.unwrap(), CommitOutcome::Committed);
        assert!(s.event_recorded(ACCOUNT, "e1").await.unwrap());
        assert_eq!(s.conversation("c1").await.unwrap(), Some(c1.clone()));
        assert_eq!(
            s.open_conversation(ACCOUNT, "U1").await.unwrap(),
            Some(c1.clone())
        );

        // The same event again, even carrying other changes: nothing is written.
        let again = update(
            "e1",
            conversation("c1", "U1", ConversationState::Active, 2),
            Some(entry("c1", "e1-bis", 11, None)),
        );
        assert_eq!(s.commit(&again).await.unwrap(), CommitOutcome::Duplicate);
        assert_eq!(s.transcript("c1").await.unwrap().len(), 1);
        assert_eq!(s.conversation("c1").await.unwrap().unwrap().version, 1);

        // The same event id under another account is another event.
        assert!(!s.event_recorded("acc2", "e1").await.unwrap());
        let other = EventCommit {
            account_id: "acc2".into(),
            ..commit("e1")
        };
        assert_eq!(s.commit(&other).await.unwrap(), CommitOutcome::Committed);
        assert!(s.event_recorded("acc2", "e1").await.unwrap());
    }

    #[tokio::test]
    async fn an_expired_dedupe_record_lets_the_event_through() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let expired = EventCommit {
            dedupe_expires_at: now_secs() - 10,
            ..commit("e1")
        };
        assert_eq!(s.commit(&expired).await.unwrap(), CommitOutcome::Committed);
        assert!(!s.event_recorded(ACCOUNT, "e1").await.unwrap());
        assert_eq!(
            s.commit(&commit("e1")).await.unwrap(),
            CommitOutcome::Committed
        );
        assert!(s.event_recorded(ACCOUNT, "e1").await.unwrap());
        assert_eq!(
            s.commit(&commit("e1")).await.unwrap(),
            CommitOutcome::Duplicate
        );
    }

    #[tokio::test]
    async fn create_conflicts_with_an_open_conversation_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        assert_eq!(
            s.commit(&create("e1", c1.clone(), None)).await.unwrap(),
            CommitOutcome::Committed
        );

        let c2 = conversation("c2", "U1", ConversationState::Waiting, 1);
        let clash = EventCommit {
            customer: Some(customer("U1", "Alice")),
            ..create("e2", c2, Some(entry("c2", "e2", 20, Some("m2"))))
        };
        assert_eq!(s.commit(&clash).await.unwrap(), CommitOutcome::Conflict);
        assert!(!s.event_recorded(ACCOUNT, "e2").await.unwrap());
        assert!(s.conversation("c2").await.unwrap().is_none());
        assert!(s.transcript("c2").await.unwrap().is_empty());
        assert!(s.customer(ACCOUNT, "U1").await.unwrap().is_none());
        assert_eq!(
            s.open_conversation(ACCOUNT, "U1").await.unwrap(),
            Some(c1.clone())
        );

        // An existing id is a conflict too, whatever the source.
        let same_id = conversation("c1", "U9", ConversationState::Waiting, 1);
        assert_eq!(
            s.commit(&create("e3", same_id, None)).await.unwrap(),
            CommitOutcome::Conflict
        );
        assert!(s.open_conversation(ACCOUNT, "U9").await.unwrap().is_none());
        assert_eq!(s.conversation("c1").await.unwrap(), Some(c1));

        // The conflicting event is retried once the router has re-read: not a duplicate.
        let retry = update(
            "e2",
            conversation("c1", "U1", ConversationState::Active, 2),
            None,
        );
        assert_eq!(s.commit(&retry).await.unwrap(), CommitOutcome::Committed);
    }

    #[tokio::test]
    async fn update_with_a_stale_version_conflicts_and_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        s.commit(&create("e1", c1, None)).await.unwrap();
        let v2 = conversation("c1", "U1", ConversationState::Active, 2);
        assert_eq!(
            s.commit(&update("e2", v2.clone(), None)).await.unwrap(),
            CommitOutcome::Committed
        );

        // Written from version 1 again (a concurrent writer lost).
        let stale = EventCommit {
            customer: Some(customer("U1", "Alice")),
            ..update(
                "e3",
                conversation("c1", "U1", ConversationState::Closed, 2),
                Some(entry("c1", "e3", 30, None)),
            )
        };
        assert_eq!(s.commit(&stale).await.unwrap(), CommitOutcome::Conflict);
        assert!(!s.event_recorded(ACCOUNT, "e3").await.unwrap());
        assert_eq!(s.conversation("c1").await.unwrap(), Some(v2.clone()));
        assert!(s.transcript("c1").await.unwrap().is_empty());
        assert!(s.customer(ACCOUNT, "U1").await.unwrap().is_none());
        assert_eq!(s.open_conversation(ACCOUNT, "U1").await.unwrap(), Some(v2));

        // Unknown conversation, and version 0 (no previous version): conflicts.
        let unknown = conversation("zz", "U2", ConversationState::Active, 2);
        assert_eq!(
            s.commit(&update("e4", unknown, None)).await.unwrap(),
            CommitOutcome::Conflict
        );
        let zero = conversation("c1", "U1", ConversationState::Active, 0);
        assert_eq!(
            s.commit(&update("e5", zero, None)).await.unwrap(),
            CommitOutcome::Conflict
        );
    }

    #[tokio::test]
    async fn closing_frees_the_source_for_a_new_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        s.commit(&create(
            "e1",
            conversation("c1", "U1", ConversationState::Waiting, 1),
            None,
        ))
        .await
        .unwrap();
        let closed = Conversation {
            closed_at: Some(1_700_000_100_000),
            close_reason: Some("agent".into()),
            ..conversation("c1", "U1", ConversationState::Closed, 2)
        };
        assert_eq!(
            s.commit(&update("e2", closed.clone(), None)).await.unwrap(),
            CommitOutcome::Committed
        );
        assert!(s.open_conversation(ACCOUNT, "U1").await.unwrap().is_none());
        assert_eq!(s.conversation("c1").await.unwrap(), Some(closed));

        let c2 = conversation("c2", "U1", ConversationState::Waiting, 1);
        assert_eq!(
            s.commit(&create("e3", c2.clone(), None)).await.unwrap(),
            CommitOutcome::Committed
        );
        assert_eq!(s.open_conversation(ACCOUNT, "U1").await.unwrap(), Some(c2));

        // Reopening the closed one while c2 holds the source would make two open: conflict.
        let reopened = conversation("c1", "U1", ConversationState::Active, 3);
        assert_eq!(
            s.commit(&update("e4", reopened, None)).await.unwrap(),
            CommitOutcome::Conflict
        );
        assert_eq!(s.conversation("c1").await.unwrap().unwrap().version, 2);
    }

    #[tokio::test]
    async fn transcript_is_ordered_by_timestamp_then_event_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        s.commit(&create("e-c", c1, Some(entry("c1", "e-c", 300, None))))
            .await
            .unwrap();
        for (event_id, ts) in [("e-a", 100), ("e-z", 200), ("e-b", 200)] {
            let c = EventCommit {
                transcript: Some(entry("c1", event_id, ts, None)),
                ..commit(event_id)
            };
            assert_eq!(s.commit(&c).await.unwrap(), CommitOutcome::Committed);
        }
        let ids: Vec<_> = s
            .transcript("c1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(ids, ["e-a", "e-b", "e-z", "e-c"]);
        assert!(s.transcript("other").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unsend_retracts_the_message_and_ignores_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        s.commit(&create("e1", c1, Some(entry("c1", "e1", 10, Some("m1")))))
            .await
            .unwrap();
        s.commit(&EventCommit {
            transcript: Some(entry("c1", "e2", 20, Some("m2"))),
            ..commit("e2")
        })
        .await
        .unwrap();

        let unsend = EventCommit {
            transcript: Some(TranscriptEntry {
                event_type: "unsend".into(),
                message_id: None,
                event: json!({"type": "unsend", "unsend": {"messageId": "m1"}}),
                ..entry("c1", "e3", 30, None)
            }),
            retract_message_id: Some("m1".into()),
            ..commit("e3")
        };
        assert_eq!(s.commit(&unsend).await.unwrap(), CommitOutcome::Committed);
        let t = s.transcript("c1").await.unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[0].retracted);
        assert_eq!(t[0].event, serde_json::Value::Null);
        assert_eq!(t[0].message_id.as_deref(), Some("m1"));
        assert!(!t[1].retracted);
        assert_eq!(t[1], entry("c1", "e2", 20, Some("m2")));

        // Unknown message, and a message of another account: no-ops.
        let before = s.transcript("c1").await.unwrap();
        let unknown = EventCommit {
            retract_message_id: Some("nope".into()),
            ..commit("e4")
        };
        assert_eq!(s.commit(&unknown).await.unwrap(), CommitOutcome::Committed);
        let foreign = EventCommit {
            account_id: "acc2".into(),
            retract_message_id: Some("m2".into()),
            ..commit("e5")
        };
        assert_eq!(s.commit(&foreign).await.unwrap(), CommitOutcome::Committed);
        assert_eq!(s.transcript("c1").await.unwrap(), before);
    }

    #[tokio::test]
    async fn customers_are_upserted() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        assert!(s.customer(ACCOUNT, "U1").await.unwrap().is_none());
        let alice = customer("U1", "Alice");
        s.commit(&EventCommit {
            customer: Some(alice.clone()),
            ..commit("e1")
        })
        .await
        .unwrap();
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), Some(alice));
        let renamed = Customer {
            consent: Consent::Unfollowed,
            updated_at: 3,
            ..customer("U1", "Alicia")
        };
        s.commit(&EventCommit {
            customer: Some(renamed.clone()),
            ..commit("e2")
        })
        .await
        .unwrap();
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), Some(renamed));
        assert!(s.customer("acc2", "U1").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        let e1 = entry("c1", "e1", 10, Some("m1"));
        let alice = customer("U1", "Alice");
        {
            let s = store(&dir);
            let first = EventCommit {
                customer: Some(alice.clone()),
                ..create("e1", c1.clone(), Some(e1.clone()))
            };
            assert_eq!(s.commit(&first).await.unwrap(), CommitOutcome::Committed);
        }
        let s = store(&dir);
        assert!(s.event_recorded(ACCOUNT, "e1").await.unwrap());
        assert_eq!(
            s.open_conversation(ACCOUNT, "U1").await.unwrap(),
            Some(c1.clone())
        );
        assert_eq!(s.conversation("c1").await.unwrap(), Some(c1));
        assert_eq!(s.transcript("c1").await.unwrap(), vec![e1]);
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), Some(alice));
        // The unsend index survived too.
        s.commit(&EventCommit {
            retract_message_id: Some("m1".into()),
            ..commit("e2")
        })
        .await
        .unwrap();
        assert!(s.transcript("c1").await.unwrap()[0].retracted);
        assert_eq!(
            s.commit(&commit("e1")).await.unwrap(),
            CommitOutcome::Duplicate
        );
    }
}
