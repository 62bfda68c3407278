//! End-to-end: the `omniline-local` binary as a new user runs it, over HTTP, with LINE's API
//! mocked by wiremock: create an account with the printed admin token, send signed webhooks, see
//! the events in the embedded queue; restart and find everything still there.

use omniline_domain::line::signature::sign;
use omniline_embedded::{EmbeddedDb, SqliteEventQueue};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// An `ADMIN_TOKEN` of the 32 characters or more omniline-local demands.
const ADMIN: &str = "local-stack-admin-token-0123456789abcdef";

struct Stack {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port and reads what it prints until it is ready.
fn start(data_dir: &std::path::Path, line: &str, admin_token: Option<&str>) -> Stack {
    // omniline-local refuses a DATA_DIR others can enter (tempdirs are 0755 here).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_omniline-local"));
    command
        .env("PORT", "0")
        .env("DATA_DIR", data_dir)
        .env("LINE_API_BASE", line)
        .env("LINE_DATA_API_BASE", line)
        .env("RUST_LOG", "warn")
        .env_remove("ADMIN_TOKEN")
        .env_remove("PUBLIC_BASE_URL")
        .env_remove("OMNILINE_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(token) = admin_token {
        command.env("ADMIN_TOKEN", token);
    }
    let mut child = command.spawn().expect("omniline-local starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut base, mut token) = (None, None);
    while base.is_none() || token.is_none() {
        let line = lines
            .next()
            .expect("omniline-local printed its banner")
            .unwrap();
        if let Some(v) = line.trim().strip_prefix("base URL:") {
            base = Some(v.trim().to_owned());
        }
        if let Some(v) = line.trim().strip_prefix("admin token:") {
            token = Some(v.trim().to_owned());
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let printed = token.unwrap();
    let token = match admin_token {
        // A token from the environment is not printed back.
        Some(t) => {
            assert!(!printed.contains(t), "the admin token was printed");
            t.to_owned()
        }
        None => printed,
    };
    Stack {
        child,
        base: base.unwrap(),
        token,
    }
}

async fn mock_line() -> MockServer {
    let line = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "Ue2e", "basicId": "@e2e", "displayName": "E2E Shop",
            "chatMode": "chat", "markAsReadMode": "auto"
        })))
        .mount(&line)
        .await;
    line
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("omniline-local never became healthy");
}

