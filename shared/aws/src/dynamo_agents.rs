//! [`AgentStore`] on one DynamoDB table (`pk`, `sk`). Item layout:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | agent | `AGENT#{id}` | `PROFILE` | `id`, `name`, `queues` (L of S), `skills` (L of S), `capacity` N, `status` S, `profileVersion` N, `activeConversations` SS (absent when empty), `activeCount` N, `lastAssignedAt` N |
//! | queue membership | `QUEUE#{queueId}` | `AGENT#{agentId}` | `agentId` |
//! | notification | `AGENT#{agentId}` | `NOTIFY#{createdAt:020}#{id}` | the notification's fields, camelCase |
//! | notification marker | `NOTIFICATION#{id}` | `NOTIFICATION` | `agentId` |
//! | notification of a conversation | `CONVNOTIFY#{conversationId}` | `{id}` | `agentId`, `createdAt` (for erasing a customer's) |
//! | agent index | `AGENTS` | `{agentId}` | `agentId` |
//!
//! * `try_assign` is one conditional `UpdateItem`
//!   (`ADD activeConversations :c, activeCount :one SET lastAssignedAt = :t` if
//!   `status = available AND activeCount < capacity AND NOT contains(activeConversations, :cid)`),
//!   so DynamoDB itself guarantees that no agent exceeds its capacity. When the condition fails, a
//!   consistent read tells "already mine" (true) from "full / not available / unknown" (false).
//! * `release` is the reverse update, conditional on the conversation being in the set.
//! * `put_agent` edits the profile fields only (the assignment attributes are kept, `activeCount`
//!   is initialised to 0), writes the agent's index item and moves the queue memberships, all in
//!   one `TransactWriteItems` guarded by `profileVersion`, retried when another writer got there
//!   first. A transaction holds at most 100 operations: the profile, the index item and 98
//!   membership changes (queues joined plus queues left).
//! * `list_agents` queries the `AGENTS` partition (no scan) and reads the profiles with
//!   `BatchGetItem`. Agents written before the index item existed have none, so they are not
//!   listed until their next `put_agent` writes it (every `put_agent` does, unconditionally);
//!   that is accepted rather than migrated.
//! * `delete_agent` deletes the profile (with its active conversations, which live on it), the
//!   index item and the memberships of the profile's `queues` in one `TransactWriteItems`,
//!   conditional on the profile read (by `profileVersion`, so it exists and its queues are the
//!   ones deleted), retried when another writer got there first; `false` when there is no
//!   profile. Then it deletes the agent's notifications and their markers with `BatchWriteItem`
//!   (25 a call, unprocessed items retried). That second step also runs when there was no
//!   profile, so a retry after a failure there finishes the job; a notification written for the
//!   id after the profile is gone is removed as well.
//! * `notify` writes the notification and its marker in one transaction, both conditional on not
//!   existing: a retry with the same id (whatever its `createdAt`) is a no-op.
//! * `notifications_after` is a consistent `Query` of the agent's partition with
//!   `sk BETWEEN NOTIFY#{createdAt:020}#{id} AND NOTIFY#\u{10FFFF}` (the cursor's own sort key up
//!   to above every notification key), the cursor item itself skipped, paged with `Limit` until
//!   `limit` notifications are read. The sort key orders by time then id (a byte-wise string
//!   order, like Rust's and SQLite's) for non-negative times only: the times the key clamps to
//!   0 (`createdAt <= 0`) are read whole and sorted in Rust when the cursor is among them, so the
//!   order is exactly that of `notifications`.

use crate::aws_error;
use crate::dynamo::{
    attempts, build_error, condition_held, key, n, number, s, string, transact_check,
    transact_delete, transact_put, transact_update, Condition, Conditional, Item, Outcome, Pages,
    Table,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem, Update};
use omniline_domain::agents::{
    Agent, AgentNotification, AgentStatus, MISSED_OFFERS_AWAY, NOTIFICATION_MESSAGE,
};
use omniline_domain::PortError;
use omniline_ports::AgentStore;
use std::collections::BTreeSet;

const PROFILE: &str = "PROFILE";
const NOTIFICATION: &str = "NOTIFICATION";
/// The partition listing one conversation's notifications.
const CONVNOTIFY: &str = "CONVNOTIFY";
const NOTIFY_PREFIX: &str = "NOTIFY#";
const AGENT_PREFIX: &str = "AGENT#";
/// The partition of the agent index items (sort key: the agent id).
const AGENTS_PK: &str = "AGENTS";
/// `TransactWriteItems` takes at most 100 operations: the profile, the index item and 98
/// membership changes.
const MAX_TRANSACT_ITEMS: usize = 100;
/// Operations of an agent transaction other than memberships: the profile and the index item.
const AGENT_ITEMS: usize = 2;

/// [`AgentStore`] on DynamoDB; see the module documentation for the item layout.
#[derive(Debug, Clone)]
pub struct DynamoAgentStore {
    table: Table,
}

