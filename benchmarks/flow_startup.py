"""Flow start-up: process start -> the flow's first commit, as `benchmarks/kafka_ingest.py` runs the flow.

A backlog of synthetic trades on 4 partitions (the quotes topic empty, as in kafka_ingest) is read by the production
flow command (`benchmarks.kafka_flow.flow_command`: recovery on, bounded, K2_EPOCH_SECONDS 1) `--runs` times, each
from a clean data directory. Each run is timed from just before its Popen against the flow's own records: its log
lines ("serving metrics": the imports are done; the first "reading <topic>/<partition>": the first reader is
built) and the first trades snapshot's commit time in Iceberg (as `kafka_ingest.flow_run` reads it), then its exit.
Medians per checkout; `--trees` runs other checkouts of the repository (e.g. a `git worktree` at an older commit)
with this environment, one run of each in turn, so they share the machine's load.

    uv run python benchmarks/flow_startup.py                                  # 50,000 trades, 7 runs
    uv run python benchmarks/flow_startup.py --trees /tmp/base,.              # before/after, alternating
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import scratch  # noqa: E402
from benchmarks.kafka_flow import flow_command, flow_env, make_topics, trade_seams  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from k2.kafka.producer import publish  # noqa: E402
from k2.loaders.synthetic import FeedConfig, SyntheticFeed  # noqa: E402

MILESTONES = {"serving metrics": "imports_s", "reading ": "first_reader_s"}  # log message prefix -> figure


def milestones(log: bytes, started: float) -> dict[str, float]:
    """Seconds from `started` to the first log line of each milestone (JSON log lines; others are skipped)."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        try:
            record = json.loads(line)
            message, at = record["message"], datetime.fromisoformat(record["time"]).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        for prefix, figure in MILESTONES.items():
            if message.startswith(prefix):
                found.setdefault(figure, at - started)
    return found


def one_run(tree: Path, bootstrap: str, topic: str) -> dict[str, float]:
    with scratch("flow-startup") as data_dir:
        env = flow_env(bootstrap, topic, data_dir, tail=False)
        command = flow_command(data_dir, env)
        started = time.time()
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, check=False)
        exited = time.time() - started
        if done.returncode != 0:
            raise SystemExit(f"flow failed ({done.returncode}):\n{done.stderr.decode(errors='replace')[-3000:]}")
        first_commit = next(at for at, seam in trade_seams(data_dir) if seam)
        found = milestones(done.stdout + done.stderr, started)
        return {**found, "first_commit_s": first_commit - started, "exit_s": exited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--trees", default=str(ROOT), help="checkouts to run, comma-separated (default: this one)")
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    with broker() as bootstrap:
        topic = f"startup-{uuid.uuid4().hex[:8]}"
        make_topics(bootstrap, topic)
        feed = SyntheticFeed(FeedConfig(messages=args.messages, quote_ratio=0.0, symbols=500))
        publish(bootstrap, ((topic, key, value) for _, key, value in feed.messages()))
        runs: dict[Path, list[dict[str, float]]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for tree in trees:
                runs[tree].append(one_run(tree, bootstrap, topic))
                print(tree, {k: round(v, 3) for k, v in runs[tree][-1].items()}, flush=True)
    for tree, results in runs.items():
        medians = {key: round(statistics.median(r[key] for r in results if key in r), 3) for key in results[0]}
        print(f"median of {len(results)} runs, {tree}: {medians}")


if __name__ == "__main__":
    main()
