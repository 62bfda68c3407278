//! Logging: `tracing`, JSON lines on Lambda (CloudWatch), human-readable locally. Level from
//! `RUST_LOG` (default `info`). Nothing logs bodies or secrets.

use tracing_subscriber::EnvFilter;

/// True when running inside AWS Lambda (the runtime API is set by the service).
pub fn on_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if on_lambda() {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .without_time() // CloudWatch stamps every line
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
