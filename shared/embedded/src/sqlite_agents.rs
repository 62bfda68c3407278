//! [`AgentStore`] in the embedded database: agent profiles, queue membership, active
//! conversations (one row each, so capacity is a `COUNT`) and notifications. `try_assign` reads,
//! checks and writes in one `IMMEDIATE` transaction, so no two assignments interleave even across
//! connections to the same file.
//!
//! `list_agents` reads every profile (ordered by the primary key) in one read transaction.
//! `delete_agent` removes the profile and every row keyed by the agent id (queue membership,
//! active conversations, notifications) in one `IMMEDIATE` transaction; rows left by an agent
//! that no longer has a profile (a notification sent to an unknown id) are removed too, but only
//! a deleted profile makes it return `true`.

use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};
use omniline_domain::PortError;
use omniline_ports::AgentStore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS agents (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    queues           TEXT NOT NULL,
    skills           TEXT NOT NULL,
    capacity         INTEGER NOT NULL,
    status           TEXT NOT NULL,
    last_assigned_at INTEGER
);
CREATE TABLE IF NOT EXISTS agent_queues (
    queue_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (queue_id, agent_id)
);
CREATE INDEX IF NOT EXISTS agent_queues_agent ON agent_queues (agent_id);
CREATE TABLE IF NOT EXISTS agent_conversations (
    agent_id        TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, conversation_id)
);
CREATE TABLE IF NOT EXISTS agent_notifications (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_notifications_agent
    ON agent_notifications (agent_id, created_at, id);
-- Which notifications are about a conversation (for erasing a customer's).
CREATE TABLE IF NOT EXISTS conversation_notifications (
    conversation_id TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    PRIMARY KEY (conversation_id, notification_id)
);
"#;

/// [`AgentStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteAgentStore {
    db: EmbeddedDb,
}

impl SqliteAgentStore {
    /// Creates the store's tables if needed.
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(SCHEMA)?;
        Ok(Self { db })
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}

fn from_json<T: serde::de::DeserializeOwned>(column: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, e.into())
    })
}

fn load_agent(conn: &Connection, id: &str) -> rusqlite::Result<Option<Agent>> {
    let row = conn
        .query_row(
            "SELECT name, queues, skills, capacity, status, last_assigned_at FROM agents
             WHERE id = ?1",
            params![id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((name, queues, skills, capacity, status, last_assigned_at)) = row else {
        return Ok(None);
    };
    let status = AgentStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown agent status {status:?}").into(),
        )
    })?;
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id FROM agent_conversations WHERE agent_id = ?1
         ORDER BY conversation_id",
    )?;
    let active_conversations = stmt
        .query_map(params![id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(Agent {
        id: id.to_owned(),
        name,
        queues: from_json(1, &queues)?,
        skills: from_json(2, &skills)?,
        capacity,
        status,
        active_conversations,
        last_assigned_at,
    }))
}

