//! The outbound function: sends agent, bot and automated messages to LINE, each exactly once.
//!
//! For every outbound message a delivery record is created before the first attempt, holding the
//! push's `X-Line-Retry-Key`. A message answering a recent event is sent as a free reply while
//! its token is young; a reply refused as an invalid token is pushed instead. A reply whose
//! outcome is unknown (timeout, 5xx, connection reset) is tried again with the same token while
//! the token is young (LINE accepts a token once, so this never doubles it); if LINE then says
//! the token was used, or the token has aged, it is recorded `unconfirmed` and never pushed (the
//! customer might get it twice). Pushes always carry the record's retry key, so a retried push after a timeout or a 5xx
//! is accepted by LINE at most once (409 = accepted before = delivered).

pub use crate::tokens::ChannelTokens;
use crate::tokens::TokenError;

use crate::consumer::{process_fifo_batch, BatchMessage, BatchOutcome};
use crate::counters::CounterBuffer;
use omniline_domain::account::{month_of, SendCounts};
use omniline_domain::agents::{AgentNotification, DeliveryFailure, NOTIFICATION_DELIVERY_FAILED};
use omniline_domain::conversation::Consent;
use omniline_domain::delivery::{DeliveredContent, Delivery, DeliveryStatus};
use omniline_domain::line::api::{SendError, Sent};
use omniline_domain::line::messages::{prepare, with_sender};
use omniline_domain::media_links::{link_expiry, media_link, DEFAULT_LINK_LIFETIME};
use omniline_domain::outbound::{Origin, OutboundMessage};
use omniline_domain::secret::SecretString;
use omniline_ports::LazySecret;
use omniline_ports::LineApi;
use omniline_ports::{ConversationStore, DeliveryStore, PortError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use omniline_domain::clock::Clock;

/// A reply token is used only while younger than this (LINE's tokens live about a minute).
pub const REPLY_TOKEN_MAX_AGE_MS: i64 = 50_000;
/// A first reply is tried only with a token younger than this, leaving time to try the same
/// reply again if LINE's answer is lost (older: the message is pushed, with its retry key).
pub const REPLY_TOKEN_FIRST_USE_MS: i64 = 25_000;
/// LINE allows 2,000 requests per second per channel; stay under it.
pub const MAX_REQUESTS_PER_SECOND: u32 = 1_800;

/// Where media links point and how they are signed.
#[derive(Clone)]
pub struct MediaLinks {
    /// Public base URL of the media route (`…/media/{key}`).
    pub base_url: String,
    /// Read on the first delivery, not at start-up.
    pub signing_secret: LazySecret,
}

/// Everything the outbound function talks to.
#[derive(Clone)]
pub struct OutboundDeps {
    pub deliveries: Arc<dyn DeliveryStore>,
    /// The accounts' monthly message counts (replies, pushes, failures).
    pub accounts: Arc<dyn omniline_ports::AccountStore>,
    /// Where an agent whose message LINE did not deliver is told (`deliveryFailed`).
    pub agents: Arc<dyn omniline_ports::AgentStore>,
    /// The settings (the retention of delivery records), read at most every
    /// [`crate::settings::SETTINGS_TTL`].
    pub config: Arc<dyn omniline_ports::ConfigStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub line: Arc<dyn LineApi>,
    pub tokens: Arc<ChannelTokens>,
    pub media: Option<MediaLinks>,
    pub clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Never deliverable as it is: goes to the dead-letter queue after the queue's receive limit.
    #[error("malformed outbound message: {0}")]
    Malformed(String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("channel access token unavailable: {0}")]
    Token(#[from] TokenError),
    /// LINE could not take it now (5xx, timeout, 429): retried later with a growing delay.
    #[error("LINE unavailable, retrying: {0}")]
    Retry(String),
    #[error("the delivery record changed concurrently")]
    Contention,
}

/// The outbound use case, shared by the Lambda function and the local stack.
pub struct OutboundService {
    deps: OutboundDeps,
    limiter: Mutex<HashMap<String, (Instant, u32)>>,
    settings: crate::settings::CachedSettings,
    /// Message counts not yet written, per account and month.
    sends: CounterBuffer<SendCounts>,
}

impl OutboundService {
    pub fn new(deps: OutboundDeps) -> Self {
        Self {
            deps,
            limiter: Mutex::new(HashMap::new()),
            settings: Default::default(),
            sends: CounterBuffer::default(),
        }
    }

    /// Writes an account's message counts at most once per `every` per instance (best effort:
    /// what an instance holds when it stops is not written); zero (the default) writes each
    /// delivery's.
    pub fn with_counter_flush(mut self, every: Duration) -> Self {
        self.sends.set_flush(every);
        self
    }

    /// A batch from the outbound FIFO queue: in order, a failure holding back the rest of its
    /// group (one conversation's messages leave in the order they were queued).
    pub async fn handle_batch(&self, messages: &[BatchMessage]) -> BatchOutcome {
        process_fifo_batch(messages, |message| {
            let body = message.body.clone();
            async move { self.deliver(&body).await.map(drop) }
        })
        .await
    }

    /// Sends one outbound message (the queue message body) and returns its final status, or an
    /// error to retry it later.
    pub async fn deliver(&self, body: &str) -> Result<DeliveryStatus, OutboundError> {
        let message: OutboundMessage =
            serde_json::from_str(body).map_err(|e| OutboundError::Malformed(e.to_string()))?;
        let (status, error) = self.deliver_message(&message).await?;
        let undelivered = matches!(
            status,
            DeliveryStatus::Failed | DeliveryStatus::QuotaExhausted | DeliveryStatus::Suppressed
        );
        if undelivered {
            self.tell_agent(&message, status, error).await;
        }
        Ok(status)
    }

    /// Tells an agent that LINE did not deliver `message` (a `deliveryFailed` notification, one
    /// per message however often this runs): the agent who wrote it, or, for what the stack
    /// sent on its own (greeting, bot answer, survey), the agent holding the conversation while
    /// it is open. Nobody, when no agent holds it. Best effort: the delivery record and the
    /// transcript keep the status either way.
    async fn tell_agent(
        &self,
        message: &OutboundMessage,
        status: DeliveryStatus,
        reason: Option<String>,
    ) {
        let conversation = match self
            .deps
            .conversations
            .conversation(&message.conversation_id)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(id = %message.id, error = %e, "conversation unreadable; the failure notification names no queue");
                None
            }
        };
        let holder = conversation
            .as_ref()
            .filter(|c| c.state != omniline_domain::conversation::ConversationState::Closed)
            .and_then(|c| c.agent_id.clone());
        let Some(agent_id) = message.agent_id.clone().or(holder) else {
            return;
        };
        let queue_id = conversation.and_then(|c| c.queue_id).unwrap_or_default();
        let notification = AgentNotification {
            id: format!("{}:{NOTIFICATION_DELIVERY_FAILED}", message.id),
            agent_id,
            conversation_id: message.conversation_id.clone(),
            account_id: message.account_id.clone(),
            kind: NOTIFICATION_DELIVERY_FAILED.to_owned(),
            customer_user_id: message.to.starts_with('U').then(|| message.to.clone()),
            customer_name: String::new(),
            customer_picture_url: None,
            customer_language: None,
            queue_id,
            created_at: (self.deps.clock)(),
            delivery: Some(DeliveryFailure {
                message_id: message.id.clone(),
                status: status.as_str().to_owned(),
                reason,
            }),
            expires_at: None,
        };
        // Kept as long as the conversation it is about (retention).
        let expires_at = match self.settings.get(self.deps.config.as_ref()).await {
            Ok(settings) => settings.retain_until(notification.created_at),
            Err(e) => {
                tracing::warn!(id = %message.id, error = %e, "settings unreadable; the agent was not told of the failed delivery");
                return;
            }
        };
        if let Err(e) = self.deps.agents.notify(&notification, expires_at).await {
            tracing::warn!(id = %message.id, error = %e, "the agent was not told of the failed delivery");
        }
    }

    /// Sends `message` and returns its final status with LINE's reason, or an error to retry it
    /// later.
    async fn deliver_message(
        &self,
        message: &OutboundMessage,
    ) -> Result<(DeliveryStatus, Option<String>), OutboundError> {
        let now = (self.deps.clock)();
        let mut fresh = Delivery::new(
            &message.id,
            &message.account_id,
            &message.conversation_id,
            &uuid::Uuid::new_v4().to_string(),
            now,
        );
        // The record expires with the retention setting (DynamoDB's time to live).
        fresh.expires_at = self
            .settings
            .get(self.deps.config.as_ref())
            .await?
            .retain_until(now);
        if message.origin != Origin::Agent {
            fresh.content = Some(DeliveredContent {
                origin: message.origin,
                trigger: message.trigger.clone(),
                messages: message.messages.clone(),
                queued_at: message.created_at,
            });
        }
        // What a delivery needs is read before its record is begun, so that a delivery that
        // replies records the attempt with its beginning (one write, not two) and nothing that
        // can fail comes between that record and the reply. A read that fails records no
        // attempt; its error is returned only after the record shows the delivery unfinished
        // (a redelivered message that was sent is skipped, whatever fails).
        // Media keys become signed links: the key is read once, on the first delivery.
        let media = match &self.deps.media {
            Some(links) => links.signing_secret.get().await.map(|_| ()),
            None => Ok(()),
        };
        let parts = media.is_ok().then(|| self.parts(message));
        let unfollowed = match &parts {
            Some(Ok(_)) => Some(self.unfollowed(message).await),
            _ => None,
        };
        let reply_now = match (&unfollowed, self.usable_reply_token(message, now, false)) {
            // Failing to get the token is not an attempt: the reply path reads it again.
            (Some(Ok(false)), Some(_)) => self.token(&message.account_id).await.ok(),
            _ => None,
        };
        fresh.reply_attempted = reply_now.is_some();
        let mut delivery = self.deps.deliveries.begin(&fresh).await?;
        if delivery.status.is_final() {
            tracing::info!(id = %message.id, status = delivery.status.as_str(), "already delivered; skipped");
            return Ok((delivery.status, delivery.error.clone()));
        }
        // Begun by this call (a new record): its reply flag is this call's, not an earlier
        // attempt's. Otherwise the stored record is an earlier attempt's.
        let begun_here = delivery.retry_key == fresh.retry_key;
        media?;
        let parts = match parts.unwrap_or_else(|| self.parts(message)) {
            Ok(parts) => parts,
            Err(problem) => {
                return self
                    .finish(&mut delivery, DeliveryStatus::Failed, Some(problem), now)
                    .await;
            }
        };
        let unfollowed = match unfollowed {
            Some(read) => read?,
            None => self.unfollowed(message).await?,
        };
        if unfollowed {
            return self
                .finish(&mut delivery, DeliveryStatus::Suppressed, None, now)
                .await;
        }

        if delivery.parts_sent == 0 && !delivery.reply_refused {
            // An earlier attempt replied and its outcome is unknown (timeout, 5xx, reset, or a
            // crash before recording LINE's answer).
            let earlier_attempt = delivery.reply_attempted && !begun_here;
            match self.usable_reply_token(message, now, earlier_attempt) {
                Some(reply_token) => {
                    // The token first: failing to get one is not an attempt.
                    let token = match reply_now {
                        Some(token) => token,
                        None => self.token(&message.account_id).await?,
                    };
                    // The attempt is recorded before the reply: with the beginning, or now.
                    if !(begun_here && delivery.reply_attempted) {
                        delivery.reply_attempted = true;
                        self.save(&mut delivery, now).await?;
                    }
                    // Replying again with the same token is safe: LINE accepts a reply token
                    // once, so the customer gets the message at most once.
                    match self
                        .reply(&message.account_id, &token, reply_token, &parts[0])
                        .await?
                    {
                        Ok(sent) => self.accepted(&mut delivery, sent, parts.len(), now).await?,
                        // The young token was used: most likely by the earlier attempt, which
                        // then reached the customer. Never push it as well.
                        Err(SendError::InvalidReplyToken { message: m }) if earlier_attempt => {
                            tracing::warn!(id = %message.id, "reply token used after an attempt with unknown outcome");
                            let error = Some(format!(
                                "reply outcome unknown, then the token was refused: {m}"
                            ));
                            return self
                                .finish(&mut delivery, DeliveryStatus::Unconfirmed, error, now)
                                .await;
                        }
                        // A definite refusal of a token never used: push instead.
                        Err(SendError::InvalidReplyToken { message: m }) => {
                            tracing::info!(id = %message.id, "reply token refused ({m}); pushing");
                            delivery.reply_refused = true;
                            self.save(&mut delivery, now).await?;
                        }
                        // Not known to have reached the customer: the reply is tried again while
                        // its token is young, never pushed.
                        Err(SendError::Unavailable(e)) => {
                            tracing::warn!(id = %message.id, error = %e, "reply outcome unknown; retried with the same token");
                            return Err(OutboundError::Retry(e));
                        }
                        // Refused, so not delivered by this call: the next attempt pushes; unless
                        // an earlier attempt's outcome is unknown (it may have delivered it), then
                        // the reply is tried again while its token is young.
                        Err(SendError::RateLimited { message: m, .. }) => {
                            if !earlier_attempt {
                                delivery.reply_refused = true;
                                self.save(&mut delivery, now).await?;
                            }
                            return Err(OutboundError::Retry(m));
                        }
                        Err(e) => return self.refused(&mut delivery, e, now).await,
                    }
                }
                None if earlier_attempt => {
                    // The token is too old to try again and the customer may have the reply.
                    tracing::warn!(id = %message.id, "reply outcome unknown and its token expired");
                    let error = Some("reply attempted, outcome unknown".to_owned());
                    return self
                        .finish(&mut delivery, DeliveryStatus::Unconfirmed, error, now)
                        .await;
                }
                None => {}
            }
        }

        while (delivery.parts_sent as usize) < parts.len() {
            let part = delivery.parts_sent;
            let retry_key = delivery.retry_key_for(part);
            self.throttle(&message.account_id).await;
            delivery.attempts += 1;
            match self
                .push(
                    &message.account_id,
                    &message.to,
                    &parts[part as usize],
                    &retry_key,
                )
                .await?
            {
                Ok(sent) => self.accepted(&mut delivery, sent, parts.len(), now).await?,
                Err(SendError::Unavailable(e)) | Err(SendError::RateLimited { message: e, .. }) => {
                    // Same key and body next time: LINE accepts it at most once.
                    self.save(&mut delivery, now).await?;
                    return Err(OutboundError::Retry(e));
                }
                Err(e) => return self.refused(&mut delivery, e, now).await,
            }
        }
        self.finish(&mut delivery, DeliveryStatus::Sent, None, now)
            .await
    }

    /// Shows the loading animation in a 1:1 chat (agent typing), 5–60 seconds.
    pub async fn start_loading(
        &self,
        account_id: &str,
        user_id: &str,
        seconds: u32,
    ) -> Result<(), OutboundError> {
        let token = self.token(account_id).await?;
        self.deps
            .line
            .start_loading(&token, user_id, seconds)
            .await
            .map_err(|e| OutboundError::Retry(e.to_string()))
    }

    /// The LINE calls of the message: media keys become long-lived signed links, agent identity
    /// is applied, long texts are split, and parts hold at most five message objects.
    fn parts(&self, message: &OutboundMessage) -> Result<Vec<Vec<Value>>, String> {
        let mut objects = message.messages.clone();
        let scope = media_scope(&message.account_id, &message.conversation_id);
        for object in &mut objects {
            self.link_media(object, &scope, message.created_at)?;
        }
        if let Some(sender) = &message.sender {
            with_sender(&mut objects, &sender.name, sender.icon_url.as_deref());
        }
        let parts = prepare(&objects).map_err(|e| e.to_string())?;
        if parts.is_empty() {
            return Err("no message objects".into());
        }
        Ok(parts)
    }

    /// `{"type":"image","mediaKey":"outbound/{accountId}/{conversationId}/…"}` → signed
    /// `originalContentUrl` / `previewImageUrl` valid for [`DEFAULT_LINK_LIFETIME`] (LINE fetches
    /// lazily, days later). Only keys under the message's own account and conversation
    /// (`scope`) are signed: a key naming anything else (another customer's inbound media, an
    /// agent's upload) fails the delivery, so a bot cannot mint a link to what it may not see.
    fn link_media(&self, object: &mut Value, scope: &str, created_at: i64) -> Result<(), String> {
        let Some(map) = object.as_object_mut() else {
            return Ok(());
        };
        let Some(key) = map.remove("mediaKey") else {
            return Ok(());
        };
        let preview = map.remove("previewKey");
        let links = self
            .deps
            .media
            .as_ref()
            .ok_or("media links are not configured")?;
        // From the message's creation, not the attempt: every retry sends the same body.
        let expires = link_expiry(created_at.div_euclid(1000), DEFAULT_LINK_LIFETIME);
        let link = |k: &Value| -> Result<String, String> {
            let k = k.as_str().ok_or("mediaKey must be a string")?;
            if !in_media_scope(k, scope) {
                return Err(format!(
                    "mediaKey must name an object under {scope} (this conversation's media)"
                ));
            }
            let secret = links
                .signing_secret
                .loaded()
                .ok_or("the media signing key is not loaded")?;
            media_link(&links.base_url, k, expires, &secret).map_err(|e| e.to_string())
        };
        map.insert("originalContentUrl".into(), Value::String(link(&key)?));
        let kind = map
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if kind == "image" || kind == "video" {
            let preview = link(preview.as_ref().unwrap_or(&key))?;
            map.insert("previewImageUrl".into(), Value::String(preview));
        }
        Ok(())
    }

    /// A 1:1 customer who blocked the account is not sent to.
    async fn unfollowed(&self, message: &OutboundMessage) -> Result<bool, OutboundError> {
        if !message.to.starts_with('U') {
            return Ok(false);
        }
        let customer = self
            .deps
            .conversations
            .customer(&message.account_id, &message.to)
            .await?;
        Ok(customer.is_some_and(|c| c.consent == Consent::Unfollowed))
    }

    /// The reply token, if young enough: for a first attempt, young enough to be tried again.
    fn usable_reply_token<'m>(
        &self,
        message: &'m OutboundMessage,
        now: i64,
        earlier_attempt: bool,
    ) -> Option<&'m str> {
        let token = message.reply_token.as_deref()?;
        let received = message.reply_token_received_at?;
        let limit = if earlier_attempt {
            REPLY_TOKEN_MAX_AGE_MS
        } else {
            REPLY_TOKEN_FIRST_USE_MS
        };
        (now - received < limit).then_some(token)
    }

    async fn token(&self, account_id: &str) -> Result<SecretString, OutboundError> {
        Ok(self.deps.tokens.token(account_id).await?)
    }

    /// A reply, re-reading the token once on a 401.
    async fn reply(
        &self,
        account_id: &str,
        token: &SecretString,
        reply_token: &str,
        part: &[Value],
    ) -> Result<Result<Sent, SendError>, OutboundError> {
        match self.deps.line.reply(token, reply_token, part).await {
            Err(SendError::Unauthorized { .. }) => {
                self.deps.tokens.forget(account_id);
                let token = self.token(account_id).await?;
                Ok(self.deps.line.reply(&token, reply_token, part).await)
            }
            other => Ok(other),
        }
    }

    /// A push with the part's retry key, re-reading the token once on a 401.
    async fn push(
        &self,
        account_id: &str,
        to: &str,
        part: &[Value],
        retry_key: &str,
    ) -> Result<Result<Sent, SendError>, OutboundError> {
        let token = self.token(account_id).await?;
        match self.deps.line.push(&token, to, part, retry_key).await {
            Err(SendError::Unauthorized { .. }) => {
                self.deps.tokens.forget(account_id);
                let token = self.token(account_id).await?;
                Ok(self.deps.line.push(&token, to, part, retry_key).await)
            }
            other => Ok(other),
        }
    }

    async fn accepted(
        &self,
        delivery: &mut Delivery,
        sent: Sent,
        parts: usize,
        now: i64,
    ) -> Result<(), OutboundError> {
        delivery.parts_sent += 1;
        delivery.request_ids.extend(sent.request_id);
        delivery.sent_message_ids.extend(sent.sent_message_ids);
        if delivery.parts_sent as usize >= parts {
            // The last part: the caller's `finish` records it with the final status in one
            // write (one write unit less per message). Should that write fail, the retry finds
            // the part unrecorded, as when this save fails: a push is sent again with the same
            // retry key (LINE accepts it once), a reply's used token is refused and the delivery
            // recorded unconfirmed; never a second message.
            return Ok(());
        }
        self.save(delivery, now).await
    }

    /// A definite refusal: the monthly limit holds the message (no retry storm), anything else
    /// fails it with LINE's error.
    async fn refused(
        &self,
        delivery: &mut Delivery,
        error: SendError,
        now: i64,
    ) -> Result<(DeliveryStatus, Option<String>), OutboundError> {
        match error {
            SendError::MonthlyLimit { message } => {
                tracing::error!(
                    alert = "line_monthly_limit",
                    account_id = %delivery.account_id,
                    id = %delivery.id,
                    "LINE monthly message limit reached; message held: {message}"
                );
                self.finish(delivery, DeliveryStatus::QuotaExhausted, Some(message), now)
                    .await
            }
            other => {
                tracing::warn!(id = %delivery.id, error = %other, "LINE refused the message");
                self.finish(
                    delivery,
                    DeliveryStatus::Failed,
                    Some(other.to_string()),
                    now,
                )
                .await
            }
        }
    }

    async fn finish(
        &self,
        delivery: &mut Delivery,
        status: DeliveryStatus,
        error: Option<String>,
        now: i64,
    ) -> Result<(DeliveryStatus, Option<String>), OutboundError> {
        delivery.status = status;
        delivery.error = error;
        self.save(delivery, now).await?;
        tracing::info!(id = %delivery.id, status = status.as_str(), parts = delivery.parts_sent, "delivery recorded");
        self.count(delivery, now).await;
        Ok((status, delivery.error.clone()))
    }

    /// Adds a finished delivery to its account's message counts: the reply LINE accepted, the
    /// pushes it accepted, and a failure for good. Best effort: a failed write is kept for the
    /// next, never turned into a retry of the message.
    async fn count(&self, delivery: &Delivery, now: i64) {
        let counts = send_counts(delivery);
        if counts.is_empty() {
            return;
        }
        let month = month_of(now);
        let key = format!("{}\n{month}", delivery.account_id);
        let Some((due, _)) = self.sends.add(&key, counts, now) else {
            return;
        };
        if let Err(e) = self
            .deps
            .accounts
            .record_sends(&delivery.account_id, &month, due)
            .await
        {
            tracing::warn!(account_id = %delivery.account_id, error = %e, "message counts not updated");
            self.sends.keep(&key, due, now);
        }
    }

    async fn save(&self, delivery: &mut Delivery, now: i64) -> Result<(), OutboundError> {
        delivery.version += 1;
        delivery.updated_at = now;
        if self.deps.deliveries.update(delivery).await? {
            Ok(())
        } else {
            Err(OutboundError::Contention)
        }
    }

    /// At most [`MAX_REQUESTS_PER_SECOND`] calls per channel from this process.
    async fn throttle(&self, account_id: &str) {
        loop {
            let wait = {
                let Ok(mut windows) = self.limiter.lock() else {
                    return;
                };
                let entry = windows
                    .entry(account_id.to_owned())
                    .or_insert((Instant::now(), 0));
                if entry.0.elapsed() >= Duration::from_secs(1) {
                    *entry = (Instant::now(), 0);
                }
                if entry.1 < MAX_REQUESTS_PER_SECOND {
                    entry.1 += 1;
                    return;
                }
                Duration::from_secs(1).saturating_sub(entry.0.elapsed())
            };
            tokio::time::sleep(wait).await;
        }
    }
}
/// What a finished delivery adds to its account's counts: LINE calls accepted (the first part as
/// a reply when its reply was accepted, the others as pushes), and a failure for good. A reply
/// whose outcome is unknown counts nothing.
fn send_counts(delivery: &Delivery) -> SendCounts {
    let replied = delivery.reply_attempted && !delivery.reply_refused && delivery.parts_sent > 0;
    let replies = u64::from(replied);
    let pushes = u64::from(delivery.parts_sent).saturating_sub(replies);
    let failed = u64::from(matches!(
        delivery.status,
        DeliveryStatus::Failed | DeliveryStatus::QuotaExhausted
    ));
    match delivery.status {
        DeliveryStatus::Unconfirmed | DeliveryStatus::Queued => SendCounts::default(),
        _ => SendCounts {
            replies,
            pushes,
            failed,
        },
    }
}

/// The key prefix an outbound message may sign links under: its account's and conversation's.
pub fn media_scope(account_id: &str, conversation_id: &str) -> String {
    format!("outbound/{account_id}/{conversation_id}/")
}

/// Whether `key` lies under `scope`: no `..`, empty or dot segment can climb out of it.
fn in_media_scope(key: &str, scope: &str) -> bool {
    key.strip_prefix(scope).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .split('/')
                .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
    })
}
