//! Conformance of our LINE client ([`HttpLineApi`]) with LINE's own OpenAPI spec
//! (`../shared/line-openapi/`), served by two Prism mocks that `./infra/test.sh` starts with
//! `--errors`: `OMNILINE_TEST_PRISM_URL` (messaging-api.yml, both API bases) and
//! `OMNILINE_TEST_PRISM_TOKEN_URL` (channel-access-token.yml, `POST /oauth2/v3/token`).
//!
//! Every method of [`LineApi`] is called once with realistic arguments and must succeed: a request
//! that breaks the spec gets a 4xx from Prism, so the call fails. Requests go through a small
//! recording proxy so that a failure shows what Prism said about it (its `sl-violations` header,
//! or the `validation` list of its 422 body), and so that a request that passes but still drew a
//! violation (a warning) fails too.
//!
//! Caveat: Prism does not follow the spec's `discriminator` mappings, so message objects (and
//! actions, flex components) are validated against the base `Message` schema only (`type`,
//! `quickReply`, `sender`), not against `TextMessage`, `ImageMessage`, `FlexMessage`, ...
//!
//! Ignored by a bare `cargo test` (no Prism there); the test command runs them with
//! `--include-ignored`, and then a missing URL is a failure, not a skip.

use omniline_domain::line::api::{Content, LineApiError};
use omniline_domain::secret::SecretString;
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_line::DEFAULT_MAX_CONTENT_BYTES;
use omniline_ports::LineApi;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const USER_ID: &str = "U4af4980629c1e2d3b4a5968778695a4b";
const GROUP_ID: &str = "Ca1b2c3d4e5f60718293a4b5c6d7e8f90";
const ROOM_ID: &str = "R0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const MESSAGE_ID: &str = "468789577898262530";
const REPLY_TOKEN: &str = "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA";
const MARK_AS_READ_TOKEN: &str = "nz0x74mZT2mRnQk8sBvXc3PqLwY5tRa";
const WEBHOOK_URL: &str = "https://omniline.example.com/line/webhook/acc_01HEXAMPLE";
const CHANNEL_ID: &str = "1657398765";
const CHANNEL_SECRET: &str = "8f6d1b2c3a4e5f60718293a4b5c6d7e8";

fn prism_url() -> String {
    std::env::var("OMNILINE_TEST_PRISM_URL").expect(
        "OMNILINE_TEST_PRISM_URL (Prism, messaging-api.yml) is not set: run ./infra/test.sh",
    )
}

fn prism_token_url() -> String {
    std::env::var("OMNILINE_TEST_PRISM_TOKEN_URL").expect(
        "OMNILINE_TEST_PRISM_TOKEN_URL (Prism, channel-access-token.yml) is not set: run ./infra/test.sh",
    )
}

fn token() -> SecretString {
    // The shape of a long-lived channel access token (Prism checks only that a Bearer is sent).
    SecretString::new("Y3xFZ0cN1sWq8r/Vb2kLmTQ9aHpJ+Ue4oXiD7gRtNfK5yB6wPzMcA0dEhSvIjGl1u=")
}

/// One request the client made, and what Prism answered.
#[derive(Debug)]
struct Exchange {
    method: String,
    path: String,
    request_body: String,
    status: u16,
    violations: Option<String>,
    response_body: String,
}

impl std::fmt::Display for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}\n  sl-violations: {}\n  request body: {}\n  response body: {}",
            self.method,
            self.path,
            self.status,
            self.violations.as_deref().unwrap_or("(none)"),
            self.request_body,
            self.response_body
        )
    }
}

type Log = Arc<Mutex<Vec<Exchange>>>;

/// A recording proxy in front of the Prism at `target`: the client talks to it, it forwards each
/// request unchanged and logs the exchange.
struct Recorder {
    url: String,
    log: Log,
}

