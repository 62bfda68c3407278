#!/usr/bin/env bash
# Contract test of the admin API: `./infra/contract-test.sh` (./infra/test.sh runs it too).
#
# Builds omniline-local, starts it on a free loopback port with a fresh data directory, a fixed
# admin token and the LINE API pointed at Prism (a mock of LINE's OpenAPI spec), then has
# schemathesis generate requests for every operation of docs/openapi.yaml (explicit examples,
# then random valid and invalid data, then chains of calls through the document's links) and
# check that no response is a 5xx and that every response (status code, content type, headers,
# body) matches the document. Any failure fails the script.
#
# Prism: OMNILINE_TEST_PRISM_URL (messaging-api.yml mock, set by ./infra/test.sh); when unset,
# this script starts its own Prism the same way test.sh does.
#
# Knobs: OMNILINE_CONTRACT_MAX_EXAMPLES (default 30 per operation), OMNILINE_CONTRACT_SEED
# (default fixed), OMNILINE_CONTRACT_PHASES (default examples,fuzzing,stateful). Reports (JUnit
# and the server log) go to target/contract-test/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

VENV=${OMNILINE_VENV:-$root/.venv}
# The pins live in infra/test.sh (one place for every Python tool and Prism).
pin() { sed -n "s/^$1=\([0-9][0-9.]*\)$/\1/p" "$root/infra/test.sh"; }
SCHEMATHESIS_VERSION=$(pin SCHEMATHESIS_VERSION)
PRISM_VERSION=$(pin PRISM_VERSION)
[ -n "$SCHEMATHESIS_VERSION" ] && [ -n "$PRISM_VERSION" ] ||
  { echo "contract-test: cannot read the SCHEMATHESIS_VERSION / PRISM_VERSION pins in infra/test.sh"; exit 1; }
SPEC=$root/docs/openapi.yaml
ADMIN_TOKEN_VALUE=contract-test-admin-token
MAX_EXAMPLES=${OMNILINE_CONTRACT_MAX_EXAMPLES:-30}
SEED=${OMNILINE_CONTRACT_SEED:-20240501}
PHASES=${OMNILINE_CONTRACT_PHASES:-examples,fuzzing,stateful}
OUT=$root/target/contract-test

log() { printf '\n== %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]; then
  log "schemathesis $SCHEMATHESIS_VERSION in $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

PIDS=()
DATA_DIR=
stop_all() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ -n "$DATA_DIR" ]; then rm -rf "$DATA_DIR"; fi
}
trap stop_all EXIT

wait_port() { # port pid
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

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

log "cargo build --bin omniline-local"
cargo build --locked --bin omniline-local
TARGET_DIR=$(cargo metadata --locked --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/debug/omniline-local"

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

log "schemathesis $SCHEMATHESIS_VERSION against docs/openapi.yaml ($PHASES; $MAX_EXAMPLES examples per operation, seed $SEED)"
start=$(date +%s)
status=0
"$VENV/bin/schemathesis" run "$SPEC" \
  --url "$BASE" \
  --header "Authorization: Bearer $ADMIN_TOKEN_VALUE" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases "$PHASES" \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --workers 1 \
  --request-timeout 20 \
  --suppress-health-check all \
  --no-color \
  --report junit --report-junit-path "$OUT/junit.xml" || status=$?
echo "schemathesis took $(($(date +%s) - start)) s (server log: $SERVER_LOG)"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "omniline-local exited during the run:"; tail -n 50 "$SERVER_LOG"; exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "contract test failed (schemathesis exit $status)"
  exit "$status"
fi
echo "contract test passed"
