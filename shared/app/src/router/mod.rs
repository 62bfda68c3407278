//! The router function: consumes the inbound FIFO queue and turns LINE events into customer
//! service work.
//!
//! For each event: skip it if it was recorded before (exactly once, also hours later); keep one
//! open conversation per (account, source); fetch the customer's LINE profile on first contact;
//! classify new conversations with the workstream's routing rules; hand them to the bot or
//! distribute them to an agent of the queue (push) or leave them waiting (pick); then commit the
//! event, the transcript entry, the conversation, the customer and the outbox (the automated and
//! bot messages for the outbound function) in one atomic write conditional on the event being
//! new; and only then queue the outbox.
//!
//! The outbox: a plan whose commit loses (another worker changed the conversation, or recorded
//! the event) sends nothing, so no customer hears of an assignment that was not stored. An event
//! found recorded (redelivered, or committed by a concurrent worker) has its recorded outbox
//! queued again: a crash or a failed send between the commit and the queueing loses nothing. The
//! repeat is harmless: outbound message ids are derived from the event id, and the outbound
//! queue (five minutes) and the outbound function's delivery records (after that) deduplicate on
//! them. Waiting conversations assigned by the schedule queue their message after the commit too.
//!
//! Side effects before the commit are idempotent: conversation ids are derived from the event id,
//! agent assignment is idempotent per conversation, and media are stored under the message id.
//!
//! Agent slots: a conversation is committed with an agent only while the agent's slot holds it
//! (`ConversationStore::commit_assignment`), and a claim whose commit did not land is undone
//! only if the stored conversation is not the agent's (`ConversationStore::release_unless_assigned`),
//! each atomic with respect to the other: a slot shared by two assignments in flight is never
//! given back under the one that commits.
//!
//! One event is routed in three steps (`process`): gather what it needs from the stores and LINE,
//! decide what it changes without I/O (`decide`: plain values in, a decision out, unit-tested
//! alone), and apply the decision (media, bot, agent assignment, outbound messages).
//!
//! [`agent_ops`] holds what agents do (pick, transfer, close with the survey, reply, account
//! links) as methods of the same [`RouterService`], shared by the agent function and the local
//! stack; [`wiring`] builds the service on the AWS adapters.

pub mod agent_ops;

pub mod decide;
mod process;

pub use agent_ops::{AgentOpError, TransferTarget};

use crate::cache::Cache;
use crate::consumer::{process_fifo_batch, BatchMessage, BatchOutcome};
use crate::jobs::{PurgeJobs, SCHEDULE_BUDGET};
use crate::tokens::{ChannelTokens, TokenError};
use omniline_domain::conversation::{
    CommitOutcome, Conversation, ConversationState, ConversationWrite, Customer, EventCommit,
    SourceType, TranscriptEntry, DEDUPE_RETENTION_SECS,
};
use omniline_domain::line::api::LineApiError;
use omniline_domain::routing::rules::CompiledRules;
use omniline_domain::secret::SecretString;
use omniline_domain::settings::Settings;
use omniline_domain::workstream::Workstream;
use omniline_ports::AgentStore;
use omniline_ports::BotHook;
use omniline_ports::LineApi;
use omniline_ports::ObjectStore;
use omniline_ports::{
    AccountStore, ConfigStore, ConversationStore, EventQueue, PortError, SecretStore,
    WorkstreamStore,
};
use std::collections::HashMap;
use std::sync::Arc;

pub use omniline_domain::clock::{system_clock, Clock};

