//! The simulator: LINE's state (channels, friends, content, reply tokens, retry keys,
//! `markAsReadToken`s, loading animations) and its rules, as plain methods taking the time.

use crate::endpoint::{route, Access, Endpoint};
use crate::error::{Answer, LineError, SentMessage};
use crate::ids::Ids;
use crate::messages::{check_messages, UrlPolicy};
use crate::Millis;
use omniline_domain::input::percent_decode;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// How a simulator behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a reply token is accepted after it was issued (LINE: about a minute).
    pub reply_token_lifetime: Duration,
    /// How long a push's `X-Line-Retry-Key` is remembered (LINE: 24 hours).
    pub retry_key_window: Duration,
    /// Which media URLs message objects may carry.
    pub urls: UrlPolicy,
    /// The endpoints this stand-in answers; any other is LINE's 404 (a partner-only endpoint is
    /// LINE's 403 whatever the stand-in serves).
    pub serves: Vec<Endpoint>,
    /// The channels' monthly message limit (`GET /v2/bot/message/quota`): LINE's free plan, 200.
    pub monthly_limit: u64,
    /// Seed of request ids, quote tokens and link tokens.
    pub seed: u64,
    /// The first message id handed out ([`Simulator::next_message_id`]).
    pub first_message_id: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            reply_token_lifetime: Duration::from_secs(60),
            retry_key_window: Duration::from_secs(24 * 60 * 60),
            urls: UrlPolicy::HttpsOnly,
            serves: Endpoint::ALL.to_vec(),
            monthly_limit: 200,
            seed: 0,
            first_message_id: 460_000_000_000_000_000,
        }
    }
}

/// A channel's ID and secret, for stateless channel access tokens. `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub channel_id: String,
    pub channel_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("channel_id", &self.channel_id)
            .finish_non_exhaustive()
    }
}

/// A simulated LINE Official Account's channel. `Debug` prints no secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    /// The bot's user id (webhooks' `destination`); identifies the channel here.
    pub bot_user_id: String,
    /// The channel access token its calls carry.
    pub access_token: String,
    pub basic_id: String,
    pub display_name: String,
    /// `auto` or `manual` (bot info's `markAsReadMode`).
    pub mark_as_read_mode: String,
    /// For `/oauth2/v3/token`; `None`: no stateless token is issued for this channel.
    pub credentials: Option<ClientCredentials>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("bot_user_id", &self.bot_user_id)
            .field("basic_id", &self.basic_id)
            .finish_non_exhaustive()
    }
}

impl Channel {
    /// A channel with no client credentials.
    pub fn new(bot_user_id: impl Into<String>, access_token: impl Into<String>) -> Self {
        Self {
            bot_user_id: bot_user_id.into(),
            access_token: access_token.into(),
            basic_id: "@bot".into(),
            display_name: "Bot".into(),
            mark_as_read_mode: "auto".into(),
            credentials: None,
        }
    }
}

/// An HTTP request to the simulated API, as the adapter received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without its query, as LINE's (`/v2/bot/...`): the adapter strips its own prefix.
    pub path: &'a str,
    /// The `Authorization` header.
    pub authorization: Option<&'a [u8]>,
    /// The `X-Line-Retry-Key` header.
    pub retry_key: Option<&'a [u8]>,
    pub body: &'a [u8],
}

/// Whom a reply token answers: a chat (user, group or room id), of a channel when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTarget {
    /// The channel (bot user id) whose webhook carried the token; `None`: any channel may use it.
    pub channel: Option<String>,
    pub chat: String,
}

/// How accepted messages came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Reply { token: String },
    Push { retry_key: Option<String> },
}

impl Via {
    /// `reply` or `push`.
    pub fn name(&self) -> &'static str {
        match self {
            Via::Reply { .. } => "reply",
            Via::Push { .. } => "push",
        }
    }
}

/// Messages LINE accepted for a chat: the adapter records them (or [`Simulator::rollback`]s them
/// when it cannot) and answers [`Delivery::answer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The channel (bot user id) that sent them, when the call carried a token.
    pub channel: Option<String>,
    pub via: Via,
    /// The chat they go to.
    pub to: String,
    pub messages: Vec<Value>,
    pub request_id: String,
    pub sent: Vec<SentMessage>,
    pub at: Millis,
}

