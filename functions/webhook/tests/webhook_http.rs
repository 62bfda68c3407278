//! The webhook router over the embedded adapters, through HTTP requests (tower `oneshot`), and
//! through API Gateway REST (v1) and HTTP API (v2) Lambda events.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use omniline_app::ingest::{WebhookIngest, MAX_BODY_BYTES};
use omniline_domain::account::{credentials_secret_name, ChannelCredentials};
use omniline_domain::line::envelope::InboundEvent;
use omniline_domain::line::signature::sign;
use omniline_domain::secret::SecretString;
use omniline_ports::{AccountStore, EventQueue, SecretStore};
use omniline_testkit::{seed_account, EmbeddedAdapters};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const SECRET: &str = "8c570fa6dd201bb328f1c1eac23a96d8";
const VERIFY_BODY: &str = r#"{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    adapters: EmbeddedAdapters,
    app: axum::Router,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let adapters = EmbeddedAdapters::open(dir.path()).unwrap();
    seed_account(
        adapters.accounts.as_ref(),
        adapters.secrets.as_ref(),
        "acc1",
        SECRET,
    )
    .await
    .unwrap();
    let ingest = WebhookIngest::new(
        adapters.accounts.clone(),
        adapters.secrets.clone(),
        adapters.inbound.clone(),
        clock(),
    )
    // Re-read a rotated secret at once (the default floor is a second).
    .with_cache_timing(Duration::from_secs(300), Duration::ZERO);
    let app = webhook::router(Arc::new(ingest));
    Fixture {
        _dir: dir,
        adapters,
        app,
    }
}

/// The events' time (2023-11-14T22:13:20Z), and the webhook's clock a second later: the tests
/// never depend on today's date.
const T0: i64 = 1_700_000_000_000;

fn clock() -> Arc<dyn Fn() -> i64 + Send + Sync> {
    Arc::new(|| T0 + 1000)
}

fn text_event(id: &str, user: &str, text: &str) -> Value {
    json!({
        "type": "message", "mode": "active", "timestamp": T0,
        "webhookEventId": id, "deliveryContext": {"isRedelivery": false},
        "replyToken": "rt", "source": {"type": "user", "userId": user},
        "message": {"type": "text", "id": "1", "quoteToken": "q", "text": text}
    })
}

fn body_of(events: Vec<Value>) -> String {
    json!({"destination": "Ubot", "events": events}).to_string()
}

