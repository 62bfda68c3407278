//! The admin API's use cases (`/admin/v1/*`): connecting and disconnecting LINE Official
//! Accounts, queues, agents, workstreams and their routing rules, the global settings, and
//! privacy requests (a customer's export and erasure, an account's purge).
//!
//! The HTTP function (`admin`) parses requests into the typed inputs of these methods and turns
//! their results and [`AdminError`]s into responses; nothing here knows HTTP or the JSON of a
//! response. Errors name the request field at fault, as the agent API's do.
//!
//! - [`accounts`]: connect (LINE checks the token or issues one), update, disconnect, counters;
//! - [`queues`]: queues, and [`ExistingQueue`], a queue id checked to exist;
//! - [`agents`]: agents (operational record and admin record), their API tokens;
//! - [`workstreams`]: one account's conversation handling, its bot and its secret;
//! - [`rules`]: a workstream's routing rules, their order and a dry run;
//! - [`customers`]: find, export and erase a customer; an account's purge, recorded as a job
//!   ([`crate::jobs`]) that the schedule runs, and its status;
//! - [`settings`]: the global settings document.

pub mod accounts;
pub mod agents;
pub mod customers;
mod error;
pub mod message_templates;
pub mod queues;
pub mod quick_replies;
pub mod quota;
pub mod reports;
pub mod rules;
pub mod settings;
pub mod workstreams;

pub use error::{AdminError, UsedBy};
pub use queues::ExistingQueue;

use crate::jobs::{PurgeDeps, PurgeJobs};
use crate::tokens::ChannelTokens;
use omniline_domain::clock::{rfc3339_millis, Clock};
use omniline_ports::{
    AccountStore, AgentStore, ConfigDoc, ConfigStore, ConversationStore, DeliveryStore, Expect,
    LineApi, ObjectStore, PortError, SecretStore, WorkstreamStore,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// The stores and clients the admin use cases work on: the same ports on Lambda (AWS adapters)
/// and in `omniline-local` (embedded adapters).
#[derive(Clone)]
pub struct AdminDeps {
    pub accounts: Arc<dyn AccountStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub line: Arc<dyn LineApi>,
    pub config: Arc<dyn ConfigStore>,
    pub workstreams: Arc<dyn WorkstreamStore>,
    pub agents: Arc<dyn AgentStore>,
    pub conversations: Arc<dyn ConversationStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub media: Arc<dyn ObjectStore>,
}

impl AdminDeps {
    /// What an account's purge job works on.
    pub fn purge_deps(&self) -> PurgeDeps {
        PurgeDeps {
            config: Arc::clone(&self.config),
            conversations: Arc::clone(&self.conversations),
            deliveries: Arc::clone(&self.deliveries),
            media: Arc::clone(&self.media),
        }
    }
}

/// Called with an account id when an account's webhook must be refused from now on (the local
/// stack drops the webhook's cached secret; on Lambda the cache expires by itself).
pub type AccountDisconnected = Arc<dyn Fn(&str) + Send + Sync>;

/// What admins read and do.
#[derive(Clone)]
pub struct AdminService {
    deps: AdminDeps,
    clock: Clock,
    on_disconnect: Option<AccountDisconnected>,
    /// Account purges: recorded here, run by the schedule.
    jobs: PurgeJobs,
    /// The accounts' channel access tokens (for reading their quotas), cached.
    tokens: Arc<ChannelTokens>,
}

impl AdminService {
    pub fn new(deps: AdminDeps, clock: Clock) -> Self {
        let jobs = PurgeJobs::new(deps.purge_deps(), clock.clone());
        let tokens = Arc::new(ChannelTokens::new(
            deps.accounts.clone(),
            deps.secrets.clone(),
            deps.line.clone(),
        ));
        Self {
            deps,
            clock,
            on_disconnect: None,
            jobs,
            tokens,
        }
    }

    /// Runs `hook` whenever an account is deleted or loses its workstream.
    pub fn on_disconnect(mut self, hook: AccountDisconnected) -> Self {
        self.on_disconnect = Some(hook);
        self
    }

    /// Now, epoch ms, from the injected clock.
    fn now_millis(&self) -> i64 {
        (self.clock)()
    }

    /// Now as the records store it (RFC 3339, ms).
    fn now(&self) -> String {
        rfc3339_millis(self.now_millis())
    }

    /// Records an admin change in the audit trail (`via` `admin`), now (best effort).
    pub async fn audit(&self, actor: &str, method: &str, path: &str, status: u16) {
        let record = omniline_domain::audit::AuditRecord {
            at: self.now_millis(),
            actor: actor.to_owned(),
            via: "admin".into(),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
        };
        crate::audit::record(self.deps.config.as_ref(), &record).await;
    }

    /// The audit trail from `from` to `to` (epoch ms), newest first; whether it was cut.
    pub async fn audit_trail(
        &self,
        from: i64,
        to: i64,
    ) -> Result<(Vec<omniline_domain::audit::AuditRecord>, bool), crate::audit::AuditError> {
        crate::audit::read(self.deps.config.as_ref(), from, to).await
    }

    /// Now, epoch ms (the default period of the audit trail ends now).
    pub fn clock_millis(&self) -> i64 {
        self.now_millis()
    }

    fn disconnected(&self, account_id: &str) {
        if let Some(hook) = &self.on_disconnect {
            hook(account_id);
        }
    }

    /// The config document `kind`/`id`; `NotFound(what)` when there is none.
    async fn doc(&self, kind: &str, id: &str, what: &'static str) -> Result<ConfigDoc, AdminError> {
        self.deps
            .config
            .get_doc(kind, id)
            .await?
            .ok_or(AdminError::NotFound(what))
    }

    /// Writes a config document (`Expect::Absent` to create, `Expect::Version` to update) and
    /// returns its new version; `VersionConflict` when someone else wrote first.
    async fn put_doc(
        &self,
        kind: &str,
        id: &str,
        doc: String,
        expect: Expect,
    ) -> Result<u64, AdminError> {
        self.deps
            .config
            .put_doc(kind, id, &doc, expect)
            .await?
            .ok_or(AdminError::VersionConflict)
    }
}

/// Sets `target` to `value`, if given (what a patch's `None` means: keep).
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// A stored config document, parsed; `what` names it when it does not parse.
fn parse_doc<T: DeserializeOwned>(doc: &ConfigDoc, what: &str) -> Result<T, AdminError> {
    serde_json::from_str(&doc.doc).map_err(|e| {
        AdminError::Store(PortError::Unavailable(format!(
            "stored {what} {} does not parse: {e}",
            doc.id
        )))
    })
}

/// A record as a config document; `what` names it when it does not serialise.
fn to_doc<T: Serialize>(value: &T, what: &str) -> Result<String, AdminError> {
    serde_json::to_string(value).map_err(|e| {
        AdminError::Store(PortError::Unavailable(format!(
            "{what} does not serialise: {e}"
        )))
    })
}
