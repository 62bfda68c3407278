//! `/admin/v1/workstreams`: how one account's conversations are handled. The admin wire form
//! (`defaultQueueId`, `timeZone`, `automatedMessages` keyed by trigger, `bot` with its secret) is
//! mapped here onto the stored [`Workstream`]; the bot's secret goes to the secret store and is
//! never returned. Every change bumps the workstream's `version`, which the router's rule cache
//! keys on, so routers see a change on their next event.

use crate::customers::{purge_account_data, purge_flag};
use crate::queues::{path_id, require_queue};
use crate::{AdminError, AdminState, Result};
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_domain::clock::{new_id, now_millis, rfc3339_millis};
use omniline_domain::input::{Fields, InputError};
use omniline_domain::secret::SecretString;
use omniline_domain::workstream::{
    AgentIdentity, Attachments, AutomatedMessage, BotConfig, BusinessHours, Distribution,
    GroupChats, Survey, Trigger, Workstream, WorkstreamError, BOT_TIMEOUT_MS_DEFAULT,
    BOT_TIMEOUT_MS_MAX, BOT_TIMEOUT_MS_MIN, MAX_MESSAGE_CHARS,
};
use omniline_domain::PortError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Where a workstream's bot secret is kept in the secret store.
pub(crate) fn bot_secret_name(workstream_id: &str) -> String {
    format!("workstreams/{workstream_id}/bot")
}

/// The id conversations and rules use for a workstream's bot.
pub(crate) fn bot_id(workstream_id: &str) -> String {
    format!("{workstream_id}.bot")
}

/// The admin wire form of a workstream.
pub(crate) fn workstream_json(ws: &Workstream) -> Value {
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
        "groupChats": match ws.group_chats { GroupChats::Handle => "handle", GroupChats::Ignore => "ignore" },
        "ruleCount": ws.rules.len(),
        "version": ws.version,
        "createdAt": ws.created_at,
        "updatedAt": ws.updated_at,
    })
}

