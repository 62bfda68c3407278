//! Conversations, customers and the transcript: the router's domain.
//!
//! One open conversation per (account, source): a 1:1 user, a group or a room. It is keyed by the
//! LINE id, so it is the same whichever device the customer writes from. States go
//! `waiting` → `active` → `closed`; a message after close opens a new conversation.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationState {
    /// In a queue or with the bot.
    Waiting,
    /// An agent is assigned.
    Active,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    User,
    Group,
    Room,
}

impl SourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::User => "user",
            SourceType::Group => "group",
            SourceType::Room => "room",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: String,
    pub account_id: String,
    pub source_type: SourceType,
    /// userId, groupId or roomId.
    pub source_id: String,
    pub state: ConversationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workstream_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(default)]
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Id of the routing rule that classified the conversation, if one matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// Group or room members seen or announced (memberJoined); empty for 1:1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// Epoch milliseconds.
    pub opened_at: i64,
    pub last_activity_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// A group chat's name and icon (LINE's group summary), refreshed at most daily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<ChatGroup>,
    /// The post-conversation survey, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<SurveyState>,
    /// Snoozed by its agent until then (epoch ms): open, but out of the active list until then
    /// or until the customer writes ([`Conversation::snoozed_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<i64>,
    /// Flagged for a follow-up by its agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_up: bool,
    /// What the bot handed off with, as the workstream declares it (`context.<name>` for
    /// routing rules; shown to agents).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub context: std::collections::BTreeMap<String, serde_json::Value>,
    /// Offered to an agent, who accepts or rejects it by `expires_at` (the workstream's
    /// `offer.mode` `accept`): the conversation waits meanwhile, on a slot of that agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
    /// Agents who rejected it or let its offer expire: not offered it again while others can
    /// take it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declined_by: Vec<String>,
    /// The agent's wrap-up after the close (the workstream's `wrapUpSeconds`): pending until
    /// the agent records it or its time passes, the agent's slot held meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up: Option<WrapUp>,
    /// The customer's messages since its agent last read or answered it (what the inbox shows
    /// as unread).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: u32,
    /// Its latest message, the customer's or an agent's, as a list shows it: a list reads no
    /// transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<LastMessage>,
    /// When it started waiting in its queue this time (epoch ms): opened, or moved back to a
    /// queue. `None` for one that was never moved back: it waits since it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<i64>,
    /// Agents' tags (`PUT /agent/v1/conversations/{id}/tags`); see [`crate::tags`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// When an agent first took it (epoch ms): where its handle time starts (reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<i64>,
    /// An agent's first message in it (epoch ms): its first-response time is this less
    /// `opened_at` (reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_at: Option<i64>,
    /// The customer's messages in it, and the agents' (reports' volume).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_in: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_out: u32,
    /// Optimistic concurrency: every write increments it, conditional on the previous value.
    pub version: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The longest text a [`LastMessage`] keeps, in characters and in UTF-8 bytes (so that the
/// conversation's item, rewritten by every message, stays within one DynamoDB write unit).
pub const LAST_MESSAGE_TEXT_CHARS: usize = 80;
pub const LAST_MESSAGE_TEXT_BYTES: usize = 160;

/// A conversation's latest message, as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    /// Epoch ms.
    pub at: i64,
    /// `in` (the customer's) or `out` (an agent's).
    pub direction: String,
    /// LINE's message type (`text`, `sticker`, `image` …).
    #[serde(rename = "type")]
    pub kind: String,
    /// A text's first [`LAST_MESSAGE_TEXT_CHARS`] characters (at most
    /// [`LAST_MESSAGE_TEXT_BYTES`] bytes); a file's name; a location's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl LastMessage {
    /// The preview of a LINE message object (a webhook's `message`, or one an agent sent).
    pub fn of(message: &serde_json::Value, direction: &str, at: i64) -> Option<LastMessage> {
        let kind = message.get("type")?.as_str()?.to_owned();
        let text = match kind.as_str() {
            "text" | "textV2" => message.get("text"),
            "file" => message.get("fileName"),
            "location" => message.get("title").or_else(|| message.get("address")),
            "template" | "flex" => message.get("altText"),
            _ => None,
        }
        .and_then(serde_json::Value::as_str)
        .map(|t| {
            let mut kept = String::new();
            for c in t.chars().take(LAST_MESSAGE_TEXT_CHARS) {
                if kept.len() + c.len_utf8() > LAST_MESSAGE_TEXT_BYTES {
                    break;
                }
                kept.push(c);
            }
            kept
        });
        Some(LastMessage {
            at,
            direction: direction.to_owned(),
            kind,
            text,
        })
    }
}

