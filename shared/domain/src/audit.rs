//! The audit trail: every admin change and every supervisor action, who made it, what and when
//! (`GET /admin/v1/audit?from=&to=`). One config document per record, under one kind per UTC day
//! ([`audit_kind`]), so that reading a period is one Query per day, whatever the trail's length.

use serde::{Deserialize, Serialize};

/// The kind prefix of a day's records (`audit@2026-12-07`).
pub const AUDIT_KIND_PREFIX: &str = "audit@";
/// The longest period one read covers.
pub const AUDIT_MAX_DAYS: i64 = 31;
/// The most records one read returns (the newest first).
pub const AUDIT_MAX_RECORDS: usize = 1_000;

const DAY_MS: i64 = 86_400_000;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Epoch ms.
    pub at: i64,
    /// Who: a person's email, or "admin token".
    pub actor: String,
    /// `admin` (the admin API) or `supervisor` (the agent API's supervisor routes).
    pub via: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

/// The config kind of the day (UTC) of `at_ms`.
pub fn audit_kind(at_ms: i64) -> String {
    format!("{AUDIT_KIND_PREFIX}{}", utc_day(at_ms))
}

/// The UTC day of `at_ms`, `YYYY-MM-DD`.
pub fn utc_day(at_ms: i64) -> String {
    let (y, m, d) = civil_from_days(at_ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The kinds of the days from `from` to `to` (epoch ms, inclusive), oldest first; `None` when
/// `to` is before `from` or the period is longer than [`AUDIT_MAX_DAYS`].
pub fn audit_kinds(from: i64, to: i64) -> Option<Vec<String>> {
    let (first, last) = (from.div_euclid(DAY_MS), to.div_euclid(DAY_MS));
    if to < from || last - first >= AUDIT_MAX_DAYS {
        return None;
    }
    Some((first..=last).map(|day| audit_kind(day * DAY_MS)).collect())
}

/// The record's id: sorts by time within its day.
pub fn audit_id(at_ms: i64, unique: &str) -> String {
    format!("{at_ms:015}-{unique}")
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_lands_in_its_utc_day_and_a_period_names_its_days() {
        assert_eq!(audit_kind(0), "audit@1970-01-01");
        // 2026-12-07T23:59:59.999Z and a millisecond later.
        assert_eq!(audit_kind(1_796_687_999_999), "audit@2026-12-07");
        assert_eq!(audit_kind(1_796_688_000_000), "audit@2026-12-08");
        assert_eq!(audit_kind(951_782_400_000), "audit@2000-02-29");
        assert_eq!(
            audit_kinds(1_796_600_000_000, 1_796_688_000_000).unwrap(),
            ["audit@2026-12-06", "audit@2026-12-07", "audit@2026-12-08"]
        );
        assert_eq!(audit_kinds(10, 5), None);
        assert_eq!(audit_kinds(0, 31 * DAY_MS), None, "32 days");
        assert_eq!(audit_kinds(0, 31 * DAY_MS - 1).unwrap().len(), 31);
        assert!(audit_id(5, "a") < audit_id(40, "a"));
    }
}
