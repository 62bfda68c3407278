//! Security review findings #13, #18a and #18b held against the `omniline-local` binary started
//! as the README starts it: the sandbox refuses every forwarded request, a half-sent request does
//! not hold a connection open, and a short `ADMIN_TOKEN` is refused at start.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADMIN: &str = "hardening-test-admin-token-0123456789abcdef";

struct Stack {
    child: Child,
    base: String,
    http: reqwest::Client,
    _data: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary in sandbox mode and reads its banner up to the sandbox line.
fn start() -> Stack {
    let data = common::private_tempdir();
    let mut child = common::sandbox_command(data.path(), ADMIN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("omniline-local starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut base = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.trim().strip_prefix("listening on:") {
            base = Some(url.trim().to_owned());
        }
        let done = line.trim_start().starts_with("sandbox:");
        seen.push(line);
        if done {
            break;
        }
    }
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Stack {
        child,
        base: base.unwrap_or_else(|| panic!("no base URL in {seen:?}")),
        http: reqwest::Client::new(),
        _data: data,
    }
}

/// Review #13: a tunnel, reverse proxy or CDN in front of the stack connects from loopback and
/// may rewrite `Host`; whatever forwarding header it adds, the sandbox (its page, its API and the
/// simulated LINE API) answers 403 `not_local` with the JSON error body.
#[tokio::test]
async fn the_sandbox_refuses_every_forwarding_header() {
    let stack = start();
    let url = |path: &str| format!("{}{path}", stack.base);
    let (status, session) = {
        let r = stack
            .http
            .get(url("/sandbox/api/session"))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    assert_eq!(status, 200, "a direct request is served: {session}");

    let forwarding: &[(&str, &str)] = &[
        (
            "Forwarded",
            "for=203.0.113.9;proto=https;host=shop.example.com",
        ),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Host", "shop.example.com"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "443"),
        ("X-Real-IP", "203.0.113.9"),
        ("Via", "1.1 tunnel.example.com"),
        ("CF-Connecting-IP", "203.0.113.9"),
        ("True-Client-IP", "203.0.113.9"),
        ("X-Client-IP", "203.0.113.9"),
        ("X-Cluster-Client-IP", "203.0.113.9"),
        ("Fastly-Client-IP", "203.0.113.9"),
        ("X-Original-Forwarded-For", "203.0.113.9"),
        ("X-ProxyUser-Ip", "203.0.113.9"),
        ("X-Forwarded-Server", "edge-1"),
        ("CDN-Loop", "cloudflare"),
    ];
    for &(name, value) in forwarding {
        for path in [
            "/sandbox",
            "/sandbox/api/session",
            "/sandbox/api/users",
            "/sandbox/line/v2/bot/info",
        ] {
            let r = stack
                .http
                .get(url(path))
                .header(name, value)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{name} on {path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "not_local",
                "{name} on {path}: {body}"
            );
            assert!(body["error"]["message"].is_string(), "{body}");
            assert!(
                !body.to_string().contains("oma_"),
                "no agent token handed out: {body}"
            );
        }
        // A write that is otherwise the page's own (JSON, loopback origin) is refused too.
        let r = stack
            .http
            .post(url("/sandbox/api/users"))
            .header(name, value)
            .header("origin", stack.base.as_str())
            .json(&json!({"name": "Mallory"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "POST with {name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "not_local",
            "POST with {name}: {body}"
        );
    }
    // Nobody was made through the refused writes.
    let r = stack
        .http
        .get(url("/sandbox/api/users"))
        .send()
        .await
        .unwrap();
    let users: Value = r.json().await.unwrap();
    assert!(!users.to_string().contains("Mallory"), "{users}");
}

/// Review #18a: a client that sends half a request (a request line and a header, never the blank
/// line) is disconnected once the header-read timeout has passed; the server still serves.
#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_read_timeout() {
    let stack = start();
    let addr = stack.base.trim_start_matches("http://").to_owned();
    // Generous: the timeout plus 15 s, so only a connection held open fails.
    let deadline = omniline_local::serve::HEADER_READ_TIMEOUT + Duration::from_secs(15);

    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = tokio::time::timeout(deadline, async {
        let mut buf = [0u8; 1024];
        loop {
            match half.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // Whatever the server says first (nothing is expected), the close must follow.
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the half-sent request still held its connection after {:?}",
        started.elapsed()
    );

    // A whole request on a raw connection is answered, and the server still serves.
    let mut whole = tokio::net::TcpStream::connect(&addr).await.unwrap();
    whole
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), whole.read_to_end(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = stack
        .http
        .get(format!("{}/healthz", stack.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Waits for the process to exit (at most 30 s: a stack that starts and serves never exits).
fn exit_of(mut child: Child) -> (Option<i32>, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("omniline-local started with a short ADMIN_TOKEN instead of exiting");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Review #18b: `ADMIN_TOKEN` is the only credential of the admin API; shorter than 32 characters
/// it is refused (exit 2) with a message naming the variable and the rule, never the value, and
/// nothing is written to the data directory.
#[test]
fn an_admin_token_shorter_than_32_characters_is_refused_with_exit_2() {
    for token in [
        "admin",
        "my-own-admin-token",
        "0123456789abcdef0123456789abcde", // 31
    ] {
        let data = common::private_tempdir();
        let child = common::sandbox_command(data.path(), token)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (code, stderr) = exit_of(child);
        assert_eq!(code, Some(2), "{token:?}: {stderr}");
        assert!(stderr.contains("ADMIN_TOKEN"), "{stderr}");
        assert!(stderr.contains("at least 32"), "{stderr}");
        if token.len() > 8 {
            assert!(!stderr.contains(token), "the token was echoed: {stderr}");
        }
        assert_eq!(
            std::fs::read_dir(data.path()).unwrap().count(),
            0,
            "nothing was written"
        );
    }
}
