//! Domain types: a connected LINE Official Account, its credentials and its webhook counters.

use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A LINE Official Account connected to omniline. Holds no secret: the channel secret and access
/// token live in the secret store under [`credentials_secret_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub name: String,
    pub channel_id: String,
    pub bot_user_id: String,
    pub basic_id: String,
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Set while the account has no workstream because its workstream was deleted: the webhook
    /// refuses the account's requests (it reads the account on every request, so at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook_disabled: bool,
}

/// The channel secret (verifies webhooks) and channel access token (calls the Messaging API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCredentials {
    pub channel_secret: SecretString,
    pub channel_access_token: SecretString,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsJson<'a> {
    #[serde(borrow)]
    channel_secret: Cow<'a, str>,
    #[serde(borrow)]
    channel_access_token: Cow<'a, str>,
}

impl ChannelCredentials {
    /// The JSON document kept in the secret store.
    pub fn to_secret(&self) -> SecretString {
        let json = CredentialsJson {
            channel_secret: Cow::Borrowed(self.channel_secret.expose()),
            channel_access_token: Cow::Borrowed(self.channel_access_token.expose()),
        };
        // Serialising two strings cannot fail.
        SecretString::new(serde_json::to_string(&json).unwrap_or_default())
    }

    pub fn from_secret(secret: &SecretString) -> Option<Self> {
        let json: CredentialsJson<'_> = serde_json::from_str(secret.expose()).ok()?;
        Some(Self {
            channel_secret: SecretString::new(json.channel_secret.into_owned()),
            channel_access_token: SecretString::new(json.channel_access_token.into_owned()),
        })
    }
}

/// Name of an account's credentials in the secret store (after the deployment's prefix).
pub fn credentials_secret_name(account_id: &str) -> String {
    format!("accounts/{account_id}")
}

/// Per-account webhook traffic, counted per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    pub received: u64,
    pub queued: u64,
    /// Requests refused (bad signature, not a webhook, too large).
    pub rejected: u64,
    /// RFC 3339 time of the last request that reached the account, if any.
    pub last_received_at: Option<String>,
}

/// One request's contribution to [`WebhookStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    pub received: u64,
    pub queued: u64,
    pub rejected: u64,
}

impl std::ops::AddAssign for WebhookCounts {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.queued += other.queued;
        self.rejected += other.rejected;
    }
}

/// What one delivery adds to its account's message counts: LINE calls accepted as a reply (free)
/// or a push (counted against the channel's monthly message limit), and messages that failed for
/// good (refused, or held at the limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCounts {
    pub replies: u64,
    pub pushes: u64,
    pub failed: u64,
}

impl SendCounts {
    pub fn is_empty(&self) -> bool {
        *self == SendCounts::default()
    }
}

impl std::ops::AddAssign for SendCounts {
    fn add_assign(&mut self, other: Self) {
        self.replies += other.replies;
        self.pushes += other.pushes;
        self.failed += other.failed;
    }
}

/// An account's messages in one calendar month (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonthSends {
    /// `YYYY-MM`.
    pub month: String,
    pub counts: SendCounts,
}

impl MonthSends {
    /// The share of accepted LINE calls that were free replies (`None` before any).
    pub fn free_reply_share(&self) -> Option<f64> {
        let sent = self.counts.replies + self.counts.pushes;
        (sent > 0).then(|| self.counts.replies as f64 / sent as f64)
    }
}

/// Config document kind of an account's last reading of LINE's message
/// quota (id: the account id), a [`QuotaStatus`].
pub const QUOTA_KIND: &str = "messageQuota";
/// How old a reading of the quota may be before LINE is asked again (at most hourly).
pub const QUOTA_REFRESH_MS: i64 = 3_600_000;

/// An account's monthly message limit and how much of it is used, as LINE last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaStatus {
    /// `None`: no limit.
    pub limit: Option<u64>,
    pub used: u64,
    /// When LINE was asked (epoch ms).
    pub fetched_at: i64,
}

