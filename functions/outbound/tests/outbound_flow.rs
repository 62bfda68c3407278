//! The outbound function over the embedded stores with LINE served by wiremock: reply first, push
//! with a stable retry key after, and every failure path of the issue.

use omniline_domain::account::{credentials_secret_name, ChannelCredentials};
use omniline_domain::conversation::{Consent, Customer, EventCommit};
use omniline_domain::delivery::DeliveryStatus;
use omniline_domain::outbound::{text_message, Origin, OutboundMessage};
use omniline_domain::secret::SecretString;
use omniline_embedded::sqlite_conversations::SqliteConversationStore;
use omniline_embedded::sqlite_deliveries::SqliteDeliveryStore;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteSecretStore};
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::AgentStore as _;
use omniline_ports::{ConversationStore, DeliveryStore, SecretStore};
use outbound::{ChannelTokens, MediaLinks, OutboundDeps, OutboundService};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ACCOUNT: &str = "acc1";
const T0: i64 = 1_795_575_600_000;

struct Fixture {
    _dir: tempfile::TempDir,
    service: OutboundService,
    deliveries: Arc<SqliteDeliveryStore>,
    conversations: Arc<SqliteConversationStore>,
    secrets: Arc<SqliteSecretStore>,
    config: Arc<omniline_embedded::config_docs::SqliteConfigStore>,
    agents: Arc<omniline_embedded::sqlite_agents::SqliteAgentStore>,
    line: MockServer,
    now: Arc<AtomicI64>,
}

async fn fixture_with_timeout(timeout: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = EmbeddedDb::open(dir.path()).unwrap();
    let accounts = Arc::new(SqliteAccountStore::new(db.clone()));
    let secrets = Arc::new(SqliteSecretStore::new(db.clone()));
    omniline_testkit::seed_account(
        accounts.as_ref(),
        secrets.as_ref(),
        ACCOUNT,
        "8c570fa6dd201bb328f1c1eac23a96d8",
    )
    .await
    .unwrap();
    let line = MockServer::start().await;
    let api = Arc::new(
        HttpLineApi::new(&LineApiConfig {
            api_base: line.uri(),
            data_api_base: line.uri(),
            timeout,
            ..LineApiConfig::default()
        })
        .unwrap(),
    );
    let deliveries = Arc::new(SqliteDeliveryStore::new(db.clone()).unwrap());
    let conversations = Arc::new(SqliteConversationStore::new(db.clone()).unwrap());
    let now = Arc::new(AtomicI64::new(T0));
    let clock_now = Arc::clone(&now);
    let config =
        Arc::new(omniline_embedded::config_docs::SqliteConfigStore::new(db.clone()).unwrap());
    let agents =
        Arc::new(omniline_embedded::sqlite_agents::SqliteAgentStore::new(db.clone()).unwrap());
    let service = OutboundService::new(OutboundDeps {
        accounts: accounts.clone(),
        agents: agents.clone(),
        deliveries: deliveries.clone(),
        config: config.clone(),
        conversations: conversations.clone(),
        line: api.clone(),
        tokens: Arc::new(ChannelTokens::new(accounts, secrets.clone(), api)),
        media: Some(MediaLinks {
            base_url: "https://omniline.example.com".into(),
            signing_secret: SecretString::new("media-signing-secret").into(),
        }),
        clock: Arc::new(move || clock_now.load(Ordering::SeqCst)),
    });
    Fixture {
        _dir: dir,
        service,
        deliveries,
        conversations,
        secrets,
        config,
        agents,
        line,
        now,
    }
}

async fn fixture() -> Fixture {
    fixture_with_timeout(Duration::from_secs(2)).await
}

fn message(id: &str, messages: Vec<Value>, reply_token: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        id: id.into(),
        account_id: ACCOUNT.into(),
        conversation_id: "conv1".into(),
        to: "Ucustomer".into(),
        origin: Origin::Agent,
        trigger: None,
        messages,
        reply_token: reply_token.map(str::to_owned),
        reply_token_received_at: reply_token.map(|_| T0 - 5_000),
        sender: None,
        created_at: T0,
        agent_id: None,
    }
}

fn body(m: &OutboundMessage) -> String {
    serde_json::to_string(m).unwrap()
}

