//! `/admin/v1/workstreams`: how one account's conversations are handled. The admin wire form
//! (`defaultQueueId`, `timeZone`, `automatedMessages` keyed by trigger, `bot` with its secret) is
//! parsed here into a [`WorkstreamPatch`] and rendered from the stored [`Workstream`]; the bot's
//! secret is never returned.

use crate::customers::purge_flag;
use crate::error::{path_id, required, PathId, Result};
use crate::AdminState;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_app::admin::workstreams::{BotChange, WorkstreamPatch};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::secret::SecretString;
use omniline_domain::workstream::{
    Affinity, AgentIdentity, AutomatedMessage, BusinessHours, ContextVariable, Distribution,
    GroupChats, OfferMode, OfferSettings, Survey, Trigger, ValueKind, Workstream,
    AFFINITY_DAYS_MAX, AUTO_CLOSE_MINUTES_MAX, AUTO_CLOSE_MINUTES_MIN, BOT_TIMEOUT_MS_DEFAULT,
    BOT_TIMEOUT_MS_MAX, BOT_TIMEOUT_MS_MIN, CONTEXT_VARIABLES_MAX, DISPOSITIONS_MAX,
    DISPOSITION_MAX_CHARS, MAX_MESSAGE_CHARS, OFFER_TIMEOUT_MAX, OFFER_TIMEOUT_MIN,
    SURVEY_QUESTION_MAX_CHARS, SURVEY_SCALE_MAX, WRAP_UP_SECONDS_MAX,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The admin wire form of a workstream.
fn workstream_json(ws: &Workstream) -> Value {
    let mut messages: BTreeMap<&str, (bool, Map<String, Value>)> = BTreeMap::new();
    for m in &ws.automated_messages {
        let entry = messages
            .entry(m.trigger.as_str())
            .or_insert_with(|| (m.enabled, Map::new()));
        entry.0 = entry.0 || m.enabled;
        entry
            .1
            .insert(m.language.clone(), Value::String(m.text.clone()));
    }
    let messages: Map<String, Value> = messages
        .into_iter()
        .map(|(trigger, (enabled, texts))| {
            (
                trigger.to_owned(),
                json!({ "enabled": enabled, "texts": texts }),
            )
        })
        .collect();
    let identity = ws.agent_identity.as_ref().map_or_else(
        || json!({ "enabled": false }),
        |a| {
            let mut v = json!({ "enabled": a.enabled });
            if let Some(icon) = &a.icon_url {
                v["iconUrl"] = Value::String(icon.clone());
            }
            v
        },
    );
    let survey = ws.survey.as_ref().map_or(Value::Null, |s| {
        let mut v = json!({ "enabled": s.enabled });
        if let Some(q) = &s.question {
            v["question"] = Value::String(q.clone());
        }
        if let Some(scale) = s.scale {
            v["scale"] = json!(scale);
        }
        if let Some(url) = &s.url {
            v["url"] = Value::String(url.clone());
        }
        v
    });
    json!({
        "id": ws.id,
        "name": ws.name,
        "accountId": ws.account_id,
        "language": ws.language,
        "distribution": ws.distribution.as_str(),
        "defaultQueueId": ws.default_queue,
        "attachments": {
            "customerCanSend": ws.attachments.customer_can_send,
            "agentCanSend": ws.attachments.agent_can_send,
        },
        "automatedMessages": messages,
        "survey": survey,
        "autoCloseMinutes": ws.auto_close_minutes,
        "businessHours": ws.business_hours,
        "timeZone": ws.timezone,
        "bot": ws.bot.as_ref().map(|b| json!({
            "url": b.url, "timeoutMs": b.timeout_ms, "secretSet": true,
        })),
        "agentIdentity": identity,
        "affinity": ws.affinity.map(|a| json!({"enabled": a.enabled, "days": a.days})),
        "offer": ws.offer.map_or_else(
            || json!({"mode": "auto", "timeoutSeconds": null}),
            |o| json!({
                "mode": match o.mode { OfferMode::Auto => "auto", OfferMode::Accept => "accept" },
                "timeoutSeconds": o.timeout_seconds,
            }),
        ),
        "contextVariables": ws.context_variables.iter().map(|v| json!({
            "name": v.name, "type": v.kind.as_str(), "label": v.label,
        })).collect::<Vec<_>>(),
        "wrapUpSeconds": ws.wrap_up_seconds.unwrap_or(0),
        "dispositions": ws.dispositions,
        "groupChats": match ws.group_chats { GroupChats::Handle => "handle", GroupChats::Ignore => "ignore" },
        "ruleCount": ws.rules.len(),
        "version": ws.version,
        "createdAt": ws.created_at,
        "updatedAt": ws.updated_at,
    })
}

/// A BCP-47 language tag, loosely: a 2–3 letter primary subtag, then subtags of 1–8
/// alphanumerics ("ja", "en-US", "zh-Hant", "es-419").
pub(crate) fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    primary_ok
        && tag.len() <= 35
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn language(fields: &mut Fields, field: &str) -> Result<Option<String>, InputError> {
    let Some(tag) = fields.text(field, 2, 35)? else {
        return Ok(None);
    };
    if is_language_tag(&tag) {
        Ok(Some(tag))
    } else {
        Err(InputError::new(
            &fields.path(field),
            format!(
                "{field} must be a BCP-47 language tag such as \"ja\", \"en-US\" or \"zh-Hant\""
            ),
        ))
    }
}

fn boolean_required(fields: &mut Fields, field: &str) -> Result<bool, InputError> {
    fields.boolean(field)?.ok_or_else(|| fields.missing(field))
}

/// `automatedMessages`: `{"<trigger>": {"enabled"?: bool, "texts": {"<lang>": "text"}}}`.
fn automated_messages(value: Value) -> Result<Vec<AutomatedMessage>, InputError> {
    let Value::Object(map) = value else {
        return Err(InputError::new(
            "automatedMessages",
            "automatedMessages must be an object keyed by trigger",
        ));
    };
    let mut out = Vec::new();
    for (name, spec) in map {
        let path = format!("automatedMessages.{name}");
        let Some(trigger) = Trigger::parse(&name) else {
            let names: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
            return Err(InputError::new(
                &path,
                format!(
                    "unknown trigger {name:?}; expected one of {}",
                    names.join(", ")
                ),
            ));
        };
        let mut spec = Fields::nested(spec, &path)?;
        let enabled = spec.boolean("enabled")?.unwrap_or(true);
        let texts = spec
            .take("texts")
            .filter(|v| !v.is_null())
            .ok_or_else(|| spec.missing("texts"))?;
        spec.finish()?;
        let texts_path = format!("{path}.texts");
        let Value::Object(texts) = texts else {
            return Err(InputError::new(
                &texts_path,
                format!("{texts_path} must be an object of language → text"),
            ));
        };
        if texts.is_empty() {
            return Err(InputError::new(
                &texts_path,
                format!("{texts_path} needs at least one language"),
            ));
        }
        let mut texts = Fields::nested(Value::Object(texts), &texts_path)?;
        let languages: Vec<String> = texts.keys();
        for lang in languages {
            if !is_language_tag(&lang) {
                return Err(InputError::new(
                    &texts.path(&lang),
                    format!("{lang:?} is not a BCP-47 language tag"),
                ));
            }
            let text = texts
                .text(&lang, 1, MAX_MESSAGE_CHARS)?
                .ok_or_else(|| texts.missing(&lang))?;
            out.push(AutomatedMessage {
                trigger,
                language: lang,
                text,
                enabled,
            });
        }
    }
    Ok(out)
}

fn survey(value: Value) -> Result<Option<Survey>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut f = Fields::nested(value, "survey")?;
    let enabled = boolean_required(&mut f, "enabled")?;
    let question = f.text("question", 1, SURVEY_QUESTION_MAX_CHARS)?;
    let scale = f
        .integer("scale", 2, i64::from(SURVEY_SCALE_MAX))?
        .map(|s| s as u8);
    let url = f.text("url", 9, 1000)?;
    f.finish()?;
    Ok(Some(Survey {
        enabled,
        question,
        scale,
        url,
    }))
}

