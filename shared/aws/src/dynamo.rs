//! The DynamoDB plumbing every DynamoDB adapter shares, written once: items and their
//! attributes, a [`Table`] handle with the requests the stores make (reads, conditional writes,
//! paginated queries and scans, batches whose unprocessed part is retried), the operations of a
//! `TransactWriteItems` and how its cancellation reasons read, and the retries of a write that
//! lost a race ([`attempts`]).

use crate::{aws_error, except_code};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::builders::{
    ConditionCheckBuilder, DeleteBuilder, PutBuilder, UpdateBuilder,
};
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes,
    Put, PutRequest, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use omniline_domain::retry::Backoff;
use omniline_ports::PortError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

// ---------------------------------------------------------------------------------------------
// Items and attributes

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The key of a `pk`/`sk` table item.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// A DynamoDB string.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A DynamoDB number.
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The string attribute `name` of `item`, if it is one.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The string attribute `name` of `item`, or an error naming it.
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, PortError> {
    string(item, name)
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without string {name}")))
}

/// The number attribute `name` of `item`, if it is one that parses as a `T`.
pub(crate) fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The `(pk, sk)` of an item (empty strings where missing), for deduplicating keys.
pub(crate) fn key_pair(item: &Item) -> (String, String) {
    let text = |name: &str| string(item, name).unwrap_or_default().to_owned();
    (text("pk"), text("sk"))
}

/// The JSON document `doc` of an item, parsed; `what` names it in the error.
pub(crate) fn parse_doc<T: DeserializeOwned>(item: &Item, what: &str) -> Result<T, PortError> {
    let doc = get_s(item, "doc")?;
    serde_json::from_str(doc)
        .map_err(|e| PortError::Unavailable(format!("stored {what} does not parse: {e}")))
}

/// `value` as a JSON document attribute; `what` names it in the error.
pub(crate) fn to_doc<T: Serialize>(value: &T, what: &str) -> Result<AttributeValue, PortError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| PortError::Unavailable(format!("{what} does not serialize: {e}")))
}

/// A request the SDK's builder refused (a required field unset).
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    aws_error("DynamoDB request", e)
}

// ---------------------------------------------------------------------------------------------
// Retries

/// Attempts of an optimistic write (or of unprocessed batch keys) before giving up.
pub(crate) const ATTEMPTS: u32 = 8;

/// How a write that lost a race (or left unprocessed keys) is retried: 10 ms, 20 ms … 80 ms.
const WRITE_RETRY: Backoff = Backoff::exponential(
    std::time::Duration::from_millis(10),
    std::time::Duration::from_millis(80),
);

/// The [`ATTEMPTS`] attempts of a write that may lose a race (or leave work undone), as the
/// pauses to await before each: none before the first, then [`WRITE_RETRY`]'s.
///
/// `for pause in attempts() { pause.await; … }`, and after the loop, give up.
pub(crate) fn attempts() -> impl Iterator<Item = impl std::future::Future<Output = ()> + Send> {
    (0..ATTEMPTS).map(|attempt| async move {
        if attempt > 0 {
            tokio::time::sleep(WRITE_RETRY.delay(attempt)).await;
        }
    })
}

/// The outcome of a conditional DynamoDB write: `true` written, `false` when its condition did
/// not hold (`ConditionalCheckFailedException`), any other failure an error naming `what`.
pub(crate) fn condition_held<O, E, R>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
    what: &str,
) -> Result<bool, PortError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    except_code(result, "ConditionalCheckFailedException", what).map(|output| output.is_some())
}

// ---------------------------------------------------------------------------------------------
// Conditions

