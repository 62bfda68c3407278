//! Embedded adapters: one SQLite database (`omniline.db` under the data directory) holding
//! accounts, secrets, webhook counters and FIFO queues with visibility timeouts, so the local stack
//! runs with no AWS account and a restart loses nothing.
//!
//! SQLite calls are blocking: each runs on tokio's blocking pool behind one connection mutex
//! (writes are serialised by SQLite anyway).

/// Test modules: one `#[tokio::test]` per scenario of a port's contract (`contract::$scenario`),
/// each on a store of its own, made by `$store(&dir)` in a fresh temporary directory.
#[cfg(test)]
macro_rules! contract_scenarios {
    ($store:path => $($scenario:ident),+ $(,)?) => {$(
        #[tokio::test]
        async fn $scenario() {
            let dir = tempfile::tempdir().unwrap();
            contract::$scenario(&$store(&dir)).await;
        }
    )+};
}

pub mod config_docs;
pub mod objects;
pub mod private_fs;
mod sql;
pub mod sqlite_agents;
pub mod sqlite_conversations;
pub mod sqlite_deliveries;
pub mod workstreams;

use async_trait::async_trait;
use omniline_domain::account::{
    month_before, Account, MonthSends, SendCounts, WebhookCounts, WebhookStats, SEND_MONTHS_KEPT,
};
use omniline_domain::clock::rfc3339_millis;
use omniline_domain::line::envelope::QueueMessage;
use omniline_domain::secret::SecretString;
use omniline_ports::{AccountStore, EventQueue, PortError, SecretStore};
use rusqlite::{params, Connection, OptionalExtension};
use sql::{query_doc, to_json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS accounts (
    id         TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    doc        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_stats (
    account_id       TEXT PRIMARY KEY,
    received         INTEGER NOT NULL DEFAULT 0,
    queued           INTEGER NOT NULL DEFAULT 0,
    rejected         INTEGER NOT NULL DEFAULT 0,
    last_received_at INTEGER
);
CREATE TABLE IF NOT EXISTS send_stats (
    account_id TEXT NOT NULL,
    month      TEXT NOT NULL,
    replies    INTEGER NOT NULL DEFAULT 0,
    pushes     INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, month)
);
CREATE TABLE IF NOT EXISTS secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue         TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    dedup_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    sent_at       INTEGER NOT NULL,
    visible_at    INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_group ON queue_messages (queue, group_id, seq);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS queue_messages_order ON queue_messages (queue, seq);
CREATE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (receipt) WHERE receipt IS NOT NULL;
CREATE INDEX IF NOT EXISTS queue_messages_receives ON queue_messages (queue, receive_count);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue      TEXT NOT NULL,
    dedup_id   TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
"#;

/// SQS keeps deduplication ids for five minutes; so does the embedded queue.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// Read-only connections per database.
const READERS: usize = 4;

/// How long a statement waits for another connection's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The embedded database. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct EmbeddedDb {
    conn: Arc<Mutex<Connection>>,
    /// Read-only connections: in WAL mode a reader sees the last commit and neither waits for
    /// the writer nor holds it up.
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    path: PathBuf,
    /// Woken when a message is sent to any queue of this database (in this process), so that
    /// consumers need not wait for their next poll.
    sent: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for EmbeddedDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDb")
            .field("path", &self.path)
            .finish()
    }
}

pub(crate) fn db_error(e: impl std::fmt::Display) -> PortError {
    PortError::Unavailable(format!("embedded database: {e}"))
}

/// The connection behind `lock`.
fn locked(lock: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>, PortError> {
    lock.lock()
        .map_err(|_| db_error("connection lock poisoned"))
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> Result<T, PortError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, PortError> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await.map_err(db_error)?
}

/// What a committed write survives (SQLite's `synchronous` in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a crash of the process or of the machine (power loss); one fsync per
    /// commit (about 1.7 ms here, so a few hundred commits per second).
    Machine,
    /// `synchronous=NORMAL`: a crash of the process; a power loss or OS crash may roll back the
    /// last commits (never corrupts). WAL's fsyncs happen at checkpoints only.
    Process,
}

