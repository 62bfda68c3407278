//! [`BotHook`] over HTTP(S): the bot is called with the customer's turn, signed.

use async_trait::async_trait;
use omniline_domain::bot::*;
use omniline_domain::line::signature::sign;
use omniline_ports::BotHook;
use serde::Deserialize;
use std::time::Duration;

/// [`BotHook`] over HTTP(S) with reqwest (rustls). One client (and connection pool) for every
/// bot; the timeout is the endpoint's. Redirects are not followed: the signature and the
/// customer's message go to the configured URL only.
#[derive(Debug, Clone)]
pub struct HttpBotHook {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpBotHook {
    /// `connect_timeout` bounds connection set-up; each request is further bounded by its
    /// endpoint's `timeout`. Calls https URLs of public addresses only: the host's addresses are
    /// checked when they are resolved, for every connection (a name that resolves to a private
    /// address, even after a first public answer, is refused).
    pub fn new(connect_timeout: Duration) -> Result<Self, BotError> {
        Self::build(connect_timeout, false)
    }

    /// As [`HttpBotHook::new`], but `http` and loopback, private and link-local addresses are
    /// called too: for local development (`omniline-local`, tests), never on AWS by default.
    pub fn allowing_private_networks(connect_timeout: Duration) -> Result<Self, BotError> {
        Self::build(connect_timeout, true)
    }

