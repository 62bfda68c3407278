//! Issue 8/8's sandbox over HTTP, against the `omniline-local` binary started as the README's run
//! command starts it (no LINE_API_BASE: sandbox mode): the simulated customer and the sandbox
//! agent hold a whole conversation through the page's API and the project's agent API; a restart
//! keeps the sandbox; the sandbox is off when LINE is configured; bad input gets clear errors.
//! (The browser plays the same conversation in `sandbox-e2e/`.)

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sandbox stack's `ADMIN_TOKEN` (omniline-local wants 32 characters or more).
const ADMIN: &str = "sandbox-test-admin-token-0123456789abcdef";

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
    // omniline-local refuses a DATA_DIR others can enter (tempdirs are 0755 here).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut command = common::sandbox_command(data, ADMIN);
    command.stdout(Stdio::piped()).stderr(Stdio::null());
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

    /// GETs an agent API `path` until its answer satisfies `want` (20 s at most); the answer.
    async fn agent_until(
        &self,
        token: &str,
        path: &str,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self.agent(token, reqwest::Method::GET, path, None).await;
            if want(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "no {what} within 20 s: {answer}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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

/// POSTs `length` bytes announced as JSON over a raw connection and reads the answer, which may
/// come before the whole body was read.
async fn raw_post_head(base: &str, path: &str, length: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    // The body, until the stack stops reading it (it answers once it is over its limit).
    let chunk = vec![b'A'; 64 * 1024];
    let mut sent = 0;
    while sent < length {
        let n = chunk.len().min(length - sent);
        if conn.write_all(&chunk[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
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
    // A page that does not show the typing dots yet (typing=0) is answered at once, with no new
    // bubble, instead of at the end of its 20 s wait.
    let last = chat["entries"].as_array().unwrap().last().unwrap()["seq"].clone();
    let path =
        format!("/sandbox/api/users/{user_id}/timeline?after={last}&wait=20&typing=0&read=0");
    let poll = stack.get(&path);
    let (_, news) = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long poll answers the typing at once");
    assert_eq!(news["entries"], json!([]));
    assert_eq!(news["typingUntil"], chat["typingUntil"]);
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
    // The greeting replied with the message's token (a token works once): pushed.
    let answer = stack
        .wait_for_bubble(&user_id, |m| m["text"] == "Hi! I'm Sam, happy to help.")
        .await;
    assert_eq!(answer["via"], "push");
    let (_, chat) = stack
        .get(&format!("/sandbox/api/users/{user_id}/timeline?after=0"))
        .await;
    assert_eq!(
        chat["readUpTo"], sent["entry"]["seq"],
        "read up to the customer's message"
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
    stack
        .agent_until(
            &token,
            &format!("/agent/v1/conversations/{conversation}/messages"),
            "the sticker, image and location in the transcript",
            |transcript| {
                let entries = transcript["messages"].as_array().unwrap();
                let stored_image = entries.iter().any(|e| e["media"]["status"] == "stored");
                let types: Vec<&str> = entries
                    .iter()
                    .filter_map(|e| e["message"]["type"].as_str())
                    .collect();
                stored_image && types.contains(&"sticker") && types.contains(&"location")
            },
        )
        .await;
    // The sticker carries its image, built from its id as LINE's sticker CDN serves it.
    let transcript = stack
        .agent(
            &token,
            M::GET,
            &format!("/agent/v1/conversations/{conversation}/messages"),
            None,
        )
        .await;
    let sticker = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["message"]["type"] == "sticker")
        .expect("the sticker line");
    assert_eq!(
        sticker["sticker"]["imageUrl"],
        "https://stickershop.line-scdn.net/stickershop/v1/sticker/1988/android/sticker.png",
        "{sticker}"
    );
    assert_eq!(sticker["sticker"]["packageId"], "446");
    // The agent answers the customer's latest message at once: a free reply with that message's
    // token (the simulated LINE accepts a token once, only for its chat, for a minute).
    stack
        .agent(
            &token,
            M::POST,
            &format!("/agent/v1/conversations/{conversation}/messages"),
            Some(json!({"type": "text", "text": "Thanks, I see where you are."})),
        )
        .await;
    let answer = stack
        .wait_for_bubble(&user_id, |m| m["text"] == "Thanks, I see where you are.")
        .await;
    assert_eq!(answer["via"], "reply", "{answer}");

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
    let survey = stack
        .agent_until(
            &token,
            &format!("/agent/v1/conversations/{conversation}/survey"),
            "a survey score",
            |survey| survey["score"] == 5,
        )
        .await;
    assert_eq!(survey["scale"], 5);

    // The agent's transcript has what the stack sent on its own too: the greeting, the
    // "agent ended" message and the survey, each once, with its delivery status.
    let transcript = stack
        .agent(
            &token,
            M::GET,
            &format!("/agent/v1/conversations/{conversation}/messages"),
            None,
        )
        .await;
    let automated: Vec<&Value> = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "automatedMessage")
        .collect();
    let texts: Vec<&str> = automated
        .iter()
        .flat_map(|e| e["messages"].as_array().unwrap())
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        [
            "Hi Pat Sandbox, thanks for reaching out! An agent will be with you shortly.",
            "Thanks for chatting with us, Pat Sandbox!",
            "How did we do?",
        ],
        "{transcript}"
    );
    assert!(automated
        .iter()
        .all(|e| e["direction"] == "out" && e["delivery"]["status"] == "sent"));
    let ats: Vec<i64> = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_i64().unwrap())
        .collect();
    assert!(
        ats.windows(2).all(|w| w[0] <= w[1]),
        "in time order: {ats:?}"
    );

    // Nothing reached the customer twice: the greeting, the reply and the survey once each.
    let (_, chat) = stack
        .get(&format!("/sandbox/api/users/{user_id}/timeline?after=0"))
        .await;
    let from_account: Vec<&Value> = chat["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == "account")
        .map(|e| &e["message"])
        .collect();
    for text in [
        "Hi Pat Sandbox, thanks for reaching out! An agent will be with you shortly.",
        "Hi! I'm Sam, happy to help.",
        "Thanks, I see where you are.",
        "How did we do?",
    ] {
        let times = from_account.iter().filter(|m| m["text"] == text).count();
        assert_eq!(times, 1, "{text:?} reached the customer {times} times");
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
            .call_as(reqwest::Method::GET, path, None, Some(ADMIN))
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
            Some(ADMIN),
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
async fn a_start_interrupted_after_making_records_is_finished_without_duplicates() {
    let data = tempfile::tempdir().unwrap();
    let first = {
        let stack = start_with(command(data.path()));
        stack.get("/sandbox/api/session").await.1
    };
    // As if the first start had been killed right after the admin API made the records, before
    // the sandbox kept their ids: only the channel's credentials are kept.
    let db = rusqlite::Connection::open(data.path().join("sandbox.db")).unwrap();
    let kept: String = db
        .query_row("SELECT value FROM state WHERE name = 'channel'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut kept: Value = serde_json::from_str(&kept).unwrap();
    for field in [
        "accountId",
        "queueId",
        "agentId",
        "agentToken",
        "workstreamId",
    ] {
        kept.as_object_mut().unwrap().remove(field);
    }
    db.execute(
        "UPDATE state SET value = ?1 WHERE name = 'channel'",
        [kept.to_string()],
    )
    .unwrap();
    drop(db);

    let stack = start_with(command(data.path()));
    let (status, again) = stack.get("/sandbox/api/session").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["accountId"], first["accountId"]);
    assert_eq!(again["agent"]["id"], first["agent"]["id"]);
    // The agent's token was never kept: a new one, which works.
    let token = again["agent"]["token"].as_str().unwrap();
    assert_ne!(again["agent"]["token"], first["agent"]["token"]);
    stack
        .agent(token, reqwest::Method::GET, "/agent/v1/me", None)
        .await;
    for (path, key) in [
        ("/admin/v1/accounts", "accounts"),
        ("/admin/v1/queues", "queues"),
        ("/admin/v1/agents", "agents"),
        ("/admin/v1/workstreams", "workstreams"),
    ] {
        let (_, list) = stack
            .call_as(reqwest::Method::GET, path, None, Some(ADMIN))
            .await;
        assert_eq!(
            list[key].as_array().map(Vec::len),
            Some(1),
            "{path}: {list}"
        );
    }
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

    // Bodies over the limit and path values that are not text get the JSON error too.
    // (Over a raw connection: the stack answers before it has read the whole body.)
    let answer = raw_post_head(&stack.base, &send, 8 * 1024 * 1024).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"body_too_large""#), "{answer}");
    let (status, answer) = stack.get("/sandbox/api/users/%FF/timeline").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{answer}"
    );

    // Another website in the same browser cannot act as a customer: a form or no-cors post
    // (not JSON) or a cross-site origin is refused, and nothing is created.
    for (content_type, origin) in [
        ("text/plain", None),
        ("application/x-www-form-urlencoded", None),
        ("application/json", Some("https://evil.example")),
    ] {
        let mut request = stack
            .http
            .post(format!("{}/sandbox/api/users", stack.base))
            .header("content-type", content_type)
            .body(r#"{"name":"Mallory"}"#);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 403, "{content_type} {origin:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_origin");
    }
    let (_, users) = stack.get("/sandbox/api/users").await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(1), "{users}");

    // Through a proxy or tunnel (even one that rewrites Host): refused.
    let r = stack
        .http
        .get(format!("{}/sandbox/api/session", stack.base))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

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