fn string_list(values: &[String]) -> AttributeValue {
    AttributeValue::L(values.iter().map(|v| s(v.as_str())).collect())
}

fn agent_pk(id: &str) -> String {
    format!("{AGENT_PREFIX}{id}")
}

fn queue_pk(queue_id: &str) -> String {
    format!("QUEUE#{queue_id}")
}

fn notification_sk(notification: &AgentNotification) -> String {
    // Zero-padded so that the sort key orders by time; negative times sort as 0.
    format!(
        "{NOTIFY_PREFIX}{:020}#{}",
        notification.created_at.max(0),
        notification.id
    )
}

/// The sort keys of the notifications created at `created_at` (clamped as in
/// [`notification_sk`]) all begin with this.
fn notification_sk_prefix(created_at: i64) -> String {
    format!("{NOTIFY_PREFIX}{:020}#", created_at.max(0))
}

/// Above every notification sort key (`NOTIFY#` then a digit), below `PROFILE`.
const NOTIFY_END: &str = "NOTIFY#\u{10FFFF}";
/// Above every sort key beginning with `notification_sk_prefix(0)` (`$` follows `#`), below
/// those of positive times.
const NOTIFY_CLAMPED_END: &str = "NOTIFY#00000000000000000000$";
/// The most items asked of one `Query` page.
const QUERY_PAGE: usize = 1000;

/// Whether `n` comes strictly after the cursor `after` in (`created_at`, id) order.
fn is_after(n: &AgentNotification, after: Option<(i64, &str)>) -> bool {
    after.is_none_or(|cursor| (n.created_at, n.id.as_str()) > cursor)
}

fn malformed(what: &str, key: &str) -> PortError {
    PortError::Unavailable(format!("DynamoDB {what} item without a valid {key}"))
}

fn get_s<'a>(item: &'a Item, what: &str, key: &str) -> Result<&'a str, PortError> {
    string(item, key).ok_or_else(|| malformed(what, key))
}

fn get_opt_s(item: &Item, key: &str) -> Option<String> {
    string(item, key).map(str::to_owned)
}

fn get_n<T: std::str::FromStr>(item: &Item, what: &str, key: &str) -> Result<T, PortError> {
    number(item, key).ok_or_else(|| malformed(what, key))
}

fn get_opt_n<T: std::str::FromStr>(
    item: &Item,
    what: &str,
    key: &str,
) -> Result<Option<T>, PortError> {
    match item.get(key) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => get_n(item, what, key).map(Some),
    }
}

fn get_string_list(item: &Item, what: &str, key: &str) -> Result<Vec<String>, PortError> {
    match item.get(key) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| v.as_s().cloned().map_err(|_| malformed(what, key)))
            .collect(),
        Some(_) => Err(malformed(what, key)),
    }
}

fn agent_from_item(item: &Item) -> Result<Agent, PortError> {
    const WHAT: &str = "agent";
    let status = get_s(item, WHAT, "status")?;
    let mut active_conversations = match item.get("activeConversations") {
        None => Vec::new(),
        Some(AttributeValue::Ss(set)) => set.clone(),
        Some(_) => return Err(malformed(WHAT, "activeConversations")),
    };
    active_conversations.sort();
    Ok(Agent {
        id: get_s(item, WHAT, "id")?.to_owned(),
        name: get_s(item, WHAT, "name")?.to_owned(),
        queues: get_string_list(item, WHAT, "queues")?,
        skills: get_string_list(item, WHAT, "skills")?,
        capacity: get_n(item, WHAT, "capacity")?,
        status: AgentStatus::parse(status).ok_or_else(|| malformed(WHAT, "status"))?,
        active_conversations,
        last_assigned_at: get_opt_n(item, WHAT, "lastAssignedAt")?,
        last_seen_at: get_opt_n(item, WHAT, "lastSeenAt")?,
    })
}

fn notification_item(notification: &AgentNotification) -> Item {
    let mut item = key(
        agent_pk(&notification.agent_id),
        notification_sk(notification),
    );
    item.extend([
        ("id".to_owned(), s(notification.id.as_str())),
        ("agentId".to_owned(), s(notification.agent_id.as_str())),
        (
            "conversationId".to_owned(),
            s(notification.conversation_id.as_str()),
        ),
        ("accountId".to_owned(), s(notification.account_id.as_str())),
        ("kind".to_owned(), s(notification.kind.as_str())),
        (
            "customerName".to_owned(),
            s(notification.customer_name.as_str()),
        ),
        ("queueId".to_owned(), s(notification.queue_id.as_str())),
        ("createdAt".to_owned(), n(notification.created_at)),
    ]);
    for (name, value) in [
        ("customerUserId", &notification.customer_user_id),
        ("customerPictureUrl", &notification.customer_picture_url),
        ("customerLanguage", &notification.customer_language),
    ] {
        if let Some(value) = value {
            item.insert(name.to_owned(), s(value.as_str()));
        }
    }
    if let Some(failure) = &notification.delivery {
        // The undelivered message (deliveryFailed), as its JSON.
        if let Ok(json) = serde_json::to_string(failure) {
            item.insert("delivery".to_owned(), s(json.as_str()));
        }
    }
    if let Some(at) = notification.expires_at {
        item.insert("offerExpiresAt".to_owned(), n(at));
    }
    item
}

