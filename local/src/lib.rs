//! `omniline-local`: every omniline function in one process, on the embedded adapters (one SQLite
//! database under `DATA_DIR`) by default, or on the AWS adapters (`OMNILINE_BACKEND=aws`, e.g.
//! against moto). The same routers and use cases as the Lambda functions, wired differently.
//!
//! On the embedded backend the router consumes the inbound queue in the background and an
//! auto-close timer runs every minute. On the AWS backend those run on Lambda (SQS event source
//! and EventBridge schedule), so the local process serves HTTP only, unless `AWS_WORKERS=on`:
//! then it also runs the router and the outbound function as SQS pollers (the Lambdas' handlers,
//! wired by the Lambdas' composition roots from the same variables), the agent API and the
//! schedule, in this process.

pub mod meter;
pub mod migrate;
pub mod sandbox;
pub mod serve;
pub mod workers;

use axum::routing::get;
use axum::{Json, Router};
use omniline_app::identity::OidcVerifier;
use omniline_app::outbound::MediaLinks;
use omniline_app::outbound::OutboundService;
use omniline_app::router::RouterService;
use omniline_domain::clock::system_clock;
use omniline_domain::line::api::LineApiError;
use omniline_domain::secret::SecretString;
use omniline_embedded::objects::FsObjectStore;
use omniline_embedded::{Durability, EmbeddedDb};
use omniline_line::{HttpBotHook, HttpLineApi, LineApiConfig};
use omniline_ports::{PortError, SecretStore};
use omniline_runtime::config::{base_url, number_in, optional, or_default, required, ConfigError};
use omniline_wiring::aws::load_sdk_config;
use omniline_wiring::Stores;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use omniline_wiring::embedded::{
    INBOUND_QUEUE, MAX_RECEIVE_COUNT, OUTBOUND_MAX_RECEIVE_COUNT, OUTBOUND_QUEUE,
};
/// Where the generated admin token is kept between runs (embedded secret store).
const ADMIN_TOKEN_SECRET: &str = "admin-token";
/// The key of signed media links, generated on the first run.
const MEDIA_SIGNING_SECRET: &str = "media-signing-key";

/// Which adapters the stack runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite under the data directory: no AWS account needed.
    Embedded,
    /// DynamoDB, SQS and Secrets Manager; `endpoint_url` for moto or another region.
    Aws {
        endpoint_url: Option<String>,
        config_table: String,
        inbound_queue_url: String,
        secret_prefix: String,
        /// Conversations, customers and deliveries; the config table when `None`.
        conversations_table: Option<String>,
        /// Media bucket; files under the data directory when `None`.
        media_bucket: Option<String>,
    },
}

/// The local stack's configuration (see the README for the variables).
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub port: u16,
    pub admin_token: Option<SecretString>,
    pub public_base_url: Option<String>,
    /// The LINE API client: `LINE_API_BASE`, `LINE_DATA_API_BASE` (as every function reads them,
    /// `omniline_wiring::line_api_from_env`) and `LINE_TIMEOUT_MS`.
    pub line: LineApiConfig,
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// Router workers consuming the inbound queue at once (embedded backend): a FIFO group is
    /// never handed to two of them, as on SQS.
    pub router_workers: usize,
    /// Outbound workers consuming the outbound queue at once (embedded backend).
    pub outbound_workers: usize,
    /// How often the router's schedule runs (`SCHEDULE_EVERY_MS`, embedded backend): auto-close,
    /// distribution, retention, and the background jobs (account purges).
    pub schedule_every: Duration,
    /// What a commit of the embedded database survives (`EMBEDDED_DURABILITY`).
    pub durability: Durability,
    /// Sandbox mode (`SANDBOX`): the LINE API is the simulated platform served under
    /// `/sandbox/line`, and `/sandbox` is the page playing the customer and the agent.
    pub sandbox: bool,
    /// The AWS backend's router and outbound function in this process (`AWS_WORKERS=on`).
    pub aws_workers: Option<AwsWorkers>,
}

