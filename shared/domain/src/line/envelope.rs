//! The webhook envelope: `{"destination": "...", "events": [...]}`.
//!
//! This is the webhook function's hot path. It parses only what queueing needs: each event is kept
//! as the exact JSON LINE sent (a borrowed [`RawValue`], never re-serialised), and only
//! `webhookEventId` and the source ids are read from it. The typed model lives in
//! [`crate::line::events`] and is used downstream.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::ops::ControlFlow;

/// Why a (signed) body is not a webhook.
#[derive(Debug, thiserror::Error)]
#[error("body is not a LINE webhook object: {0}")]
pub struct EnvelopeError(String);

/// A webhook request body, borrowed from the raw bytes.
#[derive(Debug, Deserialize)]
pub struct WebhookEnvelope<'a> {
    #[serde(borrow)]
    pub destination: Cow<'a, str>,
    #[serde(borrow)]
    pub events: Vec<&'a RawValue>,
}

impl<'a> WebhookEnvelope<'a> {
    /// Parses a body whose signature has been verified.
    pub fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        // One UTF-8 check of the whole body (vectorised) instead of one per borrowed value.
        let text = std::str::from_utf8(body)
            .map_err(|e| EnvelopeError(format!("body is not UTF-8: {e}")))?;
        // An object only: serde would also read a JSON array positionally (`["U…", [...]]`).
        if !text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .starts_with('{')
        {
            return Err(EnvelopeError("body is not a JSON object".to_owned()));
        }
        serde_json::from_str(text).map_err(|e| EnvelopeError(e.to_string()))
    }
}

/// What the webhook puts on the inbound queue for one event: the contract between the webhook
/// (producer) and the router (consumer).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundEvent {
    pub account_id: String,
    pub destination: String,
    /// Milliseconds since the Unix epoch when the webhook accepted the request.
    pub received_at: i64,
    /// The event JSON exactly as LINE sent it.
    pub event: Box<RawValue>,
}

/// One inbound-queue message: FIFO group, deduplication id and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub group_id: String,
    pub dedup_id: String,
    pub body: String,
}

#[derive(Deserialize, Default)]
struct EventKeys<'a> {
    #[serde(borrow, rename = "webhookEventId")]
    webhook_event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    source: Option<SourceKeys<'a>>,
}

#[derive(Deserialize, Default)]
struct SourceKeys<'a> {
    #[serde(borrow, rename = "userId")]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "groupId")]
    group_id: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "roomId")]
    room_id: Option<Cow<'a, str>>,
}

/// Turns a verified envelope into one queue message per event, in order.
///
/// - `group_id` = `{account}:{groupId | roomId | userId}` (`{account}:account` for events without a
///   source), so each conversation keeps its order and conversations proceed in parallel;
/// - `dedup_id` = `webhookEventId` (a SHA-256 of the event JSON when LINE sent none);
/// - ids that SQS would refuse (too long, characters outside its set) are replaced by their
///   SHA-256, so a strange id still queues.
///
/// The ids are read with a shallow scan of each event's top-level keys ([`scan_keys`]); the
/// envelope parse has already validated the JSON, so nothing is parsed twice. Anything the scan
/// does not handle (escaped keys or ids, duplicate keys) falls back to serde.
pub fn split_events(
    account_id: &str,
    envelope: &WebhookEnvelope<'_>,
    received_at: i64,
) -> Vec<QueueMessage> {
    // The body's prefix is the same for every event of the request.
    let mut prefix = String::with_capacity(96 + account_id.len() + envelope.destination.len());
    prefix.push_str("{\"accountId\":");
    push_json_string(&mut prefix, account_id);
    prefix.push_str(",\"destination\":");
    push_json_string(&mut prefix, &envelope.destination);
    prefix.push_str(",\"receivedAt\":");
    prefix.push_str(&received_at.to_string());
    prefix.push_str(",\"event\":");
    envelope
        .events
        .iter()
        .map(|raw| {
            let raw = raw.get();
            let (event_id, conversation) = event_ids(raw);
            let conversation = conversation.as_deref().unwrap_or("account");
            let mut group_id = String::with_capacity(account_id.len() + 1 + conversation.len());
            group_id.push_str(account_id);
            group_id.push(':');
            group_id.push_str(conversation);
            let dedup_id = match event_id.as_deref() {
                Some(id) if !id.is_empty() => sqs_id(id),
                _ => sha256_hex(raw.as_bytes()),
            };
            let mut body = String::with_capacity(prefix.len() + raw.len() + 1);
            body.push_str(&prefix);
            body.push_str(raw);
            body.push('}');
            QueueMessage {
                group_id: sqs_id_owned(group_id),
                dedup_id,
                body,
            }
        })
        .collect()
}

