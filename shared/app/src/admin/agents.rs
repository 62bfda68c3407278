//! Agents: the people who answer. The operational record (queues, skills, capacity, status,
//! active conversations) is the [`omniline_ports::AgentStore`]'s; the admin-side record (email,
//! the hash of the agent API token) is an [`AgentAccount`] in the config store. The token is
//! returned once, on creation and on rotation. Each email address names one agent: the email
//! index ([`AGENT_EMAIL_KIND`]) is how a person signed in with OpenID Connect is found.

use super::{parse_doc, set, to_doc, AdminError, AdminService, ExistingQueue, UsedBy};
use omniline_domain::agents::{
    issue_agent_token, Agent, AgentAccount, AgentEmail, AgentStatus, AGENT_ACCOUNT_KIND,
    AGENT_EMAIL_KIND,
};
use omniline_domain::clock::new_id;
use omniline_domain::identity::normalize_email;
use omniline_domain::secret::SecretString;
use omniline_ports::{ConfigStore, Expect, PortError};
use std::collections::HashMap;

/// An agent with its admin record (and that record's version).
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub agent: Agent,
    pub account: AgentAccount,
    version: u64,
}

/// An agent to create.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub email: String,
    pub capacity: u32,
    pub skills: Vec<String>,
    pub queues: Vec<ExistingQueue>,
}

/// What to change of an agent (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub capacity: Option<u32>,
    pub skills: Option<Vec<String>>,
    pub queues: Option<Vec<ExistingQueue>>,
}

impl AdminService {
    /// The agents created through the admin API (seeded ones without an admin record are not),
    /// oldest first.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, AdminError> {
        let accounts: HashMap<String, (AgentAccount, u64)> = self
            .deps
            .config
            .list_docs(AGENT_ACCOUNT_KIND)
            .await?
            .iter()
            .map(|doc| {
                Ok((
                    doc.id.clone(),
                    (parse_doc(doc, "agent account")?, doc.version),
                ))
            })
            .collect::<Result<_, AdminError>>()?;
        let mut records: Vec<AgentRecord> = self
            .deps
            .agents
            .list_agents()
            .await?
            .into_iter()
            .filter_map(|agent| {
                let (account, version) = accounts.get(&agent.id)?.clone();
                Some(AgentRecord {
                    agent,
                    account,
                    version,
                })
            })
            .collect();
        records.sort_by(|a, b| {
            (a.account.created_at.cmp(&b.account.created_at)).then(a.agent.id.cmp(&b.agent.id))
        });
        Ok(records)
    }

    /// The agent and its admin record; `NotFound` without either.
    pub async fn agent(&self, id: &str) -> Result<AgentRecord, AdminError> {
        let doc = self.doc(AGENT_ACCOUNT_KIND, id, "agent").await?;
        let account = parse_doc(&doc, "agent account")?;
        let agent = self
            .deps
            .agents
            .agent(id)
            .await?
            .ok_or(AdminError::NotFound("agent"))?;
        Ok(AgentRecord {
            agent,
            account,
            version: doc.version,
        })
    }

    /// Creates an offline agent; returns it with its API token (shown once).
    pub async fn create_agent(
        &self,
        new: NewAgent,
    ) -> Result<(AgentRecord, SecretString), AdminError> {
        let id = new_id();
        let (token, token_hash) = issue_agent_token(&id);
        let now = self.now();
        let account = AgentAccount {
            id: id.clone(),
            email: new.email,
            token_hash,
            created_at: now.clone(),
            updated_at: now,
        };
        let agent = Agent {
            id: id.clone(),
            name: new.name,
            queues: new.queues.into_iter().map(ExistingQueue::into_id).collect(),
            skills: new.skills,
            capacity: new.capacity,
            status: AgentStatus::Offline,
            active_conversations: Vec::new(),
            last_assigned_at: None,
            last_seen_at: None,
        };
        // The address first (refused if another agent has it), then the operational record: an
        // agent without an admin record is invisible to the admin API and cannot log in, so a
        // failure between the writes leaves nothing usable behind (a claim whose agent never
        // came is stale, and the next agent with that address takes it over).
        self.claim_email(&account.email, &id).await?;
        self.deps.agents.put_agent(&agent).await?;
        let version = self.save_account(&account, Expect::Absent).await?;
        tracing::info!(agent_id = %id, "agent created");
        let record = AgentRecord {
            agent,
            account,
            version,
        };
        Ok((record, token))
    }

    /// Changes `current` (as read by [`Self::agent`]) unless its admin record changed since.
    pub async fn update_agent(
        &self,
        current: AgentRecord,
        patch: AgentPatch,
    ) -> Result<AgentRecord, AdminError> {
        let AgentRecord {
            mut agent,
            mut account,
            version,
        } = current;
        set(&mut agent.name, patch.name);
        let previous_email = account.email.clone();
        set(&mut account.email, patch.email);
        let email_changed = normalize_email(&previous_email) != normalize_email(&account.email);
        if email_changed {
            self.claim_email(&account.email, &account.id).await?;
        }
        set(&mut agent.capacity, patch.capacity);
        set(&mut agent.skills, patch.skills);
        set(
            &mut agent.queues,
            patch
                .queues
                .map(|queues| queues.into_iter().map(ExistingQueue::into_id).collect()),
        );
        account.updated_at = self.now();
        let version = self
            .save_account(&account, Expect::Version(version))
            .await?;
        if email_changed {
            self.release_email(&previous_email, &account.id).await?;
        }
        self.deps.agents.put_agent(&agent).await?;
        let agent = self.deps.agents.agent(&account.id).await?.unwrap_or(agent);
        Ok(AgentRecord {
            agent,
            account,
            version,
        })
    }

    /// Deletes the agent unless it holds active conversations (`AgentBusy`, naming them).
    pub async fn delete_agent(&self, id: &str) -> Result<(), AdminError> {
        let AgentRecord { agent, account, .. } = self.agent(id).await?;
        if agent.active_count() > 0 {
            return Err(AdminError::AgentBusy(
                agent
                    .active_conversations
                    .iter()
                    .map(|c| UsedBy::Conversation { id: c.clone() })
                    .collect(),
            ));
        }
        // The admin record (and with it the token) first: the agent can no longer log in.
        self.deps.config.delete_doc(AGENT_ACCOUNT_KIND, id).await?;
        self.release_email(&account.email, id).await?;
        self.deps.agents.delete_agent(id).await?;
        tracing::info!(agent_id = %id, "agent deleted");
        Ok(())
    }

    /// A new API token for the agent (the old one stops working); shown once.
    pub async fn rotate_agent_token(&self, id: &str) -> Result<SecretString, AdminError> {
        let AgentRecord {
            mut account,
            version,
            ..
        } = self.agent(id).await?;
        let (token, token_hash) = issue_agent_token(id);
        account.token_hash = token_hash;
        account.updated_at = self.now();
        self.save_account(&account, Expect::Version(version))
            .await?;
        tracing::info!(agent_id = %id, "agent token rotated");
        Ok(token)
    }

    /// Writes the agent's admin record; its new version.
    async fn save_account(
        &self,
        account: &AgentAccount,
        expect: Expect,
    ) -> Result<u64, AdminError> {
        let doc = to_doc(account, "agent account")?;
        self.put_doc(AGENT_ACCOUNT_KIND, &account.id, doc, expect)
            .await
    }

    /// Makes `email` name `agent_id` in the email index: when free, already this agent's, or
    /// held by a stale claim (its agent gone, or since given another address). `EmailTaken` when
    /// a live agent has it.
    async fn claim_email(&self, email: &str, agent_id: &str) -> Result<(), AdminError> {
        let key = normalize_email(email);
        let doc = to_doc(
            &AgentEmail {
                agent_id: agent_id.to_owned(),
            },
            "agent email",
        )?;
        let expect = match self.deps.config.get_doc(AGENT_EMAIL_KIND, &key).await? {
            None => Expect::Absent,
            Some(existing) => {
                let holder: AgentEmail = parse_doc(&existing, "agent email")?;
                if holder.agent_id == agent_id {
                    return Ok(());
                }
                let live = self
                    .deps
                    .config
                    .get_doc(AGENT_ACCOUNT_KIND, &holder.agent_id)
                    .await?
                    .and_then(|d| serde_json::from_str::<AgentAccount>(&d.doc).ok())
                    .is_some_and(|a| normalize_email(&a.email) == key);
                if live {
                    return Err(AdminError::EmailTaken);
                }
                Expect::Version(existing.version)
            }
        };
        match self
            .deps
            .config
            .put_doc(AGENT_EMAIL_KIND, &key, &doc, expect)
            .await?
        {
            Some(_) => Ok(()),
            // Another admin claimed it between the read and the write.
            None => Err(AdminError::EmailTaken),
        }
    }

    /// Removes `email` from the index if it names `agent_id` (another agent's claim stays).
    async fn release_email(&self, email: &str, agent_id: &str) -> Result<(), AdminError> {
        let key = normalize_email(email);
        if let Some(existing) = self.deps.config.get_doc(AGENT_EMAIL_KIND, &key).await? {
            let holder: AgentEmail = parse_doc(&existing, "agent email")?;
            if holder.agent_id == agent_id {
                self.deps.config.delete_doc(AGENT_EMAIL_KIND, &key).await?;
            }
        }
        Ok(())
    }
}

