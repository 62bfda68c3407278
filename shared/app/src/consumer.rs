//! Consuming a FIFO queue batch, the same way on Lambda (SQS event source, answered with
//! `SqsBatchResponse`) and in the local stack (the embedded queue).
//!
//! Messages are handled in order. When one fails, it and every later message of its group are
//! reported as failed (they must not overtake it); other groups go on. Nothing is reported as a
//! success unless its handler returned `Ok`.

use omniline_domain::retry::Backoff;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMessage {
    pub message_id: String,
    pub group_id: String,
    pub body: String,
}

/// The outcome of one batch: the ids to report as failed, in batch order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: Vec<String>,
    pub succeeded: Vec<String>,
}

/// Runs `handle` over `messages` in order with FIFO group semantics.
pub async fn process_fifo_batch<F, Fut, E>(messages: &[BatchMessage], mut handle: F) -> BatchOutcome
where
    F: FnMut(&BatchMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut outcome = BatchOutcome::default();
    for message in messages {
        if blocked.contains(message.group_id.as_str()) {
            outcome.failed.push(message.message_id.clone());
            continue;
        }
        match handle(message).await {
            Ok(()) => outcome.succeeded.push(message.message_id.clone()),
            Err(e) => {
                tracing::warn!(
                    message_id = %message.message_id,
                    group_id = %message.group_id,
                    error = %e,
                    "message failed; it and the rest of its group will be retried"
                );
                blocked.insert(message.group_id.as_str());
                outcome.failed.push(message.message_id.clone());
            }
        }
    }
    outcome
}

/// A queue consumer's use case: messages with their receive counts in, the failed ids out. The
/// router and the outbound sender are both; the SQS adapter (`omniline_runtime::sqs_batch`) and
/// the local stack's workers drive them through it.
pub trait BatchHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        batch: &'a [(BatchMessage, u32)],
    ) -> Pin<Box<dyn Future<Output = BatchOutcome> + Send + 'a>>;
}

impl BatchHandler for crate::router::RouterService {
    fn handle<'a>(
        &'a self,
        batch: &'a [(BatchMessage, u32)],
    ) -> Pin<Box<dyn Future<Output = BatchOutcome> + Send + 'a>> {
        Box::pin(self.handle_batch(batch))
    }
}

impl BatchHandler for crate::outbound::OutboundService {
    fn handle<'a>(
        &'a self,
        batch: &'a [(BatchMessage, u32)],
    ) -> Pin<Box<dyn Future<Output = BatchOutcome> + Send + 'a>> {
        Box::pin(async move {
            let messages: Vec<BatchMessage> = batch.iter().map(|(m, _)| m.clone()).collect();
            self.handle_batch(&messages).await
        })
    }
}

/// How a failed queue message is retried on SQS: 5 s, 10 s, 20 s … up to 15 minutes.
pub const QUEUE_RETRY: Backoff = Backoff::exponential(
    std::time::Duration::from_secs(5),
    std::time::Duration::from_secs(900),
);

/// Delay before a failed message is tried again ([`QUEUE_RETRY`]).
pub fn backoff(receive_count: u32) -> std::time::Duration {
    QUEUE_RETRY.delay(receive_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, group: &str) -> BatchMessage {
        BatchMessage {
            message_id: id.into(),
            group_id: group.into(),
            body: id.into(),
        }
    }

    #[tokio::test]
    async fn a_failure_holds_back_the_rest_of_its_group_only() {
        let batch = [
            m("1", "a"),
            m("2", "b"),
            m("3", "a"),
            m("4", "b"),
            m("5", "a"),
            m("6", "c"),
        ];
        let mut seen = Vec::new();
        let outcome = process_fifo_batch(&batch, |msg| {
            seen.push(msg.message_id.clone());
            let fail = msg.message_id == "3";
            async move {
                if fail {
                    Err("poison")
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(
            seen,
            ["1", "2", "3", "4", "6"],
            "5 is not attempted after 3 failed"
        );
        assert_eq!(outcome.failed, ["3", "5"]);
        assert_eq!(outcome.succeeded, ["1", "2", "4", "6"]);
    }

    #[tokio::test]
    async fn all_succeed_reports_nothing_failed() {
        let batch = [m("1", "a"), m("2", "a")];
        let outcome = process_fifo_batch(&batch, |_| async { Ok::<(), String>(()) }).await;
        assert!(outcome.failed.is_empty());
        assert_eq!(outcome.succeeded.len(), 2);
    }

    #[tokio::test]
    async fn the_first_message_failing_fails_its_whole_group() {
        let batch = [m("1", "a"), m("2", "a"), m("3", "a")];
        let outcome = process_fifo_batch(&batch, |_| async { Err::<(), _>("down") }).await;
        assert_eq!(outcome.failed, ["1", "2", "3"]);
    }

    #[test]
    fn retries_back_off_up_to_fifteen_minutes() {
        use std::time::Duration;
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(5), Duration::from_secs(80));
        assert_eq!(backoff(40), Duration::from_secs(900));
    }
}
