//! Issue 4/8 through HTTP against the `omniline-local` binary (embedded adapters, LINE mocked by
//! wiremock): queues, agents, workstreams, routing rules with their dry run, deletion and purge,
//! privacy export/erasure, retention — and a signed webhook routed by the rules configured here.
//! Every error answer is checked to be `{"error": {"code", "message", "field"?}}`.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The "done when": account, queue, agent, workstream, two rules, a dry run — and a signed
/// webhook routed by those rules.
#[tokio::test]
async fn a_complete_channel_is_configured_over_http_and_routes_a_signed_webhook_by_its_rules() {
    let s = start().await;
    let account = s.account("Shop JP", SECRET_A, "token-a").await;
    let general = s.queue("General").await;
    let billing = s.queue("Billing").await;
    let vip = s.queue("VIP").await;

    let agent = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "Hanako", "email": "hanako@example.com", "queueIds": [billing], "capacity": 3, "skills": ["ja"]})),
        )
        .await;
    let token = agent["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("oma_"), "{agent}");
    assert_eq!(agent["status"], "offline");
    let agent_id = agent["id"].as_str().unwrap();
    let read = s
        .ok("GET", &format!("/admin/v1/agents/{agent_id}"), None)
        .await;
    assert!(read.get("token").is_none(), "the token is shown once");
    assert!(!read.to_string().contains(&token));

    let ws = s
        .ok(
            "POST",
            "/admin/v1/workstreams",
            Some(json!({
                "name": "Support JP", "accountId": account, "language": "ja", "distribution": "push",
                "defaultQueueId": general, "timeZone": "Asia/Tokyo",
                "attachments": {"customerCanSend": true, "agentCanSend": false},
                "automatedMessages": {"conversationStarted": {"enabled": true, "texts": {"ja": "{customerName}様、こんにちは", "en": "Hello {customerName}"}}},
                "survey": {"enabled": true, "question": "How did we do?", "scale": 5},
                "autoCloseMinutes": 30, "groupChats": "ignore",
                "businessHours": [{"days": [1,2,3,4,5], "open": "09:00", "close": "18:00"}],
                "agentIdentity": {"enabled": true}
            })),
        )
        .await;
    let ws_id = ws["id"].as_str().unwrap().to_owned();
    assert_eq!(ws["defaultQueueId"], general.as_str());
    assert_eq!(ws["timeZone"], "Asia/Tokyo");
    assert_eq!(ws["attachments"]["agentCanSend"], false);
    assert_eq!(
        ws["automatedMessages"]["conversationStarted"]["texts"]["en"],
        "Hello {customerName}"
    );
    assert_eq!(ws["survey"]["scale"], 5);
    assert_eq!(ws["groupChats"], "ignore");
    assert_eq!(ws["bot"], Value::Null);
    let v1 = ws["version"].as_u64().unwrap();

    let rule_vip = s
        .ok(
            "POST",
            &format!("/admin/v1/workstreams/{ws_id}/rules"),
            Some(json!({"name": "VIP", "condition": {"field": "message.text", "op": "contains", "value": "vip"},
                        "queueId": vip, "priority": 10, "skills": ["ja"]})),
        )
        .await;
    let rule_billing = s
        .ok(
            "POST",
            &format!("/admin/v1/workstreams/{ws_id}/rules"),
            Some(json!({"name": "Billing", "condition": {"any": [
                {"field": "message.text", "op": "contains", "value": "refund"},
                {"field": "message.text", "op": "matches", "value": "請求|返金"}]}, "queueId": billing})),
        )
        .await;
    let rules = s
        .ok("GET", &format!("/admin/v1/workstreams/{ws_id}/rules"), None)
        .await;
    assert_eq!(rules["rules"].as_array().unwrap().len(), 2);
    assert_eq!(rules["rules"][0]["id"], rule_vip["id"]);
    assert_eq!(
        rules["version"].as_u64().unwrap(),
        v1 + 2,
        "each change bumps the version"
    );

    // Dry run: which rule, why, the resulting queue; nothing stored.
    let test = |text: &str| json!({"event": text_event("01DRY", "Udry", text), "customer": {"name": "Dry", "language": "ja"}});
    let route = format!("/admin/v1/workstreams/{ws_id}/rules/test");
    let r = s.ok("POST", &route, Some(test("I want a refund"))).await;
    assert_eq!(r["matched"], true);
    assert_eq!(r["rule"]["id"], rule_billing["id"]);
    assert_eq!(r["result"]["queueId"], billing.as_str());
    assert_eq!(r["result"]["source"], "rule");
    assert_eq!(r["evaluated"][0]["matched"], false);
    assert_eq!(r["evaluated"][1]["matched"], true);
    assert_eq!(r["facts"]["message.text"], "I want a refund");
    assert_eq!(r["facts"]["customer.language"], "ja");
    let r = s.ok("POST", &route, Some(test("vip refund please"))).await;
    assert_eq!(r["rule"]["id"], rule_vip["id"], "first match wins");
    assert_eq!(r["result"]["priority"], 10);
    let r = s.ok("POST", &route, Some(test("返金してください"))).await;
    assert_eq!(r["result"]["queueId"], billing.as_str());
    let r = s.ok("POST", &route, Some(test("hello"))).await;
    assert_eq!(r["matched"], false);
    assert_eq!(r["rule"], Value::Null);
    assert_eq!(r["result"]["queueId"], general.as_str());
    assert_eq!(r["result"]["source"], "default");
    let (status, _) = s.call("GET", "/admin/v1/customers?userId=Udry", None).await;
    assert_eq!(status, 200);
    let found = s.ok("GET", "/admin/v1/customers?userId=Udry", None).await;
    assert_eq!(found["customers"], json!([]), "a dry run stores nothing");

    // Reorder: billing first, then a refund+vip text goes to billing.
    let order = s
        .ok(
            "PUT",
            &format!("/admin/v1/workstreams/{ws_id}/rules/order"),
            Some(json!({"ruleIds": [rule_billing["id"], rule_vip["id"]]})),
        )
        .await;
    assert_eq!(order["rules"][0]["id"], rule_billing["id"]);
    let r = s.ok("POST", &route, Some(test("vip refund please"))).await;
    assert_eq!(r["rule"]["id"], rule_billing["id"]);

    // A real signed webhook is routed by the same rules.
    let status = s
        .webhook(
            &account,
            SECRET_A,
            json!([text_event("01REAL0001", "Ucust1", "I need a refund")]),
        )
        .await;
    assert_eq!(status, 200);
    let export = s.export_with(&format!("{account}:Ucust1"), 1).await;
    let conversation = &export["conversations"][0]["conversation"];
    assert_eq!(conversation["queueId"], billing.as_str());
    assert_eq!(conversation["ruleId"], rule_billing["id"]);
    assert_eq!(conversation["workstreamId"], ws_id.as_str());
    assert_eq!(export["customer"]["displayName"], "Taro");
    assert_eq!(
        export["conversations"][0]["transcript"][0]["event"]["message"]["text"],
        "I need a refund"
    );

    // A rule change reaches the router without a restart.
    s.ok(
        "PATCH",
        &format!(
            "/admin/v1/workstreams/{ws_id}/rules/{}",
            rule_billing["id"].as_str().unwrap()
        ),
        Some(json!({"queueId": vip})),
    )
    .await;
    assert_eq!(
        s.webhook(
            &account,
            SECRET_A,
            json!([text_event("01REAL0002", "Ucust2", "refund")])
        )
        .await,
        200
    );
    let export = s.export_with(&format!("{account}:Ucust2"), 1).await;
    assert_eq!(
        export["conversations"][0]["conversation"]["queueId"],
        vip.as_str()
    );

    // Group chats are ignored by this workstream: no conversation opens.
    let group = json!({"type": "message", "mode": "active", "timestamp": now_ms(), "webhookEventId": "01GROUP0001",
        "deliveryContext": {"isRedelivery": false}, "replyToken": "rg", "source": {"type": "group", "groupId": "Cgroup", "userId": "Ugroupie"},
        "message": {"type": "text", "id": "mg", "quoteToken": "q", "text": "refund"}});
    assert_eq!(s.webhook(&account, SECRET_A, json!([group])).await, 200);
    let export = s.export_with(&format!("{account}:Ugroupie"), 0).await;
    assert_eq!(export["conversations"], json!([]));
}

