//! The cost meter's bill: what a phase of the load run used on AWS (requests by operation and
//! DynamoDB capacity from `omniline_aws::meter`, function invocations and their measured
//! durations, log bytes), priced at AWS list prices for us-east-1 ([`US_EAST_1`], the table
//! in `docs/cost.md`), per million inbound messages.

use omniline_aws::meter::MeterSnapshot;
use serde::Deserialize;
use std::fmt::Write as _;

/// List prices, per unit.
#[derive(Debug, Clone, Copy)]
pub struct Prices {
    pub region: &'static str,
    /// Per GB-second (arm64).
    pub lambda_gb_second: f64,
    pub lambda_request: f64,
    /// Per request of the HTTP API (the webhook's entry when it is not a function URL).
    pub http_api_request: f64,
    /// Per SQS request (FIFO, per 64 KiB chunk).
    pub sqs_request: f64,
    pub dynamodb_write_unit: f64,
    pub dynamodb_read_unit: f64,
    pub log_gb: f64,
    pub secrets_manager_call: f64,
    pub s3_put: f64,
    pub s3_get: f64,
}

/// us-east-1 list prices (AWS price pages, 2025; the table in `docs/cost.md` §4).
pub const US_EAST_1: Prices = Prices {
    region: "us-east-1",
    lambda_gb_second: 0.000_013_333_4,
    lambda_request: 0.20 / 1e6,
    http_api_request: 1.00 / 1e6,
    sqs_request: 0.50 / 1e6,
    dynamodb_write_unit: 0.625 / 1e6,
    dynamodb_read_unit: 0.125 / 1e6,
    log_gb: 0.50,
    secrets_manager_call: 0.05 / 10_000.0,
    s3_put: 0.005 / 1_000.0,
    s3_get: 0.0004 / 1_000.0,
};

/// How LINE's requests reach the webhook function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    HttpApi,
    FunctionUrl,
}

/// A function's invocations in a phase, with their measured time in the handler.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocations {
    pub function: String,
    pub count: u64,
    pub total_millis: f64,
    pub memory_mb: u64,
}

/// What a phase used: the stack's `GET /_meter` (the wire meter's snapshot and the
/// invocations), and the bytes it logged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(flatten)]
    pub aws: MeterSnapshot,
    pub invocations: Vec<Invocations>,
    #[serde(default)]
    pub log_bytes: u64,
}

impl Usage {
    /// `self` minus `earlier` (both cumulative readings of the same stack).
    pub fn since(&self, earlier: &Usage) -> Usage {
        let invocations = self
            .invocations
            .iter()
            .map(|i| {
                let before = earlier
                    .invocations
                    .iter()
                    .find(|e| e.function == i.function);
                let mut d = i.clone();
                if let Some(b) = before {
                    d.count = d.count.saturating_sub(b.count);
                    d.total_millis -= b.total_millis;
                }
                d
            })
            .filter(|i| i.count > 0)
            .collect();
        Usage {
            aws: self.aws.since(&earlier.aws),
            invocations,
            log_bytes: self.log_bytes.saturating_sub(earlier.log_bytes),
        }
    }
}

