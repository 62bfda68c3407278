//! [`ConversationStore`] on one DynamoDB table (`pk`, `sk`; TTL attribute `expiresAt`, epoch
//! seconds). Item layout:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | processed event | `EVENT#{account}#{eventId}` | `EVENT` | `expiresAt` |
//! | conversation | `CONV#{id}` | `META` | `doc`, `version`, `accountId`, `sourceId`, `state`, `lastActivityAt`, `openShard` (while open), `expiresAt`? |
//! | open pointer | `OPEN#{account}#{sourceId}` | `OPEN` | `conversationId`, `expiresAt`? |
//! | transcript entry | `CONV#{conversationId}` | `T#{timestamp:020}#{eventId}` | `doc`, `expiresAt`? |
//! | LINE message index | `LINEMSG#{account}#{messageId}` | `LINEMSG` | `conversationId`, `transcriptSk`, `expiresAt`? |
//! | customer | `CUSTOMER#{account}#{userId}` | `PROFILE` | `doc`, `expiresAt`? |
//!
//! `doc` is the JSON of the domain value. A commit is one `TransactWriteItems` whose first
//! operation is always the deduplication record, so a cancellation reason at index 0 means the
//! event was processed before.
//!
//! Retention: the processed-event item's `expiresAt` is the deduplication window; on the other
//! items it is [`EventCommit::retain_until`] of the commit that wrote them (absent when `None`),
//! and DynamoDB's TTL deletes them. The open pointer and the message index expire with the
//! conversation and the transcript entry they point at; a pointer expired but not yet deleted
//! (TTL is lazy) does not block a new conversation. The `CONV#{id}` partition also holds the
//! delivery store's `D#…` items: this store reads and erases only `META` and `T#…`.
//!
//! [`ConversationStore::open_conversations`] (the schedule's idle close and distribution, every
//! minute) queries the sparse GSI [`OPEN_INDEX`] (`openShard` / `pk`, keys only) and reads the
//! `META` items it names with a consistent `BatchGetItem`: only open conversations carry
//! `openShard`, spread over 16 partitions, so its cost follows the open conversations, not the
//! table.
//!
//! Listing ([`ConversationStore::list_conversations`]) is a consistent, paginated **Scan** of the
//! `META` items (filtered on `state` in DynamoDB when the filter has one); queue and agent
//! membership are in `doc` and are checked in Rust with
//! [`ConversationFilter::matches`], then the matches are sorted (most recent `lastActivityAt`
//! first, then id) and cut to the limit. Its cost grows with the whole table, not with the
//! result: fine for the console's volumes for now; a GSI (queue / agent, `lastActivityAt`) is
//! the later fix.
//!
//! Agent slots live on the agent's profile item in the agents' table (`AGENT#{agentId}` /
//! `PROFILE`, string set `activeConversations`, counter `activeCount`: see `dynamo_agents`),
//! named with [`DynamoConversationStore::with_agents_table`]. [`ConversationStore::commit_assignment`]
//! adds a `ConditionCheck` (`contains(activeConversations, :conversationId)`) on that item to the
//! commit transaction. [`ConversationStore::release_unless_assigned`] reads the conversation and,
//! when it is not open with the agent, gives the slot back in one `TransactWriteItems`: the
//! agent's reverse update (conditional on the slot) and a `ConditionCheck` that the conversation
//! is still at the version read (or still absent); a conversation that changed meanwhile is read
//! again. Each is atomic with respect to the other: a commit never stores a conversation with an
//! agent whose slot is gone.

use crate::{
    aws_error, backoff, batch_get_items, build_error, condition_held, get_item_consistent, key, n,
    s, Item, ATTEMPTS,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, TransactWriteItem, Update,
    WriteRequest,
};
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationFilter, ConversationState, ConversationWrite,
    Customer, EventCommit, TranscriptEntry,
};
use omniline_ports::{ConversationStore, PortError, PurgeCounts};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

const META: &str = "META";
const OPEN: &str = "OPEN";
const EVENT: &str = "EVENT";
const LINEMSG: &str = "LINEMSG";
const PROFILE: &str = "PROFILE";
const TRANSCRIPT_PREFIX: &str = "T#";
/// The retention TTL attribute (and the deduplication record's expiry).
const EXPIRES_AT: &str = "expiresAt";
/// `BatchWriteItem` takes at most 25 requests.
const BATCH_WRITE: usize = 25;
/// The sparse, keys-only index of open conversations: only a `META` item of a conversation that
/// is not closed carries [`OPEN_SHARD`], so the index holds the open conversations and nothing
/// else. `openShard` never changes while the conversation is open and nothing else is projected,
/// so the many updates of an open conversation do not write the index: only its opening and
/// closing do.
pub const OPEN_INDEX: &str = "open-conversations";
/// The index's partition key: `OPEN#00` … `OPEN#15`, from the conversation id. Spread over 16
/// partitions so that the index's writes (every change of an open conversation) never make one
/// hot partition.
pub const OPEN_SHARD: &str = "openShard";
const OPEN_SHARDS: u32 = 16;

