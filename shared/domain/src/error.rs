//! The one error a port returns.

/// A store or queue failed: the caller answers 5xx / retries. The text never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{failed} of {total} messages were not queued: {reason}")]
    PartialBatch {
        failed: usize,
        total: usize,
        reason: String,
    },
    #[error("already exists: {0}")]
    Conflict(String),
}
