"""How the ingest flow runs with Bytewax recovery on: the recovery store and the `bytewax.run` command line.

`scripts/ingest.sh` runs `python -m k2.flow.recovery` (`main`), which execs this command; benchmarks and the tests that
run the flow as a process build it here too, so they measure and test what production runs.

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

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bytewax.recovery import init_db_dir

from k2.ops.config import Settings, load_settings


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


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """`python -m k2.flow.recovery [bytewax.run options]`, what `scripts/ingest.sh` runs: settings from `K2_*`, the
    recovery store in `K2_RECOVERY_DIR` (default `<data dir>/recovery`, `K2_RECOVERY_PARTITIONS` files, default 1)
    made if missing, then this process becomes `flow_command` plus the extra options (e.g. `-w 2`)."""
    settings = load_settings()
    recovery = Path(os.environ.get("K2_RECOVERY_DIR") or settings.data_path / "recovery")
    ensure_recovery_store(recovery, int(os.environ.get("K2_RECOVERY_PARTITIONS") or 1))
    command = [*flow_command(settings, recovery), *(sys.argv[1:] if argv is None else argv)]
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
