//! Reading JSON request bodies field by field (admin and agent APIs), so every error names its
//! field.

use crate::secret::SecretString;
use serde_json::{Map, Value};

/// A request body that is not acceptable, naming the field at fault (`body` for the whole).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    field: String,
    message: String,
}

impl InputError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn missing(field: &str) -> Self {
        Self::new(field, format!("{field} is required"))
    }

    pub fn field(&self) -> &str {
        &self.field
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The fields of a JSON object (a body, or an object inside one); [`Fields::finish`] refuses any
/// that were not read. Errors name the field with its path (`attachments.agentCanSend`).
pub struct Fields {
    map: Map<String, Value>,
    prefix: String,
}

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self {
                map,
                prefix: String::new(),
            }),
            Ok(_) => Err(InputError::new("body", "the body must be a JSON object")),
            Err(e) => Err(InputError::new(
                "body",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }

    /// The object at `path` (already taken out of its parent).
    pub fn nested(value: Value, path: &str) -> Result<Self, InputError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                prefix: format!("{path}."),
            }),
            _ => Err(InputError::new(path, format!("{path} must be an object"))),
        }
    }

    /// The full path of `field`.
    pub fn path(&self, field: &str) -> String {
        format!("{}{field}", self.prefix)
    }

    fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        InputError::new(&self.path(field), message)
    }

    /// "`field` is required", with its path.
    pub fn missing(&self, field: &str) -> InputError {
        let path = self.path(field);
        InputError::new(&path, format!("{path} is required"))
    }

    /// The names of the fields not read yet.
    pub fn keys(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }

    /// Whether `field` is absent or null.
    pub fn value_is_missing(&self, field: &str) -> bool {
        self.map.get(field).is_none_or(Value::is_null)
    }

    /// Whether the body has `field` (null included).
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// The raw value: `None` when absent, `Some(Value::Null)` when explicitly null.
    pub fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    /// The field's value unless absent or null.
    pub fn value(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Result<Option<String>, InputError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(field, format!("{field} must be a string"))),
        }
    }

    /// A string of `min..=max` characters once trimmed.
    pub fn text(
        &mut self,
        field: &str,
        min: usize,
        max: usize,
    ) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        let len = value.chars().count();
        if len < min || len > max {
            return Err(self.error(field, format!("{field} must be {min} to {max} characters")));
        }
        Ok(Some(value))
    }

    /// A display name: 1 to 100 characters, trimmed.
    pub fn name(&mut self, field: &str) -> Result<Option<String>, InputError> {
        self.text(field, 1, 100)
    }

    /// One of `allowed`.
    pub fn one_of(&mut self, field: &str, allowed: &[&str]) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        if allowed.contains(&value.as_str()) {
            Ok(Some(value))
        } else {
            Err(self.error(
                field,
                format!("{field} must be one of {}", allowed.join(", ")),
            ))
        }
    }

    /// An email address (a plausible `local@domain.tld`, at most 254 characters).
    pub fn email(&mut self, field: &str) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        let plausible = value.len() <= 254
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            && value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !plausible {
            return Err(self.error(field, format!("{field} must be an email address")));
        }
        Ok(Some(value))
    }

    /// An integer from `min` to `max`.
    pub fn integer(&mut self, field: &str, min: i64, max: i64) -> Result<Option<i64>, InputError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(self.error(
                    field,
                    format!("{field} must be an integer from {min} to {max}"),
                )),
            },
            Some(_) => Err(self.error(
                field,
                format!("{field} must be an integer from {min} to {max}"),
            )),
        }
    }

    /// A list of at most `max_items` distinct strings of 1 to `max_len` characters (trimmed).
    pub fn string_list(
        &mut self,
        field: &str,
        max_items: usize,
        max_len: usize,
    ) -> Result<Option<Vec<String>>, InputError> {
        let items = match self.map.remove(field) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(self.error(field, format!("{field} must be an array of strings")))
            }
        };
        if items.len() > max_items {
            return Err(self.error(field, format!("{field} has at most {max_items} items")));
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let path = format!("{field}[{i}]");
            let Value::String(item) = item else {
                return Err(self.error(&path, format!("{path} must be a string")));
            };
            let item = item.trim().to_owned();
            let len = item.chars().count();
            if len == 0 || len > max_len {
                return Err(self.error(&path, format!("{path} must be 1 to {max_len} characters")));
            }
            if out.contains(&item) {
                return Err(self.error(&path, format!("{path} repeats {item:?}")));
            }
            out.push(item);
        }
        Ok(Some(out))
    }

    /// A LINE channel ID: digits.
    pub fn channel_id(&mut self, field: &str) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(field, format!("{field} must be the channel's numeric ID")));
        }
        Ok(Some(value))
    }

    /// A channel secret: 32 hexadecimal characters.
    pub fn channel_secret(&mut self, field: &str) -> Result<Option<SecretString>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim();
        if value.len() != 32 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(field, format!("{field} must be 32 hexadecimal characters")));
        }
        Ok(Some(SecretString::new(value)))
    }

    /// A channel access token: printable ASCII without spaces, at most 4096 characters.
    pub fn access_token(&mut self, field: &str) -> Result<Option<SecretString>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim();
        if value.is_empty() || value.len() > 4096 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.error(
                field,
                format!("{field} must be a channel access token (printable, no spaces)"),
            ));
        }
        Ok(Some(SecretString::new(value)))
    }

    pub fn boolean(&mut self, field: &str) -> Result<Option<bool>, InputError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.error(field, format!("{field} must be true or false"))),
        }
    }

    /// Refuses fields that no reader took.
    pub fn finish(self) -> Result<(), InputError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(field) => Err(self.error(field, format!("unknown field {field}"))),
        }
    }
}