/// The transcript entry type of an agent's internal note: shown to agents, never sent to LINE.
pub const NOTE_ENTRY: &str = "note";
/// The longest note.
pub const NOTE_MAX_CHARS: usize = 2000;
/// The most notes kept about one customer (the oldest go first).
pub const CUSTOMER_NOTES_MAX: usize = 200;

/// [`omniline_ports::ConfigStore`] kind of the notes agents keep about a customer (id
/// `{accountId}:{userId}`, doc [`CustomerNotes`]).
pub const CUSTOMER_NOTES_KIND: &str = "customerNotes";

/// An agent's note (about a conversation, or a customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    pub text: String,
    pub agent_id: String,
    pub agent_name: String,
    /// Epoch ms.
    pub at: i64,
}

/// The notes about a customer, oldest first, at most [`CUSTOMER_NOTES_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerNotes {
    pub notes: Vec<Note>,
}

/// [`omniline_ports::ConfigStore`] kind of customers' attributes (id `{accountId}:{userId}`, doc
/// [`CustomerAttributes`]): set by admins, tested by routing rules as
/// `customer.attributes.<name>`, shown to agents. Kept apart from the customer's profile (which
/// the router rewrites) so that neither write undoes the other.
pub const CUSTOMER_ATTRIBUTES_KIND: &str = "customerAttributes";

/// A customer's attributes: at most 50 names (a letter then up to 63 letters, digits or `_`),
/// each a string, number or boolean of at most 1 KB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerAttributes {
    pub attributes: std::collections::BTreeMap<String, serde_json::Value>,
    /// The customer's tags (agents': `PUT /agent/v1/customers/{id}/tags`), tested by routing
    /// rules as `customer.tags`; see [`crate::tags`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The id of a customer's documents (attributes, notes): `{accountId}:{userId}`.
pub fn customer_doc_id(account_id: &str, user_id: &str) -> String {
    format!("{account_id}:{user_id}")
}

/// An offer of a waiting conversation to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offer {
    pub agent_id: String,
    /// Epoch ms: accepted before then, or offered to the next agent.
    pub expires_at: i64,
}

/// [`omniline_ports::ConfigStore`] kind of the pending wrap-ups (id: the conversation id; doc:
/// a [`PendingWrapUp`]): the router's schedule lists them (one Query, as many as the agents'
/// slots at most) to end those whose time passed and give their slots back.
pub const WRAP_UP_PENDING_KIND: &str = "wrapUpPending";

/// A wrap-up the schedule ends at `until` if the agent does not first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingWrapUp {
    pub conversation_id: String,
    pub agent_id: String,
    pub until: i64,
}

/// A conversation's wrap-up: until when the agent has, and what it recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WrapUp {
    /// Epoch ms: the slot is given back then at the latest.
    pub until: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// Epoch ms: when it ended (recorded, or timed out at `until`); `None` while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<i64>,
}

impl Conversation {
    /// A new conversation (version 1) of `source_id` in `state`, opened and last active at
    /// `opened_at`, with nothing else set yet.
    pub fn opened(
        id: String,
        account_id: &str,
        source_type: SourceType,
        source_id: &str,
        state: ConversationState,
        opened_at: i64,
    ) -> Conversation {
        Conversation {
            id,
            account_id: account_id.to_owned(),
            source_type,
            source_id: source_id.to_owned(),
            state,
            workstream_id: None,
            queue_id: None,
            priority: 0,
            skills: Vec::new(),
            bot_id: None,
            agent_id: None,
            rule_id: None,
            members: Vec::new(),
            opened_at,
            last_activity_at: opened_at,
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
            version: 1,
        }
    }

    /// When it started waiting in its queue: moved back to one, else opened.
    pub fn waiting_since(&self) -> Option<i64> {
        (self.state == ConversationState::Waiting)
            .then(|| self.waiting_since.unwrap_or(self.opened_at))
    }

    /// The agent whose slot the conversation holds as stored: its agent while open or while
    /// its wrap-up is pending; the offered agent while it waits on an offer.
    pub fn slot_holder(&self) -> Option<&str> {
        match self.state {
            ConversationState::Closed if self.wrapping_up() => self.agent_id.as_deref(),
            ConversationState::Closed => None,
            ConversationState::Waiting if self.agent_id.is_none() => {
                self.offer.as_ref().map(|o| o.agent_id.as_str())
            }
            _ => self.agent_id.as_deref(),
        }
    }

    /// The live offer at `now`, if the conversation waits on one.
    pub fn live_offer(&self, now: i64) -> Option<&Offer> {
        self.offer
            .as_ref()
            .filter(|o| self.state == ConversationState::Waiting && o.expires_at > now)
    }

