//! The edge every function shares: typed configuration from the environment, tracing (JSON on
//! Lambda), HTTP error bodies and the Lambda/HTTP entry points, and the SQS batch adapter.

pub mod config;
pub mod http;
pub mod sqs_batch;
pub mod telemetry;
