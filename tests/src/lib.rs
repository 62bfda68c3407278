//! Test support for the cross-crate tests in `tests/tests/`: moto (started by `./infra/test.sh`)
//! and fresh, uniquely named AWS resources on it. Each test makes its own resources, so tests run
//! in parallel without resetting moto.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_secretsmanager::config::Credentials;
use omniline_aws::dynamo_conversations::{
    ACCOUNT_INDEX, ACCOUNT_KEY, ACCOUNT_SK, AGENT_INDEX, AGENT_LIST, DAY_INDEX, LIST_ORDER,
    OPENED_AT, OPEN_INDEX, OPEN_SHARD, QUEUE_INDEX, QUEUE_LIST,
};

/// moto's endpoint; a test that needs it fails (not skips) without it.
pub fn endpoint() -> String {
    std::env::var("OMNILINE_TEST_AWS_ENDPOINT")
        .expect("OMNILINE_TEST_AWS_ENDPOINT (moto) is not set: run ./infra/test.sh")
}

/// An SDK config for `endpoint` with static test credentials, in ap-northeast-1.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(omniline_aws::https_client())
        .region(Region::new("ap-northeast-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// `{prefix}-{32 hex}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A new pay-per-request table keyed `pk` (hash) + `sk` (range), with the conversations table's
/// sparse, keys-only indexes as in template.yaml: the open conversations (`openShard` / `pk`),
/// conversations by account (`accountId` / `accountSk`), by queue (`queueList` / `listOrder`) and
/// by agent (`agentList` / `listOrder`).
pub async fn pk_sk_table(config: &SdkConfig, prefix: &str) -> String {
    let name = unique(prefix);
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key schema")
    };
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attribute definition")
    };
    let index = |name: &str, hash: &str, range: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash))
            .key_schema(key(range, KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .expect("index")
    };
    let mut create = aws_sdk_dynamodb::Client::new(config)
        .create_table()
        .table_name(&name)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .billing_mode(BillingMode::PayPerRequest);
    for (index_name, hash, range) in CONVERSATION_INDEXES {
        create = create.global_secondary_indexes(index(index_name, hash, range));
    }
    let mut defined = vec!["pk", "sk"];
    for (_, hash, range) in CONVERSATION_INDEXES {
        for a in [hash, range] {
            if !defined.contains(&a) {
                defined.push(a);
            }
        }
    }
    for a in defined {
        create = create.attribute_definitions(attr(a));
    }
    create.send().await.expect("create table");
    name
}

/// The conversations table's indexes: (name, partition key, sort key), every key a string, every
/// projection keys only.
pub const CONVERSATION_INDEXES: [(&str, &str, &str); 5] = [
    (OPEN_INDEX, OPEN_SHARD, "pk"),
    (ACCOUNT_INDEX, ACCOUNT_KEY, ACCOUNT_SK),
    (QUEUE_INDEX, QUEUE_LIST, LIST_ORDER),
    (AGENT_INDEX, AGENT_LIST, LIST_ORDER),
    (DAY_INDEX, ACCOUNT_KEY, OPENED_AT),
];

/// A new FIFO queue; returns its URL.
/// Deletes the item (`pk`, `sk`) of a `pk`/`sk` table behind the adapters' back: what a worker
/// that died before writing it leaves, or a test's "lost" write.
pub async fn delete_raw(config: &SdkConfig, table: &str, pk: &str, sk: &str) {
    aws_sdk_dynamodb::Client::new(config)
        .delete_item()
        .table_name(table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
        .send()
        .await
        .unwrap();
}

pub async fn fifo_queue(config: &SdkConfig, prefix: &str) -> String {
    aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(format!("{}.fifo", unique(prefix)))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_owned()
}

/// Receives and deletes everything in a queue: (group id, deduplication id, body).
pub async fn drain(config: &SdkConfig, queue_url: &str) -> Vec<(String, String, String)> {
    use aws_sdk_sqs::types::MessageSystemAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(config);
    let mut out = Vec::new();
    loop {
        let r = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(A::All)
            .visibility_timeout(60)
            .send()
            .await
            .expect("receive");
        let messages = r.messages();
        if messages.is_empty() {
            return out;
        }
        for m in messages {
            let attrs = m.attributes().cloned().unwrap_or_default();
            out.push((
                attrs.get(&A::MessageGroupId).cloned().unwrap_or_default(),
                attrs
                    .get(&A::MessageDeduplicationId)
                    .cloned()
                    .unwrap_or_default(),
                m.body().unwrap_or_default().to_owned(),
            ));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}

/// An S3 client that works with moto (path-style addressing).
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// A new bucket in ap-northeast-1 (outside us-east-1 S3 wants the location constraint).
pub async fn bucket(config: &SdkConfig) -> String {
    let name = unique("omniline-media");
    s3_client(config)
        .create_bucket()
        .bucket(&name)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::ApNortheast1)
                .build(),
        )
        .send()
        .await
        .expect("create bucket");
    name
}
