//! The admin function: `/admin/v1/accounts` (connect, list, read, update, disconnect LINE Official
//! Accounts) and their webhook counters. Every route requires `Authorization: Bearer <admin token>`.
//!
//! Channel secrets and access tokens go to the secret store and never into a response or a log.

mod agents;
mod customers;
mod queues;
mod rules;
mod settings;
mod workstreams;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use omniline_domain::account::{credentials_secret_name, Account, ChannelCredentials};
use omniline_domain::clock::{new_id, now_millis, rfc3339_millis};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::line::api::{BotInfo, LineApiError};
use omniline_domain::secret::SecretString;
use omniline_ports::AgentStore;
use omniline_ports::LazySecret;
use omniline_ports::LineApi;
use omniline_ports::ObjectStore;
use omniline_ports::{
    AccountStore, ConfigStore, ConversationStore, DeliveryStore, PortError, SecretStore,
    WorkstreamStore,
};
use omniline_runtime::http::{coded_field_error, error_body, error_response, field_error};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The stores and clients the admin routes use: the same ports on Lambda (AWS adapters) and in
/// `omniline-local` (embedded adapters).
#[derive(Clone)]
pub struct AdminDeps {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub line: Arc<dyn LineApi>,
    pub config: Arc<dyn ConfigStore>,
    pub workstreams: Arc<dyn WorkstreamStore>,
    pub agents: Arc<dyn AgentStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub media: Arc<dyn ObjectStore>,
}

/// Called with an account id when an account's webhook must be refused from now on (the local
/// stack drops the webhook's cached secret; on Lambda the cache expires by itself).
pub type AccountDisconnected = Arc<dyn Fn(&str) + Send + Sync>;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub line: Arc<dyn LineApi>,
    pub config: Arc<dyn ConfigStore>,
    pub workstreams: Arc<dyn WorkstreamStore>,
    pub agents: Arc<dyn AgentStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub media: Arc<dyn ObjectStore>,
    /// The admin token, read on the first request (not at start-up); compared by SHA-256 digest
    /// in constant time, whatever the presented length.
    admin_token: LazySecret,
    /// Base of callback URLs; when `None`, derived from the request's `Host`.
    pub public_base_url: Option<String>,
    on_disconnect: Option<AccountDisconnected>,
}

impl AdminState {
    pub fn new(
        deps: AdminDeps,
        admin_token: impl Into<LazySecret>,
        public_base_url: Option<String>,
    ) -> Self {
        Self {
            accounts: deps.accounts,
            secrets: deps.secrets,
            line: deps.line,
            config: deps.config,
            workstreams: deps.workstreams,
            agents: deps.agents,
            conversations: deps.conversations,
            deliveries: deps.deliveries,
            media: deps.media,
            admin_token: admin_token.into(),
            public_base_url: public_base_url.map(|u| u.trim_end_matches('/').to_owned()),
            on_disconnect: None,
        }
    }

    /// Runs `hook` whenever an account is deleted or loses its workstream.
    pub fn on_disconnect(mut self, hook: AccountDisconnected) -> Self {
        self.on_disconnect = Some(hook);
        self
    }

    pub(crate) fn disconnected(&self, account_id: &str) {
        if let Some(hook) = &self.on_disconnect {
            hook(account_id);
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
        .route(
            "/admin/v1/queues",
            get(queues::list_queues).post(queues::create_queue),
        )
        .route(
            "/admin/v1/queues/{id}",
            get(queues::get_queue)
                .patch(queues::update_queue)
                .delete(queues::delete_queue),
        )
        .route(
            "/admin/v1/agents",
            get(agents::list_agents).post(agents::create_agent),
        )
        .route(
            "/admin/v1/agents/{id}",
            get(agents::get_agent)
                .patch(agents::update_agent)
                .delete(agents::delete_agent),
        )
        .route("/admin/v1/agents/{id}/token", post(agents::rotate_token))
        .route(
            "/admin/v1/workstreams",
            get(workstreams::list_workstreams).post(workstreams::create_workstream),
        )
        .route(
            "/admin/v1/workstreams/{id}",
            get(workstreams::get_workstream)
                .patch(workstreams::update_workstream)
                .delete(workstreams::delete_workstream),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules",
            get(rules::list_rules).post(rules::create_rule),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules/order",
            put(rules::reorder_rules),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules/test",
            post(rules::test_rules),
        )
        .route(
            "/admin/v1/workstreams/{id}/rules/{rule_id}",
            get(rules::get_rule)
                .patch(rules::update_rule)
                .delete(rules::delete_rule),
        )
        .route("/admin/v1/customers", get(customers::find_customers))
        .route(
            "/admin/v1/customers/{id}",
            get(customers::export_customer).delete(customers::erase_customer),
        )
        .route(
            "/admin/v1/settings",
            get(settings::get_settings).patch(settings::update_settings),
        )
        .fallback(omniline_runtime::http::not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin_token,
        ))
        .layer(middleware::from_fn(omniline_runtime::http::json_rejections))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Largest accepted request body.
const BODY_LIMIT: usize = 64 * 1024;

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
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
    let admin_token = match state.admin_token.get().await {
        Ok(token) => token,
        Err(e) => {
            tracing::error!("admin token unavailable: {e}");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the admin token cannot be read now; try again later",
            );
        }
    };
    let expected: [u8; 32] = Sha256::digest(admin_token.expose().as_bytes()).into();
    let authorized = presented.is_some_and(|token| {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&expected))
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
pub(crate) enum AdminError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409 with a code, optionally naming a field and what uses the resource.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<String>,
        used_by: Option<Value>,
    },
    /// 422: well-formed, but refers to something missing or breaks a rule.
    #[error("{message}")]
    Unprocessable {
        code: &'static str,
        field: String,
        message: String,
    },
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

