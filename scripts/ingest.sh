#!/usr/bin/env bash
# Run the ingest flow with Bytewax recovery on (state in $K2_DATA_DIR/recovery, a snapshot every
# $K2_SNAPSHOT_SECONDS; commits every $K2_EPOCH_SECONDS). The command is k2/recovery.py's, the one tests and
# benchmarks run: `python -m k2.recovery` makes the recovery store if missing, then execs it.
# Extra arguments go to bytewax.run (e.g. -w 2). Settings come from K2_* variables (K2_RECOVERY_DIR,
# K2_RECOVERY_PARTITIONS for the store).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${UV:-uv}" run --frozen python -m k2.recovery "$@"
