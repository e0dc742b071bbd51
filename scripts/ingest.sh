#!/usr/bin/env bash
# Run the ingest flow with Bytewax recovery on (state in $K2_DATA_DIR/recovery, a snapshot every
# $K2_SNAPSHOT_SECONDS; commits every $K2_EPOCH_SECONDS). The command is k2/flow/recovery.py's, the one tests and
# benchmarks run: `python -m k2.flow.recovery` makes the recovery store if missing, then execs it.
# Extra arguments go to bytewax.run (e.g. -w 2). Settings come from K2_* variables (K2_RECOVERY_DIR,
# K2_RECOVERY_PARTITIONS for the store).
set -euo pipefail
cd "$(dirname "$0")/.."
# uv: $UV, else the one on PATH, else where `make` installs it (~/.local/bin is not on a fresh shell's PATH)
exec "${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}" run --frozen python -m k2.flow.recovery "$@"
