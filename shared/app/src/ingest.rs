//! Webhook ingestion, independent of HTTP and of AWS: find the account by the path's id, verify
//! `X-Line-Signature` over the raw body with that account's channel secret, split the events and
//! queue them, count the traffic.

use crate::cache::Cache;
use crate::counters::CounterBuffer;
use omniline_domain::account::{credentials_secret_name, ChannelCredentials, WebhookCounts};
use omniline_domain::clock::Clock;
use omniline_domain::conversation::DEDUPE_RETENTION_SECS;
use omniline_domain::line::envelope::{accept_events, AcceptedEvents, WebhookEnvelope};
use omniline_domain::line::signature::{SignatureError, SignatureKey};
use omniline_ports::{AccountStore, EventQueue, PortError, SecretStore};
use std::sync::Arc;
use std::time::Duration;

/// LINE's bodies are small; anything above this is refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a channel secret is trusted from memory.
pub const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

/// After a signature mismatch the secret is re-read (it may have been rotated), but not more often
/// than this per account: forged requests must not turn into one secret-store read each.
pub const SECRET_RELOAD_FLOOR: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Missing or wrong signature, unknown or deleted account: one answer for all (no oracle).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    NotWebhook(String),
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Queueing or a store failed: answer 5xx so LINE redelivers.
    #[error("{0}")]
    Unavailable(#[from] PortError),
}

/// What an accepted request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub queued: usize,
}

/// The webhook's use case, shared by the Lambda function and the local stack.
pub struct WebhookIngest {
    accounts: Arc<dyn AccountStore>,
    secrets: Arc<dyn SecretStore>,
    queue: Arc<dyn EventQueue>,
    /// Per account; `None`: the account has no secret (remembered too, so forged requests do not
    /// each read the secret store).
    cache: Cache<String, Option<SignatureKey>>,
    cache_ttl: Duration,
    reload_floor: Duration,
    /// Epoch milliseconds: when a request was received, and what "older than the deduplication
    /// window" means for its events.
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// The counters not yet written, per account ([`WebhookIngest::with_counter_flush`]).
    counters: CounterBuffer<WebhookCounts>,
}

/// How often a webhook function instance writes an account's counters on AWS: at most one
/// write per account every 10 s per instance, whatever the traffic.
pub use crate::counters::COUNTER_FLUSH;

