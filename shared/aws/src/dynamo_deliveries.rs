//! [`DeliveryStore`] on the conversations table (`pk`, `sk`). Item layout:
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | delivery | `DELIVERY#{id}` | `DELIVERY` | `doc`, `version`, `conversationId`, `createdAt`, `accountId` |
//! | conversation index | `CONV#{conversationId}` | `D#{createdAt:020}#{id}` | `deliveryId` |
//!
//! `doc` is the JSON of the [`Delivery`]. [`DeliveryStore::begin`] puts the delivery item on
//! condition of its absence and then its index item, each one write unit outside any transaction
//! (a transaction would bill both twice). A failed condition means the delivery exists: it is
//! read back and its index item put again from it (the stored creation time is the key's, so it
//! is always the same item), so an attempt that died between the two puts leaves no delivery
//! unindexed once the message is retried. The index items share their partition with the
//! conversation's `META` and transcript (`T#…`) items; the `D#` prefix keeps them apart. The id, conversation and creation
//! time are fixed by `begin`; `update` replaces the document and version (the other attributes,
//! `accountId` included, stay as `begin` wrote them).
//! [`DeliveryStore::delete_for_conversation`] deletes both items of each delivery found through
//! the conversation's index (and nothing else of the partition).
//!
//! [`DeliveryStore::purge_account_page`] finds the account's delivery items with one page of a
//! consistent Scan of the whole table filtered on `accountId`: a paged background job (the purge
//! job the admin's disconnection with purge records, run by the router's schedule), with no
//! index of its own. It deletes the index items first and the delivery items last, so an
//! interrupted page is completed by running it again (the Scan still finds what is left).
//! Delivery items written before `accountId` existed lack it and are not found by the purge.
//! This Scan is the store's only one and no request sends it: an index by account would cost an
//! index write per outbound message. The conversations table's
//! `conversations-by-account` index is keyed on `accountId` too, but its sort key `accountSk` is
//! on conversation `META` items only, so delivery items are not in it.

use crate::dynamo::{
    condition_held, get_s, key, n, number, parse_doc, s, scan_page, to_doc, Condition, Item,
    JobCursor, Pages, Table,
};
use crate::dynamo_conversations::conversation_pk;
use async_trait::async_trait;
use aws_config::SdkConfig;
use omniline_domain::delivery::Delivery;
use omniline_ports::{DeliveryStore, PortError, PurgePage};
use std::collections::HashMap;

const DELIVERY: &str = "DELIVERY";
const INDEX_PREFIX: &str = "D#";

/// [`DeliveryStore`] on DynamoDB; see the module documentation for the item layout.
#[derive(Debug, Clone)]
pub struct DynamoDeliveryStore {
    table: Table,
}

fn delivery_pk(id: &str) -> String {
    format!("{DELIVERY}#{id}")
}

/// Zero-padded so that string order is creation order (non-negative epoch ms); ties are ordered
/// by delivery id.
fn index_sk(created_at: i64, id: &str) -> String {
    format!("{INDEX_PREFIX}{created_at:020}#{id}")
}

fn get_i64(item: &Item, name: &str) -> Result<i64, PortError> {
    number(item, name)
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without integer {name}")))
}

