//! `/admin/v1/quick-replies`: texts per language that agents insert by shortcut (`/refund`),
//! with the slugs `{customerName}` and `{agentName}`; limited to some queues or not. Agents
//! read them with `GET /agent/v1/quick-replies?q=`.

use crate::error::{path_id, PathId, Result};
use crate::workstreams::is_language_tag;
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::quick_replies::{QuickReplyPatch, StoredQuickReply};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::quick_replies::{is_shortcut, MAX_LANGUAGES, MAX_QUEUES, MAX_TEXT_CHARS};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn quick_reply_json(stored: &StoredQuickReply) -> Value {
    let r = &stored.reply;
    json!({
        "id": r.id,
        "shortcut": r.shortcut,
        "title": r.title,
        "texts": r.texts,
        "queueIds": r.queue_ids,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
        "version": stored.version,
    })
}

/// `{"shortcut"?, "title"?, "texts"?, "queueIds"?}`, each checked for its form.
fn patch(fields: &mut Fields) -> Result<QuickReplyPatch> {
    let shortcut = fields.text("shortcut", 2, 31)?;
    if let Some(s) = &shortcut {
        if !is_shortcut(s) {
            return Err(InputError::new(
                "shortcut",
                "shortcut is / then 1 to 30 lowercase letters, digits, - or _ (\"/refund\")",
            )
            .into());
        }
    }
    let title = fields.text("title", 1, 100)?;
    let texts = match fields.take("texts") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            if map.is_empty() || map.len() > MAX_LANGUAGES {
                return Err(InputError::new(
                    "texts",
                    format!("texts has 1 to {MAX_LANGUAGES} languages"),
                )
                .into());
            }
            let mut texts = BTreeMap::new();
            for (language, text) in map {
                let field = format!("texts.{language}");
                if !is_language_tag(&language) {
                    return Err(
                        InputError::new(&field, "a language tag such as en, ja, zh-Hant").into(),
                    );
                }
                match text {
                    Value::String(t)
                        if !t.trim().is_empty() && t.chars().count() <= MAX_TEXT_CHARS =>
                    {
                        texts.insert(language, t);
                    }
                    _ => {
                        return Err(InputError::new(
                            &field,
                            format!("a text of 1 to {MAX_TEXT_CHARS} characters"),
                        )
                        .into())
                    }
                }
            }
            Some(texts)
        }
        Some(_) => {
            return Err(InputError::new("texts", "texts is an object: language → text").into())
        }
    };
    let queue_ids = fields.string_list("queueIds", MAX_QUEUES, 100)?;
    Ok(QuickReplyPatch {
        shortcut,
        title,
        texts,
        queue_ids,
    })
}

pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response> {
    let all = state.service.quick_replies().await?;
    let items: Vec<Value> = all.iter().map(quick_reply_json).collect();
    Ok(Json(json!({ "quickReplies": items })).into_response())
}

pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let reply = state
        .service
        .quick_reply(&path_id(id, "quick reply")?)
        .await?;
    Ok(Json(quick_reply_json(&reply)).into_response())
}

/// `{"shortcut", "title", "texts": {"en": "…"}, "queueIds"?}`.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    for required in ["shortcut", "title", "texts"] {
        if fields.value_is_missing(required) {
            return Err(fields.missing(required).into());
        }
    }
    let patch = patch(&mut fields)?;
    fields.finish()?;
    let reply = state.service.create_quick_reply(patch).await?;
    Ok((StatusCode::CREATED, Json(quick_reply_json(&reply))).into_response())
}

/// `{"shortcut"?, "title"?, "texts"?, "queueIds"?}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let current = state
        .service
        .quick_reply(&path_id(id, "quick reply")?)
        .await?;
    let mut fields = Fields::parse(&body)?;
    let patch = patch(&mut fields)?;
    fields.finish()?;
    let reply = state.service.update_quick_reply(current, patch).await?;
    Ok(Json(quick_reply_json(&reply)).into_response())
}

pub(crate) async fn delete(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    state
        .service
        .delete_quick_reply(&path_id(id, "quick reply")?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
