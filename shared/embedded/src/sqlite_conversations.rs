//! [`ConversationStore`] in the embedded database: conversations (with a pointer to each source's
//! open conversation), customers, the transcript with its unsend index, and the per-account record
//! of processed events. One [`EventCommit`] is one SQLite transaction, all or nothing.
//!
//! Retention: `conversations`, `transcript_entries` and `customers` carry a nullable `expires_at`
//! (epoch seconds, [`EventCommit::retain_until`] of the last commit that wrote the row; `NULL`
//! keeps the row until it is deleted). [`ConversationStore::sweep_expired`] deletes what has
//! expired. Databases created before the column existed get it when the store opens.
//!
//! Listing ([`ConversationStore::list_conversations`]): the queue and the agent of a
//! conversation live in its JSON `doc`; expression indexes on `json_extract(doc, '$.queueId')`
//! and `json_extract(doc, '$.agentId')` (with `last_activity_at`) serve the query, so no column
//! (and no migration) is needed. Created when the store opens, old databases included.
//!
//! Agent slots: [`ConversationStore::commit_assignment`] and
//! [`ConversationStore::release_unless_assigned`] read and write the agent store's
//! `agent_conversations` table (see `sqlite_agents`), which lives in the same database: the slot
//! check runs inside the commit transaction, after its first write has taken the database's write
//! lock, and the conditional release is one `DELETE … WHERE NOT EXISTS (conversation open with
//! the agent)`, so each sees the other whole.

use crate::sql::{
    exists, from_doc, from_json, query_doc, query_docs, query_one, query_value, to_json,
    version_i64,
};
use crate::sqlite_agents::slot_held;
use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationFilter, ConversationState, ConversationWrite,
    Customer, EventCommit, TranscriptEntry,
};
use omniline_domain::outbound::OutboundMessage;
use omniline_domain::search::{
    intersect, keep_latest, ranked, QueryMatches, SearchEntry, SearchHit, TermMatches,
};
use omniline_ports::{ConversationStore, PortError, PurgeCounts, PurgePage};
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, OptionalExtension, Transaction};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS conversation_events (
    account_id TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    outbox     TEXT,
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
    doc              TEXT NOT NULL,
    expires_at       INTEGER
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
    expires_at      INTEGER,
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
    expires_at INTEGER,
    PRIMARY KEY (account_id, user_id)
);
CREATE INDEX IF NOT EXISTS transcript_messages_conversation
    ON transcript_messages (conversation_id);
CREATE INDEX IF NOT EXISTS customers_account ON customers (account_id);
"#;

/// The retention column, added to the tables of a database created before it.
const RETENTION_COLUMNS: [(&str, &str, &str); 3] = [
    ("conversations", "expires_at", "INTEGER"),
    ("transcript_entries", "expires_at", "INTEGER"),
    ("customers", "expires_at", "INTEGER"),
];

/// The outbox column of the processed-event record (JSON array of outbound messages; `NULL` for
/// none), added to a database created before it: an old record reads as an empty outbox.
const OUTBOX_COLUMNS: [(&str, &str, &str); 1] = [("conversation_events", "outbox", "TEXT")];

/// Indexes on `expires_at`: applied once the column exists (old databases are migrated first).
const RETENTION_SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS conversations_expires ON conversations (expires_at);
CREATE INDEX IF NOT EXISTS transcript_entries_expires ON transcript_entries (expires_at);
CREATE INDEX IF NOT EXISTS customers_expires ON customers (expires_at);
"#;

/// Indexes of [`ConversationStore::list_conversations`] (on columns every database has).
const LISTING_SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS conversations_queue
    ON conversations (json_extract(doc, '$.queueId'), last_activity_at);
CREATE INDEX IF NOT EXISTS conversations_agent
    ON conversations (json_extract(doc, '$.agentId'), last_activity_at);
CREATE INDEX IF NOT EXISTS conversations_opened
    ON conversations (account_id, json_extract(doc, '$.openedAt'));
"#;

/// The search index ([`ConversationStore::index_search`]): a customer's terms in one
/// conversation, space-separated, a row of `search_customers` per customer and conversation,
/// and an FTS5 index over them (external content, kept in step by
/// [`index_terms`]; the `ascii` tokenizer splits on the spaces only, so a term is matched as
/// `omniline_domain::search::terms` made it, whatever its script).
const SEARCH_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS search_customers (
    id              INTEGER PRIMARY KEY,
    account_id      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    terms           TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    at              INTEGER NOT NULL,
    expires_at      INTEGER,
    UNIQUE (account_id, user_id, conversation_id)
);
CREATE INDEX IF NOT EXISTS search_customers_expires ON search_customers (expires_at);
CREATE VIRTUAL TABLE IF NOT EXISTS search_terms USING fts5(
    terms, content = 'search_customers', content_rowid = 'id', tokenize = 'ascii'
);
"#;

/// [`ConversationStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteConversationStore {
    db: EmbeddedDb,
}

impl SqliteConversationStore {
    /// Creates the store's tables if needed, and adds the retention column to tables of an older
    /// database.
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(SCHEMA)?;
        db.add_columns(&RETENTION_COLUMNS)?;
        db.add_columns(&OUTBOX_COLUMNS)?;
        db.apply_schema(RETENTION_SCHEMA)?;
        db.apply_schema(LISTING_SCHEMA)?;
        db.apply_schema(SEARCH_SCHEMA)?;
        Ok(Self { db })
    }

    /// Applies `commit` in one transaction; with `slot_agent`, only if that agent's slot holds
    /// the conversation.
    async fn apply(
        &self,
        commit: &EventCommit,
        slot_agent: Option<&str>,
    ) -> Result<CommitOutcome, PortError> {
        let (commit, slot_agent) = (commit.clone(), slot_agent.map(str::to_owned));
        self.db
            .run(move |conn| apply_commit(conn, &commit, slot_agent.as_deref()))
            .await
    }
}

