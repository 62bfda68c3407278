#!/usr/bin/env bash
# Local end-to-end test of the real Lambda binaries under `cargo lambda watch` (the Lambda
# Runtime API emulator), against moto and a mock of the LINE Messaging API:
#
#   webhook (signed API Gateway v2 event) → inbound FIFO queue → router (SQS batch)
#     → outbound FIFO queue → outbound (SQS batch) → reply at the mock LINE server;
#   admin (GET /admin/v1/accounts with the demo admin token) → 200;
#   webhook again through cargo lambda's function-URL endpoint with curl (a Verify request).
#
#   ./infra/lambda-local.sh            # debug builds in the shared target/; ~10 s warm
#
# It starts its own moto (infra/moto_serial.py) and its own mock LINE server (a small Python
# http.server recording every request), creates the tables, queues, bucket and secrets with boto3
# (unique names per run), seeds the demo account of tests/events/README.md, and stops everything
# it started (trap, by PID; cargo lambda watch and the functions it runs by their process group).
#
# Environment (all optional):
#   OMNILINE_VENV               Python venv with moto and cargo-lambda (default .venv; created and
#                               completed when something is missing)
#   LAMBDA_LOCAL_AWS_ENDPOINT   use this moto instead of starting one (e.g. test.sh's)
#   LAMBDA_LOCAL_LINE_URL       use this LINE mock (e.g. Prism) instead of starting one; the
#                               "request reached LINE" check then reads the delivery record only
#   LAMBDA_LOCAL_PORT           port of cargo lambda watch (default: a free one)
#   LAMBDA_LOCAL_STEP_TIMEOUT   seconds allowed per invocation (default 120)
#   LAMBDA_LOCAL_BUILD_TIMEOUT  seconds allowed for the debug build of the four functions (1800)
#   LAMBDA_LOCAL_KEEP=1         keep the work directory target/lambda-local/<run> on success
# Exits non-zero on the first failed check, printing the logs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

VENV=${OMNILINE_VENV:-$root/.venv}
CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
STEP_TIMEOUT=${LAMBDA_LOCAL_STEP_TIMEOUT:-120}
BUILD_TIMEOUT=${LAMBDA_LOCAL_BUILD_TIMEOUT:-1800}
FUNCTIONS=(webhook router outbound admin)
EVENTS=$root/tests/events
T_START=$(date +%s)
LOG_TAG=lambda-local
LOG_SINCE=$T_START
FREE_PORT_PYTHON=$VENV/bin/python

fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
log "tools: cargo-lambda $CARGO_LAMBDA_VERSION and moto (boto3) in $VENV"
pip_pinned "$VENV" "cargo-lambda==$CARGO_LAMBDA_VERSION"
# moto: installed when missing (any version that imports will do).
pip_pinned --import 'moto, boto3, werkzeug' "$VENV" "moto[server]==$MOTO_VERSION"
# `cargo lambda` is the cargo-lambda binary of the venv; appended so that the venv's python does
# not shadow anything else.
export PATH="$PATH:$VENV/bin"
cargo lambda --version

log "sample events are current and signed with the demo secret"
python3 "$EVENTS/generate.py" --check

# ---------------------------------------------------------------------------------------------
RUN_ID="$(date +%Y%m%d%H%M%S)-$$"
WORK="$root/target/lambda-local/$RUN_ID"
mkdir -p "$WORK"

