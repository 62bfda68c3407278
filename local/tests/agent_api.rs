//! Issue 5/8 through HTTP against the `omniline-local` binary with LINE mocked by wiremock: two
//! agents and a customer hold a complete support conversation — greeting, notification with the
//! customer's name, reply pushed once with a retry key, contact link, close with the survey, the
//! customer's answer recorded — and the next conversation is linked automatically. Plus the pick
//! race, the 403s, the long poll and the account-link flow.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

/// Extra LINE endpoints the agent API uses.
async fn mock_agent_line(s: &Stack) {
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/user/[^/]+/linkToken$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"linkToken": "LT-123"})))
        .mount(&s.line)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/chat/loading/start$"))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({})))
        .mount(&s.line)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/chat/markAsRead$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({})))
        .mount(&s.line)
        .await;
    // Partner-only: LINE refuses it to ordinary channels, and omniline never calls it.
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/message/markAsRead$"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": "Access to this API is not available for your account"}),
        ))
        .mount(&s.line)
        .await;
}

/// The bodies of the mark-as-read calls LINE received, as (path, body).
async fn read_calls(s: &Stack) -> Vec<(String, Value)> {
    s.line
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().ends_with("/markAsRead"))
        .map(|r| {
            (
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// The pushes LINE received, as (retry key, body).
async fn pushes(s: &Stack) -> Vec<(Option<String>, Value)> {
    s.line
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v2/bot/message/push")
        .map(|r| {
            (
                r.headers
                    .get("x-line-retry-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Waits until LINE received a push or reply whose JSON contains `needle`; returns those bodies.
async fn sent_containing(s: &Stack, needle: &str) -> Vec<Value> {
    for _ in 0..200 {
        let found: Vec<Value> = s
            .line
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path().starts_with("/v2/bot/message/"))
            .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
            .filter(|b| b.to_string().contains(needle))
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("LINE never received a message containing {needle:?}");
}

fn postback_event(id: &str, user: &str, data: &str) -> Value {
    json!({"type": "postback", "mode": "active", "timestamp": now_ms(), "webhookEventId": id,
           "deliveryContext": {"isRedelivery": false}, "replyToken": format!("r-{id}"),
           "source": {"type": "user", "userId": user}, "postback": {"data": data}})
}

/// A channel with one queue, a push-mode workstream with greeting, "agent ended" and a 1–5
/// survey; returns (account, queue, workstream).
async fn channel(s: &Stack, distribution: &str, agent_can_send: bool) -> (String, String, String) {
    let account = s.account("Shop", SECRET_A, "token-a").await;
    let queue = s.queue("Support").await;
    let ws = s
        .ok(
            "POST",
            "/admin/v1/workstreams",
            Some(json!({
                "name": "Support", "accountId": account, "language": "ja", "distribution": distribution,
                "defaultQueueId": queue,
                "attachments": {"customerCanSend": true, "agentCanSend": agent_can_send},
                "automatedMessages": {
                    "conversationStarted": {"texts": {"ja": "{customerName}様、こんにちは"}},
                    "agentEnded": {"texts": {"ja": "ご利用ありがとうございました"}}
                },
                "survey": {"enabled": true, "question": "今回の対応はいかがでしたか？", "scale": 5},
                "agentIdentity": {"enabled": true}
            })),
        )
        .await;
    (account, queue, ws["id"].as_str().unwrap().to_owned())
}

async fn poll(s: &Stack, token: &str, cursor: Option<&str>, wait: u32) -> Value {
    let mut route = format!("/agent/v1/notifications?wait={wait}");
    if let Some(c) = cursor {
        route.push_str(&format!("&after={c}"));
    }
    agent_ok(s, token, "GET", &route, None).await
}

/// Polls until a notification of `kind` arrives; returns it and the cursor.
async fn next_notification(
    s: &Stack,
    token: &str,
    cursor: Option<String>,
    kind: &str,
) -> (Value, String) {
    let mut cursor = cursor;
    for _ in 0..10 {
        let page = poll(s, token, cursor.as_deref(), 5).await;
        cursor = page["cursor"].as_str().map(str::to_owned);
        if let Some(n) = page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["kind"] == kind)
        {
            return (n.clone(), cursor.unwrap_or_default());
        }
    }
    panic!("no {kind} notification");
}

/// A push channel, the agent Hanako available in its queue, and the conversation `event` (a
/// customer's first message) opens, assigned to her: (account, her token, conversation id).
async fn held_conversation(s: &Stack, event: Value) -> (String, String, String) {
    let (account, queue, _) = channel(s, "push", true).await;
    let (_, token) = new_agent(s, "Hanako", &[&queue]).await;
    agent_ok(
        s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(s.webhook(&account, SECRET_A, json!([event])).await, 200);
    let (assigned, _) = next_notification(s, &token, None, "assigned").await;
    let id = assigned["conversationId"].as_str().unwrap().to_owned();
    (account, token, id)
}

#[tokio::test]
async fn two_agents_and_a_customer_hold_a_complete_conversation_from_greeting_to_survey() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let (hanako, hanako_token) = new_agent(&s, "Hanako", &[&queue]).await;
    let (jiro, jiro_token) = new_agent(&s, "Jiro", &[&queue]).await;
    let me = agent_ok(
        &s,
        &hanako_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(me["status"], "available");
    agent_ok(
        &s,
        &jiro_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "away"})),
    )
    .await;

    // The customer writes; Hanako (the only available agent) is notified with their name.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01CONV1A", "Ucust", "こんにちは")])
        )
        .await,
        200
    );
    let (assigned, cursor) = next_notification(&s, &hanako_token, None, "assigned").await;
    assert_eq!(assigned["customer"]["displayName"], "Taro");
    assert_eq!(assigned["customer"]["language"], "ja");
    assert_eq!(assigned["queue"]["name"], "Support");
    assert_eq!(assigned["workstream"]["name"], "Support");
    assert_eq!(assigned["lastMessage"]["text"], "こんにちは");
    let conversation = assigned["conversationId"].as_str().unwrap().to_owned();
    sent_containing(&s, "Taro様、こんにちは").await;

    let detail = agent_ok(
        &s,
        &hanako_token,
        "GET",
        &format!("/agent/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["status"], "active");
    assert_eq!(detail["conversation"]["agentId"], hanako.as_str());
    assert_eq!(detail["customer"]["displayName"], "Taro");
    assert_eq!(detail["customer"]["previousConversations"]["count"], 0);
    let active = agent_ok(
        &s,
        &hanako_token,
        "GET",
        "/agent/v1/conversations?status=active",
        None,
    )
    .await;
    assert_eq!(active["conversations"][0]["id"], conversation.as_str());

    // Typing and read reach LINE (read with the customer message's markAsReadToken).
    let (status, _) = agent_call(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/typing"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = agent_call(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/read"),
        None,
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(
        read_calls(&s).await,
        [(
            "/v2/bot/chat/markAsRead".to_owned(),
            json!({"markAsReadToken": "mr-01CONV1A"})
        )],
        "marked read with the customer message's token, never by user id"
    );

    // Hanako answers; a retry with the same Idempotency-Key sends nothing new.
    let reply = |key: &'static str| {
        s.client
            .post(format!("{}/agent/v1/conversations/{conversation}/messages", s.base))
            .bearer_auth(&hanako_token)
            .header("idempotency-key", key)
            .json(&json!({"type": "text", "text": "お問い合わせありがとうございます。ご用件をどうぞ。"}))
            .send()
    };
    let first = reply("reply-1").await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again: Value = reply("reply-1").await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    sent_containing(&s, "ご用件をどうぞ").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let replies: Vec<_> = pushes(&s)
        .await
        .into_iter()
        .filter(|(_, b)| b.to_string().contains("ご用件をどうぞ"))
        .collect();
    assert_eq!(replies.len(), 1, "the customer receives the answer once");
    let (retry_key, body) = &replies[0];
    assert!(
        retry_key.as_deref().is_some_and(|k| k.len() == 36),
        "pushed with X-Line-Retry-Key: {retry_key:?}"
    );
    assert_eq!(body["to"], "Ucust");
    assert_eq!(
        body["messages"][0]["sender"]["name"], "Hanako",
        "agent identity shown"
    );

    // The transcript shows both sides, the outbound one with its delivery status.
    let mut transcript = Value::Null;
    for _ in 0..100 {
        transcript = agent_ok(
            &s,
            &hanako_token,
            "GET",
            &format!("/agent/v1/conversations/{conversation}/messages"),
            None,
        )
        .await;
        if transcript["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "agentMessage" && m["delivery"]["status"] == "sent")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = transcript["messages"].as_array().unwrap();
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[0]["message"]["text"], "こんにちは");
    let out = messages
        .iter()
        .find(|m| m["type"] == "agentMessage")
        .expect("the answer in the transcript");
    assert_eq!(out["direction"], "out");
    assert_eq!(out["delivery"]["status"], "sent", "{transcript}");
    assert_eq!(out["agentName"], "Hanako");
    // The greeting the router sent is there too, as an automated message.
    let greeting = messages
        .iter()
        .find(|m| m["type"] == "automatedMessage")
        .expect("the greeting in the transcript");
    assert_eq!(greeting["direction"], "out");
    assert_eq!(greeting["trigger"], "conversationStarted", "{greeting}");

    // The customer writes again: a message notification.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01CONV1B", "Ucust", "注文番号は123です")])
        )
        .await,
        200
    );
    let (message, _) = next_notification(&s, &hanako_token, Some(cursor), "message").await;
    assert_eq!(message["conversationId"], conversation.as_str());
    assert_eq!(message["lastMessage"]["text"], "注文番号は123です");

    // Contacts: create one and link the customer.
    let contact = agent_ok(&s, &hanako_token, "POST", "/agent/v1/contacts",
        Some(json!({"name": "Yamada Taro", "email": "taro@example.jp", "phone": "+81 90-1234-5678", "company": "Omni KK"}))).await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    let found = agent_ok(&s, &jiro_token, "GET", "/agent/v1/contacts?q=yamada", None).await;
    assert_eq!(found["contacts"][0]["id"], contact_id.as_str());
    let linked = agent_ok(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/link"),
        Some(json!({"contactId": contact_id})),
    )
    .await;
    assert_eq!(linked["customer"]["contact"]["name"], "Yamada Taro");

    // Edit it: fields set, null clears, the linked customer shows the change.
    let path = format!("/agent/v1/contacts/{contact_id}");
    let changed = agent_ok(
        &s,
        &jiro_token,
        "PATCH",
        &path,
        Some(json!({"name": "Yamada Taro (VIP)", "phone": null, "company": "Omni Holdings"})),
    )
    .await;
    assert_eq!(
        (
            &changed["name"],
            &changed["phone"],
            &changed["company"],
            &changed["email"]
        ),
        (
            &json!("Yamada Taro (VIP)"),
            &Value::Null,
            &json!("Omni Holdings"),
            &json!("taro@example.jp")
        )
    );
    let detail = agent_ok(
        &s,
        &hanako_token,
        "GET",
        &format!("/agent/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(detail["customer"]["contact"]["name"], "Yamada Taro (VIP)");
    for (body, field) in [
        (json!({"name": null}), "name"),
        (json!({}), "body"),
        (json!({"phone": "call me"}), "phone"),
        (json!({"email": "nope"}), "email"),
        (json!({"nickname": "x"}), "nickname"),
    ] {
        let (status, error) = agent_call(&s, &jiro_token, "PATCH", &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["error"]["field"], field, "{body}: {error}");
    }
    let (status, _) = agent_call(
        &s,
        &jiro_token,
        "PATCH",
        "/agent/v1/contacts/no-such",
        Some(json!({"name": "X"})),
    )
    .await;
    assert_eq!(status, 404);

    // Close: "agent ended" and the survey (a quick reply 1–5) go out.
    let closed = agent_ok(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/close"),
        None,
    )
    .await;
    assert_eq!(closed["status"], "closed");
    sent_containing(&s, "ご利用ありがとうございました").await;
    let survey = sent_containing(&s, "今回の対応はいかがでしたか").await;
    let survey_text = survey[0].to_string();
    for n in 1..=5 {
        assert!(
            survey_text.contains(&format!("survey:{conversation}:{n}")),
            "{survey_text}"
        );
    }
    let (status, _) = agent_call(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/close"),
        None,
    )
    .await;
    assert_eq!(status, 409, "closing twice");

    // The customer taps 5: recorded on the closed conversation, no new conversation.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([postback_event(
                "01SURVEY1",
                "Ucust",
                &format!("survey:{conversation}:5")
            )])
        )
        .await,
        200
    );
    let mut answer = Value::Null;
    for _ in 0..100 {
        answer = agent_ok(
            &s,
            &hanako_token,
            "GET",
            &format!("/agent/v1/conversations/{conversation}/survey"),
            None,
        )
        .await;
        if answer["score"] == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer["score"], 5, "{answer}");
    assert_eq!(answer["scale"], 5);
    let export = s
        .ok("GET", &format!("/admin/v1/customers/{account}:Ucust"), None)
        .await;
    assert_eq!(
        export["conversations"].as_array().unwrap().len(),
        1,
        "the answer opened nothing"
    );

    // Next time the customer writes, the new conversation shows the linked contact; Jiro takes it.
    agent_ok(
        &s,
        &hanako_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "offline"})),
    )
    .await;
    agent_ok(
        &s,
        &jiro_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01CONV2A", "Ucust", "また質問です")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &jiro_token, None, "assigned").await;
    assert_eq!(assigned["customer"]["contact"]["name"], "Yamada Taro (VIP)");
    let second = assigned["conversationId"].as_str().unwrap();
    assert_ne!(second, conversation);
    let detail = agent_ok(
        &s,
        &jiro_token,
        "GET",
        &format!("/agent/v1/conversations/{second}"),
        None,
    )
    .await;
    assert_eq!(detail["customer"]["contact"]["email"], "taro@example.jp");
    assert_eq!(detail["customer"]["previousConversations"]["count"], 1);
    assert_eq!(detail["conversation"]["agentId"], jiro.as_str());
}

