//! `template.yaml` (AWS SAM) checked against the properties the deployment relies on, and against
//! the code: the environment variables each function's `main.rs` (and the router's `wiring.rs`)
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
/// `or_default("X", …)` in `functions/{crate}/src/main.rs` and in every `{crate}::wiring` module
/// it calls (the router's, shared with the agent function).
fn variables_read(krate: &str) -> BTreeSet<String> {
    let main = read(&format!("functions/{krate}/src/main.rs"));
    let mut sources = vec![main.clone()];
    let wiring = Regex::new(r"\b([a-z_]+)::wiring::").expect("regex");
    let wired: BTreeSet<String> = wiring
        .captures_iter(&main)
        .map(|c| c[1].to_owned())
        .collect();
    for other in wired {
        sources.push(read(&format!("functions/{other}/src/wiring.rs")));
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
/// and `AWS::ApiGatewayV2::Route` resources (through their integration).
struct Route<'a> {
    key: String,
    function: String,
    authorization: Option<&'a Value>,
    settings: Option<&'a Value>,
}

fn routes(t: &Template) -> Vec<Route<'_>> {
    let mut out = Vec::new();
    for (id, function) in t.of_type("AWS::Serverless::Function") {
        if let Some(events) = props(function).get("Events").and_then(Value::as_mapping) {
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) == Some("HttpApi") {
                    let p = props(event);
                    assert_eq!(p.get("ApiId").and_then(ref_name), Some("HttpApi"));
                    let method = str_at(p, &["Method"]).expect("Method");
                    let path = str_at(p, &["Path"]).expect("Path");
                    out.push(Route {
                        key: format!("{} {path}", method.to_uppercase()),
                        function: id.to_owned(),
                        authorization: p.get("Auth"),
                        settings: p.get("RouteSettings"),
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
            settings: None,
        });
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
    assert_eq!(find("GET /line/link/{id}").function, "AgentFunction");

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
        read("shared/src/adapters/dynamo_conversations.rs").contains("\"expiresAt\""),
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
        "\"media/{account_id}/{message_id}\"",
        "\"agent-media/{}/{}.{ext}\"",
    ] {
        let sources =
            read("functions/router/src/process.rs") + &read("functions/agent/src/conversations.rs");
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

/// The schedule reads open conversations through the sparse index the adapter queries: the
/// index and its key attribute in the template are the adapter's.
#[test]
fn the_conversations_table_has_the_adapters_open_conversations_index() {
    use shared::adapters::dynamo_conversations::{OPEN_INDEX, OPEN_SHARD};
    let t = Template::load();
    let p = props(t.resource("ConversationsTable"));
    let indexes = p
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .expect("GlobalSecondaryIndexes");
    let index = indexes
        .iter()
        .find(|i| str_at(i, &["IndexName"]) == Some(OPEN_INDEX))
        .unwrap_or_else(|| panic!("no {OPEN_INDEX} index"));
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
    assert_eq!(keys, [(OPEN_SHARD, "HASH"), ("pk", "RANGE")]);
    // Keys only: the adapter reads the conversations by key, and their updates (nothing
    // projected changes) do not write the index.
    assert_eq!(
        str_at(index, &["Projection", "ProjectionType"]),
        Some("KEYS_ONLY")
    );
    let defined = p
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .expect("AttributeDefinitions");
    assert!(defined
        .iter()
        .any(|d| str_at(d, &["AttributeName"]) == Some(OPEN_SHARD)
            && str_at(d, &["AttributeType"]) == Some("S")));
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
    let ingest = read("shared/src/ingest.rs");
    assert_eq!(
        ingest.matches(&format!("\"{message}\"")).count(),
        1,
        "shared/src/ingest.rs logs {message:?} once"
    );
    let telemetry = read("shared/src/telemetry.rs");
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
    let webhook = value("WebhookBaseUrl")
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
