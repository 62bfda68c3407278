//! LINE's rules for the `messages` of a reply or a push: 1 to 5 message objects, each of a type
//! LINE knows, with the properties and limits LINE checks (lengths in UTF-16 code units, as LINE
//! counts them). A message LINE would refuse is refused here, so a stand-in hides no product bug.

use crate::error::LineError;
use serde_json::Value;

/// Message objects per reply or push.
pub const MAX_MESSAGES: usize = 5;
/// Longest text of a text message.
pub const MAX_TEXT: usize = 5000;
/// Longest media URL.
pub const MAX_URL: usize = 2000;
/// Items of a quick reply.
pub const MAX_QUICK_REPLY_ITEMS: usize = 13;
/// Longest `sender.name`.
pub const MAX_SENDER_NAME: usize = 20;

/// Which media URLs a stand-in takes. LINE fetches media itself and wants https.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UrlPolicy {
    /// https only, as LINE.
    #[default]
    HttpsOnly,
    /// https, or http to this machine (`127.x`, `localhost`, `[::1]`): a stack on one machine
    /// serves its own signed media links over http when it has no https public URL. LINE itself
    /// would refuse those; a stand-in opts into this only for a local demo.
    HttpsOrLoopbackHttp,
}

/// `body.messages`, checked: the message objects, or LINE's 400 naming the first problem.
pub fn check_messages(body: &Value, urls: UrlPolicy) -> Result<Vec<Value>, LineError> {
    let messages = match body.get("messages") {
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(LineError::invalid_property("messages", "must be an array")),
        None => return Err(LineError::invalid_property("messages", "must be specified")),
    };
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(LineError::invalid_property(
            "messages",
            format!("Size must be between 1 and {MAX_MESSAGES}"),
        ));
    }
    for (i, message) in messages.iter().enumerate() {
        check_message(message, urls).map_err(|(property, problem)| {
            let property = if property.is_empty() {
                format!("messages[{i}]")
            } else {
                format!("messages[{i}].{property}")
            };
            LineError::invalid_property(property, problem)
        })?;
    }
    Ok(messages.clone())
}

type Problem = (String, String);

fn problem(property: &str, message: impl Into<String>) -> Problem {
    (property.to_owned(), message.into())
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// A required string of 1 to `max` UTF-16 code units at `pointer` (`/a/b`), named `property`.
fn required<'a>(m: &'a Value, property: &str, max: usize) -> Result<&'a str, Problem> {
    let pointer = format!("/{}", property.replace('.', "/"));
    match m.pointer(&pointer) {
        Some(Value::String(v)) if v.is_empty() => Err(problem(property, "May not be empty")),
        Some(Value::String(v)) if utf16_len(v) > max => Err(problem(
            property,
            format!("Length must be between 1 and {max}"),
        )),
        Some(Value::String(v)) => Ok(v),
        Some(_) => Err(problem(property, "must be a string")),
        None => Err(problem(property, "must be specified")),
    }
}

fn url(m: &Value, property: &str, urls: UrlPolicy) -> Result<(), Problem> {
    let v = required(m, property, MAX_URL)?;
    if is_allowed_url(v, urls) {
        Ok(())
    } else {
        Err(problem(property, "must be an https URL"))
    }
}

/// Whether `v` is a URL LINE (and the policy) takes for media.
pub fn is_allowed_url(v: &str, urls: UrlPolicy) -> bool {
    v.starts_with("https://") || (urls == UrlPolicy::HttpsOrLoopbackHttp && is_loopback_http(v))
}

