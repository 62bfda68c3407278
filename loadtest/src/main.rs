//! `omniline-loadtest`: drives `omniline-local` (embedded adapters) over HTTP with signed LINE
//! webhooks from many customers across several accounts, with a simulated LINE API and an echo
//! bot, and checks the ledger: every event sent is stored exactly once, every expected message
//! reaches LINE exactly once and in order per customer, no agent holds more than its capacity, no
//! secret or message text is in the stack's log. Scenarios: a clean load, LINE redelivering every
//! body (some copies "10 minutes later"), LINE's API failing 20 % of calls for a while, the
//! database refusing writes for a while, poison messages. Prints figures; exits 1 when a ledger
//! is not exact or a log leaks.
//!
//! `--backend aws` runs the stack on the AWS adapters instead, on fresh tables, queues and a
//! bucket made from `template.yaml` on the endpoint in `OMNILINE_TEST_AWS_ENDPOINT` (moto), with
//! the router and outbound function polling the SQS queues in the stack's process
//! (`AWS_WORKERS=on`), and reads the ledger from DynamoDB and SQS (`aws.rs`). The store outage is
//! the embedded database's and is skipped there.
//!
//! ```text
//! cargo build --release --bin omniline-local --bin omniline-loadtest
//! target/release/omniline-loadtest                 # every scenario, full size
//! target/release/omniline-loadtest --short         # the test command's bounded version
//! target/release/omniline-loadtest --scenario load --bodies 20000 --rate 1500
//! OMNILINE_TEST_AWS_ENDPOINT=http://127.0.0.1:5000 target/debug/omniline-loadtest --short --backend aws
//! ```

mod aws;
mod corpus;
mod cost;
mod cost_run;
mod db;
mod ledger;
mod line_sim;
mod stack;

use corpus::Load;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Load,
    Redelivery,
    LineFaults,
    StoreOutage,
    Poison,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::Load,
        Scenario::Redelivery,
        Scenario::LineFaults,
        Scenario::StoreOutage,
        Scenario::Poison,
    ];
    fn name(self) -> &'static str {
        match self {
            Scenario::Load => "load",
            Scenario::Redelivery => "redelivery",
            Scenario::LineFaults => "line-faults",
            Scenario::StoreOutage => "store-outage",
            Scenario::Poison => "poison",
        }
    }
}

/// Where the stack keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// moto (or another endpoint): `OMNILINE_TEST_AWS_ENDPOINT`.
    Aws {
        endpoint: String,
    },
}

#[derive(Debug, Clone)]
pub struct Opts {
    backend: Backend,
    stack: PathBuf,
    out: PathBuf,
    accounts: usize,
    customers: usize,
    bodies: usize,
    lanes: usize,
    /// Bodies per second; 0 = as fast as the stack answers.
    rate: f64,
    seed: u64,
    scenarios: Vec<Scenario>,
    router_workers: usize,
    fault_rate: f64,
    /// `EMBEDDED_DURABILITY` of the stack: `process` (its default) or `machine`.
    durability: String,
    /// Give up waiting for the pipeline to drain once it has made no progress for this long (a
    /// slow machine waits longer; a stuck pipeline is called stuck). Longer than the queues'
    /// largest retry delay (a minute).
    drain_timeout: Duration,
}

const USAGE: &str = "usage: omniline-loadtest [--short] [--scenario load|redelivery|line-faults|store-outage|poison|all]...
       [--accounts N] [--customers N] [--bodies N] [--lanes N] [--rate BODIES_PER_S (0 = max)]
       [--seed N] [--router-workers N] [--fault-rate P] [--durability process|machine]
       [--backend embedded|aws] [--stack PATH/omniline-local] [--out DIR]
--backend aws: the stack on DynamoDB and SQS at OMNILINE_TEST_AWS_ENDPOINT (moto), smaller with --short";

