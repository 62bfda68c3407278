//! Load run of the webhook hot path, measured the way the LINE SDK peers are
//! (`../shared/bench-peers/`): single thread, the whole corpus per pass, one warm-up pass, then K
//! timed passes; median and best of the K rates.
//!
//!     cargo build --release -p omniline-domain --example bench_hot_path
//!     taskset -c 1 target/release/examples/bench_hot_path CORPUS.jsonl [--passes K] [--mode M]
//!
//! Modes:
//!   hotpath (default): SignatureKey::verify + WebhookEnvelope::parse + split_events per body
//!   verify           : SignatureKey::verify only (events counted once, outside the timed passes)
//!   parse            : WebhookEnvelope::parse + split_events only (no signature check)
//!
//! Corpus line: `{"body": "<raw JSON>", "signature": "<base64 HMAC-SHA256>"}`, channel secret
//! `8c9b1f0e2d3a4b5c6d7e8f9a0b1c2d3e`. A signature that does not verify aborts the run.

use omniline_domain::line::envelope::{accept_events, WebhookEnvelope};
use omniline_domain::line::signature::SignatureKey;
use serde::Deserialize;
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

const SECRET: &[u8] = b"8c9b1f0e2d3a4b5c6d7e8f9a0b1c2d3e";
/// A realistic account id (a simple UUID, as the admin function creates them).
const ACCOUNT_ID: &str = "3f1c2b4a5d6e4f8091a2b3c4d5e6f708";
const RECEIVED_AT: i64 = 1_717_200_000_000;
/// The webhook's deduplication window (7 days), as `omniline_app::ingest` applies it.
const WINDOW_MS: i64 = omniline_domain::conversation::DEDUPE_RETENTION_SECS * 1000;

#[derive(Deserialize)]
struct Line {
    body: String,
    signature: String,
}

struct Item {
    body: Vec<u8>,
    signature: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    HotPath,
    Verify,
    Parse,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::HotPath => "hotpath",
            Mode::Verify => "verify",
            Mode::Parse => "parse",
        }
    }
}

fn parse_and_split(body: &[u8]) -> Result<usize, String> {
    let mut envelope = WebhookEnvelope::parse(body).map_err(|e| e.to_string())?;
    // As the webhook: stale and duplicate-key events refused, the rest split.
    let messages = accept_events(ACCOUNT_ID, &mut envelope, RECEIVED_AT, WINDOW_MS).messages;
    let n = messages.len();
    black_box(messages);
    Ok(n)
}

/// One pass over the corpus; returns the number of events (queue messages).
fn run_once(corpus: &[Item], mode: Mode, events_in_corpus: usize) -> Result<usize, String> {
    // As in the webhook: the channel secret is keyed once and cached, not per request.
    let key = SignatureKey::new(SECRET);
    let mut events = 0;
    match mode {
        Mode::HotPath => {
            for item in black_box(corpus) {
                key.verify(&item.body, Some(&item.signature))
                    .map_err(|e| format!("bad signature: {e}"))?;
                events += parse_and_split(&item.body)?;
            }
        }
        Mode::Verify => {
            for item in black_box(corpus) {
                key.verify(&item.body, Some(&item.signature))
                    .map_err(|e| format!("bad signature: {e}"))?;
            }
            events = events_in_corpus;
        }
        Mode::Parse => {
            for item in black_box(corpus) {
                events += parse_and_split(&item.body)?;
            }
        }
    }
    Ok(events)
}

/// Peak resident set size (VmHWM) in MB, from /proc/self/status.
fn max_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_hot_path CORPUS.jsonl [--passes K] [--mode hotpath|verify|parse]";
    let opt = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let path = args.first().filter(|a| !a.starts_with("--")).ok_or(usage)?;
    let passes: usize = match opt("--passes") {
        Some(p) => p.parse().map_err(|_| usage.to_owned())?,
        None => 5,
    };
    if passes == 0 {
        return Err(usage.to_owned());
    }
    let mode = match opt("--mode").as_deref() {
        None | Some("hotpath") => Mode::HotPath,
        Some("verify") => Mode::Verify,
        Some("parse") => Mode::Parse,
        Some(_) => return Err(usage.to_owned()),
    };

    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let corpus: Vec<Item> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<Line>(l)
                .map(|line| Item {
                    body: line.body.into_bytes(),
                    signature: line.signature,
                })
                .map_err(|e| format!("{path}: line {}: {e}", i + 1))
        })
        .collect::<Result<_, _>>()?;
    drop(text);
    if corpus.is_empty() {
        return Err(format!("{path}: empty corpus"));
    }
    // Every body verifies and splits, before anything is timed (also gives the event count).
    let events_in_corpus = run_once(&corpus, Mode::HotPath, 0)?;

    run_once(&corpus, mode, events_in_corpus)?; // warm-up
    let mut rates = Vec::with_capacity(passes);
    let mut events = 0;
    for _ in 0..passes {
        let t0 = Instant::now();
        events = run_once(&corpus, mode, events_in_corpus)?;
        let dt = t0.elapsed().as_secs_f64();
        rates.push((corpus.len() as f64 / dt, events as f64 / dt));
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let median = rates[rates.len() / 2];
    let best = rates[rates.len() - 1];
    let bytes: usize = corpus.iter().map(|i| i.body.len()).sum();
    println!(
        "omniline-rust {} mode={} bodies={} events/pass={events} avg_body_b={} passes={passes}",
        env!("CARGO_PKG_VERSION"),
        mode.name(),
        corpus.len(),
        bytes / corpus.len()
    );
    println!(
        "RESULT peer=omniline-rust mode={} bodies_per_s_median={:.0} events_per_s_median={:.0} \
         bodies_per_s_best={:.0} events_per_s_best={:.0} maxrss_mb={:.1}",
        mode.name(),
        median.0,
        median.1,
        best.0,
        best.1,
        max_rss_mb()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