/// LINE accepts every call to `route`, which must come `times` times.
async fn accepts(f: &Fixture, route: &str, times: u64) {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ok_push())
        .expect(times)
        .mount(&f.line)
        .await;
}

/// LINE accepts one reply, and no push may come.
async fn replies_once(f: &Fixture) {
    accepts(f, "/v2/bot/message/reply", 1).await;
    accepts(f, "/v2/bot/message/push", 0).await;
}

fn ok_push() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-line-request-id", "req-1")
        .set_body_json(json!({"sentMessages": [{"id": "461230966842064897", "quoteToken": "q"}]}))
}

async fn requests_to(line: &MockServer, p: &str) -> Vec<Request> {
    line.received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == p)
        .collect()
}

#[tokio::test]
async fn a_fresh_reply_token_is_used_for_a_free_reply() {
    let f = fixture().await;
    replies_once(&f).await;
    let m = message("greet-1", vec![text_message("Hello!")], Some("rt-1"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    let sent: Value =
        serde_json::from_slice(&requests_to(&f.line, "/v2/bot/message/reply").await[0].body)
            .unwrap();
    assert_eq!(
        sent,
        json!({"replyToken": "rt-1", "messages": [{"type": "text", "text": "Hello!"}]})
    );
    let d = f.deliveries.delivery("greet-1").await.unwrap().unwrap();
    assert_eq!(d.request_ids, ["req-1"]);
    assert_eq!(d.sent_message_ids, ["461230966842064897"]);
    // The queue redelivers it: nothing is sent again.
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

/// A delivery that replies records the attempt with its beginning: two writes in all (its
/// beginning, then LINE's answer with the final status), not three.
#[tokio::test]
async fn a_reply_is_recorded_as_attempted_by_the_deliverys_beginning() {
    let f = fixture().await;
    replies_once(&f).await;
    let m = message("greet-2", vec![text_message("Hello!")], Some("rt-2"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    let d = f.deliveries.delivery("greet-2").await.unwrap().unwrap();
    assert!(d.reply_attempted);
    let begun = omniline_domain::delivery::Delivery::new("x", ACCOUNT, "c", "k", T0).version;
    assert_eq!(d.version, begun + 1, "begun, then finished: one update");
}

/// The token is read before the delivery is begun: when it cannot be read, no record says a
/// reply was attempted, so the next attempt replies (not `unconfirmed`).
#[tokio::test]
async fn a_token_that_cannot_be_read_leaves_no_reply_attempt_and_the_retry_replies() {
    let f = fixture().await;
    replies_once(&f).await;
    let name = credentials_secret_name(ACCOUNT);
    let stored = f.secrets.get(&name).await.unwrap().unwrap();
    f.secrets
        .put(&name, &SecretString::new("not credentials"))
        .await
        .unwrap();
    let m = message("tok-1", vec![text_message("Hello!")], Some("rt-3"));
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert!(
        f.deliveries
            .delivery("tok-1")
            .await
            .unwrap()
            .is_none_or(|d| !d.reply_attempted),
        "no reply attempt recorded"
    );
    f.secrets.put(&name, &stored).await.unwrap();
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    assert_eq!(requests_to(&f.line, "/v2/bot/message/reply").await.len(), 1);
}

/// What is read before the beginning cannot fail a redelivery of a message already sent: it is
/// skipped as before, even when the channel token cannot be read.
#[tokio::test]
async fn a_sent_message_delivered_again_is_skipped_even_when_its_token_cannot_be_read() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ok_push())
        .expect(0)
        .mount(&f.line)
        .await;
    let mut d = omniline_domain::delivery::Delivery::new("done-1", ACCOUNT, "conv1", "k", T0);
    d = f.deliveries.begin(&d).await.unwrap();
    d.status = DeliveryStatus::Sent;
    d.version += 1;
    assert!(f.deliveries.update(&d).await.unwrap());
    f.secrets
        .put(
            &credentials_secret_name(ACCOUNT),
            &SecretString::new("not credentials"),
        )
        .await
        .unwrap();
    let m = message("done-1", vec![text_message("Hello!")], Some("rt-4"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn an_old_reply_token_is_not_used_a_push_goes_instead() {
    let f = fixture().await;
    accepts(&f, "/v2/bot/message/reply", 0).await;
    accepts(&f, "/v2/bot/message/push", 1).await;
    f.now.store(T0 + 60_000, Ordering::SeqCst);
    let m = message(
        "late-1",
        vec![text_message("Sorry for the wait")],
        Some("rt-old"),
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn an_invalid_reply_token_falls_back_to_a_push() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid reply token"})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 1).await;
    let m = message("m1", vec![text_message("hi")], Some("rt-used"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn a_reply_that_times_out_is_retried_with_its_token_then_unconfirmed_and_never_pushed() {
    let f = fixture_with_timeout(Duration::from_millis(300)).await;
    // LINE took the reply but answered too late; the same token again is refused as used.
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .and(body_partial_json(json!({"replyToken": "rt-1"})))
        .respond_with(ok_push().set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .expect(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid reply token"})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    let m = message("m1", vec![text_message("hi")], Some("rt-1"));
    assert!(
        matches!(
            f.service.deliver(&body(&m)).await,
            Err(outbound::OutboundError::Retry(_))
        ),
        "an unknown outcome is retried"
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Unconfirmed
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Unconfirmed,
        "and stays so"
    );
}

#[tokio::test]
async fn a_reply_answered_500_is_sent_again_with_the_same_token() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .expect(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .and(body_partial_json(json!({"replyToken": "rt-1"})))
        .respond_with(ok_push())
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    let m = message("m1", vec![text_message("hi")], Some("rt-1"));
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn a_500_then_409_is_one_delivery_with_the_same_key_and_body() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"message": "The retry key is already accepted"})),
        )
        .mount(&f.line)
        .await;
    let m = message("agent-1", vec![text_message("Your order shipped.")], None);
    assert!(
        f.service.deliver(&body(&m)).await.is_err(),
        "5xx: retried later"
    );
    assert_eq!(
        f.deliveries
            .delivery("agent-1")
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::Queued
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    let pushes = requests_to(&f.line, "/v2/bot/message/push").await;
    assert_eq!(pushes.len(), 2);
    let key = |r: &Request| {
        r.headers
            .get("x-line-retry-key")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(key(&pushes[0]), key(&pushes[1]));
    assert!(uuid::Uuid::parse_str(&key(&pushes[0])).is_ok());
    assert_eq!(pushes[0].body, pushes[1].body);
}

#[tokio::test]
async fn a_timeout_then_200_keeps_the_retry_key() {
    let f = fixture_with_timeout(Duration::from_millis(300)).await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push().set_delay(Duration::from_secs(2)))
        .up_to_n_times(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push())
        .mount(&f.line)
        .await;
    let m = message("agent-2", vec![text_message("Hello")], None);
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    let pushes = requests_to(&f.line, "/v2/bot/message/push").await;
    assert_eq!(pushes.len(), 2);
    assert_eq!(
        pushes[0].headers.get("x-line-retry-key"),
        pushes[1].headers.get("x-line-retry-key")
    );
}

#[tokio::test]
async fn the_monthly_limit_holds_the_message_without_retrying() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({"message": "You have reached your monthly limit."})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    let m = message("agent-3", vec![text_message("hi")], None);
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::QuotaExhausted
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::QuotaExhausted
    );
}

#[tokio::test]
async fn a_rate_limit_is_retried_later() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({"message": "The API rate limit has been exceeded."})),
        )
        .mount(&f.line)
        .await;
    let m = message("agent-4", vec![text_message("hi")], None);
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert_eq!(
        f.deliveries
            .delivery("agent-4")
            .await
            .unwrap()
            .unwrap()
            .status,
        DeliveryStatus::Queued
    );
}

#[tokio::test]
async fn a_400_fails_once_with_lines_error() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "The request body has 1 error(s)",
            "details": [{"message": "May not be empty", "property": "messages[0].text"}]
        })))
        .expect(1)
        .mount(&f.line)
        .await;
    let m = OutboundMessage {
        agent_id: Some("a1".into()),
        ..message("agent-5", vec![text_message("x")], None)
    };
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Failed
    );
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Failed
    );
    let d = f.deliveries.delivery("agent-5").await.unwrap().unwrap();
    assert!(d.error.unwrap().contains("messages[0].text"));
    // The agent who wrote it is told, once however often the delivery runs.
    let told = f.agents.notifications("a1").await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].kind, "deliveryFailed");
    assert_eq!(told[0].conversation_id, m.conversation_id);
    let failure = told[0].delivery.as_ref().unwrap();
    assert_eq!(
        (failure.message_id.as_str(), failure.status.as_str()),
        ("agent-5", "failed")
    );
    assert!(failure
        .reason
        .as_deref()
        .unwrap()
        .contains("messages[0].text"));
    // Nobody is told of a message no agent wrote.
    assert!(f.agents.notifications("").await.unwrap().is_empty());
}

