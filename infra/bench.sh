#!/usr/bin/env bash
# The webhook hot path against LINE's official SDKs, in one run on one corpus (docs/benchmarks.md).
#
# Usage: infra/bench.sh [CORPUS.jsonl] [PASSES]      (or CORPUS=... PASSES=... CPU=... infra/bench.sh)
#
# 1. builds the load run: cargo build --release -p omniline-domain --example bench_hot_path
# 2. runs the peers, ../shared/bench-peers/run-peers.sh "$CORPUS" "$PASSES" (it generates the
#    20,000-body corpus, seed 42, if the file is missing, and installs the Python and Node SDKs
#    under $WORK, default /tmp/line-bench-peers)
# 3. runs ours on the same corpus file, pinned to the same core (taskset -c ${CPU:-1}), in both
#    modes (hotpath; verify and parse for the breakdown)
# 4. prints every RESULT line and the ratios ours / node and ours / python (bodies/s, medians),
#    against the targets: >= 3x Node, >= 30x Python.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=infra/lib.sh
. "$root/infra/lib.sh"
peers=$(cd "$root/../shared/bench-peers" && pwd)
WORK=${WORK:-/tmp/line-bench-peers}
export WORK
CORPUS=${1:-${CORPUS:-$WORK/corpus.jsonl}}
PASSES=${2:-${PASSES:-5}}
CPU=${CPU:-1}
export CPU
LOG_FD=2

log "build: cargo build --release -p omniline-domain --example bench_hot_path"
(cd "$root" && cargo build --release -p omniline-domain --example bench_hot_path)
bin="$root/target/release/examples/bench_hot_path"

mkdir -p "$WORK"
out=$(mktemp "$WORK/bench-results.XXXXXX")
trap 'rm -f "$out"' EXIT

log "peers: $peers/run-peers.sh $CORPUS $PASSES (cpu $CPU)"
bash "$peers/run-peers.sh" "$CORPUS" "$PASSES" | tee -a "$out"

PIN=""
if command -v taskset >/dev/null; then PIN="taskset -c $CPU"; else echo "taskset missing: not pinned" >&2; fi
for mode in hotpath verify parse; do
  log "ours: $PIN $bin $CORPUS --passes $PASSES --mode $mode"
  res=$($PIN "$bin" "$CORPUS" --passes "$PASSES" --mode "$mode")
  printf '%s\n' "$res"
  printf '%s\n' "$res" | grep '^RESULT' >>"$out"
done

log "results (corpus $CORPUS, $PASSES passes, cpu $CPU, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
grep '^RESULT' "$out"

# bodies/s median of "peer=P mode=M"
rate() { awk -v p="peer=$1" -v m="mode=$2" '$2 == p && $3 == m { for (i = 4; i <= NF; i++) if ($i ~ /^bodies_per_s_median=/) { sub(/.*=/, "", $i); print $i } }' "$out"; }
ours=$(rate omniline-rust hotpath)
node=$(rate node sdk)
python=$(rate python parser)
if [ -z "$ours" ] || [ -z "$node" ] || [ -z "$python" ]; then
  echo "missing a RESULT line (ours=$ours node=$node python=$python)" >&2
  exit 1
fi
awk -v o="$ours" -v n="$node" -v p="$python" 'BEGIN {
  rn = o / n; rp = o / p
  printf "RATIO ours/node   bodies_per_s_median=%.2f target>=3  %s\n", rn, (rn >= 3 ? "MET" : "NOT MET")
  printf "RATIO ours/python bodies_per_s_median=%.1f target>=30 %s\n", rp, (rp >= 30 ? "MET" : "NOT MET")
}'
