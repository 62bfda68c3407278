//! Contract of every [`ConversationStore`], written once and run against each adapter (SQLite,
//! and DynamoDB on moto): the union of what the SQLite and DynamoDB adapters' tests asserted.
//!
//! Every scenario starts from an empty store and uses the fixtures below: account [`ACCOUNT`],
//! the tests' clock [`NOW`] (never the wall clock's), conversations `c…` of sources `U…`.
//! Scenarios that need agents take the [`AgentStore`] whose slots the conversation store checks
//! (the same database, or the agents' DynamoDB table) and put agent `X` there themselves.

use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};
use omniline_domain::conversation::{
    CommitOutcome, Consent, Conversation, ConversationFilter, ConversationState, ConversationWrite,
    Customer, EventCommit, SourceType, TranscriptEntry, DEDUPE_RETENTION_SECS,
};
use omniline_domain::outbound::{text_message, Origin, OutboundMessage, Sender};
use omniline_ports::{AgentStore, ConversationStore, PurgeCounts};
use serde_json::json;
use std::sync::Arc;

use ConversationState::{Active, Closed, Waiting};

/// The account of the scenarios.
pub const ACCOUNT: &str = "acc1";
/// The scenarios' clock (2026-11-25T03:00:00Z), never the wall clock's: a store compares
/// expiries with the caller's clock only.
pub const NOW: i64 = 1_795_575_600;

/// Conversation `id` of `source` under [`ACCOUNT`], in queue `q1`, last active at
/// `opened_at + version`; closed ones carry their `closed_at`.
pub fn conversation(
    id: &str,
    source: &str,
    state: ConversationState,
    version: u64,
) -> Conversation {
    Conversation {
        id: id.into(),
        account_id: ACCOUNT.into(),
        source_type: SourceType::User,
        source_id: source.into(),
        state,
        workstream_id: None,
        queue_id: Some("q1".into()),
        priority: 1,
        skills: vec!["ja".into()],
        bot_id: None,
        agent_id: None,
        rule_id: None,
        members: vec![],
        opened_at: 1_700_000_000_000,
        last_activity_at: 1_700_000_000_000 + version as i64,
        closed_at: (state == Closed).then_some(1_700_000_100_000),
        close_reason: None,
        group: None,
        survey: None,
        snoozed_until: None,
        follow_up: false,
        context: Default::default(),
        offer: None,
        declined_by: Vec::new(),
        wrap_up: None,
        unread: 0,
        last_message: None,
        waiting_since: None,
        assigned_at: None,
        first_response_at: None,
        messages_in: 0,
        messages_out: 0,
        tags: Vec::new(),
        version,
    }
}

/// `c` under `account`.
pub fn of_account(account: &str, c: Conversation) -> Conversation {
    Conversation {
        account_id: account.into(),
        ..c
    }
}

/// `c` given to `agent` (active).
pub fn with_agent(mut c: Conversation, agent: &str) -> Conversation {
    c.state = Active;
    c.agent_id = Some(agent.into());
    c
}

/// A text message `event_id` of `conversation_id` at `timestamp`, LINE message id `m-{event_id}`.
pub fn entry(conversation_id: &str, event_id: &str, timestamp: i64) -> TranscriptEntry {
    TranscriptEntry {
        conversation_id: conversation_id.into(),
        event_id: event_id.into(),
        timestamp,
        event_type: "message".into(),
        sender_user_id: Some("U1".into()),
        message_id: Some(format!("m-{event_id}")),
        event: json!({"type": "message", "message": {"type": "text", "text": format!("こんにちは {event_id} 😀")}}),
        retracted: false,
        sender_name: None,
    }
}

/// Customer `user_id` of [`ACCOUNT`].
pub fn customer(user_id: &str, name: &str, updated_at: i64) -> Customer {
    Customer {
        account_id: ACCOUNT.into(),
        user_id: user_id.into(),
        display_name: name.into(),
        picture_url: None,
        language: Some("ja".into()),
        profile_found: true,
        consent: Consent::Followed,
        linked_contact_id: None,
        created_at: 1_700_000_000_000,
        updated_at,
        profile_fetched_at: None,
    }
}

/// An event `event_id` of [`ACCOUNT`] that writes nothing but its deduplication record.
pub fn commit(event_id: &str) -> EventCommit {
    EventCommit {
        account_id: ACCOUNT.into(),
        event_id: event_id.into(),
        now_secs: NOW,
        dedupe_expires_at: NOW + DEDUPE_RETENTION_SECS,
        retain_until: None,
        conversation: None,
        transcript: None,
        retract_message_id: None,
        customer: None,
        outbox: Vec::new(),
        notifications: Vec::new(),
    }
}

/// Event `event_id` creating `c` (under `c`'s account), with transcript entry `e`.
pub fn create(event_id: &str, c: Conversation, e: Option<TranscriptEntry>) -> EventCommit {
    EventCommit {
        account_id: c.account_id.clone(),
        conversation: Some(ConversationWrite::Create(c)),
        transcript: e,
        ..commit(event_id)
    }
}

/// Event `event_id` updating to `c` (under `c`'s account), with transcript entry `e`.
pub fn update(event_id: &str, c: Conversation, e: Option<TranscriptEntry>) -> EventCommit {
    EventCommit {
        account_id: c.account_id.clone(),
        conversation: Some(ConversationWrite::Update(c)),
        transcript: e,
        ..commit(event_id)
    }
}

/// Outbound message `id` to `U1` of conversation `c1`: an automated reply with a reply token
/// and a sender, and non-ASCII text.
pub fn outbound(id: &str, text: &str) -> OutboundMessage {
    OutboundMessage {
        id: id.into(),
        account_id: ACCOUNT.into(),
        conversation_id: "c1".into(),
        to: "U1".into(),
        origin: Origin::Automated,
        trigger: Some("conversationStarted".into()),
        messages: vec![text_message(text), text_message("担当者 😀")],
        reply_token: Some(format!("rt-{id}")),
        reply_token_received_at: Some(1_700_000_000_000),
        sender: Some(Sender {
            name: "Agent X".into(),
            icon_url: None,
        }),
        created_at: 1_700_000_000_001,
        agent_id: None,
    }
}

/// The entries' event ids, in order.
pub fn event_ids(entries: &[TranscriptEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.event_id.as_str()).collect()
}

/// The conversations' ids, in order.
pub fn conversation_ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations.iter().map(|c| c.id.as_str()).collect()
}

async fn committed(store: &dyn ConversationStore, commit: &EventCommit) {
    assert_eq!(
        store.commit(commit).await.unwrap(),
        CommitOutcome::Committed,
        "{}",
        commit.event_id
    );
}

async fn open_id(store: &dyn ConversationStore, account: &str, source: &str) -> Option<String> {
    store
        .open_conversation(account, source)
        .await
        .unwrap()
        .map(|c| c.id)
}

// ---------------------------------------------------------------------------------------------
// Deduplication

/// A committed event is recorded; its redelivery, as is or carrying other decisions (another
/// conversation version, transcript entry, customer), is a duplicate and writes nothing.
pub async fn commit_then_redelivery_is_a_duplicate_and_changes_nothing(
    store: &dyn ConversationStore,
) {
    let c1 = conversation("c1", "U1", Waiting, 1);
    let taro = customer("U1", "Taro", 1);
    let first = EventCommit {
        customer: Some(taro.clone()),
        ..create("e1", c1.clone(), Some(entry("c1", "e1", 1000)))
    };
    assert!(!store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    committed(store, &first).await;
    assert!(store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    assert_eq!(store.conversation("c1").await.unwrap(), Some(c1.clone()));
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c1.clone())
    );
    assert_eq!(
        store.transcript("c1").await.unwrap(),
        vec![entry("c1", "e1", 1000)]
    );

    // Redelivered as is, and redelivered after the router decided differently (an update, with
    // an entry under the same or another event id): duplicates, nothing written.
    assert_eq!(
        store.commit(&first).await.unwrap(),
        CommitOutcome::Duplicate
    );
    for (i, other_entry) in [entry("c1", "e1", 2000), entry("c1", "e1-bis", 2001)]
        .into_iter()
        .enumerate()
    {
        let again = EventCommit {
            customer: Some(customer("U1", "Jiro", 2 + i as i64)),
            ..update("e1", conversation("c1", "U1", Active, 2), Some(other_entry))
        };
        assert_eq!(
            store.commit(&again).await.unwrap(),
            CommitOutcome::Duplicate
        );
    }
    assert_eq!(
        store.transcript("c1").await.unwrap(),
        vec![entry("c1", "e1", 1000)]
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(c1.clone()));
    assert_eq!(store.conversation("c1").await.unwrap().unwrap().version, 1);
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c1)
    );
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), Some(taro));
}