/// `AWS_WORKERS=on`: the router polls the inbound queue (`ROUTER_WORKERS` pollers), the
/// outbound function the outbound queue (`OUTBOUND_WORKERS`), as Lambda's event source mappings
/// do; the services are built by `omniline_wiring::aws` from the variables the Lambdas read
/// (`CONFIG_TABLE`, `CONVERSATIONS_TABLE`, `OUTBOUND_QUEUE_URL`, `MEDIA_BUCKET`,
/// `SECRET_PREFIX`, `LINE_API_BASE`, …).
#[derive(Debug, Clone)]
pub struct AwsWorkers {
    pub outbound_queue_url: String,
    /// `SQS_WAIT_SECONDS` (0–20, default 20): the long poll; 0 for moto, which serves one
    /// request at a time and would hold every other call during a long poll.
    pub wait: Duration,
    /// `SQS_RETRY_PERCENT` (1–100, default 100): failed messages are delayed by this share of
    /// the Lambdas' delays (5 s, 10 s, 20 s … 15 min).
    pub retry_percent: u32,
    /// `OMNILINE_METER=on` (default off): count every AWS request and each function's
    /// invocations, served at `GET /_meter` (admin token) for the load test's cost meter.
    pub meter: bool,
}

impl AwsWorkers {
    fn from_env(aws_backend: bool) -> Result<Option<Self>, ConfigError> {
        match or_default("AWS_WORKERS", "off").as_str() {
            "off" => Ok(None),
            "on" if !aws_backend => Err(ConfigError::Invalid {
                name: "AWS_WORKERS",
                reason:
                    "on needs OMNILINE_BACKEND=aws (the embedded backend always runs its workers)"
                        .into(),
            }),
            "on" => Ok(Some(Self {
                outbound_queue_url: required("OUTBOUND_QUEUE_URL")?,
                wait: Duration::from_secs(number_in("SQS_WAIT_SECONDS", 20, 0..=20)?),
                retry_percent: number_in("SQS_RETRY_PERCENT", 100, 1..=100)?,
                meter: match or_default("OMNILINE_METER", "off").as_str() {
                    "on" => true,
                    "off" => false,
                    other => {
                        return Err(ConfigError::Invalid {
                            name: "OMNILINE_METER",
                            reason: format!("{other:?}: expected on or off"),
                        })
                    }
                },
            })),
            other => Err(ConfigError::Invalid {
                name: "AWS_WORKERS",
                reason: format!("{other:?}: expected on or off"),
            }),
        }
    }
}