    /// Whether the conversation is closed with its wrap-up pending (the agent's slot held).
    pub fn wrapping_up(&self) -> bool {
        self.state == ConversationState::Closed
            && self.wrap_up.as_ref().is_some_and(|w| w.done_at.is_none())
    }

    /// Whether the conversation is snoozed at `now` (epoch ms): open, with a snooze that has
    /// not passed yet.
    pub fn snoozed_at(&self, now: i64) -> bool {
        self.state != ConversationState::Closed && self.snoozed_until.is_some_and(|t| t > now)
    }
}

/// A survey sent when the conversation closed, and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyState {
    /// Epoch ms.
    pub sent_at: i64,
    /// Highest score offered (a rating survey); `None` for a link survey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<i64>,
}

/// The postback data of a survey quick-reply button: `survey:{conversationId}:{score}`.
pub fn survey_postback(conversation_id: &str, score: u8) -> String {
    format!("survey:{conversation_id}:{score}")
}

/// `(conversation id, score)` of survey postback data.
pub fn parse_survey_postback(data: &str) -> Option<(&str, u8)> {
    let rest = data.strip_prefix("survey:")?;
    let (conversation_id, score) = rest.rsplit_once(':')?;
    let score: u8 = score.parse().ok()?;
    (!conversation_id.is_empty()).then_some((conversation_id, score))
}

/// Which conversations [`omniline_ports::ConversationStore::list_conversations`] returns: those in
/// `state` (any when `None`) that are in one of `queue_ids` or held by `agent_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub state: Option<ConversationState>,
    pub queue_ids: Vec<String>,
    pub agent_id: Option<String>,
    /// At most this many, most recent activity first.
    pub limit: usize,
    /// Only those after this one in the list's order (the last row of the previous page).
    pub after: Option<ListCursor>,
}

/// A place in the conversation list's order (most recent activity first, then by id): the last
/// row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub last_activity_at: i64,
    pub id: String,
}

impl ListCursor {
    pub fn of(c: &Conversation) -> ListCursor {
        ListCursor {
            last_activity_at: c.last_activity_at,
            id: c.id.clone(),
        }
    }

    /// Whether `c` comes after this place in the list's order.
    pub fn precedes(&self, c: &Conversation) -> bool {
        c.last_activity_at < self.last_activity_at
            || (c.last_activity_at == self.last_activity_at && c.id > self.id)
    }

    /// The opaque form an API hands out: `{lastActivityAt}.{id}`.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.last_activity_at, self.id)
    }

    pub fn decode(text: &str) -> Option<ListCursor> {
        let (at, id) = text.split_once('.')?;
        let last_activity_at = at.parse().ok()?;
        (!id.is_empty()
            && id.len() <= 100
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .then(|| ListCursor {
            last_activity_at,
            id: id.to_owned(),
        })
    }
}

impl ConversationFilter {
    /// Whether `c` matches (the reference semantics adapters implement).
    pub fn matches(&self, c: &Conversation) -> bool {
        self.after.as_ref().is_none_or(|after| after.precedes(c))
            && self.state.is_none_or(|s| s == c.state)
            && (c
                .queue_id
                .as_ref()
                .is_some_and(|q| self.queue_ids.contains(q))
                || (self.agent_id.is_some() && c.agent_id == self.agent_id))
    }
}

/// Whether the customer follows the account (follow / unfollow events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consent {
    Unknown,
    Followed,
    Unfollowed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub account_id: String,
    pub user_id: String,
    /// LINE display name, or a placeholder when LINE has no profile for us (404).
    pub display_name: String,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    /// False when LINE answered 404 (not a friend): the name is a placeholder.
    pub profile_found: bool,
    pub consent: Consent,
    /// Contact verified through an accountLink event.
    #[serde(default)]
    pub linked_contact_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When LINE was last asked for the profile (epoch ms); `None` for records written before
    /// it was kept (their `updated_at` stands in). A found profile is asked again a day later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_fetched_at: Option<i64>,
}

/// A group chat as LINE's group summary describes it, and when it was asked (epoch ms). Name and
/// icon are `None` when LINE had no summary for us (asked again a day later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatGroup {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture_url: Option<String>,
    pub fetched_at: i64,
}

impl ChatGroup {
    /// How old a group's summary may be before the next event asks LINE again.
    pub const REFRESH_MS: i64 = 24 * 3_600_000;

    /// Whether LINE is asked again at `now`.
    pub fn stale(group: Option<&ChatGroup>, now: i64) -> bool {
        group.is_none_or(|g| now - g.fetched_at >= Self::REFRESH_MS)
    }
}

