//! The admin function: `/admin/v1/*`, the API that connects LINE Official Accounts and sets up
//! how their conversations are handled (queues, agents, workstreams and routing rules, settings)
//! and answers privacy requests (customers, and an account's purge: a background job whose
//! status `/admin/v1/jobs/{id}` reads). Every route requires
//! `Authorization: Bearer <admin token>`, or, with an OpenID Connect issuer configured, the ID
//! token of a person in the `admin` group. Every change (POST, PUT, PATCH, DELETE) is logged
//! with who made it: the person's email, or "admin token".
//!
//! The use cases are [`AdminService`]'s (`omniline_app::admin`); this crate is HTTP: it
//! authenticates, parses requests into the use cases' inputs and turns their results and errors
//! (mapped once, in `error.rs`) into responses. Channel secrets and access tokens go to the
//! secret store and never into a response or a log.

mod accounts;
mod agents;
mod audit;
mod customers;
mod error;
mod jobs;
mod message_templates;
mod period;
mod queues;
mod quick_replies;
mod reports;
mod rules;
mod settings;
mod workstreams;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;
use omniline_app::admin::AdminService;
use omniline_app::identity::{OidcVerifier, SignInError};
use omniline_domain::clock::Clock;
use omniline_domain::identity::{looks_like_jwt, Role};
use omniline_ports::LazySecret;
use omniline_runtime::http::{
    bearer_token, error_response, json_rejections, method_not_allowed, not_found, unavailable,
};
use std::sync::Arc;

/// The stores and clients the admin use cases work on, and the hook run when an account is
/// disconnected.
pub use omniline_app::admin::{AccountDisconnected, AdminDeps};

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The use cases.
    pub service: Arc<AdminService>,
    /// The admin token, read on the first request (not at start-up); compared by SHA-256 digest
    /// in constant time, whatever the presented length.
    admin_token: LazySecret,
    /// Base of callback URLs; when `None`, derived from the request's `Host`.
    pub public_base_url: Option<String>,
    /// Admins signed in with OpenID Connect (the `admin` group), when an issuer is configured.
    pub oidc: Option<Arc<OidcVerifier>>,
}

impl AdminState {
    /// The admin API over `deps`, reading "now" from `clock` (the composition root's).
    pub fn new(
        deps: AdminDeps,
        clock: Clock,
        admin_token: impl Into<LazySecret>,
        public_base_url: Option<String>,
    ) -> Self {
        Self {
            service: Arc::new(AdminService::new(deps, clock)),
            admin_token: admin_token.into(),
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_owned()),
            oidc: None,
        }
    }

    /// Accepts the ID tokens of `verifier`'s issuer for people in the `admin` group, as well as
    /// the admin token.
    pub fn with_oidc(mut self, verifier: Option<Arc<OidcVerifier>>) -> Self {
        self.oidc = verifier;
        self
    }

    /// Runs `hook` whenever an account is deleted or loses its workstream.
    pub fn on_disconnect(mut self, hook: AccountDisconnected) -> Self {
        self.service = Arc::new(self.service.as_ref().clone().on_disconnect(hook));
        self
    }
}

