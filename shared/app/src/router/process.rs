//! Planning what one event changes: the customer, the conversation (created, classified,
//! handed to the bot or an agent), the transcript entry, automated and bot messages. Outbound
//! messages are queued here (idempotent ids); the store commit is the caller's.

use crate::router::{RouteError, RouterService, MEDIA_PENDING_MAX_RECEIVES};
use omniline_domain::account::Account;
use omniline_domain::agents::{
    rank_agents, Agent, AgentNotification, NOTIFICATION_ASSIGNED, NOTIFICATION_MESSAGE,
};
use omniline_domain::bot::{BotCustomer, BotEndpoint, BotRequest};
use omniline_domain::contacts::{LinkNonce, LINK_NONCE_KIND};
use omniline_domain::conversation::{
    parse_survey_postback, Consent, Conversation, ConversationState, ConversationWrite, Customer,
    EventCommit, SourceType, TranscriptEntry, DEDUPE_RETENTION_SECS, UNKNOWN_CUSTOMER_NAME,
};
use omniline_domain::line::api::{Content, LineApiError};
use omniline_domain::line::envelope::InboundEvent;
use omniline_domain::line::events::{
    ContentProviderType, Event, LinkResult, MessageContent, Source,
};
use omniline_domain::outbound::{text_message, Origin, OutboundMessage};
use omniline_domain::routing::routing_context;
use omniline_domain::workstream::{render_template, Distribution, GroupChats, Trigger, Workstream};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

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

/// What the caller commits.
pub(crate) struct Plan {
    pub commit: EventCommit,
    pub conversation_id: Option<String>,
    pub outbound_count: usize,
    /// (agent, conversation) assigned while planning, to undo if the commit conflicts.
    pub new_assignment: Option<(String, String)>,
    /// (agent, conversation) to release once the commit succeeded (the conversation closed).
    pub release_after_commit: Option<(String, String)>,
    /// An account-link nonce consumed by the event: deleted once the commit succeeded.
    pub consumed_nonce: Option<String>,
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
    }
}

/// How long after it was sent a rating survey can be answered by a bare number.
pub(crate) const SURVEY_TEXT_ANSWER_MS: i64 = 24 * 3_600_000;

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

/// The closed conversation an event answers the survey of, and the score it gives: a survey
/// quick-reply postback naming a conversation of the same account and source, or a bare number
/// from a source with no open conversation whose latest closed conversation has an unanswered
/// rating survey sent within [`SURVEY_TEXT_ANSWER_MS`].
async fn survey_answer(
    svc: &RouterService,
    account: &Account,
    event: &Event,
    source: &(SourceType, String),
    has_open: bool,
    now: i64,
) -> Result<Option<(Conversation, u8)>, RouteError> {
    let conversations = &svc.deps.conversations;
    match event {
        Event::Postback(p) => {
            let Some((conversation_id, score)) = parse_survey_postback(&p.postback.data) else {
                return Ok(None);
            };
            let Some(c) = conversations.conversation(conversation_id).await? else {
                tracing::info!(account_id = %account.id, "survey answer for an unknown conversation; handled as a postback");
                return Ok(None);
            };
            if c.account_id != account.id || c.source_id != source.1 {
                tracing::warn!(account_id = %account.id, conversation_id = %c.id, "survey answer for another chat's conversation ignored");
                return Ok(None);
            }
            Ok(Some((c, score)))
        }
        Event::Message(m) if !has_open && source.0 == SourceType::User => {
            let MessageContent::Text(text) = &m.message else {
                return Ok(None);
            };
            let Some(score) = typed_score(&text.text) else {
                return Ok(None);
            };
            let latest_closed = conversations
                .conversations_of_source(&account.id, &source.1)
                .await?
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
            Ok(answerable.map(|c| (c, score)))
        }
        _ => Ok(None),
    }
}

