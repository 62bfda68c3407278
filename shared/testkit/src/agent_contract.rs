//! Contract of every [`AgentStore`], written once and run against each adapter (SQLite, and
//! DynamoDB on moto): the union of what the SQLite and DynamoDB adapters' tests asserted.
//! Every scenario starts from an empty store.

use omniline_domain::agents::{Agent, AgentNotification, AgentStatus};
use omniline_ports::AgentStore;
use std::sync::Arc;

/// Agent `id` (available, nothing active) serving `queues`.
pub fn agent(id: &str, queues: &[&str], capacity: u32) -> Agent {
    Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        skills: vec!["ja".into(), "billing".into()],
        capacity,
        status: AgentStatus::Available,
        active_conversations: vec![],
        last_assigned_at: None,
        last_seen_at: None,
    }
}

/// Notification `id` for `agent_id` about conversation `conv-{id}`. Half the ids (by the sum of
/// their bytes) carry a picture and no language, the other half the reverse: both shapes of the
/// optional fields round-trip.
pub fn notification(id: &str, agent_id: &str, created_at: i64) -> AgentNotification {
    let odd = id.bytes().map(u32::from).sum::<u32>() % 2 == 1;
    AgentNotification {
        id: id.into(),
        agent_id: agent_id.into(),
        conversation_id: format!("conv-{id}"),
        account_id: "acc".into(),
        kind: "assigned".into(),
        customer_user_id: Some("U1".into()),
        customer_name: "山田 太郎".into(),
        customer_picture_url: odd.then(|| "https://profile.line-scdn.net/x".into()),
        customer_language: (!odd).then(|| "ja".into()),
        queue_id: "q".into(),
        created_at,
        delivery: odd.then(|| omniline_domain::agents::DeliveryFailure {
            message_id: format!("agent:conv-{id}:k"),
            status: "failed".into(),
            reason: Some("400 The property, 'to', in the request body is invalid".into()),
        }),
        // An offer's deadline round-trips too (on the other half).
        expires_at: (!odd).then_some(created_at + 30_000),
    }
}

/// The agents' ids, in order.
pub fn agent_ids(agents: &[Agent]) -> Vec<&str> {
    agents.iter().map(|a| a.id.as_str()).collect()
}

/// The notifications' ids, in order.
pub fn notification_ids(notifications: &[AgentNotification]) -> Vec<&str> {
    notifications.iter().map(|n| n.id.as_str()).collect()
}

async fn in_queue(store: &dyn AgentStore, queue: &str) -> Vec<String> {
    store
        .agents_in_queue(queue)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect()
}

async fn active(store: &dyn AgentStore, id: &str) -> Vec<String> {
    store.agent(id).await.unwrap().unwrap().active_conversations
}

// ---------------------------------------------------------------------------------------------
// Assignment

/// Twenty routers race (from a barrier) for agent `a`'s three slots: exactly three win, and the
/// agent holds exactly the winners. Returns the winners, sorted (adapters compare their raw
/// storage with them).
pub async fn capacity_is_never_exceeded_by_concurrent_assignments(
    store: Arc<dyn AgentStore>,
) -> Vec<String> {
    store.put_agent(&agent("a", &["q"], 3)).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let conversation = format!("c{i}");
                let won = store
                    .try_assign("a", &conversation, 1_000 + i)
                    .await
                    .unwrap();
                (conversation, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (conversation, won) = task.await.unwrap();
        if won {
            winners.push(conversation);
        }
    }
    winners.sort();
    assert_eq!(winners.len(), 3, "assigned: {winners:?}");
    let a = store.agent("a").await.unwrap().unwrap();
    let mut held = a.active_conversations.clone();
    held.sort();
    assert_eq!(held, winners, "active conversations");
    assert!(a.last_assigned_at.is_some());
    winners
}

