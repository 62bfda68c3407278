//! The router function: glue between Lambda (SQS batches of the inbound FIFO queue, the
//! auto-close schedule) and the routing use case, [`omniline_app::router`], which it re-exports
//! for its tests. Wiring on AWS: [`omniline_wiring::aws::router_service`].

pub mod lambda;

pub use omniline_app::router::*;
