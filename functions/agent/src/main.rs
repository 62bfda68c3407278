//! Lambda entry point of the agent function: typed config from the environment, clients built
//! once (the router's use cases on the AWS adapters), then the agent routes served on Lambda (or
//! on `$PORT` outside Lambda).

use agent::{AgentState, MediaSigner};
use omniline_aws::dynamo_deliveries::DynamoDeliveryStore;
use omniline_aws::{load_sdk_config, SecretsManagerStore};
use omniline_domain::clock::system_clock;
use omniline_runtime::config::{base_url, optional, required};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    omniline_runtime::telemetry::init();
    let public_base_url = base_url("PUBLIC_BASE_URL", &required("PUBLIC_BASE_URL")?)?;
    let conversations_table = required("CONVERSATIONS_TABLE")?;
    let sdk = load_sdk_config(optional("AWS_ENDPOINT_URL").as_deref()).await;
    let router = Arc::new(omniline_wiring::aws::router_service(&sdk)?);
    let media = match optional("MEDIA_SIGNING_SECRET_ID") {
        Some(secret_id) => {
            // Read on the first request: init makes no network call.
            let secrets = Arc::new(SecretsManagerStore::new(&sdk, String::new()));
            Some(MediaSigner {
                base_url: public_base_url.clone(),
                signing_secret: secrets.lazy_by_id(&secret_id, "MEDIA_SIGNING_SECRET_ID"),
            })
        }
        None => None,
    };
    // Sign-in with OpenID Connect: one verifier (one key cache) for the API and the console.
    let oidc = omniline_wiring::oidc_verifier(system_clock())?;
    let mut state = AgentState::new(
        router,
        Arc::new(DynamoDeliveryStore::new(&sdk, conversations_table)),
        media,
        public_base_url,
    )
    .with_oidc(oidc.clone());
    // The supervisors' routes also take the admin token (read on first use).
    if let Some(secret_id) = optional("ADMIN_TOKEN_SECRET_ID") {
        let secrets = Arc::new(SecretsManagerStore::new(&sdk, String::new()));
        state = state.with_admin_token(secrets.lazy_by_id(&secret_id, "ADMIN_TOKEN_SECRET_ID"));
    }
    let console = agent::console::ConsoleConfig::new(oidc);
    omniline_runtime::http::serve(agent::standalone(state, console), 9005).await
}
