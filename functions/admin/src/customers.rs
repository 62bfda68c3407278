//! Privacy requests and purges: `/admin/v1/customers` finds, exports (`GET`) and erases
//! (`DELETE`) one customer's data; [`purge_account_data`] erases everything of an account
//! (account or workstream deleted with `?purge=true`).
//!
//! A customer's id is `{accountId}:{userId}` (a LINE user id is per provider, so the same person
//! is one customer per connected account). Their data: the profile, their 1:1 conversations with
//! transcripts, the outbound messages sent in them, and the media they sent.

use crate::queues::path_id;
use crate::{AdminError, AdminState, Result};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::contacts::{contact_kind, LINK_NONCE_KIND, LINK_REQUEST_KIND};
use omniline_domain::conversation::{Conversation, ConversationState, Customer};
use omniline_domain::input::{InputError, Query};
use omniline_domain::media_links::{inbound_media_key, inbound_media_prefix, key_of_link};
use omniline_ports::PurgeCounts;
use serde_json::{json, Value};

/// `purge=true|false` (absent: false); anything else is a 400.
pub(crate) fn purge_flag(query: Option<&str>) -> Result<bool> {
    match Query::parse(query, &["purge"])?.get("purge") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(InputError::new("purge", "purge must be true or false").into()),
    }
}

/// Erases everything stored for the account: conversations, transcripts, deliveries, customers,
/// media. Nothing of any other account is touched.
pub(crate) async fn purge_account_data(
    state: &AdminState,
    account_id: &str,
) -> Result<PurgeCounts> {
    // Deliveries first: their records point at the conversations purged next.
    let deliveries = state.deliveries.purge_account(account_id).await?;
    let counts = state.conversations.purge_account(account_id).await?;
    let kind = contact_kind(account_id);
    let mut contacts = 0;
    for doc in state.config.list_docs(&kind).await? {
        contacts += u64::from(state.config.delete_doc(&kind, &doc.id).await?);
    }
    let media = match inbound_media_prefix(account_id) {
        Some(prefix) => state.media.delete_prefix(&prefix).await?,
        None => 0,
    };
    tracing::info!(
        account_id,
        conversations = counts.conversations,
        customers = counts.customers,
        deliveries,
        media,
        contacts,
        "account data purged"
    );
    Ok(counts)
}

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

fn customer_id(path: std::result::Result<Path<String>, PathRejection>) -> Result<(String, String)> {
    let id = path_id(path, "customer")?;
    match id.split_once(':') {
        Some((account, user)) if !account.is_empty() && !user.is_empty() => {
            Ok((account.to_owned(), user.to_owned()))
        }
        _ => Err(AdminError::NotFound("customer")),
    }
}

fn customer_json(c: &Customer) -> Value {
    json!({
        "id": format!("{}:{}", c.account_id, c.user_id),
        "accountId": c.account_id,
        "userId": c.user_id,
        "displayName": c.display_name,
        "pictureUrl": c.picture_url,
        "language": c.language,
        "consent": c.consent,
        "linkedContactId": c.linked_contact_id,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    })
}

/// `GET /admin/v1/customers?userId=U…`: the customers with this LINE user id, in every account.
pub(crate) async fn find_customers(
    State(state): State<AdminState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = Query::parse(query.as_deref(), &["userId"])?;
    let user_id = match query.get("userId") {
        Some(v) if !v.is_empty() && v.len() <= 100 => v.to_owned(),
        Some(_) => return Err(InputError::new("userId", "userId must be a LINE user id").into()),
        None => return Err(InputError::new("userId", "userId is required").into()),
    };
    let mut found = Vec::new();
    for account in state.accounts.list().await? {
        if let Some(customer) = state.conversations.customer(&account.id, &user_id).await? {
            found.push(customer_json(&customer));
        }
    }
    Ok(Json(json!({ "customers": found })).into_response())
}

async fn customer_conversations(
    state: &AdminState,
    account_id: &str,
    user_id: &str,
) -> Result<Vec<Conversation>> {
    Ok(state
        .conversations
        .conversations_of_source(account_id, user_id)
        .await?)
}

/// `GET /admin/v1/customers/{id}`: everything stored about the customer (a data export).
pub(crate) async fn export_customer(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let (account_id, user_id) = customer_id(id)?;
    let customer = state.conversations.customer(&account_id, &user_id).await?;
    let conversations = customer_conversations(&state, &account_id, &user_id).await?;
    let Some(customer) = customer else {
        return Err(AdminError::NotFound("customer"));
    };
    let mut items = Vec::with_capacity(conversations.len());
    for conversation in &conversations {
        let transcript = state.conversations.transcript(&conversation.id).await?;
        let deliveries = state
            .deliveries
            .deliveries_for_conversation(&conversation.id)
            .await?;
        items.push(json!({
            "conversation": conversation,
            "transcript": transcript,
            "deliveries": deliveries,
        }));
    }
    Ok(
        Json(json!({ "customer": customer_json(&customer), "conversations": items }))
            .into_response(),
    )
}

/// `DELETE /admin/v1/customers/{id}`: erases the customer's profile, 1:1 conversations (with
/// transcripts and outbound records) and the media they sent.
pub(crate) async fn erase_customer(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let (account_id, user_id) = customer_id(id)?;
    let customer = state.conversations.customer(&account_id, &user_id).await?;
    let conversations = customer_conversations(&state, &account_id, &user_id).await?;
    if customer.is_none() && conversations.is_empty() {
        return Err(AdminError::NotFound("customer"));
    }
    for conversation in &conversations {
        if conversation.state != ConversationState::Closed {
            if let Some(agent) = &conversation.agent_id {
                state.agents.release(agent, &conversation.id).await?;
            }
        }
        for entry in state.conversations.transcript(&conversation.id).await? {
            if let Some(key) = entry
                .message_id
                .as_deref()
                .and_then(|m| inbound_media_key(&account_id, m))
            {
                state.media.delete(&key).await?;
            }
            // What agents sent them (their uploads, linked from the agent's message).
            for key in agent_upload_keys(&entry.event) {
                state.media.delete(&key).await?;
            }
        }
        // Notifications about the conversation carry the customer's name and picture.
        state
            .agents
            .delete_conversation_notifications(&conversation.id)
            .await?;
        state
            .deliveries
            .delete_for_conversation(&conversation.id)
            .await?;
        state
            .conversations
            .delete_conversation(&conversation.id)
            .await?;
    }
    // Pending account links (a request, or a nonce not yet used): few, and only minutes old.
    for kind in [LINK_REQUEST_KIND, LINK_NONCE_KIND] {
        for doc in state.config.list_docs(kind).await? {
            let of_customer = serde_json::from_str::<Value>(&doc.doc).is_ok_and(|d| {
                d["accountId"] == account_id.as_str() && d["userId"] == user_id.as_str()
            });
            if of_customer {
                state.config.delete_doc(kind, &doc.id).await?;
            }
        }
    }
    // The CRM record of the person goes with them.
    if let Some(contact_id) = customer
        .as_ref()
        .and_then(|c| c.linked_contact_id.as_deref())
    {
        state
            .config
            .delete_doc(&contact_kind(&account_id), contact_id)
            .await?;
    }
    state
        .conversations
        .delete_customer(&account_id, &user_id)
        .await?;
    tracing::info!(
        account_id,
        conversations = conversations.len(),
        "customer erased"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

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
