//! The outbound function on Lambda: SQS batches from the outbound FIFO queue, answered with
//! `SqsBatchResponse`; failed messages come back after a growing delay (ChangeMessageVisibility).

use crate::OutboundService;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::consumer::BatchMessage;

pub use shared::adapters::aws::SqsRetryDelay;
pub use shared::consumer::{backoff, RetryDelay};

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
