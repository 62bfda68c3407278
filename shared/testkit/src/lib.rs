//! Helpers for tests of the functions and the local stack: embedded adapters in a temporary
//! directory and seeded accounts. Not used by production code paths.
//!
//! And the contract suites: one module per store port, each scenario written once as an async fn
//! taking the port (`&dyn Port`, or `Arc<dyn Port>` for concurrency), and run by the tests of
//! every adapter: the SQLite / filesystem ones (`omniline-embedded`'s unit tests) and the AWS
//! ones on moto (`tests/tests/`). A scenario asserts only what the port promises; what is an
//! adapter's own (raw layout, files, wire errors) stays in that adapter's tests, often run on the
//! state a scenario leaves behind (each scenario documents it).

pub mod account_contract;
pub mod agent_contract;
mod config_contract;
pub mod conversation_contract;
pub mod delivery_contract;
pub mod event_queue_contract;
pub mod object_contract;
pub mod secret_contract;
pub mod workstream_contract;

pub use config_contract::config_store_contract;
pub use conversation_contract::dedupe_window_follows_the_callers_clock;

use omniline_domain::account::{credentials_secret_name, Account, ChannelCredentials};
use omniline_domain::clock::{now_millis, rfc3339_millis};
use omniline_domain::secret::SecretString;
use omniline_embedded::{EmbeddedDb, SqliteAccountStore, SqliteEventQueue, SqliteSecretStore};
use omniline_ports::{AccountStore, PortError, SecretStore};
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

/// Clocks far from the wall clock, for [`dedupe_window_follows_the_callers_clock`]: a store that
/// compares a stored expiry with its own clock instead of the caller's fails at one of them.
pub const FAR_PAST_SECS: i64 = 1_000_000_000; // 2001-09-09
pub const FAR_FUTURE_SECS: i64 = 4_000_000_000; // 2096-10-02