impl Delivery {
    /// LINE's 200: `{"sentMessages"}` with `x-line-request-id`.
    pub fn answer(&self) -> Answer {
        Answer::ok(
            json!({ "sentMessages": self.sent }),
            self.request_id.clone(),
        )
    }
}

/// What a push with a retry key met.
#[derive(Debug, Clone, PartialEq)]
pub enum Pushed {
    Accepted(Delivery),
    /// The key was accepted before: nothing delivered; LINE's 409 names the first request.
    AlreadyAccepted {
        request_id: String,
        sent: Vec<SentMessage>,
    },
}

/// What a `markAsReadToken` marks: a chat's messages up to one (the adapter's sequence number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadMark {
    pub chat: String,
    pub up_to: i64,
}

/// Counters of the reply and push calls that passed validation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub reply_calls: u64,
    pub push_calls: u64,
    /// 409s: a retry key accepted before.
    pub conflicts: u64,
    /// 400 `Invalid reply token`: unknown, used, expired or another channel's.
    pub invalid_reply_tokens: u64,
}

/// What [`Simulator::call`] made of a request: LINE's rules are applied and LINE's state
/// changed; the adapter carries out the rest and answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Nothing left to do: answer this (a refusal or a complete answer).
    Answer(Answer),
    /// A reply or push accepted: record it, then answer [`Delivery::answer`].
    Deliver(Delivery),
    /// The profile of a friend: the adapter answers it (`{"userId", "displayName", ...}`). With
    /// `group_id`, the friend's profile as a member of that group
    /// (`GET /v2/bot/group/{groupId}/member/{userId}`: `{"userId", "displayName", "pictureUrl"}`
    /// only).
    Profile {
        user_id: String,
        request_id: String,
        group_id: Option<String>,
    },
    /// The content of a message a user sent: the adapter answers its bytes.
    Content {
        message_id: String,
        request_id: String,
    },
    /// The loading animation shows in `chat_id`'s chat until `until` (recorded here).
    Loading {
        chat_id: String,
        until: Millis,
        answer: Answer,
    },
    /// The account read `user_id`'s messages up to `up_to` (a `markAsReadToken`'s message).
    MarkRead {
        user_id: String,
        up_to: i64,
        answer: Answer,
    },
}

impl Call {
    /// The answer, unless the adapter must supply it (a profile or content).
    pub fn answer(&self) -> Option<Answer> {
        match self {
            Call::Answer(a) => Some(a.clone()),
            Call::Deliver(d) => Some(d.answer()),
            Call::Loading { answer, .. } | Call::MarkRead { answer, .. } => Some(answer.clone()),
            Call::Profile { .. } | Call::Content { .. } => None,
        }
    }
}

/// Entries that expire `lifetime` after their time, purged in the order they came.
struct Expiring<V> {
    map: HashMap<String, (Millis, V)>,
    order: VecDeque<(Millis, String)>,
    lifetime: Duration,
}

impl<V> Expiring<V> {
    fn new(lifetime: Duration) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            lifetime,
        }
    }

    fn live(&self, at: Millis, now: Millis) -> bool {
        now.since(at) <= self.lifetime
    }

    fn get(&self, key: &str, now: Millis) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(at, _)| self.live(*at, now))
            .map(|(_, v)| v)
    }

    fn get_mut(&mut self, key: &str, now: Millis) -> Option<&mut V> {
        let lifetime = self.lifetime;
        self.map
            .get_mut(key)
            .filter(|(at, _)| now.since(*at) <= lifetime)
            .map(|(_, v)| v)
    }

    fn insert(&mut self, key: String, at: Millis, value: V) {
        self.order.push_back((at, key.clone()));
        self.map.insert(key, (at, value));
    }

    fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    fn purge(&mut self, now: Millis) {
        while let Some((at, _)) = self.order.front() {
            if self.live(*at, now) {
                break;
            }
            if let Some((at, key)) = self.order.pop_front() {
                if self.map.get(&key).is_some_and(|(t, _)| *t == at) {
                    self.map.remove(&key);
                }
            }
        }
    }
}

struct ReplyToken {
    target: ReplyTarget,
    used: bool,
}

