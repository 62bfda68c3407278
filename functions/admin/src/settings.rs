//! `/admin/v1/settings`: system-wide settings (the retention period, the presence timeout).

use crate::error::Result;
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::settings::{SettingsPatch, StoredSettings};
use omniline_domain::input::Fields;
use omniline_domain::settings::{PRESENCE_TIMEOUT_MAX, PRESENCE_TIMEOUT_MIN, RETENTION_DAYS_MAX};
use serde_json::{json, Value};

fn settings_json(stored: &StoredSettings) -> Value {
    json!({
        "retentionDays": stored.settings.retention_days,
        "presenceTimeoutSeconds": stored.settings.presence_timeout(),
        "version": stored.version,
    })
}

pub(crate) async fn get(State(state): State<AdminState>) -> Result<Response> {
    let settings = state.service.settings().await?;
    Ok(Json(settings_json(&settings)).into_response())
}

/// `{"retentionDays"?, "presenceTimeoutSeconds"?}` (`null`: the default; a timeout of 0 turns
/// it off, otherwise 60 to 86,400 seconds).
pub(crate) async fn update(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let current = state.service.settings().await?;
    let mut fields = Fields::parse(&body)?;
    let mut patch = SettingsPatch::default();
    if fields.has("retentionDays") {
        patch.retention_days = Some(
            fields
                .integer("retentionDays", 1, i64::from(RETENTION_DAYS_MAX))?
                .map(|d| d as u32),
        );
    }
    if fields.has("presenceTimeoutSeconds") {
        let timeout =
            fields.integer("presenceTimeoutSeconds", 0, i64::from(PRESENCE_TIMEOUT_MAX))?;
        if let Some(t) = timeout {
            if t != 0 && t < i64::from(PRESENCE_TIMEOUT_MIN) {
                return Err(omniline_domain::input::InputError::new(
                    "presenceTimeoutSeconds",
                    format!(
                        "presenceTimeoutSeconds must be 0 (off) or from {PRESENCE_TIMEOUT_MIN} to {PRESENCE_TIMEOUT_MAX}"
                    ),
                )
                .into());
            }
        }
        patch.presence_timeout_seconds = Some(timeout.map(|t| t as u32));
    }
    fields.finish()?;
    let settings = state.service.update_settings(current, patch).await?;
    Ok(Json(settings_json(&settings)).into_response())
}
