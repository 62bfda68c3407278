use super::*;

const BOT: &str = "Ubot";
const TOKEN: &str = "channel-token";
const KEY: &str = "123e4567-e89b-12d3-a456-426614174000";
const T0: Millis = Millis(1_700_000_000_000);

fn sim() -> Simulator {
    let mut sim = Simulator::new(Config::default());
    let mut channel = Channel::new(BOT, TOKEN);
    channel.credentials = Some(ClientCredentials {
        channel_id: "2000000001".into(),
        channel_secret: "s3cret/+".into(),
    });
    sim.add_channel(channel);
    sim.add_user("U1");
    sim
}

fn target(chat: &str) -> ReplyTarget {
    ReplyTarget {
        channel: Some(BOT.into()),
        chat: chat.into(),
    }
}

fn text(t: &str) -> Vec<Value> {
    vec![json!({"type": "text", "text": t})]
}

struct Http<'a> {
    method: &'a str,
    path: &'a str,
    auth: Option<String>,
    retry_key: Option<&'a [u8]>,
    body: Vec<u8>,
}

fn req<'a>(method: &'a str, path: &'a str, body: Value) -> Http<'a> {
    Http {
        method,
        path,
        auth: Some(format!("Bearer {TOKEN}")),
        retry_key: None,
        body: if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        },
    }
}

fn call(sim: &mut Simulator, http: &Http<'_>, now: Millis) -> Call {
    sim.call(
        &Request {
            method: http.method,
            path: http.path,
            authorization: http.auth.as_deref().map(str::as_bytes),
            retry_key: http.retry_key,
            body: &http.body,
        },
        now,
    )
}

/// The answer of a call answered in full.
fn answered(call: Call) -> Answer {
    match call {
        Call::Answer(a) => a,
        other => panic!("not a plain answer: {other:?}"),
    }
}

#[test]
fn a_reply_token_is_accepted_once_for_its_lifetime_and_its_channel() {
    let mut sim = sim();
    assert!(sim.issue_reply_token("t1", target("U1"), T0));
    assert_eq!(
        sim.use_reply_token(Some(BOT), "t1", T0.plus(Duration::from_secs(60))),
        Ok(target("U1")),
        "still valid at exactly its lifetime"
    );
    assert_eq!(
        sim.use_reply_token(Some(BOT), "t1", T0),
        Err(LineError::invalid_reply_token()),
        "used"
    );
    assert!(sim.use_reply_token(Some(BOT), "unknown", T0).is_err());

    sim.issue_reply_token("t2", target("U1"), T0);
    assert!(
        sim.use_reply_token(Some(BOT), "t2", T0.plus(Duration::from_millis(60_001)))
            .is_err(),
        "expired"
    );

    sim.issue_reply_token("t3", target("U1"), T0);
    assert!(
        sim.use_reply_token(Some("Uother"), "t3", T0).is_err(),
        "another channel's"
    );
    assert!(sim.use_reply_token(Some(BOT), "t3", T0).is_ok());

    let unscoped = ReplyTarget {
        channel: None,
        chat: "U1".into(),
    };
    sim.issue_reply_token("t4", unscoped, T0);
    assert!(sim.use_reply_token(None, "t4", T0).is_ok());
    assert_eq!(sim.stats().invalid_reply_tokens, 4);
}

#[test]
fn a_token_issued_again_keeps_its_time_and_use() {
    let mut sim = sim();
    assert!(sim.issue_reply_token("t", target("U1"), T0));
    assert!(sim.use_reply_token(Some(BOT), "t", T0).is_ok());
    // A redelivered webhook carries the same token: it stays used, with its first time.
    assert!(!sim.issue_reply_token("t", target("U1"), T0.plus(Duration::from_secs(30))));
    assert!(sim.use_reply_token(Some(BOT), "t", T0).is_err());
}

