//! Helpers for tests of the functions and the local stack: embedded adapters in a temporary
//! directory and seeded accounts. Not used by production code paths.

use crate::adapters::embedded::{
    EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore,
};
use crate::domain::{
    credentials_secret_name, now_millis, rfc3339_millis, Account, ChannelCredentials,
};
use crate::ports::{AccountStore, PortError, SecretStore};
use crate::secret::SecretString;
use std::path::Path;
use std::sync::Arc;

/// The embedded adapters over one database.
pub struct EmbeddedAdapters {
    pub db: EmbeddedDb,
    pub accounts: Arc<SqliteAccountStore>,
    pub secrets: Arc<SqliteSecretStore>,
    pub inbound: Arc<SqliteEventQueue>,
}

impl EmbeddedAdapters {
    pub fn open(dir: &Path) -> Result<Self, PortError> {
        let db = EmbeddedDb::open(dir)?;
        Ok(Self {
            accounts: Arc::new(SqliteAccountStore::new(db.clone())),
            secrets: Arc::new(SqliteSecretStore::new(db.clone())),
            inbound: Arc::new(SqliteEventQueue::new(db.clone(), "inbound", 5)),
            db,
        })
    }
}

/// Stores an account `id` with `channel_secret` and a dummy access token.
pub async fn seed_account(
    accounts: &dyn AccountStore,
    secrets: &dyn SecretStore,
    id: &str,
    channel_secret: &str,
) -> Result<Account, PortError> {
    let now = rfc3339_millis(now_millis());
    let account = Account {
        id: id.to_owned(),
        name: format!("Account {id}"),
        channel_id: "1234567890".into(),
        bot_user_id: format!("Ubot{id}"),
        basic_id: "@bot".into(),
        display_name: "Bot".into(),
        created_at: now.clone(),
        updated_at: now,
        webhook_disabled: false,
    };
    let credentials = ChannelCredentials {
        channel_secret: SecretString::new(channel_secret),
        channel_access_token: SecretString::new("test-access-token"),
    };
    secrets
        .put(&credentials_secret_name(id), &credentials.to_secret())
        .await?;
    accounts.create(&account).await?;
    Ok(account)
}
