//! An account's monthly LINE message limit and its use: asked of LINE at most hourly
//! ([`QUOTA_REFRESH_MS`]) and kept as a config document ([`QUOTA_KIND`]), by whoever reads it
//! first — the admin API's `GET /admin/v1/accounts/{id}/quota`, or the router's schedule, which
//! reads every account's once an hour so that the alerts come without anyone looking. A reading
//! that crosses 80 % or 100 % logs `alert = "quota"` with its level (a CloudWatch metric filter
//! counts them).

use crate::tokens::{ChannelTokens, TokenError};
use omniline_domain::account::{QuotaStatus, QUOTA_KIND, QUOTA_REFRESH_MS};
use omniline_domain::line::api::LineApiError;
use omniline_ports::{AccountStore, ConfigStore, Expect, LineApi, PortError};
use serde::{Deserialize, Serialize};

/// Config document (kind [`QUOTA_CHECK_KIND`], id [`QUOTA_CHECK_ID`]) saying when the schedule
/// next reads every account's quota.
pub const QUOTA_CHECK_KIND: &str = "quotaCheck";
pub const QUOTA_CHECK_ID: &str = "next";

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error(transparent)]
    Store(#[from] PortError),
    #[error("LINE: {0}")]
    Line(String),
}

impl From<TokenError> for QuotaError {
    fn from(e: TokenError) -> Self {
        QuotaError::Line(e.to_string())
    }
}

impl From<LineApiError> for QuotaError {
    fn from(e: LineApiError) -> Self {
        QuotaError::Line(e.to_string())
    }
}

/// The account's quota as LINE said at most an hour before `now` (asked now when older).
pub async fn read_quota(
    config: &dyn ConfigStore,
    tokens: &ChannelTokens,
    line: &dyn LineApi,
    account_id: &str,
    now: i64,
) -> Result<QuotaStatus, QuotaError> {
    let stored = config.get_doc(QUOTA_KIND, account_id).await?;
    let (known, expect) = match &stored {
        Some(doc) => (
            serde_json::from_str::<QuotaStatus>(&doc.doc).ok(),
            Expect::Version(doc.version),
        ),
        None => (None, Expect::Absent),
    };
    if let Some(known) = known.as_ref().filter(|q| !q.stale(now)) {
        return Ok(known.clone());
    }
    let token = tokens.token(account_id).await?;
    let quota = line.message_quota(&token).await?;
    let used = line.quota_consumption(&token).await?;
    let status = QuotaStatus {
        limit: quota.limit(),
        used: used.total_usage,
        fetched_at: now,
    };
    let doc = serde_json::to_string(&status)
        .map_err(|e| PortError::Unavailable(format!("quota: {e}")))?;
    // A concurrent reading wrote first: this one is as good; not written again.
    let _ = config.put_doc(QUOTA_KIND, account_id, &doc, expect).await?;
    if let Some(alert) = status.alert() {
        let was = known.as_ref().and_then(QuotaStatus::alert);
        if was.is_none_or(|was| was < alert) {
            tracing::warn!(
                alert = "quota",
                level = alert.as_str(),
                account_id,
                used = status.used,
                limit = status.limit,
                "the account's monthly message limit is near or reached"
            );
        }
    }
    Ok(status)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NextCheck {
    next_at: i64,
}

/// The schedule's hourly reading of every account's quota: one GetItem a minute says whether it
/// is due; the schedule that takes the turn (a conditional write) reads the accounts' (one
/// Query of the account list and the quota documents, LINE only for the stale ones). Failures
/// are logged per account. Returns how many accounts were read, `None` when it was not due.
pub async fn check_quotas(
    config: &dyn ConfigStore,
    accounts: &dyn AccountStore,
    tokens: &ChannelTokens,
    line: &dyn LineApi,
    now: i64,
) -> Result<Option<usize>, PortError> {
    let current = config.get_doc(QUOTA_CHECK_KIND, QUOTA_CHECK_ID).await?;
    let (due, expect) = match &current {
        None => (true, Expect::Absent),
        Some(doc) => (
            serde_json::from_str::<NextCheck>(&doc.doc).map_or(true, |n| n.next_at <= now),
            Expect::Version(doc.version),
        ),
    };
    if !due {
        return Ok(None);
    }
    let next = serde_json::to_string(&NextCheck {
        next_at: now + QUOTA_REFRESH_MS,
    })
    .map_err(|e| PortError::Unavailable(format!("quota check: {e}")))?;
    if config
        .put_doc(QUOTA_CHECK_KIND, QUOTA_CHECK_ID, &next, expect)
        .await?
        .is_none()
    {
        // Another schedule took this turn.
        return Ok(None);
    }
    let mut read = 0;
    for account in accounts.list().await? {
        match read_quota(config, tokens, line, &account.id, now).await {
            Ok(_) => read += 1,
            Err(e) => {
                tracing::warn!(account_id = %account.id, error = %e, "quota not read");
            }
        }
    }
    Ok(Some(read))
}
