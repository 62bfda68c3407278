//! Helpers of the `omniline-local` HTTP tests: the binary on a fresh data directory with LINE
//! mocked by wiremock, and an admin client that checks every error body's shape and that no
//! secret leaks into a response.
#![allow(dead_code)]

use omniline_domain::line::signature::sign;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const SECRET_A: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const SECRET_B: &str = "a0b1c2d3e4f5061728394a5b6c7d8e9f";
pub const ADMIN: &str = "admin-config-test-token-0123456789abcdef";
pub const BOT_SECRET: &str = "bot-shared-secret-123";

pub struct Stack {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    pub line: MockServer,
    pub data: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// LINE: two bots (by token), profiles for any user, replies and pushes accepted.
pub async fn mock_line() -> MockServer {
    let line = MockServer::start().await;
    for (token, user) in [("token-a", "Ubot-a"), ("token-b", "Ubot-b")] {
        Mock::given(method("GET"))
            .and(path("/v2/bot/info"))
            .and(wiremock::matchers::header(
                "authorization",
                format!("Bearer {token}").as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "userId": user, "basicId": "@shop", "displayName": "Shop",
                "chatMode": "chat", "markAsReadMode": "auto"
            })))
            .mount(&line)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex("^/v2/bot/profile/.+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"userId": "U", "displayName": "Taro", "language": "ja"})),
        )
        .mount(&line)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/message/(reply|push)$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sentMessages": []})))
        .mount(&line)
        .await;
    line
}

pub async fn start() -> Stack {
    start_with(&[]).await
}

