//! The ledger: what was sent against what was stored and what reached LINE, every mismatch
//! listed; and the figures of the run.

use crate::corpus::{Load, TEXTS};
use crate::db::Stored;
use crate::line_sim::{Snapshot, Via};
use crate::{Account, Secrets, Sent};
use std::collections::HashMap;

pub struct Inputs<'a> {
    pub load: &'a Load,
    pub accounts: &'a [Account],
    pub sent: &'a Sent,
    pub stored: &'a Stored,
    pub line: &'a Snapshot,
    pub poison_bodies: &'a [String],
    pub total_bodies: usize,
    pub drained: bool,
    /// When the pipeline did not drain: how long nothing had moved when the wait ended.
    pub stall: Option<std::time::Duration>,
}

#[derive(Default)]
pub struct Report {
    pub events_sent: usize,
    pub event_copies_accepted: u64,
    pub stored: usize,
    pub duplicates_rejected: u64,
    pub expected_messages: usize,
    pub messages_at_line: usize,
    pub latencies_ms: Vec<f64>,
    pub mismatches: Vec<String>,
    /// Work still queued when the pipeline stopped making progress: late (or stuck), not lost.
    /// A run with late work is not exact either, but says what was late apart from what was lost.
    pub late: Vec<String>,
    pub stall: Option<std::time::Duration>,
    pub line: LineFigures,
    pub delivery_status: Vec<(String, u64)>,
    pub dead_letters: u64,
    pub bot_asks: usize,
    /// Expected at LINE, absent, and recorded `unconfirmed`: a reply whose answer was lost and
    /// whose token expired before it could be tried again (never pushed: it may have arrived).
    pub unconfirmed_missing: usize,
    pub agent_load: Vec<(String, u64, u64)>,
}

#[derive(Default)]
pub struct LineFigures {
    pub reply_calls: u64,
    pub push_calls: u64,
    pub conflicts_409: u64,
    pub invalid_token_400: u64,
    pub faults: crate::line_sim::FaultCounts,
}

impl Report {
    pub fn exact(&self) -> bool {
        self.mismatches.is_empty() && self.late.is_empty()
    }

    pub fn print(&self, sent: &Sent, peak_rss_kib: u64, bodies: usize) {
        let secs = sent.wall.as_secs_f64().max(1e-9);
        let first_copies = self.events_sent as f64;
        println!(
            "webhook: {bodies} bodies / {} events in {:.2} s → {:.0} requests/s, {:.0} events/s accepted (first copies)",
            self.events_sent,
            secs,
            bodies as f64 / secs,
            first_copies / secs
        );
        let statuses = sent
            .status_counts
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        println!("webhook answers: {statuses}");
        if let Ok(mut r) = sent.response_us.lock() {
            r.sort_unstable();
            let p = |q: f64| percentile(&r, q) as f64 / 1000.0;
            println!(
                "webhook response time (accepted): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                p(0.50),
                p(0.95),
                p(0.99),
                p(1.0)
            );
        }
        let mut lat = self.latencies_ms.clone();
        lat.sort_by(f64::total_cmp);
        println!(
            "end to end (webhook POST → the bot's answer accepted by LINE), {} messages: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lat.len(),
            percentile(&lat, 0.50),
            percentile(&lat, 0.95),
            percentile(&lat, 0.99),
            percentile(&lat, 1.0)
        );
        println!(
            "stack: CPU {:.2} s over {:.2} s of sending = {:.2} cores; peak RSS {:.1} MiB",
            sent.cpu.as_secs_f64(),
            secs,
            sent.cpu.as_secs_f64() / secs,
            peak_rss_kib as f64 / 1024.0
        );
        println!(
            "LINE: {} reply calls, {} push calls, {} × 409 (retry key accepted before), {} × 400 (reply token used or expired); faults injected: {} (500 before: {}, 429: {}, reset after accepting: {}, 500 after accepting: {}, no answer: {})",
            self.line.reply_calls,
            self.line.push_calls,
            self.line.conflicts_409,
            self.line.invalid_token_400,
            self.line.faults.total(),
            self.line.faults.before_500,
            self.line.faults.before_429,
            self.line.faults.after_reset,
            self.line.faults.after_500,
            self.line.faults.hang
        );
        let statuses: Vec<String> = self
            .delivery_status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("deliveries: {}", statuses.join(", "));
        let loads: Vec<String> = self
            .agent_load
            .iter()
            .map(|(id, active, cap)| format!("{id} {active}/{cap}"))
            .collect();
        println!("agents (active/capacity): {}", loads.join(", "));
        println!("ledger:");
        println!("  events sent (distinct)        {:>8}", self.events_sent);
        println!(
            "  event copies accepted (200)   {:>8}",
            self.event_copies_accepted
        );
        println!("  events stored                 {:>8}", self.stored);
        println!(
            "  duplicates rejected           {:>8}",
            self.duplicates_rejected
        );
        println!(
            "  messages expected at LINE     {:>8}",
            self.expected_messages
        );
        println!(
            "  messages accepted by LINE     {:>8}",
            self.messages_at_line
        );
        println!("  bot asked                     {:>8}", self.bot_asks);
        println!(
            "  missing, recorded unconfirmed {:>8}   (LINE's answer to a reply was lost and the token expired: never resent)",
            self.unconfirmed_missing
        );
        println!("  dead letters (inbound)        {:>8}", self.dead_letters);
        if !self.late.is_empty() {
            println!(
                "  LATE ({}): still queued when nothing had moved for {:.0} s: not lost, but not done",
                self.late.len(),
                self.stall.unwrap_or_default().as_secs_f64()
            );
            for l in self.late.iter().take(20) {
                println!("    - {l}");
            }
            if self.late.len() > 20 {
                println!("    … and {} more", self.late.len() - 20);
            }
        }
        if self.exact() {
            println!("  EXACT: every event stored once, every expected message at LINE once and in order, no agent over capacity");
        } else if !self.mismatches.is_empty() {
            println!("  MISMATCHES ({}):", self.mismatches.len());
            for m in self.mismatches.iter().take(50) {
                println!("    - {m}");
            }
            if self.mismatches.len() > 50 {
                println!("    … and {} more", self.mismatches.len() - 50);
            }
        }
    }
}

