//! Privacy requests and purges: find, export and erase one customer's data; the purge of
//! everything of an account (account or workstream deleted with purge), recorded as a job
//! ([`crate::jobs`]) that the schedule runs.
//!
//! A customer is one LINE user of one connected account (a LINE user id is per provider, so the
//! same person is one customer per account). Their data: the profile, their 1:1 conversations
//! with transcripts, the outbound messages sent in them, and the media they sent.

use super::{AdminError, AdminService};
use crate::jobs::{JobBudget, JobsRun, PurgeJob};
use omniline_domain::contacts::{contact_kind, LINK_NONCE_KIND, LINK_REQUEST_KIND};
use omniline_domain::conversation::{
    customer_doc_id, CustomerAttributes, CUSTOMER_ATTRIBUTES_KIND,
};
use omniline_domain::conversation::{Conversation, Customer, TranscriptEntry};
use omniline_domain::delivery::Delivery;
use omniline_domain::media_links::{inbound_media_key, key_of_link};
use omniline_domain::routing::rules::is_value_name;
use omniline_domain::workstream::{is_small_scalar, CONTEXT_VARIABLES_MAX};
use omniline_ports::Expect;
use serde_json::Value;
use std::collections::BTreeMap;

/// One conversation of an export, with everything recorded in it.
#[derive(Debug, Clone)]
pub struct ConversationExport {
    pub conversation: Conversation,
    pub transcript: Vec<TranscriptEntry>,
    pub deliveries: Vec<Delivery>,
}

/// Everything stored about a customer.
#[derive(Debug, Clone)]
pub struct CustomerExport {
    pub customer: Customer,
    /// What admins set on them (`customer.attributes.<name>` for the routing rules).
    pub attributes: BTreeMap<String, Value>,
    /// The tags agents put on them.
    pub tags: Vec<String>,
    /// The notes agents keep about them.
    pub notes: Vec<omniline_domain::conversation::Note>,
    pub conversations: Vec<ConversationExport>,
}

/// A change of a customer's attributes: a value sets the name, `None` removes it.
pub type AttributesPatch = BTreeMap<String, Option<Value>>;

/// The keys of agent uploads (`agent-media/{agentId}/{file}`) an agent's message links to:
/// `{base}/media/agent-media/…?expires=…&signature=…` in `originalContentUrl` or
/// `previewImageUrl`.
fn agent_upload_keys(event: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    for message in event["messages"].as_array().into_iter().flatten() {
        for field in ["originalContentUrl", "previewImageUrl"] {
            let Some(url) = message[field].as_str() else {
                continue;
            };
            // `agent-media/{agentId}/{file}`, as the agent function names uploads.
            let upload = key_of_link(url).filter(|key| {
                key.starts_with("agent-media/")
                    && key.split('/').count() == 3
                    && !key.split('/').any(|s| s.starts_with('.'))
            });
            if let Some(key) = upload {
                if !keys.iter().any(|k| k == key) {
                    keys.push(key.to_owned());
                }
            }
        }
    }
    keys
}

impl AdminService {
    /// The customers with this LINE user id, in every account.
    pub async fn find_customers(&self, user_id: &str) -> Result<Vec<Customer>, AdminError> {
        let mut found = Vec::new();
        for account in self.deps.accounts.list().await? {
            if let Some(customer) = self
                .deps
                .conversations
                .customer(&account.id, user_id)
                .await?
            {
                found.push(customer);
            }
        }
        Ok(found)
    }