    fn build(connect_timeout: Duration, allow_private: bool) -> Result<Self, BotError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(crate::http::USER_AGENT);
        if !allow_private {
            builder = builder
                .https_only(true)
                .dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        let client = builder
            .build()
            .map_err(|e| BotError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// Refuses what [`HttpBotHook::new`] does not call before any connection: a URL that is not
    /// https, and a literal address that is not public (names are checked when resolved).
    fn check_url(&self, url: &str) -> Result<(), BotError> {
        if self.allow_private {
            return Ok(());
        }
        let parsed =
            reqwest::Url::parse(url).map_err(|e| BotError::Forbidden(format!("not a URL: {e}")))?;
        if parsed.scheme() != "https" {
            return Err(BotError::Forbidden("only https URLs are called".into()));
        }
        // The URL parser writes every IPv4 spelling (decimal, hex, short) as a dotted quad.
        let literal = match parsed.host_str() {
            Some(host) => host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .ok(),
            None => return Err(BotError::Forbidden("the URL has no host".into())),
        };
        match literal {
            Some(ip) if !is_public(ip) => {
                Err(BotError::Forbidden(format!("{ip} is not a public address")))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private (RFC 1918, unique
/// local), shared (CGNAT), link-local (the instance metadata service), unspecified, broadcast,
/// multicast or documentation; IPv4-mapped IPv6 addresses are judged as their IPv4 address.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// A resolver that keeps public addresses only, and fails when a name has none.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn transport_error(e: &reqwest::Error) -> BotError {
    if e.is_timeout() {
        return BotError::Timeout;
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the reply failed"
    } else {
        "request failed"
    };
    // reqwest's Display holds the URL, which is configuration, not a secret; never the body.
    BotError::Unavailable(format!("{kind}: {e}"))
}

fn invalid_json(e: &serde_json::Error) -> BotError {
    // serde_json's Display may quote a value from the body; keep the position only.
    let what = match e.classify() {
        serde_json::error::Category::Eof => "is truncated JSON",
        _ => "is not JSON",
    };
    BotError::InvalidReply(format!(
        "body {what} (line {}, column {})",
        e.line(),
        e.column()
    ))
}

#[async_trait]
impl BotHook for HttpBotHook {
    async fn deliver(
        &self,
        endpoint: &BotEndpoint,
        request: &BotRequest,
    ) -> Result<BotReply, BotError> {
        self.check_url(&endpoint.url)?;
        let body = serde_json::to_vec(request)
            .map_err(|e| BotError::Unavailable(format!("serialising the request: {e}")))?;
        let signature = sign(endpoint.secret.expose().as_bytes(), &body);
        let event_id = reqwest::header::HeaderValue::from_str(&request.event_id)
            .map_err(|_| BotError::Unavailable("event id is not a valid header value".into()))?;
        let response = self
            .client
            .post(&endpoint.url)
            .timeout(endpoint.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(EVENT_ID_HEADER, event_id)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;

        let status = response.status();
        if !status.is_success() {
            let reason = status.canonical_reason().unwrap_or("error").to_owned();
            tracing::warn!(
                bot_id = %request.bot_id,
                event_id = %request.event_id,
                status = status.as_u16(),
                "bot hook answered an error status"
            );
            return Err(if status.is_server_error() {
                BotError::Unavailable(format!("{}: {reason}", status.as_u16()))
            } else {
                BotError::Rejected {
                    status: status.as_u16(),
                    message: if status.is_redirection() {
                        format!("{reason} (redirects are not followed)")
                    } else {
                        reason
                    },
                }
            });
        }

        let bytes = crate::http::body_at_most(response, MAX_REPLY_BYTES)
            .await
            .map_err(|e| transport_error(&e))?
            .ok_or_else(too_large)?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid_json(&e))?;
        if !value.is_object() {
            // A struct also deserialises from an array: refuse anything but an object first.
            return Err(BotError::InvalidReply("body is not a JSON object".into()));
        }
        // serde's message may quote a value from the body: name the schema instead.
        let reply = BotReply::deserialize(value).map_err(|_| {
            BotError::InvalidReply(
                "body does not match the reply schema (messages: array of objects, handoff: boolean, queue: string, context: object)"
                    .into(),
            )
        })?;
        reply.validate()?;
        tracing::debug!(
            bot_id = %request.bot_id,
            event_id = %request.event_id,
            messages = reply.messages.len(),
            handoff = reply.handoff,
            "bot hook answered"
        );
        Ok(reply)
    }
}

fn too_large() -> BotError {
    BotError::InvalidReply(format!("body larger than {MAX_REPLY_BYTES} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use omniline_domain::line::signature::verify_signature;
    use omniline_domain::secret::SecretString;
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const SECRET: &str = "bot-secret-123";

    fn endpoint(server: &MockServer, timeout: Duration) -> BotEndpoint {
        BotEndpoint {
            url: format!("{}/hook", server.uri()),
            secret: SecretString::new(SECRET),
            timeout,
        }
    }

    /// The mock bots listen on 127.0.0.1 over http: a development hook.
    fn hook() -> HttpBotHook {
        HttpBotHook::allowing_private_networks(Duration::from_secs(1)).unwrap()
    }

    /// Review 1/7 #10: a bot URL could name the Lambda runtime API (127.0.0.1:9001), the
    /// metadata service or any private address. The production hook calls public https only.
    #[tokio::test]
    async fn the_production_hook_calls_no_private_address_and_no_http() {
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({}))).await;
        let port = server.address().port();
        let strict = HttpBotHook::new(Duration::from_secs(1)).unwrap();
        for url in [
            format!("{}/hook", server.uri()),
            format!("https://127.0.0.1:{port}/hook"),
            format!("https://0x7f000001:{port}/hook"),
            format!("https://2130706433:{port}/hook"),
            format!("https://[::1]:{port}/hook"),
            format!("https://[::ffff:127.0.0.1]:{port}/hook"),
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "https://10.0.0.8/hook".to_owned(),
            "https://192.168.1.1/hook".to_owned(),
            "https://100.64.0.1/hook".to_owned(),
            format!("https://localhost:{port}/hook"),
        ] {
            let endpoint = BotEndpoint {
                url: url.clone(),
                secret: SecretString::new(SECRET),
                timeout: Duration::from_secs(2),
            };
            let refused = strict.deliver(&endpoint, &request()).await;
            assert!(refused.is_err(), "{url}: {refused:?}");
        }
        assert!(
            server
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "nothing reached the private address"
        );
        for ip in ["8.8.8.8", "2606:4700:4700::1111", "52.95.110.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
            "0.0.0.0",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    fn request() -> BotRequest {
        BotRequest {
            bot_id: "bot-1".into(),
            account_id: "acc-1".into(),
            conversation_id: "conv-1".into(),
            event_id: "01FZ74A0TDDPYRVKNK77XKC3ZR".into(),
            customer: BotCustomer {
                user_id: Some("U4af4980629".into()),
                display_name: "Taro".into(),
                language: Some("ja".into()),
            },
            event: json!({
                "type": "message",
                "webhookEventId": "01FZ74A0TDDPYRVKNK77XKC3ZR",
                "message": {"type": "text", "id": "468789577898262530", "text": "Hello 🙏\nline2 \"quoted\""},
                "source": {"type": "user", "userId": "U4af4980629"}
            }),
        }
    }

    async fn answering(template: ResponseTemplate) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(template)
            .mount(&server)
            .await;
        server
    }

    async fn deliver(server: &MockServer) -> Result<BotReply, BotError> {
        hook()
            .deliver(&endpoint(server, Duration::from_secs(2)), &request())
            .await
    }

    #[tokio::test]
    async fn a_200_reply_is_parsed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .and(header("content-type", "application/json"))
            .and(header(EVENT_ID_HEADER, "01FZ74A0TDDPYRVKNK77XKC3ZR"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messages": [
                    {"type": "text", "text": "Hi! How can I help?"},
                    {"type": "sticker", "packageId": "446", "stickerId": "1988"}
                ]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let reply = deliver(&server).await.unwrap();
        assert_eq!(reply.messages.len(), 2);
        assert_eq!(reply.messages[0]["text"], "Hi! How can I help?");
        assert!(!reply.handoff);
        assert_eq!(reply.queue, None);
    }

    #[tokio::test]
    async fn the_body_is_camel_case_and_the_signature_verifies_over_the_exact_bytes() {
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({}))).await;
        let reply = deliver(&server).await.unwrap();
        assert_eq!(reply, BotReply::default());

        let received = server.received_requests().await.unwrap();
        assert_eq!(received.len(), 1);
        let req = &received[0];
        let signature = req
            .headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        assert_eq!(
            verify_signature(SECRET.as_bytes(), &req.body, signature),
            Ok(())
        );
        assert!(verify_signature(b"another secret", &req.body, signature).is_err());

        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["botId"], "bot-1");
        assert_eq!(body["accountId"], "acc-1");
        assert_eq!(body["conversationId"], "conv-1");
        assert_eq!(body["eventId"], "01FZ74A0TDDPYRVKNK77XKC3ZR");
        assert_eq!(
            body["customer"],
            json!({"userId": "U4af4980629", "displayName": "Taro", "language": "ja"})
        );
        assert_eq!(body["event"], request().event);
        let back: BotRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(back, request());
    }

    #[tokio::test]
    async fn handoff_with_a_queue() {
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"type": "text", "text": "Connecting you to an agent."}],
            "handoff": true,
            "queue": "billing",
            "unknownField": 1
        })))
        .await;
        let reply = deliver(&server).await.unwrap();
        assert!(reply.handoff);
        assert_eq!(reply.queue.as_deref(), Some("billing"));
        assert_eq!(reply.messages.len(), 1);
    }

    #[tokio::test]
    async fn a_5xx_is_unavailable() {
        let server = answering(ResponseTemplate::new(500).set_body_string("boom")).await;
        let err = deliver(&server).await.unwrap_err();
        assert!(
            matches!(err, BotError::Unavailable(ref m) if m.contains("500")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_4xx_is_rejected() {
        let server = answering(ResponseTemplate::new(400).set_body_string("bad signature")).await;
        let err = deliver(&server).await.unwrap_err();
        assert!(
            matches!(err, BotError::Rejected { status: 400, ref message } if !message.contains("bad signature")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/elsewhere", server.uri())),
            )
            .mount(&server)
            .await;
        Mock::given(path("/elsewhere"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
            .expect(0)
            .mount(&server)
            .await;
        let err = deliver(&server).await.unwrap_err();
        assert!(
            matches!(err, BotError::Rejected { status: 307, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_slow_bot_times_out() {
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let err = hook()
            .deliver(&endpoint(&server, Duration::from_millis(200)), &request())
            .await
            .unwrap_err();
        assert_eq!(err, BotError::Timeout);
    }

    #[tokio::test]
    async fn a_connection_error_is_unavailable() {
        let endpoint = BotEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            secret: SecretString::new(SECRET),
            timeout: Duration::from_secs(2),
        };
        let err = hook().deliver(&endpoint, &request()).await.unwrap_err();
        assert!(matches!(err, BotError::Unavailable(_)), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_json_is_an_invalid_reply() {
        for body in [
            "{\"messages\":",
            "not json",
            "",
            "[]",
            "{\"handoff\":\"yes-secretish\"}",
        ] {
            let server = answering(
                ResponseTemplate::new(200).set_body_raw(body.as_bytes(), "application/json"),
            )
            .await;
            let err = deliver(&server).await.unwrap_err();
            assert!(
                matches!(err, BotError::InvalidReply(_)),
                "{body:?}: {err:?}"
            );
            // The reply's content never reaches the error.
            assert!(!err.to_string().contains("secretish"), "{err}");
        }
    }

    #[tokio::test]
    async fn six_messages_are_an_invalid_reply() {
        let messages: Vec<_> = (0..6)
            .map(|i| json!({"type": "text", "text": format!("m{i}")}))
            .collect();
        let server =
            answering(ResponseTemplate::new(200).set_body_json(json!({ "messages": messages })))
                .await;
        let err = deliver(&server).await.unwrap_err();
        assert!(
            matches!(err, BotError::InvalidReply(ref m) if m.contains('6')),
            "{err:?}"
        );

        // Five is the limit, not an error.
        let messages: Vec<_> = (0..5)
            .map(|_| json!({"type": "text", "text": "x"}))
            .collect();
        let server =
            answering(ResponseTemplate::new(200).set_body_json(json!({ "messages": messages })))
                .await;
        assert_eq!(deliver(&server).await.unwrap().messages.len(), 5);
    }

    #[tokio::test]
    async fn messages_without_a_string_type_are_an_invalid_reply() {
        for message in [
            json!("hello"),
            json!({"text": "no type"}),
            json!({"type": 1}),
            json!({"type": ""}),
            json!(null),
        ] {
            let server = answering(
                ResponseTemplate::new(200).set_body_json(json!({ "messages": [message] })),
            )
            .await;
            let err = deliver(&server).await.unwrap_err();
            assert!(matches!(err, BotError::InvalidReply(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn an_oversized_reply_is_an_invalid_reply() {
        let big = "x".repeat(MAX_REPLY_BYTES);
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messages": [{"type": "text", "text": big}]})),
        )
        .await;
        let err = deliver(&server).await.unwrap_err();
        assert!(
            matches!(err, BotError::InvalidReply(ref m) if m.contains("larger")),
            "{err:?}"
        );
    }

    #[test]
    fn debug_output_holds_no_secret_and_no_content() {
        let endpoint = BotEndpoint {
            url: "https://bot.test/hook".into(),
            secret: SecretString::new(SECRET),
            timeout: Duration::from_secs(1),
        };
        let reply = BotReply {
            messages: vec![json!({"type": "text", "text": "private answer"})],
            handoff: true,
            queue: None,
            context: serde_json::from_value(json!({"orderId": "A-private-17"})).unwrap(),
        };
        let printed = format!("{endpoint:?} {:?} {reply:?}", request());
        for hidden in [SECRET, "Hello", "Taro", "private answer", "A-private-17"] {
            assert!(!printed.contains(hidden), "{hidden} in {printed}");
        }
        assert!(printed.contains("conv-1") && printed.contains("\"text\""));
    }
}