/// Everything the router talks to.
#[derive(Clone)]
pub struct RouterDeps {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub workstreams: Arc<dyn WorkstreamStore>,
    pub agents: Arc<dyn AgentStore>,
    /// Settings (retention), read at most every [`SETTINGS_TTL`].
    pub config: Arc<dyn ConfigStore>,
    pub outbound: Arc<dyn EventQueue>,
    pub media: Arc<dyn ObjectStore>,
    pub line: Arc<dyn LineApi>,
    pub bot: Arc<dyn BotHook>,
    /// Channel access tokens (long-lived, or stateless ones issued from the channel secret).
    pub tokens: Arc<ChannelTokens>,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The queue message cannot be processed, ever: it goes to the dead-letter queue after the
    /// queue's receive limit.
    #[error("malformed inbound message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error(transparent)]
    Line(#[from] LineApiError),
    #[error("channel access token unavailable: {0}")]
    Token(#[from] TokenError),
    /// LINE answered 202: the media is still being prepared; retry later.
    #[error("media {0} is still being prepared by LINE")]
    MediaPending(String),
    #[error("the conversation kept changing concurrently")]
    Contention,
}

/// What processing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// The event and its effects were committed.
    Stored { conversation_id: Option<String> },
    /// Recorded before: nothing changed; the recorded outbox was queued again (deduplicated by
    /// the outbound queue and function).
    Duplicate,
    /// The account was deleted: the event is dropped (logged).
    AccountGone,
}

/// A customer's tags (agents'; `customer.tags` for the routing rules), empty when none are
/// stored. One read by key.
pub(crate) async fn customer_tags(
    config: &dyn omniline_ports::ConfigStore,
    account_id: &str,
    user_id: &str,
) -> Result<Vec<String>, PortError> {
    Ok(customer_document(config, account_id, user_id).await?.tags)
}

/// The customer's attributes (admins'; `customer.attributes.<name>` for the routing rules) and
/// tags (agents'; `customer.tags`), empty when none are stored. One read by key.
pub(crate) async fn customer_document(
    config: &dyn omniline_ports::ConfigStore,
    account_id: &str,
    user_id: &str,
) -> Result<omniline_domain::conversation::CustomerAttributes, PortError> {
    use omniline_domain::conversation::{
        customer_doc_id, CustomerAttributes, CUSTOMER_ATTRIBUTES_KIND,
    };
    let doc = config
        .get_doc(
            CUSTOMER_ATTRIBUTES_KIND,
            &customer_doc_id(account_id, user_id),
        )
        .await?;
    Ok(doc
        .and_then(|d| serde_json::from_str::<CustomerAttributes>(&d.doc).ok())
        .unwrap_or_default())
}

/// What a scheduled run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleOutcome {
    pub closed: usize,
    pub assigned: usize,
    /// Agents set `away` by the presence timeout.
    pub away: usize,
    /// Wrap-ups ended by their time passing.
    pub wrapped: usize,
    /// Offers that expired unanswered.
    pub offers_expired: usize,
}

/// How many times a commit is retried when the conversation changed concurrently.
const COMMIT_ATTEMPTS: u32 = 3;
/// After this many receives, media LINE is still preparing is given up (the event is stored
/// without it) rather than failing until the dead-letter queue.
pub const MEDIA_PENDING_MAX_RECEIVES: u32 = 4;

/// The router's use case, shared by the Lambda function and the local stack.
pub struct RouterService {
    deps: RouterDeps,
    /// The background jobs the schedule runs (account purges), when this router runs them.
    jobs: Option<PurgeJobs>,
    /// Compiled rules per workstream, with the workstream's version.
    rules: Cache<String, (u64, Arc<CompiledRules>)>,
    settings: crate::settings::CachedSettings,
}

/// How long the router keeps the settings (see [`crate::settings::SETTINGS_TTL`]). Workstreams
/// and rules are read on every event.
pub use crate::settings::SETTINGS_TTL;

impl RouterService {
    pub fn new(deps: RouterDeps) -> Self {
        Self {
            deps,
            jobs: None,
            rules: Cache::default(),
            settings: Default::default(),
        }
    }

    /// Runs the unfinished background jobs ([`crate::jobs`]: account purges) at the end of each
    /// [`RouterService::run_schedule`], within [`SCHEDULE_BUDGET`].
    pub fn with_purge_jobs(mut self, jobs: PurgeJobs) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// The settings, cached for [`SETTINGS_TTL`].
    pub(crate) async fn settings(&self) -> Result<Settings, RouteError> {
        Ok(self.settings.get(self.deps.config.as_ref()).await?)
    }

    pub fn deps(&self) -> &RouterDeps {
        &self.deps
    }

    /// A batch from the inbound FIFO queue: in order, a failure holding back the rest of its group.
    pub async fn handle_batch(&self, messages: &[(BatchMessage, u32)]) -> BatchOutcome {
        let receive_counts: HashMap<&str, u32> = messages
            .iter()
            .map(|(m, count)| (m.message_id.as_str(), *count))
            .collect();
        let batch: Vec<BatchMessage> = messages.iter().map(|(m, _)| m.clone()).collect();
        process_fifo_batch(&batch, |message| {
            let count = receive_counts
                .get(message.message_id.as_str())
                .copied()
                .unwrap_or(1);
            let body = message.body.clone();
            async move { self.process_message(&body, count).await.map(drop) }
        })
        .await
    }

