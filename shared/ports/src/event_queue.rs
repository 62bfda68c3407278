//! The event queue port (inbound: webhook → router; outbound: router → sender).

use super::PortError;
use async_trait::async_trait;
use omniline_domain::line::envelope::QueueMessage;

/// A FIFO queue of events (inbound: webhook → router).
#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Queues every message, in order, or fails. A partial failure is an error: the caller
    /// answers 5xx and LINE redelivers; deduplication ids make the resend harmless.
    async fn send(&self, messages: &[QueueMessage]) -> Result<(), PortError>;
}