#[test]
fn expired_tokens_are_purged_and_can_be_issued_anew() {
    let mut sim = sim();
    sim.issue_reply_token("t", target("U1"), T0);
    let later = T0.plus(Duration::from_secs(61));
    assert!(sim.issue_reply_token("other", target("U1"), later));
    assert!(!sim.reply_tokens.map.contains_key("t"), "purged");
    assert!(sim.issue_reply_token("t", target("U1"), later));
    assert!(sim.use_reply_token(Some(BOT), "t", later).is_ok());
}

#[test]
fn a_retry_key_delivers_once_then_names_the_first_request() {
    let mut sim = sim();
    let Ok(Pushed::Accepted(first)) = sim.push(Some(BOT), "U1", Some(KEY), text("once"), T0) else {
        panic!("first push not accepted");
    };
    assert_eq!(first.sent.len(), 1);
    assert_eq!(
        first.via,
        Via::Push {
            retry_key: Some(KEY.into())
        }
    );
    let again = sim.push(
        Some(BOT),
        "U1",
        Some(KEY),
        text("once"),
        T0.plus(Duration::from_secs(5)),
    );
    assert_eq!(
        again,
        Ok(Pushed::AlreadyAccepted {
            request_id: first.request_id.clone(),
            sent: first.sent.clone()
        })
    );
    // Without a key, or with another, every push is delivered.
    assert!(matches!(
        sim.push(Some(BOT), "U1", None, text("a"), T0),
        Ok(Pushed::Accepted(_))
    ));
    assert!(matches!(
        sim.push(Some(BOT), "U1", None, text("a"), T0),
        Ok(Pushed::Accepted(_))
    ));
    let other = "00000000-0000-4000-8000-000000000000";
    assert!(matches!(
        sim.push(Some(BOT), "U1", Some(other), text("b"), T0),
        Ok(Pushed::Accepted(_))
    ));
    // After the window the key is free again.
    let next_day = T0.plus(Duration::from_secs(24 * 3600 + 1));
    assert!(matches!(
        sim.push(Some(BOT), "U1", Some(KEY), text("once"), next_day),
        Ok(Pushed::Accepted(_))
    ));
    let stats = sim.stats();
    assert_eq!((stats.push_calls, stats.conflicts), (6, 1));
}

#[test]
fn a_push_to_a_stranger_is_refused_and_claims_no_key() {
    let mut sim = sim();
    let refused = sim.push(Some(BOT), "Ustranger", Some(KEY), text("x"), T0);
    assert_eq!(refused, Err(LineError::invalid_id("to")));
    assert!(matches!(
        sim.push(Some(BOT), "U1", Some(KEY), text("x"), T0),
        Ok(Pushed::Accepted(_))
    ));
}

#[test]
fn a_group_answers_its_summary_and_members_and_takes_pushes_and_replies() {
    let mut sim = sim();
    sim.add_user("U2");
    sim.add_user("U3");
    sim.add_group(
        "Cshop",
        Group {
            name: "Shop regulars".into(),
            picture_url: None,
            members: ["U1".to_owned(), "U2".to_owned()].into(),
        },
    );
    let summary = answered(call(
        &mut sim,
        &req("GET", "/v2/bot/group/Cshop/summary", Value::Null),
        T0,
    ));
    assert_eq!(summary.status, 200);
    assert_eq!(
        summary.body,
        json!({"groupId": "Cshop", "groupName": "Shop regulars"})
    );
    match call(
        &mut sim,
        &req("GET", "/v2/bot/group/Cshop/member/U2", Value::Null),
        T0,
    ) {
        Call::Profile {
            user_id, group_id, ..
        } => assert_eq!(
            (user_id.as_str(), group_id.as_deref()),
            ("U2", Some("Cshop"))
        ),
        other => panic!("{other:?}"),
    }
    // LINE's refusals: a friend who is not a member, a group the account is not in, and the
    // loading animation (one-on-one chats only).
    for path in [
        "/v2/bot/group/Cshop/member/U3",
        "/v2/bot/group/Cother/summary",
        "/v2/bot/group/Cother/member/U1",
    ] {
        let a = answered(call(&mut sim, &req("GET", path, Value::Null), T0));
        assert_eq!(a.status, 404, "{path}");
    }
    assert!(sim.start_loading("Cshop", 5, T0).is_err());
    assert!(matches!(
        sim.push(Some(BOT), "Cshop", Some(KEY), text("hello all"), T0),
        Ok(Pushed::Accepted(d)) if d.to == "Cshop"
    ));
    assert_eq!(
        sim.push(Some(BOT), "Cother", None, text("x"), T0),
        Err(LineError::invalid_id("to"))
    );
    sim.issue_reply_token("t-group", target("Cshop"), T0);
    let reply = sim
        .reply(Some(BOT), "t-group", text("thanks"), T0)
        .expect("a group's reply token");
    assert_eq!(reply.to, "Cshop");
}

