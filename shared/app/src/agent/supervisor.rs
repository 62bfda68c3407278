//! What a supervisor sees and does (the `supervisor` or `admin` group of an OpenID Connect
//! sign-in, or the admin token): the queues and the agents at a glance, any conversation read
//! only, and a conversation given to another agent whoever holds it.

use super::conversations::{QueueRef, TimelinePage};
use super::{AgentError, AgentService};
use omniline_domain::agents::Agent;
use omniline_domain::conversation::{Conversation, ConversationFilter, ConversationState};
use omniline_domain::queues::QUEUE_KIND;

/// The most waiting conversations of one queue the overview reads (their oldest wait is among
/// them: the index lists them by opening).
pub const OVERVIEW_WAITING_CAP: usize = 500;
/// The most active conversations of one queue the overview counts.
pub const OVERVIEW_ACTIVE_CAP: usize = 1_000;

/// One queue at a glance.
#[derive(Debug, Clone)]
pub struct QueueOverview {
    pub queue: QueueRef,
    pub waiting: usize,
    /// Since when the longest-waiting conversation waits (epoch ms), if one does.
    pub oldest_waiting_since: Option<i64>,
    pub active: usize,
}

/// The queues and the agents at a glance.
#[derive(Debug, Clone)]
pub struct Overview {
    pub queues: Vec<QueueOverview>,
    pub agents: Vec<Agent>,
}

impl AgentService {
    /// Every queue (waiting, the oldest wait, in progress) and every agent (presence, load,
    /// conversations): one Query of the queues and of the agents, and per queue one Query of
    /// its waiting conversations and one count of its active ones.
    pub async fn supervisor_overview(&self) -> Result<Overview, AgentError> {
        let deps = self.deps();
        let mut queues = Vec::new();
        for doc in deps.config.list_docs(QUEUE_KIND).await? {
            let queue = self.queue_ref(&doc.id).await?;
            let filter = ConversationFilter {
                state: Some(ConversationState::Waiting),
                queue_ids: vec![doc.id.clone()],
                agent_id: None,
                limit: OVERVIEW_WAITING_CAP,
                after: None,
            };
            let waiting: Vec<Conversation> = deps
                .conversations
                .list_conversations(&filter)
                .await?
                .into_iter()
                .filter(|c| c.queue_id.as_deref() == Some(doc.id.as_str()))
                .collect();
            let active = deps
                .conversations
                .count_in_queue(&doc.id, ConversationState::Active, OVERVIEW_ACTIVE_CAP)
                .await?;
            queues.push(QueueOverview {
                queue,
                waiting: waiting.len(),
                oldest_waiting_since: waiting.iter().filter_map(Conversation::waiting_since).min(),
                active,
            });
        }
        queues.sort_by(|a, b| {
            a.queue
                .name
                .cmp(&b.queue.name)
                .then(a.queue.id.cmp(&b.queue.id))
        });
        let mut agents = deps.agents.list_agents().await?;
        agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(Overview { queues, agents })
    }

    /// Any conversation and a page of its timeline, for a supervisor to follow (read only).
    pub async fn monitor_conversation(
        &self,
        id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Conversation, TimelinePage), AgentError> {
        let c = self
            .deps()
            .conversations
            .conversation(id)
            .await?
            .ok_or(AgentError::NotFound("conversation"))?;
        let page = self.timeline_of(&c, before, limit).await?;
        Ok((c, page))
    }

    /// A supervisor (`by`: their email, or "admin token") gives an open conversation to
    /// `agent_id`, whoever holds it: the agent must exist (`Unprocessable`), the conversation
    /// be open (`Conflict`), and the agent gets its slot and a notification.
    pub async fn reassign(
        &self,
        by: &str,
        id: &str,
        agent_id: &str,
    ) -> Result<Conversation, AgentError> {
        if self.deps().agents.agent(agent_id).await?.is_none() {
            return Err(AgentError::unprocessable(
                "agentId",
                format!("there is no agent {agent_id:?}"),
            ));
        }
        let moved = self.router.reassign(id, by, agent_id).await?;
        // The audit trail (`GET /admin/v1/audit`), best effort.
        let record = omniline_domain::audit::AuditRecord {
            at: self.now(),
            actor: by.to_owned(),
            via: "supervisor".into(),
            method: "POST".into(),
            path: format!("/agent/v1/conversations/{id}/assign"),
            status: 200,
        };
        crate::audit::record(self.deps().config.as_ref(), &record).await;
        Ok(moved)
    }
}
