//! The outbound function on Lambda: SQS batches from the outbound FIFO queue, answered with
//! `SqsBatchResponse`; failed messages come back after a growing delay (ChangeMessageVisibility).

use crate::OutboundService;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

pub use omniline_app::consumer::backoff;
pub use omniline_aws::SqsRetryDelay;
pub use omniline_ports::RetryDelay;

/// An SQS batch: every message that was not delivered is reported (and delayed), none that was.
pub async fn handle_sqs(
    service: &OutboundService,
    event: SqsEvent,
    delay: &dyn RetryDelay,
) -> SqsBatchResponse {
    omniline_runtime::sqs_batch::handle_sqs(event, Some(delay), service).await
}
