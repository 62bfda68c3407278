//! `/admin/v1/queues`: where classified work waits. Deleting a queue a workstream or rule uses is
//! refused (409 `queue_in_use`, naming them).

use crate::error::{path_id, PathId, Result};
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::queues::{NewQueue, QueuePatch, StoredQueue};
use omniline_domain::input::Fields;
use serde_json::{json, Value};

/// At most this many skills per queue, agent or rule.
pub(crate) const MAX_SKILLS: usize = 20;
/// Longest skill name.
pub(crate) const MAX_SKILL_CHARS: usize = 50;

/// `skills`: a list of skill names.
pub(crate) fn skills(fields: &mut Fields) -> Result<Option<Vec<String>>> {
    Ok(fields.string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)?)
}

fn queue_json(stored: &StoredQueue) -> Value {
    let queue = &stored.queue;
    json!({
        "id": queue.id,
        "name": queue.name,
        "skills": queue.skills,
        "createdAt": queue.created_at,
        "updatedAt": queue.updated_at,
        "version": stored.version,
    })
}

pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response> {
    let queues = state.service.queues().await?;
    let items: Vec<Value> = queues.iter().map(queue_json).collect();
    Ok(Json(json!({ "queues": items })).into_response())
}

pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let queue = state.service.queue(&path_id(id, "queue")?).await?;
    Ok(Json(queue_json(&queue)).into_response())
}

/// `{"name", "skills"?}`.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or_else(|| fields.missing("name"))?;
    let skills = skills(&mut fields)?.unwrap_or_default();
    fields.finish()?;
    let queue = state
        .service
        .create_queue(NewQueue { name, skills })
        .await?;
    Ok((StatusCode::CREATED, Json(queue_json(&queue))).into_response())
}

/// `{"name"?, "skills"?}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let current = state.service.queue(&path_id(id, "queue")?).await?;
    let mut fields = Fields::parse(&body)?;
    let patch = QueuePatch {
        name: fields.name("name")?,
        skills: skills(&mut fields)?,
    };
    fields.finish()?;
    let queue = state.service.update_queue(current, patch).await?;
    Ok(Json(queue_json(&queue)).into_response())
}

pub(crate) async fn delete(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    state.service.delete_queue(&path_id(id, "queue")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
