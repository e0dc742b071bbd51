"""How the ingest flow runs with Bytewax recovery on: the recovery store and the `bytewax.run` command line.

`scripts/ingest.sh` runs exactly this command (in bash); benchmarks and the tests that run the flow as a process
build it here, so they measure and test what production runs.

Two intervals, on purpose not one:
- commits: every `K2_EPOCH_SECONDS` (the sink's timed commit), which sets produce -> committed latency;
- recovery snapshots: every `K2_SNAPSHOT_SECONDS` (`bytewax.run -s`). A snapshot carries the rows handed to a
  commit that may not have landed yet, so at one per commit every row goes through pickle and the recovery
  store's SQLite once more: fewer snapshots let the flow read faster from Kafka, close to its rate without
  recovery. A restart replays at most one snapshot interval from Kafka; the seams drop what was committed, so
  exactly-once never depends on either.
  The default stays 1 s: with 10 s the CI soak saw the flow's RSS creep more than with 1 s; not explained yet
  (figures: benchmarks/report.md, "Design measurements: Recovery snapshot interval").
"""

from __future__ import annotations

import sys
from pathlib import Path

from bytewax.recovery import init_db_dir

from k2.ops.config import Settings


def ensure_recovery_store(directory: Path, partitions: int = 1) -> None:
    """Create Bytewax's recovery store (`partitions` SQLite files) unless `directory` already holds one."""
    if directory.is_dir() and any(directory.glob("part-*.sqlite3")):
        return
    directory.mkdir(parents=True, exist_ok=True)
    init_db_dir(directory, partitions)


def flow_command(settings: Settings, recovery: Path, runner: tuple[str, ...] = ("-m", "bytewax.run")) -> list[str]:
    """`python -m bytewax.run flows.ingest` with recovery in `recovery`, a snapshot every `snapshot_seconds` and
    no backup delay (`-b 0`: the store is local, nothing lags behind it). `runner` swaps the module that runs the
    flow (a tracing wrapper in the soak) and keeps the arguments."""
    return [
        sys.executable,
        *runner,
        "flows.ingest",
        "-r",
        str(recovery),
        "-s",
        str(settings.snapshot_seconds),
        "-b",
        "0",
    ]
