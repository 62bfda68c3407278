//! Workstreams.

use super::PortError;
use async_trait::async_trait;

/// Workstreams: how each account's conversations are classified and distributed. One workstream
/// per account for now (the admin API edits it, issue 4/8).
#[async_trait]
pub trait WorkstreamStore: Send + Sync {
    async fn workstream_for_account(
        &self,
        account_id: &str,
    ) -> Result<Option<omniline_domain::workstream::Workstream>, PortError>;
    /// Creates or replaces the account's workstream, unconditionally (tests and seeding; the
    /// admin API uses [`WorkstreamStore::save_workstream`]).
    async fn put_workstream(
        &self,
        workstream: &omniline_domain::workstream::Workstream,
    ) -> Result<(), PortError>;
    /// The workstream with this id.
    async fn workstream(
        &self,
        id: &str,
    ) -> Result<Option<omniline_domain::workstream::Workstream>, PortError>;
    /// Every workstream, ordered by id.
    async fn list_workstreams(
        &self,
    ) -> Result<Vec<omniline_domain::workstream::Workstream>, PortError>;
    /// Optimistic write. `expected_version: None` creates: `Conflict` (naming the existing
    /// workstream's id) when the account already has a workstream, or the id is taken.
    /// `Some(v)` replaces the workstream stored at version `v` (the caller sets
    /// `workstream.version` to `v + 1`); `false` when it changed meanwhile or is gone. The account
    /// of a stored workstream never changes.
    async fn save_workstream(
        &self,
        workstream: &omniline_domain::workstream::Workstream,
        expected_version: Option<u64>,
    ) -> Result<bool, PortError>;
    /// Removes the workstream (the account then has none); `false` if there was none.
    async fn delete_workstream(&self, id: &str) -> Result<bool, PortError>;
}