    /// One inbound queue message (see `omniline_domain::line::envelope::InboundEvent`). `receive_count`
    /// is how many times the queue has delivered it (1 the first time).
    pub async fn process_message(
        &self,
        body: &str,
        receive_count: u32,
    ) -> Result<Processed, RouteError> {
        let inbound = decide::Inbound::parse(body)?;
        let conversations = &self.deps.conversations;
        let now_secs = (self.deps.clock)().div_euclid(1000);
        if let Some(outbox) = conversations
            .redelivered_outbox(&inbound.account_id, &inbound.event_id, now_secs)
            .await?
        {
            // The send after its commit may have failed (or the worker died): queued again.
            self.queue_outbox(&outbox).await?;
            tracing::info!(account_id = %inbound.account_id, event_id = %inbound.event_id, "duplicate event skipped");
            return Ok(Processed::Duplicate);
        }
        let Some(account) = self.deps.accounts.get(&inbound.account_id).await? else {
            tracing::warn!(account_id = %inbound.account_id, event_id = %inbound.event_id, "event for a deleted account dropped");
            return Ok(Processed::AccountGone);
        };
        let workstream = self
            .deps
            .workstreams
            .workstream_for_account(&account.id)
            .await?;
        for _ in 0..COMMIT_ATTEMPTS {
            let plan =
                process::plan(self, &account, workstream.as_ref(), &inbound, receive_count).await?;
            // Search terms before the commit: idempotent puts, so a failure retries the event
            // and nothing the commit stores is left out of the index (a commit that loses to a
            // concurrent one is planned and indexed again, into the conversation it lands in).
            if let Some(entry) = decide::search_entry(&inbound, &plan) {
                conversations
                    .index_search(&entry, plan.commit.retain_until)
                    .await?;
            }
            // A conversation given to an agent is stored only while the agent's slot holds it.
            let outcome = match &plan.new_assignment {
                Some((agent_id, _)) => {
                    conversations
                        .commit_assignment(&plan.commit, agent_id)
                        .await?
                }
                None => conversations.commit(&plan.commit).await?,
            };
            match outcome {
                CommitOutcome::Committed => {
                    if let Some((agent_id, conversation_id)) = &plan.release_after_commit {
                        self.deps.agents.release(agent_id, conversation_id).await?;
                    }
                    if let Some(nonce) = &plan.consumed_nonce {
                        // Used once: a replayed nonce links nothing. A failure leaves a nonce
                        // that can only relink the same user to the same contact.
                        if let Err(e) = self
                            .deps
                            .config
                            .delete_doc(omniline_domain::contacts::LINK_NONCE_KIND, nonce)
                            .await
                        {
                            tracing::error!(account_id = %account.id, error = %e, "used account-link nonce not deleted");
                        }
                    }
                    // Only now that the commit landed. A failure fails the message: its retry
                    // finds the event recorded and queues the recorded outbox.
                    self.queue_outbox(&plan.commit.outbox).await?;
                    tracing::info!(
                        account_id = %account.id,
                        event_id = %inbound.event_id,
                        event_type = %inbound.event.event_type(),
                        conversation_id = ?plan.conversation_id,
                        outbound = plan.commit.outbox.len(),
                        "event routed"
                    );
                    return Ok(Processed::Stored {
                        conversation_id: plan.conversation_id,
                    });
                }
                outcome => {
                    // An assignment made for a conversation that did not get stored with it is
                    // undone, unless the stored conversation has that agent (another worker
                    // assigned the same one: the assignment is shared, not ours to undo). The
                    // retry re-reads the conversation and distributes it again.
                    if let Some((agent_id, conversation_id)) = &plan.new_assignment {
                        self.release_unless_kept(agent_id, conversation_id).await?;
                    }
                    if outcome == CommitOutcome::Duplicate {
                        // A concurrent worker recorded the event: its outbox, not this plan's,
                        // is the one that stands (queued again in case that worker dies first).
                        if let Some(outbox) = conversations
                            .recorded_outbox(&inbound.account_id, &inbound.event_id, now_secs)
                            .await?
                        {
                            self.queue_outbox(&outbox).await?;
                        }
                        return Ok(Processed::Duplicate);
                    }
                    tracing::info!(event_id = %inbound.event_id, "conversation changed concurrently; retrying");
                }
            }
        }
        Err(RouteError::Contention)
    }

