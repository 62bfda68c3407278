//! Sign-in with OpenID Connect, over HTTP against `omniline-local` with an issuer served by
//! wiremock (discovery document and JWKS) and ID tokens signed with the test key: agents are
//! found by their email, admins by their group; agent and admin tokens keep working.

mod common;

use common::{start_with, Stack, ADMIN};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

include!("../../shared/domain/tests/fixtures/oidc_signer.rs");

const CLIENT: &str = "console-client";

struct Issuer {
    server: MockServer,
    signer: TestSigner,
}

impl Issuer {
    async fn start() -> Self {
        let server = MockServer::start().await;
        let signer = TestSigner::from_pkcs8_base64(include_str!(
            "../../shared/domain/tests/fixtures/oidc-test-key.pk8.b64"
        ));
        let uri = server.uri();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": uri, "jwks_uri": format!("{uri}/jwks"),
                "authorization_endpoint": format!("{uri}/authorize"),
                "token_endpoint": format!("{uri}/token"),
            })))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"keys": [signer.jwk("k1")]})),
            )
            .mount(&server)
            .await;
        Self { server, signer }
    }

    /// The token endpoint: `code` becomes an ID token for `email`; any other code is refused.
    async fn issue_for_code(&self, code: &str, email: &str) {
        use wiremock::matchers::body_string_contains;
        let id_token = self.token(email, &["agent"], |_| {});
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains(format!("code={code}").as_str()))
            .and(body_string_contains("grant_type=authorization_code"))
            .and(body_string_contains(format!("client_id={CLIENT}").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id_token": id_token, "access_token": "opaque", "token_type": "Bearer", "expires_in": 3600
            })))
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(
                ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
            )
            .with_priority(10)
            .mount(&self.server)
            .await;
    }

    /// An ID token for `email` in `groups`, with `change` applied to the claims.
    fn token(&self, email: &str, groups: &[&str], change: impl FnOnce(&mut Value)) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut claims = json!({
            "iss": self.server.uri(), "aud": CLIENT, "sub": format!("sub-{email}"),
            "email": email, "email_verified": true, "iat": now, "exp": now + 3600,
            "cognito:groups": groups,
        });
        change(&mut claims);
        self.signer
            .sign(&json!({"alg": "RS256", "kid": "k1", "typ": "JWT"}), &claims)
    }
}

async fn get(s: &Stack, route: &str, bearer: &str) -> (u16, Value) {
    let response = s
        .client
        .get(format!("{}{route}", s.base))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        assert!(body["error"]["code"].is_string(), "error shape: {body}");
    }
    (status, body)
}

