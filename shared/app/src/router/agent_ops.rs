//! What agents do to conversations: pick, transfer, close (with the survey), reply, and ask a
//! customer to link their LINE account to a contact. The agent function and the local stack call
//! these on the same [`RouterService`] the router runs, so every path shares one implementation.
//!
//! The caller authenticates the agent and checks that the agent may see the conversation (queue
//! membership); these methods check the conversation's state. Every change is an
//! [`EventCommit`](omniline_domain::conversation::EventCommit) with a deterministic `event_id`
//! (the deduplication record) and an optimistic
//! [`ConversationWrite::Update`](omniline_domain::conversation::ConversationWrite::Update) at
//! `version + 1`: a concurrent change makes the operation fail with [`AgentOpError::Conflict`]
//! rather than overwrite it. Agent slots are claimed with
//! [`omniline_ports::AgentStore::try_assign`] before the commit, which lands only while the slot
//! holds the conversation ([`omniline_ports::ConversationStore::commit_assignment`]), and given
//! back when the commit does not land unless the stored conversation is the agent's
//! ([`omniline_ports::ConversationStore::release_unless_assigned`]), so no agent ever holds more
//! conversations than its capacity.

use crate::router::process::{self, agent_notification, Outbox};
use crate::router::{RouteError, RouterService, COMMIT_ATTEMPTS};
use omniline_domain::agents::{Agent, NOTIFICATION_ASSIGNED};
use omniline_domain::contacts::{contact_kind, LinkRequest, LINK_REQUEST_KIND};
use omniline_domain::conversation::{
    survey_postback, CommitOutcome, Conversation, ConversationState, LastMessage, PendingWrapUp,
    SourceType, SurveyState, TranscriptEntry, WrapUp, WRAP_UP_PENDING_KIND,
};
use omniline_domain::outbound::{text_message, Origin, OutboundMessage, Sender};
use omniline_domain::workstream::{Survey, Trigger, Workstream};
use omniline_ports::{Expect, PortError};
use serde_json::{json, Value};

/// Why an agent operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AgentOpError {
    /// No such conversation.
    #[error("conversation not found")]
    NotFound,
    /// The conversation's state does not allow it (closed, taken, changed concurrently), or the
    /// agent has no free slot.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An argument is unusable.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The conversation is another agent's.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A store, LINE or the outbound queue failed.
    #[error(transparent)]
    Route(#[from] RouteError),
}

impl From<PortError> for AgentOpError {
    fn from(e: PortError) -> Self {
        AgentOpError::Route(RouteError::Port(e))
    }
}

/// `Ok` when `c` waits on a live offer to `agent`: `Forbidden` when offered to another agent,
/// `Conflict` when no offer is open (expired, answered, never made).
fn offered_to(c: &Conversation, agent: &Agent, now: i64) -> Result<(), AgentOpError> {
    match c.live_offer(now) {
        Some(o) if o.agent_id == agent.id => Ok(()),
        Some(_) => Err(AgentOpError::Forbidden(
            "the conversation is offered to another agent".into(),
        )),
        None => Err(conflict(
            "no offer is open for you: it expired or was answered",
        )),
    }
}

fn conflict(message: impl Into<String>) -> AgentOpError {
    AgentOpError::Conflict(message.into())
}

fn invalid(field: &str, message: impl Into<String>) -> AgentOpError {
    AgentOpError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Where [`RouterService::transfer`] moves a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// Back to waiting in this queue (a push-mode workstream assigns it at once if it can).
    Queue(String),
    /// Straight to this agent (who must be available with a free slot).
    Agent(String),
}

/// Longest idempotency key of [`RouterService::send_agent_message`].
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 200;
/// Longest `sender.name` LINE shows, in UTF-16 code units.
pub const SENDER_NAME_MAX_LEN: usize = 20;
/// The text before the link of a link survey that has no question.
pub const DEFAULT_LINK_SURVEY_TEXT: &str = "Please tell us how we did:";
/// The text before the account-link URL sent to the customer.
pub const ACCOUNT_LINK_TEXT: &str = "Please link your account by opening this link:";

/// `name` cut to [`SENDER_NAME_MAX_LEN`] UTF-16 code units, never inside a character.
fn sender_name(name: &str) -> String {
    let mut out = String::new();
    let mut units = 0;
    for ch in name.trim().chars() {
        units += ch.len_utf16();
        if units > SENDER_NAME_MAX_LEN {
            break;
        }
        out.push(ch);
    }
    out
}

/// The agent shown as the sender of its messages, when the workstream enables it.
fn agent_sender(ws: Option<&Workstream>, agent: &Agent) -> Option<Sender> {
    let identity = ws?.agent_identity.as_ref().filter(|i| i.enabled)?;
    let name = sender_name(&agent.name);
    if name.is_empty() && identity.icon_url.is_none() {
        return None;
    }
    Some(Sender {
        name,
        icon_url: identity.icon_url.clone(),
    })
}

/// Transcript entries read (newest first) to find the reply token an agent's message may use:
/// the latest customer event and the agent messages after it. With more agent messages than
/// this since the customer last wrote, the message is pushed.
pub const REPLY_LOOKBACK_ENTRIES: usize = 20;
/// The transcript's `event_type` of an agent's message.
const AGENT_MESSAGE: &str = "agentMessage";
/// The field of an agent message's transcript event naming the customer event whose reply token
/// it was given.
const REPLY_TO: &str = "replyTo";

/// A reply token an agent's message may use: the latest customer event's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyClaim {
    /// The customer event (`webhookEventId`) whose token it is.
    pub event_id: String,
    pub token: String,
    /// The event's LINE timestamp (epoch ms), never later than the clock reading.
    pub at: i64,
}