fn parse_opts() -> Result<Opts, String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_default();
    // Read first: `--short` is smaller on moto, whatever the order of the arguments.
    let all: Vec<String> = std::env::args().skip(1).collect();
    let backend = match all
        .iter()
        .position(|a| a == "--backend")
        .map(|i| all.get(i + 1).map(String::as_str))
    {
        None | Some(Some("embedded")) => Backend::Embedded,
        Some(Some("aws")) => Backend::Aws {
            endpoint: std::env::var("OMNILINE_TEST_AWS_ENDPOINT").map_err(|_| {
                "--backend aws needs OMNILINE_TEST_AWS_ENDPOINT (moto's URL, as ./infra/test.sh exports it)"
                    .to_owned()
            })?,
        },
        Some(other) => return Err(format!("--backend: {other:?}: expected embedded or aws\n{USAGE}")),
    };
    let mut o = Opts {
        backend: backend.clone(),
        stack: exe_dir.join("omniline-local"),
        out: PathBuf::from("target/loadtest"),
        accounts: 4,
        customers: 800,
        bodies: 12_000,
        lanes: 48,
        rate: 0.0,
        seed: 42,
        scenarios: Scenario::ALL.to_vec(),
        router_workers: 4,
        fault_rate: 0.2,
        durability: "process".into(),
        drain_timeout: Duration::from_secs(180),
    };
    let mut chosen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        let num = |name: &str, v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("{name}: {v:?} is not a positive number"))
        };
        match arg.as_str() {
            "--short" if backend == Backend::Embedded => {
                o.accounts = 3;
                o.customers = 60;
                o.bodies = 300;
                o.lanes = 12;
                o.drain_timeout = Duration::from_secs(90);
            }
            // moto serves one request at a time, each event costs the router a dozen of them.
            "--short" => {
                o.accounts = 3;
                o.customers = 24;
                o.bodies = 60;
                o.lanes = 6;
                o.drain_timeout = Duration::from_secs(90);
            }
            "--backend" => {
                value("--backend")?;
            }
            "--scenario" => {
                let v = value("--scenario")?;
                if v == "all" {
                    chosen.extend(Scenario::ALL);
                } else {
                    chosen.push(
                        Scenario::ALL
                            .into_iter()
                            .find(|s| s.name() == v)
                            .ok_or(format!("unknown scenario {v:?}\n{USAGE}"))?,
                    );
                }
            }
            "--accounts" => o.accounts = num("--accounts", value("--accounts")?)?.max(2),
            "--customers" => o.customers = num("--customers", value("--customers")?)?,
            "--bodies" => o.bodies = num("--bodies", value("--bodies")?)?,
            "--lanes" => o.lanes = num("--lanes", value("--lanes")?)?,
            "--router-workers" => {
                o.router_workers = num("--router-workers", value("--router-workers")?)?
            }
            "--rate" => {
                let v = value("--rate")?;
                o.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r >= 0.0)
                    .ok_or(format!("--rate: {v:?} is not a rate"))?;
            }
            "--fault-rate" => {
                let v = value("--fault-rate")?;
                o.fault_rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or(format!("--fault-rate: {v:?} is not a probability"))?;
            }
            "--seed" => {
                let v = value("--seed")?;
                o.seed = v.parse().map_err(|_| format!("--seed: {v:?}"))?;
            }
            "--durability" => {
                let v = value("--durability")?;
                if v != "process" && v != "machine" {
                    return Err(format!("--durability: {v:?}: expected process or machine"));
                }
                o.durability = v;
            }
            "--stack" => o.stack = PathBuf::from(value("--stack")?),
            "--out" => o.out = PathBuf::from(value("--out")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if !chosen.is_empty() {
        o.scenarios = chosen;
    }
    if o.customers < o.accounts {
        o.customers = o.accounts;
    }
    Ok(o)
}

/// Secrets of a run, to set up the stack and to look for in its log.
pub struct Secrets {
    pub admin_token: String,
    pub channel_secrets: Vec<String>,
    pub access_tokens: Vec<String>,
    pub bot_secret: String,
    pub agent_tokens: Vec<String>,
}

impl Secrets {
    /// A run's admin token and bot secret, drawn from `rng`; the accounts' and agents' come as
    /// they are configured.
    fn new(rng: &mut corpus::Rng) -> Self {
        Secrets {
            admin_token: format!("adm{}", rng.hex(40)),
            channel_secrets: Vec::new(),
            access_tokens: Vec::new(),
            bot_secret: format!("bot{}", rng.hex(40)),
            agent_tokens: Vec::new(),
        }
    }
}