impl Recorder {
    async fn start(target: String) -> Self {
        let log: Log = Arc::default();
        let client = reqwest::Client::new();
        let state = (client, target.trim_end_matches('/').to_owned(), log.clone());
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(Arc::new(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url: format!("http://{addr}"),
            log,
        }
    }

    /// An API whose both bases (api and data api) are this proxy.
    fn api(&self) -> HttpLineApi {
        HttpLineApi::new(&LineApiConfig {
            api_base: self.url.clone(),
            data_api_base: self.url.clone(),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            max_content_bytes: DEFAULT_MAX_CONTENT_BYTES,
        })
        .unwrap()
    }

    fn report(&self) -> String {
        let log = self.log.lock().unwrap();
        if log.is_empty() {
            return "no request reached Prism".into();
        }
        log.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Exactly the expected `(method, path)` requests were made, each answered 2xx without any
    /// violation (Prism also reports warnings in `sl-violations` while answering 2xx).
    fn assert_clean(&self, expected: &[(&str, &str)]) {
        let report = self.report();
        let log = self.log.lock().unwrap();
        let made: Vec<(&str, &str)> = log
            .iter()
            .map(|e| (e.method.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(made, expected, "requests made:\n{report}");
        for e in log.iter() {
            assert!(
                (200..300).contains(&e.status) && e.violations.is_none(),
                "Prism found the request in breach of the spec:\n{e}"
            );
        }
    }
}

type ProxyState = Arc<(reqwest::Client, String, Log)>;

async fn forward(
    axum::extract::State(state): axum::extract::State<ProxyState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (client, target, log) = &*state;
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers.clone();
    headers.remove(reqwest::header::HOST);
    let answer = client
        .request(parts.method.clone(), format!("{target}{path}"))
        .headers(headers)
        .body(body.clone())
        .send()
        .await
        .expect("Prism is not reachable");
    let status = answer.status();
    let mut response_headers = answer.headers().clone();
    let response_body = answer.bytes().await.unwrap();
    log.lock().unwrap().push(Exchange {
        method: parts.method.to_string(),
        path,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
        violations: response_headers
            .get("sl-violations")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        response_body: String::from_utf8_lossy(&response_body).into_owned(),
    });
    for hop in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
    ] {
        response_headers.remove(hop);
    }
    let mut response = axum::response::Response::new(axum::body::Body::from(response_body));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}

/// The messages omniline sends: a text, a sticker, an image, a text with quick replies and a flex
/// bubble (five: LINE's maximum per call).
fn messages() -> Vec<Value> {
    vec![
        json!({"type": "text", "text": "ご連絡ありがとうございます。担当者からご返信します 😀"}),
        json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
        json!({
            "type": "image",
            "originalContentUrl": "https://media.omniline.example.com/a/01HEXAMPLE/original.jpg",
            "previewImageUrl": "https://media.omniline.example.com/a/01HEXAMPLE/preview.jpg"
        }),
        json!({
            "type": "text",
            "text": "Would you like to talk to an agent?",
            "quickReply": {"items": [
                {"type": "action", "action": {"type": "message", "label": "Yes", "text": "Yes"}},
                {
                    "type": "action",
                    "imageUrl": "https://media.omniline.example.com/icons/agent.png",
                    "action": {
                        "type": "postback",
                        "label": "Agent",
                        "data": "action=handoff&reason=question",
                        "displayText": "I'd like to talk to an agent"
                    }
                }
            ]}
        }),
        json!({
            "type": "flex",
            "altText": "Your ticket #1234 was updated",
            "contents": {
                "type": "bubble",
                "body": {
                    "type": "box",
                    "layout": "vertical",
                    "contents": [
                        {"type": "text", "text": "Ticket #1234", "weight": "bold", "size": "xl"},
                        {"type": "text", "text": "An agent answered your question.", "wrap": true, "color": "#666666"}
                    ]
                },
                "footer": {
                    "type": "box",
                    "layout": "vertical",
                    "contents": [{
                        "type": "button",
                        "style": "primary",
                        "action": {"type": "uri", "label": "Open", "uri": "https://omniline.example.com/t/1234"}
                    }]
                }
            }
        }),
    ]
}

#[test]
fn ids_have_lines_shapes() {
    for (id, prefix) in [(USER_ID, 'U'), (GROUP_ID, 'C'), (ROOM_ID, 'R')] {
        assert!(id.starts_with(prefix) && id.len() == 33, "{id}");
        assert!(id[1..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert!(MESSAGE_ID.bytes().all(|b| b.is_ascii_digit()));
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn bot_info_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let info = prism.api().bot_info(&token()).await;
    let info = info.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("GET", "/v2/bot/info")]);
    assert!(
        !info.user_id.is_empty() && !info.basic_id.is_empty(),
        "{info:?}"
    );
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn set_webhook_endpoint_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let result = prism
        .api()
        .set_webhook_endpoint(&token(), WEBHOOK_URL)
        .await;
    result.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("PUT", "/v2/bot/channel/webhook/endpoint")]);
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn test_webhook_endpoint_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let api = prism.api();
    for endpoint in [Some(WEBHOOK_URL), None] {
        let result = api.test_webhook_endpoint(&token(), endpoint).await;
        let result = result.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
        assert!(result.status_code > 0, "{result:?}");
    }
    prism.assert_clean(&[
        ("POST", "/v2/bot/channel/webhook/test"),
        ("POST", "/v2/bot/channel/webhook/test"),
    ]);
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn profile_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let profile = prism.api().profile(&token(), USER_ID).await;
    let profile = profile.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("GET", format!("/v2/bot/profile/{USER_ID}").as_str())]);
    // A 404 (None) would mean Prism knows no such path.
    let profile = profile.expect("a profile, not LINE's 404");
    assert!(!profile.display_name.is_empty(), "{profile:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn group_member_profile_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let profile = prism
        .api()
        .group_member_profile(&token(), GROUP_ID, USER_ID)
        .await;
    let profile = profile.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[(
        "GET",
        format!("/v2/bot/group/{GROUP_ID}/member/{USER_ID}").as_str(),
    )]);
    let profile = profile.expect("a profile, not LINE's 404");
    assert!(!profile.display_name.is_empty(), "{profile:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn group_summary_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let summary = prism.api().group_summary(&token(), GROUP_ID).await;
    let summary = summary.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("GET", format!("/v2/bot/group/{GROUP_ID}/summary").as_str())]);
    let summary = summary.expect("a summary, not LINE's 404");
    assert!(!summary.group_name.is_empty(), "{summary:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn message_quota_and_consumption_conform() {
    let prism = Recorder::start(prism_url()).await;
    let api = prism.api();
    let quota = api.message_quota(&token()).await;
    let quota = quota.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    assert!(
        ["none", "limited"].contains(&quota.kind.as_str()),
        "{quota:?}"
    );
    api.quota_consumption(&token())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[
        ("GET", "/v2/bot/message/quota"),
        ("GET", "/v2/bot/message/quota/consumption"),
    ]);
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn room_member_profile_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let profile = prism
        .api()
        .room_member_profile(&token(), ROOM_ID, USER_ID)
        .await;
    let profile = profile.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[(
        "GET",
        format!("/v2/bot/room/{ROOM_ID}/member/{USER_ID}").as_str(),
    )]);
    let profile = profile.expect("a profile, not LINE's 404");
    assert!(!profile.display_name.is_empty(), "{profile:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn message_content_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let content = prism.api().message_content(&token(), MESSAGE_ID).await;
    let content = content.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[(
        "GET",
        format!("/v2/bot/message/{MESSAGE_ID}/content").as_str(),
    )]);
    assert!(matches!(content, Content::Ready { .. }), "{content:?}");
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn reply_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let sent = prism.api().reply(&token(), REPLY_TOKEN, &messages()).await;
    let sent = sent.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("POST", "/v2/bot/message/reply")]);
    assert!(!sent.already_accepted, "{sent:?}");
    // ReplyMessageResponse requires sentMessages (1 to 5 items, each with an id).
    assert!(
        !sent.sent_message_ids.is_empty(),
        "{sent:?}\n{}",
        prism.report()
    );
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn push_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let api = prism.api();
    let retry_key = uuid::Uuid::new_v4().to_string();
    let mut paths = Vec::new();
    for to in [USER_ID, GROUP_ID, ROOM_ID] {
        let sent = api.push(&token(), to, &messages(), &retry_key).await;
        let sent = sent.unwrap_or_else(|e| panic!("push to {to}: {e}\n{}", prism.report()));
        assert!(
            !sent.sent_message_ids.is_empty(),
            "{sent:?}\n{}",
            prism.report()
        );
        paths.push(("POST", "/v2/bot/message/push"));
    }
    prism.assert_clean(&paths);
    let log = prism.log.lock().unwrap();
    let body: Value = serde_json::from_str(&log[0].request_body).unwrap();
    assert_eq!(body["to"], USER_ID);
    assert_eq!(body["messages"], Value::Array(messages()));
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn start_loading_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let result = prism.api().start_loading(&token(), USER_ID, 20).await;
    result.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("POST", "/v2/bot/chat/loading/start")]);
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn mark_as_read_by_token_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let result = prism
        .api()
        .mark_as_read_by_token(&token(), MARK_AS_READ_TOKEN)
        .await;
    result.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("POST", "/v2/bot/chat/markAsRead")]);
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn issue_link_token_conforms() {
    let prism = Recorder::start(prism_url()).await;
    let link_token = prism.api().issue_link_token(&token(), USER_ID).await;
    let link_token = link_token.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("POST", format!("/v2/bot/user/{USER_ID}/linkToken").as_str())]);
    assert!(!link_token.is_empty());
}

#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn issue_stateless_token_conforms() {
    let prism = Recorder::start(prism_token_url()).await;
    let issued = prism
        .api()
        .issue_stateless_token(CHANNEL_ID, &SecretString::new(CHANNEL_SECRET))
        .await;
    let issued = issued.unwrap_or_else(|e| panic!("{e}\n{}", prism.report()));
    prism.assert_clean(&[("POST", "/oauth2/v3/token")]);
    assert!(!issued.access_token.expose().is_empty());
    assert!(issued.expires_in > Duration::ZERO, "{issued:?}");
}

/// The harness is not vacuous: Prism refuses a request that breaks the spec, and the report
/// carries its reason.
#[tokio::test]
#[ignore = "needs Prism: run ./infra/test.sh"]
async fn prism_refuses_a_spec_violation() {
    let prism = Recorder::start(prism_url()).await;
    let err = prism
        .api()
        .set_webhook_endpoint(&token(), "not a url")
        .await
        .unwrap_err();
    assert!(
        matches!(err, LineApiError::Rejected { status: 422, .. }),
        "{err:?}"
    );
    let report = prism.report();
    assert!(
        report.contains(r#"endpoint must match format \"uri\""#),
        "{report}"
    );
}