impl AdminError {
    pub(crate) fn unknown_reference(field: impl Into<String>, message: impl Into<String>) -> Self {
        AdminError::Unprocessable {
            code: "unknown_reference",
            field: field.into(),
            message: message.into(),
        }
    }

    /// Someone else changed the record between our read and our write.
    pub(crate) fn version_conflict() -> Self {
        AdminError::Conflict {
            code: "version_conflict",
            message: "the record changed concurrently; read it again and retry".into(),
            field: None,
            used_by: None,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let message = self.to_string();
        match self {
            AdminError::Input(e) => field_error(StatusCode::BAD_REQUEST, e.field(), e.message()),
            AdminError::NotFound(_) => error_response(StatusCode::NOT_FOUND, "not_found", message),
            AdminError::Conflict {
                code,
                field,
                used_by,
                ..
            } => {
                let mut body = error_body(code, &message, field.as_deref());
                if let Some(used_by) = used_by {
                    body["error"]["usedBy"] = used_by;
                }
                (StatusCode::CONFLICT, Json(body)).into_response()
            }
            AdminError::Unprocessable { code, field, .. } => {
                coded_field_error(StatusCode::UNPROCESSABLE_ENTITY, code, &field, message)
            }
            AdminError::TokenRejected(_) | AdminError::TokenForAnotherBot(_) => coded_field_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "line_rejected_token",
                "channelAccessToken",
                message,
            ),
            AdminError::CredentialsRejected(_) => coded_field_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "line_rejected_credentials",
                "channelSecret",
                message,
            ),
            AdminError::AlreadyConnected(_) => coded_field_error(
                StatusCode::CONFLICT,
                "already_connected",
                "channelAccessToken",
                message,
            ),
            AdminError::LineUnavailable(_) => {
                error_response(StatusCode::BAD_GATEWAY, "line_unavailable", message)
            }
            AdminError::Store(PortError::Conflict(_)) => {
                AdminError::version_conflict().into_response()
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
    path.map(|Path(id)| id)
        .map_err(|_| AdminError::NotFound("account"))
}

/// The base of callback URLs: `PUBLIC_BASE_URL`, else `https://` and the `Host` the request
/// reached (on Lambda, API Gateway's own domain: a client cannot choose it). Never a forwarding
/// header (`X-Forwarded-Host` is the client's to write): LINE would be told to post elsewhere.
fn public_base(state: &AdminState, headers: &HeaderMap) -> String {
    base_from(state.public_base_url.as_deref(), headers)
}

fn base_from(configured: Option<&str>, headers: &HeaderMap) -> String {
    if let Some(base) = configured {
        return base.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("https://{host}")
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
    let account = state
        .accounts
        .get(&id)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
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
        webhook_disabled: false,
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
    let mut account = state
        .accounts
        .get(&id)
        .await?
        .ok_or(AdminError::NotFound("account"))?;
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
        return Err(AdminError::NotFound("account"));
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
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let id = account_id(id)?;
    let purge = customers::purge_flag(query.as_deref())?;
    if state.accounts.get(&id).await?.is_none() {
        return Err(AdminError::NotFound("account"));
    }
    // The secret first: the webhook refuses the account from now on, and if a later step fails a
    // retry finishes the job.
    state.secrets.delete(&credentials_secret_name(&id)).await?;
    state.disconnected(&id);
    if let Some(ws) = state.workstreams.workstream_for_account(&id).await? {
        state.workstreams.delete_workstream(&ws.id).await?;
        if ws.bot.is_some() {
            state
                .secrets
                .delete(&workstreams::bot_secret_name(&ws.id))
                .await?;
        }
    }
    if purge {
        customers::purge_account_data(&state, &id).await?;
    }
    state.accounts.delete(&id).await?;
    tracing::info!(account_id = %id, purge, "account disconnected");
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn webhook_stats(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = account_id(id)?;
    if state.accounts.get(&id).await?.is_none() {
        return Err(AdminError::NotFound("account"));
    }
    let stats = state.accounts.webhook_stats(&id).await?;
    Ok(Json(stats).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review 1/7 #12: with no `PUBLIC_BASE_URL`, the callback URL followed the client's
    /// `X-Forwarded-Host`.
    #[test]
    fn the_callback_base_ignores_forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            "demo123abc.execute-api.ap-northeast-1.amazonaws.com"
                .parse()
                .unwrap(),
        );
        headers.insert("x-forwarded-host", "evil.example".parse().unwrap());
        headers.insert("x-forwarded-proto", "http".parse().unwrap());
        assert_eq!(
            base_from(None, &headers),
            "https://demo123abc.execute-api.ap-northeast-1.amazonaws.com"
        );
        assert_eq!(
            base_from(Some("https://support.example.com"), &headers),
            "https://support.example.com"
        );
        headers.insert(header::HOST, "evil.example/path?".parse().unwrap());
        assert_eq!(base_from(None, &headers), "https://localhost");
    }
}
