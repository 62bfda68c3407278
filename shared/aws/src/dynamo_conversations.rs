//! [`ConversationStore`] on one DynamoDB table (`pk`, `sk`; TTL attribute `expiresAt`, epoch
//! seconds). Item layout:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | processed event | `EVENT#{account}#{eventId}` | `EVENT` | `expiresAt`, `outbox`?, `after`? |
//! | conversation | `CONV#{id}` | `META` | `doc`, `version`, `accountId`, `sourceId`, `state`, `lastActivityAt`, `expiresAt`?; index keys: `openShard` (while open), `accountSk`, `openedAt`, `queueList`/`agentList`/`listOrder` (with a queue / an agent) |
//! | search term | `SEARCH#{account}#{digest of the term}` | `{userId}` | `conversationId`, `at`, `expiresAt`? |
//! | open pointer | `OPEN#{account}#{sourceId}` | `OPEN` | `conversationId`, `expiresAt`? |
//! | transcript entry | `CONV#{conversationId}` | `T#{timestamp:020}#{eventId}` | `doc`, `expiresAt`? |
//! | LINE message index | `LINEMSG#{account}#{messageId}` | `LINEMSG` | `conversationId`, `transcriptSk`, `expiresAt`? |
//! | customer | `CUSTOMER#{account}#{userId}` | `PROFILE` | `doc`, `expiresAt`? |
//!
//! `doc` is the JSON of the domain value. `outbox` is the JSON array of the event's outbound
//! messages ([`EventCommit::outbox`], absent when there are none): a few small messages, far
//! below the 400 KB item limit.
//!
//! A commit is one `TransactWriteItems` whose first
//! operation is always the deduplication record, so a cancellation reason at index 0 means the
//! event was processed before. What only points at what the transaction wrote (the LINE message
//! index of the transcript entry, and the agents' notifications in the agents' table) is put
//! after it, plain puts of 1 write unit each instead of 2 in the transaction, before the commit
//! returns `Committed`. The record carries them (`after`: the JSON of what to put, with their
//! expiry), so nothing is lost when a worker dies in between: the event's redelivery
//! ([`ConversationStore::redelivered_outbox`], the router's first call) and a concurrent
//! worker's `Duplicate` commit put them again (the same items: idempotent). Until then an unsend
//! of the message (the next event of its chat, after this one in the FIFO group) cannot come.
//!
//! The open pointer names the source's one open conversation. A commit that creates a
//! conversation puts its pointer only if the conversation is not closed (one created already
//! closed takes no open slot), on condition that the source has none. A commit that updates a
//! conversation that is not closed puts the pointer on condition that it is absent or already
//! this conversation's: reopening a closed conversation while another one holds the source is a
//! conflict, so a source never has two open conversations. The pointer expires a day after
//! its conversation (`expiresAt` = retention + 1 day): an update of a conversation whose pointer
//! designates it and still outlives it leaves the pointer alone (one read instead of two
//! transactional write units per message), so it is rewritten about once a day; a pointer whose
//! conversation the retention removed is dropped when `open_conversation` meets it. Closing
//! deletes the pointer if it
//! designates the conversation (closing one already closed leaves a newer one's alone).
//!
//! Retention: the processed-event item's `expiresAt` is the deduplication window; on the other
//! items it is [`EventCommit::retain_until`] of the commit that wrote them (absent when `None`),
//! and DynamoDB's TTL deletes them. The open pointer and the message index expire with the
//! conversation and the transcript entry they point at; a pointer expired but not yet deleted
//! (TTL is lazy) counts as absent: it blocks neither a new conversation nor a reopened one. The `CONV#{id}` partition also holds the
//! delivery store's `D#…` items: this store reads and erases only `META` and `T#…`.
//!
//! [`ConversationStore::open_conversations`] (the schedule's idle close and distribution, every
//! minute) queries the sparse GSI [`OPEN_INDEX`] (`openShard` / `pk`, keys only) and reads the
//! `META` items it names with a consistent `BatchGetItem`: only open conversations carry
//! `openShard`, spread over 16 partitions, so its cost follows the open conversations, not the
//! table.
//!
//! No request reads more than it returns: every read is a GetItem, a BatchGetItem or a Query on
//! a key or an index. The indexes are sparse global secondary indexes with `KEYS_ONLY`
//! projection, keyed on attributes only the `META` item carries, whose values change only at a
//! transition (opening, assignment, transfer, close): the `META` item is rewritten on every
//! message of an open conversation, but a write that changes no index key (and nothing else is
//! projected) writes no index, so a message costs no index write units. A conversation costs
//! about one index write (a keys-only item, 1 WRU) per index it enters or leaves at each
//! transition, none in between; the reads follow what the request returns.
//!
//! | index | partition key | sort key | on | written |
//! |---|---|---|---|---|
//! | [`OPEN_INDEX`] | `openShard` `OPEN#00`…`OPEN#15` | `pk` | open conversations | at opening and close |
//! | [`ACCOUNT_INDEX`] | `accountId` | `accountSk` `C#{source}#{openedAt:020}#{id}` | every conversation | at creation (and deletion) |
//! | [`QUEUE_INDEX`] | `queueList` `{queue}#{state}` | `listOrder` | conversations with a queue | at a change of state or queue, and of `lastActivityAt` once closed |
//! | [`AGENT_INDEX`] | `agentList` `{agent}#{state}` | `listOrder` | conversations with an agent | at a change of state or agent, and of `lastActivityAt` once closed |
//! | [`DAY_INDEX`] | `accountId` | `openedAt` `{openedAt:020}` | every conversation | at creation (and deletion) |
//!
//! `listOrder` is `{openedAt:020}#{id}` while the conversation is open (fixed while it stays
//! open) and `{lastActivityAt:020}#{id}` once it is closed (final at the close: a closed
//! conversation that changes again, e.g. a survey answer moving `lastActivityAt`, rewrites it).
//!
//! [`ConversationStore::list_conversations`] (the agent console's list) queries, for each state
//! asked (all three without one), the partition of each of the filter's queues and of the
//! agent: an open partition (waiting or active) is a working set read whole, page by page, up to
//! [`OPEN_LIST_CAP`] keys, and ordered by `lastActivityAt` in memory; a closed partition is read
//! newest first, `limit` keys at most (the N most recent of several partitions are among the N
//! most recent of each). The `META` items are then read with a consistent `BatchGetItem`,
//! checked with [`ConversationFilter::matches`] (the index lags the table a little), sorted (most
//! recent `lastActivityAt` first, then id) and cut to the limit.
//!
//! [`ConversationStore::conversations_of_source`] (a customer's earlier conversations, the survey
//! answer's lookup, a customer's export and erasure) is one Query of [`ACCOUNT_INDEX`] for the
//! range `C#{source}#` and a consistent `BatchGetItem` of the `META` items it names.
//!
//! Items written before these indexes lack their attributes:
//! [`DynamoConversationStore::backfill_indexes`] (a paged, resumable, idempotent background job,
//! the only Scan of this store besides the purge) adds them once after deploying.
//!
//! [`ConversationStore::purge_account_page`] (the purge job the admin's disconnection with purge
//! records, run page by page by the router's schedule) is one page of a filtered Scan of the
//! whole table: the account's processed-event records, message index items and open pointers
//! have no index by account (one would cost an index write per event). No request sends it.
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

