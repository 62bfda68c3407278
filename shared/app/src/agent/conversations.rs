//! What an agent sees of conversations (list, detail, transcript) and does in them (reply,
//! upload media, typing, read, pick, transfer, close, the survey's answer).

use super::{AgentError, AgentService};
use crate::router::TransferTarget;
use omniline_domain::agents::Agent;
use omniline_domain::contacts::{contact_kind, Contact};
use omniline_domain::conversation::{
    customer_doc_id, CustomerNotes, Note, CUSTOMER_NOTES_KIND, CUSTOMER_NOTES_MAX, NOTE_ENTRY,
};
use omniline_domain::conversation::{
    Consent, Conversation, ConversationFilter, ConversationState, Customer, SourceType,
    SurveyState, TranscriptEntry,
};
use omniline_domain::delivery::{DeliveredContent, Delivery};
use omniline_domain::line::text_v2;
use omniline_domain::queues::{Queue, QUEUE_KIND};
use omniline_domain::quick_replies::{QuickReply, QUICK_REPLY_KIND};
use omniline_domain::secret::SecretString;
use omniline_domain::workstream::Workstream;
use omniline_ports::Expect;
use serde_json::Value;
use std::collections::HashMap;

/// Most conversations one list returns.
pub const LIST_LIMIT: usize = 100;

/// A customer as agents see them: the profile, and the contact it is linked to.
#[derive(Debug, Clone)]
pub struct CustomerView {
    pub customer: Customer,
    pub contact: Option<Contact>,
}

/// A queue by id, with its name when the queue still exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    pub id: String,
    pub name: Option<String>,
}

/// The note a transcript entry of type `note` holds.
fn note_of(entry: &TranscriptEntry) -> Option<Note> {
    (entry.event_type == NOTE_ENTRY)
        .then(|| serde_json::from_value(entry.event.clone()).ok())
        .flatten()
}

/// The most quick replies one search answers.
pub const QUICK_REPLY_LIMIT: usize = 50;

/// The most conversations of one queue and state [`AgentService::queues_of`] counts: "at least
/// this many" past it.
pub const QUEUE_COUNT_CAP: usize = 1_000;

/// Which of the agent's conversations a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListView {
    /// One state, or all.
    pub state: Option<ConversationState>,
    /// The snoozed ones only (`true`), or only those not snoozed now (`false`).
    pub snoozed: bool,
    /// The ones flagged for a follow-up only.
    pub follow_up: bool,
    /// Assigned to the caller, or to no agent.
    pub assigned: Option<Assigned>,
    /// Tagged so (the conversation's tags or its customer's), normalized.
    pub tag: Option<String>,
    /// At most this many read (1 to [`LIST_LIMIT`]; 0 stands for [`LIST_LIMIT`]).
    pub limit: usize,
    /// After this place of the list (the previous page's `nextCursor`).
    pub after: Option<omniline_domain::conversation::ListCursor>,
}

/// A page of the conversation list, and where the next one starts when there may be one.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    pub items: Vec<ConversationSummary>,
    pub next: Option<omniline_domain::conversation::ListCursor>,
}

/// `assigned=` of the conversation list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigned {
    Me,
    Unassigned,
}

/// One of the agent's queues and its load.
#[derive(Debug, Clone)]
pub struct QueueLoad {
    pub queue: QueueRef,
    /// Conversations waiting for an agent (at most [`QUEUE_COUNT_CAP`]).
    pub waiting: usize,
    /// Conversations being answered (at most [`QUEUE_COUNT_CAP`]).
    pub active: usize,
}

/// A conversation of the agent's list, with its customer (1:1 chats).
#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub customer: Option<CustomerView>,
}

/// One conversation with everything around it.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub customer: Option<CustomerView>,
    /// With a customer: the other conversations of the same source opened before or with this
    /// one (empty without a customer).
    pub previous: Vec<Conversation>,
    pub queue: Option<QueueRef>,
    pub workstream: Option<Workstream>,
    /// The customer's attributes (admins'), for a 1:1 customer.
    pub attributes: std::collections::BTreeMap<String, Value>,
    /// The customer's tags (agents'), for a 1:1 customer.
    pub customer_tags: Vec<String>,
}

/// One line of a conversation's timeline.
#[derive(Debug, Clone)]
pub enum TimelineLine {
    /// A transcript entry: the customer's event, or an agent's message with its delivery
    /// (`None`: not attempted yet). `media_url` signs the stored media of an inbound message.
    /// `quoted_line_id`: when the customer's message quotes another (`message.quotedMessageId`)
    /// that is a line of this conversation's timeline (a customer message, or a message the
    /// stack sent whose LINE message id its delivery recorded), that line's id.
    Entry {
        entry: TranscriptEntry,
        delivery: Option<Delivery>,
        media_url: Option<String>,
        quoted_line_id: Option<String>,
    },
    /// What the stack sent on its own (greeting, survey, bot answer), from its delivery record.
    Sent {
        delivery: Delivery,
        content: DeliveredContent,
    },
}

/// A page of the timeline, in time order.
#[derive(Debug, Clone)]
pub struct TimelinePage {
    pub lines: Vec<TimelineLine>,
    /// The `before` of the previous page, when there is one.
    pub next_before: Option<i64>,
}

/// A media file an agent stored for a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub media_id: String,
    /// Its signed link.
    pub url: Option<String>,
}

/// The agent's survey view of a conversation.
#[derive(Debug, Clone)]
pub struct SurveyAnswer {
    pub conversation_id: String,
    pub survey: SurveyState,
}

