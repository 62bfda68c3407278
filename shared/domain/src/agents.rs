//! Agents and the agent side of work distribution: who can take a conversation, and how one is
//! handed to an agent without ever exceeding the agent's capacity. Pure domain code and the
//! [`AgentStore`] port; adapters: `adapters::sqlite_agents` and `adapters::dynamo_agents`.
//!
//! A router picks candidates with [`rank_agents`] (a pure function over a snapshot) and then
//! claims a slot with [`AgentStore::try_assign`], which re-checks availability and capacity
//! atomically in the store: the snapshot may be stale, the claim never is. When the claim fails
//! (another router took the last slot), the router tries the next candidate.
//!
//! A claim is not the assignment: the conversation commit is. Two routers may share one slot
//! (the second finds the conversation "already held" by the agent, a claim of the first still in
//! flight), so the commit goes through
//! [`omniline_ports::ConversationStore::commit_assignment`] (only while the slot holds the
//! conversation) and a claim whose commit lost is undone with
//! [`omniline_ports::ConversationStore::release_unless_assigned`] (only if the stored conversation
//! is not the agent's), never with a read followed by [`AgentStore::release`].

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Whether an agent takes new conversations. Only `Available` agents are assigned work; `Busy`
/// and `Offline` agents keep the conversations they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Available,
    Busy,
    /// Away from the desk: like `Busy`, keeps its conversations and takes no new ones.
    Away,
    Offline,
}

impl AgentStatus {
    /// The wire form: `available`, `busy`, `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Available => "available",
            AgentStatus::Busy => "busy",
            AgentStatus::Away => "away",
            AgentStatus::Offline => "offline",
        }
    }

    /// The inverse of [`AgentStatus::as_str`].
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "available" => Some(AgentStatus::Available),
            "busy" => Some(AgentStatus::Busy),
            "away" => Some(AgentStatus::Away),
            "offline" => Some(AgentStatus::Offline),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub id: String,
    pub name: String,
    /// Queues the agent serves.
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    /// How many conversations the agent handles at once.
    pub capacity: u32,
    pub status: AgentStatus,
    /// Conversations assigned and not yet released. Owned by the store
    /// ([`AgentStore::try_assign`] / [`AgentStore::release`]); `put_agent` ignores it.
    #[serde(default)]
    pub active_conversations: Vec<String>,
    /// Epoch milliseconds of the last assignment.
    #[serde(default)]
    pub last_assigned_at: Option<i64>,
    /// Epoch milliseconds of the last time the agent set its own presence
    /// ([`AgentStore::set_status`]: `PUT /agent/v1/presence`, which the console repeats as a
    /// heartbeat). `None`: never (an agent only an admin or an API client without heartbeats
    /// set up), which no presence timeout applies to. Owned by the store; `put_agent` ignores it.
    #[serde(default)]
    pub last_seen_at: Option<i64>,
}

impl Agent {
    pub fn active_count(&self) -> usize {
        self.active_conversations.len()
    }

    /// Available, with a free slot.
    pub fn can_take_work(&self) -> bool {
        self.status == AgentStatus::Available && self.active_count() < self.capacity as usize
    }

    /// Whether the agent was heard from at or after `cutoff` (epoch ms), or is not tracked
    /// (never set its own presence): an agent that is not is treated as away for new work,
    /// even before the schedule records it ([`presence_lapsed`]).
    pub fn heard_since(&self, cutoff: i64) -> bool {
        self.last_seen_at.is_none_or(|seen| seen >= cutoff)
    }

    /// Has every one of `required` among its skills.
    pub fn has_skills(&self, required: &[String]) -> bool {
        required.iter().all(|skill| self.skills.contains(skill))
    }
}

/// Whether the presence timeout has lapsed for `agent` at `now` (epoch ms): it is `Available`
/// or `Busy`, it keeps its presence alive (has set it itself), and it was not heard from for
/// `timeout_secs` (`0`: presence never lapses). Such an agent is set `Away` by the schedule
/// and takes no new work; its conversations stay its own.
pub fn presence_lapsed(agent: &Agent, now: i64, timeout_secs: u32) -> bool {
    timeout_secs > 0
        && matches!(agent.status, AgentStatus::Available | AgentStatus::Busy)
        && !agent.heard_since(presence_cutoff(now, timeout_secs))
}