use crate::dynamo::{
    attempts, condition_held, first_items, get_s, key, key_pair, n, number, parse_doc, s,
    scan_page, string, to_doc, transact_check, transact_delete, transact_put, Cancellation,
    Condition, Item, JobCursor, JobPage, Pages, Table, Transaction,
};
use crate::dynamo_agents::{committed_notification_items, slot_held, slot_release};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use omniline_domain::agents::AgentNotification;
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationFilter, ConversationState, ConversationWrite,
    Customer, EventCommit, TranscriptEntry,
};
use omniline_domain::outbound::OutboundMessage;
use omniline_ports::{ConversationStore, PortError, PurgeCounts, PurgePage};
use std::collections::HashMap;

const META: &str = "META";
const OPEN: &str = "OPEN";
const EVENT: &str = "EVENT";
/// The processed-event record's outbox attribute (JSON).
const OUTBOX: &str = "outbox";
/// The event record's attribute holding its [`AfterCommit`] (absent when there is none).
const AFTER: &str = "after";
const LINEMSG: &str = "LINEMSG";
const PROFILE: &str = "PROFILE";
const TRANSCRIPT_PREFIX: &str = "T#";
/// The retention TTL attribute (and the deduplication record's expiry).
const EXPIRES_AT: &str = "expiresAt";
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
/// How long an open pointer outlives the conversation it was written with: a commit rewrites it
/// only once the conversation's new expiry passes the pointer's.
const POINTER_REFRESH_SECS: i64 = 24 * 60 * 60;

/// A pointer's expiry for a conversation retained until `retain` (`None`: kept).
fn pointer_expiry(retain: Option<i64>) -> Option<i64> {
    retain.map(|at| at.saturating_add(POINTER_REFRESH_SECS))
}

/// The sparse, keys-only index of an account's conversations by source: partition
/// [`ACCOUNT_KEY`] (`accountId`), sort key [`ACCOUNT_SK`]. Only `META` items carry `accountSk`
/// (the delivery items' `accountId` alone puts nothing in it). Its key never changes after the
/// conversation's creation: written once per conversation (and once at its deletion).
pub const ACCOUNT_INDEX: &str = "conversations-by-account";
/// The partition key of [`ACCOUNT_INDEX`]: the conversation's account.
pub const ACCOUNT_KEY: &str = "accountId";
/// The sort key of [`ACCOUNT_INDEX`]: `C#{sourceId}#{openedAt:020}#{id}`, so that one source's
/// conversations are one `begins_with` range, oldest first.
pub const ACCOUNT_SK: &str = "accountSk";
/// The sparse, keys-only listing index by queue: partition [`QUEUE_LIST`]
/// (`{queueId}#{state}`), sort key [`LIST_ORDER`]. Only a `META` item of a conversation with a
/// queue carries it.
pub const QUEUE_INDEX: &str = "conversations-by-queue";
pub const QUEUE_LIST: &str = "queueList";
/// The sparse, keys-only listing index by agent: partition [`AGENT_LIST`] (`{agentId}#{state}`),
/// sort key [`LIST_ORDER`]. Only a `META` item of a conversation with an agent carries it.
pub const AGENT_INDEX: &str = "conversations-by-agent";
pub const AGENT_LIST: &str = "agentList";
/// The keys-only index of an account's conversations by when they opened: partition
/// [`ACCOUNT_KEY`], sort key [`OPENED_AT`] (`{openedAt:020}`). Every `META` item carries both,
/// fixed from the conversation's creation: written once per conversation. Reports read it, a
/// day at a time (a range of the sort key).
pub const DAY_INDEX: &str = "conversations-by-opening";
/// The `META` item's opening time, zero-padded (string order is time order); the `doc` leaves
/// it out (one copy: the item is rewritten by every message and must stay within 1 KB).
pub const OPENED_AT: &str = "openedAt";
/// The most keys one day's partition of [`DAY_INDEX`] is read for (a report's bound per day).
const DAY_READ_CAP: usize = 50_000;
/// The most customers one term's partition is read for in a search.
const SEARCH_TERM_CAP: usize = 2_000;
/// The listing indexes' sort key: `{openedAt:020}#{id}` while the conversation is open (fixed
/// while it stays open, so its messages write no index), `{lastActivityAt:020}#{id}` once it is
/// closed (final at the close, so "the N most recent closed" is a bounded Query, newest first).
pub const LIST_ORDER: &str = "listOrder";
/// The most keys read from one open (waiting or active) listing partition: open partitions are
/// working sets, read whole and ordered by `lastActivityAt` in memory; this bounds a request
/// even when a queue is flooded (the most recently opened are read first).
pub const OPEN_LIST_CAP: usize = 2_000;
/// How many more keys a closed partition's page after a cursor reads: conversations sharing the
/// cursor's millisecond, filtered out after the read.
const CURSOR_TIES: usize = 10;

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
    table: Table,
    /// The agents' table (`dynamo_agents`), on the same client: needed by the assignment commit
    /// and release, and by commits with notifications.
    agents: Option<Table>,
}

/// The agent profile item holding an agent's slots (the layout of `dynamo_agents`).
fn agent_profile_key(agent_id: &str) -> Item {
    key(format!("AGENT#{agent_id}"), "PROFILE")
}

/// What a commit writes after its transaction (see the module documentation), recorded on the
/// event's deduplication record so that a redelivery of the event completes it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AfterCommit {
    /// The LINE message id index of the event's transcript entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line_message: Option<LineMessageIndex>,
    /// The agents' notifications (in the agents' table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    notifications: Vec<AgentNotification>,
    /// The items' expiry ([`EventCommit::retain_until`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retain: Option<i64>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineMessageIndex {
    message_id: String,
    conversation_id: String,
    transcript_sk: String,
}

impl AfterCommit {
    fn is_empty(&self) -> bool {
        self.line_message.is_none() && self.notifications.is_empty()
    }
}

fn event_pk(account_id: &str, event_id: &str) -> String {
    format!("EVENT#{account_id}#{event_id}")
}

