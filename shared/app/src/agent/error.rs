//! Why an agent use case did not happen; the agent function maps these to HTTP once.

use crate::router::AgentOpError;
use omniline_domain::PortError;

/// Why a use case of the agent API failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A value the caller gave is unusable (a bad request, naming the field).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// No such thing (`"conversation"`, `"agent"`, `"contact"`, `"survey"`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The agent may not see or do this.
    #[error("{0}")]
    Forbidden(String),
    /// The state does not allow it now.
    #[error("{0}")]
    Conflict(String),
    /// Well formed but not applicable (naming the field).
    #[error("{message}")]
    Unprocessable { field: String, message: String },
    /// Read receipts: the conversation has no customer message carrying a `markAsReadToken`
    /// (none yet, or only entries stored without one), so there is nothing LINE could mark.
    #[error("the conversation has no customer message to mark as read")]
    NothingToMarkRead,
    /// Writing first: the customer does not follow the account (unfollowed, blocked, or not a
    /// friend: LINE has no profile of them for us).
    #[error("the customer does not follow the account (unfollowed or blocked): LINE would not deliver a message")]
    NotFollowing,
    /// Writing first: the customer has an open conversation (this id) held by someone else, or
    /// waiting.
    #[error("the customer has an open conversation ({0}): answer there")]
    ConversationOpen(String),
    /// Tags: the account would hold more distinct tags than LINE's chat allows.
    #[error("{0}")]
    TooManyTags(String),
    /// LINE (or the channel access token) failed.
    #[error("LINE API: {0}")]
    Line(String),
    #[error("storage unavailable: {0}")]
    Store(#[from] PortError),
    /// A conversation operation of [`crate::router::RouterService`] failed.
    #[error(transparent)]
    Operation(#[from] AgentOpError),
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        AgentError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        AgentError::Unprocessable {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Why the customer's account-link page (`/line/link/{id}`) cannot go on: each is a page of its
/// own for the customer.
#[derive(Debug, thiserror::Error)]
pub enum LinkPageError {
    /// The request could not be read or used up: try again in a moment.
    #[error("link request store unavailable: {0}")]
    Unavailable(PortError),
    /// No such request, or it was used already.
    #[error("the link is not valid or was already used")]
    Unknown,
    /// The request is older than [`omniline_domain::contacts::LINK_LIFETIME_MS`].
    #[error("the link has expired")]
    Expired,
    /// The request was used up but its nonce not stored: a new link is needed.
    #[error("the account-link nonce was not stored")]
    NonceNotStored,
}
