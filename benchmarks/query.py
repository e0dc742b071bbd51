"""Query benchmark: K2's engine and API against raw DuckDB (the floor) and plain pyiceberg scans, in one run.

A trades table (default 30,000,000 rows, 500 symbols, 5 trading days of XNAS) is generated column-wise and
appended with pyiceberg in ~1M-row chunks per day, each chunk a slice of the session sorted by (symbol,
timestamp) as the real writer does. Generation takes minutes, so the table is kept under `--data-dir` and reused
when it already holds the requested rows. Then, with the same random symbol/minute choices for every method and
the methods interleaved query by query (so machine noise hits them alike):

- point: one symbol, one minute     (engine `ticks_between`  | DuckDB `read_parquet` | pyiceberg `to_arrow`)
- bars:  1-minute bars, symbol-day  (engine `bars`           | same SQL in DuckDB    | `to_arrow` + pyarrow)
- latest trade per symbol           (engine `latest_by_symbol` cold and warm | DuckDB full scan | `to_arrow`)
- API: `python -m api` on loopback, point queries from 16 concurrent clients (and from 1), and its RSS.

    uv run python benchmarks/query.py                       # 30M rows, 200 queries per measurement
    uv run python benchmarks/query.py --quick --out /tmp/q.json   # 300k rows, 20 queries (CI: the pipeline runs)

This file runs it and writes the report; the table is made in query_data.py, the engine, floor and pyiceberg
methods are in query_methods.py, the API's in query_api.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyiceberg  # noqa: E402

from benchmarks.common import REPORTS, git, save_report, timed  # noqa: E402
from benchmarks.query_api import measure_api  # noqa: E402
from benchmarks.query_data import MINUTE_US, Generator, local_us, prepare_table, table_stats, trading_days  # noqa: E402
from benchmarks.query_methods import LIMIT, Floor, measure_bars, measure_latest, measure_point, summary  # noqa: E402
from k2.ops.config import load_settings  # noqa: E402
from k2.query import QueryEngine, Selection, ticks_between  # noqa: E402
from k2.storage.catalog import TRADES  # noqa: E402

TARGETS = {  # the targets, checked at the end
    "point_p95_ms": 20.0,
    "point_p95_vs_floor": 1.3,
    "bars_p95_ms": 50.0,
    "api_point_p95_ms": 10.0,
}
NOTES = [
    "Methods are interleaved query by query with the same random choices; ratios are within this run.",
    "The table's files are in the OS page cache (generated or read just before): warm-cache figures.",
    "duckdb_floor: one DuckDB connection (2 threads) running read_parquet over all the table's files with"
    " the engine's own SQL; the engine prunes files with its cached plan first.",
    "pyiceberg: Table.scan(row_filter, selected_fields).to_arrow() per query (planning included), plus a"
    " pyarrow group_by for bars and latest.",
    "API: python -m api (uvicorn, access log on as shipped), rate limit off, latencies seen by httpx clients"
    " in this process (their CPU shares the same 2 cores).",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30_000_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200, help="timed queries per measurement")
    parser.add_argument("--scan-repeats", type=int, default=3, help="runs of the full-scan 'latest' queries")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API clients")
    parser.add_argument("--api-requests", type=int, default=0, help="requests at --clients (default 16 x queries)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".cache" / "bench-query")
    parser.add_argument("--out", type=Path, default=REPORTS / "query.json")
    parser.add_argument("--quick", action="store_true", help="300k rows, 20 queries, 2 scan repeats (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.queries, args.scan_repeats = 300_000, 20, 2
        if args.data_dir == parser.get_default("data_dir"):
            args.data_dir = ROOT / ".cache" / "bench-query-quick"
    args.api_requests = args.api_requests or args.clients * args.queries
    return args


def choices(args: argparse.Namespace) -> tuple[list, list]:
    """The same random questions for every method: (symbol, start, end) of one minute and of one symbol-day."""
    rng = random.Random(args.seed + 1)
    symbols = Generator(args.symbols, args.seed).symbols
    days = trading_days(args.days)
    points = []
    for _ in range(args.queries):
        day = rng.choice(days)
        start = local_us(day, 9, 30) + rng.randrange(390) * MINUTE_US
        points.append((rng.choice(symbols), start, start + MINUTE_US))
    symbol_days = []
    for _ in range(args.queries):
        day = rng.choice(days)
        symbol_days.append((rng.choice(symbols), local_us(day, 0), local_us(day + timedelta(days=1), 0)))
    return points, symbol_days


def code_state() -> dict[str, Any]:
    """The commit measured, and any uncommitted changes to the code under test (the tree is shared)."""
    return {"commit": git("rev-parse", "HEAD"), "uncommitted": git("status", "--short", "k2", "api").splitlines()}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def ratios_of(measurements: dict[str, Any]) -> dict[str, float]:
    point, bar, latest = measurements["point"], measurements["bars"], measurements["latest"]
    api = measurements["api_point"]
    return {
        "point_engine_vs_floor_p50": ratio(point["engine"]["p50_ms"], point["duckdb_floor"]["p50_ms"]),
        "point_engine_vs_floor_p95": ratio(point["engine"]["p95_ms"], point["duckdb_floor"]["p95_ms"]),
        "point_pyiceberg_vs_floor_p95": ratio(point["pyiceberg"]["p95_ms"], point["duckdb_floor"]["p95_ms"]),
        "bars_engine_vs_floor_p50": ratio(bar["engine"]["p50_ms"], bar["duckdb_floor"]["p50_ms"]),
        "bars_engine_vs_floor_p95": ratio(bar["engine"]["p95_ms"], bar["duckdb_floor"]["p95_ms"]),
        "bars_pyiceberg_vs_floor_p95": ratio(bar["pyiceberg"]["p95_ms"], bar["duckdb_floor"]["p95_ms"]),
        "latest_cold_vs_floor_p50": ratio(latest["engine_cold"]["p50_ms"], latest["duckdb_floor"]["p50_ms"]),
        "latest_warm_vs_floor_p50": ratio(latest["engine_warm"]["p50_ms"], latest["duckdb_floor"]["p50_ms"]),
        "latest_pyiceberg_vs_floor_p50": ratio(latest["pyiceberg"]["p50_ms"], latest["duckdb_floor"]["p50_ms"]),
        "api_point_p50_vs_engine_p50": ratio(api["concurrent"]["p50_ms"], point["engine"]["p50_ms"]),
        "api_point_p95_vs_health_p95": ratio(api["concurrent"]["p95_ms"], api["health_floor"]["p95_ms"]),
    }


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    settings = load_settings({}, data_dir=str(args.data_dir))
    table, generation = prepare_table(settings, args.rows, args.symbols, args.days, args.seed, log)
    stats = table_stats(table)
    paths = stats.pop("paths")
    log(
        f"table: {stats['rows']:,} rows, {stats['files']} files, {stats['row_groups']} row groups, "
        f"{stats['size_bytes']:,} bytes ({stats['size_gib']} GiB)"
    )
    points, symbol_days = choices(args)

    load_average = {"start": os.getloadavg()}  # other work on the machine: context for every figure
    engine = QueryEngine.from_settings(settings)
    floor = Floor(paths)
    try:
        c = points[0]
        first, _ = timed(lambda: ticks_between(engine, TRADES, Selection([c[0]], start=c[1], end=c[2]), limit=LIMIT))
        warmup = min(5, args.queries)
        log(f"measuring point queries ({args.queries} each, interleaved)...")
        point_times, point_rows = measure_point(engine, floor, table, points, warmup)
        engine_rows = [
            ticks_between(engine, TRADES, Selection([p[0]], start=p[1], end=p[2]), limit=LIMIT).rows.num_rows
            for p in points
        ]
        log(f"measuring 1-minute bars over a symbol-day ({args.queries} each, interleaved)...")
        bar_times, bar_rows = measure_bars(engine, floor, table, symbol_days, warmup)
        log(f"measuring latest per symbol ({args.scan_repeats} cold rounds, {args.queries} warm)...")
        latest_times, latest_rows = measure_latest(engine, floor, table, args.scan_repeats, args.queries, log)
        load_average["before_api"] = os.getloadavg()
        log(f"measuring the API ({args.clients} clients, {args.api_requests} requests)...")
        api = measure_api(settings.data_path, points, args.clients, args.api_requests, engine_rows, log)
    finally:
        engine.close()
        floor.db.close()
    load_average["end"] = os.getloadavg()

    measurements = {
        "point": {k: summary(v) for k, v in point_times.items()} | {"engine_first_query_ms": round(first * 1000, 1)},
        "bars": {k: summary(v) for k, v in bar_times.items()},
        "latest": {k: summary(v) for k, v in latest_times.items()},
        "api_point": api,
    }
    ratios = ratios_of(measurements)
    point, bar = measurements["point"], measurements["bars"]
    values = {
        "point_p95_ms": point["engine"]["p95_ms"],
        "point_p95_vs_floor": ratios["point_engine_vs_floor_p95"],
        "bars_p95_ms": bar["engine"]["p95_ms"],
        "api_point_p95_ms": api["concurrent"]["p95_ms"],
    }
    targets = {
        name: {"value": values[name], "limit": limit, "met": values[name] <= limit} for name, limit in TARGETS.items()
    }
    correctness = {
        "point_rows": point_rows,
        "point_rows_match": len(set(point_rows.values())) == 1,
        "bar_rows": bar_rows,
        "bar_rows_match": len(set(bar_rows.values())) == 1,
        "latest_rows": latest_rows,
        "api_rows_match_engine": api["rows_match_engine"],
    }
    report = {
        "benchmark": "query",
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "duckdb": duckdb.__version__,
            "pyarrow": pa.__version__,
            "pyiceberg": pyiceberg.__version__,
            "load_average_1_5_15m": {k: [round(x, 2) for x in v] for k, v in load_average.items()},
        },
        "code": code_state(),
        "parameters": {
            "rows": args.rows,
            "symbols": args.symbols,
            "days": args.days,
            "queries": args.queries,
            "scan_repeats": args.scan_repeats,
            "clients": args.clients,
            "api_requests": args.api_requests,
            "seed": args.seed,
            "quick": args.quick,
            "point_limit": LIMIT,
        },
        "table": stats | generation | {"symbols": args.symbols, "days": args.days},
        "measurements": measurements,
        "ratios": ratios,
        "targets": targets,
        "correctness": correctness,
        "notes": NOTES,
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    save_report(report, args.out)
    print_report(report)
    log(f"report: {args.out}")
    return report


def print_report(report: dict[str, Any]) -> None:
    m, t = report["measurements"], report["table"]
    print()
    print(
        f"trades: {t['rows']:,} rows, {t['files']} files, {t['row_groups']} row groups, {t['size_gib']} GiB; "
        f"machine: {report['machine']['cpu_count']} CPUs, Python {report['machine']['python']}"
    )
    print(f"{'query':<34}{'method':<16}{'p50 ms':>10}{'p95 ms':>10}{'n':>6}")
    rows = [("point: 1 symbol, 1 minute", m["point"]), ("bars: 1m, 1 symbol-day", m["bars"])]
    rows.append(("latest per symbol", m["latest"]))
    for label, methods in rows:
        for method, s in methods.items():
            if isinstance(s, dict):
                print(f"{label:<34}{method:<16}{s['p50_ms']:>10.1f}{s['p95_ms']:>10.1f}{s['n']:>6}")
                label = ""
    api = m["api_point"]
    one, many = api["one_client"], api["concurrent"]
    print(f"{'API point query':<34}{'1 client':<16}{one['p50_ms']:>10.1f}{one['p95_ms']:>10.1f}{one['n']:>6}")
    label = f"{many['clients']} clients"
    print(f"{'':<34}{label:<16}{many['p50_ms']:>10.1f}{many['p95_ms']:>10.1f}{many['n']:>6}")
    if "health_floor" in api:  # reports from before it was measured lack it
        floor = api["health_floor"]
        print(f"{'':<34}{'/health, same':<16}{floor['p50_ms']:>10.1f}{floor['p95_ms']:>10.1f}{floor['n']:>6}")
    print(
        f"API: {many['requests_per_s']:.0f} req/s at {many['clients']} clients, RSS idle "
        f"{api['rss_idle_bytes'] / 2**20:.0f} MiB, after {api['rss_after_bytes'] / 2**20:.0f} MiB, peak "
        f"{api['rss_peak_bytes'] / 2**20:.0f} MiB, failures {api['failures']}"
    )
    print("ratios: " + ", ".join(f"{k} {v}" for k, v in report["ratios"].items()))
    for name, target in report["targets"].items():
        print(f"target {name:<22} {target['value']:>9} <= {target['limit']:<6} {'met' if target['met'] else 'NOT MET'}")
    c = report["correctness"]
    print(f"rows: point {c['point_rows']}, bars {c['bar_rows']}, API matches engine: {c['api_rows_match_engine']}")


if __name__ == "__main__":
    main()
