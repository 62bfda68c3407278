//! Workstreams: how one account's conversations are handled. The admin's changes arrive as a
//! [`WorkstreamPatch`] applied to the stored [`Workstream`]; the bot's secret goes to the secret
//! store and is never returned. Every change bumps the workstream's `version`, which the router's
//! rule cache keys on, so routers see a change on their next event. Deleting an account's
//! workstream turns its webhook off; creating one turns it back on.

use super::{set, AdminError, AdminService};
use crate::jobs::PurgeJob;
use omniline_domain::clock::new_id;
use omniline_domain::secret::SecretString;
use omniline_domain::workstream::{
    Affinity, AgentIdentity, Attachments, AutomatedMessage, BotConfig, BusinessHours,
    ContextVariable, Distribution, GroupChats, OfferSettings, Survey, Workstream, WorkstreamError,
};
use omniline_domain::PortError;

/// Where a workstream's bot secret is kept in the secret store.
pub fn bot_secret_name(workstream_id: &str) -> String {
    format!("workstreams/{workstream_id}/bot")
}

/// The id conversations and rules use for a workstream's bot.
pub fn bot_id(workstream_id: &str) -> String {
    format!("{workstream_id}.bot")
}

/// The bot a workstream should have: its endpoint, its secret (`None`: keep the stored one) and
/// how long to wait for it.
#[derive(Debug, Clone)]
pub struct BotChange {
    pub url: String,
    pub secret: Option<SecretString>,
    pub timeout_ms: u32,
}

/// What to change of a workstream (`None`: keep; `Some(None)`: remove).
#[derive(Debug, Clone, Default)]
pub struct WorkstreamPatch {
    pub name: Option<String>,
    pub language: Option<String>,
    pub distribution: Option<Distribution>,
    pub default_queue: Option<String>,
    pub customer_can_send: Option<bool>,
    pub agent_can_send: Option<bool>,
    pub automated_messages: Option<Vec<AutomatedMessage>>,
    pub survey: Option<Option<Survey>>,
    pub auto_close_minutes: Option<Option<u32>>,
    pub business_hours: Option<Vec<BusinessHours>>,
    pub timezone: Option<String>,
    pub agent_identity: Option<Option<AgentIdentity>>,
    pub group_chats: Option<GroupChats>,
    pub affinity: Option<Option<Affinity>>,
    pub offer: Option<Option<OfferSettings>>,
    pub context_variables: Option<Vec<ContextVariable>>,
    pub wrap_up_seconds: Option<Option<u32>>,
    pub dispositions: Option<Vec<String>>,
    pub bot: Option<Option<BotChange>>,
}

impl WorkstreamPatch {
    /// Applies everything but the bot to `ws`; returns the bot change.
    fn apply(self, ws: &mut Workstream) -> Option<Option<BotChange>> {
        set(&mut ws.name, self.name);
        set(&mut ws.language, self.language);
        set(&mut ws.distribution, self.distribution);
        set(&mut ws.default_queue, self.default_queue);
        set(
            &mut ws.attachments.customer_can_send,
            self.customer_can_send,
        );
        set(&mut ws.attachments.agent_can_send, self.agent_can_send);
        set(&mut ws.automated_messages, self.automated_messages);
        set(&mut ws.survey, self.survey);
        set(&mut ws.auto_close_minutes, self.auto_close_minutes);
        set(&mut ws.business_hours, self.business_hours);
        set(&mut ws.timezone, self.timezone);
        set(&mut ws.agent_identity, self.agent_identity);
        set(&mut ws.group_chats, self.group_chats);
        set(&mut ws.affinity, self.affinity);
        set(&mut ws.offer, self.offer);
        set(&mut ws.context_variables, self.context_variables);
        set(&mut ws.wrap_up_seconds, self.wrap_up_seconds);
        set(&mut ws.dispositions, self.dispositions);
        self.bot
    }
}

/// A new workstream of `account_id` with the defaults (no name, language or default queue yet),
/// created at `now`.
pub(crate) fn blank_workstream(account_id: String, now: String) -> Workstream {
    Workstream {
        id: new_id(),
        account_id,
        name: String::new(),
        language: String::new(),
        distribution: Distribution::Push,
        default_queue: String::new(),
        attachments: Attachments::default(),
        auto_close_minutes: None,
        timezone: "UTC".into(),
        business_hours: Vec::new(),
        bot: None,
        agent_identity: None,
        automated_messages: Vec::new(),
        survey: None,
        group_chats: GroupChats::Handle,
        affinity: None,
        context_variables: Vec::new(),
        offer: None,
        wrap_up_seconds: None,
        dispositions: Vec::new(),
        rules: Vec::new(),
        version: 1,
        created_at: Some(now.clone()),
        updated_at: Some(now),
    }
}

