//! Composition root for AWS: the use cases wired on the AWS adapters, configured from the
//! environment once. Lambdas and the local stack's AWS backend use it; `omniline-local` wires
//! the embedded backend (`omniline_embedded`) the same way.

pub mod aws;

pub use omniline_runtime::config::ConfigError;
use omniline_runtime::config::{base_url, or_default};

/// The LINE client's configuration from `LINE_API_BASE` and `LINE_DATA_API_BASE` (defaults: LINE's
/// production endpoints): every function that calls LINE reads it here.
pub fn line_api_from_env() -> Result<omniline_line::LineApiConfig, ConfigError> {
    Ok(omniline_line::LineApiConfig {
        api_base: base_url(
            "LINE_API_BASE",
            &or_default("LINE_API_BASE", "https://api.line.me"),
        )?,
        data_api_base: base_url(
            "LINE_DATA_API_BASE",
            &or_default("LINE_DATA_API_BASE", "https://api-data.line.me"),
        )?,
        ..omniline_line::LineApiConfig::default()
    })
}
