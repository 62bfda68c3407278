//! Routing rules: an ordered list of `condition → result`; the first enabled rule whose condition
//! holds wins, and no match means "the workstream's default queue" (left to the caller).
//!
//! Rules are stored in their wire form ([`RuleDef`], camelCase JSON) and checked with
//! [`validate_rules`] before being stored. The router compiles them once per configuration
//! version into [`CompiledRules`] (regexes built, `contains` needles lowercased, fields and ops
//! resolved) and evaluates that against a [`RoutingContext`] per conversation.
//!
//! A condition is one of
//!
//! ```json
//! {"all": [<condition>, ...]}
//! {"any": [<condition>, ...]}
//! {"not": <condition>}
//! {"field": "message.text", "op": "contains", "value": "refund"}
//! {"field": "customer.name", "op": "exists"}
//! ```
//!
//! Fields and their types: `message.type`, `message.text`, `source.type`, `customer.language`,
//! `customer.name`, `postback.data`, `event.type` (strings); `customer.linked`,
//! `time.businessHours` (booleans); `time.hour` (0–23), `time.weekday` (1 = Monday … 7 = Sunday)
//! (integers). And two families of named values, typed by the value they hold:
//! `context.<name>` (what a bot handed off with, as the workstream declares it) and
//! `customer.attributes.<name>` (what an admin set on the customer), `<name>` a letter then up to
//! 63 letters, digits or `_`: `equals` and `in` take strings, numbers or booleans, `contains` and
//! `matches` strings, `gt` and `lt` numbers, `exists` nothing. And the agents' tags,
//! `conversation.tags` and `customer.tags` (lists): `contains` with a tag is true when the list
//! holds it (compared case-insensitively).
//!
//! Ops: `equals` (any type; strings exact and case-sensitive), `contains` (strings,
//! case-insensitive), `matches` (strings, regex), `in` (strings or integers, non-empty array),
//! `exists` (any type, no `value`), `gt` / `lt` (integers). A leaf on an absent field is false,
//! except `exists`, which is exactly "is present".

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;

/// At most this many rules per workstream.
pub const MAX_RULES: usize = 100;
/// Conditions may be nested at most this deep (the top-level condition is level 1).
pub const MAX_DEPTH: usize = 16;
/// Compiled-size limit of one `matches` regex, in bytes (also its lazy-DFA cache limit).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Every field a leaf condition may test, in documentation order.
pub const FIELDS: &[&str] = &[
    "message.type",
    "message.text",
    "source.type",
    "customer.language",
    "customer.linked",
    "customer.name",
    "postback.data",
    "event.type",
    "time.hour",
    "time.weekday",
    "time.businessHours",
];

/// Every op a leaf condition may use.
pub const OPS: &[&str] = &["equals", "contains", "matches", "in", "exists", "gt", "lt"];

// ---------------------------------------------------------------------------------------------
// Wire form
// ---------------------------------------------------------------------------------------------

/// One routing rule as stored and exchanged with the admin API.
///
/// The condition is kept as the JSON it was given (so it round-trips untouched); it is checked and
/// turned into a matcher by [`validate_rules`] / [`CompiledRules::compile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    pub name: String,
    /// Disabled rules are validated and stored but never match. Defaults to `true`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    pub condition: Value,
    pub result: RuleResult,
}

/// Where a matching conversation goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleResult {
    /// Queue id; must not be empty.
    pub queue: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
}

fn default_true() -> bool {
    true
}

/// What [`CompiledRules::evaluate`] returns for the winning rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatch {
    pub rule_id: String,
    pub queue: String,
    pub priority: i64,
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
}

/// The facts a rule can test. Every field is optional; the caller fills what it knows (for the
/// time fields: in the workstream's timezone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingContext {
    /// `context.<name>`: the conversation's context (from a bot's handoff).
    pub context: std::collections::BTreeMap<String, Value>,
    /// `customer.attributes.<name>`: the customer's attributes (set by an admin).
    pub attributes: std::collections::BTreeMap<String, Value>,
    /// `conversation.tags`: the agents' tags on the conversation.
    pub conversation_tags: Vec<String>,
    /// `customer.tags`: the agents' tags on the customer.
    pub customer_tags: Vec<String>,
    /// `message.type`: text, image, video, audio, file, location, sticker.
    pub message_type: Option<String>,
    /// `message.text`.
    pub message_text: Option<String>,
    /// `source.type`: user, group, room.
    pub source_type: Option<String>,
    /// `customer.language`, e.g. "ja", "en", "zh-Hant".
    pub customer_language: Option<String>,
    /// `customer.linked`.
    pub customer_linked: Option<bool>,
    /// `customer.name`.
    pub customer_name: Option<String>,
    /// `postback.data`.
    pub postback_data: Option<String>,
    /// `event.type`: message, follow, postback, …
    pub event_type: Option<String>,
    /// `time.hour`, 0–23.
    pub hour: Option<u8>,
    /// `time.weekday`, 1 = Monday … 7 = Sunday.
    pub weekday: Option<u8>,
    /// `time.businessHours`.
    pub business_hours: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Which rule an error is about: its position in the list and its id (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub index: usize,
    pub id: String,
}

/// A rule set that cannot be stored or compiled, with where and why.
///
/// `path` is relative to the rule (`"id"`, `"result.queue"`, `"condition.all[1].op"`); it is empty
/// for errors about the whole set (too many rules), where `rule` is `None` too. `Display` gives
/// one line fit for an HTTP 400 body:
/// `rules[3].condition.all[1].op (rule "vip-ja"): unknown op "startsWith"; expected one of …`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    rule: Option<RuleRef>,
    path: String,
    message: String,
}

impl RuleError {
    /// The rule the error is about, `None` for errors about the whole set.
    pub fn rule(&self) -> Option<&RuleRef> {
        self.rule.as_ref()
    }

