//! [`DeliveryStore`] on the conversations table (`pk`, `sk`). Item layout:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | delivery | `DELIVERY#{id}` | `DELIVERY` | `doc`, `version`, `conversationId`, `createdAt`, `accountId` |
//! | conversation index | `CONV#{conversationId}` | `D#{createdAt:020}#{id}` | `deliveryId` |
//!
//! `doc` is the JSON of the [`Delivery`]. [`DeliveryStore::begin`] writes both items in one
//! `TransactWriteItems` whose first operation (the delivery, conditional on its absence) is the
//! only conditional one, so a cancellation reason `ConditionalCheckFailed` at index 0 means the
//! delivery exists. The index items share their partition with the conversation's `META` and
//! transcript (`T#…`) items; the `D#` prefix keeps them apart. The id, conversation and creation
//! time are fixed by `begin`; `update` replaces the document and version (the other attributes,
//! `accountId` included, stay as `begin` wrote them).
//! [`DeliveryStore::delete_for_conversation`] deletes both items of each delivery found through
//! the conversation's index (and nothing else of the partition).
//!
//! [`DeliveryStore::purge_account`] finds the account's delivery items with a (paginated,
//! consistent) Scan of the whole table filtered on `accountId`: an admin-only, rare operation,
//! with no index of its own. It deletes the index items first and the delivery items last, so an
//! interrupted purge is completed by running it again (the Scan still finds what is left).
//! Delivery items written before `accountId` existed lack it and are not found by the purge.

use crate::dynamo_conversations::batch_delete;
use crate::{
    aws_error, backoff, batch_get_items, build_error, condition_held, get_item_consistent, key, n,
    s, Item, ATTEMPTS,
};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, Put, TransactWriteItem};
use omniline_domain::delivery::Delivery;
use omniline_ports::{DeliveryStore, PortError};
use std::collections::HashMap;

const DELIVERY: &str = "DELIVERY";
const INDEX_PREFIX: &str = "D#";

/// [`DeliveryStore`] on DynamoDB; see the module documentation for the item layout.
#[derive(Debug, Clone)]
pub struct DynamoDeliveryStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn delivery_pk(id: &str) -> String {
    format!("{DELIVERY}#{id}")
}

fn conversation_pk(conversation_id: &str) -> String {
    format!("CONV#{conversation_id}")
}

/// Zero-padded so that string order is creation order (non-negative epoch ms); ties are ordered
/// by delivery id.
fn index_sk(created_at: i64, id: &str) -> String {
    format!("{INDEX_PREFIX}{created_at:020}#{id}")
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, PortError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without string {name}")))
}

fn get_i64(item: &Item, name: &str) -> Result<i64, PortError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without integer {name}")))
}

fn parse_doc(item: &Item) -> Result<Delivery, PortError> {
    let doc = get_s(item, "doc")?;
    serde_json::from_str(doc)
        .map_err(|e| PortError::Unavailable(format!("stored delivery does not parse: {e}")))
}

fn to_doc(delivery: &Delivery) -> Result<AttributeValue, PortError> {
    serde_json::to_string(delivery)
        .map(AttributeValue::S)
        .map_err(|e| PortError::Unavailable(format!("delivery does not serialize: {e}")))
}

/// What a cancelled `begin` transaction means.
#[derive(Debug, PartialEq, Eq)]
enum Cancelled {
    /// The delivery exists (its condition failed).
    Exists,
    /// Lost a race with another transaction on the same items: try again.
    Conflict,
    Error(String),
}

fn classify(reasons: &[CancellationReason]) -> Cancelled {
    let code = |r: &CancellationReason| r.code().unwrap_or("None").to_owned();
    if reasons.first().map(code).as_deref() == Some("ConditionalCheckFailed") {
        return Cancelled::Exists;
    }
    let mut conflict = false;
    for reason in reasons {
        match code(reason).as_str() {
            "None" => {}
            "TransactionConflict" => conflict = true,
            other => {
                return Cancelled::Error(format!(
                    "DynamoDB TransactWriteItems cancelled: {other} {}",
                    reason.message().unwrap_or_default()
                ))
            }
        }
    }
    if conflict {
        Cancelled::Conflict
    } else {
        Cancelled::Error("DynamoDB TransactWriteItems cancelled without a reason".into())
    }
}