/// Assigning a conversation the agent has is true and changes nothing; a full agent is refused;
/// releasing (twice, something never held, an unknown agent's) frees a slot and creates nothing.
///
/// Leaves agent `a` (capacity 2) with nothing active, `last_assigned_at` 500.
pub async fn assign_is_idempotent_and_release_frees_a_slot(store: &dyn AgentStore) {
    store.put_agent(&agent("a", &["q"], 2)).await.unwrap();
    assert!(store.try_assign("a", "c1", 100).await.unwrap());
    assert!(store.try_assign("a", "c2", 200).await.unwrap());
    // A retry of c1: true, and nothing changes.
    assert!(store.try_assign("a", "c1", 300).await.unwrap());
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, ["c1", "c2"]);
    assert_eq!(a.last_assigned_at, Some(200));
    // Full.
    assert!(!store.try_assign("a", "c3", 400).await.unwrap());
    assert_eq!(active(store, "a").await, ["c1", "c2"]);

    store.release("a", "c1").await.unwrap();
    store.release("a", "c1").await.unwrap(); // idempotent
    store.release("a", "never").await.unwrap();
    store.release("ghost", "c1").await.unwrap();
    assert!(
        store.agent("ghost").await.unwrap().is_none(),
        "no agent created"
    );
    assert_eq!(active(store, "a").await, ["c2"]);
    assert!(store.try_assign("a", "c3", 500).await.unwrap());
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.active_conversations, ["c2", "c3"]);
    assert_eq!(a.last_assigned_at, Some(500));

    // Releasing everything leaves nothing active.
    store.release("a", "c2").await.unwrap();
    store.release("a", "c3").await.unwrap();
    let a = store.agent("a").await.unwrap().unwrap();
    assert!(a.active_conversations.is_empty());
    assert_eq!(a.last_assigned_at, Some(500));
}

/// Busy, offline, zero-capacity and unknown agents take no work; a profile edit keeps the
/// presence; `set_status` changes an existing agent only; a busy agent keeps what it has.
///
/// Leaves `busy` busy with `c1`; no agent `ghost`.
pub async fn unavailable_or_unknown_agents_are_refused(store: &dyn AgentStore) {
    let mut busy = agent("busy", &["q"], 5);
    busy.status = AgentStatus::Busy;
    let mut offline = agent("offline", &["q"], 5);
    offline.status = AgentStatus::Offline;
    store.put_agent(&busy).await.unwrap();
    store.put_agent(&offline).await.unwrap();
    store.put_agent(&agent("zero", &["q"], 0)).await.unwrap();
    for id in ["busy", "offline", "zero", "ghost"] {
        assert!(!store.try_assign(id, "c1", 1).await.unwrap(), "{id}");
    }
    assert!(
        store.agent("ghost").await.unwrap().is_none(),
        "no agent created"
    );
    assert!(active(store, "busy").await.is_empty());

    // An admin's edit of the profile keeps the presence.
    busy.status = AgentStatus::Available;
    store.put_agent(&busy).await.unwrap();
    assert_eq!(
        store.agent("busy").await.unwrap().unwrap().status,
        AgentStatus::Busy
    );
    assert!(!store.try_assign("busy", "c1", 1).await.unwrap());
    // Back to available: assignable.
    assert!(store
        .set_status("busy", AgentStatus::Available, 1)
        .await
        .unwrap());
    assert!(!store
        .set_status("ghost", AgentStatus::Busy, 1)
        .await
        .unwrap());
    assert!(
        store.agent("ghost").await.unwrap().is_none(),
        "set_status creates nothing"
    );
    assert!(store.try_assign("busy", "c1", 1).await.unwrap());
    // Going busy keeps what the agent has, refuses more, and a retry of what it has is true.
    assert!(store
        .set_status("busy", AgentStatus::Busy, 1)
        .await
        .unwrap());
    assert!(!store.try_assign("busy", "c2", 2).await.unwrap());
    assert!(store.try_assign("busy", "c1", 3).await.unwrap());
    assert_eq!(active(store, "busy").await, ["c1"]);
}

/// `claim_own` (the agent writes first) takes a slot whatever the presence, never over the
/// capacity; again for the same conversation is true and changes nothing; an unknown agent
/// gets none.
pub async fn claim_own_ignores_presence_but_not_capacity(store: &dyn AgentStore) {
    store.put_agent(&agent("own", &["q"], 2)).await.unwrap();
    assert!(store.set_status("own", AgentStatus::Busy, 1).await.unwrap());
    assert!(
        !store.try_assign("own", "c1", 1).await.unwrap(),
        "busy: no routed work"
    );
    assert!(store.claim_own("own", "c1", 2).await.unwrap());
    assert!(store.claim_own("own", "c1", 3).await.unwrap(), "a retry");
    assert!(store.claim_own("own", "c2", 4).await.unwrap());
    assert!(!store.claim_own("own", "c3", 5).await.unwrap(), "full");
    assert_eq!(active(store, "own").await, ["c1", "c2"]);
    assert!(!store.claim_own("ghost", "c1", 6).await.unwrap());
    assert!(store.agent("ghost").await.unwrap().is_none());
    store.release("own", "c1").await.unwrap();
    assert!(store.claim_own("own", "c3", 7).await.unwrap());
    assert_eq!(active(store, "own").await, ["c2", "c3"]);
}