#[tokio::test]
async fn a_new_user_connects_an_account_and_sees_webhooks_queued_and_kept_across_restarts() {
    let data = tempfile::tempdir().unwrap();
    let line = mock_line().await;
    let client = reqwest::Client::new();

    let stack = start(data.path(), &line.uri(), None);
    assert_eq!(stack.token.len(), 64, "a generated admin token is printed");
    wait_healthy(&client, &stack.base).await;

    // No token, no admin.
    let r = client
        .get(format!("{}/admin/v1/accounts", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let r = client
        .post(format!("{}/admin/v1/accounts", stack.base))
        .bearer_auth(&stack.token)
        .json(&json!({"name": "E2E", "channelId": "2000000001", "channelSecret": SECRET, "channelAccessToken": "tok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let account: Value = r.json().await.unwrap();
    let id = account["id"].as_str().unwrap().to_owned();
    let callback = account["callbackUrl"].as_str().unwrap().to_owned();
    assert_eq!(callback, format!("{}/line/webhook/{id}", stack.base));

    // LINE's events are fresh: the webhook refuses those older than the deduplication window.
    let now_ms = omniline_domain::clock::now_millis();
    let body = json!({"destination": "Ue2e", "events": [
        {"type": "follow", "mode": "active", "timestamp": now_ms, "webhookEventId": "01E2E00000000000000000000A",
         "deliveryContext": {"isRedelivery": false}, "replyToken": "r1", "source": {"type": "user", "userId": "Ucustomer"},
         "follow": {"isUnblocked": false}},
        {"type": "message", "mode": "active", "timestamp": now_ms + 1, "webhookEventId": "01E2E00000000000000000000B",
         "deliveryContext": {"isRedelivery": false}, "replyToken": "r2", "source": {"type": "group", "groupId": "Cteam", "userId": "Ucustomer"},
         "message": {"type": "text", "id": "100", "quoteToken": "q", "text": "こんにちは 👋"}}
    ]})
    .to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    let post = |sig: &str| {
        client
            .post(&callback)
            .header("content-type", "application/json")
            .header("x-line-signature", sig.to_owned())
            .body(body.clone())
            .send()
    };
    assert_eq!(post(&signature).await.unwrap().status(), 200);
    assert_eq!(post("bad-signature").await.unwrap().status(), 401);
    // LINE redelivers the same events: accepted, and deduplicated in the queue.
    assert_eq!(post(&signature).await.unwrap().status(), 200);

    let r = client
        .get(format!(
            "{}/admin/v1/accounts/{id}/webhook-stats",
            stack.base
        ))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    let stats: Value = r.json().await.unwrap();
    assert_eq!(stats["received"], 4);
    assert_eq!(stats["queued"], 4);
    assert_eq!(stats["rejected"], 1);
    assert!(stats["lastReceivedAt"].is_string());

    // Restart: same admin token (kept), same account, events still queued.
    let first_token = stack.token.clone();
    drop(stack);
    let stack = start(data.path(), &line.uri(), None);
    assert_eq!(stack.token, first_token);
    wait_healthy(&client, &stack.base).await;
    let r = client
        .get(format!("{}/admin/v1/accounts/{id}", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The router consumed both events (once each) from the durable queue.
    use omniline_ports::ConversationStore;
    let db = EmbeddedDb::open(data.path()).unwrap();
    let conversations =
        omniline_embedded::sqlite_conversations::SqliteConversationStore::new(db.clone()).unwrap();
    let queue = SqliteEventQueue::new(db, "inbound", 5);
    for _ in 0..100 {
        if queue.is_empty().await.unwrap()
            && conversations
                .event_recorded(
                    &id,
                    "01E2E00000000000000000000B",
                    omniline_domain::clock::now_millis() / 1000,
                )
                .await
                .unwrap()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(conversations
        .event_recorded(
            &id,
            "01E2E00000000000000000000A",
            omniline_domain::clock::now_millis() / 1000
        )
        .await
        .unwrap());
    let group = conversations
        .open_conversation(&id, "Cteam")
        .await
        .unwrap()
        .expect("group conversation");
    let transcript = conversations.transcript(&group.id).await.unwrap();
    assert_eq!(
        transcript.len(),
        1,
        "the redelivered event is not stored twice"
    );
    assert_eq!(transcript[0].event["message"]["text"], "こんにちは 👋");
    assert_eq!(transcript[0].sender_user_id.as_deref(), Some("Ucustomer"));

    // Disconnect: the webhook answers 401 from then on.
    let r = client
        .delete(format!("{}/admin/v1/accounts/{id}", stack.base))
        .bearer_auth(&stack.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .post(format!("{}/line/webhook/{id}", stack.base))
        .header("x-line-signature", &signature)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn admin_token_from_the_environment_wins_and_unknown_routes_are_json_404() {
    let data = tempfile::tempdir().unwrap();
    let line = mock_line().await;
    let client = reqwest::Client::new();
    let stack = start(
        data.path(),
        &line.uri(),
        Some("my-own-admin-token-0123456789abcdef"),
    );
    assert_eq!(stack.token, "my-own-admin-token-0123456789abcdef");
    wait_healthy(&client, &stack.base).await;
    let r = client
        .get(format!("{}/admin/v1/accounts", stack.base))
        .bearer_auth("my-own-admin-token-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/admin/v1/nope", stack.base))
        .bearer_auth("my-own-admin-token-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

/// Issue 2/8's "done when": a signed webhook from a new customer produces a stored conversation
/// with the customer's profile, routed by the rules, assigned, with the greeting queued for
/// outbound; the same webhook sent again changes nothing.
#[tokio::test]
async fn a_new_customer_is_routed_assigned_and_greeted_once() {
    use omniline_domain::agents::{Agent, AgentStatus};
    use omniline_embedded::sqlite_agents::SqliteAgentStore;
    use omniline_embedded::sqlite_conversations::SqliteConversationStore;
    use omniline_embedded::workstreams::SqliteWorkstreamStore;
    use omniline_ports::AgentStore;
    use omniline_ports::{ConversationStore, WorkstreamStore};

    let data = tempfile::tempdir().unwrap();
    let line = mock_line().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/profile/Unewcustomer"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userId": "Unewcustomer", "displayName": "佐藤", "language": "ja",
            "pictureUrl": "https://profile.line-scdn.net/x"
        })))
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sentMessages": [{"id": "1", "quoteToken": "q"}]})),
        )
        .mount(&line)
        .await;
    let client = reqwest::Client::new();
    let stack = start(data.path(), &line.uri(), Some(ADMIN));
    wait_healthy(&client, &stack.base).await;
    let r = client
        .post(format!("{}/admin/v1/accounts", stack.base))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Shop", "channelId": "2000000002", "channelSecret": SECRET, "channelAccessToken": "tok"}))
        .send()
        .await
        .unwrap();
    let account: Value = r.json().await.unwrap();
    let id = account["id"].as_str().unwrap().to_owned();

    // Workstream and agent (their admin routes come in issue 4/8): seeded in the database.
    let db = EmbeddedDb::open(data.path()).unwrap();
    let workstream = serde_json::from_value(json!({
        "id": "ws-shop", "accountId": id, "name": "Shop support", "language": "en",
        "distribution": "push", "defaultQueue": "q-general", "timezone": "Asia/Tokyo",
        "automatedMessages": [
            {"trigger": "conversationStarted", "language": "ja", "text": "{customerName}様、こんにちは。", "enabled": true},
            {"trigger": "conversationStarted", "language": "en", "text": "Hello {customerName}.", "enabled": true}
        ],
        "rules": [{"id": "ja", "name": "Japanese speakers", "condition": {"field": "customer.language", "op": "equals", "value": "ja"},
                   "result": {"queue": "q-ja", "priority": 2}}],
        "version": 1
    }))
    .unwrap();
    SqliteWorkstreamStore::new(db.clone())
        .unwrap()
        .put_workstream(&workstream)
        .await
        .unwrap();
    let agents = SqliteAgentStore::new(db.clone()).unwrap();
    agents
        .put_agent(&Agent {
            id: "agent-ja".into(),
            name: "Tanaka".into(),
            queues: vec!["q-ja".into()],
            skills: vec![],
            capacity: 2,
            status: AgentStatus::Available,
            active_conversations: vec![],
            last_assigned_at: None,
            last_seen_at: None,
        })
        .await
        .unwrap();

    let body = json!({"destination": "Ushop", "events": [{
        "type": "message", "mode": "active", "timestamp": omniline_domain::clock::now_millis(), "webhookEventId": "01NEWCUSTOMER0000000000001",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "reply-1",
        "source": {"type": "user", "userId": "Unewcustomer"},
        "message": {"type": "text", "id": "5001", "quoteToken": "q", "text": "注文について"}
    }]})
    .to_string();
    let signature = sign(SECRET.as_bytes(), body.as_bytes());
    let send = || {
        client
            .post(format!("{}/line/webhook/{id}", stack.base))
            .header("x-line-signature", signature.clone())
            .body(body.clone())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);

    let conversations = SqliteConversationStore::new(db.clone()).unwrap();
    let inbound = SqliteEventQueue::new(db.clone(), "inbound", 5);
    let mut conversation = None;
    for _ in 0..100 {
        conversation = conversations
            .open_conversation(&id, "Unewcustomer")
            .await
            .unwrap();
        if conversation.is_some() && inbound.is_empty().await.unwrap() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conversation = conversation.expect("the router stored a conversation");
    assert_eq!(conversation.queue_id.as_deref(), Some("q-ja"));
    assert_eq!(conversation.rule_id.as_deref(), Some("ja"));
    assert_eq!(conversation.agent_id.as_deref(), Some("agent-ja"));
    let customer = conversations
        .customer(&id, "Unewcustomer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(customer.display_name, "佐藤");
    assert_eq!(
        conversations
            .transcript(&conversation.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // The greeting was queued for outbound and went out as a reply (the outbound worker runs too).
    let replies = || async {
        line.received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == "/v2/bot/message/reply")
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .collect::<Vec<_>>()
    };
    for _ in 0..100 {
        if !replies().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = replies().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["replyToken"], "reply-1");
    assert_eq!(sent[0]["messages"][0]["text"], "佐藤様、こんにちは。");

    // The same webhook again: accepted, and nothing changes.
    assert_eq!(send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(inbound.is_empty().await.unwrap());
    let again = conversations
        .open_conversation(&id, "Unewcustomer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, conversation);
    assert_eq!(
        conversations
            .transcript(&conversation.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(replies().await.len(), 1, "the greeting is not sent again");
    assert_eq!(
        agents
            .agent("agent-ja")
            .await
            .unwrap()
            .unwrap()
            .active_conversations
            .len(),
        1
    );
}

/// Issue 3/8's "done when": with LINE_API_BASE at a mock, the automated greeting goes out as a
/// reply, an agent's later messages as pushes with a retry key, and a LINE outage followed by
/// recovery delivers every message exactly once, in order.
#[tokio::test]
async fn greeting_replies_agent_messages_push_and_survive_an_outage_exactly_once_in_order() {
    use omniline_domain::outbound::{text_message, Origin, OutboundMessage};
    use omniline_embedded::workstreams::SqliteWorkstreamStore;
    use omniline_ports::{ConversationStore, DeliveryStore, EventQueue, WorkstreamStore};

    let data = tempfile::tempdir().unwrap();
    let line = mock_line().await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/profile/Ubuyer"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "Ubuyer", "displayName": "Kim"})),
        )
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/reply"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sentMessages": [{"id": "1", "quoteToken": "q"}]})),
        )
        .mount(&line)
        .await;
    // LINE is down for the first two pushes, then back.
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/message/push"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sentMessages": [{"id": "2", "quoteToken": "q"}]})),
        )
        .mount(&line)
        .await;

    let client = reqwest::Client::new();
    let stack = start(data.path(), &line.uri(), Some(ADMIN));
    wait_healthy(&client, &stack.base).await;
    let account: Value = client
        .post(format!("{}/admin/v1/accounts", stack.base))
        .bearer_auth(ADMIN)
        .json(&json!({"name": "Shop", "channelId": "2000000003", "channelSecret": SECRET, "channelAccessToken": "tok"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = account["id"].as_str().unwrap().to_owned();
    let db = EmbeddedDb::open(data.path()).unwrap();
    let workstream = serde_json::from_value(json!({
        "id": "ws", "accountId": id, "name": "Shop", "language": "en", "distribution": "pick",
        "defaultQueue": "q", "timezone": "UTC",
        "automatedMessages": [{"trigger": "conversationStarted", "language": "en", "text": "Hi {customerName}!"}],
        "version": 1
    }))
    .unwrap();
    SqliteWorkstreamStore::new(db.clone())
        .unwrap()
        .put_workstream(&workstream)
        .await
        .unwrap();

    // A customer writes now: the greeting goes out as a free reply.
    let now_ms = omniline_domain::clock::now_millis();
    let body = json!({"destination": "Ushop", "events": [{
        "type": "message", "mode": "active", "timestamp": now_ms, "webhookEventId": "01OUTBOUND0000000000000001",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "reply-token-1",
        "source": {"type": "user", "userId": "Ubuyer"},
        "message": {"type": "text", "id": "7001", "quoteToken": "q", "text": "hello"}
    }]})
    .to_string();
    let r = client
        .post(format!("{}/line/webhook/{id}", stack.base))
        .header("x-line-signature", sign(SECRET.as_bytes(), body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let conversations =
        omniline_embedded::sqlite_conversations::SqliteConversationStore::new(db.clone()).unwrap();
    let mut conversation = None;
    for _ in 0..100 {
        conversation = conversations
            .open_conversation(&id, "Ubuyer")
            .await
            .unwrap();
        if conversation.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conversation = conversation.expect("conversation stored");

    // Three agent messages (the agent API of issue 5/8 queues them the same way).
    let outbound = SqliteEventQueue::new(db.clone(), "outbound", 5);
    let agent_messages: Vec<_> = (1..=3)
        .map(|i| OutboundMessage {
            id: format!("agent-msg-{i}"),
            account_id: id.clone(),
            conversation_id: conversation.id.clone(),
            to: "Ubuyer".into(),
            origin: Origin::Agent,
            trigger: None,
            messages: vec![text_message(&format!("agent message {i}"))],
            reply_token: None,
            reply_token_received_at: None,
            sender: None,
            created_at: now_ms,
            agent_id: None,
        })
        .map(|m| m.to_queue_message())
        .collect();
    outbound.send(&agent_messages).await.unwrap();

    let deliveries =
        omniline_embedded::sqlite_deliveries::SqliteDeliveryStore::new(db.clone()).unwrap();
    let mut all_sent = false;
    for _ in 0..200 {
        let list = deliveries
            .deliveries_for_conversation(&conversation.id)
            .await
            .unwrap();
        if list.len() == 4
            && list
                .iter()
                .all(|d| d.status == omniline_domain::delivery::DeliveryStatus::Sent)
        {
            all_sent = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all_sent, "every message delivered after the outage");

    let requests = line.received_requests().await.unwrap();
    let replies: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path() == "/v2/bot/message/reply")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["replyToken"], "reply-token-1");
    assert_eq!(replies[0]["messages"][0]["text"], "Hi Kim!");

    let pushes: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/v2/bot/message/push")
        .collect();
    assert_eq!(
        pushes.len(),
        5,
        "two refused during the outage, then one per message"
    );
    let key = |i: usize| {
        pushes[i]
            .headers
            .get("x-line-retry-key")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(key(0), key(1));
    assert_eq!(
        key(1),
        key(2),
        "the first message kept its retry key through the outage"
    );
    assert_ne!(key(2), key(3));
    assert_ne!(key(3), key(4));
    let texts: Vec<String> = pushes
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["messages"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        texts,
        [
            "agent message 1",
            "agent message 1",
            "agent message 1",
            "agent message 2",
            "agent message 3"
        ]
    );
}
