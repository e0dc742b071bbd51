#!/usr/bin/env bash
# The demo: a local Kafka broker, the ASX samples (data/samples/asx, in the repository) and a synthetic burst
# published to it, the ingest flow into the local Iceberg warehouse, what landed and the reconciliation, then the
# query API with a few real answers (each example asks about the ASX samples: tests/unit/test_demo_data.py).
# Everything this script started (broker, API) is stopped on exit; K2_DEMO_SERVE=0 exits after the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv: $UV, else the one on PATH, else where `make` installs it (~/.local/bin is not on a fresh shell's PATH)
uv="${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}"
RUN="$uv run --frozen"
export K2_DATA_DIR="${K2_DATA_DIR:-$PWD/.k2}"
messages="${K2_SYNTHETIC_MESSAGES:-200000}"
asx="${K2_ASX_SAMPLES:-data/samples/asx}"  # in the repository: the examples below query them
api_pid=""
broker_started=""

cleanup() {
  if [ -n "$api_pid" ]; then
    kill "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  if [ -n "$broker_started" ]; then
    $RUN python -m scripts.local_kafka stop >/dev/null || true
  fi
}
trap cleanup EXIT

if ! $RUN python -m scripts.local_kafka status >/dev/null 2>&1; then
  # A new broker's topics start empty, and a warehouse remembers positions in the topics it read (its seams and
  # Bytewax's recovery state): one left by an earlier demo would skip all that is published now. So a fresh one.
  if [ "$K2_DATA_DIR" != "$PWD/.k2" ] && [ -e "$K2_DATA_DIR/catalog.db" ]; then
    echo "K2_DATA_DIR=$K2_DATA_DIR holds a warehouse, and a demo on a new broker would have to delete it." >&2
    echo "Unset K2_DATA_DIR (the demo then uses .k2 here) or point it at an empty folder." >&2
    exit 1
  fi
  echo "== a new local broker, and a new warehouse in $K2_DATA_DIR"
  rm -rf "$K2_DATA_DIR/catalog.db" "$K2_DATA_DIR/warehouse" "${K2_RECOVERY_DIR:-$K2_DATA_DIR/recovery}"
  $RUN python -m scripts.local_kafka start >/dev/null
  broker_started=1
fi
eval "$($RUN python -m scripts.local_kafka env --export)"
export K2_SOURCE=kafka K2_KAFKA_TAIL=false
echo "== broker at $K2_KAFKA_BOOTSTRAP; publishing $messages synthetic messages"
$RUN k2 produce --synthetic "$messages"
echo "== publishing the ASX samples from $asx"
$RUN k2 load --asx "$asx"  # a missing folder stops the demo: the examples would all answer empty
echo "== ingesting into $K2_DATA_DIR (Bytewax recovery on)"
scripts/ingest.sh
echo "== what landed"
$RUN k2 summary
echo "== reconciliation (rows + dead letters + duplicates = messages, per partition)"
$RUN k2 reconcile

export K2_API_KEYS="${K2_API_KEYS:-demo-key}" K2_API_PORT="${K2_API_PORT:-8000}"
key="${K2_API_KEYS%%,*}"
base="http://127.0.0.1:$K2_API_PORT"
echo "== query API on $base (key: $key)"
$RUN python -m api >"$K2_DATA_DIR/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 120); do
  curl -fsS "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$api_pid" 2>/dev/null || { echo "the API did not start:"; tail -20 "$K2_DATA_DIR/api.log"; exit 1; }
  sleep 0.5
done
show() {  # an example that answers nothing stops the demo: each one asks about data it has just loaded
  echo; echo "\$ curl -H 'X-API-Key: $key' '$base$1'"
  local body
  body="$(curl -fsS -H "X-API-Key: $key" "$base$1")"
  echo "${body:0:${2:-600}}"
  case "$body" in *'"data":[]'*) echo "k2 demo: this example answered no data" >&2; exit 1 ;; esac
}
show "/v1/symbols?exchange=ASX"
show "/v1/latest?symbol=MWR"
show "/v1/bars?symbol=DVN&exchange=ASX&interval=1d" 900
show "/v1/trades?symbol=MWR&start=2014-03-10&end=2014-03-11&limit=3&fields=timestamp,price,quantity,trade_conditions"
show "/v1/asof?symbol=DVN&start=2014-03-11T01:00&limit=2&tolerance_ms=60000"
show "/v1/dead-letters?limit=2"
echo
echo "The page (candlesticks, latest quote, gap report): $base/?key=$key"
echo "API docs: $base/schema (OpenAPI at $base/schema/openapi.json); metrics: $base/metrics"
if ! command -v uv >/dev/null 2>&1; then
  echo "uv is at $uv, not on this shell's PATH; before the README's \`uv run\` commands:"
  echo "  export PATH=\"$(dirname "$uv"):\$PATH\""
fi
if [ "${K2_DEMO_SERVE:-1}" = "1" ]; then
  echo "Serving until Ctrl-C."
  wait "$api_pid"
fi