fn notification_from_item(item: &Item) -> Result<AgentNotification, PortError> {
    const WHAT: &str = "notification";
    Ok(AgentNotification {
        id: get_s(item, WHAT, "id")?.to_owned(),
        agent_id: get_s(item, WHAT, "agentId")?.to_owned(),
        conversation_id: get_s(item, WHAT, "conversationId")?.to_owned(),
        account_id: get_s(item, WHAT, "accountId")?.to_owned(),
        kind: get_s(item, WHAT, "kind")?.to_owned(),
        customer_user_id: get_opt_s(item, "customerUserId"),
        customer_name: get_s(item, WHAT, "customerName")?.to_owned(),
        customer_picture_url: get_opt_s(item, "customerPictureUrl"),
        customer_language: get_opt_s(item, "customerLanguage"),
        queue_id: get_s(item, WHAT, "queueId")?.to_owned(),
        created_at: get_n(item, WHAT, "createdAt")?,
        delivery: get_opt_s(item, "delivery").and_then(|json| serde_json::from_str(&json).ok()),
        expires_at: get_opt_n(item, WHAT, "offerExpiresAt")?,
    })
}

/// The transaction operations deleting the memberships of the agent whose partition is `pk` in
/// `queues`.
fn leave_queues<'a>(
    table: &str,
    pk: &str,
    queues: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<TransactWriteItem>, PortError> {
    queues
        .into_iter()
        .map(|queue| transact_delete(table, key(queue_pk(queue), pk), None))
        .collect()
}

/// The condition that an agent's slots hold `conversation_id`.
fn holds(conversation_id: &str) -> Condition {
    Condition::new("contains(#active, :conversationId)")
        .name("#active", "activeConversations")
        .value(":conversationId", s(conversation_id))
}

/// Gives a slot back: the update expression (its names and values are in
/// [`release_condition`]).
const RELEASE: &str = "DELETE #active :conversation ADD #activeCount :minusOne";

/// The condition of [`RELEASE`]: the slot is held.
fn release_condition(conversation_id: &str) -> Condition {
    holds(conversation_id)
        .name("#activeCount", "activeCount")
        .value(
            ":conversation",
            AttributeValue::Ss(vec![conversation_id.to_owned()]),
        )
        .value(":minusOne", n(-1))
}

/// The items of `notification`, each expiring at `expires_at`: its marker (when `marked`), the
/// notification, and its entry under the conversation (for erasing a customer's).
fn notification_items(
    notification: &AgentNotification,
    marked: bool,
    expires_at: Option<i64>,
) -> Vec<Item> {
    let expiring = |mut item: Item| {
        if let Some(at) = expires_at {
            item.insert("expiresAt".to_owned(), n(at));
        }
        item
    };
    let mut items = Vec::with_capacity(3);
    if marked {
        let mut marker = key(format!("{NOTIFICATION}#{}", notification.id), NOTIFICATION);
        marker.insert("agentId".to_owned(), s(notification.agent_id.as_str()));
        items.push(expiring(marker));
    }
    items.push(expiring(notification_item(notification)));
    let mut listed = key(
        format!("{CONVNOTIFY}#{}", notification.conversation_id),
        notification.id.clone(),
    );
    listed.insert("agentId".to_owned(), s(notification.agent_id.as_str()));
    listed.insert("createdAt".to_owned(), n(notification.created_at));
    items.push(expiring(listed));
    items
}

/// The items a conversation commit writes for `notification` once its transaction landed (plain
/// puts, idempotent: the commit's deduplication record guards them, and records them so that a
/// redelivery completes them), expiring at `expires_at` (epoch seconds: the retention of the
/// conversation the notification is about; `None` keeps them).
///
/// A customer's message notification (`message`) goes without its marker: its id is the
/// event's (`{conversation}:{event}:message`), written by that event's commit only, so no
/// `notify` can meet it. An assignment's (`{conversation}:{agent}:assigned:{version}`) keeps its
/// marker: `notify` writes assignment notifications too (a pick, a transfer).
pub(crate) fn committed_notification_items(
    notification: &AgentNotification,
    expires_at: Option<i64>,
) -> Vec<Item> {
    notification_items(
        notification,
        notification.kind != NOTIFICATION_MESSAGE,
        expires_at,
    )
}

/// The transaction operations of `notification` for [`AgentStore::notify`]: the marker and the
/// notification on condition that they do not exist (a retry with the same id is a no-op), and
/// the conversation's entry (written the same whatever).
fn notification_writes(
    table: &str,
    notification: &AgentNotification,
    expires_at: Option<i64>,
) -> Result<Vec<TransactWriteItem>, PortError> {
    let items = notification_items(notification, true, expires_at);
    let guarded = items.len() - 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let absent = (i < guarded).then(|| Condition::new("attribute_not_exists(pk)"));
            transact_put(table, item, absent)
        })
        .collect()
}

