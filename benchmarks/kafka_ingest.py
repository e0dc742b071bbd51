"""Kafka ingest benchmark on a real local broker, all in one run:

(a) a plain confluent-kafka consume loop doing decode + validate only (the baseline),
(b) the full flow (`python -m bytewax.run flows.ingest`, bounded) into a committed Iceberg table, with its peak RSS,
(c) produce -> committed latency at a steady rate with a 1 s epoch: a message counts as committed at the time of the
    first snapshot whose seam passes its offset.

    uv run python benchmarks/kafka_ingest.py                       # 1,000,000 messages, 20k msg/s for 20 s
    uv run python benchmarks/kafka_ingest.py --messages 50000 --rate-seconds 5   # quick check
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from pyiceberg.exceptions import NoSuchTableError  # noqa: E402

from benchmarks.run_info import recorded  # noqa: E402
from k2.batch import RawBatch  # noqa: E402
from k2.catalog import TRADES, ensure_tables, open_catalog  # noqa: E402
from k2.config import load_settings  # noqa: E402
from k2.feed import FeedConfig, SyntheticFeed  # noqa: E402
from k2.kafka import CheckedProducer, ensure_topics, make_producer, partitions_of, publish  # noqa: E402
from k2.recovery import ensure_recovery_store  # noqa: E402
from k2.recovery import flow_command as flow_command_for  # noqa: E402
from k2.steps import tune_process  # noqa: E402
from k2.validate import Rules, validate_batch  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

REPORT = Path(__file__).resolve().parent / "reports" / "kafka_ingest.json"


@contextlib.contextmanager
def broker():
    if os.environ.get("K2_KAFKA_BOOTSTRAP"):
        yield os.environ["K2_KAFKA_BOOTSTRAP"]
        return
    with start_broker() as running:  # owned: it dies with this process, even a killed one
        yield running.bootstrap


def plain_consume_loop(bootstrap: str, topic: str, total: int) -> float:
    """msgs/s of assign + consume + decode + validate, nothing else."""
    rules = Rules.from_settings(load_settings({}))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "k2-bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 16 * 1024 * 1024,
            "queued.min.messages": 100_000,
        }
    )
    consumer.assign([TopicPartition(t, p, 0) for t, p in partitions_of(bootstrap, [topic])])
    seen = 0
    started = time.perf_counter()
    while seen < total:
        messages = consumer.consume(5_000, timeout=1.0)
        by_partition: dict[int, list] = {}
        for message in messages:
            by_partition.setdefault(message.partition(), []).append(message)
        for partition, items in by_partition.items():
            raw = RawBatch(topic, partition, [m.offset() for m in items], [m.value() for m in items])
            validate_batch(raw, "trade", rules)
        seen += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def flow_env(bootstrap: str, topic: str, data_dir: str, tail: bool) -> dict[str, str]:
    return {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": bootstrap,
        "K2_TRADES_TOPIC": topic,
        "K2_QUOTES_TOPIC": f"{topic}-quotes",
        "K2_DLQ_TOPIC": f"{topic}-dlq",
        "K2_KAFKA_TAIL": str(tail).lower(),
        "K2_DATA_DIR": data_dir,
        "K2_EPOCH_SECONDS": os.environ.get("K2_EPOCH_SECONDS", "1.0"),
    }


def flow_command(data_dir: str, env: dict[str, str]) -> list[str]:
    """The flow as `scripts/ingest.sh` runs it in production: Bytewax recovery on, snapshots every
    K2_SNAPSHOT_SECONDS (the sink's pending rows are serialised into the recovery store each time)."""
    recovery = Path(data_dir) / "recovery"
    ensure_recovery_store(recovery)
    return flow_command_for(load_settings(env), recovery)


def flow_run(bootstrap: str, topic: str, total: int) -> tuple[float, int, dict[str, float]]:
    """msgs/s of the whole flow process (start-up included), its peak RSS in bytes (sampled every 50 ms), and
    when its first commit landed with the rate from then on (to tell start-up from steady state)."""
    with tempfile.TemporaryDirectory(prefix="k2-bench-") as tmp:
        wall_start, started = time.time(), time.perf_counter()
        env = flow_env(bootstrap, topic, tmp, tail=False)
        process = subprocess.Popen(flow_command(tmp, env), cwd=ROOT, env=env)
        peak = 0
        while process.poll() is None:
            peak = max(peak, rss_bytes(process.pid))
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            raise SystemExit(f"flow failed with exit code {process.returncode}")
        settings = load_settings({}, data_dir=tmp)
        table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
        snapshots = [s for s in table.snapshots() if s.summary and "k2.messages" in s.summary.additional_properties]
    first = snapshots[0]
    first_at = first.timestamp_ms / 1000 - wall_start
    after_first = total - sum(json.loads(first.summary.additional_properties["k2.messages"]).values())
    steady = {
        "first_commit_s": first_at,
        "msgs_per_s_after_first_commit": after_first / max(elapsed - first_at, 1e-9),
    }
    return total / elapsed, peak, steady


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def trade_seams(data_dir: str) -> list[tuple[float, dict[str, int]]]:
    """(commit time in s, seam) of every snapshot of the trades table a flow writes under `data_dir` (none before
    the flow has created it: this process only reads, so it never races the flow to create the tables)."""
    settings = load_settings({}, data_dir=data_dir)
    try:
        table = open_catalog(settings).load_table((settings.namespace, TRADES))
    except NoSuchTableError:
        return []
    return [
        (s.timestamp_ms / 1000, json.loads(s.summary.additional_properties.get("k2.kafka.offsets", "{}")))
        for s in table.snapshots()
    ]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"latency run: {what} not within {timeout:.0f} s")
        time.sleep(0.5)


