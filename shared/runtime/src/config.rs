//! Typed configuration from the environment, read once at start.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A required, non-empty variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// A variable that is set and not empty.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A variable with a default.
pub fn or_default(name: &'static str, default: &str) -> String {
    optional(name).unwrap_or_else(|| default.to_owned())
}

/// An `http(s)://` base URL, without a trailing slash.
pub fn base_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        Ok(trimmed.to_owned())
    } else {
        Err(ConfigError::Invalid {
            name,
            reason: format!("{value:?} is not an http(s) URL"),
        })
    }
}

/// A number within `range`, or `default` when the variable is unset.
pub fn number_in<T>(
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(value) = optional(name) else {
        return Ok(default);
    };
    match value.trim().parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError::Invalid {
            name,
            reason: format!(
                "{value:?} is not a number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked_against_their_range() {
        // Names no other test sets.
        std::env::set_var("OMNILINE_CONFIG_TEST_N", "7");
        assert_eq!(
            number_in("OMNILINE_CONFIG_TEST_N", 1u32, 1..=10).unwrap(),
            7
        );
        std::env::set_var("OMNILINE_CONFIG_TEST_N", "11");
        let e = number_in("OMNILINE_CONFIG_TEST_N", 1u32, 1..=10).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable OMNILINE_CONFIG_TEST_N is invalid: \"11\" is not a number from 1 to 10"
        );
        std::env::set_var("OMNILINE_CONFIG_TEST_N", "x");
        assert!(number_in("OMNILINE_CONFIG_TEST_N", 1u32, 1..=10).is_err());
        std::env::remove_var("OMNILINE_CONFIG_TEST_N");
        assert_eq!(
            number_in("OMNILINE_CONFIG_TEST_N", 3u32, 1..=10).unwrap(),
            3
        );
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(base_url("X", "https://a.test/").unwrap(), "https://a.test");
        assert!(base_url("X", "ftp://a").is_err());
        assert!(base_url("X", "").is_err());
    }
}
