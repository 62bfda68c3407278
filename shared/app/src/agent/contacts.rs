//! Contacts (the CRM side): create and search them, link a conversation's LINE user to one
//! directly, or ask the customer to link through LINE's account-link flow. The customer's side of
//! that flow is the account-link page: confirming it uses the request up, issues a one-time nonce
//! bound to the contact and sends the customer to LINE, whose `accountLink` event brings the
//! nonce back to the router.

use super::conversations::CustomerView;
use super::{AgentError, AgentService, LinkPageError, VisibleConversation};
use crate::settings::load_settings;
use omniline_domain::agents::Agent;
use omniline_domain::clock::{new_id, rfc3339_millis};
use omniline_domain::contacts::{
    contact_kind, Contact, LinkNonce, LinkRequest, LINK_LIFETIME_MS, LINK_NONCE_KIND,
    LINK_REQUEST_KIND, MAX_CONTACTS_PER_ACCOUNT,
};
use omniline_domain::conversation::{EventCommit, DEDUPE_RETENTION_SECS};
use omniline_ports::Expect;

/// LINE's account-link page.
pub const LINE_ACCOUNT_LINK_URL: &str = "https://access.line.me/dialog/bot/accountLink";
/// Most contacts one search returns.
pub const SEARCH_LIMIT: usize = 50;

/// A contact to create (validated fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    /// The account it belongs to; `None`: the agent's only account.
    pub account_id: Option<String>,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
}

/// A change to a contact: each field that is `Some` is set; for `email`, `phone` and `company`,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ContactChange {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub company: Option<Option<String>>,
}

/// The account a contact request is about: `asked` (one the agent serves; `Forbidden` otherwise),
/// or the agent's only account when it is absent.
fn chosen_account(served: &[String], asked: Option<String>) -> Result<String, AgentError> {
    match (asked, served) {
        (Some(id), _) if served.contains(&id) => Ok(id),
        (Some(_), _) => Err(AgentError::Forbidden(
            "your queues do not serve this account".into(),
        )),
        (None, [only]) => Ok(only.clone()),
        (None, []) => Err(AgentError::Forbidden(
            "your queues serve no account: there are no contacts for you".into(),
        )),
        (None, _) => Err(AgentError::invalid(
            "accountId",
            "accountId is required: your queues serve more than one account",
        )),
    }
}

impl AgentService {
    /// The accounts whose conversations reach `agent`'s queues (a workstream of the account routes
    /// to one of them, by default or by a rule): the accounts whose contacts the agent may use.
    pub(crate) async fn served_accounts(&self, agent: &Agent) -> Result<Vec<String>, AgentError> {
        let mut accounts: Vec<String> = self
            .deps()
            .workstreams
            .list_workstreams()
            .await?
            .into_iter()
            .filter(|ws| {
                agent.queues.contains(&ws.default_queue)
                    || ws
                        .rules
                        .iter()
                        .any(|r| agent.queues.contains(&r.result.queue))
            })
            .map(|ws| ws.account_id)
            .collect();
        accounts.sort();
        accounts.dedup();
        Ok(accounts)
    }

    async fn account_contacts(&self, account_id: &str) -> Result<Vec<Contact>, AgentError> {
        Ok(self
            .deps()
            .config
            .list_docs(&contact_kind(account_id))
            .await?
            .iter()
            .filter_map(|d| serde_json::from_str::<Contact>(&d.doc).ok())
            .collect())
    }

    /// Creates a contact of an account the agent serves, at most [`MAX_CONTACTS_PER_ACCOUNT`]
    /// per account.
    pub async fn create_contact(
        &self,
        agent: &Agent,
        new: NewContact,
    ) -> Result<Contact, AgentError> {
        let account_id = chosen_account(&self.served_accounts(agent).await?, new.account_id)?;
        if self.account_contacts(&account_id).await?.len() >= MAX_CONTACTS_PER_ACCOUNT {
            return Err(AgentError::Conflict(format!(
                "the account holds {MAX_CONTACTS_PER_ACCOUNT} contacts, the most it may; delete some first"
            )));
        }
        let now = rfc3339_millis(self.now());
        let contact = Contact {
            id: new_id(),
            account_id,
            name: new.name,
            email: new.email,
            phone: new.phone,
            company: new.company,
            created_at: now.clone(),
            updated_at: now,
        };
        let doc = serde_json::to_string(&contact)
            .map_err(|e| AgentError::Internal(format!("contact document: {e}")))?;
        self.deps()
            .config
            .put_doc(
                &contact_kind(&contact.account_id),
                &contact.id,
                &doc,
                Expect::Absent,
            )
            .await?
            .ok_or_else(|| AgentError::Conflict("contact id taken; retry".into()))?;
        tracing::info!(agent_id = %agent.id, contact_id = %contact.id, "contact created");
        Ok(contact)
    }

