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

use crate::adapters::aws::{aws_error, condition_held, get_item_consistent, key, n, s, Item};
use crate::adapters::embedded::EmbeddedDb;
use crate::ports::{ConfigDoc, ConfigStore, Expect, PortError};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ReturnValue;
use rusqlite::{params, OptionalExtension};

/// A stored version as SQLite's signed integer.
fn sql_version(version: u64) -> Result<i64, PortError> {
    i64::try_from(version)
        .map_err(|_| PortError::Unavailable(format!("config version {version} is out of range")))
}

/// The version a successful write stores.
fn next_version(expect: Expect) -> Result<u64, PortError> {
    match expect {
        Expect::Absent => Ok(1),
        Expect::Version(v) => v
            .checked_add(1)
            .ok_or_else(|| PortError::Unavailable(format!("config version {v} is out of range"))),
    }
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
                let mut stmt = conn.prepare(
                    "SELECT id, doc, version FROM config_docs WHERE kind = ?1 ORDER BY id",
                )?;
                let rows = stmt.query_map(params![kind], doc_from_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
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
        let new_version = next_version(expect)?;
        let stored_new = sql_version(new_version)?;
        let (kind, id, doc) = (kind.to_owned(), id.to_owned(), doc.to_owned());
        let changed = match expect {
            Expect::Absent => {
                self.db
                    .run(move |conn| {
                        conn.execute(
                            "INSERT INTO config_docs (kind, id, doc, version)
                             VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (kind, id) DO NOTHING",
                            params![kind, id, doc, stored_new],
                        )
                    })
                    .await?
            }
            Expect::Version(v) => {
                // v + 1 fits in an i64, so v does too.
                let expected = sql_version(v)?;
                self.db
                    .run(move |conn| {
                        conn.execute(
                            "UPDATE config_docs SET doc = ?3, version = ?4
                             WHERE kind = ?1 AND id = ?2 AND version = ?5",
                            params![kind, id, doc, stored_new, expected],
                        )
                    })
                    .await?
            }
        };
        Ok((changed == 1).then_some(new_version))
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        let deleted = self
            .db
            .run(move |conn| {
                conn.execute(
                    "DELETE FROM config_docs WHERE kind = ?1 AND id = ?2",
                    params![kind, id],
                )
            })
            .await?;
        Ok(deleted > 0)
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// [`ConfigStore`] in the DynamoDB config table; see the module documentation for the layout.
#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn config_pk(kind: &str) -> String {
    format!("CONFIG#{kind}")
}

fn malformed(key: &str) -> PortError {
    PortError::Unavailable(format!("DynamoDB config item without a valid {key}"))
}

fn doc_from_item(item: &Item) -> Result<ConfigDoc, PortError> {
    let string = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| malformed(name))
    };
    Ok(ConfigDoc {
        id: string("sk")?,
        doc: string("doc")?,
        version: item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| malformed("version"))?,
    })
}

impl DynamoConfigStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConfigStore for DynamoConfigStore {
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<ConfigDoc>, PortError> {
        get_item_consistent(&self.client, &self.table, key(config_pk(kind), id))
            .await?
            .as_ref()
            .map(doc_from_item)
            .transpose()
    }

    async fn list_docs(&self, kind: &str) -> Result<Vec<ConfigDoc>, PortError> {
        let mut docs = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(config_pk(kind)))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Query", e))?;
            for item in page.items() {
                docs.push(doc_from_item(item)?);
            }
        }
        // The sort key already orders by id (UTF-8 bytes); sorting again costs nothing and
        // matches the embedded adapter whatever the pages.
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(docs)
    }

    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: &str,
        expect: Expect,
    ) -> Result<Option<u64>, PortError> {
        let new_version = next_version(expect)?;
        let mut item = key(config_pk(kind), id);
        item.insert("doc".to_owned(), s(doc));
        item.insert("version".to_owned(), n(new_version));
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expect {
            Expect::Absent => request.condition_expression("attribute_not_exists(pk)"),
            Expect::Version(v) => request
                .condition_expression("#version = :v")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":v", n(v)),
        };
        Ok(condition_held(request.send().await, "DynamoDB PutItem")?.then_some(new_version))
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(config_pk(kind), id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        Ok(output.attributes().is_some_and(|a| !a.is_empty()))
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
        crate::testkit::config_store_contract(&store).await;
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

    #[test]
    fn dynamo_items_parse() {
        let mut item = key(config_pk("queue"), "q1");
        item.insert("doc".to_owned(), s("{}"));
        item.insert("version".to_owned(), n(7));
        assert_eq!(item["pk"].as_s().unwrap(), "CONFIG#queue");
        assert_eq!(
            doc_from_item(&item).unwrap(),
            ConfigDoc {
                id: "q1".into(),
                doc: "{}".into(),
                version: 7
            }
        );
        item.remove("version");
        assert!(doc_from_item(&item).is_err());
    }
}
