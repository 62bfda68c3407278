#!/usr/bin/env bash
# Contract test of the admin API: `./infra/contract-test.sh` (./infra/test.sh runs it too).
#
# Builds omniline-local, starts it on a free loopback port with a fresh data directory, a fixed
# admin token and the LINE API pointed at Prism (a mock of LINE's OpenAPI spec), seeds one record
# of each kind through the API, then has schemathesis generate requests for every operation of
# docs/openapi.yaml (explicit examples, boundary values, random valid and invalid data, then
# chains of calls through the document's links) and check that no response is a 5xx and that
# every response (status code, content type, headers, body) matches the document. Any failure
# fails the script; omniline-local (and Prism, if started here) are stopped on exit.
#
# Prism: OMNILINE_TEST_PRISM_URL (the messaging-api.yml mock that ./infra/test.sh starts); when
# unset, this script starts its own Prism the same way test.sh does.
#
# Knobs (defaults in brackets): OMNILINE_CONTRACT_MAX_EXAMPLES [50 per operation and phase],
# OMNILINE_CONTRACT_SEED [20240501], OMNILINE_CONTRACT_PHASES [examples,coverage,fuzzing,stateful],
# OMNILINE_CONTRACT_CHECKS [the five conformance checks below], OMNILINE_CONTRACT_ARGS [more
# schemathesis options, e.g. "--report har"], OMNILINE_LOCAL_BIN [test this binary instead of
# building the debug one], OMNILINE_CONTRACT_TIMEOUT [900 s for the schemathesis run]. The
# JUnit report, the server log and the generated schemathesis config are left in
# target/contract-test/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

VENV=${OMNILINE_VENV:-$root/.venv}
# The pins live in infra/test.sh (one place for every Python tool and Prism).
pin() { sed -n "s/^$1=\([0-9][0-9.]*\)$/\1/p" "$root/infra/test.sh"; }
SCHEMATHESIS_VERSION=$(pin SCHEMATHESIS_VERSION)
PRISM_VERSION=$(pin PRISM_VERSION)
[ -n "$SCHEMATHESIS_VERSION" ] && [ -n "$PRISM_VERSION" ] ||
  { echo "contract-test: cannot read the SCHEMATHESIS_VERSION / PRISM_VERSION pins in infra/test.sh"; exit 1; }
SPEC=$root/docs/openapi.yaml
ADMIN_TOKEN_VALUE=contract-test-admin-token-0123456789abcdef  # omniline-local wants 32+ characters
# 50 keeps the whole run under half a minute. At 200, Hypothesis' target phase (schemathesis
# steers fuzzing towards accepted inputs) sometimes hill-climbs for minutes on operations that
# rarely succeed here, such as POST /admin/v1/accounts (one Prism bot: 409 after the first).
MAX_EXAMPLES=${OMNILINE_CONTRACT_MAX_EXAMPLES:-50}
SEED=${OMNILINE_CONTRACT_SEED:-20240501}
PHASES=${OMNILINE_CONTRACT_PHASES:-examples,coverage,fuzzing,stateful}
OUT=$root/target/contract-test
FREE_PORT_PYTHON=$VENV/bin/python

pip_pinned --log "schemathesis $SCHEMATHESIS_VERSION in $VENV" "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"

DATA_DIR=
post_stop_hook() { if [ -n "$DATA_DIR" ]; then rm -rf "$DATA_DIR"; fi; }
trap_stop_all

mkdir -p "$OUT"

