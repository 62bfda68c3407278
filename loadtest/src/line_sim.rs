//! A LINE Messaging API stand-in and the echo bot, on one local HTTP server.
//!
//! LINE's rules are [`omniline_linesim`]'s, the same the sandbox's simulated platform keeps: the
//! channel access token on every call; messages checked as LINE checks them; a reply token is
//! accepted once, for a minute after its webhook was first sent, for its customer (a second use
//! is 400 "Invalid reply token"); a push goes to a known customer only, and one whose
//! `X-Line-Retry-Key` (a UUID) was accepted before is 409 with `x-line-accepted-request-id`;
//! profiles, content and the loading animation exist for the load's customers and images only;
//! partner-only endpoints are LINE's 403. This file is the HTTP adapter: it records every accepted
//! message object with the time it arrived, and adds what LINE does not: with faults on, a share
//! of the calls the stack makes for customers fail: 500 or 429 before anything is accepted, a
//! reset or a 500 after the message was accepted (the sender cannot know), or no answer until
//! the client times out.
//!
//! The bot (`POST /bot`) answers every customer turn with `ack {webhookEventId}`.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use omniline_linesim::{
    Answer, Call, Channel, Config, Delivery, Endpoint, Millis, ReplyTarget, Simulator, UrlPolicy,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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

/// The endpoints this stand-in answers (the stack's calls during a run); any other is LINE's
/// 404, a partner-only one LINE's 403.
const SERVES: [Endpoint; 10] = [
    Endpoint::BotInfo,
    Endpoint::GetWebhookEndpoint,
    Endpoint::SetWebhookEndpoint,
    Endpoint::TestWebhookEndpoint,
    Endpoint::Profile,
    Endpoint::Content,
    Endpoint::Reply,
    Endpoint::Push,
    Endpoint::StartLoading,
    Endpoint::MarkAsReadByToken,
];

struct State {
    line: Simulator,
    accepted: Vec<Accepted>,
    bot_asks: Vec<String>,
    faults: FaultCounts,
}

pub struct LineSim {
    pub addr: SocketAddr,
    state: Mutex<State>,
    /// Fault probability in millionths (0 = off).
    fault_ppm: AtomicU64,
    /// How long a hung call waits (longer than the stack's LINE timeout).
    hang: Duration,
    rng: Mutex<crate::corpus::Rng>,
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
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn with_request_id(mut r: Response<Full<Bytes>>, request_id: &str) -> Response<Full<Bytes>> {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-line-request-id", v);
    }
    r
}

/// The stand-in's own routes (`omniline-loadtest standin`): what LINE knows that a test must
/// tell it (the reply tokens of the webhooks it signs, the customers who are friends) and what
/// LINE accepted. Not LINE's API: LINE's paths are all under `/v2` and `/oauth2`.
const CONTROL: &str = "/_standin/";

/// The simulator's answer as HTTP.
fn answer_response(answer: &Answer) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, answer.body.clone());
    for (name, value) in answer.headers() {
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().insert(name, v);
        }
    }
    r
}

fn now() -> Millis {
    Millis(omniline_domain::clock::now_millis())
}

impl LineSim {
    pub async fn start(hang: Duration, bot_secret: &str) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let line = Simulator::new(Config {
            urls: UrlPolicy::HttpsOnly,
            serves: SERVES.to_vec(),
            seed: 0x5eed,
            first_message_id: 461_230_966_842_000_000,
            ..Config::default()
        });
        let sim = Arc::new(Self {
            addr: listener.local_addr()?,
            state: Mutex::new(State {
                line,
                accepted: Vec::new(),
                bot_asks: Vec::new(),
                faults: FaultCounts::default(),
            }),
            fault_ppm: AtomicU64::new(0),
            hang,
            rng: Mutex::new(crate::corpus::Rng::new(0x5eed)),
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

    /// The state, even after a panic elsewhere (it holds plain records).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A channel whose calls carry `token`, its bot being `user_id`.
    pub fn add_bot(&self, token: &str, user_id: &str) {
        let mut channel = Channel::new(user_id, token);
        channel.basic_id = "@loadtest".into();
        channel.display_name = "Load test".into();
        self.state().line.add_channel(channel);
    }

    /// Customers (friends of the accounts: pushes, profiles and loading work for them) and the
    /// message ids of what they send with content.
    pub fn add_customers<'a>(
        &self,
        user_ids: impl IntoIterator<Item = &'a str>,
        content_ids: impl IntoIterator<Item = &'a str>,
    ) {
        let mut s = self.state();
        for id in user_ids {
            s.line.add_user(id);
        }
        for id in content_ids {
            s.line.add_content(id);
        }
    }

    /// LINE sends a webhook for `bot`: the reply tokens of its events, each for its chat, from
    /// now on (a token issued before, in a redelivered copy, keeps its first time).
    pub fn issue_reply_tokens<'a>(
        &self,
        bot: &str,
        tokens: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let now = now();
        let mut s = self.state();
        for (token, chat) in tokens {
            let target = ReplyTarget {
                channel: Some(bot.to_owned()),
                chat: chat.to_owned(),
            };
            s.line.issue_reply_token(token, target, now);
        }
    }

