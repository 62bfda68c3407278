//! Typed model of every LINE webhook event, after LINE's OpenAPI spec (`webhook.yml`).
//!
//! Robustness rules, since LINE adds event types and fields without notice:
//! - an unknown `type` (event, message content, source, module content) is kept whole as
//!   `Unknown(serde_json::Value)`; deserialization never fails on it;
//! - a known type whose shape does not match the spec (missing required field, wrong JSON type)
//!   also falls back to `Unknown`, with a `tracing::warn!` naming the schema, the type and the
//!   serde error (quoted values redacted, never the body);
//! - unknown fields are kept in each struct's `extra` map and serialized back, so a
//!   deserialize/serialize round trip loses nothing;
//! - string enums of the spec carry an `Other(String)` variant instead of failing.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// JSON members this model does not know, kept verbatim.
pub type Extra = Map<String, Value>;

// ---------------------------------------------------------------------------------------------
// String enums with an open `Other` variant
// ---------------------------------------------------------------------------------------------

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this model does not know yet, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Ok(match value.as_str() {
                    $($wire => Self::$variant,)+
                    _ => Self::Other(value),
                })
            }
        }
    };
}

string_enum! {
    /// LINE `EventMode`: channel state.
    EventMode {
        /// `active`
        Active => "active",
        /// `standby`
        Standby => "standby",
    }
}

string_enum! {
    /// LINE `ContentProvider.type`: who hosts the media file.
    ContentProviderType {
        /// `line`
        Line => "line",
        /// `external`
        External => "external",
    }
}

string_enum! {
    /// LINE `StickerMessageContent.stickerResourceType`.
    StickerResourceType {
        /// `STATIC`
        Static => "STATIC",
        /// `ANIMATION`
        Animation => "ANIMATION",
        /// `SOUND`
        Sound => "SOUND",
        /// `ANIMATION_SOUND`
        AnimationSound => "ANIMATION_SOUND",
        /// `POPUP`
        Popup => "POPUP",
        /// `POPUP_SOUND`
        PopupSound => "POPUP_SOUND",
        /// `CUSTOM`
        Custom => "CUSTOM",
        /// `MESSAGE`
        Message => "MESSAGE",
        /// `NAME_TEXT`
        NameText => "NAME_TEXT",
        /// `PER_STICKER_TEXT`
        PerStickerText => "PER_STICKER_TEXT",
    }
}

string_enum! {
    /// LINE `Mentionee.type`: mentioned target.
    MentioneeType {
        /// `user` (UserMentionee)
        User => "user",
        /// `all` (AllMentionee)
        All => "all",
    }
}

string_enum! {
    /// LINE `BeaconContent.type`.
    BeaconEventType {
        /// `enter`
        Enter => "enter",
        /// `banner`
        Banner => "banner",
        /// `stay`
        Stay => "stay",
    }
}

string_enum! {
    /// LINE `LinkContent.result`.
    LinkResult {
        /// `ok`
        Ok => "ok",
        /// `failed`
        Failed => "failed",
    }
}

string_enum! {
    /// LINE `MembershipContent.type`.
    MembershipEventType {
        /// `joined` (JoinedMembershipContent)
        Joined => "joined",
        /// `left` (LeftMembershipContent)
        Left => "left",
        /// `renewed` (RenewedMembershipContent)
        Renewed => "renewed",
    }
}

string_enum! {
    /// LINE `DetachedModuleContent.reason`.
    DetachedModuleReason {
        /// `bot_deleted`
        BotDeleted => "bot_deleted",
    }
}

// ---------------------------------------------------------------------------------------------
// Tagged-object decoding with fallback
// ---------------------------------------------------------------------------------------------

/// Splits the string `type` tag off a JSON object; anything else is handed back untouched.
fn split_tag(value: Value) -> Result<(String, Map<String, Value>), Value> {
    match value {
        Value::Object(mut map) => match map.remove("type") {
            Some(Value::String(tag)) => Ok((tag, map)),
            Some(other) => {
                map.insert("type".to_owned(), other);
                Err(Value::Object(map))
            }
            None => Err(Value::Object(map)),
        },
        other => Err(other),
    }
}

/// Puts the `type` tag back on an object body, rebuilding the original JSON.
fn restore_tag(tag: &str, mut body: Map<String, Value>) -> Value {
    body.insert("type".to_owned(), Value::String(tag.to_owned()));
    Value::Object(body)
}

/// Parses the body (tag removed) of a known tagged type; on mismatch warns and returns the
/// original JSON.
fn parse_known<T: DeserializeOwned>(
    schema: &'static str,
    tag: &str,
    body: Map<String, Value>,
) -> Result<T, Value> {
    let value = Value::Object(body);
    match T::deserialize(&value) {
        Ok(parsed) => Ok(parsed),
        Err(err) => {
            tracing::warn!(
                schema,
                r#type = tag,
                error = %redact_quoted(&err.to_string()),
                "LINE webhook object does not match its schema; kept as unknown JSON"
            );
            Err(match value {
                Value::Object(body) => restore_tag(tag, body),
                other => other,
            })
        }
    }
}

/// Notes an unknown tag (debug only: callers decide how loud to be).
fn unknown_tag(schema: &'static str, tag: &str, body: Map<String, Value>) -> Result<Value, Value> {
    tracing::debug!(
        schema,
        r#type = tag,
        "unknown LINE webhook type; kept as unknown JSON"
    );
    Err(restore_tag(tag, body))
}

/// Blanks the contents of double-quoted strings in a serde error message, so payload text
/// (serde quotes unexpected string values) never reaches the logs; field names in backticks stay.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_quote = false;
    let mut escaped = false;
    for ch in message.chars() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_quote = false;
                out.push_str("…\"");
            }
            continue;
        }
        out.push(ch);
        if ch == '"' {
            in_quote = true;
        }
    }
    if in_quote {
        out.push('…');
    }
    out
}

/// Looks up a string member of a raw JSON object.
fn raw_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Whether a value (or anything it holds) carries members this model does not know.
trait HasUnknown {
    fn has_unknown(&self) -> bool;
}

impl<T: HasUnknown> HasUnknown for Option<T> {
    fn has_unknown(&self) -> bool {
        self.as_ref().is_some_and(HasUnknown::has_unknown)
    }
}

impl<T: HasUnknown> HasUnknown for Vec<T> {
    fn has_unknown(&self) -> bool {
        self.iter().any(HasUnknown::has_unknown)
    }
}

macro_rules! has_unknown {
    ($ty:ty $(, $field:ident)*) => {
        impl HasUnknown for $ty {
            fn has_unknown(&self) -> bool {
                !self.extra.is_empty() $(|| self.$field.has_unknown())*
            }
        }
    };
}

