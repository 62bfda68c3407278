//! A LINE Messaging API stand-in and the echo bot, on one local HTTP server.
//!
//! LINE's rules that matter to "exactly once" are kept: a reply token is accepted once (a second
//! use is 400 "Invalid reply token"); a push whose `X-Line-Retry-Key` was accepted before is 409
//! with `x-line-accepted-request-id`. Every accepted message object is recorded with the time it
//! arrived. With faults on, a share of reply/push/profile/content calls fail: 500 or 429 before
//! anything is accepted, a reset or a 500 after the message was accepted (the sender cannot know),
//! or no answer until the client times out.
//!
//! The bot (`POST /bot`) answers every customer turn with `ack {webhookEventId}`.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A message object LINE accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub at: Instant,
    /// `reply:{token}` or `push:{to}`.
    pub via: Via,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Reply(String),
    Push(String),
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FaultCounts {
    pub before_500: u64,
    pub before_429: u64,
    pub after_reset: u64,
    pub after_500: u64,
    pub hang: u64,
}

impl FaultCounts {
    pub fn total(&self) -> u64 {
        self.before_500 + self.before_429 + self.after_reset + self.after_500 + self.hang
    }
}

#[derive(Default)]
struct State {
    accepted: Vec<Accepted>,
    used_reply_tokens: HashSet<String>,
    retry_keys: HashMap<String, String>,
    bot_asks: Vec<String>,
    faults: FaultCounts,
    reply_calls: u64,
    push_calls: u64,
    conflicts_409: u64,
    invalid_token_400: u64,
}

pub struct LineSim {
    pub addr: SocketAddr,
    state: Mutex<State>,
    /// Fault probability in millionths (0 = off).
    fault_ppm: AtomicU64,
    /// How long a hung call waits (longer than the stack's LINE timeout).
    hang: Duration,
    seq: AtomicU64,
    rng: Mutex<crate::corpus::Rng>,
    /// Bot tokens → bot user ids (`/v2/bot/info`).
    bots: Mutex<HashMap<String, String>>,
    bot_secret: String,
}

/// What the ledger reads after a run.
pub struct Snapshot {
    pub accepted: Vec<Accepted>,
    pub bot_asks: Vec<String>,
    pub faults: FaultCounts,
    pub reply_calls: u64,
    pub push_calls: u64,
    pub conflicts_409: u64,
    pub invalid_token_400: u64,
}

type Reply = Result<Response<Full<Bytes>>, std::io::Error>;

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    r
}

