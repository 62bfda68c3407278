//! No request path Scans: every DynamoDB operation the adapters send on behalf of a request (the
//! webhook, the router, the outbound function, the agent and admin APIs) is a GetItem, a
//! BatchGetItem, a Query or a write, never a `Scan`, whose cost follows the table, not the
//! request. Checked on the wire: the SDK's HTTP client is wrapped (`omniline_aws::meter::WireMeter`) to
//! record the operation of every request (`DynamoDB_20120810.Scan`, …) while the port contracts run on the AWS
//! adapters against moto, with every request-path method of `ConversationStore`, `AgentStore`,
//! `WorkstreamStore`, `AccountStore`, `ConfigStore` and `DeliveryStore` (and the SQS and
//! Secrets Manager adapters), and the admin API's side of an account purge (recording the job,
//! reading its status). The control: the named background jobs (the index backfills, the pages
//! of an account purge, run by the purge job's runner on the schedule), which do Scan, are seen
//! doing it, so the recorder can fail the test.
//!
//! Ignored by a bare `cargo test` (no moto there); `./infra/test.sh` runs it with
//! `--include-ignored` against moto (`OMNILINE_TEST_AWS_ENDPOINT`).

use aws_config::SdkConfig;
use omniline_app::jobs::{JobBudget, JobStatus, PurgeDeps, PurgeJobs};
use omniline_aws::config_docs::DynamoConfigStore;
use omniline_aws::dynamo_agents::DynamoAgentStore;
use omniline_aws::dynamo_conversations::DynamoConversationStore;
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::meter::{MeterSnapshot, WireMeter};
use omniline_aws::s3::S3ObjectStore;
use omniline_aws::workstreams::DynamoWorkstreamStore;
use omniline_aws::{DynamoAccountStore, SecretsManagerStore, SqsEventQueue};
use omniline_domain::conversation::{ConversationFilter, ConversationState};
use omniline_ports::{AgentStore, ConversationStore, DeliveryStore, EventQueue};
use omniline_testkit::conversation_contract as conversations;
use omniline_tests::{bucket, endpoint, fifo_queue, pk_sk_table, sdk_config, unique};
use std::sync::{Arc, Mutex};

/// The requests the wire meter (`omniline_aws::meter`, the SDK's HTTP client wrapped) saw, as
/// `X-Amz-Target` names (`DynamoDB_20120810.Scan`, …).
struct Targets {
    meter: WireMeter,
    seen: Mutex<MeterSnapshot>,
}

impl Targets {
    /// The requests sent since the last call, one name per request.
    fn take(&self) -> Vec<String> {
        let now = self.meter.snapshot();
        let mut seen = self.seen.lock().expect("targets");
        let new = now.since(&seen);
        *seen = now;
        new.operations
            .iter()
            .flat_map(|o| {
                let prefix = match o.service.as_str() {
                    "dynamodb" => "DynamoDB_20120810",
                    "sqs" => "AmazonSQS",
                    other => other,
                };
                std::iter::repeat_n(format!("{prefix}.{}", o.operation), o.requests as usize)
            })
            .collect()
    }
}

/// The test's SDK config on moto, the same config wrapped by a wire meter, and what it records.
async fn recording() -> (SdkConfig, SdkConfig, Targets) {
    let plain = sdk_config(&endpoint()).await;
    let meter = WireMeter::new();
    let recorded = meter.wrap(&plain);
    let targets = Targets {
        meter,
        seen: Mutex::new(MeterSnapshot::default()),
    };
    (plain, recorded, targets)
}

const SCAN: &str = "DynamoDB_20120810.Scan";

/// Fails if any recorded DynamoDB operation is a Scan; returns the operations' names.
fn assert_no_scan(targets: &[String], what: &str) -> Vec<String> {
    let scans = targets.iter().filter(|t| t.as_str() == SCAN).count();
    assert_eq!(scans, 0, "{what} sent {scans} Scan(s): {targets:?}");
    targets
        .iter()
        .filter_map(|t| t.strip_prefix("DynamoDB_20120810."))
        .map(str::to_owned)
        .collect()
}

