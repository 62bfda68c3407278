//! Preparing outbound LINE message objects for the Messaging API (pure: no I/O).
//!
//! [`prepare`] validates the message objects omniline produces, turns omniline's own `file`
//! message into a text (LINE has no outbound file message), splits texts longer than LINE's limit
//! and groups the result into calls of at most [`MAX_MESSAGES_PER_CALL`]. [`with_sender`] sets the
//! agent identity on every message.
//!
//! Lengths are counted as LINE counts them: in UTF-16 code units (an emoji outside the BMP counts
//! 2).

use serde_json::{Map, Value};

/// Message objects per reply or push call (`maxItems` of `messages`).
pub const MAX_MESSAGES_PER_CALL: usize = 5;
/// Longest `text` of a text message, in UTF-16 code units.
pub const MAX_TEXT_LENGTH: usize = 5000;
/// Longest `sender.name`, in UTF-16 code units.
pub const MAX_SENDER_NAME_LENGTH: usize = 20;
/// Longest `quoteToken` omniline passes on (LINE sets no bound; its tokens are about a hundred
/// characters).
pub const MAX_QUOTE_TOKEN_LENGTH: usize = 1000;
/// Message `type`s that can quote another message (`quoteToken` of LINE's TextMessage,
/// TextMessageV2 and StickerMessage).
pub const QUOTING_TYPES: [&str; 3] = ["text", "textV2", "sticker"];

/// Whether `token` can be a LINE `quoteToken`: 1 to [`MAX_QUOTE_TOKEN_LENGTH`] printable ASCII
/// characters, no spaces (LINE's tokens are opaque; whether LINE knows it is LINE's to say).
pub fn is_quote_token(token: &str) -> bool {
    (1..=MAX_QUOTE_TOKEN_LENGTH).contains(&token.len())
        && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Message `type`s LINE accepts, as omniline sends them.
const LINE_TYPES: [&str; 10] = [
    "text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template",
    "flex",
];

/// A message [`prepare`] cannot send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {index}: {problem}")]
pub struct MessageError {
    /// Position of the message in the input.
    pub index: usize,
    pub problem: MessageProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageProblem {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no string \"type\"")]
    MissingType,
    #[error("unsupported type {0:?}")]
    UnsupportedType(String),
    #[error("{message_type} message without a string {field:?}")]
    MissingField {
        message_type: &'static str,
        field: &'static str,
    },
}

/// The length of `s` as LINE counts it (UTF-16 code units).
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Splits `text` into pieces of at most `max` UTF-16 code units, in order; concatenated, the
/// pieces are `text` exactly. An empty text gives no piece; a text that fits gives one.
///
/// A piece ends, by preference, after the last newline, else after the last whitespace, found in
/// the last 20% of the `max` window; otherwise at the last boundary that does not cut a
/// grapheme-ish unit (see [`is_break_allowed`]); otherwise at the last char boundary. A piece
/// never ends inside a char (nor a surrogate pair). Only when a single char is wider than `max`
/// (`max` < 2 and an astral char) does a piece exceed `max`: it then holds that one char.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    // units[i]: UTF-16 offset of boundary i (before chars[i]); units[n]: the whole length.
    let mut units = Vec::with_capacity(n + 1);
    let mut total = 0;
    for &(_, c) in &chars {
        units.push(total);
        total += c.len_utf16();
    }
    units.push(total);
    let byte_at = |i: usize| chars.get(i).map_or(text.len(), |&(b, _)| b);

    let mut pieces = Vec::new();
    let mut start = 0;
    while start < n {
        if total - units[start] <= max {
            pieces.push(text[byte_at(start)..].to_owned());
            break;
        }
        // The last boundary within `max` units of `start` (units[start] itself qualifies).
        let limit = units[start] + max;
        let hard = units.partition_point(|&u| u <= limit) - 1;
        let end = if hard == start {
            start + 1 // a single char wider than `max`: keep it whole
        } else {
            choose_break(&chars, &units, start, hard, max)
        };
        pieces.push(text[byte_at(start)..byte_at(end)].to_owned());
        start = end;
    }
    pieces
}

