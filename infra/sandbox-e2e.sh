#!/usr/bin/env bash
# End-to-end browser test of the sandbox page: `./infra/sandbox-e2e.sh`.
#
# Makes sure Chromium is there (Debian's package), installs playwright-core from
# sandbox-e2e/package-lock.json (npm ci, only when the lock file changed), builds omniline-local,
# starts it on a free loopback port with a fresh data directory and none of the LINE / backend
# settings, so that it runs in its default sandbox mode (simulated LINE platform, bootstrapped
# account, queue, agent and workstream), waits for the sandbox session, then has headless Chromium
# play the customer and the agent through /sandbox (sandbox-e2e/sandbox.test.mjs), then the agent
# console: a customer writes through the sandbox's API and the sandbox agent answers on /console
# (sandbox-e2e/console.test.mjs, with axe-core's accessibility check); sign-in at a local OpenID
# Connect issuer (console-oidc.test.mjs); then a real deployment's day (console-deploy.test.mjs):
# omniline-local with the sandbox off, its LINE API the load test's LINE stand-in
# (`omniline-loadtest standin`), the administrator setting up on /console/admin and two agents
# signing in at the issuer. Every process is stopped on exit.
#
# Knobs: OMNILINE_LOCAL_BIN [test this binary instead of building the debug one],
# OMNILINE_LOADTEST_BIN [the stand-in's binary, built when unset], CHROMIUM
# [/usr/bin/chromium], OMNILINE_SANDBOX_E2E_TIMEOUT [300 s for the browser run]. Screenshots of
# every step (NN-step.png, 99-failure.png; console-NN-step.png, console-99-failure.png;
# oidc-NN-step.png; deploy-NN-step-person.png), the pages'
# console (console.log, console-journal.log) and the stack's log (omniline-local.log) are left in
# target/sandbox-e2e/.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

E2E=$root/sandbox-e2e
OUT=$root/target/sandbox-e2e
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

DATA_DIR=
STOP_REAP=1  # stop_all also waits for each process it stops
post_stop_hook() { if [ -n "$DATA_DIR" ]; then rm -rf "$DATA_DIR"; fi; }
trap_stop_all