/// The agent's transcript once it holds `n` customer messages.
async fn transcript_with(s: &Stack, token: &str, conversation: &str, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let page = agent_ok(
            s,
            token,
            "GET",
            &format!("/agent/v1/conversations/{conversation}/messages"),
            None,
        )
        .await;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.iter().filter(|m| m["direction"] == "in").count() >= n {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the transcript never held {n} customer message(s)");
}

#[tokio::test]
async fn read_receipts_use_the_latest_mark_as_read_token_and_replies_quote_the_customer() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;

    // A first message stored without a markAsReadToken: nothing LINE could mark, and LINE is
    // not called.
    let mut first = text_event("01QUOTE1", "Uquote", "こんにちは");
    if let Some(message) = first["message"].as_object_mut() {
        message.remove("markAsReadToken");
    }
    assert_eq!(s.webhook(&account, SECRET_A, json!([first])).await, 200);
    let (assigned, _) = next_notification(&s, &token, None, "assigned").await;
    let conversation = assigned["conversationId"].as_str().unwrap().to_owned();
    let read = format!("/agent/v1/conversations/{conversation}/read");
    let (status, body) = agent_call(&s, &token, "POST", &read, None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "nothing_to_mark_read", "{body}");
    assert!(read_calls(&s).await.is_empty());

    // The customer quotes their first message: the transcript shows the quote token, the quoted
    // message and its entry.
    let mut second = text_event("01QUOTE2", "Uquote", "これの件です");
    second["message"]["quoteToken"] = json!("qt-second");
    second["message"]["quotedMessageId"] = json!("m-01QUOTE1");
    assert_eq!(s.webhook(&account, SECRET_A, json!([second])).await, 200);
    let transcript = transcript_with(&s, &token, &conversation, 2).await;
    let inbound: Vec<&Value> = transcript
        .iter()
        .filter(|m| m["direction"] == "in")
        .collect();
    assert_eq!(inbound[0]["id"], "01QUOTE1");
    assert_eq!(inbound[0]["quoteToken"], "q");
    assert!(
        inbound[0].get("quotedMessageId").is_none(),
        "{}",
        inbound[0]
    );
    assert_eq!(inbound[1]["quoteToken"], "qt-second");
    // LINE's read token is the server's: never shown to agents (the events carry one).
    for entry in &inbound {
        assert!(entry["message"].get("markAsReadToken").is_none(), "{entry}");
    }
    assert_eq!(inbound[1]["quotedMessageId"], "m-01QUOTE1");
    assert_eq!(inbound[1]["quotedEntryId"], "01QUOTE1");

    // Read marks up to the latest customer message, with its token.
    let (status, body) = agent_call(&s, &token, "POST", &read, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        read_calls(&s).await,
        [(
            "/v2/bot/chat/markAsRead".to_owned(),
            json!({"markAsReadToken": "mr-01QUOTE2"})
        )]
    );

    // Replies quoting the customer carry the quote token to LINE, text and sticker alike.
    let send = format!("/agent/v1/conversations/{conversation}/messages");
    let (status, body) = agent_call(
        &s,
        &token,
        "POST",
        &send,
        Some(json!({"type": "text", "text": "承知しました", "quoteToken": "qt-second"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let sent = sent_containing(&s, "承知しました").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["messages"][0]["text"], "承知しました");
    assert_eq!(sent[0]["messages"][0]["quoteToken"], "qt-second");
    let (status, body) = agent_call(
        &s,
        &token,
        "POST",
        &send,
        Some(
            json!({"type": "sticker", "packageId": "446", "stickerId": "1989", "quoteToken": "q"}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let sent = sent_containing(&s, "1989").await;
    assert_eq!(sent[0]["messages"][0]["quoteToken"], "q");
    // The agent's message in the transcript keeps what it quoted.
    let mut quoted_out = Value::Null;
    for _ in 0..100 {
        let page = agent_ok(&s, &token, "GET", &send, None).await;
        if let Some(out) = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == "agentMessage" && m["messages"][0]["type"] == "text")
        {
            quoted_out = out.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(quoted_out["messages"][0]["quoteToken"], "qt-second");

    // An unusable quote token is 422 naming the field, and nothing is sent.
    for bad in [
        json!({"type": "text", "text": "x", "quoteToken": ""}),
        json!({"type": "text", "text": "x", "quoteToken": 42}),
        json!({"type": "text", "text": "x", "quoteToken": "has space"}),
        json!({"type": "text", "text": "x", "quoteToken": "q".repeat(1001)}),
        json!({"type": "location", "title": "t", "address": "a", "latitude": 1.0, "longitude": 2.0,
               "quoteToken": "q"}),
    ] {
        let (status, body) = agent_call(&s, &token, "POST", &send, Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} → {body}");
        assert_eq!(body["error"]["field"], "quoteToken", "{body}");
    }
}

/// The reply and push calls LINE received whose first message is the text `text`, as how it
/// came (`reply` or `push`) and the call's body.
async fn calls_with(s: &Stack, text: &str) -> Vec<(String, Value)> {
    s.line
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let via = r.url.path().strip_prefix("/v2/bot/message/")?.to_owned();
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["messages"][0]["text"] == text).then_some((via, body))
        })
        .collect()
}

/// [`calls_with`] once LINE received `text`, and a moment later (a second call would have come).
async fn sent_via(s: &Stack, text: &str) -> Vec<(String, Value)> {
    for _ in 0..200 {
        if !calls_with(s, text).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return calls_with(s, text).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("LINE never received {text:?}");
}

#[tokio::test]
async fn an_agent_answering_within_20_s_replies_with_the_customer_messages_token() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let say = |text: &'static str| {
        let token = token.clone();
        let s = &s;
        async move {
            let (_, conversations) = agent_call(
                s,
                &token,
                "GET",
                "/agent/v1/conversations?status=active",
                None,
            )
            .await;
            let conversation = conversations["conversations"][0]["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let (status, body) = agent_call(
                s,
                &token,
                "POST",
                &format!("/agent/v1/conversations/{conversation}/messages"),
                Some(json!({"type": "text", "text": text})),
            )
            .await;
            assert_eq!(status, 202, "{body}");
            sent_via(s, text).await
        }
    };

    // The greeting answers the first message with its token.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01REPLY1", "Ureply", "こんにちは")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &token, None, "assigned").await;
    let conversation = assigned["conversationId"].as_str().unwrap().to_owned();
    let greeting = sent_via(&s, "Taro様、こんにちは").await;
    assert_eq!(greeting.len(), 1, "{greeting:?}");
    assert_eq!(greeting[0].0, "reply");
    assert_eq!(greeting[0].1["replyToken"], "r-01REPLY1");
    // So the agent's answer to it is pushed.
    let pushed = say("ご用件をどうぞ").await;
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0].0, "push");

    // The customer writes again; the agent answers within 20 s: a reply with that message's
    // token, once.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01REPLY2", "Ureply", "注文番号は123です")])
        )
        .await,
        200
    );
    transcript_with(&s, &token, &conversation, 2).await;
    let written = Instant::now();
    let replied = say("確認いたします").await;
    assert!(written.elapsed() < Duration::from_secs(20));
    assert_eq!(replied.len(), 1, "{replied:?}");
    assert_eq!(replied[0].0, "reply", "{replied:?}");
    assert_eq!(replied[0].1["replyToken"], "r-01REPLY2");
    assert_eq!(replied[0].1["messages"][0]["sender"]["name"], "Hanako");
    // A token is used once: the next answer to the same message is pushed.
    let next = say("少々お待ちください").await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].0, "push");
    assert_eq!(next[0].1["to"], "Ureply");

    // Both show as sent in the transcript.
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let transcript = transcript_with(&s, &token, &conversation, 2).await;
        statuses = transcript
            .iter()
            .filter(|m| m["type"] == "agentMessage")
            .map(|m| m["delivery"]["status"].clone())
            .collect();
        if statuses.len() == 3 && statuses.iter().all(|st| st == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(statuses, [json!("sent"), json!("sent"), json!("sent")]);

    // The admin sees the month's free replies and pushes: the greeting and the answer within
    // 20 s were replies, the two others pushes.
    let mut stats = Value::Null;
    for _ in 0..100 {
        stats = s
            .ok(
                "GET",
                &format!("/admin/v1/accounts/{account}/message-stats"),
                None,
            )
            .await;
        if stats["months"][0]["replies"] == 2 && stats["months"][0]["pushes"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let month = &stats["months"][0];
    assert_eq!(
        (&month["replies"], &month["pushes"], &month["failed"]),
        (&json!(2), &json!(2), &json!(0)),
        "{stats}"
    );
    assert_eq!(month["freeReplyShare"], 0.5);
    assert!(month["month"].as_str().unwrap().len() == 7, "{stats}");
    let (status, _) = s
        .call("GET", "/admin/v1/accounts/nope/message-stats", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn exactly_one_of_two_racing_agents_picks_a_conversation() {
    let s = start().await;
    let (account, queue, _) = channel(&s, "pick", true).await;
    let (_, a_token) = new_agent(&s, "Aki", &[&queue]).await;
    let (_, b_token) = new_agent(&s, "Ben", &[&queue]).await;
    for token in [&a_token, &b_token] {
        agent_ok(
            &s,
            token,
            "PUT",
            "/agent/v1/presence",
            Some(json!({"status": "available"})),
        )
        .await;
    }
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01PICK1", "Upick", "help")])
        )
        .await,
        200
    );
    let mut waiting = Value::Null;
    for _ in 0..100 {
        waiting = agent_ok(
            &s,
            &a_token,
            "GET",
            "/agent/v1/conversations?status=waiting",
            None,
        )
        .await;
        if !waiting["conversations"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = waiting["conversations"][0]["id"]
        .as_str()
        .expect("a waiting conversation")
        .to_owned();
    assert_eq!(
        waiting["conversations"][0]["customer"]["displayName"],
        "Taro"
    );
    let route = format!("/agent/v1/conversations/{id}/pick");
    let (a, b) = tokio::join!(
        agent_call(&s, &a_token, "POST", &route, None),
        agent_call(&s, &b_token, "POST", &route, None)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let winner = if a.0 == 200 { &a.1 } else { &b.1 };
    assert_eq!(winner["status"], "active");
}

#[tokio::test]
async fn agents_are_confined_to_their_queues_and_attachments_follow_the_workstream() {
    let s = start().await;
    let (account, queue, _) = channel(&s, "push", false).await;
    let other_queue = s.queue("Elsewhere").await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    let (_, outsider) = new_agent(&s, "Olga", &[&other_queue]).await;
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01FORB1", "Uforb", "hi")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &token, None, "assigned").await;
    let id = assigned["conversationId"].as_str().unwrap().to_owned();

    for (method, route) in [
        ("GET", format!("/agent/v1/conversations/{id}")),
        ("GET", format!("/agent/v1/conversations/{id}/messages")),
        ("POST", format!("/agent/v1/conversations/{id}/close")),
    ] {
        let (status, v) = agent_call(&s, &outsider, method, &route, None).await;
        assert_eq!(status, 403, "{method} {route} {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }
    let (status, v) = agent_call(
        &s,
        &outsider,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "text", "text": "not mine"})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let listed = agent_ok(&s, &outsider, "GET", "/agent/v1/conversations", None).await;
    assert_eq!(listed["conversations"], json!([]));

    // agentCanSend is off: an image is refused with a clear message, text goes.
    let (status, v) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "image", "originalContentUrl": "https://cdn.example.com/a.jpg"})),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agentCanSend"),
        "{v}"
    );
    let (status, _) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "sticker", "packageId": "446", "stickerId": "1988"})),
    )
    .await;
    assert_eq!(status, 202);
    for (body, field) in [
        (json!({"type": "text"}), "text"),
        (json!({"type": "text", "text": ""}), "text"),
        (json!({"type": "fax"}), "type"),
        (
            json!({"type": "location", "title": "Shop", "address": "Tokyo", "latitude": 95.0, "longitude": 139.0}),
            "latitude",
        ),
    ] {
        let (status, v) = agent_call(
            &s,
            &token,
            "POST",
            &format!("/agent/v1/conversations/{id}/messages"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 400, "{body} {v}");
        assert_eq!(v["error"]["field"], field, "{body} {v}");
    }
    let (status, _) = agent_call(&s, &token, "GET", "/agent/v1/conversations/nope", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn every_agent_route_needs_a_valid_agent_token() {
    let s = start().await;
    let q = s.queue("Q").await;
    let (_, token) = new_agent(&s, "Hanako", &[&q]).await;
    let rotated = s
        .ok(
            "POST",
            &format!(
                "/admin/v1/agents/{}/token",
                token.split('_').nth(1).unwrap()
            ),
            None,
        )
        .await;
    let routes = [
        ("GET", "/agent/v1/me"),
        ("PUT", "/agent/v1/presence"),
        ("GET", "/agent/v1/notifications"),
        ("GET", "/agent/v1/conversations"),
        ("GET", "/agent/v1/conversations/c1"),
        ("GET", "/agent/v1/conversations/c1/messages"),
        ("POST", "/agent/v1/conversations/c1/messages"),
        ("POST", "/agent/v1/conversations/c1/pick"),
        ("POST", "/agent/v1/conversations/c1/typing"),
        ("POST", "/agent/v1/conversations/c1/read"),
        ("POST", "/agent/v1/conversations/c1/transfer"),
        ("POST", "/agent/v1/conversations/c1/close"),
        ("GET", "/agent/v1/conversations/c1/survey"),
        ("POST", "/agent/v1/conversations/c1/link"),
        ("POST", "/agent/v1/conversations/c1/link-request"),
        ("GET", "/agent/v1/contacts"),
        ("POST", "/agent/v1/contacts"),
        ("POST", "/agent/v1/media"),
    ];
    for (method, route) in routes {
        for bad in [None, Some("nope"), Some(token.as_str()), Some(ADMIN)] {
            let mut request = s.client.request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{route}", s.base),
            );
            if let Some(bad) = bad {
                request = request.bearer_auth(bad);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 401, "{method} {route} with {bad:?}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        }
    }
    let new_token = rotated["token"].as_str().unwrap();
    let me = agent_ok(&s, new_token, "GET", "/agent/v1/me", None).await;
    assert_eq!(me["name"], "Hanako");
}

#[tokio::test]
async fn the_long_poll_returns_as_soon_as_an_assignment_happens() {
    let s = start().await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let empty = poll(&s, &token, None, 0).await;
    assert_eq!(empty["notifications"], json!([]));
    let started = Instant::now();
    let waiting = poll(&s, &token, None, 15);
    let send = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01POLL1", "Upoll", "hello")]),
        )
        .await
    };
    let (page, status) = tokio::join!(waiting, send);
    assert_eq!(status, 200);
    let elapsed = started.elapsed();
    assert_eq!(page["notifications"][0]["kind"], "assigned", "{page}");
    assert!(
        elapsed < Duration::from_secs(10),
        "returned after {elapsed:?}, not at the 15 s deadline"
    );
    // The cursor moves past it: the next poll has nothing.
    let next = poll(&s, &token, page["cursor"].as_str(), 0).await;
    assert_eq!(next["notifications"], json!([]));
    let (status, v) = agent_call(&s, &token, "GET", "/agent/v1/notifications?wait=99", None).await;
    assert_eq!((status, v["error"]["field"].as_str()), (400, Some("wait")));
}

#[tokio::test]
async fn an_account_link_request_links_the_customer_when_line_reports_the_nonce() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01LINK1", "Ulink", "link me")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &token, None, "assigned").await;
    let id = assigned["conversationId"].as_str().unwrap().to_owned();
    let contact = agent_ok(
        &s,
        &token,
        "POST",
        "/agent/v1/contacts",
        Some(json!({"name": "Suzuki Hana"})),
    )
    .await;
    let (status, v) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/link-request"),
        Some(json!({"contactId": "nope"})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (422, Some("contactId"))
    );
    let requested = agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/link-request"),
        Some(json!({"contactId": contact["id"]})),
    )
    .await;
    let url = requested["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/line/link/", s.base)), "{url}");
    sent_containing(&s, &url).await;

    // The customer opens it: a confirmation page, which uses nothing up (review 1/7 #15: a
    // link-preview crawler's GET used to spend the request) and is never cached.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..2 {
        let page = no_redirect.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<form method="post""#), "{html}");
    }
    // Confirming (twice at once): exactly one nonce, and LINE's account-link page.
    let (first, second) =
        tokio::join!(no_redirect.post(&url).send(), no_redirect.post(&url).send());
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [303, 404], "one confirmation wins");
    let r = if first.status() == 303 { first } else { second };
    assert_eq!(r.headers()["cache-control"], "no-store");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location
            .starts_with("https://access.line.me/dialog/bot/accountLink?linkToken=LT-123&nonce="),
        "{location}"
    );
    let nonce = location.rsplit("nonce=").next().unwrap().to_owned();
    let used = no_redirect.get(&url).send().await.unwrap();
    assert_eq!(used.status(), 404, "one use");
    assert!(
        used.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "the customer sees a page, not JSON"
    );
    assert_eq!(
        used.text().await.unwrap(),
        "This link is not valid or was already used."
    );

    // A forged nonce links nothing; LINE's event with the real one links the contact.
    let link_event = |id: &str, nonce: &str| {
        json!({"type": "accountLink", "mode": "active", "timestamp": now_ms(),
        "webhookEventId": id, "deliveryContext": {"isRedelivery": false}, "replyToken": "rl",
        "source": {"type": "user", "userId": "Ulink"}, "link": {"result": "ok", "nonce": nonce}})
    };
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([link_event("01LINKEV0", "forged-nonce")])
        )
        .await,
        200
    );
    assert_eq!(
        s.webhook(&account, SECRET_A, json!([link_event("01LINKEV1", &nonce)]))
            .await,
        200
    );
    let mut detail = Value::Null;
    for _ in 0..100 {
        detail = agent_ok(
            &s,
            &token,
            "GET",
            &format!("/agent/v1/conversations/{id}"),
            None,
        )
        .await;
        if !detail["customer"]["contact"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        detail["customer"]["contact"]["name"], "Suzuki Hana",
        "{detail}"
    );
}

