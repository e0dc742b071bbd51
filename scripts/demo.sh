#!/usr/bin/env bash
# The demo: a local Kafka broker, a synthetic burst published to it, the ingest flow into the local Iceberg
# warehouse, then what landed and the reconciliation. A broker this script started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${UV:-uv} run --frozen"
export K2_DATA_DIR="${K2_DATA_DIR:-$PWD/.k2}"
messages="${K2_SYNTHETIC_MESSAGES:-200000}"

if ! $RUN python scripts/local_kafka.py status >/dev/null 2>&1; then
  $RUN python scripts/local_kafka.py start >/dev/null
  trap '$RUN python scripts/local_kafka.py stop >/dev/null' EXIT
fi
eval "$($RUN python scripts/local_kafka.py env --export)"
export K2_SOURCE=kafka K2_KAFKA_TAIL=false
echo "== broker at $K2_KAFKA_BOOTSTRAP; publishing $messages synthetic messages"
$RUN k2 produce --synthetic "$messages"
echo "== ingesting into $K2_DATA_DIR (Bytewax recovery on)"
scripts/ingest.sh
echo "== what landed"
$RUN k2 summary
echo "== reconciliation (rows + dead letters + duplicates = messages, per partition)"
$RUN k2 reconcile