/// `{"mode": "auto"|"accept", "timeoutSeconds"}` (`null`: auto). `timeoutSeconds` (15 to 600)
/// is required with `accept`, 60 by default with `auto`.
fn offer(value: Value) -> Result<Option<OfferSettings>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut f = Fields::nested(value, "offer")?;
    let mode = f
        .one_of("mode", &["auto", "accept"])?
        .ok_or_else(|| f.missing("mode"))?;
    let timeout = f.integer(
        "timeoutSeconds",
        i64::from(OFFER_TIMEOUT_MIN),
        i64::from(OFFER_TIMEOUT_MAX),
    )?;
    let mode = if mode == "accept" {
        OfferMode::Accept
    } else {
        OfferMode::Auto
    };
    let timeout_seconds = match (mode, timeout) {
        (_, Some(t)) => t as u32,
        (OfferMode::Accept, None) => return Err(f.missing("timeoutSeconds")),
        (OfferMode::Auto, None) => 60,
    };
    f.finish()?;
    Ok(Some(OfferSettings {
        mode,
        timeout_seconds,
    }))
}

/// `[{"name", "type": "string"|"number"|"boolean", "label"}]` (`null`: none).
fn context_variables(value: Value) -> Result<Vec<ContextVariable>, InputError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(InputError::new(
                "contextVariables",
                "contextVariables must be an array",
            ))
        }
    };
    if items.len() > CONTEXT_VARIABLES_MAX {
        return Err(InputError::new(
            "contextVariables",
            format!("at most {CONTEXT_VARIABLES_MAX} context variables"),
        ));
    }
    let mut out: Vec<ContextVariable> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("contextVariables[{i}]");
        let mut f = Fields::nested(item, &path)?;
        let name = f.text("name", 1, 64)?.ok_or_else(|| f.missing("name"))?;
        if !omniline_domain::routing::rules::is_value_name(&name) {
            return Err(InputError::new(
                &format!("{path}.name"),
                "a name is a letter then up to 63 letters, digits or _",
            ));
        }
        if out.iter().any(|v| v.name == name) {
            return Err(InputError::new(
                &format!("{path}.name"),
                format!("{name:?} is declared twice"),
            ));
        }
        let kind = match f
            .one_of("type", &["string", "number", "boolean"])?
            .ok_or_else(|| f.missing("type"))?
            .as_str()
        {
            "number" => ValueKind::Number,
            "boolean" => ValueKind::Boolean,
            _ => ValueKind::String,
        };
        let label = f.text("label", 1, 100)?.ok_or_else(|| f.missing("label"))?;
        f.finish()?;
        out.push(ContextVariable { name, kind, label });
    }
    Ok(out)
}

