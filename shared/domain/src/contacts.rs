//! Contacts: the CRM side of a customer. An agent links a LINE user to a contact (directly, or
//! through LINE's account-link flow); every later conversation of that user shows the contact.
//! Contacts and pending account links are documents of the [`omniline_ports::ConfigStore`].

use serde::{Deserialize, Serialize};

/// [`omniline_ports::ConfigStore`] kind of contacts before they were scoped to an account (kept
/// for reading nothing: such contacts are visible to no agent).
pub const CONTACT_KIND: &str = "contact";
/// Most contacts one account may hold (the agents' search reads an account's contacts).
pub const MAX_CONTACTS_PER_ACCOUNT: usize = 1_000;

/// [`omniline_ports::ConfigStore`] kind of one account's contacts: a contact belongs to the LINE
/// account whose customers it describes, and only agents serving that account see it.
pub fn contact_kind(account_id: &str) -> String {
    format!("{CONTACT_KIND}@{account_id}")
}
/// [`omniline_ports::ConfigStore`] kind of account-link requests (keyed by their public id).
pub const LINK_REQUEST_KIND: &str = "linkRequest";
/// [`omniline_ports::ConfigStore`] kind of account-link nonces (keyed by the nonce).
pub const LINK_NONCE_KIND: &str = "linkNonce";
/// How long an account-link request and its nonce are good for: LINE's link token's lifetime.
pub const LINK_LIFETIME_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    /// The account whose customers it describes (see [`contact_kind`]).
    #[serde(default)]
    pub account_id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

impl Contact {
    /// Case-insensitive substring match on name, email, phone and company.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim().to_lowercase();
        q.is_empty()
            || [
                Some(&self.name),
                self.email.as_ref(),
                self.phone.as_ref(),
                self.company.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|field| field.to_lowercase().contains(&q))
    }
}

/// An agent's request that a LINE user link their account to a contact: the customer receives a
/// link to `/line/link/{id}`, which issues the nonce and sends them to LINE's account-link page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkRequest {
    pub id: String,
    pub account_id: String,
    pub user_id: String,
    pub contact_id: String,
    pub conversation_id: String,
    /// LINE's link token (valid 10 minutes).
    pub link_token: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// A nonce handed to LINE's account-link page; the `accountLink` event brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkNonce {
    pub nonce: String,
    pub account_id: String,
    pub user_id: String,
    pub contact_id: String,
    /// Epoch ms.
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_match_any_field_case_insensitively() {
        let c = Contact {
            account_id: "acc".into(),
            id: "c1".into(),
            name: "Yamada Taro".into(),
            email: Some("taro@example.jp".into()),
            phone: None,
            company: Some("Omni KK".into()),
            created_at: String::new(),
            updated_at: String::new(),
        };
        assert!(c.matches("yamada"));
        assert!(c.matches("OMNI"));
        assert!(c.matches("example.jp"));
        assert!(!c.matches("suzuki"));
        assert!(c.matches(" "));
    }
}
