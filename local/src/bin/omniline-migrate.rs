//! `omniline-migrate`: the one-off migration of a deployed stack's tables (see
//! `omniline_local::migrate`). Reads `CONFIG_TABLE` and `CONVERSATIONS_TABLE` (the stack's
//! outputs), the region and credentials as every AWS tool does, and `AWS_ENDPOINT_URL` when set.
//!
//! ```text
//! CONFIG_TABLE=… CONVERSATIONS_TABLE=… cargo run --release --bin omniline-migrate
//! ```

use omniline_runtime::config::{optional, required};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let (config_table, conversations_table) =
        match (required("CONFIG_TABLE"), required("CONVERSATIONS_TABLE")) {
            (Ok(config), Ok(conversations)) => (config, conversations),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("omniline-migrate: {e}");
                return ExitCode::from(2);
            }
        };
    let endpoint = optional("AWS_ENDPOINT_URL");
    let sdk = omniline_aws::load_sdk_config(endpoint.as_deref()).await;
    match omniline_local::migrate::migrate(&sdk, &config_table, &conversations_table).await {
        Ok(done) => {
            println!(
                "omniline-migrate: {} conversations indexed, {} accounts listed, {} agent emails indexed",
                done.conversations, done.accounts, done.agent_emails
            );
            if !done.agents_sharing_an_email.is_empty() {
                println!(
                    "omniline-migrate: these agents share an email address with another and cannot sign in with OIDC until an admin changes it: {}",
                    done.agents_sharing_an_email.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("omniline-migrate: {e} (nothing is lost: run it again to resume)");
            ExitCode::FAILURE
        }
    }
}
