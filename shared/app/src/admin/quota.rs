//! An account's monthly message limit at LINE and how much of it is used: read from LINE at most
//! hourly ([`QUOTA_REFRESH_MS`]) and kept as a config document ([`QUOTA_KIND`]), with an alert
//! log line (`alert = "quota"`, `level` 80% or 100%; a CloudWatch metric filter counts them) when
//! a reading crosses 80 % or 100 %.

use super::{parse_doc, to_doc, AdminError, AdminService};
use crate::tokens::ChannelTokens;
use omniline_domain::account::{QuotaStatus, QUOTA_KIND};
use omniline_ports::Expect;

impl AdminService {
    /// The account's quota as LINE said it at most an hour ago (asked now when older).
    pub async fn quota(&self, id: &str) -> Result<QuotaStatus, AdminError> {
        self.account(id).await?;
        let now = self.now_millis();
        let stored = self.deps.config.get_doc(QUOTA_KIND, id).await?;
        let (known, expect) = match &stored {
            Some(doc) => (
                Some(parse_doc::<QuotaStatus>(doc, "quota")?),
                Expect::Version(doc.version),
            ),
            None => (None, Expect::Absent),
        };
        if let Some(known) = known.as_ref().filter(|q| !q.stale(now)) {
            return Ok(known.clone());
        }
        let tokens = ChannelTokens::new(
            self.deps.accounts.clone(),
            self.deps.secrets.clone(),
            self.deps.line.clone(),
        );
        let token = tokens
            .token(id)
            .await
            .map_err(|e| AdminError::LineUnavailable(e.to_string()))?;
        let line = &self.deps.line;
        let quota = line
            .message_quota(&token)
            .await
            .map_err(|e| AdminError::LineUnavailable(e.to_string()))?;
        let used = line
            .quota_consumption(&token)
            .await
            .map_err(|e| AdminError::LineUnavailable(e.to_string()))?;
        let status = QuotaStatus {
            limit: quota.limit(),
            used: used.total_usage,
            fetched_at: now,
        };
        // A concurrent reading wrote first: this one is as good; not written again.
        let _ = self
            .deps
            .config
            .put_doc(QUOTA_KIND, id, &to_doc(&status, "quota")?, expect)
            .await?;
        if let Some(alert) = status.alert() {
            let was = known.as_ref().and_then(QuotaStatus::alert);
            if was.is_none_or(|was| was < alert) {
                tracing::warn!(
                    alert = "quota",
                    level = alert.as_str(),
                    account_id = id,
                    used = status.used,
                    limit = status.limit,
                    "the account's monthly message limit is near or reached"
                );
            }
        }
        Ok(status)
    }
}
