//! The admin function: `/admin/v1/accounts` (connect, list, read, update, disconnect LINE Official
//! Accounts) and their webhook counters. Every route requires `Authorization: Bearer <admin token>`.
//!
//! Channel secrets and access tokens go to the secret store and never into a response or a log.

mod input;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use input::{Fields, InputError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::domain::{
    credentials_secret_name, new_id, now_millis, rfc3339_millis, Account, ChannelCredentials,
};
use shared::http::{error_response, field_error};
use shared::line::api::{BotInfo, LineApi, LineApiError};
use shared::ports::{AccountStore, PortError, SecretStore};
use shared::secret::SecretString;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub line: Arc<dyn LineApi>,
    /// SHA-256 of the admin token: compared in constant time, whatever the presented length.
    token_digest: [u8; 32],
    /// Base of callback URLs; when `None`, derived from the request's `Host`.
    pub public_base_url: Option<String>,
}

impl AdminState {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        secrets: Arc<dyn SecretStore>,
        line: Arc<dyn LineApi>,
        admin_token: &SecretString,
        public_base_url: Option<String>,
    ) -> Self {
        Self {
            accounts,
            secrets,
            line,
            token_digest: Sha256::digest(admin_token.expose().as_bytes()).into(),
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }
}

/// The admin routes, over any adapters.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route(
            "/admin/v1/accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/admin/v1/accounts/{id}",
            get(get_account)
                .patch(update_account)
                .delete(delete_account),
        )
        .route("/admin/v1/accounts/{id}/webhook-stats", get(webhook_stats))
        .fallback(shared::http::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state)
}

async fn require_admin_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let authorized = presented.is_some_and(|token| {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&state.token_digest))
    });
    if authorized {
        next.run(request).await
    } else {
        error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid admin token (Authorization: Bearer <token>)",
        )
    }
}

/// Errors of the admin routes, mapped once to responses.
#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("account not found")]
    NotFound,
    #[error("LINE refused the channel access token: {0}")]
    TokenRejected(String),
    #[error("LINE refused the channel ID and secret: {0}")]
    CredentialsRejected(String),
    #[error("the channel access token belongs to another LINE bot ({0})")]
    TokenForAnotherBot(String),
    #[error("this LINE channel is already connected as account {0}")]
    AlreadyConnected(String),
    #[error("LINE API unavailable: {0}")]
    LineUnavailable(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] PortError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            AdminError::Input(e) => field_error(StatusCode::BAD_REQUEST, e.field(), e.message()),
            AdminError::NotFound => error_response(StatusCode::NOT_FOUND, "not_found", message),
            AdminError::TokenRejected(_) | AdminError::TokenForAnotherBot(_) => {
                let body = json!({
                    "error": "line_rejected_token",
                    "field": "channelAccessToken",
                    "message": message,
                });
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            AdminError::CredentialsRejected(_) => {
                let body = json!({
                    "error": "line_rejected_credentials",
                    "field": "channelSecret",
                    "message": message,
                });
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            AdminError::AlreadyConnected(_) => {
                let body = json!({
                    "error": "already_connected",
                    "field": "channelAccessToken",
                    "message": message,
                });
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            AdminError::LineUnavailable(_) => {
                error_response(StatusCode::BAD_GATEWAY, "line_unavailable", message)
            }
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin: storage failed");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable, try again",
                )
            }
        }
    }
}

type Result<T, E = AdminError> = std::result::Result<T, E>;

fn account_id(path: std::result::Result<Path<String>, PathRejection>) -> Result<String> {
    path.map(|Path(id)| id).map_err(|_| AdminError::NotFound)
}