/// The contact an `accountLink` event links the customer to: its nonce must be one we issued,
/// for this account and user. Returns (contact id, nonce).
async fn linked_contact(
    svc: &RouterService,
    account: &Account,
    user_id: &str,
    nonce: &str,
    now: i64,
) -> Result<Option<(String, String)>, RouteError> {
    if nonce.is_empty() {
        return Ok(None);
    }
    let Some(doc) = svc.deps.config.get_doc(LINK_NONCE_KIND, nonce).await? else {
        tracing::warn!(account_id = %account.id, "account link with an unknown nonce: not linked");
        return Ok(None);
    };
    let stored: LinkNonce = match serde_json::from_str(&doc.doc) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::error!(account_id = %account.id, error = %e, "stored account-link nonce unreadable: not linked");
            return Ok(None);
        }
    };
    if stored.account_id != account.id || stored.user_id != user_id || stored.nonce != nonce {
        tracing::warn!(account_id = %account.id, "account link nonce issued for another user or account: not linked");
        return Ok(None);
    }
    // As LINE's link token: ten minutes.
    if now - stored.created_at > omniline_domain::contacts::LINK_LIFETIME_MS {
        tracing::warn!(account_id = %account.id, "account link nonce expired: not linked");
        return Ok(None);
    }
    Ok(Some((stored.contact_id, nonce.to_owned())))
}

