//! omniline shared crate: the LINE model and signature, the domain, the ports (traits) the
//! functions need from the outside world, and the adapters that implement them (AWS and embedded).
//!
//! The domain modules (`line`, `domain`, `ingest`) know no AWS crate; only `adapters::aws` does.

pub mod adapters;
pub mod agents;
pub mod bot;
pub mod config;
pub mod consumer;
pub mod contacts;
pub mod conversation;
pub mod delivery;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod input;
pub mod line;
pub mod media;
pub mod media_links;
pub mod outbound;
pub mod ports;
pub mod queues;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod telemetry;
pub mod testkit;
pub mod workstream;
