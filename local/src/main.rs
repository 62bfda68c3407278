//! `cargo run --release --bin omniline-local`: the whole omniline stack on this machine.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    omniline_runtime::telemetry::init();
    let config = match omniline_local::LocalConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("omniline-local: {e}");
            return ExitCode::from(2);
        }
    };
    let admin_token_set = config.admin_token.is_some();
    let backend = match &config.backend {
        omniline_local::Backend::Embedded => {
            format!("embedded (SQLite in {})", config.data_dir.display())
        }
        omniline_local::Backend::Aws { endpoint_url, .. } => format!(
            "AWS ({}){}",
            endpoint_url.as_deref().unwrap_or("default endpoints"),
            match &config.aws_workers {
                Some(_) => format!(
                    "; router and outbound here as SQS pollers ({} + {})",
                    config.router_workers, config.outbound_workers
                ),
                None => "; router and outbound on Lambda".to_owned(),
            }
        ),
    };
    let stack = match omniline_local::start(config).await {
        Ok(stack) => stack,
        Err(e @ omniline_local::StartError::NotPrivate(_)) => {
            eprintln!("omniline-local: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("omniline-local: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("omniline-local is ready");
    println!("  base URL:     {}", stack.base_url);
    println!("  listening on: http://{}", stack.addr);
    println!("  backend:      {backend}");
    if admin_token_set {
        println!("  admin token:  the one in ADMIN_TOKEN");
    } else {
        // Generated on the first run and kept in the data directory: shown so it can be used.
        println!("  admin token:  {}", stack.admin_token.expose());
    }
    println!(
        "  webhook URL:  {}/line/webhook/{{accountId}}",
        stack.base_url
    );
    println!("  health:       http://{}/healthz", stack.addr);
    println!("  console:      {}/console", stack.base_url);
    match omniline_runtime::config::optional("OIDC_ISSUER") {
        Some(issuer) => println!(
            "                (the agent console: sign in at {issuer}, or with an agent token)"
        ),
        None => println!("                (the agent console: sign in with an agent token)"),
    }
    match &stack.sandbox_url {
        Some(url) => {
            println!("  sandbox:      {url}");
            println!("                (play the customer and the agent in your browser; LINE is simulated)");
        }
        None => println!(
            "  sandbox:      off (LINE_API_BASE or LINE_DATA_API_BASE set, SANDBOX=off, or the AWS backend)"
        ),
    }

    let outcome = shutdown_signal().await;
    tracing::info!("shutting down");
    let stopped = stack.shutdown().await;
    match outcome.and(stopped) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("omniline-local: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
