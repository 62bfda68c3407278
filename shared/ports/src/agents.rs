//! Agents, their queue membership, active conversations and notifications.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};

/// Agents, their queue membership, their active conversations and their notifications.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Creates or replaces the agent's profile (name, queues, skills, capacity) and keeps the
    /// queue membership in sync: an agent removed from a queue leaves that queue's listing.
    /// The status, active conversations and `last_assigned_at` of an existing agent are kept
    /// (they belong to [`AgentStore::set_status`], [`AgentStore::try_assign`] and
    /// [`AgentStore::release`]): an admin's edit and the agent's presence never undo each other.
    /// A new agent starts with the given status, none active and the given `last_assigned_at`.
    async fn put_agent(&self, agent: &Agent) -> Result<(), PortError>;

    /// Sets the status of an existing agent (its presence) and records that it was heard from
    /// at `seen_at` (epoch ms: [`Agent::last_seen_at`]), nothing else; `false` if there is no
    /// such agent (nothing is created).
    async fn set_status(
        &self,
        agent_id: &str,
        status: AgentStatus,
        seen_at: i64,
    ) -> Result<bool, PortError>;

    /// Sets the agent `Away` if, at the moment of the write, it is `Available` or `Busy` and was
    /// last heard from before `seen_before` (epoch ms); an agent never heard from
    /// ([`Agent::last_seen_at`] `None`) is left alone. Atomic with [`AgentStore::set_status`]:
    /// a heartbeat that lands first keeps the agent's presence. `true` if it was set away.
    async fn expire_presence(&self, agent_id: &str, seen_before: i64) -> Result<bool, PortError>;

    async fn agent(&self, id: &str) -> Result<Option<Agent>, PortError>;

    /// Every agent, ordered by id.
    async fn list_agents(&self) -> Result<Vec<Agent>, PortError>;

    /// Removes the agent, its queue memberships, active-conversation records and notifications;
    /// `false` if there was no such agent.
    async fn delete_agent(&self, id: &str) -> Result<bool, PortError>;

    /// The agents serving `queue_id`, ordered by id.
    async fn agents_in_queue(&self, queue_id: &str) -> Result<Vec<Agent>, PortError>;

    /// Atomically adds `conversation_id` to the agent's active conversations if the agent is
    /// `Available` and has a free slot, and sets `last_assigned_at`. `true` if the conversation is
    /// the agent's now: also when it already was (then nothing changes, and the slot may be
    /// another assignment's still in flight: see the module documentation). `false` when the
    /// agent is full, not available or unknown. No agent ever exceeds its capacity, however many
    /// routers assign concurrently.
    async fn try_assign(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
    ) -> Result<bool, PortError>;

    /// [`AgentStore::try_assign`] for a conversation the agent opens itself (writing first):
    /// whatever its presence (a busy agent may still write to a customer), never over its
    /// capacity. `true` if the conversation is the agent's now (also when it already was).
    async fn claim_own(
        &self,
        agent_id: &str,
        conversation_id: &str,
        at_millis: i64,
    ) -> Result<bool, PortError>;

    /// Records how an offer to the agent ended: `missed` (it let the offer expire) counts one
    /// more in a row, and the [`omniline_domain::agents::MISSED_OFFERS_AWAY`]th in a row sets
    /// an available or busy agent away and starts the count again (then `true`); an accepted
    /// offer (`missed` false) starts the count again. Unknown agent: nothing, `false`.
    async fn record_offer(&self, agent_id: &str, missed: bool) -> Result<bool, PortError>;

    /// Removes `conversation_id` from the agent's active conversations, if it is there.
    async fn release(&self, agent_id: &str, conversation_id: &str) -> Result<(), PortError>;

    /// Stores a notification; idempotent by id (a second write with the same id changes nothing).
    /// `expires_at` (epoch seconds): when retention deletes it with the conversation it is
    /// about (a customer's name and words are in it); `None` keeps it.
    async fn notify(
        &self,
        notification: &AgentNotification,
        expires_at: Option<i64>,
    ) -> Result<(), PortError>;

    /// An agent's notifications, ordered by `created_at` (then id).
    async fn notifications(&self, agent_id: &str) -> Result<Vec<AgentNotification>, PortError>;

    /// Deletes every notification about `conversation_id`, whichever agent got it (they carry the
    /// customer's name and picture): for erasing a customer. Returns how many were deleted.
    async fn delete_conversation_notifications(
        &self,
        conversation_id: &str,
    ) -> Result<u64, PortError>;

    /// An agent's notifications strictly after `after` = (`created_at`, id) in that order (all
    /// when `None`), oldest first, at most `limit`.
    async fn notifications_after(
        &self,
        agent_id: &str,
        after: Option<(i64, &str)>,
        limit: usize,
    ) -> Result<Vec<AgentNotification>, PortError>;
}
