#!/usr/bin/env bash
# Run the ingest flow with Bytewax recovery on (state in $K2_DATA_DIR/recovery, a snapshot every
# $K2_SNAPSHOT_SECONDS; commits every $K2_EPOCH_SECONDS): the command k2/flow/recovery.py builds for tests and benchmarks.
# Extra arguments go to bytewax.run (e.g. -w 2). Settings come from K2_* variables.
set -euo pipefail
cd "$(dirname "$0")/.."
# uv: $UV, else the one on PATH, else where `make` installs it (~/.local/bin is not on a fresh shell's PATH)
RUN="${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")} run --frozen"
data_dir="${K2_DATA_DIR:-$PWD/.k2}"
recovery="${K2_RECOVERY_DIR:-$data_dir/recovery}"
partitions="${K2_RECOVERY_PARTITIONS:-1}"
if [ ! -d "$recovery" ]; then
  mkdir -p "$recovery"
  $RUN python -m bytewax.recovery "$recovery" "$partitions"
fi
exec $RUN python -m bytewax.run flows.ingest -r "$recovery" -s "${K2_SNAPSHOT_SECONDS:-1}" -b 0 "$@"