/// The condition of a write, with the attribute names and values it uses (and, for an update,
/// those of its update expression too).
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    expression: &'static str,
    names: Vec<(&'static str, &'static str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

impl Condition {
    pub(crate) fn new(expression: &'static str) -> Self {
        Self {
            expression,
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Attribute `name` as `placeholder` (`#…`).
    pub(crate) fn name(mut self, placeholder: &'static str, name: &'static str) -> Self {
        self.names.push((placeholder, name));
        self
    }

    /// `value` as `placeholder` (`:…`).
    pub(crate) fn value(mut self, placeholder: &'static str, value: AttributeValue) -> Self {
        self.values.push((placeholder, value));
        self
    }
}

/// A request (or transaction operation) builder that takes a [`Condition`].
pub(crate) trait Conditional: Sized {
    /// The builder with `condition`'s expression, names and values (added to any it has).
    fn when(self, condition: Condition) -> Self;

    /// [`Conditional::when`], if there is a condition.
    fn when_some(self, condition: Option<Condition>) -> Self {
        match condition {
            Some(condition) => self.when(condition),
            None => self,
        }
    }
}

/// The SDK's builders share these methods without a trait: one implementation for all of them.
macro_rules! conditional {
    ($($builder:ty),* $(,)?) => {$(
        impl Conditional for $builder {
            fn when(self, condition: Condition) -> Self {
                let mut builder = self.condition_expression(condition.expression);
                for (placeholder, name) in condition.names {
                    builder = builder.expression_attribute_names(placeholder, name);
                }
                for (placeholder, value) in condition.values {
                    builder = builder.expression_attribute_values(placeholder, value);
                }
                builder
            }
        }
    )*};
}

conditional!(
    PutBuilder,
    DeleteBuilder,
    ConditionCheckBuilder,
    UpdateBuilder,
    PutItemFluentBuilder,
    DeleteItemFluentBuilder,
    UpdateItemFluentBuilder,
);

// ---------------------------------------------------------------------------------------------
// Queries and scans

/// A Query or a Scan, read page by page with the SDK's paginator.
pub(crate) trait Pages: Sized {
    /// Calls `page` with the items of each page, in order; the first error stops the reading
    /// (`what` names the request in a DynamoDB error).
    async fn each_page(
        self,
        what: &str,
        page: impl FnMut(&[Item]) -> Result<(), PortError>,
    ) -> Result<(), PortError>;

    /// Calls `item` with each item, in order; the first error stops the reading.
    async fn each_item(
        self,
        what: &str,
        mut item: impl FnMut(&Item) -> Result<(), PortError>,
    ) -> Result<(), PortError> {
        self.each_page(what, |items| items.iter().try_for_each(&mut item))
            .await
    }

    /// Every item, in order.
    async fn items(self, what: &str) -> Result<Vec<Item>, PortError> {
        let mut all = Vec::new();
        self.each_page(what, |items| {
            all.extend_from_slice(items);
            Ok(())
        })
        .await?;
        Ok(all)
    }
}

/// Query and Scan have paginators of the same shape but no common trait.
macro_rules! pages {
    ($($builder:ty),* $(,)?) => {$(
        impl Pages for $builder {
            async fn each_page(
                self,
                what: &str,
                mut page: impl FnMut(&[Item]) -> Result<(), PortError>,
            ) -> Result<(), PortError> {
                let mut pages = self.into_paginator().send();
                while let Some(output) = pages.next().await {
                    page(output.map_err(|e| aws_error(what, e))?.items())?;
                }
                Ok(())
            }
        }
    )*};
}

pages!(QueryFluentBuilder, ScanFluentBuilder);

/// Items a Query returns, in its order, at most `max` of them: page by page (`ExclusiveStartKey`),
/// each page asking for no more than are still wanted, so that the read units follow `max`, not
/// the partition. `what` names the request in a DynamoDB error.
pub(crate) async fn first_items(
    query: QueryFluentBuilder,
    max: usize,
    what: &str,
) -> Result<Vec<Item>, PortError> {
    /// DynamoDB pages hold at most 1 MB anyway; a page size keeps `Limit` within `i32`.
    const PAGE: usize = 1_000;
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    while items.len() < max {
        let wanted = (max - items.len()).min(PAGE);
        let output = query
            .clone()
            .limit(wanted as i32)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| aws_error(what, e))?;
        items.extend(output.items().iter().take(wanted).cloned());
        match output.last_evaluated_key() {
            Some(next) if !next.is_empty() => start = Some(next.clone()),
            _ => break,
        }
    }
    Ok(items)
}

/// Where a paged background job (a Scan) goes on: the `LastEvaluatedKey` of the page before,
/// opaque to callers.
#[derive(Debug, Clone, PartialEq)]
pub struct JobCursor(pub(crate) Item);

impl JobCursor {
    /// The cursor as text, for a job that stores it (a purge job's document): the key's string
    /// attributes as a JSON object. A table's `LastEvaluatedKey` is its `pk`/`sk` strings.
    pub fn encode(&self) -> Result<String, PortError> {
        let mut parts = serde_json::Map::new();
        for (name, value) in &self.0 {
            let text = value.as_s().map_err(|_| {
                PortError::Unavailable(format!("job cursor attribute {name} is not a string"))
            })?;
            parts.insert(name.clone(), serde_json::Value::String(text.clone()));
        }
        Ok(serde_json::Value::Object(parts).to_string())
    }

    /// A cursor [`JobCursor::encode`] wrote; anything else is an error (a stored job whose
    /// cursor does not parse).
    pub fn decode(text: &str) -> Result<Self, PortError> {
        let malformed = || PortError::Unavailable("malformed job cursor".into());
        let parts: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|_| malformed())?;
        if parts.is_empty() {
            return Err(malformed());
        }
        parts
            .into_iter()
            .map(|(name, value)| match value {
                serde_json::Value::String(v) => Ok((name, s(v))),
                _ => Err(malformed()),
            })
            .collect::<Result<Item, _>>()
            .map(JobCursor)
    }
}

/// One page of a paged background job: how many items it read and changed, and where the next
/// page starts (`None`: the job is done).
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub scanned: usize,
    pub updated: usize,
    pub next: Option<JobCursor>,
}

