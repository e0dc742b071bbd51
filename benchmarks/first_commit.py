"""Restart -> first commit: how soon a restarted flow commits once it can read (issue 12, point 2).

On a real broker, a backlog of synthetic trades and quotes (4 partitions each) waits in Kafka. The production flow
command (`k2.flow.recovery.flow_command`: Bytewax recovery on, default settings, `K2_KAFKA_TAIL=false`) runs once from a
clean data directory (no recovery state, no tables), then is restarted `--restarts` times on the same directory,
each run killed with SIGKILL 1-2 s after its first commit, like a crash. Each run is timed from just before its
Popen (t0) against its own spans in `K2_TRACE_FILE` (k2.ops.tracing: one JSON line per finished span, with its pid):

- start -> first read: the start of the first `read` span (the source has its consumer and a batch);
- start -> first commit: the end of the first successful `commit` or `recovery` span, of any table (a `recovery`
  span is the restart committing what its recovery state held; both kinds are also reported separately);
- whether the committed position moved: the sum of the trades and quotes tables' seams (k2.storage.seams), before
  the run against after the kill.

Same-run baselines, measured just before each run: the bare interpreter (`python -c pass`) and the flow's imports
(`python -c "import flows.ingest"`), so the figures read relative to this machine's speed. The backlog is topped up
from the same feed before a run once fewer than half of `--messages` are left to commit.

    uv run python benchmarks/first_commit.py                             # 1,000,000 messages, 10 restarts
    uv run python benchmarks/first_commit.py --messages 20000 --restarts 3   # quick check
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
Target: process start -> first commit <= 3 s (p95 over the restarts).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError  # noqa: E402

from benchmarks.common import REPORTS, percentile, recorded, save_report, scratch, timed  # noqa: E402
from benchmarks.kafka_flow import PARTITIONS, flow_command, make_topics  # noqa: E402
from benchmarks.kafka_flow import flow_env as kafka_flow_env  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from k2.kafka.producer import publish  # noqa: E402
from k2.loaders.synthetic import FeedConfig, SyntheticFeed  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402
from k2.storage.catalog import QUOTES, TRADES, open_catalog  # noqa: E402
from k2.storage.seams import committed_offsets, lowest  # noqa: E402

REPORT = REPORTS / "first_commit.json"
TARGET_S = 3.0
COMMITS = ("commit", "recovery")
FLOW_KEYS = {f"K2_{name}" for name in ("SOURCE", "KAFKA_BOOTSTRAP", "TRADES_TOPIC", "QUOTES_TOPIC", "DLQ_TOPIC",
                                       "KAFKA_TAIL", "DATA_DIR")}  # fmt: skip


def flow_env(bootstrap: str, topic: str, data_dir: Path) -> dict[str, str]:
    """The flow's environment as the Kafka benchmarks build it (broker, topics, data directory), bounded,
    with no metrics server and the trace file; every other setting at its default (no K2_* variable of the
    caller's, nor kafka_ingest's K2_EPOCH_SECONDS, reaches the flow)."""
    env = kafka_flow_env(bootstrap, topic, data_dir, tail=False)
    env = {k: v for k, v in env.items() if not k.startswith("K2_") or k in FLOW_KEYS}
    return {**env, "K2_METRICS_PORT": "0", "K2_TRACE_FILE": str(data_dir.parent / "trace.jsonl")}


def seams(data_dir: Path) -> dict[str, dict[str, int]]:
    """The trades and quotes tables' seams (none before a flow created them: this process only reads)."""
    settings = load_settings({}, data_dir=str(data_dir))
    catalog = open_catalog(settings)
    found = {}
    for name in (TRADES, QUOTES):
        try:
            found[name] = committed_offsets(catalog.load_table((settings.namespace, name)))
        except (NoSuchTableError, NoSuchNamespaceError):
            found[name] = {}
    return found


def position(found: dict[str, dict[str, int]]) -> int:
    """The committed position: the sum of both tables' seams (each holds every partition of both topics)."""
    return sum(sum(seam.values()) for seam in found.values())


def resume_point(found: dict[str, dict[str, int]]) -> int:
    """Messages a restart without recovery state would not read again (the lowest seam per partition)."""
    return sum(lowest(found.values()).values())


def python_seconds(code: str, env: dict[str, str]) -> float:
    """How long `python -c <code>` takes from start to exit: this machine's speed, measured beside each run."""
    command = [sys.executable, "-c", code]
    return timed(subprocess.run, command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)[0]


