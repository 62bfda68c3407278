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
use omniline_app::settings::load_settings;
use omniline_domain::agents::Agent;
use omniline_domain::clock::{new_id, rfc3339_millis};
use omniline_domain::contacts::{
    contact_kind, Contact, LinkNonce, LinkRequest, LINK_LIFETIME_MS, LINK_NONCE_KIND,
    LINK_REQUEST_KIND, MAX_CONTACTS_PER_ACCOUNT,
};
use omniline_domain::conversation::{EventCommit, DEDUPE_RETENTION_SECS};
use omniline_domain::input::{Fields, Query};
use omniline_ports::Expect;
use serde_json::json;

/// LINE's account-link page.
const LINE_ACCOUNT_LINK_URL: &str = "https://access.line.me/dialog/bot/accountLink";
/// Most contacts one search returns.
const SEARCH_LIMIT: usize = 50;

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("contact document: {e}"))
}

/// The accounts whose conversations reach `agent`'s queues (a workstream of the account routes
/// to one of them, by default or by a rule): the accounts whose contacts the agent may use.
async fn served_accounts(state: &AgentState, agent: &Agent) -> Result<Vec<String>, ApiError> {
    let mut accounts: Vec<String> = state
        .router
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

/// The account a contact request is about: `accountId` (one the agent serves; 403 otherwise), or
/// the agent's only account when it is absent.
fn chosen_account(served: &[String], asked: Option<String>) -> Result<String, ApiError> {
    match (asked, served) {
        (Some(id), _) if served.contains(&id) => Ok(id),
        (Some(_), _) => Err(ApiError::Forbidden(
            "your queues do not serve this account".into(),
        )),
        (None, [only]) => Ok(only.clone()),
        (None, []) => Err(ApiError::Forbidden(
            "your queues serve no account: there are no contacts for you".into(),
        )),
        (None, _) => Err(ApiError::invalid(
            "accountId",
            "accountId is required: your queues serve more than one account",
        )),
    }
}

async fn account_contacts(state: &AgentState, account_id: &str) -> Result<Vec<Contact>, ApiError> {
    Ok(state
        .router
        .deps()
        .config
        .list_docs(&contact_kind(account_id))
        .await?
        .iter()
        .filter_map(|d| serde_json::from_str::<Contact>(&d.doc).ok())
        .collect())
}

/// `POST /agent/v1/contacts` `{"accountId"?,"name","email"?,"phone"?,"company"?}` → 201. A contact
/// belongs to one account (the agent's only one when `accountId` is absent), at most
/// [`MAX_CONTACTS_PER_ACCOUNT`] per account.
pub(crate) async fn create(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut f = Fields::parse(&body)?;
    let asked_account = f.text("accountId", 1, 100)?;
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
    let account_id = chosen_account(&served_accounts(&state, &agent).await?, asked_account)?;
    if account_contacts(&state, &account_id).await?.len() >= MAX_CONTACTS_PER_ACCOUNT {
        return Err(ApiError::Conflict(format!(
            "the account holds {MAX_CONTACTS_PER_ACCOUNT} contacts, the most it may; delete some first"
        )));
    }
    let now = rfc3339_millis((state.router.deps().clock)());
    let contact = Contact {
        id: new_id(),
        account_id,
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
        .put_doc(
            &contact_kind(&contact.account_id),
            &contact.id,
            &doc,
            Expect::Absent,
        )
        .await?
        .ok_or_else(|| ApiError::Conflict("contact id taken; retry".into()))?;
    tracing::info!(agent_id = %agent.id, contact_id = %contact.id, "contact created");
    Ok((StatusCode::CREATED, Json(contact_json(&contact))).into_response())
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
    let served = served_accounts(&state, &agent).await?;
    let accounts = match query.get("accountId") {
        Some(id) => vec![chosen_account(&served, Some(id.to_owned()))?],
        None => served,
    };
    let mut found = Vec::new();
    for account in &accounts {
        found.extend(
            account_contacts(&state, account)
                .await?
                .into_iter()
                .filter(|c| c.matches(q)),
        );
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    found.truncate(SEARCH_LIMIT);
    let items: Vec<_> = found.iter().map(contact_json).collect();
    Ok(Json(json!({ "contacts": items })).into_response())
}

/// `DELETE /agent/v1/contacts/{id}` → 204: the contact of an account the agent serves. Customers
/// linked to it then show no contact.
pub(crate) async fn delete(
    State(state): State<AgentState>,
    Extension(agent): Extension<Agent>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let config = &state.router.deps().config;
    for account in served_accounts(&state, &agent).await? {
        if config.delete_doc(&contact_kind(&account), &id).await? {
            tracing::info!(agent_id = %agent.id, contact_id = %id, "contact deleted");
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    Err(ApiError::NotFound("contact"))
}

async fn contact_field(
    state: &AgentState,
    account_id: &str,
    body: &[u8],
) -> Result<Contact, ApiError> {
    let mut f = Fields::parse(body)?;
    let id = f
        .text("contactId", 1, 100)?
        .ok_or_else(|| f.missing("contactId"))?;
    f.finish()?;
    crate::conversations::contact(state, account_id, &id)
        .await?
        .ok_or_else(|| ApiError::Unprocessable {
            field: "contactId".into(),
            message: format!("there is no contact {id:?} in the conversation's account"),
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
    let c = visible(&state, &agent, &id).await?;
    let contact = contact_field(&state, &c.account_id, &body).await?;
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
    let c = visible(&state, &agent, &id).await?;
    let contact = contact_field(&state, &c.account_id, &body).await?;
    let url = state
        .router
        .request_account_link(&c.id, &agent, &contact.id, &state.public_base_url)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "url": url }))).into_response())
}

/// A plain-text page for the customer (never JSON, never cached).
fn page(status: StatusCode, text: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text.to_owned(),
    )
        .into_response()
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

/// The stored request `id` if it is still good: `Err` is the page to show.
async fn live_request(state: &AgentState, id: &str) -> Result<LinkRequest, Response> {
    let config = &state.router.deps().config;
    let request = match config.get_doc(LINK_REQUEST_KIND, id).await {
        Ok(Some(doc)) => serde_json::from_str::<LinkRequest>(&doc.doc).ok(),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "link request unreadable");
            return Err(page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            ));
        }
    };
    let Some(request) = request else {
        return Err(page(
            StatusCode::NOT_FOUND,
            "This link is not valid or was already used.",
        ));
    };
    if (state.router.deps().clock)() - request.created_at > LINK_LIFETIME_MS {
        let _ = config.delete_doc(LINK_REQUEST_KIND, id).await;
        return Err(page(
            StatusCode::GONE,
            "This link has expired. Please ask for a new one.",
        ));
    }
    Ok(request)
}

