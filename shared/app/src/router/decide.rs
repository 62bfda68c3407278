//! What one event changes, decided without I/O: [`decide`] takes the facts the router read for
//! the event ([`Facts`]: the customer and LINE's profile, the open conversation, a survey's
//! conversation, an account-link nonce, the workstream and its rules) and the clock reading, and
//! returns a [`Decision`]: the customer, the conversation (created, classified, with the bot to
//! ask), the media to download or delete, the transcript entry and the automated messages.
//!
//! [`super::process`] gathers the facts and applies the decision. Asking the bot and claiming an
//! agent are I/O whose answers decide what follows; what is decided from those answers is here too
//! ([`apply_bot_answer`], [`Decision::wants_agent`], [`assignment_candidates`], [`assigned`],
//! [`unassigned_notice`], [`Decision::message_notification`], [`Decision::into_plan`]).
//!
//! Nothing here awaits, reads a clock, a store or the network: the decisions are unit-tested with
//! plain values (the tests below).

use crate::router::RouteError;
use omniline_domain::agents::{
    rank_agents, Agent, AgentNotification, NOTIFICATION_ASSIGNED, NOTIFICATION_MESSAGE,
};
use omniline_domain::bot::{BotCustomer, BotError, BotReply, BotRequest};
use omniline_domain::contacts::LinkNonce;
use omniline_domain::conversation::{
    parse_survey_postback, ChatGroup, Consent, Conversation, ConversationState, ConversationWrite,
    Customer, EventCommit, LastMessage, SourceType, TranscriptEntry, DEDUPE_RETENTION_SECS,
    UNKNOWN_CUSTOMER_NAME,
};
use omniline_domain::line::api::{GroupSummary, Profile};
use omniline_domain::line::envelope::InboundEvent;
use omniline_domain::line::events::{
    ContentProviderType, Event, LinkResult, MessageContent, Source,
};
use omniline_domain::outbound::{text_message, Origin, OutboundMessage};
use omniline_domain::routing::routing_context;
use omniline_domain::routing::rules::CompiledRules;
use omniline_domain::search::SearchEntry;
use omniline_domain::workstream::{render_template, BotConfig, GroupChats, Trigger, Workstream};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A parsed inbound queue message.
pub(crate) struct Inbound {
    pub account_id: String,
    pub received_at: i64,
    pub event: Event,
    pub raw: Value,
    /// `webhookEventId`, or a hash of the event JSON when LINE sent none (as the webhook does).
    pub event_id: String,
}

impl Inbound {
    pub fn parse(body: &str) -> Result<Self, RouteError> {
        let inbound: InboundEvent =
            serde_json::from_str(body).map_err(|e| RouteError::Malformed(e.to_string()))?;
        let raw: Value = serde_json::from_str(inbound.event.get())
            .map_err(|e| RouteError::Malformed(e.to_string()))?;
        let event = Event::from_value(raw.clone());
        let event_id = match event.webhook_event_id() {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => omniline_domain::line::envelope::sha256_hex(inbound.event.get().as_bytes()),
        };
        Ok(Self {
            account_id: inbound.account_id,
            received_at: inbound.received_at,
            event,
            raw,
            event_id,
        })
    }
}

/// Automated and bot messages produced by one event, in order.
#[derive(Default)]
pub(crate) struct Outbox {
    items: Vec<(Origin, Option<Trigger>, Value)>,
}

impl Outbox {
    /// The workstream's automated message for `trigger` in the customer's language, if enabled.
    pub(crate) fn automated(
        &mut self,
        ws: Option<&Workstream>,
        trigger: Trigger,
        customer: Option<&Customer>,
        agent_name: Option<&str>,
    ) {
        let Some(ws) = ws else { return };
        let language = customer.and_then(|c| c.language.as_deref());
        if let Some(message) = ws.automated_message(trigger, language) {
            let name = customer.map(|c| c.display_name.as_str());
            let text = render_template(&message.text, name, agent_name);
            self.items
                .push((Origin::Automated, Some(trigger), text_message(&text)));
        }
    }

    /// Appends a message object.
    pub(crate) fn push(&mut self, origin: Origin, trigger: Option<Trigger>, message: Value) {
        self.items.push((origin, trigger, message));
    }

    fn has(&self, trigger: Trigger) -> bool {
        self.items.iter().any(|(_, t, _)| *t == Some(trigger))
    }
}

/// A notification for `agent_id` about conversation `c`, with the customer's fields (a
/// placeholder name without a customer).
pub(crate) fn agent_notification(
    id: String,
    kind: &str,
    agent_id: &str,
    c: &Conversation,
    customer: Option<&Customer>,
    now: i64,
) -> AgentNotification {
    AgentNotification {
        id,
        agent_id: agent_id.to_owned(),
        conversation_id: c.id.clone(),
        account_id: c.account_id.clone(),
        kind: kind.to_owned(),
        customer_user_id: customer.map(|c| c.user_id.clone()),
        customer_name: customer
            .map(|c| c.display_name.clone())
            .unwrap_or_else(|| UNKNOWN_CUSTOMER_NAME.to_owned()),
        customer_picture_url: customer.and_then(|c| c.picture_url.clone()),
        customer_language: customer.and_then(|c| c.language.clone()),
        queue_id: c.queue_id.clone().unwrap_or_default(),
        created_at: now,
        delivery: None,
        expires_at: None,
    }
}

/// How long after it was sent a rating survey can be answered by a bare number.
pub(crate) const SURVEY_TEXT_ANSWER_MS: i64 = 24 * 3_600_000;

/// How long a customer without a LINE profile keeps the placeholder before LINE is asked again.
const PROFILE_RETRY_MS: i64 = 3_600_000;

/// How old a found profile may be before the customer's next message asks LINE again (a new
/// name or picture reaches the agents within a day).
pub(crate) const PROFILE_REFRESH_MS: i64 = 24 * 3_600_000;

/// A score typed as a message: only a number, ASCII or full-width digits (`5`, `５`, ` 10 `).
fn typed_score(text: &str) -> Option<u8> {
    let digits: String = text
        .trim()
        .chars()
        .map(|ch| match ch {
            '０'..='９' => {
                char::from_u32(u32::from(ch) - u32::from('０') + u32::from('0')).unwrap_or(ch)
            }
            other => other,
        })
        .collect();
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Records `score` as the answer of the conversation's rating survey if it is within the scale
/// and the survey was not answered yet. Returns whether it was recorded.
pub(crate) fn record_survey_score(c: &mut Conversation, score: u8, now: i64) -> bool {
    let Some(survey) = c.survey.as_mut() else {
        return false;
    };
    let in_scale = survey.scale.is_some_and(|max| (1..=max).contains(&score));
    if !in_scale || survey.score.is_some() {
        return false;
    }
    survey.score = Some(score);
    survey.answered_at = Some(now);
    true
}

/// The chat an event belongs to (user, group or room), and its sender.
pub(crate) fn source_parts(
    source: Option<&Source>,
) -> (Option<(SourceType, String)>, Option<String>) {
    match source {
        Some(Source::User(u)) => (
            u.user_id.clone().map(|id| (SourceType::User, id)),
            u.user_id.clone(),
        ),
        Some(Source::Group(g)) => (
            Some((SourceType::Group, g.group_id.clone())),
            g.user_id.clone(),
        ),
        Some(Source::Room(r)) => (
            Some((SourceType::Room, r.room_id.clone())),
            r.user_id.clone(),
        ),
        _ => (None, None),
    }
}

/// A conversation id derived from the event that opens it, so a retried event reuses it (and an
/// agent assignment made for it stays idempotent).
pub(crate) fn conversation_id_for(account_id: &str, event_id: &str) -> String {
    let digest = Sha256::digest(format!("conversation:{account_id}:{event_id}").as_bytes());
    hex::encode(&digest[..16])
}

/// A customer's turn: what opens a conversation, goes to the bot, or asks for an agent.
pub(crate) fn customer_turn(event: &Event) -> bool {
    matches!(event, Event::Message(_) | Event::Postback(_))
}

// ---------------------------------------------------------------------------------------------
// The facts, and what to read to gather them.
// ---------------------------------------------------------------------------------------------

/// What LINE answered for the sender's profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum ProfileFetch {
    /// Not asked: the stored customer has a profile, or was asked recently ([`needs_profile`]).
    #[default]
    NotAsked,
    /// Asked: the profile, or `None` when LINE has none for us or could not be reached.
    Answered(Option<Profile>),
}

/// The sender's customer as read: the stored record and, when it needed one, LINE's profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CustomerFacts {
    pub stored: Option<Customer>,
    pub profile: ProfileFetch,
}

/// Whether LINE is asked for the sender's profile: a new customer, one still without a profile
/// whose placeholder is older than an hour, or one whose profile was fetched a day ago or more.
pub(crate) fn needs_profile(stored: Option<&Customer>, now: i64) -> bool {
    match stored {
        None => true,
        Some(c) if c.profile_found => {
            now - c.profile_fetched_at.unwrap_or(c.updated_at) >= PROFILE_REFRESH_MS
        }
        Some(c) => now - c.updated_at >= PROFILE_RETRY_MS,
    }
}

/// The account-link nonce an event brings back and that is read to verify it: a successful
/// `accountLink` from a known sender with a non-empty nonce.
pub(crate) fn link_nonce_to_read<'e>(event: &'e Event, sender: Option<&str>) -> Option<&'e str> {
    match event {
        Event::AccountLink(link)
            if sender.is_some()
                && link.link.result == LinkResult::Ok
                && !link.link.nonce.is_empty() =>
        {
            Some(&link.link.nonce)
        }
        _ => None,
    }
}

/// What is read to find the conversation an event answers the survey of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SurveyLookup<'e> {
    /// A survey quick-reply postback: the conversation it names.
    Named { conversation_id: &'e str, score: u8 },
    /// A bare number from a user with no open conversation: the source's conversations.
    OfSource { score: u8 },
}

/// Whether the event may answer a survey, and what to read to know which.
pub(crate) fn survey_lookup<'e>(
    event: &'e Event,
    source: &(SourceType, String),
    has_open: bool,
) -> Option<SurveyLookup<'e>> {
    match event {
        Event::Postback(p) => {
            parse_survey_postback(&p.postback.data).map(|(conversation_id, score)| {
                SurveyLookup::Named {
                    conversation_id,
                    score,
                }
            })
        }
        Event::Message(m) if !has_open && source.0 == SourceType::User => match &m.message {
            MessageContent::Text(text) => {
                typed_score(&text.text).map(|score| SurveyLookup::OfSource { score })
            }
            _ => None,
        },
        _ => None,
    }
}

