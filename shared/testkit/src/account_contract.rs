//! Contract of every [`AccountStore`], written once and run against each adapter (SQLite, and
//! DynamoDB on moto): the union of what the SQLite and DynamoDB adapters' tests asserted.

use omniline_domain::account::{Account, MonthSends, SendCounts, WebhookCounts, WebhookStats};
use omniline_ports::{AccountStore, PortError};

/// Account `id`, created at `created_at` (RFC 3339).
pub fn account(id: &str, created_at: &str) -> Account {
    Account {
        id: id.into(),
        name: format!("Shop {id}"),
        channel_id: "1656789012".into(),
        bot_user_id: format!("U{id}"),
        basic_id: "@shop".into(),
        display_name: "ショップ".into(),
        created_at: created_at.into(),
        updated_at: created_at.into(),
        webhook_disabled: false,
    }
}

/// Created once (`Conflict` for an existing id), listed by creation time, read whole, replaced
/// only when present, counted (webhook counters add up; they are not accounts) and deleted once
/// with their counters.
///
/// Leaves account `b` only.
pub async fn crud_conflicts_and_counters(store: &dyn AccountStore) {
    assert!(store.list().await.unwrap().is_empty());
    store
        .create(&account("b", "2026-11-25T01:00:00.000Z"))
        .await
        .unwrap();
    store
        .create(&account("a", "2026-11-25T00:00:00.000Z"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create(&account("a", "2026-11-25T02:00:00.000Z"))
            .await,
        Err(PortError::Conflict(_))
    ));

    let listed: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["a", "b"]);
    assert_eq!(
        store.get("a").await.unwrap(),
        Some(account("a", "2026-11-25T00:00:00.000Z"))
    );
    assert_eq!(store.get("zzz").await.unwrap(), None);

    let mut a = store.get("a").await.unwrap().unwrap();
    a.name = "Renamed".into();
    a.webhook_disabled = true;
    assert!(store.update(&a).await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), Some(a.clone()));
    assert!(!store
        .update(&account("nope", "2026-11-25T00:00:00.000Z"))
        .await
        .unwrap());
    assert_eq!(store.get("nope").await.unwrap(), None);

    assert_eq!(
        store.webhook_stats("a").await.unwrap(),
        WebhookStats::default()
    );
    store
        .record_webhook(
            "a",
            WebhookCounts {
                received: 3,
                queued: 3,
                rejected: 0,
            },
            1_700_000_000_000,
        )
        .await
        .unwrap();
    store
        .record_webhook(
            "a",
            WebhookCounts {
                received: 0,
                queued: 0,
                rejected: 2,
            },
            1_700_000_000_500,
        )
        .await
        .unwrap();
    let stats = store.webhook_stats("a").await.unwrap();
    assert_eq!((stats.received, stats.queued, stats.rejected), (3, 3, 2));
    assert_eq!(
        stats.last_received_at.as_deref(),
        Some("2023-11-14T22:13:20.500Z")
    );
    assert_eq!(
        store.webhook_stats("b").await.unwrap(),
        WebhookStats::default()
    );
    // Message counts, per month, newest first; the oldest months are dropped.
    assert!(store.send_stats("a").await.unwrap().is_empty());
    let sends = |replies, pushes, failed| SendCounts {
        replies,
        pushes,
        failed,
    };
    store.record_sends("a", "2025-11", sends(1, 0, 0)).await.unwrap();
    store.record_sends("a", "2026-10", sends(5, 1, 0)).await.unwrap();
    store.record_sends("a", "2026-10", sends(2, 0, 1)).await.unwrap();
    store.record_sends("b", "2026-10", sends(0, 9, 0)).await.unwrap();
    let months = |stats: Vec<MonthSends>| {
        stats
            .into_iter()
            .map(|m| (m.month, m.counts))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        months(store.send_stats("a").await.unwrap()),
        [
            ("2026-10".to_owned(), sends(7, 1, 1)),
            ("2025-11".to_owned(), sends(1, 0, 0))
        ]
    );
    // 2026-11 keeps 2025-11 … 2026-11 (13 months); 2026-12 drops 2025-11.
    store.record_sends("a", "2026-11", sends(0, 1, 0)).await.unwrap();
    assert_eq!(store.send_stats("a").await.unwrap().len(), 3);
    store.record_sends("a", "2026-12", sends(1, 0, 0)).await.unwrap();
    assert_eq!(
        months(store.send_stats("a").await.unwrap())
            .into_iter()
            .map(|(m, _)| m)
            .collect::<Vec<_>>(),
        ["2026-12", "2026-11", "2026-10"]
    );
    // Months with no sends in between: what is older than the 13 months ending at the newest
    // is gone all the same.
    store.record_sends("a", "2028-01", sends(0, 0, 1)).await.unwrap();
    assert_eq!(
        months(store.send_stats("a").await.unwrap())
            .into_iter()
            .map(|(m, _)| m)
            .collect::<Vec<_>>(),
        ["2028-01"]
    );
    // Counters are not accounts.
    assert_eq!(store.list().await.unwrap().len(), 2);

    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(
        store.webhook_stats("a").await.unwrap(),
        WebhookStats::default()
    );
    assert!(store.send_stats("a").await.unwrap().is_empty(), "removed with the account");
    assert_eq!(store.send_stats("b").await.unwrap().len(), 1);
    let listed: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["b"]);
}
