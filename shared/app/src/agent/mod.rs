//! The agent API's use cases (`/agent/v1/*` and the customer's account-link page): who the
//! agent is, presence, what it sees of conversations (list, detail, transcript, notifications),
//! what it does in them (reply, upload, typing, read, pick, transfer, close), contacts and
//! account links. The conversation operations themselves are [`RouterService`]'s
//! ([`crate::router::agent_ops`]); [`AgentService`] adds the agent's view: visibility (an agent
//! sees the conversations of its queues and those it holds), the reads that make up what the API
//! returns, and the contact operations.
//!
//! The HTTP function (`agent`) parses requests into the typed inputs of these methods and turns
//! their results and [`AgentError`]s into responses; nothing here knows HTTP or JSON field names.
//!
//! - [`conversations`]: list, detail, transcript, replies and media, conversation operations;
//! - [`contacts`]: contacts, links of customers to contacts, the account-link page;
//! - [`notifications`]: the long poll of new assignments and messages.

pub mod contacts;
pub mod conversations;
mod error;
pub mod notifications;
pub mod search;
pub mod supervisor;
pub mod tags;

pub use error::{AgentError, LinkPageError};

use crate::outbound::MediaLinks;
use crate::router::{RouterDeps, RouterService};
use omniline_domain::agents::{
    parse_agent_token, token_matches, Agent, AgentAccount, AgentEmail, AgentStatus,
    AGENT_ACCOUNT_KIND, AGENT_EMAIL_KIND,
};
use omniline_domain::conversation::Conversation;
use omniline_domain::identity::{normalize_email, Identity};
use omniline_domain::media_links::{link_expiry, media_link, DEFAULT_LINK_LIFETIME};
use omniline_ports::DeliveryStore;
use std::sync::Arc;

/// What agents see and do, on the router's stores and use cases.
pub struct AgentService {
    router: Arc<RouterService>,
    deliveries: Arc<dyn DeliveryStore>,
    media: Option<MediaLinks>,
}

/// A conversation the agent may see (it holds it, or it is in one of its queues): only
/// [`AgentService::visible_conversation`] makes one.
#[derive(Debug, Clone)]
pub struct VisibleConversation(Conversation);

impl VisibleConversation {
    pub fn conversation(&self) -> &Conversation {
        &self.0
    }
}

/// Whether the agent may see the conversation: it holds it, or it is in one of its queues.
pub fn may_see(agent: &Agent, c: &Conversation) -> bool {
    c.agent_id.as_deref() == Some(agent.id.as_str())
        || c.queue_id
            .as_ref()
            .is_some_and(|q| agent.queues.contains(q))
}

impl AgentService {
    /// `media`: how stored media are linked (transcript attachments, agent uploads); without it
    /// the stack neither signs links nor takes uploads.
    pub fn new(
        router: Arc<RouterService>,
        deliveries: Arc<dyn DeliveryStore>,
        media: Option<MediaLinks>,
    ) -> Self {
        Self {
            router,
            deliveries,
            media,
        }
    }

    fn deps(&self) -> &RouterDeps {
        self.router.deps()
    }

    /// Now, epoch ms, from the injected clock.
    fn now(&self) -> i64 {
        (self.deps().clock)()
    }