#[test]
fn a_rolled_back_delivery_can_be_made_again() {
    let mut sim = sim();
    sim.issue_reply_token("t", target("U1"), T0);
    let reply = sim.reply(Some(BOT), "t", text("a"), T0).expect("accepted");
    sim.rollback(&reply);
    assert!(
        sim.reply(Some(BOT), "t", text("a"), T0).is_ok(),
        "token usable again"
    );

    let Ok(Pushed::Accepted(push)) = sim.push(Some(BOT), "U1", Some(KEY), text("a"), T0) else {
        panic!("not accepted");
    };
    sim.rollback(&push);
    assert!(matches!(
        sim.push(Some(BOT), "U1", Some(KEY), text("a"), T0),
        Ok(Pushed::Accepted(_))
    ));
}

#[test]
fn a_restored_key_answers_as_the_first_request() {
    let mut sim = sim();
    let sent = vec![SentMessage {
        id: "1".into(),
        quote_token: "q".into(),
    }];
    sim.restore_push(KEY, "req-old", sent.clone(), T0);
    assert_eq!(
        sim.push(
            Some(BOT),
            "U1",
            Some(KEY),
            text("a"),
            T0.plus(Duration::from_secs(1))
        ),
        Ok(Pushed::AlreadyAccepted {
            request_id: "req-old".into(),
            sent
        })
    );
}

#[test]
fn the_loading_animation_is_for_friends_and_ends_with_a_message() {
    let mut sim = sim();
    for bad in [0, 3, 65] {
        assert_eq!(
            sim.start_loading("U1", bad, T0).map_err(|e| e.status),
            Err(400),
            "{bad}"
        );
    }
    assert_eq!(
        sim.start_loading("Ustranger", 20, T0),
        Err(LineError::invalid_id("chatId"))
    );
    let until = sim.start_loading("U1", 20, T0).expect("started");
    assert_eq!(until, T0.plus(Duration::from_secs(20)));
    assert_eq!(sim.loading_until("U1", T0), Some(until));
    assert_eq!(sim.loading_until("U1", until), None, "over");
    sim.start_loading("U1", 60, T0).expect("started");
    sim.push(Some(BOT), "U1", None, text("here"), T0)
        .expect("pushed");
    assert_eq!(sim.loading_until("U1", T0), None, "a message ends it");
}

#[test]
fn seeds_make_ids_repeatable() {
    let ids = |seed| {
        let mut sim = Simulator::new(Config {
            seed,
            ..Config::default()
        });
        (
            sim.next_request_id(),
            sim.next_request_id(),
            sim.next_message_id(),
        )
    };
    assert_eq!(ids(7), ids(7));
    assert_ne!(ids(7).0, ids(8).0);
}

// --- the API ------------------------------------------------------------------------------

#[test]
fn unknown_routes_are_404_and_every_call_needs_the_channel_token() {
    let mut sim = sim();
    let a = answered(call(
        &mut sim,
        &req("GET", "/v2/bot/nothing", Value::Null),
        T0,
    ));
    assert_eq!(
        (a.status, a.body.clone()),
        (404, json!({"message": "Not found"}))
    );
    assert!(!a.request_id.is_empty());
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(TOKEN.to_owned()),
        Some("Bearer ".into()),
    ] {
        let mut r = req("GET", "/v2/bot/info", Value::Null);
        r.auth = auth.clone();
        let a = answered(call(&mut sim, &r, T0));
        assert_eq!(a.status, 401, "{auth:?}");
        assert!(a.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Authentication failed")));
    }
    let a = answered(call(&mut sim, &req("GET", "/v2/bot/info", Value::Null), T0));
    assert_eq!(a.status, 200);
    assert_eq!(a.body["userId"], BOT);
    assert_eq!(a.body["chatMode"], "chat");
}

