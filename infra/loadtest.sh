#!/usr/bin/env bash
# The load and fault suite (docs/reliability.md, docs/benchmarks.md): release builds of
# omniline-local and omniline-loadtest, then every scenario (load, redelivery, line-faults,
# store-outage, poison) against a fresh omniline-local each, printing the ledger and figures.
#
#   ./infra/loadtest.sh                       # full size: 4 accounts, 800 customers, 12,000 bodies
#   ./infra/loadtest.sh --short               # what the test command runs (debug build there)
#   ./infra/loadtest.sh --scenario load --rate 1500 --bodies 30000
#
# Exit status 1 when a ledger is not exact or the stack's log holds a secret or a message text.
# The output is also written to target/loadtest/report.txt; each scenario's stack log and
# database stay in target/loadtest/<n>-<scenario>/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --locked --bin omniline-local --bin omniline-loadtest
mkdir -p target/loadtest
target/release/omniline-loadtest --out target/loadtest "$@" | tee target/loadtest/report.txt
exit "${PIPESTATUS[0]}"
