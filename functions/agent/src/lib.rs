//! The agent function: `/agent/v1/*`, the API the people who answer customers use — presence,
//! notifications (long poll), conversations and their transcript, pick, reply, typing and read,
//! transfer, close with the survey, contacts and account links. Every route needs
//! `Authorization: Bearer <agent token>` (issued by the admin API); an agent sees only the
//! conversations of its queues or held by it (403 otherwise).
//!
//! The use cases are [`AgentService`]'s (`omniline_app::agent`, on the router crate's
//! [`RouterService`]), so the Lambda functions and `omniline-local` share one implementation;
//! this crate is HTTP: it authenticates, parses requests into the use cases' inputs and turns
//! their results and errors into responses. `GET /line/link/{id}` (public) is the customer's side
//! of an account-link request. `GET /console` ([`console`]) is the page agents use, served
//! same-origin with the API it calls.

pub mod console;
mod contacts;
mod conversations;
mod error;
mod notifications;
mod search;
mod supervisor;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
pub use error::ApiError;
use omniline_app::agent::AgentService;
use omniline_app::identity::{OidcVerifier, SignInError};
use omniline_app::router::RouterService;
use omniline_domain::agents::{Agent, AgentStatus};
use omniline_domain::identity::{looks_like_jwt, Identity};
use omniline_ports::{DeliveryStore, LazySecret};
use omniline_runtime::http::{bearer_token, error_response, method_not_allowed, not_found};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Signs links to stored media (transcript attachments, agent uploads): the base URL the media
/// route (`GET /media/{key}`) is served under, and the signing secret, read on the first
/// authenticated request, not at start-up.
pub use omniline_app::outbound::MediaLinks as MediaSigner;

/// What the agent routes need.
#[derive(Clone)]
pub struct AgentState {
    /// The use cases.
    pub service: Arc<AgentService>,
    /// Base of the account-link URLs sent to customers (`{base}/line/link/{id}`).
    pub public_base_url: String,
    /// Longest long poll (`wait`); 20 s in production, shorter in tests.
    pub max_wait: Duration,
    /// Sign-in with OpenID Connect (ID tokens on the same `Authorization` header as agent
    /// tokens), when an issuer is configured.
    pub oidc: Option<Arc<OidcVerifier>>,
    /// The admin token, which the supervisors' routes also take (read on first use).
    pub admin_token: Option<LazySecret>,
}

impl AgentState {
    pub fn new(
        router: Arc<RouterService>,
        deliveries: Arc<dyn DeliveryStore>,
        media: Option<MediaSigner>,
        public_base_url: impl Into<String>,
    ) -> Self {
        Self {
            service: Arc::new(AgentService::new(router, deliveries, media)),
            public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
            max_wait: Duration::from_secs(notifications::MAX_WAIT_SECS),
            oidc: None,
            admin_token: None,
        }
    }

    /// The supervisors' routes also take the admin token.
    pub fn with_admin_token(mut self, admin_token: impl Into<LazySecret>) -> Self {
        self.admin_token = Some(admin_token.into());
        self
    }

    /// Accepts ID tokens of `verifier`'s issuer as well as agent tokens.
    pub fn with_oidc(mut self, verifier: Option<Arc<OidcVerifier>>) -> Self {
        self.oidc = verifier;
        self
    }
}

/// Largest JSON body.
const BODY_LIMIT: usize = 64 * 1024;
/// Largest media upload (LINE's image limit is 10 MB).
pub const MEDIA_LIMIT: usize = 10 * 1024 * 1024;