/// The admin routes, over any adapters.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/admin/v1/accounts",
            get(accounts::list).post(accounts::create),
        )
        .route(
            "/admin/v1/accounts/{id}",
            get(accounts::get)
                .patch(accounts::update)
                .delete(accounts::delete),
        )
        .route(
            "/admin/v1/accounts/{id}/webhook-stats",
            get(accounts::webhook_stats),
        )
        .route(
            "/admin/v1/accounts/{id}/message-stats",
            get(accounts::message_stats),
        )
        .route("/admin/v1/accounts/{id}/quota", get(accounts::quota))
        .route("/admin/v1/queues", get(queues::list).post(queues::create))
        .route(
            "/admin/v1/queues/{id}",
            get(queues::get)
                .patch(queues::update)
                .delete(queues::delete),
        )
        .route("/admin/v1/agents", get(agents::list).post(agents::create))
        .route(
            "/admin/v1/agents/{id}",
            get(agents::get)
                .patch(agents::update)
                .delete(agents::delete),
        )
        .route("/admin/v1/agents/{id}/token", post(agents::rotate_token))
        .route(
            "/admin/v1/workstreams",
            get(workstreams::list).post(workstreams::create),
        )
        .route(
            "/admin/v1/workstreams/{id}",
            get(workstreams::get)
                .patch(workstreams::update)
                .delete(workstreams::delete),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules",
            get(rules::list).post(rules::create),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules/order",
            put(rules::reorder),
        )
        .route("/admin/v1/workstreams/{id}/rules/test", post(rules::test))
        .route(
            "/admin/v1/workstreams/{id}/rules/{rule_id}",
            get(rules::get).patch(rules::update).delete(rules::delete),
        )
        .route("/admin/v1/customers", get(customers::find))
        .route(
            "/admin/v1/customers/{id}",
            get(customers::export)
                .patch(customers::update)
                .delete(customers::erase),
        )
        .route("/admin/v1/jobs/{id}", get(jobs::get))
        .route("/admin/v1/audit", get(audit::trail))
        .route(
            "/admin/v1/reports/conversations",
            get(reports::conversations),
        )
        .route("/admin/v1/reports/csat", get(reports::csat))
        .route("/admin/v1/reports/volume", get(reports::volume))
        .route(
            "/admin/v1/message-templates",
            get(message_templates::list).post(message_templates::create),
        )
        .route(
            "/admin/v1/message-templates/{id}",
            get(message_templates::get)
                .patch(message_templates::update)
                .delete(message_templates::delete),
        )
        .route(
            "/admin/v1/quick-replies",
            get(quick_replies::list).post(quick_replies::create),
        )
        .route(
            "/admin/v1/quick-replies/{id}",
            get(quick_replies::get)
                .patch(quick_replies::update)
                .delete(quick_replies::delete),
        )
        .route(
            "/admin/v1/settings",
            get(settings::get).patch(settings::update),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_token,
        ))
        .layer(middleware::from_fn(json_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024;

/// Who made an admin request: the person signed in with OpenID Connect, or the holder of the
/// admin token. Put in the request's extensions by [`require_admin_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Person { email: String },
    AdminToken,
}

impl Actor {
    /// How the audit log names it.
    pub fn name(&self) -> &str {
        match self {
            Actor::Person { email } => email,
            Actor::AdminToken => "admin token",
        }
    }
}

/// The admin check of every admin route (`Authorization: Bearer <token>`: the admin token,
/// compared by SHA-256 digest in constant time, or an admin's ID token), then the audit line of
/// a change; public for other admin-only routes of a composition root (omniline-local's
/// `/_meter`).
pub async fn require_admin_token(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let actor = match authorize(&state, bearer_token(request.headers())).await {
        Ok(actor) => actor,
        Err(response) => return response,
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    request.extensions_mut().insert(actor.clone());
    let response = next.run(request).await;
    let changes = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && !path.ends_with("/rules/test");
    if changes {
        tracing::info!(
            audit = true,
            actor = actor.name(),
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            "admin change"
        );
        // Kept for `GET /admin/v1/audit` too (best effort: the log line stays).
        state
            .service
            .audit(
                actor.name(),
                method.as_str(),
                &path,
                response.status().as_u16(),
            )
            .await;
    }
    response
}

async fn authorize(state: &AdminState, presented: Option<&str>) -> Result<Actor, Response> {
    if let (Some(oidc), Some(token)) = (&state.oidc, presented) {
        if looks_like_jwt(token) {
            return match oidc.verify(token).await {
                Ok(identity) if identity.has(Role::Admin) => Ok(Actor::Person {
                    email: identity.email,
                }),
                Ok(_) => Err(error_response(
                    StatusCode::FORBIDDEN,
                    "not_admin",
                    "you are signed in, but not in the admin group",
                )),
                Err(e @ (SignInError::Refused(_) | SignInError::CodeRefused(_))) => Err(
                    error_response(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
                ),
                Err(SignInError::Unavailable(e)) => Err(unavailable(
                    "identity provider",
                    e,
                    "the identity provider's keys cannot be read now; try again shortly",
                )),
            };
        }
    }
    let admin_token = match state.admin_token.get().await {
        Ok(token) => token,
        Err(e) => {
            return Err(unavailable(
                "admin token",
                e,
                "the admin token cannot be read now; try again later",
            ))
        }
    };
    let authorized = presented.is_some_and(|token| admin_token.matches(token));
    if authorized {
        Ok(Actor::AdminToken)
    } else {
        Err(error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid admin token (Authorization: Bearer <token>)",
        ))
    }
}

/// The base of callback URLs: `PUBLIC_BASE_URL`, else `https://` and the `Host` the request
/// reached (on Lambda, API Gateway's own domain: a client cannot choose it). Never a forwarding
/// header (`X-Forwarded-Host` is the client's to write): LINE would be told to post elsewhere.
pub(crate) fn public_base(state: &AdminState, headers: &HeaderMap) -> String {
    base_from(state.public_base_url.as_deref(), headers)
}

fn base_from(configured: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(base) = configured {
        return base.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review 1/7 #12: with no `PUBLIC_BASE_URL`, the callback URL followed the client's
    /// `X-Forwarded-Host`.
    #[test]
    fn the_callback_base_ignores_forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            "demo123abc.execute-api.ap-northeast-1.amazonaws.com"
                .parse()
                .unwrap(),
        );
        headers.insert("x-forwarded-host", "evil.example".parse().unwrap());
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(
            base_from(None, &headers),
            "https://demo123abc.execute-api.ap-northeast-1.amazonaws.com"
        );
        assert_eq!(
            base_from(Some("https://support.example.com"), &headers),
            "https://support.example.com"
        );
        headers.insert(header::HOST, "evil.example/path?".parse().unwrap());
        assert_eq!(base_from(None, &headers), "https://localhost");
    }
}
