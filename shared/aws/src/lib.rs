//! AWS adapters: SQS FIFO ([`SqsEventQueue`]), DynamoDB ([`DynamoAccountStore`]) and Secrets
//! Manager ([`SecretsManagerStore`]). Build one [`aws_config::SdkConfig`] with [`load_sdk_config`]
//! and share it between clients; its endpoint can be overridden (moto, other regions).

pub mod config_docs;
mod dynamo;
pub use dynamo::{JobCursor, JobPage};
pub mod dynamo_agents;
pub mod dynamo_conversations;
pub mod dynamo_deliveries;
pub mod meter;
pub mod s3;
/// The consuming side of a queue (the local stack's AWS workers).
pub mod sqs_consumer;
pub mod workstreams;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use dynamo::{get_s, key, n, number, s, Condition, Item, Outcome, Pages, Table};
use omniline_domain::account::{
    month_before, Account, MonthSends, SendCounts, WebhookCounts, WebhookStats, SEND_MONTHS_KEPT,
};
use omniline_domain::clock::rfc3339_millis;
use omniline_domain::line::envelope::QueueMessage;
use omniline_domain::secret::SecretString;
use omniline_ports::{AccountStore, EventQueue, PortError, SecretStore};

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

/// `result`, with the service error `code` as `None` (not found, condition failed, …); any other
/// failure an error naming `what`.
pub(crate) fn except_code<O, E, R>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
    code: &str,
    what: &str,
) -> Result<Option<O>, PortError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(e) if e.as_service_error().and_then(|e| e.code()) == Some(code) => Ok(None),
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
/// `ACCOUNT#{id}` / `PROFILE` holds the account, `ACCOUNT#{id}` / `WEBHOOK_STATS` its counters,
/// `ACCOUNT#{id}` / `SENDS` its message counts (attributes `replies#{YYYY-MM}`,
/// `pushes#{…}`, `failed#{…}` for the months kept: one small item, updated in place, the month
/// that falls out removed by the same update), and `ACCOUNTS` / `{id}` (attribute `accountId`) lists it: the list is one Query of the
/// `ACCOUNTS` partition and a consistent `BatchGetItem` of the profiles, never a Scan. `create`
/// writes the profile and its list item in one transaction; `delete` removes the profile first
/// and the list item after (a list item without a profile is skipped). Accounts created before
/// the list item existed get theirs from [`DynamoAccountStore::backfill_account_index`], a paged
/// background job run once after deploying.
#[derive(Debug, Clone)]
pub struct DynamoAccountStore {
    table: Table,
}

const PROFILE: &str = "PROFILE";
const WEBHOOK_STATS: &str = "WEBHOOK_STATS";
const SENDS: &str = "SENDS";
/// The counters of a month on the `SENDS` item, by name prefix.
const SEND_COUNTERS: [&str; 3] = ["replies#", "pushes#", "failed#"];
/// The partition listing every account (one item per account, sort key its id).
pub const ACCOUNTS: &str = "ACCOUNTS";

fn account_pk(id: &str) -> String {
    format!("ACCOUNT#{id}")
}

/// The list item of account `id`.
fn account_list_item(id: &str) -> Item {
    let mut item = key(ACCOUNTS.to_owned(), id);
    item.insert("accountId".to_owned(), s(id));
    item
}