/// The email index for agents created before it (a migration: `omniline-migrate` on AWS, at
/// start on the embedded backend): each agent account's address is claimed for it unless
/// claimed already. Reads the agent accounts (one partition, as the admin's agent list does)
/// and writes only what is missing; running it again changes nothing. Returns how many
/// addresses it indexed, and the agents whose address another agent holds (they cannot sign in
/// with OpenID Connect until an admin gives one of them another address).
pub async fn index_agent_emails(
    config: &dyn ConfigStore,
) -> Result<(usize, Vec<String>), PortError> {
    let mut indexed = 0;
    let mut shared = Vec::new();
    for doc in config.list_docs(AGENT_ACCOUNT_KIND).await? {
        let Ok(account) = serde_json::from_str::<AgentAccount>(&doc.doc) else {
            continue;
        };
        let key = normalize_email(&account.email);
        match config.get_doc(AGENT_EMAIL_KIND, &key).await? {
            Some(existing) => {
                let holder = serde_json::from_str::<AgentEmail>(&existing.doc).ok();
                if holder.is_none_or(|h| h.agent_id != account.id) {
                    shared.push(account.id);
                }
            }
            None => {
                let entry = serde_json::to_string(&AgentEmail {
                    agent_id: account.id.clone(),
                })
                .map_err(|e| PortError::Unavailable(format!("agent email: {e}")))?;
                match config
                    .put_doc(AGENT_EMAIL_KIND, &key, &entry, Expect::Absent)
                    .await?
                {
                    Some(_) => indexed += 1,
                    None => shared.push(account.id),
                }
            }
        }
    }
    Ok((indexed, shared))
}