/// What the webhook queues of a verified body: the events it accepts as queue messages, and how
/// many it refused (see [`refusal`]).
#[derive(Debug, Default)]
pub struct AcceptedEvents {
    pub messages: Vec<QueueMessage>,
    pub stale: u64,
    pub duplicate_keys: u64,
}

/// The webhook's hot path after the signature and the envelope parse: refuses what [`refusal`]
/// refuses (events whose `timestamp` is more than `window_ms` before `received_at`, or with a key
/// twice) and splits the rest with [`split_events`]. The benchmarks time exactly this.
pub fn accept_events(
    account_id: &str,
    envelope: &mut WebhookEnvelope<'_>,
    received_at: i64,
    window_ms: i64,
) -> AcceptedEvents {
    let oldest = received_at.saturating_sub(window_ms);
    let (mut stale, mut duplicate_keys) = (0u64, 0u64);
    envelope
        .events
        .retain(|raw| match refusal(raw.get(), oldest) {
            None => true,
            Some(Refusal::Stale) => {
                stale += 1;
                false
            }
            Some(Refusal::DuplicateKey) => {
                duplicate_keys += 1;
                false
            }
        });
    AcceptedEvents {
        messages: split_events(account_id, envelope, received_at),
        stale,
        duplicate_keys,
    }
}

/// Why the webhook does not queue an event it was sent (counted as received, not queued, and
/// logged): see [`refusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A key twice in the event object or in its `source`: the webhook's scanner and the router's
    /// model could read different values (which id deduplicates, which user is answered).
    DuplicateKey,
    /// `timestamp` older than the deduplication window: a replay the event store may have
    /// forgotten, or an old event that would sort first in a transcript.
    Stale,
}

/// What the webhook refuses of one raw event (valid JSON, as the envelope parse guarantees):
/// a duplicate key (escaped spellings of a key count as that key) in the event or its `source`,
/// or a `timestamp` (epoch ms) before `oldest`.
pub fn refusal(raw: &str, oldest: i64) -> Option<Refusal> {
    // Fast path. A key can spell a letter escaped only as `\uXXXX`; without one in the event, a
    // key equal to "webhookEventId", "source" or "timestamp" is those exact bytes, quotes
    // included. Such bytes inside a string value can only add occurrences (a string's own quotes
    // are escaped), never hide one: at most one occurrence of each means no duplicate of the keys
    // the webhook reads, without walking the message (SIMD substring search).
    let b = raw.as_bytes();
    let [escape, event_id, source_key, timestamp_key] = finders();
    let at_most_once = |f: &memchr::memmem::Finder<'static>| f.find_iter(b).nth(1).is_none();
    if escape.find(b).is_none()
        && at_most_once(event_id)
        && at_most_once(source_key)
        && at_most_once(timestamp_key)
    {
        if let Some([source, timestamp]) = scan_keys(raw, ["source", "timestamp"]) {
            return refusal_of(false, source, timestamp, oldest);
        }
    }
    refusal_by_walking(raw, oldest)
}