/// Where the last page of `lines` (in time order) starts: the last `limit` lines, and the lines
/// before them that share the first one's millisecond. The next page is asked for with
/// `before` = that millisecond, so a tie cut by the page boundary would never be seen.
fn page_start<T>(lines: &[T], at: impl Fn(&T) -> i64, limit: usize) -> usize {
    let mut start = lines.len().saturating_sub(limit);
    while start > 0 && start < lines.len() && at(&lines[start - 1]) == at(&lines[start]) {
        start -= 1;
    }
    start
}

/// Whether `media_id` is an upload of `agent_id` (`agent-media/{agentId}/{file}`, as
/// [`AgentService::upload_media`] names them).
fn is_own_upload(media_id: &str, agent_id: &str) -> bool {
    media_id
        .strip_prefix("agent-media/")
        .and_then(|rest| rest.strip_prefix(agent_id))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|file| {
            !file.is_empty()
                && file.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
                && !file.starts_with('.')
        })
}

/// `key` if it is a usable idempotency key (1 to 64 of `[A-Za-z0-9_-]`).
/// The caller's `Idempotency-Key` when usable (400 otherwise), or a new one without.
fn idempotency_key_or_new(key: Option<&str>) -> Result<String, AgentError> {
    match key {
        Some(k) => usable_idempotency_key(k).map(str::to_owned).ok_or_else(|| {
            AgentError::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1 to 64 characters of [A-Za-z0-9_-]",
            )
        }),
        None => Ok(uuid::Uuid::new_v4().simple().to_string()),
    }
}

fn usable_idempotency_key(key: &str) -> Option<&str> {
    (!key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(key)
}

/// The timeline line of each LINE message id the conversation knows: a customer message's
/// transcript entry (its `message.id`), and a message the stack sent (`sentMessages[].id` its
/// delivery recorded): an agent's message is its transcript entry, whose id is its delivery's;
/// an automated or bot message is its delivery's line.
fn line_ids_by_message_id<'a>(
    transcript: &'a [TranscriptEntry],
    deliveries: &'a HashMap<String, Delivery>,
) -> HashMap<&'a str, &'a str> {
    let entry_ids: std::collections::HashSet<&str> =
        transcript.iter().map(|e| e.event_id.as_str()).collect();
    let mut ids = HashMap::new();
    for d in deliveries.values() {
        if d.content.is_some() || entry_ids.contains(d.id.as_str()) {
            for sent in &d.sent_message_ids {
                ids.insert(sent.as_str(), d.id.as_str());
            }
        }
    }
    for e in transcript {
        if let Some(message_id) = e.message_id.as_deref() {
            ids.insert(message_id, e.event_id.as_str());
        }
    }
    ids
}

/// The `markAsReadToken` of the latest customer message in `transcript` that carries one (LINE
/// puts it in a message event's `message` object; retracted entries keep no event).
/// How many of a conversation's latest transcript entries a read looks through for the latest
/// customer message's `markAsReadToken`.
const READ_TOKEN_WITHIN: usize = 50;

fn latest_mark_as_read_token(transcript: &[TranscriptEntry]) -> Option<&str> {
    transcript
        .iter()
        .filter(|e| e.event_type == "message" && !e.retracted)
        .filter_map(|e| {
            let token = e.event["message"]["markAsReadToken"].as_str()?;
            (!token.is_empty()).then_some((e.timestamp, e.event_id.as_str(), token))
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, _, token)| token)
}

