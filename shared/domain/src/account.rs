//! Domain types: a connected LINE Official Account, its credentials and its webhook counters.

use crate::secret::SecretString;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A LINE Official Account connected to omniline. Holds no secret: the channel secret and access
/// token live in the secret store under [`credentials_secret_name`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub name: String,
    pub channel_id: String,
    pub bot_user_id: String,
    pub basic_id: String,
    pub display_name: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Set while the account has no workstream because its workstream was deleted: the webhook
    /// refuses the account's requests (it reads the account on every request, so at once).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhook_disabled: bool,
}

/// The channel secret (verifies webhooks) and channel access token (calls the Messaging API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCredentials {
    pub channel_secret: SecretString,
    pub channel_access_token: SecretString,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsJson<'a> {
    #[serde(borrow)]
    channel_secret: Cow<'a, str>,
    #[serde(borrow)]
    channel_access_token: Cow<'a, str>,
}

impl ChannelCredentials {
    /// The JSON document kept in the secret store.
    pub fn to_secret(&self) -> SecretString {
        let json = CredentialsJson {
            channel_secret: Cow::Borrowed(self.channel_secret.expose()),
            channel_access_token: Cow::Borrowed(self.channel_access_token.expose()),
        };
        // Serialising two strings cannot fail.
        SecretString::new(serde_json::to_string(&json).unwrap_or_default())
    }

    pub fn from_secret(secret: &SecretString) -> Option<Self> {
        let json: CredentialsJson<'_> = serde_json::from_str(secret.expose()).ok()?;
        Some(Self {
            channel_secret: SecretString::new(json.channel_secret.into_owned()),
            channel_access_token: SecretString::new(json.channel_access_token.into_owned()),
        })
    }
}

/// Name of an account's credentials in the secret store (after the deployment's prefix).
pub fn credentials_secret_name(account_id: &str) -> String {
    format!("accounts/{account_id}")
}

/// Per-account webhook traffic, counted per event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStats {
    pub received: u64,
    pub queued: u64,
    /// Requests refused (bad signature, not a webhook, too large).
    pub rejected: u64,
    /// RFC 3339 time of the last request that reached the account, if any.
    pub last_received_at: Option<String>,
}

/// One request's contribution to [`WebhookStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    pub received: u64,
    pub queued: u64,
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::rfc3339_millis;

    #[test]
    fn credentials_round_trip_through_the_secret_document() {
        let c = ChannelCredentials {
            channel_secret: SecretString::new("s\"ecret"),
            channel_access_token: SecretString::new("tok"),
        };
        assert_eq!(ChannelCredentials::from_secret(&c.to_secret()), Some(c));
        assert_eq!(
            ChannelCredentials::from_secret(&SecretString::new("nope")),
            None
        );
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