impl Durability {
    /// `machine` or `process`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "machine" => Some(Self::Machine),
            "process" => Some(Self::Process),
            _ => None,
        }
    }
}

impl EmbeddedDb {
    /// Opens (creating if needed) `omniline.db` under `data_dir`; commits survive a power loss.
    pub fn open(data_dir: &Path) -> Result<Self, PortError> {
        Self::open_with(data_dir, Durability::Machine)
    }

    /// [`EmbeddedDb::open`] with the durability of commits chosen.
    pub fn open_with(data_dir: &Path, durability: Durability) -> Result<Self, PortError> {
        // Private before anything is written: SQLite gives the WAL and shared-memory files the
        // database file's mode, so they are 0600 from their first byte.
        let path = data_dir.join("omniline.db");
        // (Refusing an existing directory or file open to others is the composition root's:
        // `omniline-local` checks before it opens anything.)
        private_fs::create_private_dir(data_dir)
            .and_then(|()| private_fs::create_private_file(&path))
            .map_err(|e| PortError::Unavailable(e.to_string()))?;
        let conn = Connection::open(&path).map_err(db_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error)?;
        let synchronous = match durability {
            Durability::Machine => "FULL",
            Durability::Process => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(db_error)?;
        conn.execute_batch(SCHEMA).map_err(db_error)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(BUSY_TIMEOUT)?;
                Ok(Mutex::new(reader))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_error)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            readers: Arc::new(readers),
            next_reader: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            path,
            sent: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Applies more schema (idempotent `CREATE ... IF NOT EXISTS` statements).
    pub(crate) fn apply_schema(&self, sql: &str) -> Result<(), PortError> {
        locked(&self.conn)?.execute_batch(sql).map_err(db_error)
    }

    /// Adds each `(table, column, type)` its table lacks: a database created before the column
    /// gets it, in one immediate transaction. A store's `new` is synchronous and the shared
    /// connection is only reachable asynchronously: the (rare, one-off) migration runs on a
    /// short-lived connection of its own. The shared one sees the new columns at its next
    /// statement (SQLite re-prepares on a schema change).
    pub(crate) fn add_columns(&self, columns: &[(&str, &str, &str)]) -> Result<(), PortError> {
        let mut conn = Connection::open(&self.path).map_err(db_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db_error)?;
        sql::add_missing_columns(&mut conn, columns).map_err(db_error)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Completes after the next message sent to a queue of this database by this process. Create
    /// it before looking at the queue and `enable` it, so that a send in between is not missed.
    pub fn message_sent(&self) -> tokio::sync::futures::Notified<'_> {
        self.sent.notified()
    }

    /// Runs a read-only `f` on one of the read connections, on tokio's blocking pool: it sees
    /// every write committed before it starts. A write in `f` fails (read-only connection).
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        blocking(move || {
            // A free reader if there is one, else wait for the next in turn.
            let n = readers.len();
            let mut guard = None;
            for i in 0..n {
                if let Ok(g) = readers[(start + i) % n].try_lock() {
                    guard = Some(g);
                    break;
                }
            }
            let mut guard = match guard {
                Some(g) => g,
                None => locked(&readers[start % n])?,
            };
            f(&mut guard).map_err(db_error)
        })
        .await
    }

