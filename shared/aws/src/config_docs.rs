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

use crate::{aws_error, condition_held, get_item_consistent, key, n, s, Item};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::ReturnValue;
use omniline_ports::{ConfigDoc, ConfigStore, Expect, PortError};

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
        let new_version = expect.next_version()?;
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