impl DynamoAccountStore {
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        Self {
            table: Table::new(config, table),
        }
    }

    fn item(account: &Account) -> Item {
        let mut item = key(account_pk(&account.id), PROFILE);
        item.extend([
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
        ]);
        item
    }

    /// A paged background job (not for a request path: it Scans the config table), run once
    /// after deploying the `ACCOUNTS` list, idempotent and resumable: one page of at most
    /// `page_size` items from `cursor` (`None`: the start), a list item put for each account
    /// profile in it. Run it until `next` is `None`
    /// ([`DynamoAccountStore::backfill_account_index`] does).
    pub async fn backfill_account_index_page(
        &self,
        cursor: Option<JobCursor>,
        page_size: i32,
    ) -> Result<JobPage, PortError> {
        let scan = self
            .table
            .scan()
            .filter_expression("sk = :profile AND begins_with(pk, :account)")
            .expression_attribute_values(":profile", s(PROFILE))
            .expression_attribute_values(":account", s(account_pk("")));
        let (items, next) =
            dynamo::scan_page(scan, cursor, page_size, "DynamoDB Scan (backfill)").await?;
        let mut listed = 0;
        for item in &items {
            let id = get_s(item, "id")?;
            // An account deleted meanwhile must not come back in the list: only while its
            // profile exists (checked in the same transaction).
            let present = Condition::new("attribute_exists(pk)");
            let tx = vec![
                dynamo::transact_check(&self.table.name, key(account_pk(id), PROFILE), present)?,
                dynamo::transact_put(&self.table.name, account_list_item(id), None)?,
            ];
            // Deleted meanwhile (or raced: the next run lists it): not listed.
            if let Outcome::Done = self.table.transact(tx).await?.outcome()? {
                listed += 1;
            }
        }
        Ok(JobPage {
            scanned: items.len(),
            updated: listed,
            next,
        })
    }

    /// [`DynamoAccountStore::backfill_account_index_page`] from the start until the end; how many
    /// accounts it listed. A paged background job: never on a request path.
    pub async fn backfill_account_index(&self) -> Result<usize, PortError> {
        dynamo::run_to_end(|cursor| self.backfill_account_index_page(cursor, 500)).await
    }

    fn account(item: &Item) -> Result<Account, PortError> {
        let text = |name: &str| get_s(item, name).map(str::to_owned);
        Ok(Account {
            id: text("id")?,
            name: text("name")?,
            channel_id: text("channelId")?,
            bot_user_id: text("botUserId")?,
            basic_id: text("basicId")?,
            display_name: text("displayName")?,
            created_at: text("createdAt")?,
            updated_at: text("updatedAt")?,
            webhook_disabled: item
                .get("webhookDisabled")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        })
    }
}

#[async_trait]
impl AccountStore for DynamoAccountStore {
    async fn create(&self, account: &Account) -> Result<(), PortError> {
        for pause in dynamo::attempts() {
            pause.await;
            let absent = Condition::new("attribute_not_exists(pk)");
            let tx = vec![
                dynamo::transact_put(&self.table.name, Self::item(account), absent)?,
                dynamo::transact_put(&self.table.name, account_list_item(&account.id), None)?,
            ];
            match self.table.transact(tx).await?.outcome()? {
                Outcome::Done => return Ok(()),
                outcome if outcome.failed(0) => {
                    return Err(PortError::Conflict("account id".into()))
                }
                _ => continue,
            }
        }
        Err(PortError::Unavailable(format!(
            "account {}: its creation kept conflicting",
            account.id
        )))
    }

    async fn get(&self, id: &str) -> Result<Option<Account>, PortError> {
        self.table
            .get(key(account_pk(id), PROFILE))
            .await?
            .as_ref()
            .map(Self::account)
            .transpose()
    }

    async fn list(&self) -> Result<Vec<Account>, PortError> {
        // One Query of the list partition, then the profiles by key.
        let mut keys = Vec::new();
        self.table
            .partition(ACCOUNTS.to_owned())
            .each_item("DynamoDB Query (accounts)", |item| {
                keys.push(key(account_pk(get_s(item, "accountId")?), PROFILE));
                Ok(())
            })
            .await?;
        let mut accounts = self
            .table
            .batch_get(keys)
            .await?
            .iter()
            .map(Self::account)
            .collect::<Result<Vec<_>, _>>()?;
        accounts.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(accounts)
    }

    async fn update(&self, account: &Account) -> Result<bool, PortError> {
        let present = Condition::new("attribute_exists(pk)");
        self.table.put_if(Self::item(account), present).await
    }

    async fn delete(&self, id: &str) -> Result<bool, PortError> {
        let existed = self
            .table
            .delete_existing(key(account_pk(id), PROFILE))
            .await?;
        self.table
            .delete(key(account_pk(id), WEBHOOK_STATS))
            .await?;
        self.table.delete(key(account_pk(id), SENDS)).await?;
        // Last: while it is there a retry finds it, and a list item without its profile is
        // skipped by `list`.
        self.table.delete(key(ACCOUNTS.to_owned(), id)).await?;
        Ok(existed)
    }

