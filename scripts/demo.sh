#!/usr/bin/env bash
# The demo: a local Kafka broker, the ASX samples and a synthetic burst published to it, the ingest flow into the
# local Iceberg warehouse, what landed and the reconciliation, then the query API with a few real answers.
# Everything this script started (broker, API) is stopped on exit; K2_DEMO_SERVE=0 exits after the examples.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${UV:-uv} run --frozen"
export K2_DATA_DIR="${K2_DATA_DIR:-$PWD/.k2}"
messages="${K2_SYNTHETIC_MESSAGES:-200000}"
asx="${K2_ASX_SAMPLES:-../shared/data/asx-sample}"
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
  $RUN python -m scripts.local_kafka start >/dev/null
  broker_started=1
fi
eval "$($RUN python -m scripts.local_kafka env --export)"
export K2_SOURCE=kafka K2_KAFKA_TAIL=false
echo "== broker at $K2_KAFKA_BOOTSTRAP; publishing $messages synthetic messages"
$RUN k2 produce --synthetic "$messages"
if [ -d "$asx" ]; then
  echo "== publishing the ASX samples from $asx"
  $RUN k2 load --asx "$asx"
fi
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
show() {
  echo; echo "\$ curl -H 'X-API-Key: $key' '$base$1'"
  curl -fsS -H "X-API-Key: $key" "$base$1" | head -c "${2:-600}"; echo
}
show "/v1/symbols?exchange=ASX"
show "/v1/latest?symbol=MWR"
show "/v1/bars?symbol=DVN&exchange=ASX&interval=1d" 900
show "/v1/trades?symbol=MWR&start=2014-03-10&end=2014-03-11&limit=3&fields=timestamp,price,quantity,trade_conditions"
show "/v1/asof?symbol=DVN&start=2014-03-10&limit=2&tolerance_ms=60000"
show "/v1/dead-letters?limit=2"
echo
echo "The page (candlesticks, latest quote, gap report): $base/?key=$key"
echo "API docs: $base/schema (OpenAPI at $base/schema/openapi.json); metrics: $base/metrics"
if [ "${K2_DEMO_SERVE:-1}" = "1" ]; then
  echo "Serving until Ctrl-C."
  wait "$api_pid"
fi