/// The admin's path of a stored-form validation error.
fn admin_path(ws: &Workstream, e: &WorkstreamError) -> String {
    let path = e.path();
    if let Some(rest) = path.strip_prefix("automatedMessages[") {
        if let Some((index, _)) = rest.split_once(']') {
            if let Some(m) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| ws.automated_messages.get(i))
            {
                return format!("automatedMessages.{}.texts.{}", m.trigger, m.language);
            }
        }
    }
    match path {
        "timezone" => "timeZone".into(),
        "defaultQueue" => "defaultQueueId".into(),
        p if p.starts_with("bot.") => p.replace("secretName", "secret"),
        p => p.to_owned(),
    }
}

/// The workstream can be stored: `InvalidCondition` for its rules, `Invalid` otherwise.
fn validate(ws: &Workstream) -> Result<(), AdminError> {
    ws.validate().map_err(|e| {
        let field = admin_path(ws, &e);
        let message = format!("{field}: {}", e.message());
        if field.starts_with("rules") {
            AdminError::InvalidCondition { field, message }
        } else {
            AdminError::Invalid { field, message }
        }
    })
}

impl AdminService {
    /// Every workstream, oldest first.
    pub async fn workstreams(&self) -> Result<Vec<Workstream>, AdminError> {
        let mut all = self.deps.workstreams.list_workstreams().await?;
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// The workstream; `NotFound` when there is none.
    pub async fn workstream(&self, id: &str) -> Result<Workstream, AdminError> {
        self.deps
            .workstreams
            .workstream(id)
            .await?
            .ok_or(AdminError::NotFound("workstream"))
    }

    /// Creates the workstream of account `account_id` (one per account) from `patch` over the
    /// defaults, and turns the account's webhook (back) on.
    pub async fn create_workstream(
        &self,
        account_id: String,
        patch: WorkstreamPatch,
    ) -> Result<Workstream, AdminError> {
        let mut ws = blank_workstream(account_id, self.now());
        let bot_change = patch.apply(&mut ws);
        validate(&ws)?;
        if self.deps.accounts.get(&ws.account_id).await?.is_none() {
            return Err(AdminError::unknown_reference(
                "accountId",
                format!("accountId: there is no account {:?}", ws.account_id),
            ));
        }
        self.require_queue("defaultQueueId", &ws.default_queue)
            .await?;
        if let Some(existing) = self
            .deps
            .workstreams
            .workstream_for_account(&ws.account_id)
            .await?
        {
            return Err(AdminError::WorkstreamExists(existing.id));
        }
        // Its events would be erased by the purge still running.
        if let Some(job) = self.jobs.unfinished_for(&ws.account_id).await? {
            return Err(AdminError::PurgeInProgress(job.id));
        }
        self.apply_bot(&mut ws, bot_change).await?;
        match self.deps.workstreams.save_workstream(&ws, None).await {
            Ok(true) => {}
            Ok(false) => return Err(AdminError::VersionConflict),
            Err(PortError::Conflict(existing)) => {
                if ws.bot.is_some() {
                    let _ = self.deps.secrets.delete(&bot_secret_name(&ws.id)).await;
                }
                return Err(AdminError::WorkstreamExists(existing));
            }
            Err(e) => return Err(e.into()),
        }
        // A workstream (re)enables the account's webhook if an earlier deletion turned it off.
        self.set_webhook_disabled(&ws.account_id, false).await?;
        tracing::info!(workstream_id = %ws.id, account_id = %ws.account_id, "workstream created");
        Ok(ws)
    }

    /// Changes `ws` (as read by [`Self::workstream`]) unless it changed since.
    pub async fn update_workstream(
        &self,
        mut ws: Workstream,
        patch: WorkstreamPatch,
    ) -> Result<Workstream, AdminError> {
        let queue_before = ws.default_queue.clone();
        let bot_change = patch.apply(&mut ws);
        validate(&ws)?;
        if ws.default_queue != queue_before {
            self.require_queue("defaultQueueId", &ws.default_queue)
                .await?;
        }
        let bot_removed = self.apply_bot(&mut ws, bot_change).await?;
        self.save_workstream(&mut ws).await?;
        if bot_removed {
            self.deps.secrets.delete(&bot_secret_name(&ws.id)).await?;
        }
        tracing::info!(workstream_id = %ws.id, version = ws.version, "workstream updated");
        Ok(ws)
    }

    /// Deletes the workstream (its account's webhook is refused from then on) and, with `purge`,
    /// everything stored of its account, by a job recorded first (returned: the schedule runs
    /// it). The account cannot have a workstream again until the job is finished.
    pub async fn delete_workstream(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<Option<PurgeJob>, AdminError> {
        let ws = self.workstream(id).await?;
        let job = match purge {
            true => Some(self.start_purge(&ws.account_id).await?),
            false => None,
        };
        // The webhook first: from now on the account's events are refused.
        self.set_webhook_disabled(&ws.account_id, true).await?;
        self.deps.workstreams.delete_workstream(id).await?;
        if ws.bot.is_some() {
            self.deps.secrets.delete(&bot_secret_name(id)).await?;
        }
        tracing::info!(workstream_id = %id, purge, "workstream deleted");
        Ok(job)
    }

    /// Stores `ws` (read at its `version`, then changed) at the next version; `VersionConflict`
    /// when another write got there first.
    pub(crate) async fn save_workstream(&self, ws: &mut Workstream) -> Result<(), AdminError> {
        let stored = ws.version;
        ws.version = stored + 1;
        ws.updated_at = Some(self.now());
        if self
            .deps
            .workstreams
            .save_workstream(ws, Some(stored))
            .await?
        {
            Ok(())
        } else {
            Err(AdminError::VersionConflict)
        }
    }

    /// Applies a bot change: stores a new secret, sets or removes the bot. `true` when the bot
    /// was removed (its secret is deleted once the workstream is saved).
    async fn apply_bot(
        &self,
        ws: &mut Workstream,
        change: Option<Option<BotChange>>,
    ) -> Result<bool, AdminError> {
        let Some(change) = change else {
            return Ok(false);
        };
        match change {
            None => {
                let users: Vec<String> = ws
                    .rules
                    .iter()
                    .filter(|r| r.result.bot.is_some())
                    .map(|r| r.name.clone())
                    .collect();
                if !users.is_empty() {
                    return Err(AdminError::BotInUse(users));
                }
                Ok(ws.bot.take().is_some())
            }
            Some(change) => {
                if change.secret.is_none() && ws.bot.is_none() {
                    return Err(AdminError::invalid(
                        "bot.secret",
                        "bot.secret is required for a new bot",
                    ));
                }
                ws.bot = Some(BotConfig {
                    id: bot_id(&ws.id),
                    url: change.url,
                    secret_name: bot_secret_name(&ws.id),
                    timeout_ms: change.timeout_ms,
                });
                validate(ws)?;
                if let Some(secret) = change.secret {
                    self.deps
                        .secrets
                        .put(&bot_secret_name(&ws.id), &secret)
                        .await?;
                }
                Ok(false)
            }
        }
    }

    /// Turns the account's webhook off (its workstream was deleted) or back on. The flag is on the
    /// account record, which the webhook reads on every request: it takes effect at once. A
    /// deleted account: nothing to do.
    async fn set_webhook_disabled(
        &self,
        account_id: &str,
        disabled: bool,
    ) -> Result<(), AdminError> {
        let Some(mut account) = self.deps.accounts.get(account_id).await? else {
            return Ok(());
        };
        if account.webhook_disabled != disabled {
            account.webhook_disabled = disabled;
            account.updated_at = self.now();
            self.deps.accounts.update(&account).await?;
            self.disconnected(account_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniline_domain::workstream::Trigger;

    fn valid() -> Workstream {
        let mut ws = blank_workstream("acc".into(), "2026-11-25T00:00:00.000Z".into());
        ws.name = "Support".into();
        ws.language = "ja".into();
        ws.default_queue = "q1".into();
        ws
    }

    #[test]
    fn stored_form_errors_name_the_admins_field() {
        assert!(validate(&valid()).is_ok());
        let mut ws = valid();
        ws.timezone = "Mars/Base".into();
        assert!(
            matches!(validate(&ws), Err(AdminError::Invalid { field, .. }) if field == "timeZone")
        );
        let mut ws = valid();
        ws.automated_messages.push(AutomatedMessage {
            trigger: Trigger::Queued,
            language: "ja".into(),
            text: String::new(),
            enabled: true,
        });
        assert!(
            matches!(validate(&ws), Err(AdminError::Invalid { field, .. }) if field == "automatedMessages.queued.texts.ja")
        );
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let mut ws = valid();
        let patch = WorkstreamPatch {
            name: Some("Support JP".into()),
            survey: Some(None),
            customer_can_send: Some(false),
            bot: Some(None),
            ..WorkstreamPatch::default()
        };
        let bot = patch.apply(&mut ws);
        assert!(matches!(bot, Some(None)));
        assert_eq!(ws.name, "Support JP");
        assert_eq!(ws.language, "ja");
        assert!(!ws.attachments.customer_can_send);
        assert!(ws.attachments.agent_can_send);
    }
}
