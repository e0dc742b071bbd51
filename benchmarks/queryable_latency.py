"""Produce -> queryable latency on a real local broker: how long after a producer sends a trade does the query
engine return it?

The flow runs as its own process (`python -m bytewax.run flows.ingest`, following the topic, 1 s epochs) while
this process produces a steady load of synthetic trades and, among them, probe trades of one instrument whose event
time is the wall-clock time they were produced. Two pollers ask the query engine for probes newer than the last one
they saw, as a client of the API would (`ticks_between`, the engine refreshing its snapshot every
`K2_QUERY_REFRESH_SECONDS` as the API does):
- committed: Iceberg only (`realtime=False`),
- realtime: Iceberg + the Kafka tail (`realtime=True`, the API's tail follower in this process).
The same-run baseline is produce -> committed of the same probes: the timestamp of the first snapshot whose seam
passes the probe's offset (what `kafka_ingest.py` reports), so `queryable - committed` is what reading adds.

    uv run python benchmarks/queryable_latency.py                        # 20,000 msg/s for 20 s, 50 probes/s
    uv run python benchmarks/queryable_latency.py --rate 2000 --seconds 5   # quick check
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from benchmarks.common import REPORTS, percentile, recorded, save_report, scratch, wait_until  # noqa: E402
from benchmarks.kafka_flow import committed_at, flow_env, make_topics, snapshot_seams  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from k2.kafka.producer import CheckedProducer, make_producer  # noqa: E402
from k2.loaders.synthetic import FeedConfig, SyntheticFeed  # noqa: E402
from k2.model.schemas import AssetClass, Side, Trade, encode  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402
from k2.query import QueryEngine, Selection, ticks_between  # noqa: E402
from k2.query.hybrid import start_follower  # noqa: E402
from k2.storage.catalog import TRADES  # noqa: E402

REPORT = REPORTS / "queryable_latency.json"
PROBE_EXCHANGE, PROBE_SYMBOL = "XNAS", "ZZPROBE"  # sorts after every synthetic symbol: its own row-group range
PROBE_KEY = f"{PROBE_EXCHANGE}:{PROBE_SYMBOL}".encode()
POLL_PAUSE_S = 0.01


def probe_message(sequence: int, produced_us: int) -> bytes:
    return encode(
        Trade(
            exchange=PROBE_EXCHANGE,
            symbol=PROBE_SYMBOL,
            asset_class=AssetClass.EQUITIES,
            timestamp=produced_us,
            currency="USD",
            trade_id=f"probe-{sequence}",
            price=Decimal("100.00"),
            quantity=Decimal(1),
            side=Side.BUY,
            source_sequence=sequence,
        )
    )


class ProbeProducer:
    """Sends probe trades of one instrument, event time = produce time; keeps where each measured one landed."""

    def __init__(self, producer: CheckedProducer, topic: str):
        self.producer, self.topic = producer, topic
        self.sequence, self.last_us = 0, 0
        self.offsets: dict[int, tuple[int, int]] = {}  # measured probe's produce time (µs) -> (partition, offset)
        self._lock = threading.Lock()

    def send(self, measured: bool) -> None:
        self.sequence += 1
        self.last_us = max(self.last_us + 1, time.time_ns() // 1000)  # strictly increasing: the probe's identity
        on_delivery = functools.partial(self._delivered, self.last_us) if measured else None
        value = probe_message(self.sequence, self.last_us)
        self.producer.producer.produce(self.topic, value, PROBE_KEY, on_delivery=on_delivery)

    def _delivered(self, produced_us: int, err, msg) -> None:
        if err is None:
            with self._lock:
                self.offsets[produced_us] = (msg.partition(), msg.offset())


class ProbePoller(threading.Thread):
    """Asks the engine for probes newer than the newest seen; records when each was first returned."""

    def __init__(self, engine: QueryEngine, realtime: bool, stop: threading.Event):
        super().__init__(daemon=True, name=f"poller-{'realtime' if realtime else 'committed'}")
        self.engine, self.realtime, self.stop_event = engine, realtime, stop
        self.seen_at: dict[int, float] = {}  # probe event time (= produce time, µs) -> wall time first returned
        self.errors = 0

    def run(self) -> None:
        newest = 0
        while not self.stop_event.is_set():
            try:
                page = ticks_between(
                    self.engine,
                    TRADES,
                    Selection([PROBE_SYMBOL], start=newest + 1, realtime=self.realtime),
                    fields=["timestamp"],
                    limit=self.engine.max_rows,
                )
            except Exception:  # a snapshot landing mid-read: counted, the next poll reads again
                self.errors += 1
                time.sleep(POLL_PAUSE_S)
                continue
            now = time.time()
            for us in page.rows.column("timestamp").cast(pa.int64()).to_pylist():  # µs since the epoch, exact
                self.seen_at.setdefault(us, now)
                newest = max(newest, us)
            time.sleep(POLL_PAUSE_S)


def percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50_s": round(percentile(samples, 0.50), 4),
        "p95_s": round(percentile(samples, 0.95, "upper"), 4),
        "p99_s": round(percentile(samples, 0.99, "upper"), 4),
        "max_s": round(max(samples), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=20_000, help="messages per second, probes included")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--probes-per-second", type=int, default=50)
    parser.add_argument("--epoch-seconds", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    probe_every = max(1, args.rate // args.probes_per_second)

    with broker() as bootstrap, scratch("queryable") as data_dir:
        topic = f"bench-queryable-{uuid.uuid4().hex[:8]}"
        env = flow_env(bootstrap, topic, data_dir, tail=True) | {"K2_EPOCH_SECONDS": str(args.epoch_seconds)}
        settings = load_settings(
            {},
            data_dir=str(data_dir),
            source="kafka",
            kafka_bootstrap=bootstrap,
            trades_topic=env["K2_TRADES_TOPIC"],
            quotes_topic=env["K2_QUOTES_TOPIC"],
            dlq_topic=env["K2_DLQ_TOPIC"],
        )
        make_topics(bootstrap, topic)
        flow = subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.ingest"], cwd=ROOT, env=env)
        engine = QueryEngine.from_settings(settings)
        follower = start_follower(settings, engine)
        if follower is None:
            raise SystemExit("the tail follower did not start")
        stop = threading.Event()
        pollers = {"committed": ProbePoller(engine, False, stop), "realtime": ProbePoller(engine, True, stop)}
        try:
            for poller in pollers.values():
                poller.start()
            probes = ProbeProducer(CheckedProducer(make_producer(bootstrap, **{"linger.ms": 1})), topic)
            # Warm-up (not measured): probes alone until both pollers have returned one, so the flow has started,
            # committed, and the tail follower has caught up; the figures are then steady state, not start-up.
            warm_started = time.time()
            warm_deadline = warm_started + 180.0
            while not all(p.seen_at for p in pollers.values()) and time.time() < warm_deadline:
                probes.send(measured=False)
                probes.producer.flush()
                time.sleep(0.2)
            if not all(p.seen_at for p in pollers.values()):
                raise SystemExit("no probe became queryable within 180 s of start")
            warmup_s = time.time() - warm_started
            print(f"warm-up: first probes queryable after {warmup_s:.1f}s", file=sys.stderr, flush=True)
            total = int(args.rate * args.seconds)
            feed = SyntheticFeed(FeedConfig(messages=total, quote_ratio=0.0, symbols=200, seed=29))
            produce, poll = probes.producer.producer.produce, probes.producer.producer.poll
            started = time.time()
            for i, (_, key, value) in enumerate(feed.messages()):
                if (wait := started + i / args.rate - time.time()) > 0:
                    time.sleep(wait)
                if i % probe_every == 0:
                    probes.send(measured=True)
                else:
                    produce(topic, value, key)
                poll(0)
            probes.producer.flush()
            produced_s = time.time() - started
            offsets = probes.offsets
            # the last epochs commit and the pollers see them
            wait_until(lambda: all(us in pollers["committed"].seen_at for us in offsets), timeout=30.0)
        finally:
            stop.set()
            for poller in pollers.values():
                if poller.is_alive():
                    poller.join(timeout=10)
            follower.stop()
            engine.close()
            flow.terminate()
            flow.wait(timeout=30)
        commits = snapshot_seams(engine.catalog.load_table((settings.namespace, TRADES)))

    committed = [
        at - us / 1e6 for us, (p, o) in offsets.items() if (at := committed_at(commits, topic, p, o)) is not None
    ]
    latency = {
        name: [seen - us / 1e6 for us, seen in poller.seen_at.items() if us in offsets]
        for name, poller in pollers.items()
    }
    report = {
        "benchmark": "queryable_latency",
        "recorded": recorded(),
        "parameters": {
            "rate": args.rate,
            "seconds": args.seconds,
            "probes_per_second": args.probes_per_second,
            "epoch_seconds": args.epoch_seconds,
            "query_refresh_seconds": settings.query_refresh_seconds,
            "poll_pause_s": POLL_PAUSE_S,
        },
        "messages": total,
        "achieved_rate": round(total / produced_s, 1),
        "warmup_s": round(warmup_s, 2),  # flow start-up to the first probe returned by both pollers
        "probes": len(offsets),
        "produce_to_committed": percentiles(committed),
        "produce_to_queryable": percentiles(latency["committed"]),
        "produce_to_queryable_realtime": percentiles(latency["realtime"]),
        "poll_errors": {name: poller.errors for name, poller in pollers.items()},
        "notes": [
            "committed: the probe's snapshot timestamp (commit time) minus its produce time; the baseline.",
            "queryable: the wall time ticks_between(realtime=False) first returned the probe minus its produce time.",
            "realtime: the same through ticks_between(realtime=True) with the tail follower in this process.",
        ],
    }
    save_report(report, args.out)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
