//! Workstreams: how the conversations of one LINE Official Account are handled — distribution
//! mode, default queue, business hours (in the workstream's IANA timezone), the optional bot, the
//! automated messages (per trigger and language) and the routing rules.
//!
//! Pure domain code: no I/O, no AWS. The wire form is camelCase JSON and is the contract the admin
//! API exposes:
//!
//! ```json
//! {
//!   "id": "ws_support_jp", "accountId": "acc_1", "name": "Support JP",
//!   "language": "ja",
//!   "distribution": "push",
//!   "defaultQueue": "q_general",
//!   "attachments": {"customerCanSend": true},
//!   "autoCloseMinutes": 30,
//!   "timezone": "Asia/Tokyo",
//!   "businessHours": [{"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "18:00"}],
//!   "bot": {"id": "bot_faq", "url": "https://bot.example.com/hook", "secretName": "bots/bot_faq", "timeoutMs": 5000},
//!   "automatedMessages": [{"trigger": "conversationStarted", "language": "ja", "text": "{customerName}様、お問い合わせありがとうございます。", "enabled": true}],
//!   "rules": [],
//!   "version": 3
//! }
//! ```
//!
//! Optional on input: `attachments` (customers may send), `autoCloseMinutes` and `bot` (absent or
//! `null`: none), `businessHours`, `automatedMessages` and `rules` (empty), `version` (0),
//! `automatedMessages[].enabled` (true), `bot.timeoutMs` (5000). Unknown keys are refused, so a
//! typo is an error rather than a silently ignored setting.
//!
//! Deserializing only checks shapes (and the `distribution` / `trigger` names);
//! [`Workstream::validate`] checks everything else before a configuration is stored.

use crate::routing::rules::{validate_rules, RoutingContext, RuleDef, RuleError};
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `autoCloseMinutes` bounds: one minute to one week.
pub const AUTO_CLOSE_MINUTES_MIN: u32 = 1;
/// `autoCloseMinutes` upper bound (7 days).
pub const AUTO_CLOSE_MINUTES_MAX: u32 = 7 * 24 * 60;
/// `bot.timeoutMs` lower bound.
pub const BOT_TIMEOUT_MS_MIN: u32 = 100;
/// `bot.timeoutMs` upper bound.
pub const BOT_TIMEOUT_MS_MAX: u32 = 30_000;
/// `bot.timeoutMs` when absent.
pub const BOT_TIMEOUT_MS_DEFAULT: u32 = 5_000;
/// Longest automated message text, in characters (LINE's text message limit).
pub const MAX_MESSAGE_CHARS: usize = 5_000;

const MINUTES_PER_DAY: u16 = 24 * 60;
const MILLIS_PER_DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Wire form
// ---------------------------------------------------------------------------------------------

/// A LINE account bound to how its conversations are handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workstream {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// Default language of the automated messages ("ja", "en", "zh-Hant").
    pub language: String,
    pub distribution: Distribution,
    /// Queue used when no routing rule matches.
    pub default_queue: String,
    #[serde(default)]
    pub attachments: Attachments,
    /// Close an idle conversation after this many minutes; `None` = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_close_minutes: Option<u32>,
    /// IANA zone name, e.g. "Asia/Tokyo"; business hours and routing time fields use it.
    pub timezone: String,
    /// Opening windows; empty = always open.
    #[serde(default)]
    pub business_hours: Vec<BusinessHours>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<BotConfig>,
    /// Show the agent (name and icon) as the sender of agent messages, instead of the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity: Option<AgentIdentity>,
    #[serde(default)]
    pub automated_messages: Vec<AutomatedMessage>,
    /// The post-conversation survey sent when an agent closes a conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survey: Option<Survey>,
    /// Whether group and room chats open conversations (`handle`) or are only logged (`ignore`).
    #[serde(default)]
    pub group_chats: GroupChats,
    /// The same agent for a returning customer ([`Affinity`]); `None`: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// What a bot's handoff may pass on to agents and routing rules ([`ContextVariable`]);
    /// what it does not declare is dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_variables: Vec<ContextVariable>,
    /// How a push assignment reaches an agent ([`OfferSettings`]); `None`: `auto` (assigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferSettings>,
    /// Seconds an agent has after closing to record the outcome (its slot still held); `0` or
    /// `None`: no wrap-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrap_up_seconds: Option<u32>,
    /// What a wrap-up may record (`resolved`, …); empty: any text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dispositions: Vec<String>,
    /// Routing rules, see [`crate::routing::rules`].
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    /// Configuration version: the router caches compiled rules per (id, version).
    #[serde(default)]
    pub version: u64,
    /// RFC 3339, set by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// RFC 3339, set by the admin API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// How conversations reach agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum Distribution {
    /// The system assigns the conversation to an available agent.
    Push,
    /// Agents pick conversations from the queue themselves.
    Pick,
}

impl Distribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Distribution::Push => "push",
            Distribution::Pick => "pick",
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Distribution {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "push" => Ok(Distribution::Push),
            "pick" => Ok(Distribution::Pick),
            other => Err(format!(
                "unknown distribution {other:?}; expected \"push\" or \"pick\""
            )),
        }
    }
}

/// Whether customers may send attachments (image, video, audio, file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attachments {
    /// When false, inbound image/video/audio/file content is not downloaded and the
    /// `attachmentsNotAccepted` automated message is sent instead. Defaults to `true`.
    #[serde(default = "default_true")]
    pub customer_can_send: bool,
    /// When false, agents may send text, stickers and locations only. Defaults to `true`.
    #[serde(default = "default_true")]
    pub agent_can_send: bool,
}

impl Default for Attachments {
    fn default() -> Self {
        Attachments {
            customer_can_send: true,
            agent_can_send: true,
        }
    }
}

/// Whether conversations are opened for group and room chats the bot is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupChats {
    /// Group and room messages open conversations like 1:1 chats.
    #[default]
    Handle,
    /// Group and room events are recorded but open no conversation and reach no agent.
    Ignore,
}

/// Highest score of a rating survey.
pub const SURVEY_SCALE_MAX: u8 = 10;
/// Longest survey question, in characters (LINE's text limit leaves room for the choices).
pub const SURVEY_QUESTION_MAX_CHARS: usize = 240;

/// The post-conversation survey: a rating question answered with a LINE quick reply
/// (`1`…`scale`), or a link to an external survey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Survey {
    pub enabled: bool,
    /// The rating question (with `scale`), absent for a link survey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// Highest score (2 to [`SURVEY_SCALE_MAX`]; LINE shows at most 13 quick reply buttons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u8>,
    /// An https link sent instead of the rating question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One opening window: on `days` (1 = Monday … 7 = Sunday), from `open` (inclusive) to `close`
/// (exclusive), "HH:MM" local time. `close` may be "24:00"; overnight windows are not supported
/// (split them into two entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BusinessHours {
    pub days: Vec<u8>,
    pub open: String,
    pub close: String,
}

impl BusinessHours {
    /// Whether `time` falls in this window; `false` for a window with unparsable times.
    pub fn contains(&self, time: LocalTime) -> bool {
        let (Some(open), Some(close)) = (parse_hhmm(&self.open), parse_hhmm(&self.close)) else {
            return false;
        };
        let now = time.minute_of_day();
        self.days.contains(&time.weekday) && open <= now && now < close
    }
}

/// At most this many context variables (and keys in a handoff's context, and customer
/// attributes).
pub const CONTEXT_VARIABLES_MAX: usize = 50;
/// The largest context value or customer attribute, in bytes of its JSON.
pub const CONTEXT_VALUE_MAX_BYTES: usize = 1024;

/// A value a bot's handoff may carry (`"context": {"orderId": "A-17"}`), as the workstream
/// declares it: routing rules test it as `context.<name>`, agents see it under `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextVariable {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ValueKind,
    pub label: String,
}

