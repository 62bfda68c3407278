//! Errors of the agent routes, mapped once to `{"error": {"code", "message", "field"?}}`, and the
//! account-link page's errors, mapped once to plain-text pages for the customer.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use omniline_app::agent::{AgentError, LinkPageError};
use omniline_app::router::agent_ops::AgentOpError;
use omniline_domain::input::InputError;
use omniline_domain::PortError;
use omniline_runtime::http::{coded_field_error, error_response, field_error};

pub use omniline_runtime::http::json_rejections;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// 422 naming the field.
    #[error("{message}")]
    Unprocessable { field: String, message: String },
    #[error("LINE API: {0}")]
    Line(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] PortError),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Input(InputError::new(field, message))
    }
}

impl From<AgentOpError> for ApiError {
    fn from(e: AgentOpError) -> Self {
        match e {
            AgentOpError::NotFound => ApiError::NotFound("conversation"),
            AgentOpError::Conflict(m) => ApiError::Conflict(m),
            AgentOpError::Forbidden(m) => ApiError::Forbidden(m),
            AgentOpError::Invalid { field, message } => ApiError::Unprocessable { field, message },
            AgentOpError::Route(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Invalid { field, message } => ApiError::invalid(&field, message),
            AgentError::NotFound(what) => ApiError::NotFound(what),
            AgentError::Forbidden(m) => ApiError::Forbidden(m),
            AgentError::Conflict(m) => ApiError::Conflict(m),
            AgentError::Unprocessable { field, message } => {
                ApiError::Unprocessable { field, message }
            }
            AgentError::Line(m) => ApiError::Line(m),
            AgentError::Store(e) => ApiError::Store(e),
            AgentError::Operation(e) => ApiError::from(e),
            AgentError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            ApiError::Input(e) => field_error(StatusCode::BAD_REQUEST, e.field(), e.message()),
            ApiError::NotFound(_) => error_response(StatusCode::NOT_FOUND, "not_found", message),
            ApiError::Forbidden(_) => error_response(StatusCode::FORBIDDEN, "forbidden", message),
            ApiError::Conflict(_) => error_response(StatusCode::CONFLICT, "conflict", message),
            ApiError::Unprocessable { field, .. } => coded_field_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                &field,
                message,
            ),
            ApiError::Line(m) => {
                tracing::warn!(error = %m, "agent API: LINE call failed");
                error_response(StatusCode::BAD_GATEWAY, "line_unavailable", message)
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "agent API: storage failed");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable, try again",
                )
            }
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "agent API: operation failed");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the operation failed, try again",
                )
            }
        }
    }
}

/// A plain-text page for the customer (never JSON, never cached).
pub(crate) fn page(status: StatusCode, text: &str) -> Response {
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

/// The page the customer sees when the account-link page cannot go on.
pub(crate) fn link_page_error(e: LinkPageError) -> Response {
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
