//! omniline shared crate: the LINE model and signature, the domain, the ports (traits) the
//! functions need from the outside world, and the adapters that implement them (AWS and embedded).
//!
//! The domain modules (`line`, `domain`, `ingest`) know no AWS crate; only `adapters::aws` does.

pub mod adapters;
pub mod config;
pub mod domain;
pub mod http;
pub mod ingest;
pub mod line;
pub mod ports;
pub mod secret;
pub mod telemetry;
pub mod testkit;