/// The partition of a conversation (shared with the delivery store's index items).
pub(crate) fn conversation_pk(conversation_id: &str) -> String {
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

/// A non-negative epoch-ms time, zero-padded so that string order is time order.
fn padded(millis: i64) -> String {
    format!("{:020}", millis.max(0))
}

/// The `accountSk` prefix of a source's conversations.
fn source_prefix(source_id: &str) -> String {
    format!("C#{source_id}#")
}

/// The partition of a listing index: a queue's or an agent's conversations in one state.
fn list_partition(owner: &str, state: ConversationState) -> String {
    format!("{owner}#{}", state_str(state))
}

/// The index attributes of a conversation's `META` item (see the module documentation): each
/// index key attribute with its value, or `None` where the conversation is not in that index.
fn index_attributes(c: &Conversation) -> [(&'static str, Option<AttributeValue>); 5] {
    let order = if c.state == ConversationState::Closed {
        padded(c.last_activity_at)
    } else {
        padded(c.opened_at)
    };
    let listed = c.queue_id.is_some() || c.agent_id.is_some();
    [
        (
            ACCOUNT_SK,
            Some(s(format!(
                "{}{}#{}",
                source_prefix(&c.source_id),
                padded(c.opened_at),
                c.id
            ))),
        ),
        (
            QUEUE_LIST,
            c.queue_id.as_deref().map(|q| s(list_partition(q, c.state))),
        ),
        (
            AGENT_LIST,
            c.agent_id.as_deref().map(|a| s(list_partition(a, c.state))),
        ),
        (LIST_ORDER, listed.then(|| s(format!("{order}#{}", c.id)))),
        (OPENED_AT, Some(s(padded(c.opened_at)))),
    ]
}

/// The partition of a search term's customers: `SEARCH#{account}#{digest of the term}`.
fn search_pk(account_id: &str, term: &str) -> String {
    format!(
        "SEARCH#{account_id}#{}",
        omniline_domain::search::term_digest(term)
    )
}

/// How much older than a customer's text its term item's time may be and still not be written
/// again ([`ConversationStore::index_search`]): a day (epoch ms).
const SEARCH_REFRESH_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether the stored term item `found` already says what indexing `entry` (kept until
/// `retain`) would: the same conversation, a time at most [`SEARCH_REFRESH_MS`] older, and an
/// expiry (none when `retain` is none) at most [`POINTER_REFRESH_SECS`] short of `retain`, never
/// past it.
fn search_item_current(
    found: &Item,
    entry: &omniline_domain::search::SearchEntry,
    retain: Option<i64>,
) -> bool {
    let same_conversation = string(found, "conversationId") == Some(entry.conversation_id.as_str());
    let recent = number::<i64>(found, "at")
        .is_some_and(|at| at >= entry.at.saturating_sub(SEARCH_REFRESH_MS));
    let expiry = match (number::<i64>(found, EXPIRES_AT), retain) {
        (None, None) => true,
        (Some(at), Some(retain)) => {
            at <= retain && at >= retain.saturating_sub(POINTER_REFRESH_SECS)
        }
        _ => false,
    };
    same_conversation && recent && expiry
}

fn state_str(state: ConversationState) -> &'static str {
    match state {
        ConversationState::Waiting => "waiting",
        ConversationState::Active => "active",
        ConversationState::Closed => "closed",
    }
}

impl DynamoConversationStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
            agents: None,
        }
    }

    /// The table of the agent store (`DynamoAgentStore`), whose slots
    /// [`ConversationStore::commit_assignment`] checks and
    /// [`ConversationStore::release_unless_assigned`] gives back; without it those two fail.
    pub fn with_agents_table(mut self, table: impl Into<String>) -> Self {
        self.agents = Some(Table {
            client: self.table.client.clone(),
            name: table.into(),
        });
        self
    }

    fn agents(&self) -> Result<&Table, PortError> {
        self.agents.as_ref().ok_or_else(|| {
            PortError::Unavailable(
                "DynamoConversationStore: no agents table configured (with_agents_table)".into(),
            )
        })
    }

    /// Commits `commit` in one transaction, with `check` last (after the deduplication record,
    /// reason 0: its failure is a conflict), and maps its cancellation to an outcome.
    async fn commit_with(
        &self,
        commit: &EventCommit,
        check: Option<TransactWriteItem>,
    ) -> Result<CommitOutcome, PortError> {
        let now = commit.now_secs;
        let (mut items, after) = self.build(commit, now).await?;
        items.extend(check);
        let reasons = match self.table.transact(items).await? {
            Transaction::Committed => {
                // A failure here fails the event: its redelivery finds the record and
                // completes these writes (`redelivered_outbox`).
                self.write_after(&commit.account_id, &after).await?;
                return Ok(CommitOutcome::Committed);
            }
            Transaction::InProgress(error) => return Err(error),
            Transaction::Cancelled(reasons) => reasons,
        };
        let outcome = match classify(&reasons) {
            Cancelled::Outcome(outcome) => outcome,
            Cancelled::Error(message) => return Err(PortError::Unavailable(message)),
            Cancelled::Unknown => {
                if self
                    .event_recorded_at(&commit.account_id, &commit.event_id, now)
                    .await?
                {
                    CommitOutcome::Duplicate
                } else {
                    CommitOutcome::Conflict
                }
            }
        };
        if outcome == CommitOutcome::Duplicate {
            // The worker that recorded the event may die before its after-commit writes.
            self.complete_recorded(&commit.account_id, &commit.event_id, now)
                .await?;
        }
        Ok(outcome)
    }

    /// A strongly consistent GetItem.
    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
        self.table.get_consistent(key(pk, sk)).await
    }

    async fn event_recorded_at(
        &self,
        account_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<bool, PortError> {
        Ok(self
            .event_record(account_id, event_id, now)
            .await?
            .is_some())
    }

    /// The event's deduplication record, unless absent or expired at `now`.
    async fn event_record(
        &self,
        account_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<Option<Item>, PortError> {
        let item = self.get(event_pk(account_id, event_id), EVENT).await?;
        // DynamoDB deletes expired items lazily: an expired record still present is forgotten.
        Ok(item.filter(|item| number::<i64>(item, EXPIRES_AT).is_some_and(|at| at > now)))
    }

    fn meta_item(c: &Conversation, expires_at: Option<i64>) -> Result<Item, PortError> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(conversation_pk(&c.id))),
            ("sk".to_owned(), s(META)),
            ("doc".to_owned(), s(meta_doc(c)?)),
            ("version".to_owned(), n(c.version)),
            ("accountId".to_owned(), s(&c.account_id)),
            ("sourceId".to_owned(), s(&c.source_id)),
            ("state".to_owned(), s(state_str(c.state))),
            ("lastActivityAt".to_owned(), n(c.last_activity_at)),
        ]);
        if c.state != ConversationState::Closed {
            item.insert(OPEN_SHARD.to_owned(), s(open_shard(&c.id)));
        }
        for (name, value) in index_attributes(c) {
            if let Some(value) = value {
                item.insert(name.to_owned(), value);
            }
        }
        Ok(with_expiry(item, expires_at))
    }

    /// The open pointer of `c`, expiring [`pointer_expiry`] after the conversation's `retain`.
    fn open_item(c: &Conversation, retain: Option<i64>) -> Item {
        let expires_at = pointer_expiry(retain);
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
        // What the message gave the search index goes with it, before the commit (a delete is
        // idempotent: a retried unsend deletes nothing more).
        if let Some((user_id, terms)) = omniline_domain::search::message_terms(&entry.event) {
            self.unindex_search(account_id, &user_id, &terms).await?;
        }
        entry.retracted = true;
        entry.event = serde_json::Value::Null;
        let retracted = HashMap::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s(sk)),
            ("doc".to_owned(), to_doc(&entry, "transcript entry")?),
        ]);
        // Retracting keeps the entry's retention.
        Ok(Some(with_expiry(retracted, number(&item, EXPIRES_AT))))
    }

    /// The conversation's own items (`META` and transcript `T#…`; not other stores' items in the
    /// partition), read consistently.
    async fn conversation_items(&self, conversation_id: &str) -> Result<Vec<Item>, PortError> {
        self.table
            .partition(conversation_pk(conversation_id))
            .filter_expression("sk = :meta OR begins_with(sk, :transcript)")
            .expression_attribute_values(":meta", s(META))
            .expression_attribute_values(":transcript", s(TRANSCRIPT_PREFIX))
            .items("DynamoDB Query")
            .await
    }

    /// The `META` keys of at most `max` entries of partition `value` of the keys-only `index`
    /// (partition key attribute `attribute`), in the index's order, newest first.
    async fn index_keys(
        &self,
        index: &str,
        attribute: &str,
        value: String,
        max: usize,
        below: Option<String>,
    ) -> Result<Vec<Item>, PortError> {
        let mut query = self
            .table
            .query()
            .index_name(index)
            .expression_attribute_names("#key", attribute)
            .expression_attribute_values(":key", s(value))
            .scan_index_forward(false);
        // A page after a cursor: only the list orders before it (newest first).
        query = match below {
            Some(below) => query
                .key_condition_expression("#key = :key AND #order < :below")
                .expression_attribute_names("#order", LIST_ORDER)
                .expression_attribute_values(":below", s(below)),
            None => query.key_condition_expression("#key = :key"),
        };
        let items = first_items(query, max, "DynamoDB Query (conversation index)").await?;
        Ok(items.iter().filter_map(meta_key).collect())
    }

    /// The conversations of `keys` (`META` keys), read consistently with `BatchGetItem`; each
    /// once, whatever the repeats in `keys`; missing ones (deleted meanwhile) are skipped.
    async fn metas(&self, keys: Vec<Item>) -> Result<Vec<Conversation>, PortError> {
        let mut seen = std::collections::HashSet::new();
        let keys: Vec<Item> = keys
            .into_iter()
            .filter(|k| seen.insert(key_pair(k)))
            .collect();
        self.table
            .batch_get(keys)
            .await?
            .iter()
            .map(parse_meta)
            .collect()
    }

    /// A paged background job (not for a request path: it Scans the table), run once after
    /// deploying the index attributes, idempotent and resumable: one page of at most `page_size`
    /// items from `cursor` (`None`: the start), each conversation `META` item in it given the
    /// index attributes its document implies (`accountSk`, `queueList`, `agentList`,
    /// `listOrder`, `openShard`: see the module documentation) where they differ. An item
    /// changed meanwhile is left alone (its writer set them). Run it page after page until
    /// `next` is `None` ([`DynamoConversationStore::backfill_indexes`] does).
    pub async fn backfill_indexes_page(
        &self,
        cursor: Option<JobCursor>,
        page_size: i32,
    ) -> Result<JobPage, PortError> {
        let scan = self
            .table
            .scan()
            .filter_expression("sk = :meta")
            .expression_attribute_values(":meta", s(META));
        let (items, next) = scan_page(scan, cursor, page_size, "DynamoDB Scan (backfill)").await?;
        let mut updated = 0;
        for item in &items {
            let c: Conversation = parse_meta(item)?;
            let mut wanted: Vec<(&str, Option<AttributeValue>)> = index_attributes(&c).to_vec();
            let shard = (c.state != ConversationState::Closed).then(|| s(open_shard(&c.id)));
            wanted.push((OPEN_SHARD, shard));
            if wanted
                .iter()
                .all(|(name, value)| item.get(*name) == value.as_ref())
            {
                continue;
            }
            let (mut sets, mut removes) = (Vec::new(), Vec::new());
            let mut update = self
                .table
                .update_item()
                .set_key(Some(key(conversation_pk(&c.id), META)))
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(
                    ":version",
                    item.get("version").cloned().unwrap_or_else(|| n(c.version)),
                );
            for (i, (name, value)) in wanted.into_iter().enumerate() {
                update = update.expression_attribute_names(format!("#a{i}"), name);
                match value {
                    Some(value) => {
                        sets.push(format!("#a{i} = :v{i}"));
                        update = update.expression_attribute_values(format!(":v{i}"), value);
                    }
                    None => removes.push(format!("#a{i}")),
                }
            }
            let mut expression = String::new();
            if !sets.is_empty() {
                expression.push_str(&format!("SET {}", sets.join(", ")));
            }
            if !removes.is_empty() {
                expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
            }
            let result = update.update_expression(expression).send().await;
            if condition_held(result, "DynamoDB UpdateItem (backfill)")? {
                updated += 1;
            }
        }
        Ok(JobPage {
            scanned: items.len(),
            updated,
            next,
        })
    }

    /// [`DynamoConversationStore::backfill_indexes_page`] from the start until the end, pages of
    /// 500; how many items it changed. A paged background job: never on a request path.
    pub async fn backfill_indexes(&self) -> Result<usize, PortError> {
        crate::dynamo::run_to_end(|cursor| self.backfill_indexes_page(cursor, 500)).await
    }

    /// Deletes the open pointer of (`account_id`, `source_id`) if it designates `conversation_id`.
    async fn delete_pointer_to(
        &self,
        account_id: &str,
        source_id: &str,
        conversation_id: &str,
    ) -> Result<(), PortError> {
        // Absent, or another conversation's: left alone.
        self.table
            .delete_if(
                key(open_pk(account_id, source_id), OPEN),
                designates(conversation_id),
            )
            .await
            .map(drop)
    }

    /// Whether the open pointer of `c`'s source designates `c`.
    async fn points_to(&self, c: &Conversation) -> Result<bool, PortError> {
        let pointer = self.get(open_pk(&c.account_id, &c.source_id), OPEN).await?;
        Ok(pointer.is_some_and(|p| string(&p, "conversationId") == Some(c.id.as_str())))
    }

    /// Whether the open pointer of `c`'s source designates `c` and expires no earlier than the
    /// conversation written with `retain` (never when `retain` is `None`), so that an update
    /// keeping `c` open need not write it again: a message in an open conversation saves the
    /// pointer's two transactional write units for one read unit. A pointer is written to
    /// outlive its conversation by [`POINTER_REFRESH_SECS`] ([`pointer_expiry`]), so it is
    /// rewritten at most once a day, and an open conversation never loses its pointer to the
    /// time to live before its own expiry (which would let a second conversation open for the
    /// source). A pointer left behind by a conversation that expired is dropped when read
    /// ([`ConversationStore::open_conversation`]). Closing changes the conversation's version,
    /// so the commit's version condition covers what this read saw; an erasure deletes the
    /// conversation itself, which fails the commit's condition too.
    async fn pointer_current(
        &self,
        c: &Conversation,
        retain: Option<i64>,
        now: i64,
    ) -> Result<bool, PortError> {
        let Some(pointer) = self.get(open_pk(&c.account_id, &c.source_id), OPEN).await? else {
            return Ok(false);
        };
        if string(&pointer, "conversationId") != Some(c.id.as_str()) {
            return Ok(false);
        }
        let expires: Option<i64> = number(&pointer, EXPIRES_AT);
        Ok(match (expires, retain) {
            (None, None) => true,
            (Some(at), Some(retain)) => at > now && at >= retain,
            // Expiring where it should not, or the other way round: write it as it should be.
            _ => false,
        })
    }

    /// The operations of `commit`'s transaction, and what it writes after the transaction (see
    /// the module documentation).
    async fn build(
        &self,
        commit: &EventCommit,
        now: i64,
    ) -> Result<(Vec<TransactWriteItem>, AfterCommit), PortError> {
        let table = self.table.name.as_str();
        let retain = commit.retain_until;
        let after = AfterCommit {
            line_message: commit.transcript.as_ref().and_then(|entry| {
                entry
                    .message_id
                    .as_ref()
                    .map(|message_id| LineMessageIndex {
                        message_id: message_id.clone(),
                        conversation_id: entry.conversation_id.clone(),
                        transcript_sk: transcript_sk(entry.timestamp, &entry.event_id),
                    })
            }),
            notifications: commit.notifications.clone(),
            retain,
        };
        if !after.notifications.is_empty() {
            // Checked before anything is written.
            self.agents()?;
        }
        // (0) The deduplication record: always first, so that reason 0 means "duplicate".
        let mut record = key(event_pk(&commit.account_id, &commit.event_id), EVENT);
        record.insert(EXPIRES_AT.to_owned(), n(commit.dedupe_expires_at));
        if !commit.outbox.is_empty() {
            record.insert(OUTBOX.to_owned(), to_doc(&commit.outbox, "outbox")?);
        }
        if !after.is_empty() {
            record.insert(AFTER.to_owned(), to_doc(&after, "after-commit writes")?);
        }
        let mut tx = vec![transact_put(table, record, expired_or_absent(now))?];

        // (1) The conversation and its source's open pointer. A conversation that is not closed
        // holds the pointer, and takes it only where no other (live) conversation does.
        match &commit.conversation {
            None => {}
            Some(ConversationWrite::Create(c)) => {
                let absent = Condition::new("attribute_not_exists(pk)");
                tx.push(transact_put(table, Self::meta_item(c, retain)?, absent)?);
                if c.state != ConversationState::Closed {
                    // A pointer whose retention has passed is gone, even before TTL deletes it.
                    let pointer = Self::open_item(c, retain);
                    tx.push(transact_put(table, pointer, expired_or_absent(now))?);
                }
                // Created already closed: it occupies no open slot.
            }
            Some(ConversationWrite::Update(c)) => {
                let previous = c.version.checked_sub(1).ok_or_else(|| {
                    PortError::Unavailable("conversation update with version 0".into())
                })?;
                let unchanged = Condition::new("version = :prev").value(":prev", n(previous));
                tx.push(transact_put(table, Self::meta_item(c, retain)?, unchanged)?);
                let pointer = key(open_pk(&c.account_id, &c.source_id), OPEN);
                if c.state == ConversationState::Closed {
                    // Only remove a pointer to this conversation: closing one already closed
                    // (pointer gone, or moved to a newer conversation) leaves it alone. The
                    // condition catches a change between this read and the transaction.
                    if self.points_to(c).await? {
                        tx.push(transact_delete(table, pointer, designates(&c.id))?);
                    }
                } else if !self.pointer_current(c, retain, now).await? {
                    // Still (or again) open: the pointer is this conversation's, or free. Another
                    // conversation holding the source makes it a conflict (reopening a closed one
                    // would make two open conversations for one source).
                    let ours_or_free = Condition::new(
                        "attribute_not_exists(pk) OR conversationId = :id OR expiresAt <= :now",
                    )
                    .value(":id", s(&c.id))
                    .value(":now", n(now));
                    tx.push(transact_put(
                        table,
                        Self::open_item(c, retain),
                        ours_or_free,
                    )?);
                }
            }
        }

        // (2) The transcript entry (its LINE message id index comes after the transaction).
        let mut new_entry_key = None;
        if let Some(entry) = &commit.transcript {
            let pk = conversation_pk(&entry.conversation_id);
            let sk = transcript_sk(entry.timestamp, &entry.event_id);
            let mut item = key(pk.clone(), sk.clone());
            item.insert("doc".to_owned(), to_doc(entry, "transcript entry")?);
            tx.push(transact_put(table, with_expiry(item, retain), None)?);
            new_entry_key = Some((pk, sk));
        }

        // (3) Unsend: retract the earlier entry (read before, written with the transaction).
        if let Some(message_id) = &commit.retract_message_id {
            if let Some(item) = self.retracted_item(&commit.account_id, message_id).await? {
                // One operation per item in a transaction: never retract the entry being written.
                if new_entry_key.as_ref() != Some(&key_pair(&item)) {
                    let present = Condition::new("attribute_exists(pk)");
                    tx.push(transact_put(table, item, present)?);
                }
            }
        }

        // (4) The customer.
        if let Some(customer) = &commit.customer {
            let mut item = key(
                customer_pk(&customer.account_id, &customer.user_id),
                PROFILE,
            );
            item.insert("doc".to_owned(), to_doc(customer, "customer")?);
            tx.push(transact_put(table, with_expiry(item, retain), None)?);
        }
        Ok((tx, after))
    }

    /// Writes what a landed commit writes after its transaction (plain puts, the same items
    /// every time: idempotent): the LINE message index and the agents' notifications, which
    /// expire with the conversation's data (the retention setting).
    async fn write_after(&self, account_id: &str, after: &AfterCommit) -> Result<(), PortError> {
        if let Some(m) = &after.line_message {
            let mut index = key(message_pk(account_id, &m.message_id), LINEMSG);
            index.insert("conversationId".to_owned(), s(&m.conversation_id));
            index.insert("transcriptSk".to_owned(), s(&m.transcript_sk));
            self.table.put(with_expiry(index, after.retain)).await?;
        }
        if !after.notifications.is_empty() {
            let items = after
                .notifications
                .iter()
                .flat_map(|n| committed_notification_items(n, after.retain));
            self.agents()?.batch_put(items, "notifications").await?;
        }
        Ok(())
    }

    /// Completes the after-commit writes recorded on the event's record, if it is recorded at
    /// `now`, and returns the record.
    async fn complete_recorded(
        &self,
        account_id: &str,
        event_id: &str,
        now: i64,
    ) -> Result<Option<Item>, PortError> {
        let Some(record) = self.event_record(account_id, event_id, now).await? else {
            return Ok(None);
        };
        if let Some(json) = string(&record, AFTER) {
            let mut after: AfterCommit = serde_json::from_str(json).map_err(|e| {
                PortError::Unavailable(format!("stored after-commit writes do not parse: {e}"))
            })?;
            // Only for a conversation still there: a customer erased (or a conversation
            // deleted) since keeps nothing of it, not even through a late redelivery.
            let mut gone = Vec::new();
            let conversations = after
                .line_message
                .iter()
                .map(|m| m.conversation_id.clone())
                .chain(
                    after
                        .notifications
                        .iter()
                        .map(|n| n.conversation_id.clone()),
                )
                .collect::<std::collections::BTreeSet<_>>();
            for id in conversations {
                if self.get(conversation_pk(&id), META).await?.is_none() {
                    gone.push(id);
                }
            }
            after
                .line_message
                .take_if(|m| gone.contains(&m.conversation_id));
            after
                .notifications
                .retain(|n| !gone.contains(&n.conversation_id));
            self.write_after(account_id, &after).await?;
        }
        Ok(Some(record))
    }
}

