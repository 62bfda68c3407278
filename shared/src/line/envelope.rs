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
        serde_json::from_slice(body).map_err(|e| EnvelopeError(e.to_string()))
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

/// [`InboundEvent`] borrowed from the request, for writing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InboundEventRef<'a> {
    account_id: &'a str,
    destination: &'a str,
    received_at: i64,
    event: &'a RawValue,
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
pub fn split_events(
    account_id: &str,
    envelope: &WebhookEnvelope<'_>,
    received_at: i64,
) -> Vec<QueueMessage> {
    envelope
        .events
        .iter()
        .map(|raw| {
            let keys: EventKeys<'_> = serde_json::from_str(raw.get()).unwrap_or_default();
            let conversation = keys.source.as_ref().and_then(|s| {
                s.group_id
                    .as_deref()
                    .or(s.room_id.as_deref())
                    .or(s.user_id.as_deref())
            });
            let group_id = sqs_id(&format!(
                "{account_id}:{}",
                conversation.unwrap_or("account")
            ));
            let dedup_id = match keys.webhook_event_id.as_deref() {
                Some(id) if !id.is_empty() => sqs_id(id),
                _ => sha256_hex(raw.get().as_bytes()),
            };
            let body = InboundEventRef {
                account_id,
                destination: &envelope.destination,
                received_at,
                event: raw,
            };
            QueueMessage {
                group_id,
                dedup_id,
                // Serialising strings and a RawValue cannot fail.
                body: serde_json::to_string(&body).unwrap_or_default(),
            }
        })
        .collect()
}

/// SQS `MessageGroupId` / `MessageDeduplicationId`: 1–128 characters of `[!-~]`; anything else is
/// replaced by its SHA-256 (hex).
pub fn sqs_id(candidate: &str) -> String {
    let valid = !candidate.is_empty()
        && candidate.len() <= 128
        && candidate.bytes().all(|b| (b'!'..=b'~').contains(&b));
    if valid {
        candidate.to_owned()
    } else {
        sha256_hex(candidate.as_bytes())
    }
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    proptest::proptest! {
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
