"""Ingest side by side, on one topic of valid JSON trades on one broker: K2's flow and the Iceberg Kafka Connect
sink (commit interval 1 s and its default 5 min) each read it from the start into its own committed Iceberg
table. Per system: msgs/s from process start to the last message committed, the first commit's time, peak RSS,
and the table read back with the same engine (row count, duplicates, lost keys, exact sums); then produce ->
committed latency at a steady rate on a fresh topic for both.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table

from benchmarks.common import latency_summary, scratch, timed
from benchmarks.kafka_flow import make_topics
from benchmarks.kafka_ingest import latency_run, paced_produce, run_flow_to_end
from benchmarks.peers.connect import DEFAULT_COMMIT_INTERVAL_MS, ConnectWorker
from benchmarks.peers.tables import VALID_FEED, Expected, check, k2_table, key_columns, message_key, valid_messages
from k2.kafka.producer import CheckedProducer, make_producer, publish

Log = Callable[[str], None]


def publish_feed(bootstrap: str, messages: int) -> tuple[str, Expected]:
    topic = f"peers-{uuid.uuid4().hex[:8]}"
    make_topics(bootstrap, topic)
    expected = Expected()

    def sent():
        for key, value in valid_messages(messages):
            expected.add(value)
            yield topic, key, value

    publish(bootstrap, sent())
    return topic, expected


def k2_throughput(bootstrap: str, topic: str, expected: Expected) -> dict[str, Any]:
    total = len(expected.keys)
    with scratch("peers-k2") as tmp:
        elapsed, peak, wall_start = run_flow_to_end(bootstrap, topic, tmp)
        table = k2_table(tmp)
        first = min(s.timestamp_ms for s in table.snapshots()) / 1000 - wall_start
        result = check(key_columns(table), expected)
    return {"msgs_per_s": total / elapsed, "seconds": elapsed, "first_commit_s": first, "peak_rss_bytes": peak} | {
        "table": result
    }


def sink_throughput(bootstrap: str, topic: str, expected: Expected, interval_ms: int, log: Log) -> dict[str, Any]:
    """The sink from a fresh table and consumer group until every message is in a committed snapshot."""
    total = len(expected.keys)
    with scratch("peers-sink") as tmp:
        worker = ConnectWorker(bootstrap, topic, tmp, interval_ms)
        worker.prepare()
        wall_start, started = time.time(), time.perf_counter()
        worker.start()
        try:
            if not worker.wait_rows(total, timeout=interval_ms / 1000 + 600, pause=0.2):
                raise SystemExit(f"the sink did not commit {total} rows in time: see {worker.log}")
            elapsed = time.perf_counter() - started
        finally:
            worker.stop()
        table = worker.warehouse.table()
        first = min(s.timestamp_ms for s in table.snapshots()) / 1000 - wall_start
        result = check(key_columns(table), expected)
    log(f"  sink (commit every {interval_ms / 1000:g} s): {total / elapsed:,.0f} msg/s, first commit {first:.1f} s")
    return {
        "commit_interval_ms": interval_ms,
        "msgs_per_s": total / elapsed,
        "seconds": elapsed,
        "first_commit_s": first,
        "peak_rss_bytes": worker.peak_rss,
        "table": result,
    }


def committed_times(table: Table) -> dict[str, float]:
    """trade_id -> commit time (s) of the snapshot that added its row (each snapshot's added data files)."""
    import pyarrow.parquet as pq

    times: dict[str, float] = {}
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                if entry.status != ManifestEntryStatus.ADDED or entry.snapshot_id != snapshot.snapshot_id:
                    continue
                path = entry.data_file.file_path.removeprefix("file://")
                for trade_id in pq.read_table(path, columns=["trade_id"]).column(0).to_pylist():
                    times.setdefault(trade_id, snapshot.timestamp_ms / 1000)
    return times


def sink_latency(bootstrap: str, rate: int, seconds: float) -> dict[str, Any]:
    """As kafka_ingest.latency_run does for K2: a committed warm-up, then `rate` msg/s for `seconds`, each message
    waited for until committed; its latency is its snapshot's commit time minus its produce time."""
    topic = f"peers-latency-{uuid.uuid4().hex[:8]}"
    make_topics(bootstrap, topic)
    warmup = 1_000
    messages = valid_messages(warmup + int(rate * seconds))
    producer = CheckedProducer(make_producer(bootstrap, **{"linger.ms": 1}))
    with scratch("peers-sink-latency") as tmp:
        worker = ConnectWorker(bootstrap, topic, tmp, 1000)
        worker.prepare()
        worker.start()
        try:
            for _ in range(warmup):
                key, value = next(messages)
                producer.produce(topic, value, key)
            producer.flush()
            if not worker.wait_rows(warmup, timeout=300, pause=0.5):
                raise SystemExit(f"the sink's warm-up was not committed: see {worker.log}")
            sent = paced_produce(producer, topic, messages, rate, key_of=lambda msg: message_key(msg.value())[2])
            if not worker.wait_rows(warmup + len(sent), timeout=120, pause=0.5):
                raise SystemExit(f"the sink did not commit every timed message: see {worker.log}")
        finally:
            worker.stop()
        commits = committed_times(worker.warehouse.table())
    latencies = [commits[trade_id] - at for trade_id, at in sent.items() if trade_id in commits]
    return latency_summary(rate, len(sent), latencies)


def measure(bootstrap: str, messages: int, rate: int, rate_seconds: float, default_interval: bool, log: Log) -> dict:
    seconds, (topic, expected) = timed(publish_feed, bootstrap, messages)
    log(f"published {messages:,} valid trades to {topic} in {seconds:.1f} s")
    k2 = k2_throughput(bootstrap, topic, expected)
    log(f"  K2 flow: {k2['msgs_per_s']:,.0f} msg/s, first commit {k2['first_commit_s']:.1f} s")
    sink = sink_throughput(bootstrap, topic, expected, 1000, log)
    sink_default = (
        sink_throughput(bootstrap, topic, expected, DEFAULT_COMMIT_INTERVAL_MS, log)
        if default_interval
        else {"skipped": "CI size: the default 5-minute commit interval alone outlasts the CI budget"}
    )
    log(f"latency at {rate:,} msg/s for {rate_seconds:g} s ...")
    k2_latency = latency_run(bootstrap, rate, rate_seconds, VALID_FEED)
    sink_lat = sink_latency(bootstrap, rate, rate_seconds)
    log(f"  p99 K2 {k2_latency['p99_s']:.2f} s, sink {sink_lat['p99_s']:.2f} s")
    return {
        "messages": messages,
        "expected": expected.summary(),
        "k2": k2,
        "sink_1s": sink,
        "sink_default": sink_default,
        "latency": {"k2": k2_latency, "sink_1s": sink_lat},
    }
