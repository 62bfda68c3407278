//! The outbound function on Lambda: SQS batches from the outbound FIFO queue, answered with
//! `SqsBatchResponse`; failed messages come back after a growing delay (ChangeMessageVisibility).

use crate::OutboundService;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::consumer::BatchMessage;
use std::time::Duration;

/// Delay before a failed message is tried again: 5 s, 10 s, 20 s … up to 15 minutes.
pub fn backoff(receive_count: u32) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(8);
    Duration::from_secs(5u64 << exponent).min(Duration::from_secs(900))
}

/// Makes a received message visible again later.
#[async_trait]
pub trait RetryDelay: Send + Sync {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration);
}

/// [`RetryDelay`] on SQS (`ChangeMessageVisibility`).
pub struct SqsRetryDelay {
    pub client: aws_sdk_sqs::Client,
    pub queue_url: String,
}

#[async_trait]
impl RetryDelay for SqsRetryDelay {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
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

/// An SQS batch: every message that was not delivered is reported (and delayed), none that was.
pub async fn handle_sqs(
    service: &OutboundService,
    event: SqsEvent,
    delay: &dyn RetryDelay,
) -> SqsBatchResponse {
    let mut batch = Vec::with_capacity(event.records.len());
    let mut receipts = Vec::with_capacity(event.records.len());
    let mut unreadable = Vec::new();
    for record in event.records {
        let Some(message_id) = record.message_id.clone() else {
            unreadable.push(String::new());
            continue;
        };
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let group_id = record
            .attributes
            .get("MessageGroupId")
            .cloned()
            .unwrap_or_default();
        // A record without a body fails as malformed, in its place, holding back its group.
        receipts.push((
            message_id.clone(),
            record.receipt_handle.clone(),
            receive_count,
        ));
        batch.push(BatchMessage {
            message_id,
            group_id,
            body: record.body.unwrap_or_default(),
        });
    }
    let outcome = service.handle_batch(&batch).await;
    for (id, receipt, count) in &receipts {
        if let (true, Some(receipt)) = (outcome.failed.contains(id), receipt) {
            delay.retry_after(receipt, backoff(*count)).await;
        }
    }
    let mut response = SqsBatchResponse::default();
    for id in unreadable.into_iter().chain(outcome.failed) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_fifteen_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(5), Duration::from_secs(80));
        assert_eq!(backoff(40), Duration::from_secs(900));
    }
}
