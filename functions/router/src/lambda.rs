//! The router on Lambda: SQS batches from the inbound FIFO queue (answered with
//! `SqsBatchResponse`, listing exactly the failed message ids) and the scheduled auto-close.

use crate::RouterService;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use omniline_ports::RetryDelay;
use serde_json::{json, Value};

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

/// [`handle`], delaying each failed message's retry by [`omniline_app::consumer::backoff`] (5 s, 10 s, … 15 min) with
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
    omniline_runtime::sqs_batch::handle_sqs(event, delay, router).await
}