fn state_str(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

/// The row of `c` as the parameters `?1` to `?8` of its writes: id, account, source, state,
/// version, last activity, document, expiry.
fn conversation_row(c: &Conversation, expires_at: Option<i64>) -> rusqlite::Result<Vec<Value>> {
    Ok(vec![
        Value::Text(c.id.clone()),
        Value::Text(c.account_id.clone()),
        Value::Text(c.source_id.clone()),
        Value::Text(state_str(c.state).to_owned()),
        Value::Integer(version_i64(c.version)?),
        Value::Integer(c.last_activity_at),
        Value::Text(to_json(c)?),
        expires_at.map_or(Value::Null, Value::Integer),
    ])
}

/// Points `c`'s source at `c` unless another conversation holds it: whether it did.
fn point_open(tx: &Transaction<'_>, c: &Conversation) -> rusqlite::Result<bool> {
    let pointed = tx.execute(
        "INSERT INTO conversation_open (account_id, source_id, conversation_id)
         VALUES (?1, ?2, ?3)
         ON CONFLICT (account_id, source_id) DO NOTHING",
        params![c.account_id, c.source_id, c.id],
    )?;
    Ok(pointed == 1)
}

/// Whether the write went through; `false` means conflict (the caller rolls back).
fn write_conversation(
    tx: &Transaction<'_>,
    write: &ConversationWrite,
    expires_at: Option<i64>,
) -> rusqlite::Result<bool> {
    match write {
        ConversationWrite::Create(c) => {
            let inserted = tx.execute(
                "INSERT INTO conversations
                   (id, account_id, source_id, state, version, last_activity_at, doc, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO NOTHING",
                params_from_iter(conversation_row(c, expires_at)?),
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            if c.state == ConversationState::Closed {
                // Created already closed: it occupies no open slot.
                return Ok(true);
            }
            point_open(tx, c)
        }
        ConversationWrite::Update(c) => {
            let Some(previous) = c.version.checked_sub(1) else {
                return Ok(false);
            };
            let mut row = conversation_row(c, expires_at)?;
            row.push(Value::Integer(version_i64(previous)?));
            let updated = tx.execute(
                "UPDATE conversations
                 SET account_id = ?2, source_id = ?3, state = ?4, version = ?5,
                     last_activity_at = ?6, doc = ?7, expires_at = ?8
                 WHERE id = ?1 AND version = ?9",
                params_from_iter(row),
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
            point_open(tx, c)?;
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
    expires_at: Option<i64>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO transcript_entries
           (conversation_id, timestamp, event_id, message_id, doc, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (conversation_id, event_id) DO UPDATE SET
           timestamp = excluded.timestamp,
           message_id = excluded.message_id,
           doc = excluded.doc,
           expires_at = excluded.expires_at",
        params![
            entry.conversation_id,
            entry.timestamp,
            entry.event_id,
            entry.message_id,
            to_json(entry)?,
            expires_at
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
    let found: Option<(String, String, String)> = query_one(
        tx,
        "SELECT e.conversation_id, e.event_id, e.doc
         FROM transcript_messages m
         JOIN transcript_entries e
           ON e.conversation_id = m.conversation_id AND e.event_id = m.event_id
         WHERE m.account_id = ?1 AND m.message_id = ?2",
        params![account_id, message_id],
    )?;
    let Some((conversation_id, event_id, doc)) = found else {
        return Ok(());
    };
    let mut entry: TranscriptEntry = from_doc(&doc)?;
    // What the message gave the search index goes with it.
    if let Some((user_id, terms)) = omniline_domain::search::message_terms(&entry.event) {
        remove_terms(tx, account_id, &user_id, &conversation_id, &terms)?;
    }
    entry.retracted = true;
    entry.event = serde_json::Value::Null;
    tx.execute(
        "UPDATE transcript_entries SET doc = ?3 WHERE conversation_id = ?1 AND event_id = ?2",
        params![conversation_id, event_id, to_json(&entry)?],
    )?;
    Ok(())
}

/// Forgets the deduplication records expired at `now_secs` (DynamoDB's TTL does the same,
/// lazily).
fn forget_expired_events(tx: &Transaction<'_>, now_secs: i64) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM conversation_events WHERE expires_at <= ?1",
        params![now_secs],
    )
}

/// Applies `commit` at its `now_secs`; with `slot_agent`, only if that agent's slot holds the
/// conversation.
fn apply_commit(
    conn: &mut rusqlite::Connection,
    commit: &EventCommit,
    slot_agent: Option<&str>,
) -> rusqlite::Result<CommitOutcome> {
    let tx = conn.transaction()?;
    forget_expired_events(&tx, commit.now_secs)?;
    let outbox = if commit.outbox.is_empty() {
        None
    } else {
        Some(to_json(&commit.outbox)?)
    };
    let recorded = tx.execute(
        "INSERT INTO conversation_events (account_id, event_id, expires_at, outbox)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account_id, event_id) DO NOTHING",
        params![
            commit.account_id,
            commit.event_id,
            commit.dedupe_expires_at,
            outbox
        ],
    )?;
    if recorded == 0 {
        tx.rollback()?;
        return Ok(CommitOutcome::Duplicate);
    }
    if let Some(write) = &commit.conversation {
        if !write_conversation(&tx, write, commit.retain_until)? {
            tx.rollback()?;
            return Ok(CommitOutcome::Conflict);
        }
        // The transaction holds the write lock since its first statement: a release cannot
        // slip in between this check and the commit.
        if let Some(agent_id) = slot_agent {
            if !slot_held(&tx, agent_id, &write.conversation().id)? {
                tx.rollback()?;
                return Ok(CommitOutcome::Conflict);
            }
        }
    }
    if let Some(entry) = &commit.transcript {
        write_transcript(&tx, &commit.account_id, entry, commit.retain_until)?;
    }
    if let Some(message_id) = &commit.retract_message_id {
        retract(&tx, &commit.account_id, message_id)?;
    }
    if let Some(customer) = &commit.customer {
        tx.execute(
            "INSERT INTO customers (account_id, user_id, doc, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account_id, user_id) DO UPDATE SET
               doc = excluded.doc,
               expires_at = excluded.expires_at",
            params![
                customer.account_id,
                customer.user_id,
                to_json(customer)?,
                commit.retain_until
            ],
        )?;
    }
    for notification in &commit.notifications {
        crate::sqlite_agents::insert_notification(&tx, notification, commit.retain_until)?;
    }
    tx.commit()?;
    Ok(CommitOutcome::Committed)
}

/// The SQL and parameters of [`list`]: `None` when nothing can match.
fn list_query(filter: &ConversationFilter) -> rusqlite::Result<Option<(String, Vec<Value>)>> {
    // In one of the queues, or held by the agent: each term is served by its expression index.
    let mut terms = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.queue_ids.is_empty() {
        values.push(Value::Text(to_json(&filter.queue_ids)?));
        terms.push(format!(
            "json_extract(doc, '$.queueId') IN (SELECT value FROM json_each(?{}))",
            values.len()
        ));
    }
    if let Some(agent_id) = &filter.agent_id {
        values.push(Value::Text(agent_id.clone()));
        terms.push(format!(
            "json_extract(doc, '$.agentId') = ?{}",
            values.len()
        ));
    }
    if terms.is_empty() || filter.limit == 0 {
        return Ok(None);
    }
    let mut sql = format!(
        "SELECT doc FROM conversations WHERE ({})",
        terms.join(" OR ")
    );
    if let Some(state) = filter.state {
        values.push(Value::Text(state_str(state).to_owned()));
        sql.push_str(&format!(" AND state = ?{}", values.len()));
    }
    if let Some(after) = &filter.after {
        values.push(Value::Integer(after.last_activity_at));
        let at = values.len();
        values.push(Value::Text(after.id.clone()));
        sql.push_str(&format!(
            " AND (last_activity_at < ?{at} OR (last_activity_at = ?{at} AND id > ?{}))",
            values.len()
        ));
    }
    // More than SQLite's LIMIT can take means no limit.
    values.push(Value::Integer(i64::try_from(filter.limit).unwrap_or(-1)));
    sql.push_str(&format!(
        " ORDER BY last_activity_at DESC, id ASC LIMIT ?{}",
        values.len()
    ));
    Ok(Some((sql, values)))
}

/// The conversations matching `filter` (the semantics of [`ConversationFilter::matches`]), most
/// recent activity first, then by id, at most `filter.limit`.
fn list(
    conn: &rusqlite::Connection,
    filter: &ConversationFilter,
) -> rusqlite::Result<Vec<Conversation>> {
    let Some((sql, values)) = list_query(filter)? else {
        return Ok(Vec::new());
    };
    query_docs(conn, &sql, params_from_iter(values))
}

/// Deletes the conversations `ids` names (`?1`, or a query of ids taking `?1`) with their
/// transcript, message index rows and open pointer: how many conversation rows went.
fn delete_conversations(
    tx: &Transaction<'_>,
    ids: &str,
    param: impl rusqlite::ToSql,
) -> rusqlite::Result<usize> {
    for table in [
        "transcript_messages",
        "transcript_entries",
        "conversation_open",
    ] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE conversation_id IN ({ids})"),
            params![param],
        )?;
    }
    tx.execute(
        &format!("DELETE FROM conversations WHERE id IN ({ids})"),
        params![param],
    )
}

/// Deletes one conversation with its transcript, open pointer and message index rows; whether
/// the conversation row existed.
fn erase_conversation(conn: &mut rusqlite::Connection, id: &str) -> rusqlite::Result<bool> {
    let tx = conn.transaction()?;
    let deleted = delete_conversations(&tx, "?1", id)?;
    tx.commit()?;
    Ok(deleted > 0)
}

/// Deletes every row of the account, in one transaction.
fn purge(conn: &mut rusqlite::Connection, account_id: &str) -> rusqlite::Result<PurgeCounts> {
    let tx = conn.transaction()?;
    // Transcript entries have no account column: they go with the account's conversations (and
    // with the entries its message index points at, should a conversation row be missing).
    tx.execute(
        "DELETE FROM transcript_entries WHERE conversation_id IN (
           SELECT id FROM conversations WHERE account_id = ?1
           UNION SELECT conversation_id FROM transcript_messages WHERE account_id = ?1
         )",
        params![account_id],
    )?;
    tx.execute(
        "DELETE FROM transcript_messages WHERE account_id = ?1",
        params![account_id],
    )?;
    tx.execute(
        "DELETE FROM conversation_open WHERE account_id = ?1",
        params![account_id],
    )?;
    let conversations = tx.execute(
        "DELETE FROM conversations WHERE account_id = ?1",
        params![account_id],
    )?;
    let customers = tx.execute(
        "DELETE FROM customers WHERE account_id = ?1",
        params![account_id],
    )?;
    unindex(&tx, "account_id = ?1", params![account_id])?;
    tx.execute(
        "DELETE FROM conversation_events WHERE account_id = ?1",
        params![account_id],
    )?;
    tx.commit()?;
    Ok(PurgeCounts {
        conversations: conversations as u64,
        customers: customers as u64,
    })
}

/// Deletes what expired at or before `now`: conversations (with their transcript, open pointer
/// and message index), transcript entries (with their index rows), customers, and expired
/// deduplication records. Returns how many conversations and customers went.
fn sweep(conn: &mut rusqlite::Connection, now: i64) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    // `expires_at <= ?1` is never true for NULL: rows without retention stay.
    let conversations = delete_conversations(
        &tx,
        "SELECT id FROM conversations WHERE expires_at <= ?1",
        now,
    )?;
    tx.execute(
        "DELETE FROM transcript_messages WHERE EXISTS (
           SELECT 1 FROM transcript_entries e
           WHERE e.conversation_id = transcript_messages.conversation_id
             AND e.event_id = transcript_messages.event_id
             AND e.expires_at <= ?1
         )",
        params![now],
    )?;
    tx.execute(
        "DELETE FROM transcript_entries WHERE expires_at <= ?1",
        params![now],
    )?;
    let customers = tx.execute("DELETE FROM customers WHERE expires_at <= ?1", params![now])?;
    unindex(&tx, "expires_at <= ?1", params![now])?;
    // Agents' notifications (a customer's name and words) go with retention too; the table is
    // the agent store's, in the same database when both are open on it.
    let notifications: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('agent_notifications')
                        WHERE name = 'expires_at')",
        [],
        |row| row.get(0),
    )?;
    if notifications {
        tx.execute(
            "DELETE FROM conversation_notifications WHERE notification_id IN (
               SELECT id FROM agent_notifications WHERE expires_at <= ?1)",
            params![now],
        )?;
        tx.execute(
            "DELETE FROM agent_notifications WHERE expires_at <= ?1",
            params![now],
        )?;
    }
    forget_expired_events(&tx, now)?;
    tx.commit()?;
    Ok((conversations + customers) as u64)
}

