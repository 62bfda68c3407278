//! The consuming side of an SQS queue, as Lambda's event source mapping does it: receive a batch
//! (up to ten, with `ApproximateReceiveCount` and `MessageGroupId`), delete what was processed
//! (`DeleteMessageBatch`), delay a failed message's retry (`ChangeMessageVisibility`). On Lambda
//! the service does this; the local stack's AWS workers (`omniline-local`, `AWS_WORKERS=on`) do
//! it with this adapter, around the same batch handler.
//!
//! A FIFO queue never hands out a message of a group while another message of that group is in
//! flight, so any number of consumers keep each group in order; a message received more than the
//! queue's `maxReceiveCount` times goes to its dead-letter queue (the redrive policy), as on
//! Lambda.

use crate::aws_error;
use aws_config::SdkConfig;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use omniline_ports::PortError;
use std::time::Duration;

/// SQS hands out at most ten messages per `ReceiveMessage` and deletes at most ten per
/// `DeleteMessageBatch`.
pub const RECEIVE_BATCH: usize = 10;

/// The longest `WaitTimeSeconds` SQS accepts.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// Empty on a standard queue.
    pub group_id: String,
    /// `ApproximateReceiveCount`: 1 on the first receive.
    pub receive_count: u32,
}

/// Receives from, deletes from and delays messages of one queue.
#[derive(Debug, Clone)]
pub struct SqsConsumer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait: Duration,
}

impl SqsConsumer {
    /// `wait` is the long poll (`WaitTimeSeconds`, at most [`MAX_WAIT`]); zero makes short polls,
    /// which a local endpoint serving one request at a time (moto) needs.
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>, wait: Duration) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.into(),
            wait: wait.min(MAX_WAIT),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// The long poll of [`SqsConsumer::receive`].
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Up to [`RECEIVE_BATCH`] messages, waiting up to the long poll for the first; hidden for
    /// the queue's visibility timeout. Messages without an id or receipt handle (SQS always gives
    /// both) are skipped: they come back after the visibility timeout.
    pub async fn receive(&self) -> Result<Vec<ReceivedMessage>, PortError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(RECEIVE_BATCH as i32)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| aws_error("SQS ReceiveMessage", e))?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|m| {
                let attribute = |name: &MessageSystemAttributeName| {
                    m.attributes().and_then(|a| a.get(name)).cloned()
                };
                Some(ReceivedMessage {
                    message_id: m.message_id()?.to_owned(),
                    receipt_handle: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    group_id: attribute(&MessageSystemAttributeName::MessageGroupId)
                        .unwrap_or_default(),
                    receive_count: attribute(&MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                })
            })
            .collect())
    }

    /// Deletes the messages of these receipt handles, ten per `DeleteMessageBatch`. An entry SQS
    /// refuses (its receipt expired: the message was received again) is an error after the
    /// others are deleted; the message then comes back, and its handler's idempotence absorbs it.
    pub async fn delete(&self, receipts: &[&str]) -> Result<(), PortError> {
        let mut refused = Vec::new();
        for chunk in receipts.chunks(RECEIVE_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(*receipt)
                        .build()
                        .map_err(|e| aws_error("SQS delete entry", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| aws_error("SQS DeleteMessageBatch", e))?;
            refused.extend(output.failed().iter().map(|f| f.code().to_owned()));
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(PortError::PartialBatch {
                failed: refused.len(),
                total: receipts.len(),
                reason: refused.join("; "),
            })
        }
    }

    /// The retry delay of this queue (`ChangeMessageVisibility`), as the Lambdas use it.
    pub fn retry_delay(&self) -> crate::SqsRetryDelay {
        crate::SqsRetryDelay {
            client: self.client.clone(),
            queue_url: self.queue_url.clone(),
        }
    }
}
