//! `/admin/v1/workstreams/{id}/rules`: the workstream's ordered routing rules, their order, and a
//! dry run against a sample LINE event. Every change is an optimistic write of the whole
//! workstream (409 `version_conflict` when another admin got there first).

use crate::error::{path_id, required, PathId, Result};
use crate::queues::skills;
use crate::workstreams::from_path;
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::rules::{rule_bot, RulePatch, RuleTest, RuleTrial, SampleCustomer};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::line::events::Event;
use omniline_domain::routing::rules::{RuleDef, MAX_RULES};
use omniline_domain::workstream::Workstream;
use serde_json::{json, Value};

/// Largest condition, as JSON bytes: 100 rules of this size fit in one stored workstream.
const MAX_CONDITION_BYTES: usize = 3000;
/// Priority bounds (higher is served first).
const PRIORITY_RANGE: (i64, i64) = (-1000, 1000);

type RulePath = std::result::Result<Path<(String, String)>, PathRejection>;

fn rule_json(rule: &RuleDef) -> Value {
    json!({
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "condition": rule.condition,
        "queueId": rule.result.queue,
        "priority": rule.result.priority,
        "skills": rule.result.skills,
        "bot": rule.result.bot.is_some(),
    })
}

fn rules_json(ws: &Workstream) -> Value {
    let rules: Vec<Value> = ws.rules.iter().map(rule_json).collect();
    json!({ "rules": rules, "version": ws.version })
}

/// The body's fields as a change of a rule of `ws` (`creating`: name, condition and queueId are
/// required). Queue and bot are checked as they are read.
async fn patch(
    state: &AdminState,
    ws: &Workstream,
    fields: &mut Fields,
    creating: bool,
) -> Result<RulePatch> {
    if creating {
        required(fields, &["name", "condition", "queueId"])?;
    }
    let mut patch = RulePatch {
        name: fields.name("name")?,
        enabled: fields.boolean("enabled")?,
        ..RulePatch::default()
    };
    if let Some(condition) = fields.value("condition") {
        let size = serde_json::to_string(&condition).map_or(usize::MAX, |s| s.len());
        if size > MAX_CONDITION_BYTES {
            return Err(InputError::new(
                "condition",
                format!("condition is at most {MAX_CONDITION_BYTES} bytes of JSON, got {size}"),
            )
            .into());
        }
        patch.condition = Some(condition);
    }
    if let Some(queue) = fields.text("queueId", 1, 100)? {
        patch.queue = Some(state.service.existing_queue("queueId", &queue).await?);
    }
    patch.priority = fields.integer("priority", PRIORITY_RANGE.0, PRIORITY_RANGE.1)?;
    patch.skills = skills(fields)?;
    if let Some(bot) = fields.boolean("bot")? {
        patch.bot = Some(rule_bot(ws, bot)?);
    }
    Ok(patch)
}

pub(crate) async fn list(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let ws = from_path(&state, id).await?;
    Ok(Json(rules_json(&ws)).into_response())
}

pub(crate) async fn get(State(state): State<AdminState>, path: RulePath) -> Result<Response> {
    let (id, rule_id) = path_id(path, "rule")?;
    let stored = state.service.rule(&id, &rule_id).await?;
    Ok(Json(rule_json(stored.rule())).into_response())
}

/// `{"name", "condition", "queueId", "enabled"?, "priority"?, "skills"?, "bot"?}` → 201.
pub(crate) async fn create(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let ws = from_path(&state, id).await?;
    let mut fields = Fields::parse(&body)?;
    let patch = patch(&state, &ws, &mut fields, true).await?;
    fields.finish()?;
    let rule = state.service.create_rule(ws, patch).await?;
    Ok((StatusCode::CREATED, Json(rule_json(&rule))).into_response())
}

pub(crate) async fn update(
    State(state): State<AdminState>,
    path: RulePath,
    body: Bytes,
) -> Result<Response> {
    let (id, rule_id) = path_id(path, "rule")?;
    let stored = state.service.rule(&id, &rule_id).await?;
    let mut fields = Fields::parse(&body)?;
    let patch = patch(&state, stored.workstream(), &mut fields, false).await?;
    fields.finish()?;
    let rule = state.service.update_rule(stored, patch).await?;
    Ok(Json(rule_json(&rule)).into_response())
}

