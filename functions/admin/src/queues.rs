//! `/admin/v1/queues`: where classified work waits. Records live in the [`ConfigStore`] (kind
//! `queue`); deleting a queue a workstream or rule uses is refused, naming them.

use crate::{AdminError, AdminState, Result};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::clock::{new_id, now_millis, rfc3339_millis};
use omniline_domain::input::Fields;
use omniline_domain::queues::{Queue, QUEUE_KIND};
use omniline_ports::{ConfigDoc, Expect};
use serde_json::{json, Value};

/// At most this many skills per queue, agent or rule.
pub(crate) const MAX_SKILLS: usize = 20;
/// Longest skill name.
pub(crate) const MAX_SKILL_CHARS: usize = 50;

fn queue_json(queue: &Queue, version: u64) -> Value {
    json!({
        "id": queue.id,
        "name": queue.name,
        "skills": queue.skills,
        "createdAt": queue.created_at,
        "updatedAt": queue.updated_at,
        "version": version,
    })
}

fn parse(doc: &ConfigDoc) -> Result<Queue> {
    serde_json::from_str(&doc.doc).map_err(|e| {
        AdminError::Store(omniline_domain::PortError::Unavailable(format!(
            "stored queue {} does not parse: {e}",
            doc.id
        )))
    })
}

fn to_doc(queue: &Queue) -> Result<String> {
    serde_json::to_string(queue).map_err(|e| {
        AdminError::Store(omniline_domain::PortError::Unavailable(format!(
            "queue does not serialise: {e}"
        )))
    })
}

pub(crate) fn path_id(
    path: std::result::Result<Path<String>, PathRejection>,
    what: &'static str,
) -> Result<String> {
    path.map(|Path(id)| id)
        .map_err(|_| AdminError::NotFound(what))
}

/// The queue and its version, or 404.
pub(crate) async fn load_queue(state: &AdminState, id: &str) -> Result<(Queue, u64)> {
    let doc = state
        .config
        .get_doc(QUEUE_KIND, id)
        .await?
        .ok_or(AdminError::NotFound("queue"))?;
    Ok((parse(&doc)?, doc.version))
}

/// Whether a queue with this id exists.
pub(crate) async fn queue_exists(state: &AdminState, id: &str) -> Result<bool> {
    Ok(state.config.get_doc(QUEUE_KIND, id).await?.is_some())
}

/// 422 naming `field` unless queue `id` exists.
pub(crate) async fn require_queue(state: &AdminState, field: &str, id: &str) -> Result<()> {
    if queue_exists(state, id).await? {
        Ok(())
    } else {
        Err(AdminError::unknown_reference(
            field,
            format!("{field}: there is no queue {id:?}"),
        ))
    }
}

pub(crate) async fn list_queues(State(state): State<AdminState>) -> Result<Response> {
    let docs = state.config.list_docs(QUEUE_KIND).await?;
    let mut queues = docs
        .iter()
        .map(|doc| Ok((parse(doc)?, doc.version)))
        .collect::<Result<Vec<_>>>()?;
    queues.sort_by(|(a, _), (b, _)| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let items: Vec<Value> = queues.iter().map(|(q, v)| queue_json(q, *v)).collect();
    Ok(Json(json!({ "queues": items })).into_response())
}

pub(crate) async fn get_queue(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "queue")?;
    let (queue, version) = load_queue(&state, &id).await?;
    Ok(Json(queue_json(&queue, version)).into_response())
}

pub(crate) async fn create_queue(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or_else(|| fields.missing("name"))?;
    let skills = fields
        .string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)?
        .unwrap_or_default();
    fields.finish()?;
    let now = rfc3339_millis(now_millis());
    let queue = Queue {
        id: new_id(),
        name,
        skills,
        created_at: now.clone(),
        updated_at: now,
    };
    let version = state
        .config
        .put_doc(QUEUE_KIND, &queue.id, &to_doc(&queue)?, Expect::Absent)
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    tracing::info!(queue_id = %queue.id, "queue created");
    Ok((StatusCode::CREATED, Json(queue_json(&queue, version))).into_response())
}

pub(crate) async fn update_queue(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "queue")?;
    let (mut queue, version) = load_queue(&state, &id).await?;
    let mut fields = Fields::parse(&body)?;
    if let Some(name) = fields.name("name")? {
        queue.name = name;
    }
    if let Some(skills) = fields.string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)? {
        queue.skills = skills;
    }
    fields.finish()?;
    queue.updated_at = rfc3339_millis(now_millis());
    let version = state
        .config
        .put_doc(QUEUE_KIND, &id, &to_doc(&queue)?, Expect::Version(version))
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    Ok(Json(queue_json(&queue, version)).into_response())
}

pub(crate) async fn delete_queue(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "queue")?;
    load_queue(&state, &id).await?;
    let mut used_by = Vec::new();
    for ws in state.workstreams.list_workstreams().await? {
        if ws.default_queue == id {
            used_by.push(json!({ "kind": "workstream", "id": ws.id, "name": ws.name }));
        }
        for rule in ws.rules.iter().filter(|r| r.result.queue == id) {
            used_by.push(json!({
                "kind": "rule", "id": rule.id, "name": rule.name, "workstreamId": ws.id,
            }));
        }
    }
    if !used_by.is_empty() {
        let names: Vec<String> = used_by
            .iter()
            .map(|u| {
                format!(
                    "{} {:?}",
                    u["kind"].as_str().unwrap_or(""),
                    u["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        return Err(AdminError::Conflict {
            code: "queue_in_use",
            message: format!("the queue is in use by {}", names.join(", ")),
            field: None,
            used_by: Some(Value::Array(used_by)),
        });
    }
    // Agents serving the queue leave it.
    for mut agent in state.agents.list_agents().await? {
        if agent.queues.iter().any(|q| q == &id) {
            agent.queues.retain(|q| q != &id);
            state.agents.put_agent(&agent).await?;
        }
    }
    state.config.delete_doc(QUEUE_KIND, &id).await?;
    tracing::info!(queue_id = %id, "queue deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
