//! `template.yaml` (AWS SAM) checked against the properties the deployment relies on, and against
//! the code: the environment variables each function's `main.rs` (and the composition root it calls)
//! reads are extracted from the source, so this test follows the code. No server needed.
//!
//! cfn-lint and `sam validate --lint` (`infra/template-check.sh`) check the template's syntax and
//! CloudFormation's own rules; this test checks omniline's:
//!
//! - globals: `provided.al2023`, arm64, `bootstrap`, 128–256 MB, JSON logs, X-Ray;
//! - every crate under `functions/` is a function built with cargo-lambda (its `[[bin]]`);
//! - each function's environment names what its code reads, and its policies grant exactly the
//!   tables, queues, bucket and secrets that environment names (plus the queue it consumes);
//! - no IAM statement allows `*`, or an ARN whose resource part names nothing;
//! - no function is granted a whole table or bucket (SAM's `DynamoDB*`/`S3*` policy templates):
//!   its DynamoDB statements list their actions and limit the partition keys
//!   (`dynamodb:LeadingKeys`) to the kinds of items its code reads and writes (the public
//!   webhook: accounts, and their counters' attributes only; nothing but the admin function
//!   writes the agents' token hashes), its S3 statements name the key prefixes it uses, and
//!   only the listed functions Scan;
//! - every function reserves concurrency of its own (parameters whose defaults leave Lambda's
//!   100 unreserved), SQS event sources stay within their function's reservation, and every
//!   route has throttles of its own (the webhook's, the agent API's and the admin API's
//!   parameters of their own);
//! - every SQS consumer reports batch item failures, every queue has a dead-letter queue
//!   (`maxReceiveCount` 5) with an alarm, visibility timeout ≥ 6× the consumer's timeout, the
//!   outbound consumer's concurrency is capped;
//! - the HTTP routes (the public, throttled webhook; admin and agent with the optional JWT
//!   authorizer), the tables (on demand, TTL, PITR, SSE), the private media bucket with its
//!   retention, the auto-close schedule, the rejected-signature alarm (on the exact line the
//!   webhook logs) and the outputs.

use regex::Regex;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Loading: YAML with CloudFormation's short tags, normalised to the long (JSON) form.
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `!Ref X` → `{Ref: X}`, `!GetAtt A.B` → `{Fn::GetAtt: [A, B]}`, `!Sub s` → `{Fn::Sub: s}`,
/// any other `!Tag v` → `{Fn::Tag: v}`.
fn normalise(value: Value) -> Value {
    match value {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = normalise(tagged.value);
            let (key, inner) = match name {
                "Ref" | "Condition" => (name.to_owned(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Value::String(s) => {
                            let (resource, attribute) =
                                s.split_once('.').expect("!GetAtt Resource.Attribute");
                            Value::Sequence(vec![resource.into(), attribute.into()])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut map = Mapping::new();
            map.insert(key.into(), inner);
            Value::Mapping(map)
        }
        Value::Mapping(map) => {
            Value::Mapping(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(normalise).collect()),
        other => other,
    }
}

struct Template {
    root: Value,
}

impl Template {
    fn load() -> Self {
        let root: Value = serde_yaml::from_str(&read("template.yaml")).expect("template.yaml");
        Template {
            root: normalise(root),
        }
    }

    fn section(&self, name: &str) -> &Mapping {
        self.root
            .get(name)
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("template has no {name} section"))
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.section("Resources")
            .iter()
            .map(|(k, v)| (k.as_str().expect("logical id"), v))
    }

    fn resource(&self, id: &str) -> &Value {
        self.section("Resources")
            .get(id)
            .unwrap_or_else(|| panic!("no resource {id}"))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.resources()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
    }

    fn type_of(&self, id: &str) -> Option<&str> {
        self.section("Resources")
            .get(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
    }

    fn globals(&self) -> &Value {
        self.root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .expect("Globals.Function")
    }

    /// A function property, else the global one.
    fn function_prop<'a>(&'a self, function: &'a Value, name: &str) -> Option<&'a Value> {
        props(function)
            .get(name)
            .or_else(|| self.globals().get(name))
    }

    /// Globals' environment variables overlaid with the function's.
    fn environment(&self, function: &Value) -> BTreeMap<String, Value> {
        let mut env = BTreeMap::new();
        for source in [self.globals(), props(function)] {
            if let Some(vars) = source
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
            {
                for (k, v) in vars {
                    env.insert(k.as_str().expect("variable name").to_owned(), v.clone());
                }
            }
        }
        env
    }

    /// `(min, max)` of a number that is a literal or a `Ref` to a Number parameter (its
    /// MinValue/MaxValue, else its Default).
    fn bounds(&self, value: &Value) -> (f64, f64) {
        if let Some(n) = number(value) {
            return (n, n);
        }
        let name = ref_name(value).unwrap_or_else(|| panic!("not a number or a Ref: {value:?}"));
        let parameter = self
            .section("Parameters")
            .get(name)
            .unwrap_or_else(|| panic!("Ref {name}: no such parameter"));
        let default = parameter.get("Default").and_then(number);
        let min = parameter.get("MinValue").and_then(number).or(default);
        let max = parameter.get("MaxValue").and_then(number).or(default);
        (
            min.unwrap_or_else(|| panic!("parameter {name}: no MinValue or Default")),
            max.unwrap_or_else(|| panic!("parameter {name}: no MaxValue or Default")),
        )
    }

    fn timeout_of(&self, function_id: &str) -> f64 {
        let function = self.resource(function_id);
        let timeout = self
            .function_prop(function, "Timeout")
            .unwrap_or_else(|| panic!("{function_id}: no Timeout"));
        self.bounds(timeout).1
    }
}

fn props(resource: &Value) -> &Value {
    resource.get("Properties").expect("Properties")
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn ref_name(value: &Value) -> Option<&str> {
    value.get("Ref").and_then(Value::as_str)
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_str)
}

fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The resource a `Ref` or `Fn::GetAtt` points at.
fn target(value: &Value) -> Option<&str> {
    ref_name(value).or_else(|| {
        value
            .get("Fn::GetAtt")
            .and_then(|v| v.get(0))
            .and_then(Value::as_str)
    })
}

/// The `Fn::Sub` template string, if `value` is one.
fn sub_template(value: &Value) -> Option<&str> {
    match value.get("Fn::Sub")? {
        Value::String(s) => Some(s),
        Value::Sequence(items) => items.first().and_then(Value::as_str),
        _ => None,
    }
}

fn placeholders(template: &str) -> Vec<String> {
    let re = Regex::new(r"\$\{([A-Za-z0-9_:]+)(?:\.[A-Za-z0-9_.]+)?\}").expect("regex");
    re.captures_iter(template)
        .map(|c| c[1].to_owned())
        .filter(|name| !name.starts_with("AWS::"))
        .collect()
}

/// Every logical id (resource or parameter) `value` refers to: `Ref`, `Fn::GetAtt`, `Fn::Sub`.
fn referenced(value: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_refs(value, &mut out);
    out
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    if let Some(id) = target(value) {
        if !id.starts_with("AWS::") {
            out.insert(id.to_owned());
        }
    }
    if let Some(template) = sub_template(value) {
        out.extend(placeholders(template));
    }
    match value {
        Value::Mapping(map) => map.values().for_each(|v| collect_refs(v, out)),
        Value::Sequence(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The functions and what their code reads.
// ---------------------------------------------------------------------------------------------

const FUNCTIONS: [(&str, &str); 5] = [
    ("WebhookFunction", "webhook"),
    ("RouterFunction", "router"),
    ("OutboundFunction", "outbound"),
    ("AdminFunction", "admin"),
    ("AgentFunction", "agent"),
];

/// Read only by the tests (moto's endpoint); never set on Lambda.
const TEST_ONLY_VARIABLES: [&str; 1] = ["AWS_ENDPOINT_URL"];

/// The variables a function's code reads: `required("X")`, `optional("X")`,
/// `or_default("X", …)` in `functions/{crate}/src/main.rs` and in every function of the
/// composition root (`shared/wiring/src/{lib,aws}.rs`) it calls, directly or through another.
fn variables_read(krate: &str) -> BTreeSet<String> {
    let main = read(&format!("functions/{krate}/src/main.rs"));
    let wiring = [
        read("shared/wiring/src/lib.rs"),
        read("shared/wiring/src/aws.rs"),
    ];
    // Every fn of the composition root, by name, with its body.
    let fn_start = Regex::new(r"(?m)^(?:pub )?fn ([a-z_][a-z0-9_]*)\b").expect("regex");
    let mut bodies: Vec<(String, String)> = Vec::new();
    for source in &wiring {
        for c in fn_start.captures_iter(source) {
            let start = c.get(0).expect("match").start();
            let end = start + source[start..].find("\n}\n").expect("end of fn");
            bodies.push((c[1].to_owned(), source[start..end].to_owned()));
        }
    }
    let mut sources = vec![main];
    let mut included: BTreeSet<String> = BTreeSet::new();
    loop {
        let called: Vec<(String, String)> = bodies
            .iter()
            .filter(|(name, _)| !included.contains(name))
            .filter(|(name, _)| {
                let call = Regex::new(&format!(r"\b{name}\(")).expect("regex");
                sources.iter().any(|s| call.is_match(s))
            })
            .cloned()
            .collect();
        if called.is_empty() {
            break;
        }
        for (name, body) in called {
            included.insert(name);
            sources.push(body);
        }
    }
    let read_call =
        Regex::new(r#"\b(?:required|optional|or_default)\(\s*"([A-Z][A-Z0-9_]*)""#).expect("regex");
    sources
        .iter()
        .flat_map(|source| read_call.captures_iter(source).map(|c| c[1].to_owned()))
        .filter(|name| !TEST_ONLY_VARIABLES.contains(&name.as_str()))
        .collect()
}

fn bin_name(krate: &str) -> String {
    let manifest = read(&format!("functions/{krate}/Cargo.toml"));
    let re = Regex::new(r#"\[\[bin\]\]\s*\n\s*name\s*=\s*"([^"]+)""#).expect("regex");
    let bins: Vec<String> = re
        .captures_iter(&manifest)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(bins.len(), 1, "functions/{krate}: one [[bin]] expected");
    bins[0].clone()
}

/// The template's tables, queues, buckets and secrets (what a policy grants access to).
fn data_resources(t: &Template) -> BTreeSet<String> {
    const KINDS: [&str; 4] = [
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::S3::Bucket",
        "AWS::SecretsManager::Secret",
    ];
    t.resources()
        .filter(|(_, r)| {
            r.get("Type")
                .and_then(Value::as_str)
                .is_some_and(|k| KINDS.contains(&k))
        })
        .map(|(id, _)| id.to_owned())
        .collect()
}

/// Every IAM statement of the template: functions' inline `Statement` policies, and the
/// statements of roles, policies and bucket policies.
fn statements(t: &Template) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for (id, resource) in t.resources() {
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let documents: Vec<&Value> = match kind {
            "AWS::Serverless::Function" => props(resource)
                .get("Policies")
                .and_then(Value::as_sequence)
                .map(|policies| {
                    policies
                        .iter()
                        .filter(|p| p.get("Statement").is_some())
                        .collect()
                })
                .unwrap_or_default(),
            "AWS::IAM::Policy"
            | "AWS::IAM::ManagedPolicy"
            | "AWS::S3::BucketPolicy"
            | "AWS::SQS::QueuePolicy" => {
                props(resource).get("PolicyDocument").into_iter().collect()
            }
            "AWS::IAM::Role" => props(resource)
                .get("Policies")
                .and_then(Value::as_sequence)
                .map(|p| p.iter().filter_map(|p| p.get("PolicyDocument")).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for document in documents {
            match document.get("Statement") {
                Some(Value::Sequence(items)) => {
                    out.extend(items.iter().map(|s| (id.to_owned(), s)));
                }
                Some(single) => out.push((id.to_owned(), single)),
                None => {}
            }
        }
    }
    out
}

/// Services whose ARNs name the resource directly (no `type/` or `type:` before the name).
const UNTYPED_ARN_SERVICES: [&str; 3] = ["s3", "sqs", "sns"];

/// Why an IAM `Resource` entry is too broad, if it is: `*`, or an ARN with a wildcard in its
/// partition, service, region or account, or one whose resource part names nothing before its
/// first `*` (`…:secret:*`, `…:table/*`, `arn:aws:s3:::*`). `Ref`/`GetAtt` name a resource.
fn too_broad(resource: &Value) -> Option<String> {
    let text = match resource {
        Value::String(s) => s.clone(),
        other => match sub_template(other) {
            Some(template) => template.to_owned(),
            None if target(other).is_some() => return None,
            None => return Some(format!("unrecognised resource {other:?}")),
        },
    };
    if text.trim() == "*" {
        return Some("Resource \"*\"".into());
    }
    if !text.contains('*') {
        return None;
    }
    // ${AWS::Region}, ${Bucket.Arn}, … are names, and their "::" must not split the ARN.
    let placeholder = Regex::new(r"\$\{[^}]+\}").expect("regex");
    let flat = placeholder.replace_all(&text, "NAME");
    let parts: Vec<&str> = flat.splitn(6, ':').collect();
    if parts.len() < 6 || parts[0] != "arn" {
        // ${Bucket.Arn}/* and the like: a named prefix.
        return (!flat.starts_with("NAME")).then(|| format!("{text}: not an ARN"));
    }
    if parts[1..5].iter().any(|p| p.contains('*')) {
        return Some(format!(
            "{text}: wildcard partition, service, region or account"
        ));
    }
    let service = parts[2];
    let before_wildcard = parts[5].split('*').next().unwrap_or("");
    let named = before_wildcard
        .split([':', '/'])
        .filter(|s| !s.is_empty())
        .count();
    let needed = if UNTYPED_ARN_SERVICES.contains(&service) {
        1
    } else {
        2
    };
    (named < needed).then(|| format!("{text}: names nothing before its wildcard"))
}

/// The consumers of SQS queues: `(function, queue, event source)`, from SAM `SQS` events and
/// `AWS::Lambda::EventSourceMapping` resources.
fn sqs_consumers(t: &Template) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        if let Some(events) = props(function).get("Events").and_then(Value::as_mapping) {
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) == Some("SQS") {
                    let p = props(event);
                    let queue = p.get("Queue").and_then(target).expect("SQS event Queue");
                    out.push((id.to_owned(), queue.to_owned(), p));
                }
            }
        }
    }
    for (id, mapping) in t.of_type("AWS::Lambda::EventSourceMapping") {
        let p = props(mapping);
        let source = p
            .get("EventSourceArn")
            .and_then(target)
            .unwrap_or_else(|| panic!("{id}: EventSourceArn is not a GetAtt"));
        if t.type_of(source) == Some("AWS::SQS::Queue") {
            let function = p
                .get("FunctionName")
                .and_then(target)
                .unwrap_or_else(|| panic!("{id}: FunctionName is not a Ref"));
            out.push((function.to_owned(), source.to_owned(), p));
        }
    }
    out
}

/// The queues that are some queue's dead-letter queue.
fn dead_letter_queues(t: &Template) -> BTreeSet<String> {
    t.of_type("AWS::SQS::Queue")
        .filter_map(|(_, q)| props(q).get("RedrivePolicy"))
        .filter_map(|r| r.get("deadLetterTargetArn").and_then(target))
        .map(str::to_owned)
        .collect()
}

/// A route: `(route key, function, authorization, route settings)`, from SAM `HttpApi` events
/// and `AWS::ApiGatewayV2::Route` resources (through their integration). Its settings are the
/// event's `RouteSettings`, else the `HttpApi`'s `RouteSettings` entry for its key (SAM merges
/// both into the stage's).
struct Route<'a> {
    key: String,
    function: String,
    authorization: Option<&'a Value>,
    settings: Option<&'a Value>,
}

/// The `HttpApi`'s own `RouteSettings` (route key → settings).
fn api_route_settings(t: &Template) -> Option<&Mapping> {
    props(t.resource("HttpApi"))
        .get("RouteSettings")
        .and_then(Value::as_mapping)
}

fn routes(t: &Template) -> Vec<Route<'_>> {
    let mut out = Vec::new();
    let api_settings = |key: &str| api_route_settings(t).and_then(|m| m.get(key));
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        if let Some(events) = props(function).get("Events").and_then(Value::as_mapping) {
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) == Some("HttpApi") {
                    let p = props(event);
                    assert_eq!(p.get("ApiId").and_then(ref_name), Some("HttpApi"));
                    let method = str_at(p, &["Method"]).expect("Method");
                    let path = str_at(p, &["Path"]).expect("Path");
                    let key = format!("{} {path}", method.to_uppercase());
                    let settings = p.get("RouteSettings").or_else(|| api_settings(&key));
                    out.push(Route {
                        key,
                        function: id.to_owned(),
                        authorization: p.get("Auth"),
                        settings,
                    });
                }
            }
        }
    }
    for (id, route) in t.of_type("AWS::ApiGatewayV2::Route") {
        let p = props(route);
        assert_eq!(p.get("ApiId").and_then(ref_name), Some("HttpApi"), "{id}");
        let key = str_at(p, &["RouteKey"]).expect("RouteKey");
        let target_template = p
            .get("Target")
            .and_then(sub_template)
            .expect("Target: !Sub");
        let integration_id = placeholders(target_template)
            .into_iter()
            .next()
            .expect("Target names an integration");
        let integration = props(t.resource(&integration_id));
        assert_eq!(str_at(integration, &["IntegrationType"]), Some("AWS_PROXY"));
        let function = integration
            .get("IntegrationUri")
            .and_then(target)
            .expect("IntegrationUri: !GetAtt Function.Arn");
        out.push(Route {
            key: key.to_owned(),
            function: function.to_owned(),
            authorization: p.get("AuthorizationType"),
            settings: api_settings(key),
        });
    }
    out
}

/// The `Default` of the Number parameter `value` refers to (`Ref`), with the parameter's name.
fn parameter_default<'a>(t: &Template, value: &'a Value) -> (&'a str, f64) {
    let name = ref_name(value).unwrap_or_else(|| panic!("{value:?}: not a Ref to a parameter"));
    let parameter = t
        .section("Parameters")
        .get(name)
        .unwrap_or_else(|| panic!("Ref {name}: no such parameter"));
    assert_eq!(
        str_at(parameter, &["Type"]),
        Some("Number"),
        "parameter {name}: Type"
    );
    let default = parameter
        .get("Default")
        .and_then(number)
        .unwrap_or_else(|| panic!("parameter {name}: no numeric Default"));
    (name, default)
}