impl DynamoDeliveryStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
        }
    }

    /// A strongly consistent GetItem of the delivery item.
    async fn get(&self, id: &str) -> Result<Option<Item>, PortError> {
        self.table
            .get_consistent(key(delivery_pk(id), DELIVERY))
            .await
    }

    /// The delivery item and its conversation index item.
    fn begin_items(&self, d: &Delivery) -> Result<(Item, Item), PortError> {
        let mut main = key(delivery_pk(&d.id), DELIVERY);
        main.insert("doc".to_owned(), to_doc(d, "delivery")?);
        main.insert("version".to_owned(), n(d.version));
        main.insert("conversationId".to_owned(), s(&d.conversation_id));
        main.insert("createdAt".to_owned(), n(d.created_at));
        main.insert("accountId".to_owned(), s(&d.account_id));
        let mut index = key(
            conversation_pk(&d.conversation_id),
            index_sk(d.created_at, &d.id),
        );
        index.insert("deliveryId".to_owned(), s(&d.id));
        // Both items expire with the record (the retention setting); updates keep it.
        if let Some(at) = d.expires_at {
            main.insert("expiresAt".to_owned(), n(at));
            index.insert("expiresAt".to_owned(), n(at));
        }
        Ok((main, index))
    }

    /// The conversation's index items in sort-key order: (sort key, delivery id).
    async fn index_items(&self, conversation_id: &str) -> Result<Vec<(String, String)>, PortError> {
        let mut ids = Vec::new();
        self.table
            .partition_prefix(conversation_pk(conversation_id), INDEX_PREFIX)
            .scan_index_forward(true)
            .each_item("DynamoDB Query", |item| {
                ids.push((
                    get_s(item, "sk")?.to_owned(),
                    get_s(item, "deliveryId")?.to_owned(),
                ));
                Ok(())
            })
            .await?;
        Ok(ids)
    }

    /// The keys of both items (the conversation index item, then the delivery item) of the
    /// deliveries of the account among one page of a consistent Scan of the table (at most
    /// `page_size` items read from `cursor`), and the cursor of the next page.
    async fn account_keys_page(
        &self,
        account_id: &str,
        cursor: Option<JobCursor>,
        page_size: i32,
    ) -> Result<(Vec<Item>, Vec<Item>, Option<JobCursor>), PortError> {
        let scan = self
            .table
            .scan()
            .filter_expression("accountId = :a AND begins_with(pk, :p)")
            .projection_expression("pk, conversationId, createdAt")
            .expression_attribute_values(":a", s(account_id))
            .expression_attribute_values(":p", s(delivery_pk("")));
        let (items, next) = scan_page(scan, cursor, page_size, "DynamoDB Scan (purge)").await?;
        let mut index_keys = Vec::new();
        let mut delivery_keys = Vec::new();
        for item in &items {
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
        Ok((index_keys, delivery_keys, next))
    }

    /// Every delivery in `ids` that exists, read consistently with `BatchGetItem`, by id.
    async fn batch_get(&self, ids: &[String]) -> Result<HashMap<String, Delivery>, PortError> {
        let keys = ids
            .iter()
            .map(|id| key(delivery_pk(id), DELIVERY))
            .collect();
        self.table
            .batch_get(keys)
            .await?
            .iter()
            .map(|item| parse_doc::<Delivery>(item, "delivery").map(|d| (d.id.clone(), d)))
            .collect()
    }
}

#[async_trait]
impl DeliveryStore for DynamoDeliveryStore {
    async fn begin(&self, delivery: &Delivery) -> Result<Delivery, PortError> {
        let (main, index) = self.begin_items(delivery)?;
        if self
            .table
            .put_if(main, Condition::new("attribute_not_exists(pk)"))
            .await?
        {
            self.table.put(index).await?;
            return Ok(delivery.clone());
        }
        let Some(item) = self.get(&delivery.id).await? else {
            return Err(PortError::Unavailable(format!(
                "delivery {} exists by its condition but cannot be read",
                delivery.id
            )));
        };
        let stored: Delivery = parse_doc(&item, "delivery")?;
        // The attempt that wrote it may have died before its index item: written again, from
        // the stored delivery (its creation time is the key's), so always the same item.
        let (_, index) = self.begin_items(&stored)?;
        self.table.put(index).await?;
        Ok(stored)
    }

    async fn update(&self, delivery: &Delivery) -> Result<bool, PortError> {
        let Some(previous) = delivery.version.checked_sub(1) else {
            return Ok(false);
        };
        let result = self
            .table
            .update_item()
            .set_key(Some(key(delivery_pk(&delivery.id), DELIVERY)))
            .update_expression("SET #doc = :doc, #version = :version")
            .condition_expression("#version = :previous")
            .expression_attribute_names("#doc", "doc")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":doc", to_doc(delivery, "delivery")?)
            .expression_attribute_values(":version", n(delivery.version))
            .expression_attribute_values(":previous", n(previous))
            .send()
            .await;
        // `false`: changed meanwhile, or missing (no version attribute to match).
        condition_held(result, "DynamoDB UpdateItem")
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, PortError> {
        self.get(id)
            .await?
            .map(|item| parse_doc(&item, "delivery"))
            .transpose()
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
        self.table
            .batch_delete(
                keys,
                &format!("conversation {conversation_id}'s deliveries"),
            )
            .await?;
        Ok(index.len() as u64)
    }

    async fn purge_account_page(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<PurgePage<u64>, PortError> {
        let cursor = cursor.map(JobCursor::decode).transpose()?;
        let page_size = i32::try_from(page_size).unwrap_or(i32::MAX);
        let (index_keys, delivery_keys, next) = self
            .account_keys_page(account_id, cursor, page_size)
            .await?;
        let count = delivery_keys.len() as u64;
        // Every index item first, the deliveries only then (no batch mixes the two): a page run
        // again finds what is left through the Scan, which sees delivery items.
        let what = format!("account {account_id}'s deliveries");
        self.table.batch_delete(index_keys, &what).await?;
        self.table.batch_delete(delivery_keys, &what).await?;
        Ok(PurgePage {
            erased: count,
            next: next.map(|c| c.encode()).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