/// LINE's group summary and member profiles reach the agent: the conversation shows the group's
/// name and icon, each line who wrote it.
#[tokio::test]
async fn a_group_conversation_shows_the_group_name_and_who_wrote_each_line() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let s = start().await;
    mock_agent_line(&s).await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/group/Cregulars/summary"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "groupId": "Cregulars", "groupName": "Shop regulars",
            "pictureUrl": "https://profile.line-scdn.net/group-icon"
        })))
        .expect(1)
        .mount(&s.line)
        .await;
    for (user, name) in [("Ualice", "Alice"), ("Ubob", "Bob")] {
        Mock::given(method("GET"))
            .and(path(format!("/v2/bot/group/Cregulars/member/{user}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"userId": user, "displayName": name})),
            )
            .mount(&s.line)
            .await;
    }
    let (account, queue, _) = channel(&s, "push", true).await;
    let (_, token) = new_agent(&s, "Hanako", &[&queue]).await;
    let in_group = |id: &str, user: &str, text: &str| {
        let mut event = text_event(id, user, text);
        event["source"] = json!({"type": "group", "groupId": "Cregulars", "userId": user});
        event
    };
    for event in [
        in_group("01GROUP1", "Ualice", "Is the shop open on Sunday?"),
        in_group("01GROUP2", "Ubob", "And on holidays?"),
    ] {
        assert_eq!(s.webhook(&account, SECRET_A, json!([event])).await, 200);
    }
    let mut waiting = Value::Null;
    for _ in 0..200 {
        (_, waiting) = agent_call(
            &s,
            &token,
            "GET",
            "/agent/v1/conversations?status=waiting",
            None,
        )
        .await;
        if waiting["conversations"][0].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let conversation = waiting["conversations"][0].clone();
    assert_eq!(conversation["sourceType"], "group", "{waiting}");
    assert_eq!(
        conversation["group"],
        json!({"name": "Shop regulars", "pictureUrl": "https://profile.line-scdn.net/group-icon"})
    );
    let id = conversation["id"].as_str().unwrap();
    let lines = transcript_with(&s, &token, id, 2).await;
    let writers: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["direction"] == "in")
        .map(|l| {
            (
                l["senderUserId"].as_str().unwrap(),
                l["senderName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(writers, [("Ualice", "Alice"), ("Ubob", "Bob")]);

    // The agent answers Alice by name: a textV2 mention of a member reaches LINE as written.
    // Available: the push distribution gives the waiting conversation to the agent.
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    for _ in 0..200 {
        let (_, detail) = agent_call(
            &s,
            &token,
            "GET",
            &format!("/agent/v1/conversations/{id}"),
            None,
        )
        .await;
        if detail["conversation"]["status"] == "active" || detail["status"] == "active" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let mention =
        |user: &str| json!({"type": "mention", "mentionee": {"type": "user", "userId": user}});
    let (status, body) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(
            json!({"type": "textV2", "text": "{alice} Yes, 10:00 to 18:00.",
                    "substitution": {"alice": mention("Ualice")}}),
        ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let sent = sent_containing(&s, "{alice} Yes, 10:00 to 18:00.").await;
    let message = &sent[0]["messages"][0];
    assert_eq!(message["type"], "textV2", "{sent:?}");
    assert_eq!(message["substitution"]["alice"], mention("Ualice"));
    // Someone who is not in the chat, a placeholder without its substitution: 422 naming it.
    for (body, field) in [
        (
            json!({"type": "textV2", "text": "{eve} hi", "substitution": {"eve": mention("Ueve")}}),
            "substitution.eve.mentionee.userId",
        ),
        (
            json!({"type": "textV2", "text": "{who} hi"}),
            "substitution.who",
        ),
        (json!({"type": "textV2", "text": "{oops"}), "text"),
    ] {
        let (status, v) = agent_call(
            &s,
            &token,
            "POST",
            &format!("/agent/v1/conversations/{id}/messages"),
            Some(body),
        )
        .await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (422, Some(field)),
            "{v}"
        );
    }
}

/// LINE refuses an agent's message: the agent is told (`deliveryFailed`) with LINE's reason.
#[tokio::test]
async fn an_agent_whose_message_line_refuses_is_told() {
    use wiremock::matchers::{body_string_contains, method, path_regex};
    use wiremock::{Mock, ResponseTemplate};
    let s = start().await;
    mock_agent_line(&s).await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/bot/message/(reply|push)$"))
        .and(body_string_contains("refused by LINE"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "The request body has 1 error(s)",
            "details": [{"message": "invalid", "property": "messages[0].text"}]
        })))
        .with_priority(1)
        .mount(&s.line)
        .await;
    let (_, token, conversation) =
        held_conversation(&s, text_event("01FAIL1", "Ufail", "hello")).await;
    let (_, cursor) = next_notification(&s, &token, None, "assigned").await;
    let (status, sent) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{conversation}/messages"),
        Some(json!({"type": "text", "text": "this text is refused by LINE"})),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let (failed, _) = next_notification(&s, &token, Some(cursor), "deliveryFailed").await;
    assert_eq!(failed["conversationId"], conversation.as_str());
    assert_eq!(failed["delivery"]["messageId"], sent["id"]);
    assert_eq!(failed["delivery"]["status"], "failed");
    assert!(
        failed["delivery"]["reason"]
            .as_str()
            .unwrap()
            .contains("messages[0].text"),
        "{failed}"
    );
    assert_eq!(failed["customer"]["userId"], "Ufail");
}

/// Rich messages from agents: quick replies on any message, a buttons template, a Flex bubble
/// and a file (as a link) reach LINE as written; what LINE would refuse is a 422 naming it.
#[tokio::test]
async fn agents_send_quick_replies_templates_flex_and_files() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (_, token, id) = held_conversation(&s, text_event("01RICH1", "Urich", "hello")).await;
    let send = |body: Value| {
        let (s, token, id) = (&s, token.clone(), id.clone());
        async move {
            agent_call(
                s,
                &token,
                "POST",
                &format!("/agent/v1/conversations/{id}/messages"),
                Some(body),
            )
            .await
        }
    };
    let item = |label: &str| json!({"type": "action", "action": {"type": "message", "label": label, "text": label}});
    let quick = json!({"items": [item("Yes"), item("No")]});
    for body in [
        json!({"type": "text", "text": "Shall I cancel it? (rich-1)", "quickReply": quick}),
        json!({"type": "template", "altText": "Your order (rich-2)", "template": {
            "type": "buttons", "title": "Order A-17", "text": "Ships today",
            "actions": [{"type": "uri", "label": "Track", "uri": "https://shop.example/t/A-17"}]}}),
        json!({"type": "flex", "altText": "Receipt (rich-3)", "contents": {"type": "bubble",
            "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "Total ¥1,200"}]}}}),
        json!({"type": "file", "fileName": "invoice-rich-4.pdf", "url": "https://shop.example/invoice.pdf"}),
    ] {
        let (status, v) = send(body).await;
        assert_eq!(status, 202, "{v}");
    }
    let sent = sent_containing(&s, "rich-1").await;
    assert_eq!(sent[0]["messages"][0]["quickReply"], quick);
    let sent = sent_containing(&s, "rich-2").await;
    assert_eq!(sent[0]["messages"][0]["template"]["type"], "buttons");
    let sent = sent_containing(&s, "rich-3").await;
    assert_eq!(sent[0]["messages"][0]["type"], "flex");
    let sent = sent_containing(&s, "invoice-rich-4.pdf").await;
    let file = &sent[0]["messages"][0];
    assert_eq!(
        file["type"], "text",
        "LINE has no outbound file message: {file}"
    );
    assert!(file["text"]
        .as_str()
        .unwrap()
        .contains("https://shop.example/invoice.pdf"));

    // A PDF the agent uploads goes as a file: its name and its signed link. A page is refused.
    let upload = |content_type: &'static str, bytes: &'static [u8]| {
        let (s, token) = (&s, token.clone());
        async move {
            let response = s
                .client
                .post(format!("{}/agent/v1/media", s.base))
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(bytes)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, refused) = upload("text/html", b"<script>alert(1)</script>").await;
    assert_eq!(
        (status, &refused["error"]["field"]),
        (400, &json!("Content-Type")),
        "{refused}"
    );
    let (status, pdf) = upload("application/pdf", b"%PDF-1.4\n%rich-5\n").await;
    assert_eq!(status, 201, "{pdf}");
    let media_id = pdf["mediaId"].as_str().unwrap();
    assert!(
        media_id.starts_with("agent-media/") && media_id.ends_with(".pdf"),
        "{pdf}"
    );
    let (status, v) =
        send(json!({"type": "file", "fileName": "receipt-rich-5.pdf", "mediaId": media_id})).await;
    assert_eq!(status, 202, "{v}");
    let sent = sent_containing(&s, "receipt-rich-5.pdf").await;
    let link = sent[0]["messages"][0]["text"].as_str().unwrap().to_owned();
    assert!(
        link.contains("/media/agent-media/"),
        "the signed link to the upload: {link}"
    );

    let many: Vec<Value> = (0..14).map(|i| item(&format!("o{i}"))).collect();
    for (body, field) in [
        (
            json!({"type": "text", "text": "x", "quickReply": {"items": many}}),
            "quickReply.items",
        ),
        (
            json!({"type": "template", "altText": "a", "template": {"type": "confirm", "text": "Sure?",
                   "actions": [{"type": "message", "label": "Yes", "text": "yes"}]}}),
            "template.actions",
        ),
        (
            json!({"type": "flex", "altText": "a", "contents": {"type": "box"}}),
            "contents.type",
        ),
        (json!({"type": "template", "template": {}}), "altText"),
    ] {
        let (status, v) = send(body).await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (422, Some(field)),
            "{v}"
        );
    }
}

/// A file the customer sends is fetched from LINE's content API, stored, and shown to the agent
/// with its name and size and a signed link that serves the same bytes.
#[tokio::test]
async fn an_inbound_file_is_stored_and_shown_to_the_agent_with_name_and_size() {
    let s = start().await;
    mock_agent_line(&s).await;
    let pdf = b"%PDF-1.4\n% an invoice\n".to_vec();
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/m-01FILE1/content"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/pdf")
                .set_body_bytes(pdf.clone()),
        )
        .expect(1)
        .mount(&s.line)
        .await;
    let mut event = text_event("01FILE1", "Ufile", "");
    event["message"] = json!({"type": "file", "id": "m-01FILE1", "fileName": "invoice-2026-12.pdf",
                              "fileSize": pdf.len(), "quoteToken": "q"});
    let (_, token, id) = held_conversation(&s, event).await;
    let mut line = Value::Null;
    for _ in 0..200 {
        let lines = transcript_with(&s, &token, &id, 1).await;
        if let Some(found) = lines
            .iter()
            .find(|l| l["message"]["type"] == "file" && l["media"]["status"] == "stored")
        {
            line = found.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(line["message"]["fileName"], "invoice-2026-12.pdf", "{line}");
    assert_eq!(line["message"]["fileSize"], pdf.len());
    assert_eq!(line["media"]["contentType"], "application/pdf");
    let url = line["media"]["url"].as_str().expect("a signed link");
    let stored = s.client.get(url).send().await.unwrap();
    assert_eq!(stored.status(), 200);
    assert_eq!(stored.bytes().await.unwrap().as_ref(), pdf.as_slice());
}

/// An admin writes a message template; an agent sends it by id with its variables, and LINE gets
/// it filled in (with the customer's and the agent's names); what LINE would refuse is 422.
#[tokio::test]
async fn agents_send_message_templates_by_id_with_variables() {
    let s = start().await;
    mock_agent_line(&s).await;
    let created = s
        .ok(
            "POST",
            "/admin/v1/message-templates",
            Some(json!({"name": "Shipped", "variables": ["orderId"], "messages": [
                {"type": "text", "text": "{{customerName}}様、ご注文 {{orderId}} を発送しました（{{agentName}}）"},
                {"type": "template", "altText": "Track {{orderId}}", "template": {"type": "buttons", "text": "Track it",
                  "actions": [{"type": "uri", "label": "Track", "uri": "https://shop.example/t/{{orderId}}"}]}}
            ]})),
        )
        .await;
    let template_id = created["id"].as_str().unwrap().to_owned();
    // Refused when saved: an undeclared variable; a message LINE would refuse.
    for (body, field) in [
        (
            json!({"name": "Bad", "messages": [{"type": "text", "text": "{{nope}}"}]}),
            "messages[0]",
        ),
        (
            json!({"name": "Bad", "messages": [{"type": "text", "text": ""}]}),
            "messages[0].text",
        ),
        (json!({"name": "Bad", "messages": []}), "messages"),
    ] {
        let (status, v) = s
            .call("POST", "/admin/v1/message-templates", Some(body))
            .await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"]["code"], "invalid_message");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let listed = s.ok("GET", "/admin/v1/message-templates", None).await;
    assert_eq!(listed["messageTemplates"].as_array().unwrap().len(), 1);

    let (_, token, id) = held_conversation(&s, text_event("01TPL1", "Utpl", "hello")).await;
    let route = format!("/agent/v1/conversations/{id}/messages");
    let (status, v) = agent_call(
        &s,
        &token,
        "POST",
        &route,
        Some(json!({"type": "messageTemplate", "templateId": template_id, "variables": {"orderId": "A-17"}})),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let sent = sent_containing(&s, "を発送しました").await;
    let messages = &sent[0]["messages"];
    assert_eq!(
        messages[0]["text"],
        "Taro様、ご注文 A-17 を発送しました（Hanako）"
    );
    assert_eq!(
        messages[1]["template"]["actions"][0]["uri"],
        "https://shop.example/t/A-17"
    );
    for (body, field) in [
        (
            json!({"type": "messageTemplate", "templateId": template_id}),
            "variables.orderId",
        ),
        (
            json!({"type": "messageTemplate", "templateId": "nope", "variables": {}}),
            "templateId",
        ),
    ] {
        let (status, v) = agent_call(&s, &token, "POST", &route, Some(body)).await;
        assert_eq!(
            (status, v["error"]["field"].as_str()),
            (422, Some(field)),
            "{v}"
        );
    }
    s.ok(
        "DELETE",
        &format!("/admin/v1/message-templates/{template_id}"),
        None,
    )
    .await;
    let (status, _) = s
        .call(
            "GET",
            &format!("/admin/v1/message-templates/{template_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// Where an agent may transfer: its queues (named) and the other agents serving them, with
/// their presence and load; never itself, never an agent of another queue.
#[tokio::test]
async fn transfer_targets_are_the_agents_queues_and_their_other_agents() {
    let s = start().await;
    let support = s.queue("Support").await;
    let billing = s.queue("Billing").await;
    let (_, aiko) = new_agent(&s, "Aiko", &[&support]).await;
    let (ben, ben_token) = new_agent(&s, "Ben", &[&support, &billing]).await;
    let (_, _) = new_agent(&s, "Chie", &[&billing]).await;
    agent_ok(
        &s,
        &ben_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let targets = agent_ok(&s, &aiko, "GET", "/agent/v1/transfer-targets", None).await;
    assert_eq!(
        targets["queues"],
        json!([{"id": support, "name": "Support"}])
    );
    let agents = targets["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{targets}");
    assert_eq!(agents[0]["id"], ben.as_str());
    assert_eq!(agents[0]["status"], "available");
    assert_eq!(
        (&agents[0]["activeConversations"], &agents[0]["capacity"]),
        (&json!(0), &json!(2))
    );
}

/// Where to transfer: `GET /agent/v1/queues` gives the agent's queues with how many
/// conversations wait and are answered; `GET /agent/v1/agents?queueId=` the agents of one of its
/// queues (403 for another's, 400 for an unknown parameter), all of its queues' without it.
#[tokio::test]
async fn an_agent_sees_its_queues_load_and_the_agents_it_may_transfer_to() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, support, _) = channel(&s, "push", true).await;
    let billing = s.queue("Billing").await;
    let (aiko, aiko_token) = new_agent(&s, "Aiko", &[&support]).await;
    let (ben, ben_token) = new_agent(&s, "Ben", &[&support, &billing]).await;
    let (chie, _) = new_agent(&s, "Chie", &[&billing]).await;
    // Two customers write while nobody is available: both wait in Support.
    for (event, user) in [("01QLOAD1", "Ucust1"), ("01QLOAD2", "Ucust2")] {
        assert_eq!(
            s.webhook(
                &account,
                SECRET_A,
                json!([text_event(event, user, "hello")])
            )
            .await,
            200
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let queues = loop {
        let queues = agent_ok(&s, &aiko_token, "GET", "/agent/v1/queues", None).await;
        if queues["queues"][0]["waiting"] == 2 || Instant::now() > deadline {
            break queues;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        queues,
        json!({"queues": [{"id": support, "name": "Support", "waiting": 2, "active": 0}]})
    );
    // Ben comes online with room for two: both go to him.
    agent_ok(
        &s,
        &ben_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let queues = loop {
        let queues = agent_ok(&s, &ben_token, "GET", "/agent/v1/queues", None).await;
        if queues["queues"][0]["active"] == 2 || Instant::now() > deadline {
            break queues;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        queues["queues"],
        json!([
            {"id": support, "name": "Support", "waiting": 0, "active": 2},
            {"id": billing, "name": "Billing", "waiting": 0, "active": 0}
        ])
    );

    let ids = |v: &Value| -> Vec<String> {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let of_support = agent_ok(
        &s,
        &aiko_token,
        "GET",
        &format!("/agent/v1/agents?queueId={support}"),
        None,
    )
    .await;
    assert_eq!(ids(&of_support), [aiko.clone(), ben.clone()]);
    let ben_row = &of_support["agents"][1];
    assert_eq!(
        (
            &ben_row["status"],
            &ben_row["activeConversations"],
            &ben_row["capacity"]
        ),
        (&json!("available"), &json!(2), &json!(2))
    );
    // Ben's queues: Support and Billing; Aiko may not look into Billing.
    let all = agent_ok(&s, &ben_token, "GET", "/agent/v1/agents", None).await;
    assert_eq!(ids(&all), [aiko.clone(), ben.clone(), chie.clone()]);
    let (status, body) = agent_call(
        &s,
        &aiko_token,
        "GET",
        &format!("/agent/v1/agents?queueId={billing}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = agent_call(&s, &aiko_token, "GET", "/agent/v1/agents?queue=x", None).await;
    assert_eq!(status, 400);
}

/// Presence follows the person, over HTTP: `presenceTimeoutSeconds` is a setting (90 by
/// default; 0 or 60 to 86,400); an agent whose console stops its heartbeat
/// (`PUT /agent/v1/presence`) for the timeout is set away by the schedule and passed over, one
/// who keeps beating keeps working, and the next heartbeat brings the first one back.
/// Waits out the shortest timeout (60 s) of the wall clock: the local stack's clock is the
/// system's.
#[tokio::test]
async fn an_agent_whose_console_went_quiet_becomes_away_and_gets_no_new_work() {
    let s = start_with(&[("SCHEDULE_EVERY_MS", "250")]).await;
    mock_agent_line(&s).await;
    let settings = s.ok("GET", "/admin/v1/settings", None).await;
    assert_eq!(settings["presenceTimeoutSeconds"], 90);
    for bad in [json!(30), json!(-1), json!(86_401), json!("90")] {
        let (status, body) = s
            .call(
                "PATCH",
                "/admin/v1/settings",
                Some(json!({"presenceTimeoutSeconds": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["field"], "presenceTimeoutSeconds");
    }
    let settings = s
        .ok(
            "PATCH",
            "/admin/v1/settings",
            Some(json!({"presenceTimeoutSeconds": 60})),
        )
        .await;
    assert_eq!(settings["presenceTimeoutSeconds"], 60);

    let (account, queue, _) = channel(&s, "push", true).await;
    let (quiet, quiet_token) = new_agent(&s, "Quiet", &[&queue]).await;
    let (loud, loud_token) = new_agent(&s, "Loud", &[&queue]).await;
    let available = Some(json!({"status": "available"}));
    agent_ok(
        &s,
        &quiet_token,
        "PUT",
        "/agent/v1/presence",
        available.clone(),
    )
    .await;
    let started = Instant::now();
    // Loud's console beats every 5 s; Quiet's was closed.
    let mut away = None;
    while started.elapsed() < Duration::from_secs(90) {
        agent_ok(
            &s,
            &loud_token,
            "PUT",
            "/agent/v1/presence",
            available.clone(),
        )
        .await;
        let agents = s.ok("GET", "/admin/v1/agents", None).await;
        let status = |id: &str| {
            agents["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["id"] == id)
                .map(|a| a["status"].clone())
                .unwrap()
        };
        assert_eq!(status(&loud), "available");
        if status(&quiet) == "away" {
            away = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let away = away.expect("the quiet agent became away");
    assert!(
        away >= Duration::from_secs(60),
        "not before the timeout: {away:?}"
    );

    // A customer writes: the conversation goes to Loud.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01AWAY1", "Ucust", "hello")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &loud_token, None, "assigned").await;
    let conversation = assigned["conversationId"].as_str().unwrap();
    let detail = agent_ok(
        &s,
        &loud_token,
        "GET",
        &format!("/agent/v1/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["agentId"], loud.as_str());
    // Quiet's console comes back: its heartbeat makes it available again.
    let me = agent_ok(&s, &quiet_token, "PUT", "/agent/v1/presence", available).await;
    assert_eq!(me["status"], "available");
}

/// Snooze and follow-up, over HTTP: a snoozed conversation leaves the agent's lists until its
/// time or until the customer writes (`snoozed=true` lists it meanwhile); a follow-up flag is a
/// filter; only the holder may do either; bad times are 400 (422 when past), a closed conversation cannot be
/// snoozed (409) but can be flagged.
#[tokio::test]
async fn a_snoozed_conversation_leaves_the_list_until_the_customer_writes_and_follow_ups_filter() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, id) =
        held_conversation(&s, text_event("01SNOOZE1", "Usnooze", "hello")).await;
    let ids = |v: &Value| -> Vec<String> {
        v["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |route: &'static str| {
        let (s, token) = (&s, token.clone());
        async move { agent_ok(s, &token, "GET", route, None).await }
    };
    assert_eq!(
        ids(&list("/agent/v1/conversations?status=active").await),
        std::slice::from_ref(&id)
    );

    let route = format!("/agent/v1/conversations/{id}/snooze");
    for (body, field) in [
        (json!({}), "until"),
        (json!({"until": "tomorrow"}), "until"),
        (json!({"until": 1_700_000_000_000_i64}), "until"),
    ] {
        let (status, error) = agent_call(&s, &token, "POST", &route, Some(body.clone())).await;
        assert_eq!(
            (status, error["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    // A time that has passed is understood, and refused.
    let (status, error) = agent_call(
        &s,
        &token,
        "POST",
        &route,
        Some(json!({"until": "2001-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (422, Some("until"))
    );
    let until = omniline_domain::clock::rfc3339_millis(now_ms() + 3_600_000);
    let snoozed = agent_ok(&s, &token, "POST", &route, Some(json!({"until": until}))).await;
    assert_eq!(snoozed["status"], "active");
    assert!(snoozed["snoozedUntil"].as_i64().unwrap() > now_ms());
    assert!(ids(&list("/agent/v1/conversations?status=active").await).is_empty());
    assert!(ids(&list("/agent/v1/conversations").await).is_empty());
    assert_eq!(
        ids(&list("/agent/v1/conversations?snoozed=true").await),
        std::slice::from_ref(&id)
    );
    // Another agent of the queue may not snooze it.
    let queue = snoozed["queueId"].as_str().unwrap().to_owned();
    let (_, other) = new_agent(&s, "Jiro", &[&queue]).await;
    let (status, _) = agent_call(&s, &other, "POST", &route, Some(json!({"until": until}))).await;
    assert_eq!(status, 403);

    // The customer writes: the snooze ends.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01SNOOZE2", "Usnooze", "still there?")])
        )
        .await,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids(&list("/agent/v1/conversations?status=active").await).is_empty() {
        assert!(Instant::now() < deadline, "the customer's message woke it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detail = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["snoozedUntil"], Value::Null);
    // Snoozed again, then woken by the agent (null).
    agent_ok(&s, &token, "POST", &route, Some(json!({"until": until}))).await;
    let woken = agent_ok(&s, &token, "POST", &route, Some(json!({"until": null}))).await;
    assert_eq!(woken["snoozedUntil"], Value::Null);

    // Follow-up: a filter, on and off; after the close too.
    let flag = format!("/agent/v1/conversations/{id}/follow-up");
    assert!(ids(&list("/agent/v1/conversations?followUp=true").await).is_empty());
    let flagged = agent_ok(&s, &token, "PUT", &flag, Some(json!({"followUp": true}))).await;
    assert_eq!(flagged["followUp"], true);
    assert_eq!(
        ids(&list("/agent/v1/conversations?followUp=true").await),
        std::slice::from_ref(&id)
    );
    let (status, _) = agent_call(&s, &token, "PUT", &flag, Some(json!({"followUp": "yes"}))).await;
    assert_eq!(status, 400);
    let (status, _) = agent_call(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?followUp=1",
        None,
    )
    .await;
    assert_eq!(status, 400);
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/close"),
        None,
    )
    .await;
    let (status, body) =
        agent_call(&s, &token, "POST", &route, Some(json!({"until": until}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    let closed = agent_ok(&s, &token, "PUT", &flag, Some(json!({"followUp": false}))).await;
    assert_eq!(
        (&closed["status"], &closed["followUp"]),
        (&json!("closed"), &json!(false))
    );
}

fn follow_event(id: &str, user: &str, kind: &str) -> Value {
    let mut event = json!({"type": kind, "mode": "active", "timestamp": now_ms(), "webhookEventId": id,
           "deliveryContext": {"isRedelivery": false},
           "source": {"type": "user", "userId": user}});
    if kind == "follow" {
        event["replyToken"] = json!(format!("r-{id}"));
        event["follow"] = json!({"isUnblocked": false});
    }
    event
}

/// Writing first, over HTTP: an agent opens a conversation with a customer who follows the
/// account and pushes the first message (201; the same Idempotency-Key opens and sends once);
/// another agent then finds it open (409 `conversation_open`); a customer who unfollowed gets
/// nothing (409 `not_following`); an unknown customer is 404, an agent of other queues 403, a
/// bad message 400 naming its field.
#[tokio::test]
async fn an_agent_writes_first_to_a_customer_who_follows_the_account() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, _) = channel(&s, "push", true).await;
    let billing = s.queue("Billing").await;
    let (hanako, hanako_token) = new_agent(&s, "Hanako", &[&queue]).await;
    let (_, jiro_token) = new_agent(&s, "Jiro", &[&queue]).await;
    let (_, chie_token) = new_agent(&s, "Chie", &[&billing]).await;
    agent_ok(
        &s,
        &hanako_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([follow_event("01FOLLOW1", "Ufirst", "follow")])
        )
        .await,
        200
    );
    let route = format!("/agent/v1/customers/{account}:Ufirst/conversations");
    let body = json!({"message": {"type": "text", "text": "Your order has shipped."}});
    let start = |token: &str, key: &str| {
        let request = s
            .client
            .post(format!("{}{route}", s.base))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // The follow is stored by the router: until then the customer is unknown.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, opened) = loop {
        let (status, body) = start(&hanako_token, "first-1").await;
        if status != 404 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 201, "{opened}");
    let conversation = opened["conversation"]["id"].as_str().unwrap().to_owned();
    assert_eq!(opened["conversation"]["status"], "active");
    assert_eq!(opened["conversation"]["agentId"], hanako.as_str());
    assert_eq!(opened["conversation"]["sourceId"], "Ufirst");
    assert_eq!(opened["message"]["status"], "queued");
    let sent = sent_containing(&s, "Your order has shipped.").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["to"], "Ufirst", "pushed: nothing to reply to");
    // The same key: the same conversation and message, nothing sent again.
    let (status, again) = start(&hanako_token, "first-1").await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["conversation"]["id"], conversation.as_str());
    assert_eq!(again["message"]["id"], opened["message"]["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sent_containing(&s, "Your order has shipped.").await.len(),
        1
    );
    let mine = agent_ok(
        &s,
        &hanako_token,
        "GET",
        "/agent/v1/conversations?status=active",
        None,
    )
    .await;
    assert_eq!(mine["conversations"][0]["id"], conversation.as_str());
    let me = agent_ok(&s, &hanako_token, "GET", "/agent/v1/me", None).await;
    assert_eq!(me["activeConversations"], 1, "it holds one of her slots");

    // Jiro finds it open.
    let (status, error) = start(&jiro_token, "first-2").await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("conversation_open"))
    );
    // Chie serves none of the account's queues; an unknown customer is 404.
    let (status, _) = start(&chie_token, "first-3").await;
    assert_eq!(status, 403);
    let (status, _) = agent_call(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/customers/{account}:Unobody/conversations"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, error) = agent_call(
        &s,
        &hanako_token,
        "POST",
        &route,
        Some(json!({"message": {"type": "nope"}})),
    )
    .await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (400, Some("message.type"))
    );
    let (status, error) = agent_call(&s, &hanako_token, "POST", &route, Some(json!({}))).await;
    assert_eq!(
        (status, error["error"]["field"].as_str()),
        (400, Some("message"))
    );

    // The customer blocks the account: nothing can be sent any more.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([follow_event("01FOLLOW2", "Ufirst", "unfollow")])
        )
        .await,
        200
    );
    // (Jiro asks until it is stored: conversation_open before, not_following after; Hanako's
    // own open conversation would have taken a message meanwhile.)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, error) = start(&jiro_token, "first-4").await;
        assert_eq!(status, 409, "{error}");
        if error["error"]["code"] == "not_following" {
            break;
        }
        assert!(Instant::now() < deadline, "the unfollow was stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, error) = start(&hanako_token, "first-4").await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (409, Some("not_following"))
    );
    assert_eq!(
        sent_containing(&s, "Your order has shipped.").await.len(),
        1,
        "nothing more sent"
    );
}

/// Affinity over HTTP: `affinity` is a workstream setting (1 to 90 days; 400 otherwise, `null`
/// turns it off); with it, a customer who writes again after their conversation closed goes
/// back to the agent who answered them, though distribution alone would pick the other agent.
#[tokio::test]
async fn a_returning_customer_goes_back_to_their_agent_with_affinity_on() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, ws) = channel(&s, "push", true).await;
    let route = format!("/admin/v1/workstreams/{ws}");
    for bad in [
        json!({"enabled": true, "days": 0}),
        json!({"enabled": true, "days": 91}),
        json!({"enabled": true}),
        json!({"days": 3}),
    ] {
        let (status, body) = s
            .call("PATCH", &route, Some(json!({"affinity": bad})))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("affinity"),
            "{body}"
        );
    }
    let patched = s
        .ok(
            "PATCH",
            &route,
            Some(json!({"affinity": {"enabled": true, "days": 30}})),
        )
        .await;
    assert_eq!(patched["affinity"], json!({"enabled": true, "days": 30}));

    let (hanako, hanako_token) = new_agent(&s, "Hanako", &[&queue]).await;
    let available = Some(json!({"status": "available"}));
    agent_ok(
        &s,
        &hanako_token,
        "PUT",
        "/agent/v1/presence",
        available.clone(),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01AFF1", "Uback", "hello")])
        )
        .await,
        200
    );
    let (assigned, cursor) = next_notification(&s, &hanako_token, None, "assigned").await;
    let first = assigned["conversationId"].as_str().unwrap().to_owned();
    agent_ok(
        &s,
        &hanako_token,
        "POST",
        &format!("/agent/v1/conversations/{first}/close"),
        None,
    )
    .await;
    // Jiro comes online: never assigned, he is first by distribution alone.
    let (jiro, jiro_token) = new_agent(&s, "Jiro", &[&queue]).await;
    agent_ok(&s, &jiro_token, "PUT", "/agent/v1/presence", available).await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01AFF2", "Uback", "me again")])
        )
        .await,
        200
    );
    let (again, _) = next_notification(&s, &hanako_token, Some(cursor), "assigned").await;
    let second = again["conversationId"].as_str().unwrap();
    assert_ne!(second, first, "a new conversation");
    let detail = agent_ok(
        &s,
        &hanako_token,
        "GET",
        &format!("/agent/v1/conversations/{second}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["agentId"], hanako.as_str());

    // Off: a new customer goes by distribution (Jiro, the least recently assigned).
    let off = s.ok("PATCH", &route, Some(json!({"affinity": null}))).await;
    assert_eq!(off["affinity"], Value::Null);
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01AFF3", "Unew", "hi")])
        )
        .await,
        200
    );
    let (to_jiro, _) = next_notification(&s, &jiro_token, None, "assigned").await;
    let detail = agent_ok(
        &s,
        &jiro_token,
        "GET",
        &format!(
            "/agent/v1/conversations/{}",
            to_jiro["conversationId"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["agentId"], jiro.as_str());
}

/// Wrap-up over HTTP: `wrapUpSeconds` (0 to 3,600) and `dispositions` are workstream settings;
/// a close leaves the conversation `wrapUp` with the agent's slot held; `POST …/wrap-up` records
/// the outcome (422 for one not listed, 409 when none is pending) and gives the slot back; a
/// wrap-up nobody records ends when its time passes.
#[tokio::test]
async fn a_closed_conversation_waits_for_its_wrap_up_and_holds_the_slot() {
    let s = start_with(&[("SCHEDULE_EVERY_MS", "200")]).await;
    mock_agent_line(&s).await;
    let (account, token, id) = held_conversation(&s, text_event("01WRAP1", "Uwrap", "hello")).await;
    let ws = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await["workstream"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let route = format!("/admin/v1/workstreams/{ws}");
    for (bad, field) in [
        (json!({"wrapUpSeconds": 3601}), "wrapUpSeconds"),
        (json!({"dispositions": ["ok", "ok"]}), "dispositions[1]"),
        (json!({"dispositions": [""]}), "dispositions[0]"),
    ] {
        let (status, body) = s.call("PATCH", &route, Some(bad.clone())).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{bad}"
        );
    }
    let patched = s
        .ok(
            "PATCH",
            &route,
            Some(json!({"wrapUpSeconds": 600, "dispositions": ["resolved", "escalated"]})),
        )
        .await;
    assert_eq!(patched["wrapUpSeconds"], 600);
    assert_eq!(patched["dispositions"], json!(["resolved", "escalated"]));

    let closed = agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/close"),
        None,
    )
    .await;
    assert_eq!(closed["status"], "wrapUp");
    assert!(closed["wrapUp"]["until"].as_i64().unwrap() > now_ms() + 590_000);
    assert_eq!(closed["wrapUp"]["doneAt"], Value::Null);
    let me = agent_ok(&s, &token, "GET", "/agent/v1/me", None).await;
    assert_eq!(me["activeConversations"], 1, "the slot is held");
    let wrap = format!("/agent/v1/conversations/{id}/wrap-up");
    let (status, body) = agent_call(
        &s,
        &token,
        "POST",
        &wrap,
        Some(json!({"disposition": "happy"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("disposition"))
    );
    let (status, body) = agent_call(&s, &token, "POST", &wrap, Some(json!({}))).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("disposition"))
    );
    let done = agent_ok(
        &s,
        &token,
        "POST",
        &wrap,
        Some(json!({"disposition": "resolved", "notes": "refund issued"})),
    )
    .await;
    assert_eq!(done["status"], "closed");
    assert_eq!(done["wrapUp"]["disposition"], "resolved");
    assert_eq!(done["wrapUp"]["notes"], "refund issued");
    assert!(done["wrapUp"]["doneAt"].is_i64());
    let me = agent_ok(&s, &token, "GET", "/agent/v1/me", None).await;
    assert_eq!(me["activeConversations"], 0, "the slot is back");
    let (status, body) = agent_call(
        &s,
        &token,
        "POST",
        &wrap,
        Some(json!({"disposition": "resolved"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    // One second of wrap-up, never recorded: it ends by itself and the slot comes back.
    s.ok("PATCH", &route, Some(json!({"wrapUpSeconds": 1})))
        .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01WRAP2", "Uwrap", "one more thing")])
        )
        .await,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let list = agent_ok(
            &s,
            &token,
            "GET",
            "/agent/v1/conversations?status=active",
            None,
        )
        .await;
        if let Some(c) = list["conversations"].as_array().unwrap().first() {
            break c["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the new conversation is assigned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let closed = agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{second}/close"),
        None,
    )
    .await;
    assert_eq!(closed["status"], "wrapUp");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let detail = agent_ok(
            &s,
            &token,
            "GET",
            &format!("/agent/v1/conversations/{second}"),
            None,
        )
        .await;
        if detail["conversation"]["status"] == "closed" {
            assert_eq!(detail["conversation"]["wrapUp"]["disposition"], Value::Null);
            break;
        }
        assert!(Instant::now() < deadline, "the wrap-up timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let me = agent_ok(&s, &token, "GET", "/agent/v1/me", None).await;
    assert_eq!(me["activeConversations"], 0);
}

/// Offers over HTTP: with `offer` `{"mode": "accept", "timeoutSeconds"}` (15 to 600), a
/// customer's conversation is offered to one agent (a notification of kind `offer` with
/// `expiresAt`); rejecting offers it to the other at once; accepting makes it theirs (403 for
/// the agent it is not offered to, 409 once answered); an offer left unanswered goes to the
/// other agent when it expires.
#[tokio::test]
async fn an_offered_conversation_is_accepted_rejected_or_passed_on_when_it_expires() {
    let s = start_with(&[("SCHEDULE_EVERY_MS", "200")]).await;
    mock_agent_line(&s).await;
    let (account, queue, ws) = channel(&s, "push", true).await;
    let route = format!("/admin/v1/workstreams/{ws}");
    for bad in [
        json!({"mode": "accept"}),
        json!({"mode": "accept", "timeoutSeconds": 10}),
        json!({"mode": "sometimes", "timeoutSeconds": 30}),
    ] {
        let (status, body) = s.call("PATCH", &route, Some(json!({"offer": bad}))).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("offer."),
            "{body}"
        );
    }
    let patched = s
        .ok(
            "PATCH",
            &route,
            Some(json!({"offer": {"mode": "accept", "timeoutSeconds": 15}})),
        )
        .await;
    assert_eq!(
        patched["offer"],
        json!({"mode": "accept", "timeoutSeconds": 15})
    );
    let (ann, ann_token) = new_agent(&s, "Ann", &[&queue]).await;
    let (ben, ben_token) = new_agent(&s, "Ben", &[&queue]).await;
    for token in [&ann_token, &ben_token] {
        agent_ok(
            &s,
            token,
            "PUT",
            "/agent/v1/presence",
            Some(json!({"status": "available"})),
        )
        .await;
    }
    let token_of = |id: &str| {
        if id == ann {
            ann_token.clone()
        } else {
            ben_token.clone()
        }
    };
    let other = |id: &str| if id == ann { ben.clone() } else { ann.clone() };
    let offered_to = |conversation: &str| {
        let (s, conversation, ann_token) = (&s, conversation.to_owned(), ann_token.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let detail = agent_ok(
                    s,
                    &ann_token,
                    "GET",
                    &format!("/agent/v1/conversations/{conversation}"),
                    None,
                )
                .await;
                if let Some(agent) = detail["conversation"]["offer"]["agentId"].as_str() {
                    return (agent.to_owned(), detail["conversation"].clone());
                }
                assert!(Instant::now() < deadline, "an offer is made: {detail}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01OFFER1", "Uoffer1", "hello")])
        )
        .await,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let list = agent_ok(
            &s,
            &ann_token,
            "GET",
            "/agent/v1/conversations?status=waiting",
            None,
        )
        .await;
        if let Some(c) = list["conversations"].as_array().unwrap().first() {
            break c["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the first conversation waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (x, c) = offered_to(&first).await;
    assert_eq!(c["status"], "waiting");
    assert!(c["offer"]["expiresAt"].as_i64().unwrap() > now_ms());
    let (note, _) = next_notification(&s, &token_of(&x), None, "offer").await;
    assert_eq!(note["conversationId"], first.as_str());
    assert!(note["expiresAt"].is_i64());
    // The other agent may not accept it; the offered one rejects: offered to the other at once.
    let (status, _) = agent_call(
        &s,
        &token_of(&other(&x)),
        "POST",
        &format!("/agent/v1/conversations/{first}/accept"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let rejected = agent_ok(
        &s,
        &token_of(&x),
        "POST",
        &format!("/agent/v1/conversations/{first}/reject"),
        None,
    )
    .await;
    assert_eq!(rejected["offer"]["agentId"], other(&x).as_str());
    let y = other(&x);
    let accepted = agent_ok(
        &s,
        &token_of(&y),
        "POST",
        &format!("/agent/v1/conversations/{first}/accept"),
        None,
    )
    .await;
    assert_eq!(
        (&accepted["status"], &accepted["agentId"]),
        (&json!("active"), &json!(y))
    );
    let (status, body) = agent_call(
        &s,
        &token_of(&x),
        "POST",
        &format!("/agent/v1/conversations/{first}/accept"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    // The next customer's offer goes to X (less busy); X lets it expire: offered to Y.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01OFFER2", "Uoffer2", "hello")])
        )
        .await,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let list = agent_ok(
            &s,
            &ann_token,
            "GET",
            "/agent/v1/conversations?status=waiting",
            None,
        )
        .await;
        if let Some(c) = list["conversations"].as_array().unwrap().first() {
            break c["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the second conversation waits");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (first_offer, _) = offered_to(&second).await;
    assert_eq!(first_offer, x);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (to, _) = offered_to(&second).await;
        if to == y {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired offer went to the other agent"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Context variables and customer attributes over HTTP: the workstream declares
/// `contextVariables` (checked: name, type, label); an admin sets a customer's attributes
/// (`PATCH /admin/v1/customers/{id}`: a value sets, `null` removes; bad names and values are
/// 400, an unknown customer 404); a rule on `customer.attributes.tier` routes the customer's
/// next conversation; agents see the attributes on it; the export carries them and the
/// erasure removes them.
#[tokio::test]
async fn customer_attributes_route_the_next_conversation_and_agents_see_them() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, support, ws) = channel(&s, "push", true).await;
    let gold = s.queue("Gold").await;
    let route = format!("/admin/v1/workstreams/{ws}");
    for (bad, field) in [
        (
            json!([{"name": "9lives", "type": "string", "label": "x"}]),
            "contextVariables[0].name",
        ),
        (
            json!([{"name": "a", "type": "date", "label": "x"}]),
            "contextVariables[0].type",
        ),
        (
            json!([{"name": "a", "type": "string"}]),
            "contextVariables[0].label",
        ),
        (
            json!([{"name": "a", "type": "string", "label": "A"}, {"name": "a", "type": "number", "label": "B"}]),
            "contextVariables[1].name",
        ),
    ] {
        let (status, body) = s
            .call("PATCH", &route, Some(json!({"contextVariables": bad})))
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
    }
    let patched = s
        .ok(
            "PATCH",
            &route,
            Some(json!({"contextVariables": [{"name": "orderId", "type": "string", "label": "Order"}]})),
        )
        .await;
    assert_eq!(
        patched["contextVariables"],
        json!([{"name": "orderId", "type": "string", "label": "Order"}])
    );
    s.ok(
        "POST",
        &format!("/admin/v1/workstreams/{ws}/rules"),
        Some(json!({"name": "Gold customers", "queueId": gold, "priority": 5,
                    "condition": {"field": "customer.attributes.tier", "op": "equals", "value": "gold"}})),
    )
    .await;
    let (_, hanako) = new_agent(&s, "Hanako", &[&support]).await;
    let (jiro_id, jiro) = new_agent(&s, "Jiro", &[&gold]).await;
    for token in [&hanako, &jiro] {
        agent_ok(
            &s,
            token,
            "PUT",
            "/agent/v1/presence",
            Some(json!({"status": "available"})),
        )
        .await;
    }

    // First contact: no attributes yet, so the default queue (Hanako).
    let customer = format!("/admin/v1/customers/{account}:Ugold");
    let (status, _) = s
        .call(
            "PATCH",
            &customer,
            Some(json!({"attributes": {"tier": "gold"}})),
        )
        .await;
    assert_eq!(status, 404, "never stored");
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01ATTR1", "Ugold", "hello")])
        )
        .await,
        200
    );
    let (first, _) = next_notification(&s, &hanako, None, "assigned").await;
    let first = first["conversationId"].as_str().unwrap().to_owned();
    agent_ok(
        &s,
        &hanako,
        "POST",
        &format!("/agent/v1/conversations/{first}/close"),
        None,
    )
    .await;

    for (bad, field) in [
        (json!({"attributes": {"9x": 1}}), "attributes.9x"),
        (
            json!({"attributes": {"tier": {"level": 1}}}),
            "attributes.tier",
        ),
        (
            json!({"attributes": {"note": "x".repeat(1100)}}),
            "attributes.note",
        ),
        (json!({"attributes": ["tier"]}), "attributes"),
        (json!({}), "attributes"),
    ] {
        let (status, body) = s.call("PATCH", &customer, Some(bad.clone())).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{bad}"
        );
    }
    let set = s
        .ok(
            "PATCH",
            &customer,
            Some(json!({"attributes": {"tier": "gold", "visits": 3, "vip": true}})),
        )
        .await;
    assert_eq!(
        set["attributes"],
        json!({"tier": "gold", "visits": 3, "vip": true})
    );
    let set = s
        .ok(
            "PATCH",
            &customer,
            Some(json!({"attributes": {"vip": null}})),
        )
        .await;
    assert_eq!(
        set["attributes"],
        json!({"tier": "gold", "visits": 3}),
        "null removes"
    );

    // Next conversation: the Gold rule, so Jiro; he sees the attributes.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01ATTR2", "Ugold", "me again")])
        )
        .await,
        200
    );
    let (second, _) = next_notification(&s, &jiro, None, "assigned").await;
    let second = second["conversationId"].as_str().unwrap().to_owned();
    let detail = agent_ok(
        &s,
        &jiro,
        "GET",
        &format!("/agent/v1/conversations/{second}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["agentId"], jiro_id.as_str());
    assert_eq!(detail["conversation"]["queueId"], gold.as_str());
    assert_eq!(detail["conversation"]["context"], json!({}));
    assert_eq!(
        detail["customer"]["attributes"],
        json!({"tier": "gold", "visits": 3})
    );
    assert_eq!(
        detail["workstream"]["contextVariables"],
        json!([{"name": "orderId", "type": "string", "label": "Order"}])
    );

    // The export carries them; the erasure removes them.
    let export = s.ok("GET", &customer, None).await;
    assert_eq!(
        export["customer"]["attributes"],
        json!({"tier": "gold", "visits": 3})
    );
    let (status, _) = s.call("DELETE", &customer, None).await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call(
            "PATCH",
            &customer,
            Some(json!({"attributes": {"tier": "gold"}})),
        )
        .await;
    assert_eq!(status, 404);
}

/// A bot's handoff context over HTTP: the bot (a hook on this machine) hands off with
/// `"context"`; the workstream keeps what its `contextVariables` declare, a rule on
/// `context.vip` sends the conversation to the VIP queue, and the agent there sees the context.
#[tokio::test]
async fn a_bot_handoff_context_routes_the_conversation_and_the_agent_sees_it() {
    let s = start().await;
    mock_agent_line(&s).await;
    let bot = wiremock::MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messages": [{"type": "text", "text": "Let me find someone for you."}],
            "handoff": true,
            "context": {"orderId": "A-17", "vip": true, "password": "never kept"}
        })))
        .mount(&bot)
        .await;
    let (account, _support, ws) = channel(&s, "push", true).await;
    let vip = s.queue("VIP").await;
    s.ok(
        "PATCH",
        &format!("/admin/v1/workstreams/{ws}"),
        Some(json!({
            "bot": {"url": format!("{}/hook", bot.uri()), "secret": "bot-secret-0123456789"},
            "contextVariables": [
                {"name": "orderId", "type": "string", "label": "Order"},
                {"name": "vip", "type": "boolean", "label": "VIP customer"}
            ]
        })),
    )
    .await;
    s.ok(
        "POST",
        &format!("/admin/v1/workstreams/{ws}/rules"),
        Some(json!({"name": "VIP", "queueId": vip, "priority": 9,
                    "condition": {"field": "context.vip", "op": "equals", "value": true}})),
    )
    .await;
    let (_, aiko) = new_agent(&s, "Aiko", &[&vip]).await;
    agent_ok(
        &s,
        &aiko,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01CTX1", "Uctx", "my order is late")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &aiko, None, "assigned").await;
    let id = assigned["conversationId"].as_str().unwrap();
    let detail = agent_ok(
        &s,
        &aiko,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["queueId"], vip.as_str());
    assert_eq!(detail["conversation"]["priority"], 9);
    assert_eq!(
        detail["conversation"]["context"],
        json!({"orderId": "A-17", "vip": true})
    );
    assert_eq!(
        detail["workstream"]["contextVariables"][1]["label"],
        "VIP customer"
    );
}

/// Notes over HTTP: an agent adds an internal note to a conversation (in the transcript as
/// `internal`, never sent to LINE) and a note about the customer (kept across conversations);
/// an agent of other queues may do neither (403); bad texts are 400; the admin's export
/// carries the customer's notes and the erasure removes them.
#[tokio::test]
async fn agents_keep_internal_notes_on_conversations_and_customers() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, id) = held_conversation(&s, text_event("01NOTE1", "Unote", "hello")).await;
    let other_queue = s.queue("Elsewhere").await;
    let (_, outsider) = new_agent(&s, "Outsider", &[&other_queue]).await;
    let notes = format!("/agent/v1/conversations/{id}/notes");
    for bad in [
        json!({}),
        json!({"text": "  "}),
        json!({"text": "x".repeat(2001)}),
    ] {
        let (status, body) = agent_call(&s, &token, "POST", &notes, Some(bad.clone())).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("text")),
            "{bad}"
        );
    }
    let pushes_before = pushes(&s).await.len();
    let note = agent_ok(
        &s,
        &token,
        "POST",
        &notes,
        Some(json!({"text": "Refund approved; waiting for bank details."})),
    )
    .await;
    assert_eq!(note["agentName"], "Hanako");
    let (status, _) = agent_call(&s, &outsider, "POST", &notes, Some(json!({"text": "x"}))).await;
    assert_eq!(status, 403);
    let listed = agent_ok(&s, &token, "GET", &notes, None).await;
    assert_eq!(
        listed["notes"][0]["text"],
        "Refund approved; waiting for bank details."
    );
    let timeline = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}/messages"),
        None,
    )
    .await;
    let internal: Vec<&Value> = timeline["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "internal")
        .collect();
    assert_eq!(internal.len(), 1);
    assert_eq!(internal[0]["type"], "note");
    assert_eq!(
        internal[0]["text"],
        "Refund approved; waiting for bank details."
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushes(&s).await.len(), pushes_before, "never sent to LINE");

    // About the customer, across conversations.
    let customer_notes = format!("/agent/v1/customers/{account}:Unote/notes");
    agent_ok(
        &s,
        &token,
        "POST",
        &customer_notes,
        Some(json!({"text": "Prefers mornings."})),
    )
    .await;
    let (status, _) = agent_call(&s, &outsider, "GET", &customer_notes, None).await;
    assert_eq!(status, 403);
    let (status, _) = agent_call(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/customers/{account}:Unobody/notes"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let listed = agent_ok(&s, &token, "GET", &customer_notes, None).await;
    assert_eq!(listed["notes"][0]["text"], "Prefers mornings.");
    let customer = format!("/admin/v1/customers/{account}:Unote");
    let export = s.ok("GET", &customer, None).await;
    assert_eq!(export["customer"]["notes"][0]["text"], "Prefers mornings.");
    let (status, _) = s.call("DELETE", &customer, None).await;
    assert_eq!(status, 204);
    let (status, _) = agent_call(&s, &token, "GET", &customer_notes, None).await;
    assert_eq!(status, 404, "erased with the customer");
}

/// Issue 7/7's inbox fields and tags: a row carries `unread`, `lastMessage` and `waitingSince`;
/// reading clears unread, answering previews the answer; tags on the conversation and on the
/// customer filter the list (`?tag=`), with LINE's limits (10 per customer, 200 per account,
/// 20 characters); `assigned=me|unassigned`; a routing rule on `customer.tags` sends the tagged
/// customer's next conversation to its queue.
#[tokio::test]
async fn inbox_rows_carry_unread_and_previews_and_tags_filter_and_route() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, id) = held_conversation(&s, text_event("01TAG1", "Utag", "first")).await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event(
                "01TAG2",
                "Utag",
                "where is my parcel? ".repeat(10).trim()
            )])
        )
        .await,
        200
    );
    let row = |list: &Value| -> Value {
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = row(&agent_ok(
            &s,
            &token,
            "GET",
            "/agent/v1/conversations?status=active",
            None,
        )
        .await);
        if listed["unread"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["unread"], 2, "{listed}");
    assert_eq!(listed["lastMessage"]["direction"], "in");
    assert_eq!(listed["lastMessage"]["type"], "text");
    let preview = listed["lastMessage"]["text"].as_str().unwrap();
    assert_eq!(
        preview.chars().count(),
        80,
        "a preview, not the whole text: {preview}"
    );
    assert_eq!(listed["waitingSince"], Value::Null, "active: not waiting");

    // Read by its agent: nothing unread. Answered: the preview is the answer.
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/read"),
        None,
    )
    .await;
    let detail = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["unread"], 0);
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "text", "text": "On its way!"})),
    )
    .await;
    let detail = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(detail["conversation"]["lastMessage"]["direction"], "out");
    assert_eq!(detail["conversation"]["lastMessage"]["text"], "On its way!");

    // Tags on the conversation: normalized, deduplicated, bounded.
    let tags = agent_ok(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/conversations/{id}/tags"),
        Some(json!({"tags": ["parcel", "  parcel ", "late   delivery"]})),
    )
    .await;
    assert_eq!(tags["tags"], json!(["parcel", "late delivery"]));
    for (body, field) in [
        (
            json!({"tags": (0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
        (json!({"tags": ["x".repeat(21)]}), "tags"),
        (json!({"tags": "parcel"}), "tags"),
        (json!({}), "tags"),
    ] {
        let (status, error) = agent_call(
            &s,
            &token,
            "PUT",
            &format!("/agent/v1/conversations/{id}/tags"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (status, &error["error"]["field"]),
            (400, &json!(field)),
            "{body}: {error}"
        );
    }
    let ids = |list: &Value| -> Vec<String> {
        list["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let tagged = agent_ok(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?tag=parcel",
        None,
    )
    .await;
    assert_eq!(ids(&tagged), vec![id.clone()]);
    let none = agent_ok(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?tag=refund",
        None,
    )
    .await;
    assert!(ids(&none).is_empty());
    let mine = agent_ok(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?assigned=me",
        None,
    )
    .await;
    assert_eq!(ids(&mine), vec![id.clone()]);
    let unassigned = agent_ok(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?assigned=unassigned",
        None,
    )
    .await;
    assert!(ids(&unassigned).is_empty());
    let (status, _) = agent_call(
        &s,
        &token,
        "GET",
        "/agent/v1/conversations?assigned=you",
        None,
    )
    .await;
    assert_eq!(status, 400);

    // Tags on the customer: shown with the customer, and they filter the list too.
    let customer = format!("{account}:Utag");
    let kept = agent_ok(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/customers/{customer}/tags"),
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(kept["tags"], json!(["vip"]));
    let detail = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(detail["customer"]["tags"], json!(["vip"]));
    let by_customer = agent_ok(&s, &token, "GET", "/agent/v1/conversations?tag=vip", None).await;
    assert_eq!(ids(&by_customer), vec![id.clone()]);
    let export = s
        .ok("GET", &format!("/admin/v1/customers/{customer}"), None)
        .await;
    assert_eq!(
        export["customer"]["tags"],
        json!(["vip"]),
        "the export carries the tags"
    );
    let (status, _) = agent_call(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/customers/{account}:Unobody/tags"),
        Some(json!({"tags": ["vip"]})),
    )
    .await;
    assert_eq!(status, 404);

    // A rule on customer.tags: the VIP's next conversation goes to the VIP queue.
    let vip_queue = s.queue("VIP").await;
    let ws = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await["conversation"]["workstreamId"]
        .as_str()
        .unwrap()
        .to_owned();
    s.ok(
        "POST",
        &format!("/admin/v1/workstreams/{ws}/rules"),
        Some(json!({
            "name": "VIPs", "queueId": vip_queue,
            "condition": {"field": "customer.tags", "op": "contains", "value": "VIP"}
        })),
    )
    .await;
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/close"),
        None,
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01TAG3", "Utag", "me again")])
        )
        .await,
        200
    );
    let mut routed = Value::Null;
    for _ in 0..100 {
        let page = s
            .ok("GET", &format!("/admin/v1/customers/{customer}"), None)
            .await;
        routed = page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversation"].clone())
            .find(|c| c["id"] != id.as_str())
            .unwrap_or(Value::Null);
        if !routed.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(routed["queueId"], vip_queue.as_str(), "{routed}");

    // 200 distinct tags per account (3 so far: parcel, late delivery, vip): the 201st is
    // refused.
    for batch in 0..20 {
        let size = if batch == 19 { 7 } else { 10 };
        let tags: Vec<String> = (0..size).map(|i| format!("k{batch}-{i}")).collect();
        agent_ok(
            &s,
            &token,
            "PUT",
            &format!("/agent/v1/conversations/{id}/tags"),
            Some(json!({"tags": tags})),
        )
        .await;
    }
    let (status, error) = agent_call(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/conversations/{id}/tags"),
        Some(json!({"tags": ["one-too-many"]})),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (409, &json!("too_many_tags")),
        "{error}"
    );
}

/// Issue 7/7's supervisor: the overview (per queue waiting, oldest wait and in progress; per
/// agent presence and load), any conversation read only, and a reassignment whoever holds it,
/// with the admin token; an agent token is refused.
#[tokio::test]
async fn a_supervisor_sees_the_queues_and_agents_follows_any_conversation_and_reassigns() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, id) = held_conversation(&s, text_event("01SUP1", "Usup", "help")).await;
    let queue = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await["conversation"]["queueId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ken, ken_token) = new_agent(&s, "Ken", &[&queue]).await;
    agent_ok(
        &s,
        &ken_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    // Ken is available with room: a second customer goes to him. Then a third waits (Hanako
    // and Ken busy).
    agent_ok(
        &s,
        &token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "busy"})),
    )
    .await;
    agent_ok(
        &s,
        &ken_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "busy"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01SUP2", "Uwait", "anyone?")])
        )
        .await,
        200
    );

    let admin = |method: &'static str, route: String, body: Option<Value>| {
        let s = &s;
        async move { agent_call(s, ADMIN, method, &route, body).await }
    };
    let mut overview = Value::Null;
    for _ in 0..100 {
        let (status, body) = admin("GET", "/agent/v1/supervisor/overview".into(), None).await;
        assert_eq!(status, 200, "{body}");
        overview = body;
        if overview["queues"][0]["waiting"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == queue.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (row["waiting"].clone(), row["active"].clone()),
        (json!(1), json!(1)),
        "{overview}"
    );
    assert!(row["oldestWaitingSince"].as_i64().is_some(), "{row}");
    let hanako = overview["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Hanako")
        .unwrap()
        .clone();
    assert_eq!(hanako["status"], "busy");
    assert_eq!(hanako["conversationIds"], json!([id]));

    // Any conversation, read only: the supervisor is in no queue.
    let (status, monitored) = admin(
        "GET",
        format!("/agent/v1/supervisor/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{monitored}");
    assert_eq!(monitored["conversation"]["id"], id.as_str());
    assert!(
        monitored["messages"].to_string().contains("help"),
        "{monitored}"
    );
    let (status, _) = admin(
        "GET",
        "/agent/v1/supervisor/conversations/nope".into(),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Reassign Hanako's conversation to Ken (available again), whoever holds it; Ken is told.
    agent_ok(
        &s,
        &ken_token,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    let (status, moved) = admin(
        "POST",
        format!("/agent/v1/conversations/{id}/assign"),
        Some(json!({"agentId": ken})),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(
        (moved["agentId"].as_str(), moved["status"].as_str()),
        (Some(ken.as_str()), Some("active"))
    );
    // (Available again, Ken got the waiting conversation too: look for this one.)
    let mut cursor: Option<String> = None;
    let mut told = false;
    for _ in 0..10 {
        let page = poll(&s, &ken_token, cursor.as_deref(), 2).await;
        told = page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["kind"] == "assigned" && n["conversationId"] == id.as_str());
        if told {
            break;
        }
        cursor = page["cursor"].as_str().map(str::to_owned).or(cursor);
    }
    assert!(told, "Ken is told of the reassigned conversation");
    let me = agent_ok(&s, &token, "GET", "/agent/v1/me", None).await;
    assert_eq!(
        me["activeConversations"], 0,
        "Hanako's slot is given back: {me}"
    );
    let (status, error) = admin(
        "POST",
        format!("/agent/v1/conversations/{id}/assign"),
        Some(json!({"agentId": "nobody"})),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["field"]),
        (422, &json!("agentId")),
        "{error}"
    );

    // The reassignment is in the audit trail, as the supervisor's.
    let trail = s.ok("GET", "/admin/v1/audit", None).await;
    assert!(
        trail["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["via"] == "supervisor"
                && r["actor"] == "admin token"
                && r["path"] == format!("/agent/v1/conversations/{id}/assign").as_str()),
        "{trail}"
    );

    // Agents are not supervisors.
    for route in [
        "/agent/v1/supervisor/overview".to_owned(),
        format!("/agent/v1/supervisor/conversations/{id}"),
    ] {
        let (status, error) = agent_call(&s, &token, "GET", &route, None).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{route}"
        );
    }
    let (status, _) = agent_call(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/assign"),
        Some(json!({"agentId": ken})),
    )
    .await;
    assert_eq!(status, 403);
}

/// The conversation list in pages: `limit` and the `nextCursor` of the page before; every row
/// once, in order; a cursor that is not one is a 400.
#[tokio::test]
async fn the_conversation_list_pages_with_a_cursor() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, _) = held_conversation(&s, text_event("01PG1", "Upg1", "one")).await;
    for (id, user) in [("01PG2", "Upg2"), ("01PG3", "Upg3")] {
        assert_eq!(
            s.webhook(&account, SECRET_A, json!([text_event(id, user, "more")]))
                .await,
            200
        );
    }
    let mut whole = Value::Null;
    for _ in 0..100 {
        whole = agent_ok(&s, &token, "GET", "/agent/v1/conversations", None).await;
        if whole["conversations"].as_array().unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = |page: &Value| -> Vec<String> {
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&whole).len(), 3, "{whole}");
    assert_eq!(
        whole["nextCursor"],
        Value::Null,
        "a page below the limit has no next"
    );
    let mut paged = Vec::new();
    let mut route = "/agent/v1/conversations?limit=1".to_owned();
    for _ in 0..5 {
        let page = agent_ok(&s, &token, "GET", &route, None).await;
        paged.extend(ids(&page));
        let Some(next) = page["nextCursor"].as_str() else {
            break;
        };
        route = format!("/agent/v1/conversations?limit=1&cursor={next}");
    }
    assert_eq!(paged, ids(&whole));
    for query in ["cursor=nope", "limit=0", "limit=101"] {
        let (status, error) = agent_call(
            &s,
            &token,
            "GET",
            &format!("/agent/v1/conversations?{query}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{query}: {error}");
    }
}

/// Search finds the customer by a word of their message, of their tags or by two words said
/// apart, only for agents of their queues; bad queries are refused naming `q`. Reports count the
/// conversation with its first response, handle time and survey answer, as JSON and CSV.
#[tokio::test]
async fn agents_find_customers_by_their_words_and_reports_count_the_conversation() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, token, id) = held_conversation(
        &s,
        text_event("01SRCH1", "Usearch", "I need a refund for order 4711"),
    )
    .await;
    let customer_id = format!("{account}:Usearch");
    let search = |q: &str| {
        let (s, token) = (&s, token.clone());
        let q = q.to_owned();
        async move {
            agent_call(
                s,
                &token,
                "GET",
                &format!("/agent/v1/search?q={}", urlencode(&q)),
                None,
            )
            .await
        }
    };
    let (status, found) = search("REFUND").await;
    assert_eq!(status, 200, "{found}");
    let customers = found["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 1, "{found}");
    assert_eq!(customers[0]["customerId"], customer_id.as_str());
    assert_eq!(customers[0]["userId"], "Usearch");
    assert_eq!(customers[0]["conversation"]["id"], id.as_str());
    assert!(found["contacts"].is_array());
    assert_eq!(
        search("4711 refund").await.1["customers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(search("refund parcel").await.1["customers"]
        .as_array()
        .unwrap()
        .is_empty());
    // A later message: two words said in two messages still find the customer.
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01SRCH2", "Usearch", "still waiting")])
        )
        .await,
        200
    );
    let mut both = Value::Null;
    for _ in 0..100 {
        both = search("waiting 4711").await.1;
        if both["customers"].as_array().is_some_and(|c| c.len() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(both["customers"][0]["userId"], "Usearch", "{both}");
    // A customer's tags find them.
    agent_ok(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/customers/{customer_id}/tags"),
        Some(json!({"tags": ["gold member"]})),
    )
    .await;
    assert_eq!(search("gold").await.1["customers"][0]["userId"], "Usearch");
    // A tag taken off no longer finds them; their messages still do.
    agent_ok(
        &s,
        &token,
        "PUT",
        &format!("/agent/v1/customers/{customer_id}/tags"),
        Some(json!({"tags": ["member"]})),
    )
    .await;
    assert!(search("gold").await.1["customers"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        search("member refund").await.1["customers"][0]["userId"],
        "Usearch"
    );
    for q in ["", "%21%3F", &"x".repeat(201)] {
        let (status, body) =
            agent_call(&s, &token, "GET", &format!("/agent/v1/search?q={q}"), None).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"]["field"], "q", "{body}");
    }
    let (status, body) = agent_call(&s, &token, "GET", "/agent/v1/search", None).await;
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("q")));
    // An agent of another queue finds no one.
    let other_queue = s.queue("Elsewhere").await;
    let (_, other) = new_agent(&s, "Jiro", &[&other_queue]).await;
    let (status, found) = agent_call(&s, &other, "GET", "/agent/v1/search?q=refund", None).await;
    assert_eq!(status, 200);
    assert!(found["customers"].as_array().unwrap().is_empty(), "{found}");

    // The agent answers and closes; the customer answers the survey with 4.
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/messages"),
        Some(json!({"type": "text", "text": "Refunded!"})),
    )
    .await;
    agent_ok(
        &s,
        &token,
        "POST",
        &format!("/agent/v1/conversations/{id}/close"),
        None,
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([postback_event(
                "01SRCH3",
                "Usearch",
                &format!("survey:{id}:4")
            )])
        )
        .await,
        200
    );
    let detail = agent_ok(
        &s,
        &token,
        "GET",
        &format!("/agent/v1/conversations/{id}"),
        None,
    )
    .await;
    let opened = detail["conversation"]["openedAt"].as_i64().unwrap();
    let period = format!(
        "from={}&to={}",
        urlencode(&omniline_domain::clock::rfc3339_millis(opened - 60_000)),
        urlencode(&omniline_domain::clock::rfc3339_millis(opened + 60_000))
    );
    let mut csat = Value::Null;
    for _ in 0..100 {
        csat = s
            .ok(
                "GET",
                &format!("/admin/v1/reports/csat?{period}&groupBy=queue&accountId={account}"),
                None,
            )
            .await;
        if csat["rows"][0]["responses"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(csat["report"], "csat");
    assert_eq!(csat["rows"][0]["responses"], 1, "{csat}");
    assert_eq!(csat["rows"][0]["average"], 4.0);
    assert_eq!(csat["rows"][0]["distribution"], json!({"4": 1}));
    let report = s
        .ok(
            "GET",
            &format!("/admin/v1/reports/conversations?{period}&groupBy=agent"),
            None,
        )
        .await;
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(rows[0]["conversations"], 1);
    assert_eq!(rows[0]["closed"], 1);
    assert_eq!(rows[0]["firstResponse"]["count"], 1);
    assert!(rows[0]["firstResponse"]["p50Ms"].as_i64().unwrap() >= 0);
    assert_eq!(rows[0]["handleTime"]["count"], 1);
    let volume = s
        .ok("GET", &format!("/admin/v1/reports/volume?{period}"), None)
        .await;
    assert_eq!(volume["groupBy"], "day");
    assert_eq!(volume["rows"][0]["messagesIn"], 2, "{volume}");
    assert_eq!(volume["rows"][0]["messagesOut"], 1, "{volume}");
    // Nothing in another period.
    let empty = s
        .ok(
            "GET",
            "/admin/v1/reports/volume?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(empty["rows"], json!([]));
    // CSV for spreadsheets.
    let response = s
        .client
        .get(format!(
            "{}/admin/v1/reports/csat?{period}&groupBy=queue",
            s.base
        ))
        .bearer_auth(common::ADMIN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("queue,conversations,surveysSent,responses,average,score4")
    );
    assert!(lines.next().unwrap().ends_with(",1,1,1,4,1"), "{csv}");
    // Bad parameters name themselves.
    for (query, field) in [
        ("groupBy=week", "groupBy"),
        ("from=yesterday", "from"),
        ("from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", "from"),
        ("from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z", "from"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = s
            .call(
                "GET",
                &format!("/admin/v1/reports/conversations?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    let (status, _) = s
        .call("GET", "/admin/v1/reports/volume?accountId=nope", None)
        .await;
    assert_eq!(status, 404);
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A search tells an agent nothing about conversations it may not see: a customer who said a
/// word in a conversation of another queue is not found by that word, even together with a
/// word said where the agent may look.
#[tokio::test]
async fn search_shows_no_customer_by_words_said_outside_the_agents_queues() {
    let s = start().await;
    mock_agent_line(&s).await;
    let (account, queue, ws) = channel(&s, "push", true).await;
    let (hanako, first) = new_agent(&s, "Hanako", &[&queue]).await;
    agent_ok(
        &s,
        &first,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01LEAK1", "Uleak", "about my divorce papers")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &first, None, "assigned").await;
    let a = assigned["conversationId"].as_str().unwrap().to_owned();
    agent_ok(
        &s,
        &first,
        "POST",
        &format!("/agent/v1/conversations/{a}/close"),
        None,
    )
    .await;
    // The account's conversations now go to another queue, with another agent.
    let other_queue = s.queue("Front desk").await;
    s.ok(
        "PATCH",
        &format!("/admin/v1/workstreams/{ws}"),
        Some(json!({"defaultQueueId": other_queue})),
    )
    .await;
    let (_, second) = new_agent(&s, "Jiro", &[&other_queue]).await;
    agent_ok(
        &s,
        &second,
        "PUT",
        "/agent/v1/presence",
        Some(json!({"status": "available"})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01LEAK2", "Uleak", "hello again")])
        )
        .await,
        200
    );
    let (assigned, _) = next_notification(&s, &second, None, "assigned").await;
    let b = assigned["conversationId"].as_str().unwrap().to_owned();
    assert_ne!(a, b);
    let found = |token: String, q: &'static str| {
        let s = &s;
        async move {
            let body = agent_ok(s, &token, "GET", &format!("/agent/v1/search?q={q}"), None).await;
            body["customers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["conversation"]["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found(second.clone(), "hello").await, vec![b.clone()]);
    assert!(found(second.clone(), "divorce").await.is_empty());
    assert!(
        found(second.clone(), "divorce%20hello").await.is_empty(),
        "a word said where Jiro may not look is not revealed"
    );
    // Hanako, who serves both queues, finds the customer by both words, at the latest.
    s.ok(
        "PATCH",
        &format!("/admin/v1/agents/{hanako}"),
        Some(json!({"queueIds": [queue, other_queue]})),
    )
    .await;
    assert_eq!(found(first.clone(), "divorce").await, vec![a.clone()]);
    assert_eq!(
        found(first.clone(), "divorce%20hello").await,
        vec![b.clone()]
    );
}
