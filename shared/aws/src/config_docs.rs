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

use crate::dynamo::{key, n, number, s, string, Condition, Item, Pages, Table};
use async_trait::async_trait;
use aws_config::SdkConfig;
use omniline_ports::{ConfigDoc, ConfigStore, Expect, PortError};

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// [`ConfigStore`] in the DynamoDB config table; see the module documentation for the layout.
#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    table: Table,
}

fn config_pk(kind: &str) -> String {
    format!("CONFIG#{kind}")
}

fn malformed(key: &str) -> PortError {
    PortError::Unavailable(format!("DynamoDB config item without a valid {key}"))
}

fn doc_from_item(item: &Item) -> Result<ConfigDoc, PortError> {
    let text = |name: &str| {
        string(item, name)
            .map(str::to_owned)
            .ok_or_else(|| malformed(name))
    };
    Ok(ConfigDoc {
        id: text("sk")?,
        doc: text("doc")?,
        version: number(item, "version").ok_or_else(|| malformed("version"))?,
    })
}

impl DynamoConfigStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
        }
    }
}

#[async_trait]
impl ConfigStore for DynamoConfigStore {
    async fn get_doc(&self, kind: &str, id: &str) -> Result<Option<ConfigDoc>, PortError> {
        self.table
            .get_consistent(key(config_pk(kind), id))
            .await?
            .as_ref()
            .map(doc_from_item)
            .transpose()
    }

    async fn list_docs(&self, kind: &str) -> Result<Vec<ConfigDoc>, PortError> {
        let mut docs = Vec::new();
        self.table
            .partition(config_pk(kind))
            .each_item("DynamoDB Query", |item| {
                docs.push(doc_from_item(item)?);
                Ok(())
            })
            .await?;
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
        let new_version = expect.next_version()?;
        let mut item = key(config_pk(kind), id);
        item.insert("doc".to_owned(), s(doc));
        item.insert("version".to_owned(), n(new_version));
        let condition = match expect {
            Expect::Absent => Condition::new("attribute_not_exists(pk)"),
            Expect::Version(v) => Condition::new("#version = :v")
                .name("#version", "version")
                .value(":v", n(v)),
        };
        Ok(self
            .table
            .put_if(item, condition)
            .await?
            .then_some(new_version))
    }

    async fn delete_doc(&self, kind: &str, id: &str) -> Result<bool, PortError> {
        self.table.delete_existing(key(config_pk(kind), id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