// ---------------------------------------------------------------------------------------------
// IAM: what each function's statements allow on DynamoDB items and S3 objects.
// ---------------------------------------------------------------------------------------------

/// Every DynamoDB action the functions may be granted, by what it does to items. There is no
/// `dynamodb:TransactWriteItems` action: each operation of a transaction is authorised as its
/// `PutItem`, `UpdateItem`, `DeleteItem` or `ConditionCheckItem`.
const DYNAMO_READS: [&str; 3] = [
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:BatchGetItem",
];
const DYNAMO_WRITES: [&str; 5] = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
];
const DYNAMO_SCAN: &str = "dynamodb:Scan";

/// SAM policy templates that grant a whole table or bucket (all keys, a fixed action set).
fn is_whole_resource_policy_template(name: &str) -> bool {
    name.starts_with("DynamoDB") || name.starts_with("S3")
}

/// IAM `StringLike`: `*` any run of characters, `?` any one character.
fn string_like(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|i| go(rest, &v[i..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    go(&p, &v)
}

fn actions(statement: &Value) -> Vec<&str> {
    strings(statement.get("Action").unwrap_or(&Value::Null))
}

fn resources(statement: &Value) -> Vec<&Value> {
    match statement.get("Resource") {
        Some(Value::Sequence(items)) => items.iter().collect(),
        Some(one) => vec![one],
        None => Vec::new(),
    }
}

/// The `ForAllValues:StringLike` `dynamodb:LeadingKeys` patterns of a statement, if any.
fn leading_keys(statement: &Value) -> Option<Vec<&str>> {
    statement
        .get("Condition")
        .and_then(|c| c.get("ForAllValues:StringLike"))
        .and_then(|c| c.get("dynamodb:LeadingKeys"))
        .map(strings)
}

/// The Allow statements of one function's inline policies.
fn function_statements<'a>(t: &'a Template, function: &str) -> Vec<&'a Value> {
    statements(t)
        .into_iter()
        .filter(|(owner, s)| owner == function && str_at(s, &["Effect"]) == Some("Allow"))
        .map(|(_, s)| s)
        .collect()
}

/// What a DynamoDB statement's resource names: (`table`, `Some(index)` for an index ARN).
fn dynamo_resource(resource: &Value) -> (String, Option<String>) {
    if let Some(table) = resource
        .get("Fn::GetAtt")
        .and_then(Value::as_sequence)
        .filter(|v| v.get(1).and_then(Value::as_str) == Some("Arn"))
        .and_then(|v| v.first())
        .and_then(Value::as_str)
    {
        return (table.to_owned(), None);
    }
    let text = sub_template(resource)
        .unwrap_or_else(|| panic!("DynamoDB resource {resource:?}: a table's Arn or its index"));
    let re = Regex::new(r"^\$\{([A-Za-z0-9]+)\.Arn\}/index/([A-Za-z0-9_.-]+)$").expect("regex");
    let c = re.captures(text).unwrap_or_else(|| {
        panic!("DynamoDB resource {text}: ${{Table.Arn}}/index/<name> expected")
    });
    (c[1].to_owned(), Some(c[2].to_owned()))
}