pub(crate) async fn delete(State(state): State<AdminState>, path: RulePath) -> Result<Response> {
    let (id, rule_id) = path_id(path, "rule")?;
    state.service.delete_rule(&id, &rule_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `{"ruleIds": [...]}`, or the array alone: every rule id of the workstream, in the new order.
fn rule_ids(body: &[u8]) -> Result<Vec<String>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => {
            let mut f = Fields::nested(json!({ "ruleIds": items }), "")?;
            Ok(f.string_list("ruleIds", MAX_RULES, 100)
                .map_err(|e| InputError::new("ruleIds", e.message()))?
                .unwrap_or_default())
        }
        Ok(_) => {
            let mut f = Fields::parse(body)?;
            let ids = f
                .string_list("ruleIds", MAX_RULES, 100)?
                .ok_or_else(|| f.missing("ruleIds"))?;
            f.finish()?;
            Ok(ids)
        }
        Err(_) => Err(Fields::parse(body)
            .err()
            .unwrap_or_else(|| InputError::new("body", "the body is not valid JSON"))
            .into()),
    }
}

pub(crate) async fn reorder(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let ids = rule_ids(&body)?;
    let ws = state.service.reorder_rules(&id, ids).await?;
    Ok(Json(rules_json(&ws)).into_response())
}

/// `{"event", "customer"?: {"name"?, "language"?, "linked"?}, "at"?}`.
fn rule_test(body: &[u8]) -> Result<RuleTest> {
    let mut fields = Fields::parse(body)?;
    let event_value = fields
        .value("event")
        .ok_or_else(|| fields.missing("event"))?;
    if !event_value.get("type").is_some_and(Value::is_string) {
        return Err(InputError::new(
            "event",
            "event must be a LINE webhook event object with a \"type\"",
        )
        .into());
    }
    let event: Event = serde_json::from_value(event_value)
        .map_err(|e| InputError::new("event", format!("event is not a LINE webhook event: {e}")))?;
    let customer = match fields.value("customer") {
        None => None,
        Some(value) => {
            let mut c = Fields::nested(value, "customer")?;
            let name = c.text("name", 1, 100)?;
            let language = c.text("language", 1, 35)?;
            let linked = c.boolean("linked")?.unwrap_or(false);
            c.finish()?;
            Some(SampleCustomer {
                name,
                language,
                linked,
            })
        }
    };
    let at = match fields.text("at", 1, 64)? {
        Some(at) => Some(
            chrono::DateTime::parse_from_rfc3339(&at)
                .map_err(|_| {
                    InputError::new(
                        "at",
                        "at must be an RFC 3339 time such as 2026-11-25T09:30:00+09:00",
                    )
                })?
                .timestamp_millis(),
        ),
        None => None,
    };
    fields.finish()?;
    Ok(RuleTest {
        event,
        customer,
        at,
    })
}

fn trial_json(trial: &RuleTrial) -> Value {
    let evaluated: Vec<Value> = trial
        .evaluated
        .iter()
        .map(|r| {
            json!({ "ruleId": r.rule_id, "name": r.name, "enabled": r.enabled, "matched": r.matched })
        })
        .collect();
    let route = &trial.route;
    let ctx = &trial.facts;
    json!({
        "matched": trial.rule.is_some(),
        "rule": trial.rule.as_ref().map(rule_json),
        "result": {
            "queueId": route.queue,
            "priority": route.priority,
            "skills": route.skills,
            "bot": route.bot,
            "source": if route.from_rule { "rule" } else { "default" },
        },
        "evaluated": evaluated,
        "facts": {
            "message.type": ctx.message_type,
            "message.text": ctx.message_text,
            "source.type": ctx.source_type,
            "customer.language": ctx.customer_language,
            "customer.linked": ctx.customer_linked,
            "customer.name": ctx.customer_name,
            "postback.data": ctx.postback_data,
            "event.type": ctx.event_type,
            "time.hour": ctx.hour,
            "time.weekday": ctx.weekday,
            "time.businessHours": ctx.business_hours,
        },
    })
}

/// A dry run of the workstream's rules: stores and sends nothing.
pub(crate) async fn test(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let test = rule_test(&body)?;
    let trial = state.service.test_rules(&id, test).await?;
    Ok(Json(trial_json(&trial)).into_response())
}
