#!/usr/bin/env bash
# Size and start-up figures of the Lambda functions (docs/benchmarks.md, "Lambda binaries").
#
#   ./infra/lambda-figures.sh            # release builds for x86_64 and arm64, then measures
#
# NOT part of the test command: the release profile (lto, codegen-units = 1) takes minutes per
# target on 2 cores. It
#   1. builds every function with `cargo lambda build --release` for x86_64 and, when the
#      aarch64-unknown-linux-gnu std is installed (`rustup target add aarch64-unknown-linux-gnu`),
#      with `--arm64` (each target once, into target/lambda-figures/<arch>/<function>/bootstrap);
#   2. records each bootstrap's size (stripped by the release profile) and its zip size;
#   3. starts moto and the mock LINE server, seeds them (infra/lambda_local.py) and, with the
#      x86_64 binaries (the host's; arm64 cannot run here), measures with infra/runtime_emulator.py:
#      - init: exec of bootstrap → its first GET /2018-06-01/runtime/invocation/next, median of
#        $RUNS fresh processes per function, with moto up;
#      - network at init: the same with every endpoint (AWS_ENDPOINT_URL, LINE_API_BASE,
#        LINE_DATA_API_BASE) pointed at a tarpit (accepts, never answers; connections counted)
#        and at a closed port;
#      - peak RSS (VmHWM) after one invocation with a sample event of tests/events;
#   4. writes target/lambda-figures/figures.md and figures.json and prints the tables.
#
# Environment: OMNILINE_VENV (default .venv), RUNS (default 20), SKIP_BUILD=1 (measure the
# binaries already in target/lambda-figures), ARCHS (default "x86_64 arm64").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"

VENV=${OMNILINE_VENV:-$root/.venv}
CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
RUNS=${RUNS:-20}
ARCHS=${ARCHS:-x86_64 arm64}
FUNCTIONS=(webhook admin router outbound agent)
OUT=$root/target/lambda-figures
EVENTS=$root/tests/events
mkdir -p "$OUT"
LOG_TAG=lambda-figures
LOG_FD=2
FREE_PORT_PYTHON=$VENV/bin/python

pip_pinned "$VENV" "cargo-lambda==$CARGO_LAMBDA_VERSION"
# moto: installed when missing (any version that imports will do).
pip_pinned --import 'moto, boto3, werkzeug' "$VENV" "moto[server]==$MOTO_VERSION"
# The venv first: cargo-lambda finds zig through its python (the ziglang package).
export PATH="$VENV/bin:$PATH"

trap_stop_all --signals

# ---------------------------------------------------------------------------------------------
BINS=()
for f in "${FUNCTIONS[@]}"; do BINS+=(--bin "$f"); done
declare -A BUILD_SECONDS
for arch in $ARCHS; do
  case $arch in
    x86_64) flag=--x86-64 triple=x86_64-unknown-linux-gnu ;;
    arm64) flag=--arm64 triple=aarch64-unknown-linux-gnu ;;
    *) echo "unknown arch $arch"; exit 1 ;;
  esac
  if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
    log "$arch: skipped, the $triple std is not installed (rustup target add $triple)"
    continue
  fi
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    BUILD_SECONDS[$arch]=
    continue
  fi
  log "$arch: cargo lambda build --release $flag ${BINS[*]}"
  start=$(date +%s)
  cargo lambda build --release --locked "$flag" --lambda-dir "$OUT/$arch" "${BINS[@]}" \
    >"$OUT/build-$arch.log" 2>&1 || { tail -30 "$OUT/build-$arch.log"; exit 1; }
  BUILD_SECONDS[$arch]=$(($(date +%s) - start))
  grep -E 'Finished' "$OUT/build-$arch.log" >&2 || true
done

# ---------------------------------------------------------------------------------------------
log "sizes"
"$VENV/bin/python" - "$OUT" "${FUNCTIONS[@]}" >"$OUT/sizes.json" <<'PY'
import io, json, os, subprocess, sys, zipfile
out, functions = sys.argv[1], sys.argv[2:]
sizes = {}
for arch in ("x86_64", "arm64"):
    for f in functions:
        path = os.path.join(out, arch, f, "bootstrap")
        if not os.path.exists(path):
            continue
        desc = subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(path, "bootstrap")
        sizes.setdefault(f, {})[arch] = {
            "bytes": os.path.getsize(path), "zip_bytes": len(buf.getvalue()),
            "stripped": ", stripped" in desc, "file": desc.strip()}
print(json.dumps(sizes))
PY

[ -x "$OUT/x86_64/webhook/bootstrap" ] || { echo "no x86_64 binaries to measure"; exit 1; }

# ---------------------------------------------------------------------------------------------
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=ap-northeast-1
export AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_SESSION_TOKEN
MOTO_PORT=$(free_port)
"$VENV/bin/python" "$root/infra/moto_serial.py" 127.0.0.1 "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
PIDS+=($!)
wait_port "$MOTO_PORT" "${PIDS[-1]}" || { cat "$OUT/moto.log"; exit 1; }
LINE_PORT=$(free_port)
: >"$OUT/line-requests.jsonl"
"$VENV/bin/python" "$root/infra/lambda_local.py" mock-line "$LINE_PORT" "$OUT/line-requests.jsonl" \
  >"$OUT/mock-line.log" 2>&1 &
PIDS+=($!)
wait_port "$LINE_PORT" "${PIDS[-1]}" || { cat "$OUT/mock-line.log"; exit 1; }
export AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
"$VENV/bin/python" "$root/infra/lambda_local.py" seed "figures-$$" "$OUT/lambda.env" \
  "http://127.0.0.1:$LINE_PORT" "https://omniline.example.com"

