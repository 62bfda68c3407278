//! The admin's reading of an account's monthly message limit and use ([`crate::quota`]).

use super::{AdminError, AdminService};
use crate::quota::{read_quota, QuotaError};
use omniline_domain::account::QuotaStatus;

impl AdminService {
    /// The account's quota as LINE said at most an hour ago (asked now when older).
    pub async fn quota(&self, id: &str) -> Result<QuotaStatus, AdminError> {
        self.account(id).await?;
        read_quota(
            self.deps.config.as_ref(),
            &self.tokens,
            self.deps.line.as_ref(),
            id,
            self.now_millis(),
        )
        .await
        .map_err(|e| match e {
            QuotaError::Store(e) => AdminError::Store(e),
            QuotaError::Line(e) => AdminError::LineUnavailable(e),
        })
    }
}