#[async_trait]
impl AgentStore for SqliteAgentStore {
    async fn put_agent(&self, agent: &Agent) -> Result<(), PortError> {
        let agent = agent.clone();
        self.db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO agents (id, name, queues, skills, capacity, status, last_assigned_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (id) DO UPDATE SET
                       name = excluded.name,
                       queues = excluded.queues,
                       skills = excluded.skills,
                       capacity = excluded.capacity,
                       status = agents.status,
                       last_assigned_at = COALESCE(agents.last_assigned_at, excluded.last_assigned_at)",
                    params![
                        agent.id,
                        agent.name,
                        to_json(&agent.queues)?,
                        to_json(&agent.skills)?,
                        agent.capacity,
                        agent.status.as_str(),
                        agent.last_assigned_at
                    ],
                )?;
                tx.execute(
                    "DELETE FROM agent_queues WHERE agent_id = ?1",
                    params![agent.id],
                )?;
                for queue in &agent.queues {
                    tx.execute(
                        "INSERT OR IGNORE INTO agent_queues (queue_id, agent_id) VALUES (?1, ?2)",
                        params![queue, agent.id],
                    )?;
                }
                tx.commit()
            })
            .await
    }

    async fn set_status(&self, agent_id: &str, status: AgentStatus) -> Result<bool, PortError> {
        let agent_id = agent_id.to_owned();
        self.db
            .run(move |conn| {
                conn.execute(
                    "UPDATE agents SET status = ?2 WHERE id = ?1",
                    params![agent_id, status.as_str()],
                )
                .map(|changed| changed > 0)
            })
            .await
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>, PortError> {
        let id = id.to_owned();
        self.db.run(move |conn| load_agent(conn, &id)).await
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, PortError> {
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let ids = {
                    let mut stmt = tx.prepare("SELECT id FROM agents ORDER BY id")?;
                    let ids = stmt
                        .query_map([], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    ids
                };
                let mut agents = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(agent) = load_agent(&tx, &id)? {
                        agents.push(agent);
                    }
                }
                tx.commit()?;
                Ok(agents)
            })
            .await
    }

    async fn delete_agent(&self, id: &str) -> Result<bool, PortError> {
        let id = id.to_owned();
        self.db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let deleted = tx.execute("DELETE FROM agents WHERE id = ?1", params![id])?;
                for sql in [
                    "DELETE FROM agent_queues WHERE agent_id = ?1",
                    "DELETE FROM agent_conversations WHERE agent_id = ?1",
                    "DELETE FROM agent_notifications WHERE agent_id = ?1",
                ] {
                    tx.execute(sql, params![id])?;
                }
                tx.commit()?;
                Ok(deleted > 0)
            })
            .await
    }

    async fn agents_in_queue(&self, queue_id: &str) -> Result<Vec<Agent>, PortError> {
        let queue_id = queue_id.to_owned();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let ids = {
                    let mut stmt = tx.prepare(
                        "SELECT agent_id FROM agent_queues WHERE queue_id = ?1 ORDER BY agent_id",
                    )?;
                    let ids = stmt
                        .query_map(params![queue_id], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    ids
                };
                let mut agents = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(agent) = load_agent(&tx, &id)? {
                        agents.push(agent);
                    }
                }
                tx.commit()?;
                Ok(agents)
            })
            .await
    }

    async fn try_assign(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
    ) -> Result<bool, PortError> {
        let (agent_id, conversation_id) = (agent_id.to_owned(), conversation_id.to_owned());
        self.db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let already: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM agent_conversations
                                    WHERE agent_id = ?1 AND conversation_id = ?2)",
                    params![agent_id, conversation_id],
                    |r| r.get(0),
                )?;
                if already {
                    return Ok(true);
                }
                let profile: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT status, capacity FROM agents WHERE id = ?1",
                        params![agent_id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((status, capacity)) = profile else {
                    return Ok(false);
                };
                let active: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM agent_conversations WHERE agent_id = ?1",
                    params![agent_id],
                    |r| r.get(0),
                )?;
                if status != AgentStatus::Available.as_str() || active >= capacity {
                    return Ok(false);
                }
                tx.execute(
                    "INSERT INTO agent_conversations (agent_id, conversation_id) VALUES (?1, ?2)",
                    params![agent_id, conversation_id],
                )?;
                tx.execute(
                    "UPDATE agents SET last_assigned_at = ?2 WHERE id = ?1",
                    params![agent_id, at_millis],
                )?;
                tx.commit()?;
                Ok(true)
            })
            .await
    }

    async fn release(&self, agent_id: &str, conversation_id: &str) -> Result<(), PortError> {
        let (agent_id, conversation_id) = (agent_id.to_owned(), conversation_id.to_owned());
        self.db
            .run(move |conn| {
                conn.execute(
                    "DELETE FROM agent_conversations WHERE agent_id = ?1 AND conversation_id = ?2",
                    params![agent_id, conversation_id],
                )
                .map(drop)
            })
            .await
    }

    async fn notify(&self, notification: &AgentNotification) -> Result<(), PortError> {
        let notification = notification.clone();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT OR IGNORE INTO agent_notifications (id, agent_id, created_at, doc)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        notification.id,
                        notification.agent_id,
                        notification.created_at,
                        to_json(&notification)?
                    ],
                )?;
                tx.execute(
                    "INSERT OR IGNORE INTO conversation_notifications (conversation_id, notification_id)
                     VALUES (?1, ?2)",
                    params![notification.conversation_id, notification.id],
                )?;
                tx.commit()
            })
            .await
    }

    async fn delete_conversation_notifications(
        &self,
        conversation_id: &str,
    ) -> Result<u64, PortError> {
        let conversation_id = conversation_id.to_owned();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                let deleted = tx.execute(
                    "DELETE FROM agent_notifications WHERE id IN
                       (SELECT notification_id FROM conversation_notifications
                         WHERE conversation_id = ?1)",
                    params![conversation_id],
                )?;
                tx.execute(
                    "DELETE FROM conversation_notifications WHERE conversation_id = ?1",
                    params![conversation_id],
                )?;
                tx.commit()?;
                Ok(deleted as u64)
            })
            .await
    }

    async fn notifications(&self, agent_id: &str) -> Result<Vec<AgentNotification>, PortError> {
        let agent_id = agent_id.to_owned();
        self.db
            .run(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT doc FROM agent_notifications WHERE agent_id = ?1
                     ORDER BY created_at, id",
                )?;
                let docs = stmt.query_map(params![agent_id], |r| r.get::<_, String>(0))?;
                docs.map(|d| d.and_then(|d| from_json(0, &d))).collect()
            })
            .await
    }

    async fn notifications_after(
        &self,
        agent_id: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<AgentNotification>, PortError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let agent_id = agent_id.to_owned();
        let after = after.map(|(created_at, id)| (created_at, id.to_owned()));
        // More than SQLite's LIMIT can take means no limit.
        let limit = i64::try_from(limit).unwrap_or(-1);
        self.db
            .run(move |conn| {
                // The (agent_id, created_at, id) index serves both the range and the order.
                let docs = match after {
                    None => {
                        let mut stmt = conn.prepare_cached(
                            "SELECT doc FROM agent_notifications WHERE agent_id = ?1
                             ORDER BY created_at, id LIMIT ?2",
                        )?;
                        let docs = stmt
                            .query_map(params![agent_id, limit], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        docs
                    }
                    Some((created_at, id)) => {
                        let mut stmt = conn.prepare_cached(
                            "SELECT doc FROM agent_notifications
                             WHERE agent_id = ?1 AND (created_at, id) > (?2, ?3)
                             ORDER BY created_at, id LIMIT ?4",
                        )?;
                        let docs = stmt
                            .query_map(params![agent_id, created_at, id, limit], |r| {
                                r.get::<_, String>(0)
                            })?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        docs
                    }
                };
                docs.iter().map(|d| from_json(0, d)).collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, SqliteAgentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteAgentStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap();
        (dir, store)
    }

    fn agent(id: &str, queues: &[&str], capacity: u32) -> Agent {
        Agent {
            id: id.into(),
            name: format!("Agent {id}"),
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
            skills: vec!["ja".into()],
            capacity,
            status: AgentStatus::Available,
            active_conversations: vec![],
            last_assigned_at: None,
        }
    }

    fn notification(id: &str, agent_id: &str, created_at: i64) -> AgentNotification {
        AgentNotification {
            id: id.into(),
            agent_id: agent_id.into(),
            conversation_id: format!("conv-{id}"),
            account_id: "acc".into(),
            kind: "assigned".into(),
            customer_user_id: Some("U1".into()),
            customer_name: "山田".into(),
            customer_picture_url: None,
            customer_language: Some("ja".into()),
            queue_id: "q".into(),
            created_at,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn capacity_is_never_exceeded_by_concurrent_assignments() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        store.put_agent(&agent("a", &["q"], 3)).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
                        .try_assign("a", &format!("c{i}"), 1_000 + i)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut assigned = 0;
        for task in tasks {
            if task.await.unwrap() {
                assigned += 1;
            }
        }
        assert_eq!(assigned, 3);
        let a = store.agent("a").await.unwrap().unwrap();
        assert_eq!(a.active_conversations.len(), 3);
        assert!(a.last_assigned_at.is_some());
    }

    #[tokio::test]
    async fn assign_is_idempotent_and_release_frees_a_slot() {
        let (_dir, store) = store();
        store.put_agent(&agent("a", &["q"], 2)).await.unwrap();
        assert!(store.try_assign("a", "c1", 100).await.unwrap());
        assert!(store.try_assign("a", "c2", 200).await.unwrap());
        // Re-assigning a conversation the agent has: true, nothing changes.
        assert!(store.try_assign("a", "c1", 300).await.unwrap());
        let a = store.agent("a").await.unwrap().unwrap();
        assert_eq!(a.active_conversations, ["c1", "c2"]);
        assert_eq!(a.last_assigned_at, Some(200));
        // Full.
        assert!(!store.try_assign("a", "c3", 400).await.unwrap());

        store.release("a", "c1").await.unwrap();
        store.release("a", "c1").await.unwrap(); // idempotent
        store.release("nobody", "c1").await.unwrap();
        assert!(store.try_assign("a", "c3", 500).await.unwrap());
        let a = store.agent("a").await.unwrap().unwrap();
        assert_eq!(a.active_conversations, ["c2", "c3"]);
        assert_eq!(a.last_assigned_at, Some(500));
    }

    #[tokio::test]
    async fn unavailable_or_unknown_agents_are_refused() {
        let (_dir, store) = store();
        let mut busy = agent("busy", &["q"], 5);
        busy.status = AgentStatus::Busy;
        let mut offline = agent("offline", &["q"], 5);
        offline.status = AgentStatus::Offline;
        store.put_agent(&busy).await.unwrap();
        store.put_agent(&offline).await.unwrap();
        assert!(!store.try_assign("busy", "c1", 1).await.unwrap());
        assert!(!store.try_assign("offline", "c1", 1).await.unwrap());
        assert!(!store.try_assign("ghost", "c1", 1).await.unwrap());
        let zero = agent("zero", &["q"], 0);
        store.put_agent(&zero).await.unwrap();
        assert!(!store.try_assign("zero", "c1", 1).await.unwrap());
        assert!(store
            .agent("busy")
            .await
            .unwrap()
            .unwrap()
            .active_conversations
            .is_empty());
    }

    #[tokio::test]
    async fn put_agent_keeps_queue_membership_and_assignment_state() {
        let (_dir, store) = store();
        store
            .put_agent(&agent("a", &["q1", "q2"], 2))
            .await
            .unwrap();
        store.put_agent(&agent("b", &["q2"], 2)).await.unwrap();
        let in_queue = |q: &'static str| {
            let store = store.clone();
            async move {
                store
                    .agents_in_queue(q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(in_queue("q1").await, ["a"]);
        assert_eq!(in_queue("q2").await, ["a", "b"]);
        assert!(store.try_assign("a", "c1", 42).await.unwrap());

        // a leaves q1, joins q3, goes busy; its active conversation and last assignment stay.
        let mut edited = agent("a", &["q2", "q3"], 4);
        edited.status = AgentStatus::Offline;
        edited.name = "Renamed".into();
        store.put_agent(&edited).await.unwrap();
        // The profile's edit keeps the presence (Available); presence is its own write.
        assert_eq!(
            store.agent("a").await.unwrap().unwrap().status,
            AgentStatus::Available
        );
        assert!(store.set_status("a", AgentStatus::Busy).await.unwrap());
        assert!(!store.set_status("ghost", AgentStatus::Busy).await.unwrap());
        assert!(store.agent("ghost").await.unwrap().is_none());
        assert!(in_queue("q1").await.is_empty());
        assert_eq!(in_queue("q2").await, ["a", "b"]);
        assert_eq!(in_queue("q3").await, ["a"]);
        let a = store.agent("a").await.unwrap().unwrap();
        assert_eq!(a.name, "Renamed");
        assert_eq!(a.queues, ["q2", "q3"]);
        assert_eq!(a.capacity, 4);
        assert_eq!(a.status, AgentStatus::Busy);
        assert_eq!(a.active_conversations, ["c1"]);
        assert_eq!(a.last_assigned_at, Some(42));
        assert!(store.agent("nobody").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn list_agents_is_ordered_by_id_and_carries_whole_agents() {
        let (_dir, store) = store();
        assert!(store.list_agents().await.unwrap().is_empty());
        store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
        store.put_agent(&agent("c", &[], 1)).await.unwrap();
        store
            .put_agent(&agent("a", &["q1", "q2"], 3))
            .await
            .unwrap();
        assert!(store.try_assign("b", "c1", 7).await.unwrap());
        let listed = store.list_agents().await.unwrap();
        let ids: Vec<_> = listed.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(listed[0], agent("a", &["q1", "q2"], 3));
        assert_eq!(listed[1].active_conversations, ["c1"]);
        assert_eq!(listed[1].last_assigned_at, Some(7));
        // Editing an agent does not duplicate it.
        store.put_agent(&agent("b", &["q2"], 5)).await.unwrap();
        assert_eq!(store.list_agents().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn delete_agent_removes_everything_of_the_agent_only() {
        let (_dir, store) = store();
        store
            .put_agent(&agent("a", &["q1", "q2"], 2))
            .await
            .unwrap();
        store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
        assert!(store.try_assign("a", "c1", 10).await.unwrap());
        assert!(store.try_assign("b", "c2", 11).await.unwrap());
        store.notify(&notification("n1", "a", 100)).await.unwrap();
        store.notify(&notification("n2", "a", 200)).await.unwrap();
        store.notify(&notification("n3", "b", 300)).await.unwrap();

        assert!(store.delete_agent("a").await.unwrap());
        assert!(store.agent("a").await.unwrap().is_none());
        let ids = |agents: Vec<Agent>| agents.into_iter().map(|a| a.id).collect::<Vec<_>>();
        assert_eq!(ids(store.list_agents().await.unwrap()), ["b"]);
        assert_eq!(ids(store.agents_in_queue("q1").await.unwrap()), ["b"]);
        assert!(store.agents_in_queue("q2").await.unwrap().is_empty());
        assert!(store.notifications("a").await.unwrap().is_empty());
        // b is untouched.
        assert_eq!(
            store.notifications("b").await.unwrap(),
            [notification("n3", "b", 300)]
        );
        let b = store.agent("b").await.unwrap().unwrap();
        assert_eq!(b.active_conversations, ["c2"]);
        // A deleted agent takes no work.
        assert!(!store.try_assign("a", "c3", 12).await.unwrap());

        // Gone already, or never there: false.
        assert!(!store.delete_agent("a").await.unwrap());
        assert!(!store.delete_agent("ghost").await.unwrap());

        // The same id again starts clean: no old conversations, assignment time or notifications;
        // a notification id used before is new again.
        store.put_agent(&agent("a", &["q2"], 1)).await.unwrap();
        let a = store.agent("a").await.unwrap().unwrap();
        assert_eq!(a, agent("a", &["q2"], 1));
        assert!(store.notifications("a").await.unwrap().is_empty());
        assert!(store
            .agents_in_queue("q1")
            .await
            .unwrap()
            .iter()
            .all(|x| x.id != "a"));
        assert_eq!(ids(store.agents_in_queue("q2").await.unwrap()), ["a"]);
        assert!(store.try_assign("a", "c9", 20).await.unwrap());
        store.notify(&notification("n1", "a", 500)).await.unwrap();
        assert_eq!(
            store.notifications("a").await.unwrap(),
            [notification("n1", "a", 500)]
        );
    }

    /// Every page of `notifications_after` from the start, `page` at a time.
    async fn pages(store: &SqliteAgentStore, agent_id: &str, page: usize) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut cursor: Option<(i64, String)> = None;
        loop {
            let got = store
                .notifications_after(
                    agent_id,
                    cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
                    page,
                )
                .await
                .unwrap();
            assert!(got.len() <= page, "page of {} > {page}", got.len());
            let Some(last) = got.last() else {
                return out;
            };
            cursor = Some((last.created_at, last.id.clone()));
            out.push(got.into_iter().map(|n| n.id).collect());
            assert!(out.len() < 100, "pagination does not end");
        }
    }

    #[tokio::test]
    async fn notifications_after_pages_through_every_notification_once_in_order() {
        let (_dir, store) = store();
        // Equal created_at with different ids (inserted out of order), ids that are prefixes of
        // one another, a negative time, and another agent's notifications interleaved.
        for (id, at) in [
            ("n-b", 200),
            ("n-a", 200),
            ("n-ab", 200),
            ("n-c", 200),
            ("early", 100),
            ("late", 300),
            ("neg", -5),
            ("zero", 0),
            ("n", 200),
            ("last", 400),
        ] {
            store.notify(&notification(id, "a", at)).await.unwrap();
        }
        store
            .notify(&notification("other", "b", 250))
            .await
            .unwrap();
        store
            .notify(&notification("other2", "b", 150))
            .await
            .unwrap();

        let all: Vec<String> = store
            .notifications("a")
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(
            all,
            ["neg", "zero", "early", "n", "n-a", "n-ab", "n-b", "n-c", "late", "last"]
        );
        for page in 1..=11 {
            let got = pages(&store, "a", page).await;
            assert_eq!(got.concat(), all, "page size {page}");
            let full_pages = all.len() / page;
            assert!(got[..full_pages].iter().all(|p| p.len() == page));
        }

        // All at once; limit 0; after the last one; a cursor that is not a stored notification.
        let at_once = store.notifications_after("a", None, 100).await.unwrap();
        assert_eq!(at_once, store.notifications("a").await.unwrap());
        assert!(store
            .notifications_after("a", None, 0)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .notifications_after("a", Some((400, "last")), 10)
            .await
            .unwrap()
            .is_empty());
        let ids = |ns: Vec<AgentNotification>| ns.into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store
                .notifications_after("a", Some((200, "n-aa")), 3)
                .await
                .unwrap()),
            ["n-ab", "n-b", "n-c"]
        );
        assert_eq!(
            ids(store
                .notifications_after("a", Some((200, "n")), 2)
                .await
                .unwrap()),
            ["n-a", "n-ab"]
        );
        assert_eq!(
            ids(store
                .notifications_after("a", Some((250, "")), 5)
                .await
                .unwrap()),
            ["late", "last"]
        );
        assert_eq!(
            ids(store
                .notifications_after("b", Some((150, "other2")), 5)
                .await
                .unwrap()),
            ["other"]
        );
        assert!(store
            .notifications_after("nobody", None, 5)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn notifications_are_idempotent_by_id_and_ordered() {
        let (_dir, store) = store();
        store.notify(&notification("n2", "a", 200)).await.unwrap();
        store.notify(&notification("n1", "a", 100)).await.unwrap();
        // A retry of n2, even with another time and name: nothing changes.
        let mut retry = notification("n2", "a", 300);
        retry.customer_name = "other".into();
        store.notify(&retry).await.unwrap();
        store.notify(&notification("n3", "b", 50)).await.unwrap();
        let got = store.notifications("a").await.unwrap();
        assert_eq!(
            got,
            [notification("n1", "a", 100), notification("n2", "a", 200)]
        );
        assert_eq!(store.notifications("b").await.unwrap().len(), 1);
        assert!(store.notifications("c").await.unwrap().is_empty());
    }
}
