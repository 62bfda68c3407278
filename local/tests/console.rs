//! The agent console (`/console`) over HTTP against the `omniline-local` binary: the page with
//! its CSP and cache headers, the versioned scripts and style sheet (the bytes of
//! `functions/agent/console/`, their content types, immutable), a JSON 404 for anything else,
//! `config.json` with and without OIDC configured, and the same page whether the sandbox is on
//! or off. (The page itself is driven in headless Chromium by `sandbox-e2e/console.test.mjs`.)

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; connect-src 'self'; media-src 'self' https: blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The security headers every console answer carries.
fn assert_secured(response: &reqwest::Response, what: &str) {
    assert_eq!(header(response, "content-security-policy"), CSP, "{what}");
    assert_eq!(
        header(response, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(response, "referrer-policy"), "no-referrer", "{what}");
}

/// `GET {base}{path}`.
async fn get(client: &reqwest::Client, base: &str, path: &str) -> reqwest::Response {
    client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// The page at `/console`; checks its headers and answers its text.
async fn page(client: &reqwest::Client, base: &str) -> String {
    let response = get(client, base, "/console").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type"),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&response, "cache-control"), "no-cache");
    assert_secured(&response, "GET /console");
    let html = response.text().await.unwrap_or_default();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(!html.contains("<style"), "no inline style");
    html
}

/// The versioned URL prefix the page loads its files from (`/console/v/{version}/`).
fn asset_prefix(html: &str) -> String {
    let at = html
        .find("/console/v/")
        .unwrap_or_else(|| panic!("the page names no versioned file: {html}"));
    let rest = &html[at..];
    let version_end = "/console/v/".len()
        + rest["/console/v/".len()..]
            .find('/')
            .unwrap_or_else(|| panic!("no version in {rest}"));
    rest[..=version_end].to_owned()
}

fn console_file(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../functions/agent/console/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn assert_json_404(client: &reqwest::Client, base: &str, path: &str) {
    let response = get(client, base, path).await;
    assert_eq!(response.status(), 404, "{path}");
    assert!(
        header(&response, "content-type").starts_with("application/json"),
        "{path}: {}",
        header(&response, "content-type")
    );
    assert_secured(&response, path);
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
    assert!(body["error"]["message"].is_string(), "{path}: {body}");
}

#[tokio::test]
async fn the_console_is_served_with_its_headers_and_files_with_the_sandbox_off() {
    // LINE configured (mocked): the sandbox is off.
    let stack = start().await;
    let (client, base) = (&stack.client, stack.base.as_str());
    let sandbox = get(client, base, "/sandbox").await;
    assert_eq!(sandbox.status(), 404, "the sandbox is off");

    let html = page(client, base).await;
    let prefix = asset_prefix(&html);
    assert!(html.contains(&format!("src=\"{prefix}app.js\"")), "{html}");
    assert!(
        html.contains(&format!("href=\"{prefix}console.css\"")),
        "{html}"
    );
    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("admin.js", "text/javascript; charset=utf-8"),
        ("supervisor.js", "text/javascript; charset=utf-8"),
        ("reports.js", "text/javascript; charset=utf-8"),
        ("staff.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("i18n.js", "text/javascript; charset=utf-8"),
        ("render.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
    ] {
        let path = format!("{prefix}{file}");
        let response = get(client, base, &path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&response, "cache-control"),
            "public, max-age=31536000, immutable",
            "{path}: a versioned URL"
        );
        assert_secured(&response, &path);
        let bytes = response.bytes().await.unwrap_or_default();
        assert_eq!(bytes.as_ref(), console_file(file).as_slice(), "{path}");
    }

    // The set-up and supervisor pages: the same headers, this version's scripts.
    for (path, script) in [
        ("/console/admin", "admin.js"),
        ("/console/admin/", "admin.js"),
        ("/console/supervisor", "supervisor.js"),
        ("/console/supervisor/", "supervisor.js"),
        ("/console/reports", "reports.js"),
        ("/console/reports/", "reports.js"),
    ] {
        let response = get(client, base, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "cache-control"), "no-cache", "{path}");
        assert_secured(&response, path);
        let page = response.text().await.unwrap_or_default();
        assert!(
            page.contains(&format!("src=\"{prefix}{script}\"")),
            "{page}"
        );
    }

    // Anything else under /console: JSON 404, also an old version's file.
    for path in [
        format!("{prefix}nope.js"),
        "/console/v/0123456789abcdef/app.js".to_owned(),
        "/console/app.js".to_owned(),
        "/console/v/".to_owned(),
    ] {
        assert_json_404(client, base, &path).await;
    }
    // The page takes GET only.
    let post = client
        .post(format!("{base}/console"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /console: {e}"));
    assert_eq!(post.status(), 405);

    let config = get(client, base, "/console/config.json").await;
    assert_eq!(config.status(), 200);
    assert_eq!(header(&config, "cache-control"), "no-cache");
    assert_secured(&config, "config.json");
    let config: Value = config.json().await.unwrap_or_default();
    assert_eq!(config, json!({"signIn": "token"}));
}

#[tokio::test]
async fn config_json_names_the_oidc_issuer_when_both_variables_are_set() {
    let stack = start_with(&[
        ("OIDC_ISSUER", "https://id.example.com/realms/shop"),
        ("OIDC_CLIENT_ID", "omniline-console"),
    ])
    .await;
    let config: Value = get(&stack.client, &stack.base, "/console/config.json")
        .await
        .json()
        .await
        .unwrap_or_default();
    // The issuer cannot be reached from here: the page is told to sign in there, and that it
    // cannot now.
    assert_eq!(
        config,
        json!({"signIn": "oidc", "issuer": "https://id.example.com/realms/shop",
               "clientId": "omniline-console", "scope": "openid email profile", "available": false})
    );
}

#[tokio::test]
async fn the_console_is_the_same_page_with_the_sandbox_on() {
    let off = start().await;
    let page_off = page(&off.client, &off.base).await;

    let data = private_tempdir();
    let mut command = sandbox_command(data.path(), "console-test-admin-token-0123456789abcdef");
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("omniline-local: {e}"));
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take();
    let child = Kill(child);
    let mut lines = BufReader::new(stdout.unwrap_or_else(|| panic!("no stdout"))).lines();
    let mut base = None;
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        if let Some(url) = line.trim().strip_prefix("listening on:") {
            base = Some(url.trim().to_owned());
        }
        let done = line.trim_start().starts_with("sandbox:");
        seen.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let base = base.unwrap_or_else(|| panic!("no base URL in {seen:?}"));
    assert!(
        seen.iter()
            .any(|l| l.contains("sandbox:") && l.contains("/sandbox")),
        "the sandbox is on: {seen:?}"
    );
    let client = reqwest::Client::new();
    let page_on = page(&client, &base).await;
    assert_eq!(page_on, page_off, "one page in every mode");
    let config: Value = get(&client, &base, "/console/config.json")
        .await
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(config, json!({"signIn": "token"}));
    drop(child);
}
