#!/usr/bin/env python3
"""Writes the sample Lambda events of this directory (see README.md), deterministically.

    python3 tests/events/generate.py          # (re)writes the *.json files
    python3 tests/events/generate.py --check  # exits 1 if a committed file differs or a
                                              # webhook signature does not verify
    python3 tests/events/generate.py --fresh-webhook-message OUT.json
                                              # the signed message with today's timestamp (the
                                              # webhook refuses events older than 7 days)

Standard library only. The webhook events are signed with the documented demo channel secret:
x-line-signature = base64(HMAC-SHA256(channel secret, raw body)).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# The demo values (documented in README.md; infra/lambda-local.sh seeds moto with them).
ACCOUNT_ID = "acc_demo"
CHANNEL_SECRET = "c0ffee00c0ffee00c0ffee00c0ffee00"
CHANNEL_ACCESS_TOKEN = "demo-channel-access-token"
ADMIN_TOKEN = "demo-admin-token"
MEDIA_SIGNING_SECRET = "demo-media-signing-secret"
GREETING = "Hi {customerName}, thanks for reaching out."
BOT_USER_ID = "Ub0000000000000000000000000000000"
USER_ID = "U4af4980629a0a6b2f8b7e0e1d2c3b4a5"
EVENT_ID = "01JDEMO0000000000000000001"
EVENT_TIMESTAMP = 1764028800000  # 2025-11-25T00:00:00Z
REPLY_TOKEN = "b60d432864f44d079f6d8efe86cf404b"
API_ID = "demo123abc"
REGION = "ap-northeast-1"
DOMAIN = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:123456789012:"


def compact(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sign(body: str, secret: str = CHANNEL_SECRET) -> str:
    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def message_event():
    # Key order as in LINE's documentation examples.
    return {
        "type": "message",
        "message": {"type": "text", "id": "532011402931650561", "quoteToken": "q3Plxr4AgKd", "text": "Hello, I need help with my order"},
        "webhookEventId": EVENT_ID,
        "deliveryContext": {"isRedelivery": False},
        "timestamp": EVENT_TIMESTAMP,
        "source": {"type": "user", "userId": USER_ID},
        "replyToken": REPLY_TOKEN,
        "mode": "active",
    }


def http_api_v2(method, route, path, path_parameters, headers, body, request_id):
    """An API Gateway HTTP API (payload format 2.0) request, as Lambda receives it."""
    event = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": f"{method} {route}",
            "stage": "$default",
            "time": "25/Nov/2025:00:00:01 +0000",
            "timeEpoch": EVENT_TIMESTAMP + 1000,
        },
        "pathParameters": path_parameters,
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


def webhook_request(body, request_id):
    path = f"/line/webhook/{ACCOUNT_ID}"
    headers = {
        "content-length": str(len(body.encode())),
        "content-type": "application/json; charset=utf-8",
        "host": DOMAIN,
        "user-agent": "LineBotWebhook/2.0",
        "x-line-signature": sign(body),
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    return http_api_v2(
        "POST", "/line/webhook/{accountId}", path, {"accountId": ACCOUNT_ID}, headers, body, request_id
    )


def sqs_record(message_id, body, group_id, dedup_id, queue_name):
    return {
        "messageId": message_id,
        "receiptHandle": f"demo-receipt-handle-{message_id}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(EVENT_TIMESTAMP + 1000),
            "SequenceNumber": "18849496460467696128",
            "MessageGroupId": group_id,
            "SenderId": "AIDAIO23YVJENQZJOL4VO",
            "MessageDeduplicationId": dedup_id,
            "ApproximateFirstReceiveTimestamp": str(EVENT_TIMESTAMP + 1100),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN + queue_name,
        "awsRegion": REGION,
    }


def events():
    message_body = compact({"destination": BOT_USER_ID, "events": [message_event()]})
    verify_body = compact({"destination": BOT_USER_ID, "events": []})
    inbound_body = (
        '{"accountId":' + compact(ACCOUNT_ID) + ',"destination":' + compact(BOT_USER_ID)
        + ',"receivedAt":' + str(EVENT_TIMESTAMP + 1000) + ',"event":' + compact(message_event()) + "}"
    )
    # What the router queues for that event with the demo workstream (its greeting) and the
    # profile name "Taro": ids derived from the event, as the router derives them.
    conversation_id = hashlib.sha256(f"conversation:{ACCOUNT_ID}:{EVENT_ID}".encode()).hexdigest()[:32]
    outbound = {
        "id": f"{EVENT_ID}:router:0",
        "accountId": ACCOUNT_ID,
        "conversationId": conversation_id,
        "to": USER_ID,
        "origin": "automated",
        "trigger": "conversationStarted",
        "messages": [{"type": "text", "text": GREETING.replace("{customerName}", "Taro")}],
        "replyToken": REPLY_TOKEN,
        "replyTokenReceivedAt": EVENT_TIMESTAMP + 1000,
        "createdAt": EVENT_TIMESTAMP + 1200,
    }
    admin_headers = {
        "accept": "application/json",
        "authorization": f"Bearer {ADMIN_TOKEN}",
        "host": DOMAIN,
        "user-agent": "curl/8.5.0",
        "x-forwarded-proto": "https",
    }
    return {
        "webhook-message.json": webhook_request(message_body, "demo-webhook-message"),
        "webhook-verify.json": webhook_request(verify_body, "demo-webhook-verify"),
        "admin-list-accounts.json": http_api_v2(
            "GET", "/admin/v1/{proxy+}", "/admin/v1/accounts", {"proxy": "accounts"},
            admin_headers, None, "demo-admin-list",
        ),
        "agent-me-unknown-token.json": http_api_v2(
            "GET", "/agent/v1/{proxy+}", "/agent/v1/me", {"proxy": "me"},
            dict(admin_headers, authorization="Bearer oma_not_a_known_agent_token"), None,
            "demo-agent-me",
        ),
        "router-sqs.json": {
            "Records": [
                sqs_record(
                    "9d1f3c4e-0000-4000-8000-000000000001", inbound_body,
                    f"{ACCOUNT_ID}:{USER_ID}", EVENT_ID, "omniline-inbound.fifo",
                )
            ]
        },
        "outbound-sqs.json": {
            "Records": [
                sqs_record(
                    "9d1f3c4e-0000-4000-8000-000000000002", compact(outbound),
                    f"{ACCOUNT_ID}:{USER_ID}", outbound["id"], "omniline-outbound.fifo",
                )
            ]
        },
    }


def render(value):
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"


def check_signatures():
    ok = True
    for name in ("webhook-message.json", "webhook-verify.json"):
        with open(os.path.join(HERE, name), encoding="utf-8") as f:
            event = json.load(f)
        if not hmac.compare_digest(event["headers"]["x-line-signature"], sign(event["body"])):
            print(f"{name}: x-line-signature does not verify with the demo secret", file=sys.stderr)
            ok = False
    return ok


def main():
    global EVENT_TIMESTAMP
    if sys.argv[1:2] == ["--fresh-webhook-message"] and len(sys.argv) == 3:
        EVENT_TIMESTAMP = int(time.time() * 1000)
        with open(sys.argv[2], "w", encoding="utf-8") as f:
            f.write(render(events()["webhook-message.json"]))
        return
    check = "--check" in sys.argv[1:]
    stale = []
    for name, value in events().items():
        path = os.path.join(HERE, name)
        text = render(value)
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(name)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if check:
        if stale:
            print("stale sample events (run python3 tests/events/generate.py): " + ", ".join(stale), file=sys.stderr)
        sys.exit(0 if not stale and check_signatures() else 1)


if __name__ == "__main__":
    main()