emulate() { "$VENV/bin/python" "$root/infra/runtime_emulator.py" "$@" --env-file "$OUT/lambda.env"; }
: >"$OUT/functions.log"
: >"$OUT/emulator.jsonl"
for f in "${FUNCTIONS[@]}"; do
  bin="$OUT/x86_64/$f/bootstrap"
  log "$f: init x $RUNS (moto up), init with unreachable endpoints (tarpit x 3, refused x 1)"
  emulate init "$bin" --name "$f" --runs "$RUNS" --log "$OUT/functions.log" >>"$OUT/emulator.jsonl"
  emulate init "$bin" --name "$f" --runs 3 --timeout 3 --unreachable tarpit \
    --log "$OUT/functions.log" >>"$OUT/emulator.jsonl"
  emulate init "$bin" --name "$f" --runs 1 --timeout 30 --unreachable refused \
    --log "$OUT/functions.log" >>"$OUT/emulator.jsonl"
done
# One invocation each (in this order: the router's sample is the webhook's event, the outbound
# sample is the router's greeting), peak RSS read after it.
for pair in webhook:webhook-message admin:admin-list-accounts router:router-sqs \
  outbound:outbound-sqs agent:agent-me-unknown-token; do
  f=${pair%%:*} event=$EVENTS/${pair#*:}.json
  log "$f: one invocation with ${event#"$root"/}, peak RSS"
  emulate invoke "$OUT/x86_64/$f/bootstrap" --name "$f" --event "$event" --timeout 30 \
    --log "$OUT/functions.log" >>"$OUT/emulator.jsonl"
done

# ---------------------------------------------------------------------------------------------
MACHINE="$(nproc) vCPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), \
$(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), Linux $(uname -r), \
load average $(cut -d' ' -f1-3 /proc/loadavg) when measured"
TOOLS="$(rustc -V), $(cargo lambda --version | head -1)"
"$VENV/bin/python" - "$OUT" "$MACHINE" "$TOOLS" "${BUILD_SECONDS[x86_64]:-}" "${BUILD_SECONDS[arm64]:-}" \
  "${FUNCTIONS[@]}" <<'PY'
import json, sys, time
out, machine, tools, build_x86, build_arm, *functions = sys.argv[1:]
sizes = json.load(open(f"{out}/sizes.json"))
runs = [json.loads(l) for l in open(f"{out}/emulator.jsonl") if l.strip()]
def find(f, mode, unreachable=None):
    return next((r for r in runs if r["function"] == f and r["mode"] == mode
                 and r.get("unreachable") == unreachable), None)
MB = 1_000_000
lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine}; {tools}.", ""]
if build_x86 or build_arm:
    lines += [f"Wall time of this run's `cargo lambda build --release` (all five functions; a few "
              f"seconds when target/ was up to date): x86_64 {build_x86 or '—'} s, arm64 {build_arm or '—'} s.", ""]
lines += ["| function | x86_64 bootstrap | x86_64 zip | arm64 bootstrap | arm64 zip | stripped |",
          "|---|---:|---:|---:|---:|---|"]
for f in functions:
    s = sizes.get(f, {})
    cell = lambda a, k: f"{s[a][k] / MB:.2f} MB" if a in s else "—"
    stripped = all(v["stripped"] for v in s.values()) if s else False
    lines.append(f"| {f} | {cell('x86_64', 'bytes')} | {cell('x86_64', 'zip_bytes')} | "
                 f"{cell('arm64', 'bytes')} | {cell('arm64', 'zip_bytes')} | {'yes' if stripped else 'no'} |")
lines += ["", "| function | init: exec → first `next`, median (min–max), moto up | endpoints silent (tarpit): reached `next`; connections during init | endpoints refused (closed port) | peak RSS (VmHWM) after one invocation | that invocation |",
          "|---|---:|---|---|---:|---|"]
for f in functions:
    i, t, c, v = find(f, "init"), find(f, "init", "tarpit"), find(f, "init", "refused"), find(f, "invoke")
    init = f"{i['median_ms']:.1f} ms ({i['min_ms']:.1f}–{i['max_ms']:.1f}), {i['reached_next']}/{i['runs']} runs" if i and i["median_ms"] is not None else "did not reach next"
    if t:
        tarpit = (f"{t['reached_next']}/{t['runs']} in {t['median_ms']:.1f} ms" if t["reached_next"] else f"0/{t['runs']} within 3 s") \
            + f"; {max(t.get('connections_during_init') or [0])} connection(s)"
    else:
        tarpit = "—"
    if c:
        if c["reached_next"]:
            closed = f"reached next in {c['median_ms']:.1f} ms"
        else:
            ff = c.get("first_failure", {})
            closed = (f"exited (code {ff.get('exit_code')}) after {ff.get('gave_up_or_exited_after_ms'):.0f} ms, no `next`"
                      if ff.get("exit_code") is not None else f"no `next` within {ff.get('gave_up_or_exited_after_ms'):.0f} ms")
    else:
        closed = "—"
    if v:
        rss = f"{v['VmHWM_kB'] / 1024:.1f} MiB" if "VmHWM_kB" in v else "—"
        resp = v.get("response")
        status = resp.get("statusCode") if isinstance(resp, dict) and "statusCode" in resp else (json.dumps(resp)[:60] if resp is not None else v.get("error"))
        inv = f"{v.get('invocation')} {status}, {v.get('invoke_ms', 0):.0f} ms"
    else:
        rss, inv = "—", "—"
    lines.append(f"| {f} | {init} | {tarpit} | {closed} | {rss} | {inv} |")
text = "\n".join(lines) + "\n"
open(f"{out}/figures.md", "w").write(text)
json.dump({"sizes": sizes, "runs": runs}, open(f"{out}/figures.json", "w"), indent=1)
print(text)
PY