/// The index partition of an open conversation (FNV-1a of its id).
fn open_shard(conversation_id: &str) -> String {
    let hash = conversation_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    format!("OPEN#{:02}", hash % OPEN_SHARDS)
}

/// [`ConversationStore`] on DynamoDB; see the module documentation for the item layout.
#[derive(Debug, Clone)]
pub struct DynamoConversationStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// The agents' table (`dynamo_agents`): needed by the assignment commit and release only.
    agents_table: Option<String>,
}

/// The agent profile item holding an agent's slots (the layout of `dynamo_agents`).
fn agent_profile_key(agent_id: &str) -> Item {
    key(format!("AGENT#{agent_id}"), "PROFILE")
}

fn get_s<'a>(item: &'a Item, key: &str) -> Result<&'a str, PortError> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without string {key}")))
}

fn get_i64(item: &Item, key: &str) -> Option<i64> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn parse_doc<T: DeserializeOwned>(item: &Item, what: &str) -> Result<T, PortError> {
    let doc = get_s(item, "doc")?;
    serde_json::from_str(doc)
        .map_err(|e| PortError::Unavailable(format!("stored {what} does not parse: {e}")))
}

fn to_doc<T: Serialize>(value: &T, what: &str) -> Result<AttributeValue, PortError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| PortError::Unavailable(format!("{what} does not serialize: {e}")))
}

fn event_pk(account_id: &str, event_id: &str) -> String {
    format!("EVENT#{account_id}#{event_id}")
}

fn conversation_pk(conversation_id: &str) -> String {
    format!("CONV#{conversation_id}")
}

fn open_pk(account_id: &str, source_id: &str) -> String {
    format!("OPEN#{account_id}#{source_id}")
}

fn message_pk(account_id: &str, message_id: &str) -> String {
    format!("LINEMSG#{account_id}#{message_id}")
}

fn customer_pk(account_id: &str, user_id: &str) -> String {
    format!("CUSTOMER#{account_id}#{user_id}")
}

/// Zero-padded so that string order is time order (timestamps are non-negative epoch ms); ties
/// are ordered by event id.
fn transcript_sk(timestamp: i64, event_id: &str) -> String {
    format!("{TRANSCRIPT_PREFIX}{timestamp:020}#{event_id}")
}

/// `item` with the retention TTL attribute set, when there is one.
fn with_expiry(mut item: Item, expires_at: Option<i64>) -> Item {
    if let Some(at) = expires_at {
        item.insert(EXPIRES_AT.to_owned(), n(at));
    }
    item
}

/// The `(pk, sk)` of an item, for deduplicating keys.
fn key_pair(item: &Item) -> (String, String) {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    (text("pk"), text("sk"))
}

