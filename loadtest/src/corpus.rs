//! The load: customers across accounts and the signed webhook bodies they send, generated like
//! `../shared/bench-peers/gen_corpus.py` (1–5 events per body; text with emoji in Latin,
//! Japanese, Thai and Chinese, stickers, images, locations, postbacks, group chatter), from a
//! seed, so that a run can be repeated.

use serde_json::{json, Value};

/// Customer texts; never expected in a log line.
pub const TEXTS: &[&str] = &[
    "Hello! Can you tell me today's opening hours?",
    "こんにちは、予約の変更をお願いしたいです。明日の15時は空いていますか？",
    "Thanks a lot 🙏 see you tomorrow 😀",
    "注文番号 #A-10293 の配送状況を教えてください 📦",
    "สวัสดีครับ สั่งอาหารได้ไหม 🍜",
    "Is the \"premium\" plan available for teams of 5+? \\ price in ¥ please",
    "我想查询一下会员积分 ✨",
];
const POSTBACKS: &[&str] = &[
    "action=buy&itemid=111",
    "action=reserve&date=2025-06-01&slot=3",
    "action=cancel&order=A-10293",
];

/// splitmix64: small, deterministic, good enough to pick event kinds.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| char::from(A[self.below(A.len() as u64) as usize]))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Sticker,
    Image,
    Location,
    Postback,
    /// A message in a group chat the account does not handle: stored, never answered.
    GroupText,
}

/// One LINE webhook event of the load.
#[derive(Debug, Clone)]
pub struct EventSpec {
    pub id: String,
    pub customer: usize,
    pub kind: Kind,
    pub reply_token: String,
    pub timestamp: i64,
    /// LINE message id (message events).
    pub message_id: String,
    pub text: &'static str,
}

impl EventSpec {
    /// A 1:1 customer turn: the bot answers it (bot accounts).
    pub fn is_turn(&self) -> bool {
        self.kind != Kind::GroupText
    }

    pub fn to_json(&self, customer: &Customer, redelivery: bool) -> Value {
        let source = match self.kind {
            Kind::GroupText => {
                json!({"type": "group", "groupId": customer.group_id, "userId": customer.user_id})
            }
            _ => json!({"type": "user", "userId": customer.user_id}),
        };
        let mut event = json!({
            "type": if self.kind == Kind::Postback { "postback" } else { "message" },
            "timestamp": self.timestamp,
            "source": source,
            "mode": "active",
            "webhookEventId": self.id,
            "deliveryContext": {"isRedelivery": redelivery},
            "replyToken": self.reply_token,
        });
        let message = match self.kind {
            Kind::Text | Kind::GroupText => {
                json!({"type": "text", "id": self.message_id, "quoteToken": format!("q{}", self.message_id), "text": self.text})
            }
            Kind::Sticker => {
                json!({"type": "sticker", "id": self.message_id, "quoteToken": format!("q{}", self.message_id),
                                    "packageId": "446", "stickerId": "1988", "stickerResourceType": "STATIC", "keywords": ["Happy"]})
            }
            Kind::Image => {
                json!({"type": "image", "id": self.message_id, "quoteToken": format!("q{}", self.message_id),
                                  "contentProvider": {"type": "line"}})
            }
            Kind::Location => {
                json!({"type": "location", "id": self.message_id, "title": "Tokyo Tower",
                                     "address": "4-2-8 Shibakoen, Minato City, Tokyo", "latitude": 35.6586, "longitude": 139.7454})
            }
            Kind::Postback => Value::Null,
        };
        if self.kind == Kind::Postback {
            event["postback"] = json!({"data": self.text});
        } else {
            event["message"] = message;
        }
        event
    }
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub account: usize,
    pub user_id: String,
    pub group_id: String,
}

/// One webhook request: events of one account.
#[derive(Debug, Clone)]
pub struct Body {
    pub account: usize,
    /// Indexes into [`Load::events`].
    pub events: Vec<usize>,
}

/// Everything a run sends, split into lanes: a lane sends its bodies one after another (a
/// customer's bodies all go through one lane, so the order they were sent in is defined).
pub struct Load {
    pub customers: Vec<Customer>,
    pub events: Vec<EventSpec>,
    pub lanes: Vec<Vec<Body>>,
}

impl Load {
    pub fn body_json(&self, body: &Body, redelivery: bool) -> String {
        let events: Vec<Value> = body
            .events
            .iter()
            .map(|&e| {
                let event = &self.events[e];
                event.to_json(&self.customers[event.customer], redelivery)
            })
            .collect();
        json!({"destination": bot_user_id(body.account), "events": events}).to_string()
    }