/// The fast path's substring searchers (SIMD), built once: building one per event costs more
/// than the search. (One multi-pattern search over the event measured slower than these four.)
fn finders() -> &'static [memchr::memmem::Finder<'static>; 4] {
    static FINDERS: std::sync::OnceLock<[memchr::memmem::Finder<'static>; 4]> =
        std::sync::OnceLock::new();
    FINDERS.get_or_init(|| {
        [
            memchr::memmem::Finder::new(b"\\u"),
            memchr::memmem::Finder::new(b"\"webhookEventId\""),
            memchr::memmem::Finder::new(b"\"source\""),
            memchr::memmem::Finder::new(b"\"timestamp\""),
        ]
    })
}

/// [`refusal`] by walking every key of the event (the fast path's fallback, and its reference).
fn refusal_by_walking(raw: &str, oldest: i64) -> Option<Refusal> {
    let mut timestamp = None;
    let mut source = None;
    let duplicate = !each_key_once(raw, |key, value| match key {
        "timestamp" => timestamp = Some(value),
        "source" => source = Some(value),
        _ => {}
    })?;
    refusal_of(duplicate, source, timestamp, oldest)
}

/// [`refusal`] once the event's raw `source` and `timestamp` are read (`duplicate`: a key of the
/// event twice).
#[inline]
fn refusal_of(
    duplicate: bool,
    source: Option<&str>,
    timestamp: Option<&str>,
    oldest: i64,
) -> Option<Refusal> {
    if duplicate || source.is_some_and(|s| each_key_once(s, |_, _| {}) == Some(false)) {
        return Some(Refusal::DuplicateKey);
    }
    match timestamp.and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(at) if at < oldest => Some(Refusal::Stale),
        _ => None,
    }
}

/// Calls `each` with every (key, raw value) of the JSON object `json` and tells whether every key
/// is there once (`None`: not an object). Keys are compared as written; an escaped key is
/// decoded first (rare: only then does this allocate), so `"t\u0069mestamp"` is `timestamp`.
fn each_key_once<'a>(json: &'a str, mut each: impl FnMut(&str, &'a str)) -> Option<bool> {
    // LINE's events have about ten keys: compared pairwise without allocating.
    let mut seen: [&str; 32] = [""; 32];
    let mut count = 0usize;
    let mut decoded: Vec<String> = Vec::new();
    let mut unique = true;
    members(json, |quoted_key, value| {
        let raw_key = &quoted_key[1..quoted_key.len() - 1];
        if raw_key.contains('\\') {
            let key = serde_json::from_str::<String>(quoted_key).ok()?;
            unique &= !decoded.contains(&key) && !seen[..count].contains(&key.as_str());
            each(&key, value);
            decoded.push(key);
        } else {
            unique &= !seen[..count].contains(&raw_key) && !decoded.iter().any(|k| k == raw_key);
            each(raw_key, value);
            if count < seen.len() {
                seen[count] = raw_key;
                count += 1;
            } else {
                decoded.push(raw_key.to_owned());
            }
        }
        Some(ControlFlow::Continue(()))
    })?;
    Some(unique)
}

/// `webhookEventId` and the conversation key (groupId, else roomId, else userId) of an event.
fn event_ids(raw: &str) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    if let Some([id, source]) = scan_keys(raw, ["webhookEventId", "source"]) {
        let id = match id {
            None => Some(None),
            Some(v) => plain_string(v).map(Some),
        };
        let conversation = match source {
            None => Some(None),
            Some(source) => scan_keys(source, ["groupId", "roomId", "userId"]).and_then(|keys| {
                keys.iter()
                    .flatten()
                    .map(|v| plain_string(v))
                    .collect::<Option<Vec<_>>>()
                    .map(|found| found.into_iter().next())
            }),
        };
        if let (Some(id), Some(conversation)) = (id, conversation) {
            return (id.map(Cow::Borrowed), conversation.map(Cow::Borrowed));
        }
    }
    // Objects only: serde would also read a JSON array positionally as `EventKeys`
    // (`["A", …]` → webhookEventId "A"), an id the router's model never sees.
    let keys: EventKeys<'_> = if raw.starts_with('{') {
        serde_json::from_str(raw).unwrap_or_default()
    } else {
        EventKeys::default()
    };
    let conversation = keys
        .source
        .and_then(|s| s.group_id.or(s.room_id).or(s.user_id));
    (keys.webhook_event_id, conversation)
}

