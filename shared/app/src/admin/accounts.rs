//! LINE Official Accounts: connect one (LINE checks the channel access token, or issues a
//! stateless one from the channel ID and secret), update its name or credentials, point its
//! webhook at omniline, disconnect it (optionally purging its data), read its webhook counters.
//!
//! Channel secrets and access tokens go to the secret store and never into a result or a log.

use super::{AdminError, AdminService};
use crate::admin::workstreams::bot_secret_name;
use crate::jobs::PurgeJob;
use omniline_domain::account::{
    credentials_secret_name, Account, ChannelCredentials, WebhookStats,
};
use omniline_domain::clock::new_id;
use omniline_domain::line::api::{BotInfo, LineApiError, WebhookTestResult};
use omniline_domain::secret::SecretString;
use omniline_domain::PortError;

/// The webhook URL LINE posts an account's events to, under `base`.
pub fn callback_url(base: &str, account_id: &str) -> String {
    format!("{base}/line/webhook/{account_id}")
}

/// An account to connect.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: String,
    pub channel_id: String,
    pub channel_secret: SecretString,
    /// A long-lived token; without one, the account works with stateless tokens issued from the
    /// channel ID and secret (the outbound function renews them).
    pub channel_access_token: Option<SecretString>,
    /// Point the channel's webhook at omniline and have LINE test it.
    pub configure_webhook: bool,
}

/// What to change of an account (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub channel_secret: Option<SecretString>,
    /// Must belong to the account's bot.
    pub channel_access_token: Option<SecretString>,
    pub configure_webhook: bool,
}

/// What happened when the channel's webhook was pointed at omniline.
#[derive(Debug, Clone)]
pub enum WebhookOutcome {
    /// LINE refused the endpoint.
    NotSet(LineApiError),
    /// Set, and LINE tested it.
    Tested(WebhookTestResult),
    /// Set, but LINE's test call failed.
    TestFailed(LineApiError),
}

/// The webhook endpoint set up for an account, and how it went.
#[derive(Debug, Clone)]
pub struct WebhookSetup {
    pub endpoint: String,
    pub outcome: WebhookOutcome,
}

/// An account as stored after a change, with the webhook set-up when one was asked for.
#[derive(Debug, Clone)]
pub struct AccountChange {
    pub account: Account,
    pub webhook: Option<WebhookSetup>,
}

impl AdminService {
    pub async fn accounts(&self) -> Result<Vec<Account>, AdminError> {
        Ok(self.deps.accounts.list().await?)
    }

    /// The account; `NotFound` when there is none.
    pub async fn account(&self, id: &str) -> Result<Account, AdminError> {
        self.deps
            .accounts
            .get(id)
            .await?
            .ok_or(AdminError::NotFound("account"))
    }

    /// The account's webhook counters.
    pub async fn webhook_stats(&self, id: &str) -> Result<WebhookStats, AdminError> {
        self.account(id).await?;
        Ok(self.deps.accounts.webhook_stats(id).await?)
    }

    /// The account's message counts per month, newest first (the months kept:
    /// [`omniline_domain::account::SEND_MONTHS_KEPT`]).
    pub async fn message_stats(
        &self,
        id: &str,
    ) -> Result<Vec<omniline_domain::account::MonthSends>, AdminError> {
        self.account(id).await?;
        Ok(self.deps.accounts.send_stats(id).await?)
    }

    /// Connects a LINE channel (once: `AlreadyConnected` when its bot is connected already);
    /// `callback_base` is where the webhook is served.
    pub async fn connect_account(
        &self,
        new: NewAccount,
        callback_base: &str,
    ) -> Result<AccountChange, AdminError> {
        let call_token = match &new.channel_access_token {
            Some(token) => token.clone(),
            None => {
                self.issue_stateless(&new.channel_id, &new.channel_secret)
                    .await?
            }
        };
        let bot = self.check_token(&call_token).await?;
        let existing = self.deps.accounts.list().await?;
        if let Some(other) = existing.iter().find(|a| a.bot_user_id == bot.user_id) {
            return Err(AdminError::AlreadyConnected(other.id.clone()));
        }

        let now = self.now();
        let account = Account {
            id: new_id(),
            name: new.name,
            channel_id: new.channel_id,
            bot_user_id: bot.user_id,
            basic_id: bot.basic_id,
            display_name: bot.display_name,
            created_at: now.clone(),
            updated_at: now,
            webhook_disabled: false,
        };
        let credentials = ChannelCredentials {
            channel_secret: new.channel_secret,
            // Empty: no long-lived token, stateless tokens are issued when needed.
            channel_access_token: new
                .channel_access_token
                .unwrap_or_else(|| SecretString::new("")),
        };
        let secret_name = credentials_secret_name(&account.id);
        self.deps
            .secrets
            .put(&secret_name, &credentials.to_secret())
            .await?;
        if let Err(e) = self.deps.accounts.create(&account).await {
            // Do not leave credentials behind for an account that does not exist.
            let _ = self.deps.secrets.delete(&secret_name).await;
            return Err(e.into());
        }
        tracing::info!(account_id = %account.id, bot_user_id = %account.bot_user_id, "account connected");

        let webhook = if new.configure_webhook {
            Some(
                self.configure_webhook(&call_token, callback_base, &account.id)
                    .await,
            )
        } else {
            None
        };
        Ok(AccountChange { account, webhook })
    }