/// The reply token an agent's message sent at `now` may use, from the transcript's latest
/// entries (newest first, as [`omniline_ports::ConversationStore::latest_transcript`]): the
/// latest customer event's (the newest entry that is not an agent message) when it has one, it
/// is younger than [`crate::outbound::REPLY_TOKEN_FIRST_USE_MS`] (the outbound function's
/// first-use window) and no agent message after it claimed it (`replyTo`). Whether the router's
/// own messages for that event used it is the caller's to check (the event's recorded outbox).
pub fn reply_claim(latest_first: &[TranscriptEntry], now: i64) -> Option<ReplyClaim> {
    let mut claimed = Vec::new();
    for entry in latest_first {
        // An agent's internal note is not the customer's.
        if entry.event_type == omniline_domain::conversation::NOTE_ENTRY {
            continue;
        }
        if entry.event_type == AGENT_MESSAGE {
            if let Some(event_id) = entry.event.get(REPLY_TO).and_then(Value::as_str) {
                claimed.push(event_id);
            }
            continue;
        }
        // The latest customer event: its token or none.
        if entry.retracted || claimed.contains(&entry.event_id.as_str()) {
            return None;
        }
        let token = entry
            .event
            .get("replyToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())?;
        let at = entry.timestamp.min(now);
        if now - at >= crate::outbound::REPLY_TOKEN_FIRST_USE_MS {
            return None;
        }
        return Some(ReplyClaim {
            event_id: entry.event_id.clone(),
            token: token.to_owned(),
            at,
        });
    }
    None
}

/// `messages` of `agent` for the chat of `c` under `id` (pushed, unless the caller gives it a
/// reply token), shown as sent by the agent when the workstream enables it.
fn agent_push(
    c: &Conversation,
    ws: Option<&Workstream>,
    agent: &Agent,
    id: &str,
    messages: Vec<Value>,
    now: i64,
) -> OutboundMessage {
    OutboundMessage {
        id: id.to_owned(),
        account_id: c.account_id.clone(),
        conversation_id: c.id.clone(),
        to: c.source_id.clone(),
        origin: Origin::Agent,
        trigger: None,
        messages,
        reply_token: None,
        reply_token_received_at: None,
        sender: agent_sender(ws, agent),
        created_at: now,
        agent_id: Some(agent.id.clone()),
    }
}

/// The survey message sent when a conversation closes, and the state recorded with it: a rating
/// question with one quick-reply postback button per score, or a link.
fn survey_message(
    survey: &Survey,
    conversation_id: &str,
    now: i64,
) -> Option<(Value, SurveyState)> {
    /// LINE shows at most 13 quick-reply buttons.
    const MAX_QUICK_REPLY_ITEMS: u8 = 13;
    if !survey.enabled {
        return None;
    }
    let sent = |scale| SurveyState {
        sent_at: now,
        scale,
        score: None,
        answered_at: None,
    };
    if let Some(url) = &survey.url {
        let text = format!(
            "{}\n{url}",
            survey
                .question
                .as_deref()
                .unwrap_or(DEFAULT_LINK_SURVEY_TEXT)
        );
        return Some((text_message(&text), sent(None)));
    }
    let question = survey
        .question
        .as_deref()
        .filter(|q| !q.trim().is_empty())?;
    let scale = survey
        .scale
        .filter(|s| (1..=MAX_QUICK_REPLY_ITEMS).contains(s))?;
    let items: Vec<Value> = (1..=scale)
        .map(|n| {
            json!({
                "type": "action",
                "action": {
                    "type": "postback",
                    "label": n.to_string(),
                    "data": survey_postback(conversation_id, n),
                    "displayText": n.to_string(),
                }
            })
        })
        .collect();
    let message = json!({
        "type": "text",
        "text": question,
        "quickReply": { "items": items },
    });
    Some((message, sent(Some(scale))))
}

impl RouterService {
    fn now(&self) -> i64 {
        (self.deps.clock)()
    }

    async fn load_conversation(&self, conversation_id: &str) -> Result<Conversation, AgentOpError> {
        self.deps
            .conversations
            .conversation(conversation_id)
            .await?
            .ok_or(AgentOpError::NotFound)
    }

    /// Commits `updated` (whose `version` is the stored one + 1) under `event_id`. With
    /// `assigned_to`, the agent whose slot was claimed for it: the commit only lands while that
    /// slot holds the conversation (see [`omniline_ports::ConversationStore::commit_assignment`]).
    async fn commit_conversation(
        &self,
        event_id: &str,
        updated: &Conversation,
        transcript: Option<TranscriptEntry>,
        assigned_to: Option<&str>,
        now: i64,
    ) -> Result<CommitOutcome, AgentOpError> {
        let commit = self
            .update_commit(event_id.to_owned(), updated.clone(), transcript, now)
            .await?;
        let conversations = &self.deps.conversations;
        Ok(match assigned_to {
            Some(agent_id) => conversations.commit_assignment(&commit, agent_id).await?,
            None => conversations.commit(&commit).await?,
        })
    }

    /// Claims a slot of `agent_id` for `updated` (the conversation assigned to that agent), then
    /// commits it on that slot; the claim is undone unless the commit lands. `Conflict` when the
    /// agent has no free slot or is not available.
    async fn claim_and_commit(
        &self,
        event_id: &str,
        updated: &Conversation,
        agent_id: &str,
        now: i64,
    ) -> Result<CommitOutcome, AgentOpError> {
        if !self
            .deps
            .agents
            .try_assign(agent_id, &updated.id, now)
            .await?
        {
            return Err(conflict("agent at capacity or not available"));
        }
        let outcome = self
            .commit_conversation(event_id, updated, None, Some(agent_id), now)
            .await;
        if !matches!(outcome, Ok(CommitOutcome::Committed)) {
            self.undo_claim(agent_id, &updated.id).await;
        }
        outcome
    }

    /// Queues the automated messages of `outbox` (pushed; ids `{id_prefix}:{n}`). After a commit,
    /// a failure is logged: the state change stands.
    async fn queue_after_commit(
        &self,
        c: &Conversation,
        outbox: &Outbox,
        id_prefix: &str,
        now: i64,
    ) {
        let messages = process::scheduled_messages(c, outbox, id_prefix, now);
        if messages.is_empty() {
            return;
        }
        let queued: Vec<_> = messages.iter().map(|m| m.to_queue_message()).collect();
        if let Err(e) = self.deps.outbound.send(&queued).await {
            tracing::error!(conversation_id = %c.id, id_prefix, error = %e, "automated messages not queued");
        }
    }

    /// Tells `agent` that the conversation is theirs, and the customer who will help them.
    async fn announce_assignment(
        &self,
        c: &Conversation,
        agent: &Agent,
        notification_id: String,
        id_prefix: &str,
        now: i64,
    ) {
        let customer = match self.customer_of(c).await {
            Ok(customer) => customer,
            Err(e) => {
                tracing::warn!(conversation_id = %c.id, error = %e, "customer unreadable; announcing without it");
                None
            }
        };
        let notification = agent_notification(
            notification_id,
            NOTIFICATION_ASSIGNED,
            &agent.id,
            c,
            customer.as_ref(),
            now,
        );
        // Kept as long as the conversation it is about (retention).
        let expires_at = match self.settings().await {
            Ok(settings) => settings.retain_until(now),
            Err(e) => {
                tracing::error!(conversation_id = %c.id, error = %e, "settings unreadable; assignment notification not stored");
                return;
            }
        };
        if let Err(e) = self.deps.agents.notify(&notification, expires_at).await {
            tracing::error!(conversation_id = %c.id, agent_id = %agent.id, error = %e, "assignment notification not stored");
        }
        let ws = match self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await
        {
            Ok(ws) => ws,
            Err(e) => {
                tracing::error!(conversation_id = %c.id, error = %e, "workstream unreadable; no agentAssigned message");
                return;
            }
        };
        let mut outbox = Outbox::default();
        outbox.automated(
            ws.as_ref(),
            Trigger::AgentAssigned,
            customer.as_ref(),
            Some(&agent.name),
        );
        self.queue_after_commit(c, &outbox, id_prefix, now).await;
    }

    /// Gives back `agent_id`'s slot for the conversation unless the stored conversation is that
    /// agent's (a commit that lost its answer, or a concurrent assignment of the same agent), in
    /// one step atomic with respect to assignment commits.
    async fn undo_claim(&self, agent_id: &str, conversation_id: &str) {
        if let Err(e) = self.release_unless_kept(agent_id, conversation_id).await {
            tracing::error!(%conversation_id, %agent_id, error = %e, "agent slot not given back");
        }
    }

    async fn release_logged(&self, agent_id: &str, conversation_id: &str) {
        if let Err(e) = self.deps.agents.release(agent_id, conversation_id).await {
            tracing::error!(%conversation_id, %agent_id, error = %e, "agent not released");
        }
    }

    /// An agent takes a waiting conversation (pick mode, or any waiting one it may see). Only one
    /// of several agents picking at once gets it; the others get `Conflict`, as does an agent
    /// without a free slot.
    pub async fn pick(
        &self,
        conversation_id: &str,
        agent: &Agent,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        match c.state {
            ConversationState::Closed => return Err(conflict("the conversation is closed")),
            ConversationState::Active => {
                return Err(conflict("the conversation is already assigned"))
            }
            ConversationState::Waiting if c.agent_id.is_some() => {
                return Err(conflict("the conversation is already assigned"))
            }
            ConversationState::Waiting if c.bot_id.is_some() => {
                return Err(conflict("the conversation is with the bot"))
            }
            ConversationState::Waiting => {}
        }
        let updated = assigned_to(&c, &agent.id, now);
        let event_id = format!("pick:{}:{}:{}", c.id, c.version, agent.id);
        let outcome = self
            .claim_and_commit(&event_id, &updated, &agent.id, now)
            .await?;
        if outcome != CommitOutcome::Committed {
            let stored = self.load_conversation(conversation_id).await?;
            // The same agent picking twice at once: the other call did it.
            if outcome == CommitOutcome::Duplicate
                && stored.state == ConversationState::Active
                && stored.agent_id.as_deref() == Some(agent.id.as_str())
            {
                return Ok(stored);
            }
            return Err(conflict("the conversation was picked or changed meanwhile"));
        }
        tracing::info!(conversation_id = %c.id, agent_id = %agent.id, "conversation picked");
        self.announce_assignment(
            &updated,
            agent,
            omniline_domain::agents::AgentNotification::assigned_id(
                &c.id,
                &agent.id,
                updated.version,
            ),
            &event_id,
            now,
        )
        .await;
        Ok(updated)
    }

    /// Moves a conversation to a queue (waiting again, its agent released; a push-mode
    /// workstream then assigns it at once if an agent is free) or to an agent (who must be
    /// available with a free slot; the previous agent is released and the new one notified).
    /// Only the agent holding an assigned conversation may transfer it (`Forbidden` for anyone
    /// else: a takeover); an unassigned one, any agent who may see it.
    pub async fn transfer(
        &self,
        conversation_id: &str,
        by: &Agent,
        to: TransferTarget,
    ) -> Result<Conversation, AgentOpError> {
        self.move_conversation(conversation_id, Mover::Agent(by), to)
            .await
    }

    /// A supervisor (or an admin) gives an open conversation to `agent_id`, whoever holds it:
    /// [`Self::transfer`] without the holder's check. `by` names who did it, for the log.
    pub async fn reassign(
        &self,
        conversation_id: &str,
        by: &str,
        agent_id: &str,
    ) -> Result<Conversation, AgentOpError> {
        self.move_conversation(
            conversation_id,
            Mover::Supervisor(by),
            TransferTarget::Agent(agent_id.to_owned()),
        )
        .await
    }

    async fn move_conversation(
        &self,
        conversation_id: &str,
        mover: Mover<'_>,
        to: TransferTarget,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        let by = mover.id();
        if c.state == ConversationState::Closed {
            return Err(conflict("the conversation is closed"));
        }
        if matches!(mover, Mover::Agent(agent) if !may_transfer(&c, agent)) {
            return Err(AgentOpError::Forbidden(
                "only the agent holding the conversation may transfer it".into(),
            ));
        }
        match to {
            TransferTarget::Queue(queue_id) => {
                if queue_id.trim().is_empty() {
                    return Err(invalid("queueId", "must not be empty"));
                }
                let mut updated = c.clone();
                updated.state = ConversationState::Waiting;
                updated.waiting_since = Some(now);
                updated.queue_id = Some(queue_id.clone());
                updated.agent_id = None;
                updated.bot_id = None;
                // An offer out is withdrawn (its slot given back below).
                updated.offer = None;
                updated.last_activity_at = updated.last_activity_at.max(now);
                updated.version = c.version + 1;
                let event_id = format!("transfer:{}:{}:queue:{queue_id}", c.id, c.version);
                if self
                    .commit_conversation(&event_id, &updated, None, None, now)
                    .await?
                    != CommitOutcome::Committed
                {
                    return Err(conflict("the conversation changed meanwhile; try again"));
                }
                tracing::info!(conversation_id = %c.id, by = %by, %queue_id, "conversation transferred to a queue");
                // Unless kept: until released, the slot still holds the conversation, and a
                // concurrent distribution may give it back to the same agent on that slot.
                if let Some(previous) = c.slot_holder() {
                    self.undo_claim(previous, &c.id).await;
                }
                let ws = self
                    .deps
                    .workstreams
                    .workstream_for_account(&c.account_id)
                    .await?;
                if let Some(ws) = ws {
                    match self.assign_waiting(&updated, &ws, now).await {
                        Ok(Some(assigned)) => return Ok(assigned),
                        Ok(None) => {}
                        // The transfer stands; the schedule assigns it later.
                        Err(e) => {
                            tracing::error!(conversation_id = %c.id, error = %e, "transferred conversation not distributed")
                        }
                    }
                }
                Ok(updated)
            }
            TransferTarget::Agent(agent_id) => {
                if c.state == ConversationState::Active
                    && c.agent_id.as_deref() == Some(agent_id.as_str())
                {
                    return Ok(c);
                }
                let Some(target) = self.deps.agents.agent(&agent_id).await? else {
                    return Err(conflict(format!("there is no agent {agent_id:?}")));
                };
                let mut updated = assigned_to(&c, &target.id, now);
                updated.offer = None;
                let event_id = format!("transfer:{}:{}:agent:{}", c.id, c.version, target.id);
                if self
                    .claim_and_commit(&event_id, &updated, &target.id, now)
                    .await?
                    != CommitOutcome::Committed
                {
                    return Err(conflict("the conversation changed meanwhile; try again"));
                }
                tracing::info!(conversation_id = %c.id, by = %by, to = %target.id, supervisor = matches!(mover, Mover::Supervisor(_)), "conversation transferred to an agent");
                // Unless kept (a concurrent transfer back to it, on the slot not yet released).
                if let Some(previous) = c.slot_holder().filter(|p| *p != target.id) {
                    self.undo_claim(previous, &c.id).await;
                }
                self.announce_assignment(
                    &updated,
                    &target,
                    format!("{}:{}:transfer:{}", c.id, target.id, updated.version),
                    &event_id,
                    now,
                )
                .await;
                Ok(updated)
            }
        }
    }

    /// Closes a waiting or active conversation (an active one only by its agent), releases the
    /// agent and pushes the workstream's `agentEnded` message and, when enabled, the survey to the
    /// customer. Closing a closed conversation is a `Conflict`.
    pub async fn close_by_agent(
        &self,
        conversation_id: &str,
        agent: &Agent,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        if c.state == ConversationState::Closed {
            return Err(conflict("the conversation is already closed"));
        }
        if c.state == ConversationState::Active && c.agent_id.as_deref() != Some(agent.id.as_str())
        {
            return Err(AgentOpError::Forbidden(
                "the conversation is assigned to another agent".into(),
            ));
        }
        let ws = self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        let customer = self.customer_of(&c).await?;
        let mut outbox = Outbox::default();
        outbox.automated(
            ws.as_ref(),
            Trigger::AgentEnded,
            customer.as_ref(),
            Some(&agent.name),
        );
        let mut updated = c.clone();
        // Surveys go to 1:1 chats: in a group anyone could answer.
        if c.source_type == SourceType::User {
            let survey = ws.as_ref().and_then(|w| w.survey.as_ref());
            if let Some((message, state)) = survey.and_then(|s| survey_message(s, &c.id, now)) {
                outbox.push(Origin::Automated, None, message);
                updated.survey = Some(state);
            }
        }
        updated.state = ConversationState::Closed;
        updated.closed_at = Some(now);
        updated.close_reason = Some("agent".into());
        // An offer out is withdrawn (its slot given back below).
        updated.offer = None;
        // Wrap-up: the agent who held it keeps its slot until it records the outcome or the
        // time passes. The pending entry is written first: the schedule, finding it, ends the
        // wrap-up (or, the close never committed, just drops the entry), so a slot is never
        // held for good.
        let wrap_up_seconds = ws.as_ref().and_then(|w| w.wrap_up_seconds).unwrap_or(0);
        if let (true, Some(holder)) = (wrap_up_seconds > 0, &c.agent_id) {
            let until = now + i64::from(wrap_up_seconds) * 1000;
            updated.wrap_up = Some(WrapUp {
                until,
                disposition: None,
                notes: None,
                done_at: None,
            });
            let pending = PendingWrapUp {
                conversation_id: c.id.clone(),
                agent_id: holder.clone(),
                until,
            };
            let doc = serde_json::to_string(&pending)
                .map_err(|e| PortError::Unavailable(format!("pending wrap-up: {e}")))?;
            // Already there (a retried close): that entry stands.
            self.deps
                .config
                .put_doc(WRAP_UP_PENDING_KIND, &c.id, &doc, Expect::Absent)
                .await?;
        }
        updated.last_activity_at = updated.last_activity_at.max(now);
        updated.version = c.version + 1;
        let event_id = format!("close:{}:{}", c.id, c.version);
        if self
            .commit_conversation(&event_id, &updated, None, None, now)
            .await?
            != CommitOutcome::Committed
        {
            let stored = self.load_conversation(conversation_id).await?;
            if stored.state == ConversationState::Closed {
                return Err(conflict("the conversation is already closed"));
            }
            return Err(conflict("the conversation changed meanwhile; try again"));
        }
        tracing::info!(conversation_id = %c.id, agent_id = %agent.id, survey = updated.survey.is_some(), wrap_up = updated.wrapping_up(), "conversation closed by the agent");
        // The agent's slot (or the offered agent's), unless the wrap-up keeps it.
        if let (Some(holder), false) = (c.slot_holder(), updated.wrapping_up()) {
            self.release_logged(holder, &c.id).await;
        }
        self.queue_after_commit(&updated, &outbox, &event_id, now)
            .await;
        Ok(updated)
    }

    /// Opens a conversation with the customer `user_id` of `account_id` in `queue_id` (of `ws`),
    /// active and assigned to `agent` on one of its slots (whatever its presence: it takes the
    /// conversation itself): the agent writes first. `key` makes it idempotent (the same key
    /// opens the same conversation: a retry finds it). `Conflict` when the agent has no free
    /// slot, or when the customer has an open
    /// conversation already (the caller checks for it first; this is the race). The first
    /// message is the caller's to send, with [`RouterService::send_agent_message`].
    pub async fn start_conversation(
        &self,
        account_id: &str,
        user_id: &str,
        ws: &Workstream,
        queue_id: &str,
        agent: &Agent,
        key: &str,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let event_id = format!("start:{}:{key}", agent.id);
        let id = crate::router::decide::conversation_id_for(account_id, &event_id);
        if let Some(existing) = self.deps.conversations.conversation(&id).await? {
            return Ok(existing);
        }
        let mut c = Conversation::opened(
            id,
            account_id,
            SourceType::User,
            user_id,
            ConversationState::Active,
            now,
        );
        c.workstream_id = Some(ws.id.clone());
        c.queue_id = Some(queue_id.to_owned());
        c.agent_id = Some(agent.id.clone());
        c.assigned_at = Some(now);
        let mut commit = self.update_commit(event_id, c.clone(), None, now).await?;
        commit.conversation = Some(omniline_domain::conversation::ConversationWrite::Create(
            c.clone(),
        ));
        // The agent takes it itself: whatever its presence, within its capacity.
        if !self.deps.agents.claim_own(&agent.id, &c.id, now).await? {
            return Err(conflict(
                "you have no free slot: close a conversation first",
            ));
        }
        let outcome = self
            .deps
            .conversations
            .commit_assignment(&commit, &agent.id)
            .await;
        match outcome {
            Ok(CommitOutcome::Committed) => {
                tracing::info!(conversation_id = %c.id, agent_id = %agent.id, "conversation opened by the agent");
                Ok(c)
            }
            Ok(CommitOutcome::Duplicate) => {
                // A retry of one that landed: the stored conversation (it holds the slot).
                self.load_conversation(&c.id).await
            }
            Ok(CommitOutcome::Conflict) => {
                self.undo_claim(&agent.id, &c.id).await;
                Err(conflict("the customer has an open conversation"))
            }
            Err(e) => {
                self.undo_claim(&agent.id, &c.id).await;
                Err(e.into())
            }
        }
    }

    /// Accepts the offer of a waiting conversation to `agent`: it becomes active with the agent
    /// (on the slot the offer holds), the customer gets the `agentAssigned` message, the agent's
    /// count of missed offers starts again. `Forbidden` when it is offered to another agent;
    /// `Conflict` when no offer is open for the agent (expired, answered, never made). Racing
    /// the offer's expiry, exactly one of the two lands (both commit on the version read).
    pub async fn accept_offer(
        &self,
        conversation_id: &str,
        agent: &Agent,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        if c.agent_id.as_deref() == Some(agent.id.as_str()) && c.state == ConversationState::Active
        {
            // Accepted before (a retry).
            return Ok(c);
        }
        offered_to(&c, agent, now)?;
        let ws = self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?
            .ok_or_else(|| conflict("the account has no workstream"))?;
        let customer = self.customer_of(&c).await?;
        let mut updated = c.clone();
        updated.offer = None;
        let mut outbox = Outbox::default();
        let notification = crate::router::decide::assigned(
            &ws,
            &mut updated,
            agent,
            customer.as_ref(),
            now,
            &mut outbox,
        );
        let event_id = format!("accept:{}:{}", c.id, c.version);
        let messages = crate::router::decide::scheduled_messages(&updated, &outbox, &event_id, now);
        updated.version = c.version + 1;
        let mut commit = self
            .update_commit(event_id, updated.clone(), None, now)
            .await?;
        commit.outbox = messages;
        commit.notifications = vec![notification];
        match self
            .deps
            .conversations
            .commit_assignment(&commit, &agent.id)
            .await?
        {
            CommitOutcome::Committed => {
                if let Err(e) = self.queue_outbox(&commit.outbox).await {
                    tracing::error!(conversation_id = %c.id, agent_id = %agent.id, error = %e, "assignment message not queued");
                }
                if let Err(e) = self.deps.agents.record_offer(&agent.id, false).await {
                    tracing::warn!(agent_id = %agent.id, error = %e, "accepted offer not counted");
                }
                tracing::info!(conversation_id = %c.id, agent_id = %agent.id, "offer accepted");
                Ok(updated)
            }
            CommitOutcome::Conflict | CommitOutcome::Duplicate => {
                let stored = self.load_conversation(conversation_id).await?;
                if stored.agent_id.as_deref() == Some(agent.id.as_str())
                    && stored.state == ConversationState::Active
                {
                    return Ok(stored);
                }
                Err(conflict("the offer expired or changed meanwhile"))
            }
        }
    }

    /// Rejects the offer of a waiting conversation to `agent`: the agent's slot is given back,
    /// the agent joins those who declined it, and it is offered to the next ranked agent at
    /// once (or waits for the schedule's next round). `Forbidden` / `Conflict` as
    /// [`RouterService::accept_offer`].
    pub async fn reject_offer(
        &self,
        conversation_id: &str,
        agent: &Agent,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        offered_to(&c, agent, now)?;
        let mut updated = c.clone();
        updated.offer = None;
        updated.declined_by.push(agent.id.clone());
        updated.version = c.version + 1;
        let event_id = format!("reject:{}:{}", c.id, c.version);
        if self
            .commit_conversation(&event_id, &updated, None, None, now)
            .await?
            != CommitOutcome::Committed
        {
            return Err(conflict("the offer expired or changed meanwhile"));
        }
        tracing::info!(conversation_id = %c.id, agent_id = %agent.id, "offer rejected");
        self.release_logged(&agent.id, &c.id).await;
        let ws = self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        if let Some(ws) = ws {
            if let Some(next) = self.assign_waiting(&updated, &ws, now).await? {
                return Ok(next);
            }
        }
        Ok(updated)
    }

    /// Records the wrap-up of a conversation the agent closed (`disposition`: one of the
    /// workstream's dispositions when it lists any; `notes` optional) and gives its slot back.
    /// `Conflict` when no wrap-up is pending (none, done, or timed out); `Forbidden` when it is
    /// another agent's; `Invalid` for a disposition the workstream does not list.
    pub async fn finish_wrap_up(
        &self,
        conversation_id: &str,
        agent: &Agent,
        disposition: String,
        notes: Option<String>,
    ) -> Result<Conversation, AgentOpError> {
        for _ in 0..COMMIT_ATTEMPTS {
            let now = self.now();
            let c = self.load_conversation(conversation_id).await?;
            if !c.wrapping_up() {
                return Err(conflict("no wrap-up is pending for this conversation"));
            }
            if c.agent_id.as_deref() != Some(agent.id.as_str()) {
                return Err(AgentOpError::Forbidden(
                    "the wrap-up is another agent's".into(),
                ));
            }
            let ws = self
                .deps
                .workstreams
                .workstream_for_account(&c.account_id)
                .await?;
            let listed = ws.as_ref().map(|w| &w.dispositions);
            if listed.is_some_and(|l| !l.is_empty() && !l.contains(&disposition)) {
                return Err(invalid(
                    "disposition",
                    format!(
                        "not one of the workstream's dispositions: {}",
                        listed.map(|l| l.join(", ")).unwrap_or_default()
                    ),
                ));
            }
            let mut updated = c.clone();
            if let Some(w) = updated.wrap_up.as_mut() {
                w.disposition = Some(disposition.clone());
                w.notes = notes.clone();
                w.done_at = Some(now);
            }
            updated.version = c.version + 1;
            let event_id = format!("wrapUp:{}:{}", c.id, c.version);
            if self
                .commit_conversation(&event_id, &updated, None, None, now)
                .await?
                == CommitOutcome::Committed
            {
                tracing::info!(conversation_id = %c.id, agent_id = %agent.id, %disposition, "wrap-up recorded");
                self.release_logged(&agent.id, &c.id).await;
                self.drop_pending_wrap_up(&c.id).await;
                return Ok(updated);
            }
        }
        Err(conflict("the conversation kept changing; try again"))
    }

    /// Ends every pending wrap-up whose time has passed (the schedule): the conversation's
    /// wrap-up is marked done at its `until`, the agent's slot given back, the entry dropped.
    /// An entry whose close never committed (the conversation is not closed) is dropped and
    /// nothing else. Returns how many ended.
    pub async fn end_expired_wrap_ups(&self) -> Result<usize, RouteError> {
        let now = self.now();
        let mut ended = 0;
        for doc in self.deps.config.list_docs(WRAP_UP_PENDING_KIND).await? {
            let Ok(pending) = serde_json::from_str::<PendingWrapUp>(&doc.doc) else {
                tracing::warn!(id = %doc.id, "unreadable pending wrap-up dropped");
                self.drop_pending_wrap_up(&doc.id).await;
                continue;
            };
            if pending.until > now {
                continue;
            }
            let Some(c) = self
                .deps
                .conversations
                .conversation(&pending.conversation_id)
                .await?
            else {
                self.deps
                    .agents
                    .release(&pending.agent_id, &pending.conversation_id)
                    .await?;
                self.drop_pending_wrap_up(&doc.id).await;
                continue;
            };
            if c.wrapping_up() {
                let mut updated = c.clone();
                if let Some(w) = updated.wrap_up.as_mut() {
                    w.done_at = Some(w.until);
                }
                updated.version = c.version + 1;
                let event_id = format!("wrapUp:{}:{}", c.id, c.version);
                let commit = self.update_commit(event_id, updated, None, now).await?;
                if self.deps.conversations.commit(&commit).await? != CommitOutcome::Committed {
                    // Changed meanwhile (recorded by the agent?): the next run sees it.
                    continue;
                }
                tracing::info!(conversation_id = %c.id, agent_id = %pending.agent_id, "wrap-up timed out");
                ended += 1;
            }
            // Closed (wrap-up done, now or before): the slot goes back. Not closed: the close
            // never committed, and the slot is the open conversation's.
            if c.state == ConversationState::Closed {
                self.deps
                    .agents
                    .release(&pending.agent_id, &pending.conversation_id)
                    .await?;
            }
            self.drop_pending_wrap_up(&doc.id).await;
        }
        Ok(ended)
    }

    async fn drop_pending_wrap_up(&self, conversation_id: &str) {
        if let Err(e) = self
            .deps
            .config
            .delete_doc(WRAP_UP_PENDING_KIND, conversation_id)
            .await
        {
            // The schedule finds it again and drops it then.
            tracing::warn!(%conversation_id, error = %e, "pending wrap-up not dropped");
        }
    }

    /// Adds an internal note to a conversation the agent may see (the caller checked): a
    /// transcript entry of type `note` (never sent to LINE), kept with the conversation's
    /// retention; the conversation itself is not changed (a note is not activity).
    pub async fn add_note(
        &self,
        c: &Conversation,
        agent: &Agent,
        text: &str,
    ) -> Result<TranscriptEntry, AgentOpError> {
        let now = self.now();
        let id = format!("note:{}:{}", c.id, omniline_domain::clock::new_id());
        let note = omniline_domain::conversation::Note {
            id: id.clone(),
            text: text.to_owned(),
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            at: now,
        };
        let entry = TranscriptEntry {
            conversation_id: c.id.clone(),
            event_id: id.clone(),
            timestamp: now,
            event_type: omniline_domain::conversation::NOTE_ENTRY.into(),
            sender_user_id: None,
            message_id: None,
            event: serde_json::to_value(&note)
                .map_err(|e| PortError::Unavailable(format!("note: {e}")))?,
            retracted: false,
            sender_name: None,
        };
        let mut commit = self
            .update_commit(id, c.clone(), Some(entry.clone()), now)
            .await?;
        // The entry alone: the conversation is not written.
        commit.conversation = None;
        match self.deps.conversations.commit(&commit).await? {
            CommitOutcome::Committed | CommitOutcome::Duplicate => Ok(entry),
            CommitOutcome::Conflict => Err(conflict("the note was not stored; try again")),
        }
    }

    /// Snoozes (`Some(until)`, epoch ms, in the future) or wakes (`None`) an open conversation
    /// the agent holds: it stays open and the agent's, out of the active list until then or
    /// until the customer writes. `Conflict` when closed or changed meanwhile; `Forbidden` when
    /// it is not the agent's; `Invalid` for a time not in the future.
    pub async fn snooze(
        &self,
        conversation_id: &str,
        agent: &Agent,
        until: Option<i64>,
    ) -> Result<Conversation, AgentOpError> {
        let now = self.now();
        if until.is_some_and(|t| t <= now) {
            return Err(invalid("until", "until must be in the future"));
        }
        self.mark(conversation_id, agent, "snooze", true, |c| {
            c.snoozed_until = until
        })
        .await
    }

    /// Flags (or unflags) a conversation the agent holds for a follow-up; closed ones too (a
    /// follow-up is often after the close). `Forbidden` when another agent holds it or it is
    /// waiting with none.
    pub async fn set_follow_up(
        &self,
        conversation_id: &str,
        agent: &Agent,
        follow_up: bool,
    ) -> Result<Conversation, AgentOpError> {
        self.mark(conversation_id, agent, "followUp", false, |c| {
            c.follow_up = follow_up
        })
        .await
    }

    /// Sets a conversation's tags (already normalized and within the limits), committed with
    /// its version and retried on a concurrent change. Any agent who sees it may tag it.
    pub async fn set_tags(
        &self,
        conversation_id: &str,
        agent: &Agent,
        tags: Vec<String>,
    ) -> Result<Conversation, AgentOpError> {
        self.change(conversation_id, agent, "tags", false, false, |c| {
            c.tags = tags.clone()
        })
        .await
    }

    /// The agent holding the conversation has read it: nothing unread (no write when nothing
    /// was). Another agent reading it changes nothing.
    pub async fn clear_unread(
        &self,
        conversation_id: &str,
        agent: &Agent,
    ) -> Result<(), AgentOpError> {
        match self
            .mark(conversation_id, agent, "read", false, |c| c.unread = 0)
            .await
        {
            Ok(_) | Err(AgentOpError::Forbidden(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Applies an agent's mark (`change`) to a conversation it holds (the last holder's, once
    /// closed) and commits it with the conversation's version, retried on a concurrent change.
    /// `needs_open`: a closed conversation is a `Conflict`.
    async fn mark(
        &self,
        conversation_id: &str,
        agent: &Agent,
        what: &str,
        needs_open: bool,
        change: impl Fn(&mut Conversation),
    ) -> Result<Conversation, AgentOpError> {
        self.change(conversation_id, agent, what, needs_open, true, change)
            .await
    }

    /// [`Self::mark`], by the holder only (`holder_only`) or by any agent (the caller checked
    /// that the agent sees it).
    async fn change(
        &self,
        conversation_id: &str,
        agent: &Agent,
        what: &str,
        needs_open: bool,
        holder_only: bool,
        change: impl Fn(&mut Conversation),
    ) -> Result<Conversation, AgentOpError> {
        for _ in 0..3 {
            let now = self.now();
            let c = self.load_conversation(conversation_id).await?;
            if holder_only && c.agent_id.as_deref() != Some(agent.id.as_str()) {
                return Err(AgentOpError::Forbidden(
                    "only the agent holding the conversation can do that".into(),
                ));
            }
            if needs_open && c.state == ConversationState::Closed {
                return Err(conflict("the conversation is closed"));
            }
            let mut updated = c.clone();
            change(&mut updated);
            if updated == c {
                return Ok(c);
            }
            updated.version = c.version + 1;
            let event_id = format!("{what}:{}:{}", c.id, c.version);
            if self
                .commit_conversation(&event_id, &updated, None, None, now)
                .await?
                == CommitOutcome::Committed
            {
                tracing::info!(conversation_id = %c.id, agent_id = %agent.id, what, "conversation marked");
                return Ok(updated);
            }
        }
        Err(conflict("the conversation kept changing; try again"))
    }

    /// Queues an agent's message objects (1 to 5, already validated by the caller) for the
    /// customer of a conversation the agent holds, and records them in the transcript. Returns
    /// the message id `agent:{conversationId}:{idempotencyKey}`: a retry with the same key
    /// queues nothing new and returns the same id.
    ///
    /// Reply first: when the conversation's latest customer event has a reply token that is
    /// young and unused (see [`reply_claim`]; the router's messages for that event did not use
    /// it), the message carries it and the outbound function replies with it (free), falling
    /// back to a push when LINE refuses the token; the transcript entry names that event in
    /// `replyTo`, so the token is given once. Otherwise it is pushed.
    pub async fn send_agent_message(
        &self,
        conversation_id: &str,
        agent: &Agent,
        messages: Vec<Value>,
        idempotency_key: &str,
    ) -> Result<String, AgentOpError> {
        if idempotency_key.is_empty()
            || idempotency_key.len() > IDEMPOTENCY_KEY_MAX_LEN
            || idempotency_key.chars().any(char::is_control)
        {
            return Err(invalid(
                "idempotencyKey",
                format!("must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} printable characters"),
            ));
        }
        let max = omniline_domain::line::messages::MAX_MESSAGES_PER_CALL;
        if !(1..=max).contains(&messages.len()) {
            return Err(invalid(
                "messages",
                format!("1 to {max} message objects, got {}", messages.len()),
            ));
        }
        let now = self.now();
        let mut c = self.load_conversation(conversation_id).await?;
        if c.state == ConversationState::Closed {
            return Err(conflict("the conversation is closed"));
        }
        if c.state != ConversationState::Active || c.agent_id.as_deref() != Some(agent.id.as_str())
        {
            return Err(AgentOpError::Forbidden(
                "the conversation is not assigned to this agent".into(),
            ));
        }
        let message_id = format!("agent:{}:{idempotency_key}", c.id);
        if self
            .deps
            .conversations
            .event_recorded(&c.account_id, &message_id, now.div_euclid(1000))
            .await?
        {
            return Ok(message_id);
        }
        let ws = self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        let mut outbound = agent_push(&c, ws.as_ref(), agent, &message_id, messages.clone(), now);
        let claim = self.agent_reply_claim(&c, now).await;
        if let Some(claim) = &claim {
            outbound.reply_token = Some(claim.token.clone());
            outbound.reply_token_received_at = Some(claim.at);
        }
        // Queued before it is recorded: a failure after queueing is retried with the same id,
        // which the queue and the outbound function deduplicate.
        self.deps
            .outbound
            .send(&[outbound.to_queue_message()])
            .await?;
        let mut event = json!({
            "type": AGENT_MESSAGE,
            "messageId": message_id,
            "agentId": agent.id,
            "agentName": agent.name,
            "messages": messages,
        });
        if let (Some(claim), Some(fields)) = (&claim, event.as_object_mut()) {
            fields.insert(REPLY_TO.into(), Value::String(claim.event_id.clone()));
        }
        let entry = TranscriptEntry {
            conversation_id: c.id.clone(),
            event_id: message_id.clone(),
            timestamp: now,
            event_type: AGENT_MESSAGE.into(),
            sender_user_id: None,
            message_id: None,
            event,
            retracted: false,
            sender_name: None,
        };
        for attempt in 0..COMMIT_ATTEMPTS {
            if attempt > 0 {
                c = self.load_conversation(conversation_id).await?;
            }
            let mut updated = c.clone();
            updated.last_activity_at = updated.last_activity_at.max(now);
            // Answered: nothing unread; the inbox previews the answer.
            updated.unread = 0;
            if let Some(first) = messages.first() {
                updated.last_message = LastMessage::of(first, "out", now);
            }
            // Reports: the first response, and the agents' messages.
            updated.first_response_at.get_or_insert(now);
            updated.messages_out = updated
                .messages_out
                .saturating_add(u32::try_from(messages.len()).unwrap_or(u32::MAX));
            updated.version = c.version + 1;
            match self
                .commit_conversation(&message_id, &updated, Some(entry.clone()), None, now)
                .await?
            {
                CommitOutcome::Committed | CommitOutcome::Duplicate => {
                    tracing::info!(conversation_id = %c.id, agent_id = %agent.id, %message_id, reply = claim.is_some(), "agent message queued");
                    return Ok(message_id);
                }
                CommitOutcome::Conflict => {}
            }
        }
        Err(AgentOpError::Route(RouteError::Contention))
    }

    /// The reply token an agent's message to `c` at `now` uses ([`reply_claim`]), unless the
    /// router's messages for that event carry it (its recorded outbox). Read from the latest
    /// [`REPLY_LOOKBACK_ENTRIES`] of the transcript. A store failure here only costs the reply:
    /// the message is pushed.
    ///
    /// Two messages sent at once may both get the token (each is queued before it is recorded):
    /// the outbound queue delivers a conversation's messages one after the other, LINE accepts
    /// the first reply and refuses the second as an invalid token, and that one is pushed.
    async fn agent_reply_claim(&self, c: &Conversation, now: i64) -> Option<ReplyClaim> {
        let conversations = &self.deps.conversations;
        let latest = match conversations
            .latest_transcript(&c.id, REPLY_LOOKBACK_ENTRIES)
            .await
        {
            Ok(latest) => latest,
            Err(e) => {
                tracing::warn!(conversation_id = %c.id, error = %e, "transcript unreadable; the agent message is pushed");
                return None;
            }
        };
        let claim = reply_claim(&latest, now)?;
        match conversations
            .recorded_outbox(&c.account_id, &claim.event_id, now.div_euclid(1000))
            .await
        {
            Ok(Some(outbox)) if outbox.iter().all(|m| m.reply_token.is_none()) => Some(claim),
            // The router replied with it, or its record is gone (nothing says it is unused).
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(conversation_id = %c.id, error = %e, "event record unreadable; the agent message is pushed");
                None
            }
        }
    }

    /// Starts LINE's account-link flow for the customer of a 1:1 conversation: issues a link
    /// token, stores a [`LinkRequest`] and sends the customer `{link_base_url}/line/link/{id}`.
    /// The `accountLink` event then links the customer to `contact_id`. Returns the URL.
    pub async fn request_account_link(
        &self,
        conversation_id: &str,
        agent: &Agent,
        contact_id: &str,
        link_base_url: &str,
    ) -> Result<String, AgentOpError> {
        let now = self.now();
        let c = self.load_conversation(conversation_id).await?;
        if c.source_type != SourceType::User {
            return Err(invalid(
                "conversationId",
                "account linking works in 1:1 chats only",
            ));
        }
        if c.state == ConversationState::Closed {
            return Err(conflict("the conversation is closed"));
        }
        if self
            .deps
            .config
            .get_doc(&contact_kind(&c.account_id), contact_id)
            .await?
            .is_none()
        {
            return Err(invalid(
                "contactId",
                format!("there is no contact {contact_id:?}"),
            ));
        }
        let token = self.access_token(&c.account_id).await?;
        let link_token = self
            .deps
            .line
            .issue_link_token(&token, &c.source_id)
            .await
            .map_err(RouteError::from)?;
        let request = LinkRequest {
            id: omniline_domain::clock::new_id(),
            account_id: c.account_id.clone(),
            user_id: c.source_id.clone(),
            contact_id: contact_id.to_owned(),
            conversation_id: c.id.clone(),
            link_token,
            created_at: now,
        };
        let doc = serde_json::to_string(&request)
            .map_err(|e| RouteError::Malformed(format!("link request: {e}")))?;
        if self
            .deps
            .config
            .put_doc(LINK_REQUEST_KIND, &request.id, &doc, Expect::Absent)
            .await?
            .is_none()
        {
            return Err(conflict("link request id taken; try again"));
        }
        let url = format!(
            "{}/line/link/{}",
            link_base_url.trim_end_matches('/'),
            request.id
        );
        let ws = self
            .deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        let message = agent_push(
            &c,
            ws.as_ref(),
            agent,
            &format!("link:{}", request.id),
            vec![text_message(&format!("{ACCOUNT_LINK_TEXT}\n{url}"))],
            now,
        );
        self.deps
            .outbound
            .send(&[message.to_queue_message()])
            .await?;
        tracing::info!(conversation_id = %c.id, agent_id = %agent.id, %contact_id, "account link requested");
        Ok(url)
    }
}

/// `c` at its next version, active with `agent_id` (not with the bot), touched at `now`.
fn assigned_to(c: &Conversation, agent_id: &str, now: i64) -> Conversation {
    let mut updated = c.clone();
    updated.state = ConversationState::Active;
    updated.agent_id = Some(agent_id.to_owned());
    updated.assigned_at.get_or_insert(now);
    updated.bot_id = None;
    updated.last_activity_at = updated.last_activity_at.max(now);
    updated.version = c.version + 1;
    updated
}

/// Whether `by` may transfer `c`: its holder, or anyone when nobody holds it (the caller has
/// checked that `by` may see it).
/// Who moves a conversation: an agent (the holder's check applies) or a supervisor.
#[derive(Clone, Copy)]
enum Mover<'a> {
    Agent(&'a Agent),
    Supervisor(&'a str),
}

impl Mover<'_> {
    fn id(&self) -> &str {
        match self {
            Mover::Agent(agent) => &agent.id,
            Mover::Supervisor(by) => by,
        }
    }
}

pub fn may_transfer(c: &Conversation, by: &Agent) -> bool {
    c.agent_id.as_deref().is_none_or(|holder| holder == by.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_names_are_cut_to_20_utf16_units() {
        assert_eq!(sender_name("  Hanako  "), "Hanako");
        assert_eq!(sender_name(&"a".repeat(25)), "a".repeat(20));
        // 19 units then an emoji of 2: the emoji does not fit.
        let name = format!("{}😀", "a".repeat(19));
        assert_eq!(sender_name(&name), "a".repeat(19));
        let long = "山田花子さんのとても長い名前ですよ本当に長い";
        assert_eq!(sender_name(long), long.chars().take(20).collect::<String>());
    }

    fn customer(id: &str, at: i64, token: Option<&str>) -> TranscriptEntry {
        let mut event = json!({"type": "message", "webhookEventId": id, "timestamp": at});
        if let Some(token) = token {
            event["replyToken"] = json!(token);
        }
        TranscriptEntry {
            conversation_id: "c1".into(),
            event_id: id.into(),
            timestamp: at,
            event_type: "message".into(),
            sender_user_id: Some("U1".into()),
            message_id: Some(format!("m-{id}")),
            event,
            retracted: false,
            sender_name: None,
        }
    }

    fn agent_entry(key: &str, at: i64, reply_to: Option<&str>) -> TranscriptEntry {
        let mut event = json!({"type": AGENT_MESSAGE, "messageId": format!("agent:c1:{key}")});
        if let Some(id) = reply_to {
            event[REPLY_TO] = json!(id);
        }
        TranscriptEntry {
            conversation_id: "c1".into(),
            event_id: format!("agent:c1:{key}"),
            timestamp: at,
            event_type: AGENT_MESSAGE.into(),
            sender_user_id: None,
            message_id: None,
            event,
            retracted: false,
            sender_name: None,
        }
    }

    #[test]
    fn an_agent_message_claims_the_latest_customer_events_young_unclaimed_token() {
        use crate::outbound::REPLY_TOKEN_FIRST_USE_MS as WINDOW;
        const T: i64 = 1_000_000;
        let claim = |event_id: &str, token: &str, at: i64| {
            Some(ReplyClaim {
                event_id: event_id.into(),
                token: token.into(),
                at,
            })
        };
        // The latest customer event, 20 s old, its token unclaimed.
        let newest_first = [
            customer("E2", T, Some("rt2")),
            customer("E1", T - 5, Some("rt1")),
        ];
        assert_eq!(
            reply_claim(&newest_first, T + 20_000),
            claim("E2", "rt2", T)
        );
        // At the window's end it is no longer given.
        assert_eq!(
            reply_claim(&newest_first, T + WINDOW - 1),
            claim("E2", "rt2", T)
        );
        assert_eq!(reply_claim(&newest_first, T + WINDOW), None);
        // Agent messages after it that did not claim it leave it free.
        let after = [
            agent_entry("k2", T + 2, None),
            agent_entry("k1", T + 1, Some("E1")),
            customer("E2", T, Some("rt2")),
        ];
        assert_eq!(reply_claim(&after, T + 3), claim("E2", "rt2", T));
        // Claimed by an agent message after it: none (not the older event's either).
        let claimed = [
            agent_entry("k1", T + 1, Some("E2")),
            customer("E2", T, Some("rt2")),
            customer("E1", T - 5, Some("rt1")),
        ];
        assert_eq!(reply_claim(&claimed, T + 2), None);
        // The latest customer event has no token (an unsend, a standby event) or was retracted.
        let tokenless = [customer("E3", T, None), customer("E2", T - 1, Some("rt2"))];
        assert_eq!(reply_claim(&tokenless, T + 1), None);
        let mut retracted = customer("E2", T, Some("rt2"));
        retracted.retracted = true;
        assert_eq!(reply_claim(&[retracted], T + 1), None);
        // LINE's timestamp ahead of the clock counts from the clock reading.
        assert_eq!(
            reply_claim(&[customer("E2", T + 9_000, Some("rt2"))], T),
            claim("E2", "rt2", T)
        );
        // Nothing from the customer within the entries read.
        assert_eq!(reply_claim(&[agent_entry("k1", T, None)], T), None);
        assert_eq!(reply_claim(&[], T), None);
    }

    #[test]
    fn rating_and_link_surveys() {
        let rating = Survey {
            enabled: true,
            question: Some("How did we do?".into()),
            scale: Some(3),
            url: None,
        };
        let (message, state) = survey_message(&rating, "c1", 7).unwrap();
        assert_eq!(message["text"], "How did we do?");
        let items = message["quickReply"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2]["action"]["data"], "survey:c1:3");
        assert_eq!(items[2]["action"]["label"], "3");
        assert_eq!(items[2]["action"]["displayText"], "3");
        assert_eq!(state.scale, Some(3));
        assert_eq!(state.sent_at, 7);

        let link = Survey {
            enabled: true,
            question: None,
            scale: None,
            url: Some("https://survey.example.com/x".into()),
        };
        let (message, state) = survey_message(&link, "c1", 7).unwrap();
        assert_eq!(
            message["text"],
            format!("{DEFAULT_LINK_SURVEY_TEXT}\nhttps://survey.example.com/x")
        );
        assert_eq!(state.scale, None);

        let off = Survey {
            enabled: false,
            ..rating
        };
        assert!(survey_message(&off, "c1", 7).is_none());
    }
}
