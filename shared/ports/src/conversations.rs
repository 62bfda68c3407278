//! Conversations, customers, transcripts and processed events.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::conversation::{
    CommitOutcome, Conversation, Customer, EventCommit, TranscriptEntry,
};
use omniline_domain::outbound::OutboundMessage;

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
    /// The outbox committed with (account, webhookEventId) ([`EventCommit::outbox`]), when the
    /// event is recorded (as [`ConversationStore::event_recorded`] at `now_secs`): `None` when it
    /// is not; an empty outbox for a record written before outboxes were stored.
    async fn recorded_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<OutboundMessage>>, PortError>;
    /// [`ConversationStore::recorded_outbox`] for an event delivered again: the store first
    /// completes (idempotently) what the event's commit writes after its atomic part, so that a
    /// worker that died in between loses nothing (DynamoDB: the LINE message index and the
    /// agents' notifications). A store whose commit is all one transaction has nothing to
    /// complete: the default.
    async fn redelivered_outbox(
        &self,
        account_id: &str,
        event_id: &str,
        now_secs: i64,
    ) -> Result<Option<Vec<OutboundMessage>>, PortError> {
        self.recorded_outbox(account_id, event_id, now_secs).await
    }
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
    /// Writes the event's deduplication record and everything in `commit`, all or nothing; a
    /// store may write derived items (an index by LINE message id, the agents' notifications)
    /// right after, before it returns `Committed`, recording them with the event so that
    /// [`ConversationStore::redelivered_outbox`] (and a `Duplicate` commit) completes them.
    async fn commit(&self, commit: &EventCommit) -> Result<CommitOutcome, PortError>;
    /// [`ConversationStore::commit`] of a commit whose conversation is given to `agent_id` on a
    /// slot claimed with [`crate::AgentStore::try_assign`]: it goes through only if that
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
    /// [`crate::AgentStore::release`]) unless the stored conversation holds that agent's slot
    /// ([`Conversation::slot_holder`]: open with it, offered to it, or its wrap-up pending),
    /// in one step atomic with respect to
    /// [`ConversationStore::commit_assignment`]: for undoing a claim whose commit failed. Returns
    /// whether a slot was given back (`false`: kept by the stored conversation, or not held).
    async fn release_unless_assigned(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<bool, PortError>;
    /// A conversation's transcript ordered by event timestamp, then event id.
    async fn transcript(&self, conversation_id: &str) -> Result<Vec<TranscriptEntry>, PortError>;
    /// The last `limit` entries of the transcript, newest first (the reverse of
    /// [`ConversationStore::transcript`]'s order), reading no more than those: what a
    /// notification shows of a conversation costs the same however long it is.
    async fn latest_transcript(
        &self,
        conversation_id: &str,
        limit: usize,
    ) -> Result<Vec<TranscriptEntry>, PortError>;
    /// Conversations matching `filter`, most recent activity (`lastActivityAt`) first, at most
    /// `filter.limit` (see [`omniline_domain::conversation::ConversationFilter::matches`]).
    async fn list_conversations(
        &self,
        filter: &omniline_domain::conversation::ConversationFilter,
    ) -> Result<Vec<Conversation>, PortError>;
    /// How many conversations of `queue_id` are in `state` (`Waiting` or `Active`: the open
    /// working set of a queue, not its history), counting at most `cap`: what an agent choosing
    /// where to transfer sees. Reads keys only (an index), never the conversations.
    async fn count_in_queue(
        &self,
        queue_id: &str,
        state: omniline_domain::conversation::ConversationState,
        cap: usize,
    ) -> Result<usize, PortError>;
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
    /// One page of erasing everything stored for the account: conversations (with transcripts,
    /// pointers and message index), customers and processed-event records. Other accounts are
    /// untouched. `cursor` is where the previous page stopped (`None`: the start); the page
    /// reads at most about `page_size` items of the store and erases the account's among them.
    /// Called page after page until [`PurgePage::next`] is `None`, everything of the account
    /// that existed at the start is gone. A page is re-runnable: a page interrupted (an error)
    /// is run again from the same cursor, and a purge run again from the start finds what is
    /// left. For a paged background job only: an adapter may read its whole storage across the
    /// pages (a DynamoDB Scan), never in a request.
    async fn purge_account_page(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<PurgePage<PurgeCounts>, PortError>;
    /// Deletes what retention has expired (`retain_until` at or before `now_secs`). The embedded
    /// database does it here; DynamoDB's TTL does it by itself (the adapter returns 0).
    async fn sweep_expired(&self, now_secs: i64) -> Result<u64, PortError>;
    /// The conversations of `account_id` opened on the UTC day that starts at `day_start`
    /// (epoch ms, a multiple of 86,400,000), at most `limit`, in no particular order: what a
    /// report reads (an index by account and day, then the conversations by key; never a
    /// transcript).
    async fn conversations_opened_on(
        &self,
        account_id: &str,
        day_start: i64,
        limit: usize,
    ) -> Result<Vec<Conversation>, PortError>;
    /// Adds a customer's search terms to the account's search index (idempotent: indexing the
    /// same entry again changes nothing but its conversation and time, the latest kept), kept
    /// until `retain_until` (epoch seconds; `None`: until erased).
    async fn index_search(
        &self,
        entry: &omniline_domain::search::SearchEntry,
        retain_until: Option<i64>,
    ) -> Result<(), PortError>;
    /// Takes `terms` out of a customer's entries in the account's search index, whichever of
    /// their conversations they were indexed with (a tag removed; an erasure: every term they
    /// gave it). A word they also said stays out too: what they took back is not found.
    async fn unindex_search(
        &self,
        account_id: &str,
        user_id: &str,
        terms: &[String],
    ) -> Result<(), PortError>;
    /// The customers of `account_id` whose indexed terms include every one of `terms` (at
    /// least one), latest first, at most `limit`. Reads the index by key, one term at a time:
    /// its cost follows the matching customers, not the table.
    async fn search(
        &self,
        account_id: &str,
        terms: &[String],
        limit: usize,
    ) -> Result<Vec<omniline_domain::search::SearchHit>, PortError>;
}

/// One page of an account purge ([`ConversationStore::purge_account_page`],
/// [`crate::DeliveryStore::purge_account_page`]): what it erased, and where the next page starts
/// (an opaque cursor, to be given back as it is; `None`: the purge is complete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgePage<T> {
    pub erased: T,
    pub next: Option<String>,
}

/// What [`ConversationStore::purge_account_page`] erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeCounts {
    pub conversations: u64,
    pub customers: u64,
}