/// Runs a paged background job from the start to its end, `page` after `page` from each
/// returned cursor; the sum of the pages' `updated`.
pub(crate) async fn run_to_end<F, Fut>(mut page: F) -> Result<usize, PortError>
where
    F: FnMut(Option<JobCursor>) -> Fut,
    Fut: std::future::Future<Output = Result<JobPage, PortError>>,
{
    let (mut cursor, mut updated) = (None, 0);
    loop {
        let done = page(cursor).await?;
        updated += done.updated;
        match done.next {
            Some(next) => cursor = Some(next),
            None => return Ok(updated),
        }
    }
}

/// One page of a Scan (consistent, at most `page_size` items read) from `cursor`: its items and
/// the cursor of the next page.
pub(crate) async fn scan_page(
    scan: ScanFluentBuilder,
    cursor: Option<JobCursor>,
    page_size: i32,
    what: &str,
) -> Result<(Vec<Item>, Option<JobCursor>), PortError> {
    let output = scan
        .consistent_read(true)
        .limit(page_size.max(1))
        .set_exclusive_start_key(cursor.map(|c| c.0))
        .send()
        .await
        .map_err(|e| aws_error(what, e))?;
    let next = output
        .last_evaluated_key()
        .filter(|k| !k.is_empty())
        .map(|k| JobCursor(k.clone()));
    Ok((output.items().to_vec(), next))
}

// ---------------------------------------------------------------------------------------------
// Transactions

/// The operations of a transaction (`Put`, `Delete`, `ConditionCheck`, `Update`) are built alike:
/// one constructor for each, from one body.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($target:ident $(, $extra:ident: $extra_type:ty => $set_extra:ident)?)
            = $operation:ident::$set_target:ident => $variant:ident;
    )*) => {$(
        $(#[$doc])*
        pub(crate) fn $name(
            table: &str,
            $target: Item,
            $($extra: $extra_type,)?
            condition: impl Into<Option<Condition>>,
        ) -> Result<TransactWriteItem, PortError> {
            let operation = $operation::builder()
                .table_name(table)
                .$set_target(Some($target))
                $(.$set_extra($extra))?
                .when_some(condition.into())
                .build()
                .map_err(build_error)?;
            Ok(TransactWriteItem::builder().$variant(operation).build())
        }
    )*};
}

