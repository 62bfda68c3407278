#!/usr/bin/env bash
# The test command: `./infra/test.sh` (CI runs it through .ci/run).
#
# On a fresh machine it installs what it needs (a Python venv with moto's server and cfn-lint;
# Prism from npm in .tmp/prism), starts moto and two Prism mocks of LINE's OpenAPI spec
# (../shared/line-openapi) on free loopback ports, runs every test of the workspace with the AWS
# adapters pointed at moto and the LINE client at Prism (those tests are #[ignore]d for a bare
# `cargo test`, so they are included here), runs the admin API contract test
# (./infra/contract-test.sh: schemathesis against docs/openapi.yaml and omniline-local), runs
# the benchmarks once in test mode, checks formatting, lints template.yaml, plays the sandbox
# in headless Chromium (./infra/sandbox-e2e.sh, which installs Debian's chromium and
# playwright-core when missing), and stops the servers by PID.
set -euo pipefail
# A fresh clone gains nothing from incremental artifacts, and they cost disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

VENV=${OMNILINE_VENV:-$root/.venv}
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
SCHEMATHESIS_VERSION=4.32.5
PRISM_VERSION=5.9.0
PRISM_DIR=$root/.tmp/prism
LINE_OPENAPI=$root/../shared/line-openapi
FREE_PORT_PYTHON=$VENV/bin/python

log "Python tools (moto $MOTO_VERSION, cfn-lint $CFN_LINT_VERSION, schemathesis $SCHEMATHESIS_VERSION) in $VENV"
pip_pinned "$VENV" "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
  "schemathesis==$SCHEMATHESIS_VERSION"

trap_stop_all

log "moto server"
MOTO_PORT=$(free_port)
mkdir -p "$root/target"
MOTO_LOG="$root/target/moto.log"
# One request at a time, as DynamoDB's conditional writes are atomic (see infra/moto_serial.py).
"$VENV/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$MOTO_PORT" >"$MOTO_LOG" 2>&1 &
PIDS+=($!)
if ! wait_port "$MOTO_PORT" "${PIDS[-1]}"; then
  echo "moto did not start:"; cat "$MOTO_LOG"; exit 1
fi
echo "moto listening on 127.0.0.1:$MOTO_PORT (pid ${PIDS[-1]})"

export OMNILINE_TEST_AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=ap-northeast-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

log "Prism $PRISM_VERSION (LINE's OpenAPI spec) in $PRISM_DIR"
PRISM_JS="$PRISM_DIR/node_modules/@stoplight/prism-cli/dist/index.js"
PRISM_PKG="$PRISM_DIR/node_modules/@stoplight/prism-cli/package.json"
if [ ! -f "$PRISM_JS" ] ||
  [ "$(node -p "require('$PRISM_PKG').version" 2>/dev/null)" != "$PRISM_VERSION" ]; then
  npm install --prefix "$PRISM_DIR" --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@$PRISM_VERSION"
fi
for spec in messaging-api channel-access-token; do
  [ -f "$LINE_OPENAPI/$spec.yml" ] || { echo "missing $LINE_OPENAPI/$spec.yml"; exit 1; }
done

# Two mocks: the Messaging API (api and api-data paths) and the channel access token API. With
# --errors, a request that breaks the spec is answered 4xx (with an sl-violations header or a 422
# problem body). The node script itself, not npx: killing an npx PID leaves node running.
start_prism() { # spec port log
  node "$PRISM_JS" mock "$LINE_OPENAPI/$1.yml" -h 127.0.0.1 -p "$2" --errors >"$3" 2>&1 &
  PIDS+=($!)
}
PRISM_PORT=$(free_port)
PRISM_TOKEN_PORT=$(free_port)
while [ "$PRISM_TOKEN_PORT" = "$PRISM_PORT" ]; do PRISM_TOKEN_PORT=$(free_port); done
PRISM_LOG="$root/target/prism.log"
PRISM_TOKEN_LOG="$root/target/prism-token.log"
start_prism messaging-api "$PRISM_PORT" "$PRISM_LOG"
PRISM_PID=${PIDS[-1]}
start_prism channel-access-token "$PRISM_TOKEN_PORT" "$PRISM_TOKEN_LOG"
PRISM_TOKEN_PID=${PIDS[-1]}
if ! wait_port "$PRISM_PORT" "$PRISM_PID"; then
  echo "Prism (messaging-api.yml) did not start:"; cat "$PRISM_LOG"; exit 1
fi
echo "Prism (messaging-api.yml) listening on 127.0.0.1:$PRISM_PORT (pid $PRISM_PID)"
if ! wait_port "$PRISM_TOKEN_PORT" "$PRISM_TOKEN_PID"; then
  echo "Prism (channel-access-token.yml) did not start:"; cat "$PRISM_TOKEN_LOG"; exit 1
fi
echo "Prism (channel-access-token.yml) listening on 127.0.0.1:$PRISM_TOKEN_PORT (pid $PRISM_TOKEN_PID)"

export OMNILINE_TEST_PRISM_URL="http://127.0.0.1:$PRISM_PORT"
export OMNILINE_TEST_PRISM_TOKEN_URL="http://127.0.0.1:$PRISM_TOKEN_PORT"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml

log "cargo test --workspace (AWS adapters against moto, LINE client against Prism included)"
cargo test --workspace --locked -- --include-ignored

log "admin API contract test (schemathesis, docs/openapi.yaml, omniline-local against Prism)"
OMNILINE_VENV="$VENV" "$root/infra/contract-test.sh"

log "template: cfn-lint and sam validate --lint (offline)"
OMNILINE_VENV="$VENV" "$root/infra/template-check.sh"

log "cargo lambda local test (webhook → router → outbound → LINE, admin)"
OMNILINE_VENV="$VENV" LAMBDA_LOCAL_AWS_ENDPOINT="$OMNILINE_TEST_AWS_ENDPOINT" "$root/infra/lambda-local.sh"

log "load and fault suite, short (omniline-loadtest --short: every scenario, ledger exact, logs clean; debug build, figures not benchmarks)"
cargo build --locked --quiet --bin omniline-local --bin omniline-loadtest
target/debug/omniline-loadtest --short --out "$root/target/loadtest-short"

log "load and fault suite on the AWS backend, short (moto: DynamoDB and SQS FIFO, the router and outbound function as SQS pollers; load, redelivery, line-faults, poison; ledger exact)"
target/debug/omniline-loadtest --short --backend aws --out "$root/target/loadtest-aws"

log "sandbox and agent console in a browser (headless Chromium: the customer and the agent hold a conversation on /sandbox, then on /console with axe-core; screenshots in target/sandbox-e2e)"
OMNILINE_LOCAL_BIN="$root/target/debug/omniline-local" OMNILINE_LOADTEST_BIN="$root/target/debug/omniline-loadtest" \
  "$root/infra/sandbox-e2e.sh"

log "benchmarks, once each in test mode"
cargo test --locked -p omniline-domain --benches

log "all tests passed"
