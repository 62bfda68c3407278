//! Routing one event in three steps: [`gather`] reads what the event needs (the customer and
//! LINE's profile, the open conversation, a survey's conversation, an account-link nonce),
//! [`decide`] decides what it changes without I/O, and [`apply`] does what the decision says
//! (downloads or deletes media, asks the bot, claims an agent, notifies the holding agent, queues
//! the automated and bot messages). The outbound messages are not queued here: they are the
//! plan's outbox, committed with the event by the caller, which queues them once the commit has
//! landed (a plan whose commit loses sends nothing).

use crate::router::decide::{
    apply_bot_answer, assigned, assignment_candidates, bot_request, customer_turn, decide,
    link_nonce_to_read, needs_group_summary, needs_profile, offered, route_handoff, source_parts,
    survey_lookup, unassigned_notice, BotAnswer, CustomerFacts, Decision, Facts, GroupFetch,
    Inbound, Plan, ProfileFetch, SurveyFacts, SurveyLookup, Write,
};
use crate::router::{RouteError, RouterDeps, RouterService, MEDIA_PENDING_MAX_RECEIVES};
use omniline_domain::account::Account;
use omniline_domain::agents::AgentNotification;
use omniline_domain::bot::{BotEndpoint, BotRequest};
use omniline_domain::contacts::LINK_NONCE_KIND;
use omniline_domain::conversation::{Conversation, Customer, SourceType};
use omniline_domain::line::api::{Content, LineApiError};
use omniline_domain::outbound::OutboundMessage;
use omniline_domain::routing::rules::CompiledRules;
use omniline_domain::workstream::{BotConfig, Distribution, Trigger, Workstream};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

// What agent operations (`agent_ops`) use of the decisions, by their former paths.
pub(crate) use crate::router::decide::{agent_notification, scheduled_messages, Outbox};

/// What one event changes: the facts read, the decision, and its effects. The only step that
/// uses the service itself: the clock (read once), the compiled rules and the settings (cached).
pub(crate) async fn plan(
    svc: &RouterService,
    account: &Account,
    ws: Option<&Workstream>,
    inbound: &Inbound,
    receive_count: u32,
) -> Result<Plan, RouteError> {
    let now = (svc.deps.clock)();
    let rules = ws.map(|w| svc.compiled_rules(w));
    let facts = gather(&svc.deps, &account.id, ws, rules.clone(), inbound, now).await?;
    let decision = decide(facts, now);
    let cutoff = svc.presence_cutoff(now).await?;
    let applied = apply(
        &svc.deps,
        cutoff,
        ws,
        rules.as_deref(),
        inbound,
        decision,
        receive_count,
        now,
    )
    .await?;
    let retain_until = svc.settings().await?.retain_until(now);
    let mut plan = applied.decision.into_plan(
        applied.media,
        applied.new_assignment,
        applied.outbox,
        retain_until,
        now,
    );
    plan.commit.notifications = applied.notifications;
    Ok(plan)
}

