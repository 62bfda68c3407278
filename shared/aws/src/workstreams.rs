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

use crate::{
    aws_error, backoff, batch_get_items, build_error, condition_held, get_item_consistent, key, n,
    s, Item, ATTEMPTS,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use omniline_domain::workstream::Workstream;
use omniline_ports::{PortError, WorkstreamStore};
use std::collections::{BTreeSet, HashMap};

// ---------------------------------------------------------------------------------------------
// DynamoDB

const WORKSTREAM_SK: &str = "WORKSTREAM";
const POINTERS_PK: &str = "WORKSTREAMS";

fn account_pk(account_id: &str) -> String {
    format!("ACCOUNT#{account_id}")
}

fn workstream_key(account_id: &str) -> Item {
    key(account_pk(account_id), WORKSTREAM_SK)
}

fn pointer_key(id: &str) -> Item {
    key(POINTERS_PK.to_owned(), id)
}

fn workstream_item(workstream: &Workstream) -> Result<Item, PortError> {
    let mut item = workstream_key(&workstream.account_id);
    item.insert("id".to_owned(), s(workstream.id.as_str()));
    item.insert("version".to_owned(), n(workstream.version));
    item.insert("doc".to_owned(), s(workstream.to_stored()?));
    Ok(item)
}

fn pointer_item(workstream: &Workstream) -> Item {
    let mut item = pointer_key(&workstream.id);
    item.insert("accountId".to_owned(), s(workstream.account_id.as_str()));
    item
}

fn string_attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The id of a workstream item.
fn item_id(item: &Item) -> Result<&str, PortError> {
    string_attr(item, "id")
        .ok_or_else(|| PortError::Unavailable("DynamoDB workstream item without an id".into()))
}

fn workstream_from_item(item: &Item) -> Result<Workstream, PortError> {
    string_attr(item, "doc")
        .ok_or_else(|| PortError::Unavailable("DynamoDB workstream item without a doc".into()))
        .and_then(Workstream::from_stored)
}

/// How a `TransactWriteItems` ended.
enum Outcome {
    Done,
    /// Cancelled by conditions: which operations (in request order) failed theirs.
    Condition(Vec<bool>),
    /// Cancelled by a concurrent transaction on the same items: try again.
    Raced,
}

impl Outcome {
    fn failed(&self, index: usize) -> bool {
        matches!(self, Outcome::Condition(failed) if failed.get(index).copied().unwrap_or(false))
    }
}

/// One operation of a transaction: its condition, with the names and values it uses.
struct Condition<'a> {
    expression: &'a str,
    names: &'a [(&'a str, &'a str)],
    values: Vec<(&'a str, AttributeValue)>,
}

impl<'a> Condition<'a> {
    fn new(expression: &'a str) -> Self {
        Self {
            expression,
            names: &[],
            values: Vec::new(),
        }
    }

    fn names(mut self, names: &'a [(&'a str, &'a str)]) -> Self {
        self.names = names;
        self
    }

    fn value(mut self, name: &'a str, value: AttributeValue) -> Self {
        self.values.push((name, value));
        self
    }
}

/// `attribute_not_exists(pk)`, the condition of a create.
const ABSENT: &str = "attribute_not_exists(pk)";
/// A pointer that is absent or points at `:account`.
const POINTER_FREE_OR_OURS: &str = "attribute_not_exists(pk) OR #accountId = :account";
const ACCOUNT_ID: &[(&str, &str)] = &[("#accountId", "accountId")];
const ID: &[(&str, &str)] = &[("#id", "id")];

/// [`WorkstreamStore`] in the DynamoDB config table; see the module documentation for the layout.
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

    fn put(
        &self,
        item: Item,
        condition: Option<Condition<'_>>,
    ) -> Result<TransactWriteItem, PortError> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(c) = condition {
            put = put.condition_expression(c.expression);
            for (placeholder, name) in c.names {
                put = put.expression_attribute_names(*placeholder, *name);
            }
            for (placeholder, value) in c.values {
                put = put.expression_attribute_values(placeholder, value);
            }
        }
        Ok(TransactWriteItem::builder()
            .put(put.build().map_err(build_error)?)
            .build())
    }

    fn delete(
        &self,
        key: Item,
        condition: Option<Condition<'_>>,
    ) -> Result<TransactWriteItem, PortError> {
        let mut delete = Delete::builder().table_name(&self.table).set_key(Some(key));
        if let Some(c) = condition {
            delete = delete.condition_expression(c.expression);
            for (placeholder, name) in c.names {
                delete = delete.expression_attribute_names(*placeholder, *name);
            }
            for (placeholder, value) in c.values {
                delete = delete.expression_attribute_values(placeholder, value);
            }
        }
        Ok(TransactWriteItem::builder()
            .delete(delete.build().map_err(build_error)?)
            .build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Outcome, PortError> {
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(Outcome::Done),
            Err(err) => err,
        };
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                c.cancellation_reasons()
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                return Ok(Outcome::Raced)
            }
            _ => return Err(aws_error("DynamoDB TransactWriteItems", err)),
        };
        let mut failed = Vec::with_capacity(reasons.len());
        for reason in reasons {
            match reason.code().unwrap_or("None") {
                "None" | "TransactionConflict" => failed.push(false),
                "ConditionalCheckFailed" => failed.push(true),
                other => {
                    return Err(PortError::Unavailable(format!(
                        "DynamoDB TransactWriteItems cancelled: {other} {}",
                        reason.message().unwrap_or_default()
                    )))
                }
            }
        }
        Ok(if failed.contains(&true) {
            Outcome::Condition(failed)
        } else {
            Outcome::Raced
        })
    }

    /// The account's workstream item, read consistently.
    async fn account_item(&self, account_id: &str) -> Result<Option<Item>, PortError> {
        get_item_consistent(&self.client, &self.table, workstream_key(account_id)).await
    }

    /// The account a workstream id points at, read consistently.
    async fn pointer_account(&self, id: &str) -> Result<Option<String>, PortError> {
        let item = get_item_consistent(&self.client, &self.table, pointer_key(id)).await?;
        item.map(|item| {
            string_attr(&item, "accountId")
                .map(str::to_owned)
                .ok_or_else(|| {
                    PortError::Unavailable(
                        "DynamoDB workstream pointer without an accountId".into(),
                    )
                })
        })
        .transpose()
    }

    /// The id of the account's workstream, if it has one.
    async fn account_workstream_id(&self, account_id: &str) -> Result<Option<String>, PortError> {
        self.account_item(account_id)
            .await?
            .as_ref()
            .map(|item| item_id(item).map(str::to_owned))
            .transpose()
    }

    /// Removes a pointer that still points at `account_id`.
    async fn delete_pointer_of(&self, id: &str, account_id: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(pointer_key(id)))
            .condition_expression("#accountId = :account")
            .expression_attribute_names("#accountId", "accountId")
            .expression_attribute_values(":account", s(account_id))
            .send()
            .await;
        condition_held(result, "DynamoDB DeleteItem").map(drop)
    }

    fn gave_up(id: &str, what: &str) -> PortError {
        PortError::Unavailable(format!(
            "workstream {id}: {what} kept conflicting with concurrent writes"
        ))
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
            .set_key(Some(workstream_key(account_id)))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB GetItem", e))?;
        output.item().map(workstream_from_item).transpose()
    }

    async fn put_workstream(&self, workstream: &Workstream) -> Result<(), PortError> {
        let account = s(workstream.account_id.as_str());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            // What we replace must still be there when the transaction runs.
            let old_id = self.account_workstream_id(&workstream.account_id).await?;
            let replace = match &old_id {
                None => Condition::new(ABSENT),
                Some(old) => Condition::new("#id = :old")
                    .names(ID)
                    .value(":old", s(old.as_str())),
            };
            let mut items = vec![
                self.put(workstream_item(workstream)?, Some(replace))?,
                self.put(
                    pointer_item(workstream),
                    Some(
                        Condition::new(POINTER_FREE_OR_OURS)
                            .names(ACCOUNT_ID)
                            .value(":account", account.clone()),
                    ),
                )?,
            ];
            if let Some(old) = old_id.as_deref().filter(|old| *old != workstream.id) {
                // The account's workstream changes id: its old pointer goes.
                items.push(self.delete(pointer_key(old), None)?);
            }
            let outcome = self.transact(items).await?;
            if outcome.failed(1) {
                // Another account's workstream has this id.
                return Err(PortError::Conflict(workstream.id.clone()));
            }
            if matches!(outcome, Outcome::Done) {
                return Ok(());
            }
            // Raced with another write of the account's workstream: read again.
        }
        Err(Self::gave_up(&workstream.id, "put_workstream"))
    }

    async fn workstream(&self, id: &str) -> Result<Option<Workstream>, PortError> {
        let Some(account_id) = self.pointer_account(id).await? else {
            return Ok(None);
        };
        let Some(item) = self.account_item(&account_id).await? else {
            return Ok(None);
        };
        if item_id(&item)? != id {
            // A pointer left behind; the account's workstream is another one now.
            return Ok(None);
        }
        workstream_from_item(&item).map(Some)
    }

    async fn list_workstreams(&self) -> Result<Vec<Workstream>, PortError> {
        let mut pointers: HashMap<String, String> = HashMap::new();
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(POINTERS_PK))
            .consistent_read(true)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Query", e))?;
            for item in page.items() {
                let (Some(id), Some(account_id)) =
                    (string_attr(item, "sk"), string_attr(item, "accountId"))
                else {
                    return Err(PortError::Unavailable(
                        "DynamoDB workstream pointer without an id or accountId".into(),
                    ));
                };
                pointers.insert(id.to_owned(), account_id.to_owned());
            }
        }
        let accounts: BTreeSet<&str> = pointers.values().map(String::as_str).collect();
        let keys = accounts.into_iter().map(workstream_key).collect();
        let mut workstreams = Vec::with_capacity(pointers.len());
        for item in batch_get_items(&self.client, &self.table, keys).await? {
            let workstream = workstream_from_item(&item)?;
            // Only workstreams their pointer agrees with (a pointer left behind is skipped).
            if pointers.get(&workstream.id) == Some(&workstream.account_id) {
                workstreams.push(workstream);
            }
        }
        workstreams.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workstreams)
    }

    async fn save_workstream(
        &self,
        workstream: &Workstream,
        expected_version: Option<u64>,
    ) -> Result<bool, PortError> {
        let account = s(workstream.account_id.as_str());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let items = match expected_version {
                None => vec![
                    self.put(workstream_item(workstream)?, Some(Condition::new(ABSENT)))?,
                    self.put(pointer_item(workstream), Some(Condition::new(ABSENT)))?,
                ],
                Some(version) => vec![
                    self.put(
                        workstream_item(workstream)?,
                        Some(
                            Condition::new("#version = :v AND #id = :id")
                                .names(&[("#version", "version"), ("#id", "id")])
                                .value(":v", n(version))
                                .value(":id", s(workstream.id.as_str())),
                        ),
                    )?,
                    self.put(
                        pointer_item(workstream),
                        Some(
                            Condition::new(POINTER_FREE_OR_OURS)
                                .names(ACCOUNT_ID)
                                .value(":account", account.clone()),
                        ),
                    )?,
                ],
            };
            let outcome = self.transact(items).await?;
            match (outcome, expected_version) {
                (Outcome::Done, _) => return Ok(true),
                (Outcome::Raced, _) => {}
                (Outcome::Condition(_), Some(_)) => return Ok(false),
                (outcome @ Outcome::Condition(_), None) => {
                    if outcome.failed(0) {
                        // The account has a workstream: name it (unless it vanished meanwhile,
                        // then try again).
                        if let Some(existing) =
                            self.account_workstream_id(&workstream.account_id).await?
                        {
                            return Err(PortError::Conflict(existing));
                        }
                    } else {
                        // The id is taken (by another account's workstream).
                        return Err(PortError::Conflict(workstream.id.clone()));
                    }
                }
            }
        }
        Err(Self::gave_up(&workstream.id, "save_workstream"))
    }

    async fn delete_workstream(&self, id: &str) -> Result<bool, PortError> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                backoff(attempt).await;
            }
            let Some(account_id) = self.pointer_account(id).await? else {
                return Ok(false);
            };
            let items = vec![
                self.delete(
                    workstream_key(&account_id),
                    Some(Condition::new("#id = :id").names(ID).value(":id", s(id))),
                )?,
                self.delete(
                    pointer_key(id),
                    Some(
                        Condition::new("#accountId = :account")
                            .names(ACCOUNT_ID)
                            .value(":account", s(account_id.as_str())),
                    ),
                )?,
            ];
            match self.transact(items).await? {
                Outcome::Done => return Ok(true),
                Outcome::Raced => {}
                Outcome::Condition(_) => {
                    // Changed since the pointer was read. A pointer whose account no longer has
                    // this workstream is left over: drop it, then look again.
                    if self.account_workstream_id(&account_id).await?.as_deref() != Some(id) {
                        self.delete_pointer_of(id, &account_id).await?;
                    }
                }
            }
        }
        Err(Self::gave_up(id, "delete_workstream"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn workstream(id: &str, account_id: &str, version: u64) -> Workstream {
        serde_json::from_value(json!({
            "id": id, "accountId": account_id, "name": format!("Support {id}"), "language": "en",
            "distribution": "push", "defaultQueue": "q-general", "timezone": "Asia/Tokyo",
            "version": version
        }))
        .unwrap()
    }

    #[test]
    fn dynamo_items_hold_the_layout() {
        let ws = workstream("ws-1", "acc-1", 4);
        let item = workstream_item(&ws).unwrap();
        assert_eq!(item["pk"].as_s().unwrap(), "ACCOUNT#acc-1");
        assert_eq!(item["sk"].as_s().unwrap(), "WORKSTREAM");
        assert_eq!(item_id(&item).unwrap(), "ws-1");
        assert_eq!(item["version"].as_n().unwrap(), "4");
        assert_eq!(workstream_from_item(&item).unwrap(), ws);
        let pointer = pointer_item(&ws);
        assert_eq!(pointer["pk"].as_s().unwrap(), "WORKSTREAMS");
        assert_eq!(pointer["sk"].as_s().unwrap(), "ws-1");
        assert_eq!(pointer["accountId"].as_s().unwrap(), "acc-1");
    }
}
