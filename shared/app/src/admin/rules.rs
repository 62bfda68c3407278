//! A workstream's ordered routing rules (first enabled match wins), and a dry run that evaluates
//! them against a sample LINE event exactly as the router does
//! ([`omniline_domain::routing::routing_context`] and [`CompiledRules`]), storing and sending
//! nothing.
//!
//! Rules live inside the workstream document: every change is an optimistic write of the whole
//! workstream at its version (`VersionConflict` when another admin got there first), and bumps
//! the version the routers' rule caches key on.

use super::{set, AdminError, AdminService, ExistingQueue};
use omniline_domain::clock::new_id;
use omniline_domain::conversation::{Consent, Customer, UNKNOWN_CUSTOMER_NAME};
use omniline_domain::line::events::Event;
use omniline_domain::routing::routing_context;
use omniline_domain::routing::rules::{
    validate_rules, CompiledRules, RoutingContext, RuleDef, RuleResult, MAX_RULES,
};
use omniline_domain::workstream::Workstream;
use omniline_domain::PortError;
use serde_json::Value;

/// What to change of a rule (`None`: keep).
#[derive(Debug, Clone, Default)]
pub struct RulePatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub condition: Option<Value>,
    pub queue: Option<ExistingQueue>,
    pub priority: Option<i64>,
    pub skills: Option<Vec<String>>,
    /// `Some(None)`: not to the bot; `Some(Some(id))`: to the workstream's bot (see [`rule_bot`]).
    pub bot: Option<Option<String>>,
}

impl RulePatch {
    fn apply(self, rule: &mut RuleDef) {
        set(&mut rule.name, self.name);
        set(&mut rule.enabled, self.enabled);
        set(&mut rule.condition, self.condition);
        set(
            &mut rule.result.queue,
            self.queue.map(ExistingQueue::into_id),
        );
        set(&mut rule.result.priority, self.priority);
        set(&mut rule.result.skills, self.skills);
        set(&mut rule.result.bot, self.bot);
    }
}

/// What a rule's `bot` flag means on `ws`: its bot's id, or none; `UnknownReference` when a rule
/// should send work to the bot of a workstream that has none.
pub fn rule_bot(ws: &Workstream, wanted: bool) -> Result<Option<String>, AdminError> {
    match (wanted, &ws.bot) {
        (false, _) => Ok(None),
        (true, Some(b)) => Ok(Some(b.id.clone())),
        (true, None) => Err(AdminError::unknown_reference(
            "bot",
            "bot: the workstream has no bot; add one to the workstream first",
        )),
    }
}

/// A rule of a stored workstream: only [`AdminService::rule`] makes one.
#[derive(Debug, Clone)]
pub struct StoredRule {
    workstream: Workstream,
    rule: RuleDef,
}

impl StoredRule {
    pub fn workstream(&self) -> &Workstream {
        &self.workstream
    }

    pub fn rule(&self) -> &RuleDef {
        &self.rule
    }
}

/// The customer of a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleCustomer {
    /// The profile's name (`None`: LINE gave no profile).
    pub name: Option<String>,
    pub language: Option<String>,
    /// Linked to a contact.
    pub linked: bool,
}

/// A dry run: the event, who sent it, and when (`None`: the event's timestamp, else now).
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub event: Event,
    pub customer: Option<SampleCustomer>,
    pub at: Option<i64>,
}

/// One rule in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEvaluation {
    pub rule_id: String,
    pub name: String,
    pub enabled: bool,
    pub matched: bool,
}

/// Where a dry run's conversation would go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialRoute {
    pub queue: String,
    pub priority: i64,
    pub skills: Vec<String>,
    /// To the bot first.
    pub bot: bool,
    /// From the matching rule (`false`: the workstream's default).
    pub from_rule: bool,
}

/// What a dry run found.
#[derive(Debug, Clone)]
pub struct RuleTrial {
    /// The first enabled rule that matched.
    pub rule: Option<RuleDef>,
    pub route: TrialRoute,
    /// Every rule, in order.
    pub evaluated: Vec<RuleEvaluation>,
    /// The facts the rules were tested on.
    pub facts: RoutingContext,
}