/// The outbox is recorded with the event, all or nothing: read back whole while the event is
/// recorded; nothing for an event not recorded (new, expired, another account's, or whose commit
/// lost); empty for an event committed without one; a duplicate's outbox does not replace it.
pub async fn the_outbox_is_recorded_with_the_event_and_read_back(store: &dyn ConversationStore) {
    let outbox = vec![
        outbound("e1:router:0", "こんにちは"),
        OutboundMessage {
            origin: Origin::Bot,
            trigger: None,
            reply_token: None,
            reply_token_received_at: None,
            sender: None,
            ..outbound("e1:router:1", "bot")
        },
    ];
    assert_eq!(
        store.recorded_outbox(ACCOUNT, "e1", NOW).await.unwrap(),
        None
    );
    let first = EventCommit {
        outbox: outbox.clone(),
        ..create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        )
    };
    committed(store, &first).await;
    assert_eq!(
        store.recorded_outbox(ACCOUNT, "e1", NOW).await.unwrap(),
        Some(outbox.clone())
    );
    assert_eq!(
        store.recorded_outbox("acc2", "e1", NOW).await.unwrap(),
        None
    );
    // Past the deduplication window the record (and its outbox) is forgotten.
    assert_eq!(
        store
            .recorded_outbox(ACCOUNT, "e1", NOW + DEDUPE_RETENTION_SECS)
            .await
            .unwrap(),
        None
    );

    // A redelivery decided differently is a duplicate: the recorded outbox stands.
    let again = EventCommit {
        outbox: vec![outbound("e1:other", "other")],
        ..commit("e1")
    };
    assert_eq!(
        store.commit(&again).await.unwrap(),
        CommitOutcome::Duplicate
    );
    assert_eq!(
        store.recorded_outbox(ACCOUNT, "e1", NOW).await.unwrap(),
        Some(outbox)
    );

    // A commit that loses (a second open conversation of U1) records no outbox.
    let losing = EventCommit {
        outbox: vec![outbound("e2:router:0", "Agent X will help you")],
        ..create("e2", conversation("c2", "U1", Waiting, 1), None)
    };
    assert_eq!(
        store.commit(&losing).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(
        store.recorded_outbox(ACCOUNT, "e2", NOW).await.unwrap(),
        None
    );

    // Committed without an outbox: recorded, with an empty one.
    committed(store, &commit("e3")).await;
    assert_eq!(
        store.recorded_outbox(ACCOUNT, "e3", NOW).await.unwrap(),
        Some(vec![])
    );
}

/// Event ids are per account.
pub async fn the_same_event_id_under_another_account_is_not_a_duplicate(
    store: &dyn ConversationStore,
) {
    committed(store, &commit("e1")).await;
    let other = EventCommit {
        account_id: "acc2".into(),
        ..commit("e1")
    };
    assert!(!store.event_recorded("acc2", "e1", NOW).await.unwrap());
    committed(store, &other).await;
    assert!(store.event_recorded("acc2", "e1", NOW).await.unwrap());
    assert_eq!(
        store.commit(&other).await.unwrap(),
        CommitOutcome::Duplicate
    );
    assert!(store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
}

/// Contract of every [`ConversationStore`]: the deduplication window follows the caller's clock
/// (the `now_secs` of [`ConversationStore::event_recorded`] and of the commit), never the
/// store's. Run it at [`FAR_PAST_SECS`] and [`FAR_FUTURE_SECS`] (each call uses its own event id).
pub async fn dedupe_window_follows_the_callers_clock(
    store: &dyn ConversationStore,
    account_id: &str,
    now_secs: i64,
) {
    let event_id = format!("clock-{now_secs}");
    let commit = |at: i64| EventCommit {
        account_id: account_id.to_owned(),
        event_id: event_id.clone(),
        now_secs: at,
        dedupe_expires_at: at + 3600,
        retain_until: None,
        conversation: None,
        transcript: None,
        retract_message_id: None,
        customer: None,
        outbox: Vec::new(),
        notifications: Vec::new(),
    };
    let recorded = |at: i64| store.event_recorded(account_id, &event_id, at);
    assert!(!recorded(now_secs).await.unwrap(), "new at {now_secs}");
    assert_eq!(
        store.commit(&commit(now_secs)).await.unwrap(),
        CommitOutcome::Committed,
        "first commit at {now_secs}"
    );
    assert!(recorded(now_secs).await.unwrap(), "recorded at {now_secs}");
    assert!(
        recorded(now_secs + 3599).await.unwrap(),
        "still recorded 1 s before it expires ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 1800)).await.unwrap(),
        CommitOutcome::Duplicate,
        "a redelivery inside the window at {now_secs}"
    );
    assert!(
        !recorded(now_secs + 3600).await.unwrap(),
        "forgotten when it expires at the caller's clock ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 3600)).await.unwrap(),
        CommitOutcome::Committed,
        "stored again once the window has passed at the caller's clock ({now_secs})"
    );
    assert_eq!(
        store.commit(&commit(now_secs + 3601)).await.unwrap(),
        CommitOutcome::Duplicate,
        "the new record holds ({now_secs})"
    );
}

/// The guard of the one-clock rule: far in the past, today and far in the future, the window
/// is the caller's (a comparison with the wall clock fails one of the far clocks).
pub async fn dedupe_window_follows_the_callers_clock_years_away_from_today(
    store: &dyn ConversationStore,
) {
    for now in [crate::FAR_PAST_SECS, NOW, crate::FAR_FUTURE_SECS] {
        dedupe_window_follows_the_callers_clock(store, ACCOUNT, now).await;
    }
}

/// A deduplication record that expired (still stored, or not) lets the event through again.
pub async fn an_expired_dedupe_record_lets_the_event_through(store: &dyn ConversationStore) {
    let expired = EventCommit {
        dedupe_expires_at: NOW - 10,
        retain_until: None,
        ..commit("e1")
    };
    committed(store, &expired).await;
    assert!(!store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    let fresh = create(
        "e1",
        conversation("c1", "U1", Waiting, 1),
        Some(entry("c1", "e1", 1000)),
    );
    committed(store, &fresh).await;
    assert!(store.event_recorded(ACCOUNT, "e1", NOW).await.unwrap());
    assert_eq!(
        store.commit(&fresh).await.unwrap(),
        CommitOutcome::Duplicate
    );
    assert_eq!(
        store.commit(&commit("e1")).await.unwrap(),
        CommitOutcome::Duplicate
    );
}

/// Of eight concurrent commits of one event (each creating another conversation), exactly one
/// goes through, whole.
pub async fn concurrent_commits_of_one_event_commit_once(store: Arc<dyn ConversationStore>) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let id = format!("c{i}");
                let c = create(
                    "e-same",
                    conversation(&id, &format!("U{i}"), Waiting, 1),
                    Some(entry(&id, "e-same", 1000)),
                );
                (i, store.commit(&c).await.unwrap())
            })
        })
        .collect();
    let mut committed = Vec::new();
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        match outcome {
            CommitOutcome::Committed => committed.push(i),
            CommitOutcome::Duplicate | CommitOutcome::Conflict => {}
        }
    }
    assert_eq!(committed.len(), 1, "exactly one commit wins: {committed:?}");
    let mut entries = 0;
    for i in 0..8 {
        let id = format!("c{i}");
        let transcript = store.transcript(&id).await.unwrap();
        let exists = store.conversation(&id).await.unwrap().is_some();
        let open = store
            .open_conversation(ACCOUNT, &format!("U{i}"))
            .await
            .unwrap()
            .is_some();
        assert_eq!(exists, committed == [i], "conversation c{i}");
        assert_eq!(open, committed == [i], "open conversation of U{i}");
        entries += transcript.len();
    }
    assert_eq!(entries, 1, "exactly one transcript entry");
    assert!(store.event_recorded(ACCOUNT, "e-same", NOW).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Conflicts

/// Creating a conversation for a source that has an open one, or under an existing id, is a
/// conflict that writes nothing (not even the event, which is retried after a re-read).
pub async fn create_conflicts_with_an_open_conversation_and_writes_nothing(
    store: &dyn ConversationStore,
) {
    let c1 = conversation("c1", "U1", Waiting, 1);
    committed(
        store,
        &create("e1", c1.clone(), Some(entry("c1", "e1", 1000))),
    )
    .await;

    let clash = EventCommit {
        customer: Some(customer("U1", "Taro", 1)),
        ..create(
            "e2",
            conversation("c2", "U1", Waiting, 1),
            Some(entry("c2", "e2", 2000)),
        )
    };
    assert_eq!(store.commit(&clash).await.unwrap(), CommitOutcome::Conflict);
    assert!(!store.event_recorded(ACCOUNT, "e2", NOW).await.unwrap());
    assert_eq!(store.conversation("c2").await.unwrap(), None);
    assert!(store.transcript("c2").await.unwrap().is_empty());
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), None);
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c1.clone())
    );

    // An existing id is a conflict too, whatever the source.
    let same_id = create(
        "e3",
        conversation("c1", "U9", Waiting, 1),
        Some(entry("c1", "e3", 3000)),
    );
    assert_eq!(
        store.commit(&same_id).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert!(!store.event_recorded(ACCOUNT, "e3", NOW).await.unwrap());
    assert_eq!(store.open_conversation(ACCOUNT, "U9").await.unwrap(), None);
    assert_eq!(store.conversation("c1").await.unwrap(), Some(c1));
    assert_eq!(event_ids(&store.transcript("c1").await.unwrap()), ["e1"]);

    // The conflicting event is retried once the router has re-read: not a duplicate.
    committed(
        store,
        &update("e2", conversation("c1", "U1", Active, 2), None),
    )
    .await;
    // Another source is free.
    committed(
        store,
        &create(
            "e4",
            conversation("c2", "U2", Waiting, 1),
            Some(entry("c2", "e4", 4000)),
        ),
    )
    .await;
    assert_eq!(open_id(store, ACCOUNT, "U2").await.as_deref(), Some("c2"));
}