impl AgentService {
    /// The contact `id` of `account_id` (contacts are per account).
    pub(crate) async fn contact(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<Contact>, AgentError> {
        let doc = self
            .deps()
            .config
            .get_doc(&contact_kind(account_id), id)
            .await?;
        Ok(doc.and_then(|d| serde_json::from_str(&d.doc).ok()))
    }

    /// The customer of a 1:1 conversation (the source user), if stored.
    pub(crate) async fn customer_of(
        &self,
        c: &Conversation,
    ) -> Result<Option<Customer>, AgentError> {
        Ok(self.router.customer_of(c).await?)
    }

    /// The customer with its linked contact.
    pub(crate) async fn customer_view(
        &self,
        customer: Customer,
    ) -> Result<CustomerView, AgentError> {
        let contact = match &customer.linked_contact_id {
            Some(id) => self.contact(&customer.account_id, id).await?,
            None => None,
        };
        Ok(CustomerView { customer, contact })
    }

    /// [`Self::customer_view`] of the conversation's customer, if any.
    pub(crate) async fn customer_view_of(
        &self,
        c: &Conversation,
    ) -> Result<Option<CustomerView>, AgentError> {
        match self.customer_of(c).await? {
            Some(customer) => Ok(Some(self.customer_view(customer).await?)),
            None => Ok(None),
        }
    }

    /// The queue `id` with its name.
    pub(crate) async fn queue_ref(&self, id: &str) -> Result<QueueRef, AgentError> {
        let name = self
            .deps()
            .config
            .get_doc(QUEUE_KIND, id)
            .await?
            .and_then(|d| serde_json::from_str::<Queue>(&d.doc).ok())
            .map(|q| q.name);
        Ok(QueueRef {
            id: id.to_owned(),
            name,
        })
    }

    /// Where `agent` may transfer a conversation: its queues (with their names) and the other
    /// agents serving them (one read per queue: bounded by the agent's queues, not the team).
    pub async fn transfer_targets(
        &self,
        agent: &Agent,
    ) -> Result<(Vec<QueueRef>, Vec<Agent>), AgentError> {
        let mut queues = Vec::with_capacity(agent.queues.len());
        for queue in &agent.queues {
            queues.push(self.queue_ref(queue).await?);
        }
        let mut agents = self.agents_of(agent, None).await?;
        agents.retain(|other| other.id != agent.id);
        Ok((queues, agents))
    }

    /// The quick replies the agent sees (of its queues, or of every queue) that match `q`, by
    /// shortcut, at most [`QUICK_REPLY_LIMIT`], each with the language of its text for a
    /// customer speaking `language`.
    pub async fn quick_replies(
        &self,
        agent: &Agent,
        q: &str,
        language: Option<&str>,
    ) -> Result<Vec<(QuickReply, Option<String>)>, AgentError> {
        let docs = self.deps().config.list_docs(QUICK_REPLY_KIND).await?;
        let mut found: Vec<QuickReply> = docs
            .iter()
            .filter_map(|d| serde_json::from_str::<QuickReply>(&d.doc).ok())
            .filter(|r| r.visible_to(&agent.queues) && r.matches(q))
            .collect();
        found.sort_by(|a, b| a.shortcut.cmp(&b.shortcut));
        found.truncate(QUICK_REPLY_LIMIT);
        Ok(found
            .into_iter()
            .map(|r| {
                let chosen = r.language_for(language).map(str::to_owned);
                (r, chosen)
            })
            .collect())
    }

    /// The agent's queues with their names and how many of their conversations wait and are
    /// being answered (each counted up to [`QUEUE_COUNT_CAP`]): one key count per queue and
    /// state, bounded by the agent's queues.
    pub async fn queues_of(&self, agent: &Agent) -> Result<Vec<QueueLoad>, AgentError> {
        let conversations = &self.deps().conversations;
        let mut queues = Vec::with_capacity(agent.queues.len());
        for id in &agent.queues {
            queues.push(QueueLoad {
                queue: self.queue_ref(id).await?,
                waiting: conversations
                    .count_in_queue(id, ConversationState::Waiting, QUEUE_COUNT_CAP)
                    .await?,
                active: conversations
                    .count_in_queue(id, ConversationState::Active, QUEUE_COUNT_CAP)
                    .await?,
            });
        }
        Ok(queues)
    }

    /// The agents serving `queue_id` (one of the caller's queues: `Forbidden` otherwise), by
    /// name, or of every queue of the caller's when `None`; the caller among them.
    pub async fn agents_of(
        &self,
        agent: &Agent,
        queue_id: Option<&str>,
    ) -> Result<Vec<Agent>, AgentError> {
        let queues: Vec<&String> = match queue_id {
            Some(q) => {
                let Some(q) = agent.queues.iter().find(|mine| *mine == q) else {
                    return Err(AgentError::Forbidden(
                        "you can only see the agents of your own queues".into(),
                    ));
                };
                vec![q]
            }
            None => agent.queues.iter().collect(),
        };
        let mut agents: Vec<Agent> = Vec::new();
        for queue in queues {
            for other in self.deps().agents.agents_in_queue(queue).await? {
                if !agents.iter().any(|a| a.id == other.id) {
                    agents.push(other);
                }
            }
        }
        agents.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok(agents)
    }

    /// The conversations of the agent's queues and its own (at most [`LIST_LIMIT`] read), in
    /// `view.state` when given. A snoozed conversation is out of the list until its snooze ends
    /// or the customer writes, unless `view.snoozed` asks for the snoozed ones only;
    /// `view.follow_up` keeps the flagged ones.
    pub async fn list_conversations(
        &self,
        agent: &Agent,
        view: ListView,
    ) -> Result<ConversationPage, AgentError> {
        let limit = match view.limit {
            0 => LIST_LIMIT,
            n => n.min(LIST_LIMIT),
        };
        let filter = ConversationFilter {
            state: view.state,
            queue_ids: agent.queues.clone(),
            agent_id: Some(agent.id.clone()),
            limit,
            after: view.after.clone(),
        };
        let now = self.now();
        let read = self
            .deps()
            .conversations
            .list_conversations(&filter)
            .await?;
        // A full page may have more after it: the next starts after its last row read (the
        // filters below may leave fewer rows than read).
        let next = (read.len() >= limit)
            .then(|| {
                read.last()
                    .map(omniline_domain::conversation::ListCursor::of)
            })
            .flatten();
        let conversations = read
            .into_iter()
            .filter(|c| c.snoozed_at(now) == view.snoozed)
            .filter(|c| !view.follow_up || c.follow_up)
            .filter(|c| match view.assigned {
                None => true,
                Some(Assigned::Me) => c.agent_id.as_deref() == Some(agent.id.as_str()),
                Some(Assigned::Unassigned) => c.agent_id.is_none(),
            });
        let mut items = Vec::new();
        for conversation in conversations {
            let customer = self.customer_view_of(&conversation).await?;
            if let Some(tag) = &view.tag {
                // The conversation's tags, else its customer's (one read by key, only when
                // filtering by tag).
                let tagged = conversation.tags.contains(tag)
                    || (conversation.source_type == SourceType::User
                        && crate::router::customer_tags(
                            self.deps().config.as_ref(),
                            &conversation.account_id,
                            &conversation.source_id,
                        )
                        .await?
                        .contains(tag));
                if !tagged {
                    continue;
                }
            }
            items.push(ConversationSummary {
                conversation,
                customer,
            });
        }
        Ok(ConversationPage { items, next })
    }

    /// The conversation, the customer (with the linked contact and their previous
    /// conversations), the queue and the workstream.
    pub async fn conversation_detail(
        &self,
        agent: &Agent,
        id: &str,
    ) -> Result<ConversationDetail, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        let deps = self.deps();
        let customer = self.customer_view_of(&c).await?;
        let mut previous = Vec::new();
        if customer.is_some() {
            let all = deps
                .conversations
                .conversations_of_source(&c.account_id, &c.source_id)
                .await?;
            previous.extend(
                all.into_iter()
                    .filter(|o| o.id != c.id && o.opened_at <= c.opened_at),
            );
        }
        let workstream = deps
            .workstreams
            .workstream_for_account(&c.account_id)
            .await?;
        let queue = match c.queue_id.as_deref() {
            Some(q) => Some(self.queue_ref(q).await?),
            None => None,
        };
        let document = match &customer {
            Some(view) => {
                crate::router::customer_document(
                    deps.config.as_ref(),
                    &view.customer.account_id,
                    &view.customer.user_id,
                )
                .await?
            }
            None => Default::default(),
        };
        let (attributes, customer_tags) = (document.attributes, document.tags);
        Ok(ConversationDetail {
            conversation: c,
            customer,
            previous,
            queue,
            workstream,
            attributes,
            customer_tags,
        })
    }