/// The `q` quantile of sorted values (nearest rank; `q = 1` is the maximum).
fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Messages the run should deliver: the bot's answer to every 1:1 turn in a bot account, and one
/// greeting per customer with a turn.
pub fn expected_messages(load: &Load, accounts: &[Account]) -> usize {
    let mut turns = vec![false; load.customers.len()];
    let mut answers = 0;
    for e in &load.events {
        if e.is_turn() {
            turns[e.customer] = true;
            if accounts[load.customers[e.customer].account].bot {
                answers += 1;
            }
        }
    }
    answers + turns.iter().filter(|t| **t).count()
}

pub fn check(i: &Inputs<'_>) -> Report {
    let mut r = Report {
        events_sent: i.load.events.len(),
        event_copies_accepted: i
            .sent
            .accepted_events
            .load(std::sync::atomic::Ordering::Relaxed),
        stall: i.stall,
        ..Report::default()
    };
    let m = &mut r.mismatches;
    let late = &mut r.late;
    let queued = |queue: &str, id: &str| {
        i.stored
            .queued_events
            .get(queue)
            .is_some_and(|ids| ids.contains(id))
    };
    // An event still in the inbound queue, or whose answer is still in the outbound queue.
    let event_late = |id: &str| queued("inbound", id) || queued("outbound", id);
    let accepted_requests = i
        .sent
        .accepted_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    if (accepted_requests as usize) < i.total_bodies {
        m.push(format!(
            "only {accepted_requests} of {} bodies were accepted",
            i.total_bodies
        ));
    }

    // Stored exactly once.
    for e in &i.load.events {
        match i.stored.events.get(&e.id) {
            None if queued("inbound", &e.id) => {
                late.push(format!(
                    "event {} not stored yet: in the inbound queue",
                    e.id
                ));
                continue;
            }
            None if queued("inbound-dlq", &e.id) => {
                m.push(format!(
                    "event {} not stored: in the inbound dead-letter queue",
                    e.id
                ));
                continue;
            }
            None => m.push(format!(
                "event {} LOST: in no queue, no dead-letter queue and no store",
                e.id
            )),
            Some(1) => r.stored += 1,
            Some(n) => m.push(format!("event {} stored {n} times", e.id)),
        }
        match i.stored.transcript.get(&e.id) {
            Some(1) => {}
            None => m.push(format!("event {} missing from every transcript", e.id)),
            Some(n) => m.push(format!("event {} in {n} transcripts", e.id)),
        }
    }
    let known: std::collections::HashSet<&str> =
        i.load.events.iter().map(|e| e.id.as_str()).collect();
    for id in i.stored.events.keys() {
        if !known.contains(id.as_str()) {
            m.push(format!("stored an event never sent: {id}"));
        }
    }
    r.duplicates_rejected = r.event_copies_accepted.saturating_sub(r.stored as u64);

    // One conversation per customer.
    let mut turns = vec![false; i.load.customers.len()];
    for e in &i.load.events {
        if e.is_turn() {
            turns[e.customer] = true;
        }
    }
    for (c, customer) in i.load.customers.iter().enumerate() {
        if !turns[c] {
            continue;
        }
        let key = (
            i.accounts[customer.account].id.clone(),
            customer.user_id.clone(),
        );
        match i.stored.conversations_per_source.get(&key) {
            Some(1) => {}
            None if i
                .load
                .events
                .iter()
                .any(|e| e.customer == c && queued("inbound", &e.id)) => {}
            None => m.push(format!("customer {} has no conversation", customer.user_id)),
            Some(n) => m.push(format!(
                "customer {} has {n} conversations",
                customer.user_id
            )),
        }
    }

    // At LINE exactly once: the bot's "ack {event}" for every turn in a bot account, one
    // "Welcome …" per customer with a turn.
    let by_token: HashMap<&str, usize> = i
        .load
        .events
        .iter()
        .enumerate()
        .map(|(n, e)| (e.reply_token.as_str(), n))
        .collect();
    let by_user: HashMap<&str, usize> = i
        .load
        .customers
        .iter()
        .enumerate()
        .map(|(n, c)| (c.user_id.as_str(), n))
        .collect();
    let by_id: HashMap<&str, usize> = i
        .load
        .events
        .iter()
        .enumerate()
        .map(|(n, e)| (e.id.as_str(), n))
        .collect();
    let mut acks: HashMap<usize, u64> = HashMap::new();
    let mut greetings = vec![0u64; i.load.customers.len()];
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); i.load.customers.len()];
    let mut accepted = i.line.accepted.clone();
    accepted.sort_by_key(|a| a.at);
    let first_post = &i.sent.first_post;
    for a in &accepted {
        r.messages_at_line += 1;
        let customer = match &a.via {
            Via::Reply(token) => by_token
                .get(token.as_str())
                .map(|&e| i.load.events[e].customer),
            Via::Push(to) => by_user.get(to.as_str()).copied(),
        };
        let Some(customer) = customer else {
            m.push(format!(
                "LINE got a message for nobody we know: {:?}",
                a.via
            ));
            continue;
        };
        if let Some(event_id) = a.text.strip_prefix("ack ") {
            let Some(&e) = by_id.get(event_id) else {
                m.push(format!("LINE got an ack for an unknown event {event_id}"));
                continue;
            };
            if i.load.events[e].customer != customer {
                m.push(format!("the ack of {event_id} went to another customer"));
            }
            *acks.entry(e).or_default() += 1;
            order[customer].push(e);
            if let Some(Some(t0)) = first_post.get(e) {
                r.latencies_ms
                    .push(a.at.saturating_duration_since(*t0).as_secs_f64() * 1000.0);
            }
        } else if a.text.starts_with("Welcome ") {
            greetings[customer] += 1;
        } else {
            m.push(format!("LINE got an unexpected message: {:?}", a.text));
        }
    }
    for (n, e) in i.load.events.iter().enumerate() {
        let bot = i.accounts[i.load.customers[e.customer].account].bot;
        let expected = u64::from(bot && e.is_turn());
        r.expected_messages += expected as usize;
        let got = acks.get(&n).copied().unwrap_or(0);
        if got == 0 && expected == 1 && i.stored.unconfirmed_events.contains(&e.id) {
            r.unconfirmed_missing += 1;
            continue;
        }
        if got == 0 && expected == 1 && event_late(&e.id) {
            if queued("outbound", &e.id) {
                late.push(format!(
                    "the answer to {} not at LINE yet: in the outbound queue",
                    e.id
                ));
            }
            continue;
        }
        if got != expected {
            m.push(format!(
                "the answer to {} reached LINE {got} times (expected {expected})",
                e.id
            ));
        }
    }
    // The bot was asked about every turn it answered (a retried event may ask it twice: the
    // answer still reaches LINE once).
    let asked: std::collections::HashSet<&str> =
        i.line.bot_asks.iter().map(String::as_str).collect();
    r.bot_asks = i.line.bot_asks.len();
    for (n, e) in i.load.events.iter().enumerate() {
        if acks.contains_key(&n) && !asked.contains(e.id.as_str()) {
            m.push(format!("LINE got an answer to {} the bot never gave", e.id));
        }
    }
    let mut first_turn: Vec<Option<&str>> = vec![None; i.load.customers.len()];
    for lane in &i.load.lanes {
        for body in lane {
            for &e in &body.events {
                let event = &i.load.events[e];
                if event.is_turn() && first_turn[event.customer].is_none() {
                    first_turn[event.customer] = Some(event.id.as_str());
                }
            }
        }
    }
    for (c, &n) in greetings.iter().enumerate() {
        let expected = u64::from(turns[c]);
        r.expected_messages += expected as usize;
        // The greeting travels with the answer to the customer's first turn.
        if n == 0
            && expected == 1
            && first_turn[c].is_some_and(|id| i.stored.unconfirmed_events.contains(id))
        {
            r.unconfirmed_missing += 1;
            continue;
        }
        if n == 0 && expected == 1 && first_turn[c].is_some_and(event_late) {
            continue;
        }
        if n != expected {
            m.push(format!(
                "{} was greeted {n} times (expected {expected})",
                i.load.customers[c].user_id
            ));
        }
    }
    // Per customer, answers in the order the events were sent (lane order, then body order).
    let mut sent_order: Vec<Vec<usize>> = vec![Vec::new(); i.load.customers.len()];
    for lane in &i.load.lanes {
        for body in lane {
            for &e in &body.events {
                sent_order[i.load.events[e].customer].push(e);
            }
        }
    }
    for (c, got) in order.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        let got: Vec<usize> = got.iter().copied().filter(|e| seen.insert(*e)).collect();
        let want: Vec<usize> = sent_order[c]
            .iter()
            .copied()
            .filter(|e| got.contains(e))
            .collect();
        if got != want {
            m.push(format!(
                "answers to {} arrived out of order",
                i.load.customers[c].user_id
            ));
        }
    }

    // Agents never over capacity; as many assignments as the slots allow.
    r.agent_load = i.stored.agent_load.clone();
    let mut assigned = 0;
    let mut slots = 0;
    for (id, active, capacity) in &i.stored.agent_load {
        assigned += active;
        slots += capacity;
        if active > capacity {
            m.push(format!(
                "agent {id} holds {active} conversations, capacity {capacity}"
            ));
        }
    }
    let agent_customers = (0..i.load.customers.len())
        .filter(|&c| turns[c] && !i.accounts[i.load.customers[c].account].bot)
        .count() as u64;
    if assigned != slots.min(agent_customers) && late.is_empty() {
        m.push(format!(
            "{assigned} conversations assigned to agents; expected {} ({slots} slots, {agent_customers} customers)",
            slots.min(agent_customers)
        ));
    }

    // Poison in the dead-letter queue, nothing else there, nothing left queued.
    r.dead_letters = i.stored.queued.get("inbound-dlq").copied().unwrap_or(0);
    if r.dead_letters != i.poison_bodies.len() as u64 {
        m.push(format!(
            "{} messages in the inbound dead-letter queue; expected {}",
            r.dead_letters,
            i.poison_bodies.len()
        ));
    }
    if !i.drained && late.is_empty() {
        m.push(format!(
            "the pipeline did not drain: nothing moved for {:.0} s",
            i.stall.unwrap_or_default().as_secs_f64()
        ));
    }
    for (queue, n) in &i.stored.queued {
        if queue != "inbound-dlq" && *n > 0 && late.is_empty() {
            m.push(format!("{n} messages left in {queue}"));
        }
    }
    let mut statuses: Vec<(String, u64)> = i
        .stored
        .delivery_status
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    statuses.sort();
    for (status, n) in &statuses {
        if status != "sent" && status != "unconfirmed" {
            m.push(format!("{n} deliveries {status}"));
        }
    }
    r.delivery_status = statuses;
    r.line = LineFigures {
        reply_calls: i.line.reply_calls,
        push_calls: i.line.push_calls,
        conflicts_409: i.line.conflicts_409,
        invalid_token_400: i.line.invalid_token_400,
        faults: i.line.faults,
    };
    r
}

