//! A wire meter for the AWS SDK: every request made through an [`SdkConfig`] wrapped with
//! [`WireMeter::wrap`] is counted by service and operation (from the request's SigV4 scope and
//! `X-Amz-Target`), and DynamoDB requests are priced in capacity units **computed from the
//! items on the wire** with DynamoDB's published rules, because local stand-ins (moto) report
//! a fixed `ConsumedCapacity`:
//!
//! - an item's size is the sum of its attribute names' and values' sizes (strings in UTF-8
//!   bytes, numbers about one byte per two digits plus one, binaries decoded, lists and maps
//!   three bytes plus one per element);
//! - a write costs one write unit per started KiB of the larger of the item before and after
//!   (the meter keeps each item's attribute sizes from the writes it has seen), twice that in a
//!   transaction, whether or not its condition held; a global secondary index costs a write when
//!   an item enters or leaves it or changes a projected attribute, two when its key changes
//!   ([`WireMeter::learn_tables`] reads the indexes with `DescribeTable`);
//! - a read costs one read unit per started 4 KiB of what it returns, at least one per item
//!   asked for by key, found or not (half for an eventually consistent read, twice in a
//!   transaction). A `Query` or `Scan` with a filter is charged by
//!   what it returns, a lower bound of what DynamoDB charges: request paths here filter little.
//!
//! An SQS `ReceiveMessage` that returned no message is counted as `ReceiveMessage (empty)`: a
//! poller's idle cost, not a message's.
//!
//! For measurement (the load test's cost meter, the no-Scan test), never for production: it
//! keeps the size of every item written in memory.

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// Counts per (service, operation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationCount {
    pub service: String,
    pub operation: String,
    pub requests: u64,
    /// Answers other than 2xx (a failed condition is one, and still costs its units).
    pub errors: u64,
    /// DynamoDB read units (computed, see the module documentation).
    pub read_units: f64,
    /// DynamoDB write units on the table.
    pub write_units: f64,
    /// DynamoDB write units on global secondary indexes.
    pub index_write_units: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// DynamoDB write units by kind of item: `{pk prefix}/{sk prefix}` (`CONV/META`, `CONV/T`,
/// `EVENT/EVENT`, `AGENT/NOTIFY`, `SEARCH/*`…: the text before the first `#`, `*` for a sort key
/// that is an id), transactions counted twice as billed. Where a message's writes go.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindCount {
    pub kind: String,
    pub write_units: f64,
    pub index_write_units: f64,
}

/// What a [`WireMeter`] has counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeterSnapshot {
    pub operations: Vec<OperationCount>,
    /// The DynamoDB write units of [`MeterSnapshot::operations`] by kind of item.
    #[serde(default)]
    pub kinds: Vec<KindCount>,
}

impl MeterSnapshot {
    /// Requests of `service` (e.g. `dynamodb`, `sqs`) and `operation` (e.g. `Scan`).
    pub fn requests(&self, service: &str, operation: &str) -> u64 {
        self.operations
            .iter()
            .filter(|o| o.service == service && o.operation == operation)
            .map(|o| o.requests)
            .sum()
    }

    /// The operations of `service` that were called, by name.
    pub fn operations_of(&self, service: &str) -> Vec<&str> {
        self.operations
            .iter()
            .filter(|o| o.service == service)
            .map(|o| o.operation.as_str())
            .collect()
    }

    /// Total DynamoDB (read, write incl. index) units.
    pub fn capacity_units(&self) -> (f64, f64) {
        self.operations.iter().fold((0.0, 0.0), |(r, w), o| {
            (r + o.read_units, w + o.write_units + o.index_write_units)
        })
    }

