//! Tags agents put on conversations and customers (`PUT …/tags`), within LINE Official Account
//! Manager's limits ([`omniline_domain::tags`]): every tag is first registered in its account's
//! tag list (one conditional write, and only when a tag is new), so an account never holds more
//! than [`omniline_domain::tags::MAX_TAGS_PER_ACCOUNT`] distinct tags.

use super::{AgentError, AgentService};
use omniline_domain::agents::Agent;
use omniline_domain::conversation::{
    customer_doc_id, CustomerAttributes, CUSTOMER_ATTRIBUTES_KIND,
};
use omniline_domain::tags::{normalize_all, AccountTags, ACCOUNT_TAGS_KIND};
use omniline_ports::Expect;

/// How often a write conditional on a version is tried before a conflict is reported.
const ATTEMPTS: usize = 5;

impl AgentService {
    /// Sets the tags of a conversation the agent sees; returns them as kept.
    pub async fn set_conversation_tags(
        &self,
        agent: &Agent,
        id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, AgentError> {
        let tags = normalize_all(tags.iter().map(String::as_str))
            .map_err(|problem| AgentError::invalid("tags", problem))?;
        let c = self.visible_conversation(agent, id).await?.0;
        self.register_tags(&c.account_id, &tags).await?;
        let kept = self.router.set_tags(&c.id, agent, tags).await?.tags;
        // A 1:1 conversation's tags find its customer.
        if c.source_type == omniline_domain::conversation::SourceType::User {
            self.index_tags(&c, &c.source_id, &kept, &c.tags).await;
        }
        Ok(kept)
    }

    /// Sets the tags of the customer `customer_id` (`{accountId}:{userId}`) of an account the
    /// agent serves; returns them as kept. They live in the customer's attributes document,
    /// which routing reads with one GetItem.
    pub async fn set_customer_tags(
        &self,
        agent: &Agent,
        customer_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, AgentError> {
        let tags = normalize_all(tags.iter().map(String::as_str))
            .map_err(|problem| AgentError::invalid("tags", problem))?;
        let (customer, _, _) = self.served_customer(agent, customer_id).await?;
        self.register_tags(&customer.account_id, &tags).await?;
        let config = &self.deps().config;
        let id = customer_doc_id(&customer.account_id, &customer.user_id);
        for _ in 0..ATTEMPTS {
            let stored = config.get_doc(CUSTOMER_ATTRIBUTES_KIND, &id).await?;
            let (mut doc, expect) = match &stored {
                Some(d) => (
                    serde_json::from_str::<CustomerAttributes>(&d.doc).map_err(|e| {
                        AgentError::Internal(format!("customer attributes document: {e}"))
                    })?,
                    Expect::Version(d.version),
                ),
                None => (CustomerAttributes::default(), Expect::Absent),
            };
            if doc.tags == tags {
                return Ok(tags);
            }
            let previous = std::mem::replace(&mut doc.tags, tags.clone());
            let json = serde_json::to_string(&doc)
                .map_err(|e| AgentError::Internal(format!("customer attributes document: {e}")))?;
            if config
                .put_doc(CUSTOMER_ATTRIBUTES_KIND, &id, &json, expect)
                .await?
                .is_some()
            {
                tracing::info!(agent_id = %agent.id, account_id = %customer.account_id, tags = tags.len(), "customer tagged");
                // Best effort: the tags are set whatever happens to their index.
                match self
                    .latest_conversation(&customer.account_id, &customer.user_id)
                    .await
                {
                    Ok(Some(c)) => {
                        self.index_tags(&c, &customer.user_id, &tags, &previous)
                            .await
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "customer's conversations unreadable: tags not indexed for search")
                    }
                }
                return Ok(tags);
            }
        }
        Err(AgentError::Conflict(
            "the customer's tags kept changing; try again".into(),
        ))
    }

    /// Adds the new ones of `tags` to the account's tag list; `Conflict` when the account would
    /// hold too many distinct tags.
    async fn register_tags(&self, account_id: &str, tags: &[String]) -> Result<(), AgentError> {
        if tags.is_empty() {
            return Ok(());
        }
        let config = &self.deps().config;
        for _ in 0..ATTEMPTS {
            let stored = config.get_doc(ACCOUNT_TAGS_KIND, account_id).await?;
            let (known, expect) = match &stored {
                Some(d) => (
                    serde_json::from_str::<AccountTags>(&d.doc)
                        .map_err(|e| AgentError::Internal(format!("account tags document: {e}")))?,
                    Expect::Version(d.version),
                ),
                None => (AccountTags::default(), Expect::Absent),
            };
            let Some(next) = known.with(tags).map_err(AgentError::TooManyTags)? else {
                return Ok(());
            };
            let json = serde_json::to_string(&next)
                .map_err(|e| AgentError::Internal(format!("account tags document: {e}")))?;
            if config
                .put_doc(ACCOUNT_TAGS_KIND, account_id, &json, expect)
                .await?
                .is_some()
            {
                return Ok(());
            }
        }
        Err(AgentError::Conflict(
            "the account's tags kept changing; try again".into(),
        ))
    }
}
