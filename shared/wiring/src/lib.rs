//! Composition roots: the use cases of `omniline_app` wired on one backend's adapters.
//!
//! - [`aws`] (feature `aws`): DynamoDB, SQS, Secrets Manager and S3, configured from the
//!   environment once; what every Lambda's `main.rs` calls.
//! - [`embedded`] (feature `embedded`): one SQLite database and a media directory under a data
//!   directory; what `omniline-local` and the tests call.
//!
//! Both hand a backend's adapters over as [`Stores`]; [`router_service`], [`outbound_service`],
//! [`webhook_ingest`] and [`admin_deps`] assemble the use cases from them the same way for either
//! backend. A Lambda enables `aws` only, so it links no SQLite.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "embedded")]
pub mod embedded;

use omniline_app::admin::AdminDeps;
use omniline_app::identity::OidcVerifier;
use omniline_app::ingest::WebhookIngest;
use omniline_app::jobs::{PurgeDeps, PurgeJobs};
use omniline_app::outbound::{MediaLinks, OutboundDeps, OutboundService};
use omniline_app::router::{RouterDeps, RouterService};
use omniline_app::tokens::ChannelTokens;
use omniline_domain::clock::{system_clock, Clock};
use omniline_domain::identity::OidcConfig;
use omniline_line::HttpIdentityProvider;
use omniline_ports::{
    AccountStore, AgentStore, BotHook, ConfigStore, ConversationStore, DeliveryStore, EventQueue,
    LineApi, ObjectStore, SecretStore, WorkstreamStore,
};
use omniline_runtime::config::{base_url, or_default};
use std::sync::Arc;

pub use omniline_runtime::config::ConfigError;

/// One backend's stores and queues, as ports.
#[derive(Clone)]
pub struct Stores {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// The inbound queue (webhook → router).
    pub inbound: Arc<dyn EventQueue>,
    pub config: Arc<dyn ConfigStore>,
    pub workstreams: Arc<dyn WorkstreamStore>,
    pub agents: Arc<dyn AgentStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub media: Arc<dyn ObjectStore>,
}

/// Channel access tokens over the stores' accounts and secrets.
pub fn channel_tokens(stores: &Stores, line: Arc<dyn LineApi>) -> Arc<ChannelTokens> {
    Arc::new(ChannelTokens::new(
        Arc::clone(&stores.accounts),
        Arc::clone(&stores.secrets),
        line,
    ))
}

/// The webhook's use case: verify, refuse, queue on `stores.inbound`.
pub fn webhook_ingest(stores: &Stores) -> WebhookIngest {
    WebhookIngest::new(
        Arc::clone(&stores.accounts),
        Arc::clone(&stores.secrets),
        Arc::clone(&stores.inbound),
        system_clock(),
    )
}

/// The background jobs (account purges) on the stores: the admin records them, the router's
/// schedule runs them.
pub fn purge_jobs(stores: &Stores, clock: Clock) -> PurgeJobs {
    PurgeJobs::new(
        PurgeDeps {
            config: Arc::clone(&stores.config),
            conversations: Arc::clone(&stores.conversations),
            deliveries: Arc::clone(&stores.deliveries),
            media: Arc::clone(&stores.media),
        },
        clock,
    )
}

/// The router's use case (and the agents'), queueing what it sends on `outbound`; its schedule
/// runs the background jobs ([`purge_jobs`]).
pub fn router_service(
    stores: &Stores,
    outbound: Arc<dyn EventQueue>,
    line: Arc<dyn LineApi>,
    bot: Arc<dyn BotHook>,
    tokens: Arc<ChannelTokens>,
    clock: Clock,
) -> RouterService {
    RouterService::new(RouterDeps {
        accounts: Arc::clone(&stores.accounts),
        secrets: Arc::clone(&stores.secrets),
        conversations: Arc::clone(&stores.conversations),
        workstreams: Arc::clone(&stores.workstreams),
        agents: Arc::clone(&stores.agents),
        config: Arc::clone(&stores.config),
        outbound,
        media: Arc::clone(&stores.media),
        line,
        bot,
        tokens,
        clock: clock.clone(),
    })
    .with_purge_jobs(purge_jobs(stores, clock))
}

/// Sign-in with OpenID Connect, when `OIDC_ISSUER` and `OIDC_CLIENT_ID` are set (both or
/// neither): ID tokens of that issuer for that client, groups from `OIDC_GROUPS_CLAIM`
/// (`cognito:groups` by default). The issuer's keys are fetched on first use, not here.
pub fn oidc_verifier(clock: Clock) -> Result<Option<Arc<OidcVerifier>>, ConfigError> {
    use omniline_runtime::config::optional;
    let (issuer, client_id) = match (optional("OIDC_ISSUER"), optional("OIDC_CLIENT_ID")) {
        (None, None) => return Ok(None),
        (Some(issuer), Some(client_id)) => (issuer.trim().to_owned(), client_id.trim().to_owned()),
        (Some(_), None) => return Err(ConfigError::Missing("OIDC_CLIENT_ID")),
        (None, Some(_)) => return Err(ConfigError::Missing("OIDC_ISSUER")),
    };
    let keys = HttpIdentityProvider::new(issuer.clone()).map_err(|e| ConfigError::Invalid {
        name: "OIDC_ISSUER",
        reason: e.to_string(),
    })?;
    let config = OidcConfig::new(issuer, client_id).with_groups_claim(or_default(
        "OIDC_GROUPS_CLAIM",
        omniline_domain::identity::DEFAULT_GROUPS_CLAIM,
    ));
    Ok(Some(Arc::new(OidcVerifier::new(
        config,
        Arc::new(keys),
        clock,
    ))))
}

/// What the admin use cases work on: the stores (not the inbound queue) and `line`.
pub fn admin_deps(stores: &Stores, line: Arc<dyn LineApi>) -> AdminDeps {
    AdminDeps {
        accounts: Arc::clone(&stores.accounts),
        secrets: Arc::clone(&stores.secrets),
        line,
        config: Arc::clone(&stores.config),
        workstreams: Arc::clone(&stores.workstreams),
        agents: Arc::clone(&stores.agents),
        conversations: Arc::clone(&stores.conversations),
        deliveries: Arc::clone(&stores.deliveries),
        media: Arc::clone(&stores.media),
    }
}

/// The outbound use case: sends to LINE, keeps delivery records.
pub fn outbound_service(
    stores: &Stores,
    line: Arc<dyn LineApi>,
    tokens: Arc<ChannelTokens>,
    media: Option<MediaLinks>,
    clock: Clock,
) -> OutboundService {
    OutboundService::new(OutboundDeps {
        accounts: Arc::clone(&stores.accounts),
        agents: Arc::clone(&stores.agents),
        deliveries: Arc::clone(&stores.deliveries),
        config: Arc::clone(&stores.config),
        conversations: Arc::clone(&stores.conversations),
        line,
        tokens,
        media,
        clock,
    })
}

/// The LINE client's configuration from `LINE_API_BASE` and `LINE_DATA_API_BASE` (defaults:
/// LINE's production endpoints): every function that calls LINE reads it here.
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