/// `{"enabled", "days"}` (`null`: off).
fn affinity(value: Value) -> Result<Option<Affinity>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut f = Fields::nested(value, "affinity")?;
    let enabled = boolean_required(&mut f, "enabled")?;
    let days = f
        .integer("days", 1, i64::from(AFFINITY_DAYS_MAX))?
        .ok_or_else(|| f.missing("days"))? as u32;
    f.finish()?;
    Ok(Some(Affinity { enabled, days }))
}

fn agent_identity(value: Value) -> Result<Option<AgentIdentity>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut f = Fields::nested(value, "agentIdentity")?;
    let enabled = boolean_required(&mut f, "enabled")?;
    let icon_url = f.text("iconUrl", 9, 2000)?;
    f.finish()?;
    Ok(Some(AgentIdentity { enabled, icon_url }))
}

fn business_hours(value: Value) -> Result<Vec<BusinessHours>, InputError> {
    let Value::Array(items) = value else {
        return Err(InputError::new(
            "businessHours",
            "businessHours must be an array",
        ));
    };
    if items.len() > 50 {
        return Err(InputError::new(
            "businessHours",
            "businessHours has at most 50 windows",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("businessHours[{i}]");
            let mut f = Fields::nested(item, &path)?;
            let days = match f.take("days") {
                Some(Value::Array(days)) if days.len() <= 7 => days
                    .iter()
                    .map(|d| d.as_u64().filter(|d| (1..=7).contains(d)).map(|d| d as u8))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| {
                        InputError::new(
                            &format!("{path}.days"),
                            "days are numbers from 1 (Monday) to 7 (Sunday)",
                        )
                    })?,
                None | Some(Value::Null) => return Err(f.missing("days")),
                Some(_) => {
                    return Err(InputError::new(
                        &format!("{path}.days"),
                        "days must be an array of 1 to 7 numbers from 1 (Monday) to 7 (Sunday)",
                    ))
                }
            };
            let open = f.text("open", 5, 5)?.ok_or_else(|| f.missing("open"))?;
            let close = f.text("close", 5, 5)?.ok_or_else(|| f.missing("close"))?;
            f.finish()?;
            Ok(BusinessHours { days, open, close })
        })
        .collect()
}

