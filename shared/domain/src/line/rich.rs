//! LINE's rich message parts an agent may send, checked against LINE's limits (the Messaging
//! API reference): quick replies on any message, template messages (buttons, confirm) and Flex
//! messages. A problem names the property at fault (relative to the message) and what is wrong,
//! so an agent's request is refused with a 422 naming it, and the stand-ins refuse what LINE
//! refuses.
//!
//! Lengths are counted in characters (LINE counts action labels and template texts in grapheme
//! clusters, which a character count never exceeds for the texts agents type).

use serde_json::Value;

/// Items of a quick reply.
pub const MAX_QUICK_REPLY_ITEMS: usize = 13;
/// A template message's `altText`.
pub const MAX_TEMPLATE_ALT_TEXT: usize = 400;
/// A Flex message's `altText`.
pub const MAX_FLEX_ALT_TEXT: usize = 1500;
/// Bubbles of a Flex carousel.
pub const MAX_CAROUSEL_BUBBLES: usize = 12;
/// A Flex bubble's JSON, and a carousel's.
pub const MAX_BUBBLE_BYTES: usize = 30 * 1024;
pub const MAX_CAROUSEL_BYTES: usize = 50 * 1024;

/// The property at fault and the problem.
pub type Problem = (String, String);

fn problem(path: &str, message: impl Into<String>) -> Problem {
    (path.to_owned(), message.into())
}

fn text<'a>(v: &'a Value, path: &str, name: &str, max: usize) -> Result<&'a str, Problem> {
    let at = format!("{path}{name}");
    let s = v
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| problem(&at, "must be specified"))?;
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(problem(&at, format!("must be 1 to {max} characters")));
    }
    Ok(s)
}

fn optional_text(v: &Value, path: &str, name: &str, max: usize) -> Result<(), Problem> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(()),
        Some(_) => text(v, path, name, max).map(drop),
    }
}

fn url(v: &Value, path: &str, name: &str, schemes: &[&str]) -> Result<(), Problem> {
    let at = format!("{path}{name}");
    let u = text(v, path, name, 1000)?;
    if !schemes.iter().any(|s| u.starts_with(s)) || u.chars().any(char::is_whitespace) {
        return Err(problem(
            &at,
            format!("must start with {}", schemes.join(" or ")),
        ));
    }
    Ok(())
}

/// An action (`path` ends with `.`). `in_quick_reply`: the camera, camera roll and location
/// actions are for quick replies only.
pub fn check_action(action: &Value, path: &str, in_quick_reply: bool) -> Result<(), Problem> {
    if !action.is_object() {
        return Err(problem(path.trim_end_matches('.'), "must be an object"));
    }
    let kind = action.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "postback" => {
            text(action, path, "label", 20)?;
            text(action, path, "data", 300)?;
            optional_text(action, path, "displayText", 300)?;
        }
        "message" => {
            text(action, path, "label", 20)?;
            text(action, path, "text", 300)?;
        }
        "uri" => {
            text(action, path, "label", 20)?;
            url(
                action,
                path,
                "uri",
                &["https://", "http://", "line://", "tel:"],
            )?;
        }
        "datetimepicker" => {
            text(action, path, "label", 20)?;
            text(action, path, "data", 300)?;
            match action.get("mode").and_then(Value::as_str) {
                Some("date" | "time" | "datetime") => {}
                _ => {
                    return Err(problem(
                        &format!("{path}mode"),
                        "must be date, time or datetime",
                    ))
                }
            }
        }
        "camera" | "cameraRoll" | "location" if in_quick_reply => {
            text(action, path, "label", 20)?;
        }
        "clipboard" => {
            text(action, path, "label", 20)?;
            text(action, path, "clipboardText", 1000)?;
        }
        _ => {
            return Err(problem(
                &format!("{path}type"),
                if in_quick_reply {
                    "must be postback, message, uri, datetimepicker, camera, cameraRoll, location or clipboard"
                } else {
                    "must be postback, message, uri, datetimepicker or clipboard"
                },
            ))
        }
    }
    Ok(())
}