operations! {
    /// A `Put` of `item` in a transaction, if `condition` holds.
    fn transact_put(item) = Put::set_item => put;
    /// A `Delete` of the item of `key` in a transaction, if `condition` holds.
    fn transact_delete(key) = Delete::set_key => delete;
    /// A `ConditionCheck` of the item of `key` in a transaction.
    fn transact_check(key) = ConditionCheck::set_key => condition_check;
    /// An `Update` of the item of `key` in a transaction: `expression`, if `condition` holds
    /// (whose names and values include the update expression's).
    fn transact_update(key, expression: &str => update_expression)
        = Update::set_key => update;
}

/// How a `TransactWriteItems` ended, when it did not fail otherwise.
pub(crate) enum Transaction {
    Committed,
    Cancelled(Cancellation),
    /// Refused because another transaction on the same items was in progress
    /// (`TransactionInProgressException`): the error, for a caller that does not retry it.
    InProgress(PortError),
}

/// Why DynamoDB cancelled one operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    /// Not this one (`None`).
    None,
    /// Its condition did not hold (`ConditionalCheckFailed`).
    ConditionFailed,
    /// A concurrent write of the same item (`TransactionConflict`).
    Conflict,
    /// Anything else (throttling, validation, …): the error it makes.
    Other(String),
}

/// The cancellation reasons of a transaction, one per operation in request order (none when
/// DynamoDB gave none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cancellation(Vec<Reason>);

impl Cancellation {
    pub(crate) fn new(reasons: &[CancellationReason]) -> Self {
        Self(
            reasons
                .iter()
                .map(|reason| match reason.code().unwrap_or("None") {
                    "None" => Reason::None,
                    "ConditionalCheckFailed" => Reason::ConditionFailed,
                    "TransactionConflict" => Reason::Conflict,
                    other => Reason::Other(format!(
                        "DynamoDB TransactWriteItems cancelled: {other} {}",
                        reason.message().unwrap_or_default()
                    )),
                })
                .collect(),
        )
    }

    /// DynamoDB gave no reasons.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether operation `index` failed its condition.
    pub(crate) fn failed(&self, index: usize) -> bool {
        self.0.get(index) == Some(&Reason::ConditionFailed)
    }

    /// Whether any operation failed its condition.
    pub(crate) fn any_failed(&self) -> bool {
        self.0.contains(&Reason::ConditionFailed)
    }

    /// Whether any operation met a concurrent write.
    pub(crate) fn conflicted(&self) -> bool {
        self.0.contains(&Reason::Conflict)
    }

    /// The cancellation of these reason codes, in order (for tests).
    #[cfg(test)]
    pub(crate) fn of_codes(codes: &[&str]) -> Self {
        let reasons: Vec<CancellationReason> = codes
            .iter()
            .map(|code| CancellationReason::builder().code(*code).build())
            .collect();
        Self::new(&reasons)
    }

    /// The error of the first reason that is neither a failed condition nor a conflict.
    pub(crate) fn unexpected(&self) -> Option<&str> {
        self.0.iter().find_map(|reason| match reason {
            Reason::Other(message) => Some(message.as_str()),
            _ => None,
        })
    }

    /// [`Cancellation::unexpected`] as an error.
    pub(crate) fn check(&self) -> Result<(), PortError> {
        match self.unexpected() {
            Some(message) => Err(PortError::Unavailable(message.to_owned())),
            None => Ok(()),
        }
    }
}

/// A transaction as a retry loop of optimistic writes sees it.
pub(crate) enum Outcome {
    Done,
    /// Cancelled by conditions: [`Cancellation::failed`] tells which.
    Failed(Cancellation),
    /// Cancelled by a concurrent transaction on the same items only: try again.
    Raced,
}

impl Outcome {
    /// Whether operation `index` failed its condition.
    pub(crate) fn failed(&self, index: usize) -> bool {
        matches!(self, Outcome::Failed(cancellation) if cancellation.failed(index))
    }
}