    /// What happened between `earlier` and `self` (both from the same meter).
    pub fn since(&self, earlier: &MeterSnapshot) -> MeterSnapshot {
        let mut operations = Vec::new();
        for o in &self.operations {
            let before = earlier
                .operations
                .iter()
                .find(|e| e.service == o.service && e.operation == o.operation);
            let mut d = o.clone();
            if let Some(b) = before {
                // Saturating: readings of two different meters (a restarted stack) never panic.
                d.requests = d.requests.saturating_sub(b.requests);
                d.errors = d.errors.saturating_sub(b.errors);
                d.read_units -= b.read_units;
                d.write_units -= b.write_units;
                d.index_write_units -= b.index_write_units;
                d.request_bytes = d.request_bytes.saturating_sub(b.request_bytes);
                d.response_bytes = d.response_bytes.saturating_sub(b.response_bytes);
            }
            if d.requests > 0 {
                operations.push(d);
            }
        }
        let mut kinds = Vec::new();
        for k in &self.kinds {
            let mut d = k.clone();
            if let Some(b) = earlier.kinds.iter().find(|e| e.kind == k.kind) {
                d.write_units -= b.write_units;
                d.index_write_units -= b.index_write_units;
            }
            if d.write_units + d.index_write_units > 0.0 {
                kinds.push(d);
            }
        }
        MeterSnapshot { operations, kinds }
    }
}

#[derive(Debug, Clone)]
struct IndexDef {
    keys: Vec<String>,
    /// `None`: every attribute (`ALL`); otherwise the non-key attributes projected.
    projected: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
struct TableDef {
    keys: Vec<String>,
    indexes: Vec<IndexDef>,
}

/// An item as the meter knows it: each attribute's size and its value's JSON (to see key
/// changes).
type Shadow = BTreeMap<String, (usize, Value)>;

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<(String, String), OperationCount>,
    tables: HashMap<String, TableDef>,
    items: HashMap<(String, String), Shadow>,
    /// Write and index write units by kind of item ([`KindCount`]).
    kinds: BTreeMap<String, (f64, f64)>,
    /// Whether the item being written is in a transaction (billed twice).
    in_transaction: bool,
}

/// Counts the AWS requests made through the configurations it wraps. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct WireMeter {
    state: Arc<Mutex<State>>,
}

impl WireMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// `config` with its HTTP client wrapped: every client built from the result is counted.
    pub fn wrap(&self, config: &SdkConfig) -> SdkConfig {
        let inner = config.http_client().unwrap_or_else(crate::https_client);
        config
            .to_builder()
            .http_client(SharedHttpClient::new(MeteredClient {
                inner,
                meter: self.clone(),
            }))
            .build()
    }

    /// Reads the key schema and global secondary indexes of `tables` (`DescribeTable`, through
    /// `config`: wrap it or not), so writes are priced with their index writes.
    pub async fn learn_tables(
        &self,
        config: &SdkConfig,
        tables: &[&str],
    ) -> Result<(), omniline_ports::PortError> {
        let client = aws_sdk_dynamodb::Client::new(config);
        for table in tables {
            let described = client
                .describe_table()
                .table_name(*table)
                .send()
                .await
                .map_err(|e| crate::aws_error("DynamoDB DescribeTable", e))?;
            let Some(t) = described.table else { continue };
            let names = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| {
                schema.iter().map(|k| k.attribute_name.clone()).collect()
            };
            let indexes = t
                .global_secondary_indexes()
                .iter()
                .map(|g| IndexDef {
                    keys: names(g.key_schema()),
                    projected: match g.projection().and_then(|p| p.projection_type()) {
                        Some(aws_sdk_dynamodb::types::ProjectionType::All) => None,
                        _ => Some(
                            g.projection()
                                .map(|p| p.non_key_attributes().to_vec())
                                .unwrap_or_default(),
                        ),
                    },
                })
                .collect();
            self.lock().tables.insert(
                (*table).to_owned(),
                TableDef {
                    keys: names(t.key_schema()),
                    indexes,
                },
            );
        }
        Ok(())
    }

    /// What has been counted so far, by service then operation.
    pub fn snapshot(&self) -> MeterSnapshot {
        let state = self.lock();
        MeterSnapshot {
            operations: state.counts.values().cloned().collect(),
            kinds: state
                .kinds
                .iter()
                .map(|(kind, (w, i))| KindCount {
                    kind: kind.clone(),
                    write_units: *w,
                    index_write_units: *i,
                })
                .collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, call: &Call, status: u16, response: &[u8]) {
        let ok = (200..300).contains(&status);
        // A receive that found nothing is a poller's idle cost (a fixed cost per poller with long
        // polling), not a message's: counted apart.
        let empty_receive = call.service == "sqs"
            && call.operation == "ReceiveMessage"
            && serde_json::from_slice::<Value>(response)
                .map(|r| r["Messages"].as_array().is_none_or(Vec::is_empty))
                .unwrap_or(false);
        let operation = if empty_receive {
            format!("{} (empty)", call.operation)
        } else {
            call.operation.clone()
        };
        let mut state = self.lock();
        let (read, write, index) = if call.service == "dynamodb" {
            let request: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
            let response: Value = serde_json::from_slice(response).unwrap_or(Value::Null);
            state.dynamodb_units(&call.operation, &request, &response, ok)
        } else {
            (0.0, 0.0, 0.0)
        };
        let entry = state
            .counts
            .entry((call.service.clone(), operation.clone()))
            .or_insert_with(|| OperationCount {
                service: call.service.clone(),
                operation,
                ..OperationCount::default()
            });
        entry.requests += 1;
        entry.errors += u64::from(!ok);
        entry.read_units += read;
        entry.write_units += write;
        entry.index_write_units += index;
        entry.request_bytes += call.body.len() as u64;
        entry.response_bytes += response.len() as u64;
    }
}