/// `quickReply` of any message: 1 to 13 items, each an action button (with an optional https
/// icon).
pub fn check_quick_reply(quick_reply: &Value) -> Result<(), Problem> {
    let items = quick_reply
        .get("items")
        .and_then(Value::as_array)
        .filter(|items| (1..=MAX_QUICK_REPLY_ITEMS).contains(&items.len()))
        .ok_or_else(|| {
            problem(
                "quickReply.items",
                format!("must be 1 to {MAX_QUICK_REPLY_ITEMS} items"),
            )
        })?;
    for (i, item) in items.iter().enumerate() {
        let path = format!("quickReply.items[{i}].");
        if item.get("type").and_then(Value::as_str) != Some("action") {
            return Err(problem(&format!("{path}type"), "must be action"));
        }
        if item.get("imageUrl").is_some() {
            url(item, &path, "imageUrl", &["https://"])?;
        }
        let action = item
            .get("action")
            .ok_or_else(|| problem(&format!("{path}action"), "must be specified"))?;
        check_action(action, &format!("{path}action."), true)?;
    }
    Ok(())
}

/// A template message's `altText` and `template` (buttons or confirm).
pub fn check_template(message: &Value) -> Result<(), Problem> {
    text(message, "", "altText", MAX_TEMPLATE_ALT_TEXT)?;
    let template = message
        .get("template")
        .filter(|t| t.is_object())
        .ok_or_else(|| problem("template", "must be an object"))?;
    let actions = |count: std::ops::RangeInclusive<usize>| -> Result<(), Problem> {
        let list = template
            .get("actions")
            .and_then(Value::as_array)
            .filter(|a| count.contains(&a.len()))
            .ok_or_else(|| {
                problem(
                    "template.actions",
                    format!("must be {} to {} actions", count.start(), count.end()),
                )
            })?;
        for (i, action) in list.iter().enumerate() {
            check_action(action, &format!("template.actions[{i}]."), false)?;
        }
        Ok(())
    };
    match template.get("type").and_then(Value::as_str) {
        Some("buttons") => {
            let with_title_or_image =
                template.get("title").is_some() || template.get("thumbnailImageUrl").is_some();
            text(
                template,
                "template.",
                "text",
                if with_title_or_image { 60 } else { 160 },
            )?;
            optional_text(template, "template.", "title", 40)?;
            if template.get("thumbnailImageUrl").is_some() {
                url(template, "template.", "thumbnailImageUrl", &["https://"])?;
            }
            actions(1..=4)
        }
        Some("confirm") => {
            text(template, "template.", "text", 240)?;
            actions(2..=2)
        }
        _ => Err(problem("template.type", "must be buttons or confirm")),
    }
}