#[async_trait]
impl ConversationStore for SqliteConversationStore {
    async fn event_recorded(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<bool, PortError> {
        let (account_id, event_id) = (account_id.to_owned(), event_id.to_owned());
        self.db
            .run(move |conn| {
                exists(
                    conn,
                    "SELECT 1 FROM conversation_events
                     WHERE account_id = ?1 AND event_id = ?2 AND expires_at > ?3",
                    (account_id, event_id, now_secs),
                )
            })
            .await
    }

    async fn recorded_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<OutboundMessage>>, PortError> {
        let (account_id, event_id) = (account_id.to_owned(), event_id.to_owned());
        self.db
            .run(move |conn| {
                let outbox: Option<Option<String>> = query_value(
                    conn,
                    "SELECT outbox FROM conversation_events
                     WHERE account_id = ?1 AND event_id = ?2 AND expires_at > ?3",
                    (account_id, event_id, now_secs),
                )?;
                outbox
                    .map(|text| match text {
                        Some(text) => from_json(0, &text),
                        None => Ok(Vec::new()),
                    })
                    .transpose()
            })
            .await
    }

    async fn open_conversation(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Option<Conversation>, PortError> {
        self.db
            .doc(
                "SELECT c.doc FROM conversation_open o
                 JOIN conversations c ON c.id = o.conversation_id
                 WHERE o.account_id = ?1 AND o.source_id = ?2",
                (account_id.to_owned(), source_id.to_owned()),
            )
            .await
    }

    async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, PortError> {
        self.db
            .doc(
                "SELECT doc FROM conversations WHERE id = ?1",
                (conversation_id.to_owned(),),
            )
            .await
    }

    async fn open_conversations(&self) -> Result<Vec<Conversation>, PortError> {
        self.db
            .docs(
                "SELECT doc FROM conversations WHERE state <> 'closed' ORDER BY last_activity_at, id",
                [],
            )
            .await
    }

    async fn customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Customer>, PortError> {
        self.db
            .doc(
                "SELECT doc FROM customers WHERE account_id = ?1 AND user_id = ?2",
                (account_id.to_owned(), user_id.to_owned()),
            )
            .await
    }

    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError> {
        self.apply(commit, None).await
    }

    async fn commit_assignment(
        &self,
        commit: &EventCommit,
        agent_id: &str,
    ) -> Result<CommitOutcome, PortError> {
        commit.assigned_conversation()?;
        self.apply(commit, Some(agent_id)).await
    }

    async fn release_unless_assigned(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<bool, PortError> {
        let (agent_id, conversation_id) = (agent_id.to_owned(), conversation_id.to_owned());
        self.db
            .run(move |conn| {
                // One immediate transaction: the commit of an assignment (also immediate) comes
                // wholly before or after.
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let stored: Option<Conversation> = query_doc(
                    &tx,
                    "SELECT doc FROM conversations WHERE id = ?1",
                    [&conversation_id],
                )?;
                // Kept: the stored conversation holds this agent's slot (open with it, offered
                // to it, or its wrap-up pending).
                if stored.is_some_and(|c| c.slot_holder() == Some(agent_id.as_str())) {
                    return Ok(false);
                }
                let released = tx.execute(
                    "DELETE FROM agent_conversations WHERE agent_id = ?1 AND conversation_id = ?2",
                    params![agent_id, conversation_id],
                )?;
                tx.commit()?;
                Ok(released > 0)
            })
            .await
    }

    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError> {
        self.db
            .docs(
                "SELECT doc FROM transcript_entries WHERE conversation_id = ?1
                 ORDER BY timestamp ASC, event_id ASC",
                (conversation_id.to_owned(),),
            )
            .await
    }

    async fn latest_transcript(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, PortError> {
        // More than SQLite's LIMIT can take means no limit.
        let limit = i64::try_from(limit).unwrap_or(-1);
        self.db
            .docs(
                "SELECT doc FROM transcript_entries WHERE conversation_id = ?1
                 ORDER BY timestamp DESC, event_id DESC LIMIT ?2",
                (conversation_id.to_owned(), limit),
            )
            .await
    }

    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError> {
        let filter = filter.clone();
        self.db.run(move |conn| list(conn, &filter)).await
    }

    async fn count_in_queue(
        &self,
        queue_id: &str,
        state: ConversationState,
        cap: usize,
    ) -> Result<usize, PortError> {
        let (queue, state) = (queue_id.to_owned(), state_str(state));
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        let count: i64 = self
            .db
            .run(move |conn| {
                // The queue's expression index, then the state of each of its rows.
                conn.query_row(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM conversations
                      WHERE json_extract(doc, '$.queueId') = ?1 AND state = ?2 LIMIT ?3)",
                    params![queue, state, cap],
                    |r| r.get(0),
                )
            })
            .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    async fn conversations_of_source(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Vec<Conversation>, PortError> {
        let mut conversations: Vec<Conversation> = self
            .db
            .docs(
                "SELECT doc FROM conversations WHERE account_id = ?1 AND source_id = ?2",
                (account_id.to_owned(), source_id.to_owned()),
            )
            .await?;
        conversations.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        Ok(conversations)
    }

    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, PortError> {
        let id = conversation_id.to_owned();
        self.db.run(move |conn| erase_conversation(conn, &id)).await
    }

    async fn delete_customer(&self, account_id: &str, user_id: &str) -> Result<bool, PortError> {
        let (account_id, user_id) = (account_id.to_owned(), user_id.to_owned());
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let deleted = tx.execute(
                    "DELETE FROM customers WHERE account_id = ?1 AND user_id = ?2",
                    params![account_id, user_id],
                )?;
                // Their words go with them.
                unindex(
                    &tx,
                    "account_id = ?1 AND user_id = ?2",
                    params![account_id, user_id],
                )?;
                tx.commit()?;
                Ok(deleted > 0)
            })
            .await
    }

    /// The whole purge in one page (one transaction, by the account's indexed columns): the
    /// next cursor is always `None`, whatever `cursor` and `page_size`.
    async fn purge_account_page(
        &self,
        account_id: &str,
        _cursor: Option<&str>,
        _page_size: u32,
    ) -> Result<PurgePage<PurgeCounts>, PortError> {
        let account_id = account_id.to_owned();
        let erased = self.db.run(move |conn| purge(conn, &account_id)).await?;
        Ok(PurgePage { erased, next: None })
    }

    async fn sweep_expired(&self, now_secs: i64) -> Result<u64, PortError> {
        self.db.run(move |conn| sweep(conn, now_secs)).await
    }

    async fn conversations_opened_on(
        &self,
        account_id: &str,
        day_start: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, PortError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .docs(
                "SELECT doc FROM conversations
                 WHERE account_id = ?1 AND json_extract(doc, '$.openedAt') >= ?2
                   AND json_extract(doc, '$.openedAt') < ?3
                 LIMIT ?4",
                (
                    account_id.to_owned(),
                    day_start,
                    day_start.saturating_add(omniline_domain::reports::DAY_LENGTH_MS),
                    limit,
                ),
            )
            .await
    }

    async fn index_search(
        &self,
        entry: &SearchEntry,
        retain_until: Option<i64>,
    ) -> Result<(), PortError> {
        let entry = entry.clone();
        self.db
            .run(move |conn| index_terms(conn, &entry, retain_until))
            .await
    }

    async fn unindex_search(
        &self,
        account_id: &str,
        user_id: &str,
        terms: &[String],
    ) -> Result<(), PortError> {
        let (account_id, user_id, terms) =
            (account_id.to_owned(), user_id.to_owned(), terms.to_vec());
        self.db
            .run(move |conn| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let conversations: Vec<String> = {
                    let mut stmt = tx.prepare(
                        "SELECT conversation_id FROM search_customers
                         WHERE account_id = ?1 AND user_id = ?2",
                    )?;
                    let rows = stmt.query_map(params![account_id, user_id], |row| row.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for conversation_id in conversations {
                    remove_terms(&tx, &account_id, &user_id, &conversation_id, &terms)?;
                }
                tx.commit()
            })
            .await
    }

    async fn search(
        &self,
        account_id: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<SearchHit>, PortError> {
        let (account_id, terms) = (account_id.to_owned(), terms.to_vec());
        self.db
            .run(move |conn| {
                let mut found: Option<QueryMatches> = None;
                for term in &terms {
                    let these = term_customers(conn, &account_id, term)?;
                    found = Some(intersect(found, these));
                }
                Ok(ranked(&account_id, found.unwrap_or_default(), limit))
            })
            .await
    }
}

/// Adds `entry`'s terms to its customer's row for its conversation (the union, in the order
/// first indexed), and keeps the FTS5 index in step, in one transaction.
fn index_terms(
    conn: &mut rusqlite::Connection,
    entry: &SearchEntry,
    retain_until: Option<i64>,
) -> rusqlite::Result<()> {
    // Immediate: a read then a write, raced by other connections (workers) on the database.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let existing = search_row(
        &tx,
        &entry.account_id,
        &entry.user_id,
        &entry.conversation_id,
    )?;
    let mut terms: Vec<String> = existing
        .as_ref()
        .map(|(_, t)| t.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    for t in &entry.terms {
        if !terms.contains(t) {
            terms.push(t.clone());
        }
    }
    let joined = terms.join(" ");
    let id = match existing {
        Some((id, old)) => {
            fts_delete(&tx, id, &old)?;
            tx.execute(
                "UPDATE search_customers SET terms = ?2, at = MAX(at, ?3), expires_at = ?4
                 WHERE id = ?1",
                params![id, joined, entry.at, retain_until],
            )?;
            id
        }
        None => {
            tx.execute(
                "INSERT INTO search_customers
                   (account_id, user_id, terms, conversation_id, at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    entry.account_id,
                    entry.user_id,
                    joined,
                    entry.conversation_id,
                    entry.at,
                    retain_until
                ],
            )?;
            tx.last_insert_rowid()
        }
    };
    fts_insert(&tx, id, &joined)?;
    tx.commit()
}

/// The customer's search row for `conversation_id`: its id and terms.
fn search_row(
    tx: &Transaction<'_>,
    account_id: &str,
    user_id: &str,
    conversation_id: &str,
) -> rusqlite::Result<Option<(i64, String)>> {
    tx.query_row(
        "SELECT id, terms FROM search_customers
         WHERE account_id = ?1 AND user_id = ?2 AND conversation_id = ?3",
        params![account_id, user_id, conversation_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()
}

/// Takes a row's `terms` (exactly as stored: FTS5's external-content rule) out of the FTS5 index.
fn fts_delete(tx: &Transaction<'_>, id: i64, terms: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO search_terms (search_terms, rowid, terms) VALUES ('delete', ?1, ?2)",
        params![id, terms],
    )?;
    Ok(())
}

/// Puts a row's `terms` in the FTS5 index.
fn fts_insert(tx: &Transaction<'_>, id: i64, terms: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO search_terms (rowid, terms) VALUES (?1, ?2)",
        params![id, terms],
    )?;
    Ok(())
}

/// Takes `terms` out of the customer's search row for `conversation_id` (the row goes when
/// nothing is left), keeping the FTS5 index in step.
fn remove_terms(
    tx: &Transaction<'_>,
    account_id: &str,
    user_id: &str,
    conversation_id: &str,
    terms: &[String],
) -> rusqlite::Result<()> {
    let Some((id, old)) = search_row(tx, account_id, user_id, conversation_id)? else {
        return Ok(());
    };
    let kept: Vec<&str> = old
        .split(' ')
        .filter(|t| !terms.iter().any(|gone| gone == t))
        .collect();
    fts_delete(tx, id, &old)?;
    if kept.is_empty() {
        tx.execute("DELETE FROM search_customers WHERE id = ?1", params![id])?;
        return Ok(());
    }
    let joined = kept.join(" ");
    tx.execute(
        "UPDATE search_customers SET terms = ?2 WHERE id = ?1",
        params![id, joined],
    )?;
    fts_insert(tx, id, &joined)?;
    Ok(())
}

/// Per customer of `account_id` whose rows hold `term`: the latest row's conversation and time.
fn term_customers(
    conn: &rusqlite::Connection,
    account_id: &str,
    term: &str,
) -> rusqlite::Result<TermMatches> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.user_id, c.conversation_id, c.at
         FROM search_terms f JOIN search_customers c ON c.id = f.rowid
         WHERE search_terms MATCH ?1 AND c.account_id = ?2",
    )?;
    // One quoted FTS5 string: the term as it is.
    let query = format!("\"{}\"", term.replace('"', "\"\""));
    let rows = stmt.query_map(params![query, account_id], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut found = TermMatches::new();
    for row in rows {
        let (user, conversation, at) = row?;
        keep_latest(&mut found, user, conversation, at);
    }
    Ok(found)
}

/// Removes the search rows `condition` selects (on `search_customers`), and their FTS5 terms.
fn unindex(
    tx: &Transaction<'_>,
    condition: &str,
    params: impl rusqlite::Params + Clone,
) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO search_terms (search_terms, rowid, terms)
             SELECT 'delete', id, terms FROM search_customers WHERE {condition}"
        ),
        params.clone(),
    )?;
    tx.execute(
        &format!("DELETE FROM search_customers WHERE {condition}"),
        params,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniline_testkit::conversation_contract::{
        commit, conversation, create, customer, entry, filter, update, ACCOUNT, NOW,
    };

    fn store(dir: &tempfile::TempDir) -> SqliteConversationStore {
        SqliteConversationStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    // -----------------------------------------------------------------------------------------
    // The ConversationStore contract (omniline_testkit::conversation_contract), also run against
    // DynamoDB on moto (tests/tests/dynamo_conversations.rs).

    use omniline_testkit::conversation_contract as contract;

    /// The agent store on the same database (whose slots `commit_assignment` checks).
    fn agents(dir: &tempfile::TempDir) -> crate::sqlite_agents::SqliteAgentStore {
        crate::sqlite_agents::SqliteAgentStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    contract_scenarios!(store =>
        commit_then_redelivery_is_a_duplicate_and_changes_nothing,
        the_outbox_is_recorded_with_the_event_and_read_back,
        the_same_event_id_under_another_account_is_not_a_duplicate,
        dedupe_window_follows_the_callers_clock_years_away_from_today,
        an_expired_dedupe_record_lets_the_event_through,
        create_conflicts_with_an_open_conversation_and_writes_nothing,
        update_with_a_stale_version_conflicts_and_writes_nothing,
        closing_frees_the_source_for_a_new_conversation,
        a_conversation_created_closed_takes_no_open_pointer,
        transcript_is_ordered_by_timestamp_then_event_id,
        unsend_retracts_the_message_and_an_unknown_message_is_a_no_op,
        customers_are_upserted,
        conversations_of_source_lists_every_state_oldest_first,
        list_conversations_reads_past_a_page_of_big_conversations,
        delete_conversation_leaves_a_newer_open_pointer_alone,
        delete_customer_erases_one_profile,
        reopening_a_closed_conversation_while_the_source_has_another_conflicts,
        list_conversations_filters_orders_by_recent_activity_and_limits,
        conversations_opened_on_reads_one_account_and_day,
        search_finds_customers_with_every_term,
        unsend_and_erasure_take_words_out_of_the_search_index,
    );

    /// Retention deletes agents' notifications (a customer's name and words) with the rest,
    /// and keeps those stored without an expiry.
    #[tokio::test]
    async fn the_sweep_deletes_expired_notifications() {
        use omniline_ports::AgentStore;
        use omniline_testkit::agent_contract::notification;
        let dir = tempfile::tempdir().unwrap();
        let conversations = store(&dir);
        let agents = agents(&dir);
        agents
            .notify(&notification("old", "a", 1), Some(NOW - 1))
            .await
            .unwrap();
        agents
            .notify(&notification("later", "a", 2), Some(NOW + 100))
            .await
            .unwrap();
        agents
            .notify(&notification("kept", "a", 3), None)
            .await
            .unwrap();
        conversations.sweep_expired(NOW).await.unwrap();
        let left: Vec<String> = agents
            .notifications("a")
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(left, ["later", "kept"]);
        // A store alone on its database sweeps without the agents' tables.
        let alone = tempfile::tempdir().unwrap();
        store(&alone).sweep_expired(NOW).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_commits_of_one_event_commit_once() {
        let dir = tempfile::tempdir().unwrap();
        contract::concurrent_commits_of_one_event_commit_once(std::sync::Arc::new(store(&dir)))
            .await;
    }

    #[tokio::test]
    async fn the_latest_transcript_entries_come_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        contract::the_latest_transcript_entries_come_newest_first(&store(&dir)).await;
    }

    #[tokio::test]
    async fn notifications_are_committed_with_the_event() {
        let dir = tempfile::tempdir().unwrap();
        contract::notifications_are_committed_with_the_event(&store(&dir), &agents(&dir)).await;
    }

    #[tokio::test]
    async fn an_assignment_commit_needs_the_agents_slot() {
        let dir = tempfile::tempdir().unwrap();
        contract::an_assignment_commit_needs_the_agents_slot(&store(&dir), &agents(&dir)).await;
    }

    #[tokio::test]
    async fn a_claim_is_given_back_unless_the_conversation_is_the_agents() {
        let dir = tempfile::tempdir().unwrap();
        contract::a_claim_is_given_back_unless_the_conversation_is_the_agents(
            &store(&dir),
            &agents(&dir),
        )
        .await;
    }

    /// The contract, then the rows: no message index row of c1 is left, c2's is.
    #[tokio::test]
    async fn delete_conversation_erases_its_transcript_pointer_and_index_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        contract::delete_conversation_erases_its_transcript_pointer_and_index_only(&s).await;
        for table in ["conversations", "transcript_entries", "transcript_messages"] {
            let column = if table == "conversations" {
                "id"
            } else {
                "conversation_id"
            };
            assert_eq!(
                count(&s, table, &format!("{column} = 'c1'")).await,
                0,
                "{table}"
            );
        }
        assert_eq!(
            count(&s, "conversation_open", "conversation_id = 'c1'").await,
            0
        );
        assert_eq!(
            count(&s, "transcript_messages", "message_id = 'm-e3'").await,
            1
        );
    }

    /// The contract's three steps; between them, the rows: nothing of the purged account is left
    /// in any table, and the kept accounts' rows are exactly as they were.
    #[tokio::test]
    async fn purge_erases_one_account_and_nothing_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        contract::purge::populate(&s).await;
        let kept_before: Vec<Vec<String>> = {
            let mut dumps = Vec::new();
            for account in contract::purge::KEPT {
                dumps.push(dump(&s, account).await);
            }
            dumps
        };
        let purged_before = dump(&s, contract::purge::PURGED).await;
        assert!(purged_before.len() > 50, "{purged_before:#?}");
        assert!(kept_before.iter().all(|rows| rows.len() >= 10));

        contract::purge::purge_erases_one_account_and_nothing_of_another(&s, 1000, false).await;
        assert_eq!(
            dump(&s, contract::purge::PURGED).await,
            Vec::<String>::new()
        );
        for (account, before) in contract::purge::KEPT.iter().zip(&kept_before) {
            assert_eq!(&dump(&s, account).await, before, "{account}");
        }

        contract::purge::a_purged_account_starts_afresh_and_the_others_work_on(&s).await;
    }

    /// The contract in pages of one, each run twice: the database does it in one page.
    #[tokio::test]
    async fn purge_in_small_pages_each_run_twice() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(contract::purge::run(&store(&dir), 1, true).await, 1);
    }

    // -----------------------------------------------------------------------------------------
    // SQLite only

    /// An update at version 0 (no previous version) is a conflict here; the DynamoDB store
    /// refuses it as an error before writing.
    #[tokio::test]
    async fn an_update_at_version_0_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        s.commit(&create("e1", c1.clone(), None)).await.unwrap();
        let zero = conversation("c1", "U1", ConversationState::Active, 0);
        assert_eq!(
            s.commit(&update("e5", zero, None)).await.unwrap(),
            CommitOutcome::Conflict
        );
        assert!(!s.event_recorded(ACCOUNT, "e5", NOW).await.unwrap());
        assert_eq!(s.conversation("c1").await.unwrap(), Some(c1));
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        let e1 = entry("c1", "e1", 10);
        let alice = customer("U1", "Alice", 2);
        {
            let s = store(&dir);
            let first = EventCommit {
                customer: Some(alice.clone()),
                ..create("e1", c1.clone(), Some(e1.clone()))
            };
            assert_eq!(s.commit(&first).await.unwrap(), CommitOutcome::Committed);
        }
        let s = store(&dir);
        assert!(s.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
        assert_eq!(
            s.open_conversation(ACCOUNT, "U1").await.unwrap(),
            Some(c1.clone())
        );
        assert_eq!(s.conversation("c1").await.unwrap(), Some(c1));
        assert_eq!(s.transcript("c1").await.unwrap(), vec![e1]);
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), Some(alice));
        // The unsend index survived too.
        s.commit(&EventCommit {
            retract_message_id: Some("m-e1".into()),
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

    /// Asserts [`expires_at`] of each `(table, filter, expected)`.
    async fn assert_expiries(
        s: &SqliteConversationStore,
        expected: &[(&str, &str, Option<Option<i64>>)],
    ) {
        for (table, filter, want) in expected {
            assert_eq!(
                expires_at(s, table, filter).await,
                *want,
                "{table}: {filter}"
            );
        }
    }

    /// Raw `SELECT expires_at FROM {table} WHERE {filter}` (`None`: no such row).
    async fn expires_at(
        s: &SqliteConversationStore,
        table: &str,
        filter: &str,
    ) -> Option<Option<i64>> {
        let sql = format!("SELECT expires_at FROM {table} WHERE {filter}");
        s.db.run(move |conn| crate::sql::query_value(conn, &sql, []))
            .await
            .unwrap()
    }

    /// Raw row count of `SELECT count(*) FROM {table} WHERE {filter}`.
    async fn count(s: &SqliteConversationStore, table: &str, filter: &str) -> i64 {
        let sql = format!("SELECT count(*) FROM {table} WHERE {filter}");
        s.db.run(move |conn| conn.query_row(&sql, [], |r| r.get(0)))
            .await
            .unwrap()
    }

    /// Whether a dumped row mentions `account`: as a value (`"acc1"`), inside a JSON document
    /// (`\"acc1\"`) or as the prefix of an id (`acc1-c1`), never as the start of another
    /// account's id (`acc10`).
    fn mentions(row: &str, account: &str) -> bool {
        [
            format!("{account}\""),
            format!("{account}\\\""),
            format!("{account}-"),
        ]
        .iter()
        .any(|token| row.contains(token.as_str()))
    }

    /// Every row of every table of the store that mentions `account`, as text, for "nothing
    /// else changed" checks.
    async fn dump(s: &SqliteConversationStore, account: &str) -> Vec<String> {
        let filter = account.to_owned();
        s.db.run(move |conn| {
            let mut rows = Vec::new();
            for table in [
                "conversation_events",
                "conversations",
                "conversation_open",
                "transcript_entries",
                "transcript_messages",
                "customers",
            ] {
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
                let columns = stmt.column_count();
                let mut query = stmt.query([])?;
                while let Some(row) = query.next()? {
                    let mut text = format!("{table}:");
                    for i in 0..columns {
                        let value: rusqlite::types::Value = row.get(i)?;
                        text.push_str(&format!(" {value:?}"));
                    }
                    if mentions(&text, &filter) {
                        rows.push(text);
                    }
                }
            }
            rows.sort();
            Ok(rows)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn retain_until_is_stored_and_refreshed_by_each_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let first = EventCommit {
            retain_until: Some(5_000),
            customer: Some(customer("U1", "Alice", 2)),
            ..create(
                "e1",
                conversation("c1", "U1", ConversationState::Waiting, 1),
                Some(entry("c1", "e1", 10)),
            )
        };
        assert_eq!(s.commit(&first).await.unwrap(), CommitOutcome::Committed);
        assert_expiries(
            &s,
            &[
                ("conversations", "id = 'c1'", Some(Some(5_000))),
                ("transcript_entries", "event_id = 'e1'", Some(Some(5_000))),
                ("customers", "user_id = 'U1'", Some(Some(5_000))),
            ],
        )
        .await;

        // The next write refreshes the rows it writes; `None` clears retention.
        let second = EventCommit {
            retain_until: Some(9_000),
            ..update(
                "e2",
                conversation("c1", "U1", ConversationState::Active, 2),
                Some(entry("c1", "e2", 20)),
            )
        };
        assert_eq!(s.commit(&second).await.unwrap(), CommitOutcome::Committed);
        assert_expiries(
            &s,
            &[
                ("conversations", "id = 'c1'", Some(Some(9_000))),
                ("transcript_entries", "event_id = 'e2'", Some(Some(9_000))),
                ("transcript_entries", "event_id = 'e1'", Some(Some(5_000))),
            ],
        )
        .await;
        s.commit(&EventCommit {
            customer: Some(customer("U1", "Alicia", 2)),
            ..commit("e3")
        })
        .await
        .unwrap();
        assert_eq!(
            expires_at(&s, "customers", "user_id = 'U1'").await,
            Some(None)
        );

        // Retracting keeps the entry's retention.
        s.commit(&EventCommit {
            retain_until: Some(1),
            retract_message_id: Some("m-e1".into()),
            ..commit("e4")
        })
        .await
        .unwrap();
        assert!(s.transcript("c1").await.unwrap()[0].retracted);
        assert_eq!(
            expires_at(&s, "transcript_entries", "event_id = 'e1'").await,
            Some(Some(5_000))
        );
    }

    #[tokio::test]
    async fn sweep_deletes_what_expired_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        // c1 (U1) expires at 1000 with its entry; c2 (U2) at 5000 but one of its entries at 1000;
        // c3 (U3) has no retention. Customers likewise.
        for (event_id, id, user, retain) in [
            ("e1", "c1", "U1", Some(1_000)),
            ("e2", "c2", "U2", Some(5_000)),
            ("e3", "c3", "U3", None),
        ] {
            let c = EventCommit {
                retain_until: retain,
                customer: Some(customer(user, user, 2)),
                ..create(
                    event_id,
                    conversation(id, user, ConversationState::Waiting, 1),
                    Some(entry(id, event_id, 10)),
                )
            };
            assert_eq!(s.commit(&c).await.unwrap(), CommitOutcome::Committed);
        }
        let old_entry = EventCommit {
            retain_until: Some(1_000),
            transcript: Some(entry("c2", "e2-old", 5)),
            ..commit("e2-old")
        };
        s.commit(&old_entry).await.unwrap();

        // Nothing has expired yet at 999.
        assert_eq!(s.sweep_expired(999).await.unwrap(), 0);
        assert!(s.conversation("c1").await.unwrap().is_some());

        // At exactly 1000: c1 and customer U1 (2), and c2's old entry.
        assert_eq!(s.sweep_expired(1_000).await.unwrap(), 2);
        assert_eq!(s.conversation("c1").await.unwrap(), None);
        assert!(s.transcript("c1").await.unwrap().is_empty());
        assert_eq!(s.open_conversation(ACCOUNT, "U1").await.unwrap(), None);
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), None);
        assert_eq!(
            count(&s, "transcript_messages", "conversation_id = 'c1'").await,
            0
        );
        assert_eq!(
            count(&s, "transcript_messages", "message_id = 'm-e2-old'").await,
            0
        );
        let c2: Vec<_> = s
            .transcript("c2")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(c2, ["e2"]);
        assert!(s.open_conversation(ACCOUNT, "U2").await.unwrap().is_some());
        assert!(s.customer(ACCOUNT, "U2").await.unwrap().is_some());
        assert!(s.open_conversation(ACCOUNT, "U3").await.unwrap().is_some());
        assert_eq!(s.transcript("c3").await.unwrap().len(), 1);
        assert!(s.customer(ACCOUNT, "U3").await.unwrap().is_some());
        // The source is free again; the event records are the deduplication window's business.
        assert!(s.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
        let reopened = create(
            "e5",
            conversation("c5", "U1", ConversationState::Waiting, 1),
            None,
        );
        assert_eq!(s.commit(&reopened).await.unwrap(), CommitOutcome::Committed);

        // Far in the future: c2 and U2 go; what has no retention stays.
        assert_eq!(s.sweep_expired(i64::MAX).await.unwrap(), 2);
        assert_eq!(s.conversation("c2").await.unwrap(), None);
        assert!(s.transcript("c2").await.unwrap().is_empty());
        assert_eq!(s.customer(ACCOUNT, "U2").await.unwrap(), None);
        assert!(s.conversation("c3").await.unwrap().is_some());
        assert!(s.conversation("c5").await.unwrap().is_some());
        assert!(s.customer(ACCOUNT, "U3").await.unwrap().is_some());
        assert_eq!(s.sweep_expired(i64::MAX).await.unwrap(), 0);
    }

    /// The tables as the first release created them, without `expires_at`.
    const OLD_SCHEMA: &str = r#"
    CREATE TABLE conversation_events (
        account_id TEXT NOT NULL, event_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, event_id));
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY, account_id TEXT NOT NULL, source_id TEXT NOT NULL,
        state TEXT NOT NULL, version INTEGER NOT NULL, last_activity_at INTEGER NOT NULL,
        doc TEXT NOT NULL);
    CREATE INDEX conversations_source ON conversations (account_id, source_id);
    CREATE TABLE conversation_open (
        account_id TEXT NOT NULL, source_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
        PRIMARY KEY (account_id, source_id));
    CREATE TABLE transcript_entries (
        conversation_id TEXT NOT NULL, timestamp INTEGER NOT NULL, event_id TEXT NOT NULL,
        message_id TEXT, doc TEXT NOT NULL, PRIMARY KEY (conversation_id, event_id));
    CREATE TABLE transcript_messages (
        account_id TEXT NOT NULL, message_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
        event_id TEXT NOT NULL, PRIMARY KEY (account_id, message_id));
    CREATE TABLE customers (
        account_id TEXT NOT NULL, user_id TEXT NOT NULL, doc TEXT NOT NULL,
        PRIMARY KEY (account_id, user_id));
    "#;