/// A BCP-47 language tag, loosely: a 2–3 letter primary subtag, then subtags of 1–8
/// alphanumerics ("ja", "en-US", "zh-Hant", "es-419").
fn is_language_tag(tag: &str) -> bool {
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
    let question = f.text(
        "question",
        1,
        omniline_domain::workstream::SURVEY_QUESTION_MAX_CHARS,
    )?;
    let scale = f
        .integer(
            "scale",
            2,
            i64::from(omniline_domain::workstream::SURVEY_SCALE_MAX),
        )?
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

/// What a body asks of the bot: `None` = leave it, `Some(None)` = remove it.
struct BotChange {
    url: String,
    secret: Option<SecretString>,
    timeout_ms: u32,
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

/// Applies the body's fields to `ws`. Returns the bot change (`Some(None)`: remove the bot).
fn apply(
    fields: &mut Fields,
    ws: &mut Workstream,
) -> Result<Option<Option<BotChange>>, InputError> {
    if let Some(name) = fields.name("name")? {
        ws.name = name;
    }
    if let Some(lang) = language(fields, "language")? {
        ws.language = lang;
    }
    if let Some(d) = fields.one_of("distribution", &["push", "pick"])? {
        ws.distribution = if d == "pick" {
            Distribution::Pick
        } else {
            Distribution::Push
        };
    }
    if let Some(queue) = fields.text("defaultQueueId", 1, 100)? {
        ws.default_queue = queue;
    }
    if let Some(value) = fields.value("attachments") {
        let mut f = Fields::nested(value, "attachments")?;
        // Partial: a flag not given keeps its value.
        if let Some(v) = f.boolean("customerCanSend")? {
            ws.attachments.customer_can_send = v;
        }
        if let Some(v) = f.boolean("agentCanSend")? {
            ws.attachments.agent_can_send = v;
        }
        f.finish()?;
    }
    if let Some(value) = fields.take("automatedMessages") {
        ws.automated_messages = if value.is_null() {
            Vec::new()
        } else {
            automated_messages(value)?
        };
    }
    if let Some(value) = fields.take("survey") {
        ws.survey = survey(value)?;
    }
    if fields.has("autoCloseMinutes") {
        ws.auto_close_minutes = fields
            .integer(
                "autoCloseMinutes",
                i64::from(omniline_domain::workstream::AUTO_CLOSE_MINUTES_MIN),
                i64::from(omniline_domain::workstream::AUTO_CLOSE_MINUTES_MAX),
            )?
            .map(|m| m as u32);
    }
    if let Some(value) = fields.take("businessHours") {
        ws.business_hours = if value.is_null() {
            Vec::new()
        } else {
            business_hours(value)?
        };
    }
    if let Some(tz) = fields.text("timeZone", 1, 64)? {
        ws.timezone = tz;
    }
    if let Some(value) = fields.take("agentIdentity") {
        ws.agent_identity = agent_identity(value)?;
    }
    if let Some(g) = fields.one_of("groupChats", &["handle", "ignore"])? {
        ws.group_chats = if g == "ignore" {
            GroupChats::Ignore
        } else {
            GroupChats::Handle
        };
    }
    let bot_change = fields.take("bot").map(bot).transpose()?;
    Ok(bot_change)
}

/// The admin path of a stored-form validation error.
fn admin_path(ws: &Workstream, e: &WorkstreamError) -> String {
    let path = e.path();
    if let Some(rest) = path.strip_prefix("automatedMessages[") {
        if let Some((index, _)) = rest.split_once(']') {
            if let Some(m) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| ws.automated_messages.get(i))
            {
                return format!("automatedMessages.{}.texts.{}", m.trigger, m.language);
            }
        }
    }
    match path {
        "timezone" => "timeZone".into(),
        "defaultQueue" => "defaultQueueId".into(),
        p if p.starts_with("bot.") => p.replace("secretName", "secret"),
        p => p.to_owned(),
    }
}

fn validate(ws: &Workstream) -> Result<()> {
    ws.validate().map_err(|e| {
        let path = admin_path(ws, &e);
        let message = format!("{path}: {}", e.message());
        if path.starts_with("rules") {
            AdminError::Unprocessable {
                code: "invalid_condition",
                field: path,
                message,
            }
        } else {
            AdminError::Input(InputError::new(&path, message))
        }
    })
}

/// Applies a bot change: stores a new secret, sets or removes the bot.
async fn apply_bot(
    state: &AdminState,
    ws: &mut Workstream,
    change: Option<Option<BotChange>>,
) -> Result<bool> {
    let Some(change) = change else {
        return Ok(false);
    };
    match change {
        None => {
            let users: Vec<&str> = ws
                .rules
                .iter()
                .filter(|r| r.result.bot.is_some())
                .map(|r| r.name.as_str())
                .collect();
            if !users.is_empty() {
                return Err(AdminError::Conflict {
                    code: "bot_in_use",
                    message: format!("routing rules send work to the bot: {}", users.join(", ")),
                    field: Some("bot".into()),
                    used_by: None,
                });
            }
            let removed = ws.bot.take().is_some();
            Ok(removed)
        }
        Some(change) => {
            if change.secret.is_none() && ws.bot.is_none() {
                return Err(
                    InputError::new("bot.secret", "bot.secret is required for a new bot").into(),
                );
            }
            ws.bot = Some(BotConfig {
                id: bot_id(&ws.id),
                url: change.url,
                secret_name: bot_secret_name(&ws.id),
                timeout_ms: change.timeout_ms,
            });
            validate(ws)?;
            if let Some(secret) = change.secret {
                state.secrets.put(&bot_secret_name(&ws.id), &secret).await?;
            }
            Ok(false)
        }
    }
}

/// Turns the account's webhook off (its workstream was deleted) or back on. The flag is on the
/// account record, which the webhook reads on every request: it takes effect at once. A deleted
/// account: nothing to do.
pub(crate) async fn set_webhook_disabled(
    state: &AdminState,
    account_id: &str,
    disabled: bool,
) -> Result<()> {
    let Some(mut account) = state.accounts.get(account_id).await? else {
        return Ok(());
    };
    if account.webhook_disabled != disabled {
        account.webhook_disabled = disabled;
        account.updated_at = rfc3339_millis(now_millis());
        state.accounts.update(&account).await?;
        state.disconnected(account_id);
    }
    Ok(())
}

pub(crate) async fn load_workstream(state: &AdminState, id: &str) -> Result<Workstream> {
    state
        .workstreams
        .workstream(id)
        .await?
        .ok_or(AdminError::NotFound("workstream"))
}

pub(crate) async fn list_workstreams(State(state): State<AdminState>) -> Result<Response> {
    let mut all = state.workstreams.list_workstreams().await?;
    all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let items: Vec<Value> = all.iter().map(workstream_json).collect();
    Ok(Json(json!({ "workstreams": items })).into_response())
}

pub(crate) async fn get_workstream(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    Ok(Json(workstream_json(&load_workstream(&state, &id).await?)).into_response())
}

pub(crate) async fn create_workstream(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<Response> {
    let mut fields = Fields::parse(&body)?;
    let account_id = fields
        .text("accountId", 1, 100)?
        .ok_or_else(|| fields.missing("accountId"))?;
    for required in ["name", "language", "defaultQueueId"] {
        if fields.value_is_missing(required) {
            return Err(fields.missing(required).into());
        }
    }
    let now = rfc3339_millis(now_millis());
    let mut ws = Workstream {
        id: new_id(),
        account_id,
        name: String::new(),
        language: String::new(),
        distribution: Distribution::Push,
        default_queue: String::new(),
        attachments: Attachments::default(),
        auto_close_minutes: None,
        timezone: "UTC".into(),
        business_hours: Vec::new(),
        bot: None,
        agent_identity: None,
        automated_messages: Vec::new(),
        survey: None,
        group_chats: GroupChats::Handle,
        rules: Vec::new(),
        version: 1,
        created_at: Some(now.clone()),
        updated_at: Some(now),
    };
    let bot_change = apply(&mut fields, &mut ws)?;
    fields.finish()?;
    validate(&ws)?;
    if state.accounts.get(&ws.account_id).await?.is_none() {
        return Err(AdminError::unknown_reference(
            "accountId",
            format!("accountId: there is no account {:?}", ws.account_id),
        ));
    }
    require_queue(&state, "defaultQueueId", &ws.default_queue).await?;
    if let Some(existing) = state
        .workstreams
        .workstream_for_account(&ws.account_id)
        .await?
    {
        return Err(workstream_exists(&existing.id));
    }
    apply_bot(&state, &mut ws, bot_change).await?;
    match state.workstreams.save_workstream(&ws, None).await {
        Ok(true) => {}
        Ok(false) => return Err(AdminError::version_conflict()),
        Err(PortError::Conflict(existing)) => {
            if ws.bot.is_some() {
                let _ = state.secrets.delete(&bot_secret_name(&ws.id)).await;
            }
            return Err(workstream_exists(&existing));
        }
        Err(e) => return Err(e.into()),
    }
    // A workstream (re)enables the account's webhook if an earlier deletion turned it off.
    set_webhook_disabled(&state, &ws.account_id, false).await?;
    tracing::info!(workstream_id = %ws.id, account_id = %ws.account_id, "workstream created");
    Ok((StatusCode::CREATED, Json(workstream_json(&ws))).into_response())
}

fn workstream_exists(existing: &str) -> AdminError {
    AdminError::Conflict {
        code: "workstream_exists",
        message: format!("the account already has workstream {existing}; edit or delete it"),
        field: Some("accountId".into()),
        used_by: Some(json!([{ "kind": "workstream", "id": existing }])),
    }
}

pub(crate) async fn update_workstream(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let mut ws = load_workstream(&state, &id).await?;
    let mut fields = Fields::parse(&body)?;
    if fields.has("accountId") {
        return Err(InputError::new(
            "accountId",
            "accountId cannot be changed; delete the workstream and create one for the other account",
        )
        .into());
    }
    let stored_version = ws.version;
    let queue_before = ws.default_queue.clone();
    let bot_change = apply(&mut fields, &mut ws)?;
    fields.finish()?;
    validate(&ws)?;
    if ws.default_queue != queue_before {
        require_queue(&state, "defaultQueueId", &ws.default_queue).await?;
    }
    let bot_removed = apply_bot(&state, &mut ws, bot_change).await?;
    ws.version = stored_version + 1;
    ws.updated_at = Some(rfc3339_millis(now_millis()));
    if !state
        .workstreams
        .save_workstream(&ws, Some(stored_version))
        .await?
    {
        return Err(AdminError::version_conflict());
    }
    if bot_removed {
        state.secrets.delete(&bot_secret_name(&ws.id)).await?;
    }
    tracing::info!(workstream_id = %ws.id, version = ws.version, "workstream updated");
    Ok(Json(workstream_json(&ws)).into_response())
}

pub(crate) async fn delete_workstream(
    State(state): State<AdminState>,
    id: std::result::Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let id = path_id(id, "workstream")?;
    let purge = purge_flag(query.as_deref())?;
    let ws = load_workstream(&state, &id).await?;
    // The webhook first: from now on the account's events are refused.
    set_webhook_disabled(&state, &ws.account_id, true).await?;
    state.workstreams.delete_workstream(&id).await?;
    if ws.bot.is_some() {
        state.secrets.delete(&bot_secret_name(&id)).await?;
    }
    if purge {
        purge_account_data(&state, &ws.account_id).await?;
    }
    tracing::info!(workstream_id = %id, purge, "workstream deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