    /// The customer's profile (when stored) and 1:1 conversations.
    async fn customer_data(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<(Option<Customer>, Vec<Conversation>), AdminError> {
        let customer = self
            .deps
            .conversations
            .customer(account_id, user_id)
            .await?;
        let conversations = self
            .deps
            .conversations
            .conversations_of_source(account_id, user_id)
            .await?;
        Ok((customer, conversations))
    }

    /// The customer's attributes as stored, with the document's version (0: none stored).
    async fn attributes_of(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<(CustomerAttributes, u64), AdminError> {
        let id = customer_doc_id(account_id, user_id);
        let Some(doc) = self
            .deps
            .config
            .get_doc(CUSTOMER_ATTRIBUTES_KIND, &id)
            .await?
        else {
            return Ok((CustomerAttributes::default(), 0));
        };
        let stored: CustomerAttributes = serde_json::from_str(&doc.doc).map_err(|e| {
            AdminError::Store(omniline_domain::PortError::Unavailable(format!(
                "stored customer attributes do not parse: {e}"
            )))
        })?;
        Ok((stored, doc.version))
    }

    /// Sets (a value) or removes (`None`) the customer's attributes by name and returns them
    /// all: names a letter then up to 63 letters, digits or `_`; values strings, numbers or
    /// booleans of at most 1 KB; at most 50 in all (`Invalid` naming the attribute otherwise).
    /// `NotFound` for a customer never stored. A concurrent change is read again and merged.
    pub async fn set_customer_attributes(
        &self,
        account_id: &str,
        user_id: &str,
        patch: AttributesPatch,
    ) -> Result<BTreeMap<String, Value>, AdminError> {
        for (name, value) in &patch {
            let field = format!("attributes.{name}");
            if !is_value_name(name) {
                return Err(AdminError::invalid(
                    &field,
                    "an attribute name is a letter then up to 63 letters, digits or _",
                ));
            }
            if value.as_ref().is_some_and(|v| !is_small_scalar(v)) {
                return Err(AdminError::invalid(
                    &field,
                    "an attribute is a string, number or boolean of at most 1 KB (null removes it)",
                ));
            }
        }
        if self
            .deps
            .conversations
            .customer(account_id, user_id)
            .await?
            .is_none()
        {
            return Err(AdminError::NotFound("customer"));
        }
        let id = customer_doc_id(account_id, user_id);
        for _ in 0..3 {
            let (stored, version) = self.attributes_of(account_id, user_id).await?;
            let mut attributes = stored.attributes;
            for (name, value) in &patch {
                match value {
                    Some(v) => attributes.insert(name.clone(), v.clone()),
                    None => attributes.remove(name),
                };
            }
            if attributes.len() > CONTEXT_VARIABLES_MAX {
                return Err(AdminError::invalid(
                    "attributes",
                    format!("a customer has at most {CONTEXT_VARIABLES_MAX} attributes"),
                ));
            }
            // The agents' tags in the same document are kept as they are.
            let doc = serde_json::to_string(&CustomerAttributes {
                attributes: attributes.clone(),
                tags: stored.tags,
            })
            .map_err(|e| {
                AdminError::Store(omniline_domain::PortError::Unavailable(format!(
                    "customer attributes: {e}"
                )))
            })?;
            let expect = if version == 0 {
                Expect::Absent
            } else {
                Expect::Version(version)
            };
            if self
                .deps
                .config
                .put_doc(CUSTOMER_ATTRIBUTES_KIND, &id, &doc, expect)
                .await?
                .is_some()
            {
                tracing::info!(account_id, names = ?patch.keys().collect::<Vec<_>>(), "customer attributes changed");
                return Ok(attributes);
            }
        }
        Err(AdminError::VersionConflict)
    }

    /// Everything stored about the customer (a data export); `NotFound` without a profile.
    pub async fn export_customer(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<CustomerExport, AdminError> {
        let (customer, conversations) = self.customer_data(account_id, user_id).await?;
        let Some(customer) = customer else {
            return Err(AdminError::NotFound("customer"));
        };
        let mut items = Vec::with_capacity(conversations.len());
        for conversation in conversations {
            let transcript = self.deps.conversations.transcript(&conversation.id).await?;
            let deliveries = self
                .deps
                .deliveries
                .deliveries_for_conversation(&conversation.id)
                .await?;
            items.push(ConversationExport {
                conversation,
                transcript,
                deliveries,
            });
        }
        let (stored, _) = self.attributes_of(account_id, user_id).await?;
        let notes = self
            .deps
            .config
            .get_doc(
                omniline_domain::conversation::CUSTOMER_NOTES_KIND,
                &customer_doc_id(account_id, user_id),
            )
            .await?
            .and_then(|d| {
                serde_json::from_str::<omniline_domain::conversation::CustomerNotes>(&d.doc).ok()
            })
            .map(|n| n.notes)
            .unwrap_or_default();
        Ok(CustomerExport {
            customer,
            attributes: stored.attributes,
            tags: stored.tags,
            notes,
            conversations: items,
        })
    }

    /// Erases the customer's profile, 1:1 conversations (with transcripts, outbound records and
    /// notifications), the media they sent and agents sent them, pending account links and the
    /// contact they are linked to; `NotFound` when nothing is stored.
    pub async fn erase_customer(&self, account_id: &str, user_id: &str) -> Result<(), AdminError> {
        let (customer, conversations) = self.customer_data(account_id, user_id).await?;
        if customer.is_none() && conversations.is_empty() {
            return Err(AdminError::NotFound("customer"));
        }
        let deps = &self.deps;
        // Every term the customer gave the search index: their messages', name's and tags'.
        let mut search_terms: Vec<String> = Vec::new();
        let mut add_terms = |text: &str| {
            for t in omniline_domain::search::terms(text, usize::MAX) {
                if !search_terms.contains(&t) {
                    search_terms.push(t);
                }
            }
        };
        if let Some(c) = &customer {
            add_terms(&c.display_name);
        }
        if let Some(doc) = deps
            .config
            .get_doc(
                CUSTOMER_ATTRIBUTES_KIND,
                &customer_doc_id(account_id, user_id),
            )
            .await?
        {
            if let Ok(attributes) =
                serde_json::from_str::<omniline_domain::conversation::CustomerAttributes>(&doc.doc)
            {
                attributes.tags.iter().for_each(|t| add_terms(t));
            }
        }
        for conversation in &conversations {
            conversation.tags.iter().for_each(|t| add_terms(t));
        }
        for conversation in &conversations {
            // The slot it holds: its agent's, an offered agent's, a wrap-up's.
            if let Some(agent) = conversation.slot_holder() {
                deps.agents.release(agent, &conversation.id).await?;
            }
            for entry in deps.conversations.transcript(&conversation.id).await? {
                if let Some((_, said)) = omniline_domain::search::message_terms(&entry.event) {
                    said.iter().for_each(|t| add_terms(t));
                }
                if let Some(key) = entry
                    .message_id
                    .as_deref()
                    .and_then(|m| inbound_media_key(account_id, m))
                {
                    deps.media.delete(&key).await?;
                }
                // What agents sent them (their uploads, linked from the agent's message).
                for key in agent_upload_keys(&entry.event) {
                    deps.media.delete(&key).await?;
                }
            }
            // Notifications about the conversation carry the customer's name and picture.
            deps.agents
                .delete_conversation_notifications(&conversation.id)
                .await?;
            deps.deliveries
                .delete_for_conversation(&conversation.id)
                .await?;
            deps.conversations
                .delete_conversation(&conversation.id)
                .await?;
        }
        // Pending account links (a request, or a nonce not yet used): few, and only minutes old.
        for kind in [LINK_REQUEST_KIND, LINK_NONCE_KIND] {
            for doc in deps.config.list_docs(kind).await? {
                let of_customer = serde_json::from_str::<Value>(&doc.doc)
                    .is_ok_and(|d| d["accountId"] == account_id && d["userId"] == user_id);
                if of_customer {
                    deps.config.delete_doc(kind, &doc.id).await?;
                }
            }
        }
        // The CRM record of the person goes with them.
        if let Some(contact_id) = customer
            .as_ref()
            .and_then(|c| c.linked_contact_id.as_deref())
        {
            deps.config
                .delete_doc(&contact_kind(account_id), contact_id)
                .await?;
        }
        for kind in [
            CUSTOMER_ATTRIBUTES_KIND,
            omniline_domain::conversation::CUSTOMER_NOTES_KIND,
        ] {
            deps.config
                .delete_doc(kind, &customer_doc_id(account_id, user_id))
                .await?;
        }
        deps.conversations
            .unindex_search(account_id, user_id, &search_terms)
            .await?;
        deps.conversations
            .delete_customer(account_id, user_id)
            .await?;
        tracing::info!(
            account_id,
            conversations = conversations.len(),
            "customer erased"
        );
        Ok(())
    }

    /// Records the purge of everything stored for the account (conversations, transcripts,
    /// deliveries, customers, contacts, media; nothing of any other account) as a job the
    /// schedule runs page by page, or returns the account's unfinished one.
    pub(crate) async fn start_purge(&self, account_id: &str) -> Result<PurgeJob, AdminError> {
        Ok(self.jobs.start(account_id).await?)
    }

    /// A purge job, by id; `NotFound` when there is none.
    pub async fn purge_job(&self, id: &str) -> Result<PurgeJob, AdminError> {
        self.jobs.job(id).await?.ok_or(AdminError::NotFound("job"))
    }

    /// Advances the unfinished purge jobs within `budget` (what the schedule does; for tests
    /// and tools that cannot wait for it).
    pub async fn run_jobs(&self, budget: JobBudget) -> Result<JobsRun, AdminError> {
        Ok(self.jobs.run(budget).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_upload_keys_are_read_from_an_agents_message_and_nothing_else() {
        let event = json!({"messages": [
            {"type": "image",
             "originalContentUrl": "https://x.example/media/agent-media/ag1/0a1b.png?expires=1&signature=s",
             "previewImageUrl": "https://x.example/media/agent-media/ag1/0a1b.png?expires=1&signature=s"},
            {"type": "image", "originalContentUrl": "https://x.example/media/agent-media/../media/acc/1?x"},
            {"type": "image", "originalContentUrl": "https://cdn.example/photo.jpg"},
            {"type": "text", "text": "see /media/agent-media/ag1/f.png"}
        ]});
        assert_eq!(agent_upload_keys(&event), ["agent-media/ag1/0a1b.png"]);
    }
}