    /// Contacts of the accounts the agent serves (or of `account_id`, one of them) whose name,
    /// email, phone or company contain `q`: by name, at most [`SEARCH_LIMIT`].
    pub async fn search_contacts(
        &self,
        agent: &Agent,
        q: &str,
        account_id: Option<&str>,
    ) -> Result<Vec<Contact>, AgentError> {
        let served = self.served_accounts(agent).await?;
        let accounts = match account_id {
            Some(id) => vec![chosen_account(&served, Some(id.to_owned()))?],
            None => served,
        };
        let mut found = Vec::new();
        for account in &accounts {
            found.extend(
                self.account_contacts(account)
                    .await?
                    .into_iter()
                    .filter(|c| c.matches(q)),
            );
        }
        found.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        found.truncate(SEARCH_LIMIT);
        Ok(found)
    }

    /// Changes the contact `id` of an account the agent serves (`NotFound("contact")` otherwise),
    /// conditional on the version read: a concurrent change is read again and applied over it.
    pub async fn update_contact(
        &self,
        agent: &Agent,
        id: &str,
        change: ContactChange,
    ) -> Result<Contact, AgentError> {
        let config = &self.deps().config;
        for account in self.served_accounts(agent).await? {
            let kind = contact_kind(&account);
            for _ in 0..5 {
                let Some(stored) = config.get_doc(&kind, id).await? else {
                    break;
                };
                let mut contact: Contact = serde_json::from_str(&stored.doc)
                    .map_err(|e| AgentError::Internal(format!("contact document: {e}")))?;
                if let Some(name) = &change.name {
                    contact.name = name.clone();
                }
                if let Some(email) = &change.email {
                    contact.email = email.clone();
                }
                if let Some(phone) = &change.phone {
                    contact.phone = phone.clone();
                }
                if let Some(company) = &change.company {
                    contact.company = company.clone();
                }
                contact.updated_at = rfc3339_millis(self.now());
                let doc = serde_json::to_string(&contact)
                    .map_err(|e| AgentError::Internal(format!("contact document: {e}")))?;
                if config
                    .put_doc(&kind, id, &doc, Expect::Version(stored.version))
                    .await?
                    .is_some()
                {
                    tracing::info!(agent_id = %agent.id, contact_id = %id, "contact changed");
                    return Ok(contact);
                }
            }
        }
        Err(AgentError::NotFound("contact"))
    }

    /// Deletes the contact `id` of an account the agent serves (`NotFound("contact")`
    /// otherwise). Customers linked to it then show no contact.
    pub async fn delete_contact(&self, agent: &Agent, id: &str) -> Result<(), AgentError> {
        let config = &self.deps().config;
        for account in self.served_accounts(agent).await? {
            if config.delete_doc(&contact_kind(&account), id).await? {
                tracing::info!(agent_id = %agent.id, contact_id = %id, "contact deleted");
                return Ok(());
            }
        }
        Err(AgentError::NotFound("contact"))
    }

    /// The contact `contact_id` of the conversation's account (`Unprocessable` otherwise).
    async fn conversation_contact(
        &self,
        conversation: &VisibleConversation,
        contact_id: &str,
    ) -> Result<Contact, AgentError> {
        self.contact(&conversation.conversation().account_id, contact_id)
            .await?
            .ok_or_else(|| {
                AgentError::unprocessable(
                    "contactId",
                    format!("there is no contact {contact_id:?} in the conversation's account"),
                )
            })
    }

    /// Links the conversation's LINE user (1:1 chats) to the contact; every later conversation
    /// of that user shows it. Returns the customer as agents see it now.
    pub async fn link_contact(
        &self,
        agent: &Agent,
        conversation: &VisibleConversation,
        contact_id: &str,
    ) -> Result<CustomerView, AgentError> {
        let c = conversation.conversation();
        let contact = self.conversation_contact(conversation, contact_id).await?;
        let Some(mut customer) = self.customer_of(c).await? else {
            return Err(AgentError::unprocessable(
                "conversation",
                "only a 1:1 conversation's customer can be linked",
            ));
        };
        let deps = self.deps();
        let now = self.now();
        customer.linked_contact_id = Some(contact.id.clone());
        customer.updated_at = now;
        let (settings, _) = load_settings(deps.config.as_ref()).await?;
        let commit = EventCommit {
            account_id: c.account_id.clone(),
            event_id: format!("link:{}:{}:{now}", c.id, contact.id),
            now_secs: now.div_euclid(1000),
            dedupe_expires_at: now.div_euclid(1000) + DEDUPE_RETENTION_SECS,
            retain_until: settings.retain_until(now),
            conversation: None,
            transcript: None,
            retract_message_id: None,
            customer: Some(customer.clone()),
            outbox: Vec::new(),
            notifications: Vec::new(),
        };
        deps.conversations.commit(&commit).await?;
        tracing::info!(agent_id = %agent.id, conversation_id = %c.id, contact_id = %contact.id, "customer linked to a contact");
        self.customer_view(customer).await
    }

