//! Delaying a failed queue message's retry.

/// Makes a received message visible again later (SQS: `ChangeMessageVisibility`), so a failed
/// message is retried after [`backoff`] rather than after the queue's visibility timeout.
#[async_trait::async_trait]
pub trait RetryDelay: Send + Sync {
    async fn retry_after(&self, receipt_handle: &str, delay: std::time::Duration);
}