fn source_parts(source: Option<&Source>) -> (Option<(SourceType, String)>, Option<String>) {
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
fn conversation_id_for(account_id: &str, event_id: &str) -> String {
    let digest = Sha256::digest(format!("conversation:{account_id}:{event_id}").as_bytes());
    hex::encode(&digest[..16])
}

pub(crate) async fn plan(
    svc: &RouterService,
    account: &Account,
    ws: Option<&Workstream>,
    inbound: &Inbound,
    receive_count: u32,
) -> Result<Plan, RouteError> {
    let deps = &svc.deps;
    let now = (deps.clock)();
    let event = &inbound.event;
    let event_time = event.timestamp().unwrap_or(inbound.received_at);
    let (source, sender) = source_parts(event.source());
    let mut outbox = Outbox::default();

    // The customer (the sender, also in groups): profile on first contact, consent, links.
    let mut customer_changed = false;
    let mut consumed_nonce = None;
    let mut customer = match &sender {
        Some(user_id) => {
            let (c, changed) = customer_for(svc, account, source.as_ref(), user_id, now).await?;
            customer_changed = changed;
            Some(c)
        }
        None => None,
    };
    if let Some(c) = customer.as_mut() {
        let consent = match event {
            Event::Follow(_) => Some(Consent::Followed),
            Event::Unfollow(_) => Some(Consent::Unfollowed),
            _ => None,
        };
        if let Some(consent) = consent {
            c.consent = consent;
            customer_changed = true;
        }
        if let Event::AccountLink(link) = event {
            if link.link.result == LinkResult::Ok {
                if let Some((contact_id, nonce)) =
                    linked_contact(svc, account, &c.user_id, &link.link.nonce, now).await?
                {
                    tracing::info!(account_id = %account.id, %contact_id, "customer linked to a contact");
                    c.linked_contact_id = Some(contact_id);
                    consumed_nonce = Some(nonce);
                    customer_changed = true;
                }
            }
        }
        if customer_changed {
            c.updated_at = now;
        }
    }

    // The conversation.
    let open = match &source {
        Some((_, source_id)) => {
            deps.conversations
                .open_conversation(&account.id, source_id)
                .await?
        }
        None => None,
    };
    // A survey answer goes to the (closed) conversation it answers and opens none.
    let survey = match &source {
        Some(source) => survey_answer(svc, account, event, source, open.is_some(), now).await?,
        None => None,
    };
    let ignored_group = ws.is_some_and(|w| w.group_chats == GroupChats::Ignore)
        && matches!(&source, Some((SourceType::Group | SourceType::Room, _)));
    let opens_conversation =
        matches!(event, Event::Message(_) | Event::Postback(_)) && !ignored_group;
    let mut new_assignment = None;
    let mut release_after_commit = None;
    let mut write = None;
    let mut conversation: Option<Conversation> = match (survey, open, &source) {
        (Some((mut c, score)), _, _) => {
            c.version += 1;
            c.last_activity_at = c.last_activity_at.max(event_time).max(inbound.received_at);
            if record_survey_score(&mut c, score, now) {
                tracing::info!(conversation_id = %c.id, score, "survey answered");
            } else {
                tracing::info!(conversation_id = %c.id, score, "survey answer not recorded (answered before, or out of scale)");
            }
            write = Some(false);
            Some(c)
        }
        (None, Some(mut c), _) => {
            c.version += 1;
            // Inactivity counts from when we received it: a late redelivery is fresh activity.
            c.last_activity_at = c.last_activity_at.max(event_time).max(inbound.received_at);
            write = Some(false);
            Some(c)
        }
        (None, None, Some((source_type, source_id))) if opens_conversation => {
            let c = Conversation {
                id: conversation_id_for(&account.id, &inbound.event_id),
                account_id: account.id.clone(),
                source_type: *source_type,
                source_id: source_id.clone(),
                state: ConversationState::Waiting,
                workstream_id: ws.map(|w| w.id.clone()),
                queue_id: ws.map(|w| w.default_queue.clone()),
                priority: 0,
                skills: Vec::new(),
                bot_id: ws.and_then(|w| w.bot.as_ref()).map(|b| b.id.clone()),
                agent_id: None,
                rule_id: None,
                members: Vec::new(),
                opened_at: event_time,
                last_activity_at: event_time.max(inbound.received_at),
                closed_at: None,
                close_reason: None,
                survey: None,
                version: 1,
            };
            write = Some(true);
            Some(c)
        }
        _ => None,
    };

    if let Some(c) = conversation.as_mut() {
        // Group membership.
        if c.source_type != SourceType::User {
            if let Some(user) = &sender {
                if !c.members.contains(user) {
                    c.members.push(user.clone());
                }
            }
            match event {
                Event::MemberJoined(e) => {
                    for user in e.joined.user_ids() {
                        if !c.members.iter().any(|m| m == user) {
                            c.members.push(user.to_owned());
                        }
                    }
                }
                Event::MemberLeft(e) => {
                    let left: Vec<&str> = e.left.user_ids().collect();
                    c.members.retain(|m| !left.contains(&m.as_str()));
                }
                Event::Leave(_) => {
                    c.state = ConversationState::Closed;
                    c.closed_at = Some(now);
                    c.close_reason = Some("bot left the chat".into());
                    // The agent is released once the close is committed.
                    release_after_commit = c.agent_id.clone().map(|agent| (agent, c.id.clone()));
                }
                _ => {}
            }
        }
    }

    // Media and unsupported content.
    let mut media = None;
    if let Event::Message(message) = event {
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
        if is_attachment && !accepted {
            outbox.automated(ws, Trigger::AttachmentsNotAccepted, customer.as_ref(), None);
        } else if let Some(message_id) = downloadable {
            media = download_media(svc, account, message_id, receive_count).await?;
        }
        if matches!(message.message, MessageContent::Unknown(_)) {
            outbox.automated(ws, Trigger::UnsupportedMessageType, customer.as_ref(), None);
        }
    }
    if let Event::Unsend(unsend) = event {
        // Retracted content is removed from storage too.
        let key =
            omniline_domain::media_links::inbound_media_key(&account.id, &unsend.unsend.message_id);
        if let Some(key) = key {
            deps.media.delete(&key).await?;
        }
    }

    // Classification, bot and distribution.
    if let (Some(c), Some(true)) = (conversation.as_mut(), write) {
        outbox.automated(ws, Trigger::ConversationStarted, customer.as_ref(), None);
        if let Some(ws) = ws {
            if !ws.is_business_hours(event_time) {
                outbox.automated(
                    Some(ws),
                    Trigger::OutsideBusinessHours,
                    customer.as_ref(),
                    None,
                );
            }
            let ctx = routing_context(event, customer.as_ref(), ws, event_time);
            if let Some(matched) = svc.compiled_rules(ws).evaluate(&ctx) {
                c.queue_id = Some(matched.queue.clone());
                c.priority = matched.priority;
                c.skills = matched.skills.clone();
                c.rule_id = Some(matched.rule_id.clone());
                if let Some(bot) = &matched.bot {
                    c.bot_id = Some(bot.clone());
                }
            }
        }
    }
    if let Some(c) = conversation.as_mut() {
        let customer_turn = matches!(event, Event::Message(_) | Event::Postback(_));
        if customer_turn && c.state == ConversationState::Waiting && c.bot_id.is_some() {
            ask_bot(svc, account, ws, inbound, c, customer.as_ref(), &mut outbox).await?;
        }
        let fresh = write == Some(true);
        if customer_turn
            && c.state == ConversationState::Waiting
            && c.bot_id.is_none()
            && c.agent_id.is_none()
        {
            new_assignment =
                distribute(svc, ws, c, customer.as_ref(), now, fresh, &mut outbox).await?;
        }
        // The agent holding the conversation hears of the customer's message.
        if let (Event::Message(_), Some(agent_id)) = (event, c.agent_id.as_deref()) {
            if !fresh && new_assignment.is_none() && c.state == ConversationState::Active {
                let notification = agent_notification(
                    format!("{}:{}:message", c.id, inbound.event_id),
                    NOTIFICATION_MESSAGE,
                    agent_id,
                    c,
                    customer.as_ref(),
                    now,
                );
                deps.agents.notify(&notification).await?;
            }
        }
    }

    // Transcript.
    let conversation_id = conversation.as_ref().map(|c| c.id.clone());
    let transcript_conversation = conversation_id.clone().unwrap_or_else(|| match &source {
        Some((_, source_id)) => format!("log:{}:{source_id}", account.id),
        None => format!("log:{}", account.id),
    });
    let mut transcript_event = inbound.raw.clone();
    if let (Some(media), Some(obj)) = (media, transcript_event.as_object_mut()) {
        obj.insert("omnilineMedia".into(), media);
    }
    let message_id = match event {
        Event::Message(m) => m.message.id().map(str::to_owned),
        _ => None,
    };
    let transcript = TranscriptEntry {
        conversation_id: transcript_conversation,
        event_id: inbound.event_id.clone(),
        timestamp: event_time,
        event_type: event.event_type().to_owned(),
        sender_user_id: sender.clone(),
        message_id,
        event: transcript_event,
        retracted: false,
    };

    // Outbound: automated and bot messages, replying with the event's token when it has one.
    let outbound = outbound_messages(
        account,
        conversation.as_ref(),
        source.as_ref(),
        inbound,
        &outbox,
        now,
    );
    if !outbound.is_empty() {
        let queue_messages: Vec<_> = outbound
            .iter()
            .map(OutboundMessage::to_queue_message)
            .collect();
        deps.outbound.send(&queue_messages).await?;
    }

    let commit = EventCommit {
        account_id: account.id.clone(),
        event_id: inbound.event_id.clone(),
        now_secs: now.div_euclid(1000),
        dedupe_expires_at: now.div_euclid(1000) + DEDUPE_RETENTION_SECS,
        retain_until: svc.settings().await?.retain_until(now),
        conversation: match (conversation, write) {
            (Some(c), Some(true)) => Some(ConversationWrite::Create(c)),
            (Some(c), Some(false)) => Some(ConversationWrite::Update(c)),
            _ => None,
        },
        transcript: Some(transcript),
        retract_message_id: match event {
            Event::Unsend(u) => Some(u.unsend.message_id.clone()),
            _ => None,
        },
        customer: customer.filter(|_| customer_changed),
    };
    Ok(Plan {
        commit,
        conversation_id,
        outbound_count: outbound.len(),
        new_assignment,
        release_after_commit,
        consumed_nonce,
    })
}

/// The stored customer, or a new one with the LINE profile (a placeholder name when LINE has none
/// for us). Returns whether it changed.
async fn customer_for(
    svc: &RouterService,
    account: &Account,
    source: Option<&(SourceType, String)>,
    user_id: &str,
    now: i64,
) -> Result<(Customer, bool), RouteError> {
    const PROFILE_RETRY_MS: i64 = 3_600_000;
    let existing = svc
        .deps
        .conversations
        .customer(&account.id, user_id)
        .await?;
    if let Some(c) = &existing {
        if c.profile_found || now - c.updated_at < PROFILE_RETRY_MS {
            return Ok((c.clone(), false));
        }
    }
    let token = svc.access_token(&account.id).await?;
    let line = &svc.deps.line;
    let fetched = match source {
        Some((SourceType::Group, group)) => line.group_member_profile(&token, group, user_id).await,
        Some((SourceType::Room, room)) => line.room_member_profile(&token, room, user_id).await,
        _ => line.profile(&token, user_id).await,
    };
    let profile = match fetched {
        Ok(profile) => profile,
        // LINE being down must not stop the conversation: route with a placeholder, retry later.
        Err(LineApiError::Unavailable(e)) => {
            tracing::warn!(account_id = %account.id, error = %e, "LINE profile unavailable; using a placeholder");
            None
        }
        Err(e) => {
            tracing::warn!(account_id = %account.id, error = %e, "LINE refused the profile; using a placeholder");
            None
        }
    };
    let mut customer = existing.unwrap_or_else(|| Customer {
        account_id: account.id.clone(),
        user_id: user_id.to_owned(),
        display_name: UNKNOWN_CUSTOMER_NAME.to_owned(),
        picture_url: None,
        language: None,
        profile_found: false,
        consent: Consent::Unknown,
        linked_contact_id: None,
        created_at: now,
        updated_at: now,
    });
    if let Some(p) = profile {
        customer.display_name = p.display_name;
        customer.picture_url = p.picture_url;
        if p.language.is_some() {
            customer.language = p.language;
        }
        customer.profile_found = true;
    }
    customer.updated_at = now;
    Ok((customer, true))
}

/// Downloads a message's content into object storage. LINE answers 202 while it prepares audio
/// and video: the message is retried later, and after a few receives stored without the media
/// rather than failing until the dead-letter queue.
async fn download_media(
    svc: &RouterService,
    account: &Account,
    message_id: &str,
    receive_count: u32,
) -> Result<Option<Value>, RouteError> {
    let Some(key) = omniline_domain::media_links::inbound_media_key(&account.id, message_id) else {
        return Ok(Some(json!({ "status": "invalid-id" })));
    };
    let token = svc.access_token(&account.id).await?;
    match svc.deps.line.message_content(&token, message_id).await {
        Ok(Content::Ready {
            bytes,
            content_type,
        }) => {
            let stored = svc
                .deps
                .media
                .put(&key, bytes, content_type.as_deref())
                .await?;
            Ok(Some(json!({
                "status": "stored",
                "uri": stored.uri,
                "key": stored.key,
                "size": stored.size,
                "contentType": content_type,
            })))
        }
        Ok(Content::Pending) if receive_count < MEDIA_PENDING_MAX_RECEIVES => {
            Err(RouteError::MediaPending(message_id.to_owned()))
        }
        Ok(Content::Pending) => {
            tracing::warn!(account_id = %account.id, message_id, "media still not ready; stored without it");
            Ok(Some(json!({ "status": "not-ready" })))
        }
        // Expired or gone: the message is kept, the content is not.
        Err(LineApiError::Rejected { status, message }) => {
            tracing::warn!(account_id = %account.id, message_id, status, "media refused by LINE: {message}");
            Ok(Some(
                json!({ "status": "unavailable", "lineStatus": status }),
            ))
        }
        Err(e @ LineApiError::Unavailable(_)) => Err(e.into()),
    }
}

/// Sends the customer's turn to the conversation's bot. Its messages are queued; `handoff`, an
/// error or a timeout routes the conversation to a human queue.
async fn ask_bot(
    svc: &RouterService,
    account: &Account,
    ws: Option<&Workstream>,
    inbound: &Inbound,
    c: &mut Conversation,
    customer: Option<&Customer>,
    outbox: &mut Outbox,
) -> Result<(), RouteError> {
    let bot = ws
        .and_then(|w| w.bot.as_ref())
        .filter(|b| Some(&b.id) == c.bot_id.as_ref());
    let Some(bot) = bot else {
        tracing::warn!(conversation_id = %c.id, bot_id = ?c.bot_id, "bot not configured in the workstream; handing off");
        c.bot_id = None;
        return Ok(());
    };
    let Some(secret) = svc.deps.secrets.get(&bot.secret_name).await? else {
        tracing::warn!(conversation_id = %c.id, bot_id = %bot.id, "bot secret missing; handing off");
        c.bot_id = None;
        return Ok(());
    };
    let endpoint = BotEndpoint {
        url: bot.url.clone(),
        secret,
        timeout: Duration::from_millis(u64::from(bot.timeout_ms)),
    };
    let request = BotRequest {
        bot_id: bot.id.clone(),
        account_id: account.id.clone(),
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
    };
    match svc.deps.bot.deliver(&endpoint, &request).await {
        Ok(reply) => {
            for message in reply.messages {
                outbox.items.push((Origin::Bot, None, message));
            }
            if reply.handoff {
                tracing::info!(conversation_id = %c.id, "bot handed off");
                c.bot_id = None;
                if let Some(queue) = reply.queue {
                    c.queue_id = Some(queue);
                }
            }
        }
        Err(e) => {
            tracing::warn!(conversation_id = %c.id, error = %e, "bot failed; handing off to a human");
            c.bot_id = None;
        }
    }
    Ok(())
}

/// Push mode: assigns the least busy available agent of the queue (atomically, never above
/// capacity); otherwise the conversation waits. Pick mode: it waits for an agent to pick it.
pub(crate) async fn distribute(
    svc: &RouterService,
    ws: Option<&Workstream>,
    c: &mut Conversation,
    customer: Option<&Customer>,
    now: i64,
    fresh: bool,
    outbox: &mut Outbox,
) -> Result<Option<(String, String)>, RouteError> {
    let Some(ws) = ws else { return Ok(None) };
    let Some(queue) = c.queue_id.clone() else {
        return Ok(None);
    };
    if ws.distribution == Distribution::Pick {
        if fresh {
            outbox.automated(Some(ws), Trigger::Queued, customer, None);
        }
        return Ok(None);
    }
    let agents = svc.deps.agents.agents_in_queue(&queue).await?;
    // An earlier attempt that failed after assigning left the conversation with an agent: that
    // agent keeps it (the assignment is idempotent), so no slot is held twice. The slot may also
    // be another worker's claim still in flight, which that worker may give back if its commit
    // loses: the caller commits with `commit_assignment`, which lands only while the slot holds
    // the conversation (a slot given back first makes it a conflict, and the retry distributes
    // again), and the loser's `release_unless_assigned` keeps a slot the conversation has.
    let holding: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.active_conversations.contains(&c.id))
        .collect();
    let candidates = if holding.is_empty() {
        rank_agents(&agents, &c.skills)
    } else {
        holding
    };
    for agent in candidates {
        if svc.deps.agents.try_assign(&agent.id, &c.id, now).await? {
            c.agent_id = Some(agent.id.clone());
            c.state = ConversationState::Active;
            let notification = agent_notification(
                AgentNotification::assigned_id(&c.id, &agent.id),
                NOTIFICATION_ASSIGNED,
                &agent.id,
                c,
                customer,
                now,
            );
            svc.deps.agents.notify(&notification).await?;
            outbox.automated(
                Some(ws),
                Trigger::AgentAssigned,
                customer,
                Some(&agent.name),
            );
            return Ok(Some((agent.id.clone(), c.id.clone())));
        }
    }
    if fresh {
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
    Ok(None)
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
        })
        .collect()
}

/// One outbound message per five LINE message objects; the first carries the reply token.
fn outbound_messages(
    account: &Account,
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
        .unwrap_or_else(|| format!("log:{}:{to}", account.id));
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
                account_id: account.id.clone(),
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
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            survey: Some(omniline_domain::conversation::SurveyState {
                sent_at: 1,
                scale,
                score,
                answered_at: score.map(|_| 1),
            }),
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
}
