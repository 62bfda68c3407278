//! Queues: where classified work waits for agents. Agents and routing rules refer to a queue by
//! id; the admin API keeps the queue records in the [`omniline_ports::ConfigStore`] (kind `queue`).

use serde::{Deserialize, Serialize};

/// [`omniline_ports::ConfigStore`] kind of queue records.
pub const QUEUE_KIND: &str = "queue";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queue {
    pub id: String,
    pub name: String,
    /// Skills the queue's work usually needs (informational; rules set a conversation's skills).
    #[serde(default)]
    pub skills: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}
