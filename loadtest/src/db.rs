//! What the embedded database holds after a run, read with a second SQLite connection (the
//! stack keeps running), and the faults injected through it.

use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Db {
    path: PathBuf,
}

/// A reading of [`Db::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Messages waiting or in flight in the inbound and outbound queues.
    pub pending: u64,
    /// Their receive counts, summed.
    pub receives: u64,
    /// Messages in the inbound dead-letter queue.
    pub dead: u64,
    /// Processed-event records.
    pub stored: u64,
}

/// Counts the ledger compares with what was sent.
#[derive(Debug, Default)]
pub struct Stored {
    /// Event ids recorded by the router (`conversation_events`), per id.
    pub events: HashMap<String, u64>,
    /// Transcript entries per event id (an event in two conversations would count 2).
    pub transcript: HashMap<String, u64>,
    /// Conversations per (account, source).
    pub conversations_per_source: HashMap<(String, String), u64>,
    pub queued: HashMap<String, u64>,
    pub delivery_status: HashMap<String, u64>,
    /// Events whose outbound message is `unconfirmed` (a reply LINE's answer to was lost).
    pub unconfirmed_events: std::collections::HashSet<String>,
    /// Assignments per agent id and the agent's capacity.
    pub agent_load: Vec<(String, u64, u64)>,
    /// Events still in a queue when the run was read, by queue: the `webhookEventId` of inbound
    /// messages (`inbound`, `inbound-dlq`), and the event an outbound message answers
    /// (`outbound`, `outbound-dlq`). An event missing from the store but found here is late (or
    /// dead-lettered), not lost.
    pub queued_events: HashMap<String, std::collections::HashSet<String>>,
}

impl Db {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("omniline.db"),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Ok(conn)
    }

    /// Messages waiting or in flight per queue (`inbound`, `outbound`, `*-dlq`).
    pub fn queue_depths(&self) -> rusqlite::Result<HashMap<String, u64>> {
        let conn = self.open()?;
        let mut stmt = conn.prepare("SELECT queue, COUNT(*) FROM queue_messages GROUP BY queue")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
        rows.collect()
    }

    /// What moves while the pipeline works: any change is progress (a retry counts: every
    /// message reaches its dead-letter queue after five receives, so retries end).
    pub fn progress(&self) -> rusqlite::Result<Progress> {
        let conn = self.open()?;
        let (pending, receives, dead) = conn.query_row(
            "SELECT COALESCE(SUM(queue NOT LIKE '%-dlq'), 0),
                    COALESCE(SUM(CASE WHEN queue NOT LIKE '%-dlq' THEN receive_count ELSE 0 END), 0),
                    COALESCE(SUM(queue = 'inbound-dlq'), 0)
               FROM queue_messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let stored =
            conn.query_row("SELECT COUNT(*) FROM conversation_events", [], |r| r.get(0))?;
        Ok(Progress {
            pending,
            receives,
            dead,
            stored,
        })
    }

    pub fn stored(&self, accounts: &[String]) -> rusqlite::Result<Stored> {
        let conn = self.open()?;
        let mut out = Stored::default();
        for account in accounts {
            let mut stmt = conn.prepare(
                "SELECT event_id, COUNT(*) FROM conversation_events WHERE account_id = ?1 GROUP BY event_id",
            )?;
            for row in stmt.query_map(params![account], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
            })? {
                let (id, n) = row?;
                *out.events.entry(id).or_default() += n;
            }
            let mut stmt = conn.prepare(
                "SELECT source_id, COUNT(*) FROM conversations WHERE account_id = ?1 GROUP BY source_id",
            )?;
            for row in stmt.query_map(params![account], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
            })? {
                let (source, n) = row?;
                out.conversations_per_source
                    .insert((account.clone(), source), n);
            }
        }
        let mut stmt =
            conn.prepare("SELECT event_id, COUNT(*) FROM transcript_entries GROUP BY event_id")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
            let (id, n) = row?;
            out.transcript.insert(id, n);
        }
        out.queued = self.queue_depths()?;
        let mut stmt = conn
            .prepare("SELECT json_extract(doc, '$.status'), COUNT(*) FROM deliveries GROUP BY 1")?;
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get::<_, u64>(1)?,
            ))
        })? {
            let (status, n) = row?;
            out.delivery_status.insert(status, n);
        }
        let mut stmt = conn.prepare(
            "SELECT id FROM deliveries WHERE json_extract(doc, '$.status') = 'unconfirmed'",
        )?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let id = row?;
            let event = id.split(':').next().unwrap_or_default().to_owned();
            out.unconfirmed_events.insert(event);
        }
        out.agent_load = self.agent_load(&conn)?;
        let mut stmt = conn.prepare(
            "SELECT queue, COALESCE(json_extract(body, '$.event.webhookEventId'), json_extract(body, '$.id'))
               FROM queue_messages",
        )?;
        for row in stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })? {
            let (queue, id) = row?;
            let Some(id) = id else { continue };
            // An outbound message's id starts with the event it answers (`{event}:…`).
            let event = id.split(':').next().unwrap_or_default().to_owned();
            out.queued_events.entry(queue).or_default().insert(event);
        }
        Ok(out)
    }

    fn agent_load(&self, conn: &Connection) -> rusqlite::Result<Vec<(String, u64, u64)>> {
        let mut stmt = conn.prepare(
            "SELECT a.id, a.capacity,
                    MAX((SELECT COUNT(*) FROM conversations c
                          WHERE c.state = 'active' AND json_extract(c.doc, '$.agentId') = a.id),
                        (SELECT COUNT(*) FROM agent_conversations ac WHERE ac.agent_id = a.id))
               FROM agents a ORDER BY a.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(1)?,
            ))
        })?;
        rows.collect()
    }

    /// "10 minutes later": the queue's deduplication records are aged by ten minutes, so they
    /// are past SQS's five-minute window when the copies arrive; only the router's event store
    /// can catch them then.
    pub fn age_queue_dedup(&self, by: Duration) -> rusqlite::Result<usize> {
        let conn = self.open()?;
        conn.execute(
            "UPDATE queue_dedup SET expires_at = expires_at - ?1",
            params![by.as_millis() as i64],
        )
    }

    /// Holds the database's write lock for `hold` (another process writing: every write of the
    /// stack fails once its busy timeout passes). Blocks the calling thread.
    pub fn hold_write_lock(&self, hold: Duration) -> rusqlite::Result<()> {
        let conn = self.open()?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        std::thread::sleep(hold);
        conn.execute_batch("ROLLBACK")
    }
}
