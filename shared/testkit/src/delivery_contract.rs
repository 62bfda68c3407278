//! Contract of every [`omniline_ports::DeliveryStore`], written once and run against each adapter:
//! the union of what the SQLite and DynamoDB adapters' tests asserted.

use omniline_domain::delivery::{Delivery, DeliveryStatus};
use omniline_ports::DeliveryStore;
use std::sync::Arc;

/// A new delivery of account `acc1`.
pub fn delivery(id: &str, conversation_id: &str, retry_key: &str, now: i64) -> Delivery {
    Delivery::new(id, "acc1", conversation_id, retry_key, now)
}

/// `d` as the next version, sent.
pub fn sent(d: &Delivery) -> Delivery {
    Delivery {
        status: DeliveryStatus::Sent,
        reply_attempted: true,
        parts_sent: d.parts_sent + 1,
        request_ids: vec![format!("req-{}", d.version)],
        sent_message_ids: vec!["461230966842064897".into()],
        attempts: d.attempts + 1,
        updated_at: d.updated_at + 1,
        version: d.version + 1,
        ..d.clone()
    }
}

/// The deliveries' ids, in order.
pub fn ids(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.id.as_str()).collect()
}

/// A second `begin` of an id returns the first record: the retry key chosen first is kept.
pub async fn begin_twice_keeps_the_first_retry_key(store: &dyn DeliveryStore) {
    assert_eq!(store.delivery("m1").await.unwrap(), None);
    let first = delivery("m1", "c1", "key-first", 1_700_000_000_000);
    assert_eq!(store.begin(&first).await.unwrap(), first);
    let again = delivery("m1", "c1", "key-second", 1_700_000_001_000);
    let stored = store.begin(&again).await.unwrap();
    assert_eq!(stored, first);
    assert_eq!(stored.retry_key, "key-first");
    assert_eq!(store.delivery("m1").await.unwrap(), Some(first.clone()));
    assert_eq!(
        store.deliveries_for_conversation("c1").await.unwrap(),
        vec![first]
    );
}

/// An update goes through only on top of the stored version; nothing is created by one.
pub async fn update_needs_the_previous_version(store: &dyn DeliveryStore) {
    let d1 = store.begin(&delivery("m1", "c1", "k", 1000)).await.unwrap();
    let d2 = sent(&d1);
    assert!(store.update(&d2).await.unwrap());
    assert_eq!(store.delivery("m1").await.unwrap(), Some(d2.clone()));

    // Stale (built from version 1 again), skipping a version, version 0, missing record.
    let stale = Delivery {
        error: Some("stale".into()),
        ..sent(&d1)
    };
    assert!(!store.update(&stale).await.unwrap());
    assert!(!store.update(&sent(&sent(&d2))).await.unwrap());
    assert!(!store
        .update(&Delivery {
            version: 0,
            ..d2.clone()
        })
        .await
        .unwrap());
    assert!(!store
        .update(&sent(&delivery("m2", "c1", "k", 1)))
        .await
        .unwrap());
    assert_eq!(store.delivery("m1").await.unwrap(), Some(d2.clone()));
    assert_eq!(store.delivery("m2").await.unwrap(), None);
    assert_eq!(
        store.deliveries_for_conversation("c1").await.unwrap(),
        vec![d2.clone()]
    );

    let d3 = Delivery {
        status: DeliveryStatus::Failed,
        error: Some("400 Bad Request: こんにちは 😀".into()),
        ..sent(&d2)
    };
    assert!(store.update(&d3).await.unwrap());
    assert_eq!(store.delivery("m1").await.unwrap(), Some(d3));
}