    /// The page of the timeline before `before` (epoch ms; the latest without), at most `limit`
    /// lines (more when lines share the first one's millisecond): the customer's events and the
    /// agents' messages (the transcript) with their delivery, and what the stack sent on its own —
    /// greetings, the survey, bot answers — from their delivery records, in time order.
    pub async fn timeline(
        &self,
        agent: &Agent,
        id: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<TimelinePage, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        self.timeline_of(&c, before, limit).await
    }

    /// A page of `c`'s timeline (whoever may see it: the caller checked).
    pub(crate) async fn timeline_of(
        &self,
        c: &Conversation,
        before: Option<i64>,
        limit: usize,
    ) -> Result<TimelinePage, AgentError> {
        let transcript = self.deps().conversations.transcript(&c.id).await?;
        let deliveries: HashMap<String, Delivery> = self
            .deliveries
            .deliveries_for_conversation(&c.id)
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let line_ids = line_ids_by_message_id(&transcript, &deliveries);
        let mut lines: Vec<(i64, &str, TimelineLine)> = transcript
            .iter()
            .map(|e| {
                (
                    e.timestamp,
                    e.event_id.as_str(),
                    self.entry_line(e, &deliveries, &line_ids),
                )
            })
            .collect();
        lines.extend(deliveries.values().filter_map(|d| {
            let content = d.content.as_ref()?;
            Some((
                content.queued_at,
                d.id.as_str(),
                TimelineLine::Sent {
                    delivery: d.clone(),
                    content: content.clone(),
                },
            ))
        }));
        lines.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
        let eligible: Vec<(i64, TimelineLine)> = lines
            .into_iter()
            .filter(|(at, _, _)| before.is_none_or(|b| *at < b))
            .map(|(at, _, line)| (at, line))
            .collect();
        let start = page_start(&eligible, |e| e.0, limit);
        let next_before = (start > 0)
            .then(|| eligible.get(start).map(|e| e.0))
            .flatten();
        let lines = eligible.into_iter().skip(start).map(|(_, l)| l).collect();
        Ok(TimelinePage { lines, next_before })
    }

    /// A transcript entry as a timeline line: an agent's message with its delivery, an inbound
    /// message's stored media with a signed link.
    fn entry_line(
        &self,
        entry: &TranscriptEntry,
        deliveries: &HashMap<String, Delivery>,
        line_ids: &HashMap<&str, &str>,
    ) -> TimelineLine {
        let mut delivery = None;
        let mut media_url = None;
        let mut quoted_line_id = None;
        if entry.event_type == "agentMessage" {
            let message_id = entry.event["messageId"].as_str().unwrap_or(&entry.event_id);
            delivery = deliveries.get(message_id).cloned();
        } else if !entry.retracted {
            if let Some(key) = entry.event["omnilineMedia"]["key"].as_str() {
                media_url = self.media_link(key);
            }
            quoted_line_id = entry.event["message"]["quotedMessageId"]
                .as_str()
                .and_then(|quoted| line_ids.get(quoted))
                .map(|id| (*id).to_owned());
        }
        TimelineLine::Entry {
            entry: entry.clone(),
            delivery,
            media_url,
            quoted_line_id,
        }
    }

    /// The signed link of an agent's own upload (`mediaId` of a reply): another agent's upload,
    /// or a stack that does not sign media, is refused.
    pub fn upload_link(&self, agent: &Agent, media_id: &str) -> Result<String, AgentError> {
        // An upload is its uploader's: another agent's mediaId is refused like any other.
        if !is_own_upload(media_id, &agent.id) {
            return Err(AgentError::invalid(
                "mediaId",
                "mediaId must come from your own POST /agent/v1/media",
            ));
        }
        self.media_link(media_id)
            .ok_or_else(|| AgentError::invalid("mediaId", "this stack cannot sign media links"))
    }

