//! Reading admin request bodies field by field, so every error names its field.

use serde_json::{Map, Value};
use shared::secret::SecretString;

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

/// The fields of a JSON object body; [`Fields::finish`] refuses any that were not read.
pub struct Fields(Map<String, Value>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(InputError::new("body", "the body must be a JSON object")),
            Err(e) => Err(InputError::new(
                "body",
                format!("the body is not valid JSON: {e}"),
            )),
        }
    }

    fn string(&mut self, field: &str) -> Result<Option<String>, InputError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(InputError::new(field, format!("{field} must be a string"))),
        }
    }

    /// A display name: 1 to 100 characters, trimmed.
    pub fn name(&mut self, field: &str) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        let len = value.chars().count();
        if len == 0 || len > 100 {
            return Err(InputError::new(
                field,
                format!("{field} must be 1 to 100 characters"),
            ));
        }
        Ok(Some(value))
    }

    /// A LINE channel ID: digits.
    pub fn channel_id(&mut self, field: &str) -> Result<Option<String>, InputError> {
        let Some(value) = self.string(field)? else {
            return Ok(None);
        };
        let value = value.trim().to_owned();
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InputError::new(
                field,
                format!("{field} must be the channel's numeric ID"),
            ));
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
            return Err(InputError::new(
                field,
                format!("{field} must be 32 hexadecimal characters"),
            ));
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
            return Err(InputError::new(
                field,
                format!("{field} must be a channel access token (printable, no spaces)"),
            ));
        }
        Ok(Some(SecretString::new(value)))
    }

    pub fn boolean(&mut self, field: &str) -> Result<Option<bool>, InputError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(InputError::new(
                field,
                format!("{field} must be true or false"),
            )),
        }
    }

    /// Refuses fields that no reader took.
    pub fn finish(self) -> Result<(), InputError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(field) => Err(InputError::new(field, format!("unknown field {field}"))),
        }
    }
}