/// The earliest heartbeat (epoch ms) still current at `now` with a timeout of `timeout_secs`
/// (`0`: none lapses, the cutoff is the start of time).
pub fn presence_cutoff(now: i64, timeout_secs: u32) -> i64 {
    if timeout_secs == 0 {
        i64::MIN
    } else {
        now.saturating_sub(i64::from(timeout_secs) * 1000)
    }
}

/// The kind of notification sent when a conversation is assigned to an agent.
pub const NOTIFICATION_ASSIGNED: &str = "assigned";
/// The kind of notification sent when the customer writes in a conversation the agent holds.
pub const NOTIFICATION_MESSAGE: &str = "message";
/// The kind of notification sent when a conversation is offered to an agent to accept or
/// reject (the workstream's `offer.mode` `accept`); it carries `expires_at`.
pub const NOTIFICATION_OFFER: &str = "offer";
/// After this many offers in a row an agent let expire, it is set away.
pub const MISSED_OFFERS_AWAY: u32 = 2;
/// The kind of notification sent to an agent whose message LINE did not deliver.
pub const NOTIFICATION_DELIVERY_FAILED: &str = "deliveryFailed";

/// What a [`NOTIFICATION_DELIVERY_FAILED`] notification says: which message, how it ended
/// (`failed`, `quota_exhausted`, `suppressed`) and LINE's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryFailure {
    pub message_id: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Something an agent's console shows (a new assignment, ...). Stored idempotently by `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentNotification {
    /// Deterministic, so a retried delivery is the same notification: see
    /// [`AgentNotification::assigned_id`].
    pub id: String,
    pub agent_id: String,
    pub conversation_id: String,
    pub account_id: String,
    /// [`NOTIFICATION_ASSIGNED`].
    pub kind: String,
    #[serde(default)]
    pub customer_user_id: Option<String>,
    pub customer_name: String,
    #[serde(default)]
    pub customer_picture_url: Option<String>,
    #[serde(default)]
    pub customer_language: Option<String>,
    pub queue_id: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// The undelivered message, for [`NOTIFICATION_DELIVERY_FAILED`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryFailure>,
    /// Epoch ms: when an [`NOTIFICATION_OFFER`] expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl AgentNotification {
    /// The id of the notification that `conversation_id`, at `version`, was assigned to
    /// `agent_id`: the same for a retry of that assignment, another for the next one (the agent
    /// given the conversation again after a transfer is told again, and each notification is
    /// stored, and erased, under an id of its own).
    pub fn assigned_id(conversation_id: &str, agent_id: &str, version: u64) -> String {
        format!("{conversation_id}:{agent_id}:{NOTIFICATION_ASSIGNED}:{version}")
    }

    /// The id of the notification that `conversation_id`, at `version`, was offered to
    /// `agent_id`.
    pub fn offer_id(conversation_id: &str, agent_id: &str, version: u64) -> String {
        format!("{conversation_id}:{agent_id}:{NOTIFICATION_OFFER}:{version}")
    }
}

/// Compares load ratios `a_active / a_capacity` and `b_active / b_capacity` exactly.
fn compare_load(a: &Agent, b: &Agent) -> Ordering {
    let (a_active, a_cap) = (a.active_count() as u128, u128::from(a.capacity));
    let (b_active, b_cap) = (b.active_count() as u128, u128::from(b.capacity));
    (a_active * b_cap).cmp(&(b_active * a_cap))
}

/// `None` (never assigned) first, then the oldest assignment.
fn compare_idle(a: Option<i64>, b: Option<i64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => a.cmp(&b),
    }
}

/// The agents that can take a conversation needing `required_skills`, best first.
///
/// Only `Available` agents with a free slot (active < capacity) and every required skill are
/// kept. Order: fewest active conversations; then lowest load (active / capacity); then longest
/// idle (never assigned first, then the oldest `last_assigned_at`); then id, so the order is
/// deterministic.
pub fn rank_agents<'a>(agents: &'a [Agent], required_skills: &[String]) -> Vec<&'a Agent> {
    let mut ranked: Vec<&Agent> = agents
        .iter()
        .filter(|a| a.can_take_work() && a.has_skills(required_skills))
        .collect();
    ranked.sort_by(|a, b| {
        a.active_count()
            .cmp(&b.active_count())
            .then_with(|| compare_load(a, b))
            .then_with(|| compare_idle(a.last_assigned_at, b.last_assigned_at))
            .then_with(|| a.id.cmp(&b.id))
    });
    ranked
}

