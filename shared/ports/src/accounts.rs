//! Connected LINE accounts, their webhook counters and their monthly message counts.

use super::PortError;
use async_trait::async_trait;
use omniline_domain::account::{Account, MonthSends, SendCounts, WebhookCounts, WebhookStats};

/// Connected LINE accounts and their webhook counters.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a new account; `Conflict` if the id exists.
    async fn create(&self, account: &Account) -> Result<(), PortError>;
    async fn get(&self, id: &str) -> Result<Option<Account>, PortError>;
    /// Every account, ordered by creation time.
    async fn list(&self) -> Result<Vec<Account>, PortError>;
    /// Replaces an existing account; `false` if there is none.
    async fn update(&self, account: &Account) -> Result<bool, PortError>;
    /// Removes the account and its counters; `false` if there was none.
    async fn delete(&self, id: &str) -> Result<bool, PortError>;
    /// Adds one request's counts, atomically.
    async fn record_webhook(
        &self,
        id: &str,
        counts: WebhookCounts,
        at_millis: i64,
    ) -> Result<(), PortError>;
    async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, PortError>;
    /// Adds deliveries' counts to the account's month `month` (`YYYY-MM`), atomically; months
    /// more than [`omniline_domain::account::SEND_MONTHS_KEPT`] − 1 before it are dropped.
    async fn record_sends(&self, id: &str, month: &str, counts: SendCounts)
        -> Result<(), PortError>;
    /// The account's message counts per month, newest first (months without any are absent);
    /// removed with the account.
    async fn send_stats(&self, id: &str) -> Result<Vec<MonthSends>, PortError>;
}
