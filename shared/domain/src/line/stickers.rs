//! Sticker images as LINE's sticker CDN serves them, built from the sticker id: what an agent's
//! screen shows for a sticker a customer sent (LINE's events carry ids and keywords, no image).
//!
//! `https://stickershop.line-scdn.net/stickershop/v1/sticker/{stickerId}/android/sticker.png` is
//! the still image of every sticker; animated stickers (`stickerResourceType` `ANIMATION`,
//! `ANIMATION_SOUND`) also have `sticker_animation.png` and pop-up ones (`POPUP`, `POPUP_SOUND`)
//! `sticker_popup.png`, both APNG. The CDN is public and answers without cookies or tokens.

use serde_json::{json, Value};

const CDN: &str = "https://stickershop.line-scdn.net/stickershop/v1/sticker";

/// The still image of sticker `sticker_id` (LINE's ids are decimal digits; anything else has no
/// image).
pub fn still_url(sticker_id: &str) -> Option<String> {
    valid(sticker_id).then(|| format!("{CDN}/{sticker_id}/android/sticker.png"))
}

/// The moving image of an animated or pop-up sticker, by its `stickerResourceType`.
pub fn animated_url(sticker_id: &str, resource_type: Option<&str>) -> Option<String> {
    if !valid(sticker_id) {
        return None;
    }
    let file = match resource_type? {
        "ANIMATION" | "ANIMATION_SOUND" => "sticker_animation.png",
        "POPUP" | "POPUP_SOUND" => "sticker_popup.png",
        _ => return None,
    };
    Some(format!("{CDN}/{sticker_id}/android/{file}"))
}

/// A sticker message (LINE's JSON: an event's `message`, or one sent) as agents see it:
/// `{"packageId", "stickerId", "keywords"?, "imageUrl", "animatedImageUrl"?}`; `None` for
/// anything that is not a sticker with an id.
pub fn sticker_view(message: &Value) -> Option<Value> {
    if message.get("type").and_then(Value::as_str) != Some("sticker") {
        return None;
    }
    let sticker_id = message.get("stickerId").and_then(Value::as_str)?;
    let resource_type = message.get("stickerResourceType").and_then(Value::as_str);
    let mut view = json!({
        "packageId": message.get("packageId"),
        "stickerId": sticker_id,
        "imageUrl": still_url(sticker_id),
    });
    if let Some(keywords) = message.get("keywords").filter(|k| k.is_array()) {
        view["keywords"] = keywords.clone();
    }
    if let Some(url) = animated_url(sticker_id, resource_type) {
        view["animatedImageUrl"] = json!(url);
    }
    Some(view)
}

fn valid(sticker_id: &str) -> bool {
    !sticker_id.is_empty()
        && sticker_id.len() <= 20
        && sticker_id.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_built_from_the_id() {
        assert_eq!(
            still_url("52002738").as_deref(),
            Some("https://stickershop.line-scdn.net/stickershop/v1/sticker/52002738/android/sticker.png")
        );
        assert_eq!(
            animated_url("52002738", Some("ANIMATION")).as_deref(),
            Some("https://stickershop.line-scdn.net/stickershop/v1/sticker/52002738/android/sticker_animation.png")
        );
        assert_eq!(
            animated_url("1", Some("POPUP_SOUND")).as_deref(),
            Some("https://stickershop.line-scdn.net/stickershop/v1/sticker/1/android/sticker_popup.png")
        );
        assert_eq!(animated_url("1", Some("STATIC")), None);
        assert_eq!(animated_url("1", None), None);
        // Never a URL built from something that is not an id.
        assert_eq!(still_url("../../evil"), None);
        assert_eq!(still_url(""), None);
        assert_eq!(animated_url("1?x=", Some("ANIMATION")), None);
    }

    #[test]
    fn a_sticker_message_becomes_its_view() {
        let event_message = json!({
            "type": "sticker", "id": "1", "packageId": "11537", "stickerId": "52002738",
            "stickerResourceType": "ANIMATION", "keywords": ["cony", "hi"],
        });
        let view = sticker_view(&event_message).unwrap();
        assert_eq!(view["packageId"], "11537");
        assert_eq!(view["keywords"], json!(["cony", "hi"]));
        assert!(view["imageUrl"]
            .as_str()
            .unwrap()
            .ends_with("/52002738/android/sticker.png"));
        assert!(view["animatedImageUrl"]
            .as_str()
            .unwrap()
            .ends_with("sticker_animation.png"));
        // One an agent sent: no resource type, no keywords.
        let sent =
            sticker_view(&json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}))
                .unwrap();
        assert!(sent.get("animatedImageUrl").is_none() && sent.get("keywords").is_none());
        assert_eq!(sticker_view(&json!({"type": "text", "text": "hi"})), None);
    }
}
