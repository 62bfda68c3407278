//! Fuzz target `event_model`: arbitrary bytes as one LINE event, through the router's path
//! (`router::process::Inbound::parse`): the webhook's queue body → `InboundEvent` → JSON value →
//! the typed model `omniline_domain::line::events::Event::from_value`, then the accessors the router uses.
//!
//! Asserted, beyond "no panic":
//! - any event the webhook can queue (one JSON value) makes a body the router's `InboundEvent`
//!   reads back byte for byte;
//! - `Event::from_value` and `Event`'s `Deserialize` give the same event;
//! - the accessors agree with the raw JSON (`type`, `webhookEventId`, `timestamp`,
//!   `deliveryContext.isRedelivery`, `replyToken`, the source's ids and `type`, the message's
//!   `type` and `id`, the postback's `data`);
//! - serialising the event gives the JSON it was read from (members whose value is `null` aside:
//!   an absent optional field is not written back), and reading that again gives the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use omniline_domain::conversation::parse_survey_postback;
use omniline_domain::line::envelope::{sha256_hex, InboundEvent};
use omniline_domain::line::events::{ContentProviderType, Event, LinkResult, MessageContent, Source};

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str()
}

/// The value without object members whose value is `null`, at every depth.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn check_source(source: &Source, raw: &Value) {
    let raw_source = raw
        .get("source")
        .expect("a source the raw event does not have");
    assert_eq!(
        source.source_type(),
        str_at(raw_source, &["type"]).unwrap_or("")
    );
    assert_eq!(source.user_id(), str_at(raw_source, &["userId"]));
    if let Some(group) = source.group_id() {
        assert_eq!(Some(group), str_at(raw_source, &["groupId"]));
    }
    if let Some(room) = source.room_id() {
        assert_eq!(Some(room), str_at(raw_source, &["roomId"]));
    }
    if let Some(key) = source.conversation_key() {
        assert!(
            ["userId", "groupId", "roomId"]
                .iter()
                .any(|k| str_at(raw_source, &[k]) == Some(key)),
            "conversation key {key:?} not in the source"
        );
    }
    let _ = source.is_unknown();
}

/// The content provider kind as the wire has it, and as the router compares it.
fn check_provider(kind: &ContentProviderType, raw: &Value) {
    assert_eq!(
        Some(kind.as_str()),
        str_at(raw, &["message", "contentProvider", "type"])
    );
    assert_eq!(&ContentProviderType::from(kind.as_str()), kind);
}

fn check_accessors(event: &Event, raw: &Value) {
    assert_eq!(event.event_type(), str_at(raw, &["type"]).unwrap_or(""));
    assert_eq!(event.webhook_event_id(), str_at(raw, &["webhookEventId"]));
    assert_eq!(
        event.timestamp(),
        raw.get("timestamp").and_then(Value::as_i64)
    );
    assert_eq!(
        event.is_redelivery(),
        raw.get("deliveryContext")
            .and_then(|c| c.get("isRedelivery"))
            .and_then(Value::as_bool)
    );
    if let Some(token) = event.reply_token() {
        assert_eq!(Some(token), str_at(raw, &["replyToken"]));
    }
    let _ = event.mode().map(|m| m.as_str().len());
    let names = event.unknown_field_names();
    assert!(names.iter().all(|n| raw.get(n).is_some()));
    let _ = event.has_unknown_fields();
    assert_eq!(event.is_unknown(), event.common().is_none());
    if let Some(source) = event.source() {
        check_source(source, raw);
    }
    match event {
        Event::Message(m) => {
            let content = &m.message;
            assert_eq!(
                content.message_type(),
                str_at(raw, &["message", "type"]).unwrap_or("")
            );
            assert_eq!(content.id(), str_at(raw, &["message", "id"]));
            let _ = (
                content.quote_token(),
                content.mark_as_read_token(),
                content.is_unknown(),
            );
            match content {
                MessageContent::Image(c) => check_provider(&c.content_provider.kind, raw),
                MessageContent::Video(c) => check_provider(&c.content_provider.kind, raw),
                MessageContent::Audio(c) => check_provider(&c.content_provider.kind, raw),
                MessageContent::Text(t) => {
                    assert_eq!(Some(t.text.as_str()), str_at(raw, &["message", "text"]))
                }
                _ => {}
            }
        }
        Event::Postback(p) => {
            assert_eq!(
                Some(p.postback.data.as_str()),
                str_at(raw, &["postback", "data"])
            );
            if let Some((conversation, score)) = parse_survey_postback(&p.postback.data) {
                assert!(!conversation.is_empty());
                assert!(p.postback.data.starts_with("survey:"));
                let _ = score;
            }
        }
        Event::MemberJoined(e) => assert!(e.joined.user_ids().count() <= e.joined.members.len()),
        Event::MemberLeft(e) => assert!(e.left.user_ids().count() <= e.left.members.len()),
        Event::AccountLink(e) => {
            assert_eq!(
                Some(e.link.result.as_str()),
                str_at(raw, &["link", "result"])
            );
            let _ = e.link.result == LinkResult::Ok;
        }
        _ => {}
    }
    let _ = format!("{event:?}");
}

fuzz_target!(|data: &[u8]| {
    // Not UTF-8: never a queue body, but the typed model must still refuse it cleanly.
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = serde_json::from_slice::<Event>(data);
        return;
    };
    // One JSON value, as the webhook's envelope parse keeps each event.
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        assert!(serde_json::from_str::<Value>(text).is_err());
        return;
    };

    // The queue body the webhook builds (`split_events`), read back as the router does.
    let body = format!(
        r#"{{"accountId":"acc","destination":"U","receivedAt":1,"event":{}}}"#,
        raw.get()
    );
    let inbound: InboundEvent = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the router refuses a queue body ({e}): {body:?}"));
    assert_eq!(inbound.event.get(), raw.get());
    let Ok(value) = serde_json::from_str::<Value>(inbound.event.get()) else {
        return; // RouteError::Malformed (e.g. a number beyond f64)
    };
    let event = Event::from_value(value.clone());
    let via_serde: Event = serde_json::from_str(text).expect("Event deserialisation never fails");
    assert_eq!(via_serde, event, "Deserialize and from_value disagree");

    // The router's event id.
    let event_id = match event.webhook_event_id() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => sha256_hex(inbound.event.get().as_bytes()),
    };
    assert!(!event_id.is_empty());

    check_accessors(&event, &value);

    // Round trip.
    let back = serde_json::to_value(&event).expect("an event serialises");
    assert_eq!(
        without_nulls(back.clone()),
        without_nulls(value),
        "the round trip changed the event"
    );
    assert_eq!(
        Event::from_value(back),
        event,
        "re-reading the serialised event differs"
    );
    let _ = serde_json::to_string(&event).expect("an event serialises to a string");
});