/// Reads what deciding the event needs: the sender's customer (with LINE's profile on first
/// contact), the account-link nonce the event brings back, the source's open conversation and the
/// conversation a survey answer is for.
async fn gather<'a>(
    deps: &RouterDeps,
    account_id: &'a str,
    ws: Option<&'a Workstream>,
    rules: Option<Arc<CompiledRules>>,
    inbound: &'a Inbound,
    now: i64,
) -> Result<Facts<'a>, RouteError> {
    let event = &inbound.event;
    let (source, sender) = source_parts(event.source());
    let customer = match &sender {
        Some(user_id) => customer_facts(deps, account_id, source.as_ref(), user_id, now).await?,
        None => CustomerFacts::default(),
    };
    let link_nonce = match link_nonce_to_read(event, sender.as_deref()) {
        Some(nonce) => deps
            .config
            .get_doc(LINK_NONCE_KIND, nonce)
            .await?
            .map(|doc| doc.doc),
        None => None,
    };
    let open = match &source {
        Some((_, source_id)) => {
            deps.conversations
                .open_conversation(account_id, source_id)
                .await?
        }
        None => None,
    };
    let group = match &source {
        Some((SourceType::Group, group_id))
            if needs_group_summary(event, ws, open.as_ref(), now) =>
        {
            group_facts(deps, account_id, group_id).await?
        }
        _ => GroupFetch::NotAsked,
    };
    // The customer's attributes, when a rule tests them and the event may open a conversation
    // (one read by key; none otherwise).
    let attributes = match (&sender, &rules) {
        (Some(user_id), Some(rules))
            if open.is_none() && customer_turn(event) && rules.tests_customer_attributes() =>
        {
            crate::router::customer_document(deps.config.as_ref(), account_id, user_id).await?
        }
        _ => Default::default(),
    };
    let lookup = match &source {
        Some(source) => survey_lookup(event, source, open.is_some()),
        None => None,
    };
    let survey = match (lookup, &source) {
        (
            Some(SurveyLookup::Named {
                conversation_id,
                score,
            }),
            _,
        ) => Some(SurveyFacts::Named {
            score,
            conversation: deps
                .conversations
                .conversation(conversation_id)
                .await?
                .map(Box::new),
        }),
        (Some(SurveyLookup::OfSource { score }), Some((_, source_id))) => {
            Some(SurveyFacts::OfSource {
                score,
                conversations: deps
                    .conversations
                    .conversations_of_source(account_id, source_id)
                    .await?,
            })
        }
        _ => None,
    };
    Ok(Facts {
        account_id,
        ws,
        rules,
        inbound,
        customer,
        attributes,
        link_nonce,
        group,
        open,
        survey,
    })
}

/// The stored customer, and LINE's profile when [`needs_profile`] says to ask for it (`None`
/// when LINE has none for us or cannot be reached: routing goes on with a placeholder).
async fn customer_facts(
    deps: &RouterDeps,
    account_id: &str,
    source: Option<&(SourceType, String)>,
    user_id: &str,
    now: i64,
) -> Result<CustomerFacts, RouteError> {
    let stored = deps.conversations.customer(account_id, user_id).await?;
    if !needs_profile(stored.as_ref(), now) {
        return Ok(CustomerFacts {
            stored,
            profile: ProfileFetch::NotAsked,
        });
    }
    let token = deps.tokens.token(account_id).await?;
    let line = &deps.line;
    let fetched = match source {
        Some((SourceType::Group, group)) => line.group_member_profile(&token, group, user_id).await,
        Some((SourceType::Room, room)) => line.room_member_profile(&token, room, user_id).await,
        _ => line.profile(&token, user_id).await,
    };
    let profile = match fetched {
        Ok(profile) => profile,
        // LINE being down must not stop the conversation: route with a placeholder, retry later.
        Err(LineApiError::Unavailable(e)) => {
            tracing::warn!(%account_id, error = %e, "LINE profile unavailable; using a placeholder");
            None
        }
        Err(e) => {
            tracing::warn!(%account_id, error = %e, "LINE refused the profile; using a placeholder");
            None
        }
    };
    Ok(CustomerFacts {
        stored,
        profile: ProfileFetch::Answered(profile),
    })
}

/// LINE's summary of group chat `group_id`. LINE being down is not asked again until the next
/// event (the conversation keeps the summary it had); a 404 is an answer (asked again a day
/// later).
async fn group_facts(
    deps: &RouterDeps,
    account_id: &str,
    group_id: &str,
) -> Result<GroupFetch, RouteError> {
    let token = deps.tokens.token(account_id).await?;
    Ok(match deps.line.group_summary(&token, group_id).await {
        Ok(summary) => GroupFetch::Answered(summary),
        Err(LineApiError::Unavailable(e)) => {
            tracing::warn!(%account_id, error = %e, "LINE group summary unavailable; asked again at the next event");
            GroupFetch::NotAsked
        }
        Err(e) => {
            tracing::warn!(%account_id, error = %e, "LINE refused the group summary");
            GroupFetch::Answered(None)
        }
    })
}

/// A decision with its effects done.
struct Applied {
    decision: Decision,
    /// The media download's outcome, for the transcript entry.
    media: Option<Value>,
    /// (agent, conversation) claimed for the conversation.
    new_assignment: Option<(String, String)>,
    /// The automated and bot messages, to commit with the event (queued after the commit).
    outbox: Vec<OutboundMessage>,
    /// The agents' notifications (the assignment, the customer's message), committed with the
    /// event: a plan whose commit loses notifies no one.
    notifications: Vec<AgentNotification>,
}