/// An update goes through only on top of the stored version; a stale one (or one of an unknown
/// conversation) is a conflict that writes nothing.
pub async fn update_with_a_stale_version_conflicts_and_writes_nothing(
    store: &dyn ConversationStore,
) {
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        ),
    )
    .await;
    let v2 = conversation("c1", "U1", Active, 2);
    committed(
        store,
        &update("e2", v2.clone(), Some(entry("c1", "e2", 2000))),
    )
    .await;
    assert_eq!(store.conversation("c1").await.unwrap(), Some(v2.clone()));
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(v2.clone())
    );

    // Decided on version 1, written after version 2: closing it, or keeping it open.
    for (event_id, state) in [("e3", Closed), ("e3-open", Waiting)] {
        let stale = EventCommit {
            customer: Some(customer("U1", "Taro", 1)),
            ..update(
                event_id,
                conversation("c1", "U1", state, 2),
                Some(entry("c1", event_id, 3000)),
            )
        };
        assert_eq!(
            store.commit(&stale).await.unwrap(),
            CommitOutcome::Conflict,
            "{event_id}"
        );
        assert!(!store.event_recorded(ACCOUNT, event_id, NOW).await.unwrap());
        assert_eq!(store.conversation("c1").await.unwrap(), Some(v2.clone()));
        assert_eq!(
            event_ids(&store.transcript("c1").await.unwrap()),
            ["e1", "e2"]
        );
        assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), None);
        assert_eq!(
            store.open_conversation(ACCOUNT, "U1").await.unwrap(),
            Some(v2.clone())
        );
    }

    // An update of a conversation that does not exist conflicts too.
    let missing = conversation("nope", "U2", Active, 2);
    assert_eq!(
        store
            .commit(&update("e4", missing, Some(entry("nope", "e4", 4000))))
            .await
            .unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.open_conversation(ACCOUNT, "U2").await.unwrap(), None);
    assert_eq!(store.conversation("nope").await.unwrap(), None);
    assert!(store.transcript("nope").await.unwrap().is_empty());
}

/// Closing frees the source for a new conversation; a later write to the closed one leaves the
/// new one's pointer alone. (Reopening the closed one while the new one holds the source is a
/// conflict: [`reopening_a_closed_conversation_while_the_source_has_another_conflicts`].)
pub async fn closing_frees_the_source_for_a_new_conversation(store: &dyn ConversationStore) {
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        ),
    )
    .await;
    let closed = Conversation {
        close_reason: Some("agent".into()),
        group: None,
        ..conversation("c1", "U1", Closed, 2)
    };
    committed(
        store,
        &update("e2", closed.clone(), Some(entry("c1", "e2", 2000))),
    )
    .await;
    assert_eq!(store.open_conversation(ACCOUNT, "U1").await.unwrap(), None);
    assert_eq!(
        store.conversation("c1").await.unwrap(),
        Some(closed.clone())
    );

    let c2 = conversation("c2", "U1", Waiting, 1);
    committed(
        store,
        &create("e3", c2.clone(), Some(entry("c2", "e3", 3000))),
    )
    .await;
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c2.clone())
    );

    assert_eq!(store.conversation("c1").await.unwrap(), Some(closed));

    // A later write to the closed conversation leaves the new one's pointer alone.
    let closed_again = conversation("c1", "U1", Closed, 3);
    committed(
        store,
        &update("e5", closed_again.clone(), Some(entry("c1", "e5", 5000))),
    )
    .await;
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c2)
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(closed_again));
    assert_eq!(store.conversation("c1").await.unwrap().unwrap().version, 3);
}

/// Reopening a closed conversation while a newer one holds its source would make two open
/// conversations for one customer: a conflict that writes nothing (not even the event).
pub async fn reopening_a_closed_conversation_while_the_source_has_another_conflicts(
    store: &dyn ConversationStore,
) {
    committed(
        store,
        &create("e1", conversation("c1", "U1", Waiting, 1), None),
    )
    .await;
    let closed = Conversation {
        closed_at: Some(1_700_000_100_000),
        close_reason: Some("agent".into()),
        group: None,
        ..conversation("c1", "U1", Closed, 2)
    };
    committed(store, &update("e2", closed.clone(), None)).await;
    let c2 = conversation("c2", "U1", Waiting, 1);
    committed(store, &create("e3", c2.clone(), None)).await;
    let reopened = conversation("c1", "U1", Active, 3);
    assert_eq!(
        store.commit(&update("e4", reopened, None)).await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(closed));
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c2)
    );
    assert!(!store.event_recorded(ACCOUNT, "e4", NOW).await.unwrap());
}

/// A conversation created already closed is a record only: it takes no open pointer, so it
/// neither conflicts with the source's open conversation nor holds a free source, and erasing it
/// leaves the source's open conversation alone.
pub async fn a_conversation_created_closed_takes_no_open_pointer(store: &dyn ConversationStore) {
    let older = Conversation {
        opened_at: 1_600_000_000_000,
        closed_at: Some(1_600_000_100_000),
        ..conversation("c9", "U1", Closed, 1)
    };
    let newer = conversation("c1", "U1", Waiting, 1);
    committed(store, &create("e1", newer.clone(), None)).await;
    committed(store, &create("e2", older.clone(), None)).await;
    assert_eq!(
        store.conversations_of_source(ACCOUNT, "U1").await.unwrap(),
        vec![older, newer.clone()]
    );
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(newer)
    );

    // Created closed on a free source, deleted: the newer open conversation is untouched.
    committed(
        store,
        &create("e3", conversation("c3", "U3", Closed, 1), None),
    )
    .await;
    assert_eq!(store.open_conversation(ACCOUNT, "U3").await.unwrap(), None);
    let c4 = conversation("c4", "U3", Waiting, 1);
    committed(store, &create("e4", c4.clone(), None)).await;
    assert!(store.delete_conversation("c3").await.unwrap());
    assert_eq!(
        store.open_conversation(ACCOUNT, "U3").await.unwrap(),
        Some(c4)
    );
}

// ---------------------------------------------------------------------------------------------
// Assignments (with the agents' slots)

/// Puts agent `X` (available, capacity 2, queue `q1`) in `agents`.
pub async fn put_agent_x(agents: &dyn AgentStore) {
    agents
        .put_agent(&Agent {
            id: "X".into(),
            name: "X".into(),
            queues: vec!["q1".into()],
            skills: vec![],
            capacity: 2,
            status: AgentStatus::Available,
            active_conversations: vec![],
            last_assigned_at: None,
            last_seen_at: None,
        })
        .await
        .unwrap();
}

