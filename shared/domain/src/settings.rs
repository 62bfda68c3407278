//! System-wide settings kept in the [`ConfigStore`] (kind `settings`, id `global`): for now the
//! retention period of conversations, transcripts and customers.

use serde::{Deserialize, Serialize};

/// [`ConfigStore`] kind of the settings document.
pub const SETTINGS_KIND: &str = "settings";
/// Id of the one settings document.
pub const SETTINGS_ID: &str = "global";
/// Longest retention, in days (10 years).
pub const RETENTION_DAYS_MAX: u32 = 3650;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Conversations, transcripts and customers are deleted this many days after their last
    /// activity; `None` keeps them until purged.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

impl Settings {
    /// `retain_until` (epoch seconds) for data last active at `now_millis`.
    pub fn retain_until(&self, now_millis: i64) -> Option<i64> {
        self.retention_days
            .map(|days| now_millis.div_euclid(1000) + i64::from(days) * 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_until_counts_days_from_the_last_activity() {
        let keep = Settings::default();
        assert_eq!(keep.retain_until(1_000_000), None);
        let week = Settings {
            retention_days: Some(7),
        };
        assert_eq!(week.retain_until(1_000_999), Some(1_000 + 7 * 86_400));
    }
}
