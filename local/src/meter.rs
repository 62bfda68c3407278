//! The cost meter of the AWS backend (`OMNILINE_METER=on`, with `AWS_WORKERS=on`): every AWS
//! request of the stack, by operation, with DynamoDB's capacity units computed from the items on
//! the wire ([`omniline_aws::meter::WireMeter`]), and the invocations each function would have
//! on Lambda with the time spent in them: a webhook request, a router or outbound batch.
//! `GET /_meter` (admin token) answers what was counted so far; the load test reads it before
//! and after a phase and prices the difference (`loadtest/src/cost.rs`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use omniline_aws::meter::WireMeter;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Each function's memory on Lambda (template.yaml's `Globals.Function.MemorySize`).
pub const LAMBDA_MEMORY_MB: u64 = 256;

/// Invocations per function, and the time spent in them.
#[derive(Debug, Clone, Default)]
pub struct Invocations(Arc<Mutex<BTreeMap<&'static str, (u64, Duration)>>>);

impl Invocations {
    /// One invocation of `function` that took `elapsed`.
    pub fn record(&self, function: &'static str, elapsed: Duration) {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counts.entry(function).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }

    fn json(&self) -> serde_json::Value {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts
            .iter()
            .map(|(function, (count, elapsed))| {
                json!({
                    "function": function,
                    "count": count,
                    "totalMillis": elapsed.as_secs_f64() * 1000.0,
                    "memoryMb": LAMBDA_MEMORY_MB,
                })
            })
            .collect()
    }
}

/// What the stack counts when metered.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    pub wire: WireMeter,
    pub invocations: Invocations,
}

/// `GET /_meter`: the counts so far (behind the admin token: see `lib.rs`).
pub(crate) async fn report(State(meter): State<Meter>) -> Response {
    let wire = meter.wire.snapshot();
    Json(json!({
        "operations": wire.operations,
        "kinds": wire.kinds,
        "invocations": meter.invocations.json(),
    }))
    .into_response()
}

/// Counts each webhook request as one invocation of the webhook function.
pub(crate) async fn count_webhook(
    State(invocations): State<Invocations>,
    request: Request,
    next: Next,
) -> Response {
    let webhook = request.uri().path().starts_with("/line/webhook/");
    let started = Instant::now();
    let response = next.run(request).await;
    if webhook {
        invocations.record("webhook", started.elapsed());
    }
    response
}
