//! Ports: what the use cases need from the outside world, as small traits, all here, a file
//! per port. Each has an AWS adapter and an embedded one (SQLite, files), or an HTTP one (LINE,
//! bots); handlers hold `Arc<dyn Port>`. The modules that own the port's data types re-export
//! it (`crate::agents::AgentStore` is `crate::ports::AgentStore`).

mod accounts;
mod agents;
mod bot;
mod config;
mod conversations;
mod deliveries;
mod line;
mod objects;
mod queue;
mod retry;
mod secrets;
mod workstreams;

pub use accounts::AccountStore;
pub use agents::AgentStore;
pub use bot::BotHook;
pub use config::{ConfigDoc, ConfigStore, Expect};
pub use conversations::{ConversationStore, PurgeCounts};
pub use deliveries::DeliveryStore;
pub use line::LineApi;
pub use objects::ObjectStore;
pub use queue::EventQueue;
pub use retry::RetryDelay;
pub use secrets::SecretStore;
pub use workstreams::WorkstreamStore;

/// A store or queue failed: the caller answers 5xx / retries. The text never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{failed} of {total} messages were not queued: {reason}")]
    PartialBatch {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("already exists: {0}")]
    Conflict(String),
}