/// Deletes the items of `keys` (`pk`/`sk` keys) with `BatchWriteItem`, [`BATCH_WRITE`] a call,
/// retrying unprocessed items [`ATTEMPTS`] times. Repeated keys are deleted once (a batch refuses
/// duplicates); missing items are not an error.
pub(crate) async fn batch_delete(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<(), PortError> {
    let mut seen = HashSet::new();
    let keys: Vec<Item> = keys
        .into_iter()
        .filter(|k| seen.insert(key_pair(k)))
        .collect();
    for chunk in keys.chunks(BATCH_WRITE) {
        let mut requests = chunk
            .iter()
            .map(|k| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(k.clone()))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        let mut attempt = 0;
        while !requests.is_empty() {
            if attempt >= ATTEMPTS {
                return Err(PortError::Unavailable(format!(
                    "DynamoDB BatchWriteItem: {} deletions left unprocessed after retries",
                    requests.len()
                )));
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            let output = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB BatchWriteItem", e))?;
            requests = output
                .unprocessed_items()
                .and_then(|u| u.get(table))
                .cloned()
                .unwrap_or_default();
        }
    }
    Ok(())
}

fn state_str(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

/// One operation of the commit transaction, built with the fallible SDK builders.
struct Tx {
    table: String,
    items: Vec<TransactWriteItem>,
}

impl Tx {
    fn put(
        &mut self,
        item: Item,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> Result<(), PortError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned));
        for (name, value) in values {
            put = put.expression_attribute_values(*name, value.clone());
        }
        let put = put.build().map_err(|e| aws_error("DynamoDB Put", e))?;
        self.items
            .push(TransactWriteItem::builder().put(put).build());
        Ok(())
    }

    fn delete(
        &mut self,
        pk: String,
        sk: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<(), PortError> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression(condition);
        for (name, value) in values {
            delete = delete.expression_attribute_values(*name, value.clone());
        }
        let delete = delete
            .build()
            .map_err(|e| aws_error("DynamoDB Delete", e))?;
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        Ok(())
    }
}

impl DynamoConversationStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
            agents_table: None,
        }
    }

    /// The table of the agent store (`DynamoAgentStore`), whose slots
    /// [`ConversationStore::commit_assignment`] checks and
    /// [`ConversationStore::release_unless_assigned`] gives back; without it those two fail.
    pub fn with_agents_table(mut self, table: impl Into<String>) -> Self {
        self.agents_table = Some(table.into());
        self
    }

    fn agents_table(&self) -> Result<&str, PortError> {
        self.agents_table.as_deref().ok_or_else(|| {
            PortError::Unavailable(
                "DynamoConversationStore: no agents table configured (with_agents_table)".into(),
            )
        })
    }

    /// Sends a commit transaction and maps its cancellation to an outcome.
    async fn send_commit(
        &self,
        commit: &EventCommit,
        items: Vec<TransactWriteItem>,
        now: i64,
    ) -> Result<CommitOutcome, PortError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(CommitOutcome::Committed),
            Err(e) => e,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                cancelled.cancellation_reasons()
            }
            _ => return Err(aws_error("DynamoDB TransactWriteItems", err)),
        };
        match classify(reasons) {
            Cancelled::Outcome(outcome) => Ok(outcome),
            Cancelled::Error(message) => Err(PortError::Unavailable(message)),
            Cancelled::Unknown => {
                if self
                    .event_recorded_at(&commit.account_id, &commit.event_id, now)
                    .await?
                {
                    Ok(CommitOutcome::Duplicate)
                } else {
                    Ok(CommitOutcome::Conflict)
                }
            }
        }
    }

    /// A strongly consistent GetItem.
    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
        get_item_consistent(&self.client, &self.table, key(pk, sk)).await
    }

    async fn event_recorded_at(
        &self,
        account_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<bool, PortError> {
        let item = self.get(event_pk(account_id, event_id), EVENT).await?;
        // DynamoDB deletes expired items lazily: an expired record still present is forgotten.
        Ok(item.is_some_and(|item| get_i64(&item, "expiresAt").is_some_and(|at| at > now)))
    }

    fn meta_item(c: &Conversation, expires_at: Option<i64>) -> Result<Item, PortError> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(conversation_pk(&c.id))),
            ("sk".to_owned(), s(META)),
            ("doc".to_owned(), to_doc(c, "conversation")?),
            ("version".to_owned(), n(c.version)),
            ("accountId".to_owned(), s(&c.account_id)),
            ("sourceId".to_owned(), s(&c.source_id)),
            ("state".to_owned(), s(state_str(c.state))),
            ("lastActivityAt".to_owned(), n(c.last_activity_at)),
        ]);
        if c.state != ConversationState::Closed {
            item.insert(OPEN_SHARD.to_owned(), s(open_shard(&c.id)));
        }
        Ok(with_expiry(item, expires_at))
    }

    fn open_item(c: &Conversation, expires_at: Option<i64>) -> Item {
        let item = HashMap::from([
            ("pk".to_owned(), s(open_pk(&c.account_id, &c.source_id))),
            ("sk".to_owned(), s(OPEN)),
            ("conversationId".to_owned(), s(&c.id)),
        ]);
        with_expiry(item, expires_at)
    }

    /// The retracted transcript item for an unsend, if the message is known (`None`: no-op).
    async fn retracted_item(
        &self,
        account_id: &str,
        message_id: &str,
    ) -> Result<Option<Item>, PortError> {
        let Some(index) = self
            .get(message_pk(account_id, message_id), LINEMSG)
            .await?
        else {
            return Ok(None);
        };
        let conversation_id = get_s(&index, "conversationId")?;
        let sk = get_s(&index, "transcriptSk")?;
        let pk = conversation_pk(conversation_id);
        let Some(item) = self.get(pk.clone(), sk).await? else {
            return Ok(None);
        };
        let mut entry: TranscriptEntry = parse_doc(&item, "transcript entry")?;
        entry.retracted = true;
        entry.event = serde_json::Value::Null;
        let retracted = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("doc".to_owned(), to_doc(&entry, "transcript entry")?),
        ]);
        // Retracting keeps the entry's retention.
        Ok(Some(with_expiry(retracted, get_i64(&item, EXPIRES_AT))))
    }

    /// The conversation's own items (`META` and transcript `T#…`; not other stores' items in the
    /// partition), read consistently.
    async fn conversation_items(&self, conversation_id: &str) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .filter_expression("sk = :meta OR begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(conversation_pk(conversation_id)))
            .expression_attribute_values(":meta", s(META))
            .expression_attribute_values(":prefix", s(TRANSCRIPT_PREFIX))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Query", e))?;
            items.extend(page.items().iter().cloned());
        }
        Ok(items)
    }

    /// Every item matching a Scan filter (consistent, paginated). Admin-only operations: the
    /// table has no index by account or source.
    async fn scan(
        &self,
        filter: &str,
        values: &[(&str, AttributeValue)],
        projection: Option<&str>,
    ) -> Result<Vec<Item>, PortError> {
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression(filter)
            .set_projection_expression(projection.map(str::to_owned))
            .consistent_read(true);
        for (name, value) in values {
            scan = scan.expression_attribute_values(*name, value.clone());
        }
        let mut items = Vec::new();
        let mut pages = scan.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Scan", e))?;
            items.extend(page.items().iter().cloned());
        }
        Ok(items)
    }

    /// Deletes the open pointer of (`account_id`, `source_id`) if it designates `conversation_id`.
    async fn delete_pointer_to(
        &self,
        account_id: &str,
        source_id: &str,
        conversation_id: &str,
    ) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(open_pk(account_id, source_id), OPEN)))
            .condition_expression("conversationId = :id")
            .expression_attribute_values(":id", s(conversation_id))
            .send()
            .await;
        // Absent, or another conversation's: left alone.
        condition_held(result, "DynamoDB DeleteItem").map(drop)
    }

    /// Whether the open pointer of `c`'s source designates `c`.
    async fn points_to(&self, c: &Conversation) -> Result<bool, PortError> {
        let pointer = self.get(open_pk(&c.account_id, &c.source_id), OPEN).await?;
        Ok(pointer.is_some_and(|p| get_s(&p, "conversationId").is_ok_and(|id| id == c.id)))
    }

    async fn build(&self, commit: &EventCommit, now: i64) -> Result<Tx, PortError> {
        let mut tx = Tx {
            table: self.table.clone(),
            items: Vec::new(),
        };
        // (0) The deduplication record: always first, so that reason 0 means "duplicate".
        tx.put(
            HashMap::from([
                (
                    "pk".to_owned(),
                    s(event_pk(&commit.account_id, &commit.event_id)),
                ),
                ("sk".to_owned(), s(EVENT)),
                ("expiresAt".to_owned(), n(commit.dedupe_expires_at)),
            ]),
            Some("attribute_not_exists(pk) OR expiresAt <= :now"),
            &[(":now", n(now))],
        )?;

        // (1) The conversation and its source's open pointer.
        match &commit.conversation {
            None => {}
            Some(ConversationWrite::Create(c)) => {
                let retain = commit.retain_until;
                tx.put(
                    Self::meta_item(c, retain)?,
                    Some("attribute_not_exists(pk)"),
                    &[],
                )?;
                // A pointer whose retention has passed is gone, even before TTL deletes it.
                tx.put(
                    Self::open_item(c, retain),
                    Some("attribute_not_exists(pk) OR expiresAt <= :now"),
                    &[(":now", n(now))],
                )?;
            }
            Some(ConversationWrite::Update(c)) => {
                let previous = c.version.checked_sub(1).ok_or_else(|| {
                    PortError::Unavailable("conversation update with version 0".into())
                })?;
                tx.put(
                    Self::meta_item(c, commit.retain_until)?,
                    Some("version = :prev"),
                    &[(":prev", n(previous))],
                )?;
                if c.state == ConversationState::Closed {
                    // Only remove a pointer to this conversation: closing one already closed
                    // (pointer gone, or moved to a newer conversation) leaves it alone. The
                    // condition catches a change between this read and the transaction.
                    if self.points_to(c).await? {
                        tx.delete(
                            open_pk(&c.account_id, &c.source_id),
                            OPEN,
                            "conversationId = :id",
                            &[(":id", s(&c.id))],
                        )?;
                    }
                } else {
                    tx.put(Self::open_item(c, commit.retain_until), None, &[])?;
                }
            }
        }

        // (2) The transcript entry and, for a message, its LINE message id index.
        let mut new_entry_key = None;
        if let Some(entry) = &commit.transcript {
            let pk = conversation_pk(&entry.conversation_id);
            let sk = transcript_sk(entry.timestamp, &entry.event_id);
            tx.put(
                with_expiry(
                    HashMap::from([
                        ("pk".to_owned(), s(pk.clone())),
                        ("sk".to_owned(), s(sk.clone())),
                        ("doc".to_owned(), to_doc(entry, "transcript entry")?),
                    ]),
                    commit.retain_until,
                ),
                None,
                &[],
            )?;
            if let Some(message_id) = &entry.message_id {
                tx.put(
                    with_expiry(
                        HashMap::from([
                            (
                                "pk".to_owned(),
                                s(message_pk(&commit.account_id, message_id)),
                            ),
                            ("sk".to_owned(), s(LINEMSG)),
                            ("conversationId".to_owned(), s(&entry.conversation_id)),
                            ("transcriptSk".to_owned(), s(sk.clone())),
                        ]),
                        commit.retain_until,
                    ),
                    None,
                    &[],
                )?;
            }
            new_entry_key = Some((pk, sk));
        }

        // (3) Unsend: retract the earlier entry (read before, written with the transaction).
        if let Some(message_id) = &commit.retract_message_id {
            if let Some(item) = self.retracted_item(&commit.account_id, message_id).await? {
                let key = (
                    get_s(&item, "pk")?.to_owned(),
                    get_s(&item, "sk")?.to_owned(),
                );
                // One operation per item in a transaction: never retract the entry being written.
                if new_entry_key.as_ref() != Some(&key) {
                    tx.put(item, Some("attribute_exists(pk)"), &[])?;
                }
            }
        }

        // (4) The customer.
        if let Some(customer) = &commit.customer {
            tx.put(
                with_expiry(
                    HashMap::from([
                        (
                            "pk".to_owned(),
                            s(customer_pk(&customer.account_id, &customer.user_id)),
                        ),
                        ("sk".to_owned(), s(PROFILE)),
                        ("doc".to_owned(), to_doc(customer, "customer")?),
                    ]),
                    commit.retain_until,
                ),
                None,
                &[],
            )?;
        }
        Ok(tx)
    }
}

