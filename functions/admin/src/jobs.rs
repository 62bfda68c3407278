//! `/admin/v1/jobs`: the status of background jobs. An account's purge (`DELETE
//! /admin/v1/accounts/{id}?purge=true`, `DELETE /admin/v1/workstreams/{id}?purge=true`) is
//! recorded as a job and answered `202 Accepted` with it; the schedule runs it page by page.

use crate::error::{path_id, PathId, Result};
use crate::AdminState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::AdminError;
use omniline_app::jobs::PurgeJob;
use serde_json::{json, Value};

/// The admin wire form of a purge job (its cursors are the runner's, not shown).
pub(crate) fn purge_job_json(job: &PurgeJob) -> Value {
    json!({
        "id": job.id,
        "kind": "accountPurge",
        "accountId": job.account_id,
        "status": job.status,
        "stage": job.stage,
        "counts": job.counts,
        "pages": job.pages,
        "lastError": job.last_error,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
    })
}

/// What a deletion answers: `204` without a job, `202` and `{"purgeJob": …}` with one.
pub(crate) fn deleted(job: Option<PurgeJob>) -> Response {
    match job {
        Some(job) => (
            StatusCode::ACCEPTED,
            Json(json!({ "purgeJob": purge_job_json(&job) })),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Job ids are 32 lowercase hex characters; anything else names no job.
fn is_job_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `GET /admin/v1/jobs/{id}`.
pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let id = path_id(id, "job")?;
    if !is_job_id(&id) {
        return Err(AdminError::NotFound("job").into());
    }
    let job = state.service.purge_job(&id).await?;
    Ok(Json(purge_job_json(&job)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_ids_name_jobs() {
        assert!(is_job_id("0123456789abcdef0123456789abcdef"));
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "../../0123456789abcdef0123456789a",
        ] {
            assert!(!is_job_id(bad), "{bad}");
        }
    }
}