class Trace:
    """The spans one pid appended to the trace file since `offset` (complete lines only)."""

    def __init__(self, path: Path, pid: int):
        self.path, self.pid = path, pid
        self.offset = path.stat().st_size if path.exists() else 0
        self.spans: list[dict[str, Any]] = []

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.splitlines():
            try:
                span = json.loads(line)
            except ValueError:
                continue
            if span.get("pid") == self.pid:
                self.spans.append(span)

    def first(self, names: tuple[str, ...], field: str) -> dict[str, Any] | None:
        chosen = [s for s in self.spans if s["name"] in names and s.get("status") != "ERROR"]
        return min(chosen, key=lambda s: s[field], default=None)


def one_run(label: str, bootstrap: str, topic: str, data_dir: Path, kill_delay: float, timeout: float) -> dict:
    env = flow_env(bootstrap, topic, data_dir)
    python_s = python_seconds("pass", env)
    import_s = python_seconds("import flows.ingest", env)
    before = seams(data_dir)
    had_state = (data_dir / "recovery").is_dir()
    command = flow_command(data_dir, env)
    log = (data_dir.parent / f"{label}.log").open("wb")
    trace_path = Path(env["K2_TRACE_FILE"])
    t0 = time.time_ns()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    trace = Trace(trace_path, process.pid)
    deadline, kill_at = time.monotonic() + timeout, None
    first_commit = None
    while True:
        trace.poll()
        if first_commit is None and (first_commit := trace.first(COMMITS, "end_ns")) is not None:
            kill_at = time.monotonic() + kill_delay
        exited = process.poll()
        if exited is not None or (kill_at is not None and time.monotonic() >= kill_at):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if exited is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
    ended_ns = time.time_ns()
    log.close()
    time.sleep(0.05)
    trace.poll()  # spans finished just before the kill
    after = seams(data_dir)

    def since_start(span: dict[str, Any] | None, field: str) -> float | None:
        return None if span is None else (span[field] - t0) / 1e9

    read = trace.first(("read",), "start_ns")
    first_commit = trace.first(COMMITS, "end_ns")
    plain, recovered = trace.first(("commit",), "end_ns"), trace.first(("recovery",), "end_ns")
    commit_s, read_s = since_start(first_commit, "end_ns"), since_start(read, "start_ns")
    run = {
        "run": label,
        "recovery_state": had_state,
        "python_start_s": python_s,
        "import_flows_ingest_s": import_s,
        "start_to_first_read_s": read_s,
        "start_to_first_commit_s": commit_s,
        "first_commit_kind": None if first_commit is None else first_commit["name"],
        "first_commit_table": None if first_commit is None else first_commit["attributes"].get("k2.table"),
        "start_to_first_plain_commit_s": since_start(plain, "end_ns"),
        "start_to_first_recovery_commit_s": since_start(recovered, "end_ns"),
        "recovery_commits": sum(s["name"] == "recovery" for s in trace.spans if s.get("status") != "ERROR"),
        "commits": sum(s["name"] == "commit" for s in trace.spans if s.get("status") != "ERROR"),
        "first_read_to_first_commit_s": None if commit_s is None or read_s is None else commit_s - read_s,
        "kill_delay_s": kill_delay,
        "lived_s": (ended_ns - t0) / 1e9,
        "exited_by_itself": exited,  # the exit code when it ended before the kill (the backlog ran out), else None
        "killed": exited is None,
        "position_before": position(before),
        "position_after": position(after),
        "moved": position(after) > position(before),
    }
    if commit_s is None:
        tail = (data_dir.parent / f"{label}.log").read_text(errors="replace")[-3000:]
        print(f"{label}: no commit within {timeout:.0f} s; the flow's log ends with:\n{tail}", file=sys.stderr)
    return run


