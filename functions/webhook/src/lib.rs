//! The webhook function: `POST /line/webhook/{accountId}`.
//!
//! Reads the raw body (at most 1 MiB), hands it to [`WebhookIngest`] and maps the outcome to LINE:
//! 200 when every event is queued, 401 (one body for every cause) for a missing or wrong
//! signature or an unknown account, 400 for a signed body that is not a webhook, 413 above 1 MiB,
//! 503 when queueing failed so that LINE redelivers.

pub mod media;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use omniline_app::ingest::{IngestError, WebhookIngest, MAX_BODY_BYTES};
use omniline_runtime::http::error_response;
use std::sync::Arc;

/// The webhook routes, over any adapters.
pub fn router(ingest: Arc<WebhookIngest>) -> Router {
    Router::new()
        .route("/line/webhook/{account_id}", post(receive))
        .with_state(ingest)
}

async fn receive(
    State(ingest): State<Arc<WebhookIngest>>,
    account_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path(account_id)) = account_id else {
        return unauthorized();
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return to_response(ingest.reject_too_large(&account_id).await);
    }
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return to_response(ingest.reject_too_large(&account_id).await);
        }
        Err(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "request body could not be read",
            );
        }
    };
    let signature = headers
        .get("x-line-signature")
        .and_then(|v| v.to_str().ok());
    match ingest.ingest(&account_id, signature, &bytes).await {
        Ok(accepted) => (
            StatusCode::OK,
            Json(serde_json::json!({ "queued": accepted.queued })),
        )
            .into_response(),
        Err(e) => to_response(e),
    }
}

fn unauthorized() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or invalid X-Line-Signature, or unknown account",
    )
}

fn to_response(error: IngestError) -> Response {
    match error {
        IngestError::Unauthorized(_) => unauthorized(),
        IngestError::NotWebhook(message) => {
            error_response(StatusCode::BAD_REQUEST, "invalid_webhook", message)
        }
        IngestError::TooLarge => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("webhook bodies are limited to {MAX_BODY_BYTES} bytes"),
        ),
        IngestError::Unavailable(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "events could not be queued; LINE will redeliver",
        ),
    }
}
