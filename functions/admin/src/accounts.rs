//! `/admin/v1/accounts`: connect, list, read, update and disconnect LINE Official Accounts, and
//! their webhook counters.

use crate::error::{path_id, PathId, Result};
use crate::{public_base, AdminState};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::accounts::{
    callback_url, AccountChange, AccountPatch, NewAccount, WebhookOutcome, WebhookSetup,
};
use omniline_domain::account::Account;
use omniline_domain::input::{Fields, InputError};
use serde_json::{json, Value};

fn account_json(account: &Account, base: &str) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "channelId": account.channel_id,
        "botUserId": account.bot_user_id,
        "basicId": account.basic_id,
        "displayName": account.display_name,
        "callbackUrl": callback_url(base, &account.id),
        "createdAt": account.created_at,
        "updatedAt": account.updated_at,
    })
}

fn webhook_json(setup: &WebhookSetup) -> Value {
    let endpoint = &setup.endpoint;
    match &setup.outcome {
        WebhookOutcome::NotSet(e) => {
            json!({ "endpointSet": false, "endpoint": endpoint, "error": e.to_string() })
        }
        WebhookOutcome::Tested(test) => {
            json!({ "endpointSet": true, "endpoint": endpoint, "test": test })
        }
        WebhookOutcome::TestFailed(e) => json!({
            "endpointSet": true,
            "endpoint": endpoint,
            "test": null,
            "error": format!("webhook test failed: {e}"),
        }),
    }
}

/// The account, with `webhook` when its set-up was asked for.
fn change_json(change: &AccountChange, base: &str) -> Value {
    let mut body = account_json(&change.account, base);
    if let Some(setup) = &change.webhook {
        body["webhook"] = webhook_json(setup);
    }
    body
}

pub(crate) async fn list(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response> {
    let base = public_base(&state, &headers);
    let accounts = state.service.accounts().await?;
    let items: Vec<Value> = accounts.iter().map(|a| account_json(a, &base)).collect();
    Ok(Json(json!({ "accounts": items })).into_response())
}

pub(crate) async fn get(
    State(state): State<AdminState>,
    headers: HeaderMap,
    id: PathId,
) -> Result<Response> {
    let account = state.service.account(&path_id(id, "account")?).await?;
    Ok(Json(account_json(&account, &public_base(&state, &headers))).into_response())
}

/// `{"name", "channelId", "channelSecret", "channelAccessToken"?, "configureWebhook"?}`.
pub(crate) async fn create(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?.ok_or(InputError::missing("name"))?;
    let channel_id = fields
        .channel_id("channelId")?
        .ok_or(InputError::missing("channelId"))?;
    let channel_secret = fields
        .channel_secret("channelSecret")?
        .ok_or(InputError::missing("channelSecret"))?;
    let channel_access_token = fields.access_token("channelAccessToken")?;
    let configure_webhook = fields.boolean("configureWebhook")?.unwrap_or(false);
    fields.finish()?;
    let new = NewAccount {
        name,
        channel_id,
        channel_secret,
        channel_access_token,
        configure_webhook,
    };
    let base = public_base(&state, &headers);
    let connected = state.service.connect_account(new, &base).await?;
    Ok((StatusCode::CREATED, Json(change_json(&connected, &base))).into_response())
}

/// `{"name"?, "channelSecret"?, "channelAccessToken"?, "configureWebhook"?}`.
pub(crate) async fn update(
    State(state): State<AdminState>,
    headers: HeaderMap,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let account = state.service.account(&path_id(id, "account")?).await?;
    let mut fields = Fields::parse(&body)?;
    let patch = AccountPatch {
        name: fields.name("name")?,
        channel_secret: fields.channel_secret("channelSecret")?,
        channel_access_token: fields.access_token("channelAccessToken")?,
        configure_webhook: fields.boolean("configureWebhook")?.unwrap_or(false),
    };
    fields.finish()?;
    let base = public_base(&state, &headers);
    let updated = state.service.update_account(account, patch, &base).await?;
    Ok(Json(change_json(&updated, &base)).into_response())
}

/// `?purge=true` erases the account's data as well, in a background job: `202` with the job
/// (`{"purgeJob": …}`); without, `204`.
pub(crate) async fn delete(
    State(state): State<AdminState>,
    id: PathId,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let id = path_id(id, "account")?;
    let purge = crate::customers::purge_flag(query.as_deref())?;
    let job = state.service.disconnect_account(&id, purge).await?;
    Ok(crate::jobs::deleted(job))
}

/// `GET /admin/v1/accounts/{id}/message-stats`: per month, the LINE calls accepted as free
/// replies and as pushes (which count against the channel's monthly limit), the messages that
/// failed for good, and the share of free replies.
pub(crate) async fn message_stats(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let id = path_id(id, "account")?;
    let months = state.service.message_stats(&id).await?;
    let months: Vec<serde_json::Value> = months
        .iter()
        .map(|m| {
            serde_json::json!({
                "month": m.month,
                "replies": m.counts.replies,
                "pushes": m.counts.pushes,
                "failed": m.counts.failed,
                "freeReplyShare": m.free_reply_share(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "accountId": id, "months": months })).into_response())
}

/// `GET /admin/v1/accounts/{id}/quota`: the channel's monthly message limit and how much of it
/// is used, as LINE said at most an hour ago, with the alert level (80% / 100%).
pub(crate) async fn quota(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let id = path_id(id, "account")?;
    let q = state.service.quota(&id).await?;
    Ok(Json(serde_json::json!({
        "accountId": id,
        "limit": q.limit,
        "used": q.used,
        "share": q.share(),
        "alert": q.alert().map(|a| a.as_str()),
        "fetchedAt": omniline_domain::clock::rfc3339_millis(q.fetched_at),
    }))
    .into_response())
}

pub(crate) async fn webhook_stats(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let stats = state
        .service
        .webhook_stats(&path_id(id, "account")?)
        .await?;
    Ok(Json(stats).into_response())
}
