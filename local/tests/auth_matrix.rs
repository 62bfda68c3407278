//! Issue 7/8 proof, through HTTP against the `omniline-local` binary (LINE mocked): every admin and
//! agent route without a token, with a wrong or malformed one, with the other API's token, with a
//! deleted agent's or a rotated-out token answers 401 with the JSON error body; every agent route
//! scoped to a conversation answers 403 to a valid agent outside that conversation's queue; and no
//! answer carries the admin token, an agent token or a channel secret.
//!
//! The operations come from the two OpenAPI documents, `docs/openapi.yaml` (admin) and
//! `docs/agent-api.yaml` (agent): a route added to a document is exercised without touching this
//! file, or the test fails naming the table row it needs. The tables here only give path-parameter
//! values (real ids of seeded objects), valid request bodies and the status an agent outside the
//! conversation's queue gets. A second test checks that the documents list exactly the routes the
//! admin and agent routers declare.
//!
//! Scopes: the admin API has ONE global admin token (`ADMIN_TOKEN`), with no per-account admin
//! scope, so there is no "another account's admin" to try: on admin routes every credential but
//! that token (an agent's, a deleted or rotated agent's, garbage) is 401. Agents are scoped per
//! queue: an agent sees the conversations of its queues and those assigned to it, anything else is
//! 403 (an unknown id 404); routes about the agent itself (`/me`, presence, notifications, the
//! conversation list, media) answer with the caller's own data, which must not mention a
//! conversation outside its queues; contacts belong to an account and are seen by the agents whose
//! queues serve it (the outsider serves a second account, and finds only its own contact).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use serde_yaml::Value as Yaml;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

// ------------------------------------------------------------------------------------------------
// The OpenAPI documents
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Api {
    Admin,
    Agent,
}

impl Api {
    fn document(self) -> &'static str {
        match self {
            Api::Admin => "docs/openapi.yaml",
            Api::Agent => "docs/agent-api.yaml",
        }
    }
}

/// What an operation's request body is, per its document.
#[derive(Debug, Clone)]
enum DocBody {
    Json { example: Option<Value> },
    Binary { content_type: String },
}

