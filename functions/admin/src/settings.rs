//! `/admin/v1/settings`: system-wide settings (the retention period).

use crate::{AdminError, AdminState, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::settings::load_settings;
use omniline_domain::input::Fields;
use omniline_domain::settings::{Settings, RETENTION_DAYS_MAX, SETTINGS_ID, SETTINGS_KIND};
use omniline_ports::{Expect, PortError};
use serde_json::json;

fn settings_json(settings: &Settings, version: u64) -> serde_json::Value {
    json!({ "retentionDays": settings.retention_days, "version": version })
}

pub(crate) async fn get_settings(State(state): State<AdminState>) -> Result<Response> {
    let (settings, version) = load_settings(state.config.as_ref()).await?;
    Ok(Json(settings_json(&settings, version)).into_response())
}

pub(crate) async fn update_settings(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<Response> {
    let (mut settings, version) = load_settings(state.config.as_ref()).await?;
    let mut fields = Fields::parse(&body)?;
    if fields.has("retentionDays") {
        settings.retention_days = fields
            .integer("retentionDays", 1, i64::from(RETENTION_DAYS_MAX))?
            .map(|d| d as u32);
    }
    fields.finish()?;
    let doc = serde_json::to_string(&settings)
        .map_err(|e| AdminError::Store(PortError::Unavailable(format!("settings: {e}"))))?;
    let expect = if version == 0 {
        Expect::Absent
    } else {
        Expect::Version(version)
    };
    let version = state
        .config
        .put_doc(SETTINGS_KIND, SETTINGS_ID, &doc, expect)
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    tracing::info!(retention_days = ?settings.retention_days, "settings updated");
    Ok(Json(settings_json(&settings, version)).into_response())
}