/// Secrets, tokens, message texts and customer names found in the log.
pub fn leaks(log: &str, secrets: &Secrets, load: &Load) -> Vec<String> {
    let mut needles: Vec<(String, String)> = Vec::new();
    needles.push(("the admin token".into(), secrets.admin_token.clone()));
    needles.push(("the bot secret".into(), secrets.bot_secret.clone()));
    for (n, s) in secrets.channel_secrets.iter().enumerate() {
        needles.push((format!("channel secret {n}"), s.clone()));
    }
    for (n, s) in secrets.access_tokens.iter().enumerate() {
        needles.push((format!("channel access token {n}"), s.clone()));
    }
    for (n, s) in secrets.agent_tokens.iter().enumerate() {
        needles.push((format!("agent token {n}"), s.clone()));
        // The secret part alone, in case a token is logged cut or split.
        if let Some((_, secret)) = s.rsplit_once('_') {
            needles.push((format!("agent token {n} (secret part)"), secret.to_owned()));
        }
    }
    for t in TEXTS {
        needles.push(("a customer's text".into(), (*t).to_owned()));
    }
    needles.push(("a bot answer".into(), "ack 01LT".into()));
    needles.push(("a greeting".into(), "Welcome Cust".into()));
    needles.push(("a customer's name".into(), "Cust-".into()));
    for e in load.events.iter().take(50) {
        needles.push(("a reply token".into(), e.reply_token.clone()));
    }
    let mut found = Vec::new();
    for (what, needle) in needles {
        if needle.is_empty() {
            continue;
        }
        if let Some(line) = log.lines().find(|l| l.contains(&needle)) {
            let shown: String = line.chars().take(160).collect();
            found.push(format!("{what} in: {shown}"));
        }
    }
    found.dedup();
    found
}