    /// Location inside the rule, e.g. `condition.all[1].op`; empty for set-level errors.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(f, "rules[{}]", rule.index)?,
            None => f.write_str("rules")?,
        }
        if !self.path.is_empty() {
            write!(f, ".{}", self.path)?;
        }
        if let Some(rule) = &self.rule {
            if !rule.id.trim().is_empty() {
                write!(f, " (rule {:?})", rule.id)?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RuleError {}

/// An error inside one rule, before the rule reference is attached.
struct Fail {
    path: String,
    message: String,
}

fn fail(path: impl Into<String>, message: impl Into<String>) -> Fail {
    Fail {
        path: path.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------

/// Checks a rule set before it is stored: same checks as [`CompiledRules::compile`].
pub fn validate_rules(rules: &[RuleDef]) -> Result<(), RuleError> {
    CompiledRules::compile(rules).map(|_| ())
}

/// A validated rule set, ready to evaluate. Immutable, `Send + Sync`: share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct CompiledRules {
    rules: Vec<CompiledRule>,
}

#[derive(Debug)]
struct CompiledRule {
    condition: Node,
    result: RuleMatch,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledRules>();
};

impl Node {
    fn tests(&self, bag: Bag) -> bool {
        match self {
            Node::All(children) | Node::Any(children) => children.iter().any(|c| c.tests(bag)),
            Node::Not(child) => child.tests(bag),
            Node::Leaf(Leaf::Named(b, _, _)) => *b == bag,
            // The customer's tags are kept with their attributes: one read serves both.
            Node::Leaf(Leaf::HasTag(TagList::Customer, _)) => bag == Bag::Attributes,
            Node::Leaf(_) => false,
        }
    }
}

impl CompiledRules {
    /// Whether a rule tests `customer.attributes.<name>` or `customer.tags`: only then does
    /// routing read them.
    pub fn tests_customer_attributes(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.condition.tests(Bag::Attributes))
    }

    /// Validates every rule (disabled ones included) and compiles the enabled ones, in order.
    pub fn compile(rules: &[RuleDef]) -> Result<CompiledRules, RuleError> {
        if rules.len() > MAX_RULES {
            return Err(RuleError {
                rule: None,
                path: String::new(),
                message: format!("too many rules: {} (at most {MAX_RULES})", rules.len()),
            });
        }
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(rules.len());
        let mut compiled = Vec::with_capacity(rules.len());
        for (index, def) in rules.iter().enumerate() {
            let located = |f: Fail| RuleError {
                rule: Some(RuleRef {
                    index,
                    id: def.id.clone(),
                }),
                path: f.path,
                message: f.message,
            };
            if def.id.trim().is_empty() {
                return Err(located(fail("id", "rule id must not be empty")));
            }
            if let Some(first) = seen.insert(def.id.as_str(), index) {
                return Err(located(fail(
                    "id",
                    format!(
                        "duplicate rule id {:?} (already used by rules[{first}])",
                        def.id
                    ),
                )));
            }
            let condition = parse_node(&def.condition, "condition", 1).map_err(located)?;
            check_result(&def.result).map_err(located)?;
            if def.enabled {
                compiled.push(CompiledRule {
                    condition,
                    result: RuleMatch {
                        rule_id: def.id.clone(),
                        queue: def.result.queue.clone(),
                        priority: def.result.priority,
                        skills: def.result.skills.clone(),
                        bot: def.result.bot.clone(),
                    },
                });
            }
        }
        Ok(CompiledRules { rules: compiled })
    }

    /// The result of the first enabled rule whose condition holds; `None` means "default queue".
    pub fn evaluate(&self, ctx: &RoutingContext) -> Option<&RuleMatch> {
        self.rules
            .iter()
            .find(|rule| rule.condition.eval(ctx))
            .map(|rule| &rule.result)
    }

    /// Every enabled rule in order with whether its condition holds for `ctx` (evaluation does not
    /// stop at the first match): the "why" of a dry run. The first `true` is what
    /// [`CompiledRules::evaluate`] returns.
    pub fn trace<'a>(
        &'a self,
        ctx: &'a RoutingContext,
    ) -> impl Iterator<Item = (&'a str, bool)> + 'a {
        self.rules
            .iter()
            .map(move |rule| (rule.result.rule_id.as_str(), rule.condition.eval(ctx)))
    }

    /// Number of enabled (compiled) rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// `true` when no enabled rule exists (everything goes to the default queue).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn check_result(result: &RuleResult) -> Result<(), Fail> {
    if result.queue.trim().is_empty() {
        return Err(fail("result.queue", "queue id must not be empty"));
    }
    for (i, skill) in result.skills.iter().enumerate() {
        if skill.trim().is_empty() {
            return Err(fail(
                format!("result.skills[{i}]"),
                "skill must not be empty",
            ));
        }
    }
    if let Some(bot) = &result.bot {
        if bot.trim().is_empty() {
            return Err(fail(
                "result.bot",
                "bot id must not be empty (omit \"bot\" for no bot)",
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fields and ops
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MessageType,
    MessageText,
    SourceType,
    CustomerLanguage,
    CustomerLinked,
    CustomerName,
    PostbackData,
    EventType,
    TimeHour,
    TimeWeekday,
    TimeBusinessHours,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    Int,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "message.type" => Field::MessageType,
            "message.text" => Field::MessageText,
            "source.type" => Field::SourceType,
            "customer.language" => Field::CustomerLanguage,
            "customer.linked" => Field::CustomerLinked,
            "customer.name" => Field::CustomerName,
            "postback.data" => Field::PostbackData,
            "event.type" => Field::EventType,
            "time.hour" => Field::TimeHour,
            "time.weekday" => Field::TimeWeekday,
            "time.businessHours" => Field::TimeBusinessHours,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Field::MessageType => "message.type",
            Field::MessageText => "message.text",
            Field::SourceType => "source.type",
            Field::CustomerLanguage => "customer.language",
            Field::CustomerLinked => "customer.linked",
            Field::CustomerName => "customer.name",
            Field::PostbackData => "postback.data",
            Field::EventType => "event.type",
            Field::TimeHour => "time.hour",
            Field::TimeWeekday => "time.weekday",
            Field::TimeBusinessHours => "time.businessHours",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Field::CustomerLinked | Field::TimeBusinessHours => Kind::Bool,
            Field::TimeHour | Field::TimeWeekday => Kind::Int,
            _ => Kind::Str,
        }
    }

    /// Valid values of an integer field.
    fn int_range(self) -> (i64, i64) {
        match self {
            Field::TimeWeekday => (1, 7),
            _ => (0, 23),
        }
    }

    fn str_of(self, ctx: &RoutingContext) -> Option<&str> {
        match self {
            Field::MessageType => ctx.message_type.as_deref(),
            Field::MessageText => ctx.message_text.as_deref(),
            Field::SourceType => ctx.source_type.as_deref(),
            Field::CustomerLanguage => ctx.customer_language.as_deref(),
            Field::CustomerName => ctx.customer_name.as_deref(),
            Field::PostbackData => ctx.postback_data.as_deref(),
            Field::EventType => ctx.event_type.as_deref(),
            _ => None,
        }
    }

    fn bool_of(self, ctx: &RoutingContext) -> Option<bool> {
        match self {
            Field::CustomerLinked => ctx.customer_linked,
            Field::TimeBusinessHours => ctx.business_hours,
            _ => None,
        }
    }

    fn int_of(self, ctx: &RoutingContext) -> Option<i64> {
        match self {
            Field::TimeHour => ctx.hour.map(i64::from),
            Field::TimeWeekday => ctx.weekday.map(i64::from),
            _ => None,
        }
    }

    fn is_present(self, ctx: &RoutingContext) -> bool {
        match self.kind() {
            Kind::Str => self.str_of(ctx).is_some(),
            Kind::Bool => self.bool_of(ctx).is_some(),
            Kind::Int => self.int_of(ctx).is_some(),
        }
    }
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Str => "a string field",
            Kind::Bool => "a boolean field",
            Kind::Int => "an integer field",
        }
    }

    fn ops(self) -> &'static str {
        match self {
            Kind::Str => "equals, contains, matches, in, exists",
            Kind::Bool => "equals, exists",
            Kind::Int => "equals, in, exists, gt, lt",
        }
    }

    fn accepts(self, op: Op) -> bool {
        match self {
            Kind::Str => matches!(
                op,
                Op::Equals | Op::Contains | Op::Matches | Op::In | Op::Exists
            ),
            Kind::Bool => matches!(op, Op::Equals | Op::Exists),
            Kind::Int => matches!(op, Op::Equals | Op::In | Op::Exists | Op::Gt | Op::Lt),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equals,
    Contains,
    Matches,
    In,
    Exists,
    Gt,
    Lt,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "equals" => Op::Equals,
            "contains" => Op::Contains,
            "matches" => Op::Matches,
            "in" => Op::In,
            "exists" => Op::Exists,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled conditions
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Leaf(Leaf),
}

#[derive(Debug)]
enum Leaf {
    StrEquals(Field, String),
    StrIn(Field, Vec<String>),
    Contains(Field, Needle),
    Matches(Field, Regex),
    BoolEquals(Field, bool),
    IntEquals(Field, i64),
    IntIn(Field, Vec<i64>),
    Gt(Field, i64),
    Lt(Field, i64),
    Exists(Field),
    /// A named value of the context or the customer's attributes.
    Named(Bag, String, NamedTest),
    /// `conversation.tags` / `customer.tags` `contains` a tag (lowercased).
    HasTag(TagList, String),
}

/// Which tags a `contains` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TagList {
    Conversation,
    Customer,
}

impl TagList {
    fn of(field: &str) -> Option<TagList> {
        match field {
            "conversation.tags" => Some(TagList::Conversation),
            "customer.tags" => Some(TagList::Customer),
            _ => None,
        }
    }

    fn values(self, ctx: &RoutingContext) -> &[String] {
        match self {
            TagList::Conversation => &ctx.conversation_tags,
            TagList::Customer => &ctx.customer_tags,
        }
    }
}

/// Where a named field's value is: `context.<name>` or `customer.attributes.<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bag {
    Context,
    Attributes,
}

impl Bag {
    fn of(field: &str) -> Option<(Bag, &str)> {
        if let Some(name) = field.strip_prefix("context.") {
            return Some((Bag::Context, name));
        }
        field
            .strip_prefix("customer.attributes.")
            .map(|name| (Bag::Attributes, name))
    }

    fn values(self, ctx: &RoutingContext) -> &std::collections::BTreeMap<String, Value> {
        match self {
            Bag::Context => &ctx.context,
            Bag::Attributes => &ctx.attributes,
        }
    }
}

/// Whether `name` may name a context variable or a customer attribute: a letter, then up to 63
/// letters, digits or `_`.
pub fn is_value_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The test of a named field, typed by the value it holds.
#[derive(Debug)]
enum NamedTest {
    Exists,
    Equals(Value),
    In(Vec<Value>),
    Contains(Needle),
    Matches(Regex),
    Gt(f64),
    Lt(f64),
}

/// Whether two scalars are equal: numbers by value (1 and 1.0), others exactly.
fn same_scalar(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl NamedTest {
    fn holds(&self, value: Option<&Value>) -> bool {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return false;
        };
        match self {
            NamedTest::Exists => true,
            NamedTest::Equals(want) => same_scalar(value, want),
            NamedTest::In(wants) => wants.iter().any(|w| same_scalar(value, w)),
            NamedTest::Contains(needle) => value.as_str().is_some_and(|s| needle.is_in(s)),
            NamedTest::Matches(re) => value.as_str().is_some_and(|s| re.is_match(s)),
            NamedTest::Gt(limit) => value.as_f64().is_some_and(|x| x > *limit),
            NamedTest::Lt(limit) => value.as_f64().is_some_and(|x| x < *limit),
        }
    }
}

impl Node {
    fn eval(&self, ctx: &RoutingContext) -> bool {
        match self {
            Node::All(children) => children.iter().all(|c| c.eval(ctx)),
            Node::Any(children) => children.iter().any(|c| c.eval(ctx)),
            Node::Not(child) => !child.eval(ctx),
            Node::Leaf(leaf) => leaf.eval(ctx),
        }
    }
}

impl Leaf {
    fn eval(&self, ctx: &RoutingContext) -> bool {
        match self {
            Leaf::StrEquals(f, v) => f.str_of(ctx).is_some_and(|s| s == v),
            Leaf::StrIn(f, vs) => f.str_of(ctx).is_some_and(|s| vs.iter().any(|v| v == s)),
            Leaf::Contains(f, needle) => f.str_of(ctx).is_some_and(|s| needle.is_in(s)),
            Leaf::Matches(f, re) => f.str_of(ctx).is_some_and(|s| re.is_match(s)),
            Leaf::BoolEquals(f, v) => f.bool_of(ctx) == Some(*v),
            Leaf::IntEquals(f, v) => f.int_of(ctx) == Some(*v),
            Leaf::IntIn(f, vs) => f.int_of(ctx).is_some_and(|x| vs.contains(&x)),
            Leaf::Gt(f, v) => f.int_of(ctx).is_some_and(|x| x > *v),
            Leaf::Lt(f, v) => f.int_of(ctx).is_some_and(|x| x < *v),
            Leaf::Exists(f) => f.is_present(ctx),
            Leaf::Named(bag, name, test) => test.holds(bag.values(ctx).get(name)),
            Leaf::HasTag(list, tag) => list.values(ctx).iter().any(|t| t.to_lowercase() == *tag),
        }
    }
}

/// Lowercases one character for `contains`. Char-wise `to_lowercase`, plus final sigma folded to
/// sigma, so "ΟΔΥΣΣΕΥΣ" contains "οδυσσευς" whichever sigma the rule author typed.
fn fold_char(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|l| if l == 'ς' { 'σ' } else { l })
}

