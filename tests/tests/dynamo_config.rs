//! The DynamoDB [`ConfigStore`] and the admin side of the DynamoDB [`WorkstreamStore`] against
//! moto's server (started by `./infra/test.sh`, which sets `OMNILINE_TEST_AWS_ENDPOINT`):
//! optimistic creates, updates and deletes, listing (across pages), the id pointers of
//! workstreams, and the raw item layout.
//!
//! Ignored by a bare `cargo test` (no moto there); the test command runs them with
//! `--include-ignored`, and then a missing endpoint is a failure, not a skip.

use aws_sdk_dynamodb::types::AttributeValue;
use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_domain::workstream::Workstream;
use omniline_ports::{ConfigStore, Expect, PortError, WorkstreamStore};
use omniline_testkit::workstream_contract::{self as contract, workstream};
use omniline_tests::{endpoint, pk_sk_table, sdk_config};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

type Item = HashMap<String, AttributeValue>;

struct Fixture {
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    config: DynamoConfigStore,
    workstreams: DynamoWorkstreamStore,
}

async fn fixture() -> Fixture {
    let config = sdk_config(&endpoint()).await;
    let table = pk_sk_table(&config, "config").await;
    Fixture {
        ddb: aws_sdk_dynamodb::Client::new(&config),
        config: DynamoConfigStore::new(&config, &table),
        workstreams: DynamoWorkstreamStore::new(&config, &table),
        table,
    }
}

