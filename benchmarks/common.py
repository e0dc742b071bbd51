"""What every benchmark shares, standard library only: where reports go and scratch directories, free ports, a
process's RSS and CPU time from /proc, percentiles and timing, waiting for a condition, and the record of when and
on which code a run happened (`recorded`, carried by every JSON report) with the writer of those reports.

Helpers that need k2 or a broker live in benchmarks/kafka_flow.py; the report's own code in benchmarks/reporting/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "benchmarks" / "reports"  # where a full-size run writes each benchmark's JSON

# --- paths and runs -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A temporary directory for one benchmark's warehouse, logs or traces, removed on exit."""
    with tempfile.TemporaryDirectory(prefix=f"k2-{name}-") as tmp:
        yield Path(tmp)


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def recorded() -> dict[str, Any]:
    """When and on which code a benchmark ran: every benchmark report carries this as `recorded`, so the generated
    report can say which run each figure came from (the tree is shared: uncommitted changes to the code under test
    are listed, not hidden)."""
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--short", "k2", "flows", "api").splitlines(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15m": [round(x, 2) for x in os.getloadavg()],
    }


def machine() -> dict[str, Any]:
    """The machine as the throughput benchmarks record it beside `recorded`."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def parse_run(parser: argparse.ArgumentParser, size: str, full: int, quick: int, name: str) -> tuple[Any, Path]:
    """The options every throughput benchmark takes (`--<size>`, `--rounds`, `--quick`, `--out`), parsed; and where
    its report goes (benchmarks/reports/<name>.json at full size, a temp file with --quick)."""
    parser.add_argument(f"--{size}", type=int, default=full)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"{quick:,} {size}, one round, report to a temp file")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        setattr(args, size, quick)
        args.rounds = 1
    quick_out = Path(tempfile.gettempdir()) / f"k2-{name}-quick.json"
    return args, args.out or (quick_out if args.quick else REPORTS / f"{name}.json")


def write_report(name: str, figures: dict[str, Any], path: Path, quick: bool) -> None:
    """A throughput benchmark's report: its figures between `recorded` and the machine and command, saved and shown."""
    command = f"uv run python benchmarks/{name}.py" + (" --quick" if quick else "")
    report = {"benchmark": name, "recorded": recorded(), **figures, "machine": machine(), "command": command}
    save_report(report, path)
    print(json.dumps(report, indent=2))


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write a benchmark's JSON report (the generated report reads these files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port free right now (the local broker's helper, one definition for tests and benchmarks)."""
    from scripts.local_kafka import free_ports

    [port] = free_ports(1)
    return port


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a live process in bytes (`k2.ops.memory`'s readers)."""
    from k2.ops.memory import peak_rss_bytes
    from k2.ops.memory import rss_bytes as resident

    return {"VmRSS": resident(pid), "VmHWM": peak_rss_bytes(pid)}


def rss_bytes(pid: int) -> int:
    """A process's resident set in bytes, 0 once it has gone (for sampling a child until it exits)."""
    from k2.ops.memory import rss_bytes as resident

    try:
        return resident(pid)
    except (OSError, ProcessLookupError):
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float, quiet: float = 0.05, window: float = 0.5) -> float:
    """Wait until the process uses under `quiet` CPU seconds in `window` (its warm-up has finished); the wait."""
    started = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - started < timeout:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < quiet:
            break
        before = now
    return time.perf_counter() - started


# --- timing, waiting, percentiles ---------------------------------------------------------------------------


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - started, result


def wait_until(condition: Callable[[], object], timeout: float, pause: float = 0.1) -> bool:
    """Ask `condition` every `pause` seconds until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
    return True


Method = Literal["linear", "nearest", "upper"]


def percentile(values: list[float], q: float, method: Method = "linear") -> float:
    """The q-quantile (0 <= q <= 1) of `values`, nan when there are none. Each benchmark keeps the definition its
    reports were made with:
    - linear: interpolated between the closest ranks (numpy's default; at q=0.5, the median);
    - nearest: the nearest rank, the smallest value with at least q of them at or below it (p95 of 10 is the max);
    - upper: the value at index floor(n * q), the first one above a q share of them."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if method == "nearest":
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    if method == "upper":
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
    position = (len(ordered) - 1) * q
    lo, hi = math.floor(position), math.ceil(position)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


@contextlib.contextmanager
def given_or_owned(variable: str, start: Callable[[], contextlib.AbstractContextManager[Any]], address: str):
    """The service at `$variable` when it is set; else one started here, owned (it dies with this process, even a
    killed one): yields its address (the started service's attribute `address`)."""
    if os.environ.get(variable):
        yield os.environ[variable]
        return
    with start() as running:
        yield getattr(running, address)


def latency_summary(rate: int, messages: int, latencies: list[float]) -> dict[str, Any]:
    """Produce -> committed latencies of a paced run (seconds), as every benchmark reports them."""
    return {
        "rate": rate,
        "messages": messages,
        "committed": len(latencies),
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99, "nearest"),
        "max_s": max(latencies),
    }
