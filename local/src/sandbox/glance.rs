//! The admin glance of the sandbox page: the account's callback URL and webhook counters, the
//! workstream and rules in force, queues and agents — read through the admin API (server side,
//! so the page never holds the admin token) and passed on without a secret.

use super::phone::PhoneError;
use super::SandboxState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use reqwest::Method;
use serde_json::{json, Value};

pub async fn glance(State(s): State<SandboxState>) -> Result<Response, PhoneError> {
    let channel = s.ready_channel()?;
    let account_id = channel.account_id.clone().ok_or(PhoneError::Starting)?;
    let get = |path: String| {
        let admin = &s.admin;
        async move {
            admin
                .call(Method::GET, &path, None)
                .await
                .map_err(|e| PhoneError::Unavailable(e.to_string()))
        }
    };
    let account = get(format!("/admin/v1/accounts/{account_id}")).await?;
    let stats = get(format!("/admin/v1/accounts/{account_id}/webhook-stats")).await?;
    // The account's workstream, whichever it is now (an admin may have replaced the sandbox's).
    let workstream = get("/admin/v1/workstreams".into()).await?.and_then(|all| {
        all.get("workstreams")
            .and_then(Value::as_array)?
            .iter()
            .find(|w| w.get("accountId").and_then(Value::as_str) == Some(&account_id))
            .cloned()
    });
    let rules = match workstream
        .as_ref()
        .and_then(|w| w.get("id"))
        .and_then(Value::as_str)
    {
        Some(id) => get(format!("/admin/v1/workstreams/{id}/rules"))
            .await?
            .and_then(|r| r.get("rules").cloned())
            .unwrap_or(json!([])),
        None => json!([]),
    };
    let list = |v: Option<Value>, key: &str, fields: &[&str]| -> Value {
        let items = v
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Value::Array(
            items
                .iter()
                .map(|item| {
                    fields
                        .iter()
                        .map(|f| (f.to_string(), item.get(*f).cloned().unwrap_or(Value::Null)))
                        .collect::<serde_json::Map<_, _>>()
                        .into()
                })
                .collect(),
        )
    };
    let queues = list(
        get("/admin/v1/queues".into()).await?,
        "queues",
        &["id", "name"],
    );
    let agents = list(
        get("/admin/v1/agents".into()).await?,
        "agents",
        &["id", "name", "status", "capacity", "activeConversations"],
    );
    Ok(Json(json!({
        "account": account,
        "webhookStats": stats,
        "workstream": workstream,
        "rules": rules,
        "queues": queues,
        "agents": agents,
    }))
    .into_response())
}