/// One request as the meter needs it.
struct Call {
    service: String,
    operation: String,
    body: Vec<u8>,
}

impl Call {
    fn of(request: &HttpRequest) -> Self {
        let headers = request.headers();
        // SigV4: `Credential=AKID/date/region/service/aws4_request`.
        let service = headers
            .get("authorization")
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(3))
            .unwrap_or("unknown")
            .to_owned();
        let operation = match headers.get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_owned(),
            // REST (S3): the method and whether it lists.
            None => {
                let listing = request.uri().contains("list-type=");
                match (request.method(), listing) {
                    ("GET", true) => "ListObjectsV2",
                    ("GET", false) => "GetObject",
                    ("PUT", _) => "PutObject",
                    ("HEAD", _) => "HeadObject",
                    ("DELETE", _) => "DeleteObject",
                    ("POST", _) => "Post",
                    _ => "Other",
                }
                .to_owned()
            }
        };
        Self {
            service,
            operation,
            body: request.body().bytes().unwrap_or_default().to_vec(),
        }
    }
}

#[derive(Debug)]
struct MeteredClient {
    inner: SharedHttpClient,
    meter: WireMeter,
}

impl HttpClient for MeteredClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(MeteredConnector {
            inner: self.inner.http_connector(settings, components),
            meter: self.meter.clone(),
        })
    }
}

#[derive(Debug)]
struct MeteredConnector {
    inner: SharedHttpConnector,
    meter: WireMeter,
}

impl HttpConnector for MeteredConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = Call::of(&request);
        let meter = self.meter.clone();
        let pending = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let mut response = pending.await?;
            let status = response.status().as_u16();
            let body = ByteStream::new(response.take_body())
                .collect()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?
                .into_bytes();
            meter.record(&call, status, &body);
            *response.body_mut() = SdkBody::from(body);
            Ok(response)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB capacity

const WRITE_UNIT: usize = 1024;
const READ_UNIT: usize = 4096;
/// What DynamoDB adds to an index entry's size.
const INDEX_OVERHEAD: usize = 100;

fn units(bytes: usize, unit: usize) -> f64 {
    bytes.div_ceil(unit).max(1) as f64
}