/// [`start`] with more environment variables (e.g. a fast `SCHEDULE_EVERY_MS`).
pub async fn start_with(env: &[(&str, &str)]) -> Stack {
    let data = private_tempdir();
    let line = mock_line().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_omniline-local"))
        // The console's sign-in is token unless a test sets these.
        .env_remove("OIDC_ISSUER")
        .env_remove("OIDC_CLIENT_ID")
        .envs(env.iter().copied())
        .env("PORT", "0")
        .env("DATA_DIR", data.path())
        .env("LINE_API_BASE", line.uri())
        .env("LINE_DATA_API_BASE", line.uri())
        .env("ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn")
        .env_remove("PUBLIC_BASE_URL")
        .env_remove("OMNILINE_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("omniline-local starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines.next().expect("banner").unwrap();
        if let Some(v) = line.trim().strip_prefix("base URL:") {
            break v.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Stack {
        child,
        base,
        client,
        line,
        data,
    }
}

impl Stack {
    /// Calls an admin route with the admin token; every error body must have the one shape.
    pub async fn call(&self, method: &str, route: &str, body: Option<Value>) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{route}", self.base))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        if status >= 400 {
            assert!(
                json["error"]["code"].is_string() && json["error"]["message"].is_string(),
                "error body shape: {json}"
            );
        }
        for secret in [SECRET_A, SECRET_B, BOT_SECRET, ADMIN, "token-a", "token-b"] {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
        (status, json)
    }

    pub async fn ok(&self, method: &str, route: &str, body: Option<Value>) -> Value {
        let (status, json) = self.call(method, route, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {route} → {status} {json}"
        );
        json
    }

    pub async fn account(&self, name: &str, secret: &str, token: &str) -> String {
        let v = self
            .ok(
                "POST",
                "/admin/v1/accounts",
                Some(json!({"name": name, "channelId": "1600000001", "channelSecret": secret, "channelAccessToken": token})),
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn queue(&self, name: &str) -> String {
        let v = self
            .ok("POST", "/admin/v1/queues", Some(json!({"name": name})))
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    pub async fn workstream(&self, account: &str, queue: &str) -> Value {
        self.ok(
            "POST",
            "/admin/v1/workstreams",
            Some(json!({"name": "Support", "accountId": account, "language": "ja", "defaultQueueId": queue,
                        "automatedMessages": {"conversationStarted": {"texts": {"ja": "こんにちは"}}}})),
        )
        .await
    }

    pub async fn webhook(&self, account: &str, secret: &str, events: Value) -> u16 {
        let body = json!({"destination": "Ubot", "events": events}).to_string();
        self.client
            .post(format!("{}/line/webhook/{account}", self.base))
            .header("content-type", "application/json")
            .header("x-line-signature", sign(secret.as_bytes(), body.as_bytes()))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Waits until the customer's export lists `n` conversations.
    pub async fn export_with(&self, customer: &str, n: usize) -> Value {
        for _ in 0..200 {
            let (status, v) = self
                .call("GET", &format!("/admin/v1/customers/{customer}"), None)
                .await;
            if status == 200 && v["conversations"].as_array().map_or(0, Vec::len) >= n {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("customer {customer} never had {n} conversation(s)");
    }
}

/// A temporary directory only its owner can enter, as `omniline-local` demands of `DATA_DIR`.
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A text message event as LINE sends it: message id `m-{id}`, quote token `q`, and
/// `markAsReadToken` `mr-{id}`.
pub fn text_event(id: &str, user: &str, text: &str) -> Value {
    json!({"type": "message", "mode": "active", "timestamp": now_ms(), "webhookEventId": id,
           "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r-{id}"),
           "source": {"type": "user", "userId": user},
           "message": {"type": "text", "id": format!("m-{id}"), "quoteToken": "q", "text": text,
                       "markAsReadToken": format!("mr-{id}")}})
}

/// Now, in epoch milliseconds (LINE's event timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An agent's call: its token, every error body with the one shape.
pub async fn agent_call(
    s: &Stack,
    token: &str,
    method: &str,
    route: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = s
        .client
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{route}", s.base),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let json: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    if status >= 400 {
        assert!(
            json["error"]["code"].is_string(),
            "error body shape: {json}"
        );
    }
    (status, json)
}

pub async fn agent_ok(
    s: &Stack,
    token: &str,
    method: &str,
    route: &str,
    body: Option<Value>,
) -> Value {
    let (status, json) = agent_call(s, token, method, route, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {route} → {status} {json}"
    );
    json
}

/// A new agent in `queues`; returns (id, token).
pub async fn new_agent(s: &Stack, name: &str, queues: &[&str]) -> (String, String) {
    let a = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": name, "email": format!("{}@example.com", name.to_lowercase()), "queueIds": queues, "capacity": 2})),
        )
        .await;
    (
        a["id"].as_str().unwrap().to_owned(),
        a["token"].as_str().unwrap().to_owned(),
    )
}

/// The binary on `data` with the environment of a fresh shell (no LINE or AWS settings: sandbox
/// mode, as the README's run command starts it) and `ADMIN_TOKEN`. Nothing else is set: the caller
/// chooses stdio, and makes `data` private or not.
pub fn sandbox_command(data: &std::path::Path, admin_token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omniline-local"));
    command
        .env("PORT", "0")
        .env("DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .env("ADMIN_TOKEN", admin_token)
        .env_remove("LINE_API_BASE")
        .env_remove("LINE_DATA_API_BASE")
        .env_remove("SANDBOX")
        .env_remove("PUBLIC_BASE_URL")
        .env_remove("OMNILINE_BACKEND")
        .env_remove("OIDC_ISSUER")
        .env_remove("OIDC_CLIENT_ID");
    command
}

/// Uploads `bytes` as a PNG with the agent's token (`POST /agent/v1/media`, 201); its `mediaId`.
pub async fn upload_png(s: &Stack, token: &str, bytes: Vec<u8>) -> String {
    let upload = s
        .client
        .post(format!("{}/agent/v1/media", s.base))
        .bearer_auth(token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 201);
    upload.json::<Value>().await.unwrap()["mediaId"]
        .as_str()
        .unwrap()
        .to_owned()
}