/// The base of callback URLs: `PUBLIC_BASE_URL`, else the request's own origin.
fn public_base(state: &AdminState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.public_base_url {
        return base.clone();
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("https");
    format!("{scheme}://{host}")
}

fn callback_url(base: &str, id: &str) -> String {
    format!("{base}/line/webhook/{id}")
}

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

/// A stateless channel access token from the channel ID and secret; LINE refusing them is the
/// admin's input error.
async fn issue_stateless(
    line: &dyn LineApi,
    channel_id: &str,
    channel_secret: &SecretString,
) -> Result<SecretString> {
    match line.issue_stateless_token(channel_id, channel_secret).await {
        Ok(issued) => Ok(issued.access_token),
        Err(LineApiError::Rejected { status, message }) => Err(AdminError::CredentialsRejected(
            format!("{status} {message}"),
        )),
        Err(LineApiError::Unavailable(m)) => Err(AdminError::LineUnavailable(m)),
    }
}

async fn check_token(line: &dyn LineApi, token: &SecretString) -> Result<BotInfo> {
    line.bot_info(token).await.map_err(|e| match e {
        LineApiError::Rejected { status, message } => {
            AdminError::TokenRejected(format!("{status} {message}"))
        }
        LineApiError::Unavailable(m) => AdminError::LineUnavailable(m),
    })
}

/// Points the channel's webhook at `callback` and has LINE test it; the outcome is reported,
/// never an error of the request (the account is connected either way).
async fn configure_webhook(line: &dyn LineApi, token: &SecretString, callback: &str) -> Value {
    if let Err(e) = line.set_webhook_endpoint(token, callback).await {
        return json!({ "endpointSet": false, "endpoint": callback, "error": e.to_string() });
    }
    match line.test_webhook_endpoint(token, Some(callback)).await {
        Ok(test) => json!({ "endpointSet": true, "endpoint": callback, "test": test }),
        Err(e) => json!({
            "endpointSet": true,
            "endpoint": callback,
            "test": null,
            "error": format!("webhook test failed: {e}"),
        }),
    }
}

async fn list_accounts(State(state): State<AdminState>, headers: HeaderMap) -> Result<Response> {
    let base = public_base(&state, &headers);
    let accounts = state.accounts.list().await?;
    let items: Vec<Value> = accounts.iter().map(|a| account_json(a, &base)).collect();
    Ok(Json(json!({ "accounts": items })).into_response())
}

async fn get_account(
    State(state): State<AdminState>,
    headers: HeaderMap,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = account_id(id)?;
    let account = state.accounts.get(&id).await?.ok_or(AdminError::NotFound)?;
    Ok(Json(account_json(&account, &public_base(&state, &headers))).into_response())
}

async fn create_account(
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
    // Without a long-lived token, the account works with stateless tokens issued from the
    // channel ID and secret (the outbound function renews them).
    let long_lived_token = fields.access_token("channelAccessToken")?;
    let configure = fields.boolean("configureWebhook")?.unwrap_or(false);
    fields.finish()?;

    let call_token = match &long_lived_token {
        Some(token) => token.clone(),
        None => issue_stateless(state.line.as_ref(), &channel_id, &channel_secret).await?,
    };
    let bot = check_token(state.line.as_ref(), &call_token).await?;
    let existing = state.accounts.list().await?;
    if let Some(other) = existing.iter().find(|a| a.bot_user_id == bot.user_id) {
        return Err(AdminError::AlreadyConnected(other.id.clone()));
    }

    let now = rfc3339_millis(now_millis());
    let account = Account {
        id: new_id(),
        name,
        channel_id,
        bot_user_id: bot.user_id,
        basic_id: bot.basic_id,
        display_name: bot.display_name,
        created_at: now.clone(),
        updated_at: now,
    };
    let credentials = ChannelCredentials {
        channel_secret,
        // Empty: no long-lived token, stateless tokens are issued when needed.
        channel_access_token: long_lived_token.unwrap_or_else(|| SecretString::new("")),
    };
    let secret_name = credentials_secret_name(&account.id);
    state
        .secrets
        .put(&secret_name, &credentials.to_secret())
        .await?;
    if let Err(e) = state.accounts.create(&account).await {
        // Do not leave credentials behind for an account that does not exist.
        let _ = state.secrets.delete(&secret_name).await;
        return Err(e.into());
    }
    tracing::info!(account_id = %account.id, bot_user_id = %account.bot_user_id, "account connected");

    let base = public_base(&state, &headers);
    let mut response = account_json(&account, &base);
    if configure {
        let callback = callback_url(&base, &account.id);
        response["webhook"] = configure_webhook(state.line.as_ref(), &call_token, &callback).await;
    }
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

async fn update_account(
    State(state): State<AdminState>,
    headers: HeaderMap,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = account_id(id)?;
    let mut account = state.accounts.get(&id).await?.ok_or(AdminError::NotFound)?;
    let mut fields = Fields::parse(&body)?;
    let name = fields.name("name")?;
    let new_secret = fields.channel_secret("channelSecret")?;
    let new_token = fields.access_token("channelAccessToken")?;
    let configure = fields.boolean("configureWebhook")?.unwrap_or(false);
    fields.finish()?;

    let secret_name = credentials_secret_name(&id);
    let stored = state.secrets.get(&secret_name).await?;
    let mut credentials = stored
        .as_ref()
        .and_then(ChannelCredentials::from_secret)
        .ok_or_else(|| PortError::Unavailable(format!("credentials of account {id} missing")))?;

    if let Some(token) = new_token {
        let bot = check_token(state.line.as_ref(), &token).await?;
        if bot.user_id != account.bot_user_id {
            return Err(AdminError::TokenForAnotherBot(bot.user_id));
        }
        account.basic_id = bot.basic_id;
        account.display_name = bot.display_name;
        credentials.channel_access_token = token;
    }
    let rotated = new_secret.is_some();
    if let Some(secret) = new_secret {
        if credentials.channel_access_token.expose().is_empty() {
            // The secret is what this account's tokens are issued from: check it with LINE.
            issue_stateless(state.line.as_ref(), &account.channel_id, &secret).await?;
        }
        credentials.channel_secret = secret;
    }
    if let Some(name) = name {
        account.name = name;
    }
    account.updated_at = rfc3339_millis(now_millis());
    state
        .secrets
        .put(&secret_name, &credentials.to_secret())
        .await?;
    if !state.accounts.update(&account).await? {
        return Err(AdminError::NotFound);
    }
    tracing::info!(account_id = %id, secret_rotated = rotated, "account updated");

    let base = public_base(&state, &headers);
    let mut response = account_json(&account, &base);
    if configure {
        let callback = callback_url(&base, &account.id);
        let token = if credentials.channel_access_token.expose().is_empty() {
            issue_stateless(
                state.line.as_ref(),
                &account.channel_id,
                &credentials.channel_secret,
            )
            .await?
        } else {
            credentials.channel_access_token.clone()
        };
        response["webhook"] = configure_webhook(state.line.as_ref(), &token, &callback).await;
    }
    Ok(Json(response).into_response())
}

async fn delete_account(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = account_id(id)?;
    if state.accounts.get(&id).await?.is_none() {
        return Err(AdminError::NotFound);
    }
    // The secret first: if removing the record then fails, a retry finishes the job, and the
    // webhook already answers 401 (no secret).
    state.secrets.delete(&credentials_secret_name(&id)).await?;
    state.accounts.delete(&id).await?;
    tracing::info!(account_id = %id, "account disconnected");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn webhook_stats(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = account_id(id)?;
    if state.accounts.get(&id).await?.is_none() {
        return Err(AdminError::NotFound);
    }
    let stats = state.accounts.webhook_stats(&id).await?;
    Ok(Json(stats).into_response())
}
