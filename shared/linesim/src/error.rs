//! LINE's answers: [`Answer`] (status, JSON body, request ids) and its refusals, [`LineError`].
//!
//! Error bodies are LINE's `ErrorResponse` (`messaging-api.yml`): `{"message", "details"?,
//! "sentMessages"?}`; the token endpoint's are OAuth's `{"error", "error_description"}`
//! (`channel-access-token.yml`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One of LINE's `sentMessages`: the id of a message LINE accepted and its quote token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    pub id: String,
    pub quote_token: String,
}

/// LINE's `ErrorDetail`: what is wrong with which property of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorDetail {
    pub message: String,
    pub property: String,
}

/// A refusal, as LINE answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LINE answers {status}: {message}")]
pub struct LineError {
    pub status: u16,
    /// `message` (or, for the token endpoint, `error_description`).
    pub message: String,
    pub details: Vec<ErrorDetail>,
    /// With a 409 for a retry key: what the first request sent.
    pub sent_messages: Vec<SentMessage>,
    /// With a 409 for a retry key: the first request's id (`x-line-accepted-request-id`).
    pub accepted_request_id: Option<String>,
    /// The token endpoint's OAuth `error` code; `None` for the Messaging API's `{"message"}`.
    pub oauth_error: Option<&'static str>,
}

impl LineError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
            sent_messages: Vec::new(),
            accepted_request_id: None,
            oauth_error: None,
        }
    }

    /// 404 `Not found`: an unknown route, user, message content or group member.
    pub fn not_found() -> Self {
        Self::new(404, "Not found")
    }

    /// 401 for a missing or unknown channel access token.
    pub fn unauthorized() -> Self {
        Self::new(
            401,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        )
    }

    /// 403 for a partner-only endpoint the channel was not granted.
    pub fn partner_only() -> Self {
        Self::new(403, "Access to this API is not available for your account")
    }

    /// 400 for a body that is not a JSON object.
    pub fn not_json() -> Self {
        Self::new(400, "The request body is not valid JSON")
    }

    /// 400 `The request body has 1 error(s)` with the property and the problem in `details`.
    pub fn invalid_property(property: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            details: vec![ErrorDetail {
                message: problem.into(),
                property: property.into(),
            }],
            ..Self::new(400, "The request body has 1 error(s)")
        }
    }

    /// 400 for an id property naming nobody the channel knows (`to`, `chatId`, `chat.userId`).
    pub fn invalid_id(property: &str) -> Self {
        Self::new(
            400,
            format!(
                "The property, '{property}', in the request body is invalid (line: -, column: -)"
            ),
        )
    }

    /// 400 `Invalid reply token`: unknown, used, expired or another channel's.
    pub fn invalid_reply_token() -> Self {
        Self::new(400, "Invalid reply token")
    }

    /// 400 for an `X-Line-Retry-Key` that is not a UUID (`123e4567-e89b-12d3-a456-426614174000`).
    pub fn invalid_retry_key() -> Self {
        Self::new(400, "The retry key must be a UUID")
    }

    /// 409 for a retry key accepted before: the first request's id and `sentMessages`.
    pub fn retry_key_accepted(accepted_request_id: String, sent: Vec<SentMessage>) -> Self {
        Self {
            sent_messages: sent,
            accepted_request_id: Some(accepted_request_id),
            ..Self::new(409, "The retry key is already accepted")
        }
    }

    /// 400 for a `markAsReadToken` LINE did not issue.
    pub fn invalid_read_token() -> Self {
        Self::new(400, "Invalid markAsReadToken")
    }

    /// 400 for a link token asked for a user who is not a friend of the account.
    pub fn not_a_friend() -> Self {
        Self::new(400, "The user is not a friend")
    }

    /// The token endpoint's 400: `{"error": code, "error_description": description}`.
    pub fn oauth(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            oauth_error: Some(code),
            ..Self::new(400, description)
        }
    }

    /// The JSON body LINE sends with this refusal.
    pub fn body(&self) -> Value {
        if let Some(code) = self.oauth_error {
            return json!({"error": code, "error_description": self.message});
        }
        let mut body = json!({ "message": self.message });
        if !self.details.is_empty() {
            body["details"] = json!(self.details);
        }
        if !self.sent_messages.is_empty() {
            body["sentMessages"] = json!(self.sent_messages);
        }
        body
    }

    /// The whole answer, with this request's id.
    pub fn into_answer(self, request_id: String) -> Answer {
        Answer {
            status: self.status,
            body: self.body(),
            accepted_request_id: self.accepted_request_id,
            request_id,
        }
    }
}

/// An answer of the simulated API: status, JSON body and LINE's request-id headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `x-line-request-id`.
    pub request_id: String,
    /// `x-line-accepted-request-id` (a 409 for a retry key accepted before).
    pub accepted_request_id: Option<String>,
}

impl Answer {
    /// 200 with `body`.
    pub fn ok(body: Value, request_id: String) -> Self {
        Self::with_status(200, body, request_id)
    }

    pub fn with_status(status: u16, body: Value, request_id: String) -> Self {
        Self {
            status,
            body,
            request_id,
            accepted_request_id: None,
        }
    }

    /// The headers LINE sets besides `content-type: application/json`.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![("x-line-request-id", self.request_id.as_str())];
        if let Some(id) = &self.accepted_request_id {
            headers.push(("x-line-accepted-request-id", id.as_str()));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_lines_error_response() {
        assert_eq!(
            LineError::not_found().body(),
            json!({"message": "Not found"})
        );
        assert_eq!(
            LineError::invalid_property("messages[0].text", "May not be empty").body(),
            json!({"message": "The request body has 1 error(s)",
                   "details": [{"message": "May not be empty", "property": "messages[0].text"}]})
        );
        let sent = vec![SentMessage {
            id: "1".into(),
            quote_token: "q".into(),
        }];
        let conflict =
            LineError::retry_key_accepted("req-1".into(), sent).into_answer("req-2".into());
        assert_eq!(conflict.status, 409);
        assert_eq!(
            conflict.body,
            json!({"message": "The retry key is already accepted",
                   "sentMessages": [{"id": "1", "quoteToken": "q"}]})
        );
        assert_eq!(
            conflict.headers(),
            vec![
                ("x-line-request-id", "req-2"),
                ("x-line-accepted-request-id", "req-1")
            ]
        );
        assert_eq!(
            LineError::oauth("invalid_client", "bad").body(),
            json!({"error": "invalid_client", "error_description": "bad"})
        );
    }
}