/// The fields of a conversation its `META` item keeps as attributes (for conditions, indexes and
/// the ledger), left out of its `doc` so that they are not stored twice: (doc field, attribute).
/// The id is the item's `pk` (`CONV#{id}`).
const META_ATTRIBUTE_FIELDS: [(&str, &str); 6] = [
    ("accountId", "accountId"),
    // Zero-padded text on the item (an index key), a number in the doc.
    ("openedAt", OPENED_AT),
    ("sourceId", "sourceId"),
    ("state", "state"),
    ("lastActivityAt", "lastActivityAt"),
    ("version", "version"),
];

/// The `doc` of `c`'s `META` item: the conversation without what the item's attributes hold.
fn meta_doc(c: &Conversation) -> Result<String, PortError> {
    let mut value = serde_json::to_value(c)
        .map_err(|e| PortError::Unavailable(format!("conversation does not serialize: {e}")))?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("id");
        for (field, _) in META_ATTRIBUTE_FIELDS {
            fields.remove(field);
        }
    }
    Ok(value.to_string())
}

/// The conversation of a `META` item: its `doc`, with the fields the item keeps as attributes
/// put back (items written before the doc left them out carry them in both).
fn parse_meta(item: &Item) -> Result<Conversation, PortError> {
    let doc = get_s(item, "doc")?;
    let mut value: serde_json::Value = serde_json::from_str(doc)
        .map_err(|e| PortError::Unavailable(format!("stored conversation does not parse: {e}")))?;
    if let Some(fields) = value.as_object_mut() {
        if !fields.contains_key("id") {
            if let Some(id) = string(item, "pk").and_then(|pk| pk.strip_prefix("CONV#")) {
                fields.insert("id".into(), serde_json::Value::String(id.to_owned()));
            }
        }
        for (field, attribute) in META_ATTRIBUTE_FIELDS {
            if fields.contains_key(field) {
                continue;
            }
            let restored = match item.get(attribute) {
                Some(AttributeValue::S(text)) if attribute == OPENED_AT => {
                    serde_json::Value::from(text.parse::<i64>().map_err(|e| {
                        PortError::Unavailable(format!("stored conversation {attribute}: {e}"))
                    })?)
                }
                Some(AttributeValue::S(text)) => serde_json::Value::String(text.clone()),
                Some(AttributeValue::N(number)) => serde_json::from_str(number).map_err(|e| {
                    PortError::Unavailable(format!("stored conversation {attribute}: {e}"))
                })?,
                _ => continue,
            };
            fields.insert(field.to_owned(), restored);
        }
    }
    serde_json::from_value(value)
        .map_err(|e| PortError::Unavailable(format!("stored conversation does not parse: {e}")))
}