/// What a [`SurveyLookup`] read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SurveyFacts {
    /// The conversation a survey postback names (`None`: unknown).
    Named {
        score: u8,
        conversation: Option<Box<Conversation>>,
    },
    /// A typed score, with the conversations of the source.
    OfSource {
        score: u8,
        conversations: Vec<Conversation>,
    },
}

/// Everything [`decide`] needs beyond the clock: the event and what the router read for it.
pub(crate) struct Facts<'a> {
    pub account_id: &'a str,
    pub ws: Option<&'a Workstream>,
    /// The workstream's compiled routing rules.
    pub rules: Option<Arc<CompiledRules>>,
    pub inbound: &'a Inbound,
    /// The sender's customer (ignored for an event without a sender).
    pub customer: CustomerFacts,
    /// The sender's attributes (admins') and tags (agents'), read when a rule tests them and
    /// the event may open a conversation.
    pub attributes: omniline_domain::conversation::CustomerAttributes,
    /// The stored document of the nonce [`link_nonce_to_read`] names, if it exists.
    pub link_nonce: Option<String>,
    /// The source's open conversation.
    pub open: Option<Conversation>,
    /// What the [`survey_lookup`] read, if the event may answer a survey.
    pub survey: Option<SurveyFacts>,
    /// LINE's summary of the group chat the event came from, when [`needs_group_summary`].
    pub group: GroupFetch,
}

/// LINE's summary of a group chat, when it was asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum GroupFetch {
    #[default]
    NotAsked,
    /// The summary, or `None` when LINE has none for us (404).
    Answered(Option<GroupSummary>),
}

/// Whether LINE is asked for the group's summary: an event of a group chat the workstream
/// handles that has (or opens) a conversation whose summary is missing or a day old.
pub(crate) fn needs_group_summary(
    event: &Event,
    ws: Option<&Workstream>,
    open: Option<&Conversation>,
    now: i64,
) -> bool {
    let (source, _) = source_parts(event.source());
    matches!(source, Some((SourceType::Group, _)))
        && !ws.is_some_and(|w| w.group_chats == GroupChats::Ignore)
        && (open.is_some() || customer_turn(event))
        && ChatGroup::stale(open.and_then(|c| c.group.as_ref()), now)
}

// ---------------------------------------------------------------------------------------------
// The decision.
// ---------------------------------------------------------------------------------------------

/// How the conversation is written with the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Create,
    Update,
}

/// What one event changes and what the router does for it.
pub(crate) struct Decision {
    pub account_id: String,
    pub event_id: String,
    pub source: Option<(SourceType, String)>,
    /// The customer, written with the event when `customer_changed`.
    pub customer: Option<Customer>,
    pub customer_changed: bool,
    /// The account-link nonce the event used: deleted once the commit succeeded.
    pub consumed_nonce: Option<String>,
    pub conversation: Option<Conversation>,
    pub write: Option<Write>,
    /// (agent, conversation) to release once the commit succeeded (the conversation closed).
    pub release_after_commit: Option<(String, String)>,
    /// The LINE message whose content is downloaded into object storage.
    pub download_media: Option<String>,
    /// The stored content of an unsent message, deleted.
    pub delete_media_key: Option<String>,
    /// The bot asked with the customer's turn.
    pub bot: Option<BotConfig>,
    /// The transcript entry (the media's outcome is added once downloaded).
    pub transcript: TranscriptEntry,
    /// Unsend: the message whose transcript entry is retracted.
    pub retract_message_id: Option<String>,
    /// Automated messages so far (the bot's and the distribution's follow).
    pub outbox: Outbox,
}

/// Decides what the event changes, from the gathered facts and the clock reading `now` (epoch
/// ms).
pub(crate) fn decide(facts: Facts<'_>, now: i64) -> Decision {
    let Facts {
        account_id,
        ws,
        rules,
        inbound,
        customer,
        attributes: facts_attributes,
        link_nonce,
        open,
        survey,
        group,
    } = facts;
    let event = &inbound.event;
    let event_time = event.timestamp().unwrap_or(inbound.received_at);
    let (source, sender) = source_parts(event.source());
    let mut outbox = Outbox::default();

    // The customer (the sender, also in groups): profile on first contact, consent, links.
    let (customer, customer_changed, consumed_nonce) = match &sender {
        Some(user_id) => {
            let (c, changed, nonce) = decide_customer(
                account_id,
                user_id,
                customer,
                event,
                link_nonce.as_deref(),
                now,
            );
            (Some(c), changed, nonce)
        }
        None => (None, false, None),
    };

    // The conversation: a survey answer goes to the (closed) conversation it answers and opens
    // none.
    let survey = match (&source, survey) {
        (Some(source), Some(found)) => survey_answer(account_id, source, found, now),
        _ => None,
    };
    let ignored_group = ws.is_some_and(|w| w.group_chats == GroupChats::Ignore)
        && matches!(&source, Some((SourceType::Group | SourceType::Room, _)));
    let opens_conversation = customer_turn(event) && !ignored_group;
    let (mut conversation, write) = match (survey, open, &source) {
        (Some((mut c, score)), _, _) => {
            c.version += 1;
            c.last_activity_at = c.last_activity_at.max(event_time).max(inbound.received_at);
            if record_survey_score(&mut c, score, now) {
                tracing::info!(conversation_id = %c.id, score, "survey answered");
            } else {
                tracing::info!(conversation_id = %c.id, score, "survey answer not recorded (answered before, or out of scale)");
            }
            (Some(c), Some(Write::Update))
        }
        (None, Some(mut c), _) => {
            c.version += 1;
            // Inactivity counts from when we received it: a late redelivery is fresh activity.
            c.last_activity_at = c.last_activity_at.max(event_time).max(inbound.received_at);
            // The customer writing ends a snooze.
            if customer_turn(event) {
                c.snoozed_until = None;
            }
            (Some(c), Some(Write::Update))
        }
        (None, None, Some((source_type, source_id))) if opens_conversation => {
            let mut c = Conversation::opened(
                conversation_id_for(account_id, &inbound.event_id),
                account_id,
                *source_type,
                source_id,
                ConversationState::Waiting,
                event_time,
            );
            c.workstream_id = ws.map(|w| w.id.clone());
            c.queue_id = ws.map(|w| w.default_queue.clone());
            c.bot_id = ws.and_then(|w| w.bot.as_ref()).map(|b| b.id.clone());
            c.last_activity_at = event_time.max(inbound.received_at);
            (Some(c), Some(Write::Create))
        }
        _ => (None, None),
    };
    // The inbox's unread count and preview: a customer's message in an open conversation.
    if let (Some(c), Event::Message(_)) = (conversation.as_mut(), event) {
        if c.state != ConversationState::Closed {
            c.unread = c.unread.saturating_add(1);
            c.messages_in = c.messages_in.saturating_add(1);
            c.last_message = LastMessage::of(&inbound.raw["message"], "in", event_time)
                .or(c.last_message.take());
        }
    }
    if let (Some(c), GroupFetch::Answered(summary)) = (conversation.as_mut(), group) {
        if c.source_type == SourceType::Group {
            // A summary LINE did not give keeps the one the conversation had.
            let kept = c.group.take();
            c.group = Some(match summary {
                Some(s) => ChatGroup {
                    name: Some(s.group_name),
                    picture_url: s.picture_url,
                    fetched_at: now,
                },
                None => ChatGroup {
                    name: kept.as_ref().and_then(|g| g.name.clone()),
                    picture_url: kept.and_then(|g| g.picture_url),
                    fetched_at: now,
                },
            });
        }
    }
    let release_after_commit = conversation
        .as_mut()
        .and_then(|c| group_membership(c, event, sender.as_deref(), now));

    // Media and unsupported content.
    let download_media = decide_media(event, ws, customer.as_ref(), &mut outbox);
    let delete_media_key = match event {
        // Retracted content is removed from storage too.
        Event::Unsend(unsend) => {
            omniline_domain::media_links::inbound_media_key(account_id, &unsend.unsend.message_id)
        }
        _ => None,
    };

    // Classification and the bot.
    let mut bot = None;
    if let Some(c) = conversation.as_mut() {
        if write == Some(Write::Create) {
            classify(
                c,
                ws,
                rules.as_deref(),
                event,
                customer.as_ref(),
                &facts_attributes,
                event_time,
                &mut outbox,
            );
        }
        if customer_turn(event) && c.state == ConversationState::Waiting && c.bot_id.is_some() {
            bot = bot_to_ask(ws, c);
        }
    }

    // Transcript.
    let transcript_conversation = match (&conversation, &source) {
        (Some(c), _) => c.id.clone(),
        (None, Some((_, source_id))) => format!("log:{account_id}:{source_id}"),
        (None, None) => format!("log:{account_id}"),
    };
    let transcript = TranscriptEntry {
        conversation_id: transcript_conversation,
        event_id: inbound.event_id.clone(),
        timestamp: event_time,
        event_type: event.event_type().to_owned(),
        // In a group or room each line names its writer, as their profile named them then.
        sender_name: match &source {
            Some((SourceType::Group | SourceType::Room, _)) => {
                customer.as_ref().map(|c| c.display_name.clone())
            }
            _ => None,
        },
        sender_user_id: sender,
        message_id: match event {
            Event::Message(m) => m.message.id().map(str::to_owned),
            _ => None,
        },
        event: inbound.raw.clone(),
        retracted: false,
    };
    let retract_message_id = match event {
        Event::Unsend(u) => Some(u.unsend.message_id.clone()),
        _ => None,
    };

    Decision {
        account_id: account_id.to_owned(),
        event_id: inbound.event_id.clone(),
        source,
        customer,
        customer_changed,
        consumed_nonce,
        conversation,
        write,
        release_after_commit,
        download_media,
        delete_media_key,
        bot,
        transcript,
        retract_message_id,
        outbox,
    }
}