/// What the stack sent on its own (a greeting, a bot's answer) and LINE refused: the agent
/// holding the open conversation is told; once it is closed, or with no agent, nobody is.
#[tokio::test]
async fn an_automated_message_line_refuses_tells_the_agent_holding_the_conversation() {
    use omniline_domain::conversation::{ConversationState, ConversationWrite};
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "The request body has 1 error(s)",
            "details": [{"message": "invalid uri", "property": "messages[0].originalContentUrl"}]
        })))
        .mount(&f.line)
        .await;
    let mut held = omniline_testkit::conversation_contract::with_agent(
        omniline_testkit::conversation_contract::conversation(
            "conv-held",
            "Ucustomer",
            ConversationState::Waiting,
            1,
        ),
        "a7",
    );
    held.account_id = ACCOUNT.into();
    let mut closed = held.clone();
    closed.id = "conv-closed".into();
    closed.state = ConversationState::Closed;
    closed.closed_at = Some(T0);
    let mut unheld = held.clone();
    unheld.id = "conv-unheld".into();
    unheld.agent_id = None;
    unheld.state = ConversationState::Waiting;
    for (n, c) in [held, closed, unheld].into_iter().enumerate() {
        let commit = EventCommit {
            account_id: ACCOUNT.into(),
            event_id: format!("open-{n}"),
            now_secs: T0 / 1000,
            dedupe_expires_at: T0 / 1000 + 3600,
            retain_until: None,
            conversation: Some(ConversationWrite::Create(c)),
            transcript: None,
            retract_message_id: None,
            customer: None,
            outbox: Vec::new(),
            notifications: Vec::new(),
        };
        f.conversations.commit(&commit).await.unwrap();
    }
    for (id, conversation) in [
        ("greet-1", "conv-held"),
        ("greet-2", "conv-closed"),
        ("greet-3", "conv-unheld"),
    ] {
        let m = OutboundMessage {
            origin: Origin::Automated,
            conversation_id: conversation.into(),
            ..message(id, vec![text_message("Welcome!")], None)
        };
        assert_eq!(
            f.service.deliver(&body(&m)).await.unwrap(),
            DeliveryStatus::Failed
        );
    }
    let told = f.agents.notifications("a7").await.unwrap();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        (told[0].kind.as_str(), told[0].conversation_id.as_str()),
        ("deliveryFailed", "conv-held")
    );
    let failure = told[0].delivery.as_ref().unwrap();
    assert_eq!(failure.message_id, "greet-1");
    assert!(failure
        .reason
        .as_deref()
        .unwrap()
        .contains("originalContentUrl"));
    assert_eq!(told[0].queue_id, "q1");
}