/// Offers: the second offer in a row an agent lets expire sets it away (once, and the count
/// starts again); an accepted one in between starts the count again; an offline agent stays
/// offline; an unknown agent is nothing.
pub async fn two_missed_offers_in_a_row_set_an_agent_away(store: &dyn AgentStore) {
    store.put_agent(&agent("slow", &["q"], 2)).await.unwrap();
    assert!(store
        .set_status("slow", AgentStatus::Available, 1)
        .await
        .unwrap());
    assert!(!store.record_offer("slow", true).await.unwrap());
    assert!(
        !store.record_offer("slow", false).await.unwrap(),
        "accepted: again from 0"
    );
    assert!(!store.record_offer("slow", true).await.unwrap());
    assert_eq!(
        store.agent("slow").await.unwrap().unwrap().status,
        AgentStatus::Available
    );
    assert!(
        store.record_offer("slow", true).await.unwrap(),
        "two in a row"
    );
    assert_eq!(
        store.agent("slow").await.unwrap().unwrap().status,
        AgentStatus::Away
    );
    // Back, and the count started again.
    assert!(store
        .set_status("slow", AgentStatus::Available, 2)
        .await
        .unwrap());
    assert!(!store.record_offer("slow", true).await.unwrap());
    assert_eq!(
        store.agent("slow").await.unwrap().unwrap().status,
        AgentStatus::Available
    );
    // Offline stays offline.
    assert!(store
        .set_status("slow", AgentStatus::Offline, 3)
        .await
        .unwrap());
    assert!(!store.record_offer("slow", true).await.unwrap());
    assert_eq!(
        store.agent("slow").await.unwrap().unwrap().status,
        AgentStatus::Offline
    );
    assert!(!store.record_offer("ghost", true).await.unwrap());
    assert!(store.agent("ghost").await.unwrap().is_none());
}