/// The size of an attribute value in DynamoDB's JSON wire form.
fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => number_size(n),
        ("B", Value::String(b)) => b.len() * 3 / 4,
        ("BOOL" | "NULL", _) => 1,
        ("SS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::len).sum(),
        ("NS", Value::Array(a)) => a.iter().filter_map(Value::as_str).map(number_size).sum(),
        ("BS", Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|b| b.len() * 3 / 4)
            .sum(),
        ("L", Value::Array(a)) => 3 + a.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits = n.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

/// The kind of an item by its key ([`KindCount`]): `{pk before '#'}/{sk before '#'}`, `*` for a
/// sort key without `#` that is not a word in capitals (an id).
fn kind_of(key: &Map<String, Value>) -> String {
    let text = |name: &str| key.get(name).and_then(|v| v["S"].as_str()).unwrap_or("");
    let pk = text("pk").split('#').next().unwrap_or("");
    let sk = text("sk");
    let sk = match sk.split_once('#') {
        Some((prefix, _)) => prefix,
        None if !sk.is_empty() && sk.chars().all(|c| c.is_ascii_uppercase() || c == '_') => sk,
        None => "*",
    };
    format!("{pk}/{sk}")
}

fn shadow_of(item: &Map<String, Value>) -> Shadow {
    item.iter()
        .map(|(k, v)| (k.clone(), (k.len() + value_size(v), v.clone())))
        .collect()
}

fn shadow_size(item: &Shadow) -> usize {
    item.values().map(|(size, _)| size).sum()
}

impl State {
    fn table(&self, name: &str) -> TableDef {
        self.tables.get(name).cloned().unwrap_or(TableDef {
            keys: vec!["pk".into(), "sk".into()],
            indexes: Vec::new(),
        })
    }

    fn item_key(&self, table: &str, item: &Map<String, Value>) -> (String, String) {
        let keys = self.table(table).keys;
        let key: Vec<String> = keys
            .iter()
            .map(|k| item.get(k).map(Value::to_string).unwrap_or_default())
            .collect();
        (table.to_owned(), key.join("|"))
    }

    /// (read, write, index write) units of one DynamoDB call.
    fn dynamodb_units(
        &mut self,
        operation: &str,
        request: &Value,
        response: &Value,
        ok: bool,
    ) -> (f64, f64, f64) {
        let table = request["TableName"].as_str().unwrap_or_default().to_owned();
        let consistent = |r: &Value| {
            if r["ConsistentRead"].as_bool() == Some(true) {
                1.0
            } else {
                0.5
            }
        };
        match operation {
            "GetItem" => {
                let size = response["Item"]
                    .as_object()
                    .map_or(0, |i| i.iter().map(|(k, v)| k.len() + value_size(v)).sum());
                (units(size, READ_UNIT) * consistent(request), 0.0, 0.0)
            }
            "Query" | "Scan" => {
                let size: usize = response["Items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Value::as_object)
                            .flat_map(|i| i.iter().map(|(k, v)| k.len() + value_size(v)))
                            .sum()
                    })
                    .unwrap_or(0);
                (units(size, READ_UNIT) * consistent(request), 0.0, 0.0)
            }
            // Each key is read as a `GetItem` would be: a key with no item still costs a
            // read unit (half when eventually consistent); unprocessed keys cost nothing yet.
            "BatchGetItem" => {
                let mut read = 0.0;
                let keys =
                    |m: &Value, name: &str| m[name]["Keys"].as_array().map_or(0, |keys| keys.len());
                for (name, asked) in request["RequestItems"].as_object().into_iter().flatten() {
                    let factor = consistent(asked);
                    let items = response["Responses"][name].as_array();
                    let mut found = 0;
                    for item in items.into_iter().flatten() {
                        let size = item
                            .as_object()
                            .map_or(0, |i| i.iter().map(|(k, v)| k.len() + value_size(v)).sum());
                        read += units(size, READ_UNIT) * factor;
                        found += 1;
                    }
                    let read_keys = keys(&request["RequestItems"], name)
                        .saturating_sub(keys(&response["UnprocessedKeys"], name));
                    read += read_keys.saturating_sub(found) as f64 * factor;
                }
                (read, 0.0, 0.0)
            }
            "TransactGetItems" => {
                let read = response["Responses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let size = r["Item"]
                            .as_object()
                            .map_or(0, |i| i.iter().map(|(k, v)| k.len() + value_size(v)).sum());
                        2.0 * units(size, READ_UNIT)
                    })
                    .sum();
                (read, 0.0, 0.0)
            }
            "PutItem" => {
                let (w, i) = self.put(&table, &request["Item"], ok);
                (0.0, w, i)
            }
            "UpdateItem" => {
                let (w, i) = self.update(&table, request, ok);
                (0.0, w, i)
            }
            "DeleteItem" => {
                let (w, i) = self.delete(&table, &request["Key"], ok);
                (0.0, w, i)
            }
            "BatchWriteItem" => {
                let (mut write, mut index) = (0.0, 0.0);
                if let Some(tables) = request["RequestItems"].as_object() {
                    for (name, requests) in tables {
                        for r in requests.as_array().into_iter().flatten() {
                            let (w, i) = if r["PutRequest"].is_object() {
                                self.put(name, &r["PutRequest"]["Item"], ok)
                            } else {
                                self.delete(name, &r["DeleteRequest"]["Key"], ok)
                            };
                            write += w;
                            index += i;
                        }
                    }
                }
                (0.0, write, index)
            }
            "TransactWriteItems" => {
                let (mut write, mut index) = (0.0, 0.0);
                self.in_transaction = true;
                for item in request["TransactItems"].as_array().into_iter().flatten() {
                    let (w, i) = if item["Put"].is_object() {
                        let put = &item["Put"];
                        self.put(
                            put["TableName"].as_str().unwrap_or_default(),
                            &put["Item"],
                            ok,
                        )
                    } else if item["Update"].is_object() {
                        let update = &item["Update"];
                        self.update(update["TableName"].as_str().unwrap_or_default(), update, ok)
                    } else if item["Delete"].is_object() {
                        let delete = &item["Delete"];
                        self.delete(
                            delete["TableName"].as_str().unwrap_or_default(),
                            &delete["Key"],
                            ok,
                        )
                    } else {
                        let check = &item["ConditionCheck"];
                        let empty = Map::new();
                        let key_map = check["Key"].as_object().unwrap_or(&empty);
                        let key =
                            self.item_key(check["TableName"].as_str().unwrap_or_default(), key_map);
                        let size = self.items.get(&key).map_or(0, shadow_size);
                        self.tally(key_map, (units(size, WRITE_UNIT), 0.0))
                    };
                    write += 2.0 * w;
                    index += 2.0 * i;
                }
                self.in_transaction = false;
                (0.0, write, index)
            }
            _ => (0.0, 0.0, 0.0),
        }
    }

    fn put(&mut self, table: &str, item: &Value, ok: bool) -> (f64, f64) {
        let Some(item) = item.as_object() else {
            return (0.0, 0.0);
        };
        let key = self.item_key(table, item);
        let after = shadow_of(item);
        let units = self.write(table, key, after, ok);
        self.tally(item, units)
    }

    /// Adds `units` (write, index write) of the item with key `key` to its kind's.
    fn tally(&mut self, key: &Map<String, Value>, units: (f64, f64)) -> (f64, f64) {
        let factor = if self.in_transaction { 2.0 } else { 1.0 };
        let entry = self.kinds.entry(kind_of(key)).or_default();
        entry.0 += factor * units.0;
        entry.1 += factor * units.1;
        units
    }

    fn delete(&mut self, table: &str, key_value: &Value, ok: bool) -> (f64, f64) {
        let Some(key_map) = key_value.as_object() else {
            return (0.0, 0.0);
        };
        let key = self.item_key(table, key_map);
        let before = self.items.get(&key).cloned().unwrap_or_default();
        let w = units(shadow_size(&before), WRITE_UNIT);
        let i = self.index_writes(table, Some(&before), None);
        if ok {
            self.items.remove(&key);
        }
        self.tally(key_map, (w, i))
    }

    fn update(&mut self, table: &str, request: &Value, ok: bool) -> (f64, f64) {
        let Some(key_map) = request["Key"].as_object() else {
            return (0.0, 0.0);
        };
        let key = self.item_key(table, key_map);
        let mut after = self
            .items
            .get(&key)
            .cloned()
            .unwrap_or_else(|| shadow_of(key_map));
        let names = request["ExpressionAttributeNames"].as_object();
        let values = request["ExpressionAttributeValues"].as_object();
        let name_of = |token: &str| -> String {
            // The top-level attribute of a path (`#a.#b[0]` → `a`).
            let top = token
                .split(['.', '['])
                .next()
                .unwrap_or(token)
                .trim()
                .to_owned();
            match names.and_then(|n| n.get(&top)).and_then(Value::as_str) {
                Some(real) => real.to_owned(),
                None => top,
            }
        };
        let value_of = |token: &str| values.and_then(|v| v.get(token.trim()));
        let expression = request["UpdateExpression"].as_str().unwrap_or_default();
        for (clause, body) in clauses(expression) {
            for action in split_top(body) {
                match clause {
                    "SET" => {
                        let Some((path, expr)) = action.split_once('=') else {
                            continue;
                        };
                        let attr = name_of(path);
                        let placeholders: Vec<&str> = expr
                            .split(|c: char| !(c.is_alphanumeric() || c == ':' || c == '_'))
                            .filter(|t| t.starts_with(':'))
                            .collect();
                        let keep_old = expr.contains("if_not_exists") && after.contains_key(&attr);
                        if keep_old {
                            continue;
                        }
                        let appended = expr.contains("list_append") || expr.contains('+');
                        let mut size = if appended {
                            after.get(&attr).map_or(0, |(s, _)| *s)
                        } else {
                            attr.len()
                        };
                        let mut last = Value::Null;
                        for p in placeholders {
                            if let Some(v) = value_of(p) {
                                size += value_size(v);
                                last = v.clone();
                            }
                        }
                        after.insert(attr, (size, last));
                    }
                    "REMOVE" => {
                        after.remove(&name_of(action));
                    }
                    "ADD" | "DELETE" => {
                        let mut parts = action.split_whitespace();
                        let (Some(path), Some(value)) = (parts.next(), parts.next()) else {
                            continue;
                        };
                        let attr = name_of(path);
                        let added = value_of(value).map_or(0, value_size);
                        let old = after.get(&attr).map_or(attr.len(), |(s, _)| *s);
                        let size = if clause == "ADD" { old + added } else { old };
                        let v = value_of(value).cloned().unwrap_or(Value::Null);
                        after.insert(attr, (size, v));
                    }
                    _ => {}
                }
            }
        }
        let written = self.write(table, key, after, ok);
        self.tally(key_map, written)
    }

    fn write(&mut self, table: &str, key: (String, String), after: Shadow, ok: bool) -> (f64, f64) {
        let before = self.items.get(&key).cloned();
        let size = shadow_size(&after).max(before.as_ref().map_or(0, shadow_size));
        let w = units(size, WRITE_UNIT);
        let i = self.index_writes(table, before.as_ref(), Some(&after));
        if ok {
            self.items.insert(key, after);
        }
        (w, i)
    }

    /// Index write units of an item going from `before` to `after` (`None`: absent).
    fn index_writes(&self, table: &str, before: Option<&Shadow>, after: Option<&Shadow>) -> f64 {
        let def = self.table(table);
        let mut total = 0.0;
        for index in &def.indexes {
            let in_index = |item: Option<&Shadow>| {
                item.is_some_and(|i| index.keys.iter().all(|k| i.contains_key(k)))
            };
            let entry_size = |item: &Shadow| {
                INDEX_OVERHEAD
                    + item
                        .iter()
                        .filter(|(name, _)| {
                            def.keys.contains(name)
                                || index.keys.contains(name)
                                || index.projected.as_ref().is_none_or(|p| p.contains(name))
                        })
                        .map(|(_, (size, _))| size)
                        .sum::<usize>()
            };
            total += match (in_index(before), in_index(after), before, after) {
                (true, true, Some(b), Some(a)) => {
                    let key_changed = index
                        .keys
                        .iter()
                        .any(|k| b.get(k).map(|x| &x.1) != a.get(k).map(|x| &x.1));
                    let projected_changed = a.iter().any(|(name, (_, v))| {
                        !def.keys.contains(name)
                            && !index.keys.contains(name)
                            && index.projected.as_ref().is_none_or(|p| p.contains(name))
                            && b.get(name).map(|x| &x.1) != Some(v)
                    });
                    if key_changed {
                        units(entry_size(b), WRITE_UNIT) + units(entry_size(a), WRITE_UNIT)
                    } else if projected_changed {
                        units(entry_size(a), WRITE_UNIT)
                    } else {
                        0.0
                    }
                }
                (true, false, Some(b), _) => units(entry_size(b), WRITE_UNIT),
                (false, true, _, Some(a)) => units(entry_size(a), WRITE_UNIT),
                _ => 0.0,
            };
        }
        total
    }
}