    async fn record_webhook(
        &self,
        id: &str,
        counts: WebhookCounts,
        at_millis: i64,
    ) -> Result<(), PortError> {
        self.table
            .update_item()
            .set_key(Some(key(account_pk(id), WEBHOOK_STATS)))
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

    async fn record_sends(
        &self,
        id: &str,
        month: &str,
        counts: SendCounts,
    ) -> Result<(), PortError> {
        let dropped = month_before(month, SEND_MONTHS_KEPT as u32)
            .ok_or_else(|| PortError::Unavailable(format!("not a month: {month:?}")))?;
        let mut update = self
            .table
            .update_item()
            .set_key(Some(key(account_pk(id), SENDS)))
            .update_expression(
                "ADD #r :r, #p :p, #f :f REMOVE #dr, #dp, #df",
            )
            .expression_attribute_values(":r", n(counts.replies))
            .expression_attribute_values(":p", n(counts.pushes))
            .expression_attribute_values(":f", n(counts.failed));
        for (placeholder, prefix) in ["#r", "#p", "#f"].into_iter().zip(SEND_COUNTERS) {
            update = update.expression_attribute_names(placeholder, format!("{prefix}{month}"));
        }
        for (placeholder, prefix) in ["#dr", "#dp", "#df"].into_iter().zip(SEND_COUNTERS) {
            update = update.expression_attribute_names(placeholder, format!("{prefix}{dropped}"));
        }
        update
            .send()
            .await
            .map_err(|e| aws_error("DynamoDB UpdateItem", e))?;
        Ok(())
    }

    async fn send_stats(&self, id: &str) -> Result<Vec<MonthSends>, PortError> {
        let Some(item) = self.table.get_consistent(key(account_pk(id), SENDS)).await? else {
            return Ok(Vec::new());
        };
        let mut months: Vec<MonthSends> = item
            .keys()
            .filter_map(|name| name.strip_prefix(SEND_COUNTERS[0]))
            .chain(item.keys().filter_map(|name| name.strip_prefix(SEND_COUNTERS[1])))
            .chain(item.keys().filter_map(|name| name.strip_prefix(SEND_COUNTERS[2])))
            .collect::<std::collections::BTreeSet<&str>>()
            .into_iter()
            .map(|month| MonthSends {
                month: month.to_owned(),
                counts: SendCounts {
                    replies: number(&item, &format!("{}{month}", SEND_COUNTERS[0])).unwrap_or(0),
                    pushes: number(&item, &format!("{}{month}", SEND_COUNTERS[1])).unwrap_or(0),
                    failed: number(&item, &format!("{}{month}", SEND_COUNTERS[2])).unwrap_or(0),
                },
            })
            .collect();
        months.reverse();
        // A month the updates skipped past is not removed by them: the kept ones end at the
        // newest.
        if let Some(oldest) = months
            .first()
            .and_then(|m| month_before(&m.month, (SEND_MONTHS_KEPT - 1) as u32))
        {
            months.retain(|m| m.month >= oldest);
        }
        Ok(months)
    }

    async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, PortError> {
        let item = self
            .table
            .get_consistent(key(account_pk(id), WEBHOOK_STATS))
            .await?;
        Ok(item
            .map(|item| WebhookStats {
                received: number(&item, "received").unwrap_or(0),
                queued: number(&item, "queued").unwrap_or(0),
                rejected: number(&item, "rejected").unwrap_or(0),
                last_received_at: number::<i64>(&item, "lastReceivedAt").map(rfc3339_millis),
            })
            .unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

/// The error code of a secret that does not exist.
const NOT_FOUND: &str = "ResourceNotFoundException";

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
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await;
        let output = except_code(result, NOT_FOUND, "Secrets Manager GetSecretValue")?;
        Ok(output.and_then(|o| o.secret_string().map(SecretString::new)))
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
        if except_code(put, NOT_FOUND, "Secrets Manager PutSecretValue")?.is_some() {
            return Ok(());
        }
        self.client
            .create_secret()
            .name(&id)
            .secret_string(value.expose())
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_error("Secrets Manager CreateSecret", e))
    }

    async fn delete(&self, name: &str) -> Result<(), PortError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.id(name))
            .force_delete_without_recovery(true)
            .send()
            .await;
        // Already gone: done.
        except_code(result, NOT_FOUND, "Secrets Manager DeleteSecret").map(drop)
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
