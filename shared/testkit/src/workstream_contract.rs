//! Contract of every [`WorkstreamStore`], written once and run against each adapter (SQLite, and
//! DynamoDB on moto): the union of what the SQLite and DynamoDB adapters' tests asserted.
//! Every scenario starts from an empty store.

use omniline_domain::workstream::Workstream;
use omniline_ports::{PortError, WorkstreamStore};
use serde_json::json;
use std::sync::Arc;

/// Workstream `id` of `account_id` at `version`.
pub fn workstream(id: &str, account_id: &str, version: u64) -> Workstream {
    serde_json::from_value(json!({
        "id": id, "accountId": account_id, "name": format!("Support {id}"), "language": "en",
        "distribution": "push", "defaultQueue": "q-general", "timezone": "Asia/Tokyo",
        "automatedMessages": [
            {"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}.", "enabled": true}
        ],
        "version": version
    }))
    .unwrap()
}

/// Every workstream as (id, account), in the listing's order.
pub async fn listed(store: &dyn WorkstreamStore) -> Vec<(String, String)> {
    store
        .list_workstreams()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.account_id))
        .collect()
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(id, account)| ((*id).to_owned(), (*account).to_owned()))
        .collect()
}

fn expect_conflict(result: Result<bool, PortError>, naming: &str) {
    match result {
        Err(PortError::Conflict(id)) => assert_eq!(id, naming),
        other => panic!("expected a conflict naming {naming}, got {other:?}"),
    }
}

/// Created once, read by id and by account, listed by id, replaced at the stored version only,
/// deleted once; the account can then start again.
///
/// Leaves `ws-a` (account `acc-2`) and `ws-c` (account `acc-1`), both at version 1; no `ws-b`
/// (deleted), no `ws-x`, nothing for `acc-3`.
pub async fn create_get_list_update_delete(store: &dyn WorkstreamStore) {
    assert!(store.workstream("ws-b").await.unwrap().is_none());
    assert!(store
        .workstream_for_account("acc-1")
        .await
        .unwrap()
        .is_none());
    assert!(listed(store).await.is_empty());

    let b = workstream("ws-b", "acc-1", 1);
    let a = workstream("ws-a", "acc-2", 1);
    assert!(store.save_workstream(&b, None).await.unwrap());
    assert!(store.save_workstream(&a, None).await.unwrap());
    assert_eq!(store.workstream("ws-b").await.unwrap(), Some(b.clone()));
    assert_eq!(
        store.workstream_for_account("acc-1").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.workstream_for_account("acc-2").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        listed(store).await,
        pairs(&[("ws-a", "acc-2"), ("ws-b", "acc-1")])
    );
    assert_eq!(store.list_workstreams().await.unwrap(), [a, b.clone()]);

    // Update at the stored version; the same expected version again is stale, and so are
    // another account and an unknown id.
    let mut b2 = b.clone();
    b2.name = "Renamed".into();
    b2.version = 2;
    assert!(store.save_workstream(&b2, Some(1)).await.unwrap());
    assert_eq!(store.workstream("ws-b").await.unwrap(), Some(b2.clone()));
    assert_eq!(
        store.workstream_for_account("acc-1").await.unwrap(),
        Some(b2.clone())
    );
    let mut stale = b.clone();
    stale.name = "Lost update".into();
    stale.version = 2;
    assert!(!store.save_workstream(&stale, Some(1)).await.unwrap());
    assert!(!store
        .save_workstream(&workstream("ws-b", "acc-3", 3), Some(2))
        .await
        .unwrap());
    assert!(store
        .workstream_for_account("acc-3")
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .save_workstream(&workstream("ws-x", "acc-1", 3), Some(2))
        .await
        .unwrap());
    assert!(store.workstream("ws-x").await.unwrap().is_none());
    assert_eq!(store.workstream("ws-b").await.unwrap(), Some(b2.clone()));
    assert_eq!(
        store.workstream("ws-b").await.unwrap().unwrap().name,
        "Renamed"
    );

    // Delete: true once, then false; the account has none; the other is untouched.
    assert!(store.delete_workstream("ws-b").await.unwrap());
    assert!(!store.delete_workstream("ws-b").await.unwrap());
    assert!(store.workstream("ws-b").await.unwrap().is_none());
    assert!(store
        .workstream_for_account("acc-1")
        .await
        .unwrap()
        .is_none());
    assert_eq!(listed(store).await, pairs(&[("ws-a", "acc-2")]));
    // An update of a deleted workstream is stale (and writes nothing); the account can have a
    // new one.
    assert!(!store.save_workstream(&b2, Some(2)).await.unwrap());
    assert!(store
        .workstream_for_account("acc-1")
        .await
        .unwrap()
        .is_none());
    assert!(store
        .save_workstream(&workstream("ws-c", "acc-1", 1), None)
        .await
        .unwrap());
    assert_eq!(
        listed(store).await,
        pairs(&[("ws-a", "acc-2"), ("ws-c", "acc-1")])
    );
}

