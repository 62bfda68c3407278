//! The `from` and `to` query parameters of a period (RFC 3339 times), shared by the audit trail
//! and the reports.

use crate::error::Result;
use omniline_domain::clock::parse_rfc3339_millis;
use omniline_domain::input::{InputError, Query};

/// A day, in ms.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// `(from, to)` in epoch ms: `to` defaults to `now`, `from` to `default_span` before `to`; a
/// value that is not an RFC 3339 time is a 400 naming its parameter.
pub(crate) fn period(query: &Query, now: i64, default_span: i64) -> Result<(i64, i64)> {
    let time = |name: &str| -> Result<Option<i64>> {
        match query.get(name) {
            None => Ok(None),
            Some(v) => parse_rfc3339_millis(v).map(Some).ok_or_else(|| {
                InputError::new(name, format!("{name} must be an RFC 3339 time")).into()
            }),
        }
    };
    let to = time("to")?.unwrap_or(now);
    let from = time("from")?.unwrap_or(to - default_span);
    Ok((from, to))
}