/// Whether `function` may read (`GetItem`, `Query`, `BatchGetItem`) or write (any write action)
/// the items of `table` whose partition key is `pk`, by its statements' leading-key conditions.
/// A statement without a key condition allows every key (only `Scan` has one, and it is
/// neither a read by key nor a write).
fn may(t: &Template, function: &str, table: &str, pk: &str, class: &[&str]) -> bool {
    function_statements(t, function).into_iter().any(|s| {
        actions(s).iter().any(|a| class.contains(a))
            && resources(s)
                .iter()
                .any(|r| target(r) == Some(table) && dynamo_resource(r).1.is_none())
            && leading_keys(s).is_none_or(|patterns| patterns.iter().any(|p| string_like(p, pk)))
    })
}

/// The S3 grants of a function: action → the object key prefixes (`${MediaBucket.Arn}/<prefix>*`)
/// it is allowed on; `s3:ListBucket` on the bucket itself maps to its `s3:prefix` condition
/// (`*` when unconditioned).
fn s3_grants(t: &Template, function: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in function_statements(t, function) {
        for action in actions(s).into_iter().filter(|a| a.starts_with("s3:")) {
            for r in resources(s) {
                let prefixes: Vec<String> = if target(r) == Some("MediaBucket") {
                    match s
                        .get("Condition")
                        .and_then(|c| c.get("StringLike"))
                        .and_then(|c| c.get("s3:prefix"))
                    {
                        Some(p) => strings(p).into_iter().map(str::to_owned).collect(),
                        None => vec!["*".to_owned()],
                    }
                } else {
                    let text =
                        sub_template(r).unwrap_or_else(|| panic!("{function}: S3 resource {r:?}"));
                    let key = text
                        .strip_prefix("${MediaBucket.Arn}/")
                        .unwrap_or_else(|| panic!("{function}: S3 resource {text}"));
                    vec![key.to_owned()]
                };
                out.entry(action.to_owned()).or_default().extend(prefixes);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn globals_are_arm64_al2023_bootstrap_json_logs_and_xray() {
    let t = Template::load();
    let g = t.globals();
    assert_eq!(str_at(g, &["Runtime"]), Some("provided.al2023"), "Runtime");
    assert_eq!(
        strings(g.get("Architectures").expect("Architectures")),
        ["arm64"]
    );
    assert_eq!(str_at(g, &["Handler"]), Some("bootstrap"), "Handler");
    assert_eq!(str_at(g, &["Tracing"]), Some("Active"), "X-Ray");
    assert_eq!(
        str_at(g, &["LoggingConfig", "LogFormat"]),
        Some("JSON"),
        "JSON logs"
    );
    // Lean logs: Lambda's per-invocation lines (INFO) are not written.
    assert_eq!(
        str_at(g, &["LoggingConfig", "SystemLogLevel"]),
        Some("WARN"),
        "Lambda system log level"
    );
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        for (name, want) in [
            ("Runtime", "provided.al2023"),
            ("Handler", "bootstrap"),
            ("Tracing", "Active"),
        ] {
            assert_eq!(
                t.function_prop(function, name).and_then(Value::as_str),
                Some(want),
                "{id}: {name}"
            );
        }
        let architectures = t.function_prop(function, "Architectures");
        assert_eq!(
            architectures.map(strings),
            Some(vec!["arm64"]),
            "{id}: Architectures"
        );
        // SAM merges a function's LoggingConfig into the global one.
        let format = str_at(props(function), &["LoggingConfig", "LogFormat"])
            .or_else(|| str_at(g, &["LoggingConfig", "LogFormat"]));
        assert_eq!(format, Some("JSON"), "{id}: LogFormat");
        let memory = t.function_prop(function, "MemorySize").expect("MemorySize");
        let (low, high) = t.bounds(memory);
        assert!(
            (128.0..=256.0).contains(&low) && (128.0..=256.0).contains(&high),
            "{id}: MemorySize {low}..{high} MB, not within 128-256"
        );
    }
}

#[test]
fn every_function_crate_is_a_function_built_with_cargo_lambda() {
    let t = Template::load();
    let crates: BTreeSet<String> = std::fs::read_dir(repo().join("functions"))
        .expect("functions/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = FUNCTIONS.iter().map(|(_, k)| (*k).to_owned()).collect();
    assert_eq!(crates, listed, "every crate under functions/ is deployed");
    let in_template: BTreeSet<&str> = t
        .of_type("AWS::Serverless::Function")
        .map(|(id, _)| id)
        .collect();
    let expected: BTreeSet<&str> = FUNCTIONS.iter().map(|(id, _)| *id).collect();
    assert_eq!(in_template, expected);
    for (id, krate) in FUNCTIONS {
        let function = t.resource(id);
        let metadata = function.get("Metadata").expect("Metadata");
        assert_eq!(
            str_at(metadata, &["BuildMethod"]),
            Some("rust-cargolambda"),
            "{id}"
        );
        // CodeUri is the workspace root, which has several binaries: Binary picks this one.
        assert_eq!(str_at(props(function), &["CodeUri"]), Some("."), "{id}");
        assert_eq!(
            str_at(metadata, &["BuildProperties", "Binary"]),
            Some(bin_name(krate).as_str()),
            "{id}: BuildProperties.Binary"
        );
    }
}

#[test]
fn each_function_environment_names_what_its_code_reads() {
    let t = Template::load();
    for (id, krate) in FUNCTIONS {
        let wanted = variables_read(krate);
        assert!(
            wanted.contains("CONFIG_TABLE") || wanted.contains("CONVERSATIONS_TABLE"),
            "{krate}: no variable found in its source (did the config reading move?)"
        );
        let env = t.environment(t.resource(id));
        let missing: Vec<&String> = wanted.iter().filter(|v| !env.contains_key(*v)).collect();
        assert!(
            missing.is_empty(),
            "{id} reads {missing:?}, not in its Environment"
        );
    }
}

#[test]
fn environment_variables_point_at_the_right_resources() {
    let t = Template::load();
    let expected = [
        ("CONFIG_TABLE", "ConfigTable"),
        ("CONVERSATIONS_TABLE", "ConversationsTable"),
        ("INBOUND_QUEUE_URL", "InboundQueue"),
        ("OUTBOUND_QUEUE_URL", "OutboundQueue"),
        ("MEDIA_BUCKET", "MediaBucket"),
        ("MEDIA_SIGNING_SECRET_ID", "MediaSigningSecret"),
        ("ADMIN_TOKEN_SECRET_ID", "AdminTokenSecret"),
    ];
    for (id, _) in FUNCTIONS {
        let env = t.environment(t.resource(id));
        for (name, resource) in expected {
            if let Some(value) = env.get(name) {
                assert_eq!(ref_name(value), Some(resource), "{id}: {name}");
            }
        }
        if let Some(prefix) = env.get("SECRET_PREFIX") {
            assert_eq!(
                sub_template(prefix),
                Some("${AWS::StackName}/"),
                "{id}: SECRET_PREFIX is the stack's prefix"
            );
        }
    }
}

#[test]
fn policies_grant_exactly_the_resources_each_function_uses() {
    let t = Template::load();
    let data = data_resources(&t);
    let consumers = sqs_consumers(&t);
    let secret_prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/";
    for (id, _) in FUNCTIONS {
        let function = t.resource(id);
        let env = t.environment(function);
        let named: BTreeSet<String> = env
            .values()
            .flat_map(referenced)
            .filter(|r| data.contains(r))
            .collect();
        let consumed: BTreeSet<String> = consumers
            .iter()
            .filter(|(f, _, _)| f == id)
            .map(|(_, q, _)| q.clone())
            .collect();
        let policies = props(function).get("Policies").expect("Policies");
        let granted: BTreeSet<String> = referenced(policies)
            .into_iter()
            .filter(|r| data.contains(r))
            .collect();
        let usable: BTreeSet<String> = named.union(&consumed).cloned().collect();
        assert_eq!(
            granted, usable,
            "{id}: policies should grant exactly the resources its environment names and the queues it consumes"
        );
        // A consumed queue is granted by a poller policy (not SAM's managed policy on every queue).
        for queue in &consumed {
            let pollers = policies
                .as_sequence()
                .expect("Policies list")
                .iter()
                .filter_map(|p| p.get("SQSPollerPolicy"))
                .filter_map(|p| p.get("QueueName"))
                .filter_map(target)
                .any(|q| q == queue);
            assert!(pollers, "{id}: SQSPollerPolicy on {queue}");
        }
        // SECRET_PREFIX: the secrets under it are readable, and wildcard secrets stay under it.
        let secret_resources: Vec<String> = statements(&t)
            .into_iter()
            .filter(|(owner, _)| owner == id)
            .filter(|(_, s)| {
                strings(s.get("Action").unwrap_or(&Value::Null))
                    .iter()
                    .any(|a| a.starts_with("secretsmanager:"))
            })
            .flat_map(|(_, s)| match s.get("Resource") {
                Some(Value::Sequence(items)) => items.clone(),
                Some(one) => vec![one.clone()],
                None => Vec::new(),
            })
            .filter_map(|r| sub_template(&r).map(str::to_owned))
            .collect();
        for resource in &secret_resources {
            assert!(
                resource.starts_with(secret_prefix) && resource.len() > secret_prefix.len() + 1,
                "{id}: secret pattern {resource} is not under the stack's prefix"
            );
        }
        if env.contains_key("SECRET_PREFIX") {
            assert!(
                secret_resources
                    .iter()
                    .any(|r| r == &format!("{secret_prefix}accounts/*")),
                "{id}: SECRET_PREFIX set, but the accounts' secrets are not readable"
            );
        }
    }
}

#[test]
fn no_statement_allows_every_resource() {
    let t = Template::load();
    let all = statements(&t);
    assert!(all.len() >= 5, "statements found: {}", all.len());
    for (owner, statement) in all {
        let resources = match statement.get("Resource") {
            Some(Value::Sequence(items)) => items.iter().collect(),
            Some(one) => vec![one],
            None => panic!("{owner}: a statement without Resource"),
        };
        for resource in resources {
            if let Some(why) = too_broad(resource) {
                panic!("{owner}: {why}");
            }
        }
        if str_at(statement, &["Effect"]) == Some("Allow") {
            for action in strings(statement.get("Action").expect("Action")) {
                assert!(
                    action != "*" && !action.ends_with(":*"),
                    "{owner}: Allow {action}"
                );
            }
        }
    }
}

#[test]
fn functions_use_no_managed_policies_and_name_what_policy_templates_cover() {
    let t = Template::load();
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        let policies = props(function)
            .get("Policies")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{id}: Policies"));
        for policy in policies {
            let map = policy
                .as_mapping()
                .unwrap_or_else(|| panic!("{id}: managed policy {policy:?} (too broad)"));
            for (name, parameters) in map {
                if name.as_str() == Some("Statement") {
                    continue;
                }
                // A SAM policy template (DynamoDBCrudPolicy, SQSPollerPolicy, …): each
                // parameter names one of this template's resources.
                let parameters = parameters
                    .as_mapping()
                    .unwrap_or_else(|| panic!("{id}: {name:?} without parameters"));
                assert!(!parameters.is_empty(), "{id}: {name:?} without parameters");
                for value in parameters.values() {
                    let named = referenced(value);
                    assert!(
                        !named.is_empty() && named.iter().all(|r| t.type_of(r).is_some()),
                        "{id}: {name:?} parameter {value:?} names no resource of the template"
                    );
                }
            }
        }
    }
}

#[test]
fn the_broadness_check_refuses_what_it_should() {
    let sub = |s: &str| {
        let mut map = Mapping::new();
        map.insert("Fn::Sub".into(), s.into());
        Value::Mapping(map)
    };
    for bad in [
        Value::from("*"),
        Value::from("arn:aws:s3:::*"),
        Value::from("arn:aws:sqs:*:123456789012:q"),
        sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"),
        sub("arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/*"),
        sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*"),
    ] {
        assert!(too_broad(&bad).is_some(), "{bad:?} should be refused");
    }
    for good in [
        sub("arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AWS::StackName}/accounts/*"),
        sub("${MediaBucket.Arn}/*"),
        Value::from("arn:aws:s3:::my-bucket/*"),
        serde_yaml::from_str("Ref: MediaSigningSecret").expect("yaml"),
    ] {
        assert_eq!(too_broad(&good), None, "{good:?} should be accepted");
    }
}

#[test]
fn queues_are_fifo_with_dead_letter_queues_and_alarms() {
    let t = Template::load();
    let dlqs = dead_letter_queues(&t);
    let queues: Vec<(&str, &Value)> = t.of_type("AWS::SQS::Queue").collect();
    for name in ["InboundQueue", "OutboundQueue"] {
        assert!(queues.iter().any(|(id, _)| *id == name), "{name} missing");
    }
    for (id, queue) in &queues {
        let p = props(queue);
        let fifo = p.get("FifoQueue").and_then(Value::as_bool) == Some(true);
        assert_eq!(
            p.get("SqsManagedSseEnabled").and_then(Value::as_bool),
            Some(true),
            "{id}: encrypted"
        );
        if dlqs.contains(*id) {
            assert!(
                p.get("RedrivePolicy").is_none(),
                "{id}: a dead-letter queue has no DLQ"
            );
            let alarmed = t.of_type("AWS::CloudWatch::Alarm").any(|(_, alarm)| {
                let a = props(alarm);
                str_at(a, &["MetricName"]) == Some("ApproximateNumberOfMessagesVisible")
                    && a.get("Dimensions")
                        .and_then(Value::as_sequence)
                        .into_iter()
                        .flatten()
                        .any(|d| {
                            str_at(d, &["Name"]) == Some("QueueName")
                                && d.get("Value").and_then(target) == Some(*id)
                        })
            });
            assert!(alarmed, "{id}: no alarm on its depth");
            continue;
        }
        assert!(fifo, "{id}: FIFO (per-conversation order)");
        // High-throughput FIFO: order per message group (chat, recipient) only.
        assert_eq!(
            str_at(p, &["DeduplicationScope"]),
            Some("messageGroup"),
            "{id}: DeduplicationScope"
        );
        assert_eq!(
            str_at(p, &["FifoThroughputLimit"]),
            Some("perMessageGroupId"),
            "{id}: FifoThroughputLimit"
        );
        let redrive = p
            .get("RedrivePolicy")
            .unwrap_or_else(|| panic!("{id}: no dead-letter queue"));
        assert_eq!(
            redrive.get("maxReceiveCount").and_then(number),
            Some(5.0),
            "{id}: maxReceiveCount"
        );
        let dlq = redrive
            .get("deadLetterTargetArn")
            .and_then(target)
            .expect("deadLetterTargetArn");
        let dlq_fifo = props(t.resource(dlq))
            .get("FifoQueue")
            .and_then(Value::as_bool);
        assert_eq!(
            dlq_fifo,
            Some(true),
            "{id}: the DLQ of a FIFO queue is FIFO"
        );
    }
}

#[test]
fn sqs_consumers_report_batch_item_failures_within_the_visibility_timeout() {
    let t = Template::load();
    let consumers = sqs_consumers(&t);
    let dlqs = dead_letter_queues(&t);
    for (id, _) in t.of_type("AWS::SQS::Queue") {
        let count = consumers.iter().filter(|(_, q, _)| q == id).count();
        let expected = usize::from(!dlqs.contains(id));
        assert_eq!(count, expected, "{id}: consumers");
    }
    for (function, queue, source) in &consumers {
        let responses = strings(source.get("FunctionResponseTypes").unwrap_or(&Value::Null));
        assert_eq!(
            responses,
            ["ReportBatchItemFailures"],
            "{function} on {queue}: FunctionResponseTypes"
        );
        let timeout = t.timeout_of(function);
        let visibility = props(t.resource(queue))
            .get("VisibilityTimeout")
            .unwrap_or_else(|| panic!("{queue}: no VisibilityTimeout"));
        let (visibility, _) = t.bounds(visibility);
        assert!(
            visibility >= 6.0 * timeout,
            "{queue}: visibility timeout {visibility} s < 6 x {function}'s timeout {timeout} s"
        );
    }
    let (_, _, outbound) = consumers
        .iter()
        .find(|(f, q, _)| f == "OutboundFunction" && q == "OutboundQueue")
        .expect("the outbound function consumes the outbound queue");
    let concurrency = outbound
        .get("ScalingConfig")
        .and_then(|s| s.get("MaximumConcurrency"))
        .expect("outbound: ScalingConfig.MaximumConcurrency (LINE's 2,000 requests/s)");
    let (low, high) = t.bounds(concurrency);
    assert!(
        low >= 2.0 && high <= 1000.0,
        "outbound concurrency {low}..{high}"
    );
    assert!(
        consumers
            .iter()
            .any(|(f, q, _)| f == "RouterFunction" && q == "InboundQueue"),
        "the router consumes the inbound queue"
    );
}

#[test]
fn http_routes_reach_their_functions() {
    let t = Template::load();
    let routes = routes(&t);
    let find = |key: &str| {
        let matching: Vec<&Route> = routes.iter().filter(|r| r.key == key).collect();
        assert_eq!(matching.len(), 1, "route {key}");
        matching[0]
    };
    let webhook = find("POST /line/webhook/{accountId}");
    assert_eq!(webhook.function, "WebhookFunction");
    assert!(
        webhook.authorization.is_none(),
        "the webhook is public (LINE signs it)"
    );
    let settings = webhook
        .settings
        .expect("webhook: RouteSettings (throttling)");
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        let (low, _) = t.bounds(
            settings
                .get(limit)
                .unwrap_or_else(|| panic!("webhook {limit}")),
        );
        assert!(low >= 1.0, "webhook {limit}");
    }
    assert_eq!(find("GET /media/{proxy+}").function, "WebhookFunction");
    // The account link: a confirmation page, then the confirmation (review 1/7 #15), both
    // public, each with its own throttle.
    for key in ["GET /line/link/{id}", "POST /line/link/{id}"] {
        let route = find(key);
        assert_eq!(route.function, "AgentFunction", "{key}");
        assert!(route.settings.is_some(), "{key}: a throttle of its own");
    }

    // The agent console: the page and its files, public (they hold no data), served by the
    // agent function same-origin with the API, each route with its own throttle and a permission.
    for (key, path) in [
        ("GET /console", "/console"),
        ("GET /console/{proxy+}", "/console/*"),
    ] {
        let route = find(key);
        assert_eq!(route.function, "AgentFunction", "{key}");
        assert_eq!(
            route.authorization.and_then(Value::as_str),
            Some("NONE"),
            "{key}: public"
        );
        assert!(route.settings.is_some(), "{key}: a throttle of its own");
        let permitted = t.of_type("AWS::Lambda::Permission").any(|(_, p)| {
            let p = props(p);
            p.get("FunctionName").and_then(target) == Some("AgentFunction")
                && p.get("SourceArn")
                    .and_then(sub_template)
                    .is_some_and(|arn| arn.ends_with(&format!("${{HttpApi}}/*/*{path}")))
        });
        assert!(
            permitted,
            "{key}: API Gateway may invoke the agent function"
        );
    }

    let jwt = t.resource("ApiJwtAuthorizer");
    assert_eq!(str_at(jwt, &["Condition"]), Some("UseJwtAuthorizer"));
    let identity = strings(props(jwt).get("IdentitySource").expect("IdentitySource"));
    assert!(
        identity
            .iter()
            .all(|s| !s.eq_ignore_ascii_case("$request.header.Authorization")),
        "Authorization carries the bearer tokens, which the functions always check"
    );
    for (key, function, path) in [
        ("ANY /admin/v1/{proxy+}", "AdminFunction", "/admin/v1/*"),
        ("ANY /agent/v1/{proxy+}", "AgentFunction", "/agent/v1/*"),
    ] {
        let route = find(key);
        assert_eq!(route.function, function);
        // The authorizer is optional: JWT when the parameter says so, else none.
        let authorization = route.authorization.expect("AuthorizationType");
        let choice = authorization
            .get("Fn::If")
            .and_then(Value::as_sequence)
            .expect("AuthorizationType: !If [UseJwtAuthorizer, JWT, NONE]");
        assert_eq!(choice[0].as_str(), Some("UseJwtAuthorizer"));
        assert_eq!(choice[1].as_str(), Some("JWT"));
        assert_eq!(choice[2].as_str(), Some("NONE"));
        let permitted = t.of_type("AWS::Lambda::Permission").any(|(_, p)| {
            let p = props(p);
            p.get("FunctionName").and_then(target) == Some(function)
                && str_at(p, &["Principal"]) == Some("apigateway.amazonaws.com")
                && p.get("SourceArn")
                    .and_then(sub_template)
                    .is_some_and(|arn| arn.contains("${HttpApi}") && arn.ends_with(path))
        });
        assert!(
            permitted,
            "{function}: API Gateway may invoke it for {path}"
        );
    }
    let condition = t
        .section("Conditions")
        .get("UseJwtAuthorizer")
        .expect("UseJwtAuthorizer");
    assert!(referenced(condition).contains("ApiAuthorizer"));
}

#[test]
fn tables_and_bucket_are_protected_and_expire() {
    let t = Template::load();
    let tables: Vec<(&str, &Value)> = t.of_type("AWS::DynamoDB::Table").collect();
    assert_eq!(tables.len(), 2);
    for (id, table) in tables {
        let p = props(table);
        assert_eq!(str_at(p, &["BillingMode"]), Some("PAY_PER_REQUEST"), "{id}");
        assert_eq!(
            str_at(p, &["TimeToLiveSpecification", "AttributeName"]),
            Some("expiresAt"),
            "{id}: TTL (the attribute the DynamoDB adapters write)"
        );
        for path in [
            ["TimeToLiveSpecification", "Enabled"],
            [
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled",
            ],
            ["SSESpecification", "SSEEnabled"],
        ] {
            let value = path.iter().try_fold(p, |v, k| v.get(*k));
            assert_eq!(value.and_then(Value::as_bool), Some(true), "{id}: {path:?}");
        }
    }
    assert!(
        read("shared/aws/src/dynamo_conversations.rs").contains("\"expiresAt\""),
        "the TTL attribute is the adapter's"
    );

    let bucket = props(t.resource("MediaBucket"));
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        let value = bucket
            .get("PublicAccessBlockConfiguration")
            .and_then(|c| c.get(flag));
        assert_eq!(
            value.and_then(Value::as_bool),
            Some(true),
            "MediaBucket: {flag}"
        );
    }
    assert!(
        bucket.get("BucketEncryption").is_some(),
        "MediaBucket: encryption"
    );
    let rules = bucket
        .get("LifecycleConfiguration")
        .and_then(|l| l.get("Rules"))
        .and_then(Value::as_sequence)
        .expect("MediaBucket: lifecycle rules");
    for prefix in ["media/", "agent-media/"] {
        let rule = rules
            .iter()
            .find(|r| {
                str_at(r, &["Prefix"]) == Some(prefix)
                    || str_at(r, &["Filter", "Prefix"]) == Some(prefix)
            })
            .unwrap_or_else(|| panic!("MediaBucket: no lifecycle rule on {prefix}"));
        assert_eq!(str_at(rule, &["Status"]), Some("Enabled"));
        let days = rule.get("ExpirationInDays").expect("ExpirationInDays");
        assert_eq!(
            ref_name(days),
            Some("MediaRetentionDays"),
            "{prefix}: by retention"
        );
        let (low, _) = t.bounds(days);
        assert!(low >= 30.0, "media signed links live 30 days");
    }
    for key_prefix in [
        "INBOUND_MEDIA_PREFIX: &str = \"media/\"",
        "\"agent-media/{}/{}.{ext}\"",
    ] {
        let sources = read("shared/domain/src/media_links.rs")
            + &read("shared/app/src/agent/conversations.rs");
        assert!(sources.contains(key_prefix), "media keys: {key_prefix}");
    }
}

#[test]
fn auto_close_is_scheduled() {
    let t = Template::load();
    let events = props(t.resource("RouterFunction"))
        .get("Events")
        .and_then(Value::as_mapping)
        .expect("RouterFunction events");
    let schedule = events
        .values()
        .find(|e| e.get("Type").and_then(Value::as_str) == Some("Schedule"))
        .expect("a Schedule event (auto-close)");
    let expression = str_at(props(schedule), &["Schedule"]).expect("Schedule");
    assert!(expression.starts_with("rate(") || expression.starts_with("cron("));
}

/// The conversations table's indexes are the adapter's (the ones the moto tests create too):
/// names, string keys, keys-only projections, and no other index (each costs write units).
#[test]
fn the_conversations_table_has_the_adapters_indexes() {
    use omniline_tests::CONVERSATION_INDEXES;
    let t = Template::load();
    let p = props(t.resource("ConversationsTable"));
    let indexes = p
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .expect("GlobalSecondaryIndexes");
    assert_eq!(indexes.len(), CONVERSATION_INDEXES.len());
    let defined = p
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .expect("AttributeDefinitions");
    for (name, hash, range) in CONVERSATION_INDEXES {
        let index = indexes
            .iter()
            .find(|i| str_at(i, &["IndexName"]) == Some(name))
            .unwrap_or_else(|| panic!("no {name} index"));
        let keys: Vec<(&str, &str)> = index
            .get("KeySchema")
            .and_then(Value::as_sequence)
            .expect("KeySchema")
            .iter()
            .map(|k| {
                (
                    str_at(k, &["AttributeName"]).unwrap(),
                    str_at(k, &["KeyType"]).unwrap(),
                )
            })
            .collect();
        assert_eq!(keys, [(hash, "HASH"), (range, "RANGE")], "{name}");
        // Keys only: the adapter reads the conversations by key, and their updates (nothing
        // projected changes) do not write the index.
        assert_eq!(
            str_at(index, &["Projection", "ProjectionType"]),
            Some("KEYS_ONLY"),
            "{name}"
        );
        for attribute in [hash, range] {
            assert!(
                defined
                    .iter()
                    .any(|d| str_at(d, &["AttributeName"]) == Some(attribute)
                        && str_at(d, &["AttributeType"]) == Some("S")),
                "{name}: {attribute}"
            );
        }
    }
}

#[test]
fn rejected_signatures_raise_an_alarm_on_the_line_the_webhook_logs() {
    let t = Template::load();
    let (_, filter) = t
        .of_type("AWS::Logs::MetricFilter")
        .find(|(_, f)| props(f).get("LogGroupName").and_then(target) == Some("WebhookLogGroup"))
        .expect("a metric filter on the webhook's log group");
    let log_group = props(t.resource("WebhookLogGroup"));
    assert_eq!(
        log_group.get("LogGroupName").and_then(sub_template),
        Some("/aws/lambda/${WebhookFunction}")
    );
    let pattern = str_at(props(filter), &["FilterPattern"]).expect("FilterPattern");
    let re = Regex::new(r#"^\{\s*\$\.message\s*=\s*"([^"*]+)"\s*\}$"#).expect("regex");
    let message = re
        .captures(pattern)
        .unwrap_or_else(|| panic!("pattern {pattern}: {{ $.message = \"…\" }} expected"))[1]
        .to_owned();
    // The webhook logs exactly this message once per request refused for its signature, as a
    // JSON line with the message at the top level.
    let ingest = read("shared/app/src/ingest.rs");
    assert_eq!(
        ingest.matches(&format!("\"{message}\"")).count(),
        1,
        "shared/app/src/ingest.rs logs {message:?} once"
    );
    let telemetry = read("shared/runtime/src/telemetry.rs");
    assert!(telemetry.contains(".json()") && telemetry.contains(".flatten_event(true)"));

    let transformation = props(filter)
        .get("MetricTransformations")
        .and_then(|m| m.get(0))
        .expect("MetricTransformations");
    let namespace = transformation.get("MetricNamespace").expect("namespace");
    let metric = str_at(transformation, &["MetricName"]).expect("metric name");
    let alarmed = t.of_type("AWS::CloudWatch::Alarm").any(|(_, a)| {
        let a = props(a);
        a.get("Namespace") == Some(namespace)
            && str_at(a, &["MetricName"]) == Some(metric)
            && str_at(a, &["Statistic"]) == Some("Sum")
    });
    assert!(alarmed, "an alarm on {metric}");
}

/// Issue 3/7: LINE reaches the webhook through a Lambda function URL by default (no per-request
/// charge); public, so the function's only principals are the URL (for `InvokeFunctionUrl` and,
/// through it, `InvokeFunction`); the admin API's callback URLs follow it.
#[test]
fn the_webhook_function_url_is_public_through_the_url_only() {
    let t = Template::load();
    let entry = t
        .section("Parameters")
        .get("WebhookEntry")
        .expect("WebhookEntry");
    assert_eq!(str_at(entry, &["Default"]), Some("FunctionUrl"));
    let url = props(t.resource("WebhookFunctionUrl"));
    assert_eq!(str_at(url, &["AuthType"]), Some("NONE"));
    let invoke = props(t.resource("WebhookFunctionUrlInvokePermission"));
    assert_eq!(str_at(invoke, &["Action"]), Some("lambda:InvokeFunction"));
    assert_eq!(
        invoke.get("InvokedViaFunctionUrl").and_then(Value::as_bool),
        Some(true),
        "InvokeFunction for anyone must be limited to calls through the URL"
    );
    let by_url = props(t.resource("WebhookFunctionUrlPermission"));
    assert_eq!(
        str_at(by_url, &["Action"]),
        Some("lambda:InvokeFunctionUrl")
    );
    assert_eq!(str_at(by_url, &["FunctionUrlAuthType"]), Some("NONE"));
    let admin_env = props(t.resource("AdminFunction"))
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(|v| v.get("WEBHOOK_BASE_URL"))
        .expect("the admin function knows the webhook's URL");
    assert!(admin_env.get("Fn::If").is_some());
}

#[test]
fn outputs_name_the_urls_queues_and_tables() {
    let t = Template::load();
    let outputs = t.section("Outputs");
    let value = |name: &str| {
        outputs
            .get(name)
            .and_then(|o| o.get("Value"))
            .unwrap_or_else(|| panic!("output {name}"))
    };
    let api = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}";
    assert_eq!(sub_template(value("ApiUrl")), Some(api));
    assert_eq!(
        sub_template(value("AdminApiUrl")),
        Some(format!("{api}/admin/v1").as_str())
    );
    assert_eq!(
        sub_template(value("AgentApiUrl")),
        Some(format!("{api}/agent/v1").as_str())
    );
    // WebhookEntry=FunctionUrl: the function URL; else the public base URL if set, else the API's.
    let entry = value("WebhookBaseUrl")
        .get("Fn::If")
        .and_then(Value::as_sequence)
        .expect("WebhookBaseUrl: the function URL or the HTTP API's");
    assert_eq!(entry[0].as_str(), Some("UseWebhookFunctionUrl"));
    assert_eq!(
        sub_template(&entry[1]),
        Some("${WebhookFunctionUrl.FunctionUrl}line/webhook")
    );
    let webhook = entry[2]
        .get("Fn::If")
        .and_then(Value::as_sequence)
        .expect("WebhookBaseUrl: the public base URL if set, else the API's");
    assert_eq!(
        sub_template(&webhook[2]),
        Some(format!("{api}/line/webhook").as_str())
    );
    assert_eq!(
        sub_template(&webhook[1]),
        Some("${PublicBaseUrl}/line/webhook")
    );
    for (output, resource) in [
        ("InboundQueueUrl", "InboundQueue"),
        ("OutboundQueueUrl", "OutboundQueue"),
        ("InboundQueueName", "InboundQueue"),
        ("OutboundQueueName", "OutboundQueue"),
        ("InboundDeadLetterQueueUrl", "InboundDeadLetterQueue"),
        ("OutboundDeadLetterQueueUrl", "OutboundDeadLetterQueue"),
        ("ConfigTableName", "ConfigTable"),
        ("ConversationsTableName", "ConversationsTable"),
        ("MediaBucketName", "MediaBucket"),
        ("AdminTokenSecretArn", "AdminTokenSecret"),
    ] {
        assert_eq!(target(value(output)), Some(resource), "output {output}");
    }
}

// ---------------------------------------------------------------------------------------------
// Security review #7: no function, route or client can starve another.
// ---------------------------------------------------------------------------------------------

/// The default of a number that is a literal or a `Ref` to a Number parameter.
fn default_value(t: &Template, value: &Value) -> f64 {
    number(value).unwrap_or_else(|| parameter_default(t, value).1)
}

/// Without reserved concurrency a flood of forged webhooks, or agents' 20 s long polls
/// (`GET /agent/v1/notifications?wait=20`), could use up the account's Lambda concurrency and
/// starve LINE's deliveries, the router and the outbound sender. Each function has its own
/// reservation, a parameter of its own (never 0, which would turn the function off), and
/// together the defaults leave Lambda's 100 unreserved executions of the default 1,000.
#[test]
fn every_function_reserves_its_own_concurrency_within_the_account_limit() {
    let t = Template::load();
    assert!(
        t.globals().get("ReservedConcurrentExecutions").is_none(),
        "one reservation per function, not a global one"
    );
    let mut parameters = BTreeSet::new();
    let mut total = 0.0;
    for (id, _) in FUNCTIONS {
        let value = props(t.resource(id))
            .get("ReservedConcurrentExecutions")
            .unwrap_or_else(|| panic!("{id}: no ReservedConcurrentExecutions"));
        let (name, default) = parameter_default(&t, value);
        assert!(default >= 1.0, "{id}: {name} defaults to {default}");
        let (low, high) = t.bounds(value);
        assert!(
            low >= 1.0,
            "{id}: {name} may be {low} (0 turns the function off)"
        );
        assert!(
            high <= 900.0,
            "{id}: {name} may be {high}, more than an account of 1,000 can reserve"
        );
        assert!(
            parameters.insert(name.to_owned()),
            "{id}: {name} is another function's reservation"
        );
        total += default;
    }
    assert!(
        total <= 900.0,
        "the reservations' defaults sum to {total}: Lambda keeps 100 of the default 1,000 unreserved"
    );
}

/// An SQS event source invoking its function beyond the function's reservation is throttled,
/// and a throttled batch goes back to the queue with one more receive (towards the dead-letter
/// queue): every consumer's `MaximumConcurrency` stays within the reservation, strictly below it
/// when something else invokes the function too (the router's schedule).
#[test]
fn sqs_event_sources_stay_within_their_functions_reservation() {
    let t = Template::load();
    let consumers = sqs_consumers(&t);
    assert!(consumers.len() >= 2, "consumers found: {}", consumers.len());
    for (function, queue, source) in &consumers {
        let cap = source
            .get("ScalingConfig")
            .and_then(|s| s.get("MaximumConcurrency"))
            .unwrap_or_else(|| {
                panic!("{function} on {queue}: no ScalingConfig.MaximumConcurrency")
            });
        let (cap_low, cap_high) = t.bounds(cap);
        assert!(
            cap_low >= 2.0 && cap_high <= 1000.0,
            "{function} on {queue}: MaximumConcurrency {cap_low}..{cap_high} (SQS allows 2..1000)"
        );
        let cap = default_value(&t, cap);
        let reserved = props(t.resource(function))
            .get("ReservedConcurrentExecutions")
            .unwrap_or_else(|| panic!("{function}: no ReservedConcurrentExecutions"));
        let reserved = default_value(&t, reserved);
        let other_invokers = props(t.resource(function))
            .get("Events")
            .and_then(Value::as_mapping)
            .is_some_and(|events| !events.is_empty());
        if other_invokers {
            assert!(
                cap < reserved,
                "{function} on {queue}: MaximumConcurrency {cap} leaves its other events no room in its reservation {reserved}"
            );
        } else {
            assert!(
                cap <= reserved,
                "{function} on {queue}: MaximumConcurrency {cap} > its reservation {reserved}"
            );
        }
    }
}

/// HTTP API throttles are per route and shared by all of a route's clients: every route has
/// limits of its own, and the webhook's, the agent API's and the admin API's are parameters of
/// their own, so that a flood of one (forged webhooks, a runaway agent client) cannot use up
/// another's. Route settings can only name routes that exist when the stage is created: the
/// stage SAM generates waits for the route resources they name (through its stage variables).
#[test]
fn webhook_agent_and_admin_routes_have_throttles_of_their_own() {
    let t = Template::load();
    let routes = routes(&t);
    assert!(routes.len() >= 5, "routes found: {}", routes.len());
    for route in &routes {
        let settings = route
            .settings
            .unwrap_or_else(|| panic!("route {}: no RouteSettings of its own", route.key));
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let value = settings
                .get(limit)
                .unwrap_or_else(|| panic!("route {}: no {limit}", route.key));
            let (low, _) = t.bounds(value);
            assert!(low >= 1.0, "route {}: {limit} may be {low}", route.key);
        }
    }
    let mut parameters = BTreeSet::new();
    for (key, function) in [
        ("POST /line/webhook/{accountId}", "WebhookFunction"),
        ("ANY /agent/v1/{proxy+}", "AgentFunction"),
        ("ANY /admin/v1/{proxy+}", "AdminFunction"),
    ] {
        let route = routes
            .iter()
            .find(|r| r.key == key)
            .unwrap_or_else(|| panic!("no route {key}"));
        assert_eq!(route.function, function, "{key}");
        for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
            let value = route
                .settings
                .and_then(|s| s.get(limit))
                .expect("checked above");
            let name = ref_name(value)
                .unwrap_or_else(|| panic!("{key}: {limit} is not a parameter of its own"));
            assert!(
                parameters.insert(name.to_owned()),
                "{key}: {limit} {name} is shared with another route"
            );
        }
    }

    let stage_refs = referenced(
        props(t.resource("HttpApi"))
            .get("StageVariables")
            .unwrap_or(&Value::Null),
    );
    for key in api_route_settings(&t).into_iter().flat_map(|m| m.keys()) {
        let key = key.as_str().expect("route key");
        assert!(
            routes.iter().any(|r| r.key == key),
            "HttpApi RouteSettings for {key}: no such route (the stage would fail)"
        );
        for (id, _) in t
            .of_type("AWS::ApiGatewayV2::Route")
            .filter(|(_, r)| str_at(props(r), &["RouteKey"]) == Some(key))
        {
            assert!(
                stage_refs.contains(id),
                "RouteSettings for {key}: the stage must wait for {id} (HttpApi StageVariables referencing it)"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Security review #8: each function reaches only the items and objects its code uses.
// ---------------------------------------------------------------------------------------------

/// SAM's DynamoDB and S3 policy templates grant whole tables and buckets with fixed action sets
/// (`DynamoDBCrudPolicy`: every item, Scan, BatchWriteItem, …): every function's DynamoDB and S3
/// access is an explicit statement instead. None is kept, for the router and outbound
/// functions either.
#[test]
fn no_function_is_granted_a_whole_table_or_bucket_by_a_policy_template() {
    let t = Template::load();
    for (id, _) in FUNCTIONS {
        let policies = props(t.resource(id))
            .get("Policies")
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{id}: Policies"));
        for name in policies
            .iter()
            .filter_map(Value::as_mapping)
            .flat_map(|m| m.keys())
            .filter_map(Value::as_str)
        {
            assert!(
                !is_whole_resource_policy_template(name),
                "{id}: {name} grants a whole table or bucket; list the actions and keys it uses"
            );
        }
    }
}

/// DynamoDB statements list their actions one by one (no wildcard, no unknown action: a
/// transaction's operations are authorised as PutItem, UpdateItem, DeleteItem and
/// ConditionCheckItem), name a table of the template or its open-conversations index, and
/// every statement reading or writing items by key limits the partition keys with a
/// `ForAllValues:StringLike` `dynamodb:LeadingKeys` condition. A Scan reads the whole table
/// whatever its filter (no key condition applies to it): it sits in a statement of its own, and
/// only these functions scan these tables.
#[test]
fn dynamodb_statements_name_their_actions_and_partition_keys() {
    use omniline_tests::CONVERSATION_INDEXES;
    let t = Template::load();
    let mut scans = BTreeSet::new();
    let mut found = 0;
    for (id, _) in FUNCTIONS {
        for s in function_statements(&t, id) {
            let all = actions(s);
            let dynamo: Vec<&str> = all
                .iter()
                .copied()
                .filter(|a| a.starts_with("dynamodb:"))
                .collect();
            if dynamo.is_empty() {
                continue;
            }
            found += 1;
            assert_eq!(
                dynamo, all,
                "{id}: DynamoDB actions with others in one statement"
            );
            for a in &dynamo {
                assert!(
                    DYNAMO_READS.contains(a) || DYNAMO_WRITES.contains(a) || *a == DYNAMO_SCAN,
                    "{id}: {a} (actions are listed one by one, from the ones the adapters use)"
                );
            }
            let targets: Vec<(String, Option<String>)> =
                resources(s).into_iter().map(dynamo_resource).collect();
            assert!(
                !targets.is_empty(),
                "{id}: a DynamoDB statement without Resource"
            );
            for (table, index) in &targets {
                assert_eq!(
                    t.type_of(table),
                    Some("AWS::DynamoDB::Table"),
                    "{id}: {table} is not a table of the template"
                );
                if let Some(index) = index {
                    assert!(
                        CONVERSATION_INDEXES
                            .iter()
                            .any(|(name, _, _)| name == index),
                        "{id}: index {index}"
                    );
                    assert_eq!(dynamo, ["dynamodb:Query"], "{id}: an index is only queried");
                }
            }
            if dynamo.contains(&DYNAMO_SCAN) {
                assert_eq!(
                    dynamo,
                    [DYNAMO_SCAN],
                    "{id}: Scan in a statement of its own (no key condition limits it)"
                );
                scans.extend(
                    targets
                        .iter()
                        .map(|(table, _)| (id.to_owned(), table.clone())),
                );
            } else if targets.iter().any(|(_, index)| index.is_none()) {
                let keys = leading_keys(s).unwrap_or_else(|| {
                    panic!("{id}: {dynamo:?} without a ForAllValues:StringLike dynamodb:LeadingKeys condition")
                });
                assert!(!keys.is_empty(), "{id}: empty dynamodb:LeadingKeys");
                for k in keys {
                    assert!(
                        !k.starts_with(['*', '?']),
                        "{id}: leading-key pattern {k:?} names no prefix"
                    );
                }
            }
        }
    }
    assert!(found >= 10, "DynamoDB statements found: {found}");
    // Every other read is by key or index (the conversation list, a customer's conversations,
    // the account list: see tests/tests/no_scan.rs, which watches the wire).
    let expected: BTreeSet<(String, String)> = [
        // An account's purge, a background job the router's schedule runs page by page, finds
        // its items with one page of a filtered Scan at a time (its processed-event records
        // have no index by account). No request path Scans: the admin function only records
        // the job.
        ("RouterFunction", "ConversationsTable"),
    ]
    .into_iter()
    .map(|(f, table)| (f.to_owned(), table.to_owned()))
    .collect();
    assert_eq!(scans, expected, "(function, table) pairs allowed to Scan");
}

/// Config table items by partition key, one sample of each (the layouts of the DynamoDB
/// adapters, checked by `the_partition_key_prefixes_are_the_adapters`).
fn config_items() -> Vec<(&'static str, String)> {
    use omniline_app::jobs::{OPEN_PURGE_KIND, PURGE_JOB_KIND};
    use omniline_app::quota::QUOTA_CHECK_KIND;
    use omniline_domain::account::QUOTA_KIND;
    use omniline_domain::agents::{AGENT_ACCOUNT_KIND, AGENT_EMAIL_KIND};
    use omniline_domain::contacts::{CONTACT_KIND, LINK_NONCE_KIND, LINK_REQUEST_KIND};
    use omniline_domain::conversation::{
        CUSTOMER_ATTRIBUTES_KIND, CUSTOMER_NOTES_KIND, WRAP_UP_PENDING_KIND,
    };
    use omniline_domain::message_templates::MESSAGE_TEMPLATE_KIND;
    use omniline_domain::queues::QUEUE_KIND;
    use omniline_domain::quick_replies::QUICK_REPLY_KIND;
    use omniline_domain::settings::SETTINGS_KIND;
    use omniline_domain::tags::ACCOUNT_TAGS_KIND;
    let doc = |kind: &str| format!("CONFIG#{kind}");
    vec![
        // ACCOUNT#{id}: PROFILE, WEBHOOK_STATS, WORKSTREAM.
        ("account", "ACCOUNT#acc1".to_owned()),
        // ACCOUNTS / {id}: the account list.
        ("account list", "ACCOUNTS".to_owned()),
        ("workstream pointer", "WORKSTREAMS".to_owned()),
        // AGENT#{id}: PROFILE (slots, presence), NOTIFY#… (notifications).
        ("agent", "AGENT#ag1".to_owned()),
        ("agent index", "AGENTS".to_owned()),
        ("queue member", "QUEUE#q1".to_owned()),
        ("notification marker", "NOTIFICATION#n1".to_owned()),
        ("conversation's notifications", "CONVNOTIFY#c1".to_owned()),
        ("queue", doc(QUEUE_KIND)),
        // The agents' API token hashes.
        ("agent account", doc(AGENT_ACCOUNT_KIND)),
        // Email address → agent: how a person signed in with OpenID Connect is found.
        ("agent email", doc(AGENT_EMAIL_KIND)),
        // An account's last reading of LINE's message quota.
        ("message quota", doc(QUOTA_KIND)),
        ("message template", doc(MESSAGE_TEMPLATE_KIND)),
        // When the router's schedule next reads every account's quota.
        ("quota check", doc(QUOTA_CHECK_KIND)),
        ("settings", doc(SETTINGS_KIND)),
        // Contacts, per account (CONFIG#contact@{accountId}).
        ("contact", doc(&format!("{CONTACT_KIND}@acc1"))),
        ("link request", doc(LINK_REQUEST_KIND)),
        ("link nonce", doc(LINK_NONCE_KIND)),
        // An account's purge job, and the entry listing it while unfinished.
        ("purge job", doc(PURGE_JOB_KIND)),
        ("unfinished purge", doc(OPEN_PURGE_KIND)),
        // A wrap-up the schedule ends when its time passes.
        ("pending wrap-up", doc(WRAP_UP_PENDING_KIND)),
        // What admins set on a customer (routing rules, agents).
        ("customer attributes", doc(CUSTOMER_ATTRIBUTES_KIND)),
        // Texts agents insert by shortcut.
        ("quick reply", doc(QUICK_REPLY_KIND)),
        // The notes agents keep about a customer.
        ("customer notes", doc(CUSTOMER_NOTES_KIND)),
        // An account's distinct tags.
        ("account tags", doc(ACCOUNT_TAGS_KIND)),
        // The audit trail: a kind per day.
        ("audit", doc("audit@2026-12-07")),
    ]
}

/// Conversations table items by partition key, one sample of each.
fn conversation_items() -> Vec<(&'static str, String)> {
    [
        ("event", "EVENT#acc1#e1"),
        // CONV#{id}: META, T#… (transcript), D#… (delivery index).
        ("conversation", "CONV#c1"),
        ("open pointer", "OPEN#acc1#U1"),
        ("message index", "LINEMSG#acc1#m1"),
        ("customer", "CUSTOMER#acc1#U1"),
        ("delivery", "DELIVERY#d1"),
        // SEARCH#{account}#{digest of a term}: a term's customers.
        ("search term", "SEARCH#acc1#0123456789abcdef01234567"),
    ]
    .into_iter()
    .map(|(kind, pk)| (kind, pk.to_owned()))
    .collect()
}

/// Each function reads (GetItem, Query, BatchGetItem) and writes (PutItem, UpdateItem,
/// DeleteItem, BatchWriteItem, ConditionCheckItem) exactly the kinds of items its code does, by
/// partition key; see each function's statements in template.yaml for the calls behind them.
/// In particular nothing but the admin function writes the agents' accounts (their token
/// hashes), and the public webhook reaches nothing but accounts.
#[test]
fn each_function_reaches_only_the_dynamodb_items_its_code_uses() {
    let t = Template::load();
    type Access = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );
    // (function, table, the kinds it reads, the kinds it writes)
    let expected: [Access; 10] = [
        // GetItem of the account, UpdateItem of its webhook counters.
        ("WebhookFunction", "ConfigTable", &["account"], &["account"]),
        ("WebhookFunction", "ConversationsTable", &[], &[]),
        (
            "RouterFunction",
            "ConfigTable",
            &[
                "account",
                "agent",
                // The schedule's presence timeout lists the agents.
                "agent index",
                "queue member",
                "settings",
                "link nonce",
                // The schedule's purge jobs, and the purged account's contacts.
                "contact",
                "purge job",
                "unfinished purge",
                // The schedule's hourly reading of every account's message quota.
                "account list",
                "message quota",
                "quota check",
                // The schedule ends the wrap-ups whose time passed.
                "pending wrap-up",
                // When a routing rule tests them.
                "customer attributes",
            ],
            &[
                "agent",
                "notification marker",
                "conversation's notifications",
                "link nonce",
                "contact",
                "purge job",
                "unfinished purge",
                "message quota",
                "quota check",
                "pending wrap-up",
                // A purge erases the account's list of tags with its contacts.
                "account tags",
            ],
        ),
        (
            "RouterFunction",
            "ConversationsTable",
            &[
                "event",
                "conversation",
                "open pointer",
                "message index",
                "customer",
                // A term already indexed for the customer is not written again.
                "search term",
            ],
            &[
                "event",
                "conversation",
                "open pointer",
                "message index",
                "customer",
                // A purge erases the account's delivery records too.
                "delivery",
                // The terms of customers' messages; a purge erases the account's.
                "search term",
            ],
        ),
        // The account's channel id, for stateless channel tokens; the settings, for the
        // retention its delivery records expire with; the account's message counts, written.
        // And an agent whose message LINE did not deliver is told.
        (
            "OutboundFunction",
            "ConfigTable",
            &["account", "settings"],
            &[
                "account",
                "agent",
                "notification marker",
                "conversation's notifications",
            ],
        ),
        (
            "OutboundFunction",
            "ConversationsTable",
            &["delivery", "customer", "conversation"],
            &["delivery", "conversation"],
        ),
        (
            "AdminFunction",
            "ConfigTable",
            &[
                "account",
                "account list",
                "workstream pointer",
                "agent",
                "agent index",
                "queue",
                "agent account",
                "agent email",
                "message quota",
                "message template",
                "settings",
                // The purge jobs it records (and the unfinished one of an account), read back.
                "purge job",
                "unfinished purge",
                // Erasing a customer: pending links, notifications about them.
                "link request",
                "link nonce",
                "conversation's notifications",
                "customer attributes",
                "customer notes",
                "quick reply",
                "audit",
            ],
            &[
                "account",
                "account list",
                "workstream pointer",
                "agent",
                "agent index",
                "queue member",
                "notification marker",
                "conversation's notifications",
                "queue",
                "agent account",
                "agent email",
                "message quota",
                "message template",
                "settings",
                "contact",
                "link request",
                "link nonce",
                "purge job",
                "unfinished purge",
                "customer attributes",
                "customer notes",
                "quick reply",
                "audit",
            ],
        ),
        (
            "AdminFunction",
            "ConversationsTable",
            &["conversation", "customer", "delivery"],
            // A customer's erasure (their search terms too); an account's purge is the router's
            // schedule's.
            &[
                "conversation",
                "open pointer",
                "message index",
                "customer",
                "delivery",
                "search term",
            ],
        ),
        (
            "AgentFunction",
            "ConfigTable",
            &[
                "account",
                "workstream pointer",
                "agent",
                "queue member",
                "queue",
                "agent account",
                "agent email",
                "message template",
                "settings",
                "contact",
                "link request",
                "customer attributes",
                "quick reply",
                "customer notes",
                "account tags",
            ],
            &[
                "agent",
                "notification marker",
                "conversation's notifications",
                "contact",
                "link request",
                "link nonce",
                // A close with wrap-up records it; the agent's wrap-up drops it.
                "pending wrap-up",
                "customer notes",
                // Tags: the customer's (with their attributes), the account's list.
                "customer attributes",
                "account tags",
                // A supervisor's reassignment, in the audit trail.
                "audit",
            ],
        ),
        (
            "AgentFunction",
            "ConversationsTable",
            &[
                "event",
                "conversation",
                "open pointer",
                "message index",
                "customer",
                "delivery",
                // Search: a term's customers.
                "search term",
            ],
            &[
                "event",
                "conversation",
                "open pointer",
                "message index",
                "customer",
                // The terms of a customer's tags.
                "search term",
            ],
        ),
    ];
    let functions: BTreeSet<&str> = expected.iter().map(|(f, ..)| *f).collect();
    assert_eq!(functions, FUNCTIONS.iter().map(|(id, _)| *id).collect());
    for (function, table, reads, writes) in expected {
        let items = match table {
            "ConfigTable" => config_items(),
            _ => conversation_items(),
        };
        for kind in reads.iter().chain(writes.iter()) {
            assert!(
                items.iter().any(|(k, _)| k == kind),
                "unknown item kind {kind}"
            );
        }
        for (kind, pk) in &items {
            assert_eq!(
                may(&t, function, table, pk, &DYNAMO_READS),
                reads.contains(kind),
                "{function}: reads {kind} items ({pk}) of {table}?"
            );
            assert_eq!(
                may(&t, function, table, pk, &DYNAMO_WRITES),
                writes.contains(kind),
                "{function}: writes {kind} items ({pk}) of {table}?"
            );
        }
    }
}

/// The public webhook function (LINE's deliveries and forged ones alike) reads account items
/// and adds to their webhook counters: no other action, no key outside `ACCOUNT#…` (no agent,
/// agent account with its token hash, queue or document), and its UpdateItem may only touch
/// the counters' attributes, which are exactly those `DynamoAccountStore::record_webhook`
/// writes.
#[test]
fn the_public_webhook_only_reads_accounts_and_counts_its_requests() {
    use omniline_domain::agents::AGENT_ACCOUNT_KIND;
    let t = Template::load();
    let dynamo: Vec<&Value> = function_statements(&t, "WebhookFunction")
        .into_iter()
        .filter(|s| actions(s).iter().any(|a| a.starts_with("dynamodb:")))
        .collect();
    let granted: BTreeSet<&str> = dynamo.iter().flat_map(|s| actions(s)).collect();
    assert_eq!(
        granted,
        BTreeSet::from(["dynamodb:GetItem", "dynamodb:UpdateItem"]),
        "the webhook's DynamoDB actions"
    );
    let sensitive = [
        "AGENT#ag1".to_owned(),
        "AGENTS".to_owned(),
        format!("CONFIG#{AGENT_ACCOUNT_KIND}"),
        "CONFIG#queue".to_owned(),
        "QUEUE#q1".to_owned(),
        "NOTIFICATION#n1".to_owned(),
        "WORKSTREAMS".to_owned(),
    ];
    for s in &dynamo {
        for r in resources(s) {
            assert_eq!(
                target(r),
                Some("ConfigTable"),
                "the webhook reaches the config table only"
            );
        }
        let keys = leading_keys(s).expect("the webhook's statements limit their keys");
        for k in &keys {
            assert!(
                k.starts_with("ACCOUNT#"),
                "webhook leading-key pattern {k:?}"
            );
            for pk in &sensitive {
                assert!(
                    !string_like(k, pk),
                    "the webhook's pattern {k:?} reaches {pk}"
                );
            }
        }
    }

    let update = dynamo
        .iter()
        .find(|s| actions(s).contains(&"dynamodb:UpdateItem"))
        .expect("the counters' UpdateItem");
    let allowed: BTreeSet<&str> = update
        .get("Condition")
        .and_then(|c| c.get("ForAllValues:StringEquals"))
        .and_then(|c| c.get("dynamodb:Attributes"))
        .map(strings)
        .expect("UpdateItem limited to the counters' attributes (dynamodb:Attributes)")
        .into_iter()
        .collect();
    let source = read("shared/aws/src/lib.rs");
    let record = source
        .split("async fn record_webhook")
        .nth(1)
        .and_then(|rest| rest.split("async fn ").next())
        .expect("DynamoAccountStore::record_webhook");
    let re = Regex::new(r#"\.update_expression\(\s*"([^"]+)"\s*\)"#).expect("regex");
    let expression = re
        .captures(record)
        .expect("record_webhook's update expression")[1]
        .to_owned();
    let written: BTreeSet<&str> = expression
        .split([' ', ','])
        .filter(|w| w.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|w| !["ADD", "SET", "REMOVE", "DELETE"].contains(w))
        .collect();
    assert!(
        written.len() >= 3,
        "attributes of {expression:?}: {written:?}"
    );
    let missing: Vec<&&str> = written.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "record_webhook writes {missing:?}, which the webhook may not"
    );
    let extra: Vec<&&str> = allowed
        .difference(&written)
        .filter(|a| !["pk", "sk"].contains(*a))
        .collect();
    assert!(
        extra.is_empty(),
        "the webhook may write {extra:?}, which record_webhook does not"
    );
    assert!(
        source.contains(r#"format!("ACCOUNT#{id}")"#),
        "account items are ACCOUNT#{{id}}"
    );
}

/// S3: each function's statements name the actions and key prefixes it uses, never the whole
/// bucket's objects: the router stores and deletes inbound media (`media/`), the agent function
/// only uploads (`agent-media/`), the admin function deletes a customer's inbound media (the
/// router's schedule lists and deletes a purged account's), the webhook serves the signed links (`media/`, `agent-media/`,
/// `outbound/`), the outbound function only signs links.
#[test]
fn media_statements_name_only_the_prefixes_each_function_uses() {
    let t = Template::load();
    /// (action, the key prefixes it is allowed on)
    type Grants = &'static [(&'static str, &'static [&'static str])];
    let expected: [(&str, Grants); 5] = [
        (
            "WebhookFunction",
            &[
                ("s3:GetObject", &["media/*", "agent-media/*", "outbound/*"]),
                // Unconditioned: S3 answers a missing key 404 (not 403) only to a principal
                // that may list the bucket.
                ("s3:ListBucket", &["*"]),
            ],
        ),
        (
            "RouterFunction",
            &[
                ("s3:PutObject", &["media/*"]),
                ("s3:DeleteObject", &["media/*"]),
                // An account's purge (the schedule's background job).
                ("s3:ListBucket", &["media/*"]),
            ],
        ),
        ("OutboundFunction", &[]),
        ("AdminFunction", &[("s3:DeleteObject", &["media/*"])]),
        ("AgentFunction", &[("s3:PutObject", &["agent-media/*"])]),
    ];
    for (function, grants) in expected {
        let want: BTreeMap<String, BTreeSet<String>> = grants
            .iter()
            .map(|(action, prefixes)| {
                (
                    (*action).to_owned(),
                    prefixes.iter().map(|p| (*p).to_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(
            s3_grants(&t, function),
            want,
            "{function}: S3 actions and prefixes"
        );
    }
    for (file, key) in [
        (
            // The one definition of inbound media keys (router writes, admin erases and purges).
            "shared/domain/src/media_links.rs",
            r#"INBOUND_MEDIA_PREFIX: &str = "media/""#,
        ),
        (
            "shared/domain/src/media_links.rs",
            r#"format!("{INBOUND_MEDIA_PREFIX}{account_id}/{message_id}")"#,
        ),
        (
            "shared/domain/src/media_links.rs",
            r#"format!("{INBOUND_MEDIA_PREFIX}{account_id}/")"#,
        ),
        (
            "shared/app/src/agent/conversations.rs",
            r#""agent-media/{}/{}.{ext}""#,
        ),
        (
            "shared/app/src/outbound.rs",
            r#"format!("outbound/{account_id}/{conversation_id}/")"#,
        ),
    ] {
        assert!(read(file).contains(key), "{file}: media keys {key}");
    }
}

/// The partition keys the statements' conditions name are the adapters': every `PREFIX#` the
/// DynamoDB adapters build is one the IAM conditions know (a new kind of item fails here,
/// before IAM refuses it in production).
#[test]
fn the_partition_key_prefixes_are_the_adapters() {
    for (file, layout) in [
        ("shared/aws/src/lib.rs", r#"format!("ACCOUNT#{id}")"#),
        (
            "shared/aws/src/workstreams.rs",
            r#"format!("ACCOUNT#{account_id}")"#,
        ),
        (
            "shared/aws/src/workstreams.rs",
            r#"POINTERS_PK: &str = "WORKSTREAMS""#,
        ),
        ("shared/aws/src/lib.rs", r#"ACCOUNTS: &str = "ACCOUNTS""#),
        (
            "shared/aws/src/dynamo_agents.rs",
            r#"AGENT_PREFIX: &str = "AGENT#""#,
        ),
        (
            "shared/aws/src/dynamo_agents.rs",
            r#"AGENTS_PK: &str = "AGENTS""#,
        ),
        (
            "shared/aws/src/dynamo_agents.rs",
            r#"format!("QUEUE#{queue_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_agents.rs",
            r#"format!("{NOTIFICATION}#{}""#,
        ),
        (
            "shared/aws/src/dynamo_agents.rs",
            r#"NOTIFICATION: &str = "NOTIFICATION""#,
        ),
        (
            "shared/aws/src/config_docs.rs",
            r#"format!("CONFIG#{kind}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("EVENT#{account_id}#{event_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("CONV#{conversation_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("OPEN#{account_id}#{source_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("LINEMSG#{account_id}#{message_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("CUSTOMER#{account_id}#{user_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("AGENT#{agent_id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#""SEARCH#{account_id}#{}""#,
        ),
        (
            "shared/aws/src/dynamo_deliveries.rs",
            r#"DELIVERY: &str = "DELIVERY""#,
        ),
        (
            "shared/aws/src/dynamo_deliveries.rs",
            r#"format!("{DELIVERY}#{id}")"#,
        ),
        (
            "shared/aws/src/dynamo_conversations.rs",
            r#"format!("CONV#{conversation_id}")"#,
        ),
    ] {
        assert!(read(file).contains(layout), "{file}: {layout}");
    }
    // Partition-key prefixes the statements name, and sort-key prefixes (never a leading key).
    let partition = [
        "ACCOUNT",
        "AGENT",
        "QUEUE",
        "NOTIFICATION",
        "CONVNOTIFY",
        "CONFIG",
        "EVENT",
        "CONV",
        "OPEN",
        "LINEMSG",
        "CUSTOMER",
        "DELIVERY",
        "SEARCH",
    ];
    // (`C#…`: the conversations-by-account index's sort key, `accountSk`.)
    let sort = ["NOTIFY", "T", "D", "C"];
    let literal = Regex::new(r#""([A-Z_]+)#"#).expect("regex");
    let constant = Regex::new(r#"\{([A-Z_]+)\}#"#).expect("regex");
    for file in [
        "shared/aws/src/lib.rs",
        "shared/aws/src/dynamo.rs",
        "shared/aws/src/config_docs.rs",
        "shared/aws/src/workstreams.rs",
        "shared/aws/src/dynamo_agents.rs",
        "shared/aws/src/dynamo_conversations.rs",
        "shared/aws/src/dynamo_deliveries.rs",
    ] {
        let source = read(file);
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for prefix in literal
            .captures_iter(code)
            .chain(constant.captures_iter(code))
            .map(|c| c[1].to_owned())
        {
            assert!(
                partition.contains(&prefix.as_str()) || sort.contains(&prefix.as_str()),
                "{file}: items keyed {prefix}#…, which no IAM condition of template.yaml names"
            );
        }
    }
    // Every partition prefix is one the sample items cover.
    let samples: Vec<String> = config_items()
        .into_iter()
        .chain(conversation_items())
        .map(|(_, pk)| pk)
        .collect();
    for prefix in partition {
        assert!(
            samples
                .iter()
                .any(|pk| pk.starts_with(&format!("{prefix}#"))),
            "no sample item keyed {prefix}#…"
        );
    }
}

/// CloudFormation refuses a cycle: a function whose environment names the HTTP API must not also
/// be one of its HttpApi events (SAM puts the events' function ARNs in the API's body). The
/// agent function's account-link routes are routes of their own for this reason.
#[test]
fn no_function_both_names_the_http_api_and_is_an_event_of_it() {
    let t = Template::load();
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        let names_api = t
            .environment(function)
            .values()
            .any(|v| referenced(v).contains("HttpApi"));
        let api_events = props(function)
            .get("Events")
            .and_then(Value::as_mapping)
            .is_some_and(|events| {
                events
                    .values()
                    .any(|e| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
            });
        assert!(
            !(names_api && api_events),
            "{id}: its environment names HttpApi and it has HttpApi events (a circular dependency)"
        );
    }
}
