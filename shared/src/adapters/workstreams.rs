//! [`WorkstreamStore`] adapters: a table of the embedded database, and items of the DynamoDB config
//! table (`ACCOUNT#{accountId}` / `WORKSTREAM`, holding the workstream as a JSON document).

use crate::adapters::aws::aws_error;
use crate::adapters::embedded::EmbeddedDb;
use crate::ports::{PortError, WorkstreamStore};
use crate::workstream::Workstream;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use rusqlite::{params, OptionalExtension};

fn parse(doc: &str) -> Result<Workstream, PortError> {
    serde_json::from_str(doc)
        .map_err(|e| PortError::Unavailable(format!("stored workstream does not parse: {e}")))
}

fn to_doc(workstream: &Workstream) -> Result<String, PortError> {
    serde_json::to_string(workstream)
        .map_err(|e| PortError::Unavailable(format!("workstream does not serialise: {e}")))
}

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
             );",
        )?;
        Ok(Self { db })
    }
}

#[async_trait]
impl WorkstreamStore for SqliteWorkstreamStore {
    async fn workstream_for_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Workstream>, PortError> {
        let account_id = account_id.to_owned();
        let doc: Option<String> = self
            .db
            .run(move |conn| {
                conn.query_row(
                    "SELECT doc FROM workstreams WHERE account_id = ?1",
                    params![account_id],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        doc.as_deref().map(parse).transpose()
    }

    async fn put_workstream(&self, workstream: &Workstream) -> Result<(), PortError> {
        let doc = to_doc(workstream)?;
        let (account_id, id) = (workstream.account_id.clone(), workstream.id.clone());
        self.db
            .run(move |conn| {
                conn.execute(
                    "INSERT INTO workstreams (account_id, id, doc) VALUES (?1, ?2, ?3)
                     ON CONFLICT (account_id) DO UPDATE SET id = excluded.id, doc = excluded.doc",
                    params![account_id, id, doc],
                )
                .map(drop)
            })
            .await
    }
}

/// [`WorkstreamStore`] in the DynamoDB config table.
#[derive(Debug, Clone)]
pub struct DynamoWorkstreamStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoWorkstreamStore {
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
        }
    }
}

#[async_trait]
impl WorkstreamStore for DynamoWorkstreamStore {
    async fn workstream_for_account(
        &self,
        account_id: &str,
    ) -> Result<Option<Workstream>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("ACCOUNT#{account_id}")))
            .key("sk", AttributeValue::S("WORKSTREAM".into()))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB GetItem", e))?;
        output
            .item()
            .and_then(|item| item.get("doc"))
            .and_then(|v| v.as_s().ok())
            .map(|doc| parse(doc))
            .transpose()
    }

    async fn put_workstream(&self, workstream: &Workstream) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                AttributeValue::S(format!("ACCOUNT#{}", workstream.account_id)),
            )
            .item("sk", AttributeValue::S("WORKSTREAM".into()))
            .item("id", AttributeValue::S(workstream.id.clone()))
            .item("version", AttributeValue::N(workstream.version.to_string()))
            .item("doc", AttributeValue::S(to_doc(workstream)?))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB PutItem", e))?;
        Ok(())
    }
}
