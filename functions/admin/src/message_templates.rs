//! `/admin/v1/message-templates`: LINE messages with `{{variables}}` that agents send by id
//! (`POST /agent/v1/conversations/{id}/messages` `{"type": "messageTemplate", "templateId",
//! "variables"}`). A message LINE would refuse is 422 `invalid_message` naming the property.

use crate::error::{path_id, PathId, Result};
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::message_templates::{StoredTemplate, TemplatePatch};
use omniline_domain::input::Fields;
use omniline_domain::message_templates::MAX_VARIABLES;
use serde_json::{json, Value};

fn template_json(stored: &StoredTemplate) -> Value {
    let t = &stored.template;
    json!({
        "id": t.id,
        "name": t.name,
        "messages": t.messages,
        "variables": t.variables,
        "createdAt": t.created_at,
        "updatedAt": t.updated_at,
        "version": stored.version,
    })
}

/// `messages`: an array of LINE message objects (checked by the use case).
fn messages(fields: &mut Fields) -> Result<Option<Vec<Value>>> {
    match fields.take("messages") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(omniline_domain::input::InputError::new(
            &fields.path("messages"),
            "messages must be an array of LINE message objects",
        )
        .into()),
    }
}

pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response> {
    let all = state.service.message_templates().await?;
    let items: Vec<Value> = all.iter().map(template_json).collect();
    Ok(Json(json!({ "messageTemplates": items })).into_response())
}

pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let template = state
        .service
        .message_template(&path_id(id, "message template")?)
        .await?;
    Ok(Json(template_json(&template)).into_response())
}

/// `{"name", "messages": [LINE message objects], "variables"?: ["orderId", …]}`.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or_else(|| fields.missing("name"))?;
    let messages = messages(&mut fields)?.ok_or_else(|| fields.missing("messages"))?;
    let variables = fields
        .string_list("variables", MAX_VARIABLES, 30)?
        .unwrap_or_default();
    fields.finish()?;
    let template = state
        .service
        .create_message_template(name, messages, variables)
        .await?;
    Ok((StatusCode::CREATED, Json(template_json(&template))).into_response())
}

/// `{"name"?, "messages"?, "variables"?}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let current = state
        .service
        .message_template(&path_id(id, "message template")?)
        .await?;
    let mut fields = Fields::parse(&body)?;
    let patch = TemplatePatch {
        name: fields.name("name")?,
        messages: messages(&mut fields)?,
        variables: fields.string_list("variables", MAX_VARIABLES, 30)?,
    };
    fields.finish()?;
    let template = state
        .service
        .update_message_template(current, patch)
        .await?;
    Ok(Json(template_json(&template)).into_response())
}

pub(crate) async fn delete(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    state
        .service
        .delete_message_template(&path_id(id, "message template")?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
