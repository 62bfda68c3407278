//! `/admin/v1/agents`: the people who answer, and their agent API tokens (returned once, on
//! creation and on rotation).

use crate::error::{path_id, PathId, Result};
use crate::queues::skills;
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::agents::{AgentPatch, AgentRecord, NewAgent};
use omniline_app::admin::ExistingQueue;
use omniline_domain::input::Fields;
use omniline_runtime::http::is_blank;
use serde_json::{json, Value};

/// Most conversations one agent may hold at once.
const MAX_CAPACITY: i64 = 100;
/// Most queues one agent may serve.
const MAX_QUEUES: usize = 50;

fn agent_json(record: &AgentRecord) -> Value {
    let (agent, account) = (&record.agent, &record.account);
    json!({
        "id": agent.id,
        "name": agent.name,
        "email": account.email,
        "queueIds": agent.queues,
        "capacity": agent.capacity,
        "skills": agent.skills,
        "status": agent.status.as_str(),
        "activeConversations": agent.active_count(),
        "createdAt": account.created_at,
        "updatedAt": account.updated_at,
    })
}

/// `capacity`: 1 to [`MAX_CAPACITY`].
fn capacity(fields: &mut Fields) -> Result<Option<u32>> {
    Ok(fields
        .integer("capacity", 1, MAX_CAPACITY)?
        .map(|c| c as u32))
}

/// `queueIds`, each an existing queue.
async fn queue_ids(state: &AdminState, fields: &mut Fields) -> Result<Option<Vec<ExistingQueue>>> {
    let Some(ids) = fields.string_list("queueIds", MAX_QUEUES, 100)? else {
        return Ok(None);
    };
    Ok(Some(state.service.existing_queues("queueIds", ids).await?))
}

pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response> {
    let agents: Vec<Value> = state
        .service
        .agents()
        .await?
        .iter()
        .map(agent_json)
        .collect();
    Ok(Json(json!({ "agents": agents })).into_response())
}

pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let record = state.service.agent(&path_id(id, "agent")?).await?;
    Ok(Json(agent_json(&record)).into_response())
}

/// `{"name", "email", "capacity", "queueIds", "skills"?}` → 201 with the agent's `token`.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or_else(|| fields.missing("name"))?;
    let email = fields
        .email("email")?
        .ok_or_else(|| fields.missing("email"))?;
    let capacity = capacity(&mut fields)?.ok_or_else(|| fields.missing("capacity"))?;
    let skills = skills(&mut fields)?.unwrap_or_default();
    let queues = match queue_ids(&state, &mut fields).await? {
        Some(queues) => queues,
        None if fields.has("queueIds") => Vec::new(),
        None => return Err(fields.missing("queueIds").into()),
    };
    fields.finish()?;
    let new = NewAgent {
        name,
        email,
        capacity,
        skills,
        queues,
    };
    let (record, token) = state.service.create_agent(new).await?;
    let mut body = agent_json(&record);
    body["token"] = Value::String(token.expose().to_owned());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `{"name"?, "email"?, "capacity"?, "skills"?, "queueIds"?}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let current = state.service.agent(&path_id(id, "agent")?).await?;
    let mut fields = Fields::parse(&body)?;
    let patch = AgentPatch {
        name: fields.name("name")?,
        email: fields.email("email")?,
        capacity: capacity(&mut fields)?,
        skills: skills(&mut fields)?,
        queues: queue_ids(&state, &mut fields).await?,
    };
    fields.finish()?;
    let record = state.service.update_agent(current, patch).await?;
    Ok(Json(agent_json(&record)).into_response())
}

pub(crate) async fn delete(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    state.service.delete_agent(&path_id(id, "agent")?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/agents/{id}/token` (no body, or `{}`): a new token; the old one stops working.
pub(crate) async fn rotate_token(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "agent")?;
    if !is_blank(&body) {
        Fields::parse(&body)?.finish()?;
    }
    let token = state.service.rotate_agent_token(&id).await?;
    Ok(Json(json!({ "id": id, "token": token.expose() })).into_response())
}