/// A `contains` needle, lowercased once at compile time.
#[derive(Debug)]
struct Needle {
    folded: String,
    ascii: bool,
}

impl Needle {
    fn new(raw: &str) -> Needle {
        let folded: String = raw.chars().flat_map(fold_char).collect();
        let ascii = folded.is_ascii();
        Needle { folded, ascii }
    }

    /// Whether the lowercased `haystack` contains the needle. Allocation-free: an ASCII haystack
    /// is compared byte-wise, any other is lowercased lazily from every start position.
    fn is_in(&self, haystack: &str) -> bool {
        let needle = self.folded.as_str();
        if needle.is_empty() {
            return true;
        }
        if haystack.is_ascii() {
            // ASCII only lowercases to ASCII, so a non-ASCII needle cannot occur in it.
            return self.ascii
                && haystack
                    .as_bytes()
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
        }
        for (i, c) in haystack.char_indices() {
            // A lowercase expansion may be several chars (İ → i̇); a match may start in any.
            for skip in 0..c.to_lowercase().len() {
                let mut folded = haystack
                    .get(i..)
                    .unwrap_or_default()
                    .chars()
                    .flat_map(fold_char)
                    .skip(skip);
                if needle.chars().all(|n| folded.next() == Some(n)) {
                    return true;
                }
            }
        }
        false
    }
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    #[cfg(test)]
    tests::REGEX_COMPILES.with(|n| n.set(n.get() + 1));
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::Syntax(text) => format!("invalid regex: {}", regex_summary(&text)),
            regex::Error::CompiledTooBig(limit) => {
                format!("regex is too large once compiled (limit {limit} bytes)")
            }
            other => format!("invalid regex: {}", regex_summary(&other.to_string())),
        })
}

/// The regex crate's syntax errors span several lines (pattern, caret, `error: …`); keep the
/// `error:` line for a one-line message.
fn regex_summary(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error:"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

// ---------------------------------------------------------------------------------------------
// Parsing the condition JSON
// ---------------------------------------------------------------------------------------------

const SHAPES: &str = "a condition is {\"all\": [...]}, {\"any\": [...]}, {\"not\": {...}} \
                      or {\"field\": ..., \"op\": ..., \"value\": ...}";

/// `path` + object key, as `.key` or, for odd keys, `["key"]`.
fn key_path(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key:?}]")
    }
}