impl Fixture {
    async fn raw(&self, pk: &str, sk: &str) -> Option<Item> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_owned()))
            .key("sk", AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    async fn put_raw(&self, item: Item) {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    async fn listed(&self) -> Vec<(String, String)> {
        self.workstreams
            .list_workstreams()
            .await
            .unwrap()
            .into_iter()
            .map(|w| (w.id, w.account_id))
            .collect()
    }
}

fn attr(s: &str) -> AttributeValue {
    AttributeValue::S(s.to_owned())
}

// ---------------------------------------------------------------------------------------------
// ConfigStore

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_config_docs_create_update_delete_with_versions() {
    let f = fixture().await;
    // The ConfigStore contract, as the SQLite adapter's test runs it.
    omniline_testkit::config_store_contract(&f.config).await;
    // The raw item: pk CONFIG#{kind}, sk the id, doc S, version N; a failed update writes none.
    let store = &f.config;
    assert_eq!(
        store
            .put_doc("queue", "raw", r#"{"name":"General"}"#, Expect::Absent)
            .await
            .unwrap(),
        Some(1)
    );
    let item = f.raw("CONFIG#queue", "raw").await.unwrap();
    assert_eq!(item["doc"].as_s().unwrap(), r#"{"name":"General"}"#);
    assert_eq!(item["version"].as_n().unwrap(), "1");
    assert_eq!(
        store
            .put_doc("queue", "ghost", "{}", Expect::Version(1))
            .await
            .unwrap(),
        None
    );
    assert!(f.raw("CONFIG#queue", "ghost").await.is_none());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_config_list_reads_every_page_in_id_order() {
    let f = fixture().await;
    // 30 documents of ~60 KB: more than the 1 MB a Query page holds.
    let filler = "x".repeat(60_000);
    for i in (0..30).rev() {
        let doc = json!({"i": i, "filler": filler}).to_string();
        f.config
            .put_doc("big", &format!("doc-{i:02}"), &doc, Expect::Absent)
            .await
            .unwrap();
    }
    let docs = f.config.list_docs("big").await.unwrap();
    let ids: Vec<_> = docs.iter().map(|d| d.id.clone()).collect();
    let expected: Vec<_> = (0..30).map(|i| format!("doc-{i:02}")).collect();
    assert_eq!(ids, expected);
    assert!(docs.iter().all(|d| d.version == 1 && d.doc.len() > 60_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_config_concurrent_writes_at_one_version_let_one_win() {
    let f = fixture().await;
    let store = Arc::new(f.config.clone());
    store
        .put_doc("settings", "global", "{}", Expect::Absent)
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let doc = format!(r#"{{"writer":{i}}}"#);
                (
                    doc.clone(),
                    store
                        .put_doc("settings", "global", &doc, Expect::Version(1))
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (doc, version) = task.await.unwrap();
        if let Some(version) = version {
            assert_eq!(version, 2);
            winners.push(doc);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get_doc("settings", "global").await.unwrap().unwrap();
    assert_eq!((stored.doc, stored.version), (winners[0].clone(), 2));
}

// ---------------------------------------------------------------------------------------------
// WorkstreamStore

// The WorkstreamStore contract (omniline_testkit::workstream_contract), as the SQLite adapter's
// tests run it, each followed by checks of the items it leaves: the workstream where the router
// reads it (`ACCOUNT#{account}` / `WORKSTREAM`) and the id pointer (`WORKSTREAMS` / id).

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_create_get_list_update_delete() {
    let f = fixture().await;
    let store = &f.workstreams;
    contract::create_get_list_update_delete(store).await;

    // The layout of what is left: ws-c of acc-1, ws-a of acc-2.
    let item = f.raw("ACCOUNT#acc-1", "WORKSTREAM").await.unwrap();
    assert_eq!(item["id"].as_s().unwrap(), "ws-c");
    assert_eq!(item["version"].as_n().unwrap(), "1");
    assert_eq!(
        serde_json::from_str::<Workstream>(item["doc"].as_s().unwrap()).unwrap(),
        workstream("ws-c", "acc-1", 1)
    );
    let pointer = f.raw("WORKSTREAMS", "ws-c").await.unwrap();
    assert_eq!(pointer["accountId"].as_s().unwrap(), "acc-1");
    assert_eq!(
        f.raw("ACCOUNT#acc-2", "WORKSTREAM").await.unwrap()["id"]
            .as_s()
            .unwrap(),
        "ws-a"
    );
    // Deleted, never stored (an update of an unknown id, or for another account): no items.
    assert!(f.raw("WORKSTREAMS", "ws-b").await.is_none());
    assert!(f.raw("WORKSTREAMS", "ws-x").await.is_none());
    assert!(f.raw("ACCOUNT#acc-3", "WORKSTREAM").await.is_none());

    // An update writes the version; a stale one writes nothing.
    let mut c2 = workstream("ws-c", "acc-1", 2);
    c2.name = "Renamed".into();
    assert!(store.save_workstream(&c2, Some(1)).await.unwrap());
    assert_eq!(
        f.raw("ACCOUNT#acc-1", "WORKSTREAM").await.unwrap()["version"]
            .as_n()
            .unwrap(),
        "2"
    );
    assert!(!store
        .save_workstream(&workstream("ws-c", "acc-1", 2), Some(1))
        .await
        .unwrap());
    let item = f.raw("ACCOUNT#acc-1", "WORKSTREAM").await.unwrap();
    assert_eq!(item["version"].as_n().unwrap(), "2");
    assert_eq!(
        serde_json::from_str::<Workstream>(item["doc"].as_s().unwrap()).unwrap(),
        c2
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_create_conflicts_name_the_existing_workstream() {
    let f = fixture().await;
    contract::create_conflicts_name_the_existing_workstream(&f.workstreams).await;
    assert!(
        f.raw("WORKSTREAMS", "ws-2").await.is_none(),
        "nothing written"
    );
    assert!(f.raw("ACCOUNT#acc-2", "WORKSTREAM").await.is_none());
    assert_eq!(
        f.raw("WORKSTREAMS", "ws-1").await.unwrap()["accountId"]
            .as_s()
            .unwrap(),
        "acc-1"
    );
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_updates_check_version_and_account() {
    let f = fixture().await;
    contract::updates_check_version_and_account(&f.workstreams).await;
    assert!(f.raw("ACCOUNT#acc-2", "WORKSTREAM").await.is_none());
    assert!(f.raw("WORKSTREAMS", "ws-x").await.is_none());
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_put_workstream_writes_and_moves_the_pointer() {
    let f = fixture().await;
    contract::put_workstream_replaces_the_accounts_workstream(&f.workstreams).await;
    // A new id for the account: the old pointer went, the new one names the account.
    assert!(f.raw("WORKSTREAMS", "ws-1").await.is_none());
    assert_eq!(
        f.raw("WORKSTREAMS", "ws-2").await.unwrap()["accountId"]
            .as_s()
            .unwrap(),
        "acc-1"
    );
    assert_eq!(
        f.raw("ACCOUNT#acc-1", "WORKSTREAM").await.unwrap()["id"]
            .as_s()
            .unwrap(),
        "ws-2"
    );
    assert!(f.raw("ACCOUNT#acc-2", "WORKSTREAM").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_concurrent_creates_for_one_account_let_one_win() {
    let f = fixture().await;
    contract::concurrent_creates_for_one_account_let_one_win(Arc::new(f.workstreams.clone())).await;
    assert_eq!(f.listed().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_concurrent_updates_at_one_version_let_one_win() {
    let f = fixture().await;
    contract::concurrent_updates_at_one_version_let_one_win(Arc::new(f.workstreams.clone())).await;
    assert_eq!(
        f.raw("ACCOUNT#acc-1", "WORKSTREAM").await.unwrap()["version"]
            .as_n()
            .unwrap(),
        "2"
    );
}

/// DynamoDB only: items written before the id pointers existed, and stale pointers.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_workstreams_written_before_pointers_and_stale_pointers() {
    let f = fixture().await;
    let store = &f.workstreams;
    // A workstream stored before the pointers existed: the router still finds it by account,
    // an update at its version adds the pointer, and a create for its account names it.
    let old = workstream("ws-old", "acc-old", 3);
    f.put_raw(HashMap::from([
        ("pk".to_owned(), attr("ACCOUNT#acc-old")),
        ("sk".to_owned(), attr("WORKSTREAM")),
        ("id".to_owned(), attr("ws-old")),
        ("version".to_owned(), AttributeValue::N("3".into())),
        (
            "doc".to_owned(),
            attr(&serde_json::to_string(&old).unwrap()),
        ),
    ]))
    .await;
    assert_eq!(
        store.workstream_for_account("acc-old").await.unwrap(),
        Some(old.clone())
    );
    match store
        .save_workstream(&workstream("ws-new", "acc-old", 1), None)
        .await
    {
        Err(PortError::Conflict(id)) => assert_eq!(id, "ws-old"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store
        .save_workstream(&workstream("ws-old", "acc-old", 4), Some(3))
        .await
        .unwrap());
    assert_eq!(
        f.raw("WORKSTREAMS", "ws-old").await.unwrap()["accountId"]
            .as_s()
            .unwrap(),
        "acc-old"
    );
    assert_eq!(
        store.workstream("ws-old").await.unwrap().unwrap().version,
        4
    );

    // A pointer whose account has no such workstream is ignored, and a delete clears it.
    f.put_raw(HashMap::from([
        ("pk".to_owned(), attr("WORKSTREAMS")),
        ("sk".to_owned(), attr("ws-stale")),
        ("accountId".to_owned(), attr("acc-old")),
    ]))
    .await;
    assert!(store.workstream("ws-stale").await.unwrap().is_none());
    assert_eq!(
        f.listed().await,
        [("ws-old".to_owned(), "acc-old".to_owned())]
    );
    assert!(!store.delete_workstream("ws-stale").await.unwrap());
    assert!(f.raw("WORKSTREAMS", "ws-stale").await.is_none());
    assert!(f.raw("ACCOUNT#acc-old", "WORKSTREAM").await.is_some());
}

/// The audit trail on DynamoDB: records of two days, read by period (one Query per day), newest
/// first, the period's edges kept.
#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn dynamo_audit_trail_reads_a_period_day_by_day() {
    use omniline_domain::audit::AuditRecord;
    let f = fixture().await;
    let config: &dyn ConfigStore = &f.config;
    // 2026-12-06T23:00Z, 2026-12-07T01:00Z and 2026-12-07T02:00Z.
    let times = [1_796_598_000_000_i64, 1_796_605_200_000, 1_796_608_800_000];
    for (n, at) in times.iter().enumerate() {
        let record = AuditRecord {
            at: *at,
            actor: format!("person{n}@example.com"),
            via: "admin".into(),
            method: "PATCH".into(),
            path: format!("/admin/v1/queues/q{n}"),
            status: 200,
        };
        omniline_app::audit::record(config, &record).await;
    }
    let (all, truncated) = omniline_app::audit::read(config, times[0], times[2])
        .await
        .unwrap();
    assert!(!truncated);
    let paths: Vec<&str> = all.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/admin/v1/queues/q2",
            "/admin/v1/queues/q1",
            "/admin/v1/queues/q0"
        ]
    );
    let (later, _) = omniline_app::audit::read(config, times[1], times[2])
        .await
        .unwrap();
    assert_eq!(later.len(), 2);
    assert!(omniline_app::audit::read(config, times[2], times[0])
        .await
        .is_err());
}