/// `commit_assignment` goes through only while the agent's slot holds the conversation (not
/// another conversation's slot, not an unknown agent's); otherwise nothing is written.
pub async fn an_assignment_commit_needs_the_agents_slot(
    store: &dyn ConversationStore,
    agents: &dyn AgentStore,
) {
    put_agent_x(agents).await;
    let c1 = conversation("c1", "U1", Waiting, 1);
    committed(store, &create("e1", c1.clone(), Some(entry("c1", "e1", 1)))).await;

    // No slot: a conflict, nothing written (the event is not recorded either).
    let assigned = with_agent(conversation("c1", "U1", Waiting, 2), "X");
    let e2 = update("e2", assigned.clone(), Some(entry("c1", "e2", 2)));
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(c1));
    assert!(!store.event_recorded(ACCOUNT, "e2", NOW).await.unwrap());
    assert_eq!(event_ids(&store.transcript("c1").await.unwrap()), ["e1"]);
    // Another conversation's slot, or an unknown agent, does not count.
    assert!(agents.try_assign("X", "c-other", 1).await.unwrap());
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(
        store.commit_assignment(&e2, "ghost").await.unwrap(),
        CommitOutcome::Conflict
    );

    // With the slot it commits; the same event again is a duplicate, as with `commit`.
    assert!(agents.try_assign("X", "c1", 2).await.unwrap());
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Committed
    );
    assert_eq!(store.conversation("c1").await.unwrap(), Some(assigned));
    assert_eq!(
        event_ids(&store.transcript("c1").await.unwrap()),
        ["e1", "e2"]
    );
    assert_eq!(
        store.commit_assignment(&e2, "X").await.unwrap(),
        CommitOutcome::Duplicate
    );
    // A new conversation created with the agent: the same check.
    let fresh = with_agent(conversation("c2", "U2", Waiting, 1), "X");
    assert_eq!(
        store
            .commit_assignment(&create("e3", fresh, None), "X")
            .await
            .unwrap(),
        CommitOutcome::Conflict
    );
    assert_eq!(store.conversation("c2").await.unwrap(), None);
    assert_eq!(store.open_conversation(ACCOUNT, "U2").await.unwrap(), None);
    // Without a conversation there is nothing to check.
    assert!(store.commit_assignment(&commit("e4"), "X").await.is_err());
}

/// `latest_transcript` gives the last entries newest first (timestamp, then event id, reversed),
/// at most the limit.
pub async fn the_latest_transcript_entries_come_newest_first(store: &dyn ConversationStore) {
    let c1 = conversation("c1", "U1", Waiting, 1);
    committed(store, &create("e1", c1, Some(entry("c1", "e1", 10)))).await;
    for (n, (event, at)) in [("e3", 30), ("e2", 20), ("e4", 30), ("e5", 5)]
        .iter()
        .enumerate()
    {
        let c = conversation("c1", "U1", Waiting, n as u64 + 2);
        committed(store, &update(event, c, Some(entry("c1", event, *at)))).await;
    }
    let all = store.transcript("c1").await.unwrap();
    assert_eq!(event_ids(&all), ["e5", "e1", "e2", "e3", "e4"]);
    let latest = store.latest_transcript("c1", 3).await.unwrap();
    assert_eq!(event_ids(&latest), ["e4", "e3", "e2"]);
    let every = store.latest_transcript("c1", 100).await.unwrap();
    assert_eq!(event_ids(&every), ["e4", "e3", "e2", "e1", "e5"]);
    assert!(store.latest_transcript("c1", 0).await.unwrap().is_empty());
    assert!(store.latest_transcript("nope", 3).await.unwrap().is_empty());
}

/// A notification for agent `agent`, of conversation `conversation`.
fn notification(id: &str, agent: &str, conversation: &str, at: i64) -> AgentNotification {
    AgentNotification {
        id: id.into(),
        agent_id: agent.into(),
        conversation_id: conversation.into(),
        account_id: ACCOUNT.into(),
        kind: "message".into(),
        customer_user_id: Some("U1".into()),
        customer_name: "Customer".into(),
        customer_picture_url: None,
        customer_language: None,
        queue_id: "q1".into(),
        created_at: at,
        delivery: None,
        expires_at: None,
    }
}

/// Issue 3/7: the agents' notifications are written with the event's commit: a commit that loses
/// (a conflict) notifies no one, and the same event again (a duplicate) notifies no one twice.
pub async fn notifications_are_committed_with_the_event(
    store: &dyn ConversationStore,
    agents: &dyn AgentStore,
) {
    put_agent_x(agents).await;
    let c1 = conversation("c1", "U1", Waiting, 1);
    committed(store, &create("e1", c1.clone(), Some(entry("c1", "e1", 1)))).await;
    // A losing plan: version 1 again is a conflict; nothing of it is written.
    let mut stale = update("e2", conversation("c1", "U1", Waiting, 1), None);
    stale.notifications = vec![notification("c1:e2:message", "X", "c1", 2)];
    assert_eq!(store.commit(&stale).await.unwrap(), CommitOutcome::Conflict);
    assert!(agents.notifications("X").await.unwrap().is_empty());
    // The winning plan notifies, once, also when the event comes again.
    let mut fresh = update("e2", conversation("c1", "U1", Waiting, 2), None);
    fresh.notifications = vec![notification("c1:e2:message", "X", "c1", 2)];
    committed(store, &fresh).await;
    assert_eq!(
        store.commit(&fresh).await.unwrap(),
        CommitOutcome::Duplicate
    );
    let stored = agents.notifications("X").await.unwrap();
    assert_eq!(stored, fresh.notifications);
    // Erasing the conversation's notifications finds the committed ones.
    assert_eq!(
        agents
            .delete_conversation_notifications("c1")
            .await
            .unwrap(),
        1
    );
    assert!(agents.notifications("X").await.unwrap().is_empty());
}