/// How close an account is to its limit: an alert at 80 % and at 100 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuotaAlert {
    Near,
    Reached,
}

impl QuotaAlert {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaAlert::Near => "80%",
            QuotaAlert::Reached => "100%",
        }
    }
}

impl QuotaStatus {
    /// The share of the limit used (`None` without a limit).
    pub fn share(&self) -> Option<f64> {
        self.limit.map(|limit| {
            if limit == 0 {
                1.0
            } else {
                self.used as f64 / limit as f64
            }
        })
    }

    pub fn alert(&self) -> Option<QuotaAlert> {
        let limit = self.limit?;
        if self.used >= limit {
            Some(QuotaAlert::Reached)
        } else if self.used * 5 >= limit * 4 {
            Some(QuotaAlert::Near)
        } else {
            None
        }
    }

    pub fn stale(&self, now: i64) -> bool {
        now - self.fetched_at >= QUOTA_REFRESH_MS
    }
}

/// How many months of message counts an account keeps (this one and the twelve before).
pub const SEND_MONTHS_KEPT: usize = 13;

/// The calendar month (UTC, `YYYY-MM`) of epoch milliseconds `millis`.
pub fn month_of(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// The month `back` months before `month` (`YYYY-MM`); `None` if `month` is not one.
pub fn month_before(month: &str, back: u32) -> Option<String> {
    let (year, m) = month.split_once('-')?;
    let (year, m): (i64, i64) = (year.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || month.len() != 7 {
        return None;
    }
    let index = year * 12 + (m - 1) - i64::from(back);
    Some(format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339_millis;

    #[test]
    fn credentials_round_trip_through_the_secret_document() {
        let c = ChannelCredentials {
            channel_secret: SecretString::new("s\"ecret"),
            channel_access_token: SecretString::new("tok"),
        };
        assert_eq!(ChannelCredentials::from_secret(&c.to_secret()), Some(c));
        assert_eq!(
            ChannelCredentials::from_secret(&SecretString::new("nope")),
            None
        );
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn months_are_utc_calendar_months() {
        // 2026-11-30T23:59:59.999Z, then the next millisecond.
        assert_eq!(month_of(1_796_083_199_999), "2026-11");
        assert_eq!(month_of(1_796_083_200_000), "2026-12");
        assert_eq!(month_before("2026-12", 0).as_deref(), Some("2026-12"));
        assert_eq!(month_before("2026-12", 12).as_deref(), Some("2025-12"));
        assert_eq!(month_before("2026-01", 1).as_deref(), Some("2025-12"));
        assert_eq!(month_before("2026-13", 1), None);
        assert_eq!(month_before("nope", 1), None);
        let m = MonthSends {
            month: "2026-12".into(),
            counts: SendCounts {
                replies: 9,
                pushes: 1,
                failed: 3,
            },
        };
        assert_eq!(m.free_reply_share(), Some(0.9));
        assert_eq!(MonthSends::default().free_reply_share(), None);
    }

    #[test]
    fn quota_alerts_at_80_and_100_percent() {
        let q = |limit, used| QuotaStatus {
            limit,
            used,
            fetched_at: 0,
        };
        assert_eq!(q(Some(200), 159).alert(), None);
        assert_eq!(q(Some(200), 160).alert(), Some(QuotaAlert::Near));
        assert_eq!(q(Some(200), 200).alert(), Some(QuotaAlert::Reached));
        assert_eq!(q(Some(200), 250).alert(), Some(QuotaAlert::Reached));
        assert_eq!(q(None, 10_000).alert(), None);
        assert_eq!(q(Some(200), 50).share(), Some(0.25));
        assert!(q(Some(1), 0).stale(QUOTA_REFRESH_MS));
        assert!(!q(Some(1), 0).stale(QUOTA_REFRESH_MS - 1));
    }
}