/// The type of a context variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    String,
    Number,
    Boolean,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::Number => "number",
            ValueKind::Boolean => "boolean",
        }
    }

    /// Whether `value` is of this type.
    pub fn admits(self, value: &serde_json::Value) -> bool {
        match self {
            ValueKind::String => value.is_string(),
            ValueKind::Number => value.is_number(),
            ValueKind::Boolean => value.is_boolean(),
        }
    }
}

/// Whether `value` may be a context value or a customer attribute: a string, number or
/// boolean of at most [`CONTEXT_VALUE_MAX_BYTES`] as JSON.
pub fn is_small_scalar(value: &serde_json::Value) -> bool {
    (value.is_string() || value.is_number() || value.is_boolean())
        && value.to_string().len() <= CONTEXT_VALUE_MAX_BYTES
}

impl Workstream {
    /// What of a bot's handoff `context` the workstream keeps: the declared names with a value
    /// of the declared type and at most [`CONTEXT_VALUE_MAX_BYTES`]; and the names it dropped
    /// (undeclared, of another type, too large), for the log.
    pub fn accept_context(
        &self,
        raw: &serde_json::Map<String, serde_json::Value>,
    ) -> (
        std::collections::BTreeMap<String, serde_json::Value>,
        Vec<String>,
    ) {
        let mut kept = std::collections::BTreeMap::new();
        let mut dropped = Vec::new();
        for (name, value) in raw {
            let declared = self.context_variables.iter().find(|v| &v.name == name);
            match declared {
                Some(v) if v.kind.admits(value) && is_small_scalar(value) => {
                    kept.insert(name.clone(), value.clone());
                }
                _ => dropped.push(name.clone()),
            }
        }
        (kept, dropped)
    }
}

/// Offers' shortest and longest time to answer, in seconds.
pub const OFFER_TIMEOUT_MIN: u32 = 15;
pub const OFFER_TIMEOUT_MAX: u32 = 600;

/// Whether a push assignment is made at once (`auto`) or offered to the agent, who accepts or
/// rejects it within `timeout_seconds` (`accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfferSettings {
    pub mode: OfferMode,
    pub timeout_seconds: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfferMode {
    Auto,
    Accept,
}

impl Workstream {
    /// How long an agent has to accept an offer (ms), when the workstream offers rather than
    /// assigns.
    pub fn offer_timeout_ms(&self) -> Option<i64> {
        self.offer
            .filter(|o| o.mode == OfferMode::Accept)
            .map(|o| i64::from(o.timeout_seconds) * 1000)
    }
}

/// The longest wrap-up, in seconds (an hour).
pub const WRAP_UP_SECONDS_MAX: u32 = 3_600;
/// The most dispositions a workstream lists, and the longest.
pub const DISPOSITIONS_MAX: usize = 20;
pub const DISPOSITION_MAX_CHARS: usize = 40;

/// The longest affinity, in days.
pub const AFFINITY_DAYS_MAX: u32 = 90;

/// Keep the same agent: a returning customer's new conversation goes first to the agent of
/// their last conversation, if it ended (or was last active) within `days` (1 to
/// [`AFFINITY_DAYS_MAX`]) and that agent serves the queue the rules chose and can take it;
/// otherwise distribution as usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    pub enabled: bool,
    pub days: u32,
}

impl Workstream {
    /// The agent a new conversation of a returning customer goes to first under the
    /// workstream's affinity: the agent of the most recently active of `previous` (the
    /// customer's conversations, the new one `current` excluded) that had one, if that
    /// conversation was active within the affinity's days of `now` (epoch ms). `None` when
    /// affinity is off or nothing qualifies.
    pub fn affinity_agent<'a>(
        &self,
        previous: &'a [crate::conversation::Conversation],
        current: &str,
        now: i64,
    ) -> Option<&'a str> {
        let affinity = self.affinity.filter(|a| a.enabled)?;
        let since = now.saturating_sub(i64::from(affinity.days) * 86_400_000);
        previous
            .iter()
            .filter(|c| c.id != current && c.agent_id.is_some())
            .max_by_key(|c| (c.last_activity_at, c.opened_at))
            .filter(|c| c.last_activity_at >= since)
            .and_then(|c| c.agent_id.as_deref())
    }
}

/// LINE's `sender` on agent messages: the agent's name (at most 20 characters) and an icon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentIdentity {
    pub enabled: bool,
    /// HTTPS URL of a PNG icon (LINE requires https); the account's icon when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
}

/// The workstream's bot (the bot gets the conversation first when a rule or the workstream says
/// so). The webhook secret lives in the secret store under `secretName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BotConfig {
    pub id: String,
    /// https endpoint (http only for localhost / 127.0.0.1, for local tests).
    pub url: String,
    pub secret_name: String,
    /// Defaults to 5000.
    #[serde(default = "default_bot_timeout")]
    pub timeout_ms: u32,
}

/// A message the system sends by itself on an event, in one language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomatedMessage {
    pub trigger: Trigger,
    pub language: String,
    /// May contain `{customerName}` and `{agentName}`, see [`render_template`].
    pub text: String,
    /// Defaults to `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// When an automated message is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "String")]
pub enum Trigger {
    ConversationStarted,
    Queued,
    NoAgentAvailable,
    AgentAssigned,
    AgentEnded,
    OutsideBusinessHours,
    AttachmentsNotAccepted,
    UnsupportedMessageType,
}

impl Trigger {
    /// Every trigger, in documentation order.
    pub const ALL: [Trigger; 8] = [
        Trigger::ConversationStarted,
        Trigger::Queued,
        Trigger::NoAgentAvailable,
        Trigger::AgentAssigned,
        Trigger::AgentEnded,
        Trigger::OutsideBusinessHours,
        Trigger::AttachmentsNotAccepted,
        Trigger::UnsupportedMessageType,
    ];

    /// The wire name, e.g. "conversationStarted".
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::ConversationStarted => "conversationStarted",
            Trigger::Queued => "queued",
            Trigger::NoAgentAvailable => "noAgentAvailable",
            Trigger::AgentAssigned => "agentAssigned",
            Trigger::AgentEnded => "agentEnded",
            Trigger::OutsideBusinessHours => "outsideBusinessHours",
            Trigger::AttachmentsNotAccepted => "attachmentsNotAccepted",
            Trigger::UnsupportedMessageType => "unsupportedMessageType",
        }
    }

    /// The trigger with this wire name.
    pub fn parse(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Trigger {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Trigger::parse(&value).ok_or_else(|| {
            let names: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
            format!(
                "unknown trigger {value:?}; expected one of {}",
                names.join(", ")
            )
        })
    }
}

fn default_true() -> bool {
    true
}

fn default_bot_timeout() -> u32 {
    BOT_TIMEOUT_MS_DEFAULT
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A workstream that cannot be stored, with where and why.
///
/// `path` is the JSON path of the offending field (`timezone`, `businessHours[0].open`,
/// `automatedMessages[2].trigger`, `rules[1].condition.all[0].op`). `Display` gives one line fit
/// for an HTTP 400 body: `businessHours[0].open: expected "HH:MM", got "9:00"`; for rule errors it
/// is exactly [`RuleError`]'s line (`rules[1].condition.op (rule "vip"): unknown op …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkstreamError {
    path: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<String>,
}

impl WorkstreamError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        WorkstreamError {
            path: path.into(),
            message: message.into(),
            rule_id: None,
        }
    }

    /// JSON path of the offending field, e.g. `businessHours[0].open`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For errors inside a routing rule: that rule's id (when not empty).
    pub fn rule_id(&self) -> Option<&str> {
        self.rule_id.as_deref()
    }
}

