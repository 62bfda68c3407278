//! `/admin/v1/agents`: the people who answer. The operational record (queues, skills, capacity,
//! status, active conversations) is the [`omniline_ports::AgentStore`]'s; the admin-side record
//! (email, the hash of the agent API token) is an [`AgentAccount`] in the config store. The token
//! is returned once, on creation and on rotation.

use crate::queues::{path_id, require_queue, MAX_SKILLS, MAX_SKILL_CHARS};
use crate::{AdminError, AdminState, Result};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::agents::{
    issue_agent_token, Agent, AgentAccount, AgentStatus, AGENT_ACCOUNT_KIND,
};
use omniline_domain::clock::{new_id, now_millis, rfc3339_millis};
use omniline_domain::input::Fields;
use omniline_ports::{ConfigDoc, Expect, PortError};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most conversations one agent may hold at once.
const MAX_CAPACITY: i64 = 100;
/// Most queues one agent may serve.
const MAX_QUEUES: usize = 50;

fn agent_json(agent: &Agent, account: &AgentAccount) -> Value {
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

fn parse_account(doc: &ConfigDoc) -> Result<AgentAccount> {
    serde_json::from_str(&doc.doc).map_err(|e| {
        AdminError::Store(PortError::Unavailable(format!(
            "stored agent account {} does not parse: {e}",
            doc.id
        )))
    })
}

fn account_doc(account: &AgentAccount) -> Result<String> {
    serde_json::to_string(account).map_err(|e| {
        AdminError::Store(PortError::Unavailable(format!(
            "agent account does not serialise: {e}"
        )))
    })
}

/// The agent, its admin record and that record's version, or 404.
async fn load(state: &AdminState, id: &str) -> Result<(Agent, AgentAccount, u64)> {
    let doc = state
        .config
        .get_doc(AGENT_ACCOUNT_KIND, id)
        .await?
        .ok_or(AdminError::NotFound("agent"))?;
    let account = parse_account(&doc)?;
    let agent = state
        .agents
        .agent(id)
        .await?
        .ok_or(AdminError::NotFound("agent"))?;
    Ok((agent, account, doc.version))
}

/// `queueIds`, each an existing queue.
async fn queue_ids(state: &AdminState, fields: &mut Fields) -> Result<Option<Vec<String>>> {
    let Some(ids) = fields.string_list("queueIds", MAX_QUEUES, 100)? else {
        return Ok(None);
    };
    for (i, id) in ids.iter().enumerate() {
        require_queue(state, &format!("queueIds[{i}]"), id).await?;
    }
    Ok(Some(ids))
}

pub(crate) async fn list_agents(State(state): State<AdminState>) -> Result<Response> {
    let accounts: HashMap<String, AgentAccount> = state
        .config
        .list_docs(AGENT_ACCOUNT_KIND)
        .await?
        .iter()
        .map(|doc| Ok((doc.id.clone(), parse_account(doc)?)))
        .collect::<Result<_>>()?;
    let mut items: Vec<(&AgentAccount, Agent)> = Vec::new();
    for agent in state.agents.list_agents().await? {
        // Agents without an admin record were not created through this API (seeded): skip.
        if let Some(account) = accounts.get(&agent.id) {
            items.push((account, agent));
        }
    }
    items.sort_by(|(a, x), (b, y)| a.created_at.cmp(&b.created_at).then(x.id.cmp(&y.id)));
    let agents: Vec<Value> = items
        .iter()
        .map(|(acc, agent)| agent_json(agent, acc))
        .collect();
    Ok(Json(json!({ "agents": agents })).into_response())
}

pub(crate) async fn get_agent(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "agent")?;
    let (agent, account, _) = load(&state, &id).await?;
    Ok(Json(agent_json(&agent, &account)).into_response())
}

