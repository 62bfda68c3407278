//! Why an admin use case did not happen; the admin function maps these to HTTP once.

use omniline_domain::routing::rules::MAX_RULES;
use omniline_domain::PortError;

/// Something that uses a resource an admin wants to delete or change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsedBy {
    /// A workstream (its name when it was read).
    Workstream { id: String, name: Option<String> },
    /// A routing rule of a workstream.
    Rule {
        id: String,
        name: String,
        workstream_id: String,
    },
    /// An active conversation.
    Conversation { id: String },
}

impl UsedBy {
    /// What it is: `workstream`, `rule`, `conversation`.
    pub fn kind(&self) -> &'static str {
        match self {
            UsedBy::Workstream { .. } => "workstream",
            UsedBy::Rule { .. } => "rule",
            UsedBy::Conversation { .. } => "conversation",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            UsedBy::Workstream { id, .. }
            | UsedBy::Rule { id, .. }
            | UsedBy::Conversation { id } => id,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            UsedBy::Workstream { name, .. } => name.as_deref(),
            UsedBy::Rule { name, .. } => Some(name),
            UsedBy::Conversation { .. } => None,
        }
    }
}

/// `workstream "Support JP", rule "VIP"`.
fn names(used_by: &[UsedBy]) -> String {
    used_by
        .iter()
        .map(|u| format!("{} {:?}", u.kind(), u.name().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a use case of the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A value the caller gave breaks a rule (a bad request, naming the field).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// No such thing (`"account"`, `"queue"`, `"agent"`, `"workstream"`, `"rule"`, `"customer"`,
    /// `"job"`).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Someone else changed the record between our read and our write.
    #[error("the record changed concurrently; read it again and retry")]
    VersionConflict,
    /// A message LINE would refuse (naming the property, `messages[0].text` …).
    #[error("{message}")]
    InvalidMessage { field: String, message: String },
    /// Another agent has this email address (each address signs in one agent).
    #[error("another agent has this email address")]
    EmailTaken,
    /// Another quick reply has this shortcut.
    #[error("another quick reply has this shortcut")]
    ShortcutTaken,
    /// The agent still holds these conversations.
    #[error(
        "the agent still holds {} active conversation(s); transfer or close them first",
        .0.len()
    )]
    AgentBusy(Vec<UsedBy>),
    /// Workstreams and rules route to the queue.
    #[error("the queue is in use by {}", names(.0))]
    QueueInUse(Vec<UsedBy>),
    /// These routing rules (by name) send work to the bot being removed.
    #[error("routing rules send work to the bot: {}", .0.join(", "))]
    BotInUse(Vec<String>),
    /// The account already has this workstream.
    #[error("the account already has workstream {0}; edit or delete it")]
    WorkstreamExists(String),
    /// The account's data is being purged (this job): it cannot have a workstream until the
    /// job is finished.
    #[error("the account's data is being purged (job {0}); try again once the job is done")]
    PurgeInProgress(String),
    /// Well formed, but refers to something missing (naming the field).
    #[error("{message}")]
    UnknownReference { field: String, message: String },
    #[error("a workstream has at most {MAX_RULES} routing rules")]
    TooManyRules,
    /// A rule's condition does not hold up (naming the field).
    #[error("{message}")]
    InvalidCondition { field: String, message: String },
    /// Another part of a rule does not hold up (naming the field).
    #[error("{message}")]
    InvalidRule { field: String, message: String },
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
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        AdminError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn unknown_reference(field: &str, message: impl Into<String>) -> Self {
        AdminError::UnknownReference {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_in_use_names_what_uses_it() {
        let e = AdminError::QueueInUse(vec![
            UsedBy::Workstream {
                id: "w1".into(),
                name: Some("Support".into()),
            },
            UsedBy::Rule {
                id: "r1".into(),
                name: "VIP".into(),
                workstream_id: "w1".into(),
            },
        ]);
        assert_eq!(
            e.to_string(),
            r#"the queue is in use by workstream "Support", rule "VIP""#
        );
        let busy = AdminError::AgentBusy(vec![UsedBy::Conversation { id: "c1".into() }]);
        assert_eq!(
            busy.to_string(),
            "the agent still holds 1 active conversation(s); transfer or close them first"
        );
    }
}
