//! Ports: what the functions need from the outside world, as small traits. Each has an AWS adapter
//! (`adapters::aws`) and an embedded one (`adapters::embedded`); handlers hold `Arc<dyn Port>`.

use crate::conversation::{CommitOutcome, Conversation, Customer, EventCommit, TranscriptEntry};
use crate::domain::{Account, WebhookCounts, WebhookStats};
use crate::line::envelope::QueueMessage;
use crate::secret::SecretString;
use async_trait::async_trait;

/// A store or queue failed: the caller answers 5xx / retries. The text never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{failed} of {total} messages were not queued: {reason}")]
    PartialBatch {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("already exists: {0}")]
    Conflict(String),
}

/// A FIFO queue of events (inbound: webhook → router).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Queues every message, in order, or fails. A partial failure is an error: the caller
    /// answers 5xx and LINE redelivers; deduplication ids make the resend harmless.
    async fn send(&self, messages: &[QueueMessage]) -> Result<(), PortError>;
}

/// Connected LINE accounts and their webhook counters.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a new account; `Conflict` if the id exists.
    async fn create(&self, account: &Account) -> Result<(), PortError>;
    async fn get(&self, id: &str) -> Result<Option<Account>, PortError>;
    /// Every account, ordered by creation time.
    async fn list(&self) -> Result<Vec<Account>, PortError>;
    /// Replaces an existing account; `false` if there is none.
    async fn update(&self, account: &Account) -> Result<bool, PortError>;
    /// Removes the account and its counters; `false` if there was none.
    async fn delete(&self, id: &str) -> Result<bool, PortError>;
    /// Adds one request's counts, atomically.
    async fn record_webhook(
        &self,
        id: &str,
        counts: WebhookCounts,
        at_millis: i64,
    ) -> Result<(), PortError>;
    async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, PortError>;
}

/// Named secrets (AWS Secrets Manager, or a table of the embedded database).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, PortError>;
    /// Creates or replaces.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), PortError>;
    /// Deletes at once (no recovery window); deleting a missing secret is not an error.
    async fn delete(&self, name: &str) -> Result<(), PortError>;
}