#[tokio::test]
async fn a_401_rereads_the_token_once() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(header("authorization", "Bearer rotated-token"))
        .respond_with(ok_push())
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Authentication failed"})),
        )
        .mount(&f.line)
        .await;
    // The old token is cached by a first (refused) delivery.
    let first = message("agent-6", vec![text_message("one")], None);
    assert_eq!(
        f.service.deliver(&body(&first)).await.unwrap(),
        DeliveryStatus::Failed
    );
    let rotated = ChannelCredentials {
        channel_secret: SecretString::new("8c570fa6dd201bb328f1c1eac23a96d8"),
        channel_access_token: SecretString::new("rotated-token"),
    };
    f.secrets
        .put(&credentials_secret_name(ACCOUNT), &rotated.to_secret())
        .await
        .unwrap();
    let second = message("agent-7", vec![text_message("two")], None);
    assert_eq!(
        f.service.deliver(&body(&second)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn seven_messages_and_a_long_text_are_split_in_order() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push())
        .mount(&f.line)
        .await;
    let seven: Vec<Value> = (1..=7)
        .map(|i| text_message(&format!("message {i}")))
        .collect();
    assert_eq!(
        f.service
            .deliver(&body(&message("seven", seven, None)))
            .await
            .unwrap(),
        DeliveryStatus::Sent
    );
    let long: String = (0..12_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(
        f.service
            .deliver(&body(&message("long", vec![text_message(&long)], None)))
            .await
            .unwrap(),
        DeliveryStatus::Sent
    );

    let pushes = requests_to(&f.line, "/v2/bot/message/push").await;
    assert_eq!(pushes.len(), 3);
    let bodies: Vec<Value> = pushes
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[0]["messages"].as_array().unwrap().len(), 5);
    assert_eq!(bodies[1]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(bodies[1]["messages"][1]["text"], "message 7");
    assert_ne!(
        pushes[0].headers.get("x-line-retry-key"),
        pushes[1].headers.get("x-line-retry-key")
    );
    let texts: Vec<&str> = bodies[2]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 3);
    assert_eq!(texts.concat(), long);
    assert!(texts.iter().all(|t| t.len() <= 5000));
    assert_eq!(
        f.deliveries
            .delivery("seven")
            .await
            .unwrap()
            .unwrap()
            .parts_sent,
        2
    );
}

