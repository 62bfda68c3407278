//! LINE's rules for the `messages` of a reply or a push: 1 to 5 message objects, each of a type
//! LINE knows, with the properties and limits LINE checks (lengths in UTF-16 code units, as LINE
//! counts them). A message LINE would refuse is refused here, so a stand-in hides no product bug.

use crate::error::LineError;
pub use omniline_domain::line::message_rules::{
    check_message, is_allowed_url, UrlPolicy, MAX_MESSAGES, MAX_QUICK_REPLY_ITEMS, MAX_SENDER_NAME,
    MAX_TEXT, MAX_URL,
};
use serde_json::Value;

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
