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

use crate::sql::{from_json, query_column, query_one, to_json};
use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_domain::agents::{Agent, AgentNotification, AgentStatus, MISSED_OFFERS_AWAY};
use omniline_domain::PortError;
use omniline_ports::AgentStore;
use rusqlite::{params, Connection, Params, TransactionBehavior};

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

/// When the agent last set its own presence (epoch ms; `NULL`: never), added to databases made
/// before it.
/// A notification's retention (epoch seconds; `NULL`: kept), added to databases made before it:
/// the conversation store's sweep deletes the expired ones.
const NOTIFICATION_COLUMNS: [(&str, &str, &str); 1] =
    [("agent_notifications", "expires_at", "INTEGER")];

const PRESENCE_COLUMNS: [(&str, &str, &str); 2] = [
    ("agents", "last_seen_at", "INTEGER"),
    // Offers the agent let expire in a row.
    ("agents", "missed_offers", "INTEGER NOT NULL DEFAULT 0"),
];

/// [`AgentStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteAgentStore {
    db: EmbeddedDb,
}

impl SqliteAgentStore {
    /// A slot of `agent_id` for `conversation_id` within capacity, only while available when
    /// `available_only` ([`AgentStore::try_assign`]; [`AgentStore::claim_own`] otherwise).
    async fn claim(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
        available_only: bool,
    ) -> Result<bool, PortError> {
        let (agent_id, conversation_id) = (agent_id.to_owned(), conversation_id.to_owned());
        self.db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if slot_held(&tx, &agent_id, &conversation_id)? {
                    return Ok(true);
                }
                let profile: Option<(String, i64)> = query_one(
                    &tx,
                    "SELECT status, capacity FROM agents WHERE id = ?1",
                    [&agent_id],
                )?;
                let Some((status, capacity)) = profile else {
                    return Ok(false);
                };
                let active: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM agent_conversations WHERE agent_id = ?1",
                    params![agent_id],
                    |r| r.get(0),
                )?;
                if (available_only && status != AgentStatus::Available.as_str())
                    || active >= capacity
                {
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

    /// Creates the store's tables if needed.
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(SCHEMA)?;
        db.add_columns(&PRESENCE_COLUMNS)?;
        db.add_columns(&NOTIFICATION_COLUMNS)?;
        db.apply_schema(
            "CREATE INDEX IF NOT EXISTS agent_notifications_expires
                 ON agent_notifications (expires_at);",
        )?;
        Ok(Self { db })
    }
}

/// Whether `agent_id`'s slots hold `conversation_id` (the conversation store checks it too).
pub(crate) fn slot_held(
    conn: &Connection,
    agent_id: &str,
    conversation_id: &str,
) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM agent_conversations
                        WHERE agent_id = ?1 AND conversation_id = ?2)",
        params![agent_id, conversation_id],
        |r| r.get(0),
    )
}

fn load_agent(conn: &Connection, id: &str) -> rusqlite::Result<Option<Agent>> {
    type Row = (
        String,
        String,
        String,
        u32,
        String,
        Option<i64>,
        Option<i64>,
    );
    let row: Option<Row> = query_one(
        conn,
        "SELECT name, queues, skills, capacity, status, last_assigned_at, last_seen_at
         FROM agents WHERE id = ?1",
        [id],
    )?;
    let Some((name, queues, skills, capacity, status, last_assigned_at, last_seen_at)) = row else {
        return Ok(None);
    };
    let status = AgentStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown agent status {status:?}").into(),
        )
    })?;
    let active_conversations = query_column(
        conn,
        "SELECT conversation_id FROM agent_conversations WHERE agent_id = ?1
         ORDER BY conversation_id",
        params![id],
    )?;
    Ok(Some(Agent {
        id: id.to_owned(),
        name,
        queues: from_json(1, &queues)?,
        skills: from_json(2, &skills)?,
        capacity,
        status,
        active_conversations,
        last_seen_at,
        last_assigned_at,
    }))
}

