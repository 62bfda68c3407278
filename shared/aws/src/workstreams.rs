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

use crate::dynamo::{
    attempts, key, n, s, string, transact_delete, transact_put, Condition, Item, Outcome, Pages,
    Table,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
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

/// The id of a workstream item.
fn item_id(item: &Item) -> Result<&str, PortError> {
    string(item, "id")
        .ok_or_else(|| PortError::Unavailable("DynamoDB workstream item without an id".into()))
}

fn workstream_from_item(item: &Item) -> Result<Workstream, PortError> {
    string(item, "doc")
        .ok_or_else(|| PortError::Unavailable("DynamoDB workstream item without a doc".into()))
        .and_then(Workstream::from_stored)
}

/// `attribute_not_exists(pk)`, the condition of a create.
fn absent() -> Condition {
    Condition::new("attribute_not_exists(pk)")
}

/// A pointer that is absent or points at `account_id`.
fn pointer_free_or_ours(account_id: &str) -> Condition {
    Condition::new("attribute_not_exists(pk) OR #accountId = :account")
        .name("#accountId", "accountId")
        .value(":account", s(account_id))
}

/// A pointer that points at `account_id`.
fn pointer_ours(account_id: &str) -> Condition {
    Condition::new("#accountId = :account")
        .name("#accountId", "accountId")
        .value(":account", s(account_id))
}

/// [`WorkstreamStore`] in the DynamoDB config table; see the module documentation for the layout.
#[derive(Debug, Clone)]
pub struct DynamoWorkstreamStore {
    table: Table,
}

impl DynamoWorkstreamStore {
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
        }
    }

    fn put(&self, item: Item, condition: Condition) -> Result<TransactWriteItem, PortError> {
        transact_put(&self.table.name, item, condition)
    }

    fn delete(
        &self,
        key: Item,
        condition: Option<Condition>,
    ) -> Result<TransactWriteItem, PortError> {
        transact_delete(&self.table.name, key, condition)
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Outcome, PortError> {
        self.table.transact(items).await?.outcome()
    }

    /// The account's workstream item, read consistently.
    async fn account_item(&self, account_id: &str) -> Result<Option<Item>, PortError> {
        self.table.get_consistent(workstream_key(account_id)).await
    }

    /// The account a workstream id points at, read consistently.
    async fn pointer_account(&self, id: &str) -> Result<Option<String>, PortError> {
        let item = self.table.get_consistent(pointer_key(id)).await?;
        item.map(|item| {
            string(&item, "accountId")
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
        self.table
            .delete_if(pointer_key(id), pointer_ours(account_id))
            .await
            .map(drop)
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
        self.table
            .get(workstream_key(account_id))
            .await?
            .as_ref()
            .map(workstream_from_item)
            .transpose()
    }

    async fn put_workstream(&self, workstream: &Workstream) -> Result<(), PortError> {
        for pause in attempts() {
            pause.await;
            // What we replace must still be there when the transaction runs.
            let old_id = self.account_workstream_id(&workstream.account_id).await?;
            let replace = match &old_id {
                None => absent(),
                Some(old) => Condition::new("#id = :old")
                    .name("#id", "id")
                    .value(":old", s(old.as_str())),
            };
            let mut items = vec![
                self.put(workstream_item(workstream)?, replace)?,
                self.put(
                    pointer_item(workstream),
                    pointer_free_or_ours(&workstream.account_id),
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
        self.table
            .partition(POINTERS_PK.to_owned())
            .each_item("DynamoDB Query", |item| {
                let (Some(id), Some(account_id)) = (string(item, "sk"), string(item, "accountId"))
                else {
                    return Err(PortError::Unavailable(
                        "DynamoDB workstream pointer without an id or accountId".into(),
                    ));
                };
                pointers.insert(id.to_owned(), account_id.to_owned());
                Ok(())
            })
            .await?;
        let accounts: BTreeSet<&str> = pointers.values().map(String::as_str).collect();
        let keys = accounts.into_iter().map(workstream_key).collect();
        let mut workstreams = Vec::with_capacity(pointers.len());
        for item in self.table.batch_get(keys).await? {
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
        for pause in attempts() {
            pause.await;
            let items = match expected_version {
                None => vec![
                    self.put(workstream_item(workstream)?, absent())?,
                    self.put(pointer_item(workstream), absent())?,
                ],
                Some(version) => vec![
                    self.put(
                        workstream_item(workstream)?,
                        Condition::new("#version = :v AND #id = :id")
                            .name("#version", "version")
                            .name("#id", "id")
                            .value(":v", n(version))
                            .value(":id", s(workstream.id.as_str())),
                    )?,
                    self.put(
                        pointer_item(workstream),
                        pointer_free_or_ours(&workstream.account_id),
                    )?,
                ],
            };
            let outcome = self.transact(items).await?;
            match (outcome, expected_version) {
                (Outcome::Done, _) => return Ok(true),
                (Outcome::Raced, _) => {}
                (Outcome::Failed(_), Some(_)) => return Ok(false),
                (outcome @ Outcome::Failed(_), None) => {
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
        for pause in attempts() {
            pause.await;
            let Some(account_id) = self.pointer_account(id).await? else {
                return Ok(false);
            };
            let items = vec![
                self.delete(
                    workstream_key(&account_id),
                    Some(
                        Condition::new("#id = :id")
                            .name("#id", "id")
                            .value(":id", s(id)),
                    ),
                )?,
                self.delete(pointer_key(id), Some(pointer_ours(&account_id)))?,
            ];
            match self.transact(items).await? {
                Outcome::Done => return Ok(true),
                Outcome::Raced => {}
                Outcome::Failed(_) => {
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
