//! The cost meter's run (`--backend aws`): on fresh AWS resources, a stack with
//! `OMNILINE_METER=on` and the agent-served account, `CUSTOMERS` customers each send a first
//! message (new conversation, LINE profile, greeting, assignment), then a message in their open
//! conversation; then the agents answer each one through the agent API. Each phase is read
//! from the stack's `/_meter` before and after, and priced per message at list prices
//! (`cost.rs`, `docs/cost.md`): every AWS request by operation with its DynamoDB capacity,
//! each function's invocations and their measured time, the bytes logged, LINE's requests to the
//! webhook. Durations are measured against moto, slower than AWS: the Lambda lines are an upper
//! bound.

use crate::cost::{self, Entry, Invocations, Usage, US_EAST_1};
use crate::{
    aws, configure, corpus, drain, fresh_run_dir, line_sim, ready, stack, Drain, Opts, Secrets,
    Source,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Customers per phase, after one warming the stack's caches (the channel secret and token,
/// the account and workstream): with it, the agents' capacities (2 + 3 + 5) hold every
/// conversation.
const CUSTOMERS: usize = 9;

/// What the agents answer (told apart at the LINE stand-in by its text).
const AGENT_ANSWER: &str = "It is on its way: tracking number 123";

/// What one phase used, over how many messages.
struct Phase {
    name: &'static str,
    usage: Usage,
    messages: usize,
}

/// Runs the cost phases; prints the bills. `false` when a phase did not drain or a budget is
/// exceeded.
pub async fn run(opts: &Opts, endpoint: &str) -> Result<bool, String> {
    println!("\n== cost meter: {CUSTOMERS} customers of the agent-served account, three phases");
    let dir = fresh_run_dir(&opts.out, "cost")?;
    let mut rng = corpus::Rng::new(opts.seed ^ 0xC057);
    let mut secrets = Secrets::new(&mut rng);
    let sim = line_sim::LineSim::start(Duration::from_millis(2_500), &secrets.bot_secret)
        .await
        .map_err(|e| format!("LINE stand-in: {e}"))?;
    let name = format!(
        "lc{}-{}",
        std::process::id(),
        omniline_domain::clock::now_millis() % 100_000_000
    );
    let resources = aws::AwsRun::create(endpoint, &name).await?;
    let mut env = resources.stack_env()?;
    env.push(("OMNILINE_METER".into(), "on".into()));
    let source = Source::Aws(Box::new(resources));
    let log_path = dir.join("stack.log");
    let stack = stack::Stack::start(stack::StackOptions {
        backend_env: &env,
        binary: &opts.stack,
        data_dir: &dir.join("data"),
        log_path: log_path.clone(),
        line_url: &sim.url(),
        admin_token: &secrets.admin_token,
        router_workers: opts.router_workers,
        line_timeout_ms: 1_500,
        durability: &opts.durability,
    })?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let admin = ready(&client, &stack.base, &secrets.admin_token).await;
    let one_account = Opts {
        accounts: 1,
        ..opts.clone()
    };
    let accounts = configure(&admin, &sim, &mut rng, &one_account, &mut secrets).await?;
    let account = accounts.first().ok_or("no account")?;
    let warm = format!("U{}", rng.hex(32));
    let customers: Vec<String> = (0..CUSTOMERS)
        .map(|_| format!("U{}", rng.hex(32)))
        .collect();
    sim.add_customers(customers.iter().chain([&warm]).map(String::as_str), []);
    let meter = |what: &'static str| {
        let (client, base, token, log_path) = (
            client.clone(),
            stack.base.clone(),
            secrets.admin_token.clone(),
            log_path.clone(),
        );
        async move {
            let response = client
                .get(format!("{base}/_meter"))
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| format!("/_meter ({what}): {e}"))?;
            if !response.status().is_success() {
                return Err(format!("/_meter ({what}) → {}", response.status()));
            }
            let mut usage: Usage = response
                .json()
                .await
                .map_err(|e| format!("/_meter ({what}): {e}"))?;
            usage.log_bytes = std::fs::metadata(&log_path).map_or(0, |m| m.len());
            Ok::<Usage, String>(usage)
        }
    };

    let mut ok = true;
    let mut phases = Vec::new();
    let mut sequence = 0u64;
    let mut send = |user: &str, text: &str| {
        sequence += 1;
        let (body, reply_token) = text_body(user, text, sequence, &mut rng);
        sim.issue_reply_tokens(&corpus::bot_user_id(0), [(reply_token.as_str(), user)]);
        let signature =
            omniline_domain::line::signature::sign(account.secret.as_bytes(), body.as_bytes());
        let request = client
            .post(format!("{}/line/webhook/{}", stack.base, account.id))
            .header("content-type", "application/json")
            .header("x-line-signature", signature)
            .body(body);
        async move {
            let response = request.send().await.map_err(|e| format!("webhook: {e}"))?;
            if response.status() != 200 {
                return Err(format!("webhook → {}", response.status()));
            }
            Ok::<(), String>(())
        }
    };
    // Warm the caches: what a running stack has in memory is not a message's cost.
    send(&warm, "Hello").await?;
    ok &= drained(&source, &sim, "warm-up").await?;
    for (name, text) in [
        ("first message", "Hello, I need help with my order"),
        ("message in an open conversation", "It has not arrived yet"),
        // LINE's customers write mostly Japanese, Thai or Chinese: text without spaces, indexed
        // for search as pairs of characters, so many more terms (and write units) a message.
        (
            "Japanese message in an open conversation",
            "注文した商品がまだ届いていません。",
        ),
    ] {
        let before = meter(name).await?;
        for user in &customers {
            send(user, text).await?;
        }
        ok &= drained(&source, &sim, name).await?;
        let after = meter(name).await?;
        phases.push(Phase {
            name,
            usage: after.since(&before),
            messages: CUSTOMERS,
        });
    }

    // The agents answer each conversation they hold (one agent API request each; listing
    // them is the console's, not the answer's).
    let mut held = Vec::new();
    for token in &secrets.agent_tokens {
        let me: Value = client
            .get(format!("{}/agent/v1/me", stack.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("agent me: {e}"))?
            .json()
            .await
            .map_err(|e| format!("agent me: {e}"))?;
        let list: Value = client
            .get(format!(
                "{}/agent/v1/conversations?status=active",
                stack.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| format!("agent list: {e}"))?
            .json()
            .await
            .map_err(|e| format!("agent list: {e}"))?;
        // The agent's own: the list also has its queues' conversations, held by others.
        let own = list["conversations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["agentId"] == me["id"] && !me["id"].is_null());
        for c in own {
            if let (Some(id), true) = (c["id"].as_str(), c["sourceId"] != warm.as_str()) {
                held.push((token.clone(), id.to_owned()));
            }
        }
    }
    if held.len() != CUSTOMERS {
        println!(
            "  the agents hold {} of {CUSTOMERS} conversations",
            held.len()
        );
        ok = false;
    }
    let before = meter("agent reply").await?;
    let started = Instant::now();
    for (token, id) in &held {
        let response = client
            .post(format!(
                "{}/agent/v1/conversations/{id}/messages",
                stack.base
            ))
            .bearer_auth(token)
            .json(&json!({"type": "text", "text": AGENT_ANSWER}))
            .send()
            .await
            .map_err(|e| format!("agent reply: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("agent reply → {}", response.status()));
        }
    }
    let agent_millis = started.elapsed().as_secs_f64() * 1000.0;
    ok &= drained(&source, &sim, "agent reply").await?;
    // Reply first (issue 5/7): agents answering within seconds of the customer's message use
    // its reply token, free; a push counts against the channel's monthly limit.
    let answers: Vec<line_sim::Via> = sim
        .snapshot()
        .accepted
        .into_iter()
        .filter(|a| a.text == AGENT_ANSWER)
        .map(|a| a.via)
        .collect();
    let free = answers
        .iter()
        .filter(|v| matches!(v, line_sim::Via::Reply(_)))
        .count();
    let share = free as f64 / answers.len().max(1) as f64;
    println!(
        "  agents answering within {:.1} s: {free} of {} answers were free replies ({:.0} %; goal ≥ 90 %)",
        agent_millis / 1000.0,
        answers.len(),
        share * 100.0
    );
    if answers.len() != held.len() || share < 0.9 {
        ok = false;
    }
    let mut replies = meter("agent reply").await?.since(&before);
    // The agent API runs in the stack's HTTP server: one agent function invocation per request,
    // timed from here (an upper bound: it includes the HTTP round trip).
    replies.invocations.push(Invocations {
        function: "agent".into(),
        count: held.len() as u64,
        total_millis: agent_millis,
        memory_mb: 256,
    });
    phases.push(Phase {
        name: "agent reply",
        usage: replies,
        messages: held.len().max(1),
    });
    drop(stack);

    println!(
        "  prices: {} list prices (docs/cost.md); per message, then per million",
        US_EAST_1.region
    );
    let mut totals = Vec::new();
    for phase in &phases {
        let n = phase.messages as f64;
        let (read, write) = phase.usage.aws.capacity_units();
        println!(
            "  {}: {:.1} DynamoDB read units, {:.1} write units per message",
            phase.name,
            read / n,
            write / n
        );
        println!(
            "    write units by item: {}",
            cost::write_units_by_kind(&phase.usage, n)
        );
        // LINE reaches the webhook by its function URL; the agent API is on the HTTP API.
        let entry = if phase.name == "agent reply" {
            Entry::HttpApi
        } else {
            Entry::FunctionUrl
        };
        // One request per message: a LINE POST, or an agent API call.
        let bill = cost::bill(&phase.usage, &US_EAST_1, entry, n).per_million(n);
        print!(
            "{}",
            bill.render(&format!("  $ per million: {}", phase.name))
        );
        totals.push((phase.name, bill.total()));
    }
    let total = |name: &str| {
        totals
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, t)| *t)
    };
    let exchange = total("first message") + total("agent reply");
    println!(
        "  $ per million exchanges (a customer's first message, its assignment and greeting, the agent's reply): ${exchange:.2}"
    );
    println!(
        "  budgets (issue 3/7): open conversation ≤ $3.50 → ${:.2}; exchange ≤ $10 → ${exchange:.2}",
        total("message in an open conversation")
    );
    Ok(ok)
}

/// One body's JSON with a text message from `user`, and its reply token.
fn text_body(user: &str, text: &str, sequence: u64, rng: &mut corpus::Rng) -> (String, String) {
    let reply_token = rng.hex(32);
    let body = json!({
        "destination": corpus::bot_user_id(0),
        "events": [{
            "type": "message", "mode": "active",
            "timestamp": omniline_domain::clock::now_millis(),
            "webhookEventId": format!("01COST{:020}{}", sequence, rng.hex(0)),
            "deliveryContext": {"isRedelivery": false},
            "replyToken": reply_token,
            "source": {"type": "user", "userId": user},
            "message": {"type": "text", "id": format!("{}", 700_000_000_000u64 + sequence),
                        "quoteToken": rng.hex(16), "text": text}
        }]
    })
    .to_string();
    (body, reply_token)
}

/// Waits for the pipeline to drain after a phase.
async fn drained(source: &Source, sim: &line_sim::LineSim, phase: &str) -> Result<bool, String> {
    match drain(source, sim, Duration::from_secs(30), 0).await? {
        d @ Drain::Quiet { .. } => {
            println!("  {phase}: {d}");
            Ok(true)
        }
        d => {
            println!("  {phase}: {d}");
            Ok(false)
        }
    }
}