    #[tokio::test]
    async fn an_old_database_gets_the_retention_column() {
        let dir = tempfile::tempdir().unwrap();
        let c1 = conversation("c1", "U1", ConversationState::Waiting, 1);
        let e1 = entry("c1", "e1", 10);
        let alice = customer("U1", "Alice", 2);
        {
            let conn = rusqlite::Connection::open(dir.path().join("omniline.db")).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO conversations VALUES ('c1', ?1, 'U1', 'waiting', 1, 1, ?2)",
                params![ACCOUNT, serde_json::to_string(&c1).unwrap()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO conversation_open VALUES (?1, 'U1', 'c1')",
                params![ACCOUNT],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO transcript_entries VALUES ('c1', 10, 'e1', 'm-e1', ?1)",
                params![serde_json::to_string(&e1).unwrap()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO customers VALUES (?1, 'U1', ?2)",
                params![ACCOUNT, serde_json::to_string(&alice).unwrap()],
            )
            .unwrap();
        }
        let s = store(&dir);
        for (table, column, _) in RETENTION_COLUMNS {
            let names =
                s.db.run(move |conn| crate::sql::column_names(conn, table))
                    .await
                    .unwrap();
            assert_eq!(
                names.iter().filter(|n| *n == column).count(),
                1,
                "{table}: {names:?}"
            );
        }
        // The old rows read as before, without retention.
        assert_eq!(s.open_conversation(ACCOUNT, "U1").await.unwrap(), Some(c1));
        assert_eq!(s.transcript("c1").await.unwrap(), vec![e1]);
        assert_eq!(s.customer(ACCOUNT, "U1").await.unwrap(), Some(alice));
        assert_eq!(
            expires_at(&s, "conversations", "id = 'c1'").await,
            Some(None)
        );
        assert_eq!(s.sweep_expired(i64::MAX).await.unwrap(), 0);

        // New writes carry retention, and the sweep uses it.
        let next = EventCommit {
            retain_until: Some(1_000),
            ..update(
                "e2",
                conversation("c1", "U1", ConversationState::Active, 2),
                Some(entry("c1", "e2", 20)),
            )
        };
        assert_eq!(s.commit(&next).await.unwrap(), CommitOutcome::Committed);
        assert_eq!(s.sweep_expired(1_000).await.unwrap(), 1);
        assert_eq!(s.conversation("c1").await.unwrap(), None);
        assert!(s.transcript("c1").await.unwrap().is_empty());

        // Opening again (columns present) is a no-op; so is a second store on the same database.
        drop(s);
        let again = store(&dir);
        SqliteConversationStore::new(again.db.clone()).unwrap();
        assert!(again.customer(ACCOUNT, "U1").await.unwrap().is_some());
    }
    /// A database created before outboxes were stored: the column is added, an old record reads
    /// as recorded with an empty outbox, and new records carry theirs.
    #[tokio::test]
    async fn an_old_database_gets_the_outbox_column() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join("omniline.db")).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            conn.execute(
                "INSERT INTO conversation_events VALUES (?1, 'e0', ?2)",
                params![ACCOUNT, NOW + 100],
            )
            .unwrap();
        }
        let s = store(&dir);
        let names =
            s.db.run(|conn| crate::sql::column_names(conn, "conversation_events"))
                .await
                .unwrap();
        assert_eq!(
            names.iter().filter(|n| *n == "outbox").count(),
            1,
            "{names:?}"
        );
        assert!(s.event_recorded(ACCOUNT, "e0", NOW).await.unwrap());
        assert_eq!(
            s.recorded_outbox(ACCOUNT, "e0", NOW).await.unwrap(),
            Some(vec![])
        );
        let outbox = vec![omniline_testkit::conversation_contract::outbound(
            "e1:router:0",
            "hi",
        )];
        let next = EventCommit {
            outbox: outbox.clone(),
            ..commit("e1")
        };
        assert_eq!(s.commit(&next).await.unwrap(), CommitOutcome::Committed);
        assert_eq!(
            s.recorded_outbox(ACCOUNT, "e1", NOW).await.unwrap(),
            Some(outbox)
        );
        // Opening again (column present) is a no-op.
        drop(s);
        assert!(store(&dir)
            .recorded_outbox(ACCOUNT, "e1", NOW)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn list_conversations_uses_the_expression_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for (f, indexes) in [
            (
                filter(
                    Some(ConversationState::Active),
                    &["q1", "q2"],
                    Some("a1"),
                    10,
                ),
                &["conversations_queue", "conversations_agent"][..],
            ),
            (
                filter(None, &["q1"], None, 10),
                &["conversations_queue"][..],
            ),
            (
                filter(None, &[], Some("a1"), 10),
                &["conversations_agent"][..],
            ),
        ] {
            let (sql, values) = list_query(&f).unwrap().unwrap();
            let plan =
                s.db.run(move |conn| {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt.query_map(rusqlite::params_from_iter(values), |r| {
                        r.get::<_, String>(3)
                    })?;
                    rows.collect::<rusqlite::Result<Vec<_>>>()
                })
                .await
                .unwrap()
                .join("\n");
            for index in indexes {
                assert!(plan.contains(index), "{f:?}: {plan}");
            }
            assert!(!plan.contains("SCAN conversations"), "{f:?}: {plan}");
        }
        assert!(list_query(&filter(None, &[], None, 10)).unwrap().is_none());
        assert!(list_query(&filter(None, &["q"], None, 0))
            .unwrap()
            .is_none());
    }
}
