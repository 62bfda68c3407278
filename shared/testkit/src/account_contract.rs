//! Contract of every [`AccountStore`], written once and run against each adapter (SQLite, and
//! DynamoDB on moto): the union of what the SQLite and DynamoDB adapters' tests asserted.

use omniline_domain::account::{Account, WebhookCounts, WebhookStats};
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
    // Counters are not accounts.
    assert_eq!(store.list().await.unwrap().len(), 2);

    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
    assert_eq!(store.get("a").await.unwrap(), None);
    assert_eq!(
        store.webhook_stats("a").await.unwrap(),
        WebhookStats::default()
    );
    let listed: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(listed, ["b"]);
}