/// The agent routes (bearer-authenticated) and the public account-link route, without a fallback
/// (so the local stack can merge them with the other functions' routes); the agent function adds
/// [`standalone`]'s JSON 404/405.
pub fn router(state: AgentState) -> Router {
    let authenticated = Router::new()
        .route("/agent/v1/me", get(me))
        .route("/agent/v1/presence", put(presence))
        .route("/agent/v1/notifications", get(notifications::poll))
        .route("/agent/v1/conversations", get(conversations::list))
        .route(
            "/agent/v1/transfer-targets",
            get(conversations::transfer_targets),
        )
        .route("/agent/v1/queues", get(conversations::queues))
        .route("/agent/v1/quick-replies", get(conversations::quick_replies))
        .route("/agent/v1/agents", get(conversations::agents))
        .route("/agent/v1/conversations/{id}", get(conversations::detail))
        .route(
            "/agent/v1/conversations/{id}/messages",
            get(conversations::messages).post(conversations::send),
        )
        .route(
            "/agent/v1/conversations/{id}/pick",
            post(conversations::pick),
        )
        .route(
            "/agent/v1/conversations/{id}/typing",
            post(conversations::typing),
        )
        .route(
            "/agent/v1/conversations/{id}/read",
            post(conversations::read),
        )
        .route(
            "/agent/v1/conversations/{id}/transfer",
            post(conversations::transfer),
        )
        .route(
            "/agent/v1/conversations/{id}/close",
            post(conversations::close),
        )
        .route(
            "/agent/v1/conversations/{id}/snooze",
            post(conversations::snooze),
        )
        .route(
            "/agent/v1/conversations/{id}/accept",
            post(conversations::accept),
        )
        .route(
            "/agent/v1/conversations/{id}/reject",
            post(conversations::reject),
        )
        .route(
            "/agent/v1/conversations/{id}/wrap-up",
            post(conversations::wrap_up),
        )
        .route(
            "/agent/v1/conversations/{id}/follow-up",
            put(conversations::follow_up),
        )
        .route(
            "/agent/v1/conversations/{id}/survey",
            get(conversations::survey),
        )
        .route("/agent/v1/conversations/{id}/link", post(contacts::link))
        .route(
            "/agent/v1/conversations/{id}/link-request",
            post(contacts::link_request),
        )
        .route("/agent/v1/search", get(search::search))
        .route(
            "/agent/v1/contacts",
            get(contacts::search).post(contacts::create),
        )
        .route(
            "/agent/v1/contacts/{id}",
            delete(contacts::delete).patch(contacts::update),
        )
        .route(
            "/agent/v1/customers/{id}/conversations",
            post(conversations::start),
        )
        .route(
            "/agent/v1/customers/{id}/notes",
            get(conversations::customer_notes).post(conversations::add_customer_note),
        )
        .route(
            "/agent/v1/conversations/{id}/tags",
            put(conversations::conversation_tags),
        )
        .route(
            "/agent/v1/customers/{id}/tags",
            put(conversations::customer_tags),
        )
        .route(
            "/agent/v1/conversations/{id}/notes",
            get(conversations::notes).post(conversations::add_note),
        )
        .route(
            "/agent/v1/media",
            post(conversations::upload).layer(axum::extract::DefaultBodyLimit::max(MEDIA_LIMIT)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(error::json_rejections));
    // Supervisors (their own check: the admin token, or an ID token of the supervisor or admin
    // group).
    let supervised = Router::new()
        .route("/agent/v1/supervisor/overview", get(supervisor::overview))
        .route(
            "/agent/v1/supervisor/conversations/{id}",
            get(supervisor::conversation),
        )
        .route(
            "/agent/v1/conversations/{id}/assign",
            post(supervisor::assign),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            supervisor::authenticate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(error::json_rejections));
    // The account-link page is for customers in LINE's browser: its errors stay text pages.
    Router::new()
        .route(
            "/line/link/{id}",
            get(contacts::follow_link).post(contacts::confirm_link),
        )
        .merge(authenticated)
        .merge(supervised)
        .with_state(state)
}

/// [`router`] and the agent console ([`console::router`]) with JSON answers for unknown routes
/// and methods: what the Lambda function serves.
pub fn standalone(state: AgentState, console: console::ConsoleConfig) -> Router {
    router(state)
        .merge(console::router(console))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

fn unauthorized() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or invalid agent token (Authorization: Bearer <agent token or ID token>)",
    )
}

/// Resolves the bearer token to its agent (put in the request's extensions, with the
/// [`Identity`] of an OIDC sign-in) or answers 401 (403 for a person no agent has the email of).
/// A token shaped as a JWT is an ID token when an issuer is configured; any other is an agent
/// token.
async fn authenticate(
    State(state): State<AgentState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()).map(str::to_owned) else {
        return unauthorized();
    };
    if let Some(oidc) = state.oidc.as_ref().filter(|_| looks_like_jwt(&token)) {
        let identity = match oidc.verify(&token).await {
            Ok(identity) => identity,
            Err(e) => return sign_in_refused(e),
        };
        return match state.service.agent_by_email(&identity).await {
            Ok(Some(agent)) => {
                request.extensions_mut().insert(agent);
                request.extensions_mut().insert(identity);
                next.run(request).await
            }
            Ok(None) => error_response(
                StatusCode::FORBIDDEN,
                "no_agent",
                "you are signed in, but no agent has your email address: ask an admin to add you as an agent",
            ),
            Err(e) => ApiError::from(e).into_response(),
        };
    }
    match state.service.authenticate(&token).await {
        Ok(Some(agent)) => {
            request.extensions_mut().insert(agent);
            next.run(request).await
        }
        Ok(None) => unauthorized(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Why an ID token signs no one in: 401 naming why, or 503 while the issuer's keys cannot be read.
pub(crate) fn sign_in_refused(e: SignInError) -> Response {
    match e {
        SignInError::Refused(_) | SignInError::CodeRefused(_) => {
            error_response(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
        }
        SignInError::Unavailable(e) => {
            tracing::warn!(error = %e, "OIDC sign-in unavailable");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "identity_provider_unavailable",
                "the identity provider's keys cannot be read now; try again shortly",
            )
        }
    }
}

fn agent_json(agent: &Agent) -> serde_json::Value {
    json!({
        "id": agent.id,
        "name": agent.name,
        "status": agent.status.as_str(),
        "queueIds": agent.queues,
        "skills": agent.skills,
        "capacity": agent.capacity,
        "activeConversations": agent.active_count(),
    })
}

/// The agent, and how it signed in: `{"method": "token"}`, or `{"method": "oidc", "email",
/// "roles"}` with the roles of the person's groups (what the console shows them).
async fn me(Extension(agent): Extension<Agent>, identity: Option<Extension<Identity>>) -> Response {
    let mut body = agent_json(&agent);
    body["signIn"] = match identity {
        Some(Extension(identity)) => json!({
            "method": "oidc",
            "email": identity.email,
            "roles": identity.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }),
        None => json!({"method": "token"}),
    };
    Json(body).into_response()
}

/// `PUT /agent/v1/presence` `{"status": "available"|"busy"|"away"|"offline"}`. Becoming available
/// assigns waiting conversations of push-mode queues, up to capacity.
async fn presence(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut fields = omniline_domain::input::Fields::parse(&body)?;
    let status = fields
        .one_of("status", &["available", "busy", "away", "offline"])?
        .ok_or_else(|| fields.missing("status"))?;
    fields.finish()?;
    let status =
        AgentStatus::parse(&status).ok_or_else(|| ApiError::invalid("status", "unknown status"))?;
    let current = state.service.set_presence(&agent, status).await?;
    Ok(Json(agent_json(&current)).into_response())
}