fn bot(value: Value) -> Result<Option<BotChange>, InputError> {
    if value.is_null() {
        return Ok(None);
    }
    let mut f = Fields::nested(value, "bot")?;
    let url = f.text("url", 1, 2000)?.ok_or_else(|| f.missing("url"))?;
    let secret = match f.take("secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if (8..=256).contains(&s.chars().count()) => {
            Some(SecretString::new(s))
        }
        Some(_) => {
            return Err(InputError::new(
                "bot.secret",
                "bot.secret must be a string of 8 to 256 characters",
            ))
        }
    };
    let timeout_ms = f
        .integer(
            "timeoutMs",
            i64::from(BOT_TIMEOUT_MS_MIN),
            i64::from(BOT_TIMEOUT_MS_MAX),
        )?
        .map_or(BOT_TIMEOUT_MS_DEFAULT, |t| t as u32);
    f.finish()?;
    Ok(Some(BotChange {
        url,
        secret,
        timeout_ms,
    }))
}

/// The body's fields as a change of a workstream (`bot: null` removes the bot).
fn patch(fields: &mut Fields) -> Result<WorkstreamPatch, InputError> {
    let mut patch = WorkstreamPatch {
        name: fields.name("name")?,
        language: language(fields, "language")?,
        distribution: fields.one_of("distribution", &["push", "pick"])?.map(|d| {
            if d == "pick" {
                Distribution::Pick
            } else {
                Distribution::Push
            }
        }),
        default_queue: fields.text("defaultQueueId", 1, 100)?,
        ..WorkstreamPatch::default()
    };
    if let Some(value) = fields.value("attachments") {
        let mut f = Fields::nested(value, "attachments")?;
        // Partial: a flag not given keeps its value.
        patch.customer_can_send = f.boolean("customerCanSend")?;
        patch.agent_can_send = f.boolean("agentCanSend")?;
        f.finish()?;
    }
    if let Some(value) = fields.take("automatedMessages") {
        patch.automated_messages = Some(if value.is_null() {
            Vec::new()
        } else {
            automated_messages(value)?
        });
    }
    if let Some(value) = fields.take("survey") {
        patch.survey = Some(survey(value)?);
    }
    if fields.has("autoCloseMinutes") {
        patch.auto_close_minutes = Some(
            fields
                .integer(
                    "autoCloseMinutes",
                    i64::from(AUTO_CLOSE_MINUTES_MIN),
                    i64::from(AUTO_CLOSE_MINUTES_MAX),
                )?
                .map(|m| m as u32),
        );
    }
    if let Some(value) = fields.take("businessHours") {
        patch.business_hours = Some(if value.is_null() {
            Vec::new()
        } else {
            business_hours(value)?
        });
    }
    patch.timezone = fields.text("timeZone", 1, 64)?;
    if let Some(value) = fields.take("agentIdentity") {
        patch.agent_identity = Some(agent_identity(value)?);
    }
    if let Some(value) = fields.take("affinity") {
        patch.affinity = Some(affinity(value)?);
    }
    if let Some(value) = fields.take("offer") {
        patch.offer = Some(offer(value)?);
    }
    if let Some(value) = fields.take("contextVariables") {
        patch.context_variables = Some(context_variables(value)?);
    }
    if fields.has("wrapUpSeconds") {
        patch.wrap_up_seconds = Some(
            fields
                .integer("wrapUpSeconds", 0, i64::from(WRAP_UP_SECONDS_MAX))?
                .filter(|s| *s > 0)
                .map(|s| s as u32),
        );
    }
    if fields.has("dispositions") {
        patch.dispositions = Some(
            fields
                .string_list("dispositions", DISPOSITIONS_MAX, DISPOSITION_MAX_CHARS)?
                .unwrap_or_default(),
        );
    }
    patch.group_chats = fields
        .one_of("groupChats", &["handle", "ignore"])?
        .map(|g| {
            if g == "ignore" {
                GroupChats::Ignore
            } else {
                GroupChats::Handle
            }
        });
    patch.bot = fields.take("bot").map(bot).transpose()?;
    Ok(patch)
}

