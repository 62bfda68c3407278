//! Configuration documents.

use super::PortError;
use async_trait::async_trait;

/// One stored configuration document (queues, agent accounts, settings …): JSON text and its
/// version, which every successful write increments (1 on creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDoc {
    pub id: String,
    pub doc: String,
    pub version: u64,
}

/// What a [`ConfigStore::put_doc`] expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No document with this id (a create).
    Absent,
    /// The document at exactly this version (an optimistic update).
    Version(u64),
}

impl Expect {
    /// The version a successful write with this expectation stores: 1 for a create, the next
    /// one for an update (an error past `u64::MAX`, never a wrap to 0).
    pub fn next_version(self) -> Result<u64, PortError> {
        match self {
            Expect::Absent => Ok(1),
            Expect::Version(v) => v.checked_add(1).ok_or_else(|| {
                PortError::Unavailable(format!("config version {v} is out of range"))
            }),
        }
    }
}

/// Small collections of JSON documents keyed by (`kind`, `id`), with optimistic concurrency: the
/// admin API's queues, agent accounts and settings. `kind` is a short name such as `queue`.
/// Collections are admin-sized (thousands, not millions): listing reads a whole kind.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<ConfigDoc>, PortError>;
    /// Every document of `kind`, ordered by id.
    async fn list_docs(&self, kind: &str) -> Result<Vec<ConfigDoc>, PortError>;
    /// Writes `doc` if the stored state is what `expect` says; returns the new version
    /// (`Absent` → 1, `Version(v)` → v + 1), or `None` when the expectation failed (the document
    /// exists / changed meanwhile / is gone).
    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: &str,
        expect: Expect,
    ) -> Result<Option<u64>, PortError>;
    /// Removes the document; `false` if there was none.
    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError>;
}
