//! The long poll of an agent's new assignments and new customer messages, each with the
//! customer's details, queue, workstream and last message.
//!
//! The position of a poll is the (created_at, id) of the last notification read; the store
//! returns those strictly after it in that order. A notification is only handed out once it is
//! [`SETTLE_MS`] old, so one written concurrently with an earlier timestamp has landed before the
//! position moves past it: nothing is missed between polls.

use super::conversations::{CustomerView, QueueRef};
use super::{may_see, AgentError, AgentService};
use omniline_domain::agents::{Agent, AgentNotification};
use omniline_domain::conversation::Conversation;
use omniline_domain::workstream::Workstream;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait of a poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 20;
/// Age a notification must have before it is handed out.
pub const SETTLE_MS: i64 = 300;
/// How often the store is read while waiting.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Most notifications per answer.
const BATCH: usize = 50;
/// How many of a conversation's latest transcript entries a notification looks through for its
/// last message (other events — follows, postbacks, read receipts — are rare between messages):
/// a notification reads that much, however long the conversation.
const LAST_MESSAGE_WITHIN: usize = 20;

/// The last message of a conversation (the customer's or an agent's, not retracted).
#[derive(Debug, Clone)]
pub struct LastMessage {
    pub at: i64,
    /// An agent's message (else the customer's).
    pub outgoing: bool,
    /// The LINE message object (an agent's first one).
    pub message: Value,
}

/// A notification as handed out.
#[derive(Debug, Clone)]
pub struct NotificationView {
    pub notification: AgentNotification,
    /// `None` when the conversation is gone.
    pub conversation: Option<Conversation>,
    /// The customer as stored now (`None`: not stored; the notification has its details).
    pub customer: Option<CustomerView>,
    pub queue: QueueRef,
    pub workstream: Option<Workstream>,
    pub last_message: Option<LastMessage>,
}

/// What a poll found.
#[derive(Debug, Clone)]
pub struct NotificationBatch {
    /// The notifications the agent may (still) see.
    pub items: Vec<NotificationView>,
    /// The last notification read, handed out or not (the agent no longer sees its
    /// conversation): the next poll goes on after it. `None` when nothing new came.
    pub last: Option<AgentNotification>,
}

impl AgentService {
    /// The notification as handed out, or `None` when `agent` may no longer see its conversation
    /// (removed from the queue, transferred away, erased): access is checked when a notification
    /// is handed out, not only when it was written.
    async fn notification_view(
        &self,
        agent: &Agent,
        n: &AgentNotification,
    ) -> Result<Option<NotificationView>, AgentError> {
        let deps = self.deps();
        let conversation = deps.conversations.conversation(&n.conversation_id).await?;
        if !conversation.as_ref().is_some_and(|c| may_see(agent, c)) {
            return Ok(None);
        }
        let customer = match &n.customer_user_id {
            Some(user) => deps.conversations.customer(&n.account_id, user).await?,
            None => None,
        };
        let customer = match customer {
            Some(customer) => Some(self.customer_view(customer).await?),
            None => None,
        };
        let last_message = match &conversation {
            Some(c) => deps
                .conversations
                .latest_transcript(&c.id, LAST_MESSAGE_WITHIN)
                .await?
                .iter()
                .find(|e| {
                    !e.retracted && (e.event_type == "message" || e.event_type == "agentMessage")
                })
                .map(|e| {
                    let outgoing = e.event_type == "agentMessage";
                    let message = if outgoing {
                        e.event["messages"][0].clone()
                    } else {
                        e.event["message"].clone()
                    };
                    LastMessage {
                        at: e.timestamp,
                        outgoing,
                        message,
                    }
                }),
            None => None,
        };
        let workstream = deps
            .workstreams
            .workstream_for_account(&n.account_id)
            .await?;
        let queue = self.queue_ref(&n.queue_id).await?;
        Ok(Some(NotificationView {
            notification: n.clone(),
            conversation,
            customer,
            queue,
            workstream,
            last_message,
        }))
    }

    /// The agent's notifications after `after` (the (created_at, id) of the last one read),
    /// waiting up to `wait` for one to come (measured on the monotonic clock; the notifications'
    /// ages on the injected one). Answers as soon as there are some, or empty at the deadline.
    pub async fn poll_notifications(
        &self,
        agent: &Agent,
        after: Option<(i64, &str)>,
        wait: Duration,
    ) -> Result<NotificationBatch, AgentError> {
        let deadline = Instant::now() + wait;
        let agents = &self.deps().agents;
        loop {
            let settled_before = self.now() - SETTLE_MS;
            let fresh: Vec<AgentNotification> = agents
                .notifications_after(&agent.id, after, BATCH)
                .await?
                .into_iter()
                .take_while(|n| n.created_at <= settled_before)
                .collect();
            if !fresh.is_empty() || Instant::now() >= deadline {
                let mut items = Vec::with_capacity(fresh.len());
                if !fresh.is_empty() {
                    // The agent as stored now (an admin may have changed its queues mid-poll).
                    let now_agent = agents
                        .agent(&agent.id)
                        .await?
                        .ok_or(AgentError::NotFound("agent"))?;
                    for n in &fresh {
                        items.extend(self.notification_view(&now_agent, n).await?);
                    }
                }
                return Ok(NotificationBatch {
                    items,
                    last: fresh.into_iter().last(),
                });
            }
            tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
    }
}