/// Does what the decision says, in this order: the media download and deletion, the bot, the
/// distribution to an agent, the holding agent's notification; then the outbound messages are
/// built (for the commit's outbox, not queued; the notifications are committed too). What the bot and the agents answer updates the
/// decision.
#[allow(clippy::too_many_arguments)]
async fn apply(
    deps: &RouterDeps,
    presence_cutoff: i64,
    ws: Option<&Workstream>,
    rules: Option<&CompiledRules>,
    inbound: &Inbound,
    mut d: Decision,
    receive_count: u32,
    now: i64,
) -> Result<Applied, RouteError> {
    let media = match &d.download_media {
        Some(message_id) => download_media(deps, &d.account_id, message_id, receive_count).await?,
        None => None,
    };
    if let Some(key) = &d.delete_media_key {
        deps.media.delete(key).await?;
    }
    if let (Some(bot), Some(c)) = (&d.bot, d.conversation.as_mut()) {
        let request = bot_request(&d.account_id, bot, c, inbound, d.customer.as_ref());
        let answer = ask_bot(deps, bot, &request).await?;
        let handoff = apply_bot_answer(c, &bot.id, answer, ws, &mut d.outbox);
        if let (Some(handoff), Some(ws), Some(rules)) = (handoff, ws, rules) {
            // The rules again, with what the bot handed off with, unless it named a queue.
            if !handoff.queue_named {
                let attributes = match d.customer.as_ref() {
                    Some(customer) if rules.tests_customer_attributes() => {
                        crate::router::customer_document(
                            deps.config.as_ref(),
                            &d.account_id,
                            &customer.user_id,
                        )
                        .await?
                    }
                    _ => Default::default(),
                };
                route_handoff(
                    c,
                    ws,
                    rules,
                    &inbound.event,
                    d.customer.as_ref(),
                    attributes,
                    now,
                );
            }
        }
    }
    let mut new_assignment = None;
    let mut notifications = Vec::new();
    if d.wants_agent(&inbound.event) {
        let fresh = d.write == Some(Write::Create);
        if let Some(c) = d.conversation.as_mut() {
            let (customer, outbox) = (d.customer.as_ref(), &mut d.outbox);
            new_assignment = distribute(
                deps,
                presence_cutoff,
                ws,
                c,
                customer,
                now,
                fresh,
                outbox,
                &mut notifications,
            )
            .await?;
        }
    }
    // The agent holding the conversation hears of the customer's message.
    notifications.extend(d.message_notification(inbound, new_assignment.is_some(), now));
    // Outbound: automated and bot messages, replying with the event's token when it has one.
    // Committed with the event and queued only after the commit lands: a plan whose commit loses
    // (another worker's won) must not have told the customer anything.
    let outbox = d.outbound_messages(inbound, now);
    Ok(Applied {
        decision: d,
        media,
        new_assignment,
        outbox,
        notifications,
    })
}

/// Downloads a message's content into object storage. LINE answers 202 while it prepares audio
/// and video: the message is retried later, and after a few receives stored without the media
/// rather than failing until the dead-letter queue.
async fn download_media(
    deps: &RouterDeps,
    account_id: &str,
    message_id: &str,
    receive_count: u32,
) -> Result<Option<Value>, RouteError> {
    let Some(key) = omniline_domain::media_links::inbound_media_key(account_id, message_id) else {
        return Ok(Some(json!({ "status": "invalid-id" })));
    };
    let token = deps.tokens.token(account_id).await?;
    match deps.line.message_content(&token, message_id).await {
        Ok(Content::Ready {
            bytes,
            content_type,
        }) => {
            let stored = deps.media.put(&key, bytes, content_type.as_deref()).await?;
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
            tracing::warn!(%account_id, message_id, "media still not ready; stored without it");
            Ok(Some(json!({ "status": "not-ready" })))
        }
        // Expired or gone: the message is kept, the content is not.
        Err(LineApiError::Rejected { status, message }) => {
            tracing::warn!(%account_id, message_id, status, "media refused by LINE: {message}");
            Ok(Some(
                json!({ "status": "unavailable", "lineStatus": status }),
            ))
        }
        Err(e @ LineApiError::Unavailable(_)) => Err(e.into()),
    }
}