pub(crate) async fn list(State(state): State<AdminState>) -> Result<Response> {
    let all = state.service.workstreams().await?;
    let items: Vec<Value> = all.iter().map(workstream_json).collect();
    Ok(Json(json!({ "workstreams": items })).into_response())
}

/// The workstream the path names.
pub(crate) async fn from_path(state: &AdminState, id: PathId) -> Result<Workstream> {
    Ok(state
        .service
        .workstream(&path_id(id, "workstream")?)
        .await?)
}

pub(crate) async fn get(State(state): State<AdminState>, id: PathId) -> Result<Response> {
    let ws = from_path(&state, id).await?;
    Ok(Json(workstream_json(&ws)).into_response())
}

/// `{"accountId", "name", "language", "defaultQueueId", …}` → 201.
pub(crate) async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let account_id = fields
        .text("accountId", 1, 100)?
        .ok_or_else(|| fields.missing("accountId"))?;
    required(&fields, &["name", "language", "defaultQueueId"])?;
    let patch = patch(&mut fields)?;
    fields.finish()?;
    let ws = state.service.create_workstream(account_id, patch).await?;
    Ok((StatusCode::CREATED, Json(workstream_json(&ws))).into_response())
}

pub(crate) async fn update(
    State(state): State<AdminState>,
    id: PathId,
    body: Bytes,
) -> Result<Response> {
    let ws = from_path(&state, id).await?;
    let mut fields = Fields::parse(&body)?;
    if fields.has("accountId") {
        return Err(InputError::new(
            "accountId",
            "accountId cannot be changed; delete the workstream and create one for the other account",
        )
        .into());
    }
    let patch = patch(&mut fields)?;
    fields.finish()?;
    let ws = state.service.update_workstream(ws, patch).await?;
    Ok(Json(workstream_json(&ws)).into_response())
}

/// `?purge=true` erases the account's data as well, in a background job: `202` with the job
/// (`{"purgeJob": …}`); without, `204`.
pub(crate) async fn delete(
    State(state): State<AdminState>,
    id: PathId,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let purge = purge_flag(query.as_deref())?;
    let job = state.service.delete_workstream(&id, purge).await?;
    Ok(crate::jobs::deleted(job))
}
