//! The sandbox: a page at `/sandbox` where someone with no LINE account plays the customer and
//! the agent, on a simulated LINE platform served by the same process.
//!
//! - [`platform`]: the simulated users, their chats and LINE's rules (kept in `sandbox.db`);
//! - [`line_api`]: the Messaging API the stack's LINE client calls in sandbox mode
//!   (`LINE_API_BASE` = `http://{addr}/sandbox/line`);
//! - [`phone`]: the page's API: users send messages, which become signed webhooks POSTed to the
//!   real webhook route; chats are long-polled;
//! - [`setup`]: the sandbox account, queue, agent and workstream, made through the admin API;
//! - [`glance`]: the admin glance, read through the admin API.
//!
//! The page (HTML, JS and CSS under `local/sandbox/`) is embedded in the binary and uses the
//! project's agent API with the sandbox agent's token. Sandbox mode is on only when the stack's
//! LINE API is not configured (see `SANDBOX` in the README): `LINE_API_BASE` pointing at LINE
//! runs the stack against the real platform.

pub mod glance;
pub mod line_api;
pub mod phone;
pub mod platform;
pub mod setup;

use axum::extract::rejection::ExtensionRejection;
use axum::extract::{ConnectInfo, Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use omniline_domain::line::signature::sign;
use phone::PhoneError;
use platform::{Platform, SandboxChannel};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const INDEX_HTML: &str = include_str!("../../sandbox/index.html");
const SANDBOX_JS: &str = include_str!("../../sandbox/sandbox.js");
const SANDBOX_CSS: &str = include_str!("../../sandbox/sandbox.css");

/// Everything the sandbox's routes share. Cheap to clone.
#[derive(Clone)]
pub struct SandboxState {
    pub platform: Platform,
    /// Base of the URLs the browser uses (`PUBLIC_BASE_URL` or the listener).
    pub base_url: String,
    /// The listener, for the webhooks the simulated platform POSTs.
    webhook_base: String,
    http: reqwest::Client,
    admin: Arc<setup::AdminClient>,
}

impl SandboxState {
    pub fn new(
        platform: Platform,
        base_url: &str,
        listener_base: &str,
        admin_token: omniline_domain::secret::SecretString,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()?;
        Ok(Self {
            platform,
            base_url: base_url.to_owned(),
            webhook_base: listener_base.to_owned(),
            admin: Arc::new(setup::AdminClient::new(
                http.clone(),
                listener_base,
                admin_token,
            )),
            http,
        })
    }

    /// Makes the sandbox's account, queue, agent and workstream (or finds them).
    pub async fn bootstrap(&self) -> Result<SandboxChannel, setup::SetupError> {
        setup::ensure(&self.platform, &self.admin).await
    }

    /// The channel once the bootstrap has made its account.
    fn ready_channel(&self) -> Result<SandboxChannel, PhoneError> {
        self.platform
            .channel()
            .filter(|c| c.account_id.is_some() && c.agent_token.is_some())
            .ok_or(PhoneError::Starting)
    }

    /// POSTs one event to the account's webhook route as LINE does: the body signed with the
    /// channel secret in `X-Line-Signature`. The webhook's status when it is 2xx.
    async fn post_webhook(
        &self,
        channel: &SandboxChannel,
        event: Value,
    ) -> Result<u16, PhoneError> {
        let account_id = channel.account_id.as_deref().ok_or(PhoneError::Starting)?;
        let body = serde_json::to_vec(&json!({
            "destination": channel.bot_user_id,
            "events": [event],
        }))
        .map_err(|e| PhoneError::Unavailable(e.to_string()))?;
        let signature = sign(channel.channel_secret.as_bytes(), &body);
        let response = self
            .http
            .post(format!("{}/line/webhook/{account_id}", self.webhook_base))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-line-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    // Never reached the stack: not delivered.
                    PhoneError::WebhookRefused(format!(
                        "the webhook did not answer: {}",
                        e.without_url()
                    ))
                } else {
                    // Sent, but no answer: it may have been queued.
                    PhoneError::WebhookTimeout
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let text = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        Err(PhoneError::WebhookRefused(format!(
            "the webhook answered {}: {reason}",
            status.as_u16()
        )))
    }
}

/// Every `/sandbox` route: the page, the page's API and the simulated Messaging API, answered for
/// requests from this machine only (see [`local_only`]; the app must be served with
/// [`ConnectInfo<SocketAddr>`], as [`crate::serve::serve`] does).
pub fn router(state: SandboxState) -> Router {
    let csp = format!(
        "default-src 'self'; img-src 'self' data: blob: {}; media-src 'self' {}; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        state.base_url, state.base_url
    );
    let page = Router::new()
        .route("/sandbox", get(index))
        .route("/sandbox/", get(index))
        .route("/sandbox/sandbox.js", get(script))
        .route("/sandbox/sandbox.css", get(style))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let csp = csp.clone();
            async move {
                let mut response = next.run(req).await;
                if let Ok(v) = HeaderValue::from_str(&csp) {
                    response
                        .headers_mut()
                        .insert(header::CONTENT_SECURITY_POLICY, v);
                }
                response
            }
        }));
    page.merge(phone::router(state.clone()))
        .nest(line_api::PREFIX, line_api::router(state.platform.clone()))
        .layer(middleware::from_fn(local_only))
        // The customers' pictures are in their LINE profiles, which the stack hands to agents
        // and which may be seen through PUBLIC_BASE_URL: static, nothing secret, served to all.
        .route("/sandbox/avatars/{file}", get(avatar))
}