/// The purge jobs on fresh tables and a bucket, through the recording client.
async fn purge_jobs(plain: &SdkConfig, recorded: &SdkConfig) -> PurgeJobs {
    let table = pk_sk_table(plain, "conversations").await;
    PurgeJobs::new(
        PurgeDeps {
            config: Arc::new(DynamoConfigStore::new(
                recorded,
                pk_sk_table(plain, "config").await,
            )),
            conversations: Arc::new(DynamoConversationStore::new(recorded, &table)),
            deliveries: Arc::new(DynamoDeliveryStore::new(recorded, &table)),
            media: Arc::new(S3ObjectStore::new(recorded, bucket(plain).await, true)),
        },
        Arc::new(|| 1_795_575_600_000),
    )
}

/// A conversation store (with its agents' table) on fresh tables, through the recording client.
async fn conversation_store(plain: &SdkConfig, recorded: &SdkConfig) -> DynamoConversationStore {
    let table = pk_sk_table(plain, "conversations").await;
    let agents = pk_sk_table(plain, "agents").await;
    DynamoConversationStore::new(recorded, table).with_agents_table(agents)
}

#[tokio::test]
#[ignore = "needs moto: run ./infra/test.sh"]
async fn no_request_path_sends_a_dynamodb_scan() {
    let (plain, recorded, targets) = recording().await;
    let mut seen = std::collections::BTreeSet::new();

    // ConversationStore: every method but the purge (below) and the backfill job, through its
    // contract, each scenario on fresh tables.
    macro_rules! on_fresh_store {
        ($($scenario:ident),* $(,)?) => {$(
            let store = conversation_store(&plain, &recorded).await;
            conversations::$scenario(&store).await;
            seen.extend(assert_no_scan(&targets.take(), stringify!($scenario)));
        )*};
    }
    on_fresh_store!(
        commit_then_redelivery_is_a_duplicate_and_changes_nothing,
        the_outbox_is_recorded_with_the_event_and_read_back,
        the_same_event_id_under_another_account_is_not_a_duplicate,
        dedupe_window_follows_the_callers_clock_years_away_from_today,
        an_expired_dedupe_record_lets_the_event_through,
        create_conflicts_with_an_open_conversation_and_writes_nothing,
        update_with_a_stale_version_conflicts_and_writes_nothing,
        closing_frees_the_source_for_a_new_conversation,
        reopening_a_closed_conversation_while_the_source_has_another_conflicts,
        a_conversation_created_closed_takes_no_open_pointer,
        transcript_is_ordered_by_timestamp_then_event_id,
        the_latest_transcript_entries_come_newest_first,
        unsend_retracts_the_message_and_an_unknown_message_is_a_no_op,
        customers_are_upserted,
        conversations_of_source_lists_every_state_oldest_first,
        list_conversations_filters_orders_by_recent_activity_and_limits,
        delete_conversation_erases_its_transcript_pointer_and_index_only,
        delete_conversation_leaves_a_newer_open_pointer_alone,
        delete_customer_erases_one_profile,
        conversations_opened_on_reads_one_account_and_day,
        search_finds_customers_with_every_term,
        unsend_and_erasure_take_words_out_of_the_search_index,
    );
    {
        let store = conversation_store(&plain, &recorded).await;
        conversations::concurrent_commits_of_one_event_commit_once(Arc::new(store)).await;
        // Slots: the agents' table through the recording client too.
        let with_agents = || async {
            let agents_table = pk_sk_table(&plain, "agents").await;
            let store =
                DynamoConversationStore::new(&recorded, pk_sk_table(&plain, "conversations").await)
                    .with_agents_table(&agents_table);
            (store, DynamoAgentStore::new(&recorded, &agents_table))
        };
        let (store, agents) = with_agents().await;
        conversations::a_claim_is_given_back_unless_the_conversation_is_the_agents(&store, &agents)
            .await;
        let (store, agents) = with_agents().await;
        conversations::an_assignment_commit_needs_the_agents_slot(&store, &agents).await;
        // The schedule's reads, the list in every state and without one, and the retention
        // sweep (a no-op on DynamoDB).
        assert!(!store.open_conversations().await.unwrap().is_empty());
        for state in [
            None,
            Some(ConversationState::Waiting),
            Some(ConversationState::Active),
            Some(ConversationState::Closed),
        ] {
            store
                .list_conversations(&ConversationFilter {
                    state,
                    queue_ids: vec!["q1".into(), "q2".into()],
                    agent_id: Some("X".into()),
                    limit: 100,
                    after: None,
                })
                .await
                .unwrap();
        }
        assert_eq!(store.sweep_expired(conversations::NOW).await.unwrap(), 0);
        seen.extend(assert_no_scan(&targets.take(), "conversation store"));
    }

    // AgentStore, through its contract.
    macro_rules! on_fresh_agents {
        ($($scenario:ident),* $(,)?) => {$(
            let agents = DynamoAgentStore::new(&recorded, pk_sk_table(&plain, "agents").await);
            omniline_testkit::agent_contract::$scenario(&agents).await;
            seen.extend(assert_no_scan(&targets.take(), stringify!($scenario)));
        )*};
    }
    on_fresh_agents!(
        assign_is_idempotent_and_release_frees_a_slot,
        unavailable_or_unknown_agents_are_refused,
        presence_expires_only_for_agents_not_heard_from,
        claim_own_ignores_presence_but_not_capacity,
        two_missed_offers_in_a_row_set_an_agent_away,
        put_agent_moves_queue_membership_and_keeps_assignment_state,
        list_agents_is_ordered_by_id_and_carries_whole_agents,
        delete_agent_removes_everything_of_the_agent_only,
        delete_agent_without_profile_still_clears_notifications,
        notifications_are_idempotent_by_id_and_ordered,
        notifications_after_pages_through_every_notification_once_in_order,
        a_conversations_notifications_are_deleted_for_every_agent,
    );
    {
        let agents = DynamoAgentStore::new(&recorded, pk_sk_table(&plain, "agents").await);
        omniline_testkit::agent_contract::capacity_is_never_exceeded_by_concurrent_assignments(
            Arc::new(agents.clone()),
        )
        .await;
        agents.agents_in_queue("q1").await.unwrap();
        agents.notifications("a").await.unwrap();
        seen.extend(assert_no_scan(&targets.take(), "agent store"));
    }

    // WorkstreamStore, ConfigStore, AccountStore: the config table.
    {
        use omniline_testkit::workstream_contract as workstreams;
        let config_table = pk_sk_table(&plain, "config").await;
        let store = DynamoWorkstreamStore::new(&recorded, &config_table);
        workstreams::create_get_list_update_delete(&store).await;
        let store = DynamoWorkstreamStore::new(&recorded, pk_sk_table(&plain, "config").await);
        workstreams::create_conflicts_name_the_existing_workstream(&store).await;
        let store = DynamoWorkstreamStore::new(&recorded, pk_sk_table(&plain, "config").await);
        workstreams::updates_check_version_and_account(&store).await;
        let store = DynamoWorkstreamStore::new(&recorded, pk_sk_table(&plain, "config").await);
        workstreams::put_workstream_replaces_the_accounts_workstream(&store).await;
        let store = DynamoWorkstreamStore::new(&recorded, pk_sk_table(&plain, "config").await);
        workstreams::concurrent_creates_for_one_account_let_one_win(Arc::new(store)).await;
        let store = DynamoWorkstreamStore::new(&recorded, pk_sk_table(&plain, "config").await);
        workstreams::concurrent_updates_at_one_version_let_one_win(Arc::new(store)).await;
        seen.extend(assert_no_scan(&targets.take(), "workstream store"));

        let store = DynamoConfigStore::new(&recorded, pk_sk_table(&plain, "config").await);
        omniline_testkit::config_store_contract(&store).await;
        seen.extend(assert_no_scan(&targets.take(), "config store"));

        let store = DynamoAccountStore::new(&recorded, pk_sk_table(&plain, "config").await);
        omniline_testkit::account_contract::crud_conflicts_and_counters(&store).await;
        seen.extend(assert_no_scan(&targets.take(), "account store"));
    }

    // DeliveryStore: every method but the purge.
    {
        use omniline_testkit::delivery_contract as deliveries;
        let table = pk_sk_table(&plain, "conversations").await;
        let store = DynamoDeliveryStore::new(&recorded, &table);
        deliveries::begin_twice_keeps_the_first_retry_key(&store).await;
        deliveries::update_needs_the_previous_version(&store).await;
        let store = DynamoDeliveryStore::new(&recorded, pk_sk_table(&plain, "c").await);
        deliveries::concurrent_updates_exactly_one_wins(Arc::new(store)).await;
        let store = DynamoDeliveryStore::new(&recorded, pk_sk_table(&plain, "c").await);
        deliveries::listed_per_conversation_in_creation_order(&store).await;
        let deleted = store.delete_for_conversation("c1").await.unwrap();
        assert!(deleted > 0);
        seen.extend(assert_no_scan(&targets.take(), "delivery store"));
    }

    // The admin API's side of an account purge: recording the job (and finding the account's
    // unfinished one) and reading its status are config documents only.
    {
        let jobs = purge_jobs(&plain, &recorded).await;
        let job = jobs.start("acc1").await.unwrap();
        assert_eq!(jobs.start("acc1").await.unwrap(), job);
        assert_eq!(jobs.job(&job.id).await.unwrap(), Some(job.clone()));
        assert_eq!(jobs.unfinished_for("acc1").await.unwrap(), Some(job));
        seen.extend(assert_no_scan(
            &targets.take(),
            "purge job recorded and read",
        ));
    }

    // The webhook's queue and the secrets (no DynamoDB, but through the same client).
    {
        let queue = SqsEventQueue::new(&recorded, fifo_queue(&plain, "inbound").await);
        queue
            .send(&[omniline_testkit::event_queue_contract::message("g1", 0)])
            .await
            .unwrap();
        let secrets = SecretsManagerStore::new(&recorded, format!("{}/", unique("omniline")));
        omniline_testkit::secret_contract::creates_replaces_reads_and_deletes(&secrets).await;
        let sent = targets.take();
        assert_no_scan(&sent, "queue and secrets");
        assert!(
            sent.iter()
                .any(|t| t.ends_with("SendMessageBatch") || t.ends_with("GetSecretValue")),
            "{sent:?}"
        );
    }

    // The recorder saw the reads the request paths make instead.
    for operation in [
        "GetItem",
        "Query",
        "BatchGetItem",
        "TransactWriteItems",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
    ] {
        assert!(seen.contains(operation), "{operation} not seen: {seen:?}");
    }

    // The control: the named background jobs and the purge do Scan, and the recorder sees it.
    let store = conversation_store(&plain, &recorded).await;
    conversations::conversations_of_source_lists_every_state_oldest_first(&store).await;
    targets.take();
    store.backfill_indexes().await.unwrap();
    assert!(
        targets.take().contains(&SCAN.to_owned()),
        "backfill_indexes"
    );
    let accounts = DynamoAccountStore::new(&recorded, pk_sk_table(&plain, "config").await);
    accounts.backfill_account_index().await.unwrap();
    assert!(
        targets.take().contains(&SCAN.to_owned()),
        "backfill_account_index"
    );
    store.purge_account_page("acc1", None, 100).await.unwrap();
    let deliveries = DynamoDeliveryStore::new(&recorded, pk_sk_table(&plain, "c").await);
    deliveries
        .purge_account_page("acc1", None, 100)
        .await
        .unwrap();
    assert_eq!(
        targets.take().iter().filter(|t| t.as_str() == SCAN).count(),
        2,
        "a page of each purge (the purge job's steps: one Scan page each)"
    );
    // … as the purge job's runner (the schedule) does, page by page.
    let jobs = purge_jobs(&plain, &recorded).await;
    let job = jobs.start("acc1").await.unwrap();
    let run = jobs
        .run(JobBudget {
            pages: 100,
            millis: i64::MAX,
        })
        .await
        .unwrap();
    assert_eq!(run.finished, 1);
    assert_eq!(
        jobs.job(&job.id).await.unwrap().map(|j| j.status),
        Some(JobStatus::Done)
    );
    assert_eq!(
        targets.take().iter().filter(|t| t.as_str() == SCAN).count(),
        2,
        "the purge job's pages (one Scan per store on a small table)"
    );
}
