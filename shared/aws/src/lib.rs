//! AWS adapters: SQS FIFO ([`SqsEventQueue`]), DynamoDB ([`DynamoAccountStore`]) and Secrets
//! Manager ([`SecretsManagerStore`]). Build one [`aws_config::SdkConfig`] with [`load_sdk_config`]
//! and share it between clients; its endpoint can be overridden (moto, other regions).

pub mod config_docs;
pub mod dynamo_agents;
pub mod dynamo_conversations;
pub mod dynamo_deliveries;
pub mod s3;
pub mod workstreams;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use omniline_domain::account::{Account, WebhookCounts, WebhookStats};
use omniline_domain::clock::rfc3339_millis;
use omniline_domain::line::envelope::QueueMessage;
use omniline_domain::retry::Backoff;
use omniline_domain::secret::SecretString;
use omniline_ports::{AccountStore, EventQueue, PortError, SecretStore};
use std::collections::HashMap;

/// The SDK's HTTPS client: hyper with rustls on ring (the crypto library reqwest uses too), so
/// a binary links one TLS stack.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The shared SDK configuration: region, credentials and retry from the environment as usual;
/// `endpoint_url` (or the standard `AWS_ENDPOINT_URL`) points every client at another endpoint.
pub async fn load_sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// An AWS SDK error as a port error, with the whole source chain (service code and message).
pub(crate) fn aws_error<E: std::error::Error + 'static>(what: &str, err: E) -> PortError {
    // DisplayErrorContext prints the whole source chain (service code and message), which the
    // SDK's own Display hides. AWS error messages hold no secret values.
    PortError::Unavailable(format!(
        "{what}: {}",
        aws_sdk_sqs::error::DisplayErrorContext(&err)
    ))
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
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(|e| e.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(aws_error(what, e)),
    }
}

// ---------------------------------------------------------------------------------------------
// SQS

/// [`EventQueue`] on an SQS FIFO queue, in batches of ten.
#[derive(Debug, Clone)]
pub struct SqsEventQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsEventQueue {
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.into(),
        }
    }
}

/// SQS takes at most ten entries per `SendMessageBatch`.
pub const SQS_BATCH: usize = 10;