    /// The agent a bearer token belongs to, `None` when the token is malformed, unknown or does
    /// not match. With media links, the signing key is read here, once, so the reads that sign
    /// links later need no I/O.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Agent>, AgentError> {
        let Some(agent_id) = parse_agent_token(token) else {
            return Ok(None);
        };
        let deps = self.deps();
        let account = deps
            .config
            .get_doc(AGENT_ACCOUNT_KIND, agent_id)
            .await?
            .and_then(|doc| serde_json::from_str::<AgentAccount>(&doc.doc).ok());
        if !account.is_some_and(|a| token_matches(token, &a.token_hash)) {
            return Ok(None);
        }
        self.signed_in(agent_id).await
    }

    /// The agent whose email address a verified sign-in names (the email index, by key:
    /// [`AGENT_EMAIL_KIND`]), `None` when no agent has it. The admin record must still carry
    /// the address: an index entry left behind by a change of address signs no one in.
    pub async fn agent_by_email(&self, identity: &Identity) -> Result<Option<Agent>, AgentError> {
        let deps = self.deps();
        let Some(entry) = deps
            .config
            .get_doc(AGENT_EMAIL_KIND, &identity.email)
            .await?
            .and_then(|doc| serde_json::from_str::<AgentEmail>(&doc.doc).ok())
        else {
            return Ok(None);
        };
        let account = deps
            .config
            .get_doc(AGENT_ACCOUNT_KIND, &entry.agent_id)
            .await?
            .and_then(|doc| serde_json::from_str::<AgentAccount>(&doc.doc).ok());
        if account.is_none_or(|a| normalize_email(&a.email) != identity.email) {
            return Ok(None);
        }
        self.signed_in(&entry.agent_id).await
    }

    /// The agent `agent_id`, once authenticated. With media links, the signing key is read
    /// here, once, so the reads that sign links later need no I/O.
    async fn signed_in(&self, agent_id: &str) -> Result<Option<Agent>, AgentError> {
        let Some(agent) = self.deps().agents.agent(agent_id).await? else {
            return Ok(None);
        };
        if let Some(media) = &self.media {
            media.signing_secret.get().await?;
        }
        Ok(Some(agent))
    }

    /// Sets the agent's status (the status alone: an admin's concurrent change of its queues is
    /// never undone), records that the agent was heard from now (the heartbeat the presence
    /// timeout reads: the console repeats this call) and returns the agent as stored now.
    /// Becoming available assigns waiting conversations of push-mode queues, up to capacity.
    pub async fn set_presence(
        &self,
        agent: &Agent,
        status: AgentStatus,
    ) -> Result<Agent, AgentError> {
        let deps = self.deps();
        if !deps
            .agents
            .set_status(&agent.id, status, self.now())
            .await?
        {
            return Err(AgentError::NotFound("agent"));
        }
        let mut updated = agent.clone();
        updated.status = status;
        // A heartbeat that changes nothing distributes nothing: the schedule does within a
        // minute, and a console's keep-alive stays one write.
        if status == AgentStatus::Available && agent.status != AgentStatus::Available {
            if let Err(e) = self.router.distribute_waiting().await {
                // The presence change stands; the schedule distributes again within a minute.
                tracing::warn!(agent_id = %agent.id, error = %e, "waiting conversations not distributed");
            }
        }
        let current = deps.agents.agent(&agent.id).await?.unwrap_or(updated);
        if agent.status != status {
            tracing::info!(agent_id = %agent.id, status = status.as_str(), "presence changed");
        }
        Ok(current)
    }

    /// The conversation `id`: `NotFound` when unknown, `Forbidden` when the agent may not see it.
    pub async fn visible_conversation(
        &self,
        agent: &Agent,
        id: &str,
    ) -> Result<VisibleConversation, AgentError> {
        let c = self
            .deps()
            .conversations
            .conversation(id)
            .await?
            .ok_or(AgentError::NotFound("conversation"))?;
        if may_see(agent, &c) {
            Ok(VisibleConversation(c))
        } else {
            Err(AgentError::Forbidden(
                "the conversation is neither in one of your queues nor assigned to you".into(),
            ))
        }
    }

    /// A signed link to a stored object, when the stack signs media (its key read by
    /// [`Self::authenticate`]).
    pub fn media_link(&self, key: &str) -> Option<String> {
        let links = self.media.as_ref()?;
        let expires = link_expiry(self.now() / 1000, DEFAULT_LINK_LIFETIME);
        let secret = links.signing_secret.loaded()?;
        media_link(&links.base_url, key, expires, &secret).ok()
    }
}