/// A Flex message's `altText` and `contents`: a bubble, or a carousel of 1 to 12 bubbles, within
/// LINE's sizes. (LINE checks the components inside; a refusal reaches the agent as a failed
/// delivery.)
pub fn check_flex(message: &Value) -> Result<(), Problem> {
    text(message, "", "altText", MAX_FLEX_ALT_TEXT)?;
    let contents = message
        .get("contents")
        .filter(|c| c.is_object())
        .ok_or_else(|| problem("contents", "must be an object"))?;
    let size = contents.to_string().len();
    match contents.get("type").and_then(Value::as_str) {
        Some("bubble") if size <= MAX_BUBBLE_BYTES => Ok(()),
        Some("bubble") => Err(problem(
            "contents",
            format!("a bubble is at most {MAX_BUBBLE_BYTES} bytes of JSON"),
        )),
        Some("carousel") => {
            let bubbles = contents
                .get("contents")
                .and_then(Value::as_array)
                .filter(|b| (1..=MAX_CAROUSEL_BUBBLES).contains(&b.len()))
                .ok_or_else(|| {
                    problem(
                        "contents.contents",
                        format!("must be 1 to {MAX_CAROUSEL_BUBBLES} bubbles"),
                    )
                })?;
            for (i, bubble) in bubbles.iter().enumerate() {
                if bubble.get("type").and_then(Value::as_str) != Some("bubble") {
                    return Err(problem(
                        &format!("contents.contents[{i}].type"),
                        "must be bubble",
                    ));
                }
            }
            if size > MAX_CAROUSEL_BYTES {
                return Err(problem(
                    "contents",
                    format!("a carousel is at most {MAX_CAROUSEL_BYTES} bytes of JSON"),
                ));
            }
            Ok(())
        }
        _ => Err(problem("contents.type", "must be bubble or carousel")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(r: Result<(), Problem>) -> String {
        r.unwrap_err().0
    }

    #[test]
    fn quick_replies() {
        let item = |action: Value| json!({"type": "action", "action": action});
        let ok = json!({"items": [
            item(json!({"type": "message", "label": "Yes", "text": "yes"})),
            item(json!({"type": "postback", "label": "Later", "data": "later"})),
            item(json!({"type": "location", "label": "Send location"})),
        ]});
        assert_eq!(check_quick_reply(&ok), Ok(()));
        assert_eq!(
            field(check_quick_reply(&json!({"items": []}))),
            "quickReply.items"
        );
        let many: Vec<Value> = (0..14)
            .map(|_| item(json!({"type": "message", "label": "a", "text": "a"})))
            .collect();
        assert_eq!(
            field(check_quick_reply(&json!({"items": many}))),
            "quickReply.items"
        );
        assert_eq!(
            field(check_quick_reply(
                &json!({"items": [item(json!({"type": "message", "label": "x".repeat(21), "text": "a"}))]})
            )),
            "quickReply.items[0].action.label"
        );
        assert_eq!(
            field(check_quick_reply(
                &json!({"items": [item(json!({"type": "uri", "label": "Go", "uri": "javascript:alert(1)"}))]})
            )),
            "quickReply.items[0].action.uri"
        );
        assert_eq!(
            field(check_quick_reply(
                &json!({"items": [{"type": "action", "imageUrl": "http://x/i.png", "action": {"type": "message", "label": "a", "text": "a"}}]})
            )),
            "quickReply.items[0].imageUrl"
        );
    }

    #[test]
    fn templates() {
        let buttons = json!({"type": "template", "altText": "Your order", "template": {
            "type": "buttons", "title": "Order A-17", "text": "Ships today",
            "actions": [{"type": "uri", "label": "Track", "uri": "https://shop.example/t/A-17"}]}});
        assert_eq!(check_template(&buttons), Ok(()));
        let confirm = json!({"type": "template", "altText": "Cancel?", "template": {
            "type": "confirm", "text": "Cancel the order?",
            "actions": [{"type": "message", "label": "Yes", "text": "yes"}, {"type": "message", "label": "No", "text": "no"}]}});
        assert_eq!(check_template(&confirm), Ok(()));
        let mut one = confirm.clone();
        one["template"]["actions"] = json!([{"type": "message", "label": "Yes", "text": "yes"}]);
        assert_eq!(field(check_template(&one)), "template.actions");
        let mut long = buttons.clone();
        long["template"]["text"] = json!("x".repeat(61));
        assert_eq!(
            field(check_template(&long)),
            "template.text",
            "60 with a title"
        );
        assert_eq!(
            field(check_template(
                &json!({"altText": "a", "template": {"type": "carousel"}})
            )),
            "template.type"
        );
        assert_eq!(field(check_template(&json!({"template": {}}))), "altText");
        let mut camera = buttons;
        camera["template"]["actions"] = json!([{"type": "camera", "label": "Photo"}]);
        assert_eq!(
            field(check_template(&camera)),
            "template.actions[0].type",
            "camera is for quick replies"
        );
    }

    #[test]
    fn flex() {
        let bubble = json!({"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}});
        assert_eq!(
            check_flex(&json!({"altText": "Receipt", "contents": bubble})),
            Ok(())
        );
        let carousel = json!({"type": "carousel", "contents": vec![bubble.clone(); 12]});
        assert_eq!(
            check_flex(&json!({"altText": "a", "contents": carousel})),
            Ok(())
        );
        let over = json!({"type": "carousel", "contents": vec![bubble.clone(); 13]});
        assert_eq!(
            field(check_flex(&json!({"altText": "a", "contents": over}))),
            "contents.contents"
        );
        let huge =
            json!({"type": "bubble", "body": {"type": "text", "text": "x".repeat(31 * 1024)}});
        assert_eq!(
            field(check_flex(&json!({"altText": "a", "contents": huge}))),
            "contents"
        );
        assert_eq!(
            field(check_flex(
                &json!({"altText": "a", "contents": {"type": "box"}})
            )),
            "contents.type"
        );
        assert_eq!(field(check_flex(&json!({"contents": bubble}))), "altText");
    }
}
