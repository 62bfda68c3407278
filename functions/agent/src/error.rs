//! Errors of the agent routes, mapped once to `{"error": {"code", "message", "field"?}}`, and the
//! account-link page's errors, mapped once to plain-text pages for the customer.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use omniline_app::agent::{AgentError, LinkPageError};
use omniline_app::router::agent_ops::AgentOpError;
use omniline_domain::input::InputError;
use omniline_runtime::http::{coded_field_error, error_response, field_error, storage_unavailable};

pub use omniline_runtime::http::json_rejections;

/// Why an agent route failed: the request itself ([`InputError`], 400), or a use case
/// ([`AgentError`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Input(InputError::new(field, message))
    }
}

impl From<AgentOpError> for ApiError {
    fn from(e: AgentOpError) -> Self {
        ApiError::Agent(AgentError::Operation(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Input(e) => field_error(StatusCode::BAD_REQUEST, e.field(), e.message()),
            ApiError::Agent(e) => agent_error(e),
        }
    }
}

fn agent_error(e: AgentError) -> Response {
    let message = e.to_string();
    match e {
        AgentError::Invalid { field, message } => {
            field_error(StatusCode::BAD_REQUEST, &field, message)
        }
        AgentError::NotFound(_) => not_found(message),
        AgentError::Forbidden(m) => forbidden(m),
        AgentError::Conflict(m) => conflict(m),
        AgentError::NotFollowing => error_response(StatusCode::CONFLICT, "not_following", message),
        AgentError::ConversationOpen(_) => {
            error_response(StatusCode::CONFLICT, "conversation_open", message)
        }
        AgentError::TooManyTags(_) => {
            error_response(StatusCode::CONFLICT, "too_many_tags", message)
        }
        AgentError::NothingToMarkRead => {
            error_response(StatusCode::CONFLICT, "nothing_to_mark_read", message)
        }
        AgentError::Unprocessable { field, message } => unprocessable(&field, message),
        AgentError::Line(m) => {
            tracing::warn!(error = %m, "agent API: LINE call failed");
            error_response(StatusCode::BAD_GATEWAY, "line_unavailable", message)
        }
        AgentError::Store(e) => storage_unavailable("agent API", e),
        AgentError::Operation(e) => operation_error(e),
        AgentError::Internal(m) => operation_failed(m),
    }
}

/// A conversation operation's refusal, with the conversation's own wording.
fn operation_error(e: AgentOpError) -> Response {
    match e {
        AgentOpError::NotFound => not_found(AgentError::NotFound("conversation").to_string()),
        AgentOpError::Conflict(m) => conflict(m),
        AgentOpError::Forbidden(m) => forbidden(m),
        AgentOpError::Invalid { field, message } => unprocessable(&field, message),
        AgentOpError::Route(e) => operation_failed(e.to_string()),
    }
}

fn not_found(message: String) -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", message)
}

fn forbidden(message: String) -> Response {
    error_response(StatusCode::FORBIDDEN, "forbidden", message)
}

fn conflict(message: String) -> Response {
    error_response(StatusCode::CONFLICT, "conflict", message)
}

fn unprocessable(field: &str, message: String) -> Response {
    coded_field_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        field,
        message,
    )
}

fn operation_failed(error: String) -> Response {
    tracing::error!(error = %error, "agent API: operation failed");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the operation failed, try again",
    )
}

/// A plain-text page for the customer (never JSON, never cached).
fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text.to_owned(),
    )
        .into_response()
}

/// Why the customer's account-link page cannot go on: the path names no link request, or the use
/// case refused. Each is a page of its own for the customer.
#[derive(Debug)]
pub(crate) enum LinkPageFailure {
    NotALink,
    Refused(LinkPageError),
}

impl From<LinkPageError> for LinkPageFailure {
    fn from(e: LinkPageError) -> Self {
        LinkPageFailure::Refused(e)
    }
}

impl IntoResponse for LinkPageFailure {
    fn into_response(self) -> Response {
        let LinkPageFailure::Refused(e) = self else {
            return page(StatusCode::NOT_FOUND, "This link is not valid.");
        };
        match e {
            LinkPageError::Unavailable(_) => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            ),
            LinkPageError::Unknown => page(
                StatusCode::NOT_FOUND,
                "This link is not valid or was already used.",
            ),
            LinkPageError::Expired => page(
                StatusCode::GONE,
                "This link has expired. Please ask for a new one.",
            ),
            LinkPageError::NonceNotStored => page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please ask for a new link.",
            ),
        }
    }
}