/// Declares a LINE object tagged by `type` after the spec's `discriminator.mapping` (each tag to
/// the struct of its schema), with `Unknown(Value)` for anything else, and gives it: `from_value`
/// (never fails: an unknown tag, or a known one whose body does not match its schema, is kept
/// whole as `Unknown`, see `parse_known`), the tag getter `$tag_fn`, `is_unknown`, a
/// `Deserialize` through `from_value`, `HasUnknown`, and `payload` (the known struct as
/// `$view`, or the raw JSON of `Unknown`).
macro_rules! tagged_union {
    (
        $(#[$meta:meta])*
        $name:ident, tag $tag_fn:ident, payload $view:ty {
            $($variant:ident($schema:ident) => $tag:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(tag = "type")]
        pub enum $name {
            $(
                #[doc = concat!("`", $tag, "`")]
                #[serde(rename = $tag)]
                $variant($schema),
            )+
            /// Unknown type, or a known type not matching the spec: the whole JSON, kept and
            /// serialized as is.
            #[serde(untagged)]
            Unknown(Value),
        }

        impl $name {
            /// Parses from JSON; never fails (unknown or malformed → `Unknown`).
            pub fn from_value(value: Value) -> Self {
                let (tag, body) = match split_tag(value) {
                    Ok(split) => split,
                    Err(raw) => return Self::Unknown(raw),
                };
                match tag.as_str() {
                    $($tag => parse_known(stringify!($schema), &tag, body).map(Self::$variant),)+
                    _ => unknown_tag(stringify!($name), &tag, body).map(Self::Unknown),
                }
                .unwrap_or_else(Self::Unknown)
            }

            /// The `type` tag as on the wire (the raw one for `Unknown`; empty if absent).
            pub fn $tag_fn(&self) -> &str {
                match self {
                    $(Self::$variant(_) => $tag,)+
                    Self::Unknown(raw) => raw_str(raw, "type").unwrap_or(""),
                }
            }

            /// Whether this fell back to `Unknown`.
            pub fn is_unknown(&self) -> bool {
                matches!(self, Self::Unknown(_))
            }

            /// The struct of a known type, or the raw JSON of `Unknown`.
            fn payload(&self) -> Result<&$view, &Value> {
                match self {
                    $(Self::$variant(payload) => Ok(payload),)+
                    Self::Unknown(raw) => Err(raw),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(Self::from_value(Value::deserialize(deserializer)?))
            }
        }

        impl HasUnknown for $name {
            fn has_unknown(&self) -> bool {
                self.payload().is_ok_and(|payload| payload.has_unknown())
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Callback request and common event fields
// ---------------------------------------------------------------------------------------------

/// LINE `CallbackRequest`: the webhook request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequest {
    /// User ID of the bot that should receive the events (`U[0-9a-f]{32}`).
    pub destination: String,
    /// Webhook events; may be empty (connection check).
    pub events: Vec<Event>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// LINE `Event` base fields shared by every event (unknown top-level members go to the event's `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCommon {
    /// Source of the event (absent for some module-channel events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Time of the event in milliseconds since the epoch.
    pub timestamp: i64,
    /// Channel state.
    pub mode: EventMode,
    /// ULID uniquely identifying the webhook event.
    pub webhook_event_id: String,
    /// Delivery context.
    pub delivery_context: DeliveryContext,
}

impl HasUnknown for EventCommon {
    fn has_unknown(&self) -> bool {
        self.source.has_unknown() || self.delivery_context.has_unknown()
    }
}

/// LINE `DeliveryContext`: webhook delivery information.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryContext {
    /// Whether the webhook event is a redelivered one.
    pub is_redelivery: bool,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(DeliveryContext);

// ---------------------------------------------------------------------------------------------
// Source
// ---------------------------------------------------------------------------------------------

tagged_union! {
    /// LINE `Source`: where the event comes from, tagged by `type`.
    Source, tag source_type, payload dyn HasUnknown {
        User(UserSource) => "user",
        Group(GroupSource) => "group",
        Room(RoomSource) => "room",
    }
}

/// LINE `UserSource`: one-to-one chat with a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSource {
    /// ID of the source user (optional in the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(UserSource);

/// LINE `GroupSource`: group chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupSource {
    /// Group ID.
    pub group_id: String,
    /// ID of the user (message events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(GroupSource);

/// LINE `RoomSource`: multi-person chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSource {
    /// Room ID.
    pub room_id: String,
    /// ID of the user (message events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(RoomSource);

impl Source {
    /// The conversation to answer in: userId for user, groupId for group, roomId for room.
    pub fn conversation_key(&self) -> Option<&str> {
        match self {
            Source::User(user) => user.user_id.as_deref(),
            Source::Group(group) => Some(&group.group_id),
            Source::Room(room) => Some(&room.room_id),
            Source::Unknown(_) => None,
        }
    }

    /// The user behind the event, when known.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Source::User(user) => user.user_id.as_deref(),
            Source::Group(group) => group.user_id.as_deref(),
            Source::Room(room) => room.user_id.as_deref(),
            Source::Unknown(raw) => raw_str(raw, "userId"),
        }
    }

    /// Group ID for a group source.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Source::Group(group) => Some(&group.group_id),
            _ => None,
        }
    }

    /// Room ID for a room source.
    pub fn room_id(&self) -> Option<&str> {
        match self {
            Source::Room(room) => Some(&room.room_id),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Message contents
// ---------------------------------------------------------------------------------------------

tagged_union! {
    /// LINE `MessageContent`: the message of a message event, tagged by `type`.
    MessageContent, tag message_type, payload dyn HasUnknown {
        Text(TextMessageContent) => "text",
        Image(ImageMessageContent) => "image",
        Video(VideoMessageContent) => "video",
        Audio(AudioMessageContent) => "audio",
        File(FileMessageContent) => "file",
        Location(LocationMessageContent) => "location",
        Sticker(StickerMessageContent) => "sticker",
    }
}

/// LINE `TextMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TextMessageContent {
    /// Message ID.
    pub id: String,
    /// Message text.
    pub text: String,
    /// LINE emojis in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emojis: Option<Vec<Emoji>>,
    /// Mentions in the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention: Option<Mention>,
    /// Token to quote this message.
    pub quote_token: String,
    /// ID of the quoted message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_message_id: Option<String>,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(TextMessageContent, emojis, mention);

/// LINE `Emoji`: a LINE emoji inside a text message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Emoji {
    /// Start position in the text.
    pub index: i64,
    /// Length of the emoji string.
    pub length: i64,
    /// Emoji set product ID.
    pub product_id: String,
    /// Emoji ID inside the set.
    pub emoji_id: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(Emoji);

/// LINE `Mention`: mentions in a text message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mention {
    /// Mentioned targets (max 20).
    pub mentionees: Vec<Mentionee>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(Mention, mentionees);

/// LINE `Mentionee` (`UserMentionee` / `AllMentionee`), one struct discriminated by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mentionee {
    /// `user` or `all`.
    #[serde(rename = "type")]
    pub kind: MentioneeType,
    /// Start position in the text.
    pub index: i64,
    /// Length of the mention text.
    pub length: i64,
    /// Mentioned user (user mentionee, with consent only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Whether the mentioned user is this bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(Mentionee);

/// LINE `ContentProvider`: provider of a media file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentProvider {
    /// `line` or `external`.
    #[serde(rename = "type")]
    pub kind: ContentProviderType,
    /// File URL (external only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_content_url: Option<String>,
    /// Preview image URL (external only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_image_url: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(ContentProvider);

/// LINE `ImageMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageMessageContent {
    /// Message ID.
    pub id: String,
    /// Provider of the image.
    pub content_provider: ContentProvider,
    /// Set of images sent together, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_set: Option<ImageSet>,
    /// Token to quote this message.
    pub quote_token: String,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(ImageMessageContent, content_provider, image_set);

/// LINE `ImageSet`: images sent simultaneously.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSet {
    /// Image set ID.
    pub id: String,
    /// 1-based position in the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
    /// Number of images in the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(ImageSet);

/// LINE `VideoMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoMessageContent {
    /// Message ID.
    pub id: String,
    /// Length in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Provider of the video.
    pub content_provider: ContentProvider,
    /// Token to quote this message.
    pub quote_token: String,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(VideoMessageContent, content_provider);

/// LINE `AudioMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioMessageContent {
    /// Message ID.
    pub id: String,
    /// Provider of the audio.
    pub content_provider: ContentProvider,
    /// Length in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(AudioMessageContent, content_provider);

/// LINE `FileMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMessageContent {
    /// Message ID.
    pub id: String,
    /// File name.
    pub file_name: String,
    /// File size in bytes.
    pub file_size: i64,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(FileMessageContent);

/// LINE `LocationMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationMessageContent {
    /// Message ID.
    pub id: String,
    /// Title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(LocationMessageContent);

/// LINE `StickerMessageContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StickerMessageContent {
    /// Message ID.
    pub id: String,
    /// Sticker package ID.
    pub package_id: String,
    /// Sticker ID.
    pub sticker_id: String,
    /// Sticker resource type.
    pub sticker_resource_type: StickerResourceType,
    /// Up to 15 keywords describing the sticker (experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<String>>,
    /// Text entered by the user (message stickers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Token to quote this message.
    pub quote_token: String,
    /// ID of the quoted message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_message_id: Option<String>,
    /// Token to mark the message as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_token: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(StickerMessageContent);

impl MessageContent {
    /// Message ID (read from the raw JSON for `Unknown`).
    pub fn id(&self) -> Option<&str> {
        match self {
            MessageContent::Text(m) => Some(&m.id),
            MessageContent::Image(m) => Some(&m.id),
            MessageContent::Video(m) => Some(&m.id),
            MessageContent::Audio(m) => Some(&m.id),
            MessageContent::File(m) => Some(&m.id),
            MessageContent::Location(m) => Some(&m.id),
            MessageContent::Sticker(m) => Some(&m.id),
            MessageContent::Unknown(raw) => raw_str(raw, "id"),
        }
    }

    /// Token to quote this message, when the type has one.
    pub fn quote_token(&self) -> Option<&str> {
        match self {
            MessageContent::Text(m) => Some(&m.quote_token),
            MessageContent::Image(m) => Some(&m.quote_token),
            MessageContent::Video(m) => Some(&m.quote_token),
            MessageContent::Sticker(m) => Some(&m.quote_token),
            MessageContent::Audio(_) | MessageContent::File(_) | MessageContent::Location(_) => {
                None
            }
            MessageContent::Unknown(raw) => raw_str(raw, "quoteToken"),
        }
    }

    /// Token to mark the message as read, if present.
    pub fn mark_as_read_token(&self) -> Option<&str> {
        match self {
            MessageContent::Text(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Image(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Video(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Audio(m) => m.mark_as_read_token.as_deref(),
            MessageContent::File(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Location(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Sticker(m) => m.mark_as_read_token.as_deref(),
            MessageContent::Unknown(raw) => raw_str(raw, "markAsReadToken"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Event payloads
// ---------------------------------------------------------------------------------------------

/// LINE `UnsendDetail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsendDetail {
    /// ID of the unsent message.
    pub message_id: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(UnsendDetail);

/// LINE `FollowDetail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowDetail {
    /// True when unblocked, false when added as a friend.
    pub is_unblocked: bool,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(FollowDetail);

/// LINE `JoinedMembers` / `LeftMembers`: users who joined or left (user sources).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Members {
    /// Source objects of the users (`type: user`).
    pub members: Vec<Source>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(Members, members);

impl Members {
    /// User IDs of the members that carry one.
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.members.iter().filter_map(Source::user_id)
    }
}

/// LINE `PostbackContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostbackContent {
    /// Postback data.
    pub data: String,
    /// Picker / rich menu switch parameters (`date`, `time`, `datetime`, `newRichMenuAliasId`, `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(PostbackContent);

/// LINE `VideoPlayComplete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoPlayComplete {
    /// Tracking ID of the video message.
    pub tracking_id: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(VideoPlayComplete);

/// LINE `BeaconContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeaconContent {
    /// Hardware ID of the beacon.
    pub hwid: String,
    /// `enter`, `banner` or `stay`.
    #[serde(rename = "type")]
    pub kind: BeaconEventType,
    /// Device message of the beacon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm: Option<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(BeaconContent);

/// LINE `LinkContent`: account link result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkContent {
    /// `ok` or `failed`.
    pub result: LinkResult,
    /// Nonce given when verifying the user ID.
    pub nonce: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(LinkContent);

/// LINE `MembershipContent` (`Joined`/`Left`/`RenewedMembershipContent`), discriminated by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipContent {
    /// `joined`, `left` or `renewed`.
    #[serde(rename = "type")]
    pub kind: MembershipEventType,
    /// ID of the membership.
    pub membership_id: i64,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(MembershipContent);

tagged_union! {
    /// LINE `ModuleContent`: module channel attach/detach, tagged by `type`.
    ModuleContent, tag module_type, payload dyn HasUnknown {
        Attached(AttachedModuleContent) => "attached",
        Detached(DetachedModuleContent) => "detached",
    }
}

/// LINE `AttachedModuleContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedModuleContent {
    /// Bot user ID of the attached LINE Official Account.
    pub bot_id: String,
    /// Scopes permitted by the admin.
    pub scopes: Vec<String>,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(AttachedModuleContent);

/// LINE `DetachedModuleContent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetachedModuleContent {
    /// Bot user ID of the detached LINE Official Account.
    pub bot_id: String,
    /// Reason for detaching.
    pub reason: DetachedModuleReason,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(DetachedModuleContent);

impl ModuleContent {
    /// Bot user ID (read from the raw JSON for `Unknown`).
    pub fn bot_id(&self) -> Option<&str> {
        match self {
            ModuleContent::Attached(m) => Some(&m.bot_id),
            ModuleContent::Detached(m) => Some(&m.bot_id),
            ModuleContent::Unknown(raw) => raw_str(raw, "botId"),
        }
    }
}

/// LINE `ChatControl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatControl {
    /// Expiry of the chat control, milliseconds since the epoch.
    pub expire_at: i64,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(ChatControl);

/// LINE `PnpDelivery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PnpDelivery {
    /// Hashed phone number or the `X-Line-Delivery-Tag` value.
    pub data: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
has_unknown!(PnpDelivery);

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

/// What every known event carries besides its own fields.
trait EventPayload: HasUnknown {
    fn common(&self) -> &EventCommon;
    fn extra(&self) -> &Extra;
}

/// `HasUnknown` (the common fields, the unknown members and the `$field`s) and `EventPayload`
/// for an event struct.
macro_rules! event_payload {
    ($ty:ty $(, $field:ident)*) => {
        has_unknown!($ty, common $(, $field)*);

        impl EventPayload for $ty {
            fn common(&self) -> &EventCommon {
                &self.common
            }

            fn extra(&self) -> &Extra {
                &self.extra
            }
        }
    };
}

/// LINE `MessageEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    /// The message.
    pub message: MessageContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(MessageEvent, message);

/// LINE `UnsendEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnsendEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// The unsent message.
    pub unsend: UnsendDetail,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(UnsendEvent, unsend);

/// LINE `FollowEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// Follow details.
    pub follow: FollowDetail,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(FollowEvent, follow);

/// LINE `UnfollowEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnfollowEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(UnfollowEvent);

/// LINE `JoinEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(JoinEvent);

/// LINE `LeaveEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(LeaveEvent);

/// LINE `MemberJoinedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberJoinedEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// Users who joined (`JoinedMembers`).
    pub joined: Members,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(MemberJoinedEvent, joined);

/// LINE `MemberLeftEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberLeftEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Users who left (`LeftMembers`).
    pub left: Members,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(MemberLeftEvent, left);

/// LINE `PostbackEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostbackEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    /// Postback content.
    pub postback: PostbackContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(PostbackEvent, postback);

/// LINE `VideoPlayCompleteEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoPlayCompleteEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// The video watched.
    pub video_play_complete: VideoPlayComplete,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(VideoPlayCompleteEvent, video_play_complete);

/// LINE `BeaconEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BeaconEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// Beacon content.
    pub beacon: BeaconContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(BeaconEvent, beacon);

/// LINE `AccountLinkEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountLinkEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token (absent when linking failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
    /// Link result.
    pub link: LinkContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(AccountLinkEvent, link);

/// LINE `MembershipEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Reply token.
    pub reply_token: String,
    /// Membership content.
    pub membership: MembershipContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(MembershipEvent, membership);

/// LINE `ModuleEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Module content.
    pub module: ModuleContent,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(ModuleEvent, module);

/// LINE `ActivatedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivatedEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Chat control.
    pub chat_control: ChatControl,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(ActivatedEvent, chat_control);

/// LINE `DeactivatedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeactivatedEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(DeactivatedEvent);

/// LINE `BotSuspendedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotSuspendedEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(BotSuspendedEvent);

/// LINE `BotResumedEvent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotResumedEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(BotResumedEvent);

/// LINE `PnpDeliveryCompletionEvent` (`type: delivery`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PnpDeliveryCompletionEvent {
    /// Common event fields.
    #[serde(flatten)]
    pub common: EventCommon,
    /// Delivery details.
    pub delivery: PnpDelivery,
    /// Unknown members.
    #[serde(flatten)]
    pub extra: Extra,
}
event_payload!(PnpDeliveryCompletionEvent, delivery);

tagged_union! {
    /// LINE `Event`: one webhook event, tagged by `type`.
    ///
    /// Deserialization never fails: unknown types and known types that do not match the spec
    /// become `Unknown` with the whole JSON kept.
    Event, tag event_type, payload dyn EventPayload {
        Message(MessageEvent) => "message",
        Unsend(UnsendEvent) => "unsend",
        Follow(FollowEvent) => "follow",
        Unfollow(UnfollowEvent) => "unfollow",
        Join(JoinEvent) => "join",
        Leave(LeaveEvent) => "leave",
        MemberJoined(MemberJoinedEvent) => "memberJoined",
        MemberLeft(MemberLeftEvent) => "memberLeft",
        Postback(PostbackEvent) => "postback",
        VideoPlayComplete(VideoPlayCompleteEvent) => "videoPlayComplete",
        Beacon(BeaconEvent) => "beacon",
        AccountLink(AccountLinkEvent) => "accountLink",
        Membership(MembershipEvent) => "membership",
        Module(ModuleEvent) => "module",
        Activated(ActivatedEvent) => "activated",
        Deactivated(DeactivatedEvent) => "deactivated",
        BotSuspended(BotSuspendedEvent) => "botSuspended",
        BotResumed(BotResumedEvent) => "botResumed",
        Delivery(PnpDeliveryCompletionEvent) => "delivery",
    }
}

impl Event {
    /// Common event fields; `None` for `Unknown`.
    pub fn common(&self) -> Option<&EventCommon> {
        self.payload().ok().map(|e| e.common())
    }

    /// Webhook event ID (read from the raw JSON for `Unknown`).
    pub fn webhook_event_id(&self) -> Option<&str> {
        match self.payload() {
            Ok(e) => Some(&e.common().webhook_event_id),
            Err(raw) => raw_str(raw, "webhookEventId"),
        }
    }

    /// Event time in milliseconds since the epoch (read from the raw JSON for `Unknown`).
    pub fn timestamp(&self) -> Option<i64> {
        match self.payload() {
            Ok(e) => Some(e.common().timestamp),
            Err(raw) => raw.get("timestamp").and_then(Value::as_i64),
        }
    }

    /// Event source; `None` when absent or for `Unknown`.
    pub fn source(&self) -> Option<&Source> {
        self.common().and_then(|common| common.source.as_ref())
    }

    /// Channel mode; `None` for `Unknown`.
    pub fn mode(&self) -> Option<&EventMode> {
        self.common().map(|common| &common.mode)
    }

    /// Whether LINE redelivered this event (read from the raw JSON for `Unknown`).
    pub fn is_redelivery(&self) -> Option<bool> {
        match self.payload() {
            Ok(e) => Some(e.common().delivery_context.is_redelivery),
            Err(raw) => raw
                .get("deliveryContext")
                .and_then(|context| context.get("isRedelivery"))
                .and_then(Value::as_bool),
        }
    }

    /// Reply token, for event types that carry one (read from the raw JSON for `Unknown`).
    pub fn reply_token(&self) -> Option<&str> {
        match self {
            Event::Message(e) => e.reply_token.as_deref(),
            Event::Follow(e) => Some(&e.reply_token),
            Event::Join(e) => Some(&e.reply_token),
            Event::MemberJoined(e) => Some(&e.reply_token),
            Event::Postback(e) => e.reply_token.as_deref(),
            Event::VideoPlayComplete(e) => Some(&e.reply_token),
            Event::Beacon(e) => Some(&e.reply_token),
            Event::AccountLink(e) => e.reply_token.as_deref(),
            Event::Membership(e) => Some(&e.reply_token),
            Event::Unsend(_)
            | Event::Unfollow(_)
            | Event::Leave(_)
            | Event::MemberLeft(_)
            | Event::Module(_)
            | Event::Activated(_)
            | Event::Deactivated(_)
            | Event::BotSuspended(_)
            | Event::BotResumed(_)
            | Event::Delivery(_) => None,
            Event::Unknown(raw) => raw_str(raw, "replyToken"),
        }
    }

    /// Unknown top-level members of a known event; `None` for `Unknown`.
    pub fn extra(&self) -> Option<&Extra> {
        self.payload().ok().map(|e| e.extra())
    }

    /// Names of the unknown top-level members (safe to log: names only, no values).
    pub fn unknown_field_names(&self) -> Vec<&str> {
        self.extra()
            .map(|extra| extra.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether a known event carries members this model does not know, at the top level or in
    /// its nested objects (source, delivery context, payload). False for `Unknown`.
    pub fn has_unknown_fields(&self) -> bool {
        self.has_unknown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: &str = "U4af4980629a1b2c3d4e5f6a7b8c9d0e1";
    const OTHER_USER: &str = "U91eeaf62d9a1b2c3d4e5f6a7b8c9d0e1";
    const GROUP: &str = "Ca56f94637ca1b2c3d4e5f6a7b8c9d0e1";
    const ROOM: &str = "Ra8dbf4673ca1b2c3d4e5f6a7b8c9d0e1";
    const REPLY: &str = "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA";
    const EVENT_ID: &str = "01FZ74A0TDDPYRVKNK77XKC3ZR";

    /// A webhook event of `kind` with the common fields, a user source and `fields` merged in.
    fn event_json(kind: &str, fields: Value) -> Value {
        let mut event = json!({
            "type": kind,
            "timestamp": 1_462_629_479_859_i64,
            "mode": "active",
            "webhookEventId": EVENT_ID,
            "deliveryContext": {"isRedelivery": false},
            "source": {"type": "user", "userId": USER},
        });
        if let (Some(target), Value::Object(fields)) = (event.as_object_mut(), fields) {
            target.extend(fields);
        }
        event
    }

    /// Parses, checks the round trip is lossless and the tag matches, returns the event.
    fn parse(json: Value) -> Event {
        let event: Event = serde_json::from_value(json.clone()).unwrap();
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back, json, "round trip of {}", event.event_type());
        assert_eq!(back["type"].as_str().unwrap_or(""), event.event_type());
        event
    }

    fn message_json(message: Value) -> Value {
        event_json("message", json!({"replyToken": REPLY, "message": message}))
    }

    fn message_content(event: Event) -> MessageContent {
        match event {
            Event::Message(m) => m.message,
            other => panic!("not a message event: {other:?}"),
        }
    }

    #[test]
    fn text_message_with_emojis_and_mentions_in_group() {
        let json = event_json(
            "message",
            json!({
                "replyToken": REPLY,
                "source": {"type": "group", "groupId": GROUP, "userId": USER},
                "message": {
                    "type": "text",
                    "id": "444573844083572737",
                    "quoteToken": "q3Plxr4AgKd...",
                    "text": "@All @example Good Morning!! (love)",
                    "emojis": [{
                        "index": 29, "length": 6,
                        "productId": "5ac1bfd5040ab15980c9b435", "emojiId": "001"
                    }],
                    "mention": {"mentionees": [
                        {"index": 0, "length": 4, "type": "all"},
                        {"index": 5, "length": 8, "userId": OTHER_USER, "type": "user", "isSelf": false}
                    ]}
                }
            }),
        );
        let event = parse(json);
        assert_eq!(event.event_type(), "message");
        assert_eq!(event.reply_token(), Some(REPLY));
        assert_eq!(event.webhook_event_id(), Some(EVENT_ID));
        assert_eq!(event.timestamp(), Some(1_462_629_479_859));
        assert_eq!(event.mode(), Some(&EventMode::Active));
        assert_eq!(event.is_redelivery(), Some(false));
        assert!(!event.has_unknown_fields());
        let source = event.source().unwrap();
        assert!(matches!(source, Source::Group(_)));
        assert_eq!(source.conversation_key(), Some(GROUP));
        assert_eq!(source.user_id(), Some(USER));
        assert_eq!(source.group_id(), Some(GROUP));
        let MessageContent::Text(text) = message_content(event) else {
            panic!("not text")
        };
        assert_eq!(text.id, "444573844083572737");
        assert_eq!(text.text, "@All @example Good Morning!! (love)");
        assert_eq!(text.quote_token, "q3Plxr4AgKd...");
        let emojis = text.emojis.unwrap();
        assert_eq!(emojis.len(), 1);
        assert_eq!(emojis[0].index, 29);
        assert_eq!(emojis[0].product_id, "5ac1bfd5040ab15980c9b435");
        let mentionees = text.mention.unwrap().mentionees;
        assert_eq!(mentionees.len(), 2);
        assert_eq!(mentionees[0].kind, MentioneeType::All);
        assert_eq!(mentionees[1].kind, MentioneeType::User);
        assert_eq!(mentionees[1].user_id.as_deref(), Some(OTHER_USER));
        assert_eq!(mentionees[1].is_self, Some(false));
    }

    #[test]
    fn text_message_with_quote_and_mark_as_read() {
        let event = parse(message_json(json!({
            "type": "text", "id": "468789577898262530", "quoteToken": "q3Plxr4AgKd...",
            "quotedMessageId": "468789532432007169", "markAsReadToken": "30yhdy232...",
            "text": "Chicken, please."
        })));
        let content = message_content(event);
        assert_eq!(content.message_type(), "text");
        assert_eq!(content.id(), Some("468789577898262530"));
        assert_eq!(content.quote_token(), Some("q3Plxr4AgKd..."));
        assert_eq!(content.mark_as_read_token(), Some("30yhdy232..."));
        let MessageContent::Text(text) = content else {
            panic!("not text")
        };
        assert_eq!(
            text.quoted_message_id.as_deref(),
            Some("468789532432007169")
        );
    }

    #[test]
    fn room_source() {
        let event = parse(event_json(
            "join",
            json!({"replyToken": REPLY, "source": {"type": "room", "roomId": ROOM}}),
        ));
        assert!(matches!(event, Event::Join(_)));
        let source = event.source().unwrap();
        assert!(matches!(source, Source::Room(_)));
        assert_eq!(source.source_type(), "room");
        assert_eq!(source.conversation_key(), Some(ROOM));
        assert_eq!(source.room_id(), Some(ROOM));
        assert_eq!(source.user_id(), None);
    }

    #[test]
    fn user_source() {
        let event = parse(event_json("unfollow", json!({})));
        assert!(matches!(event, Event::Unfollow(_)));
        let source = event.source().unwrap();
        assert!(matches!(source, Source::User(_)));
        assert_eq!(source.conversation_key(), Some(USER));
        assert_eq!(source.user_id(), Some(USER));
        assert_eq!(event.reply_token(), None);
    }

    #[test]
    fn unknown_source_type_is_kept() {
        let raw = json!({"type": "channel", "channelId": "X1", "userId": USER});
        let event = parse(event_json("leave", json!({"source": raw.clone()})));
        assert!(matches!(event, Event::Leave(_)));
        let source = event.source().unwrap();
        assert_eq!(source, &Source::Unknown(raw));
        assert!(source.is_unknown());
        assert_eq!(source.source_type(), "channel");
        assert_eq!(source.conversation_key(), None);
        assert_eq!(source.user_id(), Some(USER));
    }

    #[test]
    fn image_message_with_image_set() {
        let content = message_content(parse(message_json(json!({
            "type": "image", "id": "354718705033693859", "quoteToken": "q3Plxr4AgKd...",
            "contentProvider": {"type": "line"},
            "imageSet": {"id": "E005D41A7288F41B65593ED38FF6E9834B046AB36A37921A56BC236F13A91855", "index": 1, "total": 2}
        }))));
        let MessageContent::Image(image) = content else {
            panic!("not image")
        };
        assert_eq!(image.content_provider.kind, ContentProviderType::Line);
        let set = image.image_set.unwrap();
        assert_eq!(set.index, Some(1));
        assert_eq!(set.total, Some(2));
    }

    #[test]
    fn video_message_external_provider() {
        let content = message_content(parse(message_json(json!({
            "type": "video", "id": "325708", "duration": 60000, "quoteToken": "q3Plxr4AgKd...",
            "contentProvider": {
                "type": "external",
                "originalContentUrl": "https://example.com/original.mp4",
                "previewImageUrl": "https://example.com/preview.jpg"
            }
        }))));
        let MessageContent::Video(video) = content else {
            panic!("not video")
        };
        assert_eq!(video.duration, Some(60000));
        assert_eq!(video.content_provider.kind, ContentProviderType::External);
        assert_eq!(
            video.content_provider.original_content_url.as_deref(),
            Some("https://example.com/original.mp4")
        );
    }

    #[test]
    fn audio_message() {
        let content = message_content(parse(message_json(json!({
            "type": "audio", "id": "325708", "duration": 60000,
            "contentProvider": {"type": "line"}
        }))));
        assert_eq!(content.quote_token(), None);
        let MessageContent::Audio(audio) = content else {
            panic!("not audio")
        };
        assert_eq!(audio.duration, Some(60000));
    }

    #[test]
    fn file_message() {
        let content = message_content(parse(message_json(json!({
            "type": "file", "id": "325708", "fileName": "file.txt", "fileSize": 2138
        }))));
        let MessageContent::File(file) = content else {
            panic!("not file")
        };
        assert_eq!(file.file_name, "file.txt");
        assert_eq!(file.file_size, 2138);
    }

    #[test]
    fn location_message() {
        let content = message_content(parse(message_json(json!({
            "type": "location", "id": "325708", "title": "my location",
            "address": "1-3 Kioicho, Chiyoda-ku, Tokyo, 102-8282, Japan",
            "latitude": 35.67966, "longitude": 139.73669
        }))));
        let MessageContent::Location(location) = content else {
            panic!("not location")
        };
        assert_eq!(location.title.as_deref(), Some("my location"));
        assert!((location.latitude - 35.67966).abs() < 1e-9);
        assert!((location.longitude - 139.73669).abs() < 1e-9);
    }

    #[test]
    fn sticker_message() {
        let content = message_content(parse(message_json(json!({
            "type": "sticker", "id": "1501597916", "quoteToken": "q3Plxr4AgKd...",
            "stickerId": "52002738", "packageId": "11537",
            "stickerResourceType": "ANIMATION",
            "keywords": ["cony", "sally", "Staring", "hi", "whatsup"]
        }))));
        let MessageContent::Sticker(sticker) = content else {
            panic!("not sticker")
        };
        assert_eq!(sticker.package_id, "11537");
        assert_eq!(sticker.sticker_id, "52002738");
        assert_eq!(
            sticker.sticker_resource_type,
            StickerResourceType::Animation
        );
        assert_eq!(sticker.keywords.unwrap().len(), 5);
        assert_eq!(sticker.text, None);

        let content = message_content(parse(message_json(json!({
            "type": "sticker", "id": "1501597917", "quoteToken": "q3Plxr4AgKd...",
            "stickerId": "738839", "packageId": "12287",
            "stickerResourceType": "MESSAGE", "keywords": ["Anticipation"],
            "text": "Let's hang out this weekend!"
        }))));
        let MessageContent::Sticker(sticker) = content else {
            panic!("not sticker")
        };
        assert_eq!(sticker.sticker_resource_type, StickerResourceType::Message);
        assert_eq!(
            sticker.text.as_deref(),
            Some("Let's hang out this weekend!")
        );
    }

    #[test]
    fn new_sticker_resource_type_is_kept() {
        let content = message_content(parse(message_json(json!({
            "type": "sticker", "id": "1", "quoteToken": "q", "stickerId": "2", "packageId": "3",
            "stickerResourceType": "HOLOGRAM"
        }))));
        let MessageContent::Sticker(sticker) = content else {
            panic!("not sticker")
        };
        assert_eq!(
            sticker.sticker_resource_type,
            StickerResourceType::Other("HOLOGRAM".to_owned())
        );
    }

    #[test]
    fn unknown_message_type_is_kept() {
        let raw = json!({"type": "hologram", "id": "42", "depth": 3});
        let content = message_content(parse(message_json(raw.clone())));
        assert_eq!(content, MessageContent::Unknown(raw));
        assert_eq!(content.message_type(), "hologram");
        assert_eq!(content.id(), Some("42"));
    }

    #[test]
    fn malformed_message_content_falls_back_inside_a_message_event() {
        // Text without the required quoteToken: the content is kept raw, the event stays typed.
        let raw = json!({"type": "text", "id": "42", "text": "hello"});
        let event = parse(message_json(raw.clone()));
        assert_eq!(event.reply_token(), Some(REPLY));
        assert_eq!(message_content(event), MessageContent::Unknown(raw));
    }

    #[test]
    fn unsend_event() {
        let event = parse(event_json(
            "unsend",
            json!({"unsend": {"messageId": "325708"}}),
        ));
        let Event::Unsend(unsend) = &event else {
            panic!("not unsend")
        };
        assert_eq!(unsend.unsend.message_id, "325708");
        assert_eq!(event.reply_token(), None);
    }

    #[test]
    fn follow_event() {
        let event = parse(event_json(
            "follow",
            json!({"replyToken": REPLY, "follow": {"isUnblocked": false}}),
        ));
        let Event::Follow(follow) = &event else {
            panic!("not follow")
        };
        assert!(!follow.follow.is_unblocked);
        assert_eq!(event.reply_token(), Some(REPLY));
    }

    #[test]
    fn unfollow_event() {
        assert!(matches!(
            parse(event_json("unfollow", json!({}))),
            Event::Unfollow(_)
        ));
    }

    #[test]
    fn join_event() {
        let event = parse(event_json(
            "join",
            json!({"replyToken": REPLY, "source": {"type": "group", "groupId": GROUP}}),
        ));
        assert!(matches!(event, Event::Join(_)));
        assert_eq!(event.reply_token(), Some(REPLY));
        assert_eq!(
            event.source().and_then(Source::conversation_key),
            Some(GROUP)
        );
        assert_eq!(event.source().and_then(Source::user_id), None);
    }

    #[test]
    fn leave_event() {
        let event = parse(event_json(
            "leave",
            json!({"source": {"type": "group", "groupId": GROUP}}),
        ));
        assert!(matches!(event, Event::Leave(_)));
        assert_eq!(event.reply_token(), None);
    }

    #[test]
    fn member_joined_event() {
        let event = parse(event_json(
            "memberJoined",
            json!({
                "replyToken": REPLY,
                "source": {"type": "group", "groupId": GROUP},
                "joined": {"members": [
                    {"type": "user", "userId": USER},
                    {"type": "user", "userId": OTHER_USER}
                ]}
            }),
        ));
        let Event::MemberJoined(joined) = &event else {
            panic!("not memberJoined")
        };
        assert_eq!(
            joined.joined.user_ids().collect::<Vec<_>>(),
            vec![USER, OTHER_USER]
        );
        assert_eq!(event.reply_token(), Some(REPLY));
    }

    #[test]
    fn member_left_event() {
        let event = parse(event_json(
            "memberLeft",
            json!({
                "source": {"type": "room", "roomId": ROOM},
                "left": {"members": [{"type": "user", "userId": USER}]}
            }),
        ));
        let Event::MemberLeft(left) = &event else {
            panic!("not memberLeft")
        };
        assert_eq!(left.left.user_ids().collect::<Vec<_>>(), vec![USER]);
        assert_eq!(event.reply_token(), None);
    }

    #[test]
    fn postback_event() {
        let event = parse(event_json(
            "postback",
            json!({
                "replyToken": REPLY,
                "postback": {"data": "storeId=12345", "params": {"datetime": "2017-12-25T01:00"}}
            }),
        ));
        let Event::Postback(postback) = &event else {
            panic!("not postback")
        };
        assert_eq!(postback.postback.data, "storeId=12345");
        let params = postback.postback.params.as_ref().unwrap();
        assert_eq!(
            params.get("datetime").map(String::as_str),
            Some("2017-12-25T01:00")
        );
        assert_eq!(event.reply_token(), Some(REPLY));
    }

    #[test]
    fn video_play_complete_event() {
        let event = parse(event_json(
            "videoPlayComplete",
            json!({"replyToken": REPLY, "videoPlayComplete": {"trackingId": "track-id"}}),
        ));
        let Event::VideoPlayComplete(video) = &event else {
            panic!("not videoPlayComplete")
        };
        assert_eq!(video.video_play_complete.tracking_id, "track-id");
        assert_eq!(event.reply_token(), Some(REPLY));
    }

    #[test]
    fn beacon_event() {
        let event = parse(event_json(
            "beacon",
            json!({"replyToken": REPLY, "beacon": {"hwid": "d41d8cd98f", "type": "enter", "dm": "1234"}}),
        ));
        let Event::Beacon(beacon) = &event else {
            panic!("not beacon")
        };
        assert_eq!(beacon.beacon.hwid, "d41d8cd98f");
        assert_eq!(beacon.beacon.kind, BeaconEventType::Enter);
        assert_eq!(beacon.beacon.dm.as_deref(), Some("1234"));
    }

    #[test]
    fn account_link_event() {
        let event = parse(event_json(
            "accountLink",
            json!({"replyToken": REPLY, "link": {"result": "ok", "nonce": "xxxxxxxxxxxxxxx"}}),
        ));
        let Event::AccountLink(link) = &event else {
            panic!("not accountLink")
        };
        assert_eq!(link.link.result, LinkResult::Ok);
        assert_eq!(link.link.nonce, "xxxxxxxxxxxxxxx");
        assert_eq!(event.reply_token(), Some(REPLY));

        // Failed linking: no reply token.
        let event = parse(event_json(
            "accountLink",
            json!({"link": {"result": "failed", "nonce": "xxxxxxxxxxxxxxx"}}),
        ));
        assert!(matches!(&event, Event::AccountLink(l) if l.link.result == LinkResult::Failed));
        assert_eq!(event.reply_token(), None);
    }

    #[test]
    fn membership_event() {
        let event = parse(event_json(
            "membership",
            json!({"replyToken": REPLY, "membership": {"type": "joined", "membershipId": 3189}}),
        ));
        let Event::Membership(membership) = &event else {
            panic!("not membership")
        };
        assert_eq!(membership.membership.kind, MembershipEventType::Joined);
        assert_eq!(membership.membership.membership_id, 3189);
    }

    #[test]
    fn module_events_without_source() {
        let mut attached = event_json(
            "module",
            json!({"module": {
                "type": "attached", "botId": "U111111111111111111111111111111111",
                "scopes": ["message:send", "message:receive"]
            }}),
        );
        attached.as_object_mut().unwrap().remove("source");
        let event = parse(attached);
        assert_eq!(event.source(), None);
        let Event::Module(module) = &event else {
            panic!("not module")
        };
        let ModuleContent::Attached(content) = &module.module else {
            panic!("not attached")
        };
        assert_eq!(content.scopes, vec!["message:send", "message:receive"]);
        assert_eq!(
            module.module.bot_id(),
            Some("U111111111111111111111111111111111")
        );

        let event = parse(event_json(
            "module",
            json!({"module": {
                "type": "detached", "botId": "U111111111111111111111111111111111",
                "reason": "bot_deleted"
            }}),
        ));
        let Event::Module(module) = &event else {
            panic!("not module")
        };
        let ModuleContent::Detached(content) = &module.module else {
            panic!("not detached")
        };
        assert_eq!(content.reason, DetachedModuleReason::BotDeleted);
    }

    #[test]
    fn activated_event() {
        let event = parse(event_json(
            "activated",
            json!({"chatControl": {"expireAt": 1_462_629_479_960_i64}}),
        ));
        let Event::Activated(activated) = &event else {
            panic!("not activated")
        };
        assert_eq!(activated.chat_control.expire_at, 1_462_629_479_960);
    }

    #[test]
    fn deactivated_event() {
        let event = parse(event_json("deactivated", json!({"mode": "standby"})));
        assert!(matches!(event, Event::Deactivated(_)));
        assert_eq!(event.mode(), Some(&EventMode::Standby));
    }

    #[test]
    fn bot_suspended_and_resumed_events() {
        for (kind, expected) in [("botSuspended", true), ("botResumed", false)] {
            let mut json = event_json(kind, json!({}));
            json.as_object_mut().unwrap().remove("source");
            let event = parse(json);
            assert_eq!(matches!(event, Event::BotSuspended(_)), expected);
            assert_eq!(matches!(event, Event::BotResumed(_)), !expected);
            assert_eq!(event.source(), None);
        }
    }

    #[test]
    fn delivery_event() {
        let event = parse(event_json(
            "delivery",
            json!({"delivery": {"data": "d41d8cd98f00b204e9800998ecf8427e"}}),
        ));
        let Event::Delivery(delivery) = &event else {
            panic!("not delivery")
        };
        assert_eq!(delivery.delivery.data, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(event.event_type(), "delivery");
    }

    #[test]
    fn unknown_event_type_is_kept_whole() {
        let json = json!({
            "type": "teleport",
            "timestamp": 1_462_629_479_859_i64,
            "mode": "active",
            "webhookEventId": EVENT_ID,
            "deliveryContext": {"isRedelivery": true},
            "replyToken": REPLY,
            "teleport": {"to": "moon", "nested": [1, 2, {"x": null}]}
        });
        let event = parse(json.clone());
        assert_eq!(event, Event::Unknown(json));
        assert!(event.is_unknown());
        assert_eq!(event.event_type(), "teleport");
        assert_eq!(event.webhook_event_id(), Some(EVENT_ID));
        assert_eq!(event.timestamp(), Some(1_462_629_479_859));
        assert_eq!(event.is_redelivery(), Some(true));
        assert_eq!(event.reply_token(), Some(REPLY));
        assert_eq!(event.common(), None);
        assert_eq!(event.source(), None);
        assert!(!event.has_unknown_fields());
    }

    #[test]
    fn untagged_or_non_object_events_are_kept() {
        for json in [
            json!({"timestamp": 1}),
            json!({"type": 7}),
            json!("text"),
            json!(null),
        ] {
            let event: Event = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(event, Event::Unknown(json.clone()));
            assert_eq!(serde_json::to_value(&event).unwrap(), json);
        }
    }

    #[test]
    fn unknown_fields_are_kept_and_round_trip() {
        let json = event_json(
            "message",
            json!({
                "replyToken": REPLY,
                "futureTopLevel": {"a": 1},
                "deliveryContext": {"isRedelivery": false, "attempt": 2},
                "message": {
                    "type": "text", "id": "1", "quoteToken": "q", "text": "hi",
                    "futureField": true
                }
            }),
        );
        let event = parse(json.clone());
        assert!(event.has_unknown_fields());
        assert_eq!(event.unknown_field_names(), vec!["futureTopLevel"]);
        let Event::Message(message) = &event else {
            panic!("not message")
        };
        assert_eq!(message.extra.get("futureTopLevel"), Some(&json!({"a": 1})));
        assert!(!message.extra.contains_key("type"));
        assert!(!message.extra.contains_key("timestamp"));
        assert_eq!(
            message.common.delivery_context.extra.get("attempt"),
            Some(&json!(2))
        );
        let MessageContent::Text(text) = &message.message else {
            panic!("not text")
        };
        assert_eq!(text.extra.get("futureField"), Some(&json!(true)));

        let text_round_trip = serde_json::to_string(&event).unwrap();
        let again: Event = serde_json::from_str(&text_round_trip).unwrap();
        assert_eq!(again, event);
        assert_eq!(serde_json::to_value(&again).unwrap(), json);
    }

    #[test]
    fn known_type_missing_required_field_falls_back_to_unknown() {
        // follow without replyToken
        let json = event_json("follow", json!({"follow": {"isUnblocked": true}}));
        let event: Event = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(event, Event::Unknown(json.clone()));
        assert_eq!(event.event_type(), "follow");
        assert_eq!(event.webhook_event_id(), Some(EVENT_ID));
        assert_eq!(serde_json::to_value(&event).unwrap(), json);

        // missing a common field
        let mut json = event_json("unfollow", json!({}));
        json.as_object_mut().unwrap().remove("webhookEventId");
        let event: Event = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(event, Event::Unknown(json));
    }

    #[test]
    fn known_type_with_wrong_shape_falls_back_to_unknown() {
        let json = event_json("unfollow", json!({"timestamp": "yesterday"}));
        let event: Event = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(event, Event::Unknown(json));
    }

    #[test]
    fn error_messages_are_redacted() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "secret \"text\"", expected i64"#),
            "invalid type: string \"…\", expected i64"
        );
        assert_eq!(
            redact_quoted("missing field `replyToken`"),
            "missing field `replyToken`"
        );
        assert_eq!(redact_quoted("dangling \"open"), "dangling \"…");
    }

    #[test]
    fn callback_request_with_a_mix_of_events() {
        let body = r#"{
            "destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "events": [
                {
                    "type": "message",
                    "message": {"type": "text", "id": "14353798921116", "text": "Hello, world", "quoteToken": "q"},
                    "timestamp": 1625665242211,
                    "source": {"type": "user", "userId": "U80696558e1aa831a1b2c3d4e5f6a7b8c"},
                    "replyToken": "757913772c4646b784d4b7ce46d12671",
                    "mode": "active",
                    "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
                    "deliveryContext": {"isRedelivery": false}
                },
                {
                    "type": "follow",
                    "timestamp": 1625665242214,
                    "source": {"type": "user", "userId": "Ufc729a925b3abef1b2c3d4e5f6a7b8c9"},
                    "replyToken": "bb173f4d9cf64aed9d408ab4e36339ad",
                    "mode": "active",
                    "webhookEventId": "01FZ74ASS536FW97EX38NKCZQK",
                    "deliveryContext": {"isRedelivery": false},
                    "follow": {"isUnblocked": false}
                },
                {
                    "type": "unfollow",
                    "timestamp": 1625665242215,
                    "source": {"type": "user", "userId": "Ubbd4f124aee5113b1b2c3d4e5f6a7b8c"},
                    "mode": "active",
                    "webhookEventId": "01FZ74B5Y0F4TNKA5SCAVKPEDM",
                    "deliveryContext": {"isRedelivery": true}
                },
                {
                    "type": "somethingNew",
                    "timestamp": 1625665242216,
                    "mode": "active",
                    "webhookEventId": "01FZ74B5Y0F4TNKA5SCAVKPEDN",
                    "deliveryContext": {"isRedelivery": false}
                }
            ]
        }"#;
        let request: CallbackRequest = serde_json::from_str(body).unwrap();
        assert_eq!(request.destination, "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        let types: Vec<&str> = request.events.iter().map(Event::event_type).collect();
        assert_eq!(types, vec!["message", "follow", "unfollow", "somethingNew"]);
        assert!(matches!(request.events[0], Event::Message(_)));
        assert!(matches!(request.events[1], Event::Follow(_)));
        assert!(matches!(request.events[2], Event::Unfollow(_)));
        assert!(request.events[3].is_unknown());
        assert_eq!(request.events[2].is_redelivery(), Some(true));
        assert!(request.extra.is_empty());

        let original: Value = serde_json::from_str(body).unwrap();
        assert_eq!(serde_json::to_value(&request).unwrap(), original);

        let empty: CallbackRequest = serde_json::from_str(
            r#"{"destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "events": []}"#,
        )
        .unwrap();
        assert!(empty.events.is_empty());
    }
}
