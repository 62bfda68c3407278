//! `GET /admin/v1/audit?from=&to=`: every admin change and supervisor action in the period (RFC
//! 3339 times; the last 24 hours by default, 31 days at most), newest first, at most 1,000.

use crate::error::Result;
use crate::AdminState;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::audit::AuditError;
use omniline_domain::clock::parse_rfc3339_millis;
use omniline_domain::input::{InputError, Query};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;

pub(crate) async fn trail(
    State(state): State<AdminState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = Query::parse(query.as_deref(), &["from", "to"])?;
    let time = |name: &str| -> Result<Option<i64>> {
        match query.get(name) {
            None => Ok(None),
            Some(v) => parse_rfc3339_millis(v).map(Some).ok_or_else(|| {
                InputError::new(name, format!("{name} must be an RFC 3339 time")).into()
            }),
        }
    };
    let to = time("to")?.unwrap_or_else(|| state.service.clock_millis());
    let from = time("from")?.unwrap_or(to - DAY_MS);
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