/// Of eight updates built on one version, exactly one wins.
pub async fn concurrent_updates_exactly_one_wins(store: Arc<dyn DeliveryStore>) {
    let d1 = store.begin(&delivery("m1", "c1", "k", 1000)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            let next = Delivery {
                error: Some(format!("worker {i}")),
                ..sent(&d1)
            };
            tokio::spawn(async move {
                let won = store.update(&next).await.unwrap();
                (next, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (next, won) = task.await.unwrap();
        if won {
            winners.push(next);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update wins");
    assert_eq!(store.delivery("m1").await.unwrap(), winners.pop());
}

/// A conversation's deliveries in creation order (then id); an update keeps its place.
pub async fn listed_per_conversation_in_creation_order(store: &dyn DeliveryStore) {
    for (id, conversation, at) in [
        ("m3", "c1", 3000),
        ("m1", "c1", 1000),
        ("x1", "c2", 500),
        ("m2b", "c1", 2000),
        ("m2a", "c1", 2000),
        ("m0", "c1", 999),
    ] {
        store
            .begin(&delivery(id, conversation, "k", at))
            .await
            .unwrap();
    }
    let c1 = store.deliveries_for_conversation("c1").await.unwrap();
    assert_eq!(ids(&c1), ["m0", "m1", "m2a", "m2b", "m3"]);
    assert!(c1.iter().all(|d| d.conversation_id == "c1"));
    let c2 = store.deliveries_for_conversation("c2").await.unwrap();
    assert_eq!(ids(&c2), ["x1"]);
    assert!(store
        .deliveries_for_conversation("c3")
        .await
        .unwrap()
        .is_empty());

    // An update keeps the record in its place, with its new content.
    let m1 = c1[1].clone();
    assert!(store.update(&sent(&m1)).await.unwrap());
    let c1 = store.deliveries_for_conversation("c1").await.unwrap();
    assert_eq!(ids(&c1), ["m0", "m1", "m2a", "m2b", "m3"]);
    assert_eq!(c1[1], sent(&m1));
}

/// Runs `purge_account_page` of `account` from the start until it has no next page (each page
/// twice from the same cursor when `twice`); how many deliveries it erased in all, and how many
/// pages (counting a page once).
pub async fn purge_to_the_end(
    store: &dyn DeliveryStore,
    account: &str,
    page_size: u32,
    twice: bool,
) -> (u64, usize) {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    for pages in 1..=10_000 {
        let mut page = store
            .purge_account_page(account, cursor.as_deref(), page_size)
            .await
            .unwrap();
        if twice {
            let again = store
                .purge_account_page(account, cursor.as_deref(), page_size)
                .await
                .unwrap();
            page.erased += again.erased;
            page.next = again.next;
        }
        total += page.erased;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (total, pages),
        }
    }
    panic!("the purge of {account}'s deliveries did not end within 10000 pages");
}

/// A purge of `acc1` in pages of `page_size` (each run twice when `twice`) erases its
/// deliveries (updated ones too), listed in any conversation, and nothing of `acc2`; purging
/// again finds nothing; an unknown account has none. Returns how many pages the first purge
/// took.
pub async fn purge_erases_one_accounts_deliveries(
    store: &dyn DeliveryStore,
    page_size: u32,
    twice: bool,
) -> usize {
    for (account, id, conversation, at) in [
        ("acc1", "m1", "c1", 1000),
        ("acc1", "m2", "c1", 2000),
        ("acc1", "m3", "c2", 3000),
        ("acc1", "m4", "c2", 4000),
        ("acc1", "m5", "c2", 5000),
        ("acc2", "x1", "c3", 500),
        ("acc2", "x2", "c3", 600),
    ] {
        store
            .begin(&Delivery::new(id, account, conversation, "k", at))
            .await
            .unwrap();
    }
    // An update (which replaces the document) keeps the record in its account.
    let m1 = store.delivery("m1").await.unwrap().unwrap();
    assert!(store.update(&sent(&m1)).await.unwrap());
    let x1 = store.delivery("x1").await.unwrap().unwrap();
    assert!(store.update(&sent(&x1)).await.unwrap());
    let kept = store.deliveries_for_conversation("c3").await.unwrap();
    assert_eq!(ids(&kept), ["x1", "x2"]);

    let (erased, pages) = purge_to_the_end(store, "acc1", page_size, twice).await;
    assert_eq!(erased, 5);
    for c in ["c1", "c2"] {
        assert!(store
            .deliveries_for_conversation(c)
            .await
            .unwrap()
            .is_empty());
    }
    for id in ["m1", "m2", "m3", "m4", "m5"] {
        assert_eq!(store.delivery(id).await.unwrap(), None, "{id}");
    }
    assert_eq!(store.deliveries_for_conversation("c3").await.unwrap(), kept);

    assert_eq!(purge_to_the_end(store, "acc1", 1000, false).await.0, 0);
    assert_eq!(purge_to_the_end(store, "nope", 1000, false).await.0, 0);
    assert_eq!(purge_to_the_end(store, "acc2", 1000, false).await.0, 2);
    assert!(store
        .deliveries_for_conversation("c3")
        .await
        .unwrap()
        .is_empty());
    pages
}