/// Conversations, customers, the transcript and the record of processed events.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// Whether (account, webhookEventId) has been committed and its deduplication record has not
    /// expired at `now_secs` (epoch seconds, the caller's clock: the same clock that set the
    /// record's expiry, never the store's own).
    async fn event_recorded(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<bool, PortError>;
    /// The open (waiting or active) conversation of a source, if any.
    async fn open_conversation(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Option<Conversation>, PortError>;
    async fn conversation(&self, conversation_id: &str) -> Result<Option<Conversation>, PortError>;
    /// Every conversation that is not closed (for the auto-close schedule).
    async fn open_conversations(&self) -> Result<Vec<Conversation>, PortError>;
    async fn customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Customer>, PortError>;
    /// Writes the event's deduplication record and everything in `commit`, all or nothing.
    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError>;
    /// [`ConversationStore::commit`] of a commit whose conversation is given to `agent_id` on a
    /// slot claimed with [`crate::agents::AgentStore::try_assign`]: it goes through only if that
    /// agent's slot still holds the conversation, checked in the same transaction as the write;
    /// otherwise nothing is written and the outcome is `Conflict` (re-read and distribute again).
    ///
    /// A slot can be shared by two assignments in flight (the second finds it "already held"):
    /// with [`ConversationStore::release_unless_assigned`] for giving it back, whichever of the
    /// commit and the release comes second sees the other, so a conversation is never stored with
    /// an agent whose slot is gone. A commit without a conversation is an error. Adapters read the
    /// agent store's slots (the same database, or the agents' DynamoDB table).
    async fn commit_assignment(
        &self,
        commit: &EventCommit,
        agent_id: &str,
    ) -> Result<CommitOutcome, PortError>;
    /// Gives back `agent_id`'s slot for the conversation (as
    /// [`crate::agents::AgentStore::release`]) unless the stored conversation is open (waiting or
    /// active) with that agent, in one step atomic with respect to
    /// [`ConversationStore::commit_assignment`]: for undoing a claim whose commit failed. Returns
    /// whether a slot was given back (`false`: kept by the stored conversation, or not held).
    async fn release_unless_assigned(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<bool, PortError>;
    /// A conversation's transcript ordered by event timestamp, then event id.
    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError>;
    /// Conversations matching `filter`, most recent activity (`lastActivityAt`) first, at most
    /// `filter.limit` (see [`crate::conversation::ConversationFilter::matches`]).
    async fn list_conversations(
        &self,
        filter: &crate::conversation::ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError>;
    /// Every conversation (open or closed) of one source (a 1:1 user, a group, a room), oldest
    /// first.
    async fn conversations_of_source(
        &self,
        account_id: &str,
        source_id: &str,
    ) -> Result<Vec<Conversation>, PortError>;
    /// Erases one conversation: the record, its open pointer, its transcript and the LINE message
    /// index entries pointing at it. `false` if there was no such conversation.
    async fn delete_conversation(&self, conversation_id: &str) -> Result<bool, PortError>;
    /// Erases a customer's profile (not their conversations: see `delete_conversation`).
    /// `false` if there was none.
    async fn delete_customer(&self, account_id: &str, user_id: &str) -> Result<bool, PortError>;
    /// Erases everything stored for the account: conversations (with transcripts, pointers and
    /// message index), customers and processed-event records. Other accounts are untouched.
    async fn purge_account(&self, account_id: &str) -> Result<PurgeCounts, PortError>;
    /// Deletes what retention has expired (`retain_until` at or before `now_secs`). The embedded
    /// database does it here; DynamoDB's TTL does it by itself (the adapter returns 0).
    async fn sweep_expired(&self, now_secs: i64) -> Result<u64, PortError>;
}

/// What [`ConversationStore::purge_account`] erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeCounts {
    pub conversations: u64,
    pub customers: u64,
}

/// Workstreams: how each account's conversations are classified and distributed. One workstream
/// per account for now (the admin API edits it, issue 4/8).
#[async_trait]
pub trait WorkstreamStore: Send + Sync {
    async fn workstream_for_account(
        &self,
        account_id: &str,
    ) -> Result<Option<crate::workstream::Workstream>, PortError>;
    /// Creates or replaces the account's workstream, unconditionally (tests and seeding; the
    /// admin API uses [`WorkstreamStore::save_workstream`]).
    async fn put_workstream(
        &self,
        workstream: &crate::workstream::Workstream,
    ) -> Result<(), PortError>;
    /// The workstream with this id.
    async fn workstream(
        &self,
        id: &str,
    ) -> Result<Option<crate::workstream::Workstream>, PortError>;
    /// Every workstream, ordered by id.
    async fn list_workstreams(&self) -> Result<Vec<crate::workstream::Workstream>, PortError>;
    /// Optimistic write. `expected_version: None` creates: `Conflict` (naming the existing
    /// workstream's id) when the account already has a workstream, or the id is taken.
    /// `Some(v)` replaces the workstream stored at version `v` (the caller sets
    /// `workstream.version` to `v + 1`); `false` when it changed meanwhile or is gone. The account
    /// of a stored workstream never changes.
    async fn save_workstream(
        &self,
        workstream: &crate::workstream::Workstream,
        expected_version: Option<u64>,
    ) -> Result<bool, PortError>;
    /// Removes the workstream (the account then has none); `false` if there was none.
    async fn delete_workstream(&self, id: &str) -> Result<bool, PortError>;
}

/// Delivery records of outbound messages (see [`crate::delivery`]).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Creates `delivery` unless a record with its id exists; returns the stored record either
    /// way (so a retry finds the retry key chosen the first time).
    async fn begin(
        &self,
        delivery: &crate::delivery::Delivery,
    ) -> Result<crate::delivery::Delivery, PortError>;
    /// Replaces the record whose version is `delivery.version - 1`; `false` if it changed
    /// meanwhile (another worker) or does not exist.
    async fn update(&self, delivery: &crate::delivery::Delivery) -> Result<bool, PortError>;
    async fn delivery(&self, id: &str) -> Result<Option<crate::delivery::Delivery>, PortError>;
    /// A conversation's deliveries, oldest first.
    async fn deliveries_for_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<crate::delivery::Delivery>, PortError>;
    /// Erases a conversation's delivery records (privacy erasure and purge); returns how many.
    async fn delete_for_conversation(&self, conversation_id: &str) -> Result<u64, PortError>;
    /// Erases every delivery record of the account (account purge); returns how many.
    async fn purge_account(&self, account_id: &str) -> Result<u64, PortError>;
}

/// One stored configuration document (queues, agent accounts, settings …): JSON text and its
/// version, which every successful write increments (1 on creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDoc {
    pub id: String,
    pub doc: String,
    pub version: u64,
}

/// What a [`ConfigStore::put_doc`] expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No document with this id (a create).
    Absent,
    /// The document at exactly this version (an optimistic update).
    Version(u64),
}

/// Small collections of JSON documents keyed by (`kind`, `id`), with optimistic concurrency: the
/// admin API's queues, agent accounts and settings. `kind` is a short name such as `queue`.
/// Collections are admin-sized (thousands, not millions): listing reads a whole kind.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<ConfigDoc>, PortError>;
    /// Every document of `kind`, ordered by id.
    async fn list_docs(&self, kind: &str) -> Result<Vec<ConfigDoc>, PortError>;
    /// Writes `doc` if the stored state is what `expect` says; returns the new version
    /// (`Absent` → 1, `Version(v)` → v + 1), or `None` when the expectation failed (the document
    /// exists / changed meanwhile / is gone).
    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: &str,
        expect: Expect,
    ) -> Result<Option<u64>, PortError>;
    /// Removes the document; `false` if there was none.
    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError>;
}
