//! `/console`: the agent console, the page agents answer customers with. Static files (plain ES
//! modules, CSS, one HTML page under `functions/agent/console/`) embedded in the binary, served
//! same-origin with the agent API they call, so the page needs no CORS and its CSP can say
//! `connect-src 'self'`. The agent function serves it on Lambda (`GET /console`,
//! `GET /console/{proxy+}`) and `omniline-local` mounts the same [`router`] in every mode.
//!
//! - `GET /console` (and `/console/`): the page, `Cache-Control: no-cache`;
//! - `GET /console/config.json`: how to sign in (`{"signIn": "token"}`, or the OIDC issuer, its
//!   client and authorization endpoint when configured), `no-cache`;
//! - `POST /console/oidc/token`: the authorization code the issuer sent the browser back with
//!   (code flow with PKCE), exchanged for the person's verified ID token;
//! - `GET /console/v/{version}/{file}`: the scripts and style sheet. `{version}` is a hash of
//!   every embedded file, so a new build has new URLs and these answers are `immutable`; another
//!   version is 404 (the page is `no-cache`, so a reload asks for the current one).
//!
//! Every answer carries a strict Content-Security-Policy (no inline script or style, nothing
//! from another origin but images and media over https), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. Anything else under `/console/` is a JSON 404.

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use omniline_app::identity::{OidcVerifier, SignInError};
use omniline_runtime::http::{coded_field_error, error_response, method_not_allowed};
use serde_json::json;
use std::sync::{Arc, LazyLock};

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data: blob:; connect-src 'self'; media-src 'self' https: blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `Cache-Control` of the page and of `config.json`: always revalidated.
pub const NO_CACHE: &str = "no-cache";
/// `Cache-Control` of a versioned file: its URL changes with its content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// A console page: served at `path` (also with a trailing `/`), from its template.
struct Page {
    path: &'static str,
    template: Template,
}

enum Template {
    /// A page of its own.
    Whole(&'static str),
    /// A staff page (set-up, supervisor, reports): [`STAFF_SHELL`] with the page's own part.
    Staff {
        /// The prefix of its elements' ids and test ids (`rep` → `rep-signin`, `rep-token`…).
        id: &'static str,
        /// Its section of the translations (`reports` → `reports.title`…).
        keys: &'static str,
        /// After "omniline " in the window's title.
        title: &'static str,
        /// Its module.
        script: &'static str,
        /// What its signed-in part shows.
        main: &'static str,
    },
}

/// What the staff pages share: the head, the top bar with the session and the language, the
/// admin-token sign-in (`staff.js` `wireTokenSignIn`), the page's part, the toast.
const STAFF_SHELL: &str = include_str!("../console/staff.html");

const PAGES: [Page; 4] = [
    // The agent console.
    Page {
        path: "/console",
        template: Template::Whole(include_str!("../console/index.html")),
    },
    // The set-up page: an administrator connects LINE accounts and adds agents.
    Page {
        path: "/console/admin",
        template: Template::Staff {
            id: "admin",
            keys: "admin",
            title: "set-up",
            script: "admin.js",
            main: include_str!("../console/admin.main.html"),
        },
    },
    // The supervisor page: the queues and agents at a glance, reassignment.
    Page {
        path: "/console/supervisor",
        template: Template::Staff {
            id: "sup",
            keys: "supervisor",
            title: "supervisor",
            script: "supervisor.js",
            main: include_str!("../console/supervisor.main.html"),
        },
    },
    // The reports page: the admin API's reports as charts, tables and CSV.
    Page {
        path: "/console/reports",
        template: Template::Staff {
            id: "rep",
            keys: "reports",
            title: "reports",
            script: "reports.js",
            main: include_str!("../console/reports.main.html"),
        },
    },
];

/// The pages' templates, in [`PAGES`]' order (the staff pages composed once).
fn templates() -> &'static [String] {
    static TEMPLATES: LazyLock<Vec<String>> = LazyLock::new(|| {
        PAGES
            .iter()
            .map(|page| match page.template {
                Template::Whole(html) => html.to_owned(),
                Template::Staff {
                    id,
                    keys,
                    title,
                    script,
                    main,
                } => STAFF_SHELL
                    .replace("{{MAIN}}", main)
                    .replace("{{PAGE_TITLE}}", title)
                    .replace("{{SCRIPT}}", script)
                    .replace("{{KEYS}}", keys)
                    .replace("{{ID}}", id),
            })
            .collect()
    });
    &TEMPLATES
}