/// `GET /line/link/{id}` (public, opened by the customer in LINE): the confirmation page. Reading
/// it changes nothing.
pub(crate) async fn follow_link(
    State(state): State<AgentState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(id) = path_id(id) else {
        return page(StatusCode::NOT_FOUND, "This link is not valid.");
    };
    match live_request(&state, &id).await {
        Ok(request) => confirm_page(&request.id),
        Err(page) => page,
    }
}

/// `POST /line/link/{id}` (the confirmation page's button): uses the request up (exactly one
/// of concurrent posts: the one whose delete removed it), mints the one nonce, and sends the
/// customer to LINE's account-link page. The nonce is good for [`LINK_LIFETIME_MS`].
pub(crate) async fn confirm_link(
    State(state): State<AgentState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(id) = path_id(id) else {
        return page(StatusCode::NOT_FOUND, "This link is not valid.");
    };
    let request = match live_request(&state, &id).await {
        Ok(request) => request,
        Err(page) => return page,
    };
    let config = &state.router.deps().config;
    match config.delete_doc(LINK_REQUEST_KIND, &id).await {
        Ok(true) => {}
        Ok(false) => {
            return page(
                StatusCode::NOT_FOUND,
                "This link is not valid or was already used.",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "link request not used up");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a moment.",
            );
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
        created_at: (state.router.deps().clock)(),
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
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Please ask for a new link.",
        );
    }
    let location = format!(
        "{LINE_ACCOUNT_LINK_URL}?linkToken={}&nonce={nonce}",
        request.link_token
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
        ],
    )
        .into_response()
}
