//! The sandbox's account, queue, agent and workstream, made through the stack's own admin API
//! over HTTP, as any admin client would. Idempotent: a restart finds what an earlier run made
//! (kept in `sandbox.db`) and only re-creates what an admin deleted since.

use super::platform::{Platform, SandboxChannel};
use omniline_domain::secret::SecretString;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ACCOUNT_NAME: &str = "Sandbox shop";
pub const QUEUE_NAME: &str = "Sandbox support";
pub const AGENT_NAME: &str = "Sam (sandbox)";
pub const WORKSTREAM_NAME: &str = "Sandbox support";
/// Identifies the sandbox agent among the agents.
const AGENT_EMAIL: &str = "sam@sandbox.invalid";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("sandbox setup: {method} {path} answered {status}: {body}")]
    Refused {
        method: Method,
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("sandbox setup: {0}")]
    Transport(String),
    #[error("sandbox setup: {0}")]
    Store(#[from] super::platform::PlatformError),
}

/// An admin API client on the stack's own listener.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: SecretString,
}

impl AdminClient {
    pub fn new(http: reqwest::Client, base: &str, token: SecretString) -> Self {
        Self {
            http,
            base: base.to_owned(),
            token,
        }
    }

    /// The answer's JSON, or `None` on 404.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>, SetupError> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| SetupError::Transport(e.without_url().to_string()))?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(SetupError::Refused {
                method,
                path: path.to_owned(),
                status,
                body: text,
            });
        }
        Ok(Some(serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Whether `/admin/v1/{collection}/{id}` exists (`false` for no id): an admin may have
    /// deleted what an earlier run made.
    async fn still_has(&self, collection: &str, id: &Option<String>) -> Result<bool, SetupError> {
        let Some(id) = id else {
            return Ok(false);
        };
        let path = format!("/admin/v1/{collection}/{id}");
        Ok(self.call(Method::GET, &path, None).await?.is_some())
    }

    /// The id of the first `/admin/v1/{collection}` item whose `field` is `value`.
    async fn find(
        &self,
        collection: &str,
        field: &str,
        value: &str,
    ) -> Result<Option<String>, SetupError> {
        let list = self
            .call(Method::GET, &format!("/admin/v1/{collection}"), None)
            .await?
            .unwrap_or_default();
        Ok(list
            .get(collection)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|item| item.get(field).and_then(Value::as_str) == Some(value))
            .and_then(|item| item.get("id").and_then(Value::as_str))
            .map(str::to_owned))
    }

    async fn create(&self, path: &str, body: Value) -> Result<Value, SetupError> {
        self.call(Method::POST, path, Some(body))
            .await?
            .ok_or_else(|| SetupError::Transport(format!("POST {path}: 404")))
    }
}

fn id_of(v: &Value) -> Result<String, SetupError> {
    v.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| SetupError::Transport("an answer without an id".into()))
}

/// Makes sure the sandbox's records exist; returns the channel with their ids (also kept).
///
/// Each record is first looked for (by the id kept, else by what identifies it: the queue's
/// name, the account's channel ID, the agent's email, the workstream's account) and made only
/// when missing, and the channel is kept after each step: a start interrupted half-way is
/// finished by the next one, never duplicated.
pub async fn ensure(
    platform: &Platform,
    admin: &AdminClient,
) -> Result<SandboxChannel, SetupError> {
    let mut channel = platform.channel().unwrap_or_else(SandboxChannel::generate);
    // The simulated platform must know the token before the admin API checks it with LINE.
    platform.set_channel(channel.clone()).await?;

    if !admin.still_has("queues", &channel.queue_id).await? {
        let id = match admin.find("queues", "name", QUEUE_NAME).await? {
            Some(id) => id,
            None => id_of(
                &admin
                    .create("/admin/v1/queues", json!({"name": QUEUE_NAME}))
                    .await?,
            )?,
        };
        channel.queue_id = Some(id);
        platform.set_channel(channel.clone()).await?;
    }
    let queue_id = channel.queue_id.clone().unwrap_or_default();

    if !admin.still_has("accounts", &channel.account_id).await? {
        let id = match admin
            .find("accounts", "channelId", &channel.channel_id)
            .await?
        {
            Some(id) => id,
            None => id_of(
                &admin
                    .create(
                        "/admin/v1/accounts",
                        json!({
                            "name": ACCOUNT_NAME,
                            "channelId": channel.channel_id,
                            "channelSecret": channel.channel_secret,
                            "channelAccessToken": channel.access_token,
                        }),
                    )
                    .await?,
            )?,
        };
        channel.account_id = Some(id);
        platform.set_channel(channel.clone()).await?;
    }
    let account_id = channel.account_id.clone().unwrap_or_default();

    if !admin.still_has("agents", &channel.agent_id).await? {
        channel.agent_token = None;
        channel.agent_id = match admin.find("agents", "email", AGENT_EMAIL).await? {
            Some(id) => Some(id),
            None => {
                let agent = admin
                    .create(
                        "/admin/v1/agents",
                        json!({
                            "name": AGENT_NAME, "email": AGENT_EMAIL,
                            "queueIds": [queue_id], "capacity": 5
                        }),
                    )
                    .await?;
                channel.agent_token = token_of(&agent);
                Some(id_of(&agent)?)
            }
        };
        platform.set_channel(channel.clone()).await?;
    }
    if channel.agent_token.is_none() {
        // Found but its token was never kept (shown once): a new one.
        let id = channel.agent_id.clone().unwrap_or_default();
        let token = admin
            .create(&format!("/admin/v1/agents/{id}/token"), json!({}))
            .await?;
        channel.agent_token = token_of(&token);
        platform.set_channel(channel.clone()).await?;
    }

    // The account's workstream, whichever it is (an admin may have replaced the sandbox's).
    channel.workstream_id = admin.find("workstreams", "accountId", &account_id).await?;
    if channel.workstream_id.is_none() {
        let workstream = admin
            .create("/admin/v1/workstreams", workstream(&account_id, &queue_id))
            .await?;
        let id = id_of(&workstream)?;
        admin
            .create(
                &format!("/admin/v1/workstreams/{id}/rules"),
                json!({
                    "name": "Refunds", "queueId": queue_id,
                    "condition": {"field": "message.text", "op": "contains", "value": "refund"}
                }),
            )
            .await?;
        channel.workstream_id = Some(id);
    }
    platform.set_channel(channel.clone()).await?;
    Ok(channel)
}

fn token_of(v: &Value) -> Option<String> {
    v.get("token").and_then(Value::as_str).map(str::to_owned)
}

fn workstream(account_id: &str, queue_id: &str) -> Value {
    json!({
        "name": WORKSTREAM_NAME, "accountId": account_id, "language": "en",
        "distribution": "push", "defaultQueueId": queue_id, "timeZone": "UTC",
        "attachments": {"customerCanSend": true, "agentCanSend": true},
        "automatedMessages": {
            "conversationStarted": {"enabled": true, "texts": {
                "en": "Hi {customerName}, thanks for reaching out! An agent will be with you shortly.",
                "ja": "{customerName}様、お問い合わせありがとうございます。担当者がまもなく対応いたします。"
            }},
            "agentEnded": {"enabled": true, "texts": {
                "en": "Thanks for chatting with us, {customerName}!",
                "ja": "{customerName}様、ありがとうございました。"
            }}
        },
        "survey": {"enabled": true, "question": "How did we do?", "scale": 5},
        "autoCloseMinutes": 30,
        "groupChats": "handle"
    })
}