/// `http://` to `localhost` (then a port or a path), `127.0.0.0/8` or `[::1]`.
fn is_loopback_http(v: &str) -> bool {
    const PREFIXES: [&str; 4] = [
        "http://127.",
        "http://localhost:",
        "http://localhost/",
        "http://[::1]",
    ];
    if !PREFIXES.iter().any(|p| v.starts_with(p)) {
        return false;
    }
    let Some(rest) = v.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    if let Some(v6) = authority.strip_prefix("[::1]") {
        return v6.is_empty() || v6.starts_with(':');
    }
    let host = authority.split(':').next().unwrap_or_default();
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn number(m: &Value, property: &str) -> Result<(), Problem> {
    let pointer = format!("/{}", property.replace('.', "/"));
    if m.pointer(&pointer).is_some_and(Value::is_number) {
        Ok(())
    } else {
        Err(problem(property, "must be a number"))
    }
}

/// One message object, as LINE checks it: `Err((property, problem))` for the first problem
/// (the property relative to the message; empty for the message itself).
pub fn check_message(m: &Value, urls: UrlPolicy) -> Result<(), (String, String)> {
    if !m.is_object() {
        return Err(problem("", "must be an object"));
    }
    match m.get("type").and_then(Value::as_str) {
        None => return Err(problem("type", "must be specified")),
        Some("text") => {
            required(m, "text", MAX_TEXT)?;
        }
        Some("textV2") => {
            required(m, "text", MAX_TEXT)?;
            let text = m.get("text").and_then(Value::as_str).unwrap_or("");
            // Placeholders and substitutions as LINE pairs them (the chat is the caller's).
            omniline_domain::line::text_v2::check(
                text,
                m.get("substitution"),
                omniline_domain::line::text_v2::Chat::Unknown,
            )?;
        }
        Some("sticker") => {
            required(m, "packageId", 20)?;
            required(m, "stickerId", 20)?;
        }
        Some("image") | Some("video") => {
            url(m, "originalContentUrl", urls)?;
            url(m, "previewImageUrl", urls)?;
        }
        Some("audio") => {
            url(m, "originalContentUrl", urls)?;
            number(m, "duration")?;
        }
        Some("location") => {
            required(m, "title", 100)?;
            required(m, "address", 100)?;
            number(m, "latitude")?;
            number(m, "longitude")?;
        }
        Some("imagemap") => {
            url(m, "baseUrl", urls)?;
            required(m, "altText", 1500)?;
            number(m, "baseSize.width")?;
            number(m, "baseSize.height")?;
            if !m.get("actions").is_some_and(Value::is_array) {
                return Err(problem("actions", "must be an array"));
            }
        }
        Some("template") => omniline_domain::line::rich::check_template(m)?,
        Some("flex") => omniline_domain::line::rich::check_flex(m)?,
        Some(other) => return Err(problem("type", format!("unknown message type {other:?}"))),
    }
    if let Some(quick_reply) = m.get("quickReply") {
        omniline_domain::line::rich::check_quick_reply(quick_reply)?;
    }
    // Text and sticker messages may quote a message with its (opaque) quote token.
    if let Some(quote) = m.get("quoteToken") {
        if quote.as_str().is_none_or(str::is_empty) {
            return Err(problem("quoteToken", "must be a non-empty string"));
        }
    }
    if let Some(sender) = m.get("sender") {
        if !sender.is_object() {
            return Err(problem("sender", "must be an object"));
        }
        if sender.get("name").is_some() {
            required(m, "sender.name", MAX_SENDER_NAME)?;
        }
        if sender.get("iconUrl").is_some() {
            url(m, "sender.iconUrl", urls)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(m: Value) -> String {
        let body = json!({ "messages": [m] });
        let e = check_messages(&body, UrlPolicy::HttpsOnly).expect_err("refused");
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "The request body has 1 error(s)")
        );
        e.details[0].property.clone()
    }

    #[test]
    fn one_to_five_messages() {
        let text = json!({"type": "text", "text": "hi"});
        for n in [1, 5] {
            let body = json!({ "messages": vec![text.clone(); n] });
            assert_eq!(
                check_messages(&body, UrlPolicy::HttpsOnly).map(|m| m.len()),
                Ok(n)
            );
        }
        for body in [
            json!({}),
            json!({"messages": []}),
            json!({"messages": vec![text.clone(); 6]}),
            json!({"messages": "hi"}),
        ] {
            let e = check_messages(&body, UrlPolicy::HttpsOnly).expect_err("refused");
            assert_eq!(e.details[0].property, "messages", "{body}");
        }
    }

    #[test]
    fn messages_line_refuses_are_refused_naming_the_property() {
        for (m, property) in [
            (json!("text"), "messages[0]"),
            (json!({"text": "no type"}), "messages[0].type"),
            (json!({"type": "hologram"}), "messages[0].type"),
            (json!({"type": "text"}), "messages[0].text"),
            (json!({"type": "text", "text": ""}), "messages[0].text"),
            (
                json!({"type": "text", "text": "x".repeat(5001)}),
                "messages[0].text",
            ),
            (json!({"type": "text", "text": 5}), "messages[0].text"),
            (json!({"type": "textV2"}), "messages[0].text"),
            (
                json!({"type": "textV2", "text": "{who} hi"}),
                "messages[0].substitution.who",
            ),
            (
                json!({"type": "textV2", "text": "hi", "substitution": {"who": {"type": "mention", "mentionee": {"type": "user", "userId": "U1"}}}}),
                "messages[0].substitution.who",
            ),
            (
                json!({"type": "text", "text": "hi", "quoteToken": ""}),
                "messages[0].quoteToken",
            ),
            (
                json!({"type": "sticker", "packageId": "1", "stickerId": "2", "quoteToken": 7}),
                "messages[0].quoteToken",
            ),
            (
                json!({"type": "sticker", "packageId": "1"}),
                "messages[0].stickerId",
            ),
            (
                json!({"type": "image", "originalContentUrl": "http://shop.example/a.png", "previewImageUrl": "https://shop.example/a.png"}),
                "messages[0].originalContentUrl",
            ),
            (
                json!({"type": "image", "originalContentUrl": "https://shop.example/a.png"}),
                "messages[0].previewImageUrl",
            ),
            (
                json!({"type": "video", "originalContentUrl": format!("https://{}", "a".repeat(2000)), "previewImageUrl": "https://a"}),
                "messages[0].originalContentUrl",
            ),
            (
                json!({"type": "audio", "originalContentUrl": "https://a/a.m4a"}),
                "messages[0].duration",
            ),
            (
                json!({"type": "location", "title": "t", "address": "a", "latitude": "35", "longitude": 1}),
                "messages[0].latitude",
            ),
            (
                json!({"type": "location", "title": "t".repeat(101), "address": "a", "latitude": 1, "longitude": 1}),
                "messages[0].title",
            ),
            (
                json!({"type": "template", "template": {}}),
                "messages[0].altText",
            ),
            (
                json!({"type": "template", "altText": "a"}),
                "messages[0].template",
            ),
            (
                json!({"type": "flex", "altText": "a", "contents": []}),
                "messages[0].contents",
            ),
            (
                json!({"type": "imagemap", "baseUrl": "https://a", "altText": "a", "baseSize": {"width": 1040}, "actions": []}),
                "messages[0].baseSize.height",
            ),
            (
                json!({"type": "text", "text": "q", "quickReply": {"items": vec![json!({}); 14]}}),
                "messages[0].quickReply.items",
            ),
            (
                json!({"type": "text", "text": "q", "quickReply": {}}),
                "messages[0].quickReply.items",
            ),
            (
                json!({"type": "text", "text": "q", "sender": {"name": "n".repeat(21)}}),
                "messages[0].sender.name",
            ),
            (
                json!({"type": "text", "text": "q", "sender": {"iconUrl": "http://a/i.png"}}),
                "messages[0].sender.iconUrl",
            ),
        ] {
            assert_eq!(refused(m.clone()), property, "{m}");
        }
    }

    #[test]
    fn lengths_are_counted_in_utf16_units() {
        let at_limit = json!({"type": "text", "text": "😀".repeat(2500)});
        assert!(check_message(&at_limit, UrlPolicy::HttpsOnly).is_ok());
        let over = json!({"type": "text", "text": format!("{}a", "😀".repeat(2500))});
        assert!(check_message(&over, UrlPolicy::HttpsOnly).is_err());
    }

    #[test]
    fn messages_line_takes_are_taken() {
        for m in [
            json!({"type": "text", "text": "hi", "quickReply": {"items": [{"type": "action", "action": {"type": "message", "label": "Yes", "text": "yes"}}]}, "sender": {"name": "Sam", "iconUrl": "https://a/i.png"}}),
            json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
            json!({"type": "text", "text": "yes", "quoteToken": "q3Plxr4AgKd"}),
            json!({"type": "sticker", "packageId": "446", "stickerId": "1988", "quoteToken": "q"}),
            json!({"type": "image", "originalContentUrl": "https://a/a.png", "previewImageUrl": "https://a/p.png"}),
            json!({"type": "audio", "originalContentUrl": "https://a/a.m4a", "duration": 60000}),
            json!({"type": "location", "title": "t", "address": "a", "latitude": 35.6, "longitude": 139.7}),
            json!({"type": "template", "altText": "a", "template": {"type": "buttons", "text": "Pick one", "actions": [{"type": "message", "label": "A", "text": "a"}]}}),
            json!({"type": "flex", "altText": "a", "contents": {"type": "bubble"}}),
            json!({"type": "imagemap", "baseUrl": "https://a", "altText": "a", "baseSize": {"width": 1040, "height": 1040}, "actions": []}),
        ] {
            assert_eq!(check_message(&m, UrlPolicy::HttpsOnly), Ok(()), "{m}");
        }
    }

    #[test]
    fn loopback_http_only_when_the_policy_says_so() {
        let m = json!({"type": "image", "originalContentUrl": "http://127.0.0.1:3000/media/a", "previewImageUrl": "https://cdn.example/a.png"});
        assert!(check_message(&m, UrlPolicy::HttpsOnly).is_err());
        assert_eq!(check_message(&m, UrlPolicy::HttpsOrLoopbackHttp), Ok(()));
        for elsewhere in [
            "http://127.example.com/a",
            "http://localhost.example/a",
            "http://127.0.0.1@evil.example/a",
            "http://[::1].example/a",
            "http://shop.example/a",
        ] {
            let m = json!({"type": "image", "originalContentUrl": elsewhere, "previewImageUrl": "https://a/p"});
            assert!(
                check_message(&m, UrlPolicy::HttpsOrLoopbackHttp).is_err(),
                "{elsewhere}"
            );
        }
        for local in [
            "http://localhost/a",
            "http://localhost:3000/a",
            "http://[::1]:80/a",
            "http://127.1.2.3/a",
        ] {
            assert!(
                is_allowed_url(local, UrlPolicy::HttpsOrLoopbackHttp),
                "{local}"
            );
        }
    }
}