/// Placeholder name for a customer whose LINE profile is not available.
pub const UNKNOWN_CUSTOMER_NAME: &str = "LINE user";

/// One line of a conversation's transcript: a stored LINE event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptEntry {
    pub conversation_id: String,
    /// LINE's `webhookEventId`.
    pub event_id: String,
    /// LINE's event timestamp (epoch ms): the transcript is ordered by it, then by event id.
    pub timestamp: i64,
    pub event_type: String,
    /// Who wrote it (the member, in a group or room).
    #[serde(default)]
    pub sender_user_id: Option<String>,
    /// The sender's display name when the message came (in a group or room: the member's
    /// profile name, so each line shows who wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// LINE message id, for message events (unsend refers to it).
    #[serde(default)]
    pub message_id: Option<String>,
    /// The event as received; `null` once retracted.
    pub event: serde_json::Value,
    #[serde(default)]
    pub retracted: bool,
}

/// How the conversation is written with the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationWrite {
    /// A new open conversation; fails (conflict) if the source already has one open.
    Create(Conversation),
    /// Replaces the stored conversation whose version is `conversation.version - 1`. Closing it
    /// frees the source for a new conversation.
    Update(Conversation),
}

impl ConversationWrite {
    pub fn conversation(&self) -> &Conversation {
        match self {
            ConversationWrite::Create(c) | ConversationWrite::Update(c) => c,
        }
    }
}

/// Everything one event changes, written atomically with its deduplication record.
#[derive(Debug, Clone, PartialEq)]
pub struct EventCommit {
    pub account_id: String,
    /// `webhookEventId`: the deduplication key, with `account_id`.
    pub event_id: String,
    /// The deciding use case's clock when it built this commit (epoch seconds). The store compares
    /// every stored expiry it meets (an earlier deduplication record's) with this, never with a
    /// clock of its own: one clock per decision, so a test clock far from the wall clock holds.
    pub now_secs: i64,
    /// When the deduplication record may be forgotten (epoch seconds, DynamoDB TTL).
    pub dedupe_expires_at: i64,
    /// Retention: when the conversation, transcript entry and customer written by this commit may
    /// be deleted (epoch seconds; DynamoDB TTL attribute `expiresAt`, swept in the embedded
    /// database). Every write refreshes it, so data lives `retentionDays` after its last
    /// activity. `None` keeps them until purged.
    pub retain_until: Option<i64>,
    pub conversation: Option<ConversationWrite>,
    pub transcript: Option<TranscriptEntry>,
    /// Unsend: the LINE message id whose transcript entry is retracted (content removed).
    pub retract_message_id: Option<String>,
    /// Customer created or updated with the event.
    pub customer: Option<Customer>,
    /// The outbox: the outbound messages the event causes (deterministic ids), stored with its
    /// deduplication record and queued only once the commit has landed. A commit that loses
    /// (conflict, duplicate) sends nothing; an event found recorded has its recorded outbox
    /// queued again (see `ConversationStore::recorded_outbox`), which the outbound queue and the
    /// outbound function deduplicate by id.
    pub outbox: Vec<crate::outbound::OutboundMessage>,
    /// The agents' notifications the event causes (an assignment, the customer's message for the
    /// holding agent), written with the commit: a commit that loses notifies no one, and the
    /// deduplication record makes a redelivery notify no one twice.
    pub notifications: Vec<crate::agents::AgentNotification>,
}

impl EventCommit {
    /// The conversation an assignment commit stores with the agent: an assignment commit
    /// without one is a caller's error, refused by every store before it writes anything.
    pub fn assigned_conversation(&self) -> Result<&ConversationWrite, crate::PortError> {
        self.conversation.as_ref().ok_or_else(|| {
            crate::PortError::Unavailable("an assignment commit without a conversation".into())
        })
    }
}

/// What happened to a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// The event was recorded before: nothing was written.
    Duplicate,
    /// The conversation changed (or was opened) concurrently: re-read and try again.
    Conflict,
}

/// LINE redelivers for up to about a day when redelivery is on; keep deduplication records a week.
pub const DEDUPE_RETENTION_SECS: i64 = 7 * 24 * 3600;

#[cfg(test)]
mod list_cursor_tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_refuses_what_it_did_not_make() {
        let c = ListCursor {
            last_activity_at: 1_796_600_000_000,
            id: "a1b2".into(),
        };
        assert_eq!(ListCursor::decode(&c.encode()), Some(c.clone()));
        for bad in ["", "x.a1b2", "123.", "123.a b", "123"] {
            assert_eq!(ListCursor::decode(bad), None, "{bad:?}");
        }
    }
}
