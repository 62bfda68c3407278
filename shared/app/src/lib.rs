//! omniline's use cases, generic over the ports (`omniline_ports`): nothing here names an AWS
//! service, a database or an HTTP client. Composition roots (`omniline_wiring`, `omniline-local`,
//! tests) hand them adapters.
//!
//! - [`ingest`]: the webhook's (verify the signature, refuse stale or duplicate events, queue);
//! - [`router`]: routing events into conversations (gather → [`router::decide`] → effects), and
//!   what agents do to conversations ([`router::agent_ops`]);
//! - [`agent`]: what the agent API reads and does (visibility, transcript pages, replies,
//!   contacts and account links, notifications);
//! - [`admin`]: what the admin API manages (accounts, queues, agents, workstreams and rules,
//!   customers' export and erasure, settings);
//! - [`outbound`]: sending to LINE (reply token first, push with a retry key), delivery records;
//! - [`jobs`]: background jobs the admin API records and the schedule runs page by page (an
//!   account's purge);
//! - [`consumer`]: FIFO batch semantics shared by the queue consumers;
//! - [`tokens`]: channel access tokens; [`settings`]: the global settings document.

pub mod admin;
pub mod agent;
pub mod audit;
mod cache;
pub mod consumer;
mod counters;
pub mod identity;
pub mod ingest;
pub mod jobs;
pub mod outbound;
pub mod quota;
pub mod router;
pub mod settings;
pub mod tokens;
