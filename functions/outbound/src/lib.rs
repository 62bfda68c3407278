//! The outbound function: glue between Lambda (SQS batches of the outbound FIFO queue) and the
//! sending use case, [`omniline_app::outbound`], which it re-exports for its tests. Wiring on
//! AWS: [`omniline_wiring::aws::outbound_service`].

pub mod lambda;

pub use omniline_app::outbound::*;