/// [`omniline_ports::ConfigStore`] kind of agent accounts (email and the agent API token's hash).
pub const AGENT_ACCOUNT_KIND: &str = "agentAccount";
const TOKEN_PREFIX: &str = "oma_";

/// The admin-side record of an agent: contact email and the hash of its agent API token. The
/// token itself is shown once, when issued, and never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentAccount {
    pub id: String,
    pub email: String,
    /// Hex SHA-256 of the whole token.
    pub token_hash: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// [`omniline_ports::ConfigStore`] kind of the email index: id the agent's email as
/// [`crate::identity::normalize_email`] gives it, doc an [`AgentEmail`]. How a person signed in
/// with OpenID Connect is found: by key, with no scan of the agents. Each address names at most
/// one agent.
pub const AGENT_EMAIL_KIND: &str = "agentEmail";

/// The agent an email address belongs to (an [`AGENT_EMAIL_KIND`] document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentEmail {
    pub agent_id: String,
}

/// A new agent API token for `agent_id` and its hash: `oma_{agentId}_{64 hex}` (244 random bits).
/// The agent id inside lets [`parse_agent_token`] find the record without an index.
pub fn issue_agent_token(agent_id: &str) -> (crate::secret::SecretString, String) {
    let random = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token = format!("{TOKEN_PREFIX}{agent_id}_{random}");
    let hash = token_hash(&token);
    (crate::secret::SecretString::new(token), hash)
}