/// The agents whose ids `sql` selects, in its order, read in one transaction.
fn load_agents(
    conn: &mut Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Vec<Agent>> {
    let tx = conn.transaction()?;
    let ids: Vec<String> = query_column(&tx, sql, params)?;
    let mut agents = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(agent) = load_agent(&tx, &id)? {
            agents.push(agent);
        }
    }
    tx.commit()?;
    Ok(agents)
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

    async fn set_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        seen_at: i64,
    ) -> Result<bool, PortError> {
        self.db
            .changed(
                "UPDATE agents SET status = ?2, last_seen_at = ?3 WHERE id = ?1",
                (agent_id.to_owned(), status.as_str(), seen_at),
            )
            .await
    }

    async fn record_offer(&self, agent_id: &str, missed: bool) -> Result<bool, PortError> {
        let agent_id = agent_id.to_owned();
        self.db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !missed {
                    tx.execute(
                        "UPDATE agents SET missed_offers = 0 WHERE id = ?1",
                        params![agent_id],
                    )?;
                    tx.commit()?;
                    return Ok(false);
                }
                tx.execute(
                    "UPDATE agents SET missed_offers = missed_offers + 1 WHERE id = ?1",
                    params![agent_id],
                )?;
                let reached = tx.execute(
                    "UPDATE agents SET missed_offers = 0 WHERE id = ?1 AND missed_offers >= ?2",
                    params![agent_id, MISSED_OFFERS_AWAY],
                )? > 0;
                let away = reached
                    && tx.execute(
                        "UPDATE agents SET status = 'away'
                         WHERE id = ?1 AND status IN ('available', 'busy')",
                        params![agent_id],
                    )? > 0;
                tx.commit()?;
                Ok(away)
            })
            .await
    }

    async fn expire_presence(&self, agent_id: &str, seen_before: i64) -> Result<bool, PortError> {
        self.db
            .changed(
                "UPDATE agents SET status = 'away'
                 WHERE id = ?1 AND status IN ('available', 'busy')
                   AND last_seen_at IS NOT NULL AND last_seen_at < ?2",
                (agent_id.to_owned(), seen_before),
            )
            .await
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>, PortError> {
        let id = id.to_owned();
        self.db.run(move |conn| load_agent(conn, &id)).await
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, PortError> {
        self.db
            .run(|conn| load_agents(conn, "SELECT id FROM agents ORDER BY id", []))
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
                load_agents(
                    conn,
                    "SELECT agent_id FROM agent_queues WHERE queue_id = ?1 ORDER BY agent_id",
                    (queue_id,),
                )
            })
            .await
    }

    async fn try_assign(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
    ) -> Result<bool, PortError> {
        self.claim(agent_id, conversation_id, at_millis, true).await
    }

    async fn claim_own(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
    ) -> Result<bool, PortError> {
        self.claim(agent_id, conversation_id, at_millis, false)
            .await
    }

    async fn release(&self, agent_id: &str, conversation_id: &str) -> Result<(), PortError> {
        self.db
            .execute(
                "DELETE FROM agent_conversations WHERE agent_id = ?1 AND conversation_id = ?2",
                (agent_id.to_owned(), conversation_id.to_owned()),
            )
            .await
            .map(drop)
    }

    async fn notify(
        &self,
        notification: &AgentNotification,
        expires_at: Option<i64>,
    ) -> Result<(), PortError> {
        let notification = notification.clone();
        self.db
            .run(move |conn| {
                let tx = conn.transaction()?;
                insert_notification(&tx, &notification, expires_at)?;
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
        self.db
            .docs(
                "SELECT doc FROM agent_notifications WHERE agent_id = ?1
                 ORDER BY created_at, id",
                (agent_id.to_owned(),),
            )
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
        // More than SQLite's LIMIT can take means no limit.
        let limit = i64::try_from(limit).unwrap_or(-1);
        // The (agent_id, created_at, id) index serves both the range and the order.
        match after {
            None => {
                self.db
                    .docs(
                        "SELECT doc FROM agent_notifications WHERE agent_id = ?1
                         ORDER BY created_at, id LIMIT ?2",
                        (agent_id, limit),
                    )
                    .await
            }
            Some((created_at, id)) => {
                self.db
                    .docs(
                        "SELECT doc FROM agent_notifications
                         WHERE agent_id = ?1 AND (created_at, id) > (?2, ?3)
                         ORDER BY created_at, id LIMIT ?4",
                        (agent_id, created_at, id.to_owned(), limit),
                    )
                    .await
            }
        }
    }
}

/// Stores `notification` (and its conversation's index row) in `tx`, deleted by the retention
/// sweep after `expires_at` (epoch seconds; `None`: kept); an id stored before is left as it
/// is. Also used by the conversation store's commit, in the commit's transaction.
pub(crate) fn insert_notification(
    tx: &rusqlite::Transaction<'_>,
    notification: &AgentNotification,
    expires_at: Option<i64>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO agent_notifications (id, agent_id, created_at, doc, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            notification.id,
            notification.agent_id,
            notification.created_at,
            to_json(notification)?,
            expires_at
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO conversation_notifications (conversation_id, notification_id)
         VALUES (?1, ?2)",
        params![notification.conversation_id, notification.id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The AgentStore contract (omniline_testkit::agent_contract), also run against DynamoDB on
    //! moto (tests/tests/dynamo_agents.rs). Nothing of this store is SQLite-specific beyond it.

    use super::*;
    use omniline_testkit::agent_contract as contract;
    use std::sync::Arc;

    fn store(dir: &tempfile::TempDir) -> SqliteAgentStore {
        SqliteAgentStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn capacity_is_never_exceeded_by_concurrent_assignments() {
        let dir = tempfile::tempdir().unwrap();
        contract::capacity_is_never_exceeded_by_concurrent_assignments(Arc::new(store(&dir))).await;
    }

    #[tokio::test]
    async fn delete_agent_removes_everything_of_the_agent_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        contract::delete_agent_removes_everything_of_the_agent_only(&store).await;
        contract::a_deleted_agents_id_starts_clean(&store).await;
    }

    contract_scenarios!(store =>
        assign_is_idempotent_and_release_frees_a_slot,
        unavailable_or_unknown_agents_are_refused,
        presence_expires_only_for_agents_not_heard_from,
        claim_own_ignores_presence_but_not_capacity,
        two_missed_offers_in_a_row_set_an_agent_away,
        put_agent_moves_queue_membership_and_keeps_assignment_state,
        list_agents_is_ordered_by_id_and_carries_whole_agents,
        list_agents_lists_many_agents_in_id_order,
        delete_agent_without_profile_still_clears_notifications,
        notifications_are_idempotent_by_id_and_ordered,
        notifications_after_pages_through_every_notification_once_in_order,
        notifications_after_reads_past_a_page_of_big_notifications,
        a_conversations_notifications_are_deleted_for_every_agent,
    );
}