/// `release_unless_assigned` gives a slot back unless the stored conversation is open with that
/// agent; the slot's count goes with it.
pub async fn a_claim_is_given_back_unless_the_conversation_is_the_agents(
    store: &dyn ConversationStore,
    agents: &dyn AgentStore,
) {
    put_agent_x(agents).await;
    let slots = || async {
        let mut slots = agents
            .agent("X")
            .await
            .unwrap()
            .unwrap()
            .active_conversations;
        slots.sort();
        slots
    };

    // Unknown conversation, or not held: nothing to give back.
    assert!(!store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(!store.release_unless_assigned("ghost", "c1").await.unwrap());
    assert!(agents.try_assign("X", "c1", 1).await.unwrap());
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(slots().await.is_empty());

    // Waiting without an agent: given back (and the count with it: two slots fit again).
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1)),
        ),
    )
    .await;
    assert!(agents.try_assign("X", "c1", 2).await.unwrap());
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert!(slots().await.is_empty());

    // Stored with the agent: kept.
    assert!(agents.try_assign("X", "c1", 3).await.unwrap());
    assert!(agents.try_assign("X", "c9", 3).await.unwrap());
    let active = with_agent(conversation("c1", "U1", Waiting, 2), "X");
    assert_eq!(
        store
            .commit_assignment(&update("e2", active.clone(), None), "X")
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    assert!(!store.release_unless_assigned("X", "c1").await.unwrap());
    assert_eq!(slots().await, ["c1", "c9"]);
    // Another agent holds no slot for it: nothing to give back.
    assert!(!store.release_unless_assigned("Y", "c1").await.unwrap());

    // Closed: given back.
    let mut closed = active;
    closed.state = Closed;
    closed.version = 3;
    committed(store, &update("e3", closed, None)).await;
    assert!(store.release_unless_assigned("X", "c1").await.unwrap());
    assert_eq!(slots().await, ["c9"]);
    assert!(agents.try_assign("X", "c10", 4).await.unwrap());
    assert!(!agents.try_assign("X", "c11", 5).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Transcript and customers

/// A conversation's transcript is ordered by timestamp (whatever its number of digits), then
/// event id; another conversation's entries stay apart.
pub async fn transcript_is_ordered_by_timestamp_then_event_id(store: &dyn ConversationStore) {
    committed(
        store,
        &create(
            "e-late",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e-late", 1_700_000_300_000)),
        ),
    )
    .await;
    for (event_id, timestamp) in [
        ("e-early", 5),
        ("e-z", 1_700_000_200_000),
        ("e-b", 1_700_000_200_000),
        ("e-a", 1_700_000_200_000),
        ("e-mid", 99_999_999),
    ] {
        let c = EventCommit {
            transcript: Some(entry("c1", event_id, timestamp)),
            ..commit(event_id)
        };
        committed(store, &c).await;
    }
    // Another conversation's entries stay apart.
    committed(
        store,
        &create(
            "x1",
            conversation("c2", "U2", Waiting, 1),
            Some(entry("c2", "x1", 1)),
        ),
    )
    .await;

    let transcript = store.transcript("c1").await.unwrap();
    assert_eq!(
        event_ids(&transcript),
        ["e-early", "e-mid", "e-a", "e-b", "e-z", "e-late"]
    );
    assert_eq!(transcript[0], entry("c1", "e-early", 5));
    assert_eq!(event_ids(&store.transcript("c2").await.unwrap()), ["x1"]);
    assert!(store.transcript("nope").await.unwrap().is_empty());
}

/// An unsend retracts the message's entry (content erased, ids kept); an unknown message, or a
/// message id of another account, retracts nothing and only the event is recorded.
pub async fn unsend_retracts_the_message_and_an_unknown_message_is_a_no_op(
    store: &dyn ConversationStore,
) {
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        ),
    )
    .await;
    committed(
        store,
        &EventCommit {
            transcript: Some(entry("c1", "e2", 2000)),
            ..commit("e2")
        },
    )
    .await;

    let unsend_entry = TranscriptEntry {
        event_type: "unsend".into(),
        message_id: None,
        event: json!({"type": "unsend", "unsend": {"messageId": "m-e1"}}),
        ..entry("c1", "e3", 3000)
    };
    let unsend = EventCommit {
        transcript: Some(unsend_entry.clone()),
        retract_message_id: Some("m-e1".into()),
        ..commit("e3")
    };
    committed(store, &unsend).await;
    let transcript = store.transcript("c1").await.unwrap();
    assert_eq!(event_ids(&transcript), ["e1", "e2", "e3"]);
    assert!(transcript[0].retracted);
    assert_eq!(transcript[0].event, serde_json::Value::Null);
    assert_eq!(transcript[0].message_id.as_deref(), Some("m-e1"));
    assert_eq!(transcript[0].timestamp, 1000);
    assert!(!transcript[1].retracted);
    assert_eq!(transcript[1], entry("c1", "e2", 2000));
    assert_eq!(transcript[2], unsend_entry);

    // Unknown message (never seen, or from before the store): only the event is recorded.
    let unknown = EventCommit {
        retract_message_id: Some("m-unknown".into()),
        ..commit("e4")
    };
    committed(store, &unknown).await;
    assert!(store.event_recorded(ACCOUNT, "e4", NOW).await.unwrap());
    assert_eq!(store.transcript("c1").await.unwrap(), transcript);

    // A message id is per account: the same id under another account retracts nothing here.
    let elsewhere = EventCommit {
        account_id: "acc2".into(),
        retract_message_id: Some("m-e2".into()),
        ..commit("e5")
    };
    committed(store, &elsewhere).await;
    assert_eq!(store.transcript("c1").await.unwrap(), transcript);
}

