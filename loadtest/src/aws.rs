//! The AWS backend of a run (`--backend aws`): fresh tables, FIFO queues with their dead-letter
//! queues, a media bucket and a secret prefix on the endpoint in `OMNILINE_TEST_AWS_ENDPOINT`
//! (moto), made from `template.yaml`'s own definitions (compiled in: the tables' keys and indexes,
//! the queues' FIFO settings, visibility timeouts and redrive policies), so the run uses what a
//! deployment gets; the variables the stack needs to run on them with its AWS workers; and what
//! they hold after a run, read into the same [`Stored`] as the embedded database's.

use crate::db::{Progress, Stored};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml::Value as Yaml;
use std::collections::HashMap;

/// The deployment's template: the one definition of the tables and queues.
const TEMPLATE: &str = include_str!("../../template.yaml");

type Item = HashMap<String, AttributeValue>;

/// The resources of one run.
pub struct AwsRun {
    sdk: SdkConfig,
    endpoint: String,
    config_table: String,
    conversations_table: String,
    /// Queue name in the ledger (`inbound`, `inbound-dlq`, `outbound`, `outbound-dlq`) → URL.
    queues: Vec<(&'static str, String)>,
    bucket: String,
    secret_prefix: String,
}

fn sdk_err<E: std::error::Error + 'static>(what: &str, e: E) -> String {
    format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    )
}

/// `Resources.{id}.Properties` of the template.
fn properties<'a>(template: &'a Yaml, id: &str) -> Result<&'a Yaml, String> {
    template
        .get("Resources")
        .and_then(|r| r.get(id))
        .and_then(|r| r.get("Properties"))
        .ok_or_else(|| format!("template.yaml has no Resources.{id}.Properties"))
}

fn text<'a>(value: &'a Yaml, field: &str) -> Result<&'a str, String> {
    value
        .get(field)
        .and_then(Yaml::as_str)
        .ok_or_else(|| format!("template.yaml: {field} is not a string"))
}

fn key_schema(value: &Yaml) -> Result<Vec<KeySchemaElement>, String> {
    let elements = value
        .get("KeySchema")
        .and_then(Yaml::as_sequence)
        .ok_or("template.yaml: KeySchema")?;
    elements
        .iter()
        .map(|e| {
            let key_type = match text(e, "KeyType")? {
                "HASH" => KeyType::Hash,
                "RANGE" => KeyType::Range,
                other => return Err(format!("template.yaml: KeyType {other}")),
            };
            KeySchemaElement::builder()
                .attribute_name(text(e, "AttributeName")?)
                .key_type(key_type)
                .build()
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The `CreateTable` of a table resource: keys, attribute definitions, global secondary
/// indexes (with their projections), pay per request.
async fn create_table(
    ddb: &aws_sdk_dynamodb::Client,
    template: &Yaml,
    id: &str,
    name: &str,
) -> Result<(), String> {
    let props = properties(template, id)?;
    let mut request = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(props)?));
    for definition in props
        .get("AttributeDefinitions")
        .and_then(Yaml::as_sequence)
        .ok_or("template.yaml: AttributeDefinitions")?
    {
        let kind = match text(definition, "AttributeType")? {
            "S" => ScalarAttributeType::S,
            "N" => ScalarAttributeType::N,
            "B" => ScalarAttributeType::B,
            other => return Err(format!("template.yaml: AttributeType {other}")),
        };
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(definition, "AttributeName")?)
                .attribute_type(kind)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    for index in props
        .get("GlobalSecondaryIndexes")
        .and_then(Yaml::as_sequence)
        .into_iter()
        .flatten()
    {
        let projection = index.get("Projection").ok_or("template.yaml: Projection")?;
        let mut p = Projection::builder()
            .projection_type(ProjectionType::from(text(projection, "ProjectionType")?));
        for attribute in projection
            .get("NonKeyAttributes")
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(Yaml::as_str)
        {
            p = p.non_key_attributes(attribute);
        }
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(index, "IndexName")?)
                .set_key_schema(Some(key_schema(index)?))
                .projection(p.build())
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| sdk_err(&format!("CreateTable {name}"), e))?;
    Ok(())
}