/// Where to end the piece that starts at boundary `start`, `hard` being the last boundary that
/// fits (`hard > start`).
fn choose_break(
    chars: &[(usize, char)],
    units: &[usize],
    start: usize,
    hard: usize,
    max: usize,
) -> usize {
    let soft_floor = units[start] + (max - max / 5);
    let soft = || {
        (start + 1..=hard)
            .rev()
            .take_while(|&b| units[b] >= soft_floor)
    };
    if let Some(b) = soft().find(|&b| chars[b - 1].1 == '\n') {
        return b;
    }
    if let Some(b) = soft().find(|&b| chars[b - 1].1.is_whitespace() && is_break_allowed(chars, b))
    {
        return b;
    }
    (start + 1..=hard)
        .rev()
        .find(|&b| is_break_allowed(chars, b))
        .unwrap_or(hard)
}

/// Whether boundary `b` (before `chars[b]`) may end a piece: an approximation of extended
/// grapheme cluster boundaries without Unicode tables. Not between CR and LF, not before a
/// combining mark, variation selector, emoji modifier, tag or joiner, not after a zero-width
/// joiner, not inside a regional-indicator pair (a flag).
fn is_break_allowed(chars: &[(usize, char)], b: usize) -> bool {
    if b == 0 || b >= chars.len() {
        return true;
    }
    let (prev, next) = (chars[b - 1].1, chars[b].1);
    if prev == '\r' && next == '\n' {
        return false;
    }
    if is_extend(next) || prev == '\u{200D}' {
        return false;
    }
    if is_regional_indicator(prev) && is_regional_indicator(next) {
        let run = chars[..b]
            .iter()
            .rev()
            .take_while(|&&(_, c)| is_regional_indicator(c))
            .count();
        return run % 2 == 0;
    }
    true
}

/// Chars that attach to the one before them (a subset of Grapheme_Extend, plus ZWJ and emoji
/// modifiers), covering Latin/Cyrillic/Arabic/Hebrew diacritics, Thai vowels and tone marks,
/// Japanese (semi-)voiced sound marks, keycaps, flags' tags and emoji sequences.
fn is_extend(c: char) -> bool {
    matches!(c,
        '\u{0300}'..='\u{036F}' // combining diacritical marks
        | '\u{0483}'..='\u{0489}' // Cyrillic
        | '\u{0591}'..='\u{05BD}' | '\u{05BF}' | '\u{05C1}'..='\u{05C2}' | '\u{05C4}'..='\u{05C5}' | '\u{05C7}' // Hebrew
        | '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}' // Arabic
        | '\u{0E31}' | '\u{0E34}'..='\u{0E3A}' | '\u{0E47}'..='\u{0E4E}' // Thai
        | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}'
        | '\u{200C}'..='\u{200D}' // zero-width non-joiner, joiner
        | '\u{3099}'..='\u{309A}' | '\u{FF9E}'..='\u{FF9F}' // Japanese sound marks
        | '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}' // variation selectors
        | '\u{1F3FB}'..='\u{1F3FF}' // emoji skin tones
        | '\u{E0020}'..='\u{E007F}' // tags
    )
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

/// The longest prefix of `s` of at most `max` UTF-16 code units that ends at an allowed break.
fn truncate_utf16(s: &str, max: usize) -> &str {
    if utf16_len(s) <= max {
        return s;
    }
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut units = 0;
    let mut last_fit = 0; // boundary index
    for (i, &(_, c)) in chars.iter().enumerate() {
        units += c.len_utf16();
        if units > max {
            break;
        }
        last_fit = i + 1;
    }
    let end = (1..=last_fit)
        .rev()
        .find(|&b| is_break_allowed(&chars, b))
        .unwrap_or(last_fit);
    &s[..chars.get(end).map_or(s.len(), |&(b, _)| b)]
}

