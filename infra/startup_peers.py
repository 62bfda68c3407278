#!/usr/bin/env python3
"""Start-up + first request: each peer as a fresh process on a one-body corpus, wall time from
exec to exit, N runs, median and min (docs/benchmarks.md).

Usage: infra/startup_peers.py [RUNS]   (after infra/bench.sh has built the example and installed
the peers under $WORK, default /tmp/line-bench-peers)
"""
import os, statistics, subprocess, sys, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
work = os.environ.get("WORK", "/tmp/line-bench-peers")
peers_dir = os.path.join(root, "..", "shared", "bench-peers")
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
one = os.path.join(work, "one-body.jsonl")
with open(os.path.join(work, "corpus.jsonl"), encoding="utf-8") as src, open(one, "w", encoding="utf-8") as dst:
    dst.write(src.readline())
commands = {
    "python / parser": [os.path.join(work, "venv", "bin", "python"), os.path.join(peers_dir, "python", "bench_python.py"), one, "--passes", "1", "--mode", "parser"],
    "node / sdk": ["node", os.path.join(work, "node", "bench_node.mjs"), one, "--passes", "1", "--mode", "sdk"],
    "omniline / hotpath": [os.path.join(root, "target", "release", "examples", "bench_hot_path"), one, "--passes", "1", "--mode", "hotpath"],
}
for name, cmd in commands.items():
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    print(f"STARTUP peer={name} runs={runs} median_ms={statistics.median(times):.1f} min_ms={min(times):.1f}")