/// A FIFO queue with the attributes of a queue resource (`DeduplicationScope`,
/// `FifoThroughputLimit`, `VisibilityTimeout`, `MessageRetentionPeriod`, and the redrive policy
/// to `dlq_arn` with the template's `maxReceiveCount`). Returns (URL, ARN).
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    template: &Yaml,
    id: &str,
    name: &str,
    dlq_arn: Option<&str>,
) -> Result<(String, String), String> {
    let props = properties(template, id)?;
    let mut request = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false");
    for (field, attribute) in [
        ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
        (
            "FifoThroughputLimit",
            QueueAttributeName::FifoThroughputLimit,
        ),
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        (
            "MessageRetentionPeriod",
            QueueAttributeName::MessageRetentionPeriod,
        ),
    ] {
        let value = match props.get(field) {
            Some(Yaml::String(s)) => s.clone(),
            Some(Yaml::Number(n)) => n.to_string(),
            _ => continue,
        };
        request = request.attributes(attribute, value);
    }
    if let Some(arn) = dlq_arn {
        let max_receive_count = max_receive_count(template, id)?;
        request = request.attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count})
                .to_string(),
        );
    }
    let url = request
        .send()
        .await
        .map_err(|e| sdk_err(&format!("CreateQueue {name}"), e))?
        .queue_url()
        .ok_or("CreateQueue: no URL")?
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| sdk_err("GetQueueAttributes", e))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or("GetQueueAttributes: no QueueArn")?;
    Ok((url, arn))
}

/// The `maxReceiveCount` of a queue resource's redrive policy.
fn max_receive_count(template: &Yaml, id: &str) -> Result<u64, String> {
    properties(template, id)?
        .get("RedrivePolicy")
        .and_then(|r| r.get("maxReceiveCount"))
        .and_then(Yaml::as_u64)
        .ok_or_else(|| format!("template.yaml: {id} has no RedrivePolicy.maxReceiveCount"))
}

fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