#[tokio::test]
async fn a_customer_who_blocked_the_account_is_not_pushed_to() {
    let f = fixture().await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    let customer = Customer {
        account_id: ACCOUNT.into(),
        user_id: "Ucustomer".into(),
        display_name: "C".into(),
        picture_url: None,
        language: None,
        profile_found: true,
        consent: Consent::Unfollowed,
        linked_contact_id: None,
        created_at: T0,
        updated_at: T0,
        profile_fetched_at: None,
    };
    let commit = EventCommit {
        account_id: ACCOUNT.into(),
        event_id: "unfollow-1".into(),
        now_secs: T0 / 1000,
        dedupe_expires_at: T0 / 1000 + 3600,
        retain_until: None,
        conversation: None,
        transcript: None,
        retract_message_id: None,
        customer: Some(customer),
        outbox: Vec::new(),
        notifications: Vec::new(),
    };
    f.conversations.commit(&commit).await.unwrap();
    let m = message("agent-8", vec![text_message("are you there?")], None);
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Suppressed
    );
}

/// Security review 1/7 #3: a bot's message naming another customer's inbound image got a 30-day
/// signed link to it. Only keys under the message's account and conversation are signed; any other
/// fails the delivery, and LINE is not called.
#[tokio::test]
async fn a_media_key_outside_the_conversation_fails_the_delivery_and_signs_nothing() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push())
        .expect(0)
        .mount(&f.line)
        .await;
    for (n, key) in [
        "media/acc1/468789577898262530",
        "outbound/acc1/conv2/photo.jpg",
        "outbound/acc2/conv1/photo.jpg",
        "outbound/acc1/conv1/../conv2/photo.jpg",
        "outbound/acc1/conv1/",
        "agent-media/ag1/0123.jpg",
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("bot-media-{n}");
        let mut m = message(&id, vec![json!({"type": "image", "mediaKey": key})], None);
        m.origin = Origin::Bot;
        assert_eq!(
            f.service.deliver(&body(&m)).await.unwrap(),
            DeliveryStatus::Failed,
            "{key}"
        );
        let d = f.deliveries.delivery(&id).await.unwrap().unwrap();
        let error = d.error.unwrap_or_default();
        assert!(error.contains("mediaKey"), "{key}: {error}");
        assert!(!error.contains("signature"), "{key}: {error}");
    }
}

#[tokio::test]
async fn media_keys_become_long_lived_signed_links_and_agents_get_a_sender() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push())
        .mount(&f.line)
        .await;
    let mut m = message(
        "media-1",
        vec![json!({"type": "image", "mediaKey": "outbound/acc1/conv1/photo.jpg"})],
        None,
    );
    m.sender = Some(omniline_domain::outbound::Sender {
        name: "Tanaka from Customer Support".into(),
        icon_url: None,
    });
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
    let sent: Value =
        serde_json::from_slice(&requests_to(&f.line, "/v2/bot/message/push").await[0].body)
            .unwrap();
    let image = &sent["messages"][0];
    let url = image["originalContentUrl"].as_str().unwrap();
    assert!(
        url.starts_with(
            "https://omniline.example.com/media/outbound/acc1/conv1/photo.jpg?expires="
        ),
        "{url}"
    );
    let expires: i64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        expires - T0 / 1000 >= 14 * 24 * 3600,
        "valid for at least 14 days"
    );
    assert!(image["previewImageUrl"]
        .as_str()
        .unwrap()
        .contains("signature="));
    assert!(image.get("mediaKey").is_none());
    assert_eq!(
        image["sender"]["name"].as_str().unwrap().chars().count(),
        20
    );
}

