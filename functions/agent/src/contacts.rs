//! Contacts (the CRM side): create and search them, link a conversation's LINE user to one
//! directly, or ask the customer to link through LINE's account-link flow. `GET /line/link/{id}`
//! is the customer's side of that flow: it shows a confirmation page whose button issues a
//! one-time nonce bound to the contact and sends the customer to LINE, whose `accountLink` event
//! brings the nonce back to the router.

use crate::conversations::{contact_json, customer_json, path_id, PathId};
use crate::error::LinkPageFailure;
use crate::{AgentState, ApiError};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use omniline_app::agent::contacts::{ContactChange, NewContact};
use omniline_app::agent::VisibleConversation;
use omniline_domain::agents::Agent;
use omniline_domain::input::{Fields, Query};
use serde_json::json;

/// `POST /agent/v1/contacts` `{"accountId"?,"name","email"?,"phone"?,"company"?}` → 201. A contact
/// belongs to one account (the agent's only one when `accountId` is absent), at most
/// [`omniline_domain::contacts::MAX_CONTACTS_PER_ACCOUNT`] per account.
pub(crate) async fn create(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut f = Fields::parse(&body)?;
    let account_id = f.text("accountId", 1, 100)?;
    let name = f.name("name")?.ok_or_else(|| f.missing("name"))?;
    let email = f.email("email")?;
    let phone = f.text("phone", 3, 30)?;
    check_phone(phone.as_deref())?;
    let company = f.text("company", 1, 100)?;
    f.finish()?;
    let new = NewContact {
        account_id,
        name,
        email,
        phone,
        company,
    };
    let contact = state.service.create_contact(&agent, new).await?;
    Ok((StatusCode::CREATED, Json(contact_json(&contact))).into_response())
}

/// A phone number: digits, spaces and `+ - ( ) .`.
fn check_phone(phone: Option<&str>) -> Result<(), ApiError> {
    match phone {
        Some(p)
            if !p
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c)) =>
        {
            Err(ApiError::invalid(
                "phone",
                "phone may hold digits, spaces and + - ( ) .",
            ))
        }
        _ => Ok(()),
    }
}

/// `PATCH /agent/v1/contacts/{id}` `{"name"?,"email"?,"phone"?,"company"?}` → 200 with the
/// contact: of an account the agent serves (404 otherwise). `null` clears `email`, `phone` or
/// `company`; `name` cannot be cleared.
pub(crate) async fn update(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let mut f = Fields::parse(&body)?;
    if f.has("name") && f.value_is_missing("name") {
        return Err(ApiError::invalid("name", "name cannot be cleared"));
    }
    let mut change = ContactChange {
        name: f.name("name")?,
        ..ContactChange::default()
    };
    if f.has("email") {
        change.email = Some(f.email("email")?);
    }
    if f.has("phone") {
        let phone = f.text("phone", 3, 30)?;
        check_phone(phone.as_deref())?;
        change.phone = Some(phone);
    }
    if f.has("company") {
        change.company = Some(f.text("company", 1, 100)?);
    }
    f.finish()?;
    if change.name.is_none()
        && change.email.is_none()
        && change.phone.is_none()
        && change.company.is_none()
    {
        return Err(ApiError::invalid(
            "body",
            "name, email, phone or company: give at least one",
        ));
    }
    let contact = state.service.update_contact(&agent, &id, change).await?;
    Ok(Json(contact_json(&contact)).into_response())
}

/// `GET /agent/v1/contacts?q=&accountId=`: contacts of the accounts the agent serves (or of
/// `accountId`, one of them) whose name, email, phone or company contain `q`.
pub(crate) async fn search(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(query.as_deref(), &["q", "accountId"])?;
    let q = query.get("q").unwrap_or("");
    if q.chars().count() > 100 {
        return Err(ApiError::invalid("q", "q is at most 100 characters"));
    }
    let found = state
        .service
        .search_contacts(&agent, q, query.get("accountId"))
        .await?;
    let items: Vec<_> = found.iter().map(contact_json).collect();
    Ok(Json(json!({ "contacts": items })).into_response())
}

/// `DELETE /agent/v1/contacts/{id}` → 204: the contact of an account the agent serves. Customers
/// linked to it then show no contact.
pub(crate) async fn delete(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    state.service.delete_contact(&agent, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The path's conversation (one the agent sees) and the body's `{"contactId"}`.
async fn link_target(
    state: &AgentState,
    agent: &Agent,
    id: PathId,
    body: &[u8],
) -> Result<(VisibleConversation, String), ApiError> {
    let id = path_id(id)?;
    let c = state.service.visible_conversation(agent, &id).await?;
    let mut f = Fields::parse(body)?;
    let contact_id = f
        .text("contactId", 1, 100)?
        .ok_or_else(|| f.missing("contactId"))?;
    f.finish()?;
    Ok((c, contact_id))
}

/// `POST /agent/v1/conversations/{id}/link` `{"contactId"}`: links the conversation's LINE user
/// to the contact; every later conversation of that user shows it.
pub(crate) async fn link(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (c, contact_id) = link_target(&state, &agent, id, &body).await?;
    let customer = state.service.link_contact(&agent, &c, &contact_id).await?;
    Ok(Json(json!({ "customer": customer_json(Some(&customer)) })).into_response())
}

/// `POST /agent/v1/conversations/{id}/link-request` `{"contactId"}`: sends the customer LINE's
/// account-link flow; the link is recorded when LINE reports it (the router).
pub(crate) async fn link_request(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: PathId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (c, contact_id) = link_target(&state, &agent, id, &body).await?;
    let url = state
        .service
        .request_link(&agent, &c, &contact_id, &state.public_base_url)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "url": url }))).into_response())
}

/// The confirmation page of an account link: a button posting back to the same URL. Nothing is
/// used up by reading it (a link-preview crawler, a reload).
fn confirm_page(id: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="ja">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Link your account / アカウント連携</title></head>
<body>
<h1>Link your account / アカウント連携</h1>
<p>Tap the button to link your LINE account with your customer record. / ボタンを押すと、LINEアカウントとお客様情報を連携します。</p>
<form method="post" action="/line/link/{id}"><button type="submit">Link / 連携する</button></form>
</body>
</html>
"#
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self' https://access.line.me; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

/// The path's link request id.
fn link_id(path: PathId) -> Result<String, LinkPageFailure> {
    path_id(path).map_err(|_| LinkPageFailure::NotALink)
}

/// `GET /line/link/{id}` (public, opened by the customer in LINE): the confirmation page. Reading
/// it changes nothing.
pub(crate) async fn follow_link(
    State(state): State<AgentState>,
    id: PathId,
) -> Result<Response, LinkPageFailure> {
    let request = state.service.live_link_request(&link_id(id)?).await?;
    Ok(confirm_page(&request.id))
}

/// `POST /line/link/{id}` (the confirmation page's button): uses the request up (exactly one
/// of concurrent posts), mints the one nonce, and sends the customer to LINE's account-link page.
pub(crate) async fn confirm_link(
    State(state): State<AgentState>,
    id: PathId,
) -> Result<Response, LinkPageFailure> {
    let location = state.service.confirm_link_request(&link_id(id)?).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response())
}
