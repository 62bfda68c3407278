//! The LINE Messaging API: the [`LineApi`] port and [`HttpLineApi`], its reqwest adapter.
//!
//! Request and response bodies follow LINE's OpenAPI spec (`messaging-api.yml`). Base URLs come
//! from configuration (`LINE_API_BASE`, `LINE_DATA_API_BASE`) so tests and the local stack can
//! point them at a mock. The stateless channel access token is issued by `POST /oauth2/v3/token`
//! (`channel-access-token.yml`) on the same base URL.

use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `GET /v2/bot/info`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotInfo {
    pub user_id: String,
    pub basic_id: String,
    pub display_name: String,
    #[serde(default)]
    pub premium_id: Option<String>,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub chat_mode: Option<String>,
    #[serde(default)]
    pub mark_as_read_mode: Option<String>,
}

/// `POST /v2/bot/channel/webhook/test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestResult {
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(default)]
    pub timestamp: Option<String>,
    pub status_code: i32,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub detail: String,
}

/// A user's profile: `GET /v2/bot/profile/{userId}` (`UserProfileResponse`), or a group or
/// multi-person chat member's (`GroupUserProfileResponse`, `RoomUserProfileResponse`: those carry
/// neither `statusMessage` nor `language`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub display_name: String,
    #[serde(default)]
    pub picture_url: Option<String>,
    #[serde(default)]
    pub status_message: Option<String>,
    /// BCP 47 tag; absent until the user consents to LINE's privacy policy.
    #[serde(default)]
    pub language: Option<String>,
}

/// `GET /v2/bot/message/quota`: the channel's monthly message limit (`type` `none`: no limit;
/// `limited`: `value` messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageQuota {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Option<u64>,
}

impl MessageQuota {
    /// The limit, `None` when there is none.
    pub fn limit(&self) -> Option<u64> {
        (self.kind == "limited").then_some(self.value).flatten()
    }
}

/// `GET /v2/bot/message/quota/consumption`: messages counted against the limit this month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaConsumption {
    pub total_usage: u64,
}

/// `GET /v2/bot/group/{groupId}/summary`: a group chat's name and icon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSummary {
    pub group_id: String,
    pub group_name: String,
    #[serde(default)]
    pub picture_url: Option<String>,
}

/// `GET /v2/bot/message/{messageId}/content` (data API).
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// The whole body (at most [`LineApiConfig::max_content_bytes`]) and its `Content-Type`.
    Ready {
        bytes: Vec<u8>,
        content_type: Option<String>,
    },
    /// 202: LINE is still preparing the video or audio; ask again later.
    Pending,
}

impl std::fmt::Debug for Content {
    // The length, not the bytes: a debug log of a video would be megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Ready {
                bytes,
                content_type,
            } => f
                .debug_struct("Ready")
                .field("len", &bytes.len())
                .field("content_type", content_type)
                .finish(),
            Content::Pending => f.write_str("Pending"),
        }
    }
}

/// A failed call to LINE. `Rejected` is LINE's definite answer (4xx); `Unavailable` is a 5xx, a
/// timeout or a connection error: the outcome may be unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineApiError {
    #[error("LINE refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("LINE API unavailable: {0}")]
    Unavailable(String),
}

/// What LINE answered to a reply or a push that it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// `x-line-request-id` of the call; on a 409 (`already_accepted`), the id of the request that
    /// delivered (`x-line-accepted-request-id`) when LINE names it.
    pub request_id: Option<String>,
    /// `sentMessages[].id`, in order (empty when LINE sent none, as some 409s do).
    pub sent_message_ids: Vec<String>,
    /// A push answered 409: LINE had already accepted this retry key, so the messages were
    /// delivered by an earlier attempt and must not be sent again.
    pub already_accepted: bool,
}

/// A reply or push LINE did not accept. Messages include LINE's `details`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// 400 for the reply token (LINE: "Invalid reply token"): expired, already used or not this
    /// channel's. Fall back to a push.
    #[error("LINE refused the reply token: {message}")]
    InvalidReplyToken { message: String },
    /// 429 "You have reached your monthly limit.": no push until the plan's month ends.
    #[error("LINE monthly message limit reached: {message}")]
    MonthlyLimit { message: String },
    /// Any other 429: retry later (after `retry_after` when LINE says).
    #[error("LINE rate limit: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Any other 4xx (400 invalid message, 403 no permission, 404 …): permanent, do not retry.
    /// Also a request refused before sending (`request_id: None`): invalid recipient id or retry
    /// key, no message or more than five.
    #[error("LINE refused the message ({status}): {message}")]
    Refused {
        status: u16,
        message: String,
        request_id: Option<String>,
    },
    /// 401: the channel access token is invalid or expired; re-read it once and retry.
    #[error("LINE rejected the channel access token: {message}")]
    Unauthorized { message: String },
    /// 5xx, timeout or connection error: the outcome is unknown. A reply may be sent again with
    /// the same token (LINE accepts a token once) but never pushed instead; a push may be retried
    /// with the same retry key.
    #[error("LINE API unavailable: {0}")]
    Unavailable(String),
}

/// A stateless channel access token (`POST /oauth2/v3/token`): valid for about 15 minutes, not
/// revocable. `Debug` prints no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_in: Duration,
}
