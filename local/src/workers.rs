//! Background work of the local stack: the router and the outbound function consuming their
//! queues (the same batch handlers as on Lambda): the embedded queues, or the SQS queues on the
//! AWS backend with `AWS_WORKERS=on` ([`spawn_sqs_consumer`], what Lambda's event source mapping
//! does); and the router's schedule (EventBridge on AWS).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use omniline_app::consumer::{BatchHandler, BatchMessage};
use omniline_app::router::RouterService;
use omniline_aws::sqs_consumer::{ReceivedMessage, SqsConsumer};
use omniline_domain::retry::Backoff;
use omniline_embedded::SqliteEventQueue;
use omniline_ports::RetryDelay;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a received message stays hidden while the router works on it.
const VISIBILITY: Duration = Duration::from_secs(60);
/// Idle poll interval of the embedded queue (a send in this process wakes consumers at once).
const POLL: Duration = Duration::from_millis(100);
/// How often idle conversations are closed.
pub const AUTO_CLOSE_EVERY: Duration = Duration::from_secs(60);

/// How a failed message of the embedded queues is retried: 1 s, 2 s, 4 s … up to a minute.
pub const LOCAL_QUEUE_RETRY: Backoff =
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60));

/// Retry delay of a failed message ([`LOCAL_QUEUE_RETRY`]).
pub fn backoff(receive_count: u32) -> Duration {
    LOCAL_QUEUE_RETRY.delay(receive_count)
}

/// Consumes `queue` with `handler` until `stop` changes: successes are deleted, failures come
/// back after [`backoff`].
pub fn spawn_consumer<H: BatchHandler + ?Sized>(
    handler: Arc<H>,
    queue: SqliteEventQueue,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            // Registered before receiving, so a message sent meanwhile wakes us.
            let db = queue.db().clone();
            let sent = db.message_sent();
            tokio::pin!(sent);
            sent.as_mut().enable();
            let received = match queue.receive(10, VISIBILITY).await {
                Ok(received) => received,
                Err(e) => {
                    tracing::error!(queue = queue.name(), error = %e, "queue unavailable");
                    Vec::new()
                }
            };
            if received.is_empty() {
                // A send in this process wakes us at once; the poll covers messages becoming
                // visible again and other processes' sends.
                tokio::select! {
                    _ = &mut sent => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            let batch: Vec<(BatchMessage, u32)> = received
                .iter()
                .map(|m| {
                    let message = BatchMessage {
                        message_id: m.message_id.clone(),
                        group_id: m.group_id.clone(),
                        body: m.body.clone(),
                    };
                    (message, m.receive_count)
                })
                .collect();
            let outcome = handler.handle(&batch).await;
            // Successes in one transaction; failures come back after their backoff.
            let done: Vec<String> = received
                .iter()
                .filter(|m| !outcome.failed.contains(&m.message_id))
                .map(|m| m.receipt.clone())
                .collect();
            if let Err(e) = queue.delete_many(&done).await {
                tracing::error!(queue = queue.name(), error = %e, "queue unavailable");
            }
            for m in received
                .iter()
                .filter(|m| outcome.failed.contains(&m.message_id))
            {
                if let Err(e) = queue
                    .change_visibility(&m.receipt, backoff(m.receive_count))
                    .await
                {
                    tracing::error!(queue = queue.name(), error = %e, "queue unavailable");
                }
            }
        }
    })
}

/// Pause after an empty short poll (`SQS_WAIT_SECONDS=0`) or a failed receive.
const SQS_IDLE: Duration = Duration::from_millis(200);

/// Consumes an SQS queue with `handler` until `stop` changes, as Lambda's event source mapping
/// with `ReportBatchItemFailures` drives a function: a batch of up to ten goes through
/// [`omniline_runtime::sqs_batch::handle_sqs`] (the Lambdas' own adapter: FIFO groups stop at
/// their first failure, each failed message is delayed by `retry`), every message not reported
/// failed is deleted, the failed ones come back after their delay and, past the queue's
/// `maxReceiveCount`, go to its dead-letter queue. A FIFO group is never in flight in two
/// consumers at once: SQS does not hand it out while one of its messages is.
pub fn spawn_sqs_consumer<H: BatchHandler>(
    handler: Arc<H>,
    queue: SqsConsumer,
    retry: Arc<dyn RetryDelay>,
    metered: Option<(crate::meter::Invocations, &'static str)>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            let received = tokio::select! {
                received = queue.receive() => received,
                // A message received by an abandoned call comes back after the visibility timeout.
                _ = stop.changed() => return,
            };
            let received = match received {
                Ok(received) => received,
                Err(e) => {
                    tracing::error!(queue = queue.queue_url(), error = %e, "queue unavailable");
                    // A pause before the next receive, whatever the long poll: no tight loop
                    // against a queue that fails at once.
                    tokio::select! {
                        _ = tokio::time::sleep(SQS_IDLE) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            };
            if received.is_empty() {
                if queue.wait().is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(SQS_IDLE) => {}
                        _ = stop.changed() => return,
                    }
                }
                continue;
            }
            let started = std::time::Instant::now();
            let response = omniline_runtime::sqs_batch::handle_sqs(
                sqs_event(&received),
                Some(retry.as_ref()),
                handler.as_ref(),
            )
            .await;
            // One batch is one Lambda invocation.
            if let Some((invocations, function)) = &metered {
                invocations.record(function, started.elapsed());
            }
            let done = processed(&received, &response);
            if let Err(e) = queue.delete(&done).await {
                // Those come back and are found processed (the handlers are idempotent).
                tracing::error!(queue = queue.queue_url(), error = %e, "could not delete processed messages");
            }
        }
    })
}

