"""Kafka ingest benchmark on a real local broker, all in one run, on one topic:

(k) kcat (librdkafka's C consumer, Debian's `kcat`; `make system-deps`) reading every partition to /dev/null: the
    client's own limit, the baseline the flow's rate is a ratio to;
(r) the Python confluent-kafka loop that only consumes (`consume(5000)`, touching each value);
(a) a plain confluent-kafka consume loop doing decode + validate only,
(b) the full flow (`python -m bytewax.run flows.ingest`, bounded) into a committed Iceberg table, with its peak RSS,
(c) produce -> committed latency at a steady rate with a 1 s epoch: a message counts as committed at the time of the
    first snapshot whose seam passes its offset.

(k) and (b) run in pairs, kcat then the flow, so both see the same machine: first `--warmup` pairs that do not count
(the broker, a JVM, serves the flow's many small fetches slower until its hot paths are compiled, over several runs:
benchmarks/report.md, "Design measurements: Flow thread and committer"), then `--runs` measured pairs. The report
gives each one's median run (the flow's peak RSS: the highest of its runs) and keeps every run, warm-up included.

    uv run python benchmarks/kafka_ingest.py                       # 1,000,000 messages, 100k msg/s for 10 s
    uv run python benchmarks/kafka_ingest.py --messages 50000 --rate-seconds 5   # quick check
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from benchmarks.common import (  # noqa: E402
    REPORTS,
    given_or_owned,
    latency_summary,
    recorded,
    rss_bytes,
    save_report,
    scratch,
    timed,
    wait_until,
)
from benchmarks.kafka_flow import committed_at, flow_command, flow_env, make_topics, trade_seams  # noqa: E402
from k2.flow.steps import tune_process  # noqa: E402
from k2.ingest.validate import Rules, validate_batch  # noqa: E402
from k2.kafka.admin import partitions_of  # noqa: E402
from k2.kafka.producer import CheckedProducer, make_producer, publish  # noqa: E402
from k2.loaders.synthetic import FeedConfig, SyntheticFeed  # noqa: E402
from k2.model.batch import RawBatch  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402
from k2.storage.catalog import TRADES, ensure_tables, open_catalog  # noqa: E402
from scripts.local_kafka import start_broker  # noqa: E402

REPORT = REPORTS / "kafka_ingest.json"


def broker() -> contextlib.AbstractContextManager[str]:
    return given_or_owned("K2_KAFKA_BOOTSTRAP", start_broker, "bootstrap")


def kcat_rate(bootstrap: str, topic: str, total: int) -> float | None:
    """msgs/s of kcat consuming every partition from the beginning to its end, values to /dev/null (process start
    included: a fraction of a second). None when kcat is not installed (outside CI: `make system-deps`)."""
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        if os.environ.get("CI"):
            raise SystemExit("kcat is missing: `make system-deps` installs it")
        print("kcat not installed: no C-client baseline (make system-deps)", flush=True)
        return None
    command = [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\\n"]
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, timeout=600)
    return total / (time.perf_counter() - started)


def consume_only_loop(bootstrap: str, topic: str, total: int) -> float:
    """msgs/s of the Python client alone: assign + consume(5000), touching each value, nothing else."""
    consumer = _consumer(bootstrap, topic)
    seen = 0
    size = 0
    started = time.perf_counter()
    while seen < total:
        messages = consumer.consume(5_000, timeout=1.0)
        for message in messages:
            size += len(message.value())
        seen += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def _consumer(bootstrap: str, topic: str) -> Consumer:
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
    return consumer


def plain_consume_loop(bootstrap: str, topic: str, total: int) -> float:
    """msgs/s of assign + consume + decode + validate, nothing else."""
    rules = Rules.from_settings(load_settings({}))
    consumer = _consumer(bootstrap, topic)
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


def run_flow_to_end(bootstrap: str, topic: str, data_dir: Path) -> tuple[float, int, float]:
    """Run the bounded flow over `topic` into `data_dir`: (seconds from start to exit, peak RSS in bytes sampled
    every 50 ms, wall-clock start)."""
    wall_start, started = time.time(), time.perf_counter()
    env = flow_env(bootstrap, topic, data_dir, tail=False)
    process = subprocess.Popen(flow_command(data_dir, env), cwd=ROOT, env=env)
    peak = 0
    while process.poll() is None:
        peak = max(peak, rss_bytes(process.pid))
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"flow failed with exit code {process.returncode}")
    return time.perf_counter() - started, peak, wall_start


def flow_run(bootstrap: str, topic: str, total: int) -> tuple[float, int, dict[str, float]]:
    """msgs/s of the whole flow process (start-up included), its peak RSS in bytes (sampled every 50 ms), and
    when its first commit landed with the rate from then on (to tell start-up from steady state)."""
    with scratch("bench") as tmp:
        elapsed, peak, wall_start = run_flow_to_end(bootstrap, topic, tmp)
        settings = load_settings({}, data_dir=str(tmp))
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


def paced_produce(
    producer: CheckedProducer,
    topic: str,
    messages: Iterable[tuple[bytes, bytes]],
    rate: float,
    key_of: Callable[[Any], Any] = lambda msg: (msg.partition(), msg.offset()),
) -> dict[Any, float]:
    """Produce (key, value) messages at `rate` msg/s; {key_of(delivered message): when it was produced}, for every
    message confirmed (the default key is its (partition, offset))."""
    sent: dict[Any, float] = {}
    lock = threading.Lock()

    def delivered(produced_at: float, err, msg) -> None:
        if err is None:
            with lock:
                sent[key_of(msg)] = produced_at

    started = time.time()
    for i, (key, value) in enumerate(messages):
        due = started + i / rate
        if (wait := due - time.time()) > 0:
            time.sleep(wait)
        producer.producer.produce(topic, value, key, on_delivery=functools.partial(delivered, time.time()))
        producer.producer.poll(0)
    producer.flush()
    return sent


def wait_for(condition, timeout: float, what: str) -> None:
    if not wait_until(condition, timeout, pause=0.5):
        raise SystemExit(f"latency run: {what} not within {timeout:.0f} s")


def latency_run(bootstrap: str, rate: int, seconds: float, config: FeedConfig | None = None) -> dict[str, float]:
    """Produce -> committed latency of the flow at `rate` (the feed: `config`, default synthetic trades).
    Steady state: a warm-up batch is produced and committed before the timed messages (the flow's start-up is
    not commit latency: it took 4 s on a quiet machine and 47 s on a loaded one), and every timed message is waited
    for until committed (a fixed wait left the slowest out of the percentiles)."""
    topic = f"bench-latency-{uuid.uuid4().hex[:8]}"
    make_topics(bootstrap, topic)
    with scratch("latency") as tmp:
        env = flow_env(bootstrap, topic, tmp, tail=True)
        flow = subprocess.Popen(flow_command(tmp, env), cwd=ROOT, env=env)
        producer = CheckedProducer(make_producer(bootstrap, **{"linger.ms": 1}))
        warmup = 1_000
        config = config or FeedConfig(quote_ratio=0.0, symbols=200)
        feed = SyntheticFeed(dataclasses.replace(config, messages=warmup + int(rate * seconds)))
        messages = feed.messages()
        for _, key, value in itertools.islice(messages, warmup):
            producer.produce(topic, value, key)
        producer.flush()
        try:
            wait_for(lambda: any(seam for _, seam in trade_seams(tmp)), 300, "the warm-up committed")
            sent = paced_produce(producer, topic, ((key, value) for _, key, value in messages), rate)
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
        committed = committed_at(commits, topic, partition, offset)
        if committed is not None:
            latencies.append(committed - at)
    return latency_summary(rate, len(sent), latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3, help="measured kcat + flow pairs (the median is reported)")
    parser.add_argument("--warmup", type=int, default=3, help="kcat + flow pairs run first, not counted")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    tune_process()
    with broker() as bootstrap:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        make_topics(bootstrap, topic)
        feed = SyntheticFeed(FeedConfig(messages=args.messages, quote_ratio=0.0, symbols=500))
        seconds, total = timed(publish, bootstrap, ((topic, key, value) for _, key, value in feed.messages()))
        print(f"published {total:,} messages in {seconds:.1f}s", flush=True)
        consume_only = consume_only_loop(bootstrap, topic, total)
        print(f"(r) Python consume only: {consume_only:,.0f} msg/s", flush=True)
        plain = plain_consume_loop(bootstrap, topic, total)
        print(f"(a) plain consume + decode + validate: {plain:,.0f} msg/s", flush=True)
        kcat_runs: list[float | None] = []
        flow_runs: list[dict[str, float]] = []
        warmup_runs: list[dict[str, float | None]] = []
        for run in range(args.warmup + args.runs):
            measured = run >= args.warmup
            label = f"run {run - args.warmup + 1}" if measured else "warm-up"
            kcat = kcat_rate(bootstrap, topic, total)
            if kcat is not None:
                print(f"(k) kcat to /dev/null, {label}: {kcat:,.0f} msg/s", flush=True)
            flow, rss, steady = flow_run(bootstrap, topic, total)
            print(
                f"(b) full flow into Iceberg, {label}: {flow:,.0f} msg/s, peak RSS {rss / 2**20:,.0f} MiB; first "
                f"commit after {steady['first_commit_s']:.1f}s, {steady['msgs_per_s_after_first_commit']:,.0f} "
                "msg/s from then on",
                flush=True,
            )
            if measured:
                kcat_runs.append(kcat)
                flow_runs.append({"msgs_per_s": flow, "peak_rss_bytes": rss, **steady})
            else:
                warmup_runs.append({"kcat_msgs_per_s": kcat, "msgs_per_s": flow, "peak_rss_bytes": rss})
        kcat = None if None in kcat_runs else statistics.median(kcat_runs)  # type: ignore[type-var]
        median_run = sorted(flow_runs, key=lambda r: r["msgs_per_s"])[len(flow_runs) // 2]
        flow, steady = median_run["msgs_per_s"], median_run
        rss = max(r["peak_rss_bytes"] for r in flow_runs)
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
        "kcat_msgs_per_s": kcat,
        "consume_only_msgs_per_s": consume_only,
        "plain_msgs_per_s": plain,
        "flow_msgs_per_s": flow,
        "ratio": flow / plain,
        "ratio_to_kcat": None if kcat is None else flow / kcat,
        "flow_peak_rss_bytes": rss,
        "flow_first_commit_s": steady["first_commit_s"],  # process start (imports, catalog, consumers) + a commit
        "flow_msgs_per_s_after_first_commit": steady["msgs_per_s_after_first_commit"],
        "warmup_runs": warmup_runs,
        "kcat_runs_msgs_per_s": kcat_runs,
        "flow_runs": flow_runs,
        "latency": latency,
    }
    save_report(result, args.out)
    to_kcat = "no kcat" if kcat is None else f"{flow / kcat:.2f}x kcat"
    print(
        f"flow {to_kcat}, {flow / plain:.2f}x the plain loop (targets: >= 0.4x kcat; RSS <= 400 MiB; "
        f"p99 <= 1.5 s at 100,000 msg/s; this run: {args.rate:,} msg/s)"
    )


if __name__ == "__main__":
    main()
