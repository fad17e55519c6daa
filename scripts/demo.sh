#!/usr/bin/env bash
# The main job on the local emulator: plan -> apply (the AWS resources, then the index template
# and Dashboards index pattern on the domain) -> send the article's 7,584 rows (KPL aggregated,
# produce's default; the report follows) -> plan shows "No changes.". Starts a private moto
# server on a free loopback port and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
stack="${1:-stacks/crime-data.yaml}"
csv="${2:-tests/fixtures/sacramento-crime-2006-01.csv}"
scripts/moto-venv.sh
cargo build --locked --quiet --bin pipectl
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp)"
# The emulator behaves like AWS as documented (asynchronous states, IAM propagation, busy
# resources, API quotas: scripts/aws_like.py), so the waits and retries show as they would.
PIPECTL_AWS_LIKE=all .venv/bin/python scripts/moto_shim.py -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true PIPECTL_POLL_MS=200
# moto serves no domain endpoint: the domain's REST calls (index template, index pattern) go to
# the stand-in mounted on the same server (scripts/search_standin.py), which verifies every
# SigV4 signature and applies the domain's access policy.
export PIPECTL_SEARCH_ENDPOINT_URL="http://127.0.0.1:$port/_pipectl/search"
p=target/debug/pipectl
set -x
"$p" validate -f "$stack"
"$p" bundle -f "$stack"
"$p" plan -f "$stack"
"$p" apply -f "$stack" --yes
"$p" produce -f "$stack" --pipeline crime --csv "$csv"
"$p" plan -f "$stack" --detailed-exitcode
# What the domain now holds: the index template and the Dashboards index pattern.
set +x
PORT="$port" .venv/bin/python - <<'PY'
import json, os, urllib.request

url = f"http://127.0.0.1:{os.environ['PORT']}/_pipectl/search-state"
for domain, d in json.load(urllib.request.urlopen(url)).items():
    for name, t in d["templates"].items():
        props = t["template"]["mappings"]["properties"]
        print(f"domain {domain}: index template {name} for {t['index_patterns']}:")
        print("  " + ", ".join(f"{f}: {m['type']}" for f, m in props.items()))
    for key, o in d["saved_objects"].items():
        print(f"domain {domain}: {key} {o['attributes']}")
PY
set -x
# The emulator publishes no CloudWatch metrics: status says "no data in the window" (exit 0).
"$p" status -f "$stack"
