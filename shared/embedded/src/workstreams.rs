//! [`WorkstreamStore`] adapters. One workstream per account; the workstream is stored as its JSON
//! document (the admin API's wire form).
//!
//! **Embedded database**: table `workstreams (account_id PRIMARY KEY, id, doc)` with a unique
//! index on `id`. Optimistic writes run in an `IMMEDIATE` transaction: a create checks that
//! neither the account nor the id has a workstream, an update compares the stored document's
//! `version` (and account) before replacing it.
//!
//! **DynamoDB** (the config table, `pk`/`sk`):
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | workstream | `ACCOUNT#{accountId}` | `WORKSTREAM` | `id` S, `version` N, `doc` S (JSON) |
//! | id pointer | `WORKSTREAMS` | `{workstreamId}` | `accountId` S |
//!
//! * The router reads the workstream by account: one `GetItem`.
//! * `workstream(id)` reads the pointer, then the workstream (both consistent) and checks that it
//!   still has this id; `list_workstreams` queries `WORKSTREAMS` and batch-gets the workstreams.
//! * Every write changes both items in one `TransactWriteItems`. A create puts both with
//!   `attribute_not_exists(pk)`; an update puts the workstream if `version = :v AND id = :id`
//!   (same account, same id, unchanged) and the pointer if it is absent or points at the same
//!   account; a delete removes the workstream if it has the id and the pointer if it points at
//!   its account. `put_workstream` (unconditional as to versions) also moves the pointer when
//!   the account's workstream changes id, and refuses an id that another account's workstream
//!   holds.
//! * A transaction cancelled by a condition is a `Conflict` (create) or `false` (update); one
//!   cancelled by a concurrent transaction is retried.

use crate::sql::{exists, from_doc, query_column, query_one, query_value};
use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_domain::workstream::Workstream;
use omniline_ports::{PortError, WorkstreamStore};
use rusqlite::{params, Transaction, TransactionBehavior};

/// The version of a stored workstream document (the rest is not needed to compare versions).
#[derive(serde::Deserialize)]
struct DocVersion {
    #[serde(default)]
    version: u64,
}

// ---------------------------------------------------------------------------------------------
// Embedded database

/// [`WorkstreamStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteWorkstreamStore {
    db: EmbeddedDb,
}

impl SqliteWorkstreamStore {
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(
            "CREATE TABLE IF NOT EXISTS workstreams (
                 account_id TEXT PRIMARY KEY,
                 id         TEXT NOT NULL,
                 doc        TEXT NOT NULL
             );
             CREATE UNIQUE INDEX IF NOT EXISTS workstreams_id ON workstreams (id);",
        )?;
        Ok(Self { db })
    }

    async fn doc_where(&self, sql: &'static str, value: &str) -> Result<Option<String>, PortError> {
        let value = value.to_owned();
        self.db
            .read(move |conn| query_value(conn, sql, (value,)))
            .await
    }
}

/// What an embedded write found.
enum Written {
    Done,
    /// Refused: the workstream with this id is in the way.
    Conflict(String),
    /// The stored workstream is not the expected one (or there is none).
    Stale,
}

impl SqliteWorkstreamStore {
    /// Runs `write` with `workstream`'s account id, id and stored document in one `IMMEDIATE`
    /// transaction, committed when it is [`Written::Done`]: `true` then, `false` when the stored
    /// workstream was [`Written::Stale`]; a [`Written::Conflict`] is [`PortError::Conflict`].
    async fn write<F>(&self, workstream: &Workstream, write: F) -> Result<bool, PortError>
    where
        F: FnOnce(&Transaction<'_>, (String, String, String)) -> rusqlite::Result<Written>
            + Send
            + 'static,
    {
        let doc = workstream.to_stored()?;
        let row = (workstream.account_id.clone(), workstream.id.clone(), doc);
        let written = self
            .db
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let written = write(&tx, row)?;
                if let Written::Done = written {
                    tx.commit()?;
                }
                Ok(written)
            })
            .await?;
        match written {
            Written::Done => Ok(true),
            Written::Stale => Ok(false),
            Written::Conflict(id) => Err(PortError::Conflict(id)),
        }
    }
}

#[async_trait]
impl WorkstreamStore for SqliteWorkstreamStore {
    async fn workstream_for_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Workstream>, PortError> {
        self.doc_where(
            "SELECT doc FROM workstreams WHERE account_id = ?1",
            account_id,
        )
        .await?
        .as_deref()
        .map(Workstream::from_stored)
        .transpose()
    }

    async fn put_workstream(&self, workstream: &Workstream) -> Result<(), PortError> {
        self.write(workstream, |tx, (account_id, id, doc)| {
            let holder: Option<String> = query_value(
                tx,
                "SELECT account_id FROM workstreams WHERE id = ?1",
                [&id],
            )?;
            if holder.is_some_and(|holder| holder != account_id) {
                return Ok(Written::Conflict(id));
            }
            tx.execute(
                "INSERT INTO workstreams (account_id, id, doc) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id) DO UPDATE SET id = excluded.id, doc = excluded.doc",
                params![account_id, id, doc],
            )?;
            Ok(Written::Done)
        })
        .await
        .map(drop)
    }