/// Validates `messages` and groups them, in order, into calls of at most
/// [`MAX_MESSAGES_PER_CALL`] message objects. Empty input gives no call.
///
/// - Each message must be an object with a string `type`: one of LINE's `text`, `sticker`,
///   `image`, `video`, `audio`, `location`, `imagemap`, `template`, `flex` (passed through as
///   is: LINE validates the rest), or omniline's `file`.
/// - `{"type":"file","fileName","url"}` becomes the text `"{fileName}\n{url}"` (its `quickReply`
///   and `sender` kept).
/// - A text longer than [`MAX_TEXT_LENGTH`] becomes several text messages ([`split_text`]), in
///   place. Every piece keeps the other properties (`sender` included, so the whole text shows
///   the same identity), except that `quickReply` goes on the last piece only (LINE shows the
///   quick replies of the last message) and each LINE emoji (`emojis[]`) goes to the piece that
///   holds its `index`, re-indexed from that piece's start (an emoji without a numeric index
///   stays on the first piece). Pieces without emojis carry no `emojis`.
pub fn prepare(messages: &[Value]) -> Result<Vec<Vec<Value>>, MessageError> {
    let mut prepared = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        let error = |problem| MessageError { index, problem };
        let object = message
            .as_object()
            .ok_or(error(MessageProblem::NotAnObject))?;
        let message_type = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or(error(MessageProblem::MissingType))?;
        match message_type {
            "text" => {
                let text = string_field(object, "text").ok_or(error(missing("text", "text")))?;
                push_text(object.clone(), text, &mut prepared);
            }
            "file" => {
                let name =
                    string_field(object, "fileName").ok_or(error(missing("file", "fileName")))?;
                let url = string_field(object, "url").ok_or(error(missing("file", "url")))?;
                let mut text = Map::new();
                text.insert("type".into(), "text".into());
                for key in ["quickReply", "sender"] {
                    if let Some(v) = object.get(key) {
                        text.insert(key.into(), v.clone());
                    }
                }
                push_text(text, &format!("{name}\n{url}"), &mut prepared);
            }
            t if LINE_TYPES.contains(&t) => prepared.push(message.clone()),
            other => return Err(error(MessageProblem::UnsupportedType(other.to_owned()))),
        }
    }
    Ok(prepared
        .chunks(MAX_MESSAGES_PER_CALL)
        .map(<[Value]>::to_vec)
        .collect())
}