/// Where the page names the version of its files.
const VERSION_PLACEHOLDER: &str = "{{VERSION}}";

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_bytes!("../console/app.js"),
    },
    Asset {
        name: "admin.js",
        content_type: JS,
        body: include_bytes!("../console/admin.js"),
    },
    Asset {
        name: "staff.js",
        content_type: JS,
        body: include_bytes!("../console/staff.js"),
    },
    Asset {
        name: "supervisor.js",
        content_type: JS,
        body: include_bytes!("../console/supervisor.js"),
    },
    Asset {
        name: "reports.js",
        content_type: JS,
        body: include_bytes!("../console/reports.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_bytes!("../console/api.js"),
    },
    Asset {
        name: "i18n.js",
        content_type: JS,
        body: include_bytes!("../console/i18n.js"),
    },
    Asset {
        name: "render.js",
        content_type: JS,
        body: include_bytes!("../console/render.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/console.css"),
    },
];

/// 64-bit FNV-1a, continued from `hash`.
fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The version in the files' URLs: a hash of the page and every file (names and bytes).
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let mut hash = 0xcbf2_9ce4_8422_2325;
        for template in templates() {
            hash = fnv1a(hash, template.as_bytes());
        }
        for asset in ASSETS {
            hash = fnv1a(hash, asset.name.as_bytes());
            hash = fnv1a(hash, &[0]);
            hash = fnv1a(hash, asset.body);
        }
        format!("{hash:016x}")
    });
    &VERSION
}

/// The pages (in [`PAGES`]' order), with their files' URLs pointing at this build's version.
fn pages_html() -> &'static [String] {
    static FILLED: LazyLock<Vec<String>> = LazyLock::new(|| {
        templates()
            .iter()
            .map(|template| template.replace(VERSION_PLACEHOLDER, version()))
            .collect()
    });
    &FILLED
}

/// The agent console's page, with its files' URLs pointing at this build's version.
pub fn index_html() -> &'static str {
    &pages_html()[0]
}

/// The embedded file `name` (`app.js`, `console.css` …): its content type and bytes.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| (a.content_type, a.body))
}

/// The names of the embedded files.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

/// How the page signs people in: with an agent token, or at the OpenID Connect issuer (the
/// verifier the agent API checks its ID tokens with).
#[derive(Clone, Default)]
pub struct ConsoleConfig {
    pub oidc: Option<Arc<OidcVerifier>>,
}

impl ConsoleConfig {
    pub fn new(oidc: Option<Arc<OidcVerifier>>) -> Self {
        Self { oidc }
    }
}

/// The scopes the console asks for: the ID token's `email` comes with `email`.
pub const SCOPE: &str = "openid email profile";

/// The console's routes, with their security headers; no fallback of its own beyond
/// `/console/…` (the caller merges it with its other routes).
pub fn router(config: ConsoleConfig) -> Router {
    let only_get = |route: MethodRouter<ConsoleConfig>| route.fallback(method_not_allowed);
    let mut router = Router::new();
    for (index, Page { path, .. }) in PAGES.iter().enumerate() {
        let page = move || async move { html(&pages_html()[index]) };
        router = router
            .route(path, only_get(get(page)))
            .route(&format!("{path}/"), only_get(get(page)));
    }
    router
        .route("/console/config.json", only_get(get(config_json)))
        .route(
            "/console/oidc/token",
            post(exchange_code).fallback(method_not_allowed),
        )
        .route("/console/v/{version}/{file}", only_get(get(versioned)))
        .route("/console/{*rest}", any(unknown))
        .layer(middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(config)
}

/// `GET /console/config.json`: `{"signIn": "token"}`, or `{"signIn": "oidc", "issuer",
/// "clientId", "scope", "authorizationEndpoint", "endSessionEndpoint"?}` from the issuer's
/// discovery document (`"available": false` while it cannot be read: the page says so and
/// offers the token).
async fn config_json(State(config): State<ConsoleConfig>) -> Response {
    let body = match &config.oidc {
        None => json!({ "signIn": "token" }),
        Some(oidc) => {
            let c = oidc.config();
            let mut body = json!({
                "signIn": "oidc", "issuer": c.issuer, "clientId": c.client_id, "scope": SCOPE,
            });
            match oidc.endpoints().await {
                Ok(endpoints) => {
                    body["available"] = json!(true);
                    body["authorizationEndpoint"] = json!(endpoints.authorization_endpoint);
                    if let Some(url) = endpoints.end_session_endpoint {
                        body["endSessionEndpoint"] = json!(url);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OIDC discovery unavailable for the console");
                    body["available"] = json!(false);
                }
            }
            body
        }
    };
    ([(header::CACHE_CONTROL, NO_CACHE)], Json(body)).into_response()
}

/// `POST /console/oidc/token` `{"code", "codeVerifier", "redirectUri"}`: the authorization code
/// the issuer sent the browser back with, exchanged here (a public client: no secret) for the
/// person's ID token, verified as every bearer token is → `{"idToken", "expiresAt", "email"}`.
/// The page keeps the token in its tab and sends it as `Authorization: Bearer`. 404 without an
/// issuer; 400 naming a bad field or `code_refused`; 401 for a token that does not verify; 503
/// when the issuer cannot be reached.
async fn exchange_code(State(config): State<ConsoleConfig>, body: axum::body::Bytes) -> Response {
    let Some(oidc) = &config.oidc else {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no identity provider is configured: sign in with an agent token",
        );
    };
    let request = match CodeRequest::parse(&body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    match oidc
        .sign_in(&request.code, &request.code_verifier, &request.redirect_uri)
        .await
    {
        Ok((identity, id_token)) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "idToken": id_token, "expiresAt": identity.expires_at, "email": identity.email,
            })),
        )
            .into_response(),
        Err(e @ SignInError::CodeRefused(_)) => {
            error_response(StatusCode::BAD_REQUEST, "code_refused", e.to_string())
        }
        Err(e @ SignInError::Refused(_)) => {
            error_response(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        }
        Err(SignInError::Unavailable(e)) => {
            tracing::warn!(error = %e, "OIDC code exchange unavailable");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                "the identity provider cannot be reached now; try again shortly",
            )
        }
    }
}

