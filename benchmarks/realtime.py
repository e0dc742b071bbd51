"""Realtime reads vs committed-only reads, in one run on a real broker (not a timed test).

Commits `--committed` messages to Iceberg through the real flow, then produces `--tail` more that stay in Kafka.
With the tail follower caught up, it measures p50/p95 of the same queries — one symbol's trades over its last
minute, and the latest trade/quote of one symbol — with `realtime=False` (the Iceberg floor, same run) and
`realtime=True`, interleaved query by query. Target: realtime adds <= 20 ms at p95.

    uv run python benchmarks/realtime.py [--committed 200000] [--tail 100000] [--queries 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bytewax.testing import run_main  # noqa: E402

from benchmarks.common import REPORTS, percentile, recorded, save_report, scratch, timed, wait_until  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from flows.ingest import build_flow  # noqa: E402
from k2.flow.sources import source_from_settings  # noqa: E402
from k2.kafka.admin import ensure_topics  # noqa: E402
from k2.kafka.producer import publish  # noqa: E402
from k2.loaders.synthetic import FeedConfig, SyntheticFeed  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402
from k2.query import QueryEngine, Selection, latest_by_symbol, latest_indexes, ticks_between  # noqa: E402
from k2.query.hybrid import start_follower  # noqa: E402

REPORT = REPORTS / "realtime.json"


def percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 3),
        "p95_ms": round(percentile(samples, 0.95, "upper") * 1000, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--committed", type=int, default=200_000)
    parser.add_argument("--tail", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20k committed, 10k tail, 20 queries (CI)")
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    if args.quick:
        args.committed, args.tail, args.queries = 20_000, 10_000, 20
    feed = SyntheticFeed(FeedConfig(messages=args.committed + args.tail, symbols=50, seed=21, partitions=4))
    messages = list(feed.messages())
    with broker() as bootstrap, scratch("realtime") as data_dir:
        run = f"bench-rt-{os.getpid()}-{int(time.time())}"
        settings = load_settings(
            {},
            data_dir=str(data_dir),
            source="kafka",
            kafka_bootstrap=bootstrap,
            trades_topic=f"{run}.trades",
            quotes_topic=f"{run}.quotes",
            dlq_topic=f"{run}.dlq",
            kafka_tail=False,
            realtime_max_messages=max(args.tail * 2, 1_000),
            query_refresh_seconds=60.0,
        )
        ensure_topics(bootstrap, [settings.trades_topic, settings.quotes_topic, settings.dlq_topic], 4)
        topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
        publish(bootstrap, ((topics[k], key, value) for k, key, value in messages[: args.committed]))
        run_main(build_flow(source_from_settings(settings), settings))
        publish(bootstrap, ((topics[k], key, value) for k, key, value in messages[args.committed :]))

        engine = QueryEngine.from_settings(settings)
        follower = start_follower(settings, engine)
        assert follower is not None, "the tail follower did not start"
        try:
            # The follower first re-reads the warm-up window below the seams: measure once it has caught up.
            first = None

            def caught_up() -> bool:
                nonlocal first
                first = ticks_between(engine, "trades", Selection(realtime=True), limit=1)
                return bool(first.freshness.tail and first.freshness.tail.complete)

            catch_up, _ = timed(wait_until, caught_up, timeout=120, pause=0)
            tail_rows = first.freshness.tail.rows if first.freshness.tail else 0
            committed_rows = engine.plan("trades")[1].rows
            indexes = latest_indexes()
            latest_by_symbol(engine, indexes)  # build the committed index once, as a running service has
            symbols = sorted({m[1].decode().split(":", 1)[1] for m in messages[: args.committed] if m[1]})
            newest = max(json.loads(v)["timestamp"] for k, _, v in messages[-1000:] if k == "trade")
            rng = random.Random(5)
            samples: dict[str, list[float]] = {k: [] for k in ("trades", "trades_rt", "latest", "latest_rt")}
            rows = {"trades": 0, "trades_rt": 0}
            for _ in range(args.queries):
                symbol = rng.choice(symbols)
                for key, realtime in (("trades", False), ("trades_rt", True)):
                    window = Selection([symbol], start=newest - 60_000_000, end=newest + 1, realtime=realtime)
                    seconds, page = timed(lambda w=window: ticks_between(engine, "trades", w, limit=100_000))
                    samples[key].append(seconds)
                    rows[key] += page.rows.num_rows
                for key, realtime in (("latest", False), ("latest_rt", True)):
                    seconds, _ = timed(
                        lambda r=realtime, s=symbol: latest_by_symbol(engine, indexes, symbols=[s], realtime=r)
                    )
                    samples[key].append(seconds)
        finally:
            follower.stop()
            engine.close()
    figures = {key: percentiles(values) for key, values in samples.items()}
    added = {name: round(figures[f"{name}_rt"]["p95_ms"] - figures[name]["p95_ms"], 3) for name in ("trades", "latest")}
    report = {
        "benchmark": "realtime",
        "recorded": recorded(),
        "committed_messages": args.committed,
        "tail_messages": args.tail,
        "committed_trade_rows": committed_rows,
        "tail_trade_rows": tail_rows,
        "follower_caught_up_s": round(catch_up, 3),
        "queries": args.queries,
        "rows_returned": rows,
        "latency": figures,
        "realtime_adds_p95_ms": added,
        "target": {"realtime_adds_p95_ms_max": 20, "met": all(v <= 20 for v in added.values())},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
    }
    save_report(report, args.out)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
