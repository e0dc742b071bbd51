"""K2 beside the tools a user would pick instead, on the same broker, data and machine, in one run (issue 14):

1. ingest: K2's flow and the Apache Iceberg Kafka Connect sink (Connect standalone, schemaless JSON, JDBC catalog
   on SQLite) on one topic of valid JSON trades: msgs/s to committed Iceberg (sink commit interval 1 s and its
   default 5 min), produce -> committed latency at a steady rate, peak RSS, both tables read back with the same
   engine; then exactly-once under `--kills` SIGKILLs of each, mid-ingest (benchmarks/peers/crash.py);
2. queries: QuestDB loaded with the query benchmark's trades (+ quotes derived from them) beside K2's engine and
   API: point, 1-minute bars, latest per symbol, as-of join; p50/p95 and the answers compared.

    uv run python benchmarks/peers_bench.py            # 1,000,000 messages, 30M-row query table (long: minutes)
    uv run python benchmarks/peers_bench.py --ci       # tiny sizes: the pipeline runs (JVM start-ups dominate)
The jars come from Maven Central on first use (`make peers-fetch`); without Java or Maven the run is skipped with
the reason in its report, except with --ci, where a missing peer is a failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import REPORTS, recorded, save_report, timed  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from benchmarks.peers import crash, ingest, queries  # noqa: E402
from benchmarks.peers.jars import PEERS, MissingTool, fetch, java  # noqa: E402
from benchmarks.peers.query_data import load_questdb, prepare, questdb_size_bytes  # noqa: E402
from benchmarks.peers.questdb import QuestDB  # noqa: E402
from benchmarks.query import choices as query_choices  # noqa: E402
from benchmarks.query_data import table_stats  # noqa: E402
from k2.flow.steps import tune_process  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402

HOUR_US = 3_600_000_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=20_000, help="msg/s of the latency runs")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of each system in the crash runs")
    parser.add_argument("--crash-rate", type=int, default=5_000, help="msg/s published during the crash runs")
    parser.add_argument("--no-default-interval", action="store_true", help="skip the sink's 5-minute interval run")
    parser.add_argument("--rows", type=int, default=30_000_000, help="query table rows (query benchmark's default)")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100, help="timed queries per method and kind")
    parser.add_argument("--latest-rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".cache" / "bench-peers")
    parser.add_argument("--skip", default="", help="ingest,crash,queries: parts left out (a partial report)")
    parser.add_argument("--out", type=Path, default=REPORTS / "peers.json")
    parser.add_argument("--ci", action="store_true", help="tiny sizes; a missing Java/Maven fails the run")
    args = parser.parse_args(argv)
    if args.ci:
        args.messages, args.rate, args.rate_seconds = 5_000, 2_000, 3.0
        args.kills, args.crash_rate, args.no_default_interval = 1, 1_000, True
        args.rows, args.queries, args.latest_rounds = 100_000, 10, 3
        if args.data_dir == parser.get_default("data_dir"):
            args.data_dir = ROOT / ".cache" / "bench-peers-ci"
    return args


def log(message: str) -> None:
    print(message, flush=True)


def query_part(args: argparse.Namespace) -> dict:
    settings = load_settings({}, data_dir=str(args.data_dir / "k2"))
    trades, quotes, generation = prepare(settings, args.rows, args.symbols, args.days, args.seed, log)
    stats = table_stats(trades)
    stats.pop("paths")
    points, symbol_days = query_choices(args)
    # as-of join: the symbol-day choices' symbols, 10:00-11:00 New York time (their days have no DST change)
    hours = [(s, start + 10 * HOUR_US, start + 11 * HOUR_US) for s, start, _ in symbol_days]
    picked = {"point": points, "bars": symbol_days, "latest": [None], "asof": hours}
    (args.data_dir / "questdb").mkdir(parents=True, exist_ok=True)
    with QuestDB(args.data_dir / "questdb") as qdb:
        started, _ = timed(qdb.start)
        loaded = load_questdb(qdb, trades, quotes, args.rows, log)
        log(f"measuring queries (QuestDB up in {started:.1f} s) ...")
        result = queries.measure(settings, qdb, picked, args.latest_rounds, log)
        peak = qdb.peak_rss
    size = questdb_size_bytes(args.data_dir / "questdb")
    qdb_figures = loaded | {"startup_s": round(started, 2), "peak_rss_bytes": peak, "size_bytes": size}
    return {"table": stats | generation, "questdb": qdb_figures, **result}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    report: dict = {"benchmark": "peers_bench", "recorded": recorded(), "ci": args.ci, "parameters": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}  # fmt: skip
    try:
        java()
        report["jars"] = {peer: str(fetch(peer)) for peer in PEERS}
    except MissingTool as exc:
        if args.ci or os.environ.get("CI") == "true":
            print(f"peers: {exc} (CI: a missing peer is a failure)", file=sys.stderr)
            return 1
        report["skipped"] = str(exc)
        save_report(report, args.out)
        log(f"peers: skipped: {exc}")
        return 0
    tune_process()
    started = time.perf_counter()
    load = {"start": os.getloadavg()}
    if not {"ingest", "crash"} <= skip:
        with broker() as bootstrap:
            if "ingest" not in skip:
                log("== ingest: K2 and the Iceberg sink on one topic")
                report["ingest"] = ingest.measure(
                    bootstrap, args.messages, args.rate, args.rate_seconds, not args.no_default_interval, log
                )
                load["after_ingest"] = os.getloadavg()
            if "crash" not in skip:
                log(f"== crash: {args.kills} SIGKILLs each, {args.crash_rate:,} msg/s arriving")
                report["crash"] = crash.measure(bootstrap, args.kills, args.crash_rate, args.seed, log)
                load["after_crash"] = os.getloadavg()
    if "queries" not in skip:
        log("== queries: K2's engine and API beside QuestDB")
        report["queries"] = query_part(args)
    load["end"] = os.getloadavg()
    report["load_average_1_5_15m"] = {k: [round(x, 2) for x in v] for k, v in load.items()}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    save_report(report, args.out)
    log(f"report: {args.out} ({report['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