/// Where a phase's DynamoDB write units went, per message: `kind units` by kind of item
/// (`omniline_aws::meter::KindCount`), most first.
pub fn write_units_by_kind(usage: &Usage, messages: f64) -> String {
    let mut kinds: Vec<(String, f64)> = usage
        .aws
        .kinds
        .iter()
        .map(|k| (k.kind.clone(), k.write_units + k.index_write_units))
        .collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kinds
        .iter()
        .map(|(kind, units)| format!("{kind} {:.1}", units / messages.max(1.0)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A priced phase: dollars per line of the bill.
#[derive(Debug, Clone, Default)]
pub struct Bill {
    pub lines: Vec<(String, f64)>,
}

impl Bill {
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|(_, d)| d).sum()
    }

    fn add(&mut self, what: impl Into<String>, dollars: f64) {
        if dollars > 0.0 {
            self.lines.push((what.into(), dollars));
        }
    }

    /// The bill scaled to one million of what it was measured over (`count`).
    pub fn per_million(&self, count: f64) -> Bill {
        let scale = 1e6 / count.max(f64::MIN_POSITIVE);
        Bill {
            lines: self
                .lines
                .iter()
                .map(|(w, d)| (w.clone(), d * scale))
                .collect(),
        }
    }

    /// The breakdown, one line each, and the total.
    pub fn render(&self, title: &str) -> String {
        let mut out = format!("{title}: ${:.2}\n", self.total());
        for (what, dollars) in &self.lines {
            let _ = writeln!(out, "    {what:<44} ${dollars:>7.3}");
        }
        out
    }
}

/// Prices `usage`. `webhook_requests` are LINE's POSTs (each one HTTP API request, unless the
/// webhook is a function URL).
pub fn bill(usage: &Usage, prices: &Prices, entry: Entry, webhook_requests: f64) -> Bill {
    let mut bill = Bill::default();
    if entry == Entry::HttpApi {
        bill.add(
            "API Gateway HTTP API requests",
            webhook_requests * prices.http_api_request,
        );
    }
    for i in &usage.invocations {
        bill.add(
            format!("Lambda {} requests", i.function),
            i.count as f64 * prices.lambda_request,
        );
        // Lambda bills each invocation's duration rounded up to the millisecond.
        let seconds = (i.total_millis + i.count as f64) / 1000.0;
        bill.add(
            format!("Lambda {} GB-s", i.function),
            seconds * (i.memory_mb as f64 / 1024.0) * prices.lambda_gb_second,
        );
    }
    let (mut reads, mut writes, mut index_writes) = (0.0, 0.0, 0.0);
    for o in &usage.aws.operations {
        if o.operation.ends_with("(empty)") {
            // Pollers' empty receives: with long polling (20 s, as Lambda's event source
            // mappings poll) a fixed few per poller and minute, not a cost per message.
            continue;
        }
        match o.service.as_str() {
            "dynamodb" => {
                reads += o.read_units;
                writes += o.write_units;
                index_writes += o.index_write_units;
            }
            "sqs" => bill.add(
                format!("SQS {}", o.operation),
                o.requests as f64 * prices.sqs_request,
            ),
            "secretsmanager" => bill.add(
                format!("Secrets Manager {}", o.operation),
                o.requests as f64 * prices.secrets_manager_call,
            ),
            "s3" => {
                let each = if o.operation.starts_with("Get") || o.operation.starts_with("Head") {
                    prices.s3_get
                } else if o.operation == "DeleteObject" {
                    // Deletes are free.
                    0.0
                } else {
                    prices.s3_put
                };
                bill.add(format!("S3 {}", o.operation), o.requests as f64 * each);
            }
            _ => {}
        }
    }
    bill.add(
        "DynamoDB write units (table)",
        writes * prices.dynamodb_write_unit,
    );
    bill.add(
        "DynamoDB write units (indexes)",
        index_writes * prices.dynamodb_write_unit,
    );
    bill.add("DynamoDB read units", reads * prices.dynamodb_read_unit);
    bill.add(
        "CloudWatch Logs ingestion",
        usage.log_bytes as f64 / 1e9 * prices.log_gb,
    );
    bill
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniline_aws::meter::OperationCount;

    #[test]
    fn write_units_by_kind_are_per_message_most_first() {
        let mut u = usage();
        u.aws.kinds = vec![
            omniline_aws::meter::KindCount {
                kind: "EVENT/EVENT".into(),
                write_units: 4.0,
                index_write_units: 0.0,
            },
            omniline_aws::meter::KindCount {
                kind: "CONV/META".into(),
                write_units: 4.0,
                index_write_units: 2.0,
            },
        ];
        assert_eq!(
            write_units_by_kind(&u, 2.0),
            "CONV/META 3.0, EVENT/EVENT 2.0"
        );
    }

    fn usage() -> Usage {
        Usage {
            aws: MeterSnapshot {
                operations: vec![
                    OperationCount {
                        service: "dynamodb".into(),
                        operation: "TransactWriteItems".into(),
                        requests: 10,
                        write_units: 80.0,
                        index_write_units: 2.0,
                        ..OperationCount::default()
                    },
                    OperationCount {
                        service: "sqs".into(),
                        operation: "SendMessageBatch".into(),
                        requests: 10,
                        ..OperationCount::default()
                    },
                    OperationCount {
                        service: "sqs".into(),
                        operation: "ReceiveMessage (empty)".into(),
                        requests: 1_000,
                        ..OperationCount::default()
                    },
                ],
                kinds: Vec::new(),
            },
            invocations: vec![Invocations {
                function: "router".into(),
                count: 2,
                total_millis: 18.0,
                memory_mb: 256,
            }],
            log_bytes: 2_000,
        }
    }

    #[test]
    fn the_bill_prices_every_part_and_scales_per_million() {
        let bill = bill(&usage(), &US_EAST_1, Entry::HttpApi, 10.0);
        let per_million = bill.per_million(10.0);
        let line = |name: &str| {
            per_million
                .lines
                .iter()
                .find(|(w, _)| w == name)
                .map(|(_, d)| *d)
                .unwrap()
        };
        // 8.2 WRU per message: $5.125 per million at $0.625 per million units.
        assert!((line("DynamoDB write units (table)") - 5.0).abs() < 1e-9);
        assert!((line("DynamoDB write units (indexes)") - 0.125).abs() < 1e-9);
        assert!((line("SQS SendMessageBatch") - 0.5).abs() < 1e-9);
        assert!((line("API Gateway HTTP API requests") - 1.0).abs() < 1e-9);
        // 2 invocations, 20 ms billed, 0.25 GB.
        assert!((line("Lambda router GB-s") - 0.02 * 0.25 * 0.000_013_333_4 * 1e5).abs() < 1e-9);
        // Empty receives are a poller's fixed cost, not a message's.
        assert!(per_million.lines.iter().all(|(w, _)| !w.contains("empty")));
        let url = super::bill(&usage(), &US_EAST_1, Entry::FunctionUrl, 10.0);
        assert!((bill.total() - url.total() - 10.0 * 1e-6).abs() < 1e-12);
    }

    #[test]
    fn a_phase_is_the_difference_of_two_readings() {
        let later = usage();
        let mut earlier = usage();
        earlier.aws.operations[0].requests = 4;
        earlier.aws.operations[0].write_units = 30.0;
        earlier.invocations[0].count = 1;
        earlier.invocations[0].total_millis = 8.0;
        earlier.log_bytes = 500;
        let phase = later.since(&earlier);
        assert_eq!(
            phase.aws.operations.len(),
            1,
            "operations unused in the phase drop out"
        );
        assert_eq!(phase.aws.operations[0].requests, 6);
        assert_eq!(phase.aws.capacity_units(), (0.0, 50.0));
        assert_eq!(phase.invocations[0].count, 1);
        assert_eq!(phase.log_bytes, 1_500);
    }
}