/// A code exchange's request, checked.
struct CodeRequest {
    code: String,
    code_verifier: String,
    redirect_uri: String,
}

impl CodeRequest {
    #[allow(clippy::result_large_err)]
    fn parse(body: &[u8]) -> Result<Self, Response> {
        let invalid = |field: &str, message: &str| {
            coded_field_error(StatusCode::BAD_REQUEST, "invalid_request", field, message)
        };
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| invalid("body", "the body must be a JSON object"))?;
        let text = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        let code = text("code")
            .filter(|c| (1..=4096).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                invalid(
                    "code",
                    "code must be the authorization code the issuer sent",
                )
            })?;
        // RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~].
        let code_verifier = text("codeVerifier")
            .filter(|v| {
                (43..=128).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
            })
            .ok_or_else(|| {
                invalid(
                    "codeVerifier",
                    "codeVerifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
                )
            })?;
        // The console's own address: what the issuer redirected to.
        let redirect_uri = text("redirectUri")
            .filter(|u| {
                (u.starts_with("https://") || u.starts_with("http://"))
                    && u.ends_with("/console/")
                    && u.len() <= 2000
                    && !u.chars().any(char::is_whitespace)
            })
            .ok_or_else(|| {
                invalid(
                    "redirectUri",
                    "redirectUri must be the console's address, ending in /console/",
                )
            })?;
        Ok(Self {
            code: code.to_owned(),
            code_verifier: code_verifier.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
        })
    }
}

fn html(page: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, NO_CACHE),
        ],
        page,
    )
        .into_response()
}

async fn versioned(Path((version_asked, file)): Path<(String, String)>) -> Response {
    if version_asked != version() {
        return error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such console file in this version: reload the console",
        );
    }
    match asset(&file) {
        Some((content_type, body)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, IMMUTABLE),
            ],
            body,
        )
            .into_response(),
        None => unknown().await,
    }
}

async fn unknown() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such console file")
}

