//! LINE's text message (v2), `textV2`: a text whose `{key}` placeholders are replaced by the
//! `substitution` objects it names — a mention of a user (`{"type": "mention", "mentionee":
//! {"type": "user", "userId"}}`) or of everyone (`"mentionee": {"type": "all"}`, group and
//! multi-person chats only), or a LINE emoji (`{"type": "emoji", "productId", "emojiId"}`).
//! `{{` and `}}` write literal braces. Keys are 1 to [`MAX_KEY_LENGTH`] ASCII letters, digits or
//! `_`; at most [`MAX_SUBSTITUTIONS`] per message; every placeholder must have its substitution
//! and every substitution its placeholder.

use serde_json::Value;

/// Substitution objects per message.
pub const MAX_SUBSTITUTIONS: usize = 100;
/// Longest substitution key.
pub const MAX_KEY_LENGTH: usize = 20;

/// Where the message goes, for what a mention may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chat<'a> {
    /// A one-to-one chat: no `all` mention.
    OneToOne,
    /// A group or multi-person chat with these known members (empty: not known, any user id).
    Group { members: &'a [String] },
    /// Not known (LINE's own check: any mention).
    Unknown,
}

/// A problem with a `textV2` message: the property at fault (relative to the message) and what
/// is wrong.
pub type Problem = (String, String);

/// The keys of `text`'s placeholders, in order (a key used twice appears twice).
pub fn placeholders(text: &str) -> Result<Vec<&str>, Problem> {
    let bad = |m: &str| ("text".to_owned(), m.to_owned());
    let mut keys = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if bytes.get(i + 1) == Some(&b'}') => i += 2,
            b'{' => {
                let end = text[i + 1..]
                    .find('}')
                    .ok_or_else(|| bad("a { without its } (write {{ for a brace)"))?;
                let key = &text[i + 1..i + 1 + end];
                if !valid_key(key) {
                    return Err(bad(&format!(
                        "placeholder keys are 1 to {MAX_KEY_LENGTH} letters, digits or _"
                    )));
                }
                keys.push(key);
                i += end + 2;
            }
            b'}' => return Err(bad("a } without its { (write }} for a brace)")),
            _ => i += 1,
        }
    }
    Ok(keys)
}

/// Checks a `textV2` message's `text` and `substitution` for `chat`.
pub fn check(text: &str, substitution: Option<&Value>, chat: Chat<'_>) -> Result<(), Problem> {
    let keys = placeholders(text)?;
    let empty = serde_json::Map::new();
    let substitution = match substitution {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(("substitution".into(), "must be an object".into())),
    };
    if substitution.len() > MAX_SUBSTITUTIONS {
        return Err((
            "substitution".into(),
            format!("at most {MAX_SUBSTITUTIONS} substitutions"),
        ));
    }
    for key in &keys {
        if !substitution.contains_key(*key) {
            return Err((
                format!("substitution.{key}"),
                format!("the text's placeholder {{{key}}} has no substitution"),
            ));
        }
    }
    for (key, object) in substitution {
        let at = |p: &str| {
            if p.is_empty() {
                format!("substitution.{key}")
            } else {
                format!("substitution.{key}.{p}")
            }
        };
        if !valid_key(key) {
            return Err((
                at(""),
                format!("keys are 1 to {MAX_KEY_LENGTH} letters, digits or _"),
            ));
        }
        if !keys.contains(&key.as_str()) {
            return Err((at(""), format!("the text has no placeholder {{{key}}}")));
        }
        let string = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        match object.get("type").and_then(Value::as_str) {
            Some("mention") => {
                let mentionee = object.get("mentionee");
                match mentionee
                    .and_then(|m| m.get("type"))
                    .and_then(Value::as_str)
                {
                    Some("user") => {
                        let user = mentionee
                            .and_then(|m| m.get("userId"))
                            .and_then(Value::as_str)
                            .filter(|u| u.starts_with('U') && u.len() <= 64)
                            .ok_or_else(|| {
                                (at("mentionee.userId"), "must be a LINE user id".to_owned())
                            })?;
                        if let Chat::Group { members } = chat {
                            if !members.is_empty() && !members.iter().any(|m| m == user) {
                                return Err((
                                    at("mentionee.userId"),
                                    "is not a member of this chat".to_owned(),
                                ));
                            }
                        }
                    }
                    Some("all") if chat == Chat::OneToOne => {
                        return Err((
                            at("mentionee.type"),
                            "all is for group and multi-person chats".to_owned(),
                        ))
                    }
                    Some("all") => {}
                    _ => return Err((at("mentionee.type"), "must be user or all".to_owned())),
                }
            }
            Some("emoji") => {
                if string("productId").is_none() {
                    return Err((at("productId"), "must be specified".to_owned()));
                }
                if string("emojiId").is_none() {
                    return Err((at("emojiId"), "must be specified".to_owned()));
                }
            }
            _ => return Err((at("type"), "must be mention or emoji".to_owned())),
        }
    }
    Ok(())
}

fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LENGTH).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mention(user: &str) -> Value {
        json!({"type": "mention", "mentionee": {"type": "user", "userId": user}})
    }

    #[test]
    fn placeholders_and_escapes() {
        assert_eq!(placeholders("{a} and {b_2} {{x}}").unwrap(), ["a", "b_2"]);
        assert_eq!(placeholders("no braces").unwrap(), Vec::<&str>::new());
        assert!(placeholders("{open").is_err());
        assert!(placeholders("close}").is_err());
        assert!(placeholders("{}").is_err());
        assert!(placeholders("{with space}").is_err());
        assert!(placeholders(&format!("{{{}}}", "k".repeat(21))).is_err());
    }

    #[test]
    fn substitutions_match_the_placeholders_and_the_chat() {
        let members = ["Ualice".to_owned(), "Ubob".to_owned()];
        let group = Chat::Group { members: &members };
        let ok = json!({"who": mention("Ualice"), "e": {"type": "emoji", "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "002"}});
        assert_eq!(check("{who} thanks {e}", Some(&ok), group), Ok(()));
        assert_eq!(
            check(
                "{who} and {all}",
                Some(
                    &json!({"who": mention("Ualice"), "all": {"type": "mention", "mentionee": {"type": "all"}}})
                ),
                group
            ),
            Ok(())
        );
        let field = |text: &str, s: Value, chat| check(text, Some(&s), chat).unwrap_err().0;
        assert_eq!(field("{who}", json!({}), group), "substitution.who");
        assert_eq!(
            field("hi", json!({"who": mention("Ualice")}), group),
            "substitution.who",
            "a substitution without its placeholder"
        );
        assert_eq!(
            field("{who}", json!({"who": mention("Ueve")}), group),
            "substitution.who.mentionee.userId"
        );
        assert_eq!(
            field(
                "{all}",
                json!({"all": {"type": "mention", "mentionee": {"type": "all"}}}),
                Chat::OneToOne
            ),
            "substitution.all.mentionee.type"
        );
        assert_eq!(
            field(
                "{e}",
                json!({"e": {"type": "emoji", "productId": "p"}}),
                group
            ),
            "substitution.e.emojiId"
        );
        assert_eq!(
            field("{x}", json!({"x": {"type": "sticker"}}), group),
            "substitution.x.type"
        );
        assert_eq!(field("{x}", json!([1]), group), "substitution");
        // Members not known: any user id.
        assert_eq!(
            check(
                "{who}",
                Some(&json!({"who": mention("Ueve")})),
                Chat::Group { members: &[] }
            ),
            Ok(())
        );
        let many: serde_json::Map<String, Value> = (0..101)
            .map(|i| (format!("k{i}"), mention("Ualice")))
            .collect();
        let text: String = (0..101).map(|i| format!("{{k{i}}}")).collect();
        assert_eq!(
            field(&text, Value::Object(many), Chat::Unknown),
            "substitution"
        );
    }
}