fn missing(message_type: &'static str, field: &'static str) -> MessageProblem {
    MessageProblem::MissingField {
        message_type,
        field,
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// Pushes the text message `template` with `text`, split when too long (see [`prepare`]).
fn push_text(mut template: Map<String, Value>, text: &str, out: &mut Vec<Value>) {
    if utf16_len(text) <= MAX_TEXT_LENGTH {
        template.insert("text".into(), text.into());
        out.push(Value::Object(template));
        return;
    }
    let quick_reply = template.remove("quickReply");
    let quote_token = template.remove("quoteToken");
    let emojis = match template.remove("emojis") {
        Some(Value::Array(emojis)) => emojis,
        _ => Vec::new(),
    };
    let pieces = split_text(text, MAX_TEXT_LENGTH);
    let last = pieces.len() - 1;
    let mut piece_start = 0; // UTF-16 offset of the piece in `text`
    for (i, piece) in pieces.into_iter().enumerate() {
        let piece_len = utf16_len(&piece);
        let piece_end = piece_start + piece_len;
        let mut message = template.clone();
        let piece_emojis: Vec<Value> = emojis
            .iter()
            .filter_map(|emoji| {
                match emoji
                    .get("index")
                    .and_then(Value::as_u64)
                    .map(|x| x as usize)
                {
                    Some(at) if (piece_start..piece_end).contains(&at) => {
                        let mut emoji = emoji.clone();
                        emoji["index"] = (at - piece_start).into();
                        Some(emoji)
                    }
                    Some(_) => None,
                    None => (i == 0).then(|| emoji.clone()),
                }
            })
            .collect();
        message.insert("text".into(), piece.into());
        if !piece_emojis.is_empty() {
            message.insert("emojis".into(), piece_emojis.into());
        }
        if i == 0 {
            if let Some(quote_token) = &quote_token {
                message.insert("quoteToken".into(), quote_token.clone());
            }
        }
        if i == last {
            if let Some(quick_reply) = &quick_reply {
                message.insert("quickReply".into(), quick_reply.clone());
            }
        }
        out.push(Value::Object(message));
        piece_start = piece_end;
    }
}

/// Sets `sender` (the agent identity shown instead of the account's) on every message object:
/// `name` truncated to [`MAX_SENDER_NAME_LENGTH`] UTF-16 code units (never inside a char) and
/// `iconUrl` when given. An empty name is left out; with neither, messages are left untouched.
/// Non-objects are skipped ([`prepare`] reports them).
pub fn with_sender(messages: &mut [Value], name: &str, icon_url: Option<&str>) {
    let mut sender = Map::new();
    let name = truncate_utf16(name.trim(), MAX_SENDER_NAME_LENGTH);
    if !name.is_empty() {
        sender.insert("name".into(), name.into());
    }
    if let Some(icon_url) = icon_url.filter(|u| !u.is_empty()) {
        sender.insert("iconUrl".into(), icon_url.into());
    }
    if sender.is_empty() {
        return;
    }
    for message in messages {
        if let Some(object) = message.as_object_mut() {
            object.insert("sender".into(), Value::Object(sender.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assert_pieces(text: &str, max: usize) -> Vec<String> {
        let pieces = split_text(text, max);
        assert_eq!(pieces.concat(), text);
        for piece in &pieces {
            assert!(!piece.is_empty());
            assert!(utf16_len(piece) <= max, "{piece:?} over {max}");
        }
        pieces
    }

    #[test]
    fn short_and_empty_texts() {
        assert_eq!(split_text("", 10), Vec::<String>::new());
        assert_eq!(split_text("hello", 5), vec!["hello"]);
        assert_eq!(split_text("hello", 5000), vec!["hello"]);
    }

    #[test]
    fn ascii_breaks_after_whitespace_or_newline_in_the_last_fifth() {
        // Window of 10: the last 20% is units 8..=10 from the piece's start.
        assert_eq!(
            assert_pieces("aaaaaaaa bbbbbbbbbb", 10),
            vec!["aaaaaaaa ", "bbbbbbbbbb"]
        );
        // A newline wins over a later space.
        assert_eq!(
            assert_pieces("aaaaaaa\nb cccccccc", 10),
            vec!["aaaaaaa\n", "b cccccccc"]
        );
        // A space too early (before the last 20%) is ignored: hard break.
        assert_eq!(
            assert_pieces("aa bbbbbbbbbbbbbbbb", 10),
            vec!["aa bbbbbbb", "bbbbbbbbb"]
        );
        // No whitespace at all: hard breaks.
        assert_eq!(
            assert_pieces(&"x".repeat(25), 10),
            vec!["x".repeat(10), "x".repeat(10), "x".repeat(5)]
        );
        // CR LF stays together.
        assert_eq!(
            assert_pieces("aaaaaaaaa\r\nbb", 10),
            vec!["aaaaaaaaa", "\r\nbb"]
        );
    }

    #[test]
    fn japanese_counts_one_unit_per_char() {
        let text = "こんにちは。今日はいい天気ですね。明日も晴れるでしょう。";
        assert_eq!(utf16_len(text), text.chars().count());
        let pieces = assert_pieces(text, 10);
        assert!(pieces.iter().all(|p| p.chars().count() <= 10));
        // An ideographic space is whitespace.
        assert_eq!(
            assert_pieces("ありがとうござい\u{3000}ました", 10),
            vec!["ありがとうござい\u{3000}", "ました"]
        );
        // A combining voiced sound mark stays with its kana.
        assert_eq!(
            assert_pieces("かかかかか\u{304B}\u{3099}", 6),
            vec!["かかかかか", "\u{304B}\u{3099}"]
        );
    }

    #[test]
    fn surrogate_pairs_are_never_cut() {
        // 9 units of ASCII then an emoji (2 units) at the boundary of a 10-unit window.
        let text = format!("{}😀{}", "a".repeat(9), "b".repeat(3));
        assert_eq!(utf16_len(&text), 14);
        assert_eq!(
            assert_pieces(&text, 10),
            vec!["a".repeat(9), format!("😀{}", "bbb")]
        );
        // Only emojis: 5 per window of 10 (or 11).
        let emojis = "😀".repeat(12);
        let pieces = assert_pieces(&emojis, 11);
        assert_eq!(
            pieces.iter().map(|p| p.chars().count()).collect::<Vec<_>>(),
            vec![5, 5, 2]
        );
        // A skin-tone modifier, a ZWJ sequence and a flag stay whole.
        let family = "👩\u{200D}👩\u{200D}👧"; // 8 units
        assert_eq!(
            assert_pieces(&format!("ab{family}"), 8),
            vec!["ab".to_owned(), family.to_owned()]
        );
        assert_eq!(assert_pieces("aaaaaaa👍🏽", 10), vec!["aaaaaaa", "👍🏽"]);
        assert_eq!(assert_pieces("a🇯🇵🇹🇭", 7), vec!["a🇯🇵", "🇹🇭"]);
        // A char wider than the window is kept whole.
        assert_eq!(split_text("😀😀", 1), vec!["😀", "😀"]);
    }

    #[test]
    fn twelve_thousand_chars_make_three_pieces_in_order() {
        let text: String = (0..12_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let pieces = assert_pieces(&text, MAX_TEXT_LENGTH);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[0].len(), 5000);
        assert_eq!(pieces[1].len(), 5000);
        assert_eq!(pieces[2].len(), 2000);
        // With words, each piece ends after a space.
        let words = "word ".repeat(2_400);
        let pieces = assert_pieces(&words, MAX_TEXT_LENGTH);
        assert_eq!(pieces.len(), 3);
        assert!(pieces[..2].iter().all(|p| p.ends_with(' ')));
    }

    #[test]
    fn prepare_groups_by_five_in_order() {
        let messages: Vec<Value> = (0..7)
            .map(|i| json!({"type": "text", "text": format!("m{i}")}))
            .collect();
        let calls = prepare(&messages).unwrap();
        assert_eq!(calls.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 2]);
        assert_eq!(calls.concat(), messages);
        assert_eq!(prepare(&[]).unwrap(), Vec::<Vec<Value>>::new());
    }

    #[test]
    fn a_long_text_is_split_in_place() {
        let long = "あ".repeat(12_000);
        let messages = vec![
            json!({"type": "sticker", "packageId": "446", "stickerId": "1988"}),
            json!({"type": "text", "text": long}),
            json!({"type": "image", "originalContentUrl": "https://x.test/a.jpg", "previewImageUrl": "https://x.test/a.jpg"}),
        ];
        let calls = prepare(&messages).unwrap();
        assert_eq!(calls.len(), 1);
        let flat = &calls[0];
        assert_eq!(flat.len(), 5);
        assert_eq!(flat[0], messages[0]);
        assert_eq!(flat[4], messages[2]);
        let text: String = flat[1..4]
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, long);
        assert!(flat[1..4]
            .iter()
            .all(|m| m["type"] == "text"
                && utf16_len(m["text"].as_str().unwrap()) <= MAX_TEXT_LENGTH));
    }

    #[test]
    fn a_quote_goes_on_the_first_piece_only() {
        let messages = vec![json!({
            "type": "text", "text": "x".repeat(10_001), "quoteToken": "q3Plxr4AgKd",
        })];
        let flat = &prepare(&messages).unwrap()[0];
        assert_eq!(flat.len(), 3);
        assert_eq!(flat[0]["quoteToken"], "q3Plxr4AgKd");
        assert!(flat[1..].iter().all(|m| m.get("quoteToken").is_none()));
        let short = vec![json!({"type": "text", "text": "hi", "quoteToken": "q"})];
        assert_eq!(prepare(&short).unwrap(), vec![short.clone()]);
    }

    #[test]
    fn quote_tokens_are_printable_ascii_of_bounded_length() {
        assert!(is_quote_token(
            "q3Plxr4AgKd4AD9LpSlWV0gK2ONtLcXwKIBGZ5GWgVQ0hmwKdVz2T3tk"
        ));
        assert!(is_quote_token("a+/=_-"));
        assert!(is_quote_token(&"q".repeat(MAX_QUOTE_TOKEN_LENGTH)));
        assert!(!is_quote_token(&"q".repeat(MAX_QUOTE_TOKEN_LENGTH + 1)));
        assert!(!is_quote_token(""));
        assert!(!is_quote_token("a b"));
        assert!(!is_quote_token("a\nb"));
        assert!(!is_quote_token("引用"));
    }

    #[test]
    fn quick_reply_goes_on_the_last_piece_and_sender_on_every_piece() {
        let quick_reply = json!({"items": [{"type": "action", "action": {"type": "message", "label": "Yes", "text": "Yes"}}]});
        let sender = json!({"name": "Sato"});
        let messages = vec![json!({
            "type": "text", "text": "x".repeat(10_001),
            "quickReply": quick_reply, "sender": sender,
        })];
        let calls = prepare(&messages).unwrap();
        let flat = &calls[0];
        assert_eq!(flat.len(), 3);
        assert!(flat[..2].iter().all(|m| m.get("quickReply").is_none()));
        assert_eq!(flat[2]["quickReply"], quick_reply);
        assert!(flat.iter().all(|m| m["sender"] == sender));
        // Unsplit: untouched.
        let short = vec![json!({"type": "text", "text": "hi", "quickReply": quick_reply})];
        assert_eq!(prepare(&short).unwrap(), vec![short.clone()]);
    }

    #[test]
    fn emojis_follow_their_piece() {
        let mut text = "x".repeat(10_000);
        text.replace_range(3..4, "$");
        text.replace_range(7002..7003, "$");
        let messages = vec![json!({
            "type": "text", "text": text,
            "emojis": [
                {"index": 3, "productId": "p", "emojiId": "001"},
                {"index": 7002, "productId": "p", "emojiId": "002"},
            ],
        })];
        let flat = prepare(&messages).unwrap().concat();
        assert_eq!(flat.len(), 2);
        assert_eq!(
            flat[0]["emojis"],
            json!([{"index": 3, "productId": "p", "emojiId": "001"}])
        );
        assert_eq!(
            flat[1]["emojis"],
            json!([{"index": 2002, "productId": "p", "emojiId": "002"}])
        );
        assert_eq!(&flat[1]["text"].as_str().unwrap()[2002..2003], "$");
    }

    #[test]
    fn a_file_becomes_a_text_with_its_link() {
        let messages = vec![json!({
            "type": "file", "fileName": "invoice.pdf", "url": "https://files.test/invoice.pdf",
            "sender": {"name": "Sato"},
        })];
        assert_eq!(
            prepare(&messages).unwrap(),
            vec![vec![json!({
                "type": "text", "text": "invoice.pdf\nhttps://files.test/invoice.pdf",
                "sender": {"name": "Sato"},
            })]]
        );
        let err = prepare(&[json!({"type": "file", "fileName": "a.pdf"})]).unwrap_err();
        assert_eq!(
            err,
            MessageError {
                index: 0,
                problem: missing("file", "url")
            }
        );
    }

    #[test]
    fn invalid_messages_name_their_index() {
        let ok = json!({"type": "text", "text": "ok"});
        let cases = [
            (json!("text"), MessageProblem::NotAnObject),
            (json!({"text": "no type"}), MessageProblem::MissingType),
            (json!({"type": 3}), MessageProblem::MissingType),
            (
                json!({"type": "textV3"}),
                MessageProblem::UnsupportedType("textV3".into()),
            ),
            (json!({"type": "text"}), missing("text", "text")),
        ];
        for (bad, problem) in cases {
            let err = prepare(&[ok.clone(), ok.clone(), bad.clone()]).unwrap_err();
            assert_eq!(err, MessageError { index: 2, problem }, "{bad}");
            assert!(err.to_string().starts_with("message 2: "), "{err}");
        }
        for t in LINE_TYPES {
            assert!(prepare(&[json!({"type": t, "text": "x"})]).is_ok(), "{t}");
        }
    }

    #[test]
    fn with_sender_sets_a_truncated_name_on_every_message() {
        let mut messages = vec![
            json!({"type": "text", "text": "a"}),
            json!({"type": "sticker"}),
            json!("junk"),
        ];
        with_sender(
            &mut messages,
            "Customer Support Team Tokyo",
            Some("https://x.test/i.png"),
        );
        for m in &messages[..2] {
            assert_eq!(
                m["sender"],
                json!({"name": "Customer Support Tea", "iconUrl": "https://x.test/i.png"})
            );
        }
        assert_eq!(messages[2], json!("junk"));

        let mut messages = vec![json!({"type": "text", "text": "a"})];
        with_sender(
            &mut messages,
            "サポート担当の佐藤です。よろしくお願いいたします",
            None,
        );
        let name = messages[0]["sender"]["name"].as_str().unwrap();
        assert_eq!(name.chars().count(), 20);
        assert_eq!(messages[0]["sender"].get("iconUrl"), None);

        // Emojis count 2 units and are never cut.
        let mut messages = vec![json!({"type": "text", "text": "a"})];
        with_sender(&mut messages, &format!("{}😀", "a".repeat(19)), None);
        assert_eq!(messages[0]["sender"]["name"], "a".repeat(19));

        let mut messages = vec![json!({"type": "text", "text": "a"})];
        with_sender(&mut messages, "  ", None);
        assert_eq!(messages[0].get("sender"), None);
    }
}