/// What `GET /console/config.json` tells the page about signing in.
async fn console_config(s: &Stack) -> Value {
    s.client
        .get(format!("{}/console/config.json", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stack(issuer: &Issuer) -> Stack {
    start_with(&[
        ("OIDC_ISSUER", issuer.server.uri().as_str()),
        ("OIDC_CLIENT_ID", CLIENT),
    ])
    .await
}

#[tokio::test]
async fn agents_sign_in_by_email_and_admins_by_group() {
    let issuer = Issuer::start().await;
    let s = stack(&issuer).await;
    let queue = s.queue("Support").await;
    let agent = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "Aiko", "email": "Aiko@Example.com", "queueIds": [queue], "capacity": 2})),
        )
        .await;
    let agent_id = agent["id"].as_str().unwrap();

    // The person whose email the agent has is that agent (case does not matter).
    let aiko = issuer.token("aiko@example.COM", &["agent"], |_| {});
    let (status, me) = get(&s, "/agent/v1/me", &aiko).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], agent_id);
    assert_eq!(me["signIn"]["method"], "oidc");
    assert_eq!(me["signIn"]["email"], "aiko@example.com");
    assert_eq!(me["signIn"]["roles"], json!(["agent"]));
    // The agent token keeps working, and says so.
    let (status, me) = get(&s, "/agent/v1/me", agent["token"].as_str().unwrap()).await;
    assert_eq!(
        (status, me["signIn"]["method"].as_str()),
        (200, Some("token"))
    );

    // Supervisors by group: the overview for the supervisor and admin groups, 403 for an agent
    // (by ID token or agent token).
    for (groups, status) in [
        (&["agent", "supervisor"][..], 200),
        (&["admin"][..], 200),
        (&["agent"][..], 403),
    ] {
        let token = issuer.token("aiko@example.com", groups, |_| {});
        let (got, body) = get(&s, "/agent/v1/supervisor/overview", &token).await;
        assert_eq!(got, status, "{groups:?}: {body}");
    }
    let (got, body) = get(
        &s,
        "/agent/v1/supervisor/overview",
        agent["token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Signed in, but no agent has the address: 403 naming why.
    let (status, body) = get(
        &s,
        "/agent/v1/me",
        &issuer.token("nobody@example.com", &["agent"], |_| {}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("no_agent"))
    );

    // Refused tokens: 401 naming why.
    let refused = [
        (
            issuer.token("aiko@example.com", &[], |c| c["aud"] = json!("another-app")),
            "another client",
        ),
        (
            issuer.token("aiko@example.com", &[], |c| {
                c["exp"] = json!(1_000_000_000);
                c["iat"] = json!(999_000_000);
            }),
            "expired",
        ),
        (
            issuer.token("aiko@example.com", &[], |c| {
                c["iss"] = json!("https://evil.example")
            }),
            "another issuer",
        ),
        (
            issuer.token("aiko@example.com", &[], |c| {
                c["email_verified"] = json!(false)
            }),
            "not verified",
        ),
    ];
    for (token, why) in refused {
        let (status, body) = get(&s, "/agent/v1/me", &token).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    // A token whose claims were changed after signing.
    let genuine = issuer.token("nobody@example.com", &["admin"], |_| {});
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged_claims = issuer.token("aiko@example.com", &["admin"], |_| {});
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        forged_claims.split('.').nth(1).unwrap(),
        parts[2]
    );
    let (status, body) = get(&s, "/agent/v1/me", &forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("signature"));

    // The admin API: a person in the admin group may; one who is not, 403; the token still may.
    let boss = issuer.token("boss@example.com", &["admin"], |_| {});
    let (status, agents) = get(&s, "/admin/v1/agents", &boss).await;
    assert_eq!(status, 200, "{agents}");
    let (status, body) = get(&s, "/admin/v1/agents", &aiko).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_admin"))
    );
    let (status, _) = get(&s, "/admin/v1/agents", ADMIN).await;
    assert_eq!(status, 200);
    // An admin signed in with OIDC changes the agent's address: the old one signs in no one.
    let response = s
        .client
        .patch(format!("{}/admin/v1/agents/{agent_id}", s.base))
        .bearer_auth(&boss)
        .json(&json!({"email": "aiko@shop.example"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (status, _) = get(&s, "/agent/v1/me", &aiko).await;
    assert_eq!(status, 403, "the old address names no agent now");
    let (status, me) = get(
        &s,
        "/agent/v1/me",
        &issuer.token("aiko@shop.example", &[], |_| {}),
    )
    .await;
    assert_eq!((status, me["id"].as_str()), (200, Some(agent_id)));
}

#[tokio::test]
async fn each_email_address_names_one_agent() {
    let issuer = Issuer::start().await;
    let s = stack(&issuer).await;
    let queue = s.queue("Support").await;
    let body = |name: &str, email: &str| json!({"name": name, "email": email, "queueIds": [queue], "capacity": 1});
    let first = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(body("Ken", "ken@example.com")),
        )
        .await;
    let (status, error) = s
        .call(
            "POST",
            "/admin/v1/agents",
            Some(body("Ken 2", "KEN@example.com")),
        )
        .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "email_taken");
    assert_eq!(error["error"]["field"], "email");
    let other = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(body("Mai", "mai@example.com")),
        )
        .await;
    let (status, _) = s
        .call(
            "PATCH",
            &format!("/admin/v1/agents/{}", other["id"].as_str().unwrap()),
            Some(json!({"email": "ken@example.com"})),
        )
        .await;
    assert_eq!(status, 409, "an edit cannot take another agent's address");
    // Once the agent is deleted, its address is free again, and signs in no one meanwhile.
    s.ok(
        "DELETE",
        &format!("/admin/v1/agents/{}", first["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, _) = get(
        &s,
        "/agent/v1/me",
        &issuer.token("ken@example.com", &[], |_| {}),
    )
    .await;
    assert_eq!(status, 403);
    let again = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(body("Ken", "ken@example.com")),
        )
        .await;
    let (status, me) = get(
        &s,
        "/agent/v1/me",
        &issuer.token("ken@example.com", &[], |_| {}),
    )
    .await;
    assert_eq!((status, &me["id"]), (200, &again["id"]));
}

#[tokio::test]
async fn an_unreachable_issuer_is_503_and_the_agent_token_still_works() {
    let issuer = Issuer::start().await;
    // Configured with an issuer nobody serves (a closed loopback port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = start_with(&[("OIDC_ISSUER", dead.as_str()), ("OIDC_CLIENT_ID", CLIENT)]).await;
    let queue = s.queue("Support").await;
    let (_, token) = common::new_agent(&s, "Olga", &[&queue]).await;
    let (status, body) = get(
        &s,
        "/agent/v1/me",
        &issuer.token("olga@example.com", &[], |_| {}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("identity_provider_unavailable"))
    );
    let (status, _) = get(&s, "/agent/v1/me", &token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_console_signs_in_with_the_issuers_code_flow() {
    let issuer = Issuer::start().await;
    issuer.issue_for_code("code-123", "aiko@example.com").await;
    let s = stack(&issuer).await;
    let queue = s.queue("Support").await;
    let agent = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "Aiko", "email": "aiko@example.com", "queueIds": [queue], "capacity": 2})),
        )
        .await;
    // The page learns where to send the person.
    let config = console_config(&s).await;
    assert_eq!(config["signIn"], "oidc");
    assert_eq!(config["available"], true);
    assert_eq!(
        config["authorizationEndpoint"],
        format!("{}/authorize", issuer.server.uri())
    );
    assert_eq!(config["clientId"], CLIENT);
    // The code the issuer sent the browser back with becomes the person's ID token.
    let exchange = |code: &str, verifier: &str, redirect: &str| {
        s.client
            .post(format!("{}/console/oidc/token", s.base))
            .json(&json!({"code": code, "codeVerifier": verifier, "redirectUri": redirect}))
            .send()
    };
    let verifier = "v".repeat(43);
    let redirect = format!("{}/console/", s.base);
    let answer = exchange("code-123", &verifier, &redirect).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["email"], "aiko@example.com");
    let id_token = answer["idToken"].as_str().unwrap();
    let (status, me) = get(&s, "/agent/v1/me", id_token).await;
    assert_eq!((status, &me["id"]), (200, &agent["id"]));
    // A code the issuer refuses; fields that cannot be right.
    let refused = exchange("code-used", &verifier, &redirect).await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "code_refused", "{body}");
    for (code, verifier, redirect, field) in [
        ("", "v".repeat(43), redirect.clone(), "code"),
        ("c", "short".to_owned(), redirect.clone(), "codeVerifier"),
        (
            "c",
            "v".repeat(43),
            "https://evil.example/".to_owned(),
            "redirectUri",
        ),
    ] {
        let answer = exchange(code, &verifier, &redirect).await.unwrap();
        assert_eq!(answer.status(), 400);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

#[tokio::test]
async fn without_an_issuer_the_console_signs_in_with_agent_tokens_only() {
    let s = common::start().await;
    let config = console_config(&s).await;
    assert_eq!(config, json!({"signIn": "token"}));
    let answer = s
        .client
        .post(format!("{}/console/oidc/token", s.base))
        .json(&json!({"code": "c", "codeVerifier": "v".repeat(43), "redirectUri": format!("{}/console/", s.base)}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
}