/// How a cancelled commit is answered, from its cancellation reasons.
enum Cancelled {
    Outcome(CommitOutcome),
    /// No reasons were returned: decide from the deduplication record.
    Unknown,
    Error(String),
}

fn code(reason: &aws_sdk_dynamodb::types::CancellationReason) -> &str {
    reason.code().unwrap_or("None")
}

fn classify(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> Cancelled {
    if reasons.is_empty() {
        return Cancelled::Unknown;
    }
    if code(&reasons[0]) == "ConditionalCheckFailed" {
        return Cancelled::Outcome(CommitOutcome::Duplicate);
    }
    let mut conflict = false;
    for reason in reasons {
        match code(reason) {
            "None" => {}
            "ConditionalCheckFailed" | "TransactionConflict" => conflict = true,
            other => {
                return Cancelled::Error(format!(
                    "DynamoDB TransactWriteItems cancelled: {other} {}",
                    reason.message().unwrap_or_default()
                ))
            }
        }
    }
    if conflict {
        Cancelled::Outcome(CommitOutcome::Conflict)
    } else {
        Cancelled::Unknown
    }
}

/// The LINE message id of a stored transcript item, read leniently (erasure must not stop at a
/// document that no longer parses).
fn transcript_message_id(item: &Item) -> Option<String> {
    let doc = item.get("doc").and_then(|v| v.as_s().ok())?;
    let value: serde_json::Value = serde_json::from_str(doc).ok()?;
    value.get("messageId")?.as_str().map(str::to_owned)
}

/// Most recent activity first, then by id: the order of `list_conversations`.
fn by_recent_activity(a: &Conversation, b: &Conversation) -> std::cmp::Ordering {
    b.last_activity_at
        .cmp(&a.last_activity_at)
        .then_with(|| a.id.cmp(&b.id))
}

fn is_meta(item: &Item) -> bool {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(META)
}

#[async_trait]
impl ConversationStore for DynamoConversationStore {
    async fn event_recorded(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<bool, PortError> {
        self.event_recorded_at(account_id, event_id, now_secs).await
    }

    async fn open_conversation(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Option<Conversation>, PortError> {
        let Some(pointer) = self.get(open_pk(account_id, source_id), OPEN).await? else {
            return Ok(None);
        };
        let id = get_s(&pointer, "conversationId")?;
        let Some(meta) = self.get(conversation_pk(id), META).await? else {
            return Ok(None);
        };
        let conversation: Conversation = parse_doc(&meta, "conversation")?;
        Ok((conversation.state != ConversationState::Closed).then_some(conversation))
    }

    async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, PortError> {
        self.get(conversation_pk(conversation_id), META)
            .await?
            .map(|item| parse_doc(&item, "conversation"))
            .transpose()
    }

    async fn open_conversations(&self) -> Result<Vec<Conversation>, PortError> {
        // A Query of each partition of the sparse, keys-only index, then the conversations read
        // consistently by key: read units grow with the open conversations, not with the table
        // (transcripts, closed conversations, customers). The index lags the table a little:
        // an item it still lists but that closed meanwhile is dropped after the read, and
        // callers commit with the conversation's version anyway.
        let mut keys = Vec::new();
        for shard in 0..OPEN_SHARDS {
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_INDEX)
                .key_condition_expression("#shard = :shard")
                .expression_attribute_names("#shard", OPEN_SHARD)
                .expression_attribute_values(":shard", s(format!("OPEN#{shard:02}")))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| aws_error("DynamoDB Query (open conversations)", e))?;
                for item in page.items() {
                    if let Some(AttributeValue::S(pk)) = item.get("pk") {
                        keys.push(key(pk.clone(), META));
                    }
                }
            }
        }
        let mut conversations = Vec::with_capacity(keys.len());
        for item in batch_get_items(&self.client, &self.table, keys).await? {
            let conversation: Conversation = parse_doc(&item, "conversation")?;
            if conversation.state != ConversationState::Closed {
                conversations.push(conversation);
            }
        }
        Ok(conversations)
    }

    async fn customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Customer>, PortError> {
        self.get(customer_pk(account_id, user_id), PROFILE)
            .await?
            .map(|item| parse_doc(&item, "customer"))
            .transpose()
    }

    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError> {
        let now = commit.now_secs;
        let tx = self.build(commit, now).await?;
        self.send_commit(commit, tx.items, now).await
    }

    async fn commit_assignment(
        &self,
        commit: &EventCommit,
        agent_id: &str,
    ) -> Result<CommitOutcome, PortError> {
        let agents_table = self.agents_table()?;
        let Some(write) = &commit.conversation else {
            return Err(PortError::Unavailable(
                "an assignment commit without a conversation".into(),
            ));
        };
        let now = commit.now_secs;
        let mut tx = self.build(commit, now).await?;
        // Last, after the deduplication record (reason 0): a failure here is a conflict.
        let slot = ConditionCheck::builder()
            .table_name(agents_table)
            .set_key(Some(agent_profile_key(agent_id)))
            .condition_expression("contains(#active, :conversationId)")
            .expression_attribute_names("#active", "activeConversations")
            .expression_attribute_values(":conversationId", s(&write.conversation().id))
            .build()
            .map_err(build_error)?;
        tx.items
            .push(TransactWriteItem::builder().condition_check(slot).build());
        self.send_commit(commit, tx.items, now).await
    }

    async fn release_unless_assigned(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<bool, PortError> {
        let agents_table = self.agents_table()?;
        let release = Update::builder()
            .table_name(agents_table)
            .set_key(Some(agent_profile_key(agent_id)))
            .update_expression("DELETE #active :conversation ADD #activeCount :minusOne")
            .condition_expression("contains(#active, :conversationId)")
            .expression_attribute_names("#active", "activeConversations")
            .expression_attribute_names("#activeCount", "activeCount")
            .expression_attribute_values(
                ":conversation",
                AttributeValue::Ss(vec![conversation_id.to_owned()]),
            )
            .expression_attribute_values(":conversationId", s(conversation_id))
            .expression_attribute_values(":minusOne", n(-1))
            .build()
            .map_err(build_error)?;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let meta = self.get(conversation_pk(conversation_id), META).await?;
            // The conversation as read, which the release is conditional on.
            let unchanged = ConditionCheck::builder()
                .table_name(&self.table)
                .key("pk", s(conversation_pk(conversation_id)))
                .key("sk", s(META));
            let unchanged = match &meta {
                None => unchanged.condition_expression("attribute_not_exists(pk)"),
                Some(item) => {
                    let c: Conversation = parse_doc(item, "conversation")?;
                    if c.state != ConversationState::Closed
                        && c.agent_id.as_deref() == Some(agent_id)
                    {
                        return Ok(false);
                    }
                    let version = item.get("version").cloned().unwrap_or_else(|| n(c.version));
                    unchanged
                        .condition_expression("version = :version")
                        .expression_attribute_values(":version", version)
                }
            };
            let unchanged = unchanged.build().map_err(build_error)?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(release.clone()).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .condition_check(unchanged)
                        .build(),
                )
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons()
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => continue,
                _ => return Err(aws_error("DynamoDB TransactWriteItems", err)),
            };
            // Reason 0: the slot is not there (released before, or never held): nothing to do.
            if reasons
                .first()
                .is_some_and(|r| code(r) == "ConditionalCheckFailed")
            {
                return Ok(false);
            }
            for reason in reasons {
                match code(reason) {
                    // The conversation changed since it was read, or a concurrent write: again.
                    "None" | "ConditionalCheckFailed" | "TransactionConflict" => {}
                    other => {
                        return Err(PortError::Unavailable(format!(
                            "DynamoDB TransactWriteItems cancelled: {other} {}",
                            reason.message().unwrap_or_default()
                        )))
                    }
                }
            }
        }
        Err(PortError::Unavailable(format!(
            "conversation {conversation_id} kept changing while agent {agent_id}'s slot was given back"
        )))
    }

    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError> {
        let mut entries = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(conversation_pk(conversation_id)))
            .expression_attribute_values(":prefix", s(TRANSCRIPT_PREFIX))
            .scan_index_forward(true)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Query", e))?;
            for item in page.items() {
                entries.push(parse_doc(item, "transcript entry")?);
            }
        }
        Ok(entries)
    }

    /// A consistent Scan of the `META` items (no index by queue or agent yet: see the module
    /// documentation), filtered in Rust with [`ConversationFilter::matches`].
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError> {
        let mut out: Vec<Conversation> = Vec::new();
        if filter.limit == 0 || (filter.queue_ids.is_empty() && filter.agent_id.is_none()) {
            // Nothing can match.
            return Ok(out);
        }
        let mut scan = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("#doc")
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":meta", s(META))
            .consistent_read(true);
        scan = match filter.state {
            Some(state) => scan
                .filter_expression("#sk = :meta AND #state = :state")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":state", s(state_str(state))),
            None => scan.filter_expression("#sk = :meta"),
        };
        let mut pages = scan.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Scan", e))?;
            for item in page.items() {
                let conversation: Conversation = parse_doc(item, "conversation")?;
                if filter.matches(&conversation) {
                    out.push(conversation);
                }
            }
            // Only the `limit` most recent can be returned: keep memory bounded.
            if out.len() > filter.limit.saturating_mul(2) {
                out.sort_by(by_recent_activity);
                out.truncate(filter.limit);
            }
        }
        out.sort_by(by_recent_activity);
        out.truncate(filter.limit);
        Ok(out)
    }

    /// A filtered Scan of the conversation items (no index by source): admin-only and rare
    /// (privacy requests), not for the message path.
    async fn conversations_of_source(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Vec<Conversation>, PortError> {
        let items = self
            .scan(
                "sk = :meta AND accountId = :account AND sourceId = :source",
                &[
                    (":meta", s(META)),
                    (":account", s(account_id)),
                    (":source", s(source_id)),
                ],
                None,
            )
            .await?;
        let mut conversations = items
            .iter()
            .map(|item| parse_doc(item, "conversation"))
            .collect::<Result<Vec<Conversation>, _>>()?;
        conversations.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
        Ok(conversations)
    }

    /// Queries the conversation's partition (its `META` and transcript items; the delivery
    /// store's `D#…` items stay for [`omniline_ports::DeliveryStore::delete_for_conversation`]),
    /// then deletes the transcript, the message index items of its entries and its open pointer
    /// (if it designates this conversation), and the `META` item last, so an interrupted erasure
    /// can be run again.
    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, PortError> {
        let items = self.conversation_items(conversation_id).await?;
        let meta = items.iter().find(|item| is_meta(item));
        let owner = match meta {
            Some(meta) => Some((
                get_s(meta, "accountId")?.to_owned(),
                get_s(meta, "sourceId")?.to_owned(),
            )),
            None => None,
        };
        let mut keys = Vec::new();
        for item in items.iter().filter(|item| !is_meta(item)) {
            let (pk, sk) = key_pair(item);
            keys.push(key(pk, sk));
            // The index key needs the account, known from the META item only.
            if let (Some((account_id, _)), Some(message_id)) = (&owner, transcript_message_id(item))
            {
                keys.push(key(message_pk(account_id, &message_id), LINEMSG));
            }
        }
        batch_delete(&self.client, &self.table, keys).await?;
        if let Some((account_id, source_id)) = &owner {
            self.delete_pointer_to(account_id, source_id, conversation_id)
                .await?;
            batch_delete(
                &self.client,
                &self.table,
                vec![key(conversation_pk(conversation_id), META)],
            )
            .await?;
        }
        Ok(owner.is_some())
    }

    async fn delete_customer(&self, account_id: &str, user_id: &str) -> Result<bool, PortError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(customer_pk(account_id, user_id), PROFILE)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        Ok(output.attributes().is_some_and(|a| !a.is_empty()))
    }

    /// One filtered Scan of the whole table (no index by account; admin-only and rare) for the
    /// account's conversation `META` items (by their `accountId`) and its customer, processed
    /// event, message index and open pointer items (by `pk` prefix), then a Query per
    /// conversation for its transcript. Deleted in batches of 25, the `META` items last so that
    /// an interrupted purge can be run again. Delivery records are the delivery store's.
    async fn purge_account(&self, account_id: &str) -> Result<PurgeCounts, PortError> {
        if account_id.contains('#') {
            // `#` separates key parts: a prefix for such an id could match another account's.
            return Err(PortError::Unavailable(
                "cannot purge an account id containing '#'".into(),
            ));
        }
        let items = self
            .scan(
                "(sk = :meta AND accountId = :account) OR begins_with(pk, :customer) \
                 OR begins_with(pk, :event) OR begins_with(pk, :linemsg) \
                 OR begins_with(pk, :open)",
                &[
                    (":meta", s(META)),
                    (":account", s(account_id)),
                    (":customer", s(format!("CUSTOMER#{account_id}#"))),
                    (":event", s(format!("EVENT#{account_id}#"))),
                    (":linemsg", s(format!("LINEMSG#{account_id}#"))),
                    (":open", s(format!("OPEN#{account_id}#"))),
                ],
                Some("pk, sk"),
            )
            .await?;
        let mut counts = PurgeCounts::default();
        let mut keys = Vec::new();
        let mut metas = Vec::new();
        for item in &items {
            let (pk, sk) = key_pair(item);
            if sk == META {
                let Some(id) = pk.strip_prefix("CONV#") else {
                    continue;
                };
                for owned in self.conversation_items(id).await? {
                    if !is_meta(&owned) {
                        let (pk, sk) = key_pair(&owned);
                        keys.push(key(pk, sk));
                    }
                }
                counts.conversations += 1;
                metas.push(key(pk, sk));
            } else {
                if pk.starts_with("CUSTOMER#") && sk == PROFILE {
                    counts.customers += 1;
                }
                keys.push(key(pk, sk));
            }
        }
        batch_delete(&self.client, &self.table, keys).await?;
        batch_delete(&self.client, &self.table, metas).await?;
        Ok(counts)
    }

    /// DynamoDB's TTL deletes expired items by itself (within days of `expiresAt`): nothing to do.
    async fn sweep_expired(&self, _now_secs: i64) -> Result<u64, PortError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    fn outcome(reasons: &[CancellationReason]) -> Option<CommitOutcome> {
        match classify(reasons) {
            Cancelled::Outcome(o) => Some(o),
            _ => None,
        }
    }

    #[test]
    fn transcript_keys_sort_by_time_then_event_id() {
        let mut keys = vec![
            transcript_sk(1_700_000_000_000, "b"),
            transcript_sk(999, "z"),
            transcript_sk(1_700_000_000_000, "a"),
            transcript_sk(0, "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                transcript_sk(0, "a"),
                transcript_sk(999, "z"),
                transcript_sk(1_700_000_000_000, "a"),
                transcript_sk(1_700_000_000_000, "b"),
            ]
        );
        assert_eq!(transcript_sk(5, "e"), "T#00000000000000000005#e");
    }

    #[test]
    fn cancellation_reasons_map_to_outcomes() {
        let ccf = "ConditionalCheckFailed";
        assert_eq!(
            outcome(&[reason(ccf), reason(ccf)]),
            Some(CommitOutcome::Duplicate)
        );
        assert_eq!(
            outcome(&[reason("None"), reason(ccf)]),
            Some(CommitOutcome::Conflict)
        );
        assert_eq!(
            outcome(&[reason("TransactionConflict"), reason("None")]),
            Some(CommitOutcome::Conflict)
        );
        assert!(matches!(classify(&[]), Cancelled::Unknown));
        assert!(matches!(
            classify(&[reason("None"), reason("ThrottlingError")]),
            Cancelled::Error(_)
        ));
    }
}