#[async_trait]
impl EventQueue for SqsEventQueue {
    async fn send(&self, messages: &[QueueMessage]) -> Result<(), PortError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        for chunk in messages.chunks(SQS_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&m.body)
                        .message_group_id(&m.group_id)
                        .message_deduplication_id(&m.dedup_id)
                        .build()
                        .map_err(|e| aws_error("SQS entry", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("SQS SendMessageBatch", e))?;
            // SendMessageBatch answers 200 even when entries fail: check `Failed`.
            let failed = output.failed();
            if !failed.is_empty() {
                let reason = failed
                    .iter()
                    .map(|f| format!("{} {}", f.code(), f.message().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(PortError::PartialBatch {
                    failed: failed.len(),
                    total: chunk.len(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

/// [`AccountStore`] in the single DynamoDB config table (`pk`, `sk`):
/// `ACCOUNT#{id}` / `PROFILE` holds the account, `ACCOUNT#{id}` / `WEBHOOK_STATS` its counters.
#[derive(Debug, Clone)]
pub struct DynamoAccountStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

const PROFILE: &str = "PROFILE";
const WEBHOOK_STATS: &str = "WEBHOOK_STATS";

fn account_pk(id: &str) -> AttributeValue {
    AttributeValue::S(format!("ACCOUNT#{id}"))
}

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The key of a `pk`/`sk` table item.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// A request the SDK's builder refused (a required field unset).
pub(crate) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    aws_error("DynamoDB request", e)
}

/// Attempts of an optimistic write (or of unprocessed batch keys) before giving up.
pub(crate) const ATTEMPTS: u32 = 8;

/// How a write that lost a race (or left unprocessed keys) is retried: 10 ms, 20 ms … 80 ms.
const WRITE_RETRY: Backoff = Backoff::exponential(
    std::time::Duration::from_millis(10),
    std::time::Duration::from_millis(80),
);

/// A short pause before retry number `attempt` of a write ([`WRITE_RETRY`]).
pub(crate) async fn backoff(attempt: u32) {
    tokio::time::sleep(WRITE_RETRY.delay(attempt)).await;
}

/// One item by key, read consistently (`None` if absent).
pub(crate) async fn get_item_consistent(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    key: Item,
) -> Result<Option<Item>, PortError> {
    let output = client
        .get_item()
        .table_name(table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| aws_error("DynamoDB GetItem", e))?;
    Ok(output.item)
}

/// Every item of `keys` that exists, read consistently with `BatchGetItem` (100 keys a call,
/// unprocessed keys retried [`ATTEMPTS`] times).
pub(crate) async fn batch_get_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, PortError> {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let mut items = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(true)
                .build()
                .map_err(build_error)?,
        );
        let mut attempt = 0;
        while let Some(keys) = request.take() {
            if attempt >= ATTEMPTS {
                return Err(PortError::Unavailable(
                    "DynamoDB BatchGetItem: keys left unprocessed after retries".into(),
                ));
            }
            if attempt > 0 {
                backoff(attempt).await;
            }
            attempt += 1;
            let output = client
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(|e| aws_error("DynamoDB BatchGetItem", e))?;
            if let Some(found) = output.responses().and_then(|r| r.get(table)) {
                items.extend(found.iter().cloned());
            }
            request = output
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .filter(|k| !k.keys().is_empty())
                .cloned();
        }
    }
    Ok(items)
}

/// A DynamoDB string.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A DynamoDB number.
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &HashMap<String, AttributeValue>, key: &str) -> Result<String, PortError> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| PortError::Unavailable(format!("DynamoDB item without string {key}")))
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &str) -> u64 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl DynamoAccountStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            table: table.into(),
        }
    }

    fn item(account: &Account) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), account_pk(&account.id)),
            ("sk".to_owned(), s(PROFILE)),
            ("id".to_owned(), s(&account.id)),
            ("name".to_owned(), s(&account.name)),
            ("channelId".to_owned(), s(&account.channel_id)),
            ("botUserId".to_owned(), s(&account.bot_user_id)),
            ("basicId".to_owned(), s(&account.basic_id)),
            ("displayName".to_owned(), s(&account.display_name)),
            ("createdAt".to_owned(), s(&account.created_at)),
            ("updatedAt".to_owned(), s(&account.updated_at)),
            (
                "webhookDisabled".to_owned(),
                AttributeValue::Bool(account.webhook_disabled),
            ),
        ])
    }

    fn account(item: &HashMap<String, AttributeValue>) -> Result<Account, PortError> {
        Ok(Account {
            id: get_s(item, "id")?,
            name: get_s(item, "name")?,
            channel_id: get_s(item, "channelId")?,
            bot_user_id: get_s(item, "botUserId")?,
            basic_id: get_s(item, "basicId")?,
            display_name: get_s(item, "displayName")?,
            created_at: get_s(item, "createdAt")?,
            updated_at: get_s(item, "updatedAt")?,
            webhook_disabled: item
                .get("webhookDisabled")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        })
    }

    async fn put(&self, account: &Account, condition: &str) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item(account)))
            .condition_expression(condition)
            .send()
            .await;
        condition_held(result, "DynamoDB PutItem")
    }
}