    /// Runs `f` on the connection, on tokio's blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, PortError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        blocking(move || f(&mut *locked(&conn)?).map_err(db_error)).await
    }

    /// The document (first column) of the row `sql` selects on the connection, if any.
    pub(crate) async fn doc<T, P>(
        &self,
        sql: &'static str,
        params: P,
    ) -> Result<Option<T>, PortError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        P: rusqlite::Params + Send + 'static,
    {
        self.run(move |conn| sql::query_doc(conn, sql, params))
            .await
    }

    /// The documents (first column) of every row `sql` selects on the connection, in its order.
    pub(crate) async fn docs<T, P>(&self, sql: &'static str, params: P) -> Result<Vec<T>, PortError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        P: rusqlite::Params + Send + 'static,
    {
        self.run(move |conn| sql::query_docs(conn, sql, params))
            .await
    }

    /// Runs one statement on the connection: whether it changed a row.
    pub(crate) async fn changed<P>(&self, sql: &'static str, params: P) -> Result<bool, PortError>
    where
        P: rusqlite::Params + Send + 'static,
    {
        self.execute(sql, params).await.map(|n| n > 0)
    }

    /// Runs one statement on the connection: how many rows it changed.
    pub(crate) async fn execute<P>(&self, sql: &'static str, params: P) -> Result<usize, PortError>
    where
        P: rusqlite::Params + Send + 'static,
    {
        self.run(move |conn| conn.execute(sql, params)).await
    }
}

// ---------------------------------------------------------------------------------------------
// Queue

/// A message handed to a consumer, invisible to others until its visibility timeout passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt: String,
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// A FIFO queue in the embedded database with SQS's semantics: per-group order (a group's later
/// messages wait while an earlier one is in flight), a five-minute deduplication window,
/// visibility timeouts, and a dead-letter queue after `max_receive_count` receives.
#[derive(Debug, Clone)]
pub struct SqliteEventQueue {
    db: EmbeddedDb,
    queue: String,
    dead_letter_queue: String,
    max_receive_count: u32,
}

impl SqliteEventQueue {
    pub fn new(db: EmbeddedDb, queue: &str, max_receive_count: u32) -> Self {
        Self {
            db,
            queue: queue.to_owned(),
            dead_letter_queue: format!("{queue}-dlq"),
            max_receive_count: max_receive_count.max(1),
        }
    }

    pub fn name(&self) -> &str {
        &self.queue
    }

    /// The database the queue lives in.
    pub fn db(&self) -> &EmbeddedDb {
        &self.db
    }

    /// The queue that exhausted messages move to.
    pub fn dead_letter_queue(&self) -> Self {
        Self::new(self.db.clone(), &self.dead_letter_queue, u32::MAX)
    }

    /// Up to `max` visible messages, hiding them for `visibility`.
    pub async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        let (queue, dlq, max_receives) = (
            self.queue.clone(),
            self.dead_letter_queue.clone(),
            self.max_receive_count,
        );
        let now = omniline_domain::clock::now_millis();
        let hidden_until = now.saturating_add(visibility.as_millis() as i64);
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                // Messages received too often go to the dead-letter queue instead.
                tx.execute(
                    "UPDATE queue_messages SET queue = ?1, receive_count = 0, receipt = NULL
                     WHERE queue = ?2 AND receive_count >= ?4 AND +visible_at <= ?3",
                    params![dlq, queue, now, max_receives],
                )?;
                let picked = sql::query_rows(
                    &tx,
                    "SELECT seq, message_id, group_id, dedup_id, body, receive_count
                     FROM queue_messages m
                     WHERE m.queue = ?1 AND +m.visible_at <= ?2
                       AND NOT EXISTS (SELECT 1 FROM queue_messages h
                                       WHERE h.queue = m.queue AND h.group_id = m.group_id
                                         AND h.seq < m.seq AND +h.visible_at > ?2)
                     ORDER BY m.seq LIMIT ?3",
                    params![queue, now, max as i64],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            ReceivedMessage {
                                message_id: r.get(1)?,
                                receipt: String::new(),
                                group_id: r.get(2)?,
                                dedup_id: r.get(3)?,
                                body: r.get(4)?,
                                receive_count: r.get::<_, u32>(5)? + 1,
                            },
                        ))
                    },
                )?;
                let mut out = Vec::with_capacity(picked.len());
                for (seq, mut msg) in picked {
                    msg.receipt = omniline_domain::clock::new_id();
                    tx.execute(
                        "UPDATE queue_messages SET visible_at = ?1, receive_count = ?2, receipt = ?3
                         WHERE seq = ?4",
                        params![hidden_until, msg.receive_count, msg.receipt, seq],
                    )?;
                    out.push(msg);
                }
                tx.commit()?;
                Ok(out)
            })
            .await
    }

    /// Deletes a received message; `false` if the receipt is stale (received again since).
    pub async fn delete(&self, receipt: &str) -> Result<bool, PortError> {
        Ok(self.delete_many(&[receipt.to_owned()]).await? == 1)
    }

    /// Makes every message received and not yet deleted visible at once: for a process starting
    /// on this database, the messages its predecessor was working on when it stopped (their
    /// receive counts stay). Only for the one process that consumes the queue.
    pub async fn recover_in_flight(&self) -> Result<usize, PortError> {
        let queue = self.queue.clone();
        let now = omniline_domain::clock::now_millis();
        self.db
            .execute(
                "UPDATE queue_messages SET visible_at = ?2, receipt = NULL
                 WHERE queue = ?1 AND receipt IS NOT NULL AND visible_at > ?2",
                (queue, now),
            )
            .await
    }

    /// Deletes received messages in one transaction; returns how many receipts were current.
    pub async fn delete_many(&self, receipts: &[String]) -> Result<usize, PortError> {
        if receipts.is_empty() {
            return Ok(0);
        }
        let (queue, receipts) = (self.queue.clone(), receipts.to_vec());
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let mut deleted = 0;
                {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM queue_messages WHERE receipt = ?2 AND queue = ?1",
                    )?;
                    for receipt in &receipts {
                        deleted += stmt.execute(params![queue, receipt])?;
                    }
                }
                tx.commit()?;
                Ok(deleted)
            })
            .await
    }

    /// Makes a received message visible again after `visibility` (zero: at once).
    pub async fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> Result<bool, PortError> {
        let (queue, receipt) = (self.queue.clone(), receipt.to_owned());
        let visible_at =
            omniline_domain::clock::now_millis().saturating_add(visibility.as_millis() as i64);
        self.db
            .execute(
                "UPDATE queue_messages SET visible_at = ?1 WHERE queue = ?2 AND receipt = ?3",
                (visible_at, queue, receipt),
            )
            .await
            .map(|n| n == 1)
    }

    /// Messages in the queue, visible or in flight.
    pub async fn len(&self) -> Result<usize, PortError> {
        let queue = self.queue.clone();
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM queue_messages WHERE queue = ?1",
                    params![queue],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as usize)
            })
            .await
    }

    pub async fn is_empty(&self) -> Result<bool, PortError> {
        Ok(self.len().await? == 0)
    }
}