    /// The scheduled work (EventBridge every minute on AWS, a timer locally): close idle
    /// conversations, then give waiting ones to agents who have room (freed by a close, or back
    /// online), so a conversation waits at most a tick after an agent becomes free; then the
    /// retention sweep and, with [`RouterService::with_purge_jobs`], pages of the unfinished
    /// account purges.
    pub async fn run_schedule(&self) -> Result<ScheduleOutcome, RouteError> {
        // First, so that no conversation goes to an agent who has left.
        let away = self.expire_presence().await?;
        // Slots held by wrap-ups whose time passed come back before distributing.
        let wrapped = self.end_expired_wrap_ups().await?;
        // One read of the open conversations for the run (the sparse index, then the items by
        // key): each step below works on it and keeps it current with what it wrote.
        let mut open = self.deps.conversations.open_conversations().await?;
        // Offers not answered in time go back to waiting (and then to the next agent).
        let offers_expired = self.expire_offers_among(&mut open).await?;
        let closed = self.close_idle_among(&mut open).await?;
        let assigned = self.distribute_among(open).await?;
        let now_secs = (self.deps.clock)().div_euclid(1000);
        let expired = self.deps.conversations.sweep_expired(now_secs).await?;
        if expired > 0 {
            tracing::info!(
                expired,
                "retention: expired conversations and customers deleted"
            );
        }
        // Hourly: every account's message quota, so that its alerts come unasked.
        let deps = &self.deps;
        match crate::quota::check_quotas(
            deps.config.as_ref(),
            deps.accounts.as_ref(),
            &deps.tokens,
            deps.line.as_ref(),
            (deps.clock)(),
        )
        .await
        {
            Ok(Some(read)) => tracing::info!(accounts = read, "message quotas read"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "message quotas not read"),
        }
        if let Some(jobs) = &self.jobs {
            let run = jobs.run(SCHEDULE_BUDGET).await?;
            if run.pages > 0 {
                tracing::info!(
                    pages = run.pages,
                    finished = run.finished,
                    "background jobs advanced"
                );
            }
        }
        Ok(ScheduleOutcome {
            closed,
            assigned,
            away,
            wrapped,
            offers_expired,
        })
    }

    /// Sets `away` every `available` or `busy` agent not heard from for the settings' presence
    /// timeout ([`omniline_domain::agents::presence_lapsed`]); their conversations stay theirs.
    /// Reads the agents' directory (one Query of it, not a scan of a table: it grows with the
    /// team, not the traffic) and writes only the lapsed, each conditionally, so a heartbeat
    /// landing meanwhile wins. Returns how many were set away.
    pub async fn expire_presence(&self) -> Result<usize, RouteError> {
        // Read afresh (one read a minute), not through the cache the messages use.
        let (settings, _) = crate::settings::load_settings(self.deps.config.as_ref()).await?;
        let timeout = settings.presence_timeout();
        if timeout == 0 {
            return Ok(0);
        }
        let now = (self.deps.clock)();
        let cutoff = omniline_domain::agents::presence_cutoff(now, timeout);
        let mut away = 0;
        for agent in self.deps.agents.list_agents().await? {
            if !omniline_domain::agents::presence_lapsed(&agent, now, timeout) {
                continue;
            }
            if self.deps.agents.expire_presence(&agent.id, cutoff).await? {
                tracing::info!(agent_id = %agent.id, timeout_seconds = timeout, "presence timed out: away");
                away += 1;
            }
        }
        Ok(away)
    }

    /// The earliest heartbeat of an agent that may be given new work now (see
    /// [`omniline_domain::agents::presence_cutoff`]): between the timeout and the schedule's
    /// next run, a lapsed agent is already passed over.
    pub(crate) async fn presence_cutoff(&self, now: i64) -> Result<i64, RouteError> {
        let timeout = self.settings().await?.presence_timeout();
        Ok(omniline_domain::agents::presence_cutoff(now, timeout))
    }