impl Transaction {
    /// The [`Outcome`]: a transaction in progress is a race too; a reason other than a failed
    /// condition or a conflict is an error.
    pub(crate) fn outcome(self) -> Result<Outcome, PortError> {
        Ok(match self {
            Transaction::Committed => Outcome::Done,
            Transaction::InProgress(_) => Outcome::Raced,
            Transaction::Cancelled(cancellation) => {
                cancellation.check()?;
                if cancellation.any_failed() {
                    Outcome::Failed(cancellation)
                } else {
                    Outcome::Raced
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The table

/// `BatchGetItem` takes at most 100 keys.
const BATCH_GET: usize = 100;
/// `BatchWriteItem` takes at most 25 requests.
const BATCH_WRITE: usize = 25;

/// One DynamoDB table and the client that reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) name: String,
}

impl Table {
    pub(crate) fn new(config: &SdkConfig, name: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            name: name.into(),
        }
    }

    /// A Query of this table, to be completed.
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// A consistent Query of the items of partition `pk`, to be completed.
    pub(crate) fn partition(&self, pk: String) -> QueryFluentBuilder {
        self.query_key("pk = :pk", pk)
    }

    /// A consistent Query of the items of partition `pk` whose sort key begins with `prefix`, to
    /// be completed.
    pub(crate) fn partition_prefix(&self, pk: String, prefix: &str) -> QueryFluentBuilder {
        self.query_key("pk = :pk AND begins_with(sk, :prefix)", pk)
            .expression_attribute_values(":prefix", s(prefix))
    }

    fn query_key(&self, condition: &str, pk: String) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression(condition)
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(true)
    }

    /// A Scan of this table, to be completed. Cost grows with the table, not with the request:
    /// no request path may use it. Its users are the paged background jobs: the index backfills
    /// (`DynamoConversationStore::backfill_indexes` and
    /// `DynamoAccountStore::backfill_account_index`) and an account's purge (`purge_account_page`
    /// of the conversation and delivery stores, run page by page by the purge job the admin's
    /// disconnection with purge records).
    pub(crate) fn scan(&self) -> ScanFluentBuilder {
        self.client.scan().table_name(&self.name)
    }

    /// An UpdateItem of this table, to be completed.
    pub(crate) fn update_item(&self) -> UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.name)
    }

    /// One item by key, eventually consistent (`None` if absent).
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, PortError> {
        self.get_item(key, false).await
    }

    /// One item by key, read consistently (`None` if absent).
    pub(crate) async fn get_consistent(&self, key: Item) -> Result<Option<Item>, PortError> {
        self.get_item(key, true).await
    }

    async fn get_item(&self, key: Item, consistent: bool) -> Result<Option<Item>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .set_consistent_read(consistent.then_some(true))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB GetItem", e))?;
        Ok(output.item)
    }

