//! Issue 8/8's sandbox over HTTP, against the `omniline-local` binary started as the README's run
//! command starts it (no LINE_API_BASE: sandbox mode): the simulated customer and the sandbox
//! agent hold a whole conversation through the page's API and the project's agent API; a restart
//! keeps the sandbox; the sandbox is off when LINE is configured; bad input gets clear errors.
//! (The browser plays the same conversation in `sandbox-e2e/`.)

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Stack {
    child: Child,
    base: String,
    stdout: Vec<String>,
    http: reqwest::Client,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary on `data`, with the environment of a fresh shell (no LINE or AWS settings).
fn command(data: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_omniline-local"));
    command
        .env("PORT", "0")
        .env("DATA_DIR", data)
        .env("RUST_LOG", "warn")
        .env("ADMIN_TOKEN", "sandbox-test-admin")
        .env_remove("LINE_API_BASE")
        .env_remove("LINE_DATA_API_BASE")
        .env_remove("SANDBOX")
        .env_remove("PUBLIC_BASE_URL")
        .env_remove("OMNILINE_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    command
}

/// Starts it and reads its banner up to the sandbox line.
fn start_with(mut command: Command) -> Stack {
    let mut child = command.spawn().expect("omniline-local starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = Vec::new();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("listening on:") {
            base = Some(url.trim().to_owned());
        }
        let done = line.trim_start().starts_with("sandbox:");
        stdout.push(line);
        if done {
            break;
        }
    }
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Stack {
        child,
        base: base.unwrap_or_else(|| panic!("no base URL in {stdout:?}")),
        stdout,
        http: reqwest::Client::new(),
    }
}

impl Stack {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(method, path, body, None).await
    }

    async fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn agent(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, answer) = self.call_as(method.clone(), path, body, Some(token)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// Polls the user's chat until an account bubble satisfies `want` (20 s at most).
    async fn wait_for_bubble(&self, user: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut after = 0;
        while Instant::now() < deadline {
            let (status, answer) = self
                .get(&format!(
                    "/sandbox/api/users/{user}/timeline?after={after}&wait=5"
                ))
                .await;
            assert_eq!(status, 200, "{answer}");
            for entry in answer["entries"].as_array().unwrap() {
                after = entry["seq"].as_i64().unwrap();
                if entry["from"] == "account" && want(&entry["message"]) {
                    return entry.clone();
                }
            }
        }
        panic!("no such bubble in {user}'s chat within 20 s");
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_new_user_holds_a_whole_conversation_with_the_sandbox_agent() {
    let data = tempfile::tempdir().unwrap();
    let stack = start_with(command(data.path()));
    let sandbox_line = stack
        .stdout
        .iter()
        .find(|l| l.trim_start().starts_with("sandbox:"))
        .unwrap();
    assert!(
        sandbox_line.contains(&format!("{}/sandbox", stack.base)),
        "{sandbox_line}"
    );

    // The page is served, with its script and style, from the binary.
    let page = stack
        .http
        .get(format!("{}/sandbox", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(page.text().await.unwrap().contains("sandbox.js"));
    for asset in [
        "/sandbox/sandbox.js",
        "/sandbox/sandbox.css",
        "/sandbox/avatars/3.svg",
    ] {
        let r = stack
            .http
            .get(format!("{}{asset}", stack.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        assert!(!r.bytes().await.unwrap().is_empty(), "{asset}");
    }

    let (status, session) = stack.get("/sandbox/api/session").await;
    assert_eq!(status, 200, "{session}");
    let token = session["agent"]["token"].as_str().unwrap().to_owned();
    let account = session["accountId"].as_str().unwrap().to_owned();
    assert!(session["callbackUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/line/webhook/{account}")));
    assert_eq!(session["avatars"].as_array().unwrap().len(), 8);

    use reqwest::Method as M;
    stack
        .agent(
            &token,
            M::PUT,
            "/agent/v1/presence",
            Some(json!({"status": "available"})),
        )
        .await;

    let (status, user) = stack
        .post(
            "/sandbox/api/users",
            json!({"name": "Pat Sandbox", "language": "en", "avatar": 4}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let user_id = id(&user);
    assert!(user_id.starts_with('U') && user_id.len() == 33, "{user_id}");
    // Creating the user is adding the account as a friend: a follow event, shown in the chat.
    let (_, chat) = stack
        .get(&format!("/sandbox/api/users/{user_id}/timeline?after=0"))
        .await;
    assert_eq!(chat["entries"][0]["message"], json!({"type": "follow"}));
    assert_eq!(chat["entries"][0].get("failed"), None, "{chat}");

    // The customer writes: a signed webhook reaches the real route, the greeting comes back as a
    // reply, and the agent is notified with the customer's name.
    let (status, sent) = stack
        .post(
            &format!("/sandbox/api/users/{user_id}/send"),
            json!({"type": "text", "text": "Hello, I need help with my order"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["webhook"]["status"], 200);
    let greeting = stack
        .wait_for_bubble(&user_id, |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("Hi Pat Sandbox"))
        })
        .await;
    assert_eq!(greeting["via"], "reply");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut cursor = String::new();
    let notification = loop {
        assert!(Instant::now() < deadline, "no notification within 20 s");
        let answer = stack
            .agent(
                &token,
                M::GET,
                &format!("/agent/v1/notifications?after={cursor}&wait=5"),
                None,
            )
            .await;
        if let Some(c) = answer["cursor"].as_str() {
            cursor = c.to_owned();
        }
        if let Some(n) = answer["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["customer"]["displayName"] == "Pat Sandbox")
        {
            break n.clone();
        }
    };
    assert_eq!(notification["kind"], "assigned");
    assert!(notification["customer"]["pictureUrl"]
        .as_str()
        .unwrap()
        .ends_with("/sandbox/avatars/4.svg"));
    let conversation = notification["conversationId"].as_str().unwrap().to_owned();

    // The agent types (LINE's loading animation shows in the chat), reads and replies.
    stack
        .agent(
            &token,
            M::POST,
            &format!("/agent/v1/conversations/{conversation}/typing"),
            Some(json!({})),
        )
        .await;
    let (_, chat) = stack
        .get(&format!("/sandbox/api/users/{user_id}/timeline?after=0"))
        .await;
    assert!(chat["typingUntil"].as_i64().is_some(), "{chat}");
    stack
        .agent(
            &token,
            M::POST,
            &format!("/agent/v1/conversations/{conversation}/read"),
            Some(json!({})),
        )
        .await;
    stack
        .agent(
            &token,
            M::POST,
            &format!("/agent/v1/conversations/{conversation}/messages"),
            Some(json!({"type": "text", "text": "Hi! I'm Sam, happy to help."})),
        )
        .await;
    stack
        .wait_for_bubble(&user_id, |m| m["text"] == "Hi! I'm Sam, happy to help.")
        .await;
    let (_, chat) = stack
        .get(&format!("/sandbox/api/users/{user_id}/timeline?after=0"))
        .await;
    assert!(
        chat["readUpTo"].as_i64().is_some_and(|seq| seq >= 1),
        "{chat}"
    );

    // A sticker and an image from the customer reach the agent's transcript; the image through
    // the content API into the stack's media store.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    for body in [
        json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
        json!({"type": "image", "contentType": "image/png", "dataBase64": png}),
        json!({"type": "location", "title": "Tokyo Tower", "address": "Minato", "latitude": 35.6586, "longitude": 139.7454}),
    ] {
        let (status, answer) = stack
            .post(&format!("/sandbox/api/users/{user_id}/send"), body)
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let transcript = stack
            .agent(
                &token,
                M::GET,
                &format!("/agent/v1/conversations/{conversation}/messages"),
                None,
            )
            .await;
        let entries = transcript["messages"].as_array().unwrap();
        let stored_image = entries.iter().any(|e| e["media"]["status"] == "stored");
        let types: Vec<&str> = entries
            .iter()
            .filter_map(|e| e["message"]["type"].as_str())
            .collect();
        if stored_image && types.contains(&"sticker") && types.contains(&"location") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "transcript lacks the sticker, image or location: {transcript}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Close: the survey goes out as quick replies; the customer taps 5; the agent sees it.
    stack
        .agent(
            &token,
            M::POST,
            &format!("/agent/v1/conversations/{conversation}/close"),
            Some(json!({})),
        )
        .await;
    let survey = stack
        .wait_for_bubble(&user_id, |m| m["quickReply"]["items"].is_array())
        .await;
    let five = survey["message"]["quickReply"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["action"]["label"] == "5")
        .expect("a quick reply labelled 5")["action"]
        .clone();
    let (status, answer) = stack
        .post(
            &format!("/sandbox/api/users/{user_id}/send"),
            json!({"type": "postback", "data": five["data"], "displayText": five["displayText"]}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let survey = stack
            .agent(
                &token,
                M::GET,
                &format!("/agent/v1/conversations/{conversation}/survey"),
                None,
            )
            .await;
        if survey["score"] == 5 {
            assert_eq!(survey["scale"], 5);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no survey score within 20 s: {survey}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The admin glance: callback URL, counters, workstream and rules, with no secret in it.
    let (status, glance) = stack.get("/sandbox/api/glance").await;
    assert_eq!(status, 200, "{glance}");
    assert_eq!(glance["account"]["callbackUrl"], session["callbackUrl"]);
    assert!(
        glance["webhookStats"]["received"].as_u64().unwrap() >= 6,
        "{glance}"
    );
    assert_eq!(glance["webhookStats"]["rejected"], 0);
    assert_eq!(glance["workstream"]["accountId"], account.as_str());
    assert_eq!(glance["rules"][0]["name"], "Refunds");
    let shown = glance.to_string();
    assert!(
        !shown.contains("sandbox.") && !shown.contains(&token),
        "a secret in the glance"
    );
}

#[tokio::test]
async fn a_restart_keeps_the_sandbox_account_agent_and_users() {
    let data = tempfile::tempdir().unwrap();
    let (session, user) = {
        let stack = start_with(command(data.path()));
        let (_, session) = stack.get("/sandbox/api/session").await;
        let (status, user) = stack
            .post(
                "/sandbox/api/users",
                json!({"name": "Mai", "language": "ja"}),
            )
            .await;
        assert_eq!(status, 201);
        (session, user)
    };
    let stack = start_with(command(data.path()));
    let (status, again) = stack.get("/sandbox/api/session").await;
    assert_eq!(status, 200);
    assert_eq!(again["accountId"], session["accountId"]);
    assert_eq!(again["agent"], session["agent"], "the same agent and token");
    let (_, users) = stack.get("/sandbox/api/users").await;
    // The same user; the picture's URL follows the new port.
    let users = users["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    for field in ["id", "name", "language"] {
        assert_eq!(users[0][field], user[field]);
    }
    assert!(users[0]["pictureUrl"]
        .as_str()
        .unwrap()
        .starts_with(&stack.base));
    // One account, one queue, one agent: nothing made twice.
    for (path, key) in [
        ("/admin/v1/accounts", "accounts"),
        ("/admin/v1/queues", "queues"),
        ("/admin/v1/agents", "agents"),
    ] {
        let (status, list) = stack
            .call_as(reqwest::Method::GET, path, None, Some("sandbox-test-admin"))
            .await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(
            list[key].as_array().map(Vec::len),
            Some(1),
            "{path}: {list}"
        );
    }

    // An admin deletes the sandbox agent: the next start makes a new one, whose token works.
    let agent_id = again["agent"]["id"].as_str().unwrap().to_owned();
    let (status, _) = stack
        .call_as(
            reqwest::Method::DELETE,
            &format!("/admin/v1/agents/{agent_id}"),
            None,
            Some("sandbox-test-admin"),
        )
        .await;
    assert_eq!(status, 204);
    drop(stack);
    let stack = start_with(command(data.path()));
    let (_, third) = stack.get("/sandbox/api/session").await;
    assert_eq!(third["accountId"], session["accountId"]);
    assert_ne!(third["agent"]["id"], again["agent"]["id"]);
    let token = third["agent"]["token"].as_str().unwrap();
    let me = stack
        .agent(token, reqwest::Method::GET, "/agent/v1/me", None)
        .await;
    assert_eq!(me["name"], "Sam (sandbox)");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let stack = start_with(command(data.path()));
    let (_, user) = stack
        .post("/sandbox/api/users", json!({"name": "Pat"}))
        .await;
    let send = format!("/sandbox/api/users/{}/send", id(&user));
    for (path, body, status, code) in [
        (
            "/sandbox/api/users",
            json!({"language": "en"}),
            422,
            "invalid_request",
        ),
        (
            "/sandbox/api/users",
            json!({"name": "Pat", "language": "klingon"}),
            422,
            "invalid_request",
        ),
        (
            "/sandbox/api/users",
            json!({"name": "Pat", "avatar": 9}),
            422,
            "invalid_request",
        ),
        (
            send.as_str(),
            json!({"type": "text", "text": ""}),
            422,
            "invalid_request",
        ),
        (
            send.as_str(),
            json!({"type": "video"}),
            422,
            "invalid_request",
        ),
        (
            send.as_str(),
            json!({"type": "image", "contentType": "image/png", "dataBase64": "%%"}),
            422,
            "invalid_request",
        ),
        (
            send.as_str(),
            json!({"type": "sticker", "packageId": "../x", "stickerId": "1"}),
            422,
            "invalid_request",
        ),
        (
            send.as_str(),
            json!({"type": "location", "latitude": 91, "longitude": 0}),
            422,
            "invalid_request",
        ),
        (
            "/sandbox/api/users/Unobody/send",
            json!({"type": "text", "text": "hi"}),
            404,
            "unknown_user",
        ),
    ] {
        let (got, answer) = stack.post(path, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer}"
        );
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let (status, answer) = stack
        .get("/sandbox/api/users/Unobody/timeline?after=x")
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );

    // Not from this machine (a tunnel, a rebinding DNS name): refused, the simulated LINE API too.
    for path in [
        "/sandbox/api/session",
        "/sandbox",
        "/sandbox/line/v2/bot/info",
    ] {
        let r = stack
            .http
            .get(format!("{}{path}", stack.base))
            .header("host", "shop.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_local");
    }
    // The simulated LINE API wants the sandbox channel's token.
    let r = stack
        .http
        .get(format!("{}/sandbox/line/v2/bot/info", stack.base))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn with_line_configured_the_sandbox_is_off_and_sandbox_on_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let line = wiremock::MockServer::start().await;
    let mut configured = command(data.path());
    configured
        .env("LINE_API_BASE", line.uri())
        .env("LINE_DATA_API_BASE", line.uri());
    let stack = start_with(configured);
    assert!(
        stack
            .stdout
            .iter()
            .any(|l| l.contains("sandbox:") && l.contains("off")),
        "{:?}",
        stack.stdout
    );
    let (status, answer) = stack.get("/sandbox/api/session").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (404, Some("sandbox_off"))
    );
    let (status, _) = stack.get("/sandbox").await;
    assert_eq!(status, 404);

    let mut conflicting = command(data.path());
    conflicting
        .env("LINE_API_BASE", line.uri())
        .env("SANDBOX", "on")
        .stderr(Stdio::piped());
    let out = conflicting.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SANDBOX"));
}