def latency_run(bootstrap: str, rate: int, seconds: float) -> dict[str, float]:
    """Steady state: a warm-up batch is produced and committed before the timed messages (the flow's start-up is
    not commit latency: it took 4 s on a quiet machine and 47 s on a loaded one), and every timed message is waited
    for until committed (a fixed wait left the slowest out of the percentiles)."""
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic, f"{topic}-quotes", f"{topic}-dlq"], partitions=4)
    with tempfile.TemporaryDirectory(prefix="k2-latency-") as tmp:
        env = flow_env(bootstrap, topic, tmp, tail=True)
        flow = subprocess.Popen(flow_command(tmp, env), cwd=ROOT, env=env)
        sent: dict[tuple[int, int], float] = {}
        producer = CheckedProducer(make_producer(bootstrap, **{"linger.ms": 1}))
        lock = threading.Lock()

        def delivered(produced_at: float, err, msg) -> None:
            if err is None:
                with lock:
                    sent[(msg.partition(), msg.offset())] = produced_at

        warmup = 1_000
        feed = SyntheticFeed(FeedConfig(messages=warmup + int(rate * seconds), quote_ratio=0.0, symbols=200))
        messages = feed.messages()
        for _, key, value in itertools.islice(messages, warmup):
            producer.produce(topic, value, key)
        producer.flush()
        try:
            wait_for(lambda: any(seam for _, seam in trade_seams(tmp)), 300, "the warm-up committed")
            started = time.time()
            for i, (_, key, value) in enumerate(messages):
                due = started + i / rate
                if (wait := due - time.time()) > 0:
                    time.sleep(wait)
                producer.producer.produce(topic, value, key, on_delivery=functools.partial(delivered, time.time()))
                producer.producer.poll(0)
            producer.flush()
            ends: dict[str, int] = {}
            for partition, offset in sent:
                ends[f"{topic}/{partition}"] = max(ends.get(f"{topic}/{partition}", 0), offset + 1)

            def all_committed() -> bool:
                seams = [seam for _, seam in trade_seams(tmp)]
                return all(max((s.get(key, 0) for s in seams), default=0) >= end for key, end in ends.items())

            wait_for(all_committed, 120, "every timed message committed")
        finally:
            flow.terminate()
            flow.wait(timeout=30)
        commits = trade_seams(tmp)
    latencies = []
    for (partition, offset), at in sent.items():
        key = f"{topic}/{partition}"
        committed = next((ts for ts, seam in commits if seam.get(key, 0) > offset), None)
        if committed is not None:
            latencies.append(committed - at)
    latencies.sort()
    return {
        "rate": rate,
        "messages": len(sent),
        "committed": len(latencies),
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[int(len(latencies) * 0.99) - 1],
        "max_s": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    tune_process()
    with broker() as bootstrap:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        ensure_topics(bootstrap, [topic, f"{topic}-quotes", f"{topic}-dlq"], partitions=4)
        feed = SyntheticFeed(FeedConfig(messages=args.messages, quote_ratio=0.0, symbols=500))
        t = time.perf_counter()
        total = publish(bootstrap, ((topic, key, value) for _, key, value in feed.messages()))
        print(f"published {total:,} messages in {time.perf_counter() - t:.1f}s", flush=True)
        plain = plain_consume_loop(bootstrap, topic, total)
        print(f"(a) plain consume + decode + validate: {plain:,.0f} msg/s", flush=True)
        flow, rss, steady = flow_run(bootstrap, topic, total)
        print(
            f"(b) full flow into Iceberg: {flow:,.0f} msg/s, peak RSS {rss / 2**20:,.0f} MiB; first commit after "
            f"{steady['first_commit_s']:.1f}s, {steady['msgs_per_s_after_first_commit']:,.0f} msg/s from then on",
            flush=True,
        )
        latency = latency_run(bootstrap, args.rate, args.rate_seconds)
        print(
            f"(c) produce -> committed at {args.rate:,} msg/s: p50 {latency['p50_s']:.3f}s, "
            f"p99 {latency['p99_s']:.3f}s ({latency['committed']:,}/{latency['messages']:,} committed)"
        )
    result = {
        "benchmark": "kafka_ingest",
        "recorded": recorded(),
        "messages": total,
        "flow_recovery": "on: -r, -s K2_SNAPSHOT_SECONDS, -b 0 (as scripts/ingest.sh runs it)",
        "plain_msgs_per_s": plain,
        "flow_msgs_per_s": flow,
        "ratio": flow / plain,
        "flow_peak_rss_bytes": rss,
        "flow_first_commit_s": steady["first_commit_s"],  # process start (imports, catalog, consumers) + a commit
        "flow_msgs_per_s_after_first_commit": steady["msgs_per_s_after_first_commit"],
        "latency": latency,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ratio {flow / plain:.2f} (targets: flow >= 150,000 msg/s and >= 0.5x; RSS <= 400 MB; p99 <= 2 s)")


if __name__ == "__main__":
    main()