/// The outbox on an event's record (empty for a record written before outboxes were stored).
fn recorded_outbox_of(record: &Item) -> Result<Vec<OutboundMessage>, PortError> {
    match string(record, OUTBOX) {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| PortError::Unavailable(format!("stored outbox does not parse: {e}"))),
    }
}

/// The condition of an item that expires: absent, or expired by `now` (TTL deletes lazily).
fn expired_or_absent(now: i64) -> Condition {
    Condition::new("attribute_not_exists(pk) OR expiresAt <= :now").value(":now", n(now))
}

/// The condition that an open pointer designates `conversation_id`.
fn designates(conversation_id: &str) -> Condition {
    Condition::new("conversationId = :id").value(":id", s(conversation_id))
}

/// The `META` key of the conversation an index item names (its `pk`).
fn meta_key(item: &Item) -> Option<Item> {
    string(item, "pk").map(|pk| key(pk.to_owned(), META))
}

/// The `META` keys of every item an index Query returns, page after page.
async fn meta_keys(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    what: &str,
) -> Result<Vec<Item>, PortError> {
    let mut keys = Vec::new();
    query
        .each_item(what, |item| {
            keys.extend(meta_key(item));
            Ok(())
        })
        .await?;
    Ok(keys)
}

/// How a cancelled commit is answered, from its cancellation reasons.
enum Cancelled {
    Outcome(CommitOutcome),
    /// No reasons were returned: decide from the deduplication record.
    Unknown,
    Error(String),
}