/// The sender's customer: the stored one, or a new one with LINE's profile (a placeholder name
/// when LINE has none for us); the consent a follow or unfollow gives; the contact an account
/// link verifies. Returns it, whether it changed, and the account-link nonce it used.
fn decide_customer(
    account_id: &str,
    user_id: &str,
    facts: CustomerFacts,
    event: &Event,
    link_nonce: Option<&str>,
    now: i64,
) -> (Customer, bool, Option<String>) {
    let (mut c, mut changed) = match (facts.stored, facts.profile) {
        (Some(stored), ProfileFetch::NotAsked) => (stored, false),
        (stored, fetched) => {
            let mut customer = stored.unwrap_or_else(|| Customer {
                account_id: account_id.to_owned(),
                user_id: user_id.to_owned(),
                display_name: UNKNOWN_CUSTOMER_NAME.to_owned(),
                picture_url: None,
                language: None,
                profile_found: false,
                consent: Consent::Unknown,
                linked_contact_id: None,
                created_at: now,
                updated_at: now,
                profile_fetched_at: None,
            });
            // A refresh LINE could not answer keeps the profile the customer had.
            customer.profile_fetched_at = Some(now);
            if let ProfileFetch::Answered(Some(p)) = fetched {
                customer.display_name = p.display_name;
                customer.picture_url = p.picture_url;
                if p.language.is_some() {
                    customer.language = p.language;
                }
                customer.profile_found = true;
            }
            customer.updated_at = now;
            (customer, true)
        }
    };
    let consent = match event {
        Event::Follow(_) => Some(Consent::Followed),
        Event::Unfollow(_) => Some(Consent::Unfollowed),
        _ => None,
    };
    if let Some(consent) = consent {
        c.consent = consent;
        changed = true;
    }
    let mut consumed_nonce = None;
    if let Event::AccountLink(link) = event {
        if link.link.result == LinkResult::Ok {
            if let Some((contact_id, nonce)) =
                linked_contact(account_id, &c.user_id, &link.link.nonce, link_nonce, now)
            {
                tracing::info!(%account_id, %contact_id, "customer linked to a contact");
                c.linked_contact_id = Some(contact_id);
                consumed_nonce = Some(nonce);
                changed = true;
            }
        }
    }
    if changed {
        c.updated_at = now;
    }
    (c, changed, consumed_nonce)
}

/// The contact an `accountLink` event links the customer to: its nonce must be one we issued
/// (`stored`, the nonce's document), for this account and user, less than ten minutes ago.
/// Returns (contact id, nonce).
fn linked_contact(
    account_id: &str,
    user_id: &str,
    nonce: &str,
    stored: Option<&str>,
    now: i64,
) -> Option<(String, String)> {
    if nonce.is_empty() {
        return None;
    }
    let Some(doc) = stored else {
        tracing::warn!(%account_id, "account link with an unknown nonce: not linked");
        return None;
    };
    let stored: LinkNonce = match serde_json::from_str(doc) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(%account_id, error = %e, "stored account-link nonce unreadable: not linked");
            return None;
        }
    };
    if stored.account_id != account_id || stored.user_id != user_id || stored.nonce != nonce {
        tracing::warn!(%account_id, "account link nonce issued for another user or account: not linked");
        return None;
    }
    // As LINE's link token: ten minutes.
    if now - stored.created_at > omniline_domain::contacts::LINK_LIFETIME_MS {
        tracing::warn!(%account_id, "account link nonce expired: not linked");
        return None;
    }
    Some((stored.contact_id, nonce.to_owned()))
}

/// The closed conversation an event answers the survey of, and the score it gives: a survey
/// quick-reply postback naming a conversation of the same account and source, or a bare number
/// from a source with no open conversation whose latest closed conversation has an unanswered
/// rating survey sent within [`SURVEY_TEXT_ANSWER_MS`].
fn survey_answer(
    account_id: &str,
    source: &(SourceType, String),
    found: SurveyFacts,
    now: i64,
) -> Option<(Conversation, u8)> {
    match found {
        SurveyFacts::Named {
            conversation: None, ..
        } => {
            tracing::info!(%account_id, "survey answer for an unknown conversation; handled as a postback");
            None
        }
        SurveyFacts::Named {
            conversation: Some(c),
            score,
        } => {
            if c.account_id != account_id || c.source_id != source.1 {
                tracing::warn!(%account_id, conversation_id = %c.id, "survey answer for another chat's conversation ignored");
                return None;
            }
            Some((*c, score))
        }
        SurveyFacts::OfSource {
            score,
            conversations,
        } => {
            let latest_closed = conversations
                .into_iter()
                .filter(|c| c.state == ConversationState::Closed)
                .max_by_key(|c| (c.closed_at.unwrap_or(c.opened_at), c.opened_at));
            let answerable = latest_closed.filter(|c| {
                c.survey.as_ref().is_some_and(|s| {
                    s.score.is_none()
                        && now - s.sent_at <= SURVEY_TEXT_ANSWER_MS
                        && s.scale.is_some_and(|max| (1..=max).contains(&score))
                })
            });
            answerable.map(|c| (c, score))
        }
    }
}

/// Group and room membership (the sender, joined and left members); the bot leaving closes the
/// conversation. Returns the (agent, conversation) to release once that close is committed.
fn group_membership(
    c: &mut Conversation,
    event: &Event,
    sender: Option<&str>,
    now: i64,
) -> Option<(String, String)> {
    if c.source_type == SourceType::User {
        return None;
    }
    if let Some(user) = sender {
        if !c.members.iter().any(|m| m == user) {
            c.members.push(user.to_owned());
        }
    }
    match event {
        Event::MemberJoined(e) => {
            for user in e.joined.user_ids() {
                if !c.members.iter().any(|m| m == user) {
                    c.members.push(user.to_owned());
                }
            }
            None
        }
        Event::MemberLeft(e) => {
            let left: Vec<&str> = e.left.user_ids().collect();
            c.members.retain(|m| !left.contains(&m.as_str()));
            None
        }
        Event::Leave(_) => {
            c.state = ConversationState::Closed;
            c.closed_at = Some(now);
            c.close_reason = Some("bot left the chat".into());
            // The agent is released once the close is committed.
            c.agent_id.clone().map(|agent| (agent, c.id.clone()))
        }
        _ => None,
    }
}

/// A message's content: the LINE message id to download (images, video and audio LINE holds,
/// files), or the automated answer to an attachment the workstream does not accept or to content
/// LINE's API does not describe.
fn decide_media(
    event: &Event,
    ws: Option<&Workstream>,
    customer: Option<&Customer>,
    outbox: &mut Outbox,
) -> Option<String> {
    let Event::Message(message) = event else {
        return None;
    };
    let downloadable = match &message.message {
        MessageContent::Image(m) => {
            (m.content_provider.kind == ContentProviderType::Line).then_some(m.id.as_str())
        }
        MessageContent::Video(m) => {
            (m.content_provider.kind == ContentProviderType::Line).then_some(m.id.as_str())
        }
        MessageContent::Audio(m) => {
            (m.content_provider.kind == ContentProviderType::Line).then_some(m.id.as_str())
        }
        MessageContent::File(m) => Some(m.id.as_str()),
        _ => None,
    };
    let is_attachment = matches!(
        message.message,
        MessageContent::Image(_)
            | MessageContent::Video(_)
            | MessageContent::Audio(_)
            | MessageContent::File(_)
    );
    let accepted = ws.is_none_or(|w| w.attachments.customer_can_send);
    let mut download = None;
    if is_attachment && !accepted {
        outbox.automated(ws, Trigger::AttachmentsNotAccepted, customer, None);
    } else if let Some(message_id) = downloadable {
        download = Some(message_id.to_owned());
    }
    if matches!(message.message, MessageContent::Unknown(_)) {
        outbox.automated(ws, Trigger::UnsupportedMessageType, customer, None);
    }
    download
}

/// A new conversation: the greeting and the outside-hours notice, and the workstream's first
/// matching routing rule (queue, priority, skills, bot).
#[allow(clippy::too_many_arguments)]
fn classify(
    c: &mut Conversation,
    ws: Option<&Workstream>,
    rules: Option<&CompiledRules>,
    event: &Event,
    customer: Option<&Customer>,
    attributes: &omniline_domain::conversation::CustomerAttributes,
    event_time: i64,
    outbox: &mut Outbox,
) {
    // A group chat is greeted by its name (LINE's group summary), not by its first writer's:
    // `{customerName}` is the group's there; the writer's language still picks the text.
    let group_named = c
        .group
        .as_ref()
        .and_then(|g| g.name.clone())
        .filter(|_| c.source_type == SourceType::Group)
        .and_then(|name| {
            customer.map(|writer| Customer {
                display_name: name,
                profile_found: true,
                ..writer.clone()
            })
        });
    let greeted = group_named.as_ref().or(customer);
    outbox.automated(ws, Trigger::ConversationStarted, greeted, None);
    let Some(ws) = ws else { return };
    if !ws.is_business_hours(event_time) {
        outbox.automated(Some(ws), Trigger::OutsideBusinessHours, greeted, None);
    }
    let mut ctx = routing_context(event, customer, ws, event_time);
    ctx.attributes = attributes.attributes.clone();
    ctx.customer_tags = attributes.tags.clone();
    ctx.conversation_tags = c.tags.clone();
    if let Some(matched) = rules.and_then(|rules| rules.evaluate(&ctx)) {
        c.queue_id = Some(matched.queue.clone());
        c.priority = matched.priority;
        c.skills = matched.skills.clone();
        c.rule_id = Some(matched.rule_id.clone());
        if let Some(bot) = &matched.bot {
            c.bot_id = Some(bot.clone());
        }
    }
}

/// The workstream's bot the conversation is with; a bot the workstream does not configure hands
/// the conversation off (to the distribution).
fn bot_to_ask(ws: Option<&Workstream>, c: &mut Conversation) -> Option<BotConfig> {
    let bot = ws
        .and_then(|w| w.bot.as_ref())
        .filter(|b| Some(&b.id) == c.bot_id.as_ref());
    if bot.is_none() {
        tracing::warn!(conversation_id = %c.id, bot_id = ?c.bot_id, "bot not configured in the workstream; handing off");
        c.bot_id = None;
    }
    bot.cloned()
}

// ---------------------------------------------------------------------------------------------
// What follows from the bot's and the agents' answers.
// ---------------------------------------------------------------------------------------------

/// What is POSTed to the bot for the customer's turn.
pub(crate) fn bot_request(
    account_id: &str,
    bot: &BotConfig,
    c: &Conversation,
    inbound: &Inbound,
    customer: Option<&Customer>,
) -> BotRequest {
    BotRequest {
        bot_id: bot.id.clone(),
        account_id: account_id.to_owned(),
        conversation_id: c.id.clone(),
        event_id: inbound.event_id.clone(),
        customer: BotCustomer {
            user_id: customer.map(|c| c.user_id.clone()),
            display_name: customer
                .map(|c| c.display_name.clone())
                .unwrap_or_else(|| UNKNOWN_CUSTOMER_NAME.to_owned()),
            language: customer.and_then(|c| c.language.clone()),
        },
        event: inbound.raw.clone(),
    }
}

/// How asking the bot went.
#[derive(Debug)]
pub(crate) enum BotAnswer {
    /// The bot's secret is not stored: it was not asked.
    SecretMissing,
    Replied(BotReply),
    Failed(BotError),
}