    /// Puts `item`, whatever is there.
    pub(crate) async fn put(&self, item: Item) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB PutItem", e))?;
        Ok(())
    }

    /// Puts `item` if `condition` holds; `false` if it does not.
    pub(crate) async fn put_if(&self, item: Item, condition: Condition) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .when(condition)
            .send()
            .await;
        condition_held(result, "DynamoDB PutItem")
    }

    /// Deletes the item of `key` if `condition` holds; `false` if it does not.
    pub(crate) async fn delete_if(
        &self,
        key: Item,
        condition: Condition,
    ) -> Result<bool, PortError> {
        let result = self.delete_item(key).when(condition).send().await;
        condition_held(result, "DynamoDB DeleteItem")
    }

    /// Deletes the item of `key` (a missing one is not an error).
    pub(crate) async fn delete(&self, key: Item) -> Result<(), PortError> {
        self.delete_item(key)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        Ok(())
    }

    /// Deletes the item of `key`; whether there was one (the old item is asked back).
    pub(crate) async fn delete_existing(&self, key: Item) -> Result<bool, PortError> {
        let output = self
            .delete_item(key)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        Ok(output.attributes().is_some_and(|a| !a.is_empty()))
    }

    fn delete_item(&self, key: Item) -> DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(key))
    }

    /// Every item of `keys` that exists, read consistently with `BatchGetItem` (100 keys a call,
    /// unprocessed keys retried: [`attempts`]).
    pub(crate) async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        self.batch_get_items(keys, true).await
    }

    /// [`Table::batch_get`], eventually consistent (half the read units): an item written or
    /// deleted a moment ago may be read as it was.
    pub(crate) async fn batch_get_eventually(
        &self,
        keys: Vec<Item>,
    ) -> Result<Vec<Item>, PortError> {
        self.batch_get_items(keys, false).await
    }

    async fn batch_get_items(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .set_consistent_read(consistent.then_some(true))
                    .build()
                    .map_err(build_error)?,
            );
            for pause in attempts() {
                let Some(keys) = pending.take() else {
                    break;
                };
                pause.await;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, keys)
                    .send()
                    .await
                    .map_err(|e| aws_error("DynamoDB BatchGetItem", e))?;
                if let Some(found) = output.responses().and_then(|r| r.get(&self.name)) {
                    items.extend(found.iter().cloned());
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.name))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
            }
            if pending.is_some() {
                return Err(PortError::Unavailable(
                    "DynamoDB BatchGetItem: keys left unprocessed after retries".into(),
                ));
            }
        }
        Ok(items)
    }

    /// Deletes the items of `keys` (`pk`/`sk` keys) with `BatchWriteItem`, [`BATCH_WRITE`] a
    /// call, unprocessed items retried ([`attempts`]); `what` names them in the error. Repeated keys
    /// are deleted once (a batch refuses duplicates); missing items are not an error.
    pub(crate) async fn batch_delete(
        &self,
        keys: impl IntoIterator<Item = Item>,
        what: &str,
    ) -> Result<(), PortError> {
        let mut seen = HashSet::new();
        let requests = keys
            .into_iter()
            .filter(|k| seen.insert(key_pair(k)))
            .map(|k| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(k))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        self.batch_write(requests, what).await
    }

    /// Puts `items` (unconditionally) with `BatchWriteItem`, as [`Table::batch_delete`] does;
    /// an item repeated by key is put once (the last one).
    pub(crate) async fn batch_put(
        &self,
        items: impl IntoIterator<Item = Item>,
        what: &str,
    ) -> Result<(), PortError> {
        // The last of each key (a batch refuses duplicates), in one pass from the end.
        let mut seen = HashSet::new();
        let mut last: Vec<Item> = items.into_iter().collect();
        last.reverse();
        last.retain(|item| seen.insert(key_pair(item)));
        let requests = last
            .into_iter()
            .rev()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(build_error)?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, PortError>>()?;
        self.batch_write(requests, what).await
    }

    async fn batch_write(&self, requests: Vec<WriteRequest>, what: &str) -> Result<(), PortError> {
        for chunk in requests.chunks(BATCH_WRITE) {
            let mut pending = chunk.to_vec();
            for pause in attempts() {
                if pending.is_empty() {
                    break;
                }
                pause.await;
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| aws_error("DynamoDB BatchWriteItem", e))?;
                pending = output
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.name))
                    .cloned()
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(format!(
                    "{what}: DynamoDB BatchWriteItem left {} items unprocessed after retries",
                    pending.len()
                )));
            }
        }
        Ok(())
    }

    /// Sends one `TransactWriteItems` (its operations name their tables: not only this one).
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transaction, PortError> {
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Ok(Transaction::Committed),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => Ok(
                Transaction::Cancelled(Cancellation::new(cancelled.cancellation_reasons())),
            ),
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => Ok(
                Transaction::InProgress(aws_error("DynamoDB TransactWriteItems", err)),
            ),
            _ => Err(aws_error("DynamoDB TransactWriteItems", err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_cursors_survive_their_text_and_refuse_anything_else() {
        let cursor = JobCursor(key("CUSTOMER#acc1#U\"1".into(), "PROFILE"));
        let text = cursor.encode().unwrap();
        assert_eq!(JobCursor::decode(&text).unwrap(), cursor);
        for bad in ["", "{}", "[]", "{\"pk\": 1}", "not json"] {
            assert!(JobCursor::decode(bad).is_err(), "{bad}");
        }
        let number = JobCursor(HashMap::from([("n".to_owned(), n(1))]));
        assert!(number.encode().is_err());
    }
}
