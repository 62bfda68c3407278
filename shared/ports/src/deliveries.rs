//! Delivery records of outbound messages.

use super::PortError;
use async_trait::async_trait;

/// Delivery records of outbound messages (see [`omniline_domain::delivery`]).
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Creates `delivery` unless a record with its id exists; returns the stored record either
    /// way (so a retry finds the retry key chosen the first time).
    async fn begin(
        &self,
        delivery: &omniline_domain::delivery::Delivery,
    ) -> Result<omniline_domain::delivery::Delivery, PortError>;
    /// Replaces the record whose version is `delivery.version - 1`; `false` if it changed
    /// meanwhile (another worker) or does not exist.
    async fn update(
        &self,
        delivery: &omniline_domain::delivery::Delivery,
    ) -> Result<bool, PortError>;
    async fn delivery(
        &self,
        id: &str,
    ) -> Result<Option<omniline_domain::delivery::Delivery>, PortError>;
    /// A conversation's deliveries, oldest first.
    async fn deliveries_for_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<omniline_domain::delivery::Delivery>, PortError>;
    /// Erases a conversation's delivery records (privacy erasure and purge); returns how many.
    async fn delete_for_conversation(&self, conversation_id: &str) -> Result<u64, PortError>;
    /// One page of erasing every delivery record of the account (account purge): how many it
    /// erased and where the next page starts, as [`crate::ConversationStore::purge_account_page`]
    /// (re-runnable; a paged background job only).
    async fn purge_account_page(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<crate::PurgePage<u64>, PortError>;
}