/// How a bot handed a conversation off (or failed, which hands it off too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handoff {
    /// The reply named the queue (the rules are not asked again).
    pub queue_named: bool,
}

/// The bot's messages are queued; `handoff`, a failure or a missing secret routes the
/// conversation to a human queue (the reply's, if it names one). A handoff's `context` is kept
/// as the workstream declares it (the rest dropped, by name in the log). Returns the handoff,
/// if there was one.
pub(crate) fn apply_bot_answer(
    c: &mut Conversation,
    bot_id: &str,
    answer: BotAnswer,
    ws: Option<&Workstream>,
    outbox: &mut Outbox,
) -> Option<Handoff> {
    match answer {
        BotAnswer::SecretMissing => {
            tracing::warn!(conversation_id = %c.id, %bot_id, "bot secret missing; handing off");
            c.bot_id = None;
            Some(Handoff { queue_named: false })
        }
        BotAnswer::Replied(reply) => {
            for message in reply.messages {
                outbox.push(Origin::Bot, None, message);
            }
            if !reply.handoff {
                return None;
            }
            tracing::info!(conversation_id = %c.id, "bot handed off");
            c.bot_id = None;
            if !reply.context.is_empty() {
                let (kept, dropped) = match ws {
                    Some(ws) => ws.accept_context(&reply.context),
                    None => (Default::default(), reply.context.keys().cloned().collect()),
                };
                if !dropped.is_empty() {
                    // Names only: the values may be personal data.
                    tracing::warn!(conversation_id = %c.id, %bot_id, ?dropped, "handoff context not declared by the workstream (or of another type, or too large): dropped");
                }
                c.context.extend(kept);
            }
            let queue_named = reply.queue.is_some();
            if let Some(queue) = reply.queue {
                c.queue_id = Some(queue);
            }
            Some(Handoff { queue_named })
        }
        BotAnswer::Failed(e) => {
            tracing::warn!(conversation_id = %c.id, error = %e, "bot failed; handing off to a human");
            c.bot_id = None;
            Some(Handoff { queue_named: false })
        }
    }
}

/// A conversation the bot handed off without naming a queue: the workstream's first matching
/// rule, with the conversation's context and the customer's attributes, sets its queue,
/// priority and skills (a rule's bot is not asked again); none matching leaves them.
pub(crate) fn route_handoff(
    c: &mut Conversation,
    ws: &Workstream,
    rules: &CompiledRules,
    event: &Event,
    customer: Option<&Customer>,
    attributes: omniline_domain::conversation::CustomerAttributes,
    at: i64,
) {
    let mut ctx = routing_context(event, customer, ws, at);
    ctx.context = c.context.clone();
    ctx.attributes = attributes.attributes;
    ctx.customer_tags = attributes.tags;
    ctx.conversation_tags = c.tags.clone();
    if let Some(matched) = rules.evaluate(&ctx) {
        c.queue_id = Some(matched.queue.clone());
        c.priority = matched.priority;
        c.skills = matched.skills.clone();
        c.rule_id = Some(matched.rule_id.clone());
    }
}

/// The agents a conversation is offered to, in order: an agent already holding it (an earlier
/// attempt that failed after assigning, or another worker's claim in flight) keeps it, so no slot
/// is held twice; otherwise the available agents with the skills, least busy first.
pub(crate) fn assignment_candidates<'a>(agents: &'a [Agent], c: &Conversation) -> Vec<&'a Agent> {
    let holding: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.active_conversations.contains(&c.id))
        .collect();
    if holding.is_empty() {
        rank_agents(agents, &c.skills)
    } else {
        holding
    }
}

/// `agent` claimed the conversation: it becomes active with them, the customer is told, and the
/// agent's notification is returned.
/// The conversation is offered to `agent` (on a slot claimed for it) until `now + timeout_ms`:
/// it keeps waiting, and the agent's notification (kind `offer`, with the deadline) is
/// returned. The customer is told nothing yet: the `agentAssigned` message goes at the accept.
pub(crate) fn offered(
    c: &mut Conversation,
    agent: &Agent,
    customer: Option<&Customer>,
    now: i64,
    timeout_ms: i64,
) -> AgentNotification {
    let expires_at = now + timeout_ms;
    c.offer = Some(omniline_domain::conversation::Offer {
        agent_id: agent.id.clone(),
        expires_at,
    });
    let mut notification = agent_notification(
        AgentNotification::offer_id(&c.id, &agent.id, c.version),
        omniline_domain::agents::NOTIFICATION_OFFER,
        &agent.id,
        c,
        customer,
        now,
    );
    notification.expires_at = Some(expires_at);
    notification
}

pub(crate) fn assigned(
    ws: &Workstream,
    c: &mut Conversation,
    agent: &Agent,
    customer: Option<&Customer>,
    now: i64,
    outbox: &mut Outbox,
) -> AgentNotification {
    c.agent_id = Some(agent.id.clone());
    c.assigned_at.get_or_insert(now);
    c.state = ConversationState::Active;
    let notification = agent_notification(
        AgentNotification::assigned_id(&c.id, &agent.id, c.version),
        NOTIFICATION_ASSIGNED,
        &agent.id,
        c,
        customer,
        now,
    );
    outbox.automated(
        Some(ws),
        Trigger::AgentAssigned,
        customer,
        Some(&agent.name),
    );
    notification
}

/// No agent took a new conversation: the no-agent notice, or the queued notice if the workstream
/// has none and it was not queued yet.
pub(crate) fn unassigned_notice(ws: &Workstream, customer: Option<&Customer>, outbox: &mut Outbox) {
    if ws
        .automated_message(
            Trigger::NoAgentAvailable,
            customer.and_then(|c| c.language.as_deref()),
        )
        .is_some()
    {
        outbox.automated(Some(ws), Trigger::NoAgentAvailable, customer, None);
    } else if !outbox.has(Trigger::Queued) {
        outbox.automated(Some(ws), Trigger::Queued, customer, None);
    }
}

impl Decision {
    /// Whether the conversation is distributed to an agent (after the bot): the customer's turn
    /// in a waiting conversation with neither a bot nor an agent.
    pub(crate) fn wants_agent(&self, event: &Event) -> bool {
        self.conversation.as_ref().is_some_and(|c| {
            customer_turn(event)
                && c.state == ConversationState::Waiting
                && c.bot_id.is_none()
                && c.agent_id.is_none()
        })
    }

    /// The notification of the agent holding the conversation about the customer's message; not
    /// for a new conversation nor one just assigned (the assignment notifies).
    pub(crate) fn message_notification(
        &self,
        inbound: &Inbound,
        just_assigned: bool,
        now: i64,
    ) -> Option<AgentNotification> {
        let c = self.conversation.as_ref()?;
        let agent_id = c.agent_id.as_deref()?;
        let notify = matches!(inbound.event, Event::Message(_))
            && self.write != Some(Write::Create)
            && !just_assigned
            && c.state == ConversationState::Active;
        notify.then(|| {
            agent_notification(
                format!("{}:{}:message", c.id, inbound.event_id),
                NOTIFICATION_MESSAGE,
                agent_id,
                c,
                self.customer.as_ref(),
                now,
            )
        })
    }

    /// The automated and bot messages to send, replying with the event's token when it has one.
    pub(crate) fn outbound_messages(&self, inbound: &Inbound, now: i64) -> Vec<OutboundMessage> {
        outbound_messages(
            &self.account_id,
            self.conversation.as_ref(),
            self.source.as_ref(),
            inbound,
            &self.outbox,
            now,
        )
    }

    /// What the caller commits: `media` is the download's outcome (recorded in the transcript
    /// entry), `new_assignment` the agent claimed for the conversation, `outbox` the outbound
    /// messages (committed with the event, queued once the commit landed), `retain_until` the
    /// retention settings' expiry.
    pub(crate) fn into_plan(
        self,
        media: Option<Value>,
        new_assignment: Option<(String, String)>,
        outbox: Vec<OutboundMessage>,
        retain_until: Option<i64>,
        now: i64,
    ) -> Plan {
        let mut transcript = self.transcript;
        if let (Some(media), Some(obj)) = (media, transcript.event.as_object_mut()) {
            obj.insert("omnilineMedia".into(), media);
        }
        let conversation_id = self.conversation.as_ref().map(|c| c.id.clone());
        let customer_changed = self.customer_changed;
        let commit = EventCommit {
            account_id: self.account_id,
            event_id: self.event_id,
            now_secs: now.div_euclid(1000),
            dedupe_expires_at: now.div_euclid(1000) + DEDUPE_RETENTION_SECS,
            retain_until,
            conversation: match (self.conversation, self.write) {
                (Some(c), Some(Write::Create)) => Some(ConversationWrite::Create(c)),
                (Some(c), Some(Write::Update)) => Some(ConversationWrite::Update(c)),
                _ => None,
            },
            transcript: Some(transcript),
            retract_message_id: self.retract_message_id,
            customer: self.customer.filter(|_| customer_changed),
            outbox,
            notifications: Vec::new(),
        };
        Plan {
            commit,
            conversation_id,
            new_assignment,
            release_after_commit: self.release_after_commit,
            consumed_nonce: self.consumed_nonce,
        }
    }
}

/// What the caller commits.
pub(crate) struct Plan {
    pub commit: EventCommit,
    pub conversation_id: Option<String>,
    /// (agent, conversation) assigned while planning, to undo if the commit conflicts.
    pub new_assignment: Option<(String, String)>,
    /// (agent, conversation) to release once the commit succeeded (the conversation closed).
    pub release_after_commit: Option<(String, String)>,
    /// An account-link nonce consumed by the event: deleted once the commit succeeded.
    pub consumed_nonce: Option<String>,
}

/// What the event adds to the account's search index: the terms of a customer's text message
/// (and of their name when the plan writes their profile), for the conversation it lands in.
/// `None` for anything else (not a text, no user, no conversation).
pub(crate) fn search_entry(inbound: &Inbound, plan: &Plan) -> Option<SearchEntry> {
    let conversation_id = plan.conversation_id.as_deref()?;
    let message = inbound.raw.get("message")?;
    if !matches!(message.get("type")?.as_str()?, "text" | "textV2") {
        return None;
    }
    let text = message.get("text")?.as_str()?;
    // 1:1 chats only (see `one_to_one_user`).
    let user_id = omniline_domain::search::one_to_one_user(&inbound.raw)?;
    let at = inbound
        .raw
        .get("timestamp")
        .and_then(Value::as_i64)
        .unwrap_or(inbound.received_at);
    let name = plan
        .commit
        .customer
        .as_ref()
        .filter(|c| c.user_id == user_id && c.profile_found)
        .map(|c| c.display_name.as_str())
        .unwrap_or("");
    SearchEntry::of(
        &inbound.account_id,
        user_id,
        conversation_id,
        at,
        &[text, name],
    )
}

