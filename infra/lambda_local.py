"""Helpers of infra/lambda-local.sh and infra/lambda-figures.sh (run with the venv's Python, which
has boto3 through moto):

    mock-line PORT RECORD.jsonl            a mock of the LINE Messaging API: answers what the
                                           functions call, appends every request to RECORD.jsonl
    seed RUN_ID ENV_FILE LINE_URL PUBLIC_BASE_URL
                                           creates in moto ($AWS_ENDPOINT) the config and
                                           conversations tables, the inbound and outbound FIFO
                                           queues, the media bucket, the secrets and the demo
                                           account + workstream of tests/events; writes the
                                           functions' environment (KEY=VALUE lines) to ENV_FILE
    receive QUEUE_URL OUT.json NAME        receives exactly one message and writes it as a Lambda
                                           SQS event; prints {messageId, groupId, body}
    delete QUEUE_URL EVENT.json            deletes the event's messages (as Lambda does after a
                                           batch without failures)
    count QUEUE_URL                        messages on the queue (visible + in flight)
    deliveries TABLE                       the delivery documents of the conversations table
    requests RECORD.jsonl                  the mock LINE's recorded requests as one JSON array

Needs $AWS_ENDPOINT and $AWS_REGION for the AWS commands. The demo values (account, channel
secret, tokens) are those of tests/events/generate.py.
"""
import hashlib
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in tests/events
sys.path.insert(0, os.path.join(ROOT, "tests", "events"))
import generate as demo  # noqa: E402  (the demo values of tests/events)


# ---------------------------------------------------------------------------------------------
# Mock LINE


def mock_line(port, record):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("mock-line: " + (fmt % args) + "\n")

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("x-line-request-id", str(uuid.uuid4()))
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_any(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            entry = {"method": self.command, "path": self.path,
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            with lock, open(record, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            path = self.path.split("?")[0]
            if self.command == "GET" and path == "/v2/bot/info":
                return self.answer(200, {"userId": demo.BOT_USER_ID, "basicId": "@demo",
                                         "displayName": "Demo shop", "chatMode": "chat",
                                         "markAsReadMode": "auto"})
            if self.command == "GET" and path.startswith("/v2/bot/profile/"):
                return self.answer(200, {"userId": path.rsplit("/", 1)[1], "displayName": "Taro",
                                         "language": "en",
                                         "pictureUrl": "https://profile.line-scdn.net/demo"})
            if self.command == "GET" and "/member/" in path:
                return self.answer(200, {"userId": path.rsplit("/", 1)[1], "displayName": "Taro"})
            if self.command == "POST" and path in ("/v2/bot/message/reply", "/v2/bot/message/push"):
                messages = body.get("messages") if isinstance(body, dict) else None
                return self.answer(200, {"sentMessages": [
                    {"id": str(461230966842064897 + i), "quoteToken": f"demo-quote-{i}"}
                    for i in range(len(messages or []))]})
            return self.answer(404, {"message": "Not found (mock LINE)"})

        do_GET = do_POST = do_PUT = do_DELETE = handle_any

    ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


def requests(record):
    with open(record, encoding="utf-8") as f:
        print(json.dumps([json.loads(line) for line in f if line.strip()]))


# ---------------------------------------------------------------------------------------------
# AWS (moto)


def clients(*names):
    import boto3

    kw = dict(endpoint_url=os.environ["AWS_ENDPOINT"], region_name=os.environ["AWS_REGION"])
    return [boto3.client(name, **kw) for name in names]


def seed(run_id, env_file, line_url, public_base_url):
    ddb, sqs, sm, s3 = clients("dynamodb", "sqs", "secretsmanager", "s3")
    region = os.environ["AWS_REGION"]
    suffix = run_id.replace("_", "-").lower()
    config_table, conversations_table = f"omniline-config-{suffix}", f"omniline-conversations-{suffix}"
    for table in (config_table, conversations_table):
        # As in template.yaml, with the conversations table's sparse, keys-only indexes (open
        # conversations; conversations by account, by queue, by agent, by opening).
        indexes = [("open-conversations", "openShard", "pk"),
                   ("conversations-by-account", "accountId", "accountSk"),
                   ("conversations-by-queue", "queueList", "listOrder"),
                   ("conversations-by-agent", "agentList", "listOrder"),
                   ("conversations-by-opening", "accountId", "openedAt")]
        attributes = ["pk", "sk"] + sorted({a for _, h, r in indexes for a in (h, r)} - {"pk"})
        ddb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in attributes],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": name,
                "KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"},
                              {"AttributeName": range_key, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"}} for name, hash_key, range_key in indexes])
    queues = {}
    for name in ("inbound", "outbound"):
        queues[name] = sqs.create_queue(
            QueueName=f"omniline-{name}-{suffix}.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false",
                        "DeduplicationScope": "queue", "FifoThroughputLimit": "perQueue",
                        "VisibilityTimeout": "60"})["QueueUrl"]
    bucket = f"omniline-media-{suffix}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    prefix = f"omniline-local-{suffix}/"
    # Secrets: the account's credentials (ChannelCredentials JSON), the admin token and the
    # media signing key (plain strings read by id).
    sm.create_secret(Name=f"{prefix}accounts/{demo.ACCOUNT_ID}", SecretString=json.dumps(
        {"channelSecret": demo.CHANNEL_SECRET, "channelAccessToken": demo.CHANNEL_ACCESS_TOKEN}))
    sm.create_secret(Name=f"{prefix}admin-token", SecretString=demo.ADMIN_TOKEN)
    sm.create_secret(Name=f"{prefix}media-signing-key", SecretString=demo.MEDIA_SIGNING_SECRET)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())

    def S(v):
        return {"S": v}

    # The account (DynamoAccountStore: ACCOUNT#{id} / PROFILE).
    ddb.put_item(TableName=config_table, Item={
        "pk": S(f"ACCOUNT#{demo.ACCOUNT_ID}"), "sk": S("PROFILE"), "id": S(demo.ACCOUNT_ID),
        "name": S("Demo shop"), "channelId": S("1656789012"), "botUserId": S(demo.BOT_USER_ID),
        "basicId": S("@demo"), "displayName": S("Demo shop"), "createdAt": S(now),
        "updatedAt": S(now), "webhookDisabled": {"BOOL": False}})
    # Its item in the account list (ACCOUNTS / {id}), written with the profile.
    ddb.put_item(TableName=config_table, Item={
        "pk": S("ACCOUNTS"), "sk": S(demo.ACCOUNT_ID), "accountId": S(demo.ACCOUNT_ID)})
    # Its workstream (DynamoWorkstreamStore: ACCOUNT#{id} / WORKSTREAM + the WORKSTREAMS
    # pointer) with a greeting, so that the router queues an outbound message on a first message.
    workstream = {
        "id": "ws_demo", "accountId": demo.ACCOUNT_ID, "name": "Demo support", "language": "en",
        "distribution": "pick", "defaultQueue": "q_demo", "timezone": "UTC",
        "automatedMessages": [{"trigger": "conversationStarted", "language": "en",
                               "text": demo.GREETING, "enabled": True}],
        "version": 1}
    ddb.put_item(TableName=config_table, Item={
        "pk": S(f"ACCOUNT#{demo.ACCOUNT_ID}"), "sk": S("WORKSTREAM"), "id": S("ws_demo"),
        "version": {"N": "1"}, "doc": S(json.dumps(workstream))})
    ddb.put_item(TableName=config_table, Item={
        "pk": S("WORKSTREAMS"), "sk": S("ws_demo"), "accountId": S(demo.ACCOUNT_ID)})
    # The union of the functions' variables in template.yaml (each reads its own).
    env = {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT"], "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "CONFIG_TABLE": config_table, "CONVERSATIONS_TABLE": conversations_table,
        "INBOUND_QUEUE_URL": queues["inbound"], "OUTBOUND_QUEUE_URL": queues["outbound"],
        "MEDIA_BUCKET": bucket, "SECRET_PREFIX": prefix,
        "ADMIN_TOKEN_SECRET_ID": f"{prefix}admin-token",
        "MEDIA_SIGNING_SECRET_ID": f"{prefix}media-signing-key",
        "PUBLIC_BASE_URL": public_base_url, "LINE_API_BASE": line_url,
        "LINE_DATA_API_BASE": line_url, "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
        "RUST_LOG": "info",
    }
    with open(env_file, "w") as f:
        for k, v in env.items():
            f.write(f"{k}={v}\n")