/// The raw values of `wanted` top-level keys of a JSON object (valid JSON, as the envelope parse
/// guarantees), in one shallow pass that skips every other value unparsed and stops once every
/// wanted key is found. `None` when the input is not an object or has what this scanner does not
/// decode: an escaped key, or a wanted key twice (before all were found).
fn scan_keys<'a, const N: usize>(json: &'a str, wanted: [&str; N]) -> Option<[Option<&'a str>; N]> {
    let mut found: [Option<&'a str>; N] = [None; N];
    members(json, |quoted_key, value| {
        let key = &quoted_key[1..quoted_key.len() - 1];
        if key.contains('\\') {
            return None;
        }
        if let Some(slot) = wanted.iter().position(|w| *w == key) {
            if found[slot].is_some() {
                return None;
            }
            found[slot] = Some(value);
            if found.iter().all(Option::is_some) {
                return Some(ControlFlow::Break(()));
            }
        }
        Some(ControlFlow::Continue(()))
    })?;
    Some(found)
}

/// Calls `each` with the key (quotes included, escapes not decoded) and the raw value of every
/// member of the JSON object `json`, in order, until it breaks: the one walk of an object's
/// members that [`each_key_once`] and [`scan_keys`] share. `None` when `json` is not an object
/// (or not one this walk reads), or when `each` answers `None`.
#[inline(always)]
fn members<'a>(
    json: &'a str,
    mut each: impl FnMut(&'a str, &'a str) -> Option<ControlFlow<()>>,
) -> Option<()> {
    let b = json.as_bytes();
    let mut i = skip_ws(b, 0);
    if *b.get(i)? != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return Some(());
    }
    loop {
        let key_end = string_end(b, i)?;
        let key = json.get(i..key_end)?;
        i = skip_ws(b, key_end);
        if *b.get(i)? != b':' {
            return None;
        }
        let start = skip_ws(b, i + 1);
        let end = value_end(b, start)?;
        if each(key, json.get(start..end)?)?.is_break() {
            return Some(());
        }
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(()),
            _ => return None,
        }
    }
}