#[tokio::test]
async fn an_account_without_a_long_lived_token_uses_a_stateless_one() {
    let f = fixture().await;
    let id_and_secret_only = ChannelCredentials {
        channel_secret: SecretString::new("8c570fa6dd201bb328f1c1eac23a96d8"),
        channel_access_token: SecretString::new(""),
    };
    f.secrets
        .put(
            &credentials_secret_name(ACCOUNT),
            &id_and_secret_only.to_secret(),
        )
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/oauth2/v3/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "access_token": "stateless-token", "expires_in": 900
        })))
        .expect(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(header("authorization", "Bearer stateless-token"))
        .respond_with(ok_push())
        .expect(2)
        .mount(&f.line)
        .await;
    for id in ["s1", "s2"] {
        assert_eq!(
            f.service
                .deliver(&body(&message(id, vec![text_message("hi")], None)))
                .await
                .unwrap(),
            DeliveryStatus::Sent
        );
    }
    let issued = requests_to(&f.line, "/oauth2/v3/token").await;
    let form = String::from_utf8(issued[0].body.clone()).unwrap();
    assert!(form.contains("grant_type=client_credentials"));
    assert!(form.contains("client_id=1234567890"));
}

#[tokio::test]
async fn a_failing_message_holds_back_its_conversation_only() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .and(wiremock::matchers::body_partial_json(
            json!({"to": "Ubroken"}),
        ))
        .respond_with(ResponseTemplate::new(503))
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ok_push())
        .mount(&f.line)
        .await;
    let mut broken1 = message("b1", vec![text_message("1")], None);
    broken1.to = "Ubroken".into();
    let mut broken2 = message("b2", vec![text_message("2")], None);
    broken2.to = "Ubroken".into();
    let fine = message("f1", vec![text_message("3")], None);
    let batch: Vec<_> = [
        (&broken1, "acc1:Ubroken"),
        (&broken2, "acc1:Ubroken"),
        (&fine, "acc1:Ucustomer"),
    ]
    .iter()
    .map(|(m, g)| omniline_app::consumer::BatchMessage {
        message_id: m.id.clone(),
        group_id: (*g).into(),
        body: body(m),
    })
    .collect();
    let outcome = f.service.handle_batch(&batch).await;
    assert_eq!(outcome.failed, ["b1", "b2"]);
    assert_eq!(outcome.succeeded, ["f1"]);
    assert!(
        f.deliveries.delivery("b2").await.unwrap().is_none(),
        "b2 was not attempted"
    );
}

/// A delivery whose first attempt set `replyAttempted` and died before recording LINE's answer.
async fn interrupted_reply(f: &Fixture, id: &str) {
    let mut d = omniline_domain::delivery::Delivery::new(
        id,
        ACCOUNT,
        "conv1",
        &uuid::Uuid::new_v4().to_string(),
        T0,
    );
    d = f.deliveries.begin(&d).await.unwrap();
    d.reply_attempted = true;
    d.version += 1;
    assert!(f.deliveries.update(&d).await.unwrap());
}

#[tokio::test]
async fn a_reply_interrupted_before_its_outcome_was_recorded_is_never_pushed() {
    let f = fixture().await;
    // The interrupted attempt reached LINE: the token is used.
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .and(body_partial_json(json!({"replyToken": "rt-1"})))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid reply token"})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    interrupted_reply(&f, "int-1").await;
    let m = message("int-1", vec![text_message("hello")], Some("rt-1"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Unconfirmed
    );
}

#[tokio::test]
async fn a_reply_interrupted_before_reaching_line_is_replied_once() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .and(body_partial_json(json!({"replyToken": "rt-1"})))
        .respond_with(ok_push())
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    interrupted_reply(&f, "int-2").await;
    let m = message("int-2", vec![text_message("hello")], Some("rt-1"));
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn a_retried_reply_answered_429_is_never_pushed() {
    let f = fixture().await;
    // The earlier attempt's outcome is unknown: a 429 now does not mean it was not delivered.
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({"message": "The API rate limit has been exceeded."})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "Invalid reply token"})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 0).await;
    interrupted_reply(&f, "int-4").await;
    let m = message("int-4", vec![text_message("hello")], Some("rt-1"));
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Unconfirmed
    );
}