def summary(values: list[float | None]) -> dict[str, float | int] | None:
    """Of the runs that have the figure, by nearest rank: p95 of 10 runs is the slowest."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "n": len(present),
        "p50_s": percentile(present, 0.50, "nearest"),
        "p95_s": percentile(present, 0.95, "nearest"),
        "max_s": max(present),
    }


def messages(topic: str) -> Iterator[tuple[str, bytes, bytes]]:
    """One endless seeded feed: a top-up continues it (no repeated sequence numbers)."""
    feed = SyntheticFeed(FeedConfig(messages=10**12, symbols=500, quote_ratio=0.5, partitions=PARTITIONS))
    topics = {"trade": topic, "quote": f"{topic}-quotes"}
    return ((topics[kind], key, value) for kind, key, value in feed.messages())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000, help="the backlog (topped up to it)")
    parser.add_argument("--restarts", type=int, default=10, help="runs with recovery state, after the clean one")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take to its first commit")
    parser.add_argument("--seed", type=int, default=12, help="for the kill delays (1-2 s after the first commit)")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    delays = random.Random(args.seed)
    runs: list[dict[str, Any]] = []
    published = 0
    started = time.perf_counter()
    with broker() as bootstrap, scratch("first-commit") as tmp:
        topic = f"bench-first-commit-{uuid.uuid4().hex[:8]}"
        make_topics(bootstrap, topic)
        feed = messages(topic)
        data_dir = tmp / "data"
        for i in range(1 + args.restarts):
            left = published - resume_point(seams(data_dir))
            if left < args.messages // 2:
                seconds, count = timed(publish, bootstrap, itertools.islice(feed, args.messages - left))
                published += count
                print(f"published up to {published:,} messages ({seconds:.1f} s)", flush=True)
            label = "clean" if i == 0 else f"restart-{i}"
            run = one_run(label, bootstrap, topic, data_dir, round(delays.uniform(1.0, 2.0), 3), args.timeout)
            runs.append(run)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}
            print(json.dumps(shown), flush=True)
    restarts = [r for r in runs if r["recovery_state"]]
    clean = next(r for r in runs if not r["recovery_state"])
    first_commits = summary([r["start_to_first_commit_s"] for r in restarts])
    report = {
        "benchmark": "first_commit",
        "recorded": recorded(),
        "parameters": {
            "messages": args.messages,
            "restarts": args.restarts,
            "partitions": PARTITIONS,
            "published": published,
            "settings": "defaults (K2_EPOCH_SECONDS, K2_SNAPSHOT_SECONDS, batch size); K2_KAFKA_TAIL=false, "
            "K2_METRICS_PORT=0, K2_TRACE_FILE set",
            "epoch_seconds": load_settings({}).epoch_seconds,
            "snapshot_seconds": load_settings({}).snapshot_seconds,
            "kill": "SIGKILL 1-2 s (seeded) after the first commit or recovery span ended",
            "seed": args.seed,
        },
        "restarts": {
            "start_to_first_commit": first_commits,
            "start_to_first_read": summary([r["start_to_first_read_s"] for r in restarts]),
            "first_read_to_first_commit": summary([r["first_read_to_first_commit_s"] for r in restarts]),
            "start_to_first_plain_commit": summary([r["start_to_first_plain_commit_s"] for r in restarts]),
            "start_to_first_recovery_commit": summary([r["start_to_first_recovery_commit_s"] for r in restarts]),
            "first_commit_was_recovery": sum(r["first_commit_kind"] == "recovery" for r in restarts),
            "without_commit": sum(r["start_to_first_commit_s"] is None for r in restarts),
            "position_moved_share": sum(r["moved"] for r in restarts) / len(restarts) if restarts else None,
        },
        "clean": clean,
        "position_moved_share": sum(r["moved"] for r in runs) / len(runs),
        "baselines": {  # of the restarts' runs, as their figures are (the clean run carries its own)
            "python_start": summary([r["python_start_s"] for r in restarts]),
            "import_flows_ingest": summary([r["import_flows_ingest_s"] for r in restarts]),
        },
        "target": {
            "start_to_first_commit_p95_s_max": TARGET_S,
            "met": first_commits is not None and first_commits["p95_s"] <= TARGET_S,
        },
        "runs": runs,
        "seconds": time.perf_counter() - started,
    }
    save_report(report, args.out)
    r, b = report["restarts"], report["baselines"]
    if first_commits is not None:
        print(
            f"restarts: start -> first commit p50 {first_commits['p50_s']:.2f} s, p95 {first_commits['p95_s']:.2f} s,"
            f" max {first_commits['max_s']:.2f} s; start -> first read p50 {r['start_to_first_read']['p50_s']:.2f} s;"
            f" position moved in {r['position_moved_share']:.0%} of restarts; clean start -> first commit "
            f"{clean['start_to_first_commit_s'] or float('nan'):.2f} s; baselines p50: python "
            f"{b['python_start']['p50_s']:.2f} s, "
            f"import flows.ingest {b['import_flows_ingest']['p50_s']:.2f} s (target: p95 <= {TARGET_S:g} s)"
        )
    if any(run["start_to_first_commit_s"] is None for run in runs):
        raise SystemExit("a run made no commit within the timeout (see above)")


if __name__ == "__main__":
    main()