/// Hex SHA-256 of a presented token.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The agent id a token claims (not yet verified: compare [`token_hash`] with the stored hash
/// using [`token_matches`]).
pub fn parse_agent_token(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (agent_id, random) = rest.rsplit_once('_')?;
    (!agent_id.is_empty() && random.len() == 64 && random.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(agent_id)
}

/// Whether `token` is the one whose hash is `stored_hash`, in constant time.
pub fn token_matches(token: &str, stored_hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    let presented = token_hash(token);
    presented.len() == stored_hash.len()
        && bool::from(presented.as_bytes().ct_eq(stored_hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, active: usize, capacity: u32) -> Agent {
        Agent {
            id: id.into(),
            name: format!("Agent {id}"),
            queues: vec!["q".into()],
            skills: vec![],
            capacity,
            status: AgentStatus::Available,
            active_conversations: (0..active).map(|i| format!("{id}-c{i}")).collect(),
            last_assigned_at: None,
            last_seen_at: None,
        }
    }

    fn ids(ranked: &[&Agent]) -> Vec<String> {
        ranked.iter().map(|a| a.id.clone()).collect()
    }

    fn skills(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn presence_lapses_for_agents_that_keep_it_alive_and_went_quiet() {
        let mut agent = Agent {
            id: "a".into(),
            name: "A".into(),
            queues: vec![],
            skills: vec![],
            capacity: 1,
            status: AgentStatus::Available,
            active_conversations: vec![],
            last_assigned_at: None,
            last_seen_at: None,
        };
        // Never set its own presence: not tracked.
        assert!(!presence_lapsed(&agent, 1_000_000, 90));
        agent.last_seen_at = Some(1_000_000 - 90_000);
        // Exactly the timeout ago: still current; a millisecond more: lapsed.
        assert!(!presence_lapsed(&agent, 1_000_000, 90));
        assert!(presence_lapsed(&agent, 1_000_001, 90));
        assert!(!agent.heard_since(presence_cutoff(1_000_001, 90)));
        // Off.
        assert!(!presence_lapsed(&agent, 9_000_000, 0));
        assert!(agent.heard_since(presence_cutoff(9_000_000, 0)));
        // Busy lapses too; away and offline have nothing to lose.
        agent.status = AgentStatus::Busy;
        assert!(presence_lapsed(&agent, 1_000_001, 90));
        for status in [AgentStatus::Away, AgentStatus::Offline] {
            agent.status = status;
            assert!(!presence_lapsed(&agent, 1_000_001, 90));
        }
    }

    #[test]
    fn status_wire_form() {
        for status in [
            AgentStatus::Available,
            AgentStatus::Busy,
            AgentStatus::Offline,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(AgentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(AgentStatus::parse("Available"), None);
    }

    #[test]
    fn agent_and_notification_are_camel_case() {
        let mut a = agent("a", 1, 2);
        a.last_assigned_at = Some(5);
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["activeConversations"], serde_json::json!(["a-c0"]));
        assert_eq!(v["lastAssignedAt"], 5);
        assert_eq!(v["status"], "available");
        let n = AgentNotification {
            id: AgentNotification::assigned_id("c1", "a", 1),
            agent_id: "a".into(),
            conversation_id: "c1".into(),
            account_id: "acc".into(),
            kind: NOTIFICATION_ASSIGNED.into(),
            customer_user_id: Some("U1".into()),
            customer_name: "Taro".into(),
            customer_picture_url: None,
            customer_language: Some("ja".into()),
            queue_id: "q".into(),
            created_at: 7,
            delivery: None,
            expires_at: None,
        };
        assert_eq!(n.id, "c1:a:assigned:1");
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["customerUserId"], "U1");
        assert_eq!(v["queueId"], "q");
        let back: AgentNotification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn full_agents_are_excluded() {
        let agents = [
            agent("full", 2, 2),
            agent("free", 1, 2),
            agent("zero", 0, 0),
        ];
        assert_eq!(ids(&rank_agents(&agents, &[])), ["free"]);
    }

    #[test]
    fn busy_and_offline_agents_are_excluded() {
        let mut busy = agent("busy", 0, 3);
        busy.status = AgentStatus::Busy;
        let mut offline = agent("offline", 0, 3);
        offline.status = AgentStatus::Offline;
        let agents = [busy, offline, agent("ok", 2, 3)];
        assert_eq!(ids(&rank_agents(&agents, &[])), ["ok"]);
    }

    #[test]
    fn every_required_skill_is_needed() {
        let mut ja = agent("ja", 0, 1);
        ja.skills = skills(&["ja"]);
        let mut ja_billing = agent("ja-billing", 0, 1);
        ja_billing.skills = skills(&["billing", "ja", "en"]);
        let none = agent("none", 0, 1);
        let agents = [ja, ja_billing, none];
        assert_eq!(
            ids(&rank_agents(&agents, &skills(&["ja", "billing"]))),
            ["ja-billing"]
        );
        assert_eq!(
            ids(&rank_agents(&agents, &skills(&["ja"]))),
            ["ja", "ja-billing"]
        );
        assert_eq!(ids(&rank_agents(&agents, &[])).len(), 3);
        assert!(rank_agents(&agents, &skills(&["ko"])).is_empty());
    }

    #[test]
    fn least_busy_first_then_lowest_load_then_longest_idle() {
        let mut recent = agent("a-recent", 1, 4);
        recent.last_assigned_at = Some(2_000);
        let mut older = agent("b-older", 1, 4);
        older.last_assigned_at = Some(1_000);
        let never = agent("c-never", 1, 4);
        // Same active count, higher load ratio (1/2 > 1/4): after the 1/4 agents.
        let small = agent("d-small", 1, 2);
        let idle = agent("e-idle", 0, 1);
        let busier = agent("f-busier", 2, 10);
        let agents = [busier, small, recent, older, never, idle];
        assert_eq!(
            ids(&rank_agents(&agents, &[])),
            ["e-idle", "c-never", "b-older", "a-recent", "d-small", "f-busier"]
        );
    }

    #[test]
    fn ties_are_broken_by_id_whatever_the_input_order() {
        let mut agents = vec![agent("b", 0, 2), agent("c", 0, 2), agent("a", 0, 2)];
        assert_eq!(ids(&rank_agents(&agents, &[])), ["a", "b", "c"]);
        agents.reverse();
        assert_eq!(ids(&rank_agents(&agents, &[])), ["a", "b", "c"]);
        for a in &mut agents {
            a.last_assigned_at = Some(10);
        }
        assert_eq!(ids(&rank_agents(&agents, &[])), ["a", "b", "c"]);
    }

    #[test]
    fn agent_tokens_carry_their_agent_and_verify_against_the_hash_only() {
        let (token, hash) = issue_agent_token("a1b2");
        let token = token.expose();
        assert_eq!(parse_agent_token(token), Some("a1b2"));
        assert!(token_matches(token, &hash));
        assert!(!hash.contains(token));
        let (other, _) = issue_agent_token("a1b2");
        assert_ne!(other.expose(), token);
        assert!(!token_matches(other.expose(), &hash));
        assert_eq!(parse_agent_token("oma_a1b2_short"), None);
        assert_eq!(parse_agent_token("bearer"), None);
        assert_eq!(parse_agent_token(&token.replace("oma_", "omx_")), None);
    }
}
