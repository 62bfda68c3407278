#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repository's sample events and from gen_corpus.py.
#   webhook_body: one file per webhook body, `0x00` (selector: correct signature) + body;
#   event_model:  one file per event JSON.
# Usage: fuzz/seed.sh [N bodies from gen_corpus.py, default 200]. Idempotent (files are named by
# content hash); libFuzzer adds its own finds to the same directories.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
n="${1:-200}"
gen="$here/../../shared/bench-peers/gen_corpus.py"
events_dir="$here/../tests/events"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$here/corpus/webhook_body" "$here/corpus/event_model"
bodies="$tmp/bodies.jsonl"
: >"$bodies"
if [ -f "$gen" ]; then
  python3 "$gen" "$n" "$tmp/gen.jsonl" --seed 1 >/dev/null
  cat "$tmp/gen.jsonl" >>"$bodies"
else
  echo "seed.sh: $gen not found, skipping generated bodies" >&2
fi

python3 - "$bodies" "$events_dir" "$here/corpus" <<'PY'
import glob, hashlib, json, os, sys

bodies_path, events_dir, corpus = sys.argv[1:4]

def write(target, data):
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)

bodies, events = [], []
with open(bodies_path, encoding="utf-8") as f:
    bodies += [json.loads(line)["body"] for line in f if line.strip()]

# tests/events: API Gateway requests carry a webhook body, SQS records carry inbound-queue bodies.
for path in sorted(glob.glob(os.path.join(events_dir, "*.json"))):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if isinstance(doc.get("body"), str) and doc.get("rawPath", "").startswith("/line/webhook/"):
        bodies.append(doc["body"])
    for record in doc.get("Records", []):
        try:
            inbound = json.loads(record.get("body", ""))
        except ValueError:
            continue
        if isinstance(inbound, dict) and "event" in inbound:
            events.append(json.dumps(inbound["event"], ensure_ascii=False, separators=(",", ":")))

for body in bodies:
    raw = body.encode("utf-8")
    write("webhook_body", b"\x00" + raw)
    try:
        envelope = json.loads(body)
    except ValueError:
        continue
    for event in envelope.get("events", []):
        events.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

for event in events:
    write("event_model", event.encode("utf-8"))
print(f"seeded {len(bodies)} webhook bodies, {len(events)} events")
PY
for t in webhook_body event_model; do
  echo "corpus/$t: $(find "$here/corpus/$t" -type f | wc -l) files"
done