impl DynamoDeliveryStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
        }
    }

    /// A strongly consistent GetItem of the delivery item.
    async fn get(&self, id: &str) -> Result<Option<Item>, PortError> {
        get_item_consistent(&self.client, &self.table, key(delivery_pk(id), DELIVERY)).await
    }

    fn begin_items(&self, d: &Delivery) -> Result<Vec<TransactWriteItem>, PortError> {
        let mut main = key(delivery_pk(&d.id), DELIVERY);
        main.insert("doc".to_owned(), to_doc(d)?);
        main.insert("version".to_owned(), n(d.version));
        main.insert("conversationId".to_owned(), s(&d.conversation_id));
        main.insert("createdAt".to_owned(), n(d.created_at));
        main.insert("accountId".to_owned(), s(&d.account_id));
        let main = Put::builder()
            .table_name(&self.table)
            .set_item(Some(main))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;

        let mut index = key(
            conversation_pk(&d.conversation_id),
            index_sk(d.created_at, &d.id),
        );
        index.insert("deliveryId".to_owned(), s(&d.id));
        let index = Put::builder()
            .table_name(&self.table)
            .set_item(Some(index))
            .build()
            .map_err(build_error)?;
        Ok(vec![
            TransactWriteItem::builder().put(main).build(),
            TransactWriteItem::builder().put(index).build(),
        ])
    }

    /// The conversation's index items in sort-key order: (sort key, delivery id).
    async fn index_items(&self, conversation_id: &str) -> Result<Vec<(String, String)>, PortError> {
        let mut ids = Vec::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(conversation_pk(conversation_id)))
            .expression_attribute_values(":prefix", s(INDEX_PREFIX))
            .scan_index_forward(true)
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Query", e))?;
            for item in page.items() {
                ids.push((
                    get_s(item, "sk")?.to_owned(),
                    get_s(item, "deliveryId")?.to_owned(),
                ));
            }
        }
        Ok(ids)
    }

    /// The keys of both items (the conversation index item, then the delivery item) of every
    /// delivery of the account, by a consistent Scan of the table.
    async fn account_keys(&self, account_id: &str) -> Result<(Vec<Item>, Vec<Item>), PortError> {
        let mut index_keys = Vec::new();
        let mut delivery_keys = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("accountId = :a AND begins_with(pk, :p)")
            .projection_expression("pk, conversationId, createdAt")
            .expression_attribute_values(":a", s(account_id))
            .expression_attribute_values(":p", s(delivery_pk("")))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Scan", e))?;
            for item in page.items() {
                let pk = get_s(item, "pk")?;
                let id = pk.strip_prefix(&delivery_pk("")).ok_or_else(|| {
                    PortError::Unavailable(format!("DynamoDB delivery item with pk {pk}"))
                })?;
                index_keys.push(key(
                    conversation_pk(get_s(item, "conversationId")?),
                    index_sk(get_i64(item, "createdAt")?, id),
                ));
                delivery_keys.push(key(pk.to_owned(), DELIVERY));
            }
        }
        Ok((index_keys, delivery_keys))
    }

    /// Every delivery in `ids` that exists, read consistently with `BatchGetItem`, by id.
    async fn batch_get(&self, ids: &[String]) -> Result<HashMap<String, Delivery>, PortError> {
        let keys = ids
            .iter()
            .map(|id| key(delivery_pk(id), DELIVERY))
            .collect();
        batch_get_items(&self.client, &self.table, keys)
            .await?
            .iter()
            .map(|item| parse_doc(item).map(|d| (d.id.clone(), d)))
            .collect()
    }
}