    async fn workstream(&self, id: &str) -> Result<Option<Workstream>, PortError> {
        self.doc_where("SELECT doc FROM workstreams WHERE id = ?1", id)
            .await?
            .as_deref()
            .map(Workstream::from_stored)
            .transpose()
    }

    async fn list_workstreams(&self) -> Result<Vec<Workstream>, PortError> {
        let docs: Vec<String> = self
            .db
            .run(|conn| query_column(conn, "SELECT doc FROM workstreams ORDER BY id", []))
            .await?;
        docs.iter()
            .map(|doc| Workstream::from_stored(doc))
            .collect()
    }

    async fn save_workstream(
        &self,
        workstream: &Workstream,
        expected_version: Option<u64>,
    ) -> Result<bool, PortError> {
        self.write(workstream, move |tx, (account_id, id, doc)| {
            match expected_version {
                None => {
                    let existing: Option<String> = query_value(
                        tx,
                        "SELECT id FROM workstreams WHERE account_id = ?1",
                        [&account_id],
                    )?;
                    if let Some(existing) = existing {
                        return Ok(Written::Conflict(existing));
                    }
                    if exists(tx, "SELECT 1 FROM workstreams WHERE id = ?1", [&id])? {
                        return Ok(Written::Conflict(id));
                    }
                    tx.execute(
                        "INSERT INTO workstreams (account_id, id, doc) VALUES (?1, ?2, ?3)",
                        params![account_id, id, doc],
                    )?;
                }
                Some(expected) => {
                    let stored: Option<(String, String)> = query_one(
                        tx,
                        "SELECT account_id, doc FROM workstreams WHERE id = ?1",
                        [&id],
                    )?;
                    let Some((stored_account, stored_doc)) = stored else {
                        return Ok(Written::Stale);
                    };
                    let stored_version = from_doc::<DocVersion>(&stored_doc)?.version;
                    if stored_account != account_id || stored_version != expected {
                        return Ok(Written::Stale);
                    }
                    tx.execute(
                        "UPDATE workstreams SET doc = ?2 WHERE id = ?1",
                        params![id, doc],
                    )?;
                }
            }
            Ok(Written::Done)
        })
        .await
    }

    async fn delete_workstream(&self, id: &str) -> Result<bool, PortError> {
        self.db
            .changed("DELETE FROM workstreams WHERE id = ?1", (id.to_owned(),))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The WorkstreamStore contract (omniline_testkit::workstream_contract), also run against
    // DynamoDB on moto (tests/tests/dynamo_config.rs); then what is SQLite's own (a reopen, an
    // old database).
    use omniline_testkit::workstream_contract::{self as contract, workstream};
    use std::sync::Arc;

    fn store(dir: &tempfile::TempDir) -> SqliteWorkstreamStore {
        SqliteWorkstreamStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap()
    }

    fn ids(workstreams: &[Workstream]) -> Vec<&str> {
        workstreams.iter().map(|w| w.id.as_str()).collect()
    }

    contract_scenarios!(store =>
        create_get_list_update_delete,
        create_conflicts_name_the_existing_workstream,
        updates_check_version_and_account,
        put_workstream_replaces_the_accounts_workstream,
    );

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_concurrent_updates_at_one_version_let_one_win() {
        let dir = tempfile::tempdir().unwrap();
        contract::concurrent_updates_at_one_version_let_one_win(Arc::new(store(&dir))).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_concurrent_creates_for_one_account_let_one_win() {
        let dir = tempfile::tempdir().unwrap();
        contract::concurrent_creates_for_one_account_let_one_win(Arc::new(store(&dir))).await;
    }

    #[tokio::test]
    async fn sqlite_workstreams_survive_a_reopen_and_old_databases_work() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A database made before the id index, with a workstream stored the old way.
            let db = EmbeddedDb::open(dir.path()).unwrap();
            db.apply_schema(
                "CREATE TABLE workstreams (
                     account_id TEXT PRIMARY KEY,
                     id         TEXT NOT NULL,
                     doc        TEXT NOT NULL
                 );",
            )
            .unwrap();
            let old = workstream("ws-old", "acc-old", 2);
            let doc = old.to_stored().unwrap();
            db.run(move |conn| {
                conn.execute(
                    "INSERT INTO workstreams (account_id, id, doc) VALUES ('acc-old', 'ws-old', ?1)",
                    params![doc],
                )
            })
            .await
            .unwrap();
            let store = SqliteWorkstreamStore::new(db).unwrap();
            store
                .save_workstream(&workstream("ws-new", "acc-new", 1), None)
                .await
                .unwrap();
        }
        let store = store(&dir);
        assert_eq!(
            ids(&store.list_workstreams().await.unwrap()),
            ["ws-new", "ws-old"]
        );
        assert!(store
            .save_workstream(&workstream("ws-old", "acc-old", 3), Some(2))
            .await
            .unwrap());
        assert_eq!(
            store.workstream("ws-old").await.unwrap().unwrap().version,
            3
        );
        assert!(matches!(
            store
                .save_workstream(&workstream("ws-new", "acc-other", 1), None)
                .await,
            Err(PortError::Conflict(id)) if id == "ws-new"
        ));
    }
}
