//! `/admin/v1/workstreams/{id}/rules`: the workstream's ordered routing rules (first enabled match
//! wins), and a dry run that evaluates them against a sample LINE event exactly as the router
//! does ([`omniline_domain::routing::routing_context`] and [`CompiledRules`]), storing and sending nothing.
//!
//! Rules live inside the workstream document: every change is an optimistic write of the whole
//! workstream at its version (409 `version_conflict` when another admin got there first), and
//! bumps the version the routers' rule caches key on.

use crate::queues::{path_id, require_queue, MAX_SKILLS, MAX_SKILL_CHARS};
use crate::workstreams::load_workstream;
use crate::{AdminError, AdminState, Result};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::clock::{new_id, now_millis, rfc3339_millis};
use omniline_domain::conversation::{Consent, Customer, UNKNOWN_CUSTOMER_NAME};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::line::events::Event;
use omniline_domain::routing::routing_context;
use omniline_domain::routing::rules::{
    validate_rules, CompiledRules, RuleDef, RuleResult, MAX_RULES,
};
use omniline_domain::workstream::Workstream;
use serde_json::{json, Value};

/// Largest condition, as JSON bytes: 100 rules of this size fit in one stored workstream.
const MAX_CONDITION_BYTES: usize = 3000;
/// Priority bounds (higher is served first).
const PRIORITY_RANGE: (i64, i64) = (-1000, 1000);

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

fn rule_path(
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, String)> {
    path.map(|Path(p)| p)
        .map_err(|_| AdminError::NotFound("rule"))
}

/// Applies the body's fields to `rule` (`creating`: name, condition and queueId are required).
async fn apply(
    state: &AdminState,
    ws: &Workstream,
    fields: &mut Fields,
    rule: &mut RuleDef,
    creating: bool,
) -> Result<()> {
    if creating {
        for required in ["name", "condition", "queueId"] {
            if fields.value_is_missing(required) {
                return Err(fields.missing(required).into());
            }
        }
    }
    if let Some(name) = fields.name("name")? {
        rule.name = name;
    }
    if let Some(enabled) = fields.boolean("enabled")? {
        rule.enabled = enabled;
    }
    if let Some(condition) = fields.value("condition") {
        let size = serde_json::to_string(&condition).map_or(usize::MAX, |s| s.len());
        if size > MAX_CONDITION_BYTES {
            return Err(InputError::new(
                "condition",
                format!("condition is at most {MAX_CONDITION_BYTES} bytes of JSON, got {size}"),
            )
            .into());
        }
        rule.condition = condition;
    }
    if let Some(queue) = fields.text("queueId", 1, 100)? {
        require_queue(state, "queueId", &queue).await?;
        rule.result.queue = queue;
    }
    if let Some(priority) = fields.integer("priority", PRIORITY_RANGE.0, PRIORITY_RANGE.1)? {
        rule.result.priority = priority;
    }
    if let Some(skills) = fields.string_list("skills", MAX_SKILLS, MAX_SKILL_CHARS)? {
        rule.result.skills = skills;
    }
    if let Some(bot) = fields.boolean("bot")? {
        rule.result.bot = match (bot, &ws.bot) {
            (false, _) => None,
            (true, Some(b)) => Some(b.id.clone()),
            (true, None) => {
                return Err(AdminError::unknown_reference(
                    "bot",
                    "bot: the workstream has no bot; add one to the workstream first",
                ))
            }
        };
    }
    Ok(())
}

/// Checks the whole rule set; errors name the field of the rule at fault.
fn check(rules: &[RuleDef]) -> Result<()> {
    if rules.len() > MAX_RULES {
        return Err(AdminError::Unprocessable {
            code: "too_many_rules",
            field: "rules".into(),
            message: format!("a workstream has at most {MAX_RULES} routing rules"),
        });
    }
    validate_rules(rules).map_err(|e| {
        let field = match e.path() {
            "result.queue" => "queueId".to_owned(),
            "result.skills" => "skills".to_owned(),
            "result.priority" => "priority".to_owned(),
            "result.bot" => "bot".to_owned(),
            "" => "rules".to_owned(),
            other => other.to_owned(),
        };
        let code = if field.starts_with("condition") {
            "invalid_condition"
        } else {
            "invalid_rule"
        };
        AdminError::Unprocessable {
            code,
            message: format!("{field}: {}", e.message()),
            field,
        }
    })
}

/// Stores `ws` (with its rules changed) at the next version.
async fn save(state: &AdminState, ws: &mut Workstream) -> Result<()> {
    let stored = ws.version;
    ws.version = stored + 1;
    ws.updated_at = Some(rfc3339_millis(now_millis()));
    if state.workstreams.save_workstream(ws, Some(stored)).await? {
        Ok(())
    } else {
        Err(AdminError::version_conflict())
    }
}

pub(crate) async fn list_rules(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let ws = load_workstream(&state, &id).await?;
    Ok(Json(rules_json(&ws)).into_response())
}

pub(crate) async fn get_rule(
    State(state): State<AdminState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let (id, rule_id) = rule_path(path)?;
    let ws = load_workstream(&state, &id).await?;
    let rule = ws
        .rules
        .iter()
        .find(|r| r.id == rule_id)
        .ok_or(AdminError::NotFound("rule"))?;
    Ok(Json(rule_json(rule)).into_response())
}