def receive(queue_url, out_file, queue_name, at_most_one=""):
    """The one message on the queue as an SQS event in `out_file`; with `at_most_one`, no message
    is an empty event (and `null` on stdout) instead of an error."""
    (sqs,) = clients("sqs")
    region = os.environ["AWS_REGION"]
    messages = []
    deadline = time.time() + 20
    while not messages and time.time() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=2,
            AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
    if not messages and at_most_one:
        with open(out_file, "w") as f:
            json.dump({"Records": []}, f)
        print("null")
        return
    if len(messages) != 1:
        sys.exit(f"expected one message on the {queue_name} queue, got {len(messages)}")
    m = messages[0]
    record = {
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {},
        "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(), "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{region}:123456789012:{queue_url.rsplit('/', 1)[1]}",
        "awsRegion": region,
    }
    with open(out_file, "w") as f:
        json.dump({"Records": [record]}, f, indent=2)
    print(json.dumps({"messageId": m["MessageId"],
                      "groupId": m.get("Attributes", {}).get("MessageGroupId"),
                      "body": json.loads(m["Body"])}, ensure_ascii=False))


def delete(queue_url, event_file):
    (sqs,) = clients("sqs")
    with open(event_file) as f:
        for r in json.load(f)["Records"]:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=r["receiptHandle"])


def count(queue_url):
    (sqs,) = clients("sqs")
    a = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    print(int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"]))


def deliveries(table):
    """The delivery documents (DynamoDeliveryStore: DELIVERY#{id} / DELIVERY, `doc`)."""
    (ddb,) = clients("dynamodb")
    items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    print(json.dumps([json.loads(i["doc"]["S"]) for i in items if i["sk"]["S"] == "DELIVERY"],
                     ensure_ascii=False))


COMMANDS = {"mock-line": mock_line, "seed": seed, "receive": receive, "delete": delete,
            "count": count, "deliveries": deliveries, "requests": requests}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