/// A transaction operation of another store (on the profile item `agent` of the agents' table
/// `table`): that the agent's slots hold `conversation_id`.
pub(crate) fn slot_held(
    table: &str,
    agent: Item,
    conversation_id: &str,
) -> Result<TransactWriteItem, PortError> {
    transact_check(table, agent, holds(conversation_id))
}

/// A transaction operation of another store: `release` of `conversation_id`'s slot, on the
/// profile item `agent` of the agents' table `table`.
pub(crate) fn slot_release(
    table: &str,
    agent: Item,
    conversation_id: &str,
) -> Result<TransactWriteItem, PortError> {
    transact_update(table, agent, RELEASE, release_condition(conversation_id))
}

impl DynamoAgentStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
        }
    }

    async fn profile_item(&self, agent_id: &str) -> Result<Option<Item>, PortError> {
        self.table
            .get_consistent(key(agent_pk(agent_id), PROFILE))
            .await
    }

    /// Sends an agent transaction; `false` when it was cancelled by a failed condition or a
    /// concurrent write (the callers read again and retry).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, PortError> {
        Ok(matches!(
            self.table.transact(items).await?.outcome()?,
            Outcome::Done
        ))
    }

    /// One attempt of `put_agent`; `false` if another writer changed the profile since `old`.
    async fn put_agent_once(&self, agent: &Agent, old: Option<&Item>) -> Result<bool, PortError> {
        let pk = agent_pk(&agent.id);
        let (old_version, old_queues): (Option<u64>, Vec<String>) = match old {
            Some(item) => (
                get_opt_n(item, "agent", "profileVersion")?,
                get_string_list(item, "agent", "queues")?,
            ),
            None => (None, Vec::new()),
        };
        let new_queues: BTreeSet<&str> = agent.queues.iter().map(String::as_str).collect();
        let old_queues: BTreeSet<&str> = old_queues.iter().map(String::as_str).collect();
        let removed: Vec<&str> = old_queues.difference(&new_queues).copied().collect();
        if AGENT_ITEMS + new_queues.len() + removed.len() > MAX_TRANSACT_ITEMS {
            return Err(PortError::Unavailable(format!(
                "agent {} would change {} queue memberships at once; at most {} are supported",
                agent.id,
                new_queues.len() + removed.len(),
                MAX_TRANSACT_ITEMS - AGENT_ITEMS
            )));
        }

        let mut set = vec![
            "#id = :id",
            "#name = :name",
            "#queues = :queues",
            "#skills = :skills",
            "#capacity = :capacity",
            // A presence of its own (set_status): kept for an existing agent.
            "#status = if_not_exists(#status, :status)",
            "#profileVersion = :newVersion",
            "#activeCount = if_not_exists(#activeCount, :zero)",
        ];
        let mut update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(key(pk.clone(), PROFILE)))
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#queues", "queues")
            .expression_attribute_names("#skills", "skills")
            .expression_attribute_names("#capacity", "capacity")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#profileVersion", "profileVersion")
            .expression_attribute_names("#activeCount", "activeCount")
            .expression_attribute_values(":id", s(agent.id.as_str()))
            .expression_attribute_values(":name", s(agent.name.as_str()))
            .expression_attribute_values(":queues", string_list(&agent.queues))
            .expression_attribute_values(":skills", string_list(&agent.skills))
            .expression_attribute_values(":capacity", n(agent.capacity))
            .expression_attribute_values(":status", s(agent.status.as_str()))
            .expression_attribute_values(":newVersion", n(old_version.unwrap_or(0) + 1))
            .expression_attribute_values(":zero", n(0));
        if let Some(at) = agent.last_assigned_at {
            set.push("#lastAssignedAt = if_not_exists(#lastAssignedAt, :lastAssignedAt)");
            update = update
                .expression_attribute_names("#lastAssignedAt", "lastAssignedAt")
                .expression_attribute_values(":lastAssignedAt", n(at));
        }
        update = update.update_expression(format!("SET {}", set.join(", ")));
        // Optimistic concurrency on the profile: the queues read are the queues replaced.
        update = update.when(match (old, old_version) {
            (None, _) => Condition::new("attribute_not_exists(#pk)").name("#pk", "pk"),
            (Some(_), Some(version)) => {
                Condition::new("#profileVersion = :oldVersion").value(":oldVersion", n(version))
            }
            (Some(_), None) => {
                Condition::new("attribute_exists(#pk) AND attribute_not_exists(#profileVersion)")
                    .name("#pk", "pk")
            }
        });

        let table = self.table.name.as_str();
        let mut index = key(AGENTS_PK.to_owned(), agent.id.as_str());
        index.insert("agentId".to_owned(), s(agent.id.as_str()));
        let mut items = vec![
            TransactWriteItem::builder()
                .update(update.build().map_err(build_error)?)
                .build(),
            transact_put(table, index, None)?,
        ];
        for queue in &new_queues {
            let mut item = key(queue_pk(queue), pk.as_str());
            item.insert("agentId".to_owned(), s(agent.id.as_str()));
            items.push(transact_put(table, item, None)?);
        }
        items.extend(leave_queues(table, &pk, removed)?);
        // Only the profile is conditional: `false` when someone else wrote it since we read it.
        self.transact(items).await
    }

    /// One attempt of deleting the profile `old`, its index item and its memberships; `false` if
    /// another writer changed (or deleted) the profile since it was read.
    async fn delete_profile_once(&self, id: &str, old: &Item) -> Result<bool, PortError> {
        let pk = agent_pk(id);
        let version: Option<u64> = get_opt_n(old, "agent", "profileVersion")?;
        let queues = get_string_list(old, "agent", "queues")?;
        let queues: BTreeSet<&str> = queues.iter().map(String::as_str).collect();
        if AGENT_ITEMS + queues.len() > MAX_TRANSACT_ITEMS {
            return Err(PortError::Unavailable(format!(
                "agent {id} is in {} queues; at most {} can be deleted at once",
                queues.len(),
                MAX_TRANSACT_ITEMS - AGENT_ITEMS
            )));
        }
        // Optimistic concurrency, as in put_agent: the queues read are the memberships deleted.
        let unchanged = match version {
            Some(version) => Condition::new("#profileVersion = :version")
                .name("#profileVersion", "profileVersion")
                .value(":version", n(version)),
            None => {
                Condition::new("attribute_exists(#pk) AND attribute_not_exists(#profileVersion)")
                    .name("#pk", "pk")
                    .name("#profileVersion", "profileVersion")
            }
        };
        let table = self.table.name.as_str();
        let mut items = vec![
            transact_delete(table, key(pk.clone(), PROFILE), unchanged)?,
            transact_delete(table, key(AGENTS_PK.to_owned(), id), None)?,
        ];
        items.extend(leave_queues(table, &pk, queues)?);
        // Only the profile is conditional: `false` when it changed or went since we read it.
        self.transact(items).await
    }

    /// Deletes the profile, index item and memberships; `false` if there is no profile.
    async fn delete_profile(&self, id: &str) -> Result<bool, PortError> {
        for pause in attempts() {
            pause.await;
            let Some(old) = self.profile_item(id).await? else {
                return Ok(false);
            };
            if self.delete_profile_once(id, &old).await? {
                return Ok(true);
            }
        }
        Err(PortError::Unavailable(format!(
            "agent {id}: the profile kept changing during delete_agent"
        )))
    }

    /// Deletes every notification of `agent_id` and its marker.
    async fn delete_notifications(&self, agent_id: &str) -> Result<(), PortError> {
        let pk = agent_pk(agent_id);
        // A set: no key twice in one BatchWriteItem (DynamoDB refuses that).
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        self.table
            .partition_prefix(pk.clone(), NOTIFY_PREFIX)
            .projection_expression("#sk, #id, #conversation")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#conversation", "conversationId")
            .each_item("DynamoDB Query", |item| {
                let sk = get_s(item, "notification", "sk")?;
                keys.insert((pk.clone(), sk.to_owned()));
                // The marker was written with the notification, in the same transaction.
                if let Some(id) = get_opt_s(item, "id") {
                    keys.insert((format!("{NOTIFICATION}#{id}"), NOTIFICATION.to_owned()));
                    if let Some(conversation) = get_opt_s(item, "conversationId") {
                        keys.insert((format!("{CONVNOTIFY}#{conversation}"), id.to_owned()));
                    }
                }
                Ok(())
            })
            .await?;
        self.batch_delete(keys, &format!("agent {agent_id}'s notifications"))
            .await
    }

    /// Deletes every key of `keys` ([`Table::batch_delete`]).
    async fn batch_delete(
        &self,
        keys: BTreeSet<(String, String)>,
        what: &str,
    ) -> Result<(), PortError> {
        self.table
            .batch_delete(keys.into_iter().map(|(pk, sk)| key(pk, sk)), what)
            .await
    }

    /// The agent's notifications with a sort key in `from..=to`, in sort key order, strictly
    /// after `after`, appended to `out` until it holds `limit`: a consistent `Query` paged with
    /// `Limit` (one more than still needed, for the cursor item, which is skipped).
    async fn notifications_between(
        &self,
        agent_id: &str,
        (from, to): (&str, &str),
        after: Option<(i64, &str)>,
        limit: usize,
        out: &mut Vec<AgentNotification>,
    ) -> Result<(), PortError> {
        let pk = agent_pk(agent_id);
        let mut start = None;
        while out.len() < limit {
            let wanted = (limit - out.len()).saturating_add(1).min(QUERY_PAGE);
            let page = self
                .table
                .query()
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_names("#sk", "sk")
                .expression_attribute_values(":pk", s(pk.as_str()))
                .expression_attribute_values(":from", s(from))
                .expression_attribute_values(":to", s(to))
                .limit(i32::try_from(wanted).unwrap_or(1000))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB Query", e))?;
            for item in page.items() {
                // The range lies within the prefix; checked all the same.
                if !get_s(item, "notification", "sk")?.starts_with(NOTIFY_PREFIX) {
                    continue;
                }
                let notification = notification_from_item(item)?;
                if is_after(&notification, after) {
                    out.push(notification);
                    if out.len() >= limit {
                        return Ok(());
                    }
                }
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(())
    }

    /// Every agent id in `ids` that exists, read consistently with `BatchGetItem`.
    async fn batch_get_agents(&self, ids: &[String]) -> Result<Vec<Agent>, PortError> {
        let keys = ids.iter().map(|id| key(agent_pk(id), PROFILE)).collect();
        self.table
            .batch_get(keys)
            .await?
            .iter()
            .map(agent_from_item)
            .collect()
    }

    /// A slot of `agent_id` for `conversation_id` within capacity, only while available when
    /// `available_only` ([`AgentStore::try_assign`]; [`AgentStore::claim_own`] otherwise).
    async fn claim(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
        available_only: bool,
    ) -> Result<bool, PortError> {
        let condition = if available_only {
            "attribute_exists(#pk) AND #status = :available \
             AND #activeCount < #capacity AND NOT contains(#active, :conversationId)"
        } else {
            "attribute_exists(#pk) AND #activeCount < #capacity \
             AND NOT contains(#active, :conversationId)"
        };
        let mut update = self
            .table
            .update_item()
            .set_key(Some(key(agent_pk(agent_id), PROFILE)))
            .update_expression(
                "ADD #active :conversation, #activeCount :one SET #lastAssignedAt = :at",
            )
            .condition_expression(condition)
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#active", "activeConversations")
            .expression_attribute_names("#activeCount", "activeCount")
            .expression_attribute_names("#lastAssignedAt", "lastAssignedAt")
            .expression_attribute_names("#capacity", "capacity")
            .expression_attribute_values(
                ":conversation",
                AttributeValue::Ss(vec![conversation_id.to_owned()]),
            )
            .expression_attribute_values(":conversationId", s(conversation_id))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", n(at_millis));
        if available_only {
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":available", s(AgentStatus::Available.as_str()));
        }
        let result = update.send().await;
        if condition_held(result, "DynamoDB UpdateItem")? {
            return Ok(true);
        }
        // Full, not available, unknown, or already ours (a retry): only the last is true.
        let item = self.profile_item(agent_id).await?;
        Ok(item
            .as_ref()
            .and_then(|item| item.get("activeConversations"))
            .and_then(|v| v.as_ss().ok())
            .is_some_and(|set| set.iter().any(|c| c == conversation_id)))
    }
}

