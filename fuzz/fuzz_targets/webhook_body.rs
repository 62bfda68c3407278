//! Fuzz target `webhook_body`: the webhook's hot path on an arbitrary body and signature header,
//! as `omniline_app::ingest` runs it: verify `X-Line-Signature`, parse the envelope, split it into one
//! inbound-queue message per event.
//!
//! Input: `[selector, body...]`. The selector byte picks the header (bits 0–2), the account id
//! (bits 3–4) and `receivedAt` (bits 5–7); the rest is the raw request body.
//!
//! Asserted, beyond "no panic":
//! - signature: verification succeeds exactly when the header (trimmed) is the body's signature;
//!   a missing or blank header is `Missing`; the pre-keyed [`SignatureKey`] agrees with
//!   [`verify_signature`];
//! - envelope: a body that parses is a JSON object whose `destination` and `events` are what the envelope
//!   holds, event for event, byte for byte;
//! - split: one queue message per event, in order; every body is JSON that the router's first
//!   step (`InboundEvent`) reads back with the account, destination, `receivedAt` and the event
//!   bytes unchanged; group and deduplication ids are ids SQS accepts, equal to what a plain serde
//!   reading of the event gives (the hand-written shallow scan must agree with serde); a dedup id
//!   taken from `webhookEventId` is the event id the router will see. (These two id checks skip
//!   events the router cannot read at all, and events with duplicate `webhookEventId`/`source`/
//!   source-id keys, where the three readings differ by design; see README.md.)
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use omniline_domain::line::envelope::{
    sha256_hex, split_events, sqs_id, InboundEvent, QueueMessage, WebhookEnvelope,
};
use omniline_domain::line::events::Event;
use omniline_domain::line::signature::{sign, verify_signature, SignatureError, SignatureKey};

/// The channel secret of `shared/bench-peers/gen_corpus.py`, so its signed bodies are seeds.
const SECRET: &[u8] = b"8c9b1f0e2d3a4b5c6d7e8f9a0b1c2d3e";

const RECEIVED_AT: [i64; 8] = [
    1_764_028_801_000,
    0,
    -1,
    1,
    i64::MIN,
    i64::MAX,
    999,
    -86_400_000,
];

fn key() -> &'static SignatureKey {
    static KEY: OnceLock<SignatureKey> = OnceLock::new();
    KEY.get_or_init(|| SignatureKey::new(SECRET))
}

fn account(selector: u8) -> String {
    match (selector >> 3) & 3 {
        0 => "acc_fuzz".to_owned(),
        // Characters SQS refuses in a group id and JSON must escape in the body.
        1 => "ア カ\"ウ\\ント\n".to_owned(),
        2 => String::new(),
        // Longer than an SQS id may be.
        _ => "a".repeat(130),
    }
}

/// The `X-Line-Signature` header the selector asks for.
fn header(selector: u8, body: &[u8], good: &str) -> Option<String> {
    match selector & 7 {
        0 => Some(good.to_owned()),
        1 => Some(format!(" \t{good}  ")),
        2 => Some(good.to_owned()),
        3 => None,
        4 => Some(" \t ".repeat(body.len() % 3)),
        5 => {
            // One character changed (the position from the body length).
            let mut chars: Vec<char> = good.chars().collect();
            let i = body.len() % chars.len();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            Some(chars.into_iter().collect())
        }
        6 => Some(String::from_utf8_lossy(&body[..body.len().min(64)]).into_owned()),
        // The correct signature of another body.
        _ => Some(sign(SECRET, &body[..body.len().saturating_sub(1)])),
    }
}

/// What a plain serde reading of an event gives for the ids (the semantics `split_events`
/// documents; its shallow scan is an optimisation of this).
#[derive(Deserialize, Default)]
struct RefKeys {
    #[serde(rename = "webhookEventId")]
    webhook_event_id: Option<String>,
    source: Option<RefSource>,
}

#[derive(Deserialize, Default)]
struct RefSource {
    #[serde(rename = "userId")]
    user_id: Option<String>,
    #[serde(rename = "groupId")]
    group_id: Option<String>,
    #[serde(rename = "roomId")]
    room_id: Option<String>,
}

/// Member names of a JSON object, duplicates kept (none for any other JSON value), and those of
/// its `source` member. `split_events` reads the first of duplicate keys (its scan stops once it
/// has every key it wants), serde refuses them, the router's `Value` keeps the last: the id checks
/// below hold for events without duplicate keys only.
#[derive(Default)]
struct MemberNames {
    names: Vec<String>,
    source: Vec<String>,
}

impl MemberNames {
    fn of(raw: &str) -> Self {
        let mut de = serde_json::Deserializer::from_str(raw);
        NamesSeed { nested: false }
            .deserialize(&mut de)
            .unwrap_or_default()
    }

    fn has_duplicate_ids(&self) -> bool {
        let twice = |names: &[String], key: &str| names.iter().filter(|n| *n == key).count() > 1;
        ["webhookEventId", "source"]
            .iter()
            .any(|k| twice(&self.names, k))
            || ["groupId", "roomId", "userId"]
                .iter()
                .any(|k| twice(&self.source, k))
    }
}