impl fmt::Display for WorkstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(id) = &self.rule_id {
            write!(f, " (rule {id:?})")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for WorkstreamError {}

impl From<RuleError> for WorkstreamError {
    fn from(e: RuleError) -> Self {
        let mut path = match e.rule() {
            Some(rule) => format!("rules[{}]", rule.index),
            None => "rules".to_owned(),
        };
        if !e.path().is_empty() {
            path.push('.');
            path.push_str(e.path());
        }
        WorkstreamError {
            path,
            message: e.message().to_owned(),
            rule_id: e
                .rule()
                .map(|rule| rule.id.clone())
                .filter(|id| !id.trim().is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Local time
// ---------------------------------------------------------------------------------------------

/// Wall-clock time in a workstream's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalTime {
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 1 = Monday … 7 = Sunday.
    pub weekday: u8,
}

impl LocalTime {
    /// Minutes since local midnight, 0–1439.
    pub fn minute_of_day(self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

/// UTC offset (seconds) of `tz` at `at_millis`; out-of-range instants use the nearest
/// representable one.
fn utc_offset_seconds(tz: Tz, at_millis: i64) -> i64 {
    let utc = DateTime::<Utc>::from_timestamp_millis(at_millis).unwrap_or(if at_millis < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    i64::from(
        tz.offset_from_utc_datetime(&utc.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

fn local_time_in(tz: Tz, at_millis: i64) -> LocalTime {
    let local = at_millis.saturating_add(utc_offset_seconds(tz, at_millis).saturating_mul(1000));
    let days = local.div_euclid(MILLIS_PER_DAY);
    let ms_of_day = local.rem_euclid(MILLIS_PER_DAY);
    LocalTime {
        // All three are bounded (0–23, 0–59, 1–7) by the arithmetic above.
        hour: (ms_of_day / 3_600_000) as u8,
        minute: (ms_of_day / 60_000 % 60) as u8,
        // 1970-01-01 was a Thursday (4).
        weekday: ((days + 3).rem_euclid(7) + 1) as u8,
    }
}

/// "HH:MM" → minutes since midnight; "24:00" is 1440 (only meaningful as a close time).
fn parse_hhmm(s: &str) -> Option<u16> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![b[0], b[1], b[3], b[4]].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hour = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
    let minute = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
    match (hour, minute) {
        (24, 0) => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(hour * 60 + minute),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------------------------

impl Workstream {
    /// The workstream from its stored JSON document (the admin API's wire form).
    pub fn from_stored(doc: &str) -> Result<Self, crate::PortError> {
        serde_json::from_str(doc).map_err(|e| {
            crate::PortError::Unavailable(format!("stored workstream does not parse: {e}"))
        })
    }

    /// The JSON document a store keeps.
    pub fn to_stored(&self) -> Result<String, crate::PortError> {
        serde_json::to_string(self).map_err(|e| {
            crate::PortError::Unavailable(format!("workstream does not serialise: {e}"))
        })
    }

    /// The workstream's timezone, UTC when the name is not a known IANA zone.
    fn tz(&self) -> Tz {
        self.timezone.parse::<Tz>().unwrap_or(Tz::UTC)
    }

    /// Wall-clock time at `at_millis` (Unix epoch milliseconds) in the workstream's timezone,
    /// DST-correct; an invalid timezone counts as UTC.
    pub fn local_time(&self, at_millis: i64) -> LocalTime {
        local_time_in(self.tz(), at_millis)
    }

    /// Whether `at_millis` falls in a business-hours window (open inclusive, close exclusive).
    /// No windows = always open. An invalid timezone counts as UTC.
    pub fn is_business_hours(&self, at_millis: i64) -> bool {
        if self.business_hours.is_empty() {
            return true;
        }
        let now = self.local_time(at_millis);
        self.business_hours
            .iter()
            .any(|window| window.contains(now))
    }

    /// Fills the time fields of a routing context (`time.hour`, `time.weekday`,
    /// `time.businessHours`) for `at_millis`, in the workstream's timezone.
    pub fn fill_routing_time(&self, ctx: &mut RoutingContext, at_millis: i64) {
        let now = self.local_time(at_millis);
        ctx.hour = Some(now.hour);
        ctx.weekday = Some(now.weekday);
        ctx.business_hours = Some(self.is_business_hours(at_millis));
    }

    /// The enabled automated message for `trigger`, in the customer's language when one exists
    /// (exact tag first, then by primary subtag: "zh-Hant" takes "zh", "en-US" takes "en" or
    /// "en-GB"; case-insensitive), else in the workstream's language, else `None`.
    pub fn automated_message(
        &self,
        trigger: Trigger,
        customer_language: Option<&str>,
    ) -> Option<&AutomatedMessage> {
        let candidates = || {
            self.automated_messages
                .iter()
                .filter(move |m| m.enabled && m.trigger == trigger)
        };
        customer_language
            .and_then(|lang| best_language_match(candidates(), lang))
            .or_else(|| best_language_match(candidates(), &self.language))
    }

    /// Checks everything deserializing does not: see the module docs for the rules. The error
    /// names the first offending field.
    pub fn validate(&self) -> Result<(), WorkstreamError> {
        non_empty("id", &self.id)?;
        non_empty("accountId", &self.account_id)?;
        non_empty("language", &self.language)?;
        non_empty("defaultQueue", &self.default_queue)?;
        // `distribution` is an enum: an unknown value is refused when deserializing.

        if self.timezone.parse::<Tz>().is_err() {
            return Err(WorkstreamError::new(
                "timezone",
                format!(
                    "unknown timezone {:?}; expected an IANA zone name such as \"Asia/Tokyo\"",
                    self.timezone
                ),
            ));
        }

        if let Some(icon) = self
            .agent_identity
            .as_ref()
            .and_then(|a| a.icon_url.as_deref())
        {
            if !icon.starts_with("https://")
                || icon.len() > 2000
                || icon.contains(char::is_whitespace)
            {
                return Err(WorkstreamError::new(
                    "agentIdentity.iconUrl",
                    "must be an https URL of at most 2000 characters",
                ));
            }
        }

        if self.context_variables.len() > CONTEXT_VARIABLES_MAX {
            return Err(WorkstreamError::new(
                "contextVariables",
                format!("at most {CONTEXT_VARIABLES_MAX} variables"),
            ));
        }
        for (i, v) in self.context_variables.iter().enumerate() {
            if !crate::routing::rules::is_value_name(&v.name) {
                return Err(WorkstreamError::new(
                    format!("contextVariables[{i}].name"),
                    "must be a letter then up to 63 letters, digits or _",
                ));
            }
            if self.context_variables[..i].iter().any(|w| w.name == v.name) {
                return Err(WorkstreamError::new(
                    format!("contextVariables[{i}].name"),
                    format!("{:?} is declared twice", v.name),
                ));
            }
            let label = v.label.chars().count();
            if label == 0 || label > 100 {
                return Err(WorkstreamError::new(
                    format!("contextVariables[{i}].label"),
                    "must be 1 to 100 characters",
                ));
            }
        }
        if let Some(offer) = self.offer {
            if !(OFFER_TIMEOUT_MIN..=OFFER_TIMEOUT_MAX).contains(&offer.timeout_seconds) {
                return Err(WorkstreamError::new(
                    "offer.timeoutSeconds",
                    format!(
                        "must be from {OFFER_TIMEOUT_MIN} to {OFFER_TIMEOUT_MAX}, got {}",
                        offer.timeout_seconds
                    ),
                ));
            }
        }
        if let Some(seconds) = self.wrap_up_seconds {
            if seconds > WRAP_UP_SECONDS_MAX {
                return Err(WorkstreamError::new(
                    "wrapUpSeconds",
                    format!("must be from 0 (off) to {WRAP_UP_SECONDS_MAX}, got {seconds}"),
                ));
            }
        }
        if self.dispositions.len() > DISPOSITIONS_MAX {
            return Err(WorkstreamError::new(
                "dispositions",
                format!("at most {DISPOSITIONS_MAX} dispositions"),
            ));
        }
        for (i, d) in self.dispositions.iter().enumerate() {
            let length = d.chars().count();
            if length == 0 || length > DISPOSITION_MAX_CHARS || d.trim() != d {
                return Err(WorkstreamError::new(
                    format!("dispositions[{i}]"),
                    format!("must be 1 to {DISPOSITION_MAX_CHARS} characters, without surrounding spaces"),
                ));
            }
            if self.dispositions[..i].contains(d) {
                return Err(WorkstreamError::new(
                    format!("dispositions[{i}]"),
                    format!("{d:?} is listed twice"),
                ));
            }
        }

        if let Some(affinity) = self.affinity {
            if !(1..=AFFINITY_DAYS_MAX).contains(&affinity.days) {
                return Err(WorkstreamError::new(
                    "affinity.days",
                    format!(
                        "must be from 1 to {AFFINITY_DAYS_MAX}, got {}",
                        affinity.days
                    ),
                ));
            }
        }

        if let Some(minutes) = self.auto_close_minutes {
            if !(AUTO_CLOSE_MINUTES_MIN..=AUTO_CLOSE_MINUTES_MAX).contains(&minutes) {
                return Err(WorkstreamError::new(
                    "autoCloseMinutes",
                    format!(
                        "must be from {AUTO_CLOSE_MINUTES_MIN} to {AUTO_CLOSE_MINUTES_MAX} \
                         (omit it to never auto-close), got {minutes}"
                    ),
                ));
            }
        }

        for (i, window) in self.business_hours.iter().enumerate() {
            check_window(window).map_err(|(field, message)| {
                WorkstreamError::new(format!("businessHours[{i}].{field}"), message)
            })?;
        }

        if let Some(survey) = &self.survey {
            check_survey(survey).map_err(|(field, message)| {
                WorkstreamError::new(format!("survey.{field}"), message)
            })?;
        }

        if let Some(bot) = &self.bot {
            check_bot(bot).map_err(|(field, message)| {
                WorkstreamError::new(format!("bot.{field}"), message)
            })?;
        }

        for (i, message) in self.automated_messages.iter().enumerate() {
            check_message(message).map_err(|(field, text)| {
                WorkstreamError::new(format!("automatedMessages[{i}].{field}"), text)
            })?;
            if message.enabled {
                let duplicate = self.automated_messages[..i].iter().position(|earlier| {
                    earlier.enabled
                        && earlier.trigger == message.trigger
                        && earlier
                            .language
                            .trim()
                            .eq_ignore_ascii_case(message.language.trim())
                });
                if let Some(first) = duplicate {
                    return Err(WorkstreamError::new(
                        format!("automatedMessages[{i}].trigger"),
                        format!(
                            "duplicate enabled message for trigger \"{}\" and language {:?} \
                             (already defined by automatedMessages[{first}])",
                            message.trigger,
                            message.language.trim()
                        ),
                    ));
                }
            }
        }

        validate_rules(&self.rules)?;
        Ok(())
    }
}

/// Among `candidates`, the one in language `wanted`: exact tag, then a message whose tag is the
/// wanted primary subtag ("zh" for "zh-Hant"), then any message sharing the primary subtag
/// ("en-GB" for "en-US"). The first message of the best tier wins.
fn best_language_match<'a>(
    candidates: impl Iterator<Item = &'a AutomatedMessage>,
    wanted: &str,
) -> Option<&'a AutomatedMessage> {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return None;
    }
    let wanted_primary = primary_subtag(wanted);
    let mut best: Option<(u8, &AutomatedMessage)> = None;
    for message in candidates {
        let lang = message.language.trim();
        let tier = if lang.eq_ignore_ascii_case(wanted) {
            0
        } else if lang.eq_ignore_ascii_case(wanted_primary) {
            1
        } else if !lang.is_empty() && primary_subtag(lang).eq_ignore_ascii_case(wanted_primary) {
            2
        } else {
            continue;
        };
        if tier == 0 {
            return Some(message);
        }
        if best.is_none_or(|(best_tier, _)| tier < best_tier) {
            best = Some((tier, message));
        }
    }
    best.map(|(_, message)| message)
}

/// "zh-Hant" → "zh", "en_US" → "en", "ja" → "ja".
fn primary_subtag(tag: &str) -> &str {
    tag.split(['-', '_']).next().unwrap_or(tag)
}

/// Replaces `{customerName}` and `{agentName}` (a missing value becomes the empty string); any
/// other `{...}` is left as is. Replacement values are inserted verbatim, never expanded again.
pub fn render_template(
    text: &str,
    customer_name: Option<&str>,
    agent_name: Option<&str>,
) -> String {
    const CUSTOMER: &str = "{customerName}";
    const AGENT: &str = "{agentName}";
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix(CUSTOMER) {
            out.push_str(customer_name.unwrap_or(""));
            rest = after;
        } else if let Some(after) = tail.strip_prefix(AGENT) {
            out.push_str(agent_name.unwrap_or(""));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Validation helpers: each returns (field relative to its parent, message)
// ---------------------------------------------------------------------------------------------

type FieldFail = (&'static str, String);

fn non_empty(path: &str, value: &str) -> Result<(), WorkstreamError> {
    if value.trim().is_empty() {
        return Err(WorkstreamError::new(path, "must not be empty"));
    }
    Ok(())
}

fn check_survey(survey: &Survey) -> Result<(), FieldFail> {
    match (&survey.question, &survey.url) {
        (Some(_), Some(_)) => Err((
            "url",
            "give either a question (with scale) or a url, not both".into(),
        )),
        (None, None) if survey.enabled => Err((
            "question",
            "an enabled survey needs a question (with scale) or a url".into(),
        )),
        (Some(question), None) => {
            let chars = question.trim().chars().count();
            if chars == 0 || chars > SURVEY_QUESTION_MAX_CHARS {
                return Err((
                    "question",
                    format!("must be 1 to {SURVEY_QUESTION_MAX_CHARS} characters"),
                ));
            }
            match survey.scale {
                Some(scale) if (2..=SURVEY_SCALE_MAX).contains(&scale) => Ok(()),
                Some(scale) => Err((
                    "scale",
                    format!("must be from 2 to {SURVEY_SCALE_MAX}, got {scale}"),
                )),
                None => Err(("scale", "a rating survey needs a scale, e.g. 5".into())),
            }
        }
        (None, Some(url)) => {
            if survey.scale.is_some() {
                return Err(("scale", "a link survey has no scale".into()));
            }
            if !url.starts_with("https://") || url.len() > 1000 || url.contains(char::is_whitespace)
            {
                return Err((
                    "url",
                    "must be an https URL of at most 1000 characters".into(),
                ));
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

fn check_window(window: &BusinessHours) -> Result<(), (String, String)> {
    if window.days.is_empty() {
        return Err((
            "days".into(),
            "must list at least one day (1 = Monday … 7 = Sunday)".into(),
        ));
    }
    if let Some((j, day)) = window
        .days
        .iter()
        .enumerate()
        .find(|(_, day)| !(1..=7).contains(*day))
    {
        return Err((
            format!("days[{j}]"),
            format!("day must be from 1 (Monday) to 7 (Sunday), got {day}"),
        ));
    }
    let open = match parse_hhmm(&window.open) {
        Some(open) if open < MINUTES_PER_DAY => open,
        _ => {
            return Err((
                "open".into(),
                format!(
                    "expected \"HH:MM\" from \"00:00\" to \"23:59\", got {:?}",
                    window.open
                ),
            ))
        }
    };
    let Some(close) = parse_hhmm(&window.close) else {
        return Err((
            "close".into(),
            format!(
                "expected \"HH:MM\" from \"00:00\" to \"24:00\", got {:?}",
                window.close
            ),
        ));
    };
    if open >= close {
        return Err((
            "close".into(),
            format!(
                "close {:?} must be after open {:?} (overnight windows are not supported: \
                 split them at \"24:00\")",
                window.close, window.open
            ),
        ));
    }
    Ok(())
}

fn check_bot(bot: &BotConfig) -> Result<(), FieldFail> {
    if bot.id.trim().is_empty() {
        return Err(("id", "must not be empty".into()));
    }
    check_bot_url(&bot.url).map_err(|message| ("url", message))?;
    if bot.secret_name.trim().is_empty() {
        return Err(("secretName", "must not be empty".into()));
    }
    if !(BOT_TIMEOUT_MS_MIN..=BOT_TIMEOUT_MS_MAX).contains(&bot.timeout_ms) {
        return Err((
            "timeoutMs",
            format!(
                "must be from {BOT_TIMEOUT_MS_MIN} to {BOT_TIMEOUT_MS_MAX}, got {}",
                bot.timeout_ms
            ),
        ));
    }
    Ok(())
}

/// https with a host (and optional numeric port); http only for localhost / 127.0.0.1; no
/// credentials, no whitespace.
fn check_bot_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("must not be empty".into());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("must not contain whitespace, got {url:?}"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("expected an absolute https:// URL, got {url:?}"));
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("must not contain credentials (user@host)".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let Some((inside, after)) = bracketed.split_once(']') else {
                return Err(format!("invalid host in {url:?}"));
            };
            check_port(after, url)?;
            if inside.is_empty() {
                return Err(format!("missing host in {url:?}"));
            }
            authority.get(..inside.len() + 2).unwrap_or(authority)
        }
        None => {
            let (host, after) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            check_port(after, url)?;
            host
        }
    };
    if host.is_empty() {
        return Err(format!("missing host in {url:?}"));
    }
    if scheme.eq_ignore_ascii_case("https") {
        Ok(())
    } else if scheme.eq_ignore_ascii_case("http") {
        if host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" {
            Ok(())
        } else {
            Err(format!(
                "must use https (http is allowed only for localhost / 127.0.0.1), got {url:?}"
            ))
        }
    } else {
        Err(format!("expected an https:// URL, got scheme {scheme:?}"))
    }
}

/// `after_host` is empty or ":<port>" with port 1–65535.
fn check_port(after_host: &str, url: &str) -> Result<(), String> {
    if after_host.is_empty() {
        return Ok(());
    }
    match after_host
        .strip_prefix(':')
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
    {
        Some(port) if port > 0 => Ok(()),
        _ => Err(format!("invalid port in {url:?}")),
    }
}

fn check_message(message: &AutomatedMessage) -> Result<(), FieldFail> {
    if message.language.trim().is_empty() {
        return Err(("language", "must not be empty".into()));
    }
    if message.text.trim().is_empty() {
        return Err(("text", "must not be empty".into()));
    }
    let chars = message.text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err((
            "text",
            format!("must be at most {MAX_MESSAGE_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use serde_json::{json, Value};

    fn full_wire() -> Value {
        json!({
            "id": "ws_support_jp",
            "accountId": "acc_line_1",
            "name": "Support JP",
            "language": "ja",
            "distribution": "push",
            "defaultQueue": "q_general",
            "attachments": {"customerCanSend": true, "agentCanSend": true},
            "groupChats": "handle",
            "autoCloseMinutes": 30,
            "timezone": "Asia/Tokyo",
            "businessHours": [
                {"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "18:00"},
                {"days": [6], "open": "10:00", "close": "24:00"}
            ],
            "bot": {"id": "bot_faq", "url": "https://bot.example.com/hook", "secretName": "bots/bot_faq", "timeoutMs": 5000},
            "automatedMessages": [
                {"trigger": "conversationStarted", "language": "ja", "text": "{customerName}様、お問い合わせありがとうございます。", "enabled": true},
                {"trigger": "conversationStarted", "language": "en", "text": "Thanks {customerName}!", "enabled": true},
                {"trigger": "agentAssigned", "language": "ja", "text": "担当の{agentName}です。", "enabled": true},
                {"trigger": "outsideBusinessHours", "language": "ja", "text": "営業時間外です。", "enabled": false},
                {"trigger": "queued", "language": "ja", "text": "順番にご案内します。", "enabled": true},
                {"trigger": "noAgentAvailable", "language": "ja", "text": "ただいま混み合っています。", "enabled": true},
                {"trigger": "agentEnded", "language": "ja", "text": "ご利用ありがとうございました。", "enabled": true},
                {"trigger": "attachmentsNotAccepted", "language": "ja", "text": "ファイルは受け付けていません。", "enabled": true},
                {"trigger": "unsupportedMessageType", "language": "ja", "text": "このメッセージには対応していません。", "enabled": true}
            ],
            "rules": [{
                "id": "vip-en",
                "name": "English VIP",
                "enabled": true,
                "condition": {"all": [
                    {"field": "customer.language", "op": "in", "value": ["en"]},
                    {"field": "time.businessHours", "op": "equals", "value": true}
                ]},
                "result": {"queue": "q_vip", "priority": 5, "skills": ["en"], "bot": "bot_faq"}
            }],
            "version": 3
        })
    }

    fn full() -> Workstream {
        match serde_json::from_value(full_wire()) {
            Ok(ws) => ws,
            Err(e) => panic!("{e}"),
        }
    }

    fn minimal() -> Workstream {
        match serde_json::from_value(json!({
            "id": "ws_1", "accountId": "acc_1", "name": "Minimal", "language": "en",
            "distribution": "pick", "defaultQueue": "q", "timezone": "UTC"
        })) {
            Ok(ws) => ws,
            Err(e) => panic!("{e}"),
        }
    }

    /// Unix millis of a UTC wall-clock instant.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        match NaiveDate::from_ymd_opt(y, mo, d).and_then(|date| date.and_hms_opt(h, mi, 0)) {
            Some(dt) => dt.and_utc().timestamp_millis(),
            None => panic!("bad date"),
        }
    }

    fn lt(hour: u8, minute: u8, weekday: u8) -> LocalTime {
        LocalTime {
            hour,
            minute,
            weekday,
        }
    }

    /// One change to a valid workstream, for table-driven tests.
    type Edit = Box<dyn Fn(&mut Workstream)>;

    fn edit(f: impl Fn(&mut Workstream) + 'static) -> Edit {
        Box::new(f)
    }

    fn error_of(ws: &Workstream) -> WorkstreamError {
        match ws.validate() {
            Ok(()) => panic!("should fail: {ws:?}"),
            Err(e) => e,
        }
    }

    // -- wire form -------------------------------------------------------------------------------

    #[test]
    fn full_workstream_round_trips() {
        let ws = full();
        assert_eq!(ws.validate(), Ok(()));
        assert_eq!(ws.distribution, Distribution::Push);
        assert_eq!(ws.auto_close_minutes, Some(30));
        assert_eq!(ws.automated_messages.len(), Trigger::ALL.len() + 1);
        assert_eq!(serde_json::to_value(&ws).ok(), Some(full_wire()));
        let text = serde_json::to_string(&ws).unwrap_or_default();
        let again: Option<Workstream> = serde_json::from_str(&text).ok();
        assert_eq!(again.as_ref(), Some(&ws));
    }

    #[test]
    fn affinity_names_the_agent_of_the_last_conversation_within_its_days() {
        use crate::conversation::Conversation;
        let day = 86_400_000;
        let now = 100 * day;
        let conversation = |id: &str, agent: Option<&str>, last: i64| -> Conversation {
            serde_json::from_value(serde_json::json!({
                "id": id, "accountId": "a", "sourceType": "user", "sourceId": "U1",
                "state": "closed", "agentId": agent, "openedAt": last - 1000,
                "lastActivityAt": last, "version": 3
            }))
            .unwrap()
        };
        let mut ws = minimal();
        let previous = vec![
            conversation("old", Some("ag-old"), now - 20 * day),
            conversation("recent", Some("ag-recent"), now - 2 * day),
            conversation("bot-only", None, now - day),
            conversation("new", None, now),
        ];
        // Off unless enabled.
        assert_eq!(ws.affinity_agent(&previous, "new", now), None);
        ws.affinity = Some(Affinity {
            enabled: false,
            days: 30,
        });
        assert_eq!(ws.affinity_agent(&previous, "new", now), None);
        ws.affinity = Some(Affinity {
            enabled: true,
            days: 30,
        });
        // The most recent with an agent (one without is skipped), the new one excluded.
        assert_eq!(ws.affinity_agent(&previous, "new", now), Some("ag-recent"));
        // Only within the days: 2 days ago is too long for a day of affinity.
        ws.affinity = Some(Affinity {
            enabled: true,
            days: 1,
        });
        assert_eq!(ws.affinity_agent(&previous, "new", now), None);
        assert_eq!(ws.affinity_agent(&[], "new", now), None);
        // Validation: 1 to 90 days.
        for (days, ok) in [(0, false), (1, true), (90, true), (91, false)] {
            ws.affinity = Some(Affinity {
                enabled: true,
                days,
            });
            let checked = ws.validate();
            assert_eq!(checked.is_ok(), ok, "{days}: {checked:?}");
            if let Err(e) = checked {
                assert_eq!(e.path(), "affinity.days");
            }
        }
    }

    #[test]
    fn agent_identity_is_optional_and_its_icon_must_be_https() {
        let mut ws = minimal();
        assert_eq!(ws.agent_identity, None);
        ws.agent_identity = Some(AgentIdentity {
            enabled: true,
            icon_url: Some("https://cdn.example.com/agent.png".into()),
        });
        assert_eq!(ws.validate(), Ok(()));
        let wire = serde_json::to_value(&ws).unwrap_or_default();
        assert_eq!(
            wire["agentIdentity"],
            json!({"enabled": true, "iconUrl": "https://cdn.example.com/agent.png"})
        );
        ws.agent_identity = Some(AgentIdentity {
            enabled: true,
            icon_url: Some("http://cdn.example.com/a.png".into()),
        });
        assert_eq!(error_of(&ws).path(), "agentIdentity.iconUrl");
    }

    #[test]
    fn defaults_and_nulls() {
        let ws = minimal();
        assert_eq!(ws.validate(), Ok(()));
        assert!(ws.attachments.customer_can_send);
        assert_eq!(ws.auto_close_minutes, None);
        assert_eq!(ws.bot, None);
        assert!(ws.business_hours.is_empty() && ws.automated_messages.is_empty());
        assert!(ws.rules.is_empty());
        assert_eq!(ws.version, 0);
        // Absent optionals are not serialized.
        let back = serde_json::to_value(&ws).unwrap_or_default();
        assert!(back.get("autoCloseMinutes").is_none() && back.get("bot").is_none());

        let mut wire = full_wire();
        wire["autoCloseMinutes"] = Value::Null;
        wire["attachments"] = json!({"customerCanSend": false});
        wire["automatedMessages"] = json!([{"trigger": "queued", "language": "ja", "text": "x"}]);
        wire["bot"] = json!({"id": "b", "url": "https://b.example", "secretName": "s"});
        let ws: Workstream = match serde_json::from_value(wire) {
            Ok(ws) => ws,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(ws.auto_close_minutes, None);
        assert!(!ws.attachments.customer_can_send);
        assert!(ws.automated_messages[0].enabled);
        assert_eq!(ws.bot.map(|b| b.timeout_ms), Some(BOT_TIMEOUT_MS_DEFAULT));

        let mut wire = full_wire();
        wire["bot"] = Value::Null;
        let ws: Option<Workstream> = serde_json::from_value(wire).ok();
        assert_eq!(ws.map(|ws| ws.bot), Some(None));
    }

    #[test]
    fn enum_names_are_the_wire_names() {
        for trigger in Trigger::ALL {
            let wire = serde_json::to_value(trigger).ok();
            assert_eq!(wire, Some(json!(trigger.as_str())));
            assert_eq!(Trigger::parse(trigger.as_str()), Some(trigger));
            let back: Option<Trigger> = serde_json::from_value(json!(trigger.as_str())).ok();
            assert_eq!(back, Some(trigger));
        }
        assert_eq!(
            Trigger::ALL.map(Trigger::as_str),
            [
                "conversationStarted",
                "queued",
                "noAgentAvailable",
                "agentAssigned",
                "agentEnded",
                "outsideBusinessHours",
                "attachmentsNotAccepted",
                "unsupportedMessageType"
            ]
        );
        for d in [Distribution::Push, Distribution::Pick] {
            assert_eq!(serde_json::to_value(d).ok(), Some(json!(d.as_str())));
        }
    }

    #[test]
    fn unknown_enum_values_and_keys_are_refused_when_parsing() {
        let mut wire = full_wire();
        wire["distribution"] = json!("broadcast");
        let e = serde_json::from_value::<Workstream>(wire)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("unknown distribution \"broadcast\"")),
            "{e:?}"
        );

        let mut wire = full_wire();
        wire["automatedMessages"][0]["trigger"] = json!("conversationStart");
        let e = serde_json::from_value::<Workstream>(wire)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("unknown trigger \"conversationStart\"")),
            "{e:?}"
        );

        let mut wire = full_wire();
        wire["autoCloseMinute"] = json!(5);
        assert!(serde_json::from_value::<Workstream>(wire).is_err());
        let mut wire = full_wire();
        wire["businessHours"][0]["days"] = json!([1, 300]);
        assert!(serde_json::from_value::<Workstream>(wire).is_err());
    }

    // -- validation ------------------------------------------------------------------------------

    #[test]
    fn validation_errors_name_their_path() {
        fn window(open: &str, close: &str) -> BusinessHours {
            BusinessHours {
                days: vec![1],
                open: open.into(),
                close: close.into(),
            }
        }
        fn message(trigger: Trigger, language: &str, text: &str) -> AutomatedMessage {
            AutomatedMessage {
                trigger,
                language: language.into(),
                text: text.into(),
                enabled: true,
            }
        }
        let cases: Vec<(Edit, &str, &str)> = vec![
            (edit(|w| w.id = " ".into()), "id", "must not be empty"),
            (edit(|w| w.account_id.clear()), "accountId", "must not be empty"),
            (edit(|w| w.language.clear()), "language", "must not be empty"),
            (edit(|w| w.default_queue.clear()), "defaultQueue", "must not be empty"),
            (edit(|w| w.timezone = "Asia/Tokio".into()), "timezone", "unknown timezone \"Asia/Tokio\""),
            (edit(|w| w.timezone = "JST".into()), "timezone", "IANA"),
            (edit(|w| w.timezone.clear()), "timezone", "unknown timezone"),
            (edit(|w| w.auto_close_minutes = Some(0)), "autoCloseMinutes", "from 1 to 10080"),
            (edit(|w| w.auto_close_minutes = Some(10_081)), "autoCloseMinutes", "got 10081"),
            (edit(|w| w.business_hours[0].open = "9:00".into()), "businessHours[0].open", "expected \"HH:MM\""),
            (edit(|w| w.business_hours[1].open = "24:00".into()), "businessHours[1].open", "got \"24:00\""),
            (edit(|w| w.business_hours[0].open = "09:60".into()), "businessHours[0].open", "HH:MM"),
            (edit(|w| w.business_hours[0].close = "24:01".into()), "businessHours[0].close", "HH:MM"),
            (edit(|w| w.business_hours[0].close = "6pm".into()), "businessHours[0].close", "got \"6pm\""),
            (edit(|w| w.business_hours.push(window("22:00", "06:00"))), "businessHours[2].close", "overnight windows are not supported"),
            (edit(|w| w.business_hours.push(window("09:00", "09:00"))), "businessHours[2].close", "must be after open"),
            (edit(|w| w.business_hours[0].days = vec![1, 0]), "businessHours[0].days[1]", "day must be from 1 (Monday) to 7 (Sunday), got 0"),
            (edit(|w| w.business_hours[1].days = vec![8]), "businessHours[1].days[0]", "got 8"),
            (edit(|w| w.business_hours[0].days.clear()), "businessHours[0].days", "at least one day"),
            (edit(|w| if let Some(b) = &mut w.bot { b.id.clear() }), "bot.id", "must not be empty"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "http://bot.example.com/hook".into() }), "bot.url", "must use https"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "http://localhost@evil.example/".into() }), "bot.url", "credentials"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "http://localhost.evil.example/".into() }), "bot.url", "must use https"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "ftp://bot.example.com".into() }), "bot.url", "scheme"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "bot.example.com/hook".into() }), "bot.url", "absolute"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "https:///hook".into() }), "bot.url", "missing host"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "https://bot.example.com:99999/".into() }), "bot.url", "invalid port"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url = "https://bot.example.com/a b".into() }), "bot.url", "whitespace"),
            (edit(|w| if let Some(b) = &mut w.bot { b.url.clear() }), "bot.url", "must not be empty"),
            (edit(|w| if let Some(b) = &mut w.bot { b.secret_name.clear() }), "bot.secretName", "must not be empty"),
            (edit(|w| if let Some(b) = &mut w.bot { b.timeout_ms = 99 }), "bot.timeoutMs", "from 100 to 30000, got 99"),
            (edit(|w| if let Some(b) = &mut w.bot { b.timeout_ms = 30_001 }), "bot.timeoutMs", "got 30001"),
            (edit(|w| w.automated_messages[2].text.clear()), "automatedMessages[2].text", "must not be empty"),
            (edit(|w| w.automated_messages[1].text = "あ".repeat(5_001)), "automatedMessages[1].text", "at most 5000 characters, got 5001"),
            (edit(|w| w.automated_messages[4].language = " ".into()), "automatedMessages[4].language", "must not be empty"),
            (
                edit(|w| w.automated_messages.push(message(Trigger::AgentAssigned, "JA", "もう一つ"))),
                "automatedMessages[9].trigger",
                "duplicate enabled message for trigger \"agentAssigned\" and language \"JA\" (already defined by automatedMessages[2])",
            ),
            (edit(|w| w.rules[0].result.queue.clear()), "rules[0].result.queue", "queue id must not be empty"),
            (
                edit(|w| {
                    let mut second = w.rules[0].clone();
                    second.id = "r2".into();
                    second.condition = json!({"all": [{"field": "message.text", "op": "startsWith", "value": "x"}]});
                    w.rules.push(second);
                }),
                "rules[1].condition.all[0].op",
                "unknown op \"startsWith\"",
            ),
        ];
        for (edit, path, fragment) in cases {
            let mut ws = full();
            edit(&mut ws);
            let e = error_of(&ws);
            assert_eq!(e.path(), path, "{e}");
            assert!(e.message().contains(fragment), "{e} lacks {fragment:?}");
            assert!(e.to_string().starts_with(path), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }

    #[test]
    fn validation_accepts_edges() {
        let edits: Vec<Edit> = vec![
            edit(|w| w.auto_close_minutes = Some(1)),
            edit(|w| w.auto_close_minutes = Some(10_080)),
            edit(|w| w.auto_close_minutes = None),
            edit(|w| w.business_hours[0].open = "00:00".into()),
            edit(|w| w.business_hours[0].close = "24:00".into()),
            edit(|w| w.business_hours[0].days = vec![7]),
            edit(|w| w.business_hours.clear()),
            edit(|w| w.timezone = "America/New_York".into()),
            edit(|w| w.timezone = "UTC".into()),
            edit(|w| w.bot = None),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.url = "http://localhost:8080/bot".into()
                }
            }),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.url = "http://127.0.0.1:9000".into()
                }
            }),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.url = "HTTP://LOCALHOST/bot?x=1".into()
                }
            }),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.url = "https://[2001:db8::1]:8443/hook".into()
                }
            }),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.timeout_ms = 100
                }
            }),
            edit(|w| {
                if let Some(b) = &mut w.bot {
                    b.timeout_ms = 30_000
                }
            }),
            edit(|w| w.automated_messages[1].text = "あ".repeat(5_000)),
            // A disabled duplicate is fine; so is the same language for another trigger.
            edit(|w| {
                let mut copy = w.automated_messages[0].clone();
                copy.enabled = false;
                w.automated_messages.push(copy);
            }),
            edit(|w| w.distribution = Distribution::Pick),
        ];
        for edit in edits {
            let mut ws = full();
            edit(&mut ws);
            assert_eq!(ws.validate(), Ok(()), "{ws:?}");
        }
    }

    #[test]
    fn rule_errors_keep_the_rule_id_in_display() {
        let mut ws = full();
        ws.rules[0].condition = json!({"field": "message.text", "op": "startsWith", "value": "x"});
        let e = error_of(&ws);
        assert_eq!(e.rule_id(), Some("vip-en"));
        assert!(
            e.to_string()
                .starts_with("rules[0].condition.op (rule \"vip-en\"): unknown op"),
            "{e}"
        );
        let too_many: Vec<RuleDef> = (0..=crate::routing::rules::MAX_RULES)
            .map(|i| {
                let mut r = full().rules[0].clone();
                r.id = format!("r{i}");
                r
            })
            .collect();
        ws.rules = too_many;
        let e = error_of(&ws);
        assert_eq!(e.path(), "rules");
        assert_eq!(e.rule_id(), None);
    }

    // -- local time ------------------------------------------------------------------------------

    #[test]
    fn local_time_in_tokyo() {
        let ws = full();
        // 2026-01-05 is a Monday.
        assert_eq!(ws.local_time(utc(2026, 1, 5, 0, 0)), lt(9, 0, 1));
        // Sunday 15:00 UTC is already Monday midnight in Tokyo.
        assert_eq!(ws.local_time(utc(2026, 1, 4, 15, 0)), lt(0, 0, 1));
        assert_eq!(ws.local_time(utc(2026, 1, 4, 14, 59)), lt(23, 59, 7));
        // Seconds and milliseconds are truncated, not rounded.
        assert_eq!(ws.local_time(utc(2026, 1, 5, 0, 0) + 59_999), lt(9, 0, 1));
    }

    #[test]
    fn local_time_across_new_york_dst() {
        let mut ws = full();
        ws.timezone = "America/New_York".into();
        // 2026-03-08 (Sunday): 02:00 EST jumps to 03:00 EDT, at 07:00 UTC.
        assert_eq!(ws.local_time(utc(2026, 3, 8, 6, 59)), lt(1, 59, 7));
        assert_eq!(ws.local_time(utc(2026, 3, 8, 7, 0)), lt(3, 0, 7));
        assert_eq!(ws.local_time(utc(2026, 3, 7, 17, 0)), lt(12, 0, 6));
        assert_eq!(ws.local_time(utc(2026, 3, 9, 16, 0)), lt(12, 0, 1));
        // 2026-11-01 (Sunday): 02:00 EDT falls back to 01:00 EST, at 06:00 UTC; 01:30 twice.
        assert_eq!(ws.local_time(utc(2026, 11, 1, 5, 30)), lt(1, 30, 7));
        assert_eq!(ws.local_time(utc(2026, 11, 1, 6, 30)), lt(1, 30, 7));
        // Just before local midnight, the UTC date is already the next day.
        assert_eq!(ws.local_time(utc(2026, 3, 10, 3, 59)), lt(23, 59, 1));
    }

    #[test]
    fn local_time_never_panics() {
        let mut ws = full();
        // 1969-12-31 (Wednesday) 23:00 UTC = Thursday 08:00 in Tokyo.
        assert_eq!(ws.local_time(-3_600_000), lt(8, 0, 4));
        ws.timezone = "Not/AZone".into();
        assert_eq!(ws.local_time(0), lt(0, 0, 4));
        for tz in [
            "Asia/Tokyo",
            "America/New_York",
            "Pacific/Kiritimati",
            "Etc/GMT+12",
        ] {
            ws.timezone = tz.into();
            for at in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
                let t = ws.local_time(at);
                assert!(
                    t.hour < 24 && t.minute < 60 && (1..=7).contains(&t.weekday),
                    "{t:?}"
                );
                let _ = ws.is_business_hours(at);
            }
        }
    }

    // -- business hours --------------------------------------------------------------------------

    #[test]
    fn business_hours_in_tokyo() {
        let ws = full(); // Mon–Fri 09:00–18:00, Sat 10:00–24:00, Asia/Tokyo (UTC+9)
        let jst = |d: u32, h: u32, m: u32| utc(2026, 1, d, h, m) - 9 * 3_600_000;
        // Monday 2026-01-05.
        assert!(!ws.is_business_hours(jst(5, 8, 59)));
        assert!(ws.is_business_hours(jst(5, 9, 0)), "open is inclusive");
        assert!(ws.is_business_hours(jst(5, 12, 30)));
        assert!(ws.is_business_hours(jst(5, 17, 59)));
        assert!(!ws.is_business_hours(jst(5, 18, 0)), "close is exclusive");
        assert!(ws.is_business_hours(jst(5, 18, 0) - 1));
        // Friday 2026-01-09 is open; Saturday has its own window, up to midnight; Sunday closed.
        assert!(ws.is_business_hours(jst(9, 10, 0)));
        assert!(!ws.is_business_hours(jst(10, 9, 59)));
        assert!(ws.is_business_hours(jst(10, 10, 0)));
        assert!(ws.is_business_hours(jst(10, 23, 59)));
        assert!(
            !ws.is_business_hours(jst(11, 0, 0)),
            "24:00 is exclusive too"
        );
        assert!(!ws.is_business_hours(jst(11, 12, 0)));
        // 09:00 Monday UTC is 18:00 in Tokyo: closed, although a UTC reading would say open.
        assert!(!ws.is_business_hours(utc(2026, 1, 5, 9, 0)));
    }

    #[test]
    fn business_hours_empty_dst_and_fallback() {
        let mut ws = full();
        ws.business_hours.clear();
        assert!(
            ws.is_business_hours(utc(2026, 1, 11, 3, 0)),
            "no windows = always open"
        );

        ws.business_hours = vec![BusinessHours {
            days: vec![1, 2, 3, 4, 5],
            open: "09:00".into(),
            close: "17:00".into(),
        }];
        ws.timezone = "America/New_York".into();
        // Monday 2026-03-09 09:00 EDT = 13:00 UTC; a week earlier 09:00 EST = 14:00 UTC.
        assert!(ws.is_business_hours(utc(2026, 3, 9, 13, 0)));
        assert!(!ws.is_business_hours(utc(2026, 3, 2, 13, 0)));
        assert!(ws.is_business_hours(utc(2026, 3, 2, 14, 0)));

        // An unknown timezone falls back to UTC instead of panicking.
        ws.timezone = "Mars/Olympus_Mons".into();
        assert!(ws.is_business_hours(utc(2026, 3, 9, 9, 0)));
        assert!(!ws.is_business_hours(utc(2026, 3, 9, 8, 59)));
        assert!(!ws.is_business_hours(utc(2026, 3, 8, 12, 0)), "Sunday");

        // An unvalidated overnight window never matches (it is refused by validate).
        ws.timezone = "UTC".into();
        ws.business_hours[0].open = "22:00".into();
        ws.business_hours[0].close = "06:00".into();
        assert!(!ws.is_business_hours(utc(2026, 3, 9, 23, 0)));
        assert!(!ws.is_business_hours(utc(2026, 3, 10, 1, 0)));
        assert_eq!(error_of(&ws).path(), "businessHours[0].close");
    }

    #[test]
    fn routing_time_fields() {
        let ws = full();
        let mut ctx = RoutingContext::default();
        ws.fill_routing_time(&mut ctx, utc(2026, 1, 5, 0, 30)); // Monday 09:30 JST
        assert_eq!(ctx.hour, Some(9));
        assert_eq!(ctx.weekday, Some(1));
        assert_eq!(ctx.business_hours, Some(true));
    }

    // -- automated messages ----------------------------------------------------------------------

    fn messages_ws(messages: &[(Trigger, &str, &str, bool)]) -> Workstream {
        let mut ws = minimal();
        ws.language = "ja".into();
        ws.automated_messages = messages
            .iter()
            .map(|(trigger, language, text, enabled)| AutomatedMessage {
                trigger: *trigger,
                language: (*language).into(),
                text: (*text).into(),
                enabled: *enabled,
            })
            .collect();
        ws
    }

    fn text_of<'a>(ws: &'a Workstream, trigger: Trigger, lang: Option<&str>) -> Option<&'a str> {
        ws.automated_message(trigger, lang).map(|m| m.text.as_str())
    }

    #[test]
    fn automated_message_language_selection() {
        use Trigger::*;
        let ws = messages_ws(&[
            (ConversationStarted, "ja", "ようこそ", true),
            (ConversationStarted, "en", "Welcome", true),
            (ConversationStarted, "en-GB", "Welcome, mate", true),
            (ConversationStarted, "zh", "欢迎", true),
            (ConversationStarted, "zh-Hant", "歡迎", true),
            (ConversationStarted, "ko", "환영합니다", false),
            (Queued, "en-US", "Please wait", true),
            (AgentAssigned, "ja", "担当者が対応します", false),
            (AgentEnded, "en", "Bye", true),
        ]);
        // Exact, case-insensitive.
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("en")),
            Some("Welcome")
        );
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("EN-gb")),
            Some("Welcome, mate")
        );
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("zh-hant")),
            Some("歡迎")
        );
        // Primary subtag: the bare primary tag wins over a sibling region.
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("en-US")),
            Some("Welcome")
        );
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("zh-Hans")),
            Some("欢迎")
        );
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("zh_TW")),
            Some("欢迎")
        );
        // Sibling region when no bare primary tag exists.
        assert_eq!(text_of(&ws, Queued, Some("en-AU")), Some("Please wait"));
        assert_eq!(text_of(&ws, Queued, Some("en")), Some("Please wait"));
        // Fallback to the workstream's language.
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("fr")),
            Some("ようこそ")
        );
        assert_eq!(text_of(&ws, ConversationStarted, None), Some("ようこそ"));
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("")),
            Some("ようこそ")
        );
        // Disabled messages are skipped.
        assert_eq!(
            text_of(&ws, ConversationStarted, Some("ko")),
            Some("ようこそ")
        );
        assert_eq!(text_of(&ws, AgentAssigned, Some("ja")), None);
        // Nothing in the customer's nor the workstream's language: none.
        assert_eq!(text_of(&ws, AgentEnded, Some("fr")), None);
        assert_eq!(text_of(&ws, AgentEnded, None), None);
        assert_eq!(text_of(&ws, AgentEnded, Some("en-US")), Some("Bye"));
        // No message for the trigger at all.
        assert_eq!(text_of(&ws, OutsideBusinessHours, Some("ja")), None);
    }

    #[test]
    fn automated_message_workstream_language_by_subtag() {
        let mut ws = messages_ws(&[
            (Trigger::Queued, "zh-Hant", "請稍候", true),
            (Trigger::Queued, "en", "Please wait", true),
        ]);
        ws.language = "zh-Hant-TW".into();
        assert_eq!(text_of(&ws, Trigger::Queued, Some("de")), Some("請稍候"));
        assert_eq!(
            text_of(&ws, Trigger::Queued, Some("en-US")),
            Some("Please wait")
        );
    }

    // -- templates -------------------------------------------------------------------------------

    #[test]
    fn template_rendering() {
        assert_eq!(
            render_template(
                "{customerName}様、お問い合わせありがとうございます。担当の{agentName}です。",
                Some("山田"),
                Some("佐藤"),
            ),
            "山田様、お問い合わせありがとうございます。担当の佐藤です。"
        );
        assert_eq!(
            render_template("担当の{agentName}がご案内します。", Some("山田"), None),
            "担当のがご案内します。"
        );
        assert_eq!(render_template("{customerName}", None, None), "");
        assert_eq!(
            render_template(
                "{customerName}{customerName} {agentName}",
                Some("A"),
                Some("B")
            ),
            "AA B"
        );
        // Unknown and broken placeholders stay as they are.
        assert_eq!(
            render_template("{orderId} {customer} {customerName", Some("A"), Some("B")),
            "{orderId} {customer} {customerName"
        );
        assert_eq!(render_template("{{customerName}}", Some("A"), None), "{A}");
        assert_eq!(render_template("ありがとう {", None, None), "ありがとう {");
        assert_eq!(render_template("", Some("A"), Some("B")), "");
        // Values are inserted verbatim, not expanded again.
        assert_eq!(
            render_template(
                "{customerName} / {agentName}",
                Some("{agentName}"),
                Some("佐藤")
            ),
            "{agentName} / 佐藤"
        );
    }
}