#[tokio::test]
async fn queues_refuse_bad_input_and_deletion_while_in_use_naming_the_users() {
    let s = start().await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "Q", "colour": "red"}), "colour"),
        (json!({"name": "Q", "skills": "ja"}), "skills"),
        (json!({"name": "Q", "skills": ["ja", "ja"]}), "skills[1]"),
    ] {
        let (status, v) = s.call("POST", "/admin/v1/queues", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["code"], "invalid_request");
        assert_eq!(v["error"]["field"], field, "{body} → {v}");
    }
    let (status, v) = s.call("GET", "/admin/v1/queues/nope", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let q = s
        .ok(
            "POST",
            "/admin/v1/queues",
            Some(json!({"name": "Billing", "skills": ["ja"]})),
        )
        .await;
    assert_eq!(q["skills"], json!(["ja"]));
    let id = q["id"].as_str().unwrap().to_owned();
    let renamed = s
        .ok(
            "PATCH",
            &format!("/admin/v1/queues/{id}"),
            Some(json!({"name": "Billing JP"})),
        )
        .await;
    assert_eq!(renamed["name"], "Billing JP");
    assert_eq!(renamed["skills"], json!(["ja"]));
    let list = s.ok("GET", "/admin/v1/queues", None).await;
    assert_eq!(list["queues"].as_array().unwrap().len(), 1);

    let account = s.account("Shop", SECRET_A, "token-a").await;
    let general = s.queue("General").await;
    let ws = s.workstream(&account, &general).await;
    let ws_id = ws["id"].as_str().unwrap();
    s.ok(
        "POST",
        &format!("/admin/v1/workstreams/{ws_id}/rules"),
        Some(json!({"name": "To billing", "condition": {"field": "message.type", "op": "equals", "value": "text"}, "queueId": id})),
    )
    .await;
    let agent = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "A", "email": "a@example.com", "queueIds": [id, general], "capacity": 2})),
        )
        .await;

    let (status, v) = s
        .call("DELETE", &format!("/admin/v1/queues/{id}"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "queue_in_use");
    assert_eq!(v["error"]["usedBy"][0]["kind"], "rule");
    assert_eq!(v["error"]["usedBy"][0]["name"], "To billing");
    let (status, v) = s
        .call("DELETE", &format!("/admin/v1/queues/{general}"), None)
        .await;
    assert_eq!(status, 409);
    assert_eq!(v["error"]["usedBy"][0]["kind"], "workstream");
    assert_eq!(v["error"]["usedBy"][0]["id"], ws_id);

    // Once the rule is gone the queue can go; its agents leave it.
    let rules = s
        .ok("GET", &format!("/admin/v1/workstreams/{ws_id}/rules"), None)
        .await;
    let rule_id = rules["rules"][0]["id"].as_str().unwrap();
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/admin/v1/workstreams/{ws_id}/rules/{rule_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call("DELETE", &format!("/admin/v1/queues/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = s.call("GET", &format!("/admin/v1/queues/{id}"), None).await;
    assert_eq!(status, 404);
    let agent = s
        .ok(
            "GET",
            &format!("/admin/v1/agents/{}", agent["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(agent["queueIds"], json!([general]));
}

#[tokio::test]
async fn agents_get_a_token_once_rotate_it_and_are_validated() {
    let s = start().await;
    let q = s.queue("General").await;
    for (body, status, field) in [
        (
            json!({"email": "a@example.com", "queueIds": [q], "capacity": 1}),
            400,
            "name",
        ),
        (
            json!({"name": "A", "email": "not-an-email", "queueIds": [q], "capacity": 1}),
            400,
            "email",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "queueIds": [q], "capacity": 0}),
            400,
            "capacity",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "queueIds": [q], "capacity": 101}),
            400,
            "capacity",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "capacity": 1}),
            400,
            "queueIds",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "queueIds": [q, "nope"], "capacity": 1}),
            422,
            "queueIds[1]",
        ),
        (
            json!({"name": "A", "email": "a@example.com", "queueIds": [q], "capacity": 1, "token": "x"}),
            400,
            "token",
        ),
    ] {
        let (got, v) = s.call("POST", "/admin/v1/agents", Some(body.clone())).await;
        assert_eq!(got, status, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{body} → {v}");
    }
    let a = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "Aiko", "email": "aiko@example.com", "queueIds": [q], "capacity": 4, "skills": ["en"]})),
        )
        .await;
    let id = a["id"].as_str().unwrap().to_owned();
    let first = a["token"].as_str().unwrap().to_owned();
    assert_eq!(a["capacity"], 4);
    assert_eq!(a["activeConversations"], 0);
    let rotated = s
        .ok("POST", &format!("/admin/v1/agents/{id}/token"), None)
        .await;
    let second = rotated["token"].as_str().unwrap();
    assert_ne!(second, first);
    assert_eq!(rotated["id"], id.as_str());
    let patched = s
        .ok(
            "PATCH",
            &format!("/admin/v1/agents/{id}"),
            Some(json!({"capacity": 2, "email": "aiko@shop.example"})),
        )
        .await;
    assert_eq!(patched["capacity"], 2);
    assert_eq!(patched["email"], "aiko@shop.example");
    assert_eq!(patched["skills"], json!(["en"]));
    let list = s.ok("GET", "/admin/v1/agents", None).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 1);
    let (status, _) = s
        .call("DELETE", &format!("/admin/v1/agents/{id}"), None)
        .await;
    assert_eq!(status, 204);
    for (method, route) in [
        ("GET", format!("/admin/v1/agents/{id}")),
        ("PATCH", format!("/admin/v1/agents/{id}")),
        ("DELETE", format!("/admin/v1/agents/{id}")),
        ("POST", format!("/admin/v1/agents/{id}/token")),
    ] {
        let body = (method == "PATCH").then(|| json!({"name": "x"}));
        let (status, _) = s.call(method, &route, body).await;
        assert_eq!(status, 404, "{method} {route}");
    }
}