struct NamesSeed {
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for NamesSeed {
    type Value = MemberNames;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MemberNames, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NamesSeed {
    type Value = MemberNames;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MemberNames, A::Error> {
        let mut out = MemberNames::default();
        while let Some(key) = map.next_key::<String>()? {
            if !self.nested && key == "source" {
                let source = map.next_value_seed(NamesSeed { nested: true })?;
                out.source.extend(source.names);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            out.names.push(key);
        }
        Ok(out)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MemberNames, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MemberNames::default())
    }
    fn visit_bool<E>(self, _: bool) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
    fn visit_unit<E>(self) -> Result<MemberNames, E> {
        Ok(MemberNames::default())
    }
}

fn is_sqs_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn check_message(
    msg: &QueueMessage,
    raw: &str,
    account: &str,
    destination: &str,
    received_at: i64,
) {
    // The router's first step reads the body back unchanged.
    let inbound: InboundEvent = serde_json::from_str(&msg.body)
        .unwrap_or_else(|e| panic!("queue body is not an InboundEvent ({e}): {:?}", msg.body));
    assert_eq!(inbound.account_id, account);
    assert_eq!(inbound.destination, destination);
    assert_eq!(inbound.received_at, received_at);
    assert_eq!(
        inbound.event.get(),
        raw,
        "event bytes changed on the way to the queue"
    );

    // The whole body is JSON whenever the event is (numbers out of f64 range are valid syntax the
    // envelope keeps, but no `Value` holds them).
    let event_value = serde_json::from_str::<Value>(raw).ok();
    let body_value = serde_json::from_str::<Value>(&msg.body).ok();
    assert_eq!(
        body_value.as_ref().map(|b| &b["event"]),
        event_value.as_ref(),
        "queue body and event disagree as JSON"
    );

    // SQS ids.
    assert!(
        is_sqs_id(&msg.group_id),
        "group id SQS refuses: {:?}",
        msg.group_id
    );
    assert!(
        is_sqs_id(&msg.dedup_id),
        "dedup id SQS refuses: {:?}",
        msg.dedup_id
    );

    // The id checks need an event the router can read: one `serde_json::Value` refuses (a lone
    // surrogate escape, a number beyond f64: valid to the envelope's syntactic check) is
    // `RouteError::Malformed` there whatever ids it was queued with.
    let Some(value) = event_value else {
        return;
    };
    if MemberNames::of(raw).has_duplicate_ids() {
        return;
    }

    // The shallow scan agrees with serde.
    // (Objects only: serde alone would also read an array positionally as the struct.)
    let keys: RefKeys = if raw.starts_with('{') {
        serde_json::from_str(raw).unwrap_or_default()
    } else {
        RefKeys::default()
    };
    let conversation = keys
        .source
        .and_then(|s| s.group_id.or(s.room_id).or(s.user_id));
    let expected_group = sqs_id(&format!(
        "{account}:{}",
        conversation.as_deref().unwrap_or("account")
    ));
    let expected_dedup = match keys.webhook_event_id.as_deref() {
        Some(id) if !id.is_empty() => sqs_id(id),
        _ => sha256_hex(raw.as_bytes()),
    };
    assert_eq!(
        msg.group_id, expected_group,
        "group id differs from serde's reading of {raw}"
    );
    assert_eq!(
        msg.dedup_id, expected_dedup,
        "dedup id differs from serde's reading of {raw}"
    );

    // The router (router::process::Inbound::parse) keys the event by `webhookEventId` as its
    // typed model reads it, else by the hash of the event bytes. A dedup id taken from the event
    // must be that same id: two events SQS would deduplicate are one event for the router too.
    let event = Event::from_value(value);
    let router_id = match event.webhook_event_id() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => sha256_hex(raw.as_bytes()),
    };
    if msg.dedup_id != sha256_hex(raw.as_bytes()) {
        assert_eq!(
            msg.dedup_id,
            sqs_id(&router_id),
            "the webhook deduplicates {raw} by an id the router does not see"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };

    // Signature.
    let good = sign(SECRET, body);
    let header = header(selector, body, &good);
    let header = header.as_deref();
    let direct = verify_signature(SECRET, body, header);
    let keyed = key().verify(body, header);
    assert_eq!(direct, keyed, "SignatureKey and verify_signature disagree");
    let correct = header.map(str::trim) == Some(good.as_str());
    assert_eq!(
        direct.is_ok(),
        correct,
        "header {header:?}, expected {good:?}: {direct:?}"
    );
    if header.is_none_or(|h| h.trim().is_empty()) {
        assert_eq!(direct, Err(SignatureError::Missing));
    }
    if direct.is_err() {
        return; // 401: the body is never parsed.
    }

    // Envelope.
    let Ok(envelope) = WebhookEnvelope::parse(body) else {
        return; // 400
    };
    let text = std::str::from_utf8(body).expect("a parsed envelope is UTF-8");
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        assert!(value.is_object(), "a webhook body is an object");
        assert_eq!(value["destination"].as_str(), Some(&*envelope.destination));
        let events = value["events"].as_array().expect("events is an array");
        assert_eq!(events.len(), envelope.events.len());
        for (v, raw) in events.iter().zip(&envelope.events) {
            assert_eq!(
                serde_json::from_str::<Value>(raw.get()).ok().as_ref(),
                Some(v)
            );
        }
    }

    // Split.
    let account = account(selector);
    let received_at = RECEIVED_AT[usize::from(selector >> 5)];
    let messages = split_events(&account, &envelope, received_at);
    assert_eq!(
        messages.len(),
        envelope.events.len(),
        "one message per event"
    );
    for (msg, raw) in messages.iter().zip(&envelope.events) {
        check_message(msg, raw.get(), &account, &envelope.destination, received_at);
    }
});