#[test]
fn partner_only_endpoints_are_refused_as_line_refuses_a_channel_that_is_not_a_partner() {
    let mut sim = sim();
    // Marking read by user id is a partner API: LINE's 403 with its error body, for a friend
    // of the account too, and nothing marked. `POST /v2/bot/chat/markAsRead` is the way.
    let read = req(
        "POST",
        "/v2/bot/message/markAsRead",
        json!({"chat": {"userId": "U1"}}),
    );
    let a = answered(call(&mut sim, &read, T0));
    assert_eq!(
        (a.status, a.body.clone()),
        (
            403,
            json!({"message": "Access to this API is not available for your account"})
        )
    );
    assert!(!a.request_id.is_empty(), "LINE answers with a request id");
    for (method, path) in [
        ("POST", "/bot/pnp/push"),
        ("GET", "/v2/bot/message/delivery/pnp"),
    ] {
        let a = answered(call(&mut sim, &req(method, path, json!({})), T0));
        assert_eq!(a.status, 403, "{path}");
    }
    // The token comes first: no token is 401 even on a partner endpoint.
    for path in ["/bot/pnp/push", "/v2/bot/message/markAsRead"] {
        let mut anonymous = req("POST", path, json!({}));
        anonymous.auth = None;
        assert_eq!(
            answered(call(&mut sim, &anonymous, T0)).status,
            401,
            "{path}"
        );
    }
    // A channel set to mark messages read manually is refused all the same.
    let mut manual = Channel::new(BOT, TOKEN);
    manual.mark_as_read_mode = "manual".into();
    sim.add_channel(manual);
    assert_eq!(answered(call(&mut sim, &read, T0)).status, 403);
}

#[test]
fn endpoints_a_stand_in_does_not_serve_are_404() {
    let mut sim = Simulator::new(Config {
        serves: vec![Endpoint::BotInfo],
        ..Config::default()
    });
    sim.add_channel(Channel::new(BOT, TOKEN));
    sim.add_user("U1");
    assert_eq!(
        answered(call(&mut sim, &req("GET", "/v2/bot/info", Value::Null), T0)).status,
        200
    );
    for (method, path) in [
        ("POST", "/v2/bot/user/U1/linkToken"),
        ("POST", "/oauth2/v3/token"),
        ("GET", "/v2/bot/profile/U1"),
    ] {
        let a = answered(call(&mut sim, &req(method, path, Value::Null), T0));
        assert_eq!(a.status, 404, "{path}");
    }
    // Partner-only: LINE's 403 for a channel not granted it, whatever the stand-in serves.
    let a = answered(call(
        &mut sim,
        &req("POST", "/v2/bot/message/markAsRead", json!({})),
        T0,
    ));
    assert_eq!(a.status, 403);
}

#[test]
fn a_reply_is_checked_then_delivered_once() {
    let mut sim = sim();
    sim.issue_reply_token("t", target("U1"), T0);
    let mut not_json = req("POST", "/v2/bot/message/reply", Value::Null);
    not_json.body = b"{not json".to_vec();
    assert_eq!(answered(call(&mut sim, &not_json, T0)).status, 400);
    let bad = req(
        "POST",
        "/v2/bot/message/reply",
        json!({"replyToken": "t", "messages": [{"type": "text", "text": ""}]}),
    );
    let a = answered(call(&mut sim, &bad, T0));
    assert_eq!(a.status, 400);
    assert_eq!(a.body["details"][0]["property"], "messages[0].text");

    let good = req(
        "POST",
        "/v2/bot/message/reply",
        json!({"replyToken": "t", "messages": text("hi")}),
    );
    let Call::Deliver(delivery) = call(&mut sim, &good, T0) else {
        panic!("not delivered");
    };
    assert_eq!(delivery.to, "U1");
    assert_eq!(delivery.via, Via::Reply { token: "t".into() });
    assert_eq!(delivery.channel.as_deref(), Some(BOT));
    let answer = delivery.answer();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.request_id, delivery.request_id);
    assert_eq!(
        answer.body["sentMessages"][0]["id"],
        delivery.sent[0].id.as_str()
    );

    let a = answered(call(&mut sim, &good, T0));
    assert_eq!(
        (a.status, a.body.clone()),
        (400, json!({"message": "Invalid reply token"}))
    );
    let stats = sim.stats();
    assert_eq!((stats.reply_calls, stats.invalid_reply_tokens), (2, 1));
}