#[async_trait]
impl AgentStore for DynamoAgentStore {
    async fn put_agent(&self, agent: &Agent) -> Result<(), PortError> {
        for pause in attempts() {
            pause.await;
            let old = self.profile_item(&agent.id).await?;
            if self.put_agent_once(agent, old.as_ref()).await? {
                return Ok(());
            }
        }
        Err(PortError::Unavailable(format!(
            "agent {}: the profile kept changing during put_agent",
            agent.id
        )))
    }

    async fn set_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        seen_at: i64,
    ) -> Result<bool, PortError> {
        let result = self
            .table
            .update_item()
            .set_key(Some(key(agent_pk(agent_id), PROFILE)))
            .update_expression("SET #status = :status, #seen = :seen")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#seen", "lastSeenAt")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":seen", n(seen_at))
            .return_values(ReturnValue::None)
            .send()
            .await;
        condition_held(result, "DynamoDB UpdateItem")
    }

    async fn record_offer(&self, agent_id: &str, missed: bool) -> Result<bool, PortError> {
        let profile = key(agent_pk(agent_id), PROFILE);
        if !missed {
            let result = self
                .table
                .update_item()
                .set_key(Some(profile))
                .update_expression("SET #missed = :zero")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#missed", "missedOffers")
                .expression_attribute_names("#pk", "pk")
                .expression_attribute_values(":zero", n(0))
                .send()
                .await;
            condition_held(result, "DynamoDB UpdateItem")?;
            return Ok(false);
        }
        let counted = self
            .table
            .update_item()
            .set_key(Some(profile.clone()))
            .update_expression("ADD #missed :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#missed", "missedOffers")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let missed_now: u32 = match counted {
            Ok(output) => output
                .attributes()
                .and_then(|a| a.get("missedOffers"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            Err(e) => {
                // No such agent: nothing to count.
                if !condition_held(Err::<(), _>(e), "DynamoDB UpdateItem")? {
                    return Ok(false);
                }
                0
            }
        };
        if missed_now < MISSED_OFFERS_AWAY {
            return Ok(false);
        }
        // The threshold: the count starts again (once, whoever gets here first) and an agent
        // taking work is set away.
        let reset = self
            .table
            .update_item()
            .set_key(Some(profile.clone()))
            .update_expression("SET #missed = :zero")
            .condition_expression("#missed >= :limit")
            .expression_attribute_names("#missed", "missedOffers")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":limit", n(MISSED_OFFERS_AWAY))
            .send()
            .await;
        if !condition_held(reset, "DynamoDB UpdateItem")? {
            return Ok(false);
        }
        let away = self
            .table
            .update_item()
            .set_key(Some(profile))
            .update_expression("SET #status = :away")
            .condition_expression("#status IN (:available, :busy)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":away", s(AgentStatus::Away.as_str()))
            .expression_attribute_values(":available", s(AgentStatus::Available.as_str()))
            .expression_attribute_values(":busy", s(AgentStatus::Busy.as_str()))
            .send()
            .await;
        condition_held(away, "DynamoDB UpdateItem")
    }

    async fn expire_presence(&self, agent_id: &str, seen_before: i64) -> Result<bool, PortError> {
        let result = self
            .table
            .update_item()
            .set_key(Some(key(agent_pk(agent_id), PROFILE)))
            .update_expression("SET #status = :away")
            .condition_expression("#status IN (:available, :busy) AND #seen < :before")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#seen", "lastSeenAt")
            .expression_attribute_values(":away", s(AgentStatus::Away.as_str()))
            .expression_attribute_values(":available", s(AgentStatus::Available.as_str()))
            .expression_attribute_values(":busy", s(AgentStatus::Busy.as_str()))
            .expression_attribute_values(":before", n(seen_before))
            .return_values(ReturnValue::None)
            .send()
            .await;
        condition_held(result, "DynamoDB UpdateItem")
    }

    async fn agent(&self, id: &str) -> Result<Option<Agent>, PortError> {
        self.profile_item(id)
            .await?
            .as_ref()
            .map(agent_from_item)
            .transpose()
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, PortError> {
        let mut ids = Vec::new();
        self.table
            .partition(AGENTS_PK.to_owned())
            .projection_expression("#sk")
            .expression_attribute_names("#sk", "sk")
            .each_item("DynamoDB Query", |item| {
                ids.push(get_s(item, "agent index", "sk")?.to_owned());
                Ok(())
            })
            .await?;
        // An index item without a profile (none is left behind by delete_agent) is skipped.
        let mut agents = self.batch_get_agents(&ids).await?;
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
    }

    async fn delete_agent(&self, id: &str) -> Result<bool, PortError> {
        let deleted = self.delete_profile(id).await?;
        self.delete_notifications(id).await?;
        Ok(deleted)
    }

    async fn agents_in_queue(&self, queue_id: &str) -> Result<Vec<Agent>, PortError> {
        let mut ids = Vec::new();
        self.table
            .partition_prefix(queue_pk(queue_id), AGENT_PREFIX)
            .each_item("DynamoDB Query", |item| {
                ids.push(get_s(item, "queue membership", "agentId")?.to_owned());
                Ok(())
            })
            .await?;
        let mut agents = self.batch_get_agents(&ids).await?;
        // The profile is the truth; a membership it does not list is ignored.
        agents.retain(|a| a.queues.iter().any(|q| q == queue_id));
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(agents)
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
        let result = self
            .table
            .update_item()
            .set_key(Some(key(agent_pk(agent_id), PROFILE)))
            .update_expression(RELEASE)
            .when(release_condition(conversation_id))
            .return_values(ReturnValue::None)
            .send()
            .await;
        // Not there (released before, or never assigned): nothing to do.
        condition_held(result, "DynamoDB UpdateItem").map(drop)
    }

    async fn notify(
        &self,
        notification: &AgentNotification,
        expires_at: Option<i64>,
    ) -> Result<(), PortError> {
        let items = notification_writes(self.table.name.as_str(), notification, expires_at)?;
        for pause in attempts() {
            pause.await;
            match self.table.transact(items.clone()).await?.outcome()? {
                // Stored now, or the marker (or the very same item) exists: stored before.
                Outcome::Done | Outcome::Failed(_) => return Ok(()),
                // A concurrent write of the same id: the retry will see its marker.
                Outcome::Raced => {}
            }
        }
        Err(PortError::Unavailable(format!(
            "notification {}: transaction conflicts persisted",
            notification.id
        )))
    }

    async fn delete_conversation_notifications(
        &self,
        conversation_id: &str,
    ) -> Result<u64, PortError> {
        let pk = format!("{CONVNOTIFY}#{conversation_id}");
        let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
        let mut deleted = 0;
        self.table
            .partition(pk.clone())
            .each_item("DynamoDB Query", |item| {
                let id = get_s(item, "notification index", "sk")?.to_owned();
                let agent_id = get_s(item, "notification index", "agentId")?;
                let created_at =
                    get_opt_n::<i64>(item, "notification index", "createdAt")?.unwrap_or(0);
                keys.insert((
                    agent_pk(agent_id),
                    format!("{NOTIFY_PREFIX}{:020}#{id}", created_at.max(0)),
                ));
                keys.insert((format!("{NOTIFICATION}#{id}"), NOTIFICATION.to_owned()));
                keys.insert((pk.clone(), id));
                deleted += 1;
                Ok(())
            })
            .await?;
        self.batch_delete(
            keys,
            &format!("conversation {conversation_id}'s notifications"),
        )
        .await?;
        Ok(deleted)
    }

    async fn notifications(&self, agent_id: &str) -> Result<Vec<AgentNotification>, PortError> {
        let mut out = Vec::new();
        self.table
            .partition_prefix(agent_pk(agent_id), NOTIFY_PREFIX)
            .each_item("DynamoDB Query", |item| {
                out.push(notification_from_item(item)?);
                Ok(())
            })
            .await?;
        // The sort key orders by time then id; negative times (clamped in the key) aside.
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    async fn notifications_after(
        &self,
        agent_id: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<AgentNotification>, PortError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        match after {
            Some((created_at, id)) if created_at > 0 => {
                // From the cursor's own sort key: the key order is the (createdAt, id) order.
                let from = format!("{}{id}", notification_sk_prefix(created_at));
                self.notifications_between(agent_id, (&from, NOTIFY_END), after, limit, &mut out)
                    .await?;
                return Ok(out);
            }
            _ => {}
        }
        // No cursor, or one at or before time 0: the notifications whose key is clamped to 0
        // (any `createdAt <= 0`) are not in time order in the key. Read them all, sort, take.
        let mut clamped = Vec::new();
        self.notifications_between(
            agent_id,
            (&notification_sk_prefix(0), NOTIFY_CLAMPED_END),
            after,
            usize::MAX,
            &mut clamped,
        )
        .await?;
        clamped.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        clamped.truncate(limit);
        out = clamped;
        // Then the positive times, in key order.
        let from = notification_sk_prefix(1);
        self.notifications_between(agent_id, (&from, NOTIFY_END), after, limit, &mut out)
            .await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn agent_items_round_trip() {
        let item = HashMap::from([
            ("id".to_owned(), s("a")),
            ("name".to_owned(), s("Agent")),
            (
                "queues".to_owned(),
                string_list(&["q1".into(), "q2".into()]),
            ),
            ("skills".to_owned(), string_list(&[])),
            ("capacity".to_owned(), n(3)),
            ("status".to_owned(), s("busy")),
            (
                "activeConversations".to_owned(),
                AttributeValue::Ss(vec!["c2".into(), "c1".into()]),
            ),
            ("lastAssignedAt".to_owned(), n(42)),
        ]);
        let agent = agent_from_item(&item).unwrap();
        assert_eq!(agent.queues, ["q1", "q2"]);
        assert_eq!(agent.status, AgentStatus::Busy);
        assert_eq!(agent.active_conversations, ["c1", "c2"]);
        assert_eq!(agent.last_assigned_at, Some(42));
        let mut bad = item.clone();
        bad.insert("status".to_owned(), s("sleeping"));
        assert!(agent_from_item(&bad).is_err());
    }

    #[test]
    fn notification_items_round_trip_and_sort_by_time() {
        let n1 = AgentNotification {
            id: "c1:a:assigned".into(),
            agent_id: "a".into(),
            conversation_id: "c1".into(),
            account_id: "acc".into(),
            kind: "assigned".into(),
            customer_user_id: None,
            customer_name: "Taro".into(),
            customer_picture_url: Some("https://example.com/p.png".into()),
            customer_language: None,
            queue_id: "q".into(),
            created_at: 9,
            delivery: None,
            expires_at: None,
        };
        let item = notification_item(&n1);
        assert_eq!(notification_from_item(&item).unwrap(), n1);
        assert_eq!(
            item["sk"].as_s().unwrap(),
            "NOTIFY#00000000000000000009#c1:a:assigned"
        );
        let mut n2 = n1.clone();
        n2.created_at = 10;
        assert!(notification_sk(&n1) < notification_sk(&n2));

        // The query bounds enclose exactly the keys they are for, whatever the id.
        for (at, id) in [
            (0, ""),
            (0, "\u{10FFFF}\u{10FFFF}"),
            (-7, "~~~"),
            (1, ""),
            (1, "a"),
        ] {
            let sk = notification_sk(&AgentNotification {
                created_at: at,
                delivery: None,
                expires_at: None,
                id: id.into(),
                ..n1.clone()
            });
            assert!(sk.starts_with(&notification_sk_prefix(at)));
            assert!(sk.as_str() < NOTIFY_END && NOTIFY_END < "PROFILE");
            if at <= 0 {
                assert!(notification_sk_prefix(0) <= sk && sk.as_str() < NOTIFY_CLAMPED_END);
            } else {
                assert!(notification_sk_prefix(1) <= sk && sk.as_str() > NOTIFY_CLAMPED_END);
            }
        }
    }
}