/// A presence set by the agent records when it was heard from; `expire_presence` sets away an
/// available or busy agent heard from before the cutoff and nothing else: not one heard from
/// since (a heartbeat that landed first wins), not one never heard from, not one already away
/// or offline; its conversations stay its own. An admin's edit keeps `last_seen_at`.
pub async fn presence_expires_only_for_agents_not_heard_from(store: &dyn AgentStore) {
    for id in ["quiet", "fresh", "never", "off"] {
        store.put_agent(&agent(id, &["q"], 2)).await.unwrap();
    }
    assert_eq!(
        store.agent("never").await.unwrap().unwrap().last_seen_at,
        None
    );
    assert!(store
        .set_status("quiet", AgentStatus::Available, 1_000)
        .await
        .unwrap());
    assert!(store.try_assign("quiet", "c1", 1_100).await.unwrap());
    assert!(store
        .set_status("fresh", AgentStatus::Busy, 5_000)
        .await
        .unwrap());
    assert!(store
        .set_status("off", AgentStatus::Offline, 1_000)
        .await
        .unwrap());
    let quiet = store.agent("quiet").await.unwrap().unwrap();
    assert_eq!(quiet.last_seen_at, Some(1_000));
    // An admin's edit keeps when the agent was heard from.
    store.put_agent(&agent("quiet", &["q"], 3)).await.unwrap();
    assert_eq!(
        store.agent("quiet").await.unwrap().unwrap().last_seen_at,
        Some(1_000)
    );

    // Cutoff 5 000: only "quiet" (1 000) lapsed; "fresh" was heard from at the cutoff.
    assert!(store.expire_presence("quiet", 5_000).await.unwrap());
    assert!(!store.expire_presence("fresh", 5_000).await.unwrap());
    assert!(!store.expire_presence("never", 5_000).await.unwrap());
    assert!(!store.expire_presence("off", 5_000).await.unwrap());
    assert!(!store.expire_presence("ghost", 5_000).await.unwrap());
    assert!(store.agent("ghost").await.unwrap().is_none());
    let quiet = store.agent("quiet").await.unwrap().unwrap();
    assert_eq!(quiet.status, AgentStatus::Away);
    assert_eq!(
        quiet.active_conversations,
        ["c1"],
        "its conversations stay its own"
    );
    assert!(!store.try_assign("quiet", "c2", 6_000).await.unwrap());
    // Again: already away.
    assert!(!store.expire_presence("quiet", 9_000).await.unwrap());
    for (id, status) in [
        ("fresh", AgentStatus::Busy),
        ("never", AgentStatus::Available),
        ("off", AgentStatus::Offline),
    ] {
        assert_eq!(
            store.agent(id).await.unwrap().unwrap().status,
            status,
            "{id}"
        );
    }
    // A heartbeat brings it back.
    assert!(store
        .set_status("quiet", AgentStatus::Available, 9_500)
        .await
        .unwrap());
    assert!(store.try_assign("quiet", "c2", 9_600).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Profiles and listing

/// `put_agent` moves the queue membership with the profile and keeps the presence, the active
/// conversations and `last_assigned_at`; `agents_in_queue` lists whole agents by id.
///
/// Leaves `a` (capacity 4, busy, `c1` active) in no queue, `b` in `q2`.
pub async fn put_agent_moves_queue_membership_and_keeps_assignment_state(store: &dyn AgentStore) {
    store
        .put_agent(&agent("a", &["q1", "q2"], 2))
        .await
        .unwrap();
    store.put_agent(&agent("b", &["q2"], 2)).await.unwrap();
    assert_eq!(in_queue(store, "q1").await, ["a"]);
    assert_eq!(in_queue(store, "q2").await, ["a", "b"]);
    assert!(in_queue(store, "q3").await.is_empty());
    assert!(store.try_assign("a", "c1", 42).await.unwrap());

    // a leaves q1, joins q3, is renamed, gets other skills and more capacity, and the edit says
    // offline; its presence (available), active conversation and last assignment stay.
    let mut edited = agent("a", &["q2", "q3"], 4);
    edited.name = "Renamed".into();
    edited.skills = vec!["en".into()];
    edited.status = AgentStatus::Offline;
    store.put_agent(&edited).await.unwrap();
    assert_eq!(
        store.agent("a").await.unwrap().unwrap().status,
        AgentStatus::Available
    );
    // Presence is its own write.
    assert!(store.set_status("a", AgentStatus::Busy, 1).await.unwrap());
    assert!(!store
        .set_status("ghost", AgentStatus::Busy, 1)
        .await
        .unwrap());
    assert!(store.agent("ghost").await.unwrap().is_none());
    assert!(in_queue(store, "q1").await.is_empty());
    assert_eq!(in_queue(store, "q2").await, ["a", "b"]);
    assert_eq!(in_queue(store, "q3").await, ["a"]);
    let a = store.agent("a").await.unwrap().unwrap();
    assert_eq!(a.name, "Renamed");
    assert_eq!(a.queues, ["q2", "q3"]);
    assert_eq!(a.skills, ["en"]);
    assert_eq!(a.capacity, 4);
    assert_eq!(a.status, AgentStatus::Busy);
    assert_eq!(a.active_conversations, ["c1"]);
    assert_eq!(a.last_assigned_at, Some(42));
    // The listing carries whole agents.
    assert_eq!(store.agents_in_queue("q3").await.unwrap(), [a]);

    // Out of every queue.
    store.put_agent(&agent("a", &[], 4)).await.unwrap();
    assert_eq!(in_queue(store, "q2").await, ["b"]);
    assert!(in_queue(store, "q3").await.is_empty());
    let a = store.agent("a").await.unwrap().unwrap();
    assert!(a.queues.is_empty());
    assert_eq!(a.active_conversations, ["c1"]);
    assert!(store.agent("nobody").await.unwrap().is_none());
}

/// `list_agents` lists whole agents by id, once each.
///
/// Leaves agents `a` (`q1`, `q2`), `b` (`q2`, capacity 5, `c1` active) and `c` (no queue).
pub async fn list_agents_is_ordered_by_id_and_carries_whole_agents(store: &dyn AgentStore) {
    assert!(store.list_agents().await.unwrap().is_empty());
    store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
    store.put_agent(&agent("c", &[], 1)).await.unwrap();
    store
        .put_agent(&agent("a", &["q1", "q2"], 3))
        .await
        .unwrap();
    assert!(store.try_assign("b", "c1", 7).await.unwrap());
    let listed = store.list_agents().await.unwrap();
    assert_eq!(agent_ids(&listed), ["a", "b", "c"]);
    assert_eq!(listed[0], agent("a", &["q1", "q2"], 3));
    assert_eq!(listed[1].active_conversations, ["c1"]);
    assert_eq!(listed[1].last_assigned_at, Some(7));
    // Editing an agent does not list it twice.
    store.put_agent(&agent("b", &["q2"], 5)).await.unwrap();
    let listed = store.list_agents().await.unwrap();
    assert_eq!(agent_ids(&listed), ["a", "b", "c"]);
    assert_eq!(listed[1].capacity, 5);
    assert_eq!(listed[1].active_conversations, ["c1"]);
}

/// 130 agents (more than one DynamoDB BatchGetItem), written in reverse: listed in id order.
pub async fn list_agents_lists_many_agents_in_id_order(store: &dyn AgentStore) {
    let mut expected: Vec<String> = (0..130).map(|i| format!("ag{i:03}")).collect();
    for id in expected.iter().rev() {
        store.put_agent(&agent(id, &["q"], 1)).await.unwrap();
    }
    expected.sort();
    let listed = store.list_agents().await.unwrap();
    assert_eq!(agent_ids(&listed), expected);
    assert_eq!(in_queue(store, "q").await, expected);
}

// ---------------------------------------------------------------------------------------------
// Deletion

/// The scenario of `delete_agent`, in two steps (adapters check their raw storage between
/// them): [`delete_agent_removes_everything_of_the_agent_only`], then
/// [`a_deleted_agents_id_starts_clean`].
///
/// Leaves `a` deleted (it had queues `q1`, `q2`, conversation `c1` and notifications
/// `na00`…`na29`), `b` whole (`q1`, `c2`, notification `nb`).
pub async fn delete_agent_removes_everything_of_the_agent_only(store: &dyn AgentStore) {
    store
        .put_agent(&agent("a", &["q1", "q2"], 2))
        .await
        .unwrap();
    store.put_agent(&agent("b", &["q1"], 2)).await.unwrap();
    assert!(store.try_assign("a", "c1", 10).await.unwrap());
    assert!(store.try_assign("b", "c2", 11).await.unwrap());
    // More than one DynamoDB BatchWriteItem of 25: 30 notifications plus their markers.
    for i in 0..30 {
        store
            .notify(&notification(&format!("na{i:02}"), "a", 100 + i), None)
            .await
            .unwrap();
    }
    store
        .notify(&notification("nb", "b", 300), None)
        .await
        .unwrap();

    assert!(store.delete_agent("a").await.unwrap());
    assert!(store.agent("a").await.unwrap().is_none());
    assert_eq!(agent_ids(&store.list_agents().await.unwrap()), ["b"]);
    assert_eq!(in_queue(store, "q1").await, ["b"]);
    assert!(in_queue(store, "q2").await.is_empty());
    assert!(store.notifications("a").await.unwrap().is_empty());
    assert!(store
        .notifications_after("a", None, 100)
        .await
        .unwrap()
        .is_empty());
    // b is untouched.
    assert_eq!(
        store.notifications("b").await.unwrap(),
        [notification("nb", "b", 300)]
    );
    assert_eq!(active(store, "b").await, ["c2"]);
    // A deleted agent takes no work, and nothing is recreated by trying.
    assert!(!store.try_assign("a", "c3", 12).await.unwrap());
    store.release("a", "c1").await.unwrap();
    assert!(!store.set_status("a", AgentStatus::Busy, 1).await.unwrap());
    assert!(store.agent("a").await.unwrap().is_none());

    // Gone already, or never there: false.
    assert!(!store.delete_agent("a").await.unwrap());
    assert!(!store.delete_agent("ghost").await.unwrap());
}

/// After [`delete_agent_removes_everything_of_the_agent_only`]: the same id again starts clean
/// (no old conversations, assignment time, queues or notifications); a notification id used
/// before is new again.
///
/// Leaves `a` (`q2`, capacity 1, `c9` active, notification `na00` at 500) and `b`.
pub async fn a_deleted_agents_id_starts_clean(store: &dyn AgentStore) {
    store.put_agent(&agent("a", &["q2"], 1)).await.unwrap();
    assert_eq!(
        store.agent("a").await.unwrap().unwrap(),
        agent("a", &["q2"], 1)
    );
    assert!(store.notifications("a").await.unwrap().is_empty());
    assert_eq!(in_queue(store, "q1").await, ["b"]);
    assert_eq!(in_queue(store, "q2").await, ["a"]);
    assert!(store.try_assign("a", "c9", 20).await.unwrap());
    store
        .notify(&notification("na00", "a", 500), None)
        .await
        .unwrap();
    assert_eq!(
        store.notifications("a").await.unwrap(),
        [notification("na00", "a", 500)]
    );
    assert_eq!(agent_ids(&store.list_agents().await.unwrap()), ["a", "b"]);
}

/// Notifications of an id without a profile (or left by a delete that failed half-way) go with
/// a `delete_agent` of that id, which is still `false`.
///
/// Leaves nothing (notification `n1` of `ghost` deleted).
pub async fn delete_agent_without_profile_still_clears_notifications(store: &dyn AgentStore) {
    store
        .notify(&notification("n1", "ghost", 1), None)
        .await
        .unwrap();
    assert_eq!(store.notifications("ghost").await.unwrap().len(), 1);
    assert!(!store.delete_agent("ghost").await.unwrap());
    assert!(store.notifications("ghost").await.unwrap().is_empty());
    assert!(store.agent("ghost").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Notifications

/// `notify` is idempotent by id (a retry with another time or content changes nothing);
/// notifications are per agent, ordered by time; they live beside the profile without
/// disturbing it.
///
/// Leaves `n1`, `n2` (at 100, 200) for `a`, `n3` for `b`; agent `a` with `c` active.
pub async fn notifications_are_idempotent_by_id_and_ordered(store: &dyn AgentStore) {
    store
        .notify(&notification("n2", "a", 200), None)
        .await
        .unwrap();
    store
        .notify(&notification("n1", "a", 100), None)
        .await
        .unwrap();
    // Same id again: unchanged, even with another created_at and content.
    store
        .notify(&notification("n2", "a", 200), None)
        .await
        .unwrap();
    let mut retry = notification("n2", "a", 300);
    retry.customer_name = "other".into();
    store.notify(&retry, None).await.unwrap();
    store
        .notify(&notification("n3", "b", 50), None)
        .await
        .unwrap();

    assert_eq!(
        store.notifications("a").await.unwrap(),
        [notification("n1", "a", 100), notification("n2", "a", 200)]
    );
    assert_eq!(
        store.notifications("b").await.unwrap(),
        [notification("n3", "b", 50)]
    );
    assert!(store.notifications("c").await.unwrap().is_empty());

    // Notifications share the agent's storage without disturbing the profile.
    store.put_agent(&agent("a", &["q"], 1)).await.unwrap();
    assert!(store.try_assign("a", "c", 1).await.unwrap());
    assert_eq!(store.notifications("a").await.unwrap().len(), 2);
    assert_eq!(active(store, "a").await, ["c"]);
    assert_eq!(agent_ids(&store.list_agents().await.unwrap()), ["a"]);
}

/// Every page of `notifications_after` from the start, `page` at a time.
pub async fn pages(store: &dyn AgentStore, agent_id: &str, page: usize) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let got = store
            .notifications_after(
                agent_id,
                cursor.as_ref().map(|(t, id)| (*t, id.as_str())),
                page,
            )
            .await
            .unwrap();
        assert!(got.len() <= page, "page of {} > {page}", got.len());
        let Some(last) = got.last() else {
            return out;
        };
        cursor = Some((last.created_at, last.id.clone()));
        out.push(got.into_iter().map(|n| n.id).collect());
        assert!(out.len() < 100, "pagination does not end");
    }
}

/// `notifications_after` pages through every notification once, in (created_at, id) order,
/// whatever the page size: equal times with different ids written out of order, ids that are
/// prefixes of one another, negative times, the agent's profile beside them, another agent's
/// notifications; cursors that are not stored notifications.
pub async fn notifications_after_pages_through_every_notification_once_in_order(
    store: &dyn AgentStore,
) {
    store.put_agent(&agent("a", &["q"], 1)).await.unwrap();
    for (id, at) in [
        ("n-b", 200),
        ("n-a", 200),
        ("n-ab", 200),
        ("n-c", 200),
        ("early", 100),
        ("late", 300),
        ("neg", -5),
        ("a-neg", -1),
        ("zero", 0),
        ("n", 200),
        ("last", 400),
    ] {
        store
            .notify(&notification(id, "a", at), None)
            .await
            .unwrap();
    }
    store
        .notify(&notification("other", "b", 250), None)
        .await
        .unwrap();
    store
        .notify(&notification("other2", "b", 150), None)
        .await
        .unwrap();

    let all: Vec<String> = store
        .notifications("a")
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        all,
        ["neg", "a-neg", "zero", "early", "n", "n-a", "n-ab", "n-b", "n-c", "late", "last"]
    );
    for page in 1..=12 {
        let got = pages(store, "a", page).await;
        assert_eq!(got.concat(), all, "page size {page}");
        let full_pages = all.len() / page;
        assert!(got[..full_pages].iter().all(|p| p.len() == page));
    }

    // All at once; limit 0; after the last one.
    assert_eq!(
        store.notifications_after("a", None, 100).await.unwrap(),
        store.notifications("a").await.unwrap()
    );
    assert!(store
        .notifications_after("a", None, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .notifications_after("a", Some((400, "last")), 10)
        .await
        .unwrap()
        .is_empty());
    // Cursors that are not stored notifications.
    let after = |at: i64, id: &'static str, limit: usize| async move {
        store
            .notifications_after("a", Some((at, id)), limit)
            .await
            .unwrap()
    };
    assert_eq!(
        notification_ids(&after(200, "n-aa", 3).await),
        ["n-ab", "n-b", "n-c"]
    );
    assert_eq!(notification_ids(&after(200, "n", 2).await), ["n-a", "n-ab"]);
    assert_eq!(notification_ids(&after(250, "", 5).await), ["late", "last"]);
    assert_eq!(
        notification_ids(&after(-3, "zzz", 3).await),
        ["a-neg", "zero", "early"]
    );
    assert_eq!(notification_ids(&after(0, "zero", 1).await), ["early"]);
    assert_eq!(
        notification_ids(
            &store
                .notifications_after("b", Some((150, "other2")), 5)
                .await
                .unwrap()
        ),
        ["other"]
    );
    assert!(store
        .notifications_after("nobody", None, 5)
        .await
        .unwrap()
        .is_empty());
}

/// Sixty big notifications (about 30 kB each: a 1 MB DynamoDB page holds far fewer than asked
/// for), three per millisecond: read whole, after a cursor, and in pages of seven.
pub async fn notifications_after_reads_past_a_page_of_big_notifications(store: &dyn AgentStore) {
    let mut written = Vec::new();
    for i in 0..60 {
        let mut n = notification(&format!("big-{i:02}"), "a", 1_000 + i / 3);
        n.customer_name = "x".repeat(30_000);
        store.notify(&n, None).await.unwrap();
        written.push(n.id);
    }
    let got = store.notifications_after("a", None, 60).await.unwrap();
    assert_eq!(notification_ids(&got), written);
    let got = store
        .notifications_after("a", Some((1_000, "big-00")), 59)
        .await
        .unwrap();
    assert_eq!(notification_ids(&got), written[1..]);
    assert_eq!(pages(store, "a", 7).await.concat(), written);
}

/// Erasing a customer deletes the notifications about their conversation, whichever agent got
/// them; other conversations' stay; a notification stored again after its erasure (a retry) is
/// a new one, deletable again.
///
/// Leaves `c2:a:assigned` (conversation `c2`) only.
pub async fn a_conversations_notifications_are_deleted_for_every_agent(store: &dyn AgentStore) {
    let mut of_c1 = vec![
        notification("c1:a:assigned", "a", 10),
        notification("c1:b:message", "b", 20),
    ];
    for n in &mut of_c1 {
        n.conversation_id = "c1".into();
    }
    let mut of_c2 = notification("c2:a:assigned", "a", 30);
    of_c2.conversation_id = "c2".into();
    for n in of_c1.iter().chain([&of_c2]) {
        store.notify(n, None).await.unwrap();
    }
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        2
    );
    assert_eq!(store.notifications("a").await.unwrap(), [of_c2.clone()]);
    assert!(store.notifications("b").await.unwrap().is_empty());
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_conversation_notifications("nope")
            .await
            .unwrap(),
        0
    );
    // A notification stored again after its erasure (a retry) is a new one, deletable again.
    store.notify(&of_c1[0], None).await.unwrap();
    assert_eq!(
        store.notifications("a").await.unwrap(),
        [of_c1[0].clone(), of_c2.clone()]
    );
    assert_eq!(
        store.delete_conversation_notifications("c1").await.unwrap(),
        1
    );
    assert_eq!(store.notifications("a").await.unwrap(), [of_c2]);
}