async fn post(
    app: &axum::Router,
    account: &str,
    signature: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut request = Request::post(format!("/line/webhook/{account}"))
        .header("content-type", "application/json");
    if let Some(sig) = signature {
        request = request.header("x-line-signature", sig);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_vec())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn queued(f: &Fixture) -> Vec<(String, String, InboundEvent)> {
    f.adapters
        .inbound
        .receive(100, Duration::from_secs(30))
        .await
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.group_id,
                m.dedup_id,
                serde_json::from_str(&m.body).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn signed_events_are_queued_one_message_each_in_order() {
    let f = fixture().await;
    let body = body_of(vec![
        text_event(
            "01HEVENT0000000000000000A1",
            "Ualice",
            "Hello 😀\nline two \\ \"q\"",
        ),
        text_event("01HEVENT0000000000000000A2", "Ubob", "hi"),
        text_event("01HEVENT0000000000000000A3", "Ualice", "again"),
    ]);
    let (status, json) = post(
        &f.app,
        "acc1",
        Some(&sign(SECRET.as_bytes(), body.as_bytes())),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["queued"], 3);

    let messages = queued(&f).await;
    assert_eq!(messages.len(), 3);
    let (group, dedup, event) = &messages[0];
    assert_eq!(group, "acc1:Ualice");
    assert_eq!(dedup, "01HEVENT0000000000000000A1");
    assert_eq!(event.account_id, "acc1");
    assert_eq!(event.destination, "Ubot");
    let original: Value = serde_json::from_str(&body).unwrap();
    let carried: Value = serde_json::from_str(event.event.get()).unwrap();
    assert_eq!(carried, original["events"][0]);
    assert_eq!(messages[1].0, "acc1:Ubob");
    assert_eq!(messages[2].1, "01HEVENT0000000000000000A3");

    let stats = f.adapters.accounts.webhook_stats("acc1").await.unwrap();
    assert_eq!((stats.received, stats.queued, stats.rejected), (3, 3, 0));
    assert!(stats.last_received_at.is_some());
}

/// Review 1/7 #14: an event older than the 7-day deduplication window (by the webhook's clock)
/// is refused, counted as received and not queued; so is an event with a key twice, which the
/// webhook's scanner and the router's model could read differently. The rest of the body goes.
#[tokio::test]
async fn stale_events_and_events_with_a_key_twice_are_refused_and_counted() {
    let f = fixture().await;
    let mut stale = text_event("01HSTALE00000000000000000A", "Ualice", "a year ago");
    stale["timestamp"] = json!(T0 + 1000 - 7 * 24 * 3600 * 1000 - 1);
    let mut edge = text_event("01HSTALE00000000000000000B", "Ualice", "just inside");
    edge["timestamp"] = json!(T0 + 1000 - 7 * 24 * 3600 * 1000);
    let fresh = text_event("01HSTALE00000000000000000C", "Ubob", "now");
    let events = [stale, edge, fresh]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>();
    // Two spellings of one key: `webhookEventId` twice, and `source` holding `userId` twice.
    let twice_id = r#"{"type":"message","mode":"active","timestamp":1700000000000,"webhookEventId":"01HTWICE00000000000000000A","webhookEventId":"01HTWICE00000000000000000B","source":{"type":"user","userId":"Ua"},"message":{"type":"text","id":"1","text":"x"}}"#;
    let twice_user = r#"{"type":"message","mode":"active","timestamp":1700000000000,"webhookEventId":"01HTWICE00000000000000000C","source":{"type":"user","userId":"Ua","u\u0073erId":"Ub"},"message":{"type":"text","id":"2","text":"x"}}"#;
    let body = format!(
        r#"{{"destination":"Ubot","events":[{},{twice_id},{twice_user}]}}"#,
        events.join(",")
    );
    let (status, json) = post(
        &f.app,
        "acc1",
        Some(&sign(SECRET.as_bytes(), body.as_bytes())),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["queued"], 2);
    let ids: Vec<String> = queued(&f).await.into_iter().map(|(_, d, _)| d).collect();
    assert_eq!(
        ids,
        ["01HSTALE00000000000000000B", "01HSTALE00000000000000000C"]
    );
    let stats = f.adapters.accounts.webhook_stats("acc1").await.unwrap();
    assert_eq!((stats.received, stats.queued, stats.rejected), (5, 2, 0));
}

#[tokio::test]
async fn the_exact_raw_bytes_are_verified_crlf_and_escapes_included() {
    let f = fixture().await;
    let body = "{\"destination\":\"Ubot\",\r\n \"events\":[{\"type\":\"message\",\"webhookEventId\":\"E1\",\"source\":{\"type\":\"user\",\"userId\":\"U1\"},\"message\":{\"type\":\"text\",\"text\":\"\\uD83E\\uDD14 \\\\ \\n ok\"}}]}\r\n";
    let sig = sign(SECRET.as_bytes(), body.as_bytes());
    let (status, _) = post(&f.app, "acc1", Some(&sig), body.as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    let messages = queued(&f).await;
    assert!(messages[0]
        .2
        .event
        .get()
        .contains(r#""\uD83E\uDD14 \\ \n ok""#));
}

#[tokio::test]
async fn lines_verify_request_is_accepted() {
    let f = fixture().await;
    let sig = "GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=";
    let (status, json) = post(&f.app, "acc1", Some(sig), VERIFY_BODY.as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["queued"], 0);
    assert!(f.adapters.inbound.is_empty().await.unwrap());
}

#[tokio::test]
async fn bad_signatures_and_unknown_accounts_get_the_same_401() {
    let f = fixture().await;
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    let good = sign(SECRET.as_bytes(), body.as_bytes());
    let mut flipped_body = body.clone().into_bytes();
    flipped_body[20] ^= 0x01;
    let mut flipped_sig: Vec<char> = good.chars().collect();
    flipped_sig[5] = if flipped_sig[5] == 'x' { 'y' } else { 'x' };
    let flipped_sig: String = flipped_sig.into_iter().collect();

    let cases: Vec<(&str, Option<&str>, &[u8])> = vec![
        ("acc1", None, body.as_bytes()),
        ("acc1", Some(""), body.as_bytes()),
        ("acc1", Some("garbage!"), body.as_bytes()),
        ("acc1", Some(&flipped_sig), body.as_bytes()),
        ("acc1", Some(&good), &flipped_body),
        ("nope", Some(&good), body.as_bytes()),
    ];
    let mut bodies = Vec::new();
    for (account, sig, payload) in cases {
        let (status, json) = post(&f.app, account, sig, payload).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{account} {sig:?}");
        bodies.push(json);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "401 bodies differ: {bodies:?}"
    );
    assert_eq!(bodies[0]["error"]["code"], "unauthorized");
    assert!(f.adapters.inbound.is_empty().await.unwrap());
    let stats = f.adapters.accounts.webhook_stats("acc1").await.unwrap();
    assert_eq!((stats.received, stats.queued, stats.rejected), (0, 0, 5));
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_webhook_is_400() {
    let f = fixture().await;
    for body in [
        &b"not json"[..],
        b"[1,2]",
        b"{\"events\":[]}",
        b"{\"destination\":\"U\",\"events\":3}",
    ] {
        let sig = sign(SECRET.as_bytes(), body);
        let (status, json) = post(&f.app, "acc1", Some(&sig), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(json["error"]["code"], "invalid_webhook");
    }
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let f = fixture().await;
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let sig = sign(SECRET.as_bytes(), &big);
    let (status, json) = post(&f.app, "acc1", Some(&sig), &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json["error"]["code"], "payload_too_large");

    // Without a Content-Length (streamed), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..17).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
    let stream = Body::from_stream(futures_stream(chunks));
    let response = f
        .app
        .clone()
        .oneshot(
            Request::post("/line/webhook/acc1")
                .header("x-line-signature", &sig)
                .body(stream)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Exactly the limit is fine as far as size goes (it is then not JSON: 400, not 413).
    let max = vec![b' '; MAX_BODY_BYTES];
    let (status, _) = post(&f.app, "acc1", Some(&sign(SECRET.as_bytes(), &max)), &max).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Iter(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(chunks.into_iter())
}

#[tokio::test]
async fn a_deleted_account_is_refused() {
    let f = fixture().await;
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    let sig = sign(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(
        post(&f.app, "acc1", Some(&sig), body.as_bytes()).await.0,
        StatusCode::OK
    );
    f.adapters
        .secrets
        .delete(&credentials_secret_name("acc1"))
        .await
        .unwrap();
    f.adapters.accounts.delete("acc1").await.unwrap();
    assert_eq!(
        post(&f.app, "acc1", Some(&sig), body.as_bytes()).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_without_waiting_for_the_cache() {
    let f = fixture().await;
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    // Warm the cache with the old secret.
    let old_sig = sign(SECRET.as_bytes(), body.as_bytes());
    assert_eq!(
        post(&f.app, "acc1", Some(&old_sig), body.as_bytes())
            .await
            .0,
        StatusCode::OK
    );

    let new_secret = "0123456789abcdef0123456789abcdef";
    let rotated = ChannelCredentials {
        channel_secret: SecretString::new(new_secret),
        channel_access_token: SecretString::new("t"),
    };
    f.adapters
        .secrets
        .put(&credentials_secret_name("acc1"), &rotated.to_secret())
        .await
        .unwrap();

    let body2 = body_of(vec![text_event("E2", "U1", "after rotation")]);
    let new_sig = sign(new_secret.as_bytes(), body2.as_bytes());
    assert_eq!(
        post(&f.app, "acc1", Some(&new_sig), body2.as_bytes())
            .await
            .0,
        StatusCode::OK
    );
    // And the old secret no longer works.
    let old_sig2 = sign(SECRET.as_bytes(), body2.as_bytes());
    assert_eq!(
        post(&f.app, "acc1", Some(&old_sig2), body2.as_bytes())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}

/// Counts reads, to show forged signatures do not become one secret read each.
struct CountingSecrets {
    inner: Arc<dyn SecretStore>,
    reads: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl SecretStore for CountingSecrets {
    async fn get(&self, name: &str) -> Result<Option<SecretString>, omniline_domain::PortError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(name).await
    }
    async fn put(
        &self,
        name: &str,
        value: &SecretString,
    ) -> Result<(), omniline_domain::PortError> {
        self.inner.put(name, value).await
    }
    async fn delete(&self, name: &str) -> Result<(), omniline_domain::PortError> {
        self.inner.delete(name).await
    }
}

#[tokio::test]
async fn forged_signatures_do_not_reread_the_secret_each_time() {
    let f = fixture().await;
    let secrets = Arc::new(CountingSecrets {
        inner: f.adapters.secrets.clone(),
        reads: Default::default(),
    });
    let ingest = WebhookIngest::new(
        f.adapters.accounts.clone(),
        secrets.clone(),
        f.adapters.inbound.clone(),
        clock(),
    );
    let app = webhook::router(Arc::new(ingest));
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    assert_eq!(
        post(
            &app,
            "acc1",
            Some(&sign(SECRET.as_bytes(), body.as_bytes())),
            body.as_bytes()
        )
        .await
        .0,
        StatusCode::OK
    );
    for _ in 0..20 {
        let forged = sign(b"not-the-secret", body.as_bytes());
        assert_eq!(
            post(&app, "acc1", Some(&forged), body.as_bytes()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        secrets.reads.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one read, then the cache"
    );
}

/// A queue that refuses everything, as a stand-in for an SQS outage.
struct DownQueue;

#[async_trait::async_trait]
impl EventQueue for DownQueue {
    async fn send(
        &self,
        _: &[omniline_domain::line::envelope::QueueMessage],
    ) -> Result<(), omniline_domain::PortError> {
        Err(omniline_domain::PortError::Unavailable("queue down".into()))
    }
}

#[tokio::test]
async fn a_queue_failure_is_503_so_line_redelivers() {
    let f = fixture().await;
    let ingest = WebhookIngest::new(
        f.adapters.accounts.clone(),
        f.adapters.secrets.clone(),
        Arc::new(DownQueue),
        clock(),
    );
    let app = webhook::router(Arc::new(ingest));
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    let (status, json) = post(
        &app,
        "acc1",
        Some(&sign(SECRET.as_bytes(), body.as_bytes())),
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"]["code"], "unavailable");
    assert!(
        !json.to_string().contains("queue down"),
        "internal detail leaked: {json}"
    );
}

// --- Lambda events -------------------------------------------------------------------------

fn v2_event(account: &str, body: &str, base64: bool, signature: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "POST /line/webhook/{accountId}",
        "rawPath": format!("/line/webhook/{account}"),
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-line-signature": signature, "host": "abc.execute-api.ap-northeast-1.amazonaws.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc", "domainName": "abc.execute-api.ap-northeast-1.amazonaws.com",
            "domainPrefix": "abc", "requestId": "r1", "routeKey": "POST /line/webhook/{accountId}", "stage": "$default",
            "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64,
            "http": {"method": "POST", "path": format!("/line/webhook/{account}"), "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "LineBotWebhook/2.0"}
        },
        "pathParameters": {"accountId": account},
        "body": if base64 { base64::engine::general_purpose::STANDARD.encode(body) } else { body.to_owned() },
        "isBase64Encoded": base64
    })
}

/// A Lambda function URL's event (`WebhookEntry=FunctionUrl`): payload 2.0 with the `$default`
/// route and no path parameters.
fn url_event(account: &str, body: &str, base64: bool, signature: &str) -> Value {
    let host = "abcdefghij.lambda-url.ap-northeast-1.on.aws";
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": format!("/line/webhook/{account}"),
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-line-signature": signature, "host": host},
        "requestContext": {
            "accountId": "anonymous", "apiId": "abcdefghij", "domainName": host,
            "domainPrefix": "abcdefghij", "requestId": "r1", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:01:00:00 +0000", "timeEpoch": 1_795_000_000_000_i64,
            "http": {"method": "POST", "path": format!("/line/webhook/{account}"), "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "LineBotWebhook/2.0"}
        },
        "body": if base64 { base64::engine::general_purpose::STANDARD.encode(body) } else { body.to_owned() },
        "isBase64Encoded": base64
    })
}

fn v1_event(account: &str, body: &str, base64: bool, signature: &str) -> Value {
    json!({
        "resource": "/line/webhook/{accountId}",
        "path": format!("/line/webhook/{account}"),
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "X-Line-Signature": signature, "Host": "abc.execute-api.ap-northeast-1.amazonaws.com"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "X-Line-Signature": [signature], "Host": ["abc.execute-api.ap-northeast-1.amazonaws.com"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": {"accountId": account}, "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "r", "stage": "prod", "requestId": "r1",
            "identity": {"sourceIp": "203.0.113.1", "userAgent": "LineBotWebhook/2.0"},
            "resourcePath": "/line/webhook/{accountId}", "httpMethod": "POST", "apiId": "abc",
            "path": format!("/prod/line/webhook/{account}")
        },
        "body": if base64 { base64::engine::general_purpose::STANDARD.encode(body) } else { body.to_owned() },
        "isBase64Encoded": base64
    })
}

async fn invoke(app: &axum::Router, event: Value) -> (u16, Value) {
    let context = lambda_http::lambda_runtime::Context::default();
    let response = omniline_runtime::http::lambda_entry(
        app.clone(),
        lambda_http::lambda_runtime::LambdaEvent::new(event, context),
    )
    .await
    .unwrap();
    let status = response["statusCode"].as_u64().unwrap() as u16;
    let body = response["body"].as_str().unwrap_or("");
    let body = if response["isBase64Encoded"].as_bool() == Some(true) {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap(),
        )
        .unwrap()
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn api_gateway_v1_and_v2_events_base64_or_not() {
    // REST APIs put the stage in the path; template.yaml sets this so routes match.
    std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true");
    let f = fixture().await;
    let mut n = 0;
    for make in [
        v1_event as fn(&str, &str, bool, &str) -> Value,
        v2_event,
        url_event,
    ] {
        for base64 in [false, true] {
            n += 1;
            let body = body_of(vec![text_event(&format!("EV{n}"), "U1", "héllo 😀\r\n")]);
            let sig = sign(SECRET.as_bytes(), body.as_bytes());
            let (status, json) = invoke(&f.app, make("acc1", &body, base64, &sig)).await;
            assert_eq!(status, 200, "event {n}: {json}");
            assert_eq!(json["queued"], 1);
            let (status, _) = invoke(&f.app, make("acc1", &body, base64, "AAAA")).await;
            assert_eq!(status, 401, "event {n} with a bad signature");
        }
    }
    assert_eq!(f.adapters.inbound.len().await.unwrap(), 6);
}

#[tokio::test]
async fn invalid_base64_in_an_event_is_400_not_a_panic() {
    let f = fixture().await;
    for make in [v1_event as fn(&str, &str, bool, &str) -> Value, v2_event] {
        let mut event = make("acc1", "{}", true, "x");
        event["body"] = json!("%%% not base64 %%%");
        let (status, json) = invoke(&f.app, event).await;
        assert_eq!(status, 400);
        assert_eq!(json["error"]["code"], "invalid_body_encoding");
    }
    let (status, _) = invoke(&f.app, json!({"not": "an http event"})).await;
    assert_eq!(status, 400);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_bytes_and_headers_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
                                               sig in "[ -~]{0,60}") {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let f = fixture().await;
            let (status, json) = post(&f.app, "acc1", Some(&sig), &body).await;
            assert!(status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST, "{status}");
            assert!(json["error"]["code"].is_string());
            // Signed arbitrary bytes: 200 only if it really is a webhook, else 400.
            let (status, _) = post(&f.app, "acc1", Some(&sign(SECRET.as_bytes(), &body)), &body).await;
            assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST, "{status}");
        });
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_whether_or_not_the_account_exists() {
    let f = fixture().await;
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    for account in ["acc1", "no-such-account"] {
        let (status, _) = post(&f.app, account, None, &big).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{account}: no oracle"
        );
    }
}

#[tokio::test]
async fn an_account_without_a_secret_is_not_reread_for_every_forged_request() {
    let f = fixture().await;
    f.adapters
        .secrets
        .delete(&credentials_secret_name("acc1"))
        .await
        .unwrap();
    let secrets = Arc::new(CountingSecrets {
        inner: f.adapters.secrets.clone(),
        reads: Default::default(),
    });
    let ingest = WebhookIngest::new(
        f.adapters.accounts.clone(),
        secrets.clone(),
        f.adapters.inbound.clone(),
        clock(),
    );
    let app = webhook::router(Arc::new(ingest));
    let body = body_of(vec![text_event("E1", "U1", "hi")]);
    for _ in 0..10 {
        let forged = sign(b"guess", body.as_bytes());
        assert_eq!(
            post(&app, "acc1", Some(&forged), body.as_bytes()).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(secrets.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// Issue 3/7: on AWS the counters are added up in memory and an account's are written at most
/// once per `COUNTER_FLUSH` per instance (by the injected clock), so a busy account's counter
/// item takes one write every ten seconds, not one per request; nothing is lost, only late.
#[tokio::test]
async fn counters_are_written_at_most_once_per_flush_interval() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let adapters = EmbeddedAdapters::open(dir.path()).unwrap();
    seed_account(
        adapters.accounts.as_ref(),
        adapters.secrets.as_ref(),
        "acc1",
        SECRET,
    )
    .await
    .unwrap();
    let now = Arc::new(AtomicI64::new(T0 + 1000));
    let clock_now = Arc::clone(&now);
    let ingest = WebhookIngest::new(
        adapters.accounts.clone(),
        adapters.secrets.clone(),
        adapters.inbound.clone(),
        Arc::new(move || clock_now.load(Ordering::SeqCst)),
    )
    .with_counter_flush(omniline_app::ingest::COUNTER_FLUSH);
    let app = webhook::router(Arc::new(ingest));
    let send = |id: &'static str| {
        let app = app.clone();
        async move {
            let body = body_of(vec![text_event(id, "Ualice", "hi")]);
            let signature = sign(SECRET.as_bytes(), body.as_bytes());
            let (status, _) = post(&app, "acc1", Some(&signature), body.as_bytes()).await;
            assert_eq!(status, StatusCode::OK);
        }
    };
    let stats = || async {
        let s = adapters.accounts.webhook_stats("acc1").await.unwrap();
        (s.received, s.queued)
    };
    send("01HEVENT00000000000000FL01").await;
    assert_eq!(stats().await, (1, 1), "the first request writes at once");
    now.fetch_add(4_000, Ordering::SeqCst);
    send("01HEVENT00000000000000FL02").await;
    send("01HEVENT00000000000000FL03").await;
    assert_eq!(stats().await, (1, 1), "held in memory within the interval");
    now.fetch_add(6_000, Ordering::SeqCst);
    send("01HEVENT00000000000000FL04").await;
    assert_eq!(
        stats().await,
        (4, 4),
        "the first request after it writes all"
    );
}
