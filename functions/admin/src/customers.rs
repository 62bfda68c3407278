//! Privacy requests: `/admin/v1/customers` finds, exports (`GET`) and erases (`DELETE`) one
//! customer's data. A customer's id is `{accountId}:{userId}` (a LINE user id is per provider, so
//! the same person is one customer per connected account).

use crate::error::{path_id, PathId, Result};
use crate::AdminState;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::AdminError;
use omniline_domain::conversation::Customer;
use omniline_domain::input::{InputError, Query};
use serde_json::{json, Value};

/// `purge=true|false` (absent: false); anything else is a 400.
pub(crate) fn purge_flag(query: Option<&str>) -> Result<bool> {
    match Query::parse(query, &["purge"])?.get("purge") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(InputError::new("purge", "purge must be true or false").into()),
    }
}

/// `{accountId}:{userId}`; anything else names no customer.
fn customer_id(path: PathId) -> Result<(String, String)> {
    let id = path_id(path, "customer")?;
    match id.split_once(':') {
        Some((account, user)) if !account.is_empty() && !user.is_empty() => {
            Ok((account.to_owned(), user.to_owned()))
        }
        _ => Err(AdminError::NotFound("customer").into()),
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
pub(crate) async fn find(
    State(state): State<AdminState>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = Query::parse(query.as_deref(), &["userId"])?;
    let user_id = match query.get("userId") {
        Some(v) if !v.is_empty() && v.len() <= 100 => v,
        Some(_) => return Err(InputError::new("userId", "userId must be a LINE user id").into()),
        None => return Err(InputError::new("userId", "userId is required").into()),
    };
    let found = state.service.find_customers(user_id).await?;
    let items: Vec<Value> = found.iter().map(customer_json).collect();
    Ok(Json(json!({ "customers": items })).into_response())
}

/// `GET /admin/v1/customers/{id}`: everything stored about the customer (a data export).
pub(crate) async fn export(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let (account_id, user_id) = customer_id(id)?;
    let export = state.service.export_customer(&account_id, &user_id).await?;
    let items: Vec<Value> = export
        .conversations
        .iter()
        .map(|c| {
            json!({
                "conversation": c.conversation,
                "transcript": c.transcript,
                "deliveries": c.deliveries,
            })
        })
        .collect();
    let mut customer = customer_json(&export.customer);
    customer["attributes"] = json!(export.attributes);
    customer["tags"] = json!(export.tags);
    customer["notes"] = json!(export.notes);
    let body = json!({ "customer": customer, "conversations": items });
    Ok(Json(body).into_response())
}

/// `DELETE /admin/v1/customers/{id}`: erases the customer's profile, 1:1 conversations (with
/// transcripts and outbound records) and the media they sent.
pub(crate) async fn erase(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let (account_id, user_id) = customer_id(id)?;
    state.service.erase_customer(&account_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /admin/v1/customers/{id}` `{"attributes": {"name": value | null, …}}`: sets (or, with
/// `null`, removes) the customer's attributes, which routing rules test as
/// `customer.attributes.<name>` and agents see → `{"id", "attributes"}` (all of them now).
pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: axum::body::Bytes,
) -> Result<Response> {
    let (account_id, user_id) = customer_id(id)?;
    let mut fields = omniline_domain::input::Fields::parse(&body)?;
    let patch = match fields.take("attributes") {
        None => return Err(fields.missing("attributes").into()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(name, value)| (name, (!value.is_null()).then_some(value)))
            .collect(),
        Some(_) => {
            return Err(InputError::new("attributes", "attributes must be an object").into())
        }
    };
    fields.finish()?;
    let attributes = state
        .service
        .set_customer_attributes(&account_id, &user_id, patch)
        .await?;
    Ok(Json(json!({
        "id": format!("{account_id}:{user_id}"),
        "attributes": attributes,
    }))
    .into_response())
}