/// Outbound messages for work done outside an inbound event (the schedule): pushed, no reply
/// token; `id_prefix` makes their ids deterministic.
pub(crate) fn scheduled_messages(
    conversation: &Conversation,
    outbox: &Outbox,
    id_prefix: &str,
    now: i64,
) -> Vec<OutboundMessage> {
    outbox
        .items
        .chunks(5)
        .enumerate()
        .map(|(i, chunk)| OutboundMessage {
            id: format!("{id_prefix}:{i}"),
            account_id: conversation.account_id.clone(),
            conversation_id: conversation.id.clone(),
            to: conversation.source_id.clone(),
            origin: Origin::Automated,
            trigger: Some(
                chunk
                    .iter()
                    .filter_map(|(_, t, _)| t.map(|t| t.as_str()))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            messages: chunk.iter().map(|(_, _, m)| m.clone()).collect(),
            reply_token: None,
            reply_token_received_at: None,
            sender: None,
            created_at: now,
            agent_id: None,
        })
        .collect()
}

/// One outbound message per five LINE message objects; the first carries the reply token.
fn outbound_messages(
    account_id: &str,
    conversation: Option<&Conversation>,
    source: Option<&(SourceType, String)>,
    inbound: &Inbound,
    outbox: &Outbox,
    now: i64,
) -> Vec<OutboundMessage> {
    let Some((_, to)) = source else {
        return Vec::new();
    };
    if outbox.items.is_empty() {
        return Vec::new();
    }
    let conversation_id = conversation
        .map(|c| c.id.clone())
        .unwrap_or_else(|| format!("log:{account_id}:{to}"));
    let reply_token = inbound.event.reply_token().map(str::to_owned);
    outbox
        .items
        .chunks(5)
        .enumerate()
        .map(|(i, chunk)| {
            let triggers: Vec<&str> = chunk
                .iter()
                .filter_map(|(_, t, _)| t.map(|t| t.as_str()))
                .collect();
            let origin = if chunk.iter().all(|(o, _, _)| *o == Origin::Bot) {
                Origin::Bot
            } else {
                Origin::Automated
            };
            OutboundMessage {
                id: format!("{}:router:{i}", inbound.event_id),
                account_id: account_id.to_owned(),
                conversation_id: conversation_id.clone(),
                to: to.clone(),
                origin,
                trigger: (!triggers.is_empty()).then(|| triggers.join(",")),
                messages: chunk.iter().map(|(_, _, m)| m.clone()).collect(),
                reply_token: if i == 0 { reply_token.clone() } else { None },
                reply_token_received_at: if i == 0 && reply_token.is_some() {
                    Some(inbound.received_at)
                } else {
                    None
                },
                sender: None,
                created_at: now,
                agent_id: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The decisions with plain values: no store, no LINE, no bot, no clock but the `now` given.

    use super::*;
    use omniline_domain::agents::AgentStatus;
    use omniline_domain::conversation::SurveyState;
    use serde_json::json;

    const ACCOUNT: &str = "acc1";
    /// 2026-11-25T03:00:00Z: a Wednesday, noon in Tokyo.
    const T0: i64 = 1_795_575_600_000;
    /// The clock reading the decisions are given: after the event was received.
    const NOW: i64 = T0 + 5_000;

    fn workstream(overrides: Value) -> Workstream {
        let mut ws = json!({
            "id": "ws1", "accountId": ACCOUNT, "name": "Support", "language": "en",
            "distribution": "push", "defaultQueue": "q-general",
            "attachments": {"customerCanSend": true},
            "timezone": "Asia/Tokyo",
            "businessHours": [{"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "18:00"}],
            "automatedMessages": [
                {"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}.", "enabled": true},
                {"trigger": "outsideBusinessHours", "language": "en", "text": "We are closed now.", "enabled": true},
                {"trigger": "attachmentsNotAccepted", "language": "en", "text": "No attachments.", "enabled": true},
                {"trigger": "unsupportedMessageType", "language": "en", "text": "Cannot read that.", "enabled": true},
                {"trigger": "agentAssigned", "language": "en", "text": "{agentName} will help you.", "enabled": true},
                {"trigger": "queued", "language": "en", "text": "You are in the queue.", "enabled": true}
            ],
            "rules": [
                {"id": "billing", "name": "Billing", "condition": {"field": "message.text", "op": "contains", "value": "invoice"},
                 "result": {"queue": "q-billing", "priority": 5, "skills": ["billing"]}},
                {"id": "sales", "name": "Sales", "condition": {"field": "message.text", "op": "contains", "value": "buy"},
                 "result": {"queue": "q-sales", "priority": 1, "bot": "sales-bot"}}
            ],
            "version": 1
        });
        if let (Some(base), Some(extra)) = (ws.as_object_mut(), overrides.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(ws).unwrap()
    }

    fn inbound(event: Value) -> Inbound {
        let body =
            json!({"accountId": ACCOUNT, "destination": "Ubot", "receivedAt": T0, "event": event});
        Inbound::parse(&body.to_string()).unwrap()
    }

    fn common(kind: &str, id: &str, source: Value) -> Value {
        json!({"type": kind, "mode": "active", "timestamp": T0, "webhookEventId": id,
            "deliveryContext": {"isRedelivery": false}, "replyToken": format!("rt-{id}"), "source": source})
    }

    fn user(id: &str) -> Value {
        json!({"type": "user", "userId": id})
    }

    fn with(mut event: Value, key: &str, value: Value) -> Value {
        if let Some(obj) = event.as_object_mut() {
            obj.insert(key.into(), value);
        }
        event
    }

    fn text(id: &str, text: &str) -> Value {
        with(
            common("message", id, user("Ubob")),
            "message",
            json!({"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": text}),
        )
    }

    fn facts<'a>(ws: Option<&'a Workstream>, inbound: &'a Inbound) -> Facts<'a> {
        Facts {
            account_id: ACCOUNT,
            ws,
            rules: ws.map(|w| Arc::new(CompiledRules::compile(&w.rules).unwrap())),
            inbound,
            customer: CustomerFacts::default(),
            attributes: Default::default(),
            link_nonce: None,
            open: None,
            survey: None,
            group: GroupFetch::NotAsked,
        }
    }

    fn customer(user_id: &str) -> Customer {
        Customer {
            account_id: ACCOUNT.into(),
            user_id: user_id.into(),
            display_name: "Bob".into(),
            picture_url: None,
            language: Some("en".into()),
            profile_found: true,
            consent: Consent::Unknown,
            linked_contact_id: None,
            created_at: T0 - 86_400_000,
            updated_at: T0 - 86_400_000,
            profile_fetched_at: Some(T0 - 3_600_000),
        }
    }

    fn profile(name: &str, language: Option<&str>) -> Profile {
        Profile {
            user_id: "Ubob".into(),
            display_name: name.into(),
            picture_url: Some("https://example.com/p.png".into()),
            status_message: None,
            language: language.map(str::to_owned),
        }
    }

    fn conversation(
        id: &str,
        source: (SourceType, &str),
        state: ConversationState,
    ) -> Conversation {
        Conversation {
            id: id.into(),
            account_id: ACCOUNT.into(),
            source_type: source.0,
            source_id: source.1.into(),
            state,
            workstream_id: Some("ws1".into()),
            queue_id: Some("q-general".into()),
            priority: 0,
            skills: vec![],
            bot_id: None,
            agent_id: None,
            rule_id: None,
            members: vec![],
            opened_at: T0 - 600_000,
            last_activity_at: T0 - 600_000,
            closed_at: None,
            close_reason: None,
            group: None,
            survey: None,
            snoozed_until: None,
            follow_up: false,
            context: Default::default(),
            offer: None,
            declined_by: Vec::new(),
            wrap_up: None,
            unread: 0,
            last_message: None,
            waiting_since: None,
            assigned_at: None,
            first_response_at: None,
            messages_in: 0,
            messages_out: 0,
            tags: Vec::new(),
            version: 3,
        }
    }

    fn texts(outbox: &Outbox) -> Vec<&str> {
        outbox
            .items
            .iter()
            .filter_map(|(_, _, m)| m["text"].as_str())
            .collect()
    }

    fn agent(id: &str, capacity: u32, active: &[&str]) -> Agent {
        Agent {
            id: id.into(),
            name: format!("Agent {id}"),
            queues: vec!["q-general".into()],
            skills: vec![],
            capacity,
            status: AgentStatus::Available,
            active_conversations: active.iter().map(|c| (*c).to_owned()).collect(),
            last_assigned_at: None,
            last_seen_at: None,
        }
    }

    #[test]
    fn typed_scores_are_bare_numbers_in_ascii_or_full_width_digits() {
        assert_eq!(typed_score("5"), Some(5));
        assert_eq!(typed_score(" 10\n"), Some(10));
        assert_eq!(typed_score("５"), Some(5));
        assert_eq!(typed_score("１０"), Some(10));
        for not_a_score in ["", " ", "5 stars", "-1", "+3", "4.5", "1000", "五", "5５x"] {
            assert_eq!(typed_score(not_a_score), None, "{not_a_score:?}");
        }
    }

    fn closed_with_survey(scale: Option<u8>, score: Option<u8>) -> Conversation {
        Conversation {
            id: "c1".into(),
            account_id: "acc".into(),
            source_type: SourceType::User,
            source_id: "U1".into(),
            state: ConversationState::Closed,
            workstream_id: None,
            queue_id: None,
            priority: 0,
            skills: vec![],
            bot_id: None,
            agent_id: None,
            rule_id: None,
            members: vec![],
            opened_at: 0,
            last_activity_at: 0,
            closed_at: Some(1),
            close_reason: Some("agent".into()),
            group: None,
            survey: Some(omniline_domain::conversation::SurveyState {
                sent_at: 1,
                scale,
                score,
                answered_at: score.map(|_| 1),
            }),
            snoozed_until: None,
            follow_up: false,
            context: Default::default(),
            offer: None,
            declined_by: Vec::new(),
            wrap_up: None,
            unread: 0,
            last_message: None,
            waiting_since: None,
            assigned_at: None,
            first_response_at: None,
            messages_in: 0,
            messages_out: 0,
            tags: Vec::new(),
            version: 2,
        }
    }

    #[test]
    fn a_score_is_recorded_once_within_the_scale() {
        let mut c = closed_with_survey(Some(5), None);
        assert!(!record_survey_score(&mut c, 0, 9));
        assert!(!record_survey_score(&mut c, 6, 9));
        assert!(record_survey_score(&mut c, 5, 9));
        assert!(!record_survey_score(&mut c, 3, 10));
        let survey = c.survey.unwrap();
        assert_eq!((survey.score, survey.answered_at), (Some(5), Some(9)));
        // A link survey has no score to record.
        let mut link = closed_with_survey(None, None);
        assert!(!record_survey_score(&mut link, 1, 9));
    }

    #[test]
    fn a_first_message_opens_a_classified_conversation_with_the_profile_and_a_greeting() {
        let ws = workstream(json!({}));
        let inbound = inbound(text("E1", "about my invoice"));
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: None,
                    profile: ProfileFetch::Answered(Some(profile("Bob", Some("en")))),
                },
                ..facts(Some(&ws), &inbound)
            },
            NOW,
        );

        let c = d.conversation.as_ref().unwrap();
        assert_eq!(d.write, Some(Write::Create));
        assert_eq!(c.id, conversation_id_for(ACCOUNT, "E1"));
        assert_eq!(c.id.len(), 32);
        assert_eq!(
            (c.source_type, c.source_id.as_str()),
            (SourceType::User, "Ubob")
        );
        assert_eq!(c.state, ConversationState::Waiting);
        assert_eq!(c.workstream_id.as_deref(), Some("ws1"));
        assert_eq!(c.queue_id.as_deref(), Some("q-billing"));
        assert_eq!(
            (c.priority, c.skills.clone()),
            (5, vec!["billing".to_owned()])
        );
        assert_eq!(c.rule_id.as_deref(), Some("billing"));
        assert_eq!((c.opened_at, c.last_activity_at, c.version), (T0, T0, 1));

        let customer = d.customer.as_ref().unwrap();
        assert!(d.customer_changed);
        assert_eq!(customer.display_name, "Bob");
        assert_eq!(customer.language.as_deref(), Some("en"));
        assert!(customer.profile_found);
        assert_eq!((customer.created_at, customer.updated_at), (NOW, NOW));

        // Noon on a Wednesday in Tokyo: open.
        assert_eq!(texts(&d.outbox), ["Hello Bob."]);
        assert!(d.bot.is_none());
        assert!(d.download_media.is_none());
        assert!(d.wants_agent(&inbound.event));
        assert_eq!(d.transcript.conversation_id, c.id);
        assert_eq!(d.transcript.sender_user_id.as_deref(), Some("Ubob"));
        assert_eq!(d.transcript.message_id.as_deref(), Some("m-E1"));
        assert_eq!(d.transcript.event_type, "message");
    }

    #[test]
    fn line_is_asked_for_a_profile_for_new_customers_and_hourly_for_placeholders() {
        assert!(needs_profile(None, NOW));
        let found = customer("Ubob");
        assert!(!needs_profile(Some(&found), NOW));
        let placeholder = Customer {
            profile_found: false,
            updated_at: NOW - PROFILE_RETRY_MS + 1,
            ..found
        };
        assert!(!needs_profile(Some(&placeholder), NOW));
        assert!(needs_profile(Some(&placeholder), NOW + 1));
    }

    #[test]
    fn a_found_profile_is_refreshed_a_day_after_it_was_fetched() {
        let found = customer("Ubob");
        let fetched = found.profile_fetched_at.unwrap();
        assert!(!needs_profile(
            Some(&found),
            fetched + PROFILE_REFRESH_MS - 1
        ));
        assert!(needs_profile(Some(&found), fetched + PROFILE_REFRESH_MS));
        // A record from before the fetch time was kept: its last change stands in.
        let old = Customer {
            profile_fetched_at: None,
            ..found.clone()
        };
        assert!(needs_profile(
            Some(&old),
            old.updated_at + PROFILE_REFRESH_MS
        ));
        assert!(!needs_profile(Some(&old), old.updated_at + 1));

        // The refresh: a new name and picture reach the customer, with the fetch time.
        let later = fetched + PROFILE_REFRESH_MS;
        let inbound = inbound(text("E9", "hi again"));
        let mut renamed = profile("Bobby", None);
        renamed.picture_url = Some("https://profile.line-scdn.net/new".into());
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: Some(found.clone()),
                    profile: ProfileFetch::Answered(Some(renamed)),
                },
                ..facts(None, &inbound)
            },
            later,
        );
        let c = d.customer.as_ref().unwrap();
        assert!(d.customer_changed);
        assert_eq!(c.display_name, "Bobby");
        assert_eq!(
            c.picture_url.as_deref(),
            Some("https://profile.line-scdn.net/new")
        );
        assert_eq!(
            c.language.as_deref(),
            Some("en"),
            "LINE sent no language: kept"
        );
        assert_eq!(c.profile_fetched_at, Some(later));

        // LINE could not answer (down, or the customer blocked the account): the profile the
        // customer had stays, and LINE is asked again a day later, not at every message.
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: Some(found.clone()),
                    profile: ProfileFetch::Answered(None),
                },
                ..facts(None, &inbound)
            },
            later,
        );
        let c = d.customer.as_ref().unwrap();
        assert_eq!((c.display_name.as_str(), c.profile_found), ("Bob", true));
        assert_eq!(c.profile_fetched_at, Some(later));
        assert!(!needs_profile(Some(c), later + 1));
    }

    #[test]
    fn a_customer_line_has_no_profile_for_gets_a_placeholder_and_a_known_one_is_not_rewritten() {
        let inbound = inbound(text("E1", "hi"));
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: None,
                    profile: ProfileFetch::Answered(None),
                },
                ..facts(None, &inbound)
            },
            NOW,
        );
        let c = d.customer.as_ref().unwrap();
        assert_eq!(c.display_name, UNKNOWN_CUSTOMER_NAME);
        assert!(!c.profile_found);
        assert!(d.customer_changed);

        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: Some(customer("Ubob")),
                    profile: ProfileFetch::NotAsked,
                },
                ..facts(None, &inbound)
            },
            NOW,
        );
        assert!(!d.customer_changed);
        assert_eq!(
            d.customer.as_ref().map(|c| c.updated_at),
            Some(T0 - 86_400_000)
        );
        // Without a workstream: a conversation on the default of nothing, and no message.
        let c = d.conversation.as_ref().unwrap();
        assert_eq!(
            (c.queue_id.as_deref(), c.workstream_id.as_deref()),
            (None, None)
        );
        assert!(d.outbox.items.is_empty());
        let plan = d.into_plan(None, None, Vec::new(), None, NOW);
        assert_eq!(plan.commit.customer, None);
    }

    #[test]
    fn follow_and_unfollow_set_the_consent() {
        let ws = workstream(json!({}));
        for (kind, consent) in [
            ("follow", Consent::Followed),
            ("unfollow", Consent::Unfollowed),
        ] {
            let inbound = inbound(with(
                common(kind, "F1", user("Ubob")),
                "follow",
                json!({"isUnblocked": false}),
            ));
            let d = decide(
                Facts {
                    customer: CustomerFacts {
                        stored: Some(customer("Ubob")),
                        profile: ProfileFetch::NotAsked,
                    },
                    ..facts(Some(&ws), &inbound)
                },
                NOW,
            );
            let c = d.customer.as_ref().unwrap();
            assert_eq!((c.consent, c.updated_at), (consent, NOW), "{kind}");
            assert!(d.customer_changed);
            // Not a customer's turn: no conversation is opened.
            assert!(d.conversation.is_none());
            assert_eq!(d.transcript.conversation_id, "log:acc1:Ubob");
        }
    }

    #[test]
    fn a_message_joins_the_open_conversation_as_fresh_activity_and_notifies_its_agent() {
        let ws = workstream(json!({}));
        // Sent ten minutes ago, received at T0.
        let late = with(
            text("E2", "about my invoice"),
            "timestamp",
            json!(T0 - 600_000),
        );
        let inbound = inbound(late);
        let mut open = conversation("c1", (SourceType::User, "Ubob"), ConversationState::Active);
        open.agent_id = Some("a1".into());
        let d = decide(
            Facts {
                open: Some(open),
                customer: CustomerFacts {
                    stored: Some(customer("Ubob")),
                    profile: ProfileFetch::NotAsked,
                },
                ..facts(Some(&ws), &inbound)
            },
            NOW,
        );
        let c = d.conversation.as_ref().unwrap();
        assert_eq!(d.write, Some(Write::Update));
        assert_eq!((c.version, c.last_activity_at), (4, T0));
        // Not classified again, no greeting, no distribution.
        assert_eq!(c.queue_id.as_deref(), Some("q-general"));
        assert!(d.outbox.items.is_empty());
        assert!(!d.wants_agent(&inbound.event));
        assert_eq!(d.transcript.timestamp, T0 - 600_000);

        let n = d.message_notification(&inbound, false, NOW).unwrap();
        assert_eq!(n.id, "c1:E2:message");
        assert_eq!(
            (n.agent_id.as_str(), n.kind.as_str()),
            ("a1", NOTIFICATION_MESSAGE)
        );
        assert_eq!((n.customer_name.as_str(), n.created_at), ("Bob", NOW));
        assert!(d.message_notification(&inbound, true, NOW).is_none());
    }

    #[test]
    fn a_bare_number_answers_the_latest_closed_survey_sent_within_a_day() {
        let source = (SourceType::User, "Ubob".to_owned());
        let inbound = inbound(text("E3", "４"));
        assert_eq!(
            survey_lookup(&inbound.event, &source, false),
            Some(SurveyLookup::OfSource { score: 4 })
        );
        assert_eq!(survey_lookup(&inbound.event, &source, true), None);

        let closed = |id: &str, closed_at: i64, sent_at: i64| {
            let mut c = conversation(id, (SourceType::User, "Ubob"), ConversationState::Closed);
            c.closed_at = Some(closed_at);
            c.survey = Some(SurveyState {
                sent_at,
                scale: Some(5),
                score: None,
                answered_at: None,
            });
            c
        };
        let surveyed = |sent_at: i64| SurveyFacts::OfSource {
            score: 4,
            conversations: vec![
                closed("older", NOW - 7_200_000, NOW - 7_200_000),
                closed("latest", NOW - 3_600_000, sent_at),
            ],
        };

        let d = decide(
            Facts {
                survey: Some(surveyed(NOW - SURVEY_TEXT_ANSWER_MS)),
                ..facts(None, &inbound)
            },
            NOW,
        );
        let c = d.conversation.as_ref().unwrap();
        assert_eq!((c.id.as_str(), d.write), ("latest", Some(Write::Update)));
        let survey = c.survey.as_ref().unwrap();
        assert_eq!((survey.score, survey.answered_at), (Some(4), Some(NOW)));
        assert_eq!(c.state, ConversationState::Closed);
        assert!(!d.wants_agent(&inbound.event));

        // A day and a millisecond later, the number is a message that opens a conversation.
        let d = decide(
            Facts {
                survey: Some(surveyed(NOW - SURVEY_TEXT_ANSWER_MS - 1)),
                ..facts(None, &inbound)
            },
            NOW,
        );
        assert_eq!(d.write, Some(Write::Create));
    }

    #[test]
    fn a_survey_postback_for_another_chat_is_handled_as_a_postback() {
        let event = with(
            common("postback", "P1", user("Ubob")),
            "postback",
            json!({"data": "survey:c9:5"}),
        );
        let inbound = inbound(event);
        let source = (SourceType::User, "Ubob".to_owned());
        assert_eq!(
            survey_lookup(&inbound.event, &source, true),
            Some(SurveyLookup::Named {
                conversation_id: "c9",
                score: 5
            })
        );
        let mut other = conversation(
            "c9",
            (SourceType::User, "Ualice"),
            ConversationState::Closed,
        );
        other.survey = Some(SurveyState {
            sent_at: NOW,
            scale: Some(5),
            score: None,
            answered_at: None,
        });
        let d = decide(
            Facts {
                survey: Some(SurveyFacts::Named {
                    score: 5,
                    conversation: Some(Box::new(other)),
                }),
                ..facts(None, &inbound)
            },
            NOW,
        );
        let c = d.conversation.as_ref().unwrap();
        assert_eq!(d.write, Some(Write::Create));
        assert_ne!(c.id, "c9");
    }

    fn image(id: &str, provider: &str) -> Value {
        with(
            common("message", id, user("Ubob")),
            "message",
            json!({"type": "image", "id": format!("m-{id}"), "quoteToken": "q",
                "contentProvider": {"type": provider, "originalContentUrl": "https://example.com/i.png",
                    "previewImageUrl": "https://example.com/p.png"}}),
        )
    }

    #[test]
    fn media_line_holds_is_downloaded_unless_attachments_are_turned_off() {
        let open =
            |id: &str| conversation(id, (SourceType::User, "Ubob"), ConversationState::Waiting);
        let on = workstream(json!({}));
        let off = workstream(json!({"attachments": {"customerCanSend": false}}));

        let from_line = inbound(image("I1", "line"));
        let d = decide(
            Facts {
                open: Some(open("c1")),
                ..facts(Some(&on), &from_line)
            },
            NOW,
        );
        assert_eq!(d.download_media.as_deref(), Some("m-I1"));
        assert!(d.outbox.items.is_empty());

        let external = inbound(image("I2", "external"));
        let d = decide(
            Facts {
                open: Some(open("c1")),
                ..facts(Some(&on), &external)
            },
            NOW,
        );
        assert_eq!(d.download_media, None);

        let d = decide(
            Facts {
                open: Some(open("c1")),
                ..facts(Some(&off), &from_line)
            },
            NOW,
        );
        assert_eq!(d.download_media, None);
        assert_eq!(texts(&d.outbox), ["No attachments."]);
    }

    #[test]
    fn unknown_content_opening_a_conversation_is_answered_before_the_greeting() {
        let ws = workstream(json!({}));
        let event = with(
            common("message", "X1", user("Ubob")),
            "message",
            json!({"type": "hologram", "id": "m-X1"}),
        );
        let inbound = inbound(event);
        let d = decide(facts(Some(&ws), &inbound), NOW);
        assert_eq!(texts(&d.outbox), ["Cannot read that.", "Hello LINE user."]);
    }

    #[test]
    fn an_unsend_retracts_the_entry_and_deletes_the_stored_content() {
        let event = with(
            common("unsend", "U1", user("Ubob")),
            "unsend",
            json!({"messageId": "m-I1"}),
        );
        let inbound = inbound(event);
        let d = decide(facts(None, &inbound), NOW);
        assert_eq!(d.retract_message_id.as_deref(), Some("m-I1"));
        assert_eq!(
            d.delete_media_key,
            omniline_domain::media_links::inbound_media_key(ACCOUNT, "m-I1")
        );
        assert!(d.delete_media_key.is_some());
        let plan = d.into_plan(None, None, Vec::new(), None, NOW);
        assert_eq!(plan.commit.retract_message_id.as_deref(), Some("m-I1"));
        assert_eq!(plan.commit.conversation, None);
    }

    #[test]
    fn group_members_are_tracked_and_the_bot_leaving_closes_and_releases_the_agent() {
        let group = json!({"type": "group", "groupId": "Cteam", "userId": "Ualice"});
        let mut open = conversation(
            "g1",
            (SourceType::Group, "Cteam"),
            ConversationState::Active,
        );
        open.agent_id = Some("a1".into());
        open.members = vec!["Ualice".into()];

        let joined = inbound(with(
            common(
                "memberJoined",
                "G2",
                json!({"type": "group", "groupId": "Cteam"}),
            ),
            "joined",
            json!({"members": [{"type": "user", "userId": "Udave"}, {"type": "user", "userId": "Ualice"}]}),
        ));
        let d = decide(
            Facts {
                open: Some(open.clone()),
                ..facts(None, &joined)
            },
            NOW,
        );
        assert_eq!(
            d.conversation.as_ref().unwrap().members,
            ["Ualice", "Udave"]
        );
        assert_eq!(d.release_after_commit, None);

        let left = inbound(common(
            "leave",
            "G3",
            json!({"type": "group", "groupId": "Cteam"}),
        ));
        let d = decide(
            Facts {
                open: Some(open),
                ..facts(None, &left)
            },
            NOW,
        );
        let c = d.conversation.as_ref().unwrap();
        assert_eq!(c.state, ConversationState::Closed);
        assert_eq!(c.closed_at, Some(NOW));
        assert_eq!(c.close_reason.as_deref(), Some("bot left the chat"));
        assert_eq!(
            d.release_after_commit,
            Some(("a1".to_owned(), "g1".to_owned()))
        );

        // A new member writing joins too.
        let message = inbound(with(
            with(
                common("message", "G4", group),
                "source",
                json!({"type": "group", "groupId": "Cteam", "userId": "Ueve"}),
            ),
            "message",
            json!({"type": "text", "id": "m-G4", "quoteToken": "q", "text": "hi"}),
        ));
        let mut open = conversation(
            "g1",
            (SourceType::Group, "Cteam"),
            ConversationState::Waiting,
        );
        open.members = vec!["Ualice".into()];
        let d = decide(
            Facts {
                open: Some(open),
                ..facts(None, &message)
            },
            NOW,
        );
        assert_eq!(d.conversation.as_ref().unwrap().members, ["Ualice", "Ueve"]);
    }

    #[test]
    fn a_group_conversation_carries_the_group_summary_and_each_line_its_writer() {
        let message = |id: &str| {
            inbound(with(
                common(
                    "message",
                    id,
                    json!({"type": "group", "groupId": "Cteam", "userId": "Ualice"}),
                ),
                "message",
                json!({"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": "hi"}),
            ))
        };
        let first = message("G1");
        assert!(needs_group_summary(&first.event, None, None, NOW));
        let summary = GroupSummary {
            group_id: "Cteam".into(),
            group_name: "Team Tokyo".into(),
            picture_url: Some("https://profile.line-scdn.net/g".into()),
        };
        let alice = Customer {
            display_name: "Alice".into(),
            ..customer("Ualice")
        };
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: Some(alice.clone()),
                    profile: ProfileFetch::NotAsked,
                },
                group: GroupFetch::Answered(Some(summary)),
                ..facts(None, &first)
            },
            NOW,
        );
        let c = d.conversation.clone().unwrap();
        let group = c.group.clone().unwrap();
        assert_eq!(group.name.as_deref(), Some("Team Tokyo"));
        assert_eq!(
            group.picture_url.as_deref(),
            Some("https://profile.line-scdn.net/g")
        );
        assert_eq!(group.fetched_at, NOW);
        assert_eq!(d.transcript.sender_name.as_deref(), Some("Alice"));
        // With a workstream: the greeting names the group, not its first writer.
        let ws = workstream(json!({}));
        let d = decide(
            Facts {
                customer: CustomerFacts {
                    stored: Some(alice.clone()),
                    profile: ProfileFetch::NotAsked,
                },
                group: GroupFetch::Answered(Some(GroupSummary {
                    group_id: "Cteam".into(),
                    group_name: "Team Tokyo".into(),
                    picture_url: None,
                })),
                ..facts(Some(&ws), &first)
            },
            NOW,
        );
        assert_eq!(texts(&d.outbox).first().copied(), Some("Hello Team Tokyo."));

        // Within a day LINE is not asked; after, it is, and a summary it does not give keeps
        // the name the conversation had.
        let next = message("G2");
        assert!(!needs_group_summary(&next.event, None, Some(&c), NOW + 1));
        let later = NOW + ChatGroup::REFRESH_MS;
        assert!(needs_group_summary(&next.event, None, Some(&c), later));
        let d = decide(
            Facts {
                open: Some(c.clone()),
                group: GroupFetch::Answered(None),
                ..facts(None, &next)
            },
            later,
        );
        let group = d.conversation.unwrap().group.unwrap();
        assert_eq!(group.name.as_deref(), Some("Team Tokyo"));
        assert_eq!(group.fetched_at, later);
        // Ignored group chats and one-to-one chats never ask.
        let ws = workstream(json!({"groupChats": "ignore"}));
        assert!(!needs_group_summary(&first.event, Some(&ws), None, NOW));
        let one_to_one = inbound(text("E1", "hi"));
        assert!(!needs_group_summary(&one_to_one.event, None, None, NOW));
        let d = decide(facts(None, &one_to_one), NOW);
        assert_eq!(
            d.transcript.sender_name, None,
            "a one-to-one line names no writer"
        );
    }

    #[test]
    fn ignored_group_chats_are_only_logged() {
        let ws = workstream(json!({"groupChats": "ignore"}));
        let event = with(
            common(
                "message",
                "G1",
                json!({"type": "group", "groupId": "Cteam", "userId": "Ualice"}),
            ),
            "message",
            json!({"type": "text", "id": "m-G1", "quoteToken": "q", "text": "hi"}),
        );
        let inbound = inbound(event);
        let d = decide(facts(Some(&ws), &inbound), NOW);
        assert!(d.conversation.is_none());
        assert!(d.outbox.items.is_empty());
        assert_eq!(d.transcript.conversation_id, "log:acc1:Cteam");
        assert_eq!(
            d.customer.as_ref().map(|c| c.user_id.as_str()),
            Some("Ualice")
        );
    }

    #[test]
    fn an_account_link_links_with_a_fresh_nonce_issued_for_the_same_user() {
        let event = with(
            common("accountLink", "L1", user("Ubob")),
            "link",
            json!({"result": "ok", "nonce": "n1"}),
        );
        let inbound = inbound(event);
        assert_eq!(link_nonce_to_read(&inbound.event, Some("Ubob")), Some("n1"));
        assert_eq!(link_nonce_to_read(&inbound.event, None), None);
        let nonce = |user_id: &str, created_at: i64| {
            serde_json::to_string(&LinkNonce {
                nonce: "n1".into(),
                account_id: ACCOUNT.into(),
                user_id: user_id.into(),
                contact_id: "contact-7".into(),
                created_at,
            })
            .unwrap()
        };
        let link = |doc: Option<String>| {
            decide(
                Facts {
                    customer: CustomerFacts {
                        stored: Some(customer("Ubob")),
                        profile: ProfileFetch::NotAsked,
                    },
                    link_nonce: doc,
                    ..facts(None, &inbound)
                },
                NOW,
            )
        };

        let d = link(Some(nonce(
            "Ubob",
            NOW - omniline_domain::contacts::LINK_LIFETIME_MS,
        )));
        assert_eq!(d.consumed_nonce.as_deref(), Some("n1"));
        assert!(d.customer_changed);
        let c = d.customer.as_ref().unwrap();
        assert_eq!(
            (c.linked_contact_id.as_deref(), c.updated_at),
            (Some("contact-7"), NOW)
        );

        for not_linked in [
            Some(nonce(
                "Ubob",
                NOW - omniline_domain::contacts::LINK_LIFETIME_MS - 1,
            )),
            Some(nonce("Ualice", NOW)),
            Some("not json".to_owned()),
            None,
        ] {
            let d = link(not_linked.clone());
            assert_eq!(d.consumed_nonce, None, "{not_linked:?}");
            assert!(!d.customer_changed);
            assert_eq!(d.customer.as_ref().unwrap().linked_contact_id, None);
        }
    }

    #[test]
    fn outside_business_hours_a_new_conversation_is_told() {
        let ws = workstream(json!({}));
        // 03:00 UTC on Sunday 2026-11-29: noon in Tokyo, on a closed day.
        let sunday = T0 + 4 * 86_400_000;
        let inbound = inbound(with(text("E1", "hi"), "timestamp", json!(sunday)));
        let d = decide(facts(Some(&ws), &inbound), sunday);
        assert_eq!(texts(&d.outbox), ["Hello LINE user.", "We are closed now."]);
    }

    #[test]
    fn a_configured_bot_is_asked_and_an_unconfigured_one_hands_off() {
        let bot = json!({"id": "sales-bot", "url": "https://bot.example.com", "secretName": "bot-secret"});
        let with_bot = workstream(json!({"bot": bot}));
        let without = workstream(json!({}));
        let inbound = inbound(text("E1", "I want to buy"));

        let d = decide(facts(Some(&with_bot), &inbound), NOW);
        assert_eq!(d.bot.as_ref().map(|b| b.id.as_str()), Some("sales-bot"));
        let c = d.conversation.as_ref().unwrap();
        assert_eq!(
            (c.bot_id.as_deref(), c.queue_id.as_deref()),
            (Some("sales-bot"), Some("q-sales"))
        );
        assert!(!d.wants_agent(&inbound.event));
        let request = bot_request(
            ACCOUNT,
            d.bot.as_ref().unwrap(),
            c,
            &inbound,
            d.customer.as_ref(),
        );
        assert_eq!(
            (request.conversation_id.as_str(), request.event_id.as_str()),
            (c.id.as_str(), "E1")
        );
        assert_eq!(request.customer.display_name, UNKNOWN_CUSTOMER_NAME);
        assert_eq!(request.event["message"]["text"], "I want to buy");

        // The rule names a bot the workstream does not configure: straight to the distribution.
        let d = decide(facts(Some(&without), &inbound), NOW);
        assert!(d.bot.is_none());
        assert_eq!(d.conversation.as_ref().unwrap().bot_id, None);
        assert!(d.wants_agent(&inbound.event));
    }

    #[test]
    fn the_bot_answer_queues_its_messages_and_hands_off_on_request_or_failure() {
        let with_bot = || {
            let mut c = conversation("c1", (SourceType::User, "Ubob"), ConversationState::Waiting);
            c.bot_id = Some("sales-bot".into());
            c
        };
        let mut c = with_bot();
        let mut outbox = Outbox::default();
        let reply = BotReply {
            messages: vec![text_message("one"), text_message("two")],
            handoff: false,
            queue: Some("q-ignored".into()),
            context: Default::default(),
        };
        apply_bot_answer(
            &mut c,
            "sales-bot",
            BotAnswer::Replied(reply),
            None,
            &mut outbox,
        );
        assert_eq!(
            (c.bot_id.as_deref(), c.queue_id.as_deref()),
            (Some("sales-bot"), Some("q-general"))
        );
        assert_eq!(texts(&outbox), ["one", "two"]);
        assert!(outbox
            .items
            .iter()
            .all(|(o, t, _)| *o == Origin::Bot && t.is_none()));

        let reply = BotReply {
            messages: vec![],
            handoff: true,
            queue: Some("q-sales".into()),
            context: Default::default(),
        };
        apply_bot_answer(
            &mut c,
            "sales-bot",
            BotAnswer::Replied(reply),
            None,
            &mut outbox,
        );
        assert_eq!(
            (c.bot_id.as_deref(), c.queue_id.as_deref()),
            (None, Some("q-sales"))
        );

        for answer in [
            BotAnswer::Failed(BotError::Timeout),
            BotAnswer::SecretMissing,
        ] {
            let mut c = with_bot();
            apply_bot_answer(&mut c, "sales-bot", answer, None, &mut Outbox::default());
            assert_eq!((c.bot_id, c.queue_id.as_deref()), (None, Some("q-general")));
        }
    }

    #[test]
    fn an_agent_holding_the_conversation_keeps_it_otherwise_the_least_busy_free_one() {
        let c = conversation("c1", (SourceType::User, "Ubob"), ConversationState::Waiting);
        let agents = vec![
            agent("busy", 3, &["x", "y"]),
            agent("free", 3, &[]),
            agent("full", 1, &["z"]),
        ];
        let ids = |list: Vec<&Agent>| list.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(assignment_candidates(&agents, &c)), ["free", "busy"]);
        // Full, but it holds the conversation already: no second slot anywhere.
        let holding = vec![agent("free", 3, &[]), agent("full", 1, &["c1"])];
        assert_eq!(ids(assignment_candidates(&holding, &c)), ["full"]);

        let ws = workstream(json!({}));
        let mut c = c;
        let mut outbox = Outbox::default();
        let bob = customer("Ubob");
        let n = assigned(&ws, &mut c, &agents[1], Some(&bob), NOW, &mut outbox);
        assert_eq!(
            (c.agent_id.as_deref(), c.state),
            (Some("free"), ConversationState::Active)
        );
        assert_eq!(
            (n.kind.as_str(), n.id.clone()),
            (
                NOTIFICATION_ASSIGNED,
                AgentNotification::assigned_id("c1", "free", c.version)
            )
        );
        assert_eq!(texts(&outbox), ["Agent free will help you."]);
    }

    #[test]
    fn with_no_agent_free_the_no_agent_notice_or_else_the_queued_one_once() {
        let ws = workstream(json!({}));
        let mut outbox = Outbox::default();
        unassigned_notice(&ws, None, &mut outbox);
        unassigned_notice(&ws, None, &mut outbox);
        assert_eq!(texts(&outbox), ["You are in the queue."]);

        let mut messages = ws.automated_messages.clone();
        messages.push(serde_json::from_value(json!(
            {"trigger": "noAgentAvailable", "language": "en", "text": "All busy.", "enabled": true}
        )).unwrap());
        let busy = Workstream {
            automated_messages: messages,
            ..ws
        };
        let mut outbox = Outbox::default();
        unassigned_notice(&busy, None, &mut outbox);
        assert_eq!(texts(&outbox), ["All busy."]);
    }

    #[test]
    fn the_plan_commits_the_decision_with_the_media_outcome_and_the_retention() {
        let ws = workstream(json!({}));
        let inbound = inbound(image("I1", "line"));
        let mut d = decide(facts(Some(&ws), &inbound), NOW);
        for i in 0..5 {
            d.outbox
                .push(Origin::Bot, None, text_message(&format!("bot {i}")));
        }
        let outbound = d.outbound_messages(&inbound, NOW);
        assert_eq!(outbound.len(), 2);
        assert_eq!(outbound[0].id, "I1:router:0");
        assert_eq!(outbound[0].reply_token.as_deref(), Some("rt-I1"));
        assert_eq!(outbound[0].reply_token_received_at, Some(T0));
        assert_eq!(outbound[0].origin, Origin::Automated);
        assert_eq!(outbound[0].trigger.as_deref(), Some("conversationStarted"));
        assert_eq!(
            (outbound[1].reply_token.as_deref(), outbound[1].origin),
            (None, Origin::Bot)
        );
        assert_eq!(outbound[1].trigger, None);
        assert_eq!(outbound[1].created_at, NOW);

        let conversation_id = d.conversation.as_ref().map(|c| c.id.clone());
        let assignment = Some(("a1".to_owned(), "c".to_owned()));
        let plan = d.into_plan(
            Some(json!({"status": "stored"})),
            assignment.clone(),
            outbound.clone(),
            Some(42),
            NOW,
        );
        assert_eq!(plan.conversation_id, conversation_id);
        assert_eq!(
            (plan.commit.outbox.len(), plan.new_assignment),
            (2, assignment)
        );
        let commit = plan.commit;
        assert_eq!(commit.outbox, outbound);
        assert_eq!(
            (commit.account_id.as_str(), commit.event_id.as_str()),
            (ACCOUNT, "I1")
        );
        assert_eq!(commit.now_secs, NOW / 1000);
        assert_eq!(commit.dedupe_expires_at, NOW / 1000 + DEDUPE_RETENTION_SECS);
        assert_eq!(commit.retain_until, Some(42));
        assert!(matches!(
            commit.conversation,
            Some(ConversationWrite::Create(_))
        ));
        let transcript = commit.transcript.unwrap();
        assert_eq!(transcript.event["omnilineMedia"]["status"], "stored");
        assert_eq!(transcript.event["message"]["id"], "m-I1");
        assert_eq!(
            commit.customer.map(|c| c.display_name),
            Some(UNKNOWN_CUSTOMER_NAME.to_owned())
        );
    }
}