if [ -z "${OMNILINE_TEST_PRISM_URL:-}" ]; then
  log "Prism $PRISM_VERSION (LINE's messaging-api.yml), OMNILINE_TEST_PRISM_URL being unset"
  PRISM_DIR=$root/.tmp/prism
  LINE_OPENAPI=$root/../shared/line-openapi
  PRISM_JS="$PRISM_DIR/node_modules/@stoplight/prism-cli/dist/index.js"
  PRISM_PKG="$PRISM_DIR/node_modules/@stoplight/prism-cli/package.json"
  command -v node >/dev/null ||
    { echo "contract-test: node is needed for Prism (or set OMNILINE_TEST_PRISM_URL)"; exit 1; }
  [ -f "$LINE_OPENAPI/messaging-api.yml" ] ||
    { echo "contract-test: missing $LINE_OPENAPI/messaging-api.yml (or set OMNILINE_TEST_PRISM_URL)"; exit 1; }
  if [ ! -f "$PRISM_JS" ] ||
    [ "$(node -p "require('$PRISM_PKG').version" 2>/dev/null)" != "$PRISM_VERSION" ]; then
    npm install --prefix "$PRISM_DIR" --no-audit --no-fund --loglevel=error \
      "@stoplight/prism-cli@$PRISM_VERSION"
  fi
  PRISM_PORT=$(free_port)
  PRISM_LOG="$OUT/prism.log"
  # The node script itself, not npx: killing an npx PID leaves node running.
  node "$PRISM_JS" mock "$LINE_OPENAPI/messaging-api.yml" -h 127.0.0.1 -p "$PRISM_PORT" --errors \
    >"$PRISM_LOG" 2>&1 &
  PIDS+=($!)
  if ! wait_port "$PRISM_PORT" "${PIDS[-1]}"; then
    echo "Prism did not start:"; cat "$PRISM_LOG"; exit 1
  fi
  OMNILINE_TEST_PRISM_URL="http://127.0.0.1:$PRISM_PORT"
  echo "Prism listening on $OMNILINE_TEST_PRISM_URL (pid ${PIDS[-1]})"
fi

if [ -n "${OMNILINE_LOCAL_BIN:-}" ]; then
  BIN=$OMNILINE_LOCAL_BIN
  echo "using $BIN (OMNILINE_LOCAL_BIN), not building"