/// A create for an account that has a workstream, or under another account's id, is a conflict
/// naming the existing workstream, and writes nothing.
///
/// Leaves `ws-1` of `acc-1` only.
pub async fn create_conflicts_name_the_existing_workstream(store: &dyn WorkstreamStore) {
    assert!(store
        .save_workstream(&workstream("ws-1", "acc-1", 1), None)
        .await
        .unwrap());
    // The account has one already.
    expect_conflict(
        store
            .save_workstream(&workstream("ws-2", "acc-1", 1), None)
            .await,
        "ws-1",
    );
    assert!(store.workstream("ws-2").await.unwrap().is_none());
    // The id is another account's.
    expect_conflict(
        store
            .save_workstream(&workstream("ws-1", "acc-2", 1), None)
            .await,
        "ws-1",
    );
    assert!(store
        .workstream_for_account("acc-2")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.workstream("ws-1").await.unwrap(),
        Some(workstream("ws-1", "acc-1", 1))
    );
    assert_eq!(listed(store).await, pairs(&[("ws-1", "acc-1")]));
}

/// An update needs the stored version, and never changes the account.
pub async fn updates_check_version_and_account(store: &dyn WorkstreamStore) {
    assert!(store
        .save_workstream(&workstream("ws-1", "acc-1", 3), None)
        .await
        .unwrap());
    // Wrong version.
    assert!(!store
        .save_workstream(&workstream("ws-1", "acc-1", 3), Some(2))
        .await
        .unwrap());
    // Right version, another account: the account never changes.
    assert!(!store
        .save_workstream(&workstream("ws-1", "acc-2", 4), Some(3))
        .await
        .unwrap());
    // Unknown id.
    assert!(!store
        .save_workstream(&workstream("ws-x", "acc-1", 4), Some(3))
        .await
        .unwrap());
    assert_eq!(store.workstream("ws-1").await.unwrap().unwrap().version, 3);
    assert!(store
        .workstream_for_account("acc-2")
        .await
        .unwrap()
        .is_none());
    assert!(store.workstream("ws-x").await.unwrap().is_none());
    assert!(store
        .save_workstream(&workstream("ws-1", "acc-1", 4), Some(3))
        .await
        .unwrap());
    assert_eq!(
        store.workstream("ws-1").await.unwrap(),
        Some(workstream("ws-1", "acc-1", 4))
    );
    assert_eq!(listed(store).await, pairs(&[("ws-1", "acc-1")]));
}

/// `put_workstream` replaces the account's workstream whatever the version, even under a new id
/// (the old id is gone); an id held by another account's workstream is refused.
///
/// Leaves `ws-2` of `acc-1` only; nothing for `acc-2`.
pub async fn put_workstream_replaces_the_accounts_workstream(store: &dyn WorkstreamStore) {
    store
        .put_workstream(&workstream("ws-1", "acc-1", 1))
        .await
        .unwrap();
    assert_eq!(listed(store).await, pairs(&[("ws-1", "acc-1")]));
    // Unconditional as to versions.
    store
        .put_workstream(&workstream("ws-1", "acc-1", 7))
        .await
        .unwrap();
    assert_eq!(store.workstream("ws-1").await.unwrap().unwrap().version, 7);
    // A new id for the account: the old one goes.
    store
        .put_workstream(&workstream("ws-2", "acc-1", 1))
        .await
        .unwrap();
    assert!(store.workstream("ws-1").await.unwrap().is_none());
    assert_eq!(
        store.workstream_for_account("acc-1").await.unwrap(),
        Some(workstream("ws-2", "acc-1", 1))
    );
    assert_eq!(listed(store).await, pairs(&[("ws-2", "acc-1")]));
    // Another account's id is refused.
    assert!(matches!(
        store.put_workstream(&workstream("ws-2", "acc-2", 1)).await,
        Err(PortError::Conflict(id)) if id == "ws-2"
    ));
    assert!(store
        .workstream_for_account("acc-2")
        .await
        .unwrap()
        .is_none());
    assert_eq!(listed(store).await, pairs(&[("ws-2", "acc-1")]));
}

/// Eight writers (from a barrier) update one workstream at one version: exactly one wins, and
/// its write is stored.
pub async fn concurrent_updates_at_one_version_let_one_win(store: Arc<dyn WorkstreamStore>) {
    assert!(store
        .save_workstream(&workstream("ws-1", "acc-1", 1), None)
        .await
        .unwrap());
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let mut ws = workstream("ws-1", "acc-1", 2);
                ws.name = format!("writer {i}");
                let won = store.save_workstream(&ws, Some(1)).await.unwrap();
                (ws, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (ws, won) = task.await.unwrap();
        if won {
            winners.push(ws);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(store.workstream("ws-1").await.unwrap(), winners.pop());
}

/// Six writers (from a barrier) create a workstream for one account under six ids: exactly one
/// wins, every other gets a conflict naming the winner, and only the winner is stored.
pub async fn concurrent_creates_for_one_account_let_one_win(store: Arc<dyn WorkstreamStore>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let id = format!("ws-{i}");
                let result = store
                    .save_workstream(&workstream(&id, "acc-1", 1), None)
                    .await;
                (id, result)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let winners: Vec<&str> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(true)))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(winners.len(), 1, "results: {results:?}");
    let winner = winners[0];
    for (id, result) in &results {
        if id != winner {
            match result {
                Err(PortError::Conflict(existing)) => assert_eq!(existing, winner),
                other => panic!("{id}: expected a conflict, got {other:?}"),
            }
        }
    }
    assert_eq!(listed(store.as_ref()).await, pairs(&[(winner, "acc-1")]));
    assert_eq!(
        store.workstream_for_account("acc-1").await.unwrap(),
        Some(workstream(winner, "acc-1", 1))
    );
}
