//! Search (`GET /agent/v1/search?q=`): the customers of the accounts the agent serves whose
//! name, tags or messages hold every word of the query ([`omniline_domain::search`]), each with
//! the conversation their latest indexed text was in, when the agent may see it; and the
//! contacts whose fields match.

use super::{may_see, AgentError, AgentService};
use omniline_domain::agents::Agent;
use omniline_domain::contacts::Contact;
use omniline_domain::conversation::Conversation;
use omniline_domain::search::{terms, SearchEntry, QUERY_TERMS_MAX, SEARCH_RESULTS_MAX};

/// How many of an account's matching customers a search considers before keeping those the
/// agent may see (at most [`SEARCH_RESULTS_MAX`] of them).
const SEARCH_CANDIDATES: usize = 100;

/// The longest query (characters).
pub const QUERY_MAX_CHARS: usize = 200;

/// One customer found.
#[derive(Debug, Clone)]
pub struct CustomerHit {
    pub account_id: String,
    pub user_id: String,
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    /// The conversation their latest indexed text was in (the agent may see it).
    pub conversation: Conversation,
    /// Epoch ms of that text.
    pub at: i64,
}

/// What a search found.
#[derive(Debug, Clone, Default)]
pub struct SearchResults {
    pub customers: Vec<CustomerHit>,
    pub contacts: Vec<Contact>,
}

impl AgentService {
    /// Searches the accounts the agent serves for `q`: `Invalid("q")` when it has no word or
    /// is too long. Reads the index term by term, then each hit's conversation and customer by
    /// key: at most [`SEARCH_RESULTS_MAX`] of each per account.
    pub async fn search(&self, agent: &Agent, q: &str) -> Result<SearchResults, AgentError> {
        if q.chars().count() > QUERY_MAX_CHARS {
            return Err(AgentError::invalid(
                "q",
                format!("a query is at most {QUERY_MAX_CHARS} characters"),
            ));
        }
        let words = terms(q, QUERY_TERMS_MAX);
        if words.is_empty() {
            return Err(AgentError::invalid(
                "q",
                "give at least one word (letters or digits) to search for",
            ));
        }
        let store = &self.deps().conversations;
        let mut customers = Vec::new();
        for account in self.served_accounts(agent).await? {
            // More than are shown: some may be in conversations the agent may not see.
            for hit in store.search(&account, &words, SEARCH_CANDIDATES).await? {
                if customers.len() >= SEARCH_RESULTS_MAX {
                    break;
                }
                let Some(conversation) = self.visible_hit(agent, &hit).await? else {
                    continue;
                };
                let customer = store.customer(&hit.account_id, &hit.user_id).await?;
                customers.push(CustomerHit {
                    display_name: customer.as_ref().map(|c| c.display_name.clone()),
                    picture_url: customer.and_then(|c| c.picture_url),
                    account_id: hit.account_id,
                    user_id: hit.user_id,
                    conversation,
                    at: hit.at,
                });
            }
        }
        customers.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.user_id.cmp(&b.user_id)));
        customers.truncate(SEARCH_RESULTS_MAX);
        let contacts = self.search_contacts(agent, q.trim(), None).await?;
        Ok(SearchResults {
            customers,
            contacts,
        })
    }

    /// The conversation a hit opens, when the agent may see every conversation where the
    /// query's words were found (else a result would tell it what was said where it may not
    /// look); `None` to leave the customer out. A conversation the index names but the store
    /// does not have (erased since, or planned by a commit that lost) stands for the customer's
    /// latest conversation; a customer with none is left out (erased).
    async fn visible_hit(
        &self,
        agent: &Agent,
        hit: &omniline_domain::search::SearchHit,
    ) -> Result<Option<Conversation>, AgentError> {
        let store = &self.deps().conversations;
        let mut opened = None;
        for id in &hit.conversation_ids {
            let conversation = match store.conversation(id).await? {
                Some(c) => c,
                None => match self
                    .latest_conversation(&hit.account_id, &hit.user_id)
                    .await?
                {
                    Some(c) => c,
                    None => return Ok(None),
                },
            };
            if !may_see(agent, &conversation) {
                return Ok(None);
            }
            if *id == hit.conversation_id || opened.is_none() {
                opened = Some(conversation);
            }
        }
        Ok(opened)
    }

    /// Puts a customer's tags in the search index, with `conversation` (theirs) as where a hit
    /// leads, and takes out the words of the tags they no longer have (`previous` less `tags`);
    /// best effort (a failure is logged: the tags are set all the same).
    pub(crate) async fn index_tags(
        &self,
        conversation: &Conversation,
        user_id: &str,
        tags: &[String],
        previous: &[String],
    ) {
        let kept: Vec<String> = tags.iter().flat_map(|t| terms(t, usize::MAX)).collect();
        let removed: Vec<String> = previous
            .iter()
            .flat_map(|t| terms(t, usize::MAX))
            .filter(|t| !kept.contains(t))
            .collect();
        if !removed.is_empty() {
            if let Err(e) = self
                .deps()
                .conversations
                .unindex_search(&conversation.account_id, user_id, &removed)
                .await
            {
                tracing::warn!(error = %e, conversation_id = %conversation.id, "removed tags not taken out of the search index");
            }
        }
        let texts: Vec<&str> = tags.iter().map(String::as_str).collect();
        let Some(entry) = SearchEntry::of(
            &conversation.account_id,
            user_id,
            &conversation.id,
            conversation.last_activity_at,
            &texts,
        ) else {
            return;
        };
        let retain = match self.router.settings().await {
            Ok(settings) => settings.retain_until(self.now()),
            Err(e) => {
                tracing::warn!(error = %e, "settings unavailable: tags not indexed for search");
                return;
            }
        };
        if let Err(e) = self.deps().conversations.index_search(&entry, retain).await {
            tracing::warn!(error = %e, conversation_id = %conversation.id, "tags not indexed for search");
        }
    }

    /// The customer's latest conversation: the open one, else the last one.
    pub(crate) async fn latest_conversation(
        &self,
        account_id: &str,
        user_id: &str,
    ) -> Result<Option<Conversation>, AgentError> {
        let store = &self.deps().conversations;
        if let Some(open) = store.open_conversation(account_id, user_id).await? {
            return Ok(Some(open));
        }
        Ok(store
            .conversations_of_source(account_id, user_id)
            .await?
            .pop())
    }
}