impl WebhookIngest {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        secrets: Arc<dyn SecretStore>,
        queue: Arc<dyn EventQueue>,
        clock: Clock,
    ) -> Self {
        Self {
            accounts,
            secrets,
            queue,
            cache: Cache::default(),
            cache_ttl: SECRET_CACHE_TTL,
            reload_floor: SECRET_RELOAD_FLOOR,
            clock,
            counters: CounterBuffer::default(),
        }
    }

    /// Adds the counters up in memory and writes an account's at most once per `every` (by the
    /// clock): the first request after `every` writes what accumulated. Counts are best effort:
    /// what an instance holds when it is shut down is not written. Zero (the default) writes
    /// every request's.
    pub fn with_counter_flush(mut self, every: Duration) -> Self {
        self.counters.set_flush(every);
        self
    }

    /// Overrides the cache's lifetime (at most [`SECRET_CACHE_TTL`]) and the minimum time between
    /// two re-reads of one account's secret after mismatches.
    pub fn with_cache_timing(mut self, ttl: Duration, reload_floor: Duration) -> Self {
        self.cache_ttl = ttl.min(SECRET_CACHE_TTL);
        self.reload_floor = reload_floor;
        self
    }

    /// Handles one webhook request. `signature` is the `X-Line-Signature` header.
    pub async fn ingest(
        &self,
        account_id: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Accepted, IngestError> {
        let received_at = (self.clock)();
        if body.len() > MAX_BODY_BYTES {
            // The same answer whether the account exists or not (no oracle).
            return Err(self.reject_too_large(account_id).await);
        }
        match self.accounts.get(account_id).await? {
            None => {
                tracing::warn!(account_id, "webhook refused: unknown account");
                return Err(IngestError::Unauthorized("unknown account"));
            }
            Some(account) if account.webhook_disabled => {
                tracing::warn!(
                    account_id,
                    "webhook refused: the account's workstream was deleted"
                );
                return Err(IngestError::Unauthorized("account disabled"));
            }
            Some(_) => {}
        }
        if let Err(e) = self.verify(account_id, signature, body).await? {
            tracing::warn!(account_id, reason = %e, "webhook refused: signature");
            return self
                .reject(
                    account_id,
                    received_at,
                    IngestError::Unauthorized("signature"),
                )
                .await;
        }
        let mut envelope = match WebhookEnvelope::parse(body) {
            Ok(envelope) => envelope,
            Err(e) => {
                let error = IngestError::NotWebhook(e.to_string());
                return self.reject(account_id, received_at, error).await;
            }
        };
        // Refused events are counted as received and not queued, and logged (never their
        // content): a replay older than the deduplication window would be stored again.
        let sent = envelope.events.len() as u64;
        let AcceptedEvents {
            messages,
            stale,
            duplicate_keys,
        } = accept_events(
            account_id,
            &mut envelope,
            received_at,
            DEDUPE_RETENTION_SECS * 1000,
        );
        if stale + duplicate_keys > 0 {
            tracing::warn!(
                account_id,
                stale,
                duplicate_keys,
                "webhook events refused: older than the deduplication window, or a key twice"
            );
        }
        let events = messages.len() as u64;
        let refused = sent - events;
        if let Err(e) = self.queue.send(&messages).await {
            tracing::error!(account_id, events, error = %e, "webhook events not queued");
            let counts = WebhookCounts {
                received: sent,
                ..Default::default()
            };
            self.record(account_id, counts, received_at).await;
            return Err(e.into());
        }
        tracing::info!(account_id, events, refused, "webhook events queued");
        let counts = WebhookCounts {
            received: sent,
            queued: events,
            rejected: 0,
        };
        self.record(account_id, counts, received_at).await;
        Ok(Accepted {
            queued: messages.len(),
        })
    }

    /// Refuses a request whose body is over [`MAX_BODY_BYTES`] without reading it, counting it
    /// for a known account.
    pub async fn reject_too_large(&self, account_id: &str) -> IngestError {
        // 413 for any account id (no oracle), counted for a known account.
        if let Ok(Some(_)) = self.accounts.get(account_id).await {
            let counts = WebhookCounts {
                rejected: 1,
                ..Default::default()
            };
            self.record(account_id, counts, (self.clock)()).await;
        }
        IngestError::TooLarge
    }

    /// Drops a cached secret (after a rotation or a deletion in the same process).
    pub fn forget(&self, account_id: &str) {
        self.cache.remove(account_id);
    }

    async fn reject(
        &self,
        account_id: &str,
        at: i64,
        error: IngestError,
    ) -> Result<Accepted, IngestError> {
        tracing::warn!(account_id, reason = %error, "webhook refused");
        let counts = WebhookCounts {
            rejected: 1,
            ..Default::default()
        };
        self.record(account_id, counts, at).await;
        Err(error)
    }

    /// Counters are best effort: a failure is logged (and the counts kept for the next write),
    /// never turned into a redelivery.
    async fn record(&self, account_id: &str, counts: WebhookCounts, at: i64) {
        let Some((due, last_at)) = self.counters.add(account_id, counts, at) else {
            return;
        };
        if let Err(e) = self.accounts.record_webhook(account_id, due, last_at).await {
            tracing::warn!(account_id, error = %e, "webhook counters not updated");
            self.counters.keep(account_id, due, last_at);
        }
    }

    /// Verifies with the cached secret; on a mismatch with a cached secret, re-reads it once (it
    /// may have been rotated) before refusing.
    async fn verify(
        &self,
        account_id: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Result<(), SignatureError>, PortError> {
        if signature.is_none() {
            return Ok(Err(SignatureError::Missing));
        }
        if let Some((key, age)) = self
            .cache
            .get(account_id)
            .filter(|(_, age)| *age < self.cache_ttl)
        {
            match key {
                Some(key) => {
                    let outcome = key.verify(body, signature);
                    if outcome != Err(SignatureError::Mismatch) || age < self.reload_floor {
                        return Ok(outcome);
                    }
                }
                None if age < self.reload_floor => return Ok(Err(SignatureError::Mismatch)),
                None => {}
            }
        }
        match self.load(account_id).await? {
            Some(key) => Ok(key.verify(body, signature)),
            None => Ok(Err(SignatureError::Mismatch)),
        }
    }

    async fn load(&self, account_id: &str) -> Result<Option<SignatureKey>, PortError> {
        let stored = self
            .secrets
            .get(&credentials_secret_name(account_id))
            .await?;
        let key = stored
            .as_ref()
            .and_then(ChannelCredentials::from_secret)
            .map(|c| SignatureKey::new(c.channel_secret.expose().as_bytes()));
        self.cache.insert(account_id.to_owned(), key.clone());
        Ok(key)
    }
}