pub(crate) async fn create_agent(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or_else(|| fields.missing("name"))?;
    let email = fields
        .email("email")?
        .ok_or_else(|| fields.missing("email"))?;
    let capacity = fields
        .integer("capacity", 1, MAX_CAPACITY)?
        .ok_or_else(|| fields.missing("capacity"))?;
    let skills = fields
        .string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)?
        .unwrap_or_default();
    let queues = queue_ids(&state, &mut fields).await?;
    let queues = match queues {
        Some(queues) => queues,
        None if fields.has("queueIds") => Vec::new(),
        None => return Err(fields.missing("queueIds").into()),
    };
    fields.finish()?;

    let id = new_id();
    let (token, token_hash) = issue_agent_token(&id);
    let now = rfc3339_millis(now_millis());
    let account = AgentAccount {
        id: id.clone(),
        email,
        token_hash,
        created_at: now.clone(),
        updated_at: now,
    };
    let agent = Agent {
        id: id.clone(),
        name,
        queues,
        skills,
        capacity: capacity as u32,
        status: AgentStatus::Offline,
        active_conversations: Vec::new(),
        last_assigned_at: None,
    };
    // The operational record first: an agent without an admin record is invisible to the admin
    // API and cannot log in, so a failure between the two writes leaves nothing usable behind.
    state.agents.put_agent(&agent).await?;
    state
        .config
        .put_doc(
            AGENT_ACCOUNT_KIND,
            &id,
            &account_doc(&account)?,
            Expect::Absent,
        )
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    tracing::info!(agent_id = %id, "agent created");
    let mut body = agent_json(&agent, &account);
    body["token"] = Value::String(token.expose().to_owned());
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(crate) async fn update_agent(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "agent")?;
    let (mut agent, mut account, version) = load(&state, &id).await?;
    let mut fields = Fields::parse(&body)?;
    if let Some(name) = fields.name("name")? {
        agent.name = name;
    }
    if let Some(email) = fields.email("email")? {
        account.email = email;
    }
    if let Some(capacity) = fields.integer("capacity", 1, MAX_CAPACITY)? {
        agent.capacity = capacity as u32;
    }
    if let Some(skills) = fields.string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)? {
        agent.skills = skills;
    }
    if let Some(queues) = queue_ids(&state, &mut fields).await? {
        agent.queues = queues;
    }
    fields.finish()?;
    account.updated_at = rfc3339_millis(now_millis());
    state
        .config
        .put_doc(
            AGENT_ACCOUNT_KIND,
            &id,
            &account_doc(&account)?,
            Expect::Version(version),
        )
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    state.agents.put_agent(&agent).await?;
    let agent = state.agents.agent(&id).await?.unwrap_or(agent);
    Ok(Json(agent_json(&agent, &account)).into_response())
}

pub(crate) async fn delete_agent(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "agent")?;
    let (agent, _, _) = load(&state, &id).await?;
    if agent.active_count() > 0 {
        return Err(AdminError::Conflict {
            code: "agent_busy",
            message: format!(
                "the agent still holds {} active conversation(s); transfer or close them first",
                agent.active_count()
            ),
            field: None,
            used_by: Some(json!(agent
                .active_conversations
                .iter()
                .map(|c| json!({ "kind": "conversation", "id": c }))
                .collect::<Vec<_>>())),
        });
    }
    // The admin record (and with it the token) first: the agent can no longer log in.
    state.config.delete_doc(AGENT_ACCOUNT_KIND, &id).await?;
    state.agents.delete_agent(&id).await?;
    tracing::info!(agent_id = %id, "agent deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn rotate_token(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "agent")?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        Fields::parse(&body)?.finish()?;
    }
    let (_, mut account, version) = load(&state, &id).await?;
    let (token, token_hash) = issue_agent_token(&id);
    account.token_hash = token_hash;
    account.updated_at = rfc3339_millis(now_millis());
    state
        .config
        .put_doc(
            AGENT_ACCOUNT_KIND,
            &id,
            &account_doc(&account)?,
            Expect::Version(version),
        )
        .await?
        .ok_or_else(AdminError::version_conflict)?;
    tracing::info!(agent_id = %id, "agent token rotated");
    Ok(Json(json!({ "id": id, "token": token.expose() })).into_response())
}