struct AcceptedKey {
    request_id: String,
    sent: Vec<SentMessage>,
}

/// A group chat the accounts are in: its summary and its members (friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub picture_url: Option<String>,
    pub members: std::collections::BTreeSet<String>,
}

/// LINE's side of the Messaging API for a set of channels.
pub struct Simulator {
    config: Config,
    channels: Vec<Channel>,
    users: HashSet<String>,
    groups: HashMap<String, Group>,
    content: HashSet<String>,
    reply_tokens: Expiring<ReplyToken>,
    retry_keys: Expiring<AcceptedKey>,
    read_tokens: HashMap<String, ReadMark>,
    loading: HashMap<String, Millis>,
    webhooks: HashMap<String, String>,
    ids: Ids,
    stats: Stats,
}

impl Simulator {
    pub fn new(config: Config) -> Self {
        Self {
            reply_tokens: Expiring::new(config.reply_token_lifetime),
            retry_keys: Expiring::new(config.retry_key_window),
            ids: Ids::new(config.seed, config.first_message_id),
            config,
            channels: Vec::new(),
            users: HashSet::new(),
            groups: HashMap::new(),
            content: HashSet::new(),
            read_tokens: HashMap::new(),
            loading: HashMap::new(),
            webhooks: HashMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    // --- channels -------------------------------------------------------------------------

    /// Adds `channel`, or replaces the one with its bot user id.
    pub fn add_channel(&mut self, channel: Channel) {
        match self
            .channels
            .iter_mut()
            .find(|c| c.bot_user_id == channel.bot_user_id)
        {
            Some(c) => *c = channel,
            None => self.channels.push(channel),
        }
    }

    pub fn remove_channel(&mut self, bot_user_id: &str) {
        self.channels.retain(|c| c.bot_user_id != bot_user_id);
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// The channel whose access token is `token` (compared in constant time, every channel).
    pub fn channel_for_token(&self, token: &str) -> Option<&Channel> {
        let mut found = None;
        for c in &self.channels {
            let same = bool::from(c.access_token.as_bytes().ct_eq(token.as_bytes()));
            if same && found.is_none() {
                found = Some(c);
            }
        }
        found
    }

    /// The channel of an `Authorization: Bearer {token}` header, or LINE's 401.
    pub fn authorize(&self, authorization: Option<&[u8]>) -> Result<&Channel, LineError> {
        authorization
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .and_then(|t| self.channel_for_token(t))
            .ok_or_else(LineError::unauthorized)
    }

    // --- users and content ----------------------------------------------------------------

    /// `user_id` is a friend of the accounts (pushes, profiles, loading and link tokens work).
    pub fn add_user(&mut self, user_id: impl Into<String>) {
        self.users.insert(user_id.into());
    }

    pub fn is_user(&self, user_id: &str) -> bool {
        self.users.contains(user_id)
    }

    /// The accounts are in group chat `group_id` (its summary answers, its members' profiles
    /// answer, pushes and replies reach it). Replaces a group with the same id.
    pub fn add_group(&mut self, group_id: impl Into<String>, group: Group) {
        self.groups.insert(group_id.into(), group);
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    /// A chat a push can reach: a friend's, or a group the accounts are in.
    fn is_chat(&self, to: &str) -> bool {
        self.is_user(to) || self.groups.contains_key(to)
    }

    /// A user sent a message with content (image, video, audio, file) under `message_id`.
    pub fn add_content(&mut self, message_id: impl Into<String>) {
        self.content.insert(message_id.into());
    }

    pub fn has_content(&self, message_id: &str) -> bool {
        self.content.contains(message_id)
    }

    // --- ids ------------------------------------------------------------------------------

    /// A fresh message id (the ids of what users send and of `sentMessages` share a sequence).
    pub fn next_message_id(&mut self) -> String {
        self.ids.message_id()
    }

    pub fn next_request_id(&mut self) -> String {
        self.ids.request_id()
    }

    // --- reply tokens ---------------------------------------------------------------------

    /// Issues `token` (carried by a webhook event) for `target`, at `now`. A token issued before
    /// is left as it is (a redelivered webhook carries the same token): `false` then.
    pub fn issue_reply_token(
        &mut self,
        token: impl Into<String>,
        target: ReplyTarget,
        now: Millis,
    ) -> bool {
        self.reply_tokens.purge(now);
        let token = token.into();
        if self.reply_tokens.map.contains_key(&token) {
            return false;
        }
        self.reply_tokens.insert(
            token,
            now,
            ReplyToken {
                target,
                used: false,
            },
        );
        true
    }

    /// Uses a reply token for `channel`: whom it answers, or LINE's 400 when it is unknown,
    /// used, expired or another channel's.
    pub fn use_reply_token(
        &mut self,
        channel: Option<&str>,
        token: &str,
        now: Millis,
    ) -> Result<ReplyTarget, LineError> {
        let target = match self.reply_tokens.get_mut(token, now) {
            Some(t) if !t.used && scoped(&t.target, channel) => {
                t.used = true;
                Some(t.target.clone())
            }
            _ => None,
        };
        target.ok_or_else(|| {
            self.stats.invalid_reply_tokens += 1;
            LineError::invalid_reply_token()
        })
    }

    // --- replies and pushes ---------------------------------------------------------------

    /// A reply with `token`: the messages (already checked) are accepted for the token's chat.
    pub fn reply(
        &mut self,
        channel: Option<&str>,
        token: &str,
        messages: Vec<Value>,
        now: Millis,
    ) -> Result<Delivery, LineError> {
        let request_id = self.ids.request_id();
        self.reply_as(request_id, channel, token, messages, now)
    }

    fn reply_as(
        &mut self,
        request_id: String,
        channel: Option<&str>,
        token: &str,
        messages: Vec<Value>,
        now: Millis,
    ) -> Result<Delivery, LineError> {
        self.stats.reply_calls += 1;
        let target = self.use_reply_token(channel, token, now)?;
        let via = Via::Reply {
            token: token.to_owned(),
        };
        Ok(self.deliver(request_id, channel, via, target.chat, messages, now))
    }

    /// A push to `to` (a friend), once per `retry_key`: a key accepted before within the window
    /// is [`Pushed::AlreadyAccepted`] with the first request's id and `sentMessages`.
    pub fn push(
        &mut self,
        channel: Option<&str>,
        to: &str,
        retry_key: Option<&str>,
        messages: Vec<Value>,
        now: Millis,
    ) -> Result<Pushed, LineError> {
        let request_id = self.ids.request_id();
        self.push_as(request_id, channel, to, retry_key, messages, now)
    }

    fn push_as(
        &mut self,
        request_id: String,
        channel: Option<&str>,
        to: &str,
        retry_key: Option<&str>,
        messages: Vec<Value>,
        now: Millis,
    ) -> Result<Pushed, LineError> {
        self.stats.push_calls += 1;
        if !self.is_chat(to) {
            return Err(LineError::invalid_id("to"));
        }
        if let Some(key) = retry_key {
            self.retry_keys.purge(now);
            if let Some(first) = self.retry_keys.get(key, now) {
                self.stats.conflicts += 1;
                return Ok(Pushed::AlreadyAccepted {
                    request_id: first.request_id.clone(),
                    sent: first.sent.clone(),
                });
            }
        }
        let via = Via::Push {
            retry_key: retry_key.map(str::to_owned),
        };
        let delivery = self.deliver(request_id, channel, via, to.to_owned(), messages, now);
        if let Some(key) = retry_key {
            self.retry_keys.insert(
                key.to_owned(),
                now,
                AcceptedKey {
                    request_id: delivery.request_id.clone(),
                    sent: delivery.sent.clone(),
                },
            );
        }
        Ok(Pushed::Accepted(delivery))
    }

    fn deliver(
        &mut self,
        request_id: String,
        channel: Option<&str>,
        via: Via,
        to: String,
        messages: Vec<Value>,
        now: Millis,
    ) -> Delivery {
        let sent = messages
            .iter()
            .map(|_| SentMessage {
                id: self.ids.message_id(),
                quote_token: self.ids.token(32),
            })
            .collect();
        // A message from the account ends the loading animation, as on LINE.
        self.loading.remove(&to);
        Delivery {
            channel: channel.map(str::to_owned),
            via,
            to,
            messages,
            request_id,
            sent,
            at: now,
        }
    }

    /// Undoes `delivery` when the adapter could not record it: its reply token is unused again,
    /// its retry key forgotten (a retry then delivers it). The loading animation stays ended.
    pub fn rollback(&mut self, delivery: &Delivery) {
        match &delivery.via {
            Via::Reply { token } => {
                if let Some((_, t)) = self.reply_tokens.map.get_mut(token) {
                    t.used = false;
                }
            }
            Via::Push {
                retry_key: Some(key),
            } => {
                let same = self
                    .retry_keys
                    .map
                    .get(key)
                    .is_some_and(|(_, k)| k.request_id == delivery.request_id);
                if same {
                    self.retry_keys.remove(key);
                }
            }
            Via::Push { retry_key: None } => {}
        }
    }

    /// Remembers a push accepted with `retry_key` at `at` (kept by the adapter across restarts).
    pub fn restore_push(
        &mut self,
        retry_key: impl Into<String>,
        request_id: impl Into<String>,
        sent: Vec<SentMessage>,
        at: Millis,
    ) {
        self.retry_keys.insert(
            retry_key.into(),
            at,
            AcceptedKey {
                request_id: request_id.into(),
                sent,
            },
        );
    }

    // --- loading animation and read marks -------------------------------------------------

    /// Shows the loading animation in a friend's chat for `seconds` (5 to 60, by 5): until when.
    pub fn start_loading(
        &mut self,
        chat_id: &str,
        seconds: u64,
        now: Millis,
    ) -> Result<Millis, LineError> {
        if !matches!(
            seconds,
            5 | 10 | 15 | 20 | 25 | 30 | 35 | 40 | 45 | 50 | 55 | 60
        ) {
            return Err(LineError::invalid_property(
                "loadingSeconds",
                "must be a multiple of 5 from 5 to 60",
            ));
        }
        if !self.is_user(chat_id) {
            return Err(LineError::invalid_id("chatId"));
        }
        let until = now.plus(Duration::from_secs(seconds));
        self.loading.insert(chat_id.to_owned(), until);
        Ok(until)
    }

    /// Until when the loading animation shows in `chat_id`'s chat, if it still does.
    pub fn loading_until(&self, chat_id: &str, now: Millis) -> Option<Millis> {
        self.loading
            .get(chat_id)
            .copied()
            .filter(|until| *until > now)
    }

    /// Issues `token` (a message event's `markAsReadToken`) marking `chat`'s messages up to
    /// `up_to`.
    pub fn issue_read_token(&mut self, token: impl Into<String>, chat: &str, up_to: i64) {
        self.read_tokens.insert(
            token.into(),
            ReadMark {
                chat: chat.to_owned(),
                up_to,
            },
        );
    }

    pub fn read_token(&self, token: &str) -> Option<&ReadMark> {
        self.read_tokens.get(token)
    }

    // --- the API ----------------------------------------------------------------------------

    /// Applies LINE's rules to an HTTP request at `now`: see [`Call`].
    pub fn call(&mut self, request: &Request<'_>, now: Millis) -> Call {
        let request_id = self.ids.request_id();
        match self.serve(request, now, &request_id) {
            Ok(call) => call,
            Err(e) => Call::Answer(e.into_answer(request_id)),
        }
    }

    fn serve(
        &mut self,
        request: &Request<'_>,
        now: Millis,
        request_id: &str,
    ) -> Result<Call, LineError> {
        let route = route(request.method, request.path).ok_or_else(LineError::not_found)?;
        let endpoint = route.endpoint;
        let served = self.config.serves.contains(&endpoint);
        let ok = |body: Value| Call::Answer(Answer::ok(body, request_id.to_owned()));
        if endpoint == Endpoint::IssueStatelessToken {
            if !served {
                return Err(LineError::not_found());
            }
            return self.stateless_token(request.body).map(ok);
        }
        if endpoint.access() == Access::Channel && !served {
            return Err(LineError::not_found());
        }
        let channel = self.authorize(request.authorization)?.clone();
        if endpoint.access() == Access::Partner {
            return Err(LineError::partner_only());
        }
        let bot = channel.bot_user_id.as_str();
        let param = |i: usize| route.params.get(i).copied().unwrap_or_default();
        match endpoint {
            Endpoint::BotInfo => Ok(ok(json!({
                "userId": channel.bot_user_id,
                "basicId": channel.basic_id,
                "displayName": channel.display_name,
                "chatMode": "chat",
                "markAsReadMode": channel.mark_as_read_mode,
            }))),
            Endpoint::GetWebhookEndpoint => {
                let endpoint = self.webhooks.get(bot);
                Ok(ok(json!({
                    "endpoint": endpoint.map(String::as_str).unwrap_or_default(),
                    "active": endpoint.is_some(),
                })))
            }
            Endpoint::SetWebhookEndpoint => {
                let body = json_object(request.body)?;
                let endpoint = string(&body, "endpoint", 500)?;
                self.webhooks.insert(bot.to_owned(), endpoint.to_owned());
                Ok(ok(json!({})))
            }
            Endpoint::TestWebhookEndpoint => {
                if !request.body.is_empty() {
                    let body = json_object(request.body)?;
                    if body.get("endpoint").is_some() {
                        string(&body, "endpoint", 500)?;
                    }
                }
                Ok(ok(json!({
                    "success": true,
                    "timestamp": rfc3339(now),
                    "statusCode": 200,
                    "reason": "OK",
                    "detail": "200",
                })))
            }
            Endpoint::Profile if self.is_user(param(0)) => Ok(Call::Profile {
                user_id: param(0).to_owned(),
                request_id: request_id.to_owned(),
                group_id: None,
            }),
            Endpoint::GroupMemberProfile
                if self.is_user(param(1))
                    && self
                        .group(param(0))
                        .is_some_and(|g| g.members.contains(param(1))) =>
            {
                Ok(Call::Profile {
                    user_id: param(1).to_owned(),
                    request_id: request_id.to_owned(),
                    group_id: Some(param(0).to_owned()),
                })
            }
            Endpoint::GroupSummary if self.group(param(0)).is_some() => {
                let group = &self.groups[param(0)];
                let mut body = json!({"groupId": param(0), "groupName": group.name});
                if let Some(url) = &group.picture_url {
                    body["pictureUrl"] = json!(url);
                }
                Ok(ok(body))
            }
            // Not a friend, not a member, not a group the accounts are in; no multi-person chat
            // is simulated.
            Endpoint::Profile
            | Endpoint::GroupMemberProfile
            | Endpoint::RoomMemberProfile
            | Endpoint::GroupSummary => Err(LineError::not_found()),
            // The free plan's limit; every accepted push counts against it (replies are free).
            Endpoint::MessageQuota => Ok(ok(json!({
                "type": "limited", "value": self.config.monthly_limit,
            }))),
            Endpoint::QuotaConsumption => Ok(ok(json!({"totalUsage": self.stats.push_calls}))),
            Endpoint::Content if self.has_content(param(0)) => Ok(Call::Content {
                message_id: param(0).to_owned(),
                request_id: request_id.to_owned(),
            }),
            Endpoint::Content => Err(LineError::not_found()),
            Endpoint::Reply => {
                let body = json_object(request.body)?;
                let messages = check_messages(&body, self.config.urls)?;
                let token = body
                    .get("replyToken")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let delivery =
                    self.reply_as(request_id.to_owned(), Some(bot), token, messages, now)?;
                Ok(Call::Deliver(delivery))
            }
            Endpoint::Push => {
                let body = json_object(request.body)?;
                let messages = check_messages(&body, self.config.urls)?;
                let to = body.get("to").and_then(Value::as_str).unwrap_or_default();
                let retry_key = retry_key(request.retry_key)?;
                match self.push_as(
                    request_id.to_owned(),
                    Some(bot),
                    to,
                    retry_key,
                    messages,
                    now,
                )? {
                    Pushed::Accepted(delivery) => Ok(Call::Deliver(delivery)),
                    Pushed::AlreadyAccepted { request_id, sent } => {
                        Err(LineError::retry_key_accepted(request_id, sent))
                    }
                }
            }
            Endpoint::StartLoading => {
                let body = json_object(request.body)?;
                let chat_id = body
                    .get("chatId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let seconds = match body.get("loadingSeconds") {
                    None => 20,
                    Some(v) => v.as_u64().ok_or_else(|| {
                        LineError::invalid_property("loadingSeconds", "must be an integer")
                    })?,
                };
                let until = self.start_loading(&chat_id, seconds, now)?;
                Ok(Call::Loading {
                    chat_id,
                    until,
                    answer: Answer::with_status(202, json!({}), request_id.to_owned()),
                })
            }
            Endpoint::MarkAsReadByToken => {
                let body = json_object(request.body)?;
                let token = body
                    .get("markAsReadToken")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let mark = self
                    .read_token(token)
                    .cloned()
                    .ok_or_else(LineError::invalid_read_token)?;
                Ok(Call::MarkRead {
                    user_id: mark.chat,
                    up_to: mark.up_to,
                    answer: Answer::ok(json!({}), request_id.to_owned()),
                })
            }
            Endpoint::LinkToken if self.is_user(param(0)) => {
                Ok(ok(json!({ "linkToken": self.ids.token(32) })))
            }
            Endpoint::LinkToken => Err(LineError::not_a_friend()),
            // Answered above: the token endpoint, and the partner-only APIs (LINE's 403).
            Endpoint::IssueStatelessToken
            | Endpoint::MarkAsRead
            | Endpoint::PnpPush
            | Endpoint::PnpDeliveries => Err(LineError::partner_only()),
        }
    }

    /// `POST /oauth2/v3/token`: a channel's ID and secret for its token (the simulated channel's
    /// access token stands for the stateless one), else OAuth's 400.
    fn stateless_token(&self, body: &[u8]) -> Result<Value, LineError> {
        let form = parse_form(body).ok_or_else(|| {
            LineError::oauth(
                "invalid_request",
                "the form body is not percent-encoded UTF-8",
            )
        })?;
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("grant_type") != Some("client_credentials") {
            return Err(LineError::oauth(
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ));
        }
        let (Some(id), Some(secret)) = (field("client_id"), field("client_secret")) else {
            return Err(LineError::oauth(
                "invalid_request",
                "client_id and client_secret are required",
            ));
        };
        let mut found = None;
        for c in &self.channels {
            if let Some(creds) = &c.credentials {
                let same_id = creds.channel_id == id;
                let same_secret =
                    bool::from(creds.channel_secret.as_bytes().ct_eq(secret.as_bytes()));
                if same_id && same_secret && found.is_none() {
                    found = Some(c);
                }
            }
        }
        let channel = found.ok_or_else(|| LineError::oauth("invalid_client", "invalid client"))?;
        Ok(json!({
            "token_type": "Bearer",
            "access_token": channel.access_token,
            "expires_in": 900,
        }))
    }
}

fn scoped(target: &ReplyTarget, channel: Option<&str>) -> bool {
    match &target.channel {
        None => true,
        Some(owner) => channel == Some(owner.as_str()),
    }
}

/// The body as a JSON object, or LINE's 400.
fn json_object(body: &[u8]) -> Result<Value, LineError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(LineError::not_json()),
    }
}

/// A required string property of 1 to `max` characters.
fn string<'a>(body: &'a Value, property: &str, max: usize) -> Result<&'a str, LineError> {
    match body.get(property).and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v.chars().count() <= max => Ok(v),
        Some(_) => Err(LineError::invalid_property(
            property,
            format!("Length must be between 1 and {max}"),
        )),
        None => Err(LineError::invalid_property(property, "must be specified")),
    }
}

/// `X-Line-Retry-Key`: absent, or a UUID in its hyphenated hexadecimal form; else LINE's 400.
fn retry_key(header: Option<&[u8]>) -> Result<Option<&str>, LineError> {
    let Some(raw) = header else {
        return Ok(None);
    };
    let key = std::str::from_utf8(raw).map_err(|_| LineError::invalid_retry_key())?;
    if is_uuid(key) {
        Ok(Some(key))
    } else {
        Err(LineError::invalid_retry_key())
    }
}

/// `123e4567-e89b-12d3-a456-426614174000`.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded (`+` is a space); `None` when a
/// pair has a bad escape or is not UTF-8 once decoded.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| Some((percent_decode(k)?, percent_decode(v)?)))
        .collect()
}

fn rfc3339(now: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now.0) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
