//! `GET /agent/v1/search?q=`: the customers of the accounts the agent serves whose name, tags or
//! messages hold every word of `q` (each with the conversation their latest such text was in,
//! one the agent may see), and the contacts whose fields contain `q`.

use crate::conversations::{contact_json, conversation_json};
use crate::{AgentState, ApiError};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use omniline_domain::agents::Agent;
use omniline_domain::input::Query;
use serde_json::json;

pub(crate) async fn search(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["q"])?;
    let q = query
        .get("q")
        .ok_or_else(|| ApiError::invalid("q", "q (the words to search for) is required"))?;
    let found = state.service.search(&agent, q).await?;
    let customers: Vec<_> = found
        .customers
        .iter()
        .map(|hit| {
            json!({
                "customerId": format!("{}:{}", hit.account_id, hit.user_id),
                "accountId": hit.account_id,
                "userId": hit.user_id,
                "displayName": hit.display_name,
                "pictureUrl": hit.picture_url,
                "at": hit.at,
                "conversation": conversation_json(&hit.conversation),
            })
        })
        .collect();
    let contacts: Vec<_> = found.contacts.iter().map(contact_json).collect();
    Ok(Json(json!({ "customers": customers, "contacts": contacts })).into_response())
}