/// The whole rule set can be stored; errors name the field of the rule at fault.
fn check(rules: &[RuleDef]) -> Result<(), AdminError> {
    if rules.len() > MAX_RULES {
        return Err(AdminError::TooManyRules);
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
        let message = format!("{field}: {}", e.message());
        if field.starts_with("condition") {
            AdminError::InvalidCondition { field, message }
        } else {
            AdminError::InvalidRule { field, message }
        }
    })
}

impl SampleCustomer {
    fn customer(self) -> Customer {
        Customer {
            account_id: String::new(),
            user_id: String::new(),
            profile_found: self.name.is_some(),
            display_name: self
                .name
                .unwrap_or_else(|| UNKNOWN_CUSTOMER_NAME.to_owned()),
            picture_url: None,
            language: self.language,
            consent: Consent::Unknown,
            linked_contact_id: self.linked.then(|| "dry-run".to_owned()),
            created_at: 0,
            updated_at: 0,
            profile_fetched_at: None,
        }
    }
}

impl AdminService {
    /// Rule `rule_id` of workstream `workstream_id`; `NotFound` for either.
    pub async fn rule(&self, workstream_id: &str, rule_id: &str) -> Result<StoredRule, AdminError> {
        let workstream = self.workstream(workstream_id).await?;
        let rule = workstream
            .rules
            .iter()
            .find(|r| r.id == rule_id)
            .cloned()
            .ok_or(AdminError::NotFound("rule"))?;
        Ok(StoredRule { workstream, rule })
    }

    /// Appends a rule (enabled unless `patch` says otherwise) to `ws` (as read by
    /// [`Self::workstream`]).
    pub async fn create_rule(
        &self,
        mut ws: Workstream,
        patch: RulePatch,
    ) -> Result<RuleDef, AdminError> {
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
        patch.apply(&mut rule);
        ws.rules.push(rule.clone());
        check(&ws.rules)?;
        self.save_workstream(&mut ws).await?;
        tracing::info!(workstream_id = %ws.id, rule_id = %rule.id, "rule created");
        Ok(rule)
    }

    /// Changes the rule (as read by [`Self::rule`]) unless its workstream changed since.
    pub async fn update_rule(
        &self,
        stored: StoredRule,
        patch: RulePatch,
    ) -> Result<RuleDef, AdminError> {
        let StoredRule {
            mut workstream,
            mut rule,
        } = stored;
        patch.apply(&mut rule);
        let slot = workstream
            .rules
            .iter_mut()
            .find(|r| r.id == rule.id)
            .ok_or(AdminError::NotFound("rule"))?;
        *slot = rule.clone();
        check(&workstream.rules)?;
        self.save_workstream(&mut workstream).await?;
        Ok(rule)
    }

    pub async fn delete_rule(&self, workstream_id: &str, rule_id: &str) -> Result<(), AdminError> {
        let mut ws = self.workstream(workstream_id).await?;
        let before = ws.rules.len();
        ws.rules.retain(|r| r.id != rule_id);
        if ws.rules.len() == before {
            return Err(AdminError::NotFound("rule"));
        }
        self.save_workstream(&mut ws).await
    }

    /// Puts the workstream's rules in the order of `rule_ids` (each of its rules exactly once);
    /// returns the workstream as saved.
    pub async fn reorder_rules(
        &self,
        workstream_id: &str,
        rule_ids: Vec<String>,
    ) -> Result<Workstream, AdminError> {
        let mut ws = self.workstream(workstream_id).await?;
        let mut current: Vec<&str> = ws.rules.iter().map(|r| r.id.as_str()).collect();
        let mut wanted: Vec<&str> = rule_ids.iter().map(String::as_str).collect();
        current.sort_unstable();
        wanted.sort_unstable();
        if current != wanted {
            return Err(AdminError::invalid(
                "ruleIds",
                format!(
                    "ruleIds must list each of the workstream's {} rule ids exactly once",
                    ws.rules.len()
                ),
            ));
        }
        let mut reordered = Vec::with_capacity(ws.rules.len());
        for rule_id in &rule_ids {
            if let Some(rule) = ws.rules.iter().find(|r| &r.id == rule_id) {
                reordered.push(rule.clone());
            }
        }
        ws.rules = reordered;
        self.save_workstream(&mut ws).await?;
        Ok(ws)
    }