/// The parameters of a query string (`a=1&b=x%20y`), each at most once and each one of
/// `allowed`; values are percent-decoded (`+` is a space). Errors name the parameter.
#[derive(Debug, Default)]
pub struct Query(std::collections::HashMap<String, String>);

impl Query {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, InputError> {
        let mut params = std::collections::HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name)
                .ok_or_else(|| InputError::new("query", "the query string is not valid"))?;
            if !allowed.contains(&name.as_str()) {
                return Err(InputError::new(
                    &name,
                    format!(
                        "unknown query parameter {name:?} (allowed: {})",
                        allowed.join(", ")
                    ),
                ));
            }
            let value = percent_decode(value)
                .ok_or_else(|| InputError::new(&name, format!("{name} is not valid UTF-8")))?;
            if params.insert(name.clone(), value).is_some() {
                return Err(InputError::new(&name, format!("{name} is given twice")));
            }
        }
        Ok(Self(params))
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// `+` and `%XX` decoding of a query component; `None` for a bad escape or invalid UTF-8.
pub fn percent_decode(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_and_checked() {
        let q = Query::parse(Some("q=yamada+taro&wait=5"), &["q", "wait"]).unwrap();
        assert_eq!(q.get("q"), Some("yamada taro"));
        assert_eq!(q.get("wait"), Some("5"));
        assert_eq!(q.get("after"), None);
        let q = Query::parse(Some("q=%E5%B1%B1%E7%94%B0"), &["q"]).unwrap();
        assert_eq!(q.get("q"), Some("山田"));
        assert_eq!(Query::parse(None, &["q"]).unwrap().get("q"), None);
        let e = Query::parse(Some("x=1"), &["q"]).unwrap_err();
        assert_eq!(e.field(), "x");
        let e = Query::parse(Some("q=1&q=2"), &["q"]).unwrap_err();
        assert_eq!(e.field(), "q");
        assert_eq!(
            Query::parse(Some("q=%zz"), &["q"]).unwrap_err().field(),
            "q"
        );
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("%+f"), None);
    }
}