impl LocalConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let port = number_in("PORT", 3000u16, 0..=u16::MAX)?;
        let line_configured =
            optional("LINE_API_BASE").is_some() || optional("LINE_DATA_API_BASE").is_some();
        let backend = match or_default("OMNILINE_BACKEND", "embedded").as_str() {
            "embedded" => Backend::Embedded,
            "aws" => Backend::Aws {
                endpoint_url: optional("AWS_ENDPOINT_URL"),
                config_table: required("CONFIG_TABLE")?,
                inbound_queue_url: required("INBOUND_QUEUE_URL")?,
                secret_prefix: optional("SECRET_PREFIX").unwrap_or_default(),
                conversations_table: optional("CONVERSATIONS_TABLE"),
                media_bucket: optional("MEDIA_BUCKET"),
            },
            other => {
                return Err(ConfigError::Invalid {
                    name: "OMNILINE_BACKEND",
                    reason: format!("{other:?}: expected embedded or aws"),
                })
            }
        };
        Ok(Self {
            port,
            admin_token: optional("ADMIN_TOKEN")
                .map(|token| admin_token_from_env(&token))
                .transpose()?,
            public_base_url: optional("PUBLIC_BASE_URL")
                .map(|u| base_url("PUBLIC_BASE_URL", &u))
                .transpose()?,
            line: LineApiConfig {
                timeout: Duration::from_millis(number_in(
                    "LINE_TIMEOUT_MS",
                    LineApiConfig::default().timeout.as_millis() as u64,
                    100..=60_000,
                )?),
                ..omniline_wiring::line_api_from_env()?
            },
            data_dir: PathBuf::from(or_default("DATA_DIR", ".data")),
            durability: {
                let value = or_default("EMBEDDED_DURABILITY", "process");
                Durability::parse(&value).ok_or_else(|| ConfigError::Invalid {
                    name: "EMBEDDED_DURABILITY",
                    reason: format!("{value:?}: expected process or machine"),
                })?
            },
            router_workers: number_in("ROUTER_WORKERS", 4, 1..=64)?,
            outbound_workers: number_in("OUTBOUND_WORKERS", 2, 1..=64)?,
            schedule_every: Duration::from_millis(number_in(
                "SCHEDULE_EVERY_MS",
                workers::AUTO_CLOSE_EVERY.as_millis() as u64,
                100..=3_600_000,
            )?),
            sandbox: sandbox_mode(
                optional("SANDBOX").as_deref(),
                line_configured,
                matches!(backend, Backend::Embedded),
            )?,
            aws_workers: AwsWorkers::from_env(matches!(backend, Backend::Aws { .. }))?,
            backend,
        })
    }
}

/// Shortest `ADMIN_TOKEN` accepted, in characters (the generated one has 64 hex digits).
pub const ADMIN_TOKEN_MIN_CHARS: usize = 32;

/// `ADMIN_TOKEN` when it is long enough to resist guessing: at least [`ADMIN_TOKEN_MIN_CHARS`]
/// characters. The error names the variable and the rule, never the value.
fn admin_token_from_env(token: &str) -> Result<SecretString, ConfigError> {
    let length = token.trim().chars().count();
    if length < ADMIN_TOKEN_MIN_CHARS {
        return Err(ConfigError::Invalid {
            name: "ADMIN_TOKEN",
            reason: format!(
                "it has {length} characters, at least {ADMIN_TOKEN_MIN_CHARS} are required \
                 (for example `openssl rand -hex 32`), or leave it unset to have one generated"
            ),
        });
    }
    Ok(SecretString::new(token))
}

