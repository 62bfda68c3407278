//! LINE's Messaging API, as the functions use it.

use async_trait::async_trait;
use omniline_domain::line::api::*;
use omniline_domain::secret::SecretString;

/// What omniline asks of the Messaging API.
#[async_trait]
pub trait LineApi: Send + Sync {
    /// The bot behind `token`; `Rejected { status: 401 }` when the token is invalid.
    async fn bot_info(&self, token: &SecretString) -> Result<BotInfo, LineApiError>;
    /// Sets the channel's webhook URL.
    async fn set_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: &str,
    ) -> Result<(), LineApiError>;
    /// Has LINE send a test webhook to `endpoint` (the configured one when `None`).
    async fn test_webhook_endpoint(
        &self,
        token: &SecretString,
        endpoint: Option<&str>,
    ) -> Result<WebhookTestResult, LineApiError>;
    /// The profile of a user who has added the bot as a friend; `None` (LINE's 404) when the user
    /// has not, or has blocked it.
    async fn profile(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The profile of a member of a group chat the bot is in; `None` on LINE's 404.
    async fn group_member_profile(
        &self,
        token: &SecretString,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The channel's monthly message limit.
    async fn message_quota(&self, token: &SecretString) -> Result<MessageQuota, LineApiError>;
    /// The messages counted against the limit this month.
    async fn quota_consumption(
        &self,
        token: &SecretString,
    ) -> Result<QuotaConsumption, LineApiError>;
    /// The name and icon of a group chat the bot is in; `None` on LINE's 404 (the bot is not
    /// in it, or it is gone).
    async fn group_summary(
        &self,
        token: &SecretString,
        group_id: &str,
    ) -> Result<Option<GroupSummary>, LineApiError>;
    /// The profile of a member of a multi-person chat the bot is in; `None` on LINE's 404.
    async fn room_member_profile(
        &self,
        token: &SecretString,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Profile>, LineApiError>;
    /// The image, video, audio or file a user sent. `Pending` while LINE still prepares a video or
    /// audio; `Rejected { status: 404 | 410 }` once the content has expired or is gone;
    /// `Rejected { status: 413 }` when it exceeds [`LineApiConfig::max_content_bytes`].
    async fn message_content(
        &self,
        token: &SecretString,
        message_id: &str,
    ) -> Result<Content, LineApiError>;
    /// Replies with 1 to 5 message objects (`POST /v2/bot/message/reply`).
    async fn reply(
        &self,
        token: &SecretString,
        reply_token: &str,
        messages: &[serde_json::Value],
    ) -> Result<Sent, SendError>;
    /// Pushes 1 to 5 message objects to a user, group or room (`POST /v2/bot/message/push`) with
    /// `X-Line-Retry-Key: retry_key` (a UUID): sending the same key again is answered
    /// `Ok(Sent { already_accepted: true, .. })` instead of delivering twice.
    async fn push(
        &self,
        token: &SecretString,
        to: &str,
        messages: &[serde_json::Value],
        retry_key: &str,
    ) -> Result<Sent, SendError>;
    /// Shows the loading animation in a one-on-one chat (`POST /v2/bot/chat/loading/start`) for
    /// `seconds` rounded up to a multiple of 5 within 5..=60.
    async fn start_loading(
        &self,
        token: &SecretString,
        chat_id: &str,
        seconds: u32,
    ) -> Result<(), LineApiError>;
    /// Marks messages as read with the `markAsReadToken` of a message webhook event
    /// (`POST /v2/bot/chat/markAsRead`): the chat's messages up to that one. The customer sees
    /// "Read" only when the channel's `markAsReadMode` is `manual`. (Marking by user id,
    /// `POST /v2/bot/message/markAsRead`, is a partner-only API LINE refuses ordinary channels:
    /// omniline never calls it.)
    async fn mark_as_read_by_token(
        &self,
        token: &SecretString,
        mark_as_read_token: &str,
    ) -> Result<(), LineApiError>;
    /// Issues a link token for the account-link flow (`POST /v2/bot/user/{userId}/linkToken`):
    /// valid 10 minutes, usable once. `Rejected` when LINE refuses it (e.g. 400 for a user who is
    /// not a friend of the account).
    async fn issue_link_token(
        &self,
        token: &SecretString,
        user_id: &str,
    ) -> Result<String, LineApiError>;
    /// Issues a stateless channel access token from the channel ID and secret
    /// (`POST /oauth2/v3/token`, `grant_type=client_credentials`). `Rejected { status: 400 }`
    /// when LINE refuses the ID or secret.
    async fn issue_stateless_token(
        &self,
        channel_id: &str,
        channel_secret: &SecretString,
    ) -> Result<IssuedToken, LineApiError>;
}