    /// Queues the agent's reply (LINE message objects; `attachment` for image, video or audio,
    /// which the workstream may forbid) and returns its message id. The same `idempotency_key`
    /// queues nothing new; without one, the reply gets a fresh one.
    pub async fn send_reply(
        &self,
        agent: &Agent,
        id: &str,
        messages: Vec<Value>,
        attachment: bool,
        idempotency_key: Option<&str>,
    ) -> Result<String, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        // A mention names a member of this chat; everyone, only in a group or room.
        let chat = match c.source_type {
            SourceType::User => text_v2::Chat::OneToOne,
            SourceType::Group | SourceType::Room => text_v2::Chat::Group {
                members: &c.members,
            },
        };
        for message in &messages {
            if message.get("type").and_then(Value::as_str) == Some("textV2") {
                let text = message.get("text").and_then(Value::as_str).unwrap_or("");
                text_v2::check(text, message.get("substitution"), chat).map_err(
                    |(field, problem)| {
                        AgentError::unprocessable(&field, format!("{field} {problem}"))
                    },
                )?;
            }
        }
        if attachment {
            let ws = self
                .deps()
                .workstreams
                .workstream_for_account(&c.account_id)
                .await?;
            if ws.is_some_and(|w| !w.attachments.agent_can_send) {
                return Err(AgentError::Forbidden(
                    "this workstream does not let agents send attachments (attachments.agentCanSend is off)".into(),
                ));
            }
        }
        let key = idempotency_key_or_new(idempotency_key)?;
        Ok(self
            .router
            .send_agent_message(&c.id, agent, messages, &key)
            .await?)
    }

    /// Sends message template `template_id` filled in with `variables` and the built-ins (the
    /// customer's display name, the agent's name): LINE's rules are checked once it is filled
    /// in; then as [`Self::send_reply`].
    pub async fn send_template(
        &self,
        agent: &Agent,
        id: &str,
        template_id: &str,
        mut variables: std::collections::BTreeMap<String, String>,
        idempotency_key: Option<&str>,
    ) -> Result<String, AgentError> {
        use omniline_domain::message_templates::{fill, MessageTemplate, MESSAGE_TEMPLATE_KIND};
        let c = self.visible_conversation(agent, id).await?.0;
        let deps = self.deps();
        let template: MessageTemplate = deps
            .config
            .get_doc(MESSAGE_TEMPLATE_KIND, template_id)
            .await?
            .and_then(|doc| serde_json::from_str(&doc.doc).ok())
            .ok_or_else(|| {
                AgentError::unprocessable("templateId", "no message template has this id")
            })?;
        let customer_name = match c.source_type {
            SourceType::User => deps
                .conversations
                .customer(&c.account_id, &c.source_id)
                .await?
                .map(|customer| customer.display_name)
                .unwrap_or_default(),
            _ => c
                .group
                .as_ref()
                .and_then(|g| g.name.clone())
                .unwrap_or_default(),
        };
        variables.insert("customerName".into(), customer_name);
        variables.insert("agentName".into(), agent.name.clone());
        let messages = fill(&template, &variables).map_err(|(field, problem)| {
            AgentError::unprocessable(&field, format!("{field} {problem}"))
        })?;
        let attachment = messages.iter().any(|m| {
            matches!(
                m.get("type").and_then(Value::as_str),
                Some("image" | "video" | "audio")
            )
        });
        self.send_reply(agent, id, messages, attachment, idempotency_key)
            .await
    }

    /// Stores a file for a reply (`content_type` image/jpeg, image/png, video/mp4, audio/m4a or
    /// application/pdf: a PDF goes to LINE as a `file`, a link with its name)
    /// under `agent-media/{agentId}/…` and returns its id and signed link.
    pub async fn upload_media(
        &self,
        agent: &Agent,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Upload, AgentError> {
        let ext = match content_type {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "video/mp4" => "mp4",
            "audio/m4a" | "audio/x-m4a" | "audio/mp4" => "m4a",
            "application/pdf" => "pdf",
            _ => {
                return Err(AgentError::invalid(
                    "Content-Type",
                    "Content-Type must be image/jpeg, image/png, video/mp4, audio/m4a or application/pdf",
                ))
            }
        };
        if body.is_empty() {
            return Err(AgentError::invalid(
                "body",
                "the body must be the file's bytes",
            ));
        }
        if self.media.is_none() {
            return Err(AgentError::Forbidden(
                "this stack does not store agent media".into(),
            ));
        }
        let key = format!(
            "agent-media/{}/{}.{ext}",
            agent.id,
            uuid::Uuid::new_v4().simple()
        );
        self.deps()
            .media
            .put(&key, body, Some(content_type))
            .await?;
        let url = self.media_link(&key);
        Ok(Upload { media_id: key, url })
    }

    /// The agent takes a waiting conversation it may see.
    pub async fn pick(&self, agent: &Agent, id: &str) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.pick(&c.id, agent).await?)
    }

    /// An open 1:1 conversation the agent sees (else `Unprocessable` with `why`): what typing
    /// and read need.
    async fn open_one_to_one(
        &self,
        agent: &Agent,
        id: &str,
        why: &str,
    ) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        one_to_one_open(c, why)
    }

    /// The channel access token of the conversation's account.
    async fn channel_token(&self, c: &Conversation) -> Result<SecretString, AgentError> {
        self.deps()
            .tokens
            .token(&c.account_id)
            .await
            .map_err(|e| AgentError::Line(e.to_string()))
    }

    /// LINE's loading animation in the customer's chat for `seconds` (a multiple of 5, 5 to 60;
    /// 1:1 chats only).
    pub async fn start_typing(
        &self,
        agent: &Agent,
        id: &str,
        seconds: u32,
    ) -> Result<(), AgentError> {
        let c = self
            .open_one_to_one(
                agent,
                id,
                "LINE shows the loading animation in 1:1 chats only",
            )
            .await?;
        let token = self.channel_token(&c).await?;
        self.deps()
            .line
            .start_loading(&token, &c.source_id, seconds)
            .await
            .map_err(|e| AgentError::Line(e.to_string()))
    }

    /// Marks the customer's messages as read (1:1 chats only) with the `markAsReadToken` of the
    /// latest customer message of the conversation (`POST /v2/bot/chat/markAsRead`): LINE marks
    /// the chat read up to that message. [`AgentError::NothingToMarkRead`] when the transcript
    /// holds no customer message with a token (none yet, or only entries stored without one).
    pub async fn mark_read(&self, agent: &Agent, id: &str) -> Result<(), AgentError> {
        // Read by the agent holding it: the inbox counts nothing unread (any chat; LINE's read
        // receipt below is for 1:1 chats).
        let seen = self.visible_conversation(agent, id).await?.0;
        self.router.clear_unread(&seen.id, agent).await?;
        // Clearing changes neither the chat nor the state: what was read is checked (one read
        // of the conversation fewer).
        let c = one_to_one_open(seen, "read receipts exist in 1:1 chats only")?;
        // The latest entries only: what a read costs does not grow with the conversation.
        let latest = self
            .deps()
            .conversations
            .latest_transcript(&c.id, READ_TOKEN_WITHIN)
            .await?;
        let read_token = latest_mark_as_read_token(&latest).ok_or(AgentError::NothingToMarkRead)?;
        let token = self.channel_token(&c).await?;
        self.deps()
            .line
            .mark_as_read_by_token(&token, read_token)
            .await
            .map_err(|e| AgentError::Line(e.to_string()))
    }

    /// Moves a conversation the agent sees to a queue (which must exist: `Unprocessable`
    /// otherwise) or to an agent.
    pub async fn transfer(
        &self,
        agent: &Agent,
        id: &str,
        target: TransferTarget,
    ) -> Result<Conversation, AgentError> {
        if let TransferTarget::Queue(q) = &target {
            let exists = self.deps().config.get_doc(QUEUE_KIND, q).await?.is_some();
            if !exists {
                return Err(AgentError::unprocessable(
                    "queueId",
                    format!("there is no queue {q:?}"),
                ));
            }
        }
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.transfer(&c.id, agent, target).await?)
    }

    /// The agent writes first to the customer `customer_id` (`{accountId}:{userId}`): a
    /// conversation of the account's workstream, in its default queue when the agent serves it
    /// (else the first of the workstream's rule queues it serves), opened active with the agent
    /// on one of its slots, and `messages` sent in it (pushed: no reply token is young enough).
    /// `NotFound("customer")` for an unknown customer; `Forbidden` when the agent serves none of
    /// the workstream's queues; [`AgentError::NotFollowing`] when the customer unfollowed
    /// (blocked) the account or LINE has no profile of them for us (not a friend): nothing is
    /// sent; [`AgentError::ConversationOpen`] when they have an open conversation that is not
    /// this agent's (the agent's own open one takes the message instead). The same
    /// `Idempotency-Key` opens and sends once.
    pub async fn start_conversation(
        &self,
        agent: &Agent,
        customer_id: &str,
        messages: Vec<Value>,
        attachment: bool,
        idempotency_key: Option<&str>,
    ) -> Result<(Conversation, String), AgentError> {
        let (customer, ws, queue) = self.served_customer(agent, customer_id).await?;
        let (account_id, user_id) = (customer.account_id.as_str(), customer.user_id.as_str());
        let deps = self.deps();
        if customer.consent == Consent::Unfollowed || !customer.profile_found {
            return Err(AgentError::NotFollowing);
        }
        let key = idempotency_key_or_new(idempotency_key)?;
        let c = match deps
            .conversations
            .open_conversation(account_id, user_id)
            .await?
        {
            Some(open)
                if open.state == ConversationState::Active
                    && open.agent_id.as_deref() == Some(agent.id.as_str()) =>
            {
                open
            }
            Some(open) => return Err(AgentError::ConversationOpen(open.id)),
            None => {
                self.router
                    .start_conversation(account_id, user_id, &ws, &queue, agent, &key)
                    .await?
            }
        };
        let message_id = self
            .send_reply(agent, &c.id, messages, attachment, Some(&key))
            .await?;
        let c = deps.conversations.conversation(&c.id).await?.unwrap_or(c);
        Ok((c, message_id))
    }

    /// Accepts the offer of a conversation to the agent.
    pub async fn accept_offer(&self, agent: &Agent, id: &str) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.accept_offer(&c.id, agent).await?)
    }

    /// Rejects the offer of a conversation to the agent: the next agent gets it.
    pub async fn reject_offer(&self, agent: &Agent, id: &str) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.reject_offer(&c.id, agent).await?)
    }

    /// Records the wrap-up of a conversation the agent closed and gives its slot back.
    pub async fn finish_wrap_up(
        &self,
        agent: &Agent,
        id: &str,
        disposition: String,
        notes: Option<String>,
    ) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self
            .router
            .finish_wrap_up(&c.id, agent, disposition, notes)
            .await?)
    }

    /// Adds an internal note to a conversation the agent sees (never sent to LINE).
    pub async fn add_conversation_note(
        &self,
        agent: &Agent,
        id: &str,
        text: &str,
    ) -> Result<Note, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        let entry = self.router.add_note(&c, agent, text).await?;
        note_of(&entry).ok_or_else(|| AgentError::Internal("the note did not read back".into()))
    }

    /// The notes of a conversation the agent sees, oldest first.
    pub async fn conversation_notes(
        &self,
        agent: &Agent,
        id: &str,
    ) -> Result<Vec<Note>, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self
            .deps()
            .conversations
            .transcript(&c.id)
            .await?
            .iter()
            .filter_map(note_of)
            .collect())
    }

    /// The customer `customer_id` (`{accountId}:{userId}`), their account's workstream and the
    /// first of its queues the agent serves (the default queue first, then the rules' queues):
    /// `NotFound("customer")` for a malformed id, an account without a workstream or a customer
    /// never stored; `Forbidden` when the agent serves none of the workstream's queues.
    pub(crate) async fn served_customer(
        &self,
        agent: &Agent,
        customer_id: &str,
    ) -> Result<(Customer, Workstream, String), AgentError> {
        let Some((account_id, user_id)) = customer_id
            .split_once(':')
            .filter(|(a, u)| !a.is_empty() && !u.is_empty())
        else {
            return Err(AgentError::NotFound("customer"));
        };
        let deps = self.deps();
        let Some(ws) = deps.workstreams.workstream_for_account(account_id).await? else {
            return Err(AgentError::NotFound("customer"));
        };
        let queue = std::iter::once(&ws.default_queue)
            .chain(ws.rules.iter().map(|r| &r.result.queue))
            .find(|q| agent.queues.contains(q))
            .cloned()
            .ok_or_else(|| {
                AgentError::Forbidden(
                    "you serve none of the queues of this customer's account".into(),
                )
            })?;
        let customer = deps
            .conversations
            .customer(account_id, user_id)
            .await?
            .ok_or(AgentError::NotFound("customer"))?;
        Ok((customer, ws, queue))
    }

    /// The notes agents keep about a customer the agent serves, oldest first.
    pub async fn customer_notes(
        &self,
        agent: &Agent,
        customer_id: &str,
    ) -> Result<Vec<Note>, AgentError> {
        let (customer, _, _) = self.served_customer(agent, customer_id).await?;
        let doc = self
            .deps()
            .config
            .get_doc(
                CUSTOMER_NOTES_KIND,
                &customer_doc_id(&customer.account_id, &customer.user_id),
            )
            .await?;
        Ok(doc
            .and_then(|d| serde_json::from_str::<CustomerNotes>(&d.doc).ok())
            .map(|n| n.notes)
            .unwrap_or_default())
    }

    /// Adds a note about a customer the agent serves (the oldest dropped past
    /// [`CUSTOMER_NOTES_MAX`]); a concurrent note is read again and kept.
    pub async fn add_customer_note(
        &self,
        agent: &Agent,
        customer_id: &str,
        text: &str,
    ) -> Result<Note, AgentError> {
        let (customer, _, _) = self.served_customer(agent, customer_id).await?;
        let deps = self.deps();
        let account_id = customer.account_id.as_str();
        let id = customer_doc_id(account_id, &customer.user_id);
        let note = Note {
            id: omniline_domain::clock::new_id(),
            text: text.to_owned(),
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            at: self.now(),
        };
        for _ in 0..3 {
            let stored = deps.config.get_doc(CUSTOMER_NOTES_KIND, &id).await?;
            let (mut notes, expect) = match &stored {
                Some(d) => (
                    serde_json::from_str::<CustomerNotes>(&d.doc).unwrap_or_default(),
                    Expect::Version(d.version),
                ),
                None => (CustomerNotes::default(), Expect::Absent),
            };
            notes.notes.push(note.clone());
            let over = notes.notes.len().saturating_sub(CUSTOMER_NOTES_MAX);
            notes.notes.drain(..over);
            let doc = serde_json::to_string(&notes)
                .map_err(|e| AgentError::Internal(format!("customer notes: {e}")))?;
            if deps
                .config
                .put_doc(CUSTOMER_NOTES_KIND, &id, &doc, expect)
                .await?
                .is_some()
            {
                tracing::info!(agent_id = %agent.id, account_id, "customer note added");
                return Ok(note);
            }
        }
        Err(AgentError::Conflict(
            "the customer's notes kept changing; try again".into(),
        ))
    }

    /// Snoozes until `until` (epoch ms) or wakes (`None`) a conversation the agent holds.
    pub async fn snooze(
        &self,
        agent: &Agent,
        id: &str,
        until: Option<i64>,
    ) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.snooze(&c.id, agent, until).await?)
    }

    /// Flags or unflags a conversation the agent holds for a follow-up.
    pub async fn set_follow_up(
        &self,
        agent: &Agent,
        id: &str,
        follow_up: bool,
    ) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.set_follow_up(&c.id, agent, follow_up).await?)
    }

    /// Closes a conversation the agent sees; the "agent ended" message and the survey go to the
    /// customer.
    pub async fn close(&self, agent: &Agent, id: &str) -> Result<Conversation, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        Ok(self.router.close_by_agent(&c.id, agent).await?)
    }

    /// The survey sent at close and its answer (`NotFound("survey")` when none was sent).
    pub async fn survey(&self, agent: &Agent, id: &str) -> Result<SurveyAnswer, AgentError> {
        let c = self.visible_conversation(agent, id).await?.0;
        let survey = c.survey.ok_or(AgentError::NotFound("survey"))?;
        Ok(SurveyAnswer {
            conversation_id: c.id,
            survey,
        })
    }
}

