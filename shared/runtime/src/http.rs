//! HTTP plumbing shared by the HTTP functions: JSON error bodies (and the 404, 405 and 503 answers
//! they share), the bearer token of a request, and serving an axum router on Lambda (API Gateway
//! REST v1 and HTTP API v2 events) or on a local TCP port.
//!
//! On Lambda we do not call `lambda_http::run` directly: its event conversion panics on a body
//! flagged `isBase64Encoded` that is not valid base64 (and `panic = "abort"` would then kill the
//! instance). [`lambda_entry`] checks the encoding first and answers 400, then hands the event to
//! `lambda_http`'s own adapter.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use lambda_http::lambda_runtime::{self, service_fn, LambdaEvent};
use lambda_http::request::LambdaRequest;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

/// The one error body of every HTTP function: `{"error": {"code", "message", "field"?}}`.
pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(field) = field {
        error["field"] = Value::String(field.to_owned());
    }
    json!({ "error": error })
}

/// `{"error": {"code": code, "message": message}}` with `status`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(error_body(code, &message.into(), None))).into_response()
}

/// Like [`error_response`], naming the request field (or JSON path) at fault.
pub fn coded_field_error(
    status: StatusCode,
    code: &str,
    field: &str,
    message: impl Into<String>,
) -> Response {
    (
        status,
        axum::Json(error_body(code, &message.into(), Some(field))),
    )
        .into_response()
}

/// `invalid_request` naming the request field at fault.
pub fn field_error(status: StatusCode, field: &str, message: impl Into<String>) -> Response {
    coded_field_error(status, "invalid_request", field, message)
}

/// axum's own rejections (body too large, a malformed request …) are plain text: gives them the
/// JSON error body every other answer has. A middleware (`axum::middleware::from_fn`).
pub async fn json_rejections(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", "the body is too large".to_owned()),
        StatusCode::BAD_REQUEST => ("invalid_request", "the request is malformed".to_owned()),
        other => (
            "error",
            other.canonical_reason().unwrap_or("error").to_owned(),
        ),
    };
    error_response(status, code, message)
}

/// JSON 404 for routes that do not exist.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// JSON 405 for a route that does not take the request's method.
pub async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// The token of an `Authorization: Bearer <token>` header (trimmed), if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// 503 `unavailable` with `message` when something a request needs (a secret read on first use)
/// cannot be read now; logs `{what} unavailable: {error}`.
pub fn unavailable(what: &str, error: impl std::fmt::Display, message: &str) -> Response {
    tracing::error!("{what} unavailable: {error}");
    error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
}

/// 503 `unavailable` for a store that failed; logs `{who}: storage failed` with the error.
pub fn storage_unavailable(who: &str, error: impl std::fmt::Display) -> Response {
    tracing::error!(error = %error, "{who}: storage failed");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "storage is unavailable, try again",
    )
}

/// Whether a body is absent: empty or only white space (what a route without a body accepts, as
/// it accepts `{}`).
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Serves `app` on Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else on `127.0.0.1:$PORT`.
pub async fn serve(app: Router, default_port: u16) -> Result<(), lambda_http::Error> {
    if crate::telemetry::on_lambda() {
        return run_lambda(app).await;
    }
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(default_port);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The Lambda runtime loop for an HTTP function.
pub async fn run_lambda(app: Router) -> Result<(), lambda_http::Error> {
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        lambda_entry(app.clone(), event)
    }))
    .await
}

/// One API Gateway event (REST v1 or HTTP API v2) through `app`, answered in the event's format.
pub async fn lambda_entry(
    app: Router,
    event: LambdaEvent<Value>,
) -> Result<Value, lambda_http::Error> {
    let (payload, context) = event.into_parts();
    if let Some(problem) = body_encoding_problem(&payload) {
        tracing::warn!("refused an event: {problem}");
        return Ok(gateway_error(400, "invalid_body_encoding", problem));
    }
    let request: LambdaRequest = match serde_json::from_value(payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!("refused an event that is not an HTTP request: {e}");
            return Ok(gateway_error(
                400,
                "invalid_event",
                "not an API Gateway HTTP event",
            ));
        }
    };
    let response = lambda_http::Adapter::from(app)
        .oneshot(LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// A body flagged `isBase64Encoded` must be valid base64.
fn body_encoding_problem(payload: &Value) -> Option<&'static str> {
    let encoded = payload.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    let body = payload.get("body").and_then(Value::as_str)?;
    (encoded
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err())
    .then_some("body is flagged isBase64Encoded but is not valid base64")
}

/// A proxy-integration response that both REST (v1) and HTTP (v2) APIs accept.
fn gateway_error(status: u16, code: &str, message: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": { "content-type": "application/json" },
        "multiValueHeaders": {},
        "body": error_body(code, message, None).to_string(),
        "isBase64Encoded": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_the_trimmed_rest_of_the_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn a_blank_body_is_empty_or_white_space() {
        assert!(is_blank(b""));
        assert!(is_blank(b" \r\n\t"));
        assert!(!is_blank(b"{}"));
    }
}