    /// Changes `account` (as read by [`Self::account`]): its name, or credentials checked with
    /// LINE (a token must belong to the same bot).
    pub async fn update_account(
        &self,
        mut account: Account,
        patch: AccountPatch,
        callback_base: &str,
    ) -> Result<AccountChange, AdminError> {
        let id = account.id.clone();
        let secret_name = credentials_secret_name(&id);
        let stored = self.deps.secrets.get(&secret_name).await?;
        let mut credentials = stored
            .as_ref()
            .and_then(ChannelCredentials::from_secret)
            .ok_or_else(|| {
                PortError::Unavailable(format!("credentials of account {id} missing"))
            })?;

        if let Some(token) = patch.channel_access_token {
            let bot = self.check_token(&token).await?;
            if bot.user_id != account.bot_user_id {
                return Err(AdminError::TokenForAnotherBot(bot.user_id));
            }
            account.basic_id = bot.basic_id;
            account.display_name = bot.display_name;
            credentials.channel_access_token = token;
        }
        let rotated = patch.channel_secret.is_some();
        if let Some(secret) = patch.channel_secret {
            if credentials.channel_access_token.expose().is_empty() {
                // The secret is what this account's tokens are issued from: check it with LINE.
                self.issue_stateless(&account.channel_id, &secret).await?;
            }
            credentials.channel_secret = secret;
        }
        if let Some(name) = patch.name {
            account.name = name;
        }
        account.updated_at = self.now();
        self.deps
            .secrets
            .put(&secret_name, &credentials.to_secret())
            .await?;
        if !self.deps.accounts.update(&account).await? {
            return Err(AdminError::NotFound("account"));
        }
        tracing::info!(account_id = %id, secret_rotated = rotated, "account updated");

        let webhook = if patch.configure_webhook {
            let token = if credentials.channel_access_token.expose().is_empty() {
                self.issue_stateless(&account.channel_id, &credentials.channel_secret)
                    .await?
            } else {
                credentials.channel_access_token.clone()
            };
            Some(self.configure_webhook(&token, callback_base, &id).await)
        } else {
            None
        };
        Ok(AccountChange { account, webhook })
    }

    /// Disconnects the account: its credentials (the webhook refuses it from then on), its
    /// workstream and bot secret, and the account. With `purge`, everything stored of it is
    /// erased too, by a job recorded first (returned: the schedule runs it; a retry after a
    /// failure finds it again).
    pub async fn disconnect_account(
        &self,
        id: &str,
        purge: bool,
    ) -> Result<Option<PurgeJob>, AdminError> {
        self.account(id).await?;
        let job = match purge {
            true => Some(self.start_purge(id).await?),
            false => None,
        };
        // The secret first: the webhook refuses the account from now on, and if a later step
        // fails a retry finishes the job.
        self.deps
            .secrets
            .delete(&credentials_secret_name(id))
            .await?;
        self.disconnected(id);
        if let Some(ws) = self.deps.workstreams.workstream_for_account(id).await? {
            self.deps.workstreams.delete_workstream(&ws.id).await?;
            if ws.bot.is_some() {
                self.deps.secrets.delete(&bot_secret_name(&ws.id)).await?;
            }
        }
        self.deps.accounts.delete(id).await?;
        tracing::info!(account_id = %id, purge, "account disconnected");
        Ok(job)
    }

    /// A stateless channel access token from the channel ID and secret; LINE refusing them is
    /// the admin's input error.
    async fn issue_stateless(
        &self,
        channel_id: &str,
        channel_secret: &SecretString,
    ) -> Result<SecretString, AdminError> {
        match self
            .deps
            .line
            .issue_stateless_token(channel_id, channel_secret)
            .await
        {
            Ok(issued) => Ok(issued.access_token),
            Err(LineApiError::Rejected { status, message }) => Err(
                AdminError::CredentialsRejected(format!("{status} {message}")),
            ),
            Err(LineApiError::Unavailable(m)) => Err(AdminError::LineUnavailable(m)),
        }
    }

    /// The bot behind `token`; LINE refusing it is the admin's input error.
    async fn check_token(&self, token: &SecretString) -> Result<BotInfo, AdminError> {
        self.deps.line.bot_info(token).await.map_err(|e| match e {
            LineApiError::Rejected { status, message } => {
                AdminError::TokenRejected(format!("{status} {message}"))
            }
            LineApiError::Unavailable(m) => AdminError::LineUnavailable(m),
        })
    }

    /// Points the channel's webhook at the account's callback URL and has LINE test it; the
    /// outcome is reported, never an error (the account is connected either way).
    async fn configure_webhook(
        &self,
        token: &SecretString,
        callback_base: &str,
        account_id: &str,
    ) -> WebhookSetup {
        let endpoint = callback_url(callback_base, account_id);
        let line = &self.deps.line;
        let outcome = match line.set_webhook_endpoint(token, &endpoint).await {
            Err(e) => WebhookOutcome::NotSet(e),
            Ok(()) => match line.test_webhook_endpoint(token, Some(&endpoint)).await {
                Ok(test) => WebhookOutcome::Tested(test),
                Err(e) => WebhookOutcome::TestFailed(e),
            },
        };
        WebhookSetup { endpoint, outcome }
    }
}
