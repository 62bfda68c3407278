//! The router on Lambda: SQS batches from the inbound FIFO queue (answered with
//! `SqsBatchResponse`, listing exactly the failed message ids) and the scheduled auto-close.

use crate::RouterService;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};
use shared::consumer::{backoff, BatchMessage, RetryDelay};

/// Which invocation this is.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("not an SQS batch nor a scheduled event: {0}")]
    Unrecognised(String),
    #[error("scheduled run failed: {0}")]
    Schedule(#[from] crate::RouteError),
}

/// Handles one invocation: an SQS batch or an EventBridge schedule tick. Failed messages come
/// back after the queue's visibility timeout.
pub async fn handle(router: &RouterService, payload: Value) -> Result<Value, InvocationError> {
    handle_with_retry(router, payload, None).await
}

/// [`handle`], delaying each failed message's retry by [`backoff`] (5 s, 10 s, … 15 min) with
/// `delay` rather than leaving it to the visibility timeout (which holds back its FIFO group).
pub async fn handle_with_retry(
    router: &RouterService,
    payload: Value,
    delay: Option<&dyn RetryDelay>,
) -> Result<Value, InvocationError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| InvocationError::Unrecognised(e.to_string()))?;
        let response = handle_sqs(router, event, delay).await;
        return serde_json::to_value(response)
            .map_err(|e| InvocationError::Unrecognised(e.to_string()));
    }
    let scheduled = payload.get("source").and_then(Value::as_str) == Some("aws.events")
        || payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    if scheduled {
        let outcome = router.run_schedule().await?;
        return Ok(json!({ "closed": outcome.closed, "assigned": outcome.assigned }));
    }
    Err(InvocationError::Unrecognised(
        "unexpected payload shape".into(),
    ))
}

/// An SQS batch: every message that was not processed is reported, none that was.
pub async fn handle_sqs(
    router: &RouterService,
    event: SqsEvent,
    delay: Option<&dyn RetryDelay>,
) -> SqsBatchResponse {
    let mut batch = Vec::with_capacity(event.records.len());
    let mut receipts = Vec::with_capacity(event.records.len());
    let mut unreadable = Vec::new();
    for record in event.records {
        let Some(message_id) = record.message_id.clone() else {
            // Without an id it cannot be reported; the whole batch is retried instead.
            unreadable.push(String::new());
            continue;
        };
        let receive_count = record
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
        // A record without a body fails as malformed, in its place, holding back its group.
        let body = record.body.unwrap_or_default();
        batch.push((
            BatchMessage {
                message_id,
                group_id,
                body,
            },
            receive_count,
        ));
    }
    let outcome = router.handle_batch(&batch).await;
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
