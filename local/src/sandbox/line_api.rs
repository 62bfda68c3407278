//! The simulated Messaging API (`/sandbox/line/...`): what the stack's `HttpLineApi` calls in
//! sandbox mode. A thin HTTP adapter: every request goes to the platform's simulator
//! ([`omniline_linesim`], LINE's rules: status codes, `{"message"}` error bodies,
//! `x-line-request-id`, 409 with `x-line-accepted-request-id` for a retry key seen before), so the
//! real client code runs unchanged.

use super::platform::{LineAnswer, LineRequest, Platform};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::{json, Value};

/// Where the routes are mounted; the stack's `LINE_API_BASE` and `LINE_DATA_API_BASE`.
pub const PREFIX: &str = "/sandbox/line";

/// Every path under [`PREFIX`]: the simulator routes it (LINE's 404 for what it does not serve).
pub fn router(platform: Platform) -> Router {
    Router::new()
        .route("/{*path}", any(handle))
        .fallback(handle)
        .with_state(platform)
}

async fn handle(
    State(p): State<Platform>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes().to_vec());
    let request = LineRequest {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        authorization: header(header::AUTHORIZATION.as_str()),
        retry_key: header("x-line-retry-key"),
        body: body.to_vec(),
    };
    match p.line_call(request).await {
        Ok(answer) => into_response(answer),
        Err(e) => {
            tracing::error!("sandbox LINE platform: {e}");
            let body = json!({ "message": "Internal server error" });
            let id = uuid::Uuid::new_v4().to_string();
            into_response(error_answer(StatusCode::INTERNAL_SERVER_ERROR, &body, id))
        }
    }
}

fn error_answer(status: StatusCode, body: &Value, request_id: String) -> LineAnswer {
    LineAnswer {
        status: status.as_u16(),
        content_type: "application/json".into(),
        body: body.to_string().into_bytes(),
        headers: vec![("x-line-request-id", request_id)],
    }
}

fn into_response(answer: LineAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&answer.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in answer.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    response
}

