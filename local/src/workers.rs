//! Background work of the local stack: the router and the outbound function consuming their
//! embedded queues (the same batch handlers as on Lambda), and the router's schedule (EventBridge
//! on AWS).

use omniline_app::consumer::{BatchHandler, BatchMessage};
use omniline_app::router::RouterService;
use omniline_domain::retry::Backoff;
use omniline_embedded::SqliteEventQueue;
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

/// Runs the router's schedule (auto-close, waiting conversations to free agents) every `every`
/// until `stop` changes.
pub fn spawn_auto_close(
    router: Arc<RouterService>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
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

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(60));
    }
}