/// The batch Lambda would be invoked with.
fn sqs_event(received: &[ReceivedMessage]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = received
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = Some(m.message_id.clone());
            record.receipt_handle = Some(m.receipt_handle.clone());
            record.body = Some(m.body.clone());
            record.attributes = [
                (
                    "ApproximateReceiveCount".to_owned(),
                    m.receive_count.to_string(),
                ),
                ("MessageGroupId".to_owned(), m.group_id.clone()),
            ]
            .into_iter()
            .collect();
            record
        })
        .collect();
    event
}

/// The receipts to delete after `response`, as the event source mapping reads it: every message
/// not reported failed; none when a failure has an empty id (the whole batch is retried).
fn processed<'a>(received: &'a [ReceivedMessage], response: &SqsBatchResponse) -> Vec<&'a str> {
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    if failed.contains("") {
        return Vec::new();
    }
    received
        .iter()
        .filter(|m| !failed.contains(m.message_id.as_str()))
        .map(|m| m.receipt_handle.as_str())
        .collect()
}

/// A queue's retry delays at `percent` of those given (the Lambdas' [`omniline_app::consumer::QUEUE_RETRY`]):
/// `SQS_RETRY_PERCENT`, for a run on a local endpoint that should not wait minutes.
pub struct ScaledRetryDelay<D> {
    pub inner: D,
    pub percent: u32,
}

#[async_trait::async_trait]
impl<D: RetryDelay> RetryDelay for ScaledRetryDelay<D> {
    async fn retry_after(&self, receipt_handle: &str, delay: Duration) {
        let scaled = delay * self.percent / 100;
        self.inner.retry_after(receipt_handle, scaled).await
    }
}

/// Runs the router's schedule (auto-close, waiting conversations to free agents) every `every`,
/// the first time `every` after the start, until `stop` changes.
pub fn spawn_auto_close(
    router: Arc<RouterService>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        // The first run a period after the start, as a schedule's: not in the middle of what
        // the stack is being set up for.
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(e) = router.run_schedule().await {
                        tracing::error!(error = %e, "scheduled run failed");
                    }
                }
                _ = stop.changed() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(id: &str, group: &str) -> ReceivedMessage {
        ReceivedMessage {
            message_id: id.into(),
            receipt_handle: format!("r-{id}"),
            body: format!("body {id}"),
            group_id: group.into(),
            receive_count: 2,
        }
    }

    fn failures(ids: &[&str]) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for id in ids {
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = (*id).to_owned();
            response.batch_item_failures.push(failure);
        }
        response
    }

    #[test]
    fn a_received_batch_is_the_event_lambda_would_get() {
        let event = sqs_event(&[received("m1", "g1")]);
        let record = &event.records[0];
        assert_eq!(record.message_id.as_deref(), Some("m1"));
        assert_eq!(record.receipt_handle.as_deref(), Some("r-m1"));
        assert_eq!(record.body.as_deref(), Some("body m1"));
        assert_eq!(record.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(record.attributes["MessageGroupId"], "g1");
    }

    #[test]
    fn every_message_not_reported_failed_is_deleted() {
        let batch = [received("a", "g"), received("b", "g"), received("c", "h")];
        assert_eq!(processed(&batch, &failures(&[])), ["r-a", "r-b", "r-c"]);
        assert_eq!(processed(&batch, &failures(&["b"])), ["r-a", "r-c"]);
    }

    #[test]
    fn an_empty_failure_id_retries_the_whole_batch() {
        let batch = [received("a", "g"), received("b", "h")];
        assert!(processed(&batch, &failures(&[""])).is_empty());
    }

    #[tokio::test]
    async fn retry_delays_are_scaled() {
        use std::sync::Mutex;
        #[derive(Default, Clone)]
        struct Seen(Arc<Mutex<Vec<Duration>>>);
        #[async_trait::async_trait]
        impl RetryDelay for Seen {
            async fn retry_after(&self, _receipt: &str, delay: Duration) {
                self.0.lock().unwrap().push(delay);
            }
        }
        let seen = Seen::default();
        let scaled = ScaledRetryDelay {
            inner: seen.clone(),
            percent: 20,
        };
        scaled.retry_after("r", Duration::from_secs(5)).await;
        scaled.retry_after("r", Duration::from_secs(40)).await;
        assert_eq!(
            *seen.0.lock().unwrap(),
            [Duration::from_secs(1), Duration::from_secs(8)]
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(60));
    }
}