#[test]
fn a_push_needs_a_uuid_retry_key_and_answers_409_for_one_seen_before() {
    let mut sim = sim();
    let body = json!({"to": "U1", "messages": text("once")});
    for bad in [
        &b"k1"[..],
        b"123e4567e89b12d3a456426614174000",
        b"{123e4567-e89b-12d3-a456-42661417400}",
        b"\xff\xfe",
    ] {
        let mut r = req("POST", "/v2/bot/message/push", body.clone());
        r.retry_key = Some(bad);
        let a = answered(call(&mut sim, &r, T0));
        assert_eq!(a.status, 400, "{bad:?}");
    }
    let mut r = req("POST", "/v2/bot/message/push", body.clone());
    r.retry_key = Some(KEY.as_bytes());
    let Call::Deliver(first) = call(&mut sim, &r, T0) else {
        panic!("not delivered");
    };
    let a = answered(call(&mut sim, &r, T0));
    assert_eq!(a.status, 409);
    assert_ne!(a.request_id, first.request_id);
    assert_eq!(
        a.accepted_request_id.as_deref(),
        Some(first.request_id.as_str())
    );
    assert_eq!(a.body["message"], "The retry key is already accepted");
    assert_eq!(a.body["sentMessages"], json!(first.sent));

    let stranger = req(
        "POST",
        "/v2/bot/message/push",
        json!({"to": "U9", "messages": text("x")}),
    );
    let a = answered(call(&mut sim, &stranger, T0));
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["message"],
        "The property, 'to', in the request body is invalid (line: -, column: -)"
    );
}

#[test]
fn profiles_content_and_link_tokens_exist_for_friends_and_their_messages_only() {
    let mut sim = sim();
    sim.add_content("42");
    match call(&mut sim, &req("GET", "/v2/bot/profile/U1", Value::Null), T0) {
        Call::Profile {
            user_id,
            request_id,
            group_id,
        } => {
            assert_eq!((user_id.as_str(), group_id), ("U1", None));
            assert!(!request_id.is_empty());
        }
        other => panic!("{other:?}"),
    }
    for path in [
        "/v2/bot/profile/U9",
        "/v2/bot/group/C1/member/U1",
        "/v2/bot/room/R1/member/U1",
        "/v2/bot/message/43/content",
    ] {
        assert_eq!(
            answered(call(&mut sim, &req("GET", path, Value::Null), T0)).status,
            404,
            "{path}"
        );
    }
    assert!(matches!(
        call(&mut sim, &req("GET", "/v2/bot/message/42/content", Value::Null), T0),
        Call::Content { message_id, .. } if message_id == "42"
    ));
    let a = answered(call(
        &mut sim,
        &req("POST", "/v2/bot/user/U1/linkToken", Value::Null),
        T0,
    ));
    assert_eq!(a.status, 200);
    assert_eq!(a.body["linkToken"].as_str().map(str::len), Some(32));
    let a = answered(call(
        &mut sim,
        &req("POST", "/v2/bot/user/U9/linkToken", Value::Null),
        T0,
    ));
    assert_eq!(a.status, 400);
}

