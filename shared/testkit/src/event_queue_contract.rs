//! Contract of every [`EventQueue`], written once and run against each adapter (SQLite, and SQS
//! FIFO on moto): the union of what the SQLite and SQS adapters' tests asserted.
//!
//! The port only sends; each scenario takes `drain`, which receives (and deletes) everything
//! queued, the adapter's way.

use omniline_domain::line::envelope::QueueMessage;
use omniline_ports::EventQueue;

/// Message `i` of `group`: deduplication id `01HEVENT{i:018}`, a body with non-ASCII text,
/// a newline and quotes.
pub fn message(group: &str, i: usize) -> QueueMessage {
    QueueMessage {
        group_id: group.to_owned(),
        dedup_id: format!("01HEVENT{i:018}"),
        body: serde_json::json!({"i": i, "text": "こんにちは 😀\n\"q\""}).to_string(),
    }
}

/// 23 messages over two groups (more than one SQS batch of 10), then a redelivery of the first
/// seven (same deduplication ids): each message is queued once, whole, in its group's order.
/// Returns what `drain` received, in its order (adapters check their own ordering across groups).
pub async fn sends_each_message_once_in_group_order(
    queue: &dyn EventQueue,
    drain: impl AsyncFn() -> Vec<QueueMessage>,
) -> Vec<QueueMessage> {
    let messages: Vec<_> = (0..23)
        .map(|i| message(if i % 3 == 0 { "acc:Ua" } else { "acc:Cb" }, i))
        .collect();
    queue.send(&messages).await.unwrap();
    // A redelivery within the deduplication window: dropped.
    queue.send(&messages[..7]).await.unwrap();

    let received = drain().await;
    assert_eq!(received.len(), 23, "each message once");
    for group in ["acc:Ua", "acc:Cb"] {
        let sent: Vec<&QueueMessage> = messages.iter().filter(|m| m.group_id == group).collect();
        let got: Vec<&QueueMessage> = received.iter().filter(|m| m.group_id == group).collect();
        assert_eq!(got, sent, "group {group}: whole, once, in order");
    }
    assert!(received[0].body.contains("こんにちは 😀"));
    assert!(drain().await.is_empty(), "nothing more");
    received
}
