//! Reports (`GET /admin/v1/reports/{conversations|csat|volume}`): the conversations opened in a
//! period, read day by day through the store's index by account and day (never a transcript),
//! aggregated by [`omniline_domain::reports::aggregate`].

use super::{AdminError, AdminService};
use omniline_domain::reports::{
    aggregate, report_days, GroupBy, ReportKind, ReportRow, REPORT_MAX_CONVERSATIONS,
    REPORT_MAX_DAYS,
};

/// A report's rows, and whether the period held more conversations than one report reads.
#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    pub conversations: usize,
    pub truncated: bool,
}

impl AdminService {
    /// The report `kind` over the conversations opened from `from` to `to` (epoch ms,
    /// inclusive) in `account_id`, or in every account when `None` (`NotFound("account")` for
    /// an unknown one), grouped by `group_by`.
    pub async fn report(
        &self,
        kind: ReportKind,
        group_by: GroupBy,
        account_id: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Report, AdminError> {
        let days = report_days(from, to).ok_or_else(|| {
            AdminError::invalid(
                "from",
                format!(
                    "to must not be before from, and the period is at most {REPORT_MAX_DAYS} days"
                ),
            )
        })?;
        let accounts: Vec<String> = match account_id {
            Some(id) => {
                if self.deps.accounts.get(id).await?.is_none() {
                    return Err(AdminError::NotFound("account"));
                }
                vec![id.to_owned()]
            }
            None => self
                .deps
                .accounts
                .list()
                .await?
                .into_iter()
                .map(|a| a.id)
                .collect(),
        };
        let mut conversations = Vec::new();
        let mut truncated = false;
        'read: for account in &accounts {
            for day in &days {
                let room = REPORT_MAX_CONVERSATIONS - conversations.len();
                let found = self
                    .deps
                    .conversations
                    .conversations_opened_on(account, *day, room + 1)
                    .await?;
                for c in found {
                    if (from..=to).contains(&c.opened_at) {
                        if conversations.len() == REPORT_MAX_CONVERSATIONS {
                            truncated = true;
                            break 'read;
                        }
                        conversations.push(c);
                    }
                }
            }
        }
        Ok(Report {
            rows: aggregate(kind, group_by, &conversations),
            conversations: conversations.len(),
            truncated,
        })
    }
}