/// The contents of a JSON string without escapes (`"abc"` → `abc`); `None` for anything else.
fn plain_string(value: &str) -> Option<&str> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\') && !inner.contains('"')).then_some(inner)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// Index just past the string starting at `i` (which must be `"`).
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    if *b.get(i)? != b'"' {
        return None;
    }
    let mut j = i + 1;
    // The bulk of an event is string content: jump to the next quote or backslash (SIMD).
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        match b[j] {
            b'"' => return Some(j + 1),
            _ => j += 2,
        }
    }
}

/// Index just past the JSON value starting at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            ) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Appends `value` as a JSON string.
fn push_json_string(out: &mut String, value: &str) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// SQS `MessageGroupId` / `MessageDeduplicationId`: 1–128 characters of `[!-~]`; anything else is
/// replaced by its SHA-256 (hex).
pub fn sqs_id(candidate: &str) -> String {
    if is_sqs_id(candidate) {
        candidate.to_owned()
    } else {
        sha256_hex(candidate.as_bytes())
    }
}

/// [`sqs_id`] without copying a valid id.
fn sqs_id_owned(candidate: String) -> String {
    if is_sqs_id(&candidate) {
        candidate
    } else {
        sha256_hex(candidate.as_bytes())
    }
}

fn is_sqs_id(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= 128
        && candidate.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path (substring counts) and the walk agree, in-string look-alikes included.
    #[test]
    fn refusal_fast_path_agrees_with_the_walk() {
        let events = [
            r#"{"type":"follow","timestamp":5,"source":{"type":"user","userId":"U1"},"webhookEventId":"A"}"#,
            r#"{"timestamp":5,"webhookEventId":"A","message":{"type":"text","text":"say \"timestamp\" and \"source\""}}"#,
            r#"{"timestamp":5,"webhookEventId":"A","message":{"type":"text","text":"ends with \"timestamp"}}"#,
            r#"{"timestamp":5,"message":{"text":"x"},"timestamp":9}"#,
            r#"{"webhookEventId":"A","message":{"text":"x"},"webhookEventId":"B"}"#,
            r#"{"source":{"userId":"U1"},"message":{"text":"x"},"source":{"userId":"U2"}}"#,
            r#"{"source":{"userId":"U1","userId":"U2"},"timestamp":5}"#,
            r#"{"source":{"userId":"U1"},"t\u0069mestamp":1,"timestamp":5}"#,
            r#"{"timestamp":1,"message":{"mention":{"mentionees":[{"userId":"U2"}]}},"source":{"userId":"U1"}}"#,
        ];
        for e in events {
            for oldest in [0, 3, 6] {
                assert_eq!(
                    refusal(e, oldest),
                    refusal_by_walking(e, oldest),
                    "{e} at {oldest}"
                );
            }
        }
    }

    #[test]
    fn refusal_reads_every_key_once_and_the_timestamp_against_the_window() {
        let at = |ts: &str| {
            format!(
                r#"{{"type":"follow","timestamp":{ts},"source":{{"type":"user","userId":"U1"}}}}"#
            )
        };
        assert_eq!(
            refusal(&at("1000"), 1000),
            None,
            "exactly at the edge is inside"
        );
        assert_eq!(refusal(&at("999"), 1000), Some(Refusal::Stale));
        assert_eq!(
            refusal(r#"{"type":"follow"}"#, 1000),
            None,
            "no timestamp: the router's to judge"
        );
        assert_eq!(
            refusal(r#"{"timestamp":5000,"t\u0069mestamp":1}"#, 1000),
            Some(Refusal::DuplicateKey),
            "an escaped spelling is the same key"
        );
        assert_eq!(
            refusal(
                r#"{"timestamp":5000,"source":{"userId":"U1","userId":"U2"}}"#,
                1000
            ),
            Some(Refusal::DuplicateKey)
        );
        assert_eq!(
            refusal(r#"{"timestamp":5000,"message":{"id":"1","id":"2"}}"#, 1000),
            None,
            "deeper objects are the router's model's (serde takes one value there)"
        );
    }

    const BODY: &str = r#"{"destination":"Ubot","events":[
        {"type":"message","webhookEventId":"01H0000000000000000000000A","source":{"type":"user","userId":"Uaaa"},"message":{"type":"text","id":"1","text":"a\nb \"q\" \\ 😀"},"timestamp":1,"mode":"active","deliveryContext":{"isRedelivery":false},"replyToken":"r"},
        {"type":"join","webhookEventId":"01H0000000000000000000000B","source":{"type":"group","groupId":"Cggg","userId":"Uaaa"},"timestamp":2},
        {"type":"join","webhookEventId":"01H0000000000000000000000C","source":{"type":"room","roomId":"Rrrr"},"timestamp":3},
        {"type":"futureEvent","webhookEventId":"01H0000000000000000000000D","newField":[1,2]},
        {"type":"nothing"}
    ]}"#;

    #[test]
    fn one_message_per_event_in_order_with_group_and_dedup_ids() {
        let env = WebhookEnvelope::parse(BODY.as_bytes()).unwrap();
        assert_eq!(env.destination, "Ubot");
        let msgs = split_events("acc1", &env, 42);
        assert_eq!(msgs.len(), 5);
        assert_eq!(msgs[0].group_id, "acc1:Uaaa");
        assert_eq!(msgs[0].dedup_id, "01H0000000000000000000000A");
        assert_eq!(msgs[1].group_id, "acc1:Cggg");
        assert_eq!(msgs[2].group_id, "acc1:Rrrr");
        assert_eq!(msgs[3].group_id, "acc1:account");
        assert_eq!(msgs[3].dedup_id, "01H0000000000000000000000D");
        // No id: a stable hash of the event bytes.
        assert_eq!(msgs[4].dedup_id.len(), 64);
        assert_eq!(msgs[4].dedup_id, split_events("acc1", &env, 43)[4].dedup_id);
    }

    #[test]
    fn the_event_is_carried_byte_for_byte() {
        let env = WebhookEnvelope::parse(BODY.as_bytes()).unwrap();
        let msgs = split_events("acc1", &env, 42);
        for (msg, raw) in msgs.iter().zip(&env.events) {
            let parsed: InboundEvent = serde_json::from_str(&msg.body).unwrap();
            assert_eq!(parsed.account_id, "acc1");
            assert_eq!(parsed.destination, "Ubot");
            assert_eq!(parsed.received_at, 42);
            assert_eq!(parsed.event.get(), raw.get());
        }
        assert!(msgs[0].body.contains(r#""text":"a\nb \"q\" \\ 😀""#));
    }

    #[test]
    fn verify_event_has_no_messages() {
        let env = WebhookEnvelope::parse(
            br#"{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}"#,
        )
        .unwrap();
        assert!(split_events("a", &env, 0).is_empty());
    }

    #[test]
    fn non_webhook_bodies_are_errors() {
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"{}",
            b"{\"events\":[]}",
            b"{\"destination\":\"U\"}",
            b"{\"destination\":\"U\",\"events\":{}}",
            b"\xff\xfe",
            b"{\"destination\":\"U\",\"events\":[]",
        ] {
            assert!(WebhookEnvelope::parse(body).is_err(), "{body:?}");
        }
    }

    #[test]
    fn ids_sqs_would_refuse_are_hashed() {
        assert_eq!(sqs_id("acc:U1"), "acc:U1");
        assert_eq!(sqs_id(&"x".repeat(129)).len(), 64);
        assert_eq!(sqs_id("has space").len(), 64);
        assert_eq!(sqs_id("ユーザー").len(), 64);
    }

    /// The serde reading the scan replaces.
    fn serde_ids(raw: &str) -> (Option<String>, Option<String>) {
        let keys: EventKeys<'_> = serde_json::from_str(raw).unwrap_or_default();
        let conversation = keys
            .source
            .and_then(|s| s.group_id.or(s.room_id).or(s.user_id));
        (
            keys.webhook_event_id.map(Cow::into_owned),
            conversation.map(Cow::into_owned),
        )
    }

    fn ids(raw: &str) -> (Option<String>, Option<String>) {
        let (id, conversation) = event_ids(raw);
        (id.map(Cow::into_owned), conversation.map(Cow::into_owned))
    }

    #[test]
    fn the_shallow_scan_reads_what_serde_reads() {
        for raw in [
            r#"{"type":"message","webhookEventId":"01A","source":{"type":"user","userId":"U1"}}"#,
            r#"{ "source" : { "groupId" : "C1", "userId" : "U1" } , "webhookEventId" : "01B" }"#,
            r#"{"source":{"roomId":"R1","userId":"U1"},"message":{"text":"a \"quoted\" } ] { [ text"}}"#,
            r#"{"webhookEventId":"01\u0041","source":{"userId":"U\u0031"}}"#,
            r#"{"webhookEventId":"01C","webhookEventId":"01D"}"#,
            r#"{"webhookEventId":7,"source":"user"}"#,
            r#"{"x":[1,{"y":"}"}],"webhookEventId":"01E","n":-1.5e3,"t":true,"z":null}"#,
            r#"{}"#,
            r#"[]"#,
            r#""text""#,
        ] {
            assert_eq!(ids(raw), serde_ids(raw), "{raw}");
        }
    }

    /// Found by the `webhook_body` fuzz target: a body that is a JSON array,
    /// `["destination", [events]]`, was read positionally by serde as an envelope.
    #[test]
    fn an_array_body_is_not_a_webhook() {
        for body in [
            &br#"["pararams",[]]"#[..],
            b"\t\t[\t\"U\"\t,[\t\t]\t]\t",
            br#"["U",[{"type":"message","webhookEventId":"01A"}]]"#,
        ] {
            assert!(WebhookEnvelope::parse(body).is_err(), "{body:?}");
        }
        let env = WebhookEnvelope::parse(b" \r\n\t{\"destination\":\"U\",\"events\":[]}").unwrap();
        assert_eq!(env.destination, "U");
    }

    /// Found by the `webhook_body` fuzz target: an event that is a JSON array was read
    /// positionally by serde, so `["A", …]` was queued with dedup id "A" while the router (which
    /// reads ids from objects only) keys it by the hash of its bytes.
    #[test]
    fn an_array_event_has_no_ids() {
        for raw in [r#"["A",{"userId":"U1"}]"#, r#"["A",null]"#] {
            assert_eq!(ids(raw), (None, None), "{raw}");
        }
        let body = br#"{"destination":"U","events":[["A",{"userId":"U1"}]]}"#;
        let env = WebhookEnvelope::parse(body).unwrap();
        let msgs = split_events("acc1", &env, 0);
        assert_eq!(msgs[0].dedup_id, sha256_hex(br#"["A",{"userId":"U1"}]"#));
        assert_eq!(msgs[0].group_id, "acc1:account");
    }

    proptest::proptest! {
        #[test]
        fn the_shallow_scan_agrees_with_serde_on_arbitrary_events(
            id in proptest::option::of("[A-Za-z0-9\\\\\"é😀 ]{0,12}"),
            user in proptest::option::of("[A-Za-z0-9\\\\\"]{0,8}"),
            group in proptest::option::of("[A-Za-z0-9]{0,8}"),
            noise in proptest::collection::vec(("[a-z\"\\\\]{1,6}", proptest::arbitrary::any::<i32>(), "[ -~]{0,10}"), 0..5),
            ws in "[ \n]{0,2}",
        ) {
            let mut event = serde_json::Map::new();
            for (k, n, t) in &noise {
                event.insert(k.clone(), serde_json::json!([n, t, {"k": t}]));
            }
            if let Some(id) = &id { event.insert("webhookEventId".into(), serde_json::json!(id)); }
            let mut source = serde_json::Map::new();
            if let Some(u) = &user { source.insert("userId".into(), serde_json::json!(u)); }
            if let Some(g) = &group { source.insert("groupId".into(), serde_json::json!(g)); }
            if user.is_some() || group.is_some() { event.insert("source".into(), serde_json::Value::Object(source)); }
            let compact = serde_json::to_string(&event).unwrap();
            let spaced = compact.replace(',', &format!("{ws},{ws}")).replace(':', &format!("{ws}:{ws}"));
            for raw in [compact, spaced] {
                if serde_json::from_str::<serde_json::Value>(&raw).is_ok() {
                    proptest::prop_assert_eq!(ids(&raw), serde_ids(&raw), "{}", raw);
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Ok(env) = WebhookEnvelope::parse(&body) {
                let _ = split_events("a", &env, 0);
            }
        }

        #[test]
        fn arbitrary_event_values_never_panic(json in "[\\[\\]{}\",:0-9a-zA-Z\\\\ ]{0,64}") {
            let body = format!(r#"{{"destination":"U","events":[{json}]}}"#);
            if let Ok(env) = WebhookEnvelope::parse(body.as_bytes()) {
                for m in split_events("a", &env, 0) {
                    proptest::prop_assert!(!m.group_id.is_empty() && m.group_id.len() <= 128);
                    proptest::prop_assert!(!m.dedup_id.is_empty() && m.dedup_id.len() <= 128);
                }
            }
        }
    }
}