    /// Evaluates the workstream's stored rules against `test` as the router would; stores and
    /// sends nothing.
    pub async fn test_rules(
        &self,
        workstream_id: &str,
        test: RuleTest,
    ) -> Result<RuleTrial, AdminError> {
        let at = test
            .at
            .or_else(|| test.event.timestamp())
            .unwrap_or_else(|| self.now_millis());
        let ws = self.workstream(workstream_id).await?;
        let compiled = CompiledRules::compile(&ws.rules).map_err(|e| {
            AdminError::Store(PortError::Unavailable(format!(
                "stored rules do not compile: {e}"
            )))
        })?;
        let customer = test.customer.map(SampleCustomer::customer);
        let facts = routing_context(&test.event, customer.as_ref(), &ws, at);
        let outcomes: Vec<(&str, bool)> = compiled.trace(&facts).collect();
        let winner = outcomes.iter().find(|(_, m)| *m).map(|(id, _)| *id);
        let evaluated = ws
            .rules
            .iter()
            .map(|r| RuleEvaluation {
                rule_id: r.id.clone(),
                name: r.name.clone(),
                enabled: r.enabled,
                matched: outcomes.iter().any(|(id, m)| *id == r.id && *m),
            })
            .collect();
        let rule = winner
            .and_then(|w| ws.rules.iter().find(|r| r.id == w))
            .cloned();
        let route = match &rule {
            Some(r) => TrialRoute {
                queue: r.result.queue.clone(),
                priority: r.result.priority,
                skills: r.result.skills.clone(),
                bot: r.result.bot.is_some() || ws.bot.is_some(),
                from_rule: true,
            },
            None => TrialRoute {
                queue: ws.default_queue.clone(),
                priority: 0,
                skills: Vec::new(),
                bot: ws.bot.is_some(),
                from_rule: false,
            },
        };
        Ok(RuleTrial {
            rule,
            route,
            evaluated,
            facts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::workstreams::blank_workstream;
    use omniline_domain::workstream::BotConfig;
    use serde_json::json;

    fn rule(id: &str, condition: Value, queue: &str) -> RuleDef {
        RuleDef {
            id: id.into(),
            name: id.into(),
            enabled: true,
            condition,
            result: RuleResult {
                queue: queue.into(),
                priority: 0,
                skills: Vec::new(),
                bot: None,
            },
        }
    }

    #[test]
    fn a_rule_goes_to_the_bot_only_when_the_workstream_has_one() {
        let mut ws = blank_workstream("acc".into(), String::new());
        assert_eq!(rule_bot(&ws, false).ok(), Some(None));
        assert!(matches!(
            rule_bot(&ws, true),
            Err(AdminError::UnknownReference { field, .. }) if field == "bot"
        ));
        ws.bot = Some(BotConfig {
            id: "ws.bot".into(),
            url: "https://bot.example.com".into(),
            secret_name: "workstreams/ws/bot".into(),
            timeout_ms: 3000,
        });
        assert_eq!(rule_bot(&ws, true).ok(), Some(Some("ws.bot".to_owned())));
    }

    #[test]
    fn rule_errors_name_the_admins_field() {
        let good = json!({"field": "message.text", "op": "contains", "value": "vip"});
        assert!(check(&[rule("r1", good.clone(), "q1")]).is_ok());
        let bad_op = json!({"field": "message.text", "op": "bogus", "value": "vip"});
        assert!(matches!(
            check(&[rule("r1", bad_op, "q1")]),
            Err(AdminError::InvalidCondition { field, .. }) if field.starts_with("condition")
        ));
        assert!(matches!(
            check(&[rule("r1", good.clone(), "")]),
            Err(AdminError::InvalidRule { field, .. }) if field == "queueId"
        ));
        let many: Vec<RuleDef> = (0..=MAX_RULES)
            .map(|i| rule(&format!("r{i}"), good.clone(), "q1"))
            .collect();
        assert!(matches!(check(&many), Err(AdminError::TooManyRules)));
    }
}