/// Sends the customer's turn to the bot, signed with its secret.
async fn ask_bot(
    deps: &RouterDeps,
    bot: &BotConfig,
    request: &BotRequest,
) -> Result<BotAnswer, RouteError> {
    let Some(secret) = deps.secrets.get(&bot.secret_name).await? else {
        return Ok(BotAnswer::SecretMissing);
    };
    let endpoint = BotEndpoint {
        url: bot.url.clone(),
        secret,
        timeout: Duration::from_millis(u64::from(bot.timeout_ms)),
    };
    Ok(match deps.bot.deliver(&endpoint, request).await {
        Ok(reply) => BotAnswer::Replied(reply),
        Err(e) => BotAnswer::Failed(e),
    })
}

/// Moves the candidate `agent_id` (if it is one) to the front, the others in their order.
fn prefer(candidates: &mut Vec<&omniline_domain::agents::Agent>, agent_id: &str) {
    if let Some(i) = candidates.iter().position(|a| a.id == agent_id) {
        let agent = candidates.remove(i);
        candidates.insert(0, agent);
    }
}

/// Push mode: assigns the least busy available agent of the queue (atomically, never above
/// capacity), the agent of the customer's last conversation first under the workstream's
/// affinity, adding the agent's notification to `notifications` (for the caller's commit);
/// otherwise the conversation waits. Pick mode: it waits for an agent to pick it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn distribute(
    deps: &RouterDeps,
    presence_cutoff: i64,
    ws: Option<&Workstream>,
    c: &mut Conversation,
    customer: Option<&Customer>,
    now: i64,
    fresh: bool,
    outbox: &mut Outbox,
    notifications: &mut Vec<AgentNotification>,
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
    // An offer out (accepted, rejected or expired by the agent's answer or the schedule)
    // decides who gets it: nothing more here.
    if c.offer.is_some() {
        return Ok(None);
    }
    // An agent not heard from since the presence cutoff is passed over, even before the
    // schedule sets it away.
    let mut agents = deps.agents.agents_in_queue(&queue).await?;
    agents.retain(|a| a.heard_since(presence_cutoff) || a.active_conversations.contains(&c.id));
    // An earlier attempt that failed after assigning left the conversation with an agent: that
    // agent keeps it (the assignment is idempotent), so no slot is held twice. The slot may also
    // be another worker's claim still in flight, which that worker may give back if its commit
    // loses: the caller commits with `commit_assignment`, which lands only while the slot holds
    // the conversation (a slot given back first makes it a conflict, and the retry distributes
    // again), and the loser's `release_unless_assigned` keeps a slot the conversation has.
    // Affinity: the agent of the customer's last conversation first, if it can take this one
    // (in the queue's agents, heard from, available with room: the claim checks it again).
    let mut candidates = assignment_candidates(&agents, c);
    if ws.affinity.is_some_and(|a| a.enabled) && c.source_type == SourceType::User {
        let previous = deps
            .conversations
            .conversations_of_source(&c.account_id, &c.source_id)
            .await?;
        if let Some(preferred) = ws.affinity_agent(&previous, &c.id, now) {
            prefer(&mut candidates, preferred);
        }
    }
    // Agents who rejected it or let its offer expire are passed over (the schedule starts a
    // new round when nobody else is left).
    candidates.retain(|a| !c.declined_by.contains(&a.id));
    for agent in candidates {
        if deps.agents.try_assign(&agent.id, &c.id, now).await? {
            // Offered (the agent accepts or rejects it), or assigned at once.
            notifications.push(match ws.offer_timeout_ms() {
                Some(timeout) => offered(c, agent, customer, now, timeout),
                None => assigned(ws, c, agent, customer, now, outbox),
            });
            return Ok(Some((agent.id.clone(), c.id.clone())));
        }
    }
    if fresh {
        unassigned_notice(ws, customer, outbox);
    }
    Ok(None)
}
