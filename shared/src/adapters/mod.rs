//! Adapters implementing the ports: `aws` (SQS FIFO, DynamoDB, Secrets Manager) and `embedded`
//! (one SQLite database under a data directory, for the local stack).

pub mod aws;
pub mod embedded;