# PIDS (lib.sh): plain processes, stopped by stop_all after pre_stop_hook.
PGIDS=()  # process groups (cargo lambda watch and the functions it spawns)
stop_group() { # pgid
  kill -TERM -- "-$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
}
pre_stop_hook() {
  # cargo lambda watch first (it stops its function instances), then any instance left: each
  # runs in a process group of its own, logged by watch as "process group spawned pgid=N".
  for g in "${PGIDS[@]:-}"; do
    [ -n "$g" ] && stop_group "$g"
  done
  if [ -f "$WORK/watch.log" ]; then
    for g in $(sed -n 's/.*process group spawned pgid=\([0-9][0-9]*\).*/\1/p' "$WORK/watch.log"); do
      stop_group "$g"
    done
  fi
}
post_stop_hook() { # rc
  local rc=$1
  if [ "$rc" -ne 0 ]; then
    for f in "$WORK"/*.log; do
      [ -f "$f" ] || continue
      printf '\n---- %s (last 60 lines)\n' "${f#"$root"/}"
      tail -n 60 "$f" | cut -c1-1500
    done
    printf '\nlambda-local: FAILED after %ss (work dir %s)\n' "$(($(date +%s) - T_START))" "${WORK#"$root"/}" >&2
  elif [ "${LAMBDA_LOCAL_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap_stop_all --signals

# Mock LINE, seeding and queue helpers (infra/lambda_local.py; boto3 comes with moto).
helper() { "$VENV/bin/python" "$root/infra/lambda_local.py" "$@"; }

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=ap-northeast-1
export AWS_DEFAULT_REGION=ap-northeast-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN

# ---------------------------------------------------------------------------------------------
if [ -n "${LAMBDA_LOCAL_AWS_ENDPOINT:-}" ]; then
  AWS_ENDPOINT=$LAMBDA_LOCAL_AWS_ENDPOINT
  log "moto: using $AWS_ENDPOINT"
else
  MOTO_PORT=$(free_port)
  log "moto: starting on 127.0.0.1:$MOTO_PORT"
  "$VENV/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  PIDS+=($!)
  wait_port "$MOTO_PORT" "${PIDS[-1]}" || fail "moto did not start"
  AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
fi
export AWS_ENDPOINT

LINE_RECORD="$WORK/line-requests.jsonl"
: >"$LINE_RECORD"
if [ -n "${LAMBDA_LOCAL_LINE_URL:-}" ]; then
  LINE_URL=$LAMBDA_LOCAL_LINE_URL
  log "LINE: using $LINE_URL"
else
  LINE_PORT=$(free_port)
  log "mock LINE: starting on 127.0.0.1:$LINE_PORT"
  "$VENV/bin/python" "$root/infra/lambda_local.py" mock-line "$LINE_PORT" "$LINE_RECORD" \
    >"$WORK/mock-line.log" 2>&1 &
  PIDS+=($!)
  wait_port "$LINE_PORT" "${PIDS[-1]}" || fail "mock LINE did not start"
  LINE_URL="http://127.0.0.1:$LINE_PORT"
fi

# ---------------------------------------------------------------------------------------------
WATCH_PORT=${LAMBDA_LOCAL_PORT:-$(free_port)}
log "moto: tables, FIFO queues, media bucket, secrets, demo account and workstream (run $RUN_ID)"
helper seed "$RUN_ID" "$WORK/lambda.env" "$LINE_URL" "http://127.0.0.1:$WATCH_PORT/lambda-url/webhook"
# The resource names (CONFIG_TABLE, INBOUND_QUEUE_URL …) for the checks below; not exported.
# shellcheck disable=SC1091
. "$WORK/lambda.env"

# ---------------------------------------------------------------------------------------------
# The binaries cargo lambda watch runs (`cargo run --bin NAME`, debug profile, shared target/):
# built first, one by one as cargo run builds them, so that the invocations below do not wait
# for the compiler and the build has its own time bound.
log "debug build of ${FUNCTIONS[*]} (shared target/)"
for f in "${FUNCTIONS[@]}"; do
  timeout "$BUILD_TIMEOUT" cargo build --locked --quiet --bin "$f" >"$WORK/build-$f.log" 2>&1 ||
    { cat "$WORK/build-$f.log"; fail "cargo build --bin $f"; }
done

log "cargo lambda watch on 127.0.0.1:$WATCH_PORT"
setsid cargo lambda watch --ignore-changes --quiet -A 127.0.0.1 -P "$WATCH_PORT" \
  --env-file "$WORK/lambda.env" >"$WORK/watch.log" 2>&1 &
WATCH_PID=$!
PGIDS+=("$WATCH_PID")
wait_port "$WATCH_PORT" "$WATCH_PID" || fail "cargo lambda watch did not start"

invoke() { # function event-file output-file
  timeout "$STEP_TIMEOUT" cargo lambda invoke -A 127.0.0.1 -P "$WATCH_PORT" "$1" \
    --data-file "$2" --output-format json >"$3" 2>"$3.err" ||
    { cat "$3" "$3.err"; fail "cargo lambda invoke $1 --data-file ${2#"$root"/}"; }
}
# `check FILE 'python expression over r (the parsed JSON)' 'what'`
check() {
  "$VENV/bin/python" - "$1" "$2" "$3" <<'PY' || fail "$3"
import json, re, sys
path, expr, what = sys.argv[1:4]
with open(path) as f:
    text = f.read()
r = json.loads(text)
if not eval(expr, {"r": r, "json": json, "re": re}):
    sys.exit(f"check failed: {what}\n  expression: {expr}\n  value: {text[:2000]}")
print(f"ok: {what}")
PY
}

# ---------------------------------------------------------------------------------------------
log "webhook: LINE's Verify request (events: []) — cargo lambda invoke --data-file tests/events/webhook-verify.json"
invoke webhook "$EVENTS/webhook-verify.json" "$WORK/webhook-verify.out"
check "$WORK/webhook-verify.out" 'r["statusCode"] == 200 and json.loads(r["body"]) == {"queued": 0}' \
  "webhook answers 200 {\"queued\":0} to a Verify request"

log "webhook: a signed text message — tests/events/webhook-message.json, stamped now (events older than 7 days are refused)"
python3 "$EVENTS/generate.py" --fresh-webhook-message "$WORK/webhook-message.json"
invoke webhook "$WORK/webhook-message.json" "$WORK/webhook-message.out"
check "$WORK/webhook-message.out" 'r["statusCode"] == 200 and json.loads(r["body"]) == {"queued": 1}' \
  "webhook answers 200 {\"queued\":1}"

log "inbound queue: one message, as the router's SQS event"
helper receive "$INBOUND_QUEUE_URL" "$WORK/router-event.json" inbound >"$WORK/inbound.json"
check "$WORK/inbound.json" \
  'r["body"]["accountId"] == "acc_demo" and r["body"]["event"]["webhookEventId"] == "01JDEMO0000000000000000001" and r["groupId"] == "acc_demo:U4af4980629a0a6b2f8b7e0e1d2c3b4a5"' \
  "the event is on the inbound queue, grouped per user"

log "router: invoked with that SQS batch"
invoke router "$WORK/router-event.json" "$WORK/router.out"
check "$WORK/router.out" 'r.get("batchItemFailures") == []' "router reports no batchItemFailures"
helper delete "$INBOUND_QUEUE_URL" "$WORK/router-event.json"

log "outbound queue: the greeting"
helper receive "$OUTBOUND_QUEUE_URL" "$WORK/outbound-event.json" outbound >"$WORK/outbound-message.json"
# The mock LINE's profile says "Taro"; another LINE mock (Prism) answers its own example name.
NAME='Taro'
[ -z "${LAMBDA_LOCAL_LINE_URL:-}" ] || NAME='.+'
check "$WORK/outbound-message.json" \
  'r["body"]["trigger"] == "conversationStarted" and r["body"]["to"] == "U4af4980629a0a6b2f8b7e0e1d2c3b4a5" and len(r["body"]["messages"]) == 1 and re.fullmatch(r"Hi '"$NAME"', thanks for reaching out\.", r["body"]["messages"][0]["text"]) and r["body"]["replyToken"] == "b60d432864f44d079f6d8efe86cf404b"' \
  "the router queued the greeting (with the name from the LINE profile), replying to the event"

log "outbound: invoked with that SQS batch"
invoke outbound "$WORK/outbound-event.json" "$WORK/outbound.out"
check "$WORK/outbound.out" 'r.get("batchItemFailures") == []' "outbound reports no batchItemFailures"
helper delete "$OUTBOUND_QUEUE_URL" "$WORK/outbound-event.json"
helper deliveries "$CONVERSATIONS_TABLE" >"$WORK/deliveries.json"
check "$WORK/deliveries.json" 'len(r) == 1 and r[0].get("status") == "sent"' "the delivery record says sent"

if [ -z "${LAMBDA_LOCAL_LINE_URL:-}" ]; then
  helper requests "$LINE_RECORD" >"$WORK/line-requests.json"
  check "$WORK/line-requests.json" \
    '[x["path"] for x in r if x["method"] == "POST"] == ["/v2/bot/message/reply"] and [x for x in r if x["method"] == "POST"][0]["body"] == {"replyToken": "b60d432864f44d079f6d8efe86cf404b", "messages": [{"type": "text", "text": "Hi Taro, thanks for reaching out."}]} and [x for x in r if x["method"] == "POST"][0]["headers"]["authorization"] == "Bearer demo-channel-access-token"' \
    "the mock LINE server received the reply (token, text, channel access token)"
  check "$WORK/line-requests.json" \
    'any(x["method"] == "GET" and x["path"] == "/v2/bot/profile/U4af4980629a0a6b2f8b7e0e1d2c3b4a5" for x in r)' \
    "the router fetched the customer's profile"
fi

log "redeliveries: router with tests/events/router-sqs.json, outbound with tests/events/outbound-sqs.json"
# The committed samples are the same event and the same outbound message again (LINE redelivers,
# SQS delivers twice): nothing fails, nothing is queued, LINE gets nothing more.
invoke router "$EVENTS/router-sqs.json" "$WORK/router-again.out"
check "$WORK/router-again.out" 'r.get("batchItemFailures") == []' "router: a redelivered event is no failure"
invoke outbound "$EVENTS/outbound-sqs.json" "$WORK/outbound-again.out"
check "$WORK/outbound-again.out" 'r.get("batchItemFailures") == []' "outbound: a message delivered before is no failure"
# The router queues a recorded event's outbox again (a crash between its commit and its send
# loses nothing). SQS drops that repeat for 5 minutes after the first send; moto drops it only
# while the first is still queued, so here it may arrive: then it is the same message, which the
# outbound function finds delivered and skips.
helper receive "$OUTBOUND_QUEUE_URL" "$WORK/outbound-requeued.json" outbound at-most-one \
  >"$WORK/outbound-requeued-message.json"
check "$WORK/outbound-requeued-message.json" \
  'r is None or r["body"] == json.load(open("'"$WORK"'/outbound-message.json"))["body"]' \
  "the redelivered event queued nothing new (at most its recorded greeting again)"
if [ "$(cat "$WORK/outbound-requeued-message.json")" != null ]; then
  invoke outbound "$WORK/outbound-requeued.json" "$WORK/outbound-requeued.out"
  check "$WORK/outbound-requeued.out" 'r.get("batchItemFailures") == []' \
    "outbound: the greeting queued again is no failure"
  helper delete "$OUTBOUND_QUEUE_URL" "$WORK/outbound-requeued.json"
fi
helper count "$OUTBOUND_QUEUE_URL" >"$WORK/outbound-count.json"
check "$WORK/outbound-count.json" 'r == 0' "nothing else is queued"
if [ -z "${LAMBDA_LOCAL_LINE_URL:-}" ]; then
  helper requests "$LINE_RECORD" >"$WORK/line-requests.json"
  check "$WORK/line-requests.json" 'sum(x["method"] == "POST" for x in r) == 1' \
    "LINE received the greeting exactly once"
fi

log "admin: GET /admin/v1/accounts with the demo admin token — tests/events/admin-list-accounts.json"
invoke admin "$EVENTS/admin-list-accounts.json" "$WORK/admin.out"
check "$WORK/admin.out" \
  'r["statusCode"] == 200 and [a["id"] for a in json.loads(r["body"])["accounts"]] == ["acc_demo"]' \
  "admin answers 200 with the demo account"

log "webhook over HTTP: curl POST /lambda-url/webhook/line/webhook/acc_demo (signed Verify body)"
# The Verify body of the sample, signed here (generate.sign: base64 HMAC-SHA256, demo secret).
VERIFY_BODY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["body"], end="")' "$EVENTS/webhook-verify.json")
VERIFY_SIG=$(printf '%s' "$VERIFY_BODY" | PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$EVENTS" python3 -c 'import sys, generate; print(generate.sign(sys.stdin.read()))')
status=$(curl -sS -o "$WORK/curl-verify.out" -w '%{http_code}' --max-time "$STEP_TIMEOUT" \
  -X POST "http://127.0.0.1:$WATCH_PORT/lambda-url/webhook/line/webhook/acc_demo" \
  -H 'content-type: application/json' -H "x-line-signature: $VERIFY_SIG" --data-binary "$VERIFY_BODY")
[ "$status" = 200 ] || { cat "$WORK/curl-verify.out"; fail "curl webhook (signed): HTTP $status"; }
echo "ok: curl, signed: HTTP 200 $(cat "$WORK/curl-verify.out")"
status=$(curl -sS -o "$WORK/curl-bad.out" -w '%{http_code}' --max-time "$STEP_TIMEOUT" \
  -X POST "http://127.0.0.1:$WATCH_PORT/lambda-url/webhook/line/webhook/acc_demo" \
  -H 'content-type: application/json' -H "x-line-signature: AAAA$VERIFY_SIG" --data-binary "$VERIFY_BODY")
[ "$status" = 401 ] || { cat "$WORK/curl-bad.out"; fail "curl webhook (bad signature): HTTP $status, expected 401"; }
echo "ok: curl, bad signature: HTTP 401"

log "all lambda-local checks passed in $(($(date +%s) - T_START))s"