/// `/sandbox` when the stack is not in sandbox mode: a JSON answer saying how to turn it on.
pub fn off_router() -> Router {
    async fn off() -> Response {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "sandbox_off", "message":
                "the sandbox runs when omniline-local's LINE API is simulated: start it without LINE_API_BASE (or with SANDBOX=on)"}})),
        )
            .into_response()
    }
    Router::new()
        .route("/sandbox", get(off))
        .route("/sandbox/{*rest}", axum::routing::any(off))
}

/// The sandbox hands out its agent's token and acts for its users, so it answers this machine
/// only: a loopback peer address (the connection itself comes from this machine; a request
/// served without its peer's address is refused too), a loopback `Host` (no rebinding DNS name),
/// no forwarding header of any proxy, tunnel or CDN (not even one that rewrites `Host` or
/// connects from loopback, as a local tunnel client does), and for the page's API a write must be
/// JSON from a loopback origin (no other website in the same browser can post to it: a
/// cross-site JSON request needs a CORS preflight, which the sandbox never grants).
async fn local_only(
    peer: Result<ConnectInfo<SocketAddr>, ExtensionRejection>,
    req: Request,
    next: Next,
) -> Response {
    let refuse = |code: &str, message: &str| {
        (
            StatusCode::FORBIDDEN,
            Json(json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    };
    let headers = req.headers();
    let loopback_peer = peer.is_ok_and(|ConnectInfo(addr)| phone::is_loopback_peer(addr));
    if !loopback_peer || !phone::is_local_host(headers) || phone::is_proxied(headers) {
        return refuse(
            "not_local",
            "the sandbox answers on this machine only (a loopback connection, Host localhost or a loopback address, no proxy or forwarding headers)",
        );
    }
    let writes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if writes && req.uri().path().starts_with("/sandbox/api/") && !phone::is_own_page_write(headers)
    {
        return refuse(
            "cross_origin",
            "the sandbox's API takes JSON (Content-Type: application/json) from its own page only",
        );
    }
    next.run(req).await
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SANDBOX_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", SANDBOX_CSS)
}

/// `0.svg` … `7.svg`: a round face on a colour of its own.
async fn avatar(Path(file): Path<String>) -> Response {
    const COLOURS: [&str; platform::AVATARS as usize] = [
        "#f4a261", "#2a9d8f", "#e76f51", "#8ab17d", "#6d597a", "#e9c46a", "#457b9d", "#d62828",
    ];
    let n = file
        .strip_suffix(".svg")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < COLOURS.len());
    let Some(n) = n else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"code": "not_found", "message": "avatars are 0.svg to 7.svg"}})),
        )
            .into_response();
    };
    let mouth = if n % 2 == 0 {
        "M22 40 Q32 48 42 40"
    } else {
        "M23 41 Q32 45 41 41"
    };
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><rect width="64" height="64" rx="32" fill="{c}"/><circle cx="32" cy="30" r="18" fill="#fff3e0"/><circle cx="25" cy="27" r="2.5" fill="#333"/><circle cx="39" cy="27" r="2.5" fill="#333"/><path d="{mouth}" stroke="#333" stroke-width="2.5" fill="none" stroke-linecap="round"/><path d="M14 64 Q32 44 50 64" fill="#fff3e0" opacity=".85"/></svg>"##,
        c = COLOURS[n]
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        svg,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::local_only;
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::{Request, StatusCode};
    use axum::middleware;
    use axum::routing::get;
    use axum::Router;
    use std::net::SocketAddr;
    use tower::ServiceExt;

    fn guarded() -> Router {
        Router::new()
            .route("/sandbox/api/session", get(|| async { "ok" }))
            .layer(middleware::from_fn(local_only))
    }

    async fn status_and_code(app: Router) -> (StatusCode, serde_json::Value) {
        let request = Request::get("/sandbox/api/session")
            .header("host", "127.0.0.1:3000")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| v["error"]["code"].clone())
            .unwrap_or_default();
        (status, code)
    }

    /// Review #13: a loopback `Host` and no forwarding header are not enough: the connection
    /// itself must come from this machine, and a request with no peer address is refused.
    #[tokio::test]
    async fn a_request_from_a_non_loopback_peer_or_with_no_peer_is_not_local() {
        for peer in [
            "203.0.113.9:40000",
            "192.168.1.10:40000",
            "[2001:db8::1]:40000",
        ] {
            let peer: SocketAddr = peer.parse().unwrap();
            let (status, code) = status_and_code(guarded().layer(MockConnectInfo(peer))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
            assert_eq!(code, "not_local", "{peer}");
        }
        let (status, code) = status_and_code(guarded()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::FORBIDDEN, Some("not_local"))
        );
        for peer in ["127.0.0.1:40000", "[::1]:40000"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let (status, _) = status_and_code(guarded().layer(MockConnectInfo(peer))).await;
            assert_eq!(status, StatusCode::OK, "{peer}");
        }
    }
}
