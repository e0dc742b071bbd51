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

Before every start the store drops the snapshots a crashed run stored for epochs it never finished
(`discard_unfinished_epochs`): Bytewax 0.21 resumes from before the first unfinished epoch but keeps those rows, and
the next run, re-running the epoch, overwrites only the keys it touches in it. A key it leaves alone then resumes,
one start later, from the crashed run's state, which belongs to other messages than the ones its source resumes
from: the kill test lost the gap events of a partition that one run had read and the next had not.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from bytewax.recovery import init_db_dir

from k2.ops.config import Settings, load_settings

log = logging.getLogger(__name__)


def ensure_recovery_store(directory: Path, partitions: int = 1) -> None:
    """Create Bytewax's recovery store (`partitions` SQLite files) unless `directory` already holds one; an existing
    one loses the snapshots of epochs no run finished (`discard_unfinished_epochs`)."""
    if directory.is_dir() and any(directory.glob("part-*.sqlite3")):
        if dropped := discard_unfinished_epochs(directory):
            log.warning("the last run stopped mid-epoch: %d snapshots of its unfinished epochs dropped", dropped)
        return
    directory.mkdir(parents=True, exist_ok=True)
    init_db_dir(directory, partitions)


def discard_unfinished_epochs(directory: Path) -> int:
    """Delete the snapshots stored for the epoch the next run resumes at and later ones; the number deleted.

    Only a run that stopped before finishing those epochs stored them, and the next run loads none of them (it
    resumes from the last snapshot of each key before that epoch). The resume epoch is computed as Bytewax does
    (`resume_from` in its `src/recovery.rs`): the progress of the newest execution, each of its workers at the
    later of its resume epoch and its last recorded frontier, the earliest worker."""
    parts = sorted(directory.glob("part-*.sqlite3"))
    executions: list[tuple[int, int, int]] = []
    frontiers: list[tuple[int, int, int]] = []
    for part in parts:
        with sqlite3.connect(part) as db:
            executions += db.execute("SELECT ex_num, worker_count, resume_epoch FROM exs").fetchall()
            frontiers += db.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts").fetchall()
    if not executions:
        return 0  # nothing ran yet
    ex_num, workers, resume_epoch = max(executions)
    progress = dict.fromkeys(range(workers), resume_epoch)
    for ex, worker, frontier in frontiers:
        if ex == ex_num and worker in progress:
            progress[worker] = max(progress[worker], frontier)
    resume = min(progress.values())
    deleted = 0
    for part in parts:
        with sqlite3.connect(part) as db:
            deleted += db.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (resume,)).rowcount
    return deleted


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
