#!/usr/bin/env bash
# Side by side on one machine and one local endpoint: the article's Python producer (seed,
# boto3 + pandas) and `pipectl produce` with KPL aggregation (its default) and without
# (--no-aggregate), each sending the 7,584 rows to a fresh 1-shard stream on a private moto
# server. Prints wall time and rows/s for each. Needs ../shared/seed.
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${SEED_DIR:-../shared/seed}/stream-data-kinesis-local.py"
csv="tests/fixtures/sacramento-crime-2006-01.csv"
[ -f "$seed" ] || { echo "article producer not found at $seed" >&2; exit 1; }
scripts/moto-venv.sh
if ! .venv/bin/python -c "import pandas" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pandas==2.2.3"
fi
cargo build --locked --quiet --release --bin pipectl
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
.venv/bin/python scripts/moto_shim.py -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_DEFAULT_REGION=eu-west-1
mk() { .venv/bin/python -c "import boto3; boto3.client('kinesis', endpoint_url='$AWS_ENDPOINT_URL').create_stream(StreamName='$1', ShardCount=1)"; }
now() { date +%s.%N; }

mk ArticleStream
t0=$(now)
KINESIS_STREAM_NAME=ArticleStream KINESIS_ENDPOINT_URL="$AWS_ENDPOINT_URL" CRIME_CSV="$csv" .venv/bin/python "$seed" | tail -2
t1=$(now)
python3 -c "print(f'article producer: {($t1-$t0):.2f} s wall, {7584/($t1-$t0):.0f} rows/s (incl. Python start-up and pandas import)')"

for mode in aggregated --no-aggregate; do
  stream="Data${mode//-/}"
  mk "$stream"
  flag=(); [ "$mode" = aggregated ] || flag=("$mode")
  sed "s/name: DataStream/name: $stream/" stacks/crime-data.yaml >"target/bench-$stream.yaml"
  t0=$(now)
  target/release/pipectl produce -f "target/bench-$stream.yaml" --pipeline crime --csv "$csv" "${flag[@]}" | grep -E "delivered|Kinesis records|elapsed"
  t1=$(now)
  python3 -c "print(f'pipectl produce ($mode): {($t1-$t0):.2f} s wall, {7584/($t1-$t0):.0f} rows/s (incl. process start-up)')"
done
