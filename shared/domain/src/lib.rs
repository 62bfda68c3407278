//! omniline's domain: what a LINE customer-service channel is, with no I/O.
//!
//! The LINE model (`line`: events, messages, signature, webhook envelope, API types), accounts,
//! conversations, workstreams and their routing rules, agents, deliveries, media keys and links,
//! validated input. This crate depends on no AWS crate, database, HTTP client or server, and
//! reads no clock: time comes in as an argument (`clock::Clock`, passed by composition roots).

pub mod account;
pub mod agents;
pub mod audit;
pub mod bot;
pub mod clock;
pub mod contacts;
pub mod conversation;
pub mod delivery;
pub mod error;
pub mod identity;
pub mod input;
pub mod line;
pub mod media;
pub mod media_links;
pub mod message_templates;
pub mod outbound;
pub mod queues;
pub mod quick_replies;
pub mod reports;
pub mod retry;
pub mod routing;
pub mod search;
pub mod secret;
pub mod settings;
pub mod tags;
pub mod workstream;

pub use error::PortError;