fn classify(reasons: &Cancellation) -> Cancelled {
    if reasons.is_empty() {
        return Cancelled::Unknown;
    }
    if reasons.failed(0) {
        return Cancelled::Outcome(CommitOutcome::Duplicate);
    }
    if let Some(message) = reasons.unexpected() {
        return Cancelled::Error(message.to_owned());
    }
    if reasons.any_failed() || reasons.conflicted() {
        Cancelled::Outcome(CommitOutcome::Conflict)
    } else {
        Cancelled::Unknown
    }
}

/// The LINE message id of a stored transcript item, read leniently (erasure must not stop at a
/// document that no longer parses).
fn transcript_message_id(item: &Item) -> Option<String> {
    let doc = string(item, "doc")?;
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
    string(item, "sk") == Some(META)
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

    async fn recorded_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<OutboundMessage>>, PortError> {
        self.event_record(account_id, event_id, now_secs)
            .await?
            .map(|record| recorded_outbox_of(&record))
            .transpose()
    }

    async fn redelivered_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<OutboundMessage>>, PortError> {
        self.complete_recorded(account_id, event_id, now_secs)
            .await?
            .map(|record| recorded_outbox_of(&record))
            .transpose()
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
            // Left behind by a conversation its retention removed (the pointer outlives it by
            // up to a day): dropped, so that a new conversation may take the source.
            self.delete_pointer_to(account_id, source_id, id).await?;
            return Ok(None);
        };
        let conversation: Conversation = parse_meta(&meta)?;
        Ok((conversation.state != ConversationState::Closed).then_some(conversation))
    }

    async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, PortError> {
        self.get(conversation_pk(conversation_id), META)
            .await?
            .map(|item| parse_meta(&item))
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
            let query = self
                .table
                .query()
                .index_name(OPEN_INDEX)
                .key_condition_expression("#shard = :shard")
                .expression_attribute_names("#shard", OPEN_SHARD)
                .expression_attribute_values(":shard", s(format!("OPEN#{shard:02}")));
            keys.extend(meta_keys(query, "DynamoDB Query (open conversations)").await?);
        }
        let mut conversations = Vec::with_capacity(keys.len());
        for item in self.table.batch_get(keys).await? {
            let conversation: Conversation = parse_meta(&item)?;
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
        self.commit_with(commit, None).await
    }

    async fn commit_assignment(
        &self,
        commit: &EventCommit,
        agent_id: &str,
    ) -> Result<CommitOutcome, PortError> {
        let agents_table = self.agents()?.name.as_str();
        let write = commit.assigned_conversation()?;
        let slot = slot_held(
            agents_table,
            agent_profile_key(agent_id),
            &write.conversation().id,
        )?;
        self.commit_with(commit, Some(slot)).await
    }

    async fn release_unless_assigned(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<bool, PortError> {
        let agents_table = self.agents()?.name.as_str();
        let release = slot_release(agents_table, agent_profile_key(agent_id), conversation_id)?;
        for pause in attempts() {
            pause.await;
            let meta = self.get(conversation_pk(conversation_id), META).await?;
            // The conversation as read, which the release is conditional on.
            let unchanged = match &meta {
                None => Condition::new("attribute_not_exists(pk)"),
                Some(item) => {
                    let c: Conversation = parse_meta(item)?;
                    // Kept: it holds this agent's slot (open with it, offered to it, or its
                    // wrap-up pending).
                    if c.slot_holder() == Some(agent_id) {
                        return Ok(false);
                    }
                    let version = item.get("version").cloned().unwrap_or_else(|| n(c.version));
                    Condition::new("version = :version").value(":version", version)
                }
            };
            let unchanged = transact_check(
                &self.table.name,
                key(conversation_pk(conversation_id), META),
                unchanged,
            )?;
            let reasons = match self
                .table
                .transact(vec![release.clone(), unchanged])
                .await?
            {
                Transaction::Committed => return Ok(true),
                // A concurrent write: again.
                Transaction::InProgress(_) => continue,
                Transaction::Cancelled(reasons) => reasons,
            };
            // Reason 0: the slot is not there (released before, or never held): nothing to do.
            if reasons.failed(0) {
                return Ok(false);
            }
            // The conversation changed since it was read, or a concurrent write: again.
            reasons.check()?;
        }
        Err(PortError::Unavailable(format!(
            "conversation {conversation_id} kept changing while agent {agent_id}'s slot was given back"
        )))
    }

    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError> {
        let mut entries = Vec::new();
        self.table
            .partition_prefix(conversation_pk(conversation_id), TRANSCRIPT_PREFIX)
            .scan_index_forward(true)
            .each_item("DynamoDB Query", |item| {
                entries.push(parse_doc(item, "transcript entry")?);
                Ok(())
            })
            .await?;
        Ok(entries)
    }

    /// A Query of the partition's transcript items backwards (`ScanIndexForward` false), at most
    /// `limit` items read.
    async fn latest_transcript(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, PortError> {
        let query = self
            .table
            .partition_prefix(conversation_pk(conversation_id), TRANSCRIPT_PREFIX)
            .scan_index_forward(false);
        crate::dynamo::first_items(query, limit, "DynamoDB Query")
            .await?
            .iter()
            .map(|item| parse_doc(item, "transcript entry"))
            .collect()
    }

    /// Queries of the listing indexes (per queue of the filter and the agent, per state asked:
    /// open partitions read whole up to [`OPEN_LIST_CAP`], closed ones newest first up to the
    /// limit), then the `META` items read consistently by key and checked with
    /// [`ConversationFilter::matches`] (the index lags the table a little), ordered most recent
    /// activity first and cut to the limit. See the module documentation.
    async fn list_conversations(
        &self,
        filter: &ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError> {
        if filter.limit == 0 || (filter.queue_ids.is_empty() && filter.agent_id.is_none()) {
            // Nothing can match.
            return Ok(Vec::new());
        }
        let states = match filter.state {
            Some(state) => vec![state],
            None => vec![
                ConversationState::Waiting,
                ConversationState::Active,
                ConversationState::Closed,
            ],
        };
        let mut queues: Vec<&str> = filter.queue_ids.iter().map(String::as_str).collect();
        queues.sort_unstable();
        queues.dedup();
        let mut keys = Vec::new();
        for state in states {
            let max = match state {
                // After a cursor: ties at its time may come first (filtered below).
                ConversationState::Closed if filter.after.is_some() => {
                    filter.limit.saturating_add(CURSOR_TIES)
                }
                ConversationState::Closed => filter.limit,
                _ => OPEN_LIST_CAP,
            };
            // A closed partition is ordered by `{lastActivityAt:020}#{id}`: after a cursor,
            // from the cursor's time (inclusive) down. Open ones are read whole.
            let below = match (&filter.after, state) {
                (Some(after), ConversationState::Closed) => {
                    Some(padded(after.last_activity_at.saturating_add(1)))
                }
                _ => None,
            };
            let partitions = queues.iter().map(|q| (QUEUE_INDEX, QUEUE_LIST, *q)).chain(
                filter
                    .agent_id
                    .as_deref()
                    .map(|a| (AGENT_INDEX, AGENT_LIST, a)),
            );
            for (index, attribute, owner) in partitions {
                let found = self
                    .index_keys(
                        index,
                        attribute,
                        list_partition(owner, state),
                        max,
                        below.clone(),
                    )
                    .await?;
                if found.len() >= OPEN_LIST_CAP && state != ConversationState::Closed {
                    tracing::warn!(
                        index,
                        partition = %list_partition(owner, state),
                        cap = OPEN_LIST_CAP,
                        "open conversation list partition read up to its cap"
                    );
                }
                keys.extend(found);
            }
        }
        let mut out: Vec<Conversation> = self
            .metas(keys)
            .await?
            .into_iter()
            .filter(|c| filter.matches(c))
            .collect();
        out.sort_by(by_recent_activity);
        out.truncate(filter.limit);
        Ok(out)
    }

    /// A Query of the by-account index for the source's range (`C#{source}#…`), then the `META`
    /// items read consistently by key; oldest first.
    async fn count_in_queue(
        &self,
        queue_id: &str,
        state: ConversationState,
        cap: usize,
    ) -> Result<usize, PortError> {
        // The keys of one partition of the keys-only queue index, counted page by page (a
        // page is up to 1 MB of keys), stopping at `cap`.
        let mut counted = 0usize;
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .table
                .query()
                .index_name(QUEUE_INDEX)
                .key_condition_expression("#key = :key")
                .expression_attribute_names("#key", QUEUE_LIST)
                .expression_attribute_values(":key", s(list_partition(queue_id, state)))
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| crate::aws_error("DynamoDB Query (queue count)", e))?;
            counted = counted.saturating_add(usize::try_from(page.count()).unwrap_or(0));
            match page.last_evaluated_key {
                Some(key) if counted < cap => start = Some(key),
                _ => return Ok(counted.min(cap)),
            }
        }
    }

    async fn conversations_of_source(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Vec<Conversation>, PortError> {
        let query = self
            .table
            .query()
            .index_name(ACCOUNT_INDEX)
            .key_condition_expression("#account = :account AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#account", ACCOUNT_KEY)
            .expression_attribute_names("#sk", ACCOUNT_SK)
            .expression_attribute_values(":account", s(account_id))
            .expression_attribute_values(":prefix", s(source_prefix(source_id)));
        let keys = meta_keys(query, "DynamoDB Query (conversations of a source)").await?;
        let mut conversations: Vec<Conversation> = self
            .metas(keys)
            .await?
            .into_iter()
            .filter(|c| c.account_id == account_id && c.source_id == source_id)
            .collect();
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
        let what = format!("conversation {conversation_id}");
        self.table.batch_delete(keys, &what).await?;
        if let Some((account_id, source_id)) = &owner {
            self.delete_pointer_to(account_id, source_id, conversation_id)
                .await?;
            self.table
                .batch_delete([key(conversation_pk(conversation_id), META)], &what)
                .await?;
        }
        Ok(owner.is_some())
    }

    async fn delete_customer(&self, account_id: &str, user_id: &str) -> Result<bool, PortError> {
        self.table
            .delete_existing(key(customer_pk(account_id, user_id), PROFILE))
            .await
    }

    /// One page of a filtered Scan of the whole table (no index by account; a paged background
    /// job, the purge job, never a request) for the account's conversation `META` items (by
    /// their `accountId`) and its customer, processed event, message index and open pointer
    /// items (by `pk` prefix), then a Query per conversation found for its transcript. Deleted
    /// in batches of 25, the `META` items last so that an interrupted page can be run again
    /// (from the same cursor: the Scan still finds them). Delivery records are the delivery
    /// store's.
    async fn purge_account_page(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<PurgePage<PurgeCounts>, PortError> {
        if account_id.contains('#') {
            // `#` separates key parts: a prefix for such an id could match another account's.
            return Err(PortError::Unavailable(
                "cannot purge an account id containing '#'".into(),
            ));
        }
        let scan = self
            .table
            .scan()
            .filter_expression(
                "(sk = :meta AND accountId = :account) OR begins_with(pk, :customer) \
                 OR begins_with(pk, :event) OR begins_with(pk, :linemsg) \
                 OR begins_with(pk, :open) OR begins_with(pk, :search)",
            )
            .projection_expression("pk, sk")
            .expression_attribute_values(":meta", s(META))
            .expression_attribute_values(":account", s(account_id))
            .expression_attribute_values(":customer", s(format!("CUSTOMER#{account_id}#")))
            .expression_attribute_values(":event", s(format!("EVENT#{account_id}#")))
            .expression_attribute_values(":linemsg", s(format!("LINEMSG#{account_id}#")))
            .expression_attribute_values(":open", s(format!("OPEN#{account_id}#")))
            .expression_attribute_values(":search", s(format!("SEARCH#{account_id}#")));
        let cursor = cursor.map(JobCursor::decode).transpose()?;
        let page_size = i32::try_from(page_size).unwrap_or(i32::MAX);
        let (items, next) = scan_page(scan, cursor, page_size, "DynamoDB Scan (purge)").await?;
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
        let what = format!("account {account_id}'s conversations");
        self.table.batch_delete(keys, &what).await?;
        self.table.batch_delete(metas, &what).await?;
        Ok(PurgePage {
            erased: counts,
            next: next.map(|c| c.encode()).transpose()?,
        })
    }

    /// One Query of the day's partition of [`DAY_INDEX`] (keys only, at most `limit`), then the
    /// conversations by key.
    async fn conversations_opened_on(
        &self,
        account_id: &str,
        day_start: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, PortError> {
        let query = self
            .table
            .query()
            .index_name(DAY_INDEX)
            .key_condition_expression("#account = :account AND #opened BETWEEN :from AND :to")
            .expression_attribute_names("#account", ACCOUNT_KEY)
            .expression_attribute_names("#opened", OPENED_AT)
            .expression_attribute_values(":account", s(account_id))
            .expression_attribute_values(":from", s(padded(day_start)))
            .expression_attribute_values(
                ":to",
                s(padded(day_start.saturating_add(
                    omniline_domain::reports::DAY_LENGTH_MS - 1,
                ))),
            );
        let items = first_items(
            query,
            limit.min(DAY_READ_CAP),
            "DynamoDB Query (conversations of a day)",
        )
        .await?;
        let keys = items.iter().filter_map(meta_key).collect();
        Ok(self
            .metas(keys)
            .await?
            .into_iter()
            .filter(|c| c.account_id == account_id)
            .collect())
    }

    /// One item per term and customer (`SEARCH#{account}#{digest}` / `{userId}`: the latest
    /// conversation and time, the retention), put with `BatchWriteItem`, outside any
    /// transaction: a put is idempotent, so a retried event writes the same items again.
    ///
    /// A customer repeats their words: the term items are read first (`BatchGetItem`, eventually
    /// consistent: half a read unit each, a tenth of a write unit's price), and a term whose item
    /// is still right is not written again ([`search_item_current`]): the same conversation, a
    /// time at most [`SEARCH_REFRESH_MS`] older, an expiry at most [`POINTER_REFRESH_SECS`] short
    /// of the new one. So a hit's time is that of the customer's latest text to the day, and a
    /// term item may expire up to a day before the conversation it points at, never after. A
    /// read a moment behind costs at worst a put more, or, for a word said again within a
    /// second of its unsend, one not indexed: recall, never a word kept that was taken back.
    async fn index_search(
        &self,
        entry: &omniline_domain::search::SearchEntry,
        retain_until: Option<i64>,
    ) -> Result<(), PortError> {
        // Distinct keys: `BatchGetItem` refuses a key twice.
        let keys: Vec<Item> = entry
            .terms
            .iter()
            .map(|term| search_pk(&entry.account_id, term))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|pk| key(pk, &entry.user_id))
            .collect();
        let stored: HashMap<String, Item> = self
            .table
            .batch_get_eventually(keys.clone())
            .await?
            .into_iter()
            .filter_map(|item| Some((string(&item, "pk")?.to_owned(), item)))
            .collect();
        let items = keys.into_iter().filter_map(|mut item| {
            let pk = string(&item, "pk").unwrap_or_default();
            if stored
                .get(pk)
                .is_some_and(|found| search_item_current(found, entry, retain_until))
            {
                return None;
            }
            item.insert("conversationId".to_owned(), s(&entry.conversation_id));
            item.insert("at".to_owned(), n(entry.at));
            Some(with_expiry(item, retain_until))
        });
        self.table.batch_put(items, "search terms").await
    }

    /// The items of these terms for this customer, deleted with `BatchWriteItem`.
    async fn unindex_search(
        &self,
        account_id: &str,
        user_id: &str,
        terms: &[String],
    ) -> Result<(), PortError> {
        let keys = terms
            .iter()
            .map(|term| key(search_pk(account_id, term), user_id));
        self.table.batch_delete(keys, "search terms").await
    }

    /// A Query of each term's partition (at most [`SEARCH_TERM_CAP`] customers each), the
    /// customers in all of them kept, latest first.
    async fn search(
        &self,
        account_id: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<omniline_domain::search::SearchHit>, PortError> {
        use omniline_domain::search::{intersect, keep_latest, ranked, QueryMatches, TermMatches};
        let mut found: Option<QueryMatches> = None;
        for term in terms {
            // Eventually consistent: a search may miss a word said a second ago.
            let query = self
                .table
                .query()
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(search_pk(account_id, term)));
            let items = first_items(query, SEARCH_TERM_CAP, "DynamoDB Query (search term)").await?;
            let mut these = TermMatches::new();
            for item in &items {
                keep_latest(
                    &mut these,
                    get_s(item, "sk")?.to_owned(),
                    get_s(item, "conversationId")?.to_owned(),
                    number::<i64>(item, "at").unwrap_or(0),
                );
            }
            let next = intersect(found, these);
            let none_left = next.is_empty();
            found = Some(next);
            if none_left {
                break;
            }
        }
        Ok(ranked(account_id, found.unwrap_or_default(), limit))
    }

    /// DynamoDB's TTL deletes expired items by itself (within days of `expiresAt`): nothing to do.
    async fn sweep_expired(&self, _now_secs: i64) -> Result<u64, PortError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size DynamoDB bills an item for: attribute names and values (strings and numbers as
    /// their text, closely enough for these).
    fn billed_size(item: &Item) -> usize {
        item.iter()
            .map(|(name, value)| {
                name.len()
                    + match value {
                        AttributeValue::S(text) => text.len(),
                        AttributeValue::N(number) => number.len(),
                        _ => 8,
                    }
            })
            .sum()
    }

    /// An agent-held conversation with the longest preview in Japanese (3 bytes a character):
    /// its `META` item, rewritten by every message, stays within one write unit (1 KB), and
    /// reads back whole.
    #[test]
    fn a_held_conversation_with_its_preview_is_one_write_unit_and_reads_back() {
        let hex = "0123456789abcdef0123456789abcdef";
        let mut c = Conversation::opened(
            hex.into(),
            hex,
            omniline_domain::conversation::SourceType::User,
            &format!("U{hex}"),
            ConversationState::Active,
            1_796_600_000_000,
        );
        c.workstream_id = Some(hex.into());
        c.queue_id = Some(hex.into());
        c.agent_id = Some(hex.into());
        c.priority = 1;
        c.version = 12_345;
        c.unread = 12;
        // Reports' figures, as a held, answered conversation has them.
        c.assigned_at = Some(1_796_600_001_000);
        c.first_response_at = Some(1_796_600_002_000);
        c.messages_in = 1_234;
        c.messages_out = 1_234;
        let text = "注".repeat(omniline_domain::conversation::LAST_MESSAGE_TEXT_CHARS + 20);
        c.last_message = omniline_domain::conversation::LastMessage::of(
            &serde_json::json!({"type": "text", "text": text}),
            "in",
            1_796_600_123_456,
        );
        let item = DynamoConversationStore::meta_item(&c, Some(1_800_000_000)).unwrap();
        let size = billed_size(&item);
        assert!(size <= 1024, "META is {size} bytes: {item:?}");
        assert_eq!(parse_meta(&item).unwrap(), c);
        // An item written when the doc held every field reads the same.
        let mut legacy = item.clone();
        legacy.insert("doc".into(), s(serde_json::to_string(&c).unwrap()));
        assert_eq!(parse_meta(&legacy).unwrap(), c);
    }

    fn reasons(codes: &[&str]) -> Cancellation {
        Cancellation::of_codes(codes)
    }

    fn outcome(codes: &[&str]) -> Option<CommitOutcome> {
        match classify(&reasons(codes)) {
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
        assert_eq!(outcome(&[ccf, ccf]), Some(CommitOutcome::Duplicate));
        assert_eq!(outcome(&["None", ccf]), Some(CommitOutcome::Conflict));
        assert_eq!(
            outcome(&["TransactionConflict", "None"]),
            Some(CommitOutcome::Conflict)
        );
        assert!(matches!(classify(&reasons(&[])), Cancelled::Unknown));
        assert!(matches!(
            classify(&reasons(&["None", "ThrottlingError"])),
            Cancelled::Error(_)
        ));
    }
}
