//! The embedded backend: one SQLite database and a media directory under a data directory.

use crate::Stores;
use omniline_embedded::config_docs::SqliteConfigStore;
use omniline_embedded::objects::FsObjectStore;
use omniline_embedded::sqlite_agents::SqliteAgentStore;
use omniline_embedded::sqlite_conversations::SqliteConversationStore;
use omniline_embedded::sqlite_deliveries::SqliteDeliveryStore;
use omniline_embedded::workstreams::SqliteWorkstreamStore;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore};
use omniline_ports::PortError;
use std::path::Path;
use std::sync::Arc;

/// Name of the inbound queue in the embedded database.
pub const INBOUND_QUEUE: &str = "inbound";
/// Name of the outbound queue in the embedded database.
pub const OUTBOUND_QUEUE: &str = "outbound";
/// Receives before an inbound message goes to the dead-letter queue (as in template.yaml).
pub const MAX_RECEIVE_COUNT: u32 = 5;
/// Receives before an outbound message goes to the dead-letter queue: with the local backoff
/// (1 s, 2 s … capped at a minute) about four minutes of LINE failing, as the outbound
/// function's growing delays give on AWS.
pub const OUTBOUND_MAX_RECEIVE_COUNT: u32 = 10;

/// The inbound queue of `db`.
pub fn inbound_queue(db: &EmbeddedDb) -> SqliteEventQueue {
    SqliteEventQueue::new(db.clone(), INBOUND_QUEUE, MAX_RECEIVE_COUNT)
}

/// The outbound queue of `db`.
pub fn outbound_queue(db: &EmbeddedDb) -> SqliteEventQueue {
    SqliteEventQueue::new(db.clone(), OUTBOUND_QUEUE, OUTBOUND_MAX_RECEIVE_COUNT)
}

/// Every store and queue in `db`, media under `data_dir/media`.
pub fn stores(db: &EmbeddedDb, data_dir: &Path) -> Result<Stores, PortError> {
    Ok(Stores {
        accounts: Arc::new(SqliteAccountStore::new(db.clone())),
        secrets: Arc::new(SqliteSecretStore::new(db.clone())),
        inbound: Arc::new(inbound_queue(db)),
        config: Arc::new(SqliteConfigStore::new(db.clone())?),
        workstreams: Arc::new(SqliteWorkstreamStore::new(db.clone())?),
        agents: Arc::new(SqliteAgentStore::new(db.clone())?),
        conversations: Arc::new(SqliteConversationStore::new(db.clone())?),
        deliveries: Arc::new(SqliteDeliveryStore::new(db.clone())?),
        media: Arc::new(FsObjectStore::new(data_dir.join("media"))),
    })
}
