"""Exactly once under crashes, the same kind of run for both systems: while a producer publishes valid trades at a
steady rate, the system is SIGKILLed `kills` times, each time only after evidence from its own table that this
incarnation committed (it read and landed messages), a random 0-1 s later (mid-work: more messages are arriving
and being written), then restarted; once the producer stops, the last incarnation runs until every sent message is
in the table. Both tables are then read with the same engine and checked by the natural key against the
producer's delivery reports: duplicated and lost rows, exact sums.

K2 runs as scripts/ingest.sh runs it (Bytewax recovery on); the sink as Connect standalone, restarted on its own
table, consumer groups and control topic.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, scratch, wait_until
from benchmarks.kafka_flow import flow_command, flow_env, make_topics, trade_seams
from benchmarks.peers.connect import ConnectWorker
from benchmarks.peers.tables import Expected, check, k2_table, key_columns, valid_messages
from k2.kafka.producer import CheckedProducer, make_producer

Log = Callable[[str], None]


class SteadyFeed(threading.Thread):
    """Publishes valid trades at `rate` msg/s until stopped; `expected` holds every message confirmed."""

    def __init__(self, bootstrap: str, topic: str, rate: int, seed: int):
        super().__init__(daemon=True)
        self.producer = CheckedProducer(make_producer(bootstrap, **{"linger.ms": 5}))
        self.topic, self.rate, self.seed = topic, rate, seed
        self.stopping = threading.Event()
        self.expected = Expected()
        self.values: list[bytes] = []

    def run(self) -> None:
        started = time.time()
        for i, (key, value) in enumerate(valid_messages(10**9, self.seed)):
            if self.stopping.is_set():
                break
            if (wait := started + i / self.rate - time.time()) > 0:
                time.sleep(wait)
            self.producer.produce(self.topic, value, key)
            self.values.append(value)
            self.producer.producer.poll(0)
        self.producer.flush()  # raises unless every message was confirmed
        for value in self.values:
            self.expected.add(value)

    def stop(self) -> Expected:
        self.stopping.set()
        self.join()
        return self.expected


class K2Process:
    """K2's flow with recovery, on the crash topic, tailing it."""

    def __init__(self, bootstrap: str, topic: str, root: Path):
        self.env = flow_env(bootstrap, topic, root, tail=True)
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            flow_command(self.root, self.env), cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL
        )

    def committed(self) -> int:
        """Messages below the newest seam: grows with every commit."""
        seams = trade_seams(self.root)
        return sum(seams[-1][1].values()) if seams else 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)

    def rows(self):
        return key_columns(k2_table(self.root))


class SinkProcess:
    """The Connect worker with the Iceberg sink (1 s commits) on the crash topic."""

    def __init__(self, bootstrap: str, topic: str, root: Path):
        self.worker = ConnectWorker(bootstrap, topic, root, 1000)
        self.worker.prepare()

    def start(self) -> None:
        self.worker.start()

    def committed(self) -> int:
        """Rows in the newest snapshot: grows with every commit."""
        if self.worker.warehouse.metadata_location() is None:
            return 0
        return self.worker.warehouse.committed_rows()

    def kill(self) -> None:
        self.worker.kill()

    def stop(self) -> None:
        self.worker.stop()

    def rows(self):
        return key_columns(self.worker.warehouse.table())


def crash_run(system, feed: SteadyFeed, kills: int, rng: random.Random, log: Log, name: str) -> dict[str, Any]:
    evidence = []
    feed.start()
    for number in range(1, kills + 1):
        before = system.committed()
        started = time.monotonic()
        system.start()
        if not wait_until(lambda before=before: system.committed() > before, 300, pause=0.2):
            raise SystemExit(f"{name}: no commit within 300 s of start {number}")
        time.sleep(rng.uniform(0.0, 1.0))
        at_kill = system.committed()
        system.kill()
        evidence.append(
            {"kill": number, "committed_at_start": before, "committed_at_kill": at_kill,
             "seconds_after_start": round(time.monotonic() - started, 2)}
        )  # fmt: skip
        log(f"  {name}: SIGKILL {number} after its commit moved {before:,} -> {at_kill:,}")
    expected = feed.stop()
    total = len(expected.keys)
    system.start()
    try:
        done = wait_until(lambda: system.committed() >= total, 300, pause=0.5)
        time.sleep(3.0)  # a late duplicate commit would land now
    finally:
        system.stop()
    result = check(system.rows(), expected)
    log(f"  {name}: {total:,} sent, {result['rows']:,} rows, {result['duplicates']} duplicated, {result['lost']} lost")
    return {"sent": total, "kills": evidence, "finished": done} | result


def measure(bootstrap: str, kills: int, rate: int, seed: int, log: Log) -> dict[str, Any]:
    """The crash run for K2 and for the sink, each on its own topic fed the same way."""
    rng = random.Random(seed)
    results = {}
    for name, make in (("k2", K2Process), ("sink_1s", SinkProcess)):
        topic = f"peers-crash-{uuid.uuid4().hex[:8]}"
        make_topics(bootstrap, topic)
        with scratch(f"peers-crash-{name}") as tmp:
            feed = SteadyFeed(bootstrap, topic, rate, seed)
            results[name] = crash_run(make(bootstrap, topic, tmp), feed, kills, rng, log, name)
    return results