#[tokio::test]
async fn workstreams_validate_references_keep_the_bot_secret_and_one_per_account() {
    let s = start().await;
    let account = s.account("Shop", SECRET_A, "token-a").await;
    let q = s.queue("General").await;
    let base = json!({"name": "WS", "accountId": account, "language": "ja", "defaultQueueId": q});
    let with = |patch: Value| {
        let mut b = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, status, field) in [
        (with(json!({"accountId": "nope"})), 422, "accountId"),
        (
            with(json!({"defaultQueueId": "nope"})),
            422,
            "defaultQueueId",
        ),
        (with(json!({"language": "japanese!"})), 400, "language"),
        (with(json!({"timeZone": "Mars/Olympus"})), 400, "timeZone"),
        (with(json!({"distribution": "random"})), 400, "distribution"),
        (
            with(json!({"autoCloseMinutes": 0})),
            400,
            "autoCloseMinutes",
        ),
        (
            with(json!({"automatedMessages": {"hello": {"texts": {"ja": "x"}}}})),
            400,
            "automatedMessages.hello",
        ),
        (
            with(json!({"automatedMessages": {"queued": {"texts": {"ja": ""}}}})),
            400,
            "automatedMessages.queued.texts.ja",
        ),
        (
            with(json!({"survey": {"enabled": true, "question": "Q?", "scale": 11}})),
            400,
            "survey.scale",
        ),
        (
            with(
                json!({"survey": {"enabled": true, "question": "Q?", "scale": 5, "url": "https://x.example"}}),
            ),
            400,
            "survey.url",
        ),
        (
            with(json!({"businessHours": [{"days": [1], "open": "9:00", "close": "18:00"}]})),
            400,
            "businessHours[0].open",
        ),
        (
            with(json!({"bot": {"url": "ftp://bot.example"}})),
            400,
            "bot.secret",
        ),
        (
            with(json!({"bot": {"url": "ftp://bot.example", "secret": BOT_SECRET}})),
            400,
            "bot.url",
        ),
        (with(json!({"groupChats": "maybe"})), 400, "groupChats"),
        (with(json!({"extra": 1})), 400, "extra"),
    ] {
        let (got, v) = s
            .call("POST", "/admin/v1/workstreams", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body} → {v}");
        assert_eq!(v["error"]["field"], field, "{body} → {v}");
    }
    let ws = s
        .ok(
            "POST",
            "/admin/v1/workstreams",
            Some(with(json!({"bot": {"url": "https://bot.example/hook", "secret": BOT_SECRET, "timeoutMs": 2000}}))),
        )
        .await;
    assert_eq!(
        ws["bot"],
        json!({"url": "https://bot.example/hook", "timeoutMs": 2000, "secretSet": true})
    );
    assert_eq!(ws["timeZone"], "UTC");
    assert_eq!(ws["distribution"], "push");
    assert_eq!(
        ws["attachments"],
        json!({"customerCanSend": true, "agentCanSend": true})
    );
    let id = ws["id"].as_str().unwrap().to_owned();

    let (status, v) = s
        .call("POST", "/admin/v1/workstreams", Some(base.clone()))
        .await;
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "workstream_exists");
    assert_eq!(v["error"]["usedBy"][0]["id"], id.as_str());

    let (status, v) = s
        .call(
            "PATCH",
            &format!("/admin/v1/workstreams/{id}"),
            Some(json!({"accountId": "other"})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("accountId"))
    );

    // A bot without a secret keeps the stored one; attachments merge; the version moves.
    let patched = s
        .ok(
            "PATCH",
            &format!("/admin/v1/workstreams/{id}"),
            Some(json!({"bot": {"url": "https://bot2.example/hook"}, "attachments": {"agentCanSend": false}, "autoCloseMinutes": 15})),
        )
        .await;
    assert_eq!(patched["bot"]["url"], "https://bot2.example/hook");
    assert_eq!(
        patched["attachments"],
        json!({"customerCanSend": true, "agentCanSend": false})
    );
    assert_eq!(patched["autoCloseMinutes"], 15);
    assert_eq!(
        patched["version"].as_u64(),
        ws["version"].as_u64().map(|v| v + 1)
    );

    // A rule routing to the bot keeps the bot from being removed.
    let rule = s
        .ok(
            "POST",
            &format!("/admin/v1/workstreams/{id}/rules"),
            Some(json!({"name": "FAQ", "condition": {"field": "message.text", "op": "contains", "value": "faq"}, "queueId": q, "bot": true})),
        )
        .await;
    assert_eq!(rule["bot"], true);
    let (status, v) = s
        .call(
            "PATCH",
            &format!("/admin/v1/workstreams/{id}"),
            Some(json!({"bot": null})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("bot_in_use"))
    );
    s.ok(
        "PATCH",
        &format!(
            "/admin/v1/workstreams/{id}/rules/{}",
            rule["id"].as_str().unwrap()
        ),
        Some(json!({"bot": false})),
    )
    .await;
    let removed = s
        .ok(
            "PATCH",
            &format!("/admin/v1/workstreams/{id}"),
            Some(json!({"bot": null, "autoCloseMinutes": null})),
        )
        .await;
    assert_eq!(removed["bot"], Value::Null);
    assert_eq!(removed["autoCloseMinutes"], Value::Null);
    let list = s.ok("GET", "/admin/v1/workstreams", None).await;
    assert_eq!(list["workstreams"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn rules_are_validated_with_the_json_path_of_the_fault_and_capped_at_100() {
    let s = start().await;
    let account = s.account("Shop", SECRET_A, "token-a").await;
    let q = s.queue("General").await;
    let ws = s.workstream(&account, &q).await;
    let id = ws["id"].as_str().unwrap();
    let route = format!("/admin/v1/workstreams/{id}/rules");
    for (body, status, code, field) in [
        (
            json!({"name": "R", "queueId": q, "condition": {"all": [{"field": "message.text", "op": "startsWith", "value": "x"}]}}),
            422,
            "invalid_condition",
            "condition.all[0].op",
        ),
        (
            json!({"name": "R", "queueId": q, "condition": {"field": "customer.shoeSize", "op": "exists"}}),
            422,
            "invalid_condition",
            "condition.field",
        ),
        (
            json!({"name": "R", "queueId": q, "condition": {"field": "message.text", "op": "matches", "value": "("}}),
            422,
            "invalid_condition",
            "condition.value",
        ),
        (
            json!({"name": "R", "queueId": "nope", "condition": {"field": "message.type", "op": "exists"}}),
            422,
            "unknown_reference",
            "queueId",
        ),
        (
            json!({"name": "R", "queueId": q, "condition": {"field": "message.type", "op": "exists"}, "bot": true}),
            422,
            "unknown_reference",
            "bot",
        ),
        (
            json!({"queueId": q, "condition": {"field": "message.type", "op": "exists"}}),
            400,
            "invalid_request",
            "name",
        ),
        (
            json!({"name": "R", "queueId": q}),
            400,
            "invalid_request",
            "condition",
        ),
        (
            json!({"name": "R", "queueId": q, "condition": {"field": "message.type", "op": "exists"}, "priority": "high"}),
            400,
            "invalid_request",
            "priority",
        ),
    ] {
        let (got, v) = s.call("POST", &route, Some(body.clone())).await;
        assert_eq!(got, status, "{body} → {v}");
        assert_eq!(v["error"]["code"], code, "{body} → {v}");
        let got_field = v["error"]["field"].as_str().unwrap_or("");
        assert!(got_field.starts_with(field), "{body} → {v}");
    }
    let mut ids = Vec::new();
    for i in 0..100 {
        let r = s
            .ok(
                "POST",
                &route,
                Some(json!({"name": format!("R{i}"), "queueId": q, "condition": {"field": "message.text", "op": "equals", "value": format!("{i}")}})),
            )
            .await;
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let (status, v) = s
        .call(
            "POST",
            &route,
            Some(json!({"name": "one too many", "queueId": q, "condition": {"field": "message.type", "op": "exists"}})),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(v["error"]["code"], "too_many_rules");

    // Reordering takes exactly the existing ids.
    let (status, v) = s
        .call(
            "PUT",
            &format!("{route}/order"),
            Some(json!({"ruleIds": ids[1..].to_vec()})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("ruleIds"))
    );
    let mut reversed = ids.clone();
    reversed.reverse();
    let r = s
        .ok("PUT", &format!("{route}/order"), Some(json!(reversed)))
        .await;
    assert_eq!(r["rules"][0]["id"], ids[99].as_str());
    let (status, _) = s.call("GET", &format!("{route}/nope"), None).await;
    assert_eq!(status, 404);
    let (status, v) = s
        .call(
            "POST",
            &format!("{route}/test"),
            Some(json!({"event": {"no": "type"}})),
        )
        .await;
    assert_eq!((status, v["error"]["field"].as_str()), (400, Some("event")));
}

#[tokio::test]
async fn deleting_a_workstream_refuses_the_webhook_at_once_and_purge_erases_only_that_account() {
    // The schedule (which runs the purge job) every 200 ms rather than every minute.
    let s = start_with(&[("SCHEDULE_EVERY_MS", "200")]).await;
    let a = s.account("A", SECRET_A, "token-a").await;
    let b = s.account("B", SECRET_B, "token-b").await;
    let q = s.queue("General").await;
    let ws_a = s.workstream(&a, &q).await;
    s.workstream(&b, &q).await;
    assert_eq!(
        s.webhook(&a, SECRET_A, json!([text_event("01A0001", "Ua", "hi")]))
            .await,
        200
    );
    assert_eq!(
        s.webhook(&b, SECRET_B, json!([text_event("01B0001", "Ub", "hi")]))
            .await,
        200
    );
    s.export_with(&format!("{a}:Ua"), 1).await;
    s.export_with(&format!("{b}:Ub"), 1).await;

    // Without purge: refused at once, data kept.
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/admin/v1/workstreams/{}", ws_a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        s.webhook(&a, SECRET_A, json!([text_event("01A0002", "Ua", "again")]))
            .await,
        401
    );
    s.export_with(&format!("{a}:Ua"), 1).await;
    // A new workstream turns the webhook back on.
    let ws_a = s.workstream(&a, &q).await;
    assert_eq!(
        s.webhook(&a, SECRET_A, json!([text_event("01A0003", "Ua2", "back")]))
            .await,
        200
    );
    s.export_with(&format!("{a}:Ua2"), 1).await;

    let (status, v) = s
        .call(
            "DELETE",
            &format!(
                "/admin/v1/workstreams/{}?purge=maybe",
                ws_a["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!((status, v["error"]["field"].as_str()), (400, Some("purge")));

    // Both accounts' greetings have been sent (delivery records exist) before the purge.
    let conn = rusqlite::Connection::open(s.data.path().join("omniline.db")).unwrap();
    let count = |account: &str| -> i64 {
        conn.query_row(
            "SELECT COUNT(*) FROM deliveries WHERE account_id = ?1",
            [account],
            |r| r.get(0),
        )
        .unwrap()
    };
    for _ in 0..200 {
        if count(&a) > 0 && count(&b) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(count(&a) > 0 && count(&b) > 0, "greetings delivered");
    // Purge the account: disconnected at once, its data erased by a job the schedule runs.
    let (status, accepted) = s
        .call(
            "DELETE",
            &format!("/admin/v1/accounts/{a}?purge=true"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let job = &accepted["purgeJob"];
    assert_eq!(job["accountId"], a.as_str());
    assert_eq!(job["kind"], "accountPurge");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["createdAt"], job["updatedAt"]);
    assert_eq!(
        s.webhook(&a, SECRET_A, json!([text_event("01A0004", "Ua", "gone")]))
            .await,
        401
    );
    let job_route = format!("/admin/v1/jobs/{}", job["id"].as_str().unwrap());
    let mut done = Value::Null;
    for _ in 0..200 {
        let (status, v) = s.call("GET", &job_route, None).await;
        assert_eq!(status, 200, "{v}");
        if v["status"] == "done" {
            done = v;
            break;
        }
        assert!(v["status"] == "pending" || v["status"] == "running", "{v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "done", "the purge job finished");
    assert_eq!(done["stage"], "finished");
    assert_eq!(done["counts"]["conversations"], 2, "{done}");
    assert_eq!(done["counts"]["customers"], 2, "{done}");
    assert!(done["counts"]["deliveries"].as_u64() > Some(0), "{done}");
    assert_eq!(done["lastError"], Value::Null);
    let (status, v) = s
        .call(
            "GET",
            "/admin/v1/jobs/0123456789abcdef0123456789abcdef",
            None,
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // Everything of A is gone, B is untouched.
    for user in ["Ua", "Ua2"] {
        let (status, _) = s
            .call("GET", &format!("/admin/v1/customers/{a}:{user}"), None)
            .await;
        assert_eq!(status, 404, "{user}");
    }
    let kept = s.export_with(&format!("{b}:Ub"), 1).await;
    assert_eq!(
        kept["conversations"][0]["transcript"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(count(&a), 0, "A's delivery records went with the purge");
    assert!(count(&b) > 0, "B's greeting delivery is kept");
    let (status, _) = s
        .call(
            "GET",
            &format!("/admin/v1/workstreams/{}", ws_a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 404, "the account's workstream went with it");
}

#[tokio::test]
async fn a_customer_is_exported_then_erased_and_retention_is_a_setting() {
    let s = start().await;
    let a = s.account("A", SECRET_A, "token-a").await;
    let q = s.queue("General").await;
    s.workstream(&a, &q).await;
    let settings = s.ok("GET", "/admin/v1/settings", None).await;
    assert_eq!(settings["retentionDays"], Value::Null);
    let (status, v) = s
        .call(
            "PATCH",
            "/admin/v1/settings",
            Some(json!({"retentionDays": 0})),
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("retentionDays"))
    );
    let settings = s
        .ok(
            "PATCH",
            "/admin/v1/settings",
            Some(json!({"retentionDays": 30})),
        )
        .await;
    assert_eq!(settings["retentionDays"], 30);

    assert_eq!(
        s.webhook(
            &a,
            SECRET_A,
            json!([text_event("01C0001", "Ukeep", "hello")])
        )
        .await,
        200
    );
    assert_eq!(
        s.webhook(
            &a,
            SECRET_A,
            json!([text_event("01C0002", "Uerase", "my address is secret")])
        )
        .await,
        200
    );
    let export = s.export_with(&format!("{a}:Uerase"), 1).await;
    assert_eq!(export["customer"]["id"], format!("{a}:Uerase"));
    assert_eq!(
        export["conversations"][0]["transcript"][0]["event"]["message"]["text"],
        "my address is secret"
    );
    let found = s.ok("GET", "/admin/v1/customers?userId=Uerase", None).await;
    assert_eq!(found["customers"][0]["accountId"], a.as_str());

    let (status, _) = s
        .call("DELETE", &format!("/admin/v1/customers/{a}:Uerase"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call("GET", &format!("/admin/v1/customers/{a}:Uerase"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .call("DELETE", &format!("/admin/v1/customers/{a}:Uerase"), None)
        .await;
    assert_eq!(status, 404);
    s.export_with(&format!("{a}:Ukeep"), 1).await;
    let (status, _) = s.call("GET", "/admin/v1/customers/no-colon", None).await;
    assert_eq!(status, 404);
    let (status, v) = s.call("GET", "/admin/v1/customers", None).await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (400, Some("userId"))
    );

    // The kept customer's data carries the retention deadline (about 30 days out).
    let conn = rusqlite::Connection::open(s.data.path().join("omniline.db")).unwrap();
    let expires: i64 = conn
        .query_row("SELECT MAX(expires_at) FROM conversations", [], |r| {
            r.get(0)
        })
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now + 29 * 86_400..=now + 31 * 86_400).contains(&expires),
        "conversation expires_at {expires} is ~30 days after {now}"
    );
}

#[tokio::test]
async fn every_admin_route_needs_the_token_and_bad_bodies_get_json_errors() {
    let s = start().await;
    for (method, route) in [
        ("GET", "/admin/v1/queues"),
        ("POST", "/admin/v1/queues"),
        ("GET", "/admin/v1/agents"),
        ("POST", "/admin/v1/agents/x/token"),
        ("GET", "/admin/v1/workstreams"),
        ("PATCH", "/admin/v1/workstreams/x"),
        ("GET", "/admin/v1/workstreams/x/rules"),
        ("PUT", "/admin/v1/workstreams/x/rules/order"),
        ("POST", "/admin/v1/workstreams/x/rules/test"),
        ("DELETE", "/admin/v1/customers/a:b"),
        ("GET", "/admin/v1/settings"),
    ] {
        let r = s
            .client
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{route}", s.base),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {route}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    let r = s
        .client
        .post(format!("{}/admin/v1/queues", s.base))
        .bearer_auth(ADMIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "body");
    let r = s
        .client
        .post(format!("{}/admin/v1/queues", s.base))
        .bearer_auth(ADMIN)
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "body_too_large");
    let (status, v) = s.call("PUT", "/admin/v1/queues", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

/// The channel's monthly limit and use, from LINE at most hourly; an account near it is marked.
#[tokio::test]
async fn the_quota_route_reads_line_at_most_hourly_and_marks_80_percent() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    let s = start().await;
    let account = s.account("Shop JP", SECRET_A, "token-a").await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/quota"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"type": "limited", "value": 200})),
        )
        .expect(1)
        .mount(&s.line)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/bot/message/quota/consumption"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"totalUsage": 170})))
        .expect(1)
        .mount(&s.line)
        .await;
    let route = format!("/admin/v1/accounts/{account}/quota");
    let first = s.ok("GET", &route, None).await;
    assert_eq!(
        (&first["limit"], &first["used"], &first["alert"]),
        (&json!(200), &json!(170), &json!("80%")),
        "{first}"
    );
    assert_eq!(first["share"], 0.85);
    // Within the hour: the same reading, LINE not asked again (each mock expects one call).
    let again = s.ok("GET", &route, None).await;
    assert_eq!(again, first);
    s.line.verify().await;
    let (status, _) = s.call("GET", "/admin/v1/accounts/nope/quota", None).await;
    assert_eq!(status, 404);
}

/// Quick replies over HTTP: admins write them (shortcut `/` + lowercase words, unique: 409
/// `shortcut_taken`; texts per language; queues that exist), agents list those of their
/// queues and of every queue matching `q`, with the text in the customer's language first.
#[tokio::test]
async fn quick_replies_are_written_by_admins_and_found_by_agents_of_their_queues() {
    let s = start().await;
    let support = s.queue("Support").await;
    let billing = s.queue("Billing").await;
    for (bad, field) in [
        (
            json!({"shortcut": "refund", "title": "R", "texts": {"en": "x"}}),
            "shortcut",
        ),
        (
            json!({"shortcut": "/Refund", "title": "R", "texts": {"en": "x"}}),
            "shortcut",
        ),
        (
            json!({"shortcut": "/refund", "title": "R", "texts": {}}),
            "texts",
        ),
        (
            json!({"shortcut": "/refund", "title": "R", "texts": {"english": "x"}}),
            "texts.english",
        ),
        (
            json!({"shortcut": "/refund", "title": "R", "texts": {"en": "  "}}),
            "texts.en",
        ),
        (
            json!({"shortcut": "/refund", "texts": {"en": "x"}}),
            "title",
        ),
    ] {
        let (status, body) = s
            .call("POST", "/admin/v1/quick-replies", Some(bad.clone()))
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{bad}"
        );
    }
    let (status, body) = s
        .call(
            "POST",
            "/admin/v1/quick-replies",
            Some(
                json!({"shortcut": "/x", "title": "X", "texts": {"en": "x"}, "queueIds": ["nope"]}),
            ),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("queueIds[0]"))
    );
    let refund = s
        .ok(
            "POST",
            "/admin/v1/quick-replies",
            Some(json!({"shortcut": "/refund", "title": "Refund policy",
                        "texts": {"en": "Hello {customerName}, refunds take 5 days.", "ja": "{customerName}様、返金には5日かかります。"},
                        "queueIds": [support]})),
        )
        .await;
    assert_eq!(refund["queueIds"], json!([support]));
    s.ok(
        "POST",
        "/admin/v1/quick-replies",
        Some(json!({"shortcut": "/hours", "title": "Opening hours", "texts": {"en": "We open at 9."}})),
    )
    .await;
    s.ok(
        "POST",
        "/admin/v1/quick-replies",
        Some(json!({"shortcut": "/invoice", "title": "Invoices", "texts": {"en": "Invoices are monthly."}, "queueIds": [billing]})),
    )
    .await;
    let (status, body) = s
        .call(
            "POST",
            "/admin/v1/quick-replies",
            Some(json!({"shortcut": "/refund", "title": "Again", "texts": {"en": "x"}})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("shortcut_taken"))
    );
    let id = refund["id"].as_str().unwrap();
    let changed = s
        .ok(
            "PATCH",
            &format!("/admin/v1/quick-replies/{id}"),
            Some(json!({"title": "Refunds"})),
        )
        .await;
    assert_eq!(
        (&changed["title"], &changed["shortcut"]),
        (&json!("Refunds"), &json!("/refund"))
    );
    let all = s.ok("GET", "/admin/v1/quick-replies", None).await;
    let shortcuts: Vec<&str> = all["quickReplies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap())
        .collect();
    assert_eq!(shortcuts, ["/hours", "/invoice", "/refund"]);

    // An agent of Support: its queue's and every queue's, not Billing's.
    let agent = s
        .ok(
            "POST",
            "/admin/v1/agents",
            Some(json!({"name": "Aiko", "email": "aiko@example.com", "queueIds": [support], "capacity": 2})),
        )
        .await;
    let token = agent["token"].as_str().unwrap();
    let list = |route: &'static str| {
        let (s, token) = (&s, token.to_owned());
        async move {
            let r = s
                .client
                .get(format!("{}{route}", s.base))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let seen = list("/agent/v1/quick-replies").await;
    let shortcuts: Vec<&str> = seen["quickReplies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["shortcut"].as_str().unwrap())
        .collect();
    assert_eq!(shortcuts, ["/hours", "/refund"]);
    let found = list("/agent/v1/quick-replies?q=/ref&language=ja").await;
    assert_eq!(found["quickReplies"].as_array().unwrap().len(), 1);
    assert_eq!(found["quickReplies"][0]["language"], "ja");
    assert_eq!(
        found["quickReplies"][0]["text"],
        "{customerName}様、返金には5日かかります。"
    );
    let found = list("/agent/v1/quick-replies?q=OPEN&language=th").await;
    assert_eq!(found["quickReplies"][0]["shortcut"], "/hours");
    assert_eq!(found["quickReplies"][0]["language"], "en");

    let (status, _) = s
        .call("DELETE", &format!("/admin/v1/quick-replies/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .call("GET", &format!("/admin/v1/quick-replies/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

/// Issue 7/7's audit trail: every admin change (who, what, when, how it ended) and a supervisor's
/// reassignment, read back by period; reads are not recorded; a bad period is a 400.
#[tokio::test]
async fn admin_changes_and_supervisor_actions_are_in_the_audit_trail() {
    let s = start().await;
    let queue = s.queue("Audit desk").await;
    let (status, _) = s
        .call(
            "PATCH",
            &format!("/admin/v1/queues/{queue}"),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(status, 400);
    s.ok("GET", "/admin/v1/queues", None).await;
    let trail = s.ok("GET", "/admin/v1/audit", None).await;
    let records = trail["records"].as_array().unwrap();
    let made: Vec<(String, String, u64)> = records
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        made.contains(&("POST".into(), "/admin/v1/queues".into(), 201)),
        "{trail}"
    );
    assert!(
        made.contains(&("PATCH".into(), format!("/admin/v1/queues/{queue}"), 400)),
        "{trail}"
    );
    assert!(
        !made.iter().any(|(m, _, _)| m == "GET"),
        "reads are not changes: {trail}"
    );
    assert!(
        records
            .iter()
            .all(|r| r["actor"] == "admin token" && r["via"] == "admin"),
        "{trail}"
    );
    let times: Vec<i64> = records.iter().map(|r| r["at"].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(trail["truncated"], false);

    // A period before any change: nothing. A bad period: 400 naming it.
    let empty = s
        .ok(
            "GET",
            "/admin/v1/audit?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(empty["records"], json!([]));
    for query in [
        "from=yesterday",
        "from=2020-01-01T00:00:00Z&to=2020-03-01T00:00:00Z",
        "to=2020-01-01T00:00:00Z&from=2020-01-02T00:00:00Z",
        "since=1",
    ] {
        let (status, body) = s
            .call("GET", &format!("/admin/v1/audit?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
}