pub(crate) async fn create_rule(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let mut ws = load_workstream(&state, &id).await?;
    let mut fields = Fields::parse(&body)?;
    let mut rule = RuleDef {
        id: new_id(),
        name: String::new(),
        enabled: true,
        condition: Value::Null,
        result: RuleResult {
            queue: String::new(),
            priority: 0,
            skills: Vec::new(),
            bot: None,
        },
    };
    apply(&state, &ws, &mut fields, &mut rule, true).await?;
    fields.finish()?;
    ws.rules.push(rule.clone());
    check(&ws.rules)?;
    save(&state, &mut ws).await?;
    tracing::info!(workstream_id = %id, rule_id = %rule.id, "rule created");
    Ok((StatusCode::CREATED, Json(rule_json(&rule))).into_response())
}

pub(crate) async fn update_rule(
    State(state): State<AdminState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let (id, rule_id) = rule_path(path)?;
    let mut ws = load_workstream(&state, &id).await?;
    let index = ws
        .rules
        .iter()
        .position(|r| r.id == rule_id)
        .ok_or(AdminError::NotFound("rule"))?;
    let mut rule = ws.rules[index].clone();
    let mut fields = Fields::parse(&body)?;
    apply(&state, &ws, &mut fields, &mut rule, false).await?;
    fields.finish()?;
    ws.rules[index] = rule.clone();
    check(&ws.rules)?;
    save(&state, &mut ws).await?;
    Ok(Json(rule_json(&rule)).into_response())
}

pub(crate) async fn delete_rule(
    State(state): State<AdminState>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<Response> {
    let (id, rule_id) = rule_path(path)?;
    let mut ws = load_workstream(&state, &id).await?;
    let before = ws.rules.len();
    ws.rules.retain(|r| r.id != rule_id);
    if ws.rules.len() == before {
        return Err(AdminError::NotFound("rule"));
    }
    save(&state, &mut ws).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn reorder_rules(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let ids: Vec<String> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => {
            let mut f = Fields::nested(json!({ "ruleIds": items }), "")?;
            f.string_list("ruleIds", MAX_RULES, 100)
                .map_err(|e| InputError::new("ruleIds", e.message()))?
                .unwrap_or_default()
        }
        Ok(_) => {
            let mut f = Fields::parse(&body)?;
            let ids = f
                .string_list("ruleIds", MAX_RULES, 100)?
                .ok_or_else(|| f.missing("ruleIds"))?;
            f.finish()?;
            ids
        }
        Err(_) => {
            return Err(Fields::parse(&body)
                .err()
                .unwrap_or_else(|| InputError::new("body", "the body is not valid JSON"))
                .into())
        }
    };
    let mut ws = load_workstream(&state, &id).await?;
    let mut current: Vec<&str> = ws.rules.iter().map(|r| r.id.as_str()).collect();
    let mut wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    current.sort_unstable();
    wanted.sort_unstable();
    if current != wanted {
        return Err(InputError::new(
            "ruleIds",
            format!(
                "ruleIds must list each of the workstream's {} rule ids exactly once",
                ws.rules.len()
            ),
        )
        .into());
    }
    let mut reordered = Vec::with_capacity(ws.rules.len());
    for rule_id in &ids {
        if let Some(rule) = ws.rules.iter().find(|r| &r.id == rule_id) {
            reordered.push(rule.clone());
        }
    }
    ws.rules = reordered;
    save(&state, &mut ws).await?;
    Ok(Json(rules_json(&ws)).into_response())
}

pub(crate) async fn test_rules(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let mut fields = Fields::parse(&body)?;
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
            Some(Customer {
                account_id: String::new(),
                user_id: String::new(),
                profile_found: name.is_some(),
                display_name: name.unwrap_or_else(|| UNKNOWN_CUSTOMER_NAME.to_owned()),
                picture_url: None,
                language,
                consent: Consent::Unknown,
                linked_contact_id: linked.then(|| "dry-run".to_owned()),
                created_at: 0,
                updated_at: 0,
            })
        }
    };
    let at = match fields.text("at", 1, 64)? {
        Some(at) => chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|_| {
                InputError::new(
                    "at",
                    "at must be an RFC 3339 time such as 2026-11-25T09:30:00+09:00",
                )
            })?
            .timestamp_millis(),
        None => event.timestamp().unwrap_or_else(now_millis),
    };
    fields.finish()?;

    let ws = load_workstream(&state, &id).await?;
    let compiled = CompiledRules::compile(&ws.rules).map_err(|e| {
        AdminError::Store(omniline_domain::PortError::Unavailable(format!(
            "stored rules do not compile: {e}"
        )))
    })?;
    let ctx = routing_context(&event, customer.as_ref(), &ws, at);
    let outcomes: Vec<(&str, bool)> = compiled.trace(&ctx).collect();
    let winner = outcomes.iter().find(|(_, m)| *m).map(|(id, _)| *id);
    let evaluated: Vec<Value> = ws
        .rules
        .iter()
        .map(|r| {
            let matched = outcomes.iter().any(|(id, m)| *id == r.id && *m);
            json!({ "ruleId": r.id, "name": r.name, "enabled": r.enabled, "matched": matched })
        })
        .collect();
    let rule = winner.and_then(|w| ws.rules.iter().find(|r| r.id == w));
    let result = match rule {
        Some(r) => json!({
            "queueId": r.result.queue,
            "priority": r.result.priority,
            "skills": r.result.skills,
            "bot": r.result.bot.is_some() || ws.bot.is_some(),
            "source": "rule",
        }),
        None => json!({
            "queueId": ws.default_queue,
            "priority": 0,
            "skills": [],
            "bot": ws.bot.is_some(),
            "source": "default",
        }),
    };
    let facts = json!({
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
    });
    Ok(Json(json!({
        "matched": rule.is_some(),
        "rule": rule.map(rule_json),
        "result": result,
        "evaluated": evaluated,
        "facts": facts,
    }))
    .into_response())
}
