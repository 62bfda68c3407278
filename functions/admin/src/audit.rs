//! `GET /admin/v1/audit?from=&to=`: every admin change and supervisor action in the period (RFC
//! 3339 times; the last 24 hours by default, 31 days at most), newest first, at most 1,000.

use crate::error::Result;
use crate::period::{period, DAY_MS};
use crate::AdminState;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::audit::AuditError;
use omniline_domain::input::{InputError, Query};
use serde_json::json;

pub(crate) async fn trail(
    State(state): State<AdminState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = Query::parse(query.as_deref(), &["from", "to"])?;
    let (from, to) = period(&query, state.service.clock_millis(), DAY_MS)?;
    let (records, truncated) = match state.service.audit_trail(from, to).await {
        Ok(found) => found,
        Err(AuditError::Period) => {
            return Err(InputError::new(
                "from",
                "to must not be before from, and the period is at most 31 days",
            )
            .into())
        }
        Err(AuditError::Store(e)) => return Err(omniline_app::admin::AdminError::Store(e).into()),
    };
    Ok(Json(json!({ "records": records, "truncated": truncated })).into_response())
}