/// A short description of a JSON value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            if s.chars().count() > 40 {
                let head: String = s.chars().take(40).collect();
                format!("string {head:?}…")
            } else {
                format!("string {s:?}")
            }
        }
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn parse_node(v: &Value, path: &str, depth: usize) -> Result<Node, Fail> {
    if depth > MAX_DEPTH {
        return Err(fail(
            path,
            format!("conditions are nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let Value::Object(obj) = v else {
        return Err(fail(
            path,
            format!("expected a condition object, got {}; {SHAPES}", describe(v)),
        ));
    };
    if obj.is_empty() {
        return Err(fail(path, format!("empty condition object; {SHAPES}")));
    }
    let combinator = obj
        .keys()
        .any(|k| matches!(k.as_str(), "all" | "any" | "not"));
    if !combinator {
        return parse_leaf(obj, path).map(Node::Leaf);
    }
    if obj.len() != 1 {
        let keys: Vec<String> = obj.keys().map(|k| format!("{k:?}")).collect();
        return Err(fail(
            path,
            format!(
                "a condition object with \"all\", \"any\" or \"not\" must have no other key; \
                 found {}",
                keys.join(", ")
            ),
        ));
    }
    let Some((key, inner)) = obj.iter().next() else {
        return Err(fail(path, format!("empty condition object; {SHAPES}")));
    };
    let here = key_path(path, key);
    match key.as_str() {
        "not" => Ok(Node::Not(Box::new(parse_node(inner, &here, depth + 1)?))),
        "all" | "any" => {
            let Value::Array(items) = inner else {
                return Err(fail(
                    here,
                    format!("expected an array of conditions, got {}", describe(inner)),
                ));
            };
            if items.is_empty() {
                return Err(fail(
                    here,
                    format!("\"{key}\" must contain at least one condition"),
                ));
            }
            let children = items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_node(item, &format!("{here}[{i}]"), depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if key == "all" {
                Node::All(children)
            } else {
                Node::Any(children)
            })
        }
        _ => Err(fail(
            path,
            format!("unknown condition key {key:?}; {SHAPES}"),
        )),
    }
}

fn parse_leaf(obj: &Map<String, Value>, path: &str) -> Result<Leaf, Fail> {
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "field" | "op" | "value"))
    {
        return Err(fail(
            key_path(path, key),
            format!("unknown key {key:?}; {SHAPES}"),
        ));
    }

    let field_path = format!("{path}.field");
    let field_name = match obj.get("field") {
        None => return Err(fail(field_path, "missing \"field\"")),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(fail(
                field_path,
                format!("expected a field name string, got {}", describe(other)),
            ))
        }
    };
    if let Some((bag, name)) = Bag::of(field_name) {
        if !is_value_name(name) {
            return Err(fail(
                field_path,
                format!(
                    "{field_name:?}: the name after the prefix must be a letter then up to 63 \
                     letters, digits or _"
                ),
            ));
        }
        return parse_named(obj, path, bag, name);
    }
    if let Some(list) = TagList::of(field_name) {
        return parse_tag(obj, path, list, field_name);
    }
    let Some(field) = Field::parse(field_name) else {
        return Err(fail(
            field_path,
            format!(
                "unknown field {field_name:?}; expected one of {}, context.<name>, \
                 customer.attributes.<name>, conversation.tags or customer.tags",
                FIELDS.join(", ")
            ),
        ));
    };

    let op_path = format!("{path}.op");
    let op_name = match obj.get("op") {
        None => return Err(fail(op_path, "missing \"op\"")),
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(fail(
                op_path,
                format!("expected an op name string, got {}", describe(other)),
            ))
        }
    };
    let Some(op) = Op::parse(op_name) else {
        return Err(fail(
            op_path,
            format!("unknown op {op_name:?}; expected one of {}", OPS.join(", ")),
        ));
    };
    let kind = field.kind();
    if !kind.accepts(op) {
        return Err(fail(
            op_path,
            format!(
                "op {op_name:?} does not apply to {:?} ({}); use one of {}",
                field.name(),
                kind.describe(),
                kind.ops()
            ),
        ));
    }

    let value_path = format!("{path}.value");
    let value = obj.get("value");
    if op == Op::Exists {
        return match value {
            None => Ok(Leaf::Exists(field)),
            Some(_) => Err(fail(value_path, "op \"exists\" takes no \"value\"")),
        };
    }
    let Some(value) = value else {
        return Err(fail(
            value_path,
            format!("missing \"value\" for op {op_name:?}"),
        ));
    };

    match (kind, op) {
        (Kind::Str, Op::Equals) => Ok(Leaf::StrEquals(field, string_value(value, &value_path)?)),
        (Kind::Str, Op::Contains) => {
            let raw = string_value(value, &value_path)?;
            Ok(Leaf::Contains(field, Needle::new(&raw)))
        }
        (Kind::Str, Op::Matches) => {
            let raw = string_value(value, &value_path)?;
            let re = compile_regex(&raw).map_err(|m| fail(value_path.as_str(), m))?;
            Ok(Leaf::Matches(field, re))
        }
        (Kind::Str, Op::In) => {
            let items = non_empty_array(value, &value_path, "strings")?;
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| string_value(item, &format!("{value_path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Leaf::StrIn(field, values))
        }
        (Kind::Bool, Op::Equals) => match value {
            Value::Bool(b) => Ok(Leaf::BoolEquals(field, *b)),
            other => Err(fail(
                value_path,
                format!(
                    "expected a boolean for {:?}, got {}",
                    field.name(),
                    describe(other)
                ),
            )),
        },
        (Kind::Int, Op::Equals) => Ok(Leaf::IntEquals(
            field,
            int_value(field, value, &value_path)?,
        )),
        (Kind::Int, Op::Gt) => Ok(Leaf::Gt(field, int_value(field, value, &value_path)?)),
        (Kind::Int, Op::Lt) => Ok(Leaf::Lt(field, int_value(field, value, &value_path)?)),
        (Kind::Int, Op::In) => {
            let items = non_empty_array(value, &value_path, "integers")?;
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| int_value(field, item, &format!("{value_path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Leaf::IntIn(field, values))
        }
        // `Kind::accepts` ruled every other pair out above.
        _ => Err(fail(
            op_path,
            format!(
                "op {op_name:?} does not apply to {:?}; use one of {}",
                field.name(),
                kind.ops()
            ),
        )),
    }
}

/// A leaf on `conversation.tags` or `customer.tags`: `contains` a tag.
fn parse_tag(
    obj: &Map<String, Value>,
    path: &str,
    list: TagList,
    field_name: &str,
) -> Result<Leaf, Fail> {
    let op_path = format!("{path}.op");
    if obj.get("op").and_then(Value::as_str) != Some("contains") {
        return Err(fail(
            op_path,
            format!("{field_name:?} is a list of tags: its op is \"contains\""),
        ));
    }
    let value_path = format!("{path}.value");
    let raw = match obj.get("value") {
        Some(Value::String(s)) => s,
        _ => return Err(fail(value_path, "expected a tag (a string)")),
    };
    let tag = crate::tags::normalize(raw).map_err(|m| fail(value_path.as_str(), m))?;
    Ok(Leaf::HasTag(list, tag.to_lowercase()))
}

/// A leaf on `context.<name>` or `customer.attributes.<name>`.
fn parse_named(obj: &Map<String, Value>, path: &str, bag: Bag, name: &str) -> Result<Leaf, Fail> {
    let op_path = format!("{path}.op");
    let op = match obj.get("op") {
        None => return Err(fail(op_path, "missing \"op\"")),
        Some(Value::String(s)) => Op::parse(s).ok_or_else(|| {
            fail(
                op_path.as_str(),
                format!("unknown op {s:?}; expected one of {}", OPS.join(", ")),
            )
        })?,
        Some(other) => {
            return Err(fail(
                op_path,
                format!("expected an op name string, got {}", describe(other)),
            ))
        }
    };
    let value_path = format!("{path}.value");
    let value = obj.get("value");
    if op == Op::Exists {
        return match value {
            None => Ok(Leaf::Named(bag, name.to_owned(), NamedTest::Exists)),
            Some(_) => Err(fail(value_path, "op \"exists\" takes no \"value\"")),
        };
    }
    let Some(value) = value else {
        return Err(fail(value_path, "missing \"value\""));
    };
    let scalar = |v: &Value, path: &str| -> Result<Value, Fail> {
        match v {
            Value::String(_) | Value::Bool(_) => Ok(v.clone()),
            Value::Number(n) if n.as_f64().is_some() => Ok(v.clone()),
            other => Err(fail(
                path,
                format!(
                    "expected a string, number or boolean, got {}",
                    describe(other)
                ),
            )),
        }
    };
    let number = |v: &Value| -> Result<f64, Fail> {
        v.as_f64().ok_or_else(|| {
            fail(
                value_path.as_str(),
                format!("expected a number, got {}", describe(v)),
            )
        })
    };
    let test = match op {
        Op::Equals => NamedTest::Equals(scalar(value, &value_path)?),
        Op::In => {
            let items = non_empty_array(value, &value_path, "strings, numbers or booleans")?;
            NamedTest::In(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar(item, &format!("{value_path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        }
        Op::Contains => NamedTest::Contains(Needle::new(&string_value(value, &value_path)?)),
        Op::Matches => {
            let raw = string_value(value, &value_path)?;
            NamedTest::Matches(compile_regex(&raw).map_err(|m| fail(value_path.as_str(), m))?)
        }
        Op::Gt => NamedTest::Gt(number(value)?),
        Op::Lt => NamedTest::Lt(number(value)?),
        Op::Exists => NamedTest::Exists,
    };
    Ok(Leaf::Named(bag, name.to_owned(), test))
}

fn string_value(v: &Value, path: &str) -> Result<String, Fail> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(fail(
            path,
            format!("expected a string, got {}", describe(other)),
        )),
    }
}

fn non_empty_array<'v>(v: &'v Value, path: &str, of: &str) -> Result<&'v [Value], Fail> {
    match v {
        Value::Array(items) if items.is_empty() => Err(fail(
            path,
            format!("op \"in\" needs a non-empty array of {of}"),
        )),
        Value::Array(items) => Ok(items),
        other => Err(fail(
            path,
            format!(
                "op \"in\" needs a non-empty array of {of}, got {}",
                describe(other)
            ),
        )),
    }
}

fn int_value(field: Field, v: &Value, path: &str) -> Result<i64, Fail> {
    let (min, max) = field.int_range();
    let n = match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(fail(
            path,
            format!("{:?} ranges from {min} to {max}, got {n}", field.name()),
        )),
        None => Err(fail(
            path,
            format!(
                "expected an integer from {min} to {max} for {:?}, got {}",
                field.name(),
                describe(v)
            ),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::cell::Cell;

    thread_local! {
        /// Regexes compiled on this thread (tests run one per thread).
        pub(super) static REGEX_COMPILES: Cell<usize> = const { Cell::new(0) };
    }

    fn rule(id: &str, condition: Value, queue: &str) -> RuleDef {
        RuleDef {
            id: id.to_owned(),
            name: format!("rule {id}"),
            enabled: true,
            condition,
            result: RuleResult {
                queue: queue.to_owned(),
                priority: 0,
                skills: vec![],
                bot: None,
            },
        }
    }

    fn leaf(field: &str, op: &str, value: Value) -> Value {
        json!({"field": field, "op": op, "value": value})
    }

    fn exists(field: &str) -> Value {
        json!({"field": field, "op": "exists"})
    }

    fn full_ctx() -> RoutingContext {
        RoutingContext {
            conversation_tags: vec!["Returns".into()],
            customer_tags: vec!["VIP".into(), "返品".into()],
            message_type: Some("text".into()),
            message_text: Some("Hello ÄBC こんにちは, I want a Refund".into()),
            source_type: Some("user".into()),
            customer_language: Some("zh-Hant".into()),
            customer_linked: Some(true),
            customer_name: Some("山田 Taro".into()),
            postback_data: Some("action=buy&item=42".into()),
            event_type: Some("message".into()),
            hour: Some(10),
            weekday: Some(3),
            business_hours: Some(true),
            context: [
                ("orderId".to_owned(), json!("A-17")),
                ("vip".to_owned(), json!(true)),
                ("total".to_owned(), json!(120.5)),
            ]
            .into_iter()
            .collect(),
            attributes: [
                ("tier".to_owned(), json!("gold")),
                ("visits".to_owned(), json!(3)),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn context_and_customer_attributes_are_tested_by_the_value_they_hold() {
        let ctx = full_ctx();
        for (condition, want) in [
            (leaf("context.orderId", "equals", json!("A-17")), true),
            (leaf("context.orderId", "equals", json!("a-17")), false),
            (leaf("context.vip", "equals", json!(true)), true),
            (leaf("context.vip", "equals", json!("true")), false),
            (leaf("context.total", "gt", json!(100)), true),
            (leaf("context.total", "lt", json!(100)), false),
            (leaf("context.orderId", "contains", json!("a-")), true),
            (leaf("context.orderId", "matches", json!("^A-\\d+$")), true),
            (leaf("context.orderId", "in", json!(["B-1", "A-17"])), true),
            (exists("context.vip"), true),
            (exists("context.missing"), false),
            (leaf("context.missing", "equals", json!("x")), false),
            // A number is not a string.
            (leaf("context.total", "contains", json!("120")), false),
            (
                leaf("customer.attributes.tier", "equals", json!("gold")),
                true,
            ),
            (
                leaf("customer.attributes.visits", "in", json!([1, 3])),
                true,
            ),
            (
                leaf("customer.attributes.visits", "equals", json!(3.0)),
                true,
            ),
            (exists("customer.attributes.tier"), true),
            (exists("customer.attributes.missing"), false),
        ] {
            assert_eq!(holds(condition.clone(), &ctx), want, "{condition}");
        }
        // Only rules that test attributes need them read.
        let on_attributes =
            CompiledRules::compile(&[rule("r", exists("customer.attributes.tier"), "q")]).unwrap();
        assert!(on_attributes.tests_customer_attributes());
        let on_context = CompiledRules::compile(&[rule("r", exists("context.vip"), "q")]).unwrap();
        assert!(!on_context.tests_customer_attributes());
        // Names and values are checked when stored.
        for (condition, path) in [
            (exists("context."), "condition.field"),
            (exists("context.9lives"), "condition.field"),
            (exists("customer.attributes.a-b"), "condition.field"),
            (leaf("context.x", "gt", json!("1")), "condition.value"),
            (leaf("context.x", "equals", json!([1])), "condition.value"),
            (leaf("context.x", "in", json!([])), "condition.value"),
            (leaf("context.x", "contains", json!(1)), "condition.value"),
            (leaf("context.x", "sometimes", json!(1)), "condition.op"),
        ] {
            let e = CompiledRules::compile(&[rule("r", condition.clone(), "q")]).unwrap_err();
            assert_eq!(e.path, path, "{condition}: {e}");
        }
    }

    fn holds(condition: Value, ctx: &RoutingContext) -> bool {
        let compiled = match CompiledRules::compile(&[rule("r", condition.clone(), "q")]) {
            Ok(c) => c,
            Err(e) => panic!("{condition} should compile: {e}"),
        };
        compiled.evaluate(ctx).is_some()
    }

    fn error_of(condition: Value) -> RuleError {
        match CompiledRules::compile(&[rule("r", condition.clone(), "q")]) {
            Ok(_) => panic!("{condition} should not compile"),
            Err(e) => e,
        }
    }

    // -- ops on every field --------------------------------------------------------------------

    /// Every string field × every string op, true and false, present and absent.
    #[test]
    fn string_ops_on_every_string_field() {
        let ctx = full_ctx();
        let string_fields: [(&str, Option<String>); 7] = [
            ("message.type", ctx.message_type.clone()),
            ("message.text", ctx.message_text.clone()),
            ("source.type", ctx.source_type.clone()),
            ("customer.language", ctx.customer_language.clone()),
            ("customer.name", ctx.customer_name.clone()),
            ("postback.data", ctx.postback_data.clone()),
            ("event.type", ctx.event_type.clone()),
        ];
        for (field, value) in string_fields {
            let value = value.unwrap_or_default();
            let upper = value.to_uppercase();
            let middle: String = value.chars().skip(1).take(3).collect();
            let cases: Vec<(Value, bool)> = vec![
                (leaf(field, "equals", json!(value)), true),
                (leaf(field, "equals", json!(format!("{value}x"))), false),
                (leaf(field, "equals", json!(upper)), upper == value),
                (leaf(field, "contains", json!(middle.to_uppercase())), true),
                (leaf(field, "contains", json!(upper)), true),
                (leaf(field, "contains", json!("zzz-not-there")), false),
                (
                    leaf(
                        field,
                        "matches",
                        json!(format!("^{}$", regex::escape(&value))),
                    ),
                    true,
                ),
                (leaf(field, "matches", json!("^zzz")), false),
                (leaf(field, "in", json!(["other", value])), true),
                (
                    leaf(field, "in", json!(["other", format!("{value} ")])),
                    false,
                ),
                (exists(field), true),
            ];
            for (condition, expected) in cases {
                assert_eq!(holds(condition.clone(), &ctx), expected, "{condition}");
                // Absent field: every leaf is false, `exists` included.
                assert!(
                    !holds(condition.clone(), &RoutingContext::default()),
                    "{condition}"
                );
                // …and `not` of it is true.
                assert!(holds(json!({"not": condition}), &RoutingContext::default()));
            }
        }
    }

    #[test]
    fn boolean_ops_on_every_boolean_field() {
        for field in ["customer.linked", "time.businessHours"] {
            let mut ctx = RoutingContext::default();
            for value in [true, false] {
                match field {
                    "customer.linked" => ctx.customer_linked = Some(value),
                    _ => ctx.business_hours = Some(value),
                }
                assert!(holds(leaf(field, "equals", json!(value)), &ctx), "{field}");
                assert!(
                    !holds(leaf(field, "equals", json!(!value)), &ctx),
                    "{field}"
                );
                assert!(holds(exists(field), &ctx), "{field}");
            }
            let absent = RoutingContext::default();
            assert!(!holds(leaf(field, "equals", json!(true)), &absent));
            assert!(!holds(leaf(field, "equals", json!(false)), &absent));
            assert!(!holds(exists(field), &absent));
            assert!(holds(json!({"not": exists(field)}), &absent));
        }
    }

    #[test]
    fn integer_ops_on_every_integer_field() {
        // (field, ctx value, condition, expected)
        let cases: Vec<(&str, u8, Value, bool)> = vec![
            (
                "time.hour",
                10,
                leaf("time.hour", "equals", json!(10)),
                true,
            ),
            (
                "time.hour",
                10,
                leaf("time.hour", "equals", json!(11)),
                false,
            ),
            (
                "time.hour",
                10,
                leaf("time.hour", "in", json!([9, 10, 11])),
                true,
            ),
            (
                "time.hour",
                10,
                leaf("time.hour", "in", json!([0, 23])),
                false,
            ),
            ("time.hour", 10, leaf("time.hour", "gt", json!(9)), true),
            ("time.hour", 10, leaf("time.hour", "gt", json!(10)), false),
            ("time.hour", 10, leaf("time.hour", "lt", json!(11)), true),
            ("time.hour", 10, leaf("time.hour", "lt", json!(10)), false),
            ("time.hour", 0, leaf("time.hour", "lt", json!(1)), true),
            ("time.hour", 23, leaf("time.hour", "gt", json!(22)), true),
            ("time.hour", 0, exists("time.hour"), true),
            (
                "time.weekday",
                6,
                leaf("time.weekday", "equals", json!(6)),
                true,
            ),
            (
                "time.weekday",
                6,
                leaf("time.weekday", "equals", json!(7)),
                false,
            ),
            (
                "time.weekday",
                6,
                leaf("time.weekday", "in", json!([6, 7])),
                true,
            ),
            (
                "time.weekday",
                3,
                leaf("time.weekday", "in", json!([6, 7])),
                false,
            ),
            (
                "time.weekday",
                6,
                leaf("time.weekday", "gt", json!(5)),
                true,
            ),
            (
                "time.weekday",
                5,
                leaf("time.weekday", "gt", json!(5)),
                false,
            ),
            (
                "time.weekday",
                1,
                leaf("time.weekday", "lt", json!(2)),
                true,
            ),
            (
                "time.weekday",
                2,
                leaf("time.weekday", "lt", json!(2)),
                false,
            ),
            ("time.weekday", 7, exists("time.weekday"), true),
        ];
        for (field, value, condition, expected) in cases {
            let ctx = match field {
                "time.hour" => RoutingContext {
                    hour: Some(value),
                    ..Default::default()
                },
                _ => RoutingContext {
                    weekday: Some(value),
                    ..Default::default()
                },
            };
            assert_eq!(
                holds(condition.clone(), &ctx),
                expected,
                "{condition} @ {value}"
            );
            assert!(
                !holds(condition.clone(), &RoutingContext::default()),
                "{condition}"
            );
        }
    }

    #[test]
    fn equals_and_in_on_strings_are_exact_and_case_sensitive() {
        let ctx = RoutingContext {
            customer_language: Some("ja".into()),
            ..Default::default()
        };
        assert!(holds(
            leaf("customer.language", "equals", json!("ja")),
            &ctx
        ));
        assert!(!holds(
            leaf("customer.language", "equals", json!("JA")),
            &ctx
        ));
        assert!(!holds(
            leaf("customer.language", "equals", json!("ja ")),
            &ctx
        ));
        assert!(!holds(
            leaf("customer.language", "in", json!(["JA", "en"])),
            &ctx
        ));
        assert!(!holds(leaf("customer.language", "in", json!(["j"])), &ctx));
    }

    #[test]
    fn exists_tests_presence_even_of_empty_string() {
        let ctx = RoutingContext {
            message_text: Some(String::new()),
            ..Default::default()
        };
        assert!(holds(exists("message.text"), &ctx));
        assert!(!holds(exists("postback.data"), &ctx));
        assert!(holds(leaf("message.text", "contains", json!("")), &ctx));
        assert!(!holds(leaf("postback.data", "contains", json!("")), &ctx));
    }

    #[test]
    fn matches_is_a_search_and_case_sensitive_unless_asked() {
        let ctx = RoutingContext {
            message_text: Some("注文番号: AB-1234 を確認".into()),
            ..Default::default()
        };
        assert!(holds(
            leaf("message.text", "matches", json!(r"[A-Z]{2}-\d{4}")),
            &ctx
        ));
        assert!(!holds(
            leaf("message.text", "matches", json!(r"ab-\d{4}")),
            &ctx
        ));
        assert!(holds(
            leaf("message.text", "matches", json!(r"(?i)ab-\d{4}")),
            &ctx
        ));
        assert!(holds(
            leaf("message.text", "matches", json!(r"^注文")),
            &ctx
        ));
        assert!(!holds(
            leaf("message.text", "matches", json!(r"^確認")),
            &ctx
        ));
    }

    // -- contains, Unicode --------------------------------------------------------------------

    #[test]
    fn contains_is_unicode_case_insensitive() {
        let cases: &[(&str, &str, bool)] = &[
            ("ÄBC", "äb", true),
            ("äbc", "ÄB", true),
            ("ÄBC", "ab", false),
            ("Hello WORLD", "o wor", true),
            ("Hello", "hellO!", false),
            ("abc", "ä", false),
            ("ご注文のキャンセルをお願いします", "キャンセル", true),
            ("注文しました", "キャンセル", false),
            ("ＬＩＮＥ公式アカウント", "ｌｉｎｅ", true),
            ("สวัสดีครับ ต้องการสอบถามราคา", "สอบถาม", true),
            ("ขอบคุณครับ", "สอบถาม", false),
            ("I ❤️ LINE 🎉🎉", "❤️ line", true),
            ("Party 🎉", "🎉", true),
            ("😀", "😁", false),
            ("ΟΔΥΣΣΕΥΣ", "οδυσσευς", true),
            ("οδυσσευς", "ΟΔΥΣΣΕΥΣ", true),
            ("Ünïcödé MIXED ascii", "mixed ASCII", true),
            ("İstanbul", "stanbul", true),
            ("x", "", true),
        ];
        for &(haystack, needle, expected) in cases {
            let ctx = RoutingContext {
                message_text: Some(haystack.into()),
                ..Default::default()
            };
            assert_eq!(
                holds(leaf("message.text", "contains", json!(needle)), &ctx),
                expected,
                "{haystack:?} contains {needle:?}"
            );
        }
    }

    fn fold_str(s: &str) -> String {
        s.chars().flat_map(fold_char).collect()
    }

    proptest! {
        /// The allocation-free matcher agrees with "lowercase both, then `str::contains`".
        #[test]
        fn needle_matches_reference(hay in "[aAäÄiİIıσΣςkK\u{212A}ßẞ🎉あア ]{0,12}",
                                    needle in "[aAäÄiİIıσΣςkK\u{212A}ßẞ🎉あア \u{307}]{0,4}") {
            let expected = fold_str(&hay).contains(&fold_str(&needle));
            prop_assert_eq!(Needle::new(&needle).is_in(&hay), expected);
        }

        #[test]
        fn needle_matches_reference_any_text(hay in "\\PC{0,16}", needle in "\\PC{0,3}") {
            let expected = fold_str(&hay).contains(&fold_str(&needle));
            prop_assert_eq!(Needle::new(&needle).is_in(&hay), expected);
        }
    }

    // -- combinators -----------------------------------------------------------------------------

    #[test]
    fn all_any_not_and_nesting() {
        let ctx = full_ctx();
        let t = leaf("source.type", "equals", json!("user"));
        let f = leaf("source.type", "equals", json!("group"));
        let cases: Vec<(Value, bool)> = vec![
            (json!({"all": [t]}), true),
            (json!({"all": [t, t]}), true),
            (json!({"all": [t, f]}), false),
            (json!({"all": [f, t]}), false),
            (json!({"any": [f]}), false),
            (json!({"any": [f, t]}), true),
            (json!({"any": [f, f]}), false),
            (json!({"not": t}), false),
            (json!({"not": f}), true),
            (json!({"not": {"not": t}}), true),
            (json!({"all": [t, {"any": [f, {"not": f}]}]}), true),
            (
                json!({"any": [{"all": [t, f]}, {"not": {"any": [t]}}]}),
                false,
            ),
            // VIP Japanese customers who wrote about a refund during business hours.
            (
                json!({"all": [
                    {"any": [
                        leaf("customer.language", "in", json!(["ja", "zh-Hant"])),
                        leaf("customer.name", "contains", json!("山田")),
                    ]},
                    leaf("message.text", "contains", json!("REFUND")),
                    leaf("time.businessHours", "equals", json!(true)),
                    {"not": leaf("time.weekday", "gt", json!(5))},
                ]}),
                true,
            ),
        ];
        for (condition, expected) in cases {
            assert_eq!(holds(condition.clone(), &ctx), expected, "{condition}");
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine() {
        let mut condition = exists("message.text");
        for _ in 1..MAX_DEPTH {
            condition = json!({"not": condition});
        }
        // 15 `not`s around a leaf: depth 16, an odd number of negations.
        let ctx = full_ctx();
        assert!(!holds(condition.clone(), &ctx));
        let too_deep = json!({"all": [condition]});
        let e = error_of(too_deep);
        assert!(e.message().contains("nested deeper than 16"), "{e}");
        let expected_path = format!("condition.all[0]{}", ".not".repeat(MAX_DEPTH - 1));
        assert_eq!(e.path(), expected_path);
    }

    #[test]
    fn very_deep_conditions_are_refused_without_overflowing() {
        let mut condition = exists("message.text");
        for _ in 0..500 {
            condition = json!({"any": [condition]});
        }
        let e = error_of(condition);
        assert!(e.message().contains("nested deeper"), "{e}");
    }

    // -- rule list semantics ---------------------------------------------------------------------

    #[test]
    fn first_match_wins_disabled_skipped_no_match_is_none() {
        let mut disabled = rule("disabled", exists("message.text"), "q-disabled");
        disabled.enabled = false;
        let mut vip = rule(
            "vip",
            leaf("customer.linked", "equals", json!(true)),
            "q-vip",
        );
        vip.result.priority = 10;
        vip.result.skills = vec!["vip".into(), "ja".into()];
        vip.result.bot = Some("bot-1".into());
        let rules = vec![
            disabled,
            rule(
                "never",
                leaf("event.type", "equals", json!("follow")),
                "q-never",
            ),
            vip,
            rule("any-text", exists("message.text"), "q-text"),
        ];
        let compiled = match CompiledRules::compile(&rules) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(compiled.len(), 3);
        assert!(!compiled.is_empty());

        let hit = compiled.evaluate(&full_ctx());
        assert_eq!(
            hit,
            Some(&RuleMatch {
                rule_id: "vip".into(),
                queue: "q-vip".into(),
                priority: 10,
                skills: vec!["vip".into(), "ja".into()],
                bot: Some("bot-1".into()),
            })
        );

        let unlinked = RoutingContext {
            customer_linked: Some(false),
            message_text: Some("hi".into()),
            ..Default::default()
        };
        assert_eq!(
            compiled.evaluate(&unlinked).map(|m| m.rule_id.as_str()),
            Some("any-text")
        );
        assert_eq!(compiled.evaluate(&RoutingContext::default()), None);

        let empty = match CompiledRules::compile(&[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert!(empty.is_empty());
        assert_eq!(empty.evaluate(&full_ctx()), None);
        assert_eq!(CompiledRules::default().evaluate(&full_ctx()), None);
    }

    #[test]
    fn disabled_rules_are_still_validated() {
        let mut bad = rule("bad", leaf("message.text", "gt", json!(1)), "q");
        bad.enabled = false;
        let e = match validate_rules(&[bad]) {
            Ok(()) => panic!("disabled rule with a bad condition passed"),
            Err(e) => e,
        };
        assert_eq!(e.path(), "condition.op");
    }

    #[test]
    fn regex_is_compiled_once_not_per_evaluation() {
        REGEX_COMPILES.with(|n| n.set(0));
        let rules = vec![
            rule(
                "a",
                leaf("message.text", "matches", json!(r"(?i)\border\s*#?\d+")),
                "q-order",
            ),
            rule(
                "b",
                leaf("postback.data", "matches", json!(r"^action=(buy|sell)")),
                "q-pb",
            ),
        ];
        let compiled = match CompiledRules::compile(&rules) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(REGEX_COMPILES.with(Cell::get), 2);
        let mut ctx = RoutingContext::default();
        for i in 0..5_000 {
            ctx.message_text = Some(format!("about ORDER #{i}"));
            assert_eq!(
                compiled.evaluate(&ctx).map(|m| m.queue.as_str()),
                Some("q-order")
            );
        }
        ctx.message_text = Some("nothing".into());
        ctx.postback_data = Some("action=sell&x=1".into());
        for _ in 0..1_000 {
            assert_eq!(
                compiled.evaluate(&ctx).map(|m| m.queue.as_str()),
                Some("q-pb")
            );
        }
        assert_eq!(
            REGEX_COMPILES.with(Cell::get),
            2,
            "evaluate compiled a regex"
        );

        // An invalid regex fails at compile time, not at evaluation.
        let e = error_of(leaf("message.text", "matches", json!("(unclosed")));
        assert_eq!(e.path(), "condition.value");
        assert!(e.message().starts_with("invalid regex"), "{e}");
        assert!(!e.message().contains('\n'), "{e:?}");
    }

    #[test]
    fn compiled_rules_are_shareable_across_threads() {
        let rules = vec![rule(
            "a",
            leaf("message.text", "matches", json!("^hi")),
            "q",
        )];
        let compiled = match CompiledRules::compile(&rules) {
            Ok(c) => std::sync::Arc::new(c),
            Err(e) => panic!("{e}"),
        };
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let compiled = compiled.clone();
                std::thread::spawn(move || {
                    let ctx = RoutingContext {
                        message_text: Some("hi there".into()),
                        ..Default::default()
                    };
                    (0..100).all(|_| compiled.evaluate(&ctx).is_some())
                })
            })
            .collect();
        for h in handles {
            assert!(matches!(h.join(), Ok(true)));
        }
    }

    // -- validation errors -----------------------------------------------------------------------

    #[test]
    fn condition_errors_name_where() {
        // (condition, path, message fragment)
        let cases: Vec<(Value, &str, &str)> = vec![
            // unknown field / op
            (leaf("message.body", "equals", json!("x")), "condition.field", "unknown field \"message.body\"; expected one of message.type,"),
            (
                leaf("message.text", "startsWith", json!("x")),
                "condition.op",
                "unknown op \"startsWith\"; expected one of equals, contains, matches, in, exists, gt, lt",
            ),
            (json!({"op": "equals", "value": "x"}), "condition.field", "missing \"field\""),
            (json!({"field": 3, "op": "equals", "value": "x"}), "condition.field", "expected a field name string, got number 3"),
            (json!({"field": "message.text", "value": "x"}), "condition.op", "missing \"op\""),
            (json!({"field": "message.text", "op": null, "value": "x"}), "condition.op", "expected an op name string, got null"),
            // op not applicable to the field's type
            (leaf("message.text", "gt", json!(1)), "condition.op", "op \"gt\" does not apply to \"message.text\" (a string field)"),
            (leaf("message.text", "lt", json!(1)), "condition.op", "does not apply"),
            (leaf("customer.linked", "contains", json!("t")), "condition.op", "op \"contains\" does not apply to \"customer.linked\" (a boolean field); use one of equals, exists"),
            (leaf("customer.linked", "in", json!([true])), "condition.op", "does not apply"),
            (leaf("time.businessHours", "gt", json!(1)), "condition.op", "does not apply"),
            (leaf("time.hour", "matches", json!("1")), "condition.op", "(an integer field); use one of equals, in, exists, gt, lt"),
            (leaf("time.weekday", "contains", json!("1")), "condition.op", "does not apply"),
            // wrong value type
            (leaf("message.text", "equals", json!(1)), "condition.value", "expected a string, got number 1"),
            (leaf("message.text", "contains", json!(["a"])), "condition.value", "expected a string, got an array"),
            (leaf("message.text", "matches", json!(true)), "condition.value", "expected a string, got boolean true"),
            (leaf("customer.linked", "equals", json!("true")), "condition.value", "expected a boolean for \"customer.linked\", got string \"true\""),
            (leaf("time.hour", "equals", json!("9")), "condition.value", "expected an integer from 0 to 23 for \"time.hour\""),
            (leaf("time.hour", "gt", json!(9.5)), "condition.value", "got number 9.5"),
            (leaf("time.hour", "lt", json!(24)), "condition.value", "\"time.hour\" ranges from 0 to 23, got 24"),
            (leaf("time.weekday", "equals", json!(0)), "condition.value", "\"time.weekday\" ranges from 1 to 7, got 0"),
            (leaf("message.type", "in", json!("text")), "condition.value", "op \"in\" needs a non-empty array of strings, got string"),
            (leaf("message.type", "in", json!([])), "condition.value", "non-empty array of strings"),
            (leaf("message.type", "in", json!(["text", 1])), "condition.value[1]", "expected a string, got number 1"),
            (leaf("time.weekday", "in", json!([])), "condition.value", "non-empty array of integers"),
            (leaf("time.weekday", "in", json!([6, "7"])), "condition.value[1]", "expected an integer from 1 to 7"),
            (leaf("time.weekday", "in", json!([6, 8])), "condition.value[1]", "ranges from 1 to 7, got 8"),
            // missing / forbidden value
            (json!({"field": "message.text", "op": "equals"}), "condition.value", "missing \"value\" for op \"equals\""),
            (json!({"field": "time.hour", "op": "gt"}), "condition.value", "missing \"value\" for op \"gt\""),
            (leaf("message.text", "exists", json!(true)), "condition.value", "op \"exists\" takes no \"value\""),
            // bad regex
            (leaf("message.text", "matches", json!("(")), "condition.value", "invalid regex: unclosed group"),
            (leaf("message.text", "matches", json!("a{5000}{5000}")), "condition.value", "regex"),
            // shapes
            (json!({"all": []}), "condition.all", "\"all\" must contain at least one condition"),
            (json!({"any": []}), "condition.any", "\"any\" must contain at least one condition"),
            (json!({"all": {"field": "x"}}), "condition.all", "expected an array of conditions, got an object"),
            (json!({"not": []}), "condition.not", "expected a condition object, got an array"),
            (json!({}), "condition", "empty condition object"),
            (json!(null), "condition", "expected a condition object, got null"),
            (json!("message.text"), "condition", "got string"),
            (json!({"all": [exists("message.text")], "field": "message.text"}), "condition", "must have no other key; found \"all\", \"field\""),
            (json!({"all": [exists("message.text")], "any": [exists("message.text")]}), "condition", "must have no other key"),
            (json!({"field": "message.text", "op": "equals", "value": "x", "extra": 1}), "condition.extra", "unknown key \"extra\""),
            (json!({"field": "message.text", "op": "exists", "not x": 1}), "condition[\"not x\"]", "unknown key \"not x\""),
            (json!({"allOf": []}), "condition.allOf", "unknown key \"allOf\""),
            // nested paths
            (
                json!({"all": [
                    exists("message.text"),
                    {"any": [exists("message.text"), {"not": leaf("message.text", "startsWith", json!("x"))}]},
                ]}),
                "condition.all[1].any[1].not.op",
                "unknown op \"startsWith\"",
            ),
            (json!({"any": [exists("message.text"), {"all": []}]}), "condition.any[1].all", "at least one"),
            (json!({"not": {"not": {}}}), "condition.not.not", "empty condition object"),
        ];
        for (condition, path, fragment) in cases {
            let e = error_of(condition.clone());
            assert_eq!(e.path(), path, "{condition}: {e}");
            assert!(
                e.message().contains(fragment),
                "{condition}: {:?} lacks {fragment:?}",
                e.message()
            );
            assert_eq!(
                e.rule(),
                Some(&RuleRef {
                    index: 0,
                    id: "r".into()
                })
            );
        }
    }

    #[test]
    fn rule_level_errors_name_where() {
        let ok = || exists("message.text");

        let too_many: Vec<RuleDef> = (0..=MAX_RULES)
            .map(|i| rule(&format!("r{i}"), ok(), "q"))
            .collect();
        let e = validate_rules(&too_many).err();
        let e = e.as_ref();
        assert_eq!(e.map(RuleError::path), Some(""));
        assert_eq!(e.and_then(RuleError::rule), None);
        assert_eq!(
            e.map(ToString::to_string).as_deref(),
            Some("rules: too many rules: 101 (at most 100)")
        );
        let exactly_max: Vec<RuleDef> = (0..MAX_RULES)
            .map(|i| rule(&format!("r{i}"), ok(), "q"))
            .collect();
        assert!(validate_rules(&exactly_max).is_ok());

        let mut bad_skill = rule("s", ok(), "q");
        bad_skill.result.skills = vec!["ja".into(), " ".into()];
        let mut bad_bot = rule("b", ok(), "q");
        bad_bot.result.bot = Some(String::new());

        // (rules, rule index, path, message fragment)
        let cases: Vec<(Vec<RuleDef>, usize, &str, &str)> = vec![
            (
                vec![
                    rule("a", ok(), "q"),
                    rule("b", ok(), "q"),
                    rule("a", ok(), "q"),
                ],
                2,
                "id",
                "duplicate rule id \"a\" (already used by rules[0])",
            ),
            (
                vec![rule("a", ok(), "q"), rule("", ok(), "q")],
                1,
                "id",
                "rule id must not be empty",
            ),
            (
                vec![rule("a", ok(), "")],
                0,
                "result.queue",
                "queue id must not be empty",
            ),
            (
                vec![rule("a", ok(), "q"), rule("b", ok(), "  ")],
                1,
                "result.queue",
                "queue id must not be empty",
            ),
            (
                vec![bad_skill],
                0,
                "result.skills[1]",
                "skill must not be empty",
            ),
            (vec![bad_bot], 0, "result.bot", "bot id must not be empty"),
            (
                vec![rule("a", ok(), "q"), rule("b", json!({"any": []}), "q")],
                1,
                "condition.any",
                "at least one",
            ),
        ];
        for (rules, index, path, fragment) in cases {
            let e = match validate_rules(&rules) {
                Ok(()) => panic!("{path} should fail"),
                Err(e) => e,
            };
            assert_eq!(e.rule().map(|r| r.index), Some(index), "{e}");
            assert_eq!(e.path(), path, "{e}");
            assert!(e.message().contains(fragment), "{e}");
        }
    }

    #[test]
    fn error_display_reads_well() {
        let rules = vec![
            rule("a", exists("message.text"), "q"),
            rule(
                "vip-ja",
                json!({"all": [exists("message.text"), leaf("message.text", "startsWith", json!("x"))]}),
                "q",
            ),
        ];
        let e = match validate_rules(&rules) {
            Ok(()) => panic!("should fail"),
            Err(e) => e,
        };
        assert_eq!(
            e.to_string(),
            "rules[1].condition.all[1].op (rule \"vip-ja\"): unknown op \"startsWith\"; \
             expected one of equals, contains, matches, in, exists, gt, lt"
        );
        let e = match validate_rules(&[rule("", exists("message.text"), "q")]) {
            Ok(()) => panic!("should fail"),
            Err(e) => e,
        };
        assert_eq!(e.to_string(), "rules[0].id: rule id must not be empty");
    }

    // -- wire form -------------------------------------------------------------------------------

    #[test]
    fn json_round_trip_and_defaults() {
        let wire = json!([
            {
                "id": "vip-ja",
                "name": "VIP Japanese",
                "enabled": true,
                "condition": {"all": [
                    {"field": "customer.language", "op": "in", "value": ["ja"]},
                    {"field": "customer.linked", "op": "equals", "value": true},
                    {"not": {"field": "time.hour", "op": "lt", "value": 9}},
                    {"field": "customer.name", "op": "exists"}
                ]},
                "result": {"queue": "q-vip", "priority": 5, "skills": ["ja", "vip"], "bot": "bot-ja"}
            },
            {
                "id": "off",
                "name": "Switched off",
                "enabled": false,
                "condition": {"field": "message.text", "op": "matches", "value": "(?i)refund|返金"},
                "result": {"queue": "q-refund", "priority": -1, "skills": []}
            }
        ]);
        let rules: Vec<RuleDef> = match serde_json::from_value(wire.clone()) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(validate_rules(&rules).is_ok());
        let back = serde_json::to_value(&rules).ok();
        assert_eq!(back.as_ref(), Some(&wire));
        let text = serde_json::to_string(&rules).unwrap_or_default();
        let again: Vec<RuleDef> = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(again, rules);

        // Defaults: enabled true, priority 0, no skills, no bot.
        let minimal: RuleDef = match serde_json::from_value(json!({
            "id": "m", "name": "minimal",
            "condition": {"field": "event.type", "op": "equals", "value": "follow"},
            "result": {"queue": "q"}
        })) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(minimal.enabled);
        assert_eq!(minimal.result.priority, 0);
        assert!(minimal.result.skills.is_empty());
        assert_eq!(minimal.result.bot, None);

        // Typos in the rule envelope are refused rather than silently dropped.
        let typo = serde_json::from_value::<RuleDef>(json!({
            "id": "t", "name": "t", "enable": false,
            "condition": {"field": "event.type", "op": "exists"},
            "result": {"queue": "q"}
        }));
        assert!(typo.is_err());
        let typo = serde_json::from_value::<RuleDef>(json!({
            "id": "t", "name": "t",
            "condition": {"field": "event.type", "op": "exists"},
            "result": {"queue": "q", "skill": ["x"]}
        }));
        assert!(typo.is_err());
    }

    #[test]
    fn public_field_and_op_lists_match_the_parser() {
        for name in FIELDS {
            assert_eq!(Field::parse(name).map(Field::name), Some(*name));
        }
        for name in OPS {
            assert!(Op::parse(name).is_some(), "{name}");
        }
    }

    // -- robustness ------------------------------------------------------------------------------

    fn arb_leaf_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-2i64..30).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            proptest::sample::select(FIELDS).prop_map(Value::from),
            proptest::sample::select(OPS).prop_map(Value::from),
            "\\PC{0,10}".prop_map(Value::from),
            "[(){}\\[\\]a-z.*+?|\\\\^$0-9]{0,8}".prop_map(Value::from),
        ]
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(&["all", "any", "not", "field", "op", "value"][..])
                .prop_map(str::to_owned),
            "[a-zA-Z. ]{0,6}",
        ]
    }

    fn arb_condition() -> impl Strategy<Value = Value> {
        arb_leaf_value().prop_recursive(24, 256, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(arb_key(), inner.clone(), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"all": v})),
                proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| json!({"any": v})),
                inner.clone().prop_map(|v| json!({"not": v})),
                (
                    proptest::sample::select(FIELDS),
                    proptest::sample::select(OPS),
                    proptest::option::of(inner),
                )
                    .prop_map(|(f, o, v)| match v {
                        Some(v) => json!({"field": f, "op": o, "value": v}),
                        None => json!({"field": f, "op": o}),
                    }),
            ]
        })
    }

    fn arb_ctx() -> impl Strategy<Value = RoutingContext> {
        let s = || proptest::option::of("\\PC{0,12}");
        (
            (s(), s(), s(), s(), proptest::option::of(any::<bool>()), s()),
            (
                s(),
                s(),
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<u8>()),
                proptest::option::of(any::<bool>()),
            ),
        )
            .prop_map(|((mt, tx, st, lang, linked, name), (pb, ev, h, wd, bh))| {
                RoutingContext {
                    context: Default::default(),
                    attributes: Default::default(),
                    conversation_tags: Vec::new(),
                    customer_tags: Vec::new(),
                    message_type: mt,
                    message_text: tx,
                    source_type: st,
                    customer_language: lang,
                    customer_linked: linked,
                    customer_name: name,
                    postback_data: pb,
                    event_type: ev,
                    hour: h,
                    weekday: wd,
                    business_hours: bh,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary JSON as a condition never panics: it compiles or names an error, and what
        /// compiles evaluates on arbitrary contexts.
        #[test]
        fn arbitrary_conditions_never_panic(condition in arb_condition(), ctx in arb_ctx()) {
            let rules = [rule("fuzz", condition, "q")];
            match CompiledRules::compile(&rules) {
                Ok(compiled) => {
                    let _ = compiled.evaluate(&ctx);
                    let _ = compiled.evaluate(&RoutingContext::default());
                    prop_assert!(validate_rules(&rules).is_ok());
                }
                Err(e) => {
                    prop_assert!(!e.message().is_empty());
                    prop_assert!(e.path().starts_with("condition"));
                    prop_assert!(!e.to_string().contains('\n'));
                    prop_assert!(validate_rules(&rules).is_err());
                }
            }
        }
    }

    fn compile_one(condition: Value) -> Result<CompiledRules, RuleError> {
        CompiledRules::compile(&[rule("r", condition, "q")])
    }

    #[test]
    fn tags_are_tested_with_contains_a_tag() {
        let ctx = full_ctx();
        let rule = |field: &str, op: &str, value: Value| compile_one(leaf(field, op, value));
        let holds = |field: &str, tag: &str| {
            rule(field, "contains", json!(tag))
                .expect("compiles")
                .evaluate(&ctx)
                .is_some()
        };
        assert!(holds("customer.tags", "vip"), "case-insensitive");
        assert!(
            holds("customer.tags", " 返品 "),
            "normalized like a stored tag"
        );
        assert!(
            !holds("customer.tags", "Returns"),
            "the conversation's, not the customer's"
        );
        assert!(holds("conversation.tags", "returns"));
        assert!(!holds("conversation.tags", "Ret"), "a tag, not a substring");
        assert!(rule("customer.tags", "equals", json!("vip")).is_err());
        assert!(rule("customer.tags", "contains", json!(3)).is_err());
        assert!(rule("customer.tags", "contains", json!("x".repeat(21))).is_err());
        let reads =
            compile_one(json!({"field": "customer.tags", "op": "contains", "value": "vip"}))
                .unwrap();
        assert!(
            reads.tests_customer_attributes(),
            "the customer's document is read for its tags"
        );
        let not =
            compile_one(json!({"field": "conversation.tags", "op": "contains", "value": "a"}))
                .unwrap();
        assert!(!not.tests_customer_attributes());
    }
}
