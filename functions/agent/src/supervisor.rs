//! Supervisors' routes: `GET /agent/v1/supervisor/overview`, `GET
//! /agent/v1/supervisor/conversations/{id}` (any conversation, read only) and `POST
//! /agent/v1/conversations/{id}/assign` `{"agentId"}`. Who may: a person signed in with OpenID
//! Connect in the `supervisor` or `admin` group, or the admin token; an agent token is a 403.

use crate::conversations::{conversation_json, line_json, page_query, path_id, PathId};
use crate::{AgentState, ApiError};
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use omniline_domain::identity::{looks_like_jwt, Role};
use omniline_domain::input::Fields;
use omniline_runtime::http::{bearer_token, error_response};
use serde_json::{json, Value};

/// Who acts as a supervisor: a person's email, or "admin token".
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub by: String,
}

fn unauthorized() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or invalid credential (Authorization: Bearer <a supervisor's ID token or the admin token>)",
    )
}

fn not_supervisor() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "forbidden",
        "supervisors only: sign in with your organization in the supervisor or admin group, or use the admin token",
    )
}

/// The admin token, or an ID token of the `supervisor` or `admin` group: a [`Supervisor`] in
/// the request's extensions; a valid agent token or a person outside those groups is 403.
pub(crate) async fn authenticate(
    State(state): State<AgentState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer_token(request.headers()).map(str::to_owned) else {
        return unauthorized();
    };
    if let Some(oidc) = state.oidc.as_ref().filter(|_| looks_like_jwt(&token)) {
        return match oidc.verify(&token).await {
            Ok(identity) if identity.has(Role::Supervisor) || identity.has(Role::Admin) => {
                request
                    .extensions_mut()
                    .insert(Supervisor { by: identity.email });
                next.run(request).await
            }
            Ok(_) => not_supervisor(),
            Err(e) => crate::sign_in_refused(e),
        };
    }
    if let Some(admin_token) = &state.admin_token {
        let admin_token = match admin_token.get().await {
            Ok(secret) => secret,
            Err(e) => {
                tracing::warn!(error = %e, "admin token unreadable");
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the admin token cannot be read now; try again later",
                );
            }
        };
        if admin_token.matches(&token) {
            request.extensions_mut().insert(Supervisor {
                by: "admin token".into(),
            });
            return next.run(request).await;
        }
    }
    match state.service.authenticate(&token).await {
        Ok(Some(_)) => not_supervisor(),
        Ok(None) => unauthorized(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /agent/v1/supervisor/overview`: per queue `waiting`, `oldestWaitingSince`, `active`; per
/// agent presence, load and conversations.
pub(crate) async fn overview(State(state): State<AgentState>) -> Result<Response, ApiError> {
    let overview = state.service.supervisor_overview().await?;
    let queues: Vec<Value> = overview
        .queues
        .iter()
        .map(|q| {
            json!({
                "id": q.queue.id, "name": q.queue.name, "waiting": q.waiting,
                "oldestWaitingSince": q.oldest_waiting_since, "active": q.active,
            })
        })
        .collect();
    let agents: Vec<Value> = overview
        .agents
        .iter()
        .map(|a| {
            let mut conversations: Vec<&String> = a.active_conversations.iter().collect();
            conversations.sort();
            json!({
                "id": a.id, "name": a.name, "status": a.status.as_str(), "queueIds": a.queues,
                "capacity": a.capacity, "activeConversations": a.active_count(),
                "conversationIds": conversations, "lastSeenAt": a.last_seen_at,
            })
        })
        .collect();
    Ok(Json(json!({ "queues": queues, "agents": agents })).into_response())
}

/// `GET /agent/v1/supervisor/conversations/{id}?before=&limit=`: any conversation and a page of
/// its timeline, read only.
pub(crate) async fn conversation(
    State(state): State<AgentState>,
    id: PathId,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let (before, limit) = page_query(query.as_deref())?;
    let (c, page) = state
        .service
        .monitor_conversation(&id, before, limit)
        .await?;
    let messages: Vec<Value> = page.lines.iter().map(line_json).collect();
    Ok(Json(json!({
        "conversation": conversation_json(&c),
        "messages": messages,
        "nextBefore": page.next_before,
    }))
    .into_response())
}

/// `POST /agent/v1/conversations/{id}/assign` `{"agentId"}`: gives the open conversation to
/// that agent, whoever holds it.
pub(crate) async fn assign(
    State(state): State<AgentState>,
    Extension(supervisor): Extension<Supervisor>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut fields = Fields::parse(&body)?;
    let agent_id = fields
        .text("agentId", 1, 100)?
        .ok_or_else(|| fields.missing("agentId"))?;
    fields.finish()?;
    let c = state
        .service
        .reassign(&supervisor.by, &id, &agent_id)
        .await?;
    tracing::info!(audit = true, actor = %supervisor.by, conversation_id = %id, to = %agent_id, "supervisor reassigned a conversation");
    Ok(Json(conversation_json(&c)).into_response())
}
