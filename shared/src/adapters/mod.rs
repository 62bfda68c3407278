//! Adapters implementing the ports: `aws` (SQS FIFO, DynamoDB, Secrets Manager) and `embedded`
//! (one SQLite database under a data directory, for the local stack).

pub mod aws;
pub mod config_docs;
pub mod dynamo_agents;
pub mod dynamo_conversations;
pub mod dynamo_deliveries;
pub mod embedded;
pub mod private_fs;
pub mod sqlite_agents;
pub mod sqlite_conversations;
pub mod sqlite_deliveries;
pub mod sqs_batch;
pub mod workstreams;