/// A commit's customer replaces the stored profile; customers are per account.
pub async fn customers_are_upserted(store: &dyn ConversationStore) {
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), None);
    let first = customer("U1", "Taro", 1);
    committed(
        store,
        &EventCommit {
            customer: Some(first.clone()),
            ..commit("e1")
        },
    )
    .await;
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), Some(first));
    let second = Customer {
        consent: Consent::Unfollowed,
        picture_url: Some("https://example.com/p.png".into()),
        language: None,
        ..customer("U1", "太郎", 2)
    };
    committed(
        store,
        &EventCommit {
            customer: Some(second.clone()),
            ..commit("e2")
        },
    )
    .await;
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), Some(second));
    assert_eq!(store.customer("acc2", "U1").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Listing

/// Every conversation of a source, open or closed, oldest first; per account.
pub async fn conversations_of_source_lists_every_state_oldest_first(store: &dyn ConversationStore) {
    let opened = Conversation {
        opened_at: 1_600_000_000_000,
        ..conversation("c9", "U1", Waiting, 1)
    };
    let older = Conversation {
        opened_at: 1_600_000_000_000,
        ..conversation("c9", "U1", Closed, 2)
    };
    let newer = conversation("c1", "U1", Waiting, 1);
    let elsewhere = of_account("acc2", conversation("c3", "U1", Waiting, 1));
    // The older one is closed before the newer one opens.
    committed(store, &create("e1", opened, None)).await;
    committed(store, &update("e2", older.clone(), None)).await;
    committed(store, &create("e3", newer.clone(), None)).await;
    committed(
        store,
        &create("e4", conversation("c2", "U2", Waiting, 1), None),
    )
    .await;
    committed(store, &create("e5", elsewhere.clone(), None)).await;
    assert_eq!(
        store.conversations_of_source(ACCOUNT, "U1").await.unwrap(),
        vec![older, newer]
    );
    assert_eq!(
        store.conversations_of_source("acc2", "U1").await.unwrap(),
        vec![elsewhere]
    );
    assert!(store
        .conversations_of_source(ACCOUNT, "U9")
        .await
        .unwrap()
        .is_empty());
}

/// Reports read an account's conversations by the UTC day they opened, whatever their state:
/// not another day's, not another account's, at most `limit`.
pub async fn conversations_opened_on_reads_one_account_and_day(store: &dyn ConversationStore) {
    const DAY: i64 = 86_400_000;
    // 2023-11-14T00:00:00Z, and the conversation fixtures open at 22:13:20 that day.
    let day = 1_700_000_000_000 / DAY * DAY;
    let a = conversation("c1", "U1", Waiting, 1);
    let b = conversation("c2", "U2", Closed, 2);
    let next_day = Conversation {
        opened_at: day + DAY,
        last_activity_at: day + DAY + 1,
        ..conversation("c3", "U3", Waiting, 1)
    };
    let day_before = Conversation {
        opened_at: day - 1,
        ..conversation("c5", "U5", Waiting, 1)
    };
    let elsewhere = of_account("acc2", conversation("c4", "U1", Waiting, 1));
    for (i, c) in [&a, &b, &next_day, &day_before, &elsewhere]
        .into_iter()
        .enumerate()
    {
        committed(store, &create(&format!("e{i}"), c.clone(), None)).await;
    }
    let mut found = store
        .conversations_opened_on(ACCOUNT, day, 100)
        .await
        .unwrap();
    found.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(found, vec![a, b]);
    assert_eq!(
        store
            .conversations_opened_on(ACCOUNT, day + DAY, 100)
            .await
            .unwrap(),
        vec![next_day]
    );
    assert_eq!(
        store
            .conversations_opened_on("acc2", day, 100)
            .await
            .unwrap(),
        vec![elsewhere]
    );
    assert_eq!(
        store
            .conversations_opened_on(ACCOUNT, day, 1)
            .await
            .unwrap()
            .len(),
        1,
        "bounded"
    );
    assert!(store
        .conversations_opened_on("acc3", day, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A customer matches when every term of the query is among their indexed terms (from one text
/// or several); a hit names the latest conversation where one of the terms was said; accounts
/// are apart; indexing again is idempotent.
pub async fn search_finds_customers_with_every_term(store: &dyn ConversationStore) {
    use omniline_domain::search::{terms, SearchEntry};
    let entry = |user: &str, conversation: &str, at: i64, text: &str| {
        SearchEntry::of(ACCOUNT, user, conversation, at, &[text]).unwrap()
    };
    let retain = Some(NOW + 86_400);
    for e in [
        entry("U1", "c1", 10, "I want a refund for my order"),
        entry("U1", "c2", 30, "Sato"),
        entry("U2", "c3", 20, "refund please, 返金したい"),
        entry("U3", "c4", 40, "hello"),
        SearchEntry::of("acc2", "U9", "c9", 50, &["refund"]).unwrap(),
    ] {
        store.index_search(&e, retain).await.unwrap();
    }
    // Again: nothing doubles.
    store
        .index_search(&entry("U2", "c3", 20, "refund"), retain)
        .await
        .unwrap();
    let users = |hits: Vec<omniline_domain::search::SearchHit>| -> Vec<(String, String, i64)> {
        hits.into_iter()
            .map(|h| (h.user_id, h.conversation_id, h.at))
            .collect()
    };
    let q = |text: &str| terms(text, 5);
    assert_eq!(
        users(store.search(ACCOUNT, &q("refund"), 10).await.unwrap()),
        [
            ("U2".to_owned(), "c3".to_owned(), 20),
            ("U1".to_owned(), "c1".to_owned(), 10)
        ],
        "latest first, each with the conversation where they said it"
    );
    let both = store.search(ACCOUNT, &q("Refund SATO"), 10).await.unwrap();
    assert_eq!(
        users(both.clone()),
        [("U1".to_owned(), "c2".to_owned(), 30)],
        "every term, across texts"
    );
    assert_eq!(
        both[0].conversation_ids,
        ["c1", "c2"],
        "where each term was found"
    );
    assert_eq!(
        users(store.search(ACCOUNT, &q("返金"), 10).await.unwrap()),
        [("U2".to_owned(), "c3".to_owned(), 20)]
    );
    assert!(store
        .search(ACCOUNT, &q("refund hello"), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .search(ACCOUNT, &q("nothing"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.search(ACCOUNT, &q("refund"), 1).await.unwrap().len(),
        1
    );
    let other = store.search("acc2", &q("refund"), 10).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].account_id, "acc2");
}

/// An unsent message's words leave the search index (the customer's other words stay), and
/// taking terms out (a tag removed, an erasure) takes out those terms only.
pub async fn unsend_and_erasure_take_words_out_of_the_search_index(store: &dyn ConversationStore) {
    use omniline_domain::search::{terms, SearchEntry};
    let said = |event_id: &str, text: &str| TranscriptEntry {
        event: json!({"type": "message", "source": {"type": "user", "userId": "U1"},
                      "message": {"type": "text", "id": format!("m-{event_id}"), "text": text}}),
        ..entry("c1", event_id, 1000)
    };
    let retain = Some(NOW + 86_400);
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(said("e1", "my secret diagnosis")),
        ),
    )
    .await;
    for (text, at) in [
        ("my secret diagnosis", 1000),
        ("parcel tracking", 2000),
        ("refund", 2500),
    ] {
        store
            .index_search(
                &SearchEntry::of(ACCOUNT, "U1", "c1", at, &[text]).unwrap(),
                retain,
            )
            .await
            .unwrap();
    }
    let found = |text: &'static str| async move {
        store
            .search(ACCOUNT, &terms(text, 5), 10)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(found("diagnosis").await, 1);
    committed(
        store,
        &EventCommit {
            transcript: Some(TranscriptEntry {
                event_type: "unsend".into(),
                message_id: None,
                event: json!({"type": "unsend", "unsend": {"messageId": "m-e1"}}),
                ..entry("c1", "e2", 3000)
            }),
            retract_message_id: Some("m-e1".into()),
            ..commit("e2")
        },
    )
    .await;
    assert_eq!(found("diagnosis").await, 0, "the unsent words are gone");
    assert_eq!(found("secret").await, 0);
    assert_eq!(found("parcel").await, 1, "the others stay");
    store
        .unindex_search(ACCOUNT, "U1", &terms("parcel tracking", 10))
        .await
        .unwrap();
    assert_eq!(found("parcel").await, 0, "taken out");
    assert_eq!(found("tracking").await, 0);
    assert_eq!(found("refund").await, 1, "the customer's other words stay");
}

/// A conversation in `queue` (held by `agent`) last active at `at`, on a source of its own.
pub fn listed(
    id: &str,
    state: ConversationState,
    queue: Option<&str>,
    agent: Option<&str>,
    at: i64,
) -> Conversation {
    Conversation {
        queue_id: queue.map(Into::into),
        agent_id: agent.map(Into::into),
        last_activity_at: at,
        closed_at: (state == Closed).then_some(at),
        ..conversation(id, &format!("U-{id}"), state, 1)
    }
}

/// A [`ConversationFilter`].
pub fn filter(
    state: Option<ConversationState>,
    queues: &[&str],
    agent: Option<&str>,
    limit: usize,
) -> ConversationFilter {
    ConversationFilter {
        state,
        queue_ids: queues.iter().map(|q| (*q).to_owned()).collect(),
        agent_id: agent.map(Into::into),
        limit,
        after: None,
    }
}

/// `list_conversations` filters by state and queues-or-agent, orders by recent activity (then
/// id), keeps `limit`, and agrees with [`ConversationFilter::matches`] in every combination;
/// transcript entries and customers are not conversations; an update moves a conversation;
/// `count_in_queue` counts a queue's conversations in a state, up to its cap.
pub async fn list_conversations_filters_orders_by_recent_activity_and_limits(
    store: &dyn ConversationStore,
) {
    let all = vec![
        listed("c1", Waiting, Some("q1"), None, 100),
        listed("c2", Active, Some("q2"), Some("a1"), 300),
        listed("c3", Active, Some("q1"), Some("a2"), 200),
        listed("c4", Active, Some("q3"), Some("a1"), 250),
        listed("c5", Closed, Some("q1"), Some("a1"), 400),
        listed("c6", Waiting, None, None, 500),
        listed("c7", Waiting, Some("q1"), None, 200),
        of_account("acc2", listed("c8", Waiting, Some("q2"), None, 150)),
        listed("c9", Active, Some(""), Some(""), 50),
    ];
    for (i, c) in all.iter().enumerate() {
        // Transcript entries share the conversations' storage: they are not conversations.
        let event_id = format!("e{i}");
        let write = create(&event_id, c.clone(), Some(entry(&c.id, &event_id, 10)));
        committed(store, &write).await;
    }
    // Nor is a customer.
    committed(
        store,
        &EventCommit {
            customer: Some(customer("Uc", "Hanako", 1)),
            ..commit("e-customer")
        },
    )
    .await;

    let list = |f: ConversationFilter| async move { store.list_conversations(&f).await.unwrap() };

    // A queue, any state: most recent first, ties by id.
    let got = list(filter(None, &["q1"], None, 10)).await;
    assert_eq!(conversation_ids(&got), ["c5", "c3", "c7", "c1"]);
    assert_eq!(got[1], all[2]);
    // The limit keeps the most recent.
    assert_eq!(
        conversation_ids(&list(filter(None, &["q1"], None, 2)).await),
        ["c5", "c3"]
    );
    assert!(list(filter(None, &["q1"], None, 0)).await.is_empty());
    // Queues or agent, in a state.
    assert_eq!(
        conversation_ids(&list(filter(Some(Active), &["q1", "q2"], Some("a1"), 10)).await),
        ["c2", "c4", "c3"]
    );
    assert_eq!(
        conversation_ids(&list(filter(Some(Waiting), &["q1", "q2"], None, 10)).await),
        ["c7", "c8", "c1"]
    );
    // The agent alone: every state.
    assert_eq!(
        conversation_ids(&list(filter(None, &[], Some("a1"), 10)).await),
        ["c5", "c2", "c4"]
    );
    assert_eq!(
        conversation_ids(&list(filter(Some(Closed), &[], Some("a1"), 10)).await),
        ["c5"]
    );
    // No queue and no agent matches nothing (not even the conversations without a queue).
    assert!(list(filter(None, &[], None, 10)).await.is_empty());
    assert!(list(filter(Some(Waiting), &[], None, 10)).await.is_empty());
    assert!(list(filter(None, &["nope"], Some("nobody"), 10))
        .await
        .is_empty());
    // Empty strings are ids like any other.
    assert_eq!(
        conversation_ids(&list(filter(None, &[""], None, 10)).await),
        ["c9"]
    );

    // A queue's working set, counted (at most `cap`).
    let count = |q: &'static str, state, cap| async move {
        store.count_in_queue(q, state, cap).await.unwrap()
    };
    assert_eq!(count("q1", Waiting, 100).await, 2);
    assert_eq!(count("q1", Waiting, 1).await, 1);
    assert_eq!(count("q1", Active, 100).await, 1);
    assert_eq!(count("q2", Waiting, 100).await, 1);
    assert_eq!(count("q3", Waiting, 100).await, 0);
    assert_eq!(count("nope", Active, 100).await, 0);

    // Every combination agrees with the reference semantics.
    let queue_sets: [&[&str]; 5] = [&[], &["q1"], &["q2", "q3"], &["q1", "q2", "q3"], &[""]];
    for state in [None, Some(Waiting), Some(Active), Some(Closed)] {
        for queues in queue_sets {
            for agent in [None, Some("a1"), Some("a2"), Some("")] {
                for limit in [1, 2, 3, 100] {
                    let f = filter(state, queues, agent, limit);
                    let mut want: Vec<Conversation> =
                        all.iter().filter(|c| f.matches(c)).cloned().collect();
                    want.sort_by(|a, b| {
                        b.last_activity_at
                            .cmp(&a.last_activity_at)
                            .then_with(|| a.id.cmp(&b.id))
                    });
                    want.truncate(limit);
                    assert_eq!(list(f.clone()).await, want, "{f:?}");
                }
            }
        }
    }

    // Pages after a cursor (the last row of the page before) give the whole list, each row
    // once and in order; ties of time (c3 and c7 at 200) are ordered by id across pages.
    for state in [None, Some(Waiting), Some(Active), Some(Closed)] {
        for queues in queue_sets {
            for agent in [None, Some("a1")] {
                let whole = list(filter(state, queues, agent, 100)).await;
                let mut f = filter(state, queues, agent, 2);
                let mut paged: Vec<Conversation> = Vec::new();
                loop {
                    let page = list(f.clone()).await;
                    let Some(last) = page.last() else { break };
                    f.after = Some(omniline_domain::conversation::ListCursor::of(last));
                    paged.extend(page);
                    assert!(paged.len() <= whole.len(), "pages repeat rows: {f:?}");
                }
                assert_eq!(paged, whole, "{f:?}");
            }
        }
    }

    // An update moves the conversation: c1 is a1's now, and the most recent.
    let taken = Conversation {
        version: 2,
        ..listed("c1", Active, Some("q1"), Some("a1"), 600)
    };
    committed(
        store,
        &update("e-take", taken.clone(), Some(entry("c1", "e-take", 20))),
    )
    .await;
    let got = list(filter(Some(Active), &[], Some("a1"), 10)).await;
    assert_eq!(conversation_ids(&got), ["c1", "c2", "c4"]);
    assert_eq!(got[0], taken);
    assert_eq!(
        conversation_ids(&list(filter(Some(Waiting), &["q1"], None, 10)).await),
        ["c7"]
    );
    assert_eq!(count("q1", Waiting, 100).await, 1);
    assert_eq!(count("q1", Active, 100).await, 2);
}

/// Sixty big conversations (about 40 kB of members each, more than a 1 MB DynamoDB page): all
/// listed in order, and a small limit still keeps the most recent.
pub async fn list_conversations_reads_past_a_page_of_big_conversations(
    store: &dyn ConversationStore,
) {
    let members: Vec<String> = (0..1_000).map(|i| format!("U{i:036}")).collect();
    let mut ids = Vec::new();
    for i in 0..60 {
        let c = Conversation {
            members: members.clone(),
            ..listed(&format!("c{i:02}"), Waiting, Some("q1"), None, i)
        };
        committed(store, &create(&format!("e{i}"), c, None)).await;
        ids.push(format!("c{i:02}"));
    }
    ids.reverse();
    let got = store
        .list_conversations(&filter(None, &["q1"], None, 1_000))
        .await
        .unwrap();
    assert_eq!(conversation_ids(&got), ids);
    assert!(got.iter().all(|c| c.members == members));
    let got = store
        .list_conversations(&filter(Some(Waiting), &["q1"], None, 5))
        .await
        .unwrap();
    assert_eq!(conversation_ids(&got), ids[..5]);
}

// ---------------------------------------------------------------------------------------------
// Erasure

/// `delete_conversation` erases the conversation, its transcript, its open pointer and its
/// message index (a later unsend of its messages finds nothing), and nothing of another
/// conversation; the source takes a new conversation.
///
/// Leaves: `c1` (source `U1`, messages `m-e1`, `m-e2`) erased; `c2` (source `U2`, entry `e3`
/// with message `m-e3`) whole; `c5` open on `U1`.
pub async fn delete_conversation_erases_its_transcript_pointer_and_index_only(
    store: &dyn ConversationStore,
) {
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        ),
    )
    .await;
    committed(
        store,
        &EventCommit {
            transcript: Some(entry("c1", "e2", 2000)),
            ..commit("e2")
        },
    )
    .await;
    let c2 = conversation("c2", "U2", Waiting, 1);
    committed(
        store,
        &create("e3", c2.clone(), Some(entry("c2", "e3", 3000))),
    )
    .await;

    assert!(store.delete_conversation("c1").await.unwrap());
    assert_eq!(store.conversation("c1").await.unwrap(), None);
    assert!(store.transcript("c1").await.unwrap().is_empty());
    assert_eq!(store.open_conversation(ACCOUNT, "U1").await.unwrap(), None);
    assert!(store
        .conversations_of_source(ACCOUNT, "U1")
        .await
        .unwrap()
        .is_empty());

    // A later unsend of an erased message finds nothing and writes nothing back.
    let unsend = EventCommit {
        retract_message_id: Some("m-e1".into()),
        ..commit("e4")
    };
    committed(store, &unsend).await;
    assert!(store.transcript("c1").await.unwrap().is_empty());
    assert_eq!(store.conversation("c1").await.unwrap(), None);

    // The other conversation is whole; the source takes a new conversation.
    assert_eq!(store.conversation("c2").await.unwrap(), Some(c2.clone()));
    assert_eq!(
        store.open_conversation(ACCOUNT, "U2").await.unwrap(),
        Some(c2)
    );
    assert_eq!(
        store.transcript("c2").await.unwrap(),
        vec![entry("c2", "e3", 3000)]
    );
    committed(
        store,
        &create("e5", conversation("c5", "U1", Waiting, 1), None),
    )
    .await;
    assert_eq!(open_id(store, ACCOUNT, "U1").await.as_deref(), Some("c5"));

    // Gone already, or never there.
    assert!(!store.delete_conversation("c1").await.unwrap());
    assert!(!store.delete_conversation("nope").await.unwrap());
}

/// Deleting a closed conversation leaves the source's newer open conversation alone.
pub async fn delete_conversation_leaves_a_newer_open_pointer_alone(store: &dyn ConversationStore) {
    committed(
        store,
        &create(
            "e1",
            conversation("c1", "U1", Waiting, 1),
            Some(entry("c1", "e1", 1000)),
        ),
    )
    .await;
    committed(
        store,
        &update("e2", conversation("c1", "U1", Closed, 2), None),
    )
    .await;
    let c2 = conversation("c2", "U1", Waiting, 1);
    committed(
        store,
        &create("e3", c2.clone(), Some(entry("c2", "e3", 3000))),
    )
    .await;
    assert!(store.delete_conversation("c1").await.unwrap());
    assert_eq!(
        store.open_conversation(ACCOUNT, "U1").await.unwrap(),
        Some(c2.clone())
    );
    assert_eq!(
        store.conversations_of_source(ACCOUNT, "U1").await.unwrap(),
        vec![c2]
    );
}

/// `delete_customer` erases one profile: not another user's, not another account's.
pub async fn delete_customer_erases_one_profile(store: &dyn ConversationStore) {
    let other = Customer {
        account_id: "acc2".into(),
        ..customer("U1", "Jiro", 1)
    };
    for (event_id, c) in [
        ("e1", customer("U1", "Taro", 1)),
        ("e2", customer("U2", "Hanako", 1)),
        ("e3", other.clone()),
    ] {
        committed(
            store,
            &EventCommit {
                account_id: c.account_id.clone(),
                customer: Some(c),
                ..commit(event_id)
            },
        )
        .await;
    }
    assert!(store.delete_customer(ACCOUNT, "U1").await.unwrap());
    assert_eq!(store.customer(ACCOUNT, "U1").await.unwrap(), None);
    assert!(!store.delete_customer(ACCOUNT, "U1").await.unwrap());
    assert_eq!(
        store.customer(ACCOUNT, "U2").await.unwrap(),
        Some(customer("U2", "Hanako", 1))
    );
    assert_eq!(store.customer("acc2", "U1").await.unwrap(), Some(other));
}

/// The scenario of `purge_account_page`, in three steps (adapters check their raw storage
/// between them): [`purge::populate`], [`purge::purge_erases_one_account_and_nothing_of_another`],
/// [`purge::a_purged_account_starts_afresh_and_the_others_work_on`]; [`purge::run`] runs them
/// in a row. The purge is driven page after page to its end ([`purge::to_the_end`]); with a
/// small page size (1 or 2) an adapter that pages (DynamoDB) needs many pages, each of which
/// the scenario runs twice from the same cursor (a page interrupted and run again).
pub mod purge {
    use super::*;

    /// More pages than any scenario needs: a purge that never ends fails instead of hanging.
    const MAX_PAGES: usize = 10_000;

    /// Runs `purge_account_page` of `account` from the start until it has no next page, each
    /// page twice from the same cursor when `twice` (the second run of a page finds only what
    /// the first left, or what lies further: nothing is counted twice); what it erased in all,
    /// and how many pages (counting a page once).
    pub async fn to_the_end(
        store: &dyn ConversationStore,
        account: &str,
        page_size: u32,
        twice: bool,
    ) -> (PurgeCounts, usize) {
        let mut total = PurgeCounts::default();
        let mut cursor: Option<String> = None;
        for pages in 1..=MAX_PAGES {
            let mut page = store
                .purge_account_page(account, cursor.as_deref(), page_size)
                .await
                .unwrap();
            if twice {
                let again = store
                    .purge_account_page(account, cursor.as_deref(), page_size)
                    .await
                    .unwrap();
                page.erased.conversations += again.erased.conversations;
                page.erased.customers += again.erased.customers;
                page.next = again.next;
            }
            total.conversations += page.erased.conversations;
            total.customers += page.erased.customers;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return (total, pages),
            }
        }
        panic!("the purge of {account} did not end within {MAX_PAGES} pages");
    }

    /// The account purged.
    pub const PURGED: &str = "acc1";
    /// The accounts kept: `acc10` shares the text `acc1` (key prefixes must not mix them up).
    pub const KEPT: [&str; 2] = ["acc10", "acc2"];
    /// How many extra users (each with a conversation and a profile) each account has.
    pub const EXTRA_USERS: [(&str, usize); 3] = [("acc1", 6), ("acc10", 1), ("acc2", 1)];

    /// Writes, for `account`: conversations `{account}-c1` (closed) and `{account}-c2` (open) of
    /// `Uuser` with two entries each (events `e1`…`e4`, messages `m-e1`…`m-e4`), one more
    /// conversation `{account}-cx{i}` per extra user `Ux{i}` (event `ex{i}`, so that a purge
    /// needs several batches), and a customer per user; everything retained until `NOW + 1 d`.
    pub async fn populate_account(
        store: &dyn ConversationStore,
        account: &str,
        extra_users: usize,
    ) {
        let of = |c: Conversation| of_account(account, c);
        let in_account = |c: EventCommit| EventCommit {
            account_id: account.into(),
            retain_until: Some(NOW + 86_400),
            ..c
        };
        let c1 = format!("{account}-c1");
        let c2 = format!("{account}-c2");
        let writes = [
            EventCommit {
                customer: Some(Customer {
                    account_id: account.into(),
                    ..customer("Uuser", "Taro", 1)
                }),
                ..create(
                    "e1",
                    of(conversation(&c1, "Uuser", Waiting, 1)),
                    Some(entry(&c1, "e1", 1000)),
                )
            },
            update(
                "e2",
                of(conversation(&c1, "Uuser", Closed, 2)),
                Some(entry(&c1, "e2", 2000)),
            ),
            create(
                "e3",
                of(conversation(&c2, "Uuser", Waiting, 1)),
                Some(entry(&c2, "e3", 3000)),
            ),
            EventCommit {
                transcript: Some(entry(&c2, "e4", 4000)),
                ..commit("e4")
            },
        ];
        for write in writes {
            committed(store, &in_account(write)).await;
        }
        for i in 0..extra_users {
            let user = format!("Ux{i}");
            let id = format!("{account}-cx{i}");
            let event_id = format!("ex{i}");
            let write = EventCommit {
                customer: Some(Customer {
                    account_id: account.into(),
                    ..customer(&user, "Extra", 1)
                }),
                ..create(
                    &event_id,
                    of(conversation(&id, &user, Waiting, 1)),
                    Some(entry(&id, &event_id, 5000)),
                )
            };
            committed(store, &in_account(write)).await;
        }
    }

    /// [`populate_account`] for every account of [`EXTRA_USERS`].
    pub async fn populate(store: &dyn ConversationStore) {
        for (account, extra_users) in EXTRA_USERS {
            populate_account(store, account, extra_users).await;
        }
    }

    fn users(extra_users: usize) -> Vec<String> {
        std::iter::once("Uuser".to_owned())
            .chain((0..extra_users).map(|i| format!("Ux{i}")))
            .collect()
    }

    /// Purges [`PURGED`] (8 conversations, 7 customers) in pages of `page_size` (each run twice
    /// when `twice`): nothing of it is left through the port, and the [`KEPT`] accounts are
    /// whole. Writes nothing else. Returns how many pages it took.
    pub async fn purge_erases_one_account_and_nothing_of_another(
        store: &dyn ConversationStore,
        page_size: u32,
        twice: bool,
    ) -> usize {
        let (erased, pages) = to_the_end(store, PURGED, page_size, twice).await;
        assert_eq!(
            erased,
            PurgeCounts {
                conversations: 8,
                customers: 7,
            }
        );
        for user in users(6) {
            assert!(
                store
                    .conversations_of_source(PURGED, &user)
                    .await
                    .unwrap()
                    .is_empty(),
                "{user}"
            );
            assert_eq!(store.open_conversation(PURGED, &user).await.unwrap(), None);
            assert_eq!(store.customer(PURGED, &user).await.unwrap(), None);
        }
        for id in ["acc1-c1", "acc1-c2", "acc1-cx0", "acc1-cx5"] {
            assert_eq!(store.conversation(id).await.unwrap(), None, "{id}");
            assert!(store.transcript(id).await.unwrap().is_empty(), "{id}");
        }
        for event_id in ["e1", "e2", "e3", "e4", "ex0", "ex5"] {
            assert!(
                !store.event_recorded(PURGED, event_id, NOW).await.unwrap(),
                "{event_id}"
            );
        }

        // The other accounts are whole (their events still deduplicate).
        for account in KEPT {
            assert!(store.event_recorded(account, "e1", NOW).await.unwrap());
            assert!(store.event_recorded(account, "ex0", NOW).await.unwrap());
            assert_eq!(
                open_id(store, account, "Uuser").await,
                Some(format!("{account}-c2"))
            );
            assert_eq!(
                conversation_ids(
                    &store
                        .conversations_of_source(account, "Uuser")
                        .await
                        .unwrap()
                ),
                [format!("{account}-c1"), format!("{account}-c2")]
            );
            assert_eq!(
                event_ids(&store.transcript(&format!("{account}-c1")).await.unwrap()),
                ["e1", "e2"]
            );
            assert_eq!(
                event_ids(&store.transcript(&format!("{account}-c2")).await.unwrap()),
                ["e3", "e4"]
            );
            for user in ["Uuser", "Ux0"] {
                assert_eq!(
                    store
                        .customer(account, user)
                        .await
                        .unwrap()
                        .map(|c| c.account_id),
                    Some(account.to_owned()),
                    "{account} {user}"
                );
            }
        }
        pages
    }

    /// After the purge: an unsend in a kept account still finds its message (the index is
    /// whole), purging again finds nothing, and the purged account's events are new again.
    pub async fn a_purged_account_starts_afresh_and_the_others_work_on(
        store: &dyn ConversationStore,
    ) {
        committed(
            store,
            &EventCommit {
                account_id: "acc2".into(),
                retract_message_id: Some("m-e1".into()),
                ..commit("e-unsend")
            },
        )
        .await;
        let transcript = store.transcript("acc2-c1").await.unwrap();
        assert!(transcript[0].retracted);
        assert!(!transcript[1].retracted);
        assert!(!store.transcript("acc10-c1").await.unwrap()[0].retracted);

        assert_eq!(
            to_the_end(store, PURGED, 1000, false).await.0,
            PurgeCounts::default()
        );
        committed(store, &commit("e1")).await;
        committed(
            store,
            &create("e3", conversation("acc1-c2", "Uuser", Waiting, 1), None),
        )
        .await;
    }

    /// The three steps in a row, the purge in pages of `page_size` (each run twice when
    /// `twice`); how many pages the purge took.
    pub async fn run(store: &dyn ConversationStore, page_size: u32, twice: bool) -> usize {
        populate(store).await;
        let pages = purge_erases_one_account_and_nothing_of_another(store, page_size, twice).await;
        a_purged_account_starts_afresh_and_the_others_work_on(store).await;
        pages
    }
}