#[test]
fn loading_and_read_tokens_through_the_api() {
    let mut sim = sim();
    let r = req(
        "POST",
        "/v2/bot/chat/loading/start",
        json!({"chatId": "U1"}),
    );
    match call(&mut sim, &r, T0) {
        Call::Loading {
            chat_id,
            until,
            answer,
        } => {
            assert_eq!((chat_id.as_str(), answer.status), ("U1", 202));
            assert_eq!(until, T0.plus(Duration::from_secs(20)), "20 s by default");
        }
        other => panic!("{other:?}"),
    }
    for body in [
        json!({"chatId": "U1", "loadingSeconds": 7}),
        json!({"chatId": "U1", "loadingSeconds": "20"}),
        json!({"chatId": "U9", "loadingSeconds": 20}),
    ] {
        let a = answered(call(
            &mut sim,
            &req("POST", "/v2/bot/chat/loading/start", body.clone()),
            T0,
        ));
        assert_eq!(a.status, 400, "{body}");
    }
    sim.issue_read_token("rt", "U1", 7);
    let r = req(
        "POST",
        "/v2/bot/chat/markAsRead",
        json!({"markAsReadToken": "rt"}),
    );
    assert!(matches!(
        call(&mut sim, &r, T0),
        Call::MarkRead { up_to: 7, .. }
    ));
    let r = req(
        "POST",
        "/v2/bot/chat/markAsRead",
        json!({"markAsReadToken": "nope"}),
    );
    let a = answered(call(&mut sim, &r, T0));
    assert_eq!(
        (a.status, a.body.clone()),
        (400, json!({"message": "Invalid markAsReadToken"}))
    );
}

#[test]
fn webhook_endpoint_set_read_and_tested() {
    let mut sim = sim();
    let a = answered(call(
        &mut sim,
        &req("GET", "/v2/bot/channel/webhook/endpoint", Value::Null),
        T0,
    ));
    assert_eq!(a.body, json!({"endpoint": "", "active": false}));
    let bad = req("PUT", "/v2/bot/channel/webhook/endpoint", json!({}));
    assert_eq!(answered(call(&mut sim, &bad, T0)).status, 400);
    let set = req(
        "PUT",
        "/v2/bot/channel/webhook/endpoint",
        json!({"endpoint": "https://shop.example/hook"}),
    );
    assert_eq!(answered(call(&mut sim, &set, T0)).body, json!({}));
    let a = answered(call(
        &mut sim,
        &req("GET", "/v2/bot/channel/webhook/endpoint", Value::Null),
        T0,
    ));
    assert_eq!(
        a.body,
        json!({"endpoint": "https://shop.example/hook", "active": true})
    );
    let a = answered(call(
        &mut sim,
        &req(
            "POST",
            "/v2/bot/channel/webhook/test",
            json!({"endpoint": "https://a"}),
        ),
        T0,
    ));
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["timestamp"], "2023-11-14T22:13:20Z");
}

#[test]
fn stateless_tokens_for_the_channel_id_and_secret() {
    let mut sim = sim();
    let form = |body: &str| {
        let mut r = req("POST", "/oauth2/v3/token", Value::Null);
        r.auth = None;
        r.body = body.as_bytes().to_vec();
        r
    };
    let a = answered(call(
        &mut sim,
        &form("grant_type=client_credentials&client_id=2000000001&client_secret=s3cret%2F%2B"),
        T0,
    ));
    assert_eq!(a.status, 200);
    assert_eq!(a.body["access_token"], TOKEN);
    assert_eq!(a.body["expires_in"], 900);
    for (body, error) in [
        (
            "grant_type=client_credentials&client_id=2000000001&client_secret=wrong",
            "invalid_client",
        ),
        (
            "grant_type=client_credentials&client_id=2000000002&client_secret=s3cret%2F%2B",
            "invalid_client",
        ),
        (
            "client_id=2000000001&client_secret=s3cret%2F%2B",
            "unsupported_grant_type",
        ),
        (
            "grant_type=client_credentials&client_id=2000000001",
            "invalid_request",
        ),
        // A bad escape, or bytes that are not UTF-8 once decoded: not a form LINE reads.
        (
            "grant_type=client_credentials&client_id=2000000001&client_secret=s3cret%2",
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&client_id=2000000001&client_secret=%FF",
            "invalid_request",
        ),
    ] {
        let a = answered(call(&mut sim, &form(body), T0));
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
    }
}