    /// Faults on the calls the stack makes for customers with this probability (0 = off).
    pub fn set_faults(&self, probability: f64) {
        self.fault_ppm
            .store((probability * 1e6) as u64, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Snapshot {
        let s = self.state();
        let stats = s.line.stats();
        Snapshot {
            accepted: s.accepted.clone(),
            bot_asks: s.bot_asks.clone(),
            faults: s.faults,
            reply_calls: stats.reply_calls,
            push_calls: stats.push_calls,
            conflicts_409: stats.conflicts,
            invalid_token_400: stats.invalid_reply_tokens,
        }
    }

    pub fn accepted_count(&self) -> usize {
        self.state().accepted.len()
    }

    /// `POST /_standin/webhook {"bot", "customers": [userId], "replyTokens": [[token, chat]]}`:
    /// LINE is sending a webhook with these reply tokens to these friends.
    /// `GET /_standin/accepted`: every message object LINE accepted, in order
    /// (`{"via": "reply"|"push", "replyToken"|"to", "text"}`).
    fn control(&self, method: &hyper::Method, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
        match (method.as_str(), &path[CONTROL.len()..]) {
            ("POST", "webhook") => {
                let Ok(body) = serde_json::from_slice::<Value>(body) else {
                    return json_response(StatusCode::BAD_REQUEST, json!({"message": "not JSON"}));
                };
                let bot = body["bot"].as_str().unwrap_or_default().to_owned();
                let customers: Vec<&str> = body["customers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                self.add_customers(customers, []);
                let tokens: Vec<(&str, &str)> = body["replyTokens"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|pair| Some((pair[0].as_str()?, pair[1].as_str()?)))
                    .collect();
                self.issue_reply_tokens(&bot, tokens);
                json_response(StatusCode::OK, json!({}))
            }
            ("GET", "accepted") => {
                let accepted: Vec<Value> = self
                    .state()
                    .accepted
                    .iter()
                    .map(|a| match &a.via {
                        Via::Reply(token) => {
                            json!({"via": "reply", "replyToken": token, "text": a.text})
                        }
                        Via::Push(to) => json!({"via": "push", "to": to, "text": a.text}),
                    })
                    .collect();
                json_response(StatusCode::OK, json!({ "accepted": accepted }))
            }
            _ => json_response(StatusCode::NOT_FOUND, json!({"message": "Not found"})),
        }
    }

    /// The fault to inject into this call, if any.
    fn fault(&self) -> Option<Fault> {
        let ppm = self.fault_ppm.load(Ordering::SeqCst);
        if ppm == 0 {
            return None;
        }
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
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
        let mut s = self.state();
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
        let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes().to_vec());
        let authorization = header("authorization");
        let retry_key = header("x-line-retry-key");
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
        if path.starts_with(CONTROL) {
            return Ok(self.control(&method, &path, &body));
        }
        // Faults hit the calls made for customers, not the bot info and webhook settings the
        // admin API reads and writes while the run is configured.
        let fault = if path.starts_with("/v2/bot/")
            && path != "/v2/bot/info"
            && !path.starts_with("/v2/bot/channel/webhook")
        {
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
        let response = {
            let mut s = self.state();
            let call = s.line.call(
                &omniline_linesim::Request {
                    method: method.as_str(),
                    path: &path,
                    authorization: authorization.as_deref(),
                    retry_key: retry_key.as_deref(),
                    body: &body,
                },
                now(),
            );
            match call {
                Call::Deliver(delivery) => {
                    record(&mut s.accepted, &delivery);
                    answer_response(&delivery.answer())
                }
                Call::Profile {
                    user_id,
                    request_id,
                    ..
                } => {
                    let short = user_id.get(1..9.min(user_id.len())).unwrap_or_default();
                    let name = format!("Cust-{short}");
                    let body = json!({"userId": user_id, "displayName": name, "language": "en"});
                    with_request_id(json_response(StatusCode::OK, body), &request_id)
                }
                Call::Content { request_id, .. } => {
                    let mut r = Response::new(Full::new(Bytes::from_static(PNG)));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
                    with_request_id(r, &request_id)
                }
                Call::Answer(answer)
                | Call::Loading { answer, .. }
                | Call::MarkRead { answer, .. } => answer_response(&answer),
            }
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
        self.state().bot_asks.push(event_id.clone());
        json_response(
            StatusCode::OK,
            json!({"messages": [{"type": "text", "text": format!("ack {event_id}")}]}),
        )
    }
}

/// Every message object of an accepted delivery: a text's text, else `<type>`.
fn record(accepted: &mut Vec<Accepted>, delivery: &Delivery) {
    let at = Instant::now();
    let via = match &delivery.via {
        omniline_linesim::Via::Reply { token } => Via::Reply(token.clone()),
        omniline_linesim::Via::Push { .. } => Via::Push(delivery.to.clone()),
    };
    for m in &delivery.messages {
        let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let text = match (kind, m.get("text").and_then(Value::as_str)) {
            ("text", Some(text)) => text.to_owned(),
            (other, _) => format!("<{other}>"),
        };
        accepted.push(Accepted {
            at,
            via: via.clone(),
            text,
        });
    }
}

/// A 1×1 PNG: the content of every image a customer sends.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0a, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

#[derive(Debug, Clone, Copy)]
enum Fault {
    Before500,
    Before429,
    AfterReset,
    After500,
    Hang,
}

/// The stand-in over HTTP, as the stack calls it.
#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "lt-token";
    const BOT: &str = "Ubot1";
    const KEY: &str = "123e4567-e89b-12d3-a456-426614174000";

    async fn started() -> (Arc<LineSim>, reqwest::Client) {
        let sim = LineSim::start(Duration::from_millis(50), "bot-secret")
            .await
            .unwrap();
        sim.add_bot(TOKEN, BOT);
        sim.add_customers(["U1"], ["42"]);
        (sim, reqwest::Client::new())
    }

    async fn call(
        sim: &LineSim,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = client
            .request(method, format!("{}{path}", sim.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    fn text(t: &str) -> Value {
        json!([{"type": "text", "text": t}])
    }

    #[tokio::test]
    async fn a_reply_token_is_accepted_once_and_recorded() {
        let (sim, client) = started().await;
        sim.issue_reply_tokens(BOT, [("t1", "U1")]);
        let reply = json!({"replyToken": "t1", "messages": text("ack 1")});
        let post = reqwest::Method::POST;
        let (status, headers, body) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/reply",
            Some(reply.clone()),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("x-line-request-id"));
        assert_eq!(body["sentMessages"].as_array().map(Vec::len), Some(1));
        let (status, _, body) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/reply",
            Some(reply),
            &[],
        )
        .await;
        assert_eq!(
            (status, body),
            (400, json!({"message": "Invalid reply token"}))
        );
        let unknown = json!({"replyToken": "never-issued", "messages": text("x")});
        let (status, _, _) = call(
            &sim,
            &client,
            post,
            "/v2/bot/message/reply",
            Some(unknown),
            &[],
        )
        .await;
        assert_eq!(status, 400);
        let s = sim.snapshot();
        assert_eq!(s.accepted.len(), 1);
        assert_eq!(
            (s.accepted[0].via.clone(), s.accepted[0].text.as_str()),
            (Via::Reply("t1".into()), "ack 1")
        );
        assert_eq!((s.reply_calls, s.invalid_token_400), (3, 2));
    }

    #[tokio::test]
    async fn a_push_with_a_retry_key_seen_before_is_409_naming_the_first_request() {
        let (sim, client) = started().await;
        let push = json!({"to": "U1", "messages": text("Welcome Pat")});
        let post = reqwest::Method::POST;
        let key = [("x-line-retry-key", KEY)];
        let (status, first, _) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/push",
            Some(push.clone()),
            &key,
        )
        .await;
        assert_eq!(status, 200);
        let (status, again, body) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/push",
            Some(push.clone()),
            &key,
        )
        .await;
        assert_eq!(status, 409);
        assert_eq!(
            again.get("x-line-accepted-request-id"),
            first.get("x-line-request-id")
        );
        assert_eq!(body["message"], "The retry key is already accepted");
        let (status, _, _) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/push",
            Some(push),
            &[("x-line-retry-key", "k1")],
        )
        .await;
        assert_eq!(status, 400, "a retry key is a UUID");
        let stranger = json!({"to": "U9", "messages": text("x")});
        let (status, _, _) = call(
            &sim,
            &client,
            post,
            "/v2/bot/message/push",
            Some(stranger),
            &[],
        )
        .await;
        assert_eq!(status, 400, "a push goes to a customer");
        let s = sim.snapshot();
        assert_eq!(s.accepted.len(), 1);
        assert_eq!(s.accepted[0].via, Via::Push("U1".into()));
        assert_eq!(s.conflicts_409, 1);
    }

    #[tokio::test]
    async fn calls_need_the_channel_token_and_messages_line_takes() {
        let (sim, client) = started().await;
        sim.issue_reply_tokens(BOT, [("t1", "U1"), ("t2", "U1")]);
        for auth in [None, Some("Bearer wrong")] {
            let mut request = client
                .post(format!("{}/v2/bot/message/reply", sim.url()))
                .json(&json!({"replyToken": "t1", "messages": text("x")}));
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            assert_eq!(request.send().await.unwrap().status(), 401, "{auth:?}");
        }
        for messages in [
            json!([]),
            json!([{"type": "text", "text": ""}]),
            json!([{"type": "image", "originalContentUrl": "http://127.0.0.1/a.png", "previewImageUrl": "https://a/p.png"}]),
            json!([{"type": "hologram"}]),
        ] {
            let reply = json!({"replyToken": "t1", "messages": messages});
            let (status, _, body) = call(
                &sim,
                &client,
                reqwest::Method::POST,
                "/v2/bot/message/reply",
                Some(reply),
                &[],
            )
            .await;
            assert_eq!(status, 400, "{messages}: {body}");
        }
        // Refused bodies used no token.
        let reply = json!({"replyToken": "t1", "messages": text("ok")});
        let (status, _, _) = call(
            &sim,
            &client,
            reqwest::Method::POST,
            "/v2/bot/message/reply",
            Some(reply),
            &[],
        )
        .await;
        assert_eq!(status, 200);
        let (status, _, body) = call(
            &sim,
            &client,
            reqwest::Method::GET,
            "/v2/bot/info",
            None,
            &[],
        )
        .await;
        assert_eq!((status, body["userId"].as_str()), (200, Some(BOT)));
    }

    #[tokio::test]
    async fn profiles_and_content_exist_for_the_loads_customers_and_images_only() {
        let (sim, client) = started().await;
        let get = reqwest::Method::GET;
        let (status, _, body) =
            call(&sim, &client, get.clone(), "/v2/bot/profile/U1", None, &[]).await;
        assert_eq!(
            (status, body["displayName"].as_str()),
            (200, Some("Cust-1"))
        );
        for path in [
            "/v2/bot/profile/U9",
            "/v2/bot/profile/",
            "/v2/bot/message/43/content",
            "/v2/bot/group/C1/member/U1",
        ] {
            let (status, _, _) = call(&sim, &client, get.clone(), path, None, &[]).await;
            assert_eq!(status, 404, "{path}");
        }
        let response = client
            .get(format!("{}/v2/bot/message/42/content", sim.url()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        let post = reqwest::Method::POST;
        let (status, _, _) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/message/markAsRead",
            Some(json!({"chat": {"userId": "U1"}})),
            &[],
        )
        .await;
        assert_eq!(status, 403, "partner-only");
        let (status, _, _) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/user/U1/linkToken",
            None,
            &[],
        )
        .await;
        assert_eq!(status, 404, "not served here");
        let (status, _, _) = call(
            &sim,
            &client,
            post.clone(),
            "/v2/bot/chat/loading/start",
            Some(json!({"chatId": "U1", "loadingSeconds": 20})),
            &[],
        )
        .await;
        assert_eq!(status, 202);
        let (status, _, _) = call(
            &sim,
            &client,
            post,
            "/v2/bot/chat/loading/start",
            Some(json!({"chatId": "U9"})),
            &[],
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn faults_fail_calls_before_anything_is_accepted_or_after() {
        let (sim, client) = started().await;
        sim.set_faults(1.0);
        let n = 40;
        for i in 0..n {
            let push = json!({"to": "U1", "messages": text(&format!("m{i}"))});
            let result = client
                .post(format!("{}/v2/bot/message/push", sim.url()))
                .bearer_auth(TOKEN)
                .json(&push)
                .send()
                .await;
            if let Ok(r) = result {
                assert!([429, 500].contains(&r.status().as_u16()), "{}", r.status());
            }
        }
        let s = sim.snapshot();
        assert_eq!(s.faults.total(), n);
        // Only the faults after accepting leave a message at LINE.
        assert_eq!(
            s.accepted.len() as u64,
            s.faults.after_reset + s.faults.after_500
        );
        sim.set_faults(0.0);
        let push = json!({"to": "U1", "messages": text("calm")});
        let (status, _, _) = call(
            &sim,
            &client,
            reqwest::Method::POST,
            "/v2/bot/message/push",
            Some(push),
            &[],
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn the_bot_answers_signed_asks_only() {
        let (sim, client) = started().await;
        let body = json!({"eventId": "01LTX"}).to_string();
        let signature = omniline_domain::line::signature::sign(b"bot-secret", body.as_bytes());
        let answer: Value = client
            .post(format!("{}/bot", sim.url()))
            .header(omniline_domain::bot::SIGNATURE_HEADER, signature)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["messages"][0]["text"], "ack 01LTX");
        let unsigned = client
            .post(format!("{}/bot", sim.url()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 401);
        assert_eq!(sim.snapshot().bot_asks, vec!["01LTX".to_owned()]);
    }
}
