//! LINE's rules for one message object of a reply or a push: a type LINE knows, with the
//! properties and limits LINE checks (lengths in UTF-16 code units, as LINE counts them; rich
//! parts by [`super::rich`], text v2 by [`super::text_v2`]). The stand-ins refuse by these rules,
//! and stored message templates are checked with them, so neither accepts what LINE would refuse.

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

/// The property at fault (relative to the message) and the problem.
pub type Problem = (String, String);

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
            crate::line::text_v2::check(
                text,
                m.get("substitution"),
                crate::line::text_v2::Chat::Unknown,
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
        Some("template") => crate::line::rich::check_template(m)?,
        Some("flex") => crate::line::rich::check_flex(m)?,
        Some(other) => return Err(problem("type", format!("unknown message type {other:?}"))),
    }
    if let Some(quick_reply) = m.get("quickReply") {
        crate::line::rich::check_quick_reply(quick_reply)?;
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
