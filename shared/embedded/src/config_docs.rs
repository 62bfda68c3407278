//! [`ConfigStore`] adapters: small collections of JSON documents keyed by (`kind`, `id`), each
//! with a version that every successful write increments (1 on creation).
//!
//! **Embedded database**: table `config_docs (kind, id, doc, version)`, primary key
//! (`kind`, `id`). A create is an `INSERT … ON CONFLICT DO NOTHING`, an update an `UPDATE … WHERE
//! version = v`: each is one statement, so SQLite applies the check and the write atomically.
//!
//! **DynamoDB** (the config table, `pk`/`sk`):
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | document | `CONFIG#{kind}` | `{id}` | `doc` S (the JSON text), `version` N |
//!
//! * `get_doc` is a consistent `GetItem`; `list_docs` a consistent `Query` on `CONFIG#{kind}`
//!   (every page), ordered by id.
//! * `put_doc` is one conditional `PutItem`: `attribute_not_exists(pk)` for
//!   [`Expect::Absent`], `version = :v` for [`Expect::Version`]; a failed condition is `None`.
//! * `delete_doc` is a `DeleteItem` returning the old item, which tells whether one existed.

use crate::sql::query_rows;
use crate::EmbeddedDb;
use async_trait::async_trait;
use omniline_ports::{ConfigDoc, ConfigStore, Expect, PortError};
use rusqlite::{params, OptionalExtension};

/// A stored version as SQLite's signed integer.
fn sql_version(version: u64) -> Result<i64, PortError> {
    i64::try_from(version)
        .map_err(|_| PortError::Unavailable(format!("config version {version} is out of range")))
}

// ---------------------------------------------------------------------------------------------
// Embedded database

/// [`ConfigStore`] in the embedded database.
#[derive(Debug, Clone)]
pub struct SqliteConfigStore {
    db: EmbeddedDb,
}

impl SqliteConfigStore {
    pub fn new(db: EmbeddedDb) -> Result<Self, PortError> {
        db.apply_schema(
            "CREATE TABLE IF NOT EXISTS config_docs (
                 kind    TEXT NOT NULL,
                 id      TEXT NOT NULL,
                 doc     TEXT NOT NULL,
                 version INTEGER NOT NULL,
                 PRIMARY KEY (kind, id)
             );",
        )?;
        Ok(Self { db })
    }
}

fn doc_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn config_doc((id, doc, version): (String, String, i64)) -> Result<ConfigDoc, PortError> {
    let version = u64::try_from(version).map_err(|_| {
        PortError::Unavailable(format!("config document {id} has version {version}"))
    })?;
    Ok(ConfigDoc { id, doc, version })
}

#[async_trait]
impl ConfigStore for SqliteConfigStore {
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<ConfigDoc>, PortError> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.db
            .read(move |conn| {
                conn.query_row(
                    "SELECT id, doc, version FROM config_docs WHERE kind = ?1 AND id = ?2",
                    params![kind, id],
                    doc_from_row,
                )
                .optional()
            })
            .await?
            .map(config_doc)
            .transpose()
    }

    async fn list_docs(&self, kind: &str) -> Result<Vec<ConfigDoc>, PortError> {
        let kind = kind.to_owned();
        self.db
            .run(move |conn| {
                query_rows(
                    conn,
                    "SELECT id, doc, version FROM config_docs WHERE kind = ?1 ORDER BY id",
                    (kind,),
                    doc_from_row,
                )
            })
            .await?
            .into_iter()
            .map(config_doc)
            .collect()
    }

    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: &str,
        expect: Expect,
    ) -> Result<Option<u64>, PortError> {
        let new_version = expect.next_version()?;
        let stored_new = sql_version(new_version)?;
        let (kind, id, doc) = (kind.to_owned(), id.to_owned(), doc.to_owned());
        let changed = match expect {
            Expect::Absent => {
                self.db
                    .execute(
                        "INSERT INTO config_docs (kind, id, doc, version)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (kind, id) DO NOTHING",
                        (kind, id, doc, stored_new),
                    )
                    .await?
            }
            Expect::Version(v) => {
                // v + 1 fits in an i64, so v does too.
                let expected = sql_version(v)?;
                self.db
                    .execute(
                        "UPDATE config_docs SET doc = ?3, version = ?4
                         WHERE kind = ?1 AND id = ?2 AND version = ?5",
                        (kind, id, doc, stored_new, expected),
                    )
                    .await?
            }
        };
        Ok((changed == 1).then_some(new_version))
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError> {
        self.db
            .changed(
                "DELETE FROM config_docs WHERE kind = ?1 AND id = ?2",
                (kind.to_owned(), id.to_owned()),
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The [`ConfigStore`] contract (shared with the DynamoDB adapter's test).
    #[tokio::test]
    async fn sqlite_create_get_list_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteConfigStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap();
        omniline_testkit::config_store_contract(&store).await;
    }

    #[tokio::test]
    async fn sqlite_out_of_range_versions_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteConfigStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap();
        assert!(store
            .put_doc("queue", "q", "{}", Expect::Version(u64::MAX))
            .await
            .is_err());
        assert!(store
            .put_doc("queue", "q", "{}", Expect::Version(i64::MAX as u64))
            .await
            .is_err());
    }

    #[tokio::test]
    async fn sqlite_documents_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteConfigStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap();
            store
                .put_doc("settings", "global", r#"{"a":1}"#, Expect::Absent)
                .await
                .unwrap();
            store
                .put_doc("settings", "global", r#"{"a":2}"#, Expect::Version(1))
                .await
                .unwrap();
        }
        let store = SqliteConfigStore::new(EmbeddedDb::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            store.get_doc("settings", "global").await.unwrap(),
            Some(ConfigDoc {
                id: "global".into(),
                doc: r#"{"a":2}"#.into(),
                version: 2
            })
        );
    }
}