#[tokio::test]
async fn a_first_reply_needs_a_token_young_enough_to_be_tried_again() {
    let f = fixture().await;
    accepts(&f, "/v2/bot/message/reply", 0).await;
    accepts(&f, "/v2/bot/message/push", 1).await;
    let mut m = message("old-1", vec![text_message("hello")], Some("rt-1"));
    m.reply_token_received_at = Some(T0 - outbound::REPLY_TOKEN_FIRST_USE_MS);
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn an_interrupted_reply_whose_token_aged_is_unconfirmed_without_a_call() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .respond_with(ok_push())
        .expect(0)
        .mount(&f.line)
        .await;
    interrupted_reply(&f, "int-3").await;
    let mut m = message("int-3", vec![text_message("hello")], Some("rt-1"));
    m.reply_token_received_at = Some(T0 - outbound::REPLY_TOKEN_MAX_AGE_MS - 1);
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Unconfirmed
    );
}

#[tokio::test]
async fn a_rate_limited_reply_is_pushed_on_the_next_attempt() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_json(json!({"message": "The API rate limit has been exceeded."})),
        )
        .expect(1)
        .mount(&f.line)
        .await;
    accepts(&f, "/v2/bot/message/push", 1).await;
    let m = message("rl-1", vec![text_message("hello")], Some("rt-1"));
    assert!(f.service.deliver(&body(&m)).await.is_err());
    assert_eq!(
        f.service.deliver(&body(&m)).await.unwrap(),
        DeliveryStatus::Sent
    );
}

#[tokio::test]
async fn an_automated_message_keeps_what_it_said_for_the_agents_and_an_agents_does_not() {
    let f = fixture().await;
    accepts(&f, "/v2/bot/message/push", 2).await;
    let mut greeting = message("greet-2", vec![text_message("Hi Pat!")], None);
    greeting.origin = Origin::Automated;
    greeting.trigger = Some("conversationStarted".into());
    let agents = message("agent-2", vec![text_message("Sam here")], None);
    for m in [&greeting, &agents] {
        assert_eq!(
            f.service.deliver(&body(m)).await.unwrap(),
            DeliveryStatus::Sent
        );
    }
    let d = f.deliveries.delivery("greet-2").await.unwrap().unwrap();
    let content = d.content.expect("the greeting's content is kept");
    assert_eq!(content.origin, Origin::Automated);
    assert_eq!(content.trigger.as_deref(), Some("conversationStarted"));
    assert_eq!(content.messages, vec![text_message("Hi Pat!")]);
    assert_eq!(content.queued_at, T0);
    // The agent's message is in the transcript already: not kept twice.
    let d = f.deliveries.delivery("agent-2").await.unwrap().unwrap();
    assert_eq!(d.content, None);
}

/// Issue 3/7: a delivery record expires with the retention setting (the time to live DynamoDB
/// deletes it by); without one it is kept until its conversation is erased or purged.
#[tokio::test]
async fn a_delivery_record_expires_with_the_retention_setting() {
    use omniline_ports::{ConfigStore, Expect};
    let kept = fixture().await;
    accepts(&kept, "/v2/bot/message/push", 1).await;
    let m = message("m-kept", vec![text_message("Hello")], None);
    kept.service.deliver(&body(&m)).await.unwrap();
    let d = kept.deliveries.delivery("m-kept").await.unwrap().unwrap();
    assert_eq!(d.expires_at, None);

    let f = fixture().await;
    f.config
        .put_doc(
            omniline_domain::settings::SETTINGS_KIND,
            omniline_domain::settings::SETTINGS_ID,
            r#"{"retentionDays": 30}"#,
            Expect::Absent,
        )
        .await
        .unwrap();
    accepts(&f, "/v2/bot/message/push", 1).await;
    let m = message("m-expiring", vec![text_message("Hello")], None);
    f.service.deliver(&body(&m)).await.unwrap();
    let d = f.deliveries.delivery("m-expiring").await.unwrap().unwrap();
    assert_eq!(d.expires_at, Some(T0.div_euclid(1000) + 30 * 86_400));
}