#[async_trait]
impl AccountStore for DynamoAccountStore {
    async fn create(&self, account: &Account) -> Result<(), PortError> {
        if self.put(account, "attribute_not_exists(pk)").await? {
            Ok(())
        } else {
            Err(PortError::Conflict("account id".into()))
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Account>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", account_pk(id))
            .key("sk", s(PROFILE))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB GetItem", e))?;
        output.item().map(Self::account).transpose()
    }

    async fn list(&self) -> Result<Vec<Account>, PortError> {
        // Admin-only and small: a filtered scan of the profile items.
        let mut accounts = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :profile AND begins_with(pk, :account)")
            .expression_attribute_values(":profile", s(PROFILE))
            .expression_attribute_values(":account", s("ACCOUNT#"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| aws_error("DynamoDB Scan", e))?;
            for item in page.items() {
                accounts.push(Self::account(item)?);
            }
        }
        accounts.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(accounts)
    }

    async fn update(&self, account: &Account) -> Result<bool, PortError> {
        self.put(account, "attribute_exists(pk)").await
    }

    async fn delete(&self, id: &str) -> Result<bool, PortError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", account_pk(id))
            .key("sk", s(PROFILE))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", account_pk(id))
            .key("sk", s(WEBHOOK_STATS))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB DeleteItem", e))?;
        Ok(output.attributes().is_some_and(|a| !a.is_empty()))
    }

    async fn record_webhook(
        &self,
        id: &str,
        counts: WebhookCounts,
        at_millis: i64,
    ) -> Result<(), PortError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", account_pk(id))
            .key("sk", s(WEBHOOK_STATS))
            .update_expression("ADD received :r, queued :q, rejected :x SET lastReceivedAt = :t")
            .expression_attribute_values(":r", n(counts.received))
            .expression_attribute_values(":q", n(counts.queued))
            .expression_attribute_values(":x", n(counts.rejected))
            .expression_attribute_values(":t", AttributeValue::N(at_millis.to_string()))
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB UpdateItem", e))?;
        Ok(())
    }

    async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", account_pk(id))
            .key("sk", s(WEBHOOK_STATS))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB GetItem", e))?;
        Ok(output
            .item()
            .map(|item| WebhookStats {
                received: get_n(item, "received"),
                queued: get_n(item, "queued"),
                rejected: get_n(item, "rejected"),
                last_received_at: item
                    .get("lastReceivedAt")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(rfc3339_millis),
            })
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

/// [`SecretStore`] on AWS Secrets Manager; every name is prefixed (the stack name and `/`).
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

impl SecretsManagerStore {
    pub fn new(config: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_secretsmanager::Client::new(config),
            prefix: prefix.into(),
        }
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Reads a secret by its full id or ARN, outside the prefix (the admin token).
    /// The secret `secret_id` (a full name or ARN), read on first use rather than at start-up.
    /// `variable` names it in the error when the secret has no value.
    pub fn lazy_by_id(
        self: &std::sync::Arc<Self>,
        secret_id: &str,
        variable: &'static str,
    ) -> omniline_ports::LazySecret {
        let (store, secret_id) = (std::sync::Arc::clone(self), secret_id.to_owned());
        omniline_ports::LazySecret::load(move || {
            let (store, secret_id) = (std::sync::Arc::clone(&store), secret_id.clone());
            async move {
                store.get_by_id(&secret_id).await?.ok_or_else(|| {
                    PortError::Unavailable(format!("the secret of {variable} has no value"))
                })
            }
        })
    }

    pub async fn get_by_id(&self, secret_id: &str) -> Result<Option<SecretString>, PortError> {
        match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
        {
            Ok(output) => Ok(output.secret_string().map(SecretString::new)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(aws_error("Secrets Manager GetSecretValue", e)),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, PortError> {
        self.get_by_id(&self.id(name)).await
    }

    async fn put(&self, name: &str, value: &SecretString) -> Result<(), PortError> {
        let id = self.id(name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(value.expose())
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                self.client
                    .create_secret()
                    .name(&id)
                    .secret_string(value.expose())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| aws_error("Secrets Manager CreateSecret", e))
            }
            Err(e) => Err(aws_error("Secrets Manager PutSecretValue", e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.id(name))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_error("Secrets Manager DeleteSecret", e)),
        }
    }
}

/// [`omniline_ports::RetryDelay`] on SQS (`ChangeMessageVisibility`).
pub struct SqsRetryDelay {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait]
impl omniline_ports::RetryDelay for SqsRetryDelay {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration) {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await;
        if let Err(e) = result {
            // The message still comes back after the queue's visibility timeout.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not delay a retry");
        }
    }
}
