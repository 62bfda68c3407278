//! End-to-end: the `omniline-local` binary as a new user runs it, over HTTP, with LINE's API
//! mocked by wiremock: create an account with the printed admin token, send signed webhooks, see
//! the events in the embedded queue; restart and find everything still there.

use serde_json::{json, Value};
use shared::adapters::embedded::{EmbeddedDb, SqliteEventQueue};
use shared::line::envelope::InboundEvent;
use shared::line::signature::sign;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

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
    Stack {
        child,
        base: base.unwrap(),
        token: token.unwrap(),
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

    let body = json!({"destination": "Ue2e", "events": [
        {"type": "follow", "mode": "active", "timestamp": 1, "webhookEventId": "01E2E00000000000000000000A",
         "deliveryContext": {"isRedelivery": false}, "replyToken": "r1", "source": {"type": "user", "userId": "Ucustomer"},
         "follow": {"isUnblocked": false}},
        {"type": "message", "mode": "active", "timestamp": 2, "webhookEventId": "01E2E00000000000000000000B",
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

    let queue = SqliteEventQueue::new(EmbeddedDb::open(data.path()).unwrap(), "inbound", 5);
    let messages = queue.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        messages.len(),
        2,
        "one message per event, duplicates dropped"
    );
    assert_eq!(messages[0].group_id, format!("{id}:Ucustomer"));
    assert_eq!(messages[1].group_id, format!("{id}:Cteam"));
    let event: InboundEvent = serde_json::from_str(&messages[1].body).unwrap();
    assert_eq!(event.account_id, id);
    assert!(event.event.get().contains("こんにちは 👋"));

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
    let stack = start(data.path(), &line.uri(), Some("my-own-admin-token"));
    assert_eq!(stack.token, "my-own-admin-token");
    wait_healthy(&client, &stack.base).await;
    let r = client
        .get(format!("{}/admin/v1/accounts", stack.base))
        .bearer_auth("my-own-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/admin/v1/nope", stack.base))
        .bearer_auth("my-own-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}
