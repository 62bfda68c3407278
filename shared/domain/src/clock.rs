//! The one clock of the workspace and time formatting.

/// "Now" in epoch milliseconds, passed into every use case that decides with time (one clock
/// per decision; tests pass a fixed one). The only clock type of the workspace.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock as a [`Clock`], for composition roots.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(now_millis)
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339_millis(millis: i64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format).unwrap_or_default()
}

/// Epoch milliseconds of an RFC 3339 time (`2026-12-08T09:00:00+09:00`, `…Z`, with or without
/// fractional seconds); `None` when it is not one.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A new opaque id: 32 lowercase hex characters.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_with_offsets_and_round_trips() {
        assert_eq!(parse_rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_millis("2026-12-08T09:00:00+09:00"),
            parse_rfc3339_millis("2026-12-08T00:00:00Z")
        );
        assert_eq!(
            parse_rfc3339_millis(&rfc3339_millis(1_700_000_000_123)),
            Some(1_700_000_000_123)
        );
        for bad in [
            "",
            "tomorrow",
            "2026-12-08",
            "2026-12-08 09:00:00",
            "1700000000",
        ] {
            assert_eq!(parse_rfc3339_millis(bad), None, "{bad:?}");
        }
    }
}