else
  log "cargo build --bin omniline-local"
  cargo build --locked --bin omniline-local
  TARGET_DIR=$(cargo metadata --locked --format-version 1 --no-deps |
    "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$TARGET_DIR/debug/omniline-local"
fi

log "omniline-local (embedded backend, LINE API at $OMNILINE_TEST_PRISM_URL)"
DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/omniline-contract.XXXXXX")
PORT=$(free_port)
SERVER_LOG="$OUT/omniline-local.log"
env -u PUBLIC_BASE_URL -u AWS_ENDPOINT_URL \
  OMNILINE_BACKEND=embedded \
  PORT="$PORT" \
  DATA_DIR="$DATA_DIR" \
  ADMIN_TOKEN="$ADMIN_TOKEN_VALUE" \
  LINE_API_BASE="$OMNILINE_TEST_PRISM_URL" \
  LINE_DATA_API_BASE="$OMNILINE_TEST_PRISM_URL" \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN" >"$SERVER_LOG" 2>&1 &
PIDS+=($!)
SERVER_PID=${PIDS[-1]}
BASE="http://127.0.0.1:$PORT"
healthy=
for _ in $(seq 300); do
  if curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; then healthy=1; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$healthy" ]; then
  echo "omniline-local did not become healthy:"; cat "$SERVER_LOG"; exit 1
fi
echo "omniline-local listening on $BASE (pid $SERVER_PID, data in $DATA_DIR)"

# Seed data, so that generated requests reach past "404" and "unknown_reference": one of each
# resource, created through the API itself (a failure here is a contract failure too). Prism
# answers GET /v2/bot/info with one fixed bot, so there can be only one account.
log "seed data through the admin API"
api() { # method path [json body] -> prints the response body; fails unless 2xx
  local out code
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" "$BASE$2" \
    -H "Authorization: Bearer $ADMIN_TOKEN_VALUE" -H 'Content-Type: application/json' \
    ${3:+--data-binary "$3"}) || code=000
  if [ "${code:0:1}" != 2 ]; then
    echo "seeding failed: $1 $2 ${3:-} -> $code $(cat "$out")" >&2
    rm -f "$out"
    return 1
  fi
  cat "$out"
  rm -f "$out"
}
json_id() { "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }
QUEUE_ID=$(api POST /admin/v1/queues '{"name": "Seed queue", "skills": ["ja"]}' | json_id)
ACCOUNT_ID=$(api POST /admin/v1/accounts '{"name": "Seed account", "channelId": "1234567890",
  "channelSecret": "8c570fa6dd201bb328f1c1eac23a96d8", "channelAccessToken": "contract-test-channel-token"}' | json_id)
WORKSTREAM_ID=$(api POST /admin/v1/workstreams "{\"name\": \"Seed workstream\", \"accountId\": \"$ACCOUNT_ID\",
  \"language\": \"ja\", \"defaultQueueId\": \"$QUEUE_ID\", \"timeZone\": \"Asia/Tokyo\",
  \"businessHours\": [{\"days\": [1, 2, 3, 4, 5], \"open\": \"09:00\", \"close\": \"18:00\"}],
  \"bot\": {\"url\": \"http://127.0.0.1:9/bot\", \"secret\": \"contract-test-bot-secret\"}}" | json_id)
RULE_ID=$(api POST "/admin/v1/workstreams/$WORKSTREAM_ID/rules" "{\"name\": \"Seed rule\",
  \"condition\": {\"any\": [{\"field\": \"message.text\", \"op\": \"contains\", \"value\": \"refund\"},
  {\"field\": \"time.hour\", \"op\": \"gt\", \"value\": 18}]}, \"queueId\": \"$QUEUE_ID\", \"priority\": 5}" | json_id)
AGENT_ID=$(api POST /admin/v1/agents "{\"name\": \"Seed agent\", \"email\": \"seed@example.com\",
  \"queueIds\": [\"$QUEUE_ID\"], \"capacity\": 3}" | json_id)
echo "queue $QUEUE_ID, account $ACCOUNT_ID, workstream $WORKSTREAM_ID, rule $RULE_ID, agent $AGENT_ID"

# A customer: a signed LINE webhook to the seeded account; the router stores the customer
# (profile from Prism) in the background.
USER_ID=U4af4980629a0a9a6a1e3f5b7c9d1e3f5
"$VENV/bin/python" - "$BASE/line/webhook/$ACCOUNT_ID" "$USER_ID" <<'PY'
import base64, hashlib, hmac, json, sys, time, urllib.request
url, user = sys.argv[1], sys.argv[2]
body = json.dumps({"destination": "Ub9952f8", "events": [{
    "type": "message", "mode": "active", "timestamp": int(time.time() * 1000),
    "webhookEventId": "01JCONTRACTTEST0000000000001", "deliveryContext": {"isRedelivery": False},
    "source": {"type": "user", "userId": user}, "replyToken": "757913772c4646b784d4b7ce46d12671",
    "message": {"id": "444573844083572737", "type": "text", "quoteToken": "q3Plxr4AgKd", "text": "refund please"}}]}).encode()
signature = base64.b64encode(hmac.new(b"8c570fa6dd201bb328f1c1eac23a96d8", body, hashlib.sha256).digest()).decode()
request = urllib.request.Request(url, data=body, method="POST",
    headers={"Content-Type": "application/json", "x-line-signature": signature})
urllib.request.urlopen(request, timeout=10).read()
PY
CUSTOMER_ID=
for _ in $(seq 100); do
  CUSTOMER_ID=$(api GET "/admin/v1/customers?userId=$USER_ID" |
    "$VENV/bin/python" -c 'import json, sys; c = json.load(sys.stdin)["customers"]; print(c[0]["id"] if c else "")')
  [ -n "$CUSTOMER_ID" ] && break
  sleep 0.1
done
[ -n "$CUSTOMER_ID" ] ||
  { echo "seeding failed: no customer $USER_ID after a signed webhook (see $SERVER_LOG)"; exit 1; }
echo "customer $CUSTOMER_ID"

# Generated ids and references take the seeded ids most of the time (random ones otherwise, for
# the 404 / 422 answers). DELETE operations keep random ids: they reach real records through
# the document's links in the stateful phase, after the other phases.
CONFIG=$OUT/schemathesis.toml
cat >"$CONFIG" <<TOML
# Fuzzing must not reuse ids seen in responses: it would delete the seeded account (and with it
# the workstream) early on. Ids of records created during the run reach other operations
# through the document's links in the stateful phase.
[phases.fuzzing]
extra-data-sources = { responses = false }

[dictionaries]
accounts = { values = ["$ACCOUNT_ID"] }
queues = { values = ["$QUEUE_ID"] }
workstreams = { values = ["$WORKSTREAM_ID"] }
rules = { values = ["$RULE_ID"] }
agents = { values = ["$AGENT_ID"] }
customers = { values = ["$CUSTOMER_ID"] }
users = { values = ["$USER_ID"] }

[[operations]]
include-operation-id = "findCustomers"
parameters = { "query.userId" = { dictionary = "users", probability = 0.7 } }

[[operations]]
include-operation-id = "exportCustomer"
parameters = { "path.id" = { dictionary = "customers", probability = 0.7 } }

[[operations]]
include-operation-id-regex = "^(getAccount|updateAccount|getWebhookStats)\$"
parameters = { "path.id" = { dictionary = "accounts", probability = 0.7 } }

[[operations]]
include-operation-id-regex = "^(getQueue|updateQueue)\$"
parameters = { "path.id" = { dictionary = "queues", probability = 0.7 } }

[[operations]]
include-operation-id-regex = "^(getAgent|rotateAgentToken)\$"
parameters = { "path.id" = { dictionary = "agents", probability = 0.7 } }

[[operations]]
include-operation-id = "createAgent"
parameters = { "body.queueIds[*]" = { dictionary = "queues", probability = 0.8 } }

[[operations]]
include-operation-id = "updateAgent"
parameters = { "path.id" = { dictionary = "agents", probability = 0.7 }, "body.queueIds[*]" = { dictionary = "queues", probability = 0.8 } }

[[operations]]
include-operation-id = "createWorkstream"
parameters = { "body.accountId" = { dictionary = "accounts", probability = 0.7 }, "body.defaultQueueId" = { dictionary = "queues", probability = 0.8 } }

[[operations]]
include-operation-id = "updateWorkstream"
parameters = { "path.id" = { dictionary = "workstreams", probability = 0.7 }, "body.defaultQueueId" = { dictionary = "queues", probability = 0.8 } }

[[operations]]
include-operation-id-regex = "^(getWorkstream|listRules|reorderRules|testRules)\$"
parameters = { "path.id" = { dictionary = "workstreams", probability = 0.7 } }

[[operations]]
include-operation-id = "createRule"
parameters = { "path.id" = { dictionary = "workstreams", probability = 0.7 }, "body.queueId" = { dictionary = "queues", probability = 0.8 } }

[[operations]]
include-operation-id = "getRule"
parameters = { "path.id" = { dictionary = "workstreams", probability = 0.7 }, "path.ruleId" = { dictionary = "rules", probability = 0.7 } }

[[operations]]
include-operation-id = "updateRule"
parameters = { "path.id" = { dictionary = "workstreams", probability = 0.7 }, "path.ruleId" = { dictionary = "rules", probability = 0.7 }, "body.queueId" = { dictionary = "queues", probability = 0.8 } }
TOML

log "schemathesis $SCHEMATHESIS_VERSION against docs/openapi.yaml ($PHASES; $MAX_EXAMPLES examples per operation, seed $SEED)"
start=$(date +%s)
status=0
# A guard against a hung run (a normal one takes well under a minute).
timeout --kill-after=10 "${OMNILINE_CONTRACT_TIMEOUT:-900}" \
  "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$SPEC" \
  --url "$BASE" \
  --header "Authorization: Bearer $ADMIN_TOKEN_VALUE" \
  --checks "${OMNILINE_CONTRACT_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}" \
  --phases "$PHASES" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout 20 \
  --suppress-health-check all \
  --no-color \
  --report junit --report-junit-path "$OUT/junit.xml" \
  ${OMNILINE_CONTRACT_ARGS:-} || status=$?
echo "schemathesis took $(($(date +%s) - start)) s (server log: $SERVER_LOG)"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "omniline-local exited during the run:"; tail -n 50 "$SERVER_LOG"; exit 1
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "contract test failed: schemathesis did not finish within ${OMNILINE_CONTRACT_TIMEOUT:-900} s"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "contract test failed (schemathesis exit $status)"
  exit "$status"
fi
echo "contract test passed"
