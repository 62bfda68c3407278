//! The admin routes over the embedded adapters, with LINE's API served by wiremock.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use omniline_domain::account::{credentials_secret_name, ChannelCredentials};
use omniline_domain::secret::SecretString;
use omniline_embedded::config_docs::SqliteConfigStore;
use omniline_embedded::objects::FsObjectStore;
use omniline_embedded::sqlite_agents::SqliteAgentStore;
use omniline_embedded::sqlite_conversations::SqliteConversationStore;
use omniline_embedded::sqlite_deliveries::SqliteDeliveryStore;
use omniline_embedded::workstreams::SqliteWorkstreamStore;
use omniline_line::HttpLineApi;
use omniline_line::LineApiConfig;
use omniline_ports::{AccountStore, SecretStore};
use omniline_testkit::EmbeddedAdapters;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN_TOKEN: &str = "admin-test-token";
const GOOD_TOKEN: &str = "good-channel-access-token";
const OTHER_TOKEN: &str = "token-of-another-bot";
const SECRET: &str = "8c570fa6dd201bb328f1c1eac23a96d8";

struct Fixture {
    _dir: tempfile::TempDir,
    adapters: EmbeddedAdapters,
    line: MockServer,
    app: axum::Router,
    /// The use cases behind `app` (to run the background jobs, as the schedule does).
    state: admin::AdminState,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let adapters = EmbeddedAdapters::open(dir.path()).unwrap();
    let line = MockServer::start().await;
    for (token, user) in [(GOOD_TOKEN, "Ubot1"), (OTHER_TOKEN, "Ubot2")] {
        Mock::given(method("GET"))
            .and(path("/v2/bot/info"))
            .and(header("authorization", format!("Bearer {token}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "userId": user, "basicId": "@123abcde", "displayName": "Omni Shop",
                "chatMode": "chat", "markAsReadMode": "manual"
            })))
            .mount(&line)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/v2/bot/info"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "Authentication failed. Confirm that the access token in the authorization header is valid."
        })))
        .mount(&line)
        .await;
    let api = HttpLineApi::new(&LineApiConfig {
        api_base: line.uri(),
        data_api_base: line.uri(),
        ..LineApiConfig::default()
    })
    .unwrap();
    let db = adapters.db.clone();
    let deps = admin::AdminDeps {
        accounts: adapters.accounts.clone(),
        secrets: adapters.secrets.clone(),
        line: Arc::new(api),
        config: Arc::new(SqliteConfigStore::new(db.clone()).unwrap()),
        workstreams: Arc::new(SqliteWorkstreamStore::new(db.clone()).unwrap()),
        agents: Arc::new(SqliteAgentStore::new(db.clone()).unwrap()),
        conversations: Arc::new(SqliteConversationStore::new(db.clone()).unwrap()),
        deliveries: Arc::new(SqliteDeliveryStore::new(db).unwrap()),
        media: Arc::new(FsObjectStore::new(dir.path().join("media"))),
    };
    let state = admin::AdminState::new(
        deps,
        omniline_domain::clock::system_clock(),
        SecretString::new(ADMIN_TOKEN),
        Some("https://omniline.example.com".into()),
    );
    Fixture {
        _dir: dir,
        adapters,
        line,
        app: admin::router(state.clone()),
        state,
    }
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => Body::from(v.to_string()),
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(
            request
                .header("content-type", "application/json")
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn new_account() -> Value {
    json!({"name": "Omni Shop JP", "channelId": "1656789012", "channelSecret": SECRET, "channelAccessToken": GOOD_TOKEN})
}

fn assert_no_secrets(v: &Value) {
    let text = v.to_string();
    for secret in [SECRET, GOOD_TOKEN, OTHER_TOKEN, ADMIN_TOKEN] {
        assert!(
            !text.contains(secret),
            "a secret leaked into a response: {text}"
        );
    }
}

#[tokio::test]
async fn every_route_requires_the_admin_token() {
    let f = fixture().await;
    for (m, uri) in [
        ("GET", "/admin/v1/accounts"),
        ("POST", "/admin/v1/accounts"),
        ("GET", "/admin/v1/accounts/x"),
        ("PATCH", "/admin/v1/accounts/x"),
        ("DELETE", "/admin/v1/accounts/x"),
        ("GET", "/admin/v1/accounts/x/webhook-stats"),
        ("GET", "/admin/v1/nothing-here"),
    ] {
        for token in [
            None,
            Some("wrong"),
            Some(""),
            Some("admin-test-token-but-longer"),
        ] {
            let (status, json) = call(&f.app, m, uri, token, Some(new_account())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {uri} {token:?}");
            assert_eq!(json["error"]["code"], "unauthorized");
        }
    }
    assert!(f.adapters.accounts.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn connecting_an_account_checks_the_token_and_keeps_credentials_in_the_secret_store() {
    let f = fixture().await;
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(new_account()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json["name"], "Omni Shop JP");
    assert_eq!(json["channelId"], "1656789012");
    assert_eq!(json["botUserId"], "Ubot1");
    assert_eq!(json["basicId"], "@123abcde");
    assert_eq!(
        json["callbackUrl"],
        format!("https://omniline.example.com/line/webhook/{id}")
    );
    assert!(json["createdAt"].as_str().unwrap().ends_with('Z'));
    assert!(json.get("webhook").is_none());
    assert_no_secrets(&json);

    let stored = f
        .adapters
        .secrets
        .get(&credentials_secret_name(&id))
        .await
        .unwrap()
        .unwrap();
    let credentials = ChannelCredentials::from_secret(&stored).unwrap();
    assert_eq!(credentials.channel_secret.expose(), SECRET);
    assert_eq!(credentials.channel_access_token.expose(), GOOD_TOKEN);

    let (status, one) = call(
        &f.app,
        "GET",
        &format!("/admin/v1/accounts/{id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], id.as_str());
    assert_no_secrets(&one);
    let (status, list) = call(&f.app, "GET", "/admin/v1/accounts", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["accounts"].as_array().unwrap().len(), 1);
    assert_no_secrets(&list);

    // The same LINE channel cannot be connected twice.
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(new_account()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json["error"]["field"], "channelAccessToken");
}

#[tokio::test]
async fn a_token_line_refuses_is_422_and_nothing_is_stored() {
    let f = fixture().await;
    let mut body = new_account();
    body["channelAccessToken"] = json!("revoked-token");
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json["error"]["field"], "channelAccessToken");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Authentication failed"));
    assert!(!json.to_string().contains("revoked-token"));
    assert!(f.adapters.accounts.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_input_is_400_naming_the_field() {
    let f = fixture().await;
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for field in ["name", "channelId", "channelSecret", "channelAccessToken"] {
        if field != "channelAccessToken" {
            // (Without a token the account uses stateless tokens: see its own test.)
            let mut missing = new_account();
            missing.as_object_mut().unwrap().remove(field);
            cases.push((missing, field));
        }
        let mut wrong_type = new_account();
        wrong_type[field] = json!(12);
        cases.push((wrong_type, field));
    }
    let mut v = new_account();
    v["channelSecret"] = json!("too-short");
    cases.push((v, "channelSecret"));
    let mut v = new_account();
    v["channelId"] = json!("abc");
    cases.push((v, "channelId"));
    let mut v = new_account();
    v["name"] = json!("   ");
    cases.push((v, "name"));
    let mut v = new_account();
    v["channelAccessToken"] = json!("has spaces in it");
    cases.push((v, "channelAccessToken"));
    let mut v = new_account();
    v["configureWebhook"] = json!("yes");
    cases.push((v, "configureWebhook"));
    let mut v = new_account();
    v["unexpected"] = json!(1);
    cases.push((v, "unexpected"));
    cases.push((json!([1, 2]), "body"));

    for (body, field) in cases {
        let (status, json) = call(
            &f.app,
            "POST",
            "/admin/v1/accounts",
            Some(ADMIN_TOKEN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"]["field"], field, "{body} -> {json}");
        assert!(json["error"]["message"].as_str().unwrap().len() > 5);
        assert!(!json.to_string().contains(SECRET) && !json.to_string().contains(GOOD_TOKEN));
    }

    // Not JSON at all.
    let response = f
        .app
        .clone()
        .oneshot(
            Request::post("/admin/v1/accounts")
                .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let f = fixture().await;
    for (m, uri) in [
        ("GET", "/admin/v1/accounts/nope"),
        ("PATCH", "/admin/v1/accounts/nope"),
        ("DELETE", "/admin/v1/accounts/nope"),
        ("GET", "/admin/v1/accounts/nope/webhook-stats"),
    ] {
        let (status, json) = call(
            &f.app,
            m,
            uri,
            Some(ADMIN_TOKEN),
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{m} {uri}");
        assert_eq!(json["error"]["code"], "not_found");
    }
}

async fn create(f: &Fixture) -> String {
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(new_account()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    json["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn patch_renames_and_rotates_rechecking_the_token() {
    let f = fixture().await;
    let id = create(&f).await;
    let uri = format!("/admin/v1/accounts/{id}");

    let new_secret = "ffffffffffffffffffffffffffffffff";
    let (status, json) = call(
        &f.app,
        "PATCH",
        &uri,
        Some(ADMIN_TOKEN),
        Some(json!({"name": "Renamed", "channelSecret": new_secret})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["name"], "Renamed");
    assert!(!json.to_string().contains(new_secret));
    let stored = f
        .adapters
        .secrets
        .get(&credentials_secret_name(&id))
        .await
        .unwrap()
        .unwrap();
    let credentials = ChannelCredentials::from_secret(&stored).unwrap();
    assert_eq!(credentials.channel_secret.expose(), new_secret);
    assert_eq!(credentials.channel_access_token.expose(), GOOD_TOKEN);

    // A token of another bot is refused; a refused token is refused; nothing changes.
    for token in [OTHER_TOKEN, "revoked"] {
        let (status, json) = call(
            &f.app,
            "PATCH",
            &uri,
            Some(ADMIN_TOKEN),
            Some(json!({"channelAccessToken": token})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
        assert_eq!(json["error"]["field"], "channelAccessToken");
    }
    let stored = f
        .adapters
        .secrets
        .get(&credentials_secret_name(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ChannelCredentials::from_secret(&stored)
            .unwrap()
            .channel_access_token
            .expose(),
        GOOD_TOKEN
    );

    let (status, json) = call(
        &f.app,
        "PATCH",
        &uri,
        Some(ADMIN_TOKEN),
        Some(json!({"channelId": "1"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"]["field"], "channelId");
}

#[tokio::test]
async fn delete_removes_the_account_and_its_secret() {
    let f = fixture().await;
    let id = create(&f).await;
    let (status, _) = call(
        &f.app,
        "DELETE",
        &format!("/admin/v1/accounts/{id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(f
        .adapters
        .secrets
        .get(&credentials_secret_name(&id))
        .await
        .unwrap()
        .is_none());
    let (status, _) = call(
        &f.app,
        "GET",
        &format!("/admin/v1/accounts/{id}"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A deletion with `purge=true` records a job (202) that the schedule runs, one per account:
/// the workstream's deletion and then the account's return the same job; the account cannot have
/// a workstream again while it is unfinished; its status route reads it; unknown ids are 404.
#[tokio::test]
async fn a_purge_is_a_background_job_with_a_status_route() {
    let f = fixture().await;
    let account = create(&f).await;
    let (status, queue) = call(
        &f.app,
        "POST",
        "/admin/v1/queues",
        Some(ADMIN_TOKEN),
        Some(json!({"name": "General"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    let workstream = json!({"name": "Support", "accountId": account, "language": "ja",
                            "defaultQueueId": queue["id"]});
    let (status, ws) = call(
        &f.app,
        "POST",
        "/admin/v1/workstreams",
        Some(ADMIN_TOKEN),
        Some(workstream.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ws}");

    let (status, accepted) = call(
        &f.app,
        "DELETE",
        &format!(
            "/admin/v1/workstreams/{}?purge=true",
            ws["id"].as_str().unwrap()
        ),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["purgeJob"].clone();
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["accountId"], account.as_str());
    assert_eq!(
        (&job["kind"], &job["status"], &job["stage"]),
        (
            &json!("accountPurge"),
            &json!("pending"),
            &json!("deliveries")
        )
    );
    assert_eq!(
        job["counts"],
        json!({"deliveries": 0, "conversations": 0, "customers": 0, "contacts": 0, "media": 0})
    );
    assert_eq!(job["pages"], 0);
    assert!(job.get("cursors").is_none(), "{job}");
    let route = format!("/admin/v1/jobs/{id}");
    let (status, read) = call(&f.app, "GET", &route, Some(ADMIN_TOKEN), None).await;
    assert_eq!((status, &read), (StatusCode::OK, &job));
    let (status, _) = call(&f.app, "GET", &route, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // No new workstream for the account while its data is being purged.
    let (status, refused) = call(
        &f.app,
        "POST",
        "/admin/v1/workstreams",
        Some(ADMIN_TOKEN),
        Some(workstream.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["code"], "purge_in_progress");
    assert_eq!(refused["error"]["field"], "accountId");

    // The account's deletion with purge finds the unfinished job.
    let (status, again) = call(
        &f.app,
        "DELETE",
        &format!("/admin/v1/accounts/{account}?purge=true"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(again["purgeJob"]["id"], id.as_str());

    // The schedule runs it: a page per stage here (the embedded stores purge in one page).
    let run = f
        .state
        .service
        .run_jobs(omniline_app::jobs::JobBudget {
            pages: 100,
            millis: i64::MAX,
        })
        .await
        .unwrap();
    assert_eq!((run.pages, run.finished), (4, 1));
    let (status, done) = call(&f.app, "GET", &route, Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&done["status"], &done["stage"], &done["pages"]),
        (&json!("done"), &json!("finished"), &json!(4))
    );
    assert_eq!(done["createdAt"], job["createdAt"]);

    for unknown in ["0123456789abcdef0123456789abcdef", "not-a-job-id"] {
        let (status, body) = call(
            &f.app,
            "GET",
            &format!("/admin/v1/jobs/{unknown}"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(body["error"]["message"], "job not found");
    }
}

#[tokio::test]
async fn webhook_stats_start_at_zero() {
    let f = fixture().await;
    let id = create(&f).await;
    let (status, json) = call(
        &f.app,
        "GET",
        &format!("/admin/v1/accounts/{id}/webhook-stats"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json,
        json!({"received": 0, "queued": 0, "rejected": 0, "lastReceivedAt": null})
    );
}

#[tokio::test]
async fn configure_webhook_sets_the_endpoint_and_reports_lines_test() {
    let f = fixture().await;
    Mock::given(method("PUT"))
        .and(path("/v2/bot/channel/webhook/endpoint"))
        .and(header(
            "authorization",
            format!("Bearer {GOOD_TOKEN}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .expect(1)
        .mount(&f.line)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/bot/channel/webhook/test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": false, "timestamp": "2026-11-25T01:00:00.000Z", "statusCode": 401,
            "reason": "ERROR_STATUS_CODE", "detail": "401"
        })))
        .expect(1)
        .mount(&f.line)
        .await;
    let mut body = new_account();
    body["configureWebhook"] = json!(true);
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let callback = json["callbackUrl"].as_str().unwrap();
    assert_eq!(json["webhook"]["endpointSet"], true);
    assert_eq!(json["webhook"]["endpoint"], callback);
    assert_eq!(json["webhook"]["test"]["success"], false);
    assert_eq!(json["webhook"]["test"]["statusCode"], 401);
    let requests = f.line.received_requests().await.unwrap();
    let put = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .unwrap();
    let sent: Value = serde_json::from_slice(&put.body).unwrap();
    assert_eq!(sent, json!({"endpoint": callback}));
}

#[tokio::test]
async fn line_being_down_is_502_and_nothing_is_stored() {
    let f = fixture().await;
    f.line.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&f.line)
        .await;
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(new_account()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(json["error"]["code"], "line_unavailable");
    assert!(f.adapters.accounts.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_account_without_a_long_lived_token_is_checked_with_a_stateless_one() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v3/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "token_type": "Bearer", "access_token": GOOD_TOKEN, "expires_in": 900
        })))
        .expect(1)
        .mount(&f.line)
        .await;
    let mut body = new_account();
    body.as_object_mut().unwrap().remove("channelAccessToken");
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["botUserId"], "Ubot1");
    assert_no_secrets(&json);
    let id = json["id"].as_str().unwrap();
    let stored = f
        .adapters
        .secrets
        .get(&credentials_secret_name(id))
        .await
        .unwrap()
        .unwrap();
    let credentials = ChannelCredentials::from_secret(&stored).unwrap();
    assert_eq!(
        credentials.channel_access_token.expose(),
        "",
        "no long-lived token is kept"
    );
    let requests = f.line.received_requests().await.unwrap();
    let form = requests
        .iter()
        .find(|r| r.url.path() == "/oauth2/v3/token")
        .unwrap();
    let form = String::from_utf8(form.body.clone()).unwrap();
    assert!(
        form.contains("client_id=1656789012") && form.contains(&format!("client_secret={SECRET}"))
    );
}

#[tokio::test]
async fn channel_credentials_line_refuses_are_422() {
    let f = fixture().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v3/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_client", "error_description": "invalid client_id or client_secret"
        })))
        .mount(&f.line)
        .await;
    let mut body = new_account();
    body.as_object_mut().unwrap().remove("channelAccessToken");
    let (status, json) = call(
        &f.app,
        "POST",
        "/admin/v1/accounts",
        Some(ADMIN_TOKEN),
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(json["error"]["field"], "channelSecret");
    assert!(!json.to_string().contains(SECRET));
    assert!(f.adapters.accounts.list().await.unwrap().is_empty());
}