/// The stack's own LINE client (`HttpLineApi`) against the simulated Messaging API over HTTP.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::platform::SandboxChannel;
    use omniline_domain::line::api::{LineApiError, SendError};
    use omniline_domain::secret::SecretString;
    use omniline_line::HttpLineApi;
    use omniline_line::LineApiConfig;
    use omniline_ports::LineApi;

    struct Sim {
        platform: Platform,
        line: HttpLineApi,
        token: SecretString,
        _dir: tempfile::TempDir,
    }

    async fn sim() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::open(dir.path(), "http://127.0.0.1:1").unwrap();
        let channel = SandboxChannel::generate();
        let token = SecretString::new(channel.access_token.clone());
        platform.set_channel(channel).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().nest(PREFIX, router(platform.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let line = HttpLineApi::new(&LineApiConfig {
            api_base: format!("{base}{PREFIX}"),
            data_api_base: format!("{base}{PREFIX}"),
            ..LineApiConfig::default()
        })
        .unwrap();
        Sim {
            platform,
            line,
            token,
            _dir: dir,
        }
    }

    fn text(t: &str) -> Vec<Value> {
        vec![json!({"type": "text", "text": t})]
    }

    #[tokio::test]
    async fn bot_info_needs_the_channel_token() {
        let s = sim().await;
        let info = s.line.bot_info(&s.token).await.unwrap();
        assert_eq!(info.user_id, s.platform.channel().unwrap().bot_user_id);
        let refused = s.line.bot_info(&SecretString::new("wrong")).await;
        assert!(
            matches!(refused, Err(LineApiError::Rejected { status: 401, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn profiles_exist_for_simulated_users_only() {
        let s = sim().await;
        let user = s
            .platform
            .create_user("Mai", Some("ja"), Some(1))
            .await
            .unwrap();
        let profile = s.line.profile(&s.token, &user.id).await.unwrap().unwrap();
        assert_eq!(profile.display_name, "Mai");
        assert_eq!(profile.language.as_deref(), Some("ja"));
        assert_eq!(
            profile.picture_url.as_deref(),
            Some(user.picture_url.as_str())
        );
        let nobody = format!("U{}", "0".repeat(32));
        assert_eq!(s.line.profile(&s.token, &nobody).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_reply_token_delivers_once_then_is_invalid() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        let token = s.platform.issue_reply_token(&user.id);
        let sent = s.line.reply(&s.token, &token, &text("hi")).await.unwrap();
        assert_eq!(sent.sent_message_ids.len(), 1);
        let again = s.line.reply(&s.token, &token, &text("hi")).await;
        assert!(
            matches!(again, Err(SendError::InvalidReplyToken { .. })),
            "{again:?}"
        );
        let chat = s.platform.timeline(&user.id, 0).await.unwrap();
        assert_eq!(chat.len(), 1);
        assert_eq!(
            (chat[0].from.as_str(), chat[0].via.as_str()),
            ("account", "reply")
        );
    }

    #[tokio::test]
    async fn a_push_retried_with_its_key_is_shown_once() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        let key = uuid::Uuid::new_v4().to_string();
        let first = s
            .line
            .push(&s.token, &user.id, &text("once"), &key)
            .await
            .unwrap();
        let second = s
            .line
            .push(&s.token, &user.id, &text("once"), &key)
            .await
            .unwrap();
        assert!(!first.already_accepted && second.already_accepted);
        assert_eq!(second.request_id, first.request_id);
        assert_eq!(second.sent_message_ids, first.sent_message_ids);
        assert_eq!(s.platform.timeline(&user.id, 0).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_push_to_a_stranger_is_refused_for_good() {
        let s = sim().await;
        let stranger = format!("U{}", "1".repeat(32));
        let key = uuid::Uuid::new_v4().to_string();
        let refused = s.line.push(&s.token, &stranger, &text("x"), &key).await;
        assert!(
            matches!(refused, Err(SendError::Refused { status: 400, .. })),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn content_loading_and_read_reach_the_chat() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        s.platform
            .put_content("42", "image/png", vec![1, 2, 3])
            .await
            .unwrap();
        let content = s.line.message_content(&s.token, "42").await.unwrap();
        assert_eq!(
            content,
            omniline_domain::line::api::Content::Ready {
                bytes: vec![1, 2, 3],
                content_type: Some("image/png".into())
            }
        );
        assert!(s.line.message_content(&s.token, "43").await.is_err());

        s.line.start_loading(&s.token, &user.id, 20).await.unwrap();
        assert!(s.platform.typing_until(&user.id).is_some());
        let seq = s
            .platform
            .append(&user.id, "user", "webhook", text("hello"))
            .await
            .unwrap()[0];
        let read_token = s.platform.issue_read_token(&user.id, seq);
        s.line
            .mark_as_read_by_token(&s.token, &read_token)
            .await
            .unwrap();
        assert_eq!(s.platform.read_up_to(&user.id), Some(seq));
        // A message from the account stops the loading animation, as on LINE.
        let token = s.platform.issue_reply_token(&user.id);
        s.line.reply(&s.token, &token, &text("here")).await.unwrap();
        assert_eq!(s.platform.typing_until(&user.id), None);
    }

    #[tokio::test]
    async fn messages_line_would_refuse_are_refused() {
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        for bad in [
            json!({"type": "text", "text": ""}),
            json!({"type": "text", "text": "x".repeat(5001)}),
            json!({"type": "image", "originalContentUrl": "http://shop.example/a.png", "previewImageUrl": "https://shop.example/a.png"}),
            json!({"type": "image", "originalContentUrl": "https://shop.example/a.png"}),
            json!({"type": "template", "template": {}}),
            json!({"type": "location", "title": "t", "address": "a", "latitude": "35"}),
            json!({"type": "text", "text": "q", "quickReply": {"items": vec![json!({}); 14]}}),
            json!({"type": "hologram"}),
        ] {
            let key = uuid::Uuid::new_v4().to_string();
            let refused = s
                .line
                .push(&s.token, &user.id, std::slice::from_ref(&bad), &key)
                .await;
            assert!(
                matches!(refused, Err(SendError::Refused { status: 400, .. })),
                "{bad}: {refused:?}"
            );
        }
        let fine = json!({"type": "image", "originalContentUrl": "http://127.0.0.1:3000/media/a", "previewImageUrl": "https://cdn.example/a.png"});
        let key = uuid::Uuid::new_v4().to_string();
        s.line
            .push(&s.token, &user.id, &[fine], &key)
            .await
            .unwrap();
        assert_eq!(s.platform.timeline(&user.id, 0).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn endpoints_line_refuses_are_refused_as_line_refuses_them() {
        use tower::ServiceExt;
        let s = sim().await;
        let user = s.platform.create_user("Pat", None, None).await.unwrap();
        let app = router(s.platform.clone());
        let read = json!({"chat": {"userId": user.id}}).to_string();
        for (method, path, body, status) in [
            // Partner-only: LINE's 403, as for any channel that is not a partner (marking read
            // goes through a message event's markAsReadToken).
            ("POST", "/bot/pnp/push", "{}".to_owned(), 403),
            ("GET", "/v2/bot/message/delivery/pnp", String::new(), 403),
            ("POST", "/v2/bot/message/markAsRead", read, 403),
            (
                "GET",
                "/v2/bot/channel/webhook/endpoint",
                String::new(),
                404,
            ),
            ("GET", "/v2/bot/nothing", String::new(), 404),
        ] {
            let request = axum::http::Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {}", s.token.expose()))
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{method} {path}");
            assert!(response.headers().contains_key("x-line-request-id"));
            let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert!(status == 200 || body["message"].is_string(), "{body}");
        }
        assert_eq!(
            s.platform.read_up_to(&user.id),
            None,
            "a refused mark-as-read marks nothing"
        );
    }
}