    /// Assigns waiting conversations of push-mode workstreams (not with a bot), highest priority
    /// then oldest first, to the least busy available agent of their queue. Returns how many were
    /// assigned.
    pub async fn distribute_waiting(&self) -> Result<usize, RouteError> {
        let open = self.deps.conversations.open_conversations().await?;
        self.distribute_among(open).await
    }

    /// [`RouterService::distribute_waiting`] over `open`, the open conversations as read.
    async fn distribute_among(&self, open: Vec<Conversation>) -> Result<usize, RouteError> {
        let now = (self.deps.clock)();
        let mut waiting: Vec<_> = open
            .into_iter()
            .filter(|c| {
                c.state == ConversationState::Waiting
                    && c.bot_id.is_none()
                    && c.agent_id.is_none()
                    && c.queue_id.is_some()
                    // On offer: the agent answers, or the expiry step takes it back first.
                    && c.offer.is_none()
            })
            .collect();
        waiting.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.opened_at.cmp(&b.opened_at))
        });
        let mut workstreams: HashMap<String, Option<Workstream>> = HashMap::new();
        let mut assigned = 0;
        for conversation in waiting {
            let ws = self
                .workstream_of(&mut workstreams, &conversation.account_id)
                .await?;
            if let Some(ws) = ws {
                if self.assign_waiting(&conversation, ws, now).await?.is_some() {
                    assigned += 1;
                } else if !conversation.declined_by.is_empty() {
                    // Nobody took it this run: those who declined it are in the next round.
                    self.forget_declines(&conversation, now).await?;
                }
            }
        }
        Ok(assigned)
    }

    /// Clears who declined a waiting conversation (nobody else took it this run), so that the
    /// next run may offer it to any agent again, the best first.
    async fn forget_declines(&self, c: &Conversation, now: i64) -> Result<(), RouteError> {
        let mut updated = c.clone();
        updated.declined_by.clear();
        updated.version = c.version + 1;
        let event_id = format!("declines:{}:{}", c.id, c.version);
        let commit = self.update_commit(event_id, updated, None, now).await?;
        // Lost to a concurrent change: the next run sees the conversation as it is then.
        self.deps.conversations.commit(&commit).await?;
        Ok(())
    }

    /// Takes back every offer whose time passed (the schedule, before distributing): the
    /// conversation waits again, the agent is added to those who declined it, its slot is
    /// given back, and the miss is counted ([`omniline_ports::AgentStore::record_offer`]: the
    /// second in a row sets the agent away). Each is a version-conditional commit, so an
    /// accept racing it wins or loses whole. Returns how many offers expired.
    pub async fn expire_offers(&self) -> Result<usize, RouteError> {
        let mut open = self.deps.conversations.open_conversations().await?;
        self.expire_offers_among(&mut open).await
    }

    /// [`RouterService::expire_offers`] over `open` (the open conversations as read), each one
    /// taken back replaced by what was stored.
    async fn expire_offers_among(&self, open: &mut [Conversation]) -> Result<usize, RouteError> {
        let now = (self.deps.clock)();
        let mut expired = 0;
        for slot in open.iter_mut() {
            let c = slot.clone();
            let Some(offer) = c.offer.clone().filter(|o| o.expires_at <= now) else {
                continue;
            };
            let mut updated = c.clone();
            updated.offer = None;
            if !updated.declined_by.contains(&offer.agent_id) {
                updated.declined_by.push(offer.agent_id.clone());
            }
            updated.version = c.version + 1;
            let event_id = format!("offerExpired:{}:{}", c.id, c.version);
            let commit = self
                .update_commit(event_id, updated.clone(), None, now)
                .await?;
            if self.deps.conversations.commit(&commit).await? != CommitOutcome::Committed {
                // Accepted or changed meanwhile: nothing to take back.
                continue;
            }
            *slot = updated;
            expired += 1;
            self.deps.agents.release(&offer.agent_id, &c.id).await?;
            let away = self.deps.agents.record_offer(&offer.agent_id, true).await?;
            tracing::info!(conversation_id = %c.id, agent_id = %offer.agent_id, away, "offer expired");
        }
        Ok(expired)
    }

    /// Gives one waiting conversation (of a push-mode workstream, not with a bot) to the least
    /// busy available agent of its queue, queues the `agentAssigned` message and commits.
    /// Returns the stored conversation when it was assigned.
    pub(crate) async fn assign_waiting(
        &self,
        conversation: &Conversation,
        ws: &Workstream,
        now: i64,
    ) -> Result<Option<Conversation>, RouteError> {
        if ws.distribution != omniline_domain::workstream::Distribution::Push
            || conversation.state != ConversationState::Waiting
            || conversation.bot_id.is_some()
            || conversation.agent_id.is_some()
        {
            return Ok(None);
        }
        let customer = self.customer_of(conversation).await?;
        let previous_version = conversation.version;
        let mut updated = conversation.clone();
        let mut outbox = decide::Outbox::default();
        let mut notifications = Vec::new();
        let cutoff = self.presence_cutoff(now).await?;
        let assignment = process::distribute(
            &self.deps,
            cutoff,
            Some(ws),
            &mut updated,
            customer.as_ref(),
            now,
            false,
            &mut outbox,
            &mut notifications,
        )
        .await?;
        let Some((agent_id, conversation_id)) = assignment else {
            return Ok(None);
        };
        let id_prefix = format!("assign:{}:{previous_version}", conversation.id);
        let messages = decide::scheduled_messages(&updated, &outbox, &id_prefix, now);
        updated.version = previous_version + 1;
        let mut commit = self
            .update_commit(id_prefix, updated.clone(), None, now)
            .await?;
        // Committed with the assignment, queued once it landed: a lost commit tells no one.
        commit.outbox = messages;
        commit.notifications = notifications;
        match self
            .deps
            .conversations
            .commit_assignment(&commit, &agent_id)
            .await?
        {
            CommitOutcome::Committed => {
                // After the commit a failure is logged (as agent operations do): the assignment
                // stands, and the message stays in the commit's record; no redelivery re-reads
                // it (the next run finds the conversation assigned).
                if let Err(e) = self.queue_outbox(&commit.outbox).await {
                    tracing::error!(%conversation_id, %agent_id, error = %e, "assignment message not queued");
                }
                let what = if updated.offer.is_some() {
                    "offered"
                } else {
                    "assigned"
                };
                tracing::info!(%conversation_id, %agent_id, what, "waiting conversation given out");
                Ok(Some(updated))
            }
            // The conversation moved on meanwhile (a message, a close), or the slot was given
            // back by another worker's undo: undo the assignment; the next tick tries again.
            CommitOutcome::Conflict | CommitOutcome::Duplicate => {
                self.release_unless_kept(&agent_id, &conversation_id)
                    .await?;
                Ok(None)
            }
        }
    }

    /// Closes conversations idle for longer than their workstream's `autoCloseMinutes`, releasing
    /// their agents. Returns how many were closed.
    pub async fn close_idle_conversations(&self) -> Result<usize, RouteError> {
        let mut open = self.deps.conversations.open_conversations().await?;
        self.close_idle_among(&mut open).await
    }

    /// [`RouterService::close_idle_conversations`] over `open` (the open conversations as
    /// read); the ones it closed leave it.
    async fn close_idle_among(&self, open: &mut Vec<Conversation>) -> Result<usize, RouteError> {
        let now = (self.deps.clock)();
        let mut closed = 0;
        let mut workstreams: HashMap<String, Option<Workstream>> = HashMap::new();
        let mut closed_ids = Vec::new();
        for conversation in open.iter() {
            let Some(minutes) = self
                .workstream_of(&mut workstreams, &conversation.account_id)
                .await?
                .and_then(|ws| ws.auto_close_minutes)
            else {
                continue;
            };
            if now - conversation.last_activity_at < i64::from(minutes) * 60_000 {
                continue;
            }
            let mut update = conversation.clone();
            update.state = ConversationState::Closed;
            update.closed_at = Some(now);
            update.close_reason = Some("inactive".into());
            update.offer = None;
            update.version += 1;
            let event_id = format!("autoclose:{}:{}", conversation.id, conversation.version);
            let commit = self.update_commit(event_id, update, None, now).await?;
            if self.deps.conversations.commit(&commit).await? == CommitOutcome::Committed {
                // The agent's slot, or the offered agent's.
                if let Some(agent_id) = conversation.slot_holder() {
                    if let Err(e) = self.deps.agents.release(agent_id, &conversation.id).await {
                        tracing::error!(conversation_id = %conversation.id, %agent_id, error = %e, "agent not released after auto-close");
                    }
                }
                tracing::info!(conversation_id = %conversation.id, "conversation closed after inactivity");
                closed += 1;
                closed_ids.push(conversation.id.clone());
            }
        }
        open.retain(|c| !closed_ids.contains(&c.id));
        Ok(closed)
    }

    /// The workstream of `account_id`, read once per run into `read`.
    async fn workstream_of<'a>(
        &self,
        read: &'a mut HashMap<String, Option<Workstream>>,
        account_id: &str,
    ) -> Result<Option<&'a Workstream>, RouteError> {
        if !read.contains_key(account_id) {
            let ws = self
                .deps
                .workstreams
                .workstream_for_account(account_id)
                .await?;
            read.insert(account_id.to_owned(), ws);
        }
        Ok(read.get(account_id).and_then(Option::as_ref))
    }

    /// The customer of a 1:1 conversation (none for groups and rooms).
    pub(crate) async fn customer_of(
        &self,
        c: &Conversation,
    ) -> Result<Option<Customer>, PortError> {
        match c.source_type {
            SourceType::User => {
                self.deps
                    .conversations
                    .customer(&c.account_id, &c.source_id)
                    .await
            }
            _ => Ok(None),
        }
    }

    /// The commit of `updated` (the stored conversation changed, at its version + 1) under
    /// `event_id`, with an optional transcript entry, at `now`.
    pub(crate) async fn update_commit(
        &self,
        event_id: String,
        updated: Conversation,
        transcript: Option<TranscriptEntry>,
        now: i64,
    ) -> Result<EventCommit, RouteError> {
        Ok(EventCommit {
            account_id: updated.account_id.clone(),
            event_id,
            now_secs: now.div_euclid(1000),
            dedupe_expires_at: now.div_euclid(1000) + DEDUPE_RETENTION_SECS,
            retain_until: self.settings().await?.retain_until(now),
            conversation: Some(ConversationWrite::Update(updated)),
            transcript,
            retract_message_id: None,
            customer: None,
            outbox: Vec::new(),
            notifications: Vec::new(),
        })
    }

    /// Queues `outbox` for the outbound function (nothing when empty). Ids are deterministic:
    /// queueing a message again is deduplicated by the outbound queue and function.
    async fn queue_outbox(
        &self,
        outbox: &[omniline_domain::outbound::OutboundMessage],
    ) -> Result<(), RouteError> {
        if outbox.is_empty() {
            return Ok(());
        }
        let queued: Vec<_> = outbox.iter().map(|m| m.to_queue_message()).collect();
        self.deps.outbound.send(&queued).await?;
        Ok(())
    }

    /// Releases `agent_id`'s hold on the conversation unless the stored conversation is open with
    /// that agent: in one step atomic with respect to [`ConversationStore::commit_assignment`]
    /// (see [`ConversationStore::release_unless_assigned`]). A slot can be shared by two
    /// assignments in flight (the second finds it already held): reading the conversation and then
    /// releasing would give back a slot that the other one commits meanwhile.
    async fn release_unless_kept(
        &self,
        agent_id: &str,
        conversation_id: &str,
    ) -> Result<(), RouteError> {
        let released = self
            .deps
            .conversations
            .release_unless_assigned(agent_id, conversation_id)
            .await?;
        tracing::debug!(%conversation_id, %agent_id, released, "claimed slot undone unless kept");
        Ok(())
    }

    /// The account's channel access token (cached by [`ChannelTokens`]).
    async fn access_token(&self, account_id: &str) -> Result<SecretString, RouteError> {
        Ok(self.deps.tokens.token(account_id).await?)
    }

    /// The workstream's rules, compiled once per (workstream, version).
    fn compiled_rules(&self, workstream: &Workstream) -> Arc<CompiledRules> {
        if let Some(((version, rules), _)) = self.rules.get(&workstream.id) {
            if version == workstream.version {
                return rules;
            }
        }
        let compiled = match CompiledRules::compile(&workstream.rules) {
            Ok(rules) => Arc::new(rules),
            Err(e) => {
                // Rules are validated when stored; a bad set routes everything to the default queue.
                tracing::error!(workstream_id = %workstream.id, error = %e, "routing rules do not compile");
                Arc::new(CompiledRules::default())
            }
        };
        self.rules.insert(
            workstream.id.clone(),
            (workstream.version, Arc::clone(&compiled)),
        );
        compiled
    }
}
