//! `GET /admin/v1/reports/{conversations|csat|volume}?from=&to=&groupBy=&accountId=`: figures
//! over the conversations opened in the period (RFC 3339 times; the last 7 days by default, 92
//! at most), grouped by `day` (the default), `agent`, `queue`, `rule` or `tag`; JSON, or CSV
//! when the request's `Accept` names `text/csv`.

use crate::error::Result;
use crate::period::{period, DAY_MS};
use crate::AdminState;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::input::{InputError, Query};
use omniline_domain::reports::{to_csv, GroupBy, ReportKind};
use serde_json::json;

pub(crate) async fn conversations(
    state: State<AdminState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response> {
    report(
        ReportKind::Conversations,
        "conversations",
        state,
        headers,
        query,
    )
    .await
}

pub(crate) async fn csat(
    state: State<AdminState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response> {
    report(ReportKind::Csat, "csat", state, headers, query).await
}

pub(crate) async fn volume(
    state: State<AdminState>,
    headers: HeaderMap,
    query: RawQuery,
) -> Result<Response> {
    report(ReportKind::Volume, "volume", state, headers, query).await
}

async fn report(
    kind: ReportKind,
    name: &str,
    State(state): State<AdminState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = Query::parse(query.as_deref(), &["from", "to", "groupBy", "accountId"])?;
    let (from, to) = period(&query, state.service.clock_millis(), 7 * DAY_MS - 1)?;
    let group_by = match query.get("groupBy") {
        None => GroupBy::Day,
        Some(v) => GroupBy::parse(v).ok_or_else(|| {
            InputError::new("groupBy", "groupBy is one of day, agent, queue, rule, tag")
        })?,
    };
    let account_id = query.get("accountId").filter(|a| !a.is_empty());
    let report = state
        .service
        .report(kind, group_by, account_id, from, to)
        .await?;
    let csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|m| m.trim().starts_with("text/csv")));
    if csv {
        let mut response = to_csv(kind, group_by, &report.rows).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(disposition) = HeaderValue::from_str(&format!(
            "attachment; filename=\"{name}-{}.csv\"",
            group_by.as_str()
        )) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, disposition);
        }
        return Ok(response);
    }
    Ok(Json(json!({
        "report": name,
        "groupBy": group_by.as_str(),
        "from": omniline_domain::clock::rfc3339_millis(from),
        "to": omniline_domain::clock::rfc3339_millis(to),
        "conversations": report.conversations,
        "truncated": report.truncated,
        "rows": report.rows,
    }))
    .into_response())
}
