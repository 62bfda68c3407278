//! Errors of the admin routes, mapped once to `{"error": {"code", "message", "field"?,
//! "usedBy"?}}`: the request's own ([`InputError`], an unusable path) and the use cases'
//! ([`AdminError`]).

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::{AdminError, UsedBy};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::PortError;
use omniline_runtime::http::{
    coded_field_error, error_body, error_response, field_error, storage_unavailable,
};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Admin(#[from] AdminError),
}

pub(crate) type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A path's `{id}`.
pub(crate) type PathId = std::result::Result<Path<String>, PathRejection>;

/// The path's parameters; a path that does not parse names nothing that exists: 404 `what`.
pub(crate) fn path_id<T>(
    path: std::result::Result<Path<T>, PathRejection>,
    what: &'static str,
) -> Result<T> {
    path.map(|Path(p)| p)
        .map_err(|_| AdminError::NotFound(what).into())
}

/// 400 naming the first of `names` the body lacks (or gives as `null`).
pub(crate) fn required(fields: &Fields, names: &[&str]) -> Result<(), InputError> {
    match names.iter().find(|name| fields.value_is_missing(name)) {
        Some(name) => Err(fields.missing(name)),
        None => Ok(()),
    }
}

/// `{"kind", "id", "name"?, "workstreamId"?}`.
fn used_by_json(used_by: &[UsedBy]) -> Value {
    let items = used_by.iter().map(|u| {
        let mut item = json!({ "kind": u.kind(), "id": u.id() });
        if let Some(name) = u.name() {
            item["name"] = json!(name);
        }
        if let UsedBy::Rule { workstream_id, .. } = u {
            item["workstreamId"] = json!(workstream_id);
        }
        item
    });
    Value::Array(items.collect())
}

/// 409 with a code, optionally naming a field and what uses the resource.
fn conflict(
    code: &str,
    message: &str,
    field: Option<&str>,
    used_by: Option<&[UsedBy]>,
) -> Response {
    let mut body = error_body(code, message, field);
    if let Some(used_by) = used_by {
        body["error"]["usedBy"] = used_by_json(used_by);
    }
    (StatusCode::CONFLICT, Json(body)).into_response()
}

fn admin_error(e: AdminError) -> Response {
    use StatusCode as S;
    let message = e.to_string();
    match e {
        AdminError::Invalid { field, .. } => field_error(S::BAD_REQUEST, &field, message),
        AdminError::NotFound(_) => error_response(S::NOT_FOUND, "not_found", message),
        AdminError::VersionConflict => conflict("version_conflict", &message, None, None),
        AdminError::InvalidMessage { field, .. } => coded_field_error(
            S::UNPROCESSABLE_ENTITY,
            "invalid_message",
            &field,
            format!("{field}: {message}"),
        ),
        AdminError::EmailTaken => conflict("email_taken", &message, Some("email"), None),
        AdminError::ShortcutTaken => conflict("shortcut_taken", &message, Some("shortcut"), None),
        AdminError::AgentBusy(used_by) => conflict("agent_busy", &message, None, Some(&used_by)),
        AdminError::QueueInUse(used_by) => conflict("queue_in_use", &message, None, Some(&used_by)),
        AdminError::BotInUse(_) => conflict("bot_in_use", &message, Some("bot"), None),
        AdminError::WorkstreamExists(id) => {
            let existing = [UsedBy::Workstream { id, name: None }];
            conflict(
                "workstream_exists",
                &message,
                Some("accountId"),
                Some(&existing),
            )
        }
        AdminError::PurgeInProgress(_) => {
            coded_field_error(S::CONFLICT, "purge_in_progress", "accountId", message)
        }
        AdminError::UnknownReference { field, .. } => coded_field_error(
            S::UNPROCESSABLE_ENTITY,
            "unknown_reference",
            &field,
            message,
        ),
        AdminError::TooManyRules => {
            coded_field_error(S::UNPROCESSABLE_ENTITY, "too_many_rules", "rules", message)
        }
        AdminError::InvalidCondition { field, .. } => coded_field_error(
            S::UNPROCESSABLE_ENTITY,
            "invalid_condition",
            &field,
            message,
        ),
        AdminError::InvalidRule { field, .. } => {
            coded_field_error(S::UNPROCESSABLE_ENTITY, "invalid_rule", &field, message)
        }
        AdminError::TokenRejected(_) | AdminError::TokenForAnotherBot(_) => coded_field_error(
            S::UNPROCESSABLE_ENTITY,
            "line_rejected_token",
            "channelAccessToken",
            message,
        ),
        AdminError::CredentialsRejected(_) => coded_field_error(
            S::UNPROCESSABLE_ENTITY,
            "line_rejected_credentials",
            "channelSecret",
            message,
        ),
        AdminError::AlreadyConnected(_) => coded_field_error(
            S::CONFLICT,
            "already_connected",
            "channelAccessToken",
            message,
        ),
        AdminError::LineUnavailable(_) => {
            error_response(S::BAD_GATEWAY, "line_unavailable", message)
        }
        AdminError::Store(PortError::Conflict(_)) => admin_error(AdminError::VersionConflict),
        AdminError::Store(e) => storage_unavailable("admin", e),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Input(e) => field_error(StatusCode::BAD_REQUEST, e.field(), e.message()),
            ApiError::Admin(e) => admin_error(e),
        }
    }
}