    pub fn body_count(&self) -> usize {
        self.lanes.iter().map(Vec::len).sum()
    }
}

/// The user id of account `account`'s bot (webhooks' `destination`).
pub fn bot_user_id(account: usize) -> String {
    format!("Ubot{account:031}")
}

/// A ULID-shaped webhook event id, unique per run (the run tag) and event.
fn event_id(run: u32, n: usize) -> String {
    format!("01LT{run:08X}{n:014X}")
}

/// `customers` across `accounts`, `bodies` bodies in `lanes` lanes. Every customer's first event
/// is a text (it opens the conversation).
/// `t0`: the events' first timestamp (epoch ms): now, as LINE's would be (the webhook refuses
/// events older than the deduplication window).
#[allow(clippy::too_many_arguments)]
pub fn generate(
    seed: u64,
    run: u32,
    accounts: usize,
    customers: usize,
    bodies: usize,
    lanes: usize,
    t0: i64,
) -> Load {
    let mut rng = Rng::new(seed);
    let lanes = lanes.clamp(1, customers.max(1));
    let customers: Vec<Customer> = (0..customers)
        .map(|i| Customer {
            account: i % accounts,
            user_id: format!("U{}", rng.hex(32)),
            group_id: format!("C{}", rng.hex(32)),
        })
        .collect();
    // Lane l holds the customers i with i % lanes == l; a body mixes customers of one lane and
    // one account.
    let by_lane: Vec<Vec<usize>> = (0..lanes)
        .map(|l| (l..customers.len()).step_by(lanes).collect())
        .collect();
    let mut started = vec![false; customers.len()];
    let mut events = Vec::new();
    let mut out: Vec<Vec<Body>> = vec![Vec::new(); lanes];
    for b in 0..bodies {
        let lane = b % lanes;
        let members = &by_lane[lane];
        let first = members[rng.below(members.len() as u64) as usize];
        let account = customers[first].account;
        let n_events = 1 + rng.below(5) as usize;
        let mut body = Body {
            account,
            events: Vec::with_capacity(n_events),
        };
        for _ in 0..n_events {
            // Mostly the same customer; sometimes another of the lane and account.
            let mut customer = first;
            if rng.chance(0.3) {
                let other = members[rng.below(members.len() as u64) as usize];
                if customers[other].account == account {
                    customer = other;
                }
            }
            let roll = rng.below(100);
            let kind = if !started[customer] {
                Kind::Text
            } else {
                match roll {
                    0..=64 => Kind::Text,
                    65..=76 => Kind::Sticker,
                    77..=81 => Kind::Image,
                    82..=86 => Kind::Location,
                    87..=93 => Kind::Postback,
                    _ => Kind::GroupText,
                }
            };
            if kind != Kind::GroupText {
                started[customer] = true;
            }
            let n = events.len();
            let text = match kind {
                Kind::Postback => POSTBACKS[rng.below(POSTBACKS.len() as u64) as usize],
                _ => TEXTS[rng.below(TEXTS.len() as u64) as usize],
            };
            events.push(EventSpec {
                id: event_id(run, n),
                customer,
                kind,
                reply_token: rng.alnum(32),
                timestamp: t0 + n as i64,
                message_id: format!("{}", 100_000_000_000_000_000u64 + n as u64),
                text,
            });
            body.events.push(n);
        }
        out[lane].push(body);
    }
    Load {
        customers,
        events,
        lanes: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_opens_with_a_text() {
        let a = generate(7, 1, 3, 30, 200, 8, 1_760_000_000_000);
        let b = generate(7, 1, 3, 30, 200, 8, 1_760_000_000_000);
        assert_eq!(a.events.len(), b.events.len());
        assert_eq!(a.body_count(), 200);
        let mut seen = vec![false; a.customers.len()];
        for e in &a.events {
            if e.kind != Kind::GroupText && !seen[e.customer] {
                assert_eq!(e.kind, Kind::Text);
                seen[e.customer] = true;
            }
        }
        for lane in &a.lanes {
            for body in lane {
                assert!((1..=5).contains(&body.events.len()));
                for &e in &body.events {
                    assert_eq!(a.customers[a.events[e].customer].account, body.account);
                }
            }
        }
        let json: Value = serde_json::from_str(&a.body_json(&a.lanes[0][0], true)).unwrap();
        assert_eq!(json["events"][0]["deliveryContext"]["isRedelivery"], true);
    }
}