    /// Sends the customer LINE's account-link flow for the contact (of the conversation's
    /// account); the link is recorded when LINE reports it (the router). Returns the URL sent,
    /// under `link_base_url`.
    pub async fn request_link(
        &self,
        agent: &Agent,
        conversation: &VisibleConversation,
        contact_id: &str,
        link_base_url: &str,
    ) -> Result<String, AgentError> {
        let contact = self.conversation_contact(conversation, contact_id).await?;
        Ok(self
            .router
            .request_account_link(
                &conversation.conversation().id,
                agent,
                &contact.id,
                link_base_url,
            )
            .await?)
    }

    /// The stored account-link request `id` if it is still good (an expired one is deleted).
    /// Reading it changes nothing else.
    pub async fn live_link_request(&self, id: &str) -> Result<LinkRequest, LinkPageError> {
        let config = &self.deps().config;
        let request = match config.get_doc(LINK_REQUEST_KIND, id).await {
            Ok(Some(doc)) => serde_json::from_str::<LinkRequest>(&doc.doc).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "link request unreadable");
                return Err(LinkPageError::Unavailable(e));
            }
        };
        let Some(request) = request else {
            return Err(LinkPageError::Unknown);
        };
        if self.now() - request.created_at > LINK_LIFETIME_MS {
            let _ = config.delete_doc(LINK_REQUEST_KIND, id).await;
            return Err(LinkPageError::Expired);
        }
        Ok(request)
    }

    /// The customer confirms the account link `id`: uses the request up (exactly one of
    /// concurrent confirmations: the one whose delete removed it), mints the one nonce (good for
    /// [`LINK_LIFETIME_MS`]) and returns LINE's account-link URL to send the customer to.
    pub async fn confirm_link_request(&self, id: &str) -> Result<String, LinkPageError> {
        let request = self.live_link_request(id).await?;
        let config = &self.deps().config;
        match config.delete_doc(LINK_REQUEST_KIND, id).await {
            Ok(true) => {}
            Ok(false) => return Err(LinkPageError::Unknown),
            Err(e) => {
                tracing::error!(error = %e, "link request not used up");
                return Err(LinkPageError::Unavailable(e));
            }
        }
        let nonce = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let record = LinkNonce {
            nonce: nonce.clone(),
            account_id: request.account_id.clone(),
            user_id: request.user_id.clone(),
            contact_id: request.contact_id.clone(),
            created_at: self.now(),
        };
        let stored = match serde_json::to_string(&record) {
            Ok(doc) => {
                config
                    .put_doc(LINK_NONCE_KIND, &nonce, &doc, Expect::Absent)
                    .await
            }
            Err(e) => Err(omniline_domain::PortError::Unavailable(e.to_string())),
        };
        if !matches!(stored, Ok(Some(_))) {
            return Err(LinkPageError::NonceNotStored);
        }
        Ok(format!(
            "{LINE_ACCOUNT_LINK_URL}?linkToken={}&nonce={nonce}",
            request.link_token
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{chosen_account, AgentError};

    #[test]
    fn the_account_is_the_asked_served_one_or_the_only_one() {
        let one = ["acc1".to_owned()];
        let two = ["acc1".to_owned(), "acc2".to_owned()];
        assert_eq!(
            chosen_account(&two, Some("acc2".into())).ok(),
            Some("acc2".into())
        );
        assert!(matches!(
            chosen_account(&one, Some("acc9".into())),
            Err(AgentError::Forbidden(_))
        ));
        assert_eq!(chosen_account(&one, None).ok(), Some("acc1".into()));
        assert!(matches!(
            chosen_account(&[], None),
            Err(AgentError::Forbidden(_))
        ));
        assert!(matches!(
            chosen_account(&two, None),
            Err(AgentError::Invalid { field, .. }) if field == "accountId"
        ));
    }
}