#[async_trait]
impl EventQueue for SqliteEventQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Result<(), PortError> {
        if messages.is_empty() {
            return Ok(());
        }
        let queue = self.queue.clone();
        let messages = messages.to_vec();
        let now = omniline_domain::clock::now_millis();
        let expires_at = now + DEDUP_WINDOW.as_millis() as i64;
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                tx.execute(
                    "DELETE FROM queue_dedup WHERE queue = ?1 AND expires_at <= ?2",
                    params![queue, now],
                )?;
                for m in &messages {
                    let fresh = tx.execute(
                        "INSERT OR IGNORE INTO queue_dedup (queue, dedup_id, expires_at)
                         VALUES (?1, ?2, ?3)",
                        params![queue, m.dedup_id, expires_at],
                    )?;
                    if fresh == 1 {
                        tx.execute(
                            "INSERT INTO queue_messages
                               (queue, message_id, group_id, dedup_id, body, sent_at, visible_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                            params![
                                queue,
                                omniline_domain::clock::new_id(),
                                m.group_id,
                                m.dedup_id,
                                m.body,
                                now
                            ],
                        )?;
                    }
                }
                tx.commit()
            })
            .await?;
        self.db.sent.notify_waiters();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// [`AccountStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteAccountStore {
    db: EmbeddedDb,
}

impl SqliteAccountStore {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create(&self, account: &Account) -> Result<(), PortError> {
        let doc = to_json(account).map_err(db_error)?;
        let inserted = self
            .db
            .execute(
                "INSERT OR IGNORE INTO accounts (id, created_at, doc) VALUES (?1, ?2, ?3)",
                (account.id.clone(), account.created_at.clone(), doc),
            )
            .await?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(PortError::Conflict("account id".into()))
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Account>, PortError> {
        let id = id.to_owned();
        self.db
            .read(move |conn| query_doc(conn, "SELECT doc FROM accounts WHERE id = ?1", (id,)))
            .await
    }

    async fn list(&self) -> Result<Vec<Account>, PortError> {
        self.db
            .docs("SELECT doc FROM accounts ORDER BY created_at, id", [])
            .await
    }