/// `SANDBOX`: `on`, `off`, or unset: on when the LINE API is not configured and the router runs
/// in this process (embedded backend), so a bare `cargo run` shows the sandbox and a stack pointed
/// at LINE never talks to the simulation.
fn sandbox_mode(
    value: Option<&str>,
    line_configured: bool,
    embedded: bool,
) -> Result<bool, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: "SANDBOX",
        reason: reason.to_owned(),
    };
    match value.map(str::trim) {
        None | Some("") => Ok(!line_configured && embedded),
        Some("off") => Ok(false),
        Some("on") if line_configured => Err(invalid(
            "on, but LINE_API_BASE or LINE_DATA_API_BASE is set: the sandbox simulates LINE itself",
        )),
        Some("on") if !embedded => Err(invalid(
            "on needs OMNILINE_BACKEND=embedded: on AWS the router and outbound run on Lambda",
        )),
        Some("on") => Ok(true),
        Some(other) => Err(invalid(&format!("{other:?}: expected on or off"))),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `DATA_DIR` or a file in it is open to other users: refused (exit 2).
    #[error(transparent)]
    NotPrivate(#[from] omniline_embedded::private_fs::PrivacyError),
    #[error(transparent)]
    Store(#[from] PortError),
    #[error(transparent)]
    Line(#[from] LineApiError),
    #[error(transparent)]
    Bot(#[from] omniline_domain::bot::BotError),
    #[error(transparent)]
    Sandbox(#[from] sandbox::setup::SetupError),
    #[error("sandbox: {0}")]
    SandboxStore(#[from] sandbox::platform::PlatformError),
    #[error("sandbox HTTP client: {0}")]
    SandboxClient(#[from] reqwest::Error),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    /// The AWS workers' composition (a variable missing or invalid, a client that cannot start).
    #[error("AWS workers: {0}")]
    AwsWorkers(Box<dyn std::error::Error + Send + Sync>),
}

/// A running local stack.
pub struct LocalStack {
    pub addr: SocketAddr,
    /// Base of every URL the stack serves and of callback URLs.
    pub base_url: String,
    pub admin_token: SecretString,
    pub data_dir: PathBuf,
    /// The embedded database, when the stack runs on it.
    pub db: Option<EmbeddedDb>,
    /// The router, when it runs in this process (embedded backend, or `AWS_WORKERS=on`).
    pub router: Option<Arc<RouterService>>,
    /// The sandbox page, in sandbox mode.
    pub sandbox_url: Option<String>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    stop_workers: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl LocalStack {
    /// Stops accepting requests and waits for those in flight.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        let served = self.server.await.unwrap_or(Ok(()));
        let _ = self.stop_workers.send(true);
        for worker in self.workers {
            let _ = worker.await;
        }
        served
    }
}

/// The backend's stores, and the embedded database when the backend is embedded.
struct Adapters {
    stores: Stores,
    db: Option<EmbeddedDb>,
    /// The SDK configuration, when the backend is AWS.
    sdk: Option<aws_config::SdkConfig>,
    /// The cost meter (`OMNILINE_METER=on`).
    meter: Option<meter::Meter>,
}

/// The router and the outbound function over the embedded database, the media route and the
/// agent API (which runs the router's use cases).
struct EmbeddedFunctions {
    router: Arc<RouterService>,
    outbound: Arc<OutboundService>,
    media: axum::Router,
}

fn embedded_functions(
    db: &EmbeddedDb,
    adapters: &Adapters,
    line: Arc<HttpLineApi>,
    base_url: &str,
    media_secret: SecretString,
    oidc: Option<Arc<OidcVerifier>>,
    admin_token: &SecretString,
) -> Result<EmbeddedFunctions, StartError> {
    let stores = &adapters.stores;
    let tokens = omniline_wiring::channel_tokens(stores, line.clone());
    let router = Arc::new(omniline_wiring::router_service(
        stores,
        Arc::new(omniline_wiring::embedded::outbound_queue(db)),
        line.clone(),
        // A development stack: bots on this machine or a private network are called.
        Arc::new(HttpBotHook::allowing_private_networks(
            Duration::from_secs(3),
        )?),
        tokens.clone(),
        system_clock(),
    ));
    let outbound = Arc::new(omniline_wiring::outbound_service(
        stores,
        line,
        tokens,
        Some(MediaLinks {
            base_url: base_url.to_owned(),
            signing_secret: media_secret.clone().into(),
        }),
        system_clock(),
    ));
    let objects = Arc::clone(&stores.media);
    let agent_state = agent::AgentState::new(
        Arc::clone(&router),
        Arc::clone(&adapters.stores.deliveries),
        Some(agent::MediaSigner {
            base_url: base_url.to_owned(),
            signing_secret: media_secret.clone().into(),
        }),
        base_url,
    )
    .with_oidc(oidc)
    .with_admin_token(admin_token.clone());
    // The media route (signed links) and the agent API (with the account-link page).
    let media = webhook::media::router(webhook::media::MediaState {
        objects,
        signing_secret: media_secret.into(),
        clock: system_clock(),
    })
    .merge(agent::router(agent_state));
    Ok(EmbeddedFunctions {
        router,
        outbound,
        media,
    })
}

/// The router and the outbound function as the Lambdas build them (`omniline_wiring::aws`, from
/// the same variables), the agent API over that router, and the media route when
/// `MEDIA_SIGNING_SECRET_ID` names the links' key (as for the agent function).
fn aws_functions(
    sdk: &aws_config::SdkConfig,
    adapters: &Adapters,
    base_url: &str,
    oidc: Option<Arc<OidcVerifier>>,
    admin_token: &SecretString,
) -> Result<EmbeddedFunctions, StartError> {
    let router =
        Arc::new(omniline_wiring::aws::router_service(sdk).map_err(StartError::AwsWorkers)?);
    let outbound =
        Arc::new(omniline_wiring::aws::outbound_service(sdk).map_err(StartError::AwsWorkers)?);
    let signing_secret = optional("MEDIA_SIGNING_SECRET_ID").map(|secret_id| {
        // Read on first use, as the functions do.
        Arc::new(omniline_aws::SecretsManagerStore::new(sdk, String::new()))
            .lazy_by_id(&secret_id, "MEDIA_SIGNING_SECRET_ID")
    });
    let agent_state = agent::AgentState::new(
        Arc::clone(&router),
        Arc::clone(&adapters.stores.deliveries),
        signing_secret
            .clone()
            .map(|signing_secret| agent::MediaSigner {
                base_url: base_url.to_owned(),
                signing_secret,
            }),
        base_url,
    )
    .with_oidc(oidc)
    .with_admin_token(admin_token.clone());
    let mut media = agent::router(agent_state);
    if let Some(signing_secret) = signing_secret {
        media = media.merge(webhook::media::router(webhook::media::MediaState {
            objects: Arc::clone(&adapters.stores.media),
            signing_secret,
            clock: system_clock(),
        }));
    }
    Ok(EmbeddedFunctions {
        router,
        outbound,
        media,
    })
}

/// The AWS workers: `ROUTER_WORKERS` pollers of the inbound queue, `OUTBOUND_WORKERS` of the
/// outbound queue (each failed message delayed as the Lambdas delay it, scaled by
/// `SQS_RETRY_PERCENT`), and the router's schedule.
fn spawn_aws_workers(
    config: &LocalConfig,
    settings: &AwsWorkers,
    sdk: &aws_config::SdkConfig,
    inbound_queue_url: &str,
    functions: &EmbeddedFunctions,
    invocations: Option<meter::Invocations>,
    stopped: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    use omniline_aws::sqs_consumer::SqsConsumer;
    let consumer = |url: &str| {
        let queue = SqsConsumer::new(sdk, url, settings.wait);
        let retry: Arc<dyn omniline_ports::RetryDelay> = Arc::new(workers::ScaledRetryDelay {
            inner: queue.retry_delay(),
            percent: settings.retry_percent,
        });
        (queue, retry)
    };
    let mut handles = Vec::new();
    let metered = |function: &'static str| {
        invocations
            .as_ref()
            .map(|i: &meter::Invocations| (i.clone(), function))
    };
    let (inbound, inbound_retry) = consumer(inbound_queue_url);
    for _ in 0..config.router_workers {
        handles.push(workers::spawn_sqs_consumer(
            Arc::clone(&functions.router),
            inbound.clone(),
            Arc::clone(&inbound_retry),
            metered("router"),
            stopped.clone(),
        ));
    }
    let (outbound, outbound_retry) = consumer(&settings.outbound_queue_url);
    for _ in 0..config.outbound_workers {
        handles.push(workers::spawn_sqs_consumer(
            Arc::clone(&functions.outbound),
            outbound.clone(),
            Arc::clone(&outbound_retry),
            metered("outbound"),
            stopped.clone(),
        ));
    }
    handles.push(workers::spawn_auto_close(
        Arc::clone(&functions.router),
        workers::AUTO_CLOSE_EVERY,
        stopped.clone(),
    ));
    tracing::info!(
        router_workers = config.router_workers,
        outbound_workers = config.outbound_workers,
        "AWS workers polling the inbound and outbound queues"
    );
    handles
}

async fn adapters(config: &LocalConfig) -> Result<Adapters, StartError> {
    Ok(match &config.backend {
        Backend::Embedded => {
            let db = EmbeddedDb::open_with(&config.data_dir, config.durability)?;
            Adapters {
                stores: omniline_wiring::embedded::stores(&db, &config.data_dir)?,
                db: Some(db),
                sdk: None,
                meter: None,
            }
        }
        Backend::Aws {
            endpoint_url,
            config_table,
            inbound_queue_url,
            secret_prefix,
            conversations_table,
            media_bucket,
        } => {
            let sdk = load_sdk_config(endpoint_url.as_deref()).await;
            let metered = config.aws_workers.as_ref().is_some_and(|w| w.meter);
            let meter = metered.then(meter::Meter::default);
            let sdk = match &meter {
                Some(meter) => meter.wire.wrap(&sdk),
                None => sdk,
            };
            if let Some(meter) = &meter {
                // The writes' index units need the tables' indexes.
                let mut tables = vec![config_table.as_str()];
                tables.extend(conversations_table.as_deref());
                meter.wire.learn_tables(&sdk, &tables).await?;
            }
            let resources = omniline_wiring::aws::Resources {
                config_table: config_table.clone(),
                conversations_table: conversations_table
                    .clone()
                    .unwrap_or_else(|| config_table.clone()),
                inbound_queue_url: inbound_queue_url.clone(),
                secret_prefix: secret_prefix.clone(),
                media_bucket: media_bucket.clone(),
                force_path_style: endpoint_url.is_some(),
            };
            let media_dir = config.data_dir.join("media");
            Adapters {
                stores: omniline_wiring::aws::stores(&sdk, &resources, || {
                    Arc::new(FsObjectStore::new(media_dir))
                }),
                db: None,
                sdk: Some(sdk),
                meter,
            }
        }
    })
}

/// `ADMIN_TOKEN` if set; else the token kept from an earlier run; else a new one, kept.
async fn admin_token(
    configured: Option<&SecretString>,
    secrets: &dyn SecretStore,
) -> Result<SecretString, PortError> {
    if let Some(token) = configured {
        return Ok(token.clone());
    }
    kept_random_secret(secrets, ADMIN_TOKEN_SECRET).await
}

/// A random secret generated on the first run and kept in the secret store.
async fn kept_random_secret(
    secrets: &dyn SecretStore,
    name: &str,
) -> Result<SecretString, PortError> {
    if let Some(secret) = secrets.get(name).await? {
        return Ok(secret);
    }
    let secret = SecretString::new(format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    ));
    secrets.put(name, &secret).await?;
    Ok(secret)
}

/// Opens the adapters, binds `127.0.0.1:$PORT` and serves every route.
pub async fn start(config: LocalConfig) -> Result<LocalStack, StartError> {
    let data_dir_used = match &config.backend {
        Backend::Embedded => true,
        Backend::Aws { media_bucket, .. } => media_bucket.is_none(),
    };
    if data_dir_used {
        // Secrets and personal data live there: refuse a directory or file others can read.
        omniline_embedded::private_fs::check_private_tree(&config.data_dir)?;
        omniline_embedded::private_fs::ensure_private_dir(&config.data_dir)?;
    }
    let adapters = adapters(&config).await?;
    let admin_token = admin_token(
        config.admin_token.as_ref(),
        adapters.stores.secrets.as_ref(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|source| StartError::Bind {
            port: config.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        port: config.port,
        source,
    })?;
    let base_url = config
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));

    let listener_base = format!("http://{addr}");
    let line_config = if config.sandbox {
        let simulated = format!("{listener_base}{}", sandbox::line_api::PREFIX);
        LineApiConfig {
            api_base: simulated.clone(),
            data_api_base: simulated,
            ..config.line.clone()
        }
    } else {
        config.line.clone()
    };
    let line = Arc::new(HttpLineApi::new(&line_config)?);
    // Sign-in with OpenID Connect (OIDC_ISSUER, OIDC_CLIENT_ID): one verifier, one key cache,
    // for the agent API and the admin API.
    let oidc = omniline_wiring::oidc_verifier(system_clock())?;
    // The agent console signs people in with the same verifier, whatever the backend.
    let console = agent::console::ConsoleConfig::new(oidc.clone());
    let (stop_workers, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    let mut media_routes = None;
    let router = match &adapters.db {
        Some(db) => {
            let media_secret =
                kept_random_secret(adapters.stores.secrets.as_ref(), MEDIA_SIGNING_SECRET).await?;
            // Agents created by an earlier version get their email index entry (OIDC sign-in);
            // on AWS, omniline-migrate does it.
            let (indexed, shared) =
                omniline_app::admin::agents::index_agent_emails(adapters.stores.config.as_ref())
                    .await?;
            if indexed > 0 {
                tracing::info!(indexed, "agents' email addresses indexed");
            }
            if !shared.is_empty() {
                tracing::warn!(
                    agents = ?shared,
                    "agents share an email address: they cannot sign in with OIDC until one changes"
                );
            }
            let functions = embedded_functions(
                db,
                &adapters,
                Arc::clone(&line),
                &base_url,
                media_secret,
                oidc.clone(),
                &admin_token,
            )?;
            let inbound = omniline_wiring::embedded::inbound_queue(db);
            let outbound = omniline_wiring::embedded::outbound_queue(db);
            // What this process's predecessor was working on when it stopped: at once, not after
            // the visibility timeout (this process is the queues' only consumer).
            for queue in [&inbound, &outbound] {
                let recovered = queue.recover_in_flight().await?;
                if recovered > 0 {
                    tracing::info!(
                        queue = queue.name(),
                        recovered,
                        "in-flight messages recovered"
                    );
                }
            }
            for _ in 0..config.router_workers {
                workers.push(workers::spawn_consumer(
                    Arc::clone(&functions.router),
                    inbound.clone(),
                    stopped.clone(),
                ));
            }
            for _ in 0..config.outbound_workers {
                workers.push(workers::spawn_consumer(
                    Arc::clone(&functions.outbound),
                    outbound.clone(),
                    stopped.clone(),
                ));
            }
            workers.push(workers::spawn_auto_close(
                Arc::clone(&functions.router),
                config.schedule_every,
                stopped,
            ));
            media_routes = Some(functions.media);
            Some(functions.router)
        }
        None => match (&config.aws_workers, &adapters.sdk, &config.backend) {
            (
                Some(settings),
                Some(sdk),
                Backend::Aws {
                    inbound_queue_url, ..
                },
            ) => {
                let functions =
                    aws_functions(sdk, &adapters, &base_url, oidc.clone(), &admin_token)?;
                workers.extend(spawn_aws_workers(
                    &config,
                    settings,
                    sdk,
                    inbound_queue_url,
                    &functions,
                    adapters.meter.as_ref().map(|m| m.invocations.clone()),
                    &stopped,
                ));
                media_routes = Some(functions.media);
                Some(functions.router)
            }
            _ => None,
        },
    };
    let mut ingest = omniline_wiring::webhook_ingest(&adapters.stores);
    if matches!(config.backend, Backend::Aws { .. }) {
        // As the webhook Lambda: an account's counters are written at most every 10 s per
        // instance (one write unit per request otherwise; the cost meter measures this).
        ingest = ingest.with_counter_flush(omniline_app::ingest::COUNTER_FLUSH);
    }
    let ingest = Arc::new(ingest);
    let deps = omniline_wiring::admin_deps(&adapters.stores, line);
    // Same process: a deleted account or workstream is refused by the webhook at once.
    let forget = Arc::clone(&ingest);
    let admin = admin::AdminState::new(
        deps,
        system_clock(),
        admin_token.clone(),
        Some(base_url.clone()),
    )
    .with_oidc(oidc.clone())
    .on_disconnect(Arc::new(move |account_id: &str| forget.forget(account_id)));
    let sandbox_state = if config.sandbox {
        let platform = sandbox::platform::Platform::open(&config.data_dir, &base_url)?;
        Some(sandbox::SandboxState::new(
            platform,
            &base_url,
            &listener_base,
            admin_token.clone(),
        )?)
    } else {
        None
    };
    let webhook_routes = match &adapters.meter {
        Some(meter) => webhook::router(ingest).layer(axum::middleware::from_fn_with_state(
            meter.invocations.clone(),
            meter::count_webhook,
        )),
        None => webhook::router(ingest),
    };
    let meter_routes = match &adapters.meter {
        Some(meter) => Router::new()
            .route("/_meter", get(meter::report))
            .with_state(meter.clone())
            .layer(axum::middleware::from_fn_with_state(
                admin.clone(),
                admin::require_admin_token,
            )),
        None => Router::new(),
    };
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .merge(webhook_routes)
        .merge(meter_routes)
        .merge(media_routes.unwrap_or_default())
        .merge(admin::router(admin))
        // The agent console, whatever the backend and whether the agent API runs here or not.
        .merge(agent::console::router(console))
        .merge(match &sandbox_state {
            Some(state) => sandbox::router(state.clone()),
            None => sandbox::off_router(),
        });

    let (shutdown, stop) = oneshot::channel::<()>();
    // Every request knows its peer (the sandbox answers loopback peers only), and a client has
    // serve::HEADER_READ_TIMEOUT to send a request's line and headers.
    let server = tokio::spawn(serve::serve(listener, app, async {
        let _ = stop.await;
    }));
    tracing::info!(%addr, "omniline-local listening");
    // The sandbox's account, queue, agent and workstream, through the admin API just served.
    let sandbox_url = match &sandbox_state {
        Some(state) => {
            let channel = state.bootstrap().await?;
            tracing::info!(account_id = ?channel.account_id, "sandbox ready");
            Some(format!("{listener_base}/sandbox"))
        }
        None => None,
    };
    Ok(LocalStack {
        sandbox_url,
        addr,
        base_url,
        admin_token,
        data_dir: config.data_dir,
        db: adapters.db,
        router,
        shutdown,
        server,
        stop_workers,
        workers,
    })
}

#[cfg(test)]
mod tests {
    use super::{admin_token_from_env, sandbox_mode, ADMIN_TOKEN_MIN_CHARS};

    #[test]
    fn an_admin_token_shorter_than_32_characters_is_refused_without_echoing_it() {
        let short = "a".repeat(ADMIN_TOKEN_MIN_CHARS - 1);
        let message = admin_token_from_env(&short).unwrap_err().to_string();
        assert!(message.contains("ADMIN_TOKEN"), "{message}");
        assert!(message.contains("at least 32"), "{message}");
        assert!(!message.contains(&short), "{message}");
        let exact = "b".repeat(ADMIN_TOKEN_MIN_CHARS);
        assert_eq!(admin_token_from_env(&exact).unwrap().expose(), exact);
    }

    #[test]
    fn the_sandbox_is_on_by_default_only_when_line_is_not_configured() {
        assert!(sandbox_mode(None, false, true).unwrap());
        assert!(!sandbox_mode(None, true, true).unwrap());
        assert!(!sandbox_mode(None, false, false).unwrap());
        assert!(!sandbox_mode(Some("off"), false, true).unwrap());
        assert!(sandbox_mode(Some("on"), false, true).unwrap());
    }

    #[test]
    fn sandbox_on_with_real_line_or_aws_is_refused() {
        assert!(sandbox_mode(Some("on"), true, true).is_err());
        assert!(sandbox_mode(Some("on"), false, false).is_err());
        assert!(sandbox_mode(Some("yes"), false, true).is_err());
    }
}
