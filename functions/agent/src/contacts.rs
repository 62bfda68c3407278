//! Contacts (the CRM side): create and search them, link a conversation's LINE user to one
//! directly, or ask the customer to link through LINE's account-link flow. `GET /line/link/{id}`
//! is the customer's side of that flow: it issues a one-time nonce bound to the contact and sends
//! the customer to LINE, whose `accountLink` event brings the nonce back to the router.

use crate::conversations::{contact_json, customer_json, customer_of, path_id, visible};
use crate::{AgentState, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::json;
use shared::agents::Agent;
use shared::contacts::{
    Contact, LinkNonce, LinkRequest, CONTACT_KIND, LINK_NONCE_KIND, LINK_REQUEST_KIND,
};
use shared::conversation::{EventCommit, DEDUPE_RETENTION_SECS};
use shared::domain::{new_id, rfc3339_millis};
use shared::input::{Fields, Query};
use shared::ports::Expect;
use shared::settings::load_settings;

/// LINE's account-link page.
const LINE_ACCOUNT_LINK_URL: &str = "https://access.line.me/dialog/bot/accountLink";
/// LINE's link tokens live 10 minutes.
const LINK_REQUEST_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Most contacts one search returns.
const SEARCH_LIMIT: usize = 50;

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("contact document: {e}"))
}

/// `POST /agent/v1/contacts` `{"name","email"?,"phone"?,"company"?}` → 201.
pub(crate) async fn create(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut f = Fields::parse(&body)?;
    let name = f.name("name")?.ok_or_else(|| f.missing("name"))?;
    let email = f.email("email")?;
    let phone = f.text("phone", 3, 30)?;
    if let Some(p) = &phone {
        if !p
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(ApiError::invalid(
                "phone",
                "phone may hold digits, spaces and + - ( ) .",
            ));
        }
    }
    let company = f.text("company", 1, 100)?;
    f.finish()?;
    let now = rfc3339_millis((state.router.deps().clock)());
    let contact = Contact {
        id: new_id(),
        name,
        email,
        phone,
        company,
        created_at: now.clone(),
        updated_at: now,
    };
    let doc = serde_json::to_string(&contact).map_err(internal)?;
    state
        .router
        .deps()
        .config
        .put_doc(CONTACT_KIND, &contact.id, &doc, Expect::Absent)
        .await?
        .ok_or_else(|| ApiError::Conflict("contact id taken; retry".into()))?;
    tracing::info!(agent_id = %agent.id, contact_id = %contact.id, "contact created");
    Ok((StatusCode::CREATED, Json(contact_json(&contact))).into_response())
}

/// `GET /agent/v1/contacts?q=`: contacts whose name, email, phone or company contain `q`.
pub(crate) async fn search(
    State(state): State<AgentState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["q"])?;
    let q = query.get("q").unwrap_or("");
    if q.chars().count() > 100 {
        return Err(ApiError::invalid("q", "q is at most 100 characters"));
    }
    let mut found: Vec<Contact> = state
        .router
        .deps()
        .config
        .list_docs(CONTACT_KIND)
        .await?
        .iter()
        .filter_map(|d| serde_json::from_str::<Contact>(&d.doc).ok())
        .filter(|c| c.matches(q))
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    found.truncate(SEARCH_LIMIT);
    let items: Vec<_> = found.iter().map(contact_json).collect();
    Ok(Json(json!({ "contacts": items })).into_response())
}

async fn contact_field(state: &AgentState, body: &[u8]) -> Result<Contact, ApiError> {
    let mut f = Fields::parse(body)?;
    let id = f
        .text("contactId", 1, 100)?
        .ok_or_else(|| f.missing("contactId"))?;
    f.finish()?;
    crate::conversations::contact(state, &id)
        .await?
        .ok_or_else(|| ApiError::Unprocessable {
            field: "contactId".into(),
            message: format!("there is no contact {id:?}"),
        })
}

/// `POST /agent/v1/conversations/{id}/link` `{"contactId"}`: links the conversation's LINE user
/// to the contact; every later conversation of that user shows it.
pub(crate) async fn link(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let contact = contact_field(&state, &body).await?;
    let c = visible(&state, &agent, &id).await?;
    let Some(mut customer) = customer_of(&state, &c).await? else {
        return Err(ApiError::Unprocessable {
            field: "conversation".into(),
            message: "only a 1:1 conversation's customer can be linked".into(),
        });
    };
    let deps = state.router.deps();
    let now = (deps.clock)();
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
    };
    deps.conversations.commit(&commit).await?;
    tracing::info!(agent_id = %agent.id, conversation_id = %c.id, contact_id = %contact.id, "customer linked to a contact");
    Ok(Json(json!({ "customer": customer_json(&state, Some(&customer)).await? })).into_response())
}

/// `POST /agent/v1/conversations/{id}/link-request` `{"contactId"}`: sends the customer LINE's
/// account-link flow; the link is recorded when LINE reports it (the router).
pub(crate) async fn link_request(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let contact = contact_field(&state, &body).await?;
    let c = visible(&state, &agent, &id).await?;
    let url = state
        .router
        .request_account_link(&c.id, &agent, &contact.id, &state.public_base_url)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "url": url }))).into_response())
}

fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

/// `GET /line/link/{id}` (public, opened by the customer in LINE): a one-time nonce bound to the
/// request's contact, then a redirect to LINE's account-link page.
pub(crate) async fn follow_link(
    State(state): State<AgentState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(id) = path_id(id) else {
        return page(StatusCode::NOT_FOUND, "This link is not valid.");
    };
    let config = &state.router.deps().config;
    let request = match config.get_doc(LINK_REQUEST_KIND, &id).await {
        Ok(Some(doc)) => serde_json::from_str::<LinkRequest>(&doc.doc).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "link request unreadable");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            );
        }
    };
    let Some(request) = request else {
        return page(
            StatusCode::NOT_FOUND,
            "This link is not valid or was already used.",
        );
    };
    if (state.router.deps().clock)() - request.created_at > LINK_REQUEST_LIFETIME_MS {
        let _ = config.delete_doc(LINK_REQUEST_KIND, &id).await;
        return page(
            StatusCode::GONE,
            "This link has expired. Please ask for a new one.",
        );
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
        created_at: (state.router.deps().clock)(),
    };
    let stored = match serde_json::to_string(&record) {
        Ok(doc) => {
            config
                .put_doc(LINK_NONCE_KIND, &nonce, &doc, Expect::Absent)
                .await
        }
        Err(e) => Err(shared::ports::PortError::Unavailable(e.to_string())),
    };
    if !matches!(stored, Ok(Some(_))) {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again in a moment.",
        );
    }
    // One use: the request is gone once its nonce exists.
    let _ = config.delete_doc(LINK_REQUEST_KIND, &id).await;
    let location = format!(
        "{LINE_ACCOUNT_LINK_URL}?linkToken={}&nonce={nonce}",
        request.link_token
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}