#[async_trait]
impl DeliveryStore for DynamoDeliveryStore {
    async fn begin(&self, delivery: &Delivery) -> Result<Delivery, PortError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(self.begin_items(delivery)?))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(delivery.clone()),
                Err(e) => e,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    cancelled.cancellation_reasons()
                }
                _ => return Err(aws_error("DynamoDB TransactWriteItems", err)),
            };
            match classify(reasons) {
                Cancelled::Exists => {
                    return match self.get(&delivery.id).await? {
                        Some(item) => parse_doc(&item),
                        None => Err(PortError::Unavailable(format!(
                            "delivery {} exists by its condition but cannot be read",
                            delivery.id
                        ))),
                    };
                }
                Cancelled::Conflict => continue,
                Cancelled::Error(message) => return Err(PortError::Unavailable(message)),
            }
        }
        Err(PortError::Unavailable(format!(
            "DynamoDB TransactWriteItems: delivery {} still conflicting after {ATTEMPTS} attempts",
            delivery.id
        )))
    }

    async fn update(&self, delivery: &Delivery) -> Result<bool, PortError> {
        let Some(previous) = delivery.version.checked_sub(1) else {
            return Ok(false);
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(delivery_pk(&delivery.id), DELIVERY)))
            .update_expression("SET #doc = :doc, #version = :version")
            .condition_expression("#version = :previous")
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":doc", to_doc(delivery)?)
            .expression_attribute_values(":version", n(delivery.version))
            .expression_attribute_values(":previous", n(previous))
            .send()
            .await;
        // `false`: changed meanwhile, or missing (no version attribute to match).
        condition_held(result, "DynamoDB UpdateItem")
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, PortError> {
        self.get(id).await?.as_ref().map(parse_doc).transpose()
    }

    async fn deliveries_for_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<Delivery>, PortError> {
        let ids: Vec<String> = self
            .index_items(conversation_id)
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let mut found = self.batch_get(&ids).await?;
        // In index order (the sort key); an index item without its delivery is skipped.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn delete_for_conversation(&self, conversation_id: &str) -> Result<u64, PortError> {
        let index = self.index_items(conversation_id).await?;
        // The deliveries first, their index items last: a retry of an interrupted deletion finds
        // what is left through the index.
        let mut keys: Vec<Item> = index
            .iter()
            .map(|(_, id)| key(delivery_pk(id), DELIVERY))
            .collect();
        keys.extend(
            index
                .iter()
                .map(|(sk, _)| key(conversation_pk(conversation_id), sk.clone())),
        );
        batch_delete(&self.client, &self.table, keys).await?;
        Ok(index.len() as u64)
    }

    async fn purge_account(&self, account_id: &str) -> Result<u64, PortError> {
        let (index_keys, delivery_keys) = self.account_keys(account_id).await?;
        let count = delivery_keys.len() as u64;
        // Every index item first, the deliveries only then (no batch mixes the two): a retry of
        // an interrupted purge finds what is left through the Scan, which sees delivery items.
        batch_delete(&self.client, &self.table, index_keys).await?;
        batch_delete(&self.client, &self.table, delivery_keys).await?;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn index_keys_sort_by_creation_then_id() {
        let mut keys = vec![
            index_sk(1_700_000_000_000, "b"),
            index_sk(999, "z"),
            index_sk(1_700_000_000_000, "a"),
            index_sk(0, "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                index_sk(0, "a"),
                index_sk(999, "z"),
                index_sk(1_700_000_000_000, "a"),
                index_sk(1_700_000_000_000, "b"),
            ]
        );
        assert_eq!(index_sk(5, "m"), "D#00000000000000000005#m");
        assert!(!index_sk(5, "m").starts_with("T#"));
    }

    #[test]
    fn deliveries_cancellation_reasons() {
        let ccf = "ConditionalCheckFailed";
        assert_eq!(classify(&[reason(ccf), reason("None")]), Cancelled::Exists);
        assert_eq!(
            classify(&[reason("TransactionConflict"), reason("None")]),
            Cancelled::Conflict
        );
        assert_eq!(
            classify(&[reason("None"), reason("TransactionConflict")]),
            Cancelled::Conflict
        );
        assert!(matches!(classify(&[]), Cancelled::Error(_)));
        assert!(matches!(
            classify(&[reason("None"), reason("ThrottlingError")]),
            Cancelled::Error(_)
        ));
    }
}