/// One operation (method + path) of a document.
#[derive(Debug, Clone)]
struct Operation {
    api: Api,
    method: String,
    path: String,
    /// Needs a credential: the operation's `security`, else the document's, is a non-empty list
    /// of non-empty requirements (`security: []` or an `{}` alternative make it public).
    secured: bool,
    /// A supervisors' route (security `supervisor`): the admin token is its valid credential,
    /// an agent token a 403.
    supervisor: bool,
    required_query: Vec<String>,
    body: Option<DocBody>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// In the order a path's operations are exercised: a DELETE after the others, since it may
/// remove what they act on (an agent's own contact).
const METHODS: [&str; 8] = [
    "get", "put", "post", "patch", "delete", "head", "options", "trace",
];

fn read_document(api: Api) -> Yaml {
    let file = format!("{}/../{}", env!("CARGO_MANIFEST_DIR"), api.document());
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Follows a local `$ref` (`#/components/parameters/Id`).
fn resolve<'a>(doc: &'a Yaml, node: &'a Yaml) -> &'a Yaml {
    let Some(reference) = node.get("$ref").and_then(Yaml::as_str) else {
        return node;
    };
    let pointer = reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
    let target = pointer.split('/').fold(doc, |at, key| &at[key]);
    assert!(!target.is_null(), "unresolved $ref {reference}");
    resolve(doc, target)
}

fn is_secured(security: &Yaml) -> bool {
    security.as_sequence().is_some_and(|alternatives| {
        !alternatives.is_empty()
            && alternatives
                .iter()
                .all(|r| r.as_mapping().is_some_and(|m| !m.is_empty()))
    })
}

fn operations(api: Api) -> Vec<Operation> {
    let doc = read_document(api);
    let root_security = doc.get("security").cloned().unwrap_or(Yaml::Null);
    let paths = doc["paths"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{}: no paths", api.document()));
    let mut out = Vec::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings").to_owned();
        let shared: Vec<Yaml> = item["parameters"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for method in METHODS {
            let Some(op) = item.get(method) else {
                continue;
            };
            let security = op.get("security").unwrap_or(&root_security);
            let own: Vec<Yaml> = op["parameters"].as_sequence().cloned().unwrap_or_default();
            let required_query = shared
                .iter()
                .chain(own.iter())
                .map(|p| resolve(&doc, p))
                .filter(|p| {
                    p["in"].as_str() == Some("query") && p["required"].as_bool() == Some(true)
                })
                .map(|p| p["name"].as_str().expect("parameter name").to_owned())
                .collect();
            let body = op.get("requestBody").map(|b| {
                let content = resolve(&doc, b)["content"]
                    .as_mapping()
                    .unwrap_or_else(|| panic!("{method} {path}: requestBody without content"));
                match content.get("application/json") {
                    Some(json_body) => DocBody::Json {
                        example: json_body
                            .get("example")
                            .map(|e| serde_json::to_value(e).expect("example as JSON")),
                    },
                    None => DocBody::Binary {
                        content_type: content
                            .keys()
                            .next()
                            .and_then(Yaml::as_str)
                            .expect("a media type")
                            .to_owned(),
                    },
                }
            });
            out.push(Operation {
                api,
                method: method.to_uppercase(),
                path: path.clone(),
                secured: is_secured(security),
                supervisor: security.as_sequence().is_some_and(|alternatives| {
                    alternatives
                        .iter()
                        .any(|r| r.as_mapping().is_some_and(|m| m.contains_key("supervisor")))
                }),
                required_query,
                body,
            });
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// The documents against the code
// ------------------------------------------------------------------------------------------------

/// `/a/{x}/b/{rule_id}` → `/a/{}/b/{}`.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The (METHOD, path) pairs a router function declares with `.route("…", get(…).post(…))`.
fn code_routes(source_file: &str) -> BTreeSet<(String, String)> {
    let file = format!("{}/../{source_file}", env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = source
        .find("pub fn router(")
        .unwrap_or_else(|| panic!("{file}: no `pub fn router(`"));
    let end = start + source[start..].find("\n}\n").expect("end of fn router");
    let body = &source[start..end];
    let mut routes = BTreeSet::new();
    for chunk in body.split(".route(").skip(1) {
        let literal = chunk.split('"').nth(1).expect("a route path literal");
        let mut found = false;
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            let mut from = 0;
            while let Some(at) = chunk[from..].find(&call) {
                let at = from + at;
                let before = chunk[..at].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    routes.insert((method.to_uppercase(), normalize(literal)));
                    found = true;
                }
                from = at + call.len();
            }
        }
        assert!(found, "{file}: no method for route {literal}");
    }
    routes
}

#[test]
fn the_documents_list_exactly_the_routes_the_code_serves() {
    for (api, source) in [
        (Api::Admin, "functions/admin/src/lib.rs"),
        (Api::Agent, "functions/agent/src/lib.rs"),
    ] {
        let code = code_routes(source);
        let documented: BTreeSet<(String, String)> = operations(api)
            .iter()
            .map(|op| (op.method.clone(), normalize(&op.path)))
            .collect();
        let undocumented: Vec<_> = code.difference(&documented).collect();
        let not_served: Vec<_> = documented.difference(&code).collect();
        assert!(
            undocumented.is_empty() && not_served.is_empty(),
            "{}: served by {source} but not documented: {undocumented:?}; documented but not served: {not_served:?}",
            api.document()
        );
    }
}

// ------------------------------------------------------------------------------------------------
// The seeded stack and the tables
// ------------------------------------------------------------------------------------------------

struct AgentKey {
    id: String,
    token: String,
}

/// Real objects: two queues, one conversation routed to queue 1 and held by `agent`, an
/// `outsider` in queue 2, a deleted agent and a rotated one (both from queue 1).
struct Fixture {
    account: String,
    queue1: String,
    queue2: String,
    workstream: String,
    rule: String,
    user_id: String,
    customer: String,
    conversation: String,
    contact: String,
    /// A contact of the second account, served by the outsider's queue only.
    outsider_contact: String,
    agent: AgentKey,
    outsider: AgentKey,
    deleted: AgentKey,
    rotated_old: String,
    rotated_new: String,
}

/// A path parameter's value, by the API and the path segment before it, and what an agent
/// outside the conversation's queue gets on a route that has it (`None`: no agent scope).
struct ParamRow {
    api: Api,
    after: &'static str,
    value: String,
    outsider_status: Option<u16>,
}

fn param_table(f: &Fixture) -> Vec<ParamRow> {
    let row = |api, after, value: &str, outsider_status| ParamRow {
        api,
        after,
        value: value.to_owned(),
        outsider_status,
    };
    vec![
        // Admin: one global token, no scope below it.
        row(Api::Admin, "accounts", &f.account, None),
        row(Api::Admin, "queues", &f.queue1, None),
        row(Api::Admin, "agents", &f.agent.id, None),
        row(Api::Admin, "workstreams", &f.workstream, None),
        row(Api::Admin, "rules", &f.rule, None),
        row(Api::Admin, "customers", &f.customer, None),
        // No purge has run: a well-formed job id that names none (404 with the token).
        row(Api::Admin, "jobs", "0123456789abcdef0123456789abcdef", None),
        // No quick reply exists: a well-formed id that names none (404 with the token).
        row(
            Api::Admin,
            "quick-replies",
            "0123456789abcdef0123456789abcdef",
            None,
        ),
        // No template exists: a well-formed id that names none (404 with the token).
        row(
            Api::Admin,
            "message-templates",
            "0123456789abcdef0123456789abcdef",
            None,
        ),
        // Agent: a conversation of queue 1, so 403 for the agent of queue 2.
        row(Api::Agent, "conversations", &f.conversation, Some(403)),
        // A customer of the account whose workstream routes to queue 1: writing first is 403
        // for the agent of queue 2.
        row(Api::Agent, "customers", &f.customer, Some(403)),
        // The outsider's own contact (another account): 404 for the agent of queue 1.
        row(Api::Agent, "contacts", &f.outsider_contact, None),
        // The public account-link page (`security: []`): an unknown request id.
        row(Api::Agent, "link", "authmatrix-unknown-link", None),
    ]
}

/// A required query parameter's value.
fn query_value(f: &Fixture, name: &str) -> String {
    match name {
        "userId" => f.user_id.clone(),
        // Search: any word.
        "q" => "refund".to_owned(),
        other => {
            panic!("no value for the required query parameter {other:?}: add it to query_value")
        }
    }
}

/// A request body the route accepts, so that only the credential (or the scope) can refuse it.
#[derive(Debug, Clone)]
enum RequestBody {
    Json(Value),
    Bytes {
        content_type: Option<String>,
        bytes: Vec<u8>,
    },
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

fn valid_body(f: &Fixture, op: &Operation) -> Option<RequestBody> {
    let table = match (op.method.as_str(), op.path.as_str()) {
        ("PUT", "/agent/v1/presence") => Some(json!({"status": "away"})),
        ("POST", "/agent/v1/contacts") => Some(json!({"name": "Outsider's contact"})),
        ("POST", "/agent/v1/conversations/{id}/messages") => {
            Some(json!({"type": "text", "text": "auth matrix"}))
        }
        ("POST", "/agent/v1/conversations/{id}/transfer") => Some(json!({"queueId": f.queue2})),
        ("POST", "/agent/v1/conversations/{id}/link")
        | ("POST", "/agent/v1/conversations/{id}/link-request") => {
            Some(json!({"contactId": f.contact}))
        }
        _ => None,
    };
    match (&op.body, table) {
        (None, _) => None,
        (Some(DocBody::Json { .. }), Some(v)) => Some(RequestBody::Json(v)),
        (Some(DocBody::Json { example }), None) => Some(RequestBody::Json(
            example.clone().unwrap_or_else(|| json!({})),
        )),
        (Some(DocBody::Binary { content_type }), _) => Some(RequestBody::Bytes {
            content_type: Some(content_type.clone()),
            bytes: PNG.to_vec(),
        }),
    }
}

/// A body every route refuses without side effects (unknown field, or no media type).
fn probe_body(op: &Operation) -> Option<RequestBody> {
    match &op.body {
        None => None,
        Some(DocBody::Json { .. }) => Some(RequestBody::Json(json!({"authMatrixProbe": true}))),
        Some(DocBody::Binary { .. }) => Some(RequestBody::Bytes {
            content_type: None,
            bytes: Vec::new(),
        }),
    }
}

// ------------------------------------------------------------------------------------------------
// The cases
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 401, JSON error body with `error.code` "unauthorized".
    Unauthorized,
    /// 403, JSON error body with `error.code` "forbidden".
    Forbidden,
    /// 2xx with the caller's own data: nothing of the conversation outside its queues.
    OwnDataOnly,
    /// The right credential with dummy ids and a refused body: the route exists, so the 401s
    /// above come from the credential (not from an unknown path): not 401/403/405, not the
    /// "no such route" 404, not 5xx.
    RouteServed,
    /// A public route (`security: []`) answers without a credential (not 401, not 5xx).
    Public,
}

struct Case {
    name: &'static str,
    authorization: Option<String>,
    expect: Expect,
}

/// Base64 (standard alphabet, padded), for the `Basic` header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The credential cases every secured operation of `api` gets (a supervisors' route: the
/// admin token is the valid credential, and a valid agent token is a 403).
fn cases(api: Api, supervisor: bool, f: &Fixture) -> Vec<Case> {
    let valid = match api {
        Api::Admin => ADMIN.to_owned(),
        Api::Agent if supervisor => ADMIN.to_owned(),
        Api::Agent => f.agent.token.clone(),
    };
    let random = f.agent.token.rsplit('_').next().unwrap().to_owned();
    let case = |name, authorization: Option<String>| Case {
        name,
        authorization,
        expect: Expect::Unauthorized,
    };
    let mut cases = vec![
        case("no Authorization header", None),
        case("Bearer <garbage>", Some("Bearer not-a-valid-token".into())),
        case(
            "Bearer <forged agent-shaped token>",
            Some(format!("Bearer oma_{}_{}", f.agent.id, "0".repeat(64))),
        ),
        case(
            "Bearer <agent's secret under another agent's id>",
            Some(format!("Bearer oma_{}_{random}", f.outsider.id)),
        ),
        case(
            "Basic <the valid token as password>",
            Some(format!(
                "Basic {}",
                base64(format!("user:{valid}").as_bytes())
            )),
        ),
        case("Bearer with nothing", Some("Bearer".into())),
        case("Bearer and a space", Some("Bearer ".into())),
        case("the valid token without a scheme", Some(valid.clone())),
        case(
            "Bearer <valid token + one character>",
            Some(format!("Bearer {valid}0")),
        ),
        case(
            "Bearer <valid token - last character>",
            Some(format!("Bearer {}", &valid[..valid.len() - 1])),
        ),
        case(
            "Bearer <deleted agent's token>",
            Some(format!("Bearer {}", f.deleted.token)),
        ),
        case(
            "Bearer <rotated agent's old token>",
            Some(format!("Bearer {}", f.rotated_old)),
        ),
    ];
    match api {
        Api::Admin => {
            cases.push(case(
                "Bearer <a valid agent token> on an admin route",
                Some(format!("Bearer {}", f.agent.token)),
            ));
            cases.push(case(
                "Bearer <a rotated agent's new token> on an admin route",
                Some(format!("Bearer {}", f.rotated_new)),
            ));
        }
        Api::Agent if supervisor => {
            cases.push(Case {
                name: "Bearer <a valid agent token> on a supervisor route",
                authorization: Some(format!("Bearer {}", f.agent.token)),
                expect: Expect::Forbidden,
            });
        }
        Api::Agent => {
            cases.push(case(
                "Bearer <admin token> on an agent route",
                Some(format!("Bearer {ADMIN}")),
            ));
            cases.push(Case {
                name: "Bearer <agent outside the conversation's queue>",
                authorization: Some(format!("Bearer {}", f.outsider.token)),
                // Replaced per operation by the table's outsider status.
                expect: Expect::OwnDataOnly,
            });
        }
    }
    cases.push(Case {
        name: "route probe: valid token, dummy ids, refused body",
        authorization: Some(format!("Bearer {valid}")),
        expect: Expect::RouteServed,
    });
    cases
}

// ------------------------------------------------------------------------------------------------
// Calls
// ------------------------------------------------------------------------------------------------

struct Answer {
    status: u16,
    text: String,
    json: Value,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    route: &str,
    authorization: Option<&str>,
    body: Option<&RequestBody>,
) -> Answer {
    let mut request = client.request(
        Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{base}{route}"),
    );
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    match body {
        Some(RequestBody::Json(v)) => request = request.json(v),
        Some(RequestBody::Bytes {
            content_type,
            bytes,
        }) => {
            if let Some(ct) = content_type {
                request = request.header("content-type", ct.as_str());
            }
            request = request.body(bytes.clone());
        }
        None => {}
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {route}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, text, json }
}

/// A seeding call that must succeed.
async fn must(s: &Stack, token: &str, method: &str, route: &str, body: Option<Value>) -> Value {
    let body = body.map(RequestBody::Json);
    let a = send(
        &s.client,
        &s.base,
        method,
        route,
        Some(&format!("Bearer {token}")),
        body.as_ref(),
    )
    .await;
    assert!(
        (200..300).contains(&a.status),
        "seeding: {method} {route} → {} {}",
        a.status,
        a.text
    );
    a.json
}

async fn new_agent(s: &Stack, name: &str, queue: &str) -> AgentKey {
    let a = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(
                json!({"name": name, "email": format!("{}@example.com", name.to_lowercase()),
                        "queueIds": [queue], "capacity": 2}),
            ),
        )
        .await;
    AgentKey {
        id: a["id"].as_str().unwrap().to_owned(),
        token: a["token"].as_str().unwrap().to_owned(),
    }
}

async fn seed(s: &Stack) -> Fixture {
    let account = s.account("Shop", SECRET_A, "token-a").await;
    let queue1 = s.queue("Queue one").await;
    let queue2 = s.queue("Queue two").await;
    let workstream = s.workstream(&account, &queue1).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rule = s
        .ok(
            "POST",
            &format!("/admin/v1/workstreams/{workstream}/rules"),
            Some(json!({"name": "Refunds", "queueId": queue1,
                        "condition": {"field": "message.text", "op": "contains", "value": "refund"}})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent = new_agent(s, "Hanako", &queue1).await;
    let outsider = new_agent(s, "Olga", &queue2).await;
    let deleted = new_agent(s, "Deleted", &queue1).await;
    let rotated = new_agent(s, "Rotated", &queue1).await;

    // The conversation: a signed webhook, routed to queue 1 and assigned to the only available
    // agent there.
    must(
        s,
        &agent.token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let user_id = "Uauthmatrix0000000000000000000001".to_owned();
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01AUTHMATRIX1", &user_id, "a refund please")])
        )
        .await,
        200
    );
    let mut conversation = None;
    for _ in 0..200 {
        let listed = must(
            s,
            &agent.token,
            "GET",
            "/agent/v1/conversations?status=active",
            None,
        )
        .await;
        if let Some(id) = listed["conversations"][0]["id"].as_str() {
            assert_eq!(listed["conversations"][0]["queueId"], queue1.as_str());
            assert_eq!(listed["conversations"][0]["agentId"], agent.id.as_str());
            conversation = Some(id.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conversation = conversation.expect("the conversation was never assigned");
    let contact = must(
        s,
        &agent.token,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Suzuki Hana"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A second account whose conversations go to queue 2: the outsider's contacts live there.
    let second = s.account("Other shop", SECRET_B, "token-b").await;
    s.workstream(&second, &queue2).await;
    let outsider_contact = must(
        s,
        &outsider.token,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Olga's customer"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = must(s, &outsider.token, "GET", "/agent/v1/contacts", None).await;
    assert!(
        !listed.to_string().contains(&contact),
        "the outsider sees no contact of the first account: {listed}"
    );

    // Tokens that worked, then stop working: a deleted agent's, a rotated-out one.
    must(s, &deleted.token, "GET", "/agent/v1/me", None).await;
    s.ok("DELETE", &format!("/admin/v1/agents/{}", deleted.id), None)
        .await;
    must(s, &rotated.token, "GET", "/agent/v1/me", None).await;
    let rotated_new = s
        .ok(
            "POST",
            &format!("/admin/v1/agents/{}/token", rotated.id),
            None,
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(rotated_new, rotated.token);
    must(s, &rotated_new, "GET", "/agent/v1/me", None).await;

    Fixture {
        customer: format!("{account}:{user_id}"),
        account,
        queue1,
        queue2,
        workstream,
        rule,
        user_id,
        conversation,
        contact,
        outsider_contact,
        agent,
        outsider,
        deleted,
        rotated_old: rotated.token,
        rotated_new,
    }
}

/// The route with its path parameters (from `table`, or `dummy`) and required query parameters.
fn route_for(
    op: &Operation,
    f: &Fixture,
    table: &[ParamRow],
    dummy: bool,
) -> (String, Option<u16>) {
    let mut outsider_status = None;
    let mut previous = "";
    let mut segments = Vec::new();
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let row = table
                .iter()
                .find(|r| r.api == op.api && r.after == previous)
                .unwrap_or_else(|| {
                    panic!("{op}: no value for path parameter {{{name}}} after {previous:?}: add a row to param_table")
                });
            outsider_status = outsider_status.or(row.outsider_status);
            segments.push(if dummy {
                format!("authmatrix-dummy-{name}")
            } else {
                row.value.clone()
            });
        } else {
            segments.push(segment.to_owned());
        }
        previous = segment;
    }
    let mut route = segments.join("/");
    for (i, name) in op.required_query.iter().enumerate() {
        route.push(if i == 0 { '?' } else { '&' });
        route.push_str(&format!("{name}={}", query_value(f, name)));
    }
    (route, outsider_status)
}

// ------------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_route_refuses_missing_wrong_and_out_of_scope_credentials() {
    let s = start().await;
    let f = seed(&s).await;
    let table = param_table(&f);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let admin_ops = operations(Api::Admin);
    let agent_ops = operations(Api::Agent);
    assert!(!admin_ops.is_empty() && !agent_ops.is_empty());
    let secrets: Vec<(&str, &str)> = vec![
        ("the admin token", ADMIN),
        ("the channel secret", SECRET_A),
        ("the channel access token", "token-a"),
        ("an agent token", &f.agent.token),
        ("an agent token", &f.outsider.token),
        ("an agent token", &f.deleted.token),
        ("an agent token", &f.rotated_old),
        ("an agent token", &f.rotated_new),
    ];

    let mut failures: Vec<String> = Vec::new();
    let mut exercised: BTreeSet<(Api, String, String, String)> = BTreeSet::new();
    let mut expected: BTreeSet<(Api, String, String, String)> = BTreeSet::new();
    let mut checks = 0usize;

    for op in admin_ops.iter().chain(agent_ops.iter()) {
        let op_cases = if op.secured {
            cases(op.api, op.supervisor, &f)
        } else {
            vec![Case {
                name: "public: no Authorization header",
                authorization: None,
                expect: Expect::Public,
            }]
        };
        for case in op_cases {
            expected.insert((
                op.api,
                op.method.clone(),
                op.path.clone(),
                case.name.to_owned(),
            ));
            let probe = case.expect == Expect::RouteServed || case.expect == Expect::Public;
            let (route, outsider_status) = route_for(op, &f, &table, probe);
            let expect = match (case.expect, outsider_status) {
                (Expect::OwnDataOnly, Some(403)) => Expect::Forbidden,
                (Expect::OwnDataOnly, Some(other)) => panic!("unsupported outsider status {other}"),
                (e, _) => e,
            };
            let body = if probe {
                probe_body(op)
            } else {
                valid_body(&f, op)
            };
            let a = send(
                &client,
                &s.base,
                &op.method,
                &route,
                case.authorization.as_deref(),
                body.as_ref(),
            )
            .await;
            checks += 1;
            exercised.insert((
                op.api,
                op.method.clone(),
                op.path.clone(),
                case.name.to_owned(),
            ));

            let mut problems: Vec<String> = Vec::new();
            let code = a.json["error"]["code"].as_str();
            let error_shape_ok = code.is_some() && a.json["error"]["message"].is_string();
            match expect {
                Expect::Unauthorized => {
                    if a.status != 401 {
                        problems.push(format!("expected 401, got {}", a.status));
                    } else if !error_shape_ok || code != Some("unauthorized") {
                        problems.push(
                            "401 without the JSON error body (error.code \"unauthorized\")".into(),
                        );
                    }
                }
                Expect::Forbidden => {
                    if a.status != 403 {
                        problems.push(format!("expected 403, got {}", a.status));
                    } else if !error_shape_ok || code != Some("forbidden") {
                        problems.push(
                            "403 without the JSON error body (error.code \"forbidden\")".into(),
                        );
                    }
                }
                Expect::OwnDataOnly => {
                    if !(200..300).contains(&a.status) {
                        problems.push(format!(
                            "expected the caller's own data (2xx), got {}",
                            a.status
                        ));
                    }
                    for (what, needle) in [
                        ("conversation id", &f.conversation),
                        ("customer's user id", &f.user_id),
                    ] {
                        if a.text.contains(needle.as_str()) {
                            problems.push(format!(
                                "shows the {what} of a conversation outside its queues"
                            ));
                        }
                    }
                }
                Expect::RouteServed => {
                    let unknown_route = a.status == 404
                        && a.json["error"]["message"].as_str() == Some("no such route");
                    if matches!(a.status, 401 | 403 | 405) || unknown_route || a.status >= 500 {
                        problems.push(format!(
                            "the valid credential is not served by this route (dummy ids): {}",
                            a.status
                        ));
                    }
                }
                Expect::Public => {
                    if a.status == 401 || a.status >= 500 {
                        problems.push(format!(
                            "a public route answered {} without a token",
                            a.status
                        ));
                    }
                }
            }
            // The public account-link page answers customers with short text pages.
            let text_page = matches!(case.expect, Expect::Public);
            if a.status >= 400 && !error_shape_ok && !text_page {
                problems.push("an error without the JSON error body".into());
            }
            for (what, secret) in &secrets {
                if a.text.contains(secret) {
                    problems.push(format!("the body contains {what}"));
                }
            }
            for p in problems {
                failures.push(format!(
                    "({}, {} [{route}], {}): {p} — body: {}",
                    op.method,
                    op.path,
                    case.name,
                    a.text.chars().take(300).collect::<String>()
                ));
            }
        }
    }

    let missed: Vec<_> = expected.difference(&exercised).collect();
    assert!(
        missed.is_empty(),
        "operations × cases not exercised: {missed:#?}"
    );
    eprintln!(
        "auth matrix: {} admin + {} agent operations ({} secured), {checks} requests",
        admin_ops.len(),
        agent_ops.len(),
        admin_ops
            .iter()
            .chain(agent_ops.iter())
            .filter(|o| o.secured)
            .count()
    );
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing above changed the conversation: still active, still the agent's.
    let detail = must(
        &s,
        &f.agent.token,
        "GET",
        &format!("/agent/v1/conversations/{}", f.conversation),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["status"], "active", "{detail}");
    assert_eq!(detail["conversation"]["agentId"], f.agent.id.as_str());
    assert_eq!(detail["conversation"]["queueId"], f.queue1.as_str());
}