# GET url until it answers 200, while pid lives, for at most the given seconds.
wait_http() { # url pid seconds
  local deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$1" 2>/dev/null)" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT/console.log" "$OUT/console-journal.log"

if [ "$CHROMIUM" = /usr/bin/chromium ] && [ ! -x /usr/bin/chromium ]; then
  log "Chromium (Debian's package)"
  SUDO=
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  apt_install() { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
  if ! apt_install; then
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install
  fi
fi
[ -x "$CHROMIUM" ] || { echo "sandbox-e2e: no Chromium at $CHROMIUM"; exit 1; }
echo "$("$CHROMIUM" --version 2>/dev/null | tail -n 1) at $CHROMIUM"

command -v node >/dev/null || { echo "sandbox-e2e: node is needed"; exit 1; }
STAMP=$E2E/node_modules/.package-lock.sha256
LOCK_SUM=$(sha256sum "$E2E/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$E2E/node_modules/playwright-core" ] || [ ! -d "$E2E/node_modules/axe-core" ] ||
  [ ! -d "$E2E/node_modules/oauth2-mock-server" ] ||
  [ "$(cat "$STAMP" 2>/dev/null)" != "$LOCK_SUM" ]; then
  log "npm ci in sandbox-e2e (playwright-core, axe-core, oauth2-mock-server)"
  (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$LOCK_SUM" >"$STAMP"
fi

if [ -n "${OMNILINE_LOCAL_BIN:-}" ]; then
  BIN=$OMNILINE_LOCAL_BIN
  echo "using $BIN (OMNILINE_LOCAL_BIN), not building"
else
  log "cargo build --bin omniline-local"
  cargo build --locked --quiet --bin omniline-local
  TARGET_DIR=$(cargo metadata --locked --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  BIN="$TARGET_DIR/debug/omniline-local"
fi
if [ -n "${OMNILINE_LOADTEST_BIN:-}" ]; then
  LOADTEST_BIN=$OMNILINE_LOADTEST_BIN
else
  log "cargo build --bin omniline-loadtest (the LINE stand-in)"
  cargo build --locked --quiet --bin omniline-loadtest
  LOADTEST_BIN="$(dirname "$BIN")/omniline-loadtest"
fi

# Starts omniline-local in its default sandbox mode (none of the LINE or backend settings) on the
# fresh data directory $1 and port $2, logging to $3, with the extra environment $4… (NAME=value),
# and waits for its sandbox; sets STACK_PID. ADMIN_TOKEN is set (to the random $E2E_ADMIN_TOKEN)
# so that the banner does not print a generated token into the log kept as an artefact, and so
# that the console test can change the sandbox's workstream (wrap-up) as an admin would.
E2E_ADMIN_TOKEN="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
start_sandbox_stack() {
  local data=$1 port=$2 log_file=$3
  shift 3
  env -u LINE_API_BASE -u LINE_DATA_API_BASE -u OMNILINE_BACKEND -u PUBLIC_BASE_URL \
    -u SANDBOX -u AWS_ENDPOINT_URL \
    ADMIN_TOKEN="$E2E_ADMIN_TOKEN" \
    PORT="$port" \
    DATA_DIR="$data" \
    RUST_LOG=warn \
    "$@" \
    "$BIN" >"$log_file" 2>&1 &
  PIDS+=($!)
  STACK_PID=${PIDS[-1]}
  local base="http://127.0.0.1:$port"
  if ! wait_http "$base/healthz" "$STACK_PID" 60; then
    echo "omniline-local did not become healthy:"; tail -n 50 "$log_file"; exit 1
  fi
  if ! wait_http "$base/sandbox/api/session" "$STACK_PID" 60; then
    echo "the sandbox did not start (GET /sandbox/api/session is not 200):"
    curl -sS --max-time 5 "$base/sandbox/api/session" || true
    echo; tail -n 50 "$log_file"; exit 1
  fi
}

log "omniline-local in its default sandbox mode"
DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/omniline-sandbox-e2e.XXXXXX")
PORT=$(free_port)
SERVER_LOG=$OUT/omniline-local.log
start_sandbox_stack "$DATA_DIR" "$PORT" "$SERVER_LOG"
SERVER_PID=$STACK_PID
BASE="http://127.0.0.1:$PORT"
echo "omniline-local listening on $BASE (pid $SERVER_PID, data in $DATA_DIR)"

log "headless Chromium plays the customer and the agent on $BASE/sandbox"
status=0
SANDBOX_URL="$BASE/sandbox" ARTIFACTS="$OUT" CHROMIUM="$CHROMIUM" \
  timeout --kill-after=10 "${OMNILINE_SANDBOX_E2E_TIMEOUT:-300}" \
  node "$E2E/sandbox.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "omniline-local exited during the run"; fi
  echo "sandbox e2e failed (exit $status); artefacts in $OUT; last 50 lines of $SERVER_LOG:"
  tail -n 50 "$SERVER_LOG"
  exit 1
fi
echo "sandbox e2e passed (artefacts in $OUT)"

log "headless Chromium: the sandbox agent answers a customer on the agent console ($BASE/console)"
status=0
CONSOLE_URL="$BASE/console" ARTIFACTS="$OUT" CHROMIUM="$CHROMIUM" ADMIN_TOKEN="$E2E_ADMIN_TOKEN" \
  timeout --kill-after=10 "${OMNILINE_SANDBOX_E2E_TIMEOUT:-300}" \
  node "$E2E/console.test.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then echo "omniline-local exited during the run"; fi
  echo "console e2e failed (exit $status); artefacts in $OUT; last 50 lines of $SERVER_LOG:"
  tail -n 50 "$SERVER_LOG"
  exit 1
fi
echo "console e2e passed (artefacts in $OUT)"

# Sign-in at an OpenID Connect issuer: a local issuer (oauth2-mock-server), and a second
# omniline-local (sandbox mode, its own data) told to trust it.
log "a local OpenID Connect issuer, and omniline-local signing people in with it"
ISSUER_PORT=$(free_port)
ISSUER_LOG=$OUT/oidc-issuer.log
node "$E2E/oidc-issuer.mjs" "$ISSUER_PORT" >"$ISSUER_LOG" 2>&1 &
PIDS+=($!)
ISSUER_PID=${PIDS[-1]}
ISSUER="http://127.0.0.1:$ISSUER_PORT"
if ! wait_http "$ISSUER/.well-known/openid-configuration" "$ISSUER_PID" 30; then
  echo "the OIDC issuer did not start:"; cat "$ISSUER_LOG"; exit 1
fi
OIDC_DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/omniline-oidc-e2e.XXXXXX")
OIDC_PORT=$(free_port)
OIDC_SERVER_LOG=$OUT/omniline-local-oidc.log
start_sandbox_stack "$OIDC_DATA_DIR" "$OIDC_PORT" "$OIDC_SERVER_LOG" \
  OIDC_ISSUER="$ISSUER" OIDC_CLIENT_ID=omniline-console
OIDC_BASE="http://127.0.0.1:$OIDC_PORT"
status=0
CONSOLE_URL="$OIDC_BASE/console" ARTIFACTS="$OUT" CHROMIUM="$CHROMIUM" \
  timeout --kill-after=10 "${OMNILINE_SANDBOX_E2E_TIMEOUT:-300}" \
  node "$E2E/console-oidc.test.mjs" || status=$?
rm -rf "$OIDC_DATA_DIR"
if [ "$status" -ne 0 ]; then
  echo "console OIDC e2e failed (exit $status); last 50 lines of $OIDC_SERVER_LOG:"
  tail -n 50 "$OIDC_SERVER_LOG"
  echo "issuer log:"; tail -n 20 "$ISSUER_LOG"
  exit 1
fi
echo "console OIDC e2e passed (artefacts in $OUT)"

# A real deployment's day: the sandbox off (LINE_API_BASE is the LINE stand-in), sign-in at the
# issuer still running above, the set-up done in the browser.
log "a real deployment: omniline-local against a LINE stand-in, set up on /console/admin, two agents signing in at the issuer"
BOT_USER_ID="U$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
CHANNEL_TOKEN="standin.$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
STANDIN_LOG=$OUT/line-standin.log
"$LOADTEST_BIN" standin --bot-user-id "$BOT_USER_ID" --channel-token "$CHANNEL_TOKEN" >"$STANDIN_LOG" 2>&1 &
PIDS+=($!)
STANDIN_PID=${PIDS[-1]}
STANDIN=
for _ in $(seq 1 100); do
  STANDIN=$(sed -n 's/^LINE stand-in: //p' "$STANDIN_LOG")
  [ -n "$STANDIN" ] && break
  kill -0 "$STANDIN_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$STANDIN" ] || { echo "the LINE stand-in did not start:"; cat "$STANDIN_LOG"; exit 1; }
DEPLOY_DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/omniline-deploy-e2e.XXXXXX")
DEPLOY_PORT=$(free_port)
DEPLOY_LOG=$OUT/omniline-local-deploy.log
env -u OMNILINE_BACKEND -u PUBLIC_BASE_URL -u SANDBOX -u AWS_ENDPOINT_URL \
  LINE_API_BASE="$STANDIN" LINE_DATA_API_BASE="$STANDIN" \
  OIDC_ISSUER="$ISSUER" OIDC_CLIENT_ID=omniline-console \
  ADMIN_TOKEN="$E2E_ADMIN_TOKEN" PORT="$DEPLOY_PORT" DATA_DIR="$DEPLOY_DATA_DIR" RUST_LOG=warn \
  "$BIN" >"$DEPLOY_LOG" 2>&1 &
PIDS+=($!)
DEPLOY_PID=${PIDS[-1]}
DEPLOY_BASE="http://127.0.0.1:$DEPLOY_PORT"
if ! wait_http "$DEPLOY_BASE/healthz" "$DEPLOY_PID" 60; then
  echo "omniline-local (against the stand-in) did not become healthy:"; tail -n 50 "$DEPLOY_LOG"; exit 1
fi
status=0
BASE="$DEPLOY_BASE" STANDIN="$STANDIN" BOT_USER_ID="$BOT_USER_ID" CHANNEL_TOKEN="$CHANNEL_TOKEN" \
  ISSUER="$ISSUER" ADMIN_TOKEN="$E2E_ADMIN_TOKEN" ARTIFACTS="$OUT" CHROMIUM="$CHROMIUM" \
  timeout --kill-after=10 "${OMNILINE_SANDBOX_E2E_TIMEOUT:-300}" \
  node "$E2E/console-deploy.test.mjs" || status=$?
rm -rf "$DEPLOY_DATA_DIR"
if [ "$status" -ne 0 ]; then
  echo "console deployment e2e failed (exit $status); last 50 lines of $DEPLOY_LOG:"
  tail -n 50 "$DEPLOY_LOG"
  echo "stand-in log:"; tail -n 20 "$STANDIN_LOG"
  exit 1
fi
echo "console deployment e2e passed (artefacts in $OUT)"
