"""The ingest flow under tracemalloc, to find what grows: `python -m tests.soak.traced_flow <dir> <every> <args>`.

Runs `bytewax.run <args>` in this process and dumps a tracemalloc snapshot into <dir> every <every> seconds (the
soak does this when K2_SOAK_TRACEMALLOC is set, and reports the top growth after the warm-up). Python allocations
only: memory that Arrow, librdkafka or SQLite allocate in C does not show here (compare with the RSS series).
"""

from __future__ import annotations

import runpy
import sys
import threading
import time
import tracemalloc
from pathlib import Path

FRAMES = 12  # deep enough to reach K2's own frames from inside pyiceberg, pydantic or msgspec


def dump_every(directory: Path, every: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(directory / f"{time.monotonic() - started:08.1f}.trace"))


def main() -> None:
    directory, every, args = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    directory.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    threading.Thread(target=dump_every, args=(directory, every), daemon=True, name="tracemalloc-dumps").start()
    sys.argv = ["bytewax.run", *args]
    runpy.run_module("bytewax.run", run_name="__main__", alter_sys=True)


def top_growth(directory: Path, since: float, limit: int = 12) -> list[str]:
    """The allocation sites that grew most between the first snapshot at or after `since` (seconds into the flow's
    life) and the last one, as readable lines."""
    dumps = sorted(directory.glob("*.trace"))
    after = [d for d in dumps if float(d.stem) >= since]
    if len(after) < 2:
        return []
    first, last = tracemalloc.Snapshot.load(str(after[0])), tracemalloc.Snapshot.load(str(after[-1]))
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    first, last = first.filter_traces(filters), last.filter_traces(filters)
    lines = [f"between {after[0].stem} s and {after[-1].stem} s of the flow's life:"]
    for stat in last.compare_to(first, "traceback")[:limit]:
        # The most recent call first: "a <- b" reads "a, called from b".
        frames = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in reversed(stat.traceback)]
        lines.append(f"{stat.size_diff / 1024:+,.0f} KiB in {stat.count_diff:+,} blocks at {' <- '.join(frames[:6])}")
    return lines


if __name__ == "__main__":
    main()
