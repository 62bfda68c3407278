//! Ports: what the use cases need from the outside world, as small traits, all here, a file
//! per port. Each has an AWS adapter and an embedded one (SQLite, files), or an HTTP one (LINE,
//! bots); handlers hold `Arc<dyn Port>`. The data the ports carry is the domain's
//! (`omniline_domain`); this crate adds the traits and [`LazySecret`], a secret read on first use.

mod accounts;
mod agents;
mod bot;
mod config;
mod conversations;
mod deliveries;
mod event_queue;
mod identity;
mod lazy_secret;
mod line;
mod objects;
mod retry;
mod secrets;
mod workstreams;

pub use accounts::AccountStore;
pub use agents::AgentStore;
pub use bot::BotHook;
pub use config::{ConfigDoc, ConfigStore, Expect};
pub use conversations::{ConversationStore, PurgeCounts, PurgePage};
pub use deliveries::DeliveryStore;
pub use event_queue::EventQueue;
pub use identity::IdentityProvider;
pub use line::LineApi;
pub use objects::ObjectStore;
pub use retry::RetryDelay;
pub use secrets::SecretStore;
pub use workstreams::WorkstreamStore;

pub use lazy_secret::{LazySecret, SECRET_REFRESH};
pub use omniline_domain::PortError;