/// `c` if it is a 1:1 chat that is not closed: `Unprocessable` (saying `why`) for a group or room,
/// `Conflict` once closed.
fn one_to_one_open(c: Conversation, why: &str) -> Result<Conversation, AgentError> {
    if c.source_type != SourceType::User {
        return Err(AgentError::unprocessable("conversation", why));
    }
    if c.state == ConversationState::Closed {
        return Err(AgentError::Conflict("the conversation is closed".into()));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::{
        is_own_upload, latest_mark_as_read_token, line_ids_by_message_id, page_start,
        usable_idempotency_key,
    };
    use omniline_domain::conversation::TranscriptEntry;
    use omniline_domain::delivery::Delivery;
    use serde_json::{json, Value};
    use std::collections::HashMap;

    fn entry(id: &str, at: i64, event_type: &str, event: Value) -> TranscriptEntry {
        TranscriptEntry {
            conversation_id: "c1".into(),
            event_id: id.into(),
            timestamp: at,
            event_type: event_type.into(),
            sender_user_id: Some("U1".into()),
            message_id: event["message"]["id"].as_str().map(str::to_owned),
            event,
            retracted: false,
            sender_name: None,
        }
    }

    fn message(id: &str, at: i64, read_token: Option<&str>) -> TranscriptEntry {
        let mut event = json!({"type": "message", "message": {"type": "text", "id": format!("m-{id}"), "text": "hi"}});
        if let Some(t) = read_token {
            event["message"]["markAsReadToken"] = json!(t);
        }
        entry(id, at, "message", event)
    }

    #[test]
    fn the_read_token_is_the_latest_customer_messages_that_has_one() {
        assert_eq!(latest_mark_as_read_token(&[]), None);
        let old = message("e1", 1, None);
        assert_eq!(latest_mark_as_read_token(std::slice::from_ref(&old)), None);
        let mut retracted = message("e4", 4, Some("mr-4"));
        retracted.retracted = true;
        retracted.event = Value::Null;
        let agent = entry(
            "agent:c1:k",
            5,
            "agentMessage",
            json!({"type": "agentMessage", "message": {"markAsReadToken": "never"}}),
        );
        let postback = entry(
            "e6",
            6,
            "postback",
            json!({"type": "postback", "postback": {"data": "x"}}),
        );
        // Out of order on purpose: the latest by time wins, not the last stored.
        let transcript = vec![
            message("e3", 3, Some("mr-3")),
            message("e2", 2, Some("mr-2")),
            old,
            retracted,
            agent,
            postback,
        ];
        assert_eq!(latest_mark_as_read_token(&transcript), Some("mr-3"));
        assert_eq!(
            latest_mark_as_read_token(&[message("e7", 7, Some(""))]),
            None,
            "an empty token is no token"
        );
    }

    #[test]
    fn quoted_messages_map_to_their_timeline_lines() {
        let transcript = vec![message("e1", 1, None), message("e2", 2, None)];
        let mut greeting = Delivery::new("e1:auto:conversationStarted", "acc", "c1", "rk", 1);
        greeting.sent_message_ids = vec!["L-greet".into()];
        greeting.content = Some(omniline_domain::delivery::DeliveredContent {
            origin: omniline_domain::outbound::Origin::Automated,
            trigger: Some("conversationStarted".into()),
            messages: vec![],
            queued_at: 1,
        });
        let mut agent = Delivery::new("agent:c1:k", "acc", "c1", "rk", 3);
        agent.sent_message_ids = vec!["L-agent".into()];
        let mut orphan = Delivery::new("gone", "acc", "c1", "rk", 3);
        orphan.sent_message_ids = vec!["L-orphan".into()];
        let mut transcript_with_agent = transcript.clone();
        transcript_with_agent.push(entry(
            "agent:c1:k",
            3,
            "agentMessage",
            json!({"type": "agentMessage", "messageId": "agent:c1:k"}),
        ));
        let deliveries: HashMap<String, Delivery> = [greeting, agent, orphan]
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let ids = line_ids_by_message_id(&transcript_with_agent, &deliveries);
        assert_eq!(ids.get("m-e1"), Some(&"e1"));
        assert_eq!(ids.get("m-e2"), Some(&"e2"));
        assert_eq!(ids.get("L-greet"), Some(&"e1:auto:conversationStarted"));
        assert_eq!(ids.get("L-agent"), Some(&"agent:c1:k"));
        assert_eq!(ids.get("L-orphan"), None, "a delivery that is no line");
    }

    #[test]
    fn an_upload_is_its_uploaders_only() {
        assert!(is_own_upload("agent-media/a1/0f3c.jpg", "a1"));
        assert!(!is_own_upload("agent-media/a1/0f3c.jpg", "a2"));
        assert!(!is_own_upload("agent-media/a12/0f3c.jpg", "a1"));
        assert!(!is_own_upload("agent-media/a1/", "a1"));
        assert!(!is_own_upload("agent-media/a1/.hidden", "a1"));
        assert!(!is_own_upload("agent-media/a1/../a2/x.jpg", "a1"));
        assert!(!is_own_upload("media/a1/x.jpg", "a1"));
    }

    #[test]
    fn idempotency_keys_are_1_to_64_safe_characters() {
        assert_eq!(usable_idempotency_key("retry-1_A"), Some("retry-1_A"));
        assert_eq!(
            usable_idempotency_key(&"k".repeat(64)).map(str::len),
            Some(64)
        );
        assert_eq!(usable_idempotency_key(&"k".repeat(65)), None);
        assert_eq!(usable_idempotency_key(""), None);
        assert_eq!(usable_idempotency_key("a b"), None);
        assert_eq!(usable_idempotency_key("a:b"), None);
    }

    #[test]
    fn a_page_never_cuts_a_millisecond_in_two() {
        let at = |t: &i64| *t;
        // The last 2 of [1, 2, 2, 3]: 2 and 3, and the other 2 with them.
        assert_eq!(page_start(&[1, 2, 2, 3], at, 2), 1);
        assert_eq!(page_start(&[1, 2, 3, 4], at, 2), 2);
        assert_eq!(page_start(&[5, 5, 5, 5], at, 2), 0);
        assert_eq!(page_start(&[1, 2], at, 5), 0);
        assert_eq!(page_start::<i64>(&[], at, 5), 0);
        // Paging with `before` = the page's first millisecond sees every line once.
        let lines = [1, 1, 2, 3, 3, 3, 4, 5, 5];
        let mut seen = Vec::new();
        let mut before = i64::MAX;
        loop {
            let eligible: Vec<i64> = lines.iter().copied().filter(|t| *t < before).collect();
            let start = page_start(&eligible, at, 2);
            seen.splice(0..0, eligible[start..].iter().copied());
            if start == 0 {
                break;
            }
            before = eligible[start];
        }
        assert_eq!(seen, lines);
    }
}