/// The CSP, `nosniff` and `no-referrer` on every console answer (errors too).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_name_this_version_and_only_embedded_files() {
        for page in pages_html() {
            page_names_this_version_and_only_embedded_files(page);
        }
    }

    #[test]
    fn a_staff_page_is_its_shell_with_every_placeholder_filled() {
        for (page, template) in PAGES.iter().zip(templates()) {
            assert!(!template.contains("{{ID}}") && !template.contains("{{MAIN}}"));
            assert!(!template.contains("{{KEYS}}") && !template.contains("{{SCRIPT}}"));
            assert!(!template.contains("{{PAGE_TITLE}}"), "{}", page.path);
            if let Template::Staff { id, script, .. } = page.template {
                assert!(template.contains(&format!("data-testid=\"{id}-signin\"")));
                assert!(template.contains(&format!("{{{{VERSION}}}}/{script}\"")));
            }
        }
    }

    fn page_names_this_version_and_only_embedded_files(page: &str) {
        assert!(!page.contains(VERSION_PLACEHOLDER));
        let prefix = format!("/console/v/{}/", version());
        let mut named = 0;
        for (at, _) in page.match_indices(&prefix) {
            let rest = &page[at + prefix.len()..];
            let file = &rest[..rest.find('"').unwrap_or(rest.len())];
            assert!(asset(file).is_some(), "the page names {file}, not embedded");
            named += 1;
        }
        assert!(named >= 2, "the page loads its script and its style sheet");
        // No inline script or style: the CSP would block them.
        assert!(!page.contains("<style"));
        assert!(!page.contains(" style="));
        for (at, _) in page.match_indices(" on") {
            let name: String = page[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            assert!(
                !page[at + 3 + name.len()..].starts_with('='),
                "inline event handler on{name}"
            );
        }
        for tag in page.match_indices("<script") {
            let tag_text = &page[tag.0..tag.0 + page[tag.0..].find('>').unwrap_or(0)];
            assert!(tag_text.contains(" src="), "inline script: {tag_text}");
        }
    }

    #[test]
    fn modules_import_only_embedded_files_by_relative_url() {
        for name in asset_names().filter(|n| n.ends_with(".js")) {
            let (_, body) = asset(name).unwrap_or_else(|| panic!("{name}"));
            let text = std::str::from_utf8(body).unwrap_or_else(|_| panic!("{name}: UTF-8"));
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let from = line.split(" from ").nth(1).unwrap_or("");
                let target = from.trim().trim_end_matches(';').trim_matches('\'');
                let file = target.strip_prefix("./").unwrap_or_else(|| {
                    panic!("{name}: `{line}` must import a sibling by a ./ URL")
                });
                assert!(asset(file).is_some(), "{name} imports {file}, not embedded");
            }
        }
    }

    /// An HTTP API (payload 2.0) event for `GET {path}`, as API Gateway sends the agent function.
    fn http_api_event(route_key: &str, path: &str) -> serde_json::Value {
        json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": "",
            "headers": {
                "accept": "*/*",
                "host": "demo123abc.execute-api.ap-northeast-1.amazonaws.com",
                "x-forwarded-proto": "https"
            },
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "demo123abc",
                "domainName": "demo123abc.execute-api.ap-northeast-1.amazonaws.com",
                "domainPrefix": "demo123abc",
                "http": {
                    "method": "GET", "path": path, "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.10", "userAgent": "test"
                },
                "requestId": "console-test",
                "routeKey": route_key,
                "stage": "$default",
                "time": "25/Nov/2025:00:00:01 +0000",
                "timeEpoch": 1_764_028_801_000_i64
            },
            "isBase64Encoded": false
        })
    }

    /// The answer of the Lambda entry point (`omniline_runtime::http::lambda_entry`, what the
    /// agent function runs on Lambda) to `GET {path}`: status, headers, body bytes.
    async fn through_lambda(route_key: &str, path: &str) -> (u64, serde_json::Value, Vec<u8>) {
        use base64::Engine;
        let app = router(ConsoleConfig::default()).fallback(omniline_runtime::http::not_found);
        let event = lambda_http::lambda_runtime::LambdaEvent::new(
            http_api_event(route_key, path),
            lambda_http::lambda_runtime::Context::default(),
        );
        let answer = omniline_runtime::http::lambda_entry(app, event)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let body = answer["body"].as_str().unwrap_or_default();
        let bytes = if answer["isBase64Encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_else(|e| panic!("GET {path}: body: {e}"))
        } else {
            body.as_bytes().to_vec()
        };
        let status = answer["statusCode"].as_u64().unwrap_or_default();
        (status, answer["headers"].clone(), bytes)
    }

    #[tokio::test]
    async fn the_lambda_routes_serve_the_embedded_bytes_with_their_headers() {
        let (status, headers, body) = through_lambda("GET /console", "/console").await;
        assert_eq!(status, 200);
        assert_eq!(body, index_html().as_bytes());
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["cache-control"], NO_CACHE);
        assert_eq!(headers["content-security-policy"], CSP);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");

        for name in asset_names() {
            let path = format!("/console/v/{}/{name}", version());
            let (status, headers, body) = through_lambda("GET /console/{proxy+}", &path).await;
            let (content_type, bytes) = asset(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(status, 200, "{path}");
            assert_eq!(body, bytes, "{path}: the embedded bytes");
            assert_eq!(headers["content-type"], content_type, "{path}");
            assert_eq!(headers["cache-control"], IMMUTABLE, "{path}");
            assert_eq!(headers["content-security-policy"], CSP, "{path}");
        }

        let (status, headers, body) =
            through_lambda("GET /console/{proxy+}", "/console/config.json").await;
        assert_eq!(status, 200);
        assert_eq!(headers["cache-control"], NO_CACHE);
        let config: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(config, json!({"signIn": "token"}));

        for missing in [
            "/console/v/0000000000000000/app.js".to_owned(),
            format!("/console/v/{}/nope.js", version()),
            "/console/app.js".to_owned(),
        ] {
            let (status, headers, body) = through_lambda("GET /console/{proxy+}", &missing).await;
            assert_eq!(status, 404, "{missing}");
            assert_eq!(headers["content-type"], "application/json", "{missing}");
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(error["error"]["code"], "not_found", "{missing}");
        }
    }
}