impl AwsRun {
    /// Everything a run needs, named `{run}-…` (unique per run and scenario).
    pub async fn create(endpoint: &str, run: &str) -> Result<Self, String> {
        let template: Yaml =
            serde_yaml::from_str(TEMPLATE).map_err(|e| format!("template.yaml: {e}"))?;
        let sdk = omniline_aws::load_sdk_config(Some(endpoint)).await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let config_table = format!("{run}-config");
        let conversations_table = format!("{run}-conversations");
        create_table(&ddb, &template, "ConfigTable", &config_table).await?;
        create_table(&ddb, &template, "ConversationsTable", &conversations_table).await?;
        let mut queues = Vec::new();
        for (queue, dlq, name) in [
            ("InboundQueue", "InboundDeadLetterQueue", "inbound"),
            ("OutboundQueue", "OutboundDeadLetterQueue", "outbound"),
        ] {
            let (dlq_url, dlq_arn) =
                create_queue(&sqs, &template, dlq, &format!("{run}-{name}-dlq"), None).await?;
            let (url, _) = create_queue(
                &sqs,
                &template,
                queue,
                &format!("{run}-{name}"),
                Some(&dlq_arn),
            )
            .await?;
            let (name, dlq_name) = if name == "inbound" {
                ("inbound", "inbound-dlq")
            } else {
                ("outbound", "outbound-dlq")
            };
            queues.push((name, url));
            queues.push((dlq_name, dlq_url));
        }
        let bucket = format!("{run}-media");
        let mut create_bucket = s3_client(&sdk).create_bucket().bucket(&bucket);
        if let Some(region) = sdk.region().map(|r| r.as_ref().to_owned()) {
            if region != "us-east-1" {
                create_bucket = create_bucket.create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                            region.as_str(),
                        ))
                        .build(),
                );
            }
        }
        create_bucket
            .send()
            .await
            .map_err(|e| sdk_err("CreateBucket", e))?;
        Ok(Self {
            sdk,
            endpoint: endpoint.to_owned(),
            config_table,
            conversations_table,
            queues,
            bucket,
            secret_prefix: format!("{run}/"),
        })
    }

    fn queue_url(&self, name: &str) -> Result<&str, String> {
        self.queues
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, url)| url.as_str())
            .ok_or_else(|| format!("no {name} queue"))
    }

    /// The variables of `omniline-local` on these resources, its router and outbound function
    /// polling the queues in the process (short polls: moto serves one request at a time; retry
    /// delays at a fifth of the Lambdas': 1 s, 2 s, 4 s, 8 s before the dead-letter queue).
    pub fn stack_env(&self) -> Result<Vec<(String, String)>, String> {
        let vars = [
            ("OMNILINE_BACKEND", "aws"),
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("CONFIG_TABLE", &self.config_table),
            ("CONVERSATIONS_TABLE", &self.conversations_table),
            ("INBOUND_QUEUE_URL", self.queue_url("inbound")?),
            ("OUTBOUND_QUEUE_URL", self.queue_url("outbound")?),
            ("MEDIA_BUCKET", &self.bucket),
            ("SECRET_PREFIX", &self.secret_prefix),
            ("AWS_WORKERS", "on"),
            ("SQS_WAIT_SECONDS", "0"),
            ("SQS_RETRY_PERCENT", "20"),
            // The echo bot is the load test's, on this machine.
            ("BOT_ALLOW_PRIVATE_NETWORKS", "true"),
        ];
        Ok(vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// Messages waiting, in flight or delayed in a queue.
    async fn depth(&self, url: &str) -> Result<u64, String> {
        let output = aws_sdk_sqs::Client::new(&self.sdk)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| sdk_err("GetQueueAttributes", e))?;
        Ok(output
            .attributes()
            .map(|a| {
                a.values()
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .unwrap_or(0))
    }

    async fn depths(&self) -> Result<HashMap<String, u64>, String> {
        let mut out = HashMap::new();
        for (name, url) in &self.queues {
            out.insert((*name).to_owned(), self.depth(url).await?);
        }
        Ok(out)
    }

    /// Every item of a table (a paginated, consistent Scan; `filter` on `pk`'s prefix): the load
    /// test's ledger, read once after a run, from outside the stack; never a request path.
    async fn scan(&self, table: &str, pk_prefix: Option<&str>) -> Result<Vec<Item>, String> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut request = ddb
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if let Some(prefix) = pk_prefix {
                request = request
                    .filter_expression("begins_with(pk, :p)")
                    .expression_attribute_values(":p", AttributeValue::S(prefix.to_owned()));
            }
            let page = request.send().await.map_err(|e| sdk_err("Scan", e))?;
            items.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(items),
            }
        }
    }

    /// What moves while the pipeline works: the queues' depths and dead letters. SQS gives no
    /// receive counts without receiving, and counting the processed-event records would scan
    /// the table on a server that answers one request at a time: `receives` and `stored` stay 0
    /// (an event stored leaves the inbound queue, which is progress already).
    pub async fn progress(&self) -> Result<Progress, String> {
        let depths = self.depths().await?;
        let pending = depths.get("inbound").copied().unwrap_or(0)
            + depths.get("outbound").copied().unwrap_or(0);
        let dead = depths.get("inbound-dlq").copied().unwrap_or(0);
        Ok(Progress {
            pending,
            receives: 0,
            dead,
            stored: 0,
        })
    }

    /// The ledger's counts from the tables and the queues (read once the stack is stopped: the
    /// messages left in a queue are received to be named, as nobody else consumes them then).
    pub async fn stored(&self, accounts: &[String]) -> Result<Stored, String> {
        let mut out = Stored::default();
        let ours = |account: &str| accounts.iter().any(|a| a == account);
        // Active conversations per agent, from the conversations' own documents.
        let mut active_per_agent: HashMap<String, u64> = HashMap::new();
        for item in self.scan(&self.conversations_table, None).await? {
            let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let (Some(pk), Some(sk)) = (s("pk"), s("sk")) else {
                continue;
            };
            if sk == "EVENT" {
                // EVENT#{account}#{event}
                let mut parts = pk.splitn(3, '#').skip(1);
                if let (Some(account), Some(event)) = (parts.next(), parts.next()) {
                    if ours(account) {
                        *out.events.entry(event.to_owned()).or_default() += 1;
                    }
                }
            } else if let Some(rest) = sk.strip_prefix("T#") {
                // T#{timestamp:020}#{event}
                if let Some((_, event)) = rest.split_once('#') {
                    *out.transcript.entry(event.to_owned()).or_default() += 1;
                }
            } else if sk == "META" && pk.starts_with("CONV#") {
                let (Some(account), Some(source)) = (s("accountId"), s("sourceId")) else {
                    continue;
                };
                if ours(&account) {
                    *out.conversations_per_source
                        .entry((account, source))
                        .or_default() += 1;
                }
                let doc: serde_json::Value = s("doc")
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or_default();
                if s("state").as_deref() == Some("active") {
                    if let Some(agent) = doc.get("agentId").and_then(|a| a.as_str()) {
                        *active_per_agent.entry(agent.to_owned()).or_default() += 1;
                    }
                }
            } else if sk == "DELIVERY" {
                let doc: serde_json::Value = s("doc")
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or_default();
                let status = doc
                    .get("status")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                if status == "unconfirmed" {
                    let id = pk.strip_prefix("DELIVERY#").unwrap_or_default();
                    let event = id.split(':').next().unwrap_or_default().to_owned();
                    out.unconfirmed_events.insert(event);
                }
                *out.delivery_status.entry(status).or_default() += 1;
            }
        }
        for item in self.scan(&self.config_table, Some("AGENT#")).await? {
            let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let n = |name: &str| {
                item.get(name)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            if s("sk").as_deref() != Some("PROFILE") {
                continue;
            }
            let Some(id) = s("id") else { continue };
            let active = n("activeCount").max(active_per_agent.get(&id).copied().unwrap_or(0));
            out.agent_load.push((id, active, n("capacity")));
        }
        out.agent_load.sort();
        out.queued = self.depths().await?;
        for (name, url) in &self.queues {
            if out.queued.get(*name).copied().unwrap_or(0) == 0 {
                continue;
            }
            let events = out.queued_events.entry((*name).to_owned()).or_default();
            for body in self.receive_all(url).await? {
                let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let id = value
                    .pointer("/event/webhookEventId")
                    .or_else(|| value.get("id"))
                    .and_then(|v| v.as_str());
                if let Some(id) = id {
                    // An outbound message's id starts with the event it answers (`{event}:…`).
                    events.insert(id.split(':').next().unwrap_or_default().to_owned());
                }
            }
        }
        Ok(out)
    }

    /// The bodies of every message visible in a queue, hidden for a minute by the reading.
    async fn receive_all(&self, url: &str) -> Result<Vec<String>, String> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        let mut bodies = Vec::new();
        loop {
            let output = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .map_err(|e| sdk_err("ReceiveMessage", e))?;
            if output.messages().is_empty() {
                return Ok(bodies);
            }
            bodies.extend(
                output
                    .messages()
                    .iter()
                    .filter_map(|m| m.body().map(str::to_owned)),
            );
        }
    }

    /// Sends `messages` to the inbound queue, as another producer would.
    pub async fn send_inbound(
        &self,
        messages: &[omniline_domain::line::envelope::QueueMessage],
    ) -> Result<(), String> {
        use omniline_ports::EventQueue;
        omniline_aws::SqsEventQueue::new(&self.sdk, self.queue_url("inbound")?)
            .send(messages)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runs_tables_and_queues_are_read_from_the_template() {
        let template: Yaml = serde_yaml::from_str(TEMPLATE).unwrap();
        for id in ["ConfigTable", "ConversationsTable"] {
            let keys = key_schema(properties(&template, id).unwrap()).unwrap();
            let names: Vec<&str> = keys.iter().map(|k| k.attribute_name()).collect();
            assert_eq!(names, ["pk", "sk"], "{id}");
        }
        let indexes = properties(&template, "ConversationsTable")
            .unwrap()
            .get("GlobalSecondaryIndexes")
            .and_then(Yaml::as_sequence)
            .unwrap();
        let open = indexes
            .iter()
            .find(|i| text(i, "IndexName") == Ok("open-conversations"))
            .unwrap();
        let keys = key_schema(open).unwrap();
        assert_eq!(keys[0].attribute_name(), "openShard");
        for id in ["InboundQueue", "OutboundQueue"] {
            assert_eq!(max_receive_count(&template, id).unwrap(), 5, "{id}");
        }
    }
}
