//! System-wide settings kept in the [`ConfigStore`] (kind `settings`, id `global`): the
//! retention period of conversations, transcripts and customers, and how long an agent's
//! presence holds without a heartbeat.

use serde::{Deserialize, Serialize};

/// [`ConfigStore`] kind of the settings document.
pub const SETTINGS_KIND: &str = "settings";
/// Id of the one settings document.
pub const SETTINGS_ID: &str = "global";
/// Longest retention, in days (10 years).
pub const RETENTION_DAYS_MAX: u32 = 3650;
/// The presence timeout when none is set, in seconds.
pub const PRESENCE_TIMEOUT_DEFAULT: u32 = 90;
/// The shortest presence timeout other than 0 (off): twice the console's heartbeat (30 s).
pub const PRESENCE_TIMEOUT_MIN: u32 = 60;
/// The longest presence timeout (a day).
pub const PRESENCE_TIMEOUT_MAX: u32 = 86_400;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Conversations, transcripts and customers are deleted this many days after their last
    /// activity; `None` keeps them until purged.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// An `available` or `busy` agent not heard from (`PUT /agent/v1/presence`) for this many
    /// seconds becomes `away`; `0`: never. `None`: [`PRESENCE_TIMEOUT_DEFAULT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_timeout_seconds: Option<u32>,
}

impl Settings {
    /// The presence timeout in force, in seconds (`0`: off).
    pub fn presence_timeout(&self) -> u32 {
        self.presence_timeout_seconds
            .unwrap_or(PRESENCE_TIMEOUT_DEFAULT)
    }

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
            ..Settings::default()
        };
        assert_eq!(week.retain_until(1_000_999), Some(1_000 + 7 * 86_400));
    }

    #[test]
    fn the_presence_timeout_defaults_to_ninety_seconds() {
        assert_eq!(Settings::default().presence_timeout(), 90);
        let off = Settings {
            presence_timeout_seconds: Some(0),
            ..Settings::default()
        };
        assert_eq!(off.presence_timeout(), 0);
        // Stored settings from before the field read as the default.
        let old: Settings = serde_json::from_str(r#"{"retentionDays":30}"#).unwrap();
        assert_eq!(old.presence_timeout(), 90);
    }
}