    async fn update(&self, account: &Account) -> Result<bool, PortError> {
        let doc = to_json(account).map_err(db_error)?;
        self.db
            .execute(
                "UPDATE accounts SET doc = ?2 WHERE id = ?1",
                (account.id.clone(), doc),
            )
            .await
            .map(|n| n == 1)
    }

    async fn delete(&self, id: &str) -> Result<bool, PortError> {
        let id = id.to_owned();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let n = tx.execute("DELETE FROM accounts WHERE id = ?1", params![id])?;
                tx.execute(
                    "DELETE FROM webhook_stats WHERE account_id = ?1",
                    params![id],
                )?;
                tx.execute("DELETE FROM send_stats WHERE account_id = ?1", params![id])?;
                tx.commit()?;
                Ok(n == 1)
            })
            .await
    }

    async fn record_webhook(
        &self,
        id: &str,
        counts: WebhookCounts,
        at_millis: i64,
    ) -> Result<(), PortError> {
        self.db
            .execute(
                "INSERT INTO webhook_stats (account_id, received, queued, rejected, last_received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id) DO UPDATE SET
                   received = received + excluded.received,
                   queued = queued + excluded.queued,
                   rejected = rejected + excluded.rejected,
                   last_received_at = MAX(COALESCE(last_received_at, 0), excluded.last_received_at)",
                (
                    id.to_owned(),
                    counts.received as i64,
                    counts.queued as i64,
                    counts.rejected as i64,
                    at_millis,
                ),
            )
            .await
            .map(drop)
    }

    async fn record_sends(
        &self,
        id: &str,
        month: &str,
        counts: SendCounts,
    ) -> Result<(), PortError> {
        let (id, month) = (id.to_owned(), month.to_owned());
        let oldest = month_before(&month, (SEND_MONTHS_KEPT - 1) as u32)
            .ok_or_else(|| PortError::Unavailable(format!("not a month: {month:?}")))?;
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT INTO send_stats (account_id, month, replies, pushes, failed)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (account_id, month) DO UPDATE SET
                       replies = replies + excluded.replies,
                       pushes = pushes + excluded.pushes,
                       failed = failed + excluded.failed",
                    params![
                        id,
                        month,
                        counts.replies as i64,
                        counts.pushes as i64,
                        counts.failed as i64
                    ],
                )?;
                tx.execute(
                    "DELETE FROM send_stats WHERE account_id = ?1 AND month < ?2",
                    params![id, oldest],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn send_stats(&self, id: &str) -> Result<Vec<MonthSends>, PortError> {
        let id = id.to_owned();
        self.db
            .run(move |conn| {
                let mut statement = conn.prepare(
                    "SELECT month, replies, pushes, failed FROM send_stats
                     WHERE account_id = ?1 ORDER BY month DESC",
                )?;
                let rows = statement.query_map(params![id], |r| {
                    Ok(MonthSends {
                        month: r.get(0)?,
                        counts: SendCounts {
                            replies: r.get::<_, i64>(1)? as u64,
                            pushes: r.get::<_, i64>(2)? as u64,
                            failed: r.get::<_, i64>(3)? as u64,
                        },
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, PortError> {
        let id = id.to_owned();
        self.db
            .run(move |conn| {
                conn.query_row(
                    "SELECT received, queued, rejected, last_received_at FROM webhook_stats
                     WHERE account_id = ?1",
                    params![id],
                    |r| {
                        Ok(WebhookStats {
                            received: r.get::<_, i64>(0)? as u64,
                            queued: r.get::<_, i64>(1)? as u64,
                            rejected: r.get::<_, i64>(2)? as u64,
                            last_received_at: r.get::<_, Option<i64>>(3)?.map(rfc3339_millis),
                        })
                    },
                )
                .optional()
                .map(Option::unwrap_or_default)
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// [`SecretStore`] in the embedded database. The database, its WAL and its directory are private
/// to their owner from their creation (see [`EmbeddedDb::open_with`]); it is a development store,
/// not a vault.
#[derive(Debug, Clone)]
pub struct SqliteSecretStore {
    db: EmbeddedDb,
}

impl SqliteSecretStore {
    pub fn new(db: EmbeddedDb) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SecretStore for SqliteSecretStore {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, PortError> {
        let name = name.to_owned();
        self.db
            .read(move |conn| {
                sql::query_value::<String>(
                    conn,
                    "SELECT value FROM secrets WHERE name = ?1",
                    (name,),
                )
            })
            .await
            .map(|v| v.map(SecretString::new))
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), PortError> {
        let (name, value) = (name.to_owned(), value.expose().to_owned());
        self.db
            .execute(
                "INSERT INTO secrets (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
            .await
            .map(drop)
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        self.db
            .execute("DELETE FROM secrets WHERE name = ?1", (name.to_owned(),))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(group: &str, dedup: &str) -> QueueMessage {
        QueueMessage {
            group_id: group.into(),
            dedup_id: dedup.into(),
            body: format!("body-{dedup}"),
        }
    }

    fn account(id: &str, created_at: &str) -> Account {
        Account {
            id: id.into(),
            name: format!("name-{id}"),
            channel_id: "1234567890".into(),
            bot_user_id: "Ubot".into(),
            basic_id: "@bot".into(),
            display_name: "Bot".into(),
            created_at: created_at.into(),
            updated_at: created_at.into(),
            webhook_disabled: false,
        }
    }

    // The contracts of the ports (omniline_testkit), also run against SQS, DynamoDB and Secrets
    // Manager on moto (tests/tests/aws_adapters.rs).

    /// The EventQueue contract, drained by receiving (and deleting) what is visible: here the
    /// queue keeps the send order across groups too.
    #[tokio::test]
    async fn queue_sends_each_message_once_in_group_order() {
        use omniline_testkit::event_queue_contract as contract;
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 5);
        let drain = async || {
            let mut out = Vec::new();
            loop {
                let got = q.receive(10, Duration::from_secs(30)).await.unwrap();
                if got.is_empty() {
                    return out;
                }
                for m in got {
                    assert_eq!(m.receive_count, 1);
                    assert!(q.delete(&m.receipt).await.unwrap());
                    out.push(QueueMessage {
                        group_id: m.group_id,
                        dedup_id: m.dedup_id,
                        body: m.body,
                    });
                }
            }
        };
        let received = contract::sends_each_message_once_in_group_order(&q, drain).await;
        let sent: Vec<_> = (0..23)
            .map(|i| contract::message(if i % 3 == 0 { "acc:Ua" } else { "acc:Cb" }, i))
            .collect();
        assert_eq!(received, sent);
        assert!(q.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn account_store_crud_conflicts_and_counters() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteAccountStore::new(EmbeddedDb::open(dir.path()).unwrap());
        omniline_testkit::account_contract::crud_conflicts_and_counters(&store).await;
    }

    #[tokio::test]
    async fn secret_store_creates_replaces_reads_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSecretStore::new(EmbeddedDb::open(dir.path()).unwrap());
        omniline_testkit::secret_contract::creates_replaces_reads_and_deletes(&store).await;
    }

    // The SQLite queue's consumer side (receive, delete, visibility, dead letters): its own.

    #[tokio::test]
    async fn received_messages_keep_the_send_order_and_stay_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 5);
        q.send(&[msg("g1", "a"), msg("g1", "b"), msg("g2", "c")])
            .await
            .unwrap();
        assert_eq!(q.len().await.unwrap(), 3);

        let got = q.receive(10, Duration::from_secs(30)).await.unwrap();
        let ids: Vec<_> = got.iter().map(|m| m.dedup_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(got.iter().all(|m| m.receive_count == 1));
        // Everything is in flight now.
        assert!(q
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn an_in_flight_message_holds_back_its_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 5);
        q.send(&[msg("g1", "a")]).await.unwrap();
        let first = q.receive(1, Duration::from_secs(30)).await.unwrap();
        assert_eq!(first.len(), 1);
        q.send(&[msg("g1", "b"), msg("g2", "c")]).await.unwrap();
        let next = q.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            next.iter().map(|m| m.dedup_id.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        assert!(q.delete(&first[0].receipt).await.unwrap());
        let after = q.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            after
                .iter()
                .map(|m| m.dedup_id.as_str())
                .collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[tokio::test]
    async fn delete_many_removes_current_receipts_only_and_a_send_wakes_a_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedDb::open(dir.path()).unwrap();
        let q = SqliteEventQueue::new(db.clone(), "inbound", 5);
        q.send(&[msg("g1", "a"), msg("g2", "b"), msg("g3", "c")])
            .await
            .unwrap();
        let got = q.receive(10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 3);
        // Received again: the first receipts are stale.
        let again = q.receive(10, Duration::from_secs(30)).await.unwrap();
        let mut receipts: Vec<String> = again[..2].iter().map(|m| m.receipt.clone()).collect();
        receipts.push(got[2].receipt.clone());
        assert_eq!(q.delete_many(&receipts).await.unwrap(), 2);
        assert_eq!(q.delete_many(&[]).await.unwrap(), 0);
        let left = q.receive(10, Duration::ZERO).await.unwrap();
        assert!(left.is_empty(), "c is still in flight");

        let sent = db.message_sent();
        tokio::pin!(sent);
        sent.as_mut().enable();
        q.send(&[msg("g4", "d")]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), sent)
            .await
            .expect("the send woke the waiter");
    }

    #[tokio::test]
    async fn in_flight_messages_are_recovered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 5);
        q.send(&[msg("g1", "a"), msg("g2", "b")]).await.unwrap();
        let got = q.receive(1, Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(q.recover_in_flight().await.unwrap(), 1);
        let again = q.receive(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(again.len(), 2);
        let a = again
            .iter()
            .find(|m| m.dedup_id == got[0].dedup_id)
            .unwrap();
        assert_eq!(a.receive_count, 2, "the receive count stays");
        assert!(
            !q.delete(&got[0].receipt).await.unwrap(),
            "the old receipt is stale"
        );
    }

    #[tokio::test]
    async fn unacknowledged_messages_return_then_dead_letter() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 2);
        q.send(&[msg("g", "a")]).await.unwrap();
        for expected_count in 1..=2 {
            let got = q.receive(10, Duration::ZERO).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].receive_count, expected_count);
        }
        // Third receive: the message has been received twice, it moves to the DLQ.
        assert!(q.receive(10, Duration::ZERO).await.unwrap().is_empty());
        let dlq = q.dead_letter_queue();
        let dead = dlq.receive(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].body, "body-a");
    }

    #[tokio::test]
    async fn stale_receipts_do_not_delete() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteEventQueue::new(EmbeddedDb::open(dir.path()).unwrap(), "inbound", 5);
        q.send(&[msg("g", "a")]).await.unwrap();
        let first = q.receive(1, Duration::ZERO).await.unwrap();
        let second = q.receive(1, Duration::from_secs(30)).await.unwrap();
        assert!(!q.delete(&first[0].receipt).await.unwrap());
        assert!(q
            .change_visibility(&second[0].receipt, Duration::ZERO)
            .await
            .unwrap());
        let third = q.receive(1, Duration::from_secs(30)).await.unwrap();
        assert!(q.delete(&third[0].receipt).await.unwrap());
        assert!(q.is_empty().await.unwrap());
    }

    #[tokio::test]
    async fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = EmbeddedDb::open(dir.path()).unwrap();
            SqliteEventQueue::new(db.clone(), "inbound", 5)
                .send(&[msg("g", "a")])
                .await
                .unwrap();
            SqliteAccountStore::new(db.clone())
                .create(&account("x", "2026-01-01"))
                .await
                .unwrap();
            SqliteSecretStore::new(db)
                .put("s", &SecretString::new("v"))
                .await
                .unwrap();
        }
        let db = EmbeddedDb::open(dir.path()).unwrap();
        assert_eq!(
            SqliteEventQueue::new(db.clone(), "inbound", 5)
                .len()
                .await
                .unwrap(),
            1
        );
        assert!(SqliteAccountStore::new(db.clone())
            .get("x")
            .await
            .unwrap()
            .is_some());
        assert_eq!(
            SqliteSecretStore::new(db)
                .get("s")
                .await
                .unwrap()
                .map(|s| s.expose().to_owned()),
            Some("v".into())
        );
    }
}