/// `out/name`, emptied, with a private `data` directory for the stack.
fn fresh_run_dir(out: &std::path::Path, name: &str) -> Result<PathBuf, String> {
    let dir = out.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    omniline_embedded::private_fs::ensure_private_dir(&dir.join("data"))
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// One account as configured through the admin API.
pub struct Account {
    pub id: String,
    pub secret: String,
    /// Answered by the echo bot (else by agents).
    pub bot: bool,
}

/// What a scenario's sending phase measured.
#[derive(Default)]
pub struct Sent {
    /// First POST of each event (latency origin), by event index.
    pub first_post: Vec<Option<Instant>>,
    /// Webhook requests answered 200, and the events in them (copies included).
    pub accepted_requests: AtomicU64,
    pub accepted_events: AtomicU64,
    /// Requests answered otherwise (retried, as LINE redelivers), and transport errors.
    pub refused_requests: AtomicU64,
    pub status_counts: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Webhook response times of accepted requests, microseconds.
    pub response_us: Mutex<Vec<u64>>,
    pub wall: Duration,
    pub cpu: Duration,
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("standin") {
        return standin();
    }
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_all(opts)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("omniline-loadtest: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `omniline-loadtest standin --bot-user-id U… --channel-token T`: the load test's LINE stand-in
/// alone, for a stack pointed at it (`LINE_API_BASE`), e.g. the console's browser test of a real
/// deployment: LINE's rules ([`omniline_linesim`]) for one channel, plus `/_standin/` routes to
/// issue the reply tokens of the webhooks a test signs and to read what LINE accepted. Prints
/// `LINE stand-in: http://127.0.0.1:PORT` and serves until killed.
fn standin() -> std::process::ExitCode {
    const USAGE: &str = "usage: omniline-loadtest standin --bot-user-id U... --channel-token TOKEN";
    let mut args = std::env::args().skip(2);
    let (mut bot, mut token) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bot-user-id" => bot = args.next(),
            "--channel-token" => token = args.next(),
            other => {
                eprintln!("standin: unknown argument {other:?}\n{USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let (Some(bot), Some(token)) = (bot, token) else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // No bot webhook in this mode: its secret is never used.
        let sim = match line_sim::LineSim::start(Duration::from_secs(30), "unused").await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("standin: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        sim.add_bot(&token, &bot);
        println!("LINE stand-in: {}", sim.url());
        std::future::pending::<()>().await;
        std::process::ExitCode::SUCCESS
    })
}

async fn run_all(opts: Opts) -> Result<bool, String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    println!(
        "omniline-loadtest: {} accounts, {} customers, {} bodies in {} lanes, rate {}, router workers {}, durability {}, seed {}",
        opts.accounts,
        opts.customers,
        opts.bodies,
        opts.lanes,
        if opts.rate > 0.0 {
            format!("{} bodies/s", opts.rate)
        } else {
            "max".into()
        },
        opts.router_workers,
        opts.durability,
        opts.seed
    );
    println!("stack: {}", opts.stack.display());
    match &opts.backend {
        Backend::Embedded => println!("backend: embedded (SQLite)"),
        Backend::Aws { endpoint } => println!(
            "backend: aws at {endpoint}: DynamoDB, SQS FIFO and S3, the router and outbound function as SQS pollers in the stack (moto's throughput is not AWS's)"
        ),
    }
    let mut all_exact = true;
    for (n, scenario) in opts.scenarios.iter().enumerate() {
        if *scenario == Scenario::StoreOutage && opts.backend != Backend::Embedded {
            println!(
                "\n== scenario {}: store-outage: skipped on the aws backend (it holds the embedded database's write lock)",
                n + 1
            );
            continue;
        }
        let exact = run_scenario(&opts, *scenario, n as u32 + 1).await?;
        all_exact &= exact;
    }
    if let Backend::Aws { endpoint } = &opts.backend {
        all_exact &= cost_run::run(&opts, endpoint).await?;
    }
    println!(
        "\n== {}",
        if all_exact {
            "every ledger exact, no leak in the logs"
        } else {
            "LEDGER MISMATCH OR LEAK (see above)"
        }
    );
    Ok(all_exact)
}

/// The admin API of the stack at `base`, once it answers `/healthz` (at most five seconds).
async fn ready(client: &reqwest::Client, base: &str, admin_token: &str) -> Admin {
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Admin {
        client: client.clone(),
        base: base.to_owned(),
        token: admin_token.to_owned(),
    }
}

struct Admin {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn call(&self, method: &str, route: &str, body: Option<Value>) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self
            .client
            .request(method.clone(), format!("{}{route}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {route}: {e}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{method} {route} → {status}: {value}"));
        }
        Ok(value)
    }
}

/// Accounts, a queue, agents (capacities 2, 3, 5) and one workstream per account: account 0 is
/// served by agents (push distribution), the others by the echo bot. Every workstream greets a
/// new conversation with "Welcome {customerName}".
async fn configure(
    admin: &Admin,
    sim: &line_sim::LineSim,
    rng: &mut corpus::Rng,
    opts: &Opts,
    secrets: &mut Secrets,
) -> Result<Vec<Account>, String> {
    // The simulated agents set their presence once and send no heartbeat: no presence timeout.
    admin
        .call(
            "PATCH",
            "/admin/v1/settings",
            Some(json!({"presenceTimeoutSeconds": 0})),
        )
        .await?;
    let queue = admin
        .call("POST", "/admin/v1/queues", Some(json!({"name": "Support"})))
        .await?;
    let queue_id = queue["id"].as_str().ok_or("queue id")?.to_owned();
    for (i, capacity) in [2, 3, 5].into_iter().enumerate() {
        let agent = admin
            .call(
                "POST",
                "/admin/v1/agents",
                Some(
                    json!({"name": format!("Agent {i}"), "email": format!("agent{i}@example.com"),
                            "queueIds": [queue_id], "capacity": capacity}),
                ),
            )
            .await?;
        let token = agent["token"].as_str().ok_or("agent token")?.to_owned();
        let presence = admin
            .client
            .put(format!("{}/agent/v1/presence", admin.base))
            .bearer_auth(&token)
            .json(&json!({"status": "available"}))
            .send()
            .await
            .map_err(|e| format!("presence: {e}"))?;
        if !presence.status().is_success() {
            return Err(format!("presence → {}", presence.status()));
        }
        secrets.agent_tokens.push(token);
    }
    let mut accounts = Vec::new();
    for i in 0..opts.accounts {
        let secret = rng.hex(32);
        let access_token = format!("lt{}", rng.hex(40));
        sim.add_bot(&access_token, &corpus::bot_user_id(i));
        let account = admin
            .call(
                "POST",
                "/admin/v1/accounts",
                Some(json!({"name": format!("Load {i}"), "channelId": format!("{}", 1_600_000_000 + i),
                            "channelSecret": secret, "channelAccessToken": access_token})),
            )
            .await?;
        let id = account["id"].as_str().ok_or("account id")?.to_owned();
        let bot = i != 0;
        let mut ws = json!({
            "name": format!("Support {i}"), "accountId": id, "language": "en",
            "distribution": "push", "defaultQueueId": queue_id, "groupChats": "ignore",
            "automatedMessages": {"conversationStarted": {"enabled": true, "texts": {"en": "Welcome {customerName}"}}},
        });
        if bot {
            ws["bot"] = json!({"url": format!("{}/bot", sim.url()), "secret": secrets.bot_secret, "timeoutMs": 10000});
        }
        let ws = admin
            .call("POST", "/admin/v1/workstreams", Some(ws))
            .await?;
        if bot {
            let ws_id = ws["id"].as_str().ok_or("workstream id")?;
            admin
                .call(
                    "POST",
                    &format!("/admin/v1/workstreams/{ws_id}/rules"),
                    Some(json!({"name": "Everyone to the bot", "condition": {"field": "event.type", "op": "exists"},
                                "queueId": queue_id, "bot": true})),
                )
                .await?;
        }
        secrets.channel_secrets.push(secret.clone());
        secrets.access_tokens.push(access_token);
        accounts.push(Account { id, secret, bot });
    }
    Ok(accounts)
}

/// Bodies prepared before sending (JSON and signature), so the generator stays light.
struct Prepared {
    body: String,
    signature: String,
    account: usize,
    events: Vec<usize>,
    /// The account's bot user id (the body's `destination`).
    bot: String,
    /// The events' reply tokens, each with its chat (the user, or the group).
    replies: Vec<(String, String)>,
}

fn prepare(load: &Load, accounts: &[Account], redelivery: bool) -> Vec<Vec<Prepared>> {
    load.lanes
        .iter()
        .map(|lane| {
            lane.iter()
                .map(|b| {
                    let body = load.body_json(b, redelivery);
                    let signature = omniline_domain::line::signature::sign(
                        accounts[b.account].secret.as_bytes(),
                        body.as_bytes(),
                    );
                    let replies = b
                        .events
                        .iter()
                        .map(|&e| {
                            let event = &load.events[e];
                            let customer = &load.customers[event.customer];
                            let chat = match event.kind {
                                corpus::Kind::GroupText => &customer.group_id,
                                _ => &customer.user_id,
                            };
                            (event.reply_token.clone(), chat.clone())
                        })
                        .collect();
                    Prepared {
                        body,
                        signature,
                        account: b.account,
                        events: b.events.clone(),
                        bot: corpus::bot_user_id(b.account),
                        replies,
                    }
                })
                .collect()
        })
        .collect()
}

/// Posts one body until LINE would stop redelivering: a 200, or a 4xx that is final. Returns
/// whether it was accepted.
async fn post(
    client: &reqwest::Client,
    url: &str,
    p: &Prepared,
    sent: &Sent,
) -> Result<bool, String> {
    let mut delay = Duration::from_millis(200);
    for _ in 0..60 {
        let started = Instant::now();
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-line-signature", &p.signature)
            .body(p.body.clone())
            .send()
            .await;
        let label = match &result {
            Ok(r) => r.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".into(),
            Err(_) => "connection error".into(),
        };
        *sent
            .status_counts
            .lock()
            .map_err(|_| "poisoned lock")?
            .entry(label)
            .or_default() += 1;
        match result {
            Ok(r) if r.status() == 200 => {
                sent.accepted_requests.fetch_add(1, Ordering::Relaxed);
                sent.accepted_events
                    .fetch_add(p.events.len() as u64, Ordering::Relaxed);
                sent.response_us
                    .lock()
                    .map_err(|_| "poisoned lock")?
                    .push(started.elapsed().as_micros() as u64);
                return Ok(true);
            }
            Ok(r) if r.status().is_client_error() => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(format!("webhook refused a valid body: {status} {text}"));
            }
            _ => {
                // 5xx, timeout, reset: LINE redelivers later.
                sent.refused_requests.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    Ok(false)
}

/// What a scenario does besides sending the load once.
struct Plan {
    /// Share of bodies sent again at once with `isRedelivery: true`.
    resend_now: bool,
    /// Bodies sent again after the run, the queue's dedup window aged by 10 minutes.
    resend_later: bool,
    /// LINE fails calls while this share of the bodies is being sent.
    line_faults_until: Option<f64>,
    /// The database refuses writes for this long once this share has been sent.
    store_outage: Option<(f64, Duration)>,
    poison: usize,
}

impl Plan {
    fn of(s: Scenario, short: bool) -> Self {
        let none = Plan {
            resend_now: false,
            resend_later: false,
            line_faults_until: None,
            store_outage: None,
            poison: 0,
        };
        match s {
            Scenario::Load => none,
            Scenario::Redelivery => Plan {
                resend_now: true,
                resend_later: true,
                ..none
            },
            Scenario::LineFaults => Plan {
                line_faults_until: Some(0.7),
                ..none
            },
            Scenario::StoreOutage => Plan {
                store_outage: Some((0.3, Duration::from_secs(if short { 6 } else { 10 }))),
                ..none
            },
            Scenario::Poison => Plan { poison: 3, ..none },
        }
    }
}

async fn run_scenario(opts: &Opts, scenario: Scenario, run: u32) -> Result<bool, String> {
    let short = opts.bodies <= 1000;
    let plan = Plan::of(scenario, short);
    println!("\n== scenario {run}: {}", scenario.name());
    let dir = fresh_run_dir(&opts.out, &format!("{}-{}", run, scenario.name()))?;
    let mut rng = corpus::Rng::new(opts.seed ^ u64::from(run) << 32);
    let mut secrets = Secrets::new(&mut rng);
    let line_timeout_ms = 1_500;
    let sim = line_sim::LineSim::start(Duration::from_millis(2_500), &secrets.bot_secret)
        .await
        .map_err(|e| format!("LINE stand-in: {e}"))?;
    let (source, backend_env) = match &opts.backend {
        Backend::Embedded => (Source::Embedded(db::Db::new(&dir.join("data"))), Vec::new()),
        Backend::Aws { endpoint } => {
            // Unique per run and scenario: tables, queues and a bucket of their own.
            let name = format!(
                "lt{}-{}-{}",
                std::process::id(),
                omniline_domain::clock::now_millis() % 100_000_000,
                run
            );
            let resources = aws::AwsRun::create(endpoint, &name).await?;
            println!("aws resources: {name}-* (2 tables, 4 FIFO queues, a bucket)");
            let env = resources.stack_env()?;
            (Source::Aws(Box::new(resources)), env)
        }
    };
    let stack = stack::Stack::start(stack::StackOptions {
        backend_env: &backend_env,
        binary: &opts.stack,
        data_dir: &dir.join("data"),
        log_path: dir.join("stack.log"),
        line_url: &sim.url(),
        admin_token: &secrets.admin_token,
        router_workers: opts.router_workers,
        line_timeout_ms,
        durability: &opts.durability,
    })?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.lanes)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let admin = ready(&client, &stack.base, &secrets.admin_token).await;
    let accounts = configure(&admin, &sim, &mut rng, opts, &mut secrets).await?;
    let load = corpus::generate(
        opts.seed.wrapping_add(u64::from(run)),
        run,
        opts.accounts,
        opts.customers,
        opts.bodies,
        opts.lanes,
        omniline_domain::clock::now_millis(),
    );
    // LINE knows the customers (friends of the accounts) and the images they send.
    sim.add_customers(
        load.customers.iter().map(|c| c.user_id.as_str()),
        load.events
            .iter()
            .filter(|e| e.kind == corpus::Kind::Image)
            .map(|e| e.message_id.as_str()),
    );
    let first = Arc::new(prepare(&load, &accounts, false));

    // Poison: queue messages the router can never process, next to the load.
    let mut poison_bodies = Vec::new();
    if plan.poison > 0 {
        poison_bodies = inject_poison(&source, &dir.join("data"), &accounts, plan.poison).await?;
    }

    // Sending.
    let total_bodies = load.body_count();
    let progress = Arc::new(AtomicUsize::new(0));
    let mut sent = Sent {
        first_post: vec![None; load.events.len()],
        ..Sent::default()
    };
    let first_post = Arc::new(Mutex::new(std::mem::take(&mut sent.first_post)));
    let sent = Arc::new(sent);
    // LINE fails calls until this share of the expected messages has reached it, then recovers.
    let fault_window = plan.line_faults_until.map(|until| {
        sim.set_faults(opts.fault_rate);
        println!(
            "LINE API faults on: {:.0} % of calls, until {:.0} % of the expected messages are in",
            opts.fault_rate * 100.0,
            until * 100.0
        );
        let target = (until * ledger::expected_messages(&load, &accounts) as f64) as usize;
        let (sim, limit) = (Arc::clone(&sim), opts.drain_timeout / 2);
        tokio::spawn(async move {
            let started = Instant::now();
            while sim.accepted_count() < target && started.elapsed() < limit {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sim.set_faults(0.0);
            started.elapsed()
        })
    });
    let outage = plan.store_outage.map(|(at, hold)| {
        let progress = Arc::clone(&progress);
        let path = dir.join("data");
        std::thread::spawn(move || {
            while (progress.load(Ordering::Relaxed) as f64) < at * total_bodies as f64 {
                std::thread::sleep(Duration::from_millis(20));
            }
            let started = Instant::now();
            let result = db::Db::new(&path).hold_write_lock(hold);
            (started.elapsed(), result.map_err(|e| e.to_string()))
        })
    });
    let cpu0 = stack.cpu();
    let t0 = Instant::now();
    let next_slot = Arc::new(AtomicU64::new(0));
    let mut lanes = tokio::task::JoinSet::new();
    let url_of: Arc<Vec<String>> = Arc::new(
        accounts
            .iter()
            .map(|a| format!("{}/line/webhook/{}", stack.base, a.id))
            .collect(),
    );
    let (rate, resend_now) = (opts.rate, plan.resend_now);
    // The copies LINE redelivers at once, prepared once for every lane.
    let redelivered: Arc<Vec<Vec<Prepared>>> = Arc::new(if resend_now {
        prepare(&load, &accounts, true)
    } else {
        Vec::new()
    });
    for lane in 0..first.len() {
        let (first, client, sent, progress, first_post, next_slot, url_of, redelivered, line) = (
            Arc::clone(&first),
            client.clone(),
            Arc::clone(&sent),
            Arc::clone(&progress),
            Arc::clone(&first_post),
            Arc::clone(&next_slot),
            Arc::clone(&url_of),
            Arc::clone(&redelivered),
            Arc::clone(&sim),
        );
        lanes.spawn(async move {
            for (i, p) in first[lane].iter().enumerate() {
                if rate > 0.0 {
                    let slot = next_slot.fetch_add(1, Ordering::Relaxed);
                    let due = t0 + Duration::from_secs_f64(slot as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                {
                    let now = Instant::now();
                    let mut fp = first_post.lock().map_err(|_| "poisoned lock")?;
                    for &e in &p.events {
                        fp[e].get_or_insert(now);
                    }
                }
                // LINE issues the events' reply tokens as it first sends their webhook.
                line.issue_reply_tokens(
                    &p.bot,
                    p.replies.iter().map(|(t, c)| (t.as_str(), c.as_str())),
                );
                if !post(&client, &url_of[p.account], p, &sent).await? {
                    return Err("a body was refused 60 times".to_owned());
                }
                // Half of the bodies at once again, as a redelivery.
                if resend_now && i % 2 == 0 {
                    let copy = &redelivered[lane][i];
                    post(&client, &url_of[copy.account], copy, &sent).await?;
                }
                progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        });
    }
    loop {
        match lanes.join_next().await {
            None => break,
            Some(Ok(Ok(()))) => {}
            Some(Ok(Err(e))) => return Err(e),
            Some(Err(e)) => return Err(format!("lane: {e}")),
        }
    }
    let wall = t0.elapsed();
    let cpu = stack.cpu().saturating_sub(cpu0);
    if let Some(handle) = outage {
        let (held, result) = handle
            .join()
            .map_err(|_| "the outage thread panicked".to_owned())?;
        result.map_err(|e| format!("holding the write lock: {e}"))?;
        println!(
            "store outage: the database refused writes for {:.1} s",
            held.as_secs_f64()
        );
    }

    // Copies "10 minutes later".
    let mut later = 0usize;
    if plan.resend_later {
        let waited = drain(&source, &sim, opts.drain_timeout, 0).await?;
        println!("before the copies: {waited}");
        let aged = match &source {
            Source::Embedded(database) => database
                .age_queue_dedup(Duration::from_secs(600))
                .map_err(|e| format!("aging the queue's dedup records: {e}"))?,
            Source::Aws(_) => {
                // moto forgets a deduplication id once its message is deleted: the copies pass
                // the queue as they would after SQS's 5-minute window.
                println!("(moto keeps no deduplication record after a delete: nothing to age)");
                0
            }
        };
        let copies = if resend_now {
            Arc::clone(&redelivered)
        } else {
            Arc::new(prepare(&load, &accounts, true))
        };
        let mut lanes = tokio::task::JoinSet::new();
        for lane in 0..copies.len() {
            let (copies, url_of, client, sent) = (
                Arc::clone(&copies),
                Arc::clone(&url_of),
                client.clone(),
                Arc::clone(&sent),
            );
            lanes.spawn(async move {
                for p in &copies[lane] {
                    post(&client, &url_of[p.account], p, &sent).await?;
                }
                Ok::<usize, String>(copies[lane].len())
            });
        }
        while let Some(joined) = lanes.join_next().await {
            later += joined.map_err(|e| format!("lane: {e}"))??;
        }
        println!(
            "redelivered {later} bodies again \"10 minutes later\" ({aged} dedup records aged past the 5-minute window)"
        );
    }

    if let Some(window) = fault_window {
        let lasted = window.await.map_err(|e| format!("fault window: {e}"))?;
        println!(
            "LINE API faults off after {:.1} s (recovered)",
            lasted.as_secs_f64()
        );
    }
    let waited = drain(&source, &sim, opts.drain_timeout, plan.poison).await?;
    println!("drain: {waited}");
    let drained = matches!(waited, Drain::Quiet { .. });
    // Drained means quiet for two seconds: the pipeline finished that much earlier.
    let pipeline = t0.elapsed().saturating_sub(Duration::from_secs(2));
    let sent = Arc::try_unwrap(sent).map_err(|_| "lanes still running")?;
    let sent = Sent {
        first_post: std::mem::take(&mut *first_post.lock().map_err(|_| "poisoned lock")?),
        wall,
        cpu,
        ..sent
    };
    let peak_rss = stack.peak_rss_kib();
    let account_ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
    let snapshot = sim.snapshot();
    stack.stop();
    // Read once the stack has stopped: what is still queued then stays there to be named.
    let stored = source.stored(&account_ids).await?;
    let log = std::fs::read_to_string(dir.join("stack.log")).unwrap_or_default();

    let report = ledger::check(&ledger::Inputs {
        load: &load,
        accounts: &accounts,
        sent: &sent,
        stored: &stored,
        line: &snapshot,
        poison_bodies: &poison_bodies,
        total_bodies,
        drained,
        stall: match waited {
            Drain::Quiet { .. } => None,
            Drain::Stalled { stalled, .. } => Some(stalled),
        },
    });
    let leaks = ledger::leaks(&log, &secrets, &load);
    report.print(&sent, peak_rss, total_bodies);
    if drained && !plan.resend_later {
        println!(
            "pipeline: every event stored and answered {:.1} s after the first POST → {:.0} events/s through router and outbound",
            pipeline.as_secs_f64(),
            load.events.len() as f64 / pipeline.as_secs_f64().max(1e-9)
        );
    }
    if leaks.is_empty() {
        println!(
            "log: {} lines, no secret, token or message text in them",
            log.lines().count()
        );
    } else {
        println!("LOG LEAKS:");
        for l in &leaks {
            println!("  - {l}");
        }
    }
    println!("artefacts: {}", dir.display());
    Ok(report.exact() && leaks.is_empty())
}

/// How the wait for the pipeline ended.
#[derive(Debug, Clone, Copy)]
enum Drain {
    /// Both queues empty (but for the expected dead letters) and LINE quiet for two seconds.
    Quiet { after: Duration },
    /// Nothing moved for `stalled` (no queue depth, retry, dead letter, stored event or message
    /// at LINE changed): what is still queued then is late, or stuck, but not lost.
    Stalled { after: Duration, stalled: Duration },
}

impl std::fmt::Display for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drain::Quiet { after } => write!(f, "drained in {:.1} s", after.as_secs_f64()),
            Drain::Stalled { after, stalled } => write!(
                f,
                "NOT drained: no progress for {:.0} s (after {:.1} s of waiting)",
                stalled.as_secs_f64(),
                after.as_secs_f64()
            ),
        }
    }
}

/// Waits until both queues are empty (but for `dlq` messages in the inbound dead-letter queue)
/// and LINE received nothing new for two seconds, for as long as the pipeline makes progress:
/// the verdict does not depend on the machine's speed. Gives up once nothing has moved for
/// `stall` (see [`db::Db::progress`]).
async fn drain(
    database: &Source,
    sim: &line_sim::LineSim,
    stall: Duration,
    dlq: usize,
) -> Result<Drain, String> {
    let started = Instant::now();
    let mut last_change = Instant::now();
    let mut last_seen = None;
    let mut last_accepted = (usize::MAX, Instant::now());
    loop {
        let progress = database.progress().await?;
        let accepted = sim.accepted_count();
        if accepted != last_accepted.0 {
            last_accepted = (accepted, Instant::now());
        }
        let seen = (progress, accepted);
        if last_seen != Some(seen) {
            last_seen = Some(seen);
            last_change = Instant::now();
        }
        if progress.pending == 0
            && progress.dead >= dlq as u64
            && last_accepted.1.elapsed() >= Duration::from_secs(2)
        {
            return Ok(Drain::Quiet {
                after: started.elapsed(),
            });
        }
        if last_change.elapsed() >= stall {
            return Ok(Drain::Stalled {
                after: started.elapsed(),
                stalled: last_change.elapsed(),
            });
        }
        // moto serves one request at a time: read it less often than SQLite.
        tokio::time::sleep(match database {
            Source::Embedded(_) => Duration::from_millis(250),
            Source::Aws(_) => Duration::from_secs(1),
        })
        .await;
    }
}

/// Where the ledger's counts are read: the embedded database, or DynamoDB and SQS.
enum Source {
    Embedded(db::Db),
    Aws(Box<aws::AwsRun>),
}

impl Source {
    async fn progress(&self) -> Result<db::Progress, String> {
        match self {
            Source::Embedded(database) => database
                .progress()
                .map_err(|e| format!("reading the queues: {e}")),
            Source::Aws(resources) => resources.progress().await,
        }
    }

    async fn stored(&self, accounts: &[String]) -> Result<db::Stored, String> {
        match self {
            Source::Embedded(database) => database
                .stored(accounts)
                .map_err(|e| format!("reading the database: {e}")),
            Source::Aws(resources) => resources.stored(accounts).await,
        }
    }
}

/// Queue messages no router can process (not an inbound event), sent to the inbound queue as
/// another producer would. Returns their bodies.
async fn inject_poison(
    source: &Source,
    data_dir: &std::path::Path,
    accounts: &[Account],
    n: usize,
) -> Result<Vec<String>, String> {
    use omniline_domain::line::envelope::QueueMessage;
    use omniline_embedded::{EmbeddedDb, SqliteEventQueue};
    use omniline_ports::EventQueue;
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            json!({"accountId": accounts[i % accounts.len()].id, "poison": i, "event": "not an event"})
                .to_string()
        })
        .collect();
    let messages: Vec<QueueMessage> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| QueueMessage {
            group_id: format!("poison-{i}"),
            dedup_id: format!("poison-{i}"),
            body: body.clone(),
        })
        .collect();
    match source {
        Source::Embedded(_) => {
            let db = EmbeddedDb::open(data_dir).map_err(|e| e.to_string())?;
            SqliteEventQueue::new(db, "inbound", 5)
                .send(&messages)
                .await
                .map_err(|e| format!("sending poison: {e}"))?
        }
        Source::Aws(resources) => resources
            .send_inbound(&messages)
            .await
            .map_err(|e| format!("sending poison: {e}"))?,
    }
    Ok(bodies)
}