/// The clauses of an update expression: (`SET`|`REMOVE`|`ADD`|`DELETE`, its text).
fn clauses(expression: &str) -> Vec<(&'static str, &str)> {
    const KEYWORDS: [&str; 4] = ["SET", "REMOVE", "ADD", "DELETE"];
    let upper = expression.to_ascii_uppercase();
    let mut starts: Vec<(usize, &'static str)> = Vec::new();
    for keyword in KEYWORDS {
        let mut from = 0;
        while let Some(found) = upper[from..].find(keyword) {
            let at = from + found;
            let before_ok = at == 0 || !upper.as_bytes()[at - 1].is_ascii_alphanumeric();
            let end = at + keyword.len();
            let after_ok = end < upper.len() && upper.as_bytes()[end].is_ascii_whitespace();
            if before_ok && after_ok {
                starts.push((at, keyword));
            }
            from = end;
        }
    }
    starts.sort_unstable();
    starts
        .iter()
        .enumerate()
        .map(|(n, (at, keyword))| {
            let end = starts
                .get(n + 1)
                .map_or(expression.len(), |(next, _)| *next);
            (*keyword, &expression[at + keyword.len()..end])
        })
        .collect()
}

/// `text` split at commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = text[start..].trim();
    if !last.is_empty() {
        out.push(last);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> State {
        let mut state = State::default();
        state.tables.insert(
            "t".into(),
            TableDef {
                keys: vec!["pk".into(), "sk".into()],
                indexes: vec![IndexDef {
                    keys: vec!["gk".into()],
                    projected: Some(vec![]),
                }],
            },
        );
        state
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(value_size(&json!({"S": "héllo"})), 6);
        assert_eq!(value_size(&json!({"N": "12345"})), 4);
        assert_eq!(value_size(&json!({"BOOL": true})), 1);
        assert_eq!(value_size(&json!({"M": {"a": {"S": "xy"}}})), 3 + 1 + 1 + 2);
        assert_eq!(
            value_size(&json!({"L": [{"S": "x"}, {"N": "1"}]})),
            3 + 2 + 3
        );
    }

    #[test]
    fn a_put_costs_a_unit_per_started_kib_and_its_index_entry() {
        let mut s = state();
        let small = json!({"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}});
        assert_eq!(
            s.dynamodb_units("PutItem", &small, &Value::Null, true),
            (0.0, 1.0, 0.0)
        );
        let big = json!({"TableName": "t", "Item": {
            "pk": {"S": "a"}, "sk": {"S": "b"}, "doc": {"S": "x".repeat(1500)}, "gk": {"S": "g"}}});
        assert_eq!(
            s.dynamodb_units("PutItem", &big, &Value::Null, true),
            (0.0, 2.0, 1.0)
        );
        // Same keys, same index key: the keys-only index is not written; the item is 2 KiB.
        assert_eq!(
            s.dynamodb_units("PutItem", &big, &Value::Null, true),
            (0.0, 2.0, 0.0)
        );
    }

    #[test]
    fn an_update_is_priced_on_the_larger_image_and_a_key_change_writes_the_index_twice() {
        let mut s = state();
        let put = json!({"TableName": "t", "Item": {
            "pk": {"S": "a"}, "sk": {"S": "b"}, "doc": {"S": "x".repeat(1500)}, "gk": {"S": "g"}}});
        s.dynamodb_units("PutItem", &put, &Value::Null, true);
        let shrink = json!({"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "b"}},
            "UpdateExpression": "SET #d = :d, gk = :g REMOVE other",
            "ExpressionAttributeNames": {"#d": "doc"},
            "ExpressionAttributeValues": {":d": {"S": "small"}, ":g": {"S": "h"}}});
        assert_eq!(
            s.dynamodb_units("UpdateItem", &shrink, &Value::Null, true),
            (0.0, 2.0, 2.0)
        );
        // Now small: one unit, and the index key is unchanged.
        let touch = json!({"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "b"}},
            "UpdateExpression": "SET #n = if_not_exists(#n, :z) + :one",
            "ExpressionAttributeNames": {"#n": "n"},
            "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}}});
        assert_eq!(
            s.dynamodb_units("UpdateItem", &touch, &Value::Null, true),
            (0.0, 1.0, 0.0)
        );
    }

    #[test]
    fn transactions_cost_twice_and_reads_follow_consistency() {
        let mut s = state();
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "1"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}}}}
        ]});
        assert_eq!(
            s.dynamodb_units("TransactWriteItems", &tx, &Value::Null, false),
            (0.0, 4.0, 0.0)
        );
        let get = json!({"TableName": "t", "ConsistentRead": true});
        let found = json!({"Item": {"doc": {"S": "x".repeat(5000)}}});
        assert_eq!(
            s.dynamodb_units("GetItem", &get, &found, true),
            (2.0, 0.0, 0.0)
        );
        let eventual = json!({"TableName": "t"});
        assert_eq!(
            s.dynamodb_units("GetItem", &eventual, &json!({}), true),
            (0.5, 0.0, 0.0)
        );
    }

    #[test]
    fn a_batch_get_costs_a_read_per_key_found_or_not_unprocessed_keys_nothing() {
        let mut s = state();
        let key = |k: &str| json!({"pk": {"S": k}, "sk": {"S": "s"}});
        let request = json!({"RequestItems": {"t": {
            "Keys": [key("a"), key("b"), key("c"), key("d")], "ConsistentRead": true}}});
        // "a" found (5,000 bytes: 2 units), "b" and "c" not there (1 each), "d" left unprocessed.
        let response = json!({
            "Responses": {"t": [{"pk": {"S": "a"}, "doc": {"S": "x".repeat(5000)}}]},
            "UnprocessedKeys": {"t": {"Keys": [key("d")], "ConsistentRead": true}}
        });
        assert_eq!(
            s.dynamodb_units("BatchGetItem", &request, &response, true),
            (4.0, 0.0, 0.0)
        );
        let eventual = json!({"RequestItems": {"t": {"Keys": [key("a"), key("b")]}}});
        assert_eq!(
            s.dynamodb_units(
                "BatchGetItem",
                &eventual,
                &json!({"Responses": {"t": []}}),
                true
            ),
            (1.0, 0.0, 0.0)
        );
    }

    #[test]
    fn write_units_are_told_by_kind_of_item_transactions_twice() {
        let mut s = state();
        let tx = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "EVENT#a#e1"}, "sk": {"S": "EVENT"}}}},
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "CONV#c1"}, "sk": {"S": "T#0001#e1"}, "gk": {"S": "g"}}}}
        ]});
        s.dynamodb_units("TransactWriteItems", &tx, &Value::Null, true);
        let put =
            json!({"TableName": "t", "Item": {"pk": {"S": "SEARCH#a#d1"}, "sk": {"S": "U1"}}});
        s.dynamodb_units("PutItem", &put, &Value::Null, true);
        let kinds: Vec<(String, f64, f64)> = s
            .kinds
            .iter()
            .map(|(k, (w, i))| (k.clone(), *w, *i))
            .collect();
        assert_eq!(
            kinds,
            [
                ("CONV/T".to_owned(), 2.0, 2.0),
                ("EVENT/EVENT".to_owned(), 2.0, 0.0),
                ("SEARCH/*".to_owned(), 1.0, 0.0),
            ]
        );
        // The kinds add up to what the operations count.
        let total: f64 = s.kinds.values().map(|(w, i)| w + i).sum();
        assert_eq!(total, 7.0);
    }

    #[test]
    fn update_expressions_split_into_clauses() {
        assert_eq!(
            clauses("SET a = :a, b = list_append(b, :l) REMOVE c ADD n :one"),
            vec![
                ("SET", " a = :a, b = list_append(b, :l) "),
                ("REMOVE", " c "),
                ("ADD", " n :one")
            ]
        );
        assert_eq!(
            split_top(" a = :a, b = f(x, y) "),
            vec!["a = :a", "b = f(x, y)"]
        );
    }
}
