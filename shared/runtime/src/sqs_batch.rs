//! An SQS batch on Lambda, for every SQS consumer (the router, the outbound sender): the records
//! become [`BatchMessage`]s with their receive counts, the use case handles them (FIFO group
//! semantics: [`omniline_app::consumer::process_fifo_batch`]), each failed message is delayed by
//! [`backoff`] when a [`RetryDelay`] is given, and the answer is an `SqsBatchResponse` listing
//! exactly the failed message ids.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use omniline_app::consumer::{backoff, BatchHandler, BatchMessage};
use omniline_ports::RetryDelay;

/// Runs `handler` over the batch and reports exactly what failed. A record without a message id
/// cannot be reported by id: it is reported with an empty id, which makes Lambda retry the whole
/// batch. A record without a body fails as malformed, in its place, holding back its group.
pub async fn handle_sqs(
    event: SqsEvent,
    delay: Option<&dyn RetryDelay>,
    handler: &dyn BatchHandler,
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
        receipts.push((
            message_id.clone(),
            record.receipt_handle.clone(),
            receive_count,
        ));
        batch.push((
            BatchMessage {
                message_id,
                group_id,
                body: record.body.unwrap_or_default(),
            },
            receive_count,
        ));
    }
    let outcome = handler.handle(&batch).await;
    if let Some(delay) = delay {
        for (id, receipt, count) in &receipts {
            if let (true, Some(receipt)) = (outcome.failed.contains(id), receipt) {
                delay.retry_after(receipt, backoff(*count)).await;
            }
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