impl LineSim {
    pub async fn start(hang: Duration, bot_secret: &str) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim = Arc::new(Self {
            addr: listener.local_addr()?,
            state: Mutex::new(State::default()),
            fault_ppm: AtomicU64::new(0),
            hang,
            seq: AtomicU64::new(1),
            rng: Mutex::new(crate::corpus::Rng::new(0x5eed)),
            bots: Mutex::new(HashMap::new()),
            bot_secret: bot_secret.to_owned(),
        });
        let server = Arc::clone(&sim);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let sim = Arc::clone(&server);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let sim = Arc::clone(&sim);
                        async move { sim.handle(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(sim)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn add_bot(&self, token: &str, user_id: &str) {
        self.bots
            .lock()
            .expect("lock")
            .insert(token.to_owned(), user_id.to_owned());
    }

    /// Faults on reply, push, profile and content calls with this probability (0 = off).
    pub fn set_faults(&self, probability: f64) {
        self.fault_ppm
            .store((probability * 1e6) as u64, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = self.state.lock().expect("lock");
        Snapshot {
            accepted: s.accepted.clone(),
            bot_asks: s.bot_asks.clone(),
            faults: s.faults,
            reply_calls: s.reply_calls,
            push_calls: s.push_calls,
            conflicts_409: s.conflicts_409,
            invalid_token_400: s.invalid_token_400,
        }
    }

    pub fn accepted_count(&self) -> usize {
        self.state.lock().expect("lock").accepted.len()
    }

    fn request_id(&self) -> String {
        format!("req-{:016x}", self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// The fault to inject into this call, if any.
    fn fault(&self) -> Option<Fault> {
        let ppm = self.fault_ppm.load(Ordering::SeqCst);
        if ppm == 0 {
            return None;
        }
        let mut rng = self.rng.lock().expect("lock");
        if rng.below(1_000_000) >= ppm {
            return None;
        }
        Some(match rng.below(100) {
            0..=29 => Fault::Before500,
            30..=54 => Fault::Before429,
            55..=79 => Fault::AfterReset,
            80..=91 => Fault::After500,
            _ => Fault::Hang,
        })
    }

    fn count(&self, fault: Fault) {
        let mut s = self.state.lock().expect("lock");
        match fault {
            Fault::Before500 => s.faults.before_500 += 1,
            Fault::Before429 => s.faults.before_429 += 1,
            Fault::AfterReset => s.faults.after_reset += 1,
            Fault::After500 => s.faults.after_500 += 1,
            Fault::Hang => s.faults.hang += 1,
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Reply {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let retry_key = req
            .headers()
            .get("x-line-retry-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let signature = req
            .headers()
            .get(omniline_domain::bot::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = req
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();

        if method == "POST" && path == "/bot" {
            return Ok(self.bot(&body, signature.as_deref()));
        }
        if method == "GET" && path == "/v2/bot/info" {
            let bots = self.bots.lock().expect("lock");
            return Ok(match auth.as_deref().and_then(|t| bots.get(t)) {
                Some(user) => json_response(
                    StatusCode::OK,
                    json!({"userId": user, "basicId": "@loadtest", "displayName": "Load test",
                           "chatMode": "chat", "markAsReadMode": "auto"}),
                ),
                None => json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "Authentication failed"}),
                ),
            });
        }
        if path.starts_with("/v2/bot/channel/webhook") {
            return Ok(json_response(
                StatusCode::OK,
                json!({"success": true, "timestamp": "2026-11-25T00:00:00Z", "statusCode": 200,
                       "reason": "OK", "detail": "200", "endpoint": "", "active": true}),
            ));
        }
        let fault = if path.starts_with("/v2/bot/") {
            self.fault()
        } else {
            None
        };
        if let Some(f @ (Fault::Before500 | Fault::Before429 | Fault::Hang)) = fault {
            self.count(f);
            return Ok(match f {
                Fault::Before500 => json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "Internal error"}),
                ),
                Fault::Before429 => json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"message": "The API rate limit has been exceeded. Try again later."}),
                ),
                _ => {
                    tokio::time::sleep(self.hang).await;
                    json_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"message": "late"}),
                    )
                }
            });
        }
        let response = if method == "GET" && path.starts_with("/v2/bot/profile/") {
            let user = &path["/v2/bot/profile/".len()..];
            json_response(
                StatusCode::OK,
                json!({"userId": user, "displayName": format!("Cust-{}", &user[1..9.min(user.len())]), "language": "en"}),
            )
        } else if method == "GET"
            && path.starts_with("/v2/bot/message/")
            && path.ends_with("/content")
        {
            // A 1×1 PNG.
            const PNG: &[u8] = &[
                0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44,
                0x52, 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a,
                0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d,
                0xb4, 0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
            ];
            let mut r = Response::new(Full::new(Bytes::from_static(PNG)));
            r.headers_mut()
                .insert("content-type", "image/png".parse().expect("static"));
            r
        } else if method == "POST" && path == "/v2/bot/message/reply" {
            self.reply(&body)
        } else if method == "POST" && path == "/v2/bot/message/push" {
            self.push(&body, retry_key.as_deref())
        } else if method == "POST" && path.starts_with("/v2/bot/chat/") {
            json_response(StatusCode::ACCEPTED, json!({}))
        } else {
            json_response(StatusCode::NOT_FOUND, json!({"message": "Not found"}))
        };
        match fault {
            Some(f @ Fault::AfterReset) if response.status().is_success() => {
                self.count(f);
                // The connection closes without an answer.
                Err(std::io::Error::other("injected reset"))
            }
            Some(f @ Fault::After500) if response.status().is_success() => {
                self.count(f);
                Ok(json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "Internal error"}),
                ))
            }
            _ => Ok(response),
        }
    }

    fn texts(body: &Value) -> Option<Vec<String>> {
        let messages = body.get("messages")?.as_array()?;
        if messages.is_empty() || messages.len() > 5 {
            return None;
        }
        messages
            .iter()
            .map(|m| {
                let kind = m.get("type")?.as_str()?;
                Some(match kind {
                    "text" => m.get("text")?.as_str()?.to_owned(),
                    other => format!("<{other}>"),
                })
            })
            .collect()
    }

    fn reply(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let parsed: Option<(String, Vec<String>)> =
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                let token = v.get("replyToken")?.as_str()?.to_owned();
                Some((token, Self::texts(&v)?))
            });
        let Some((token, texts)) = parsed else {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"message": "The request body has 1 error(s)"}),
            );
        };
        let mut s = self.state.lock().expect("lock");
        s.reply_calls += 1;
        if !s.used_reply_tokens.insert(token.clone()) {
            s.invalid_token_400 += 1;
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid reply token"}),
            );
        }
        let at = Instant::now();
        let n = texts.len();
        for text in texts {
            s.accepted.push(Accepted {
                at,
                via: Via::Reply(token.clone()),
                text,
            });
        }
        drop(s);
        let mut r = json_response(StatusCode::OK, sent_messages(n));
        r.headers_mut().insert(
            "x-line-request-id",
            self.request_id().parse().expect("ascii"),
        );
        r
    }

    fn push(&self, body: &[u8], retry_key: Option<&str>) -> Response<Full<Bytes>> {
        let parsed: Option<(String, Vec<String>)> =
            serde_json::from_slice::<Value>(body).ok().and_then(|v| {
                let to = v.get("to")?.as_str()?.to_owned();
                Some((to, Self::texts(&v)?))
            });
        let Some((to, texts)) = parsed else {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"message": "The request body has 1 error(s)"}),
            );
        };
        let request_id = self.request_id();
        let mut s = self.state.lock().expect("lock");
        s.push_calls += 1;
        if let Some(key) = retry_key {
            if let Some(first) = s.retry_keys.get(key).cloned() {
                s.conflicts_409 += 1;
                let mut r = json_response(
                    StatusCode::CONFLICT,
                    json!({"message": "The retry key is already accepted"}),
                );
                r.headers_mut()
                    .insert("x-line-accepted-request-id", first.parse().expect("ascii"));
                return r;
            }
            s.retry_keys.insert(key.to_owned(), request_id.clone());
        }
        let at = Instant::now();
        let n = texts.len();
        for text in texts {
            s.accepted.push(Accepted {
                at,
                via: Via::Push(to.clone()),
                text,
            });
        }
        drop(s);
        let mut r = json_response(StatusCode::OK, sent_messages(n));
        r.headers_mut()
            .insert("x-line-request-id", request_id.parse().expect("ascii"));
        r
    }

    fn bot(&self, body: &[u8], signature: Option<&str>) -> Response<Full<Bytes>> {
        let signed = omniline_domain::line::signature::verify_signature(
            self.bot_secret.as_bytes(),
            body,
            signature,
        )
        .is_ok();
        if !signed {
            return json_response(
                StatusCode::UNAUTHORIZED,
                json!({"message": "bad signature"}),
            );
        }
        let Some(event_id) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("eventId").and_then(Value::as_str).map(str::to_owned))
        else {
            return json_response(StatusCode::BAD_REQUEST, json!({"message": "no eventId"}));
        };
        self.state
            .lock()
            .expect("lock")
            .bot_asks
            .push(event_id.clone());
        json_response(
            StatusCode::OK,
            json!({"messages": [{"type": "text", "text": format!("ack {event_id}")}]}),
        )
    }
}

fn sent_messages(n: usize) -> Value {
    let sent: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("4612309668420{i:05}"), "quoteToken": "q"}))
        .collect();
    json!({ "sentMessages": sent })
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Before500,
    Before429,
    AfterReset,
    After500,
    Hang,
}
