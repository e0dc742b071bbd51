"""The query benchmark's methods, measured side by side on the same random choices: the engine (`ticks_between`,
`bars`, `latest_by_symbol`), raw DuckDB over the table's files with the engine's own SQL (the floor, `Floor`) and
plain pyiceberg scans, interleaved query by query so machine noise hits them alike; and the latency summary every
figure of benchmarks/query.py is reported as.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan

from benchmarks.common import percentile, timed
from benchmarks.query_data import EXCHANGE, TZ
from k2.query import (
    FIELDS,
    QueryEngine,
    Selection,
    bars,
    latest_by_symbol,
    latest_indexes,
    parse_interval,
    ticks_between,
)
from k2.query.bars import _BARS, _PLAIN  # the engine's own bar SQL, so the floor does the same work
from k2.storage.catalog import TRADES

LIMIT = 10_000  # rows per point query: far above one symbol-minute, so no result is cut


def summary(seconds: list[float]) -> dict[str, float]:
    """Latencies in seconds as milliseconds: p50 and p95 (interpolated), mean, max and count."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "max_ms": round(max(ms), 3),
        "n": len(ms),
    }


def interleaved(methods: dict[str, Callable[[Any], int]], choices: list, warmup: int) -> tuple[dict, dict]:
    """Run every method on every choice, rotating which goes first; returns times and total rows per method."""
    names = list(methods)
    for choice in choices[:warmup]:
        for name in names:
            methods[name](choice)
    times: dict[str, list[float]] = {name: [] for name in names}
    rows = dict.fromkeys(names, 0)
    for i, choice in enumerate(choices):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            seconds, count = timed(methods[name], choice)
            times[name].append(seconds)
            rows[name] += count
    return times, rows


class Floor:
    """Raw DuckDB over every data file of the table, with the same SQL the engine runs."""

    def __init__(self, paths: list[str]):
        self.db = duckdb.connect(config={"threads": 2})
        self.db.execute("SET GLOBAL TimeZone = 'UTC'")
        self.files = paths
        self.source = "read_parquet($files)"

    def sql(self, sql: str, params: dict[str, Any]) -> pa.Table:
        cursor = self.db.cursor()
        try:
            return cursor.sql(sql.format(src=self.source), params={**params, "files": self.files}).to_arrow_table()
        finally:
            cursor.close()


def as_dt(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def measure_point(engine: QueryEngine, floor: Floor, table, choices: list, warmup: int) -> tuple[dict, dict]:
    names = list(FIELDS[TRADES])
    order = '"timestamp", source_topic, source_partition, source_offset'
    select = ", ".join(f'"{n}"' for n in names)
    floor_sql = (
        f'SELECT {select} FROM {{src}} WHERE symbol = $symbol AND "timestamp" >= $start AND "timestamp" < $end'
        f" ORDER BY {order} LIMIT $limit"
    )

    def ours(c) -> int:
        return ticks_between(engine, TRADES, Selection([c[0]], start=c[1], end=c[2]), limit=LIMIT).rows.num_rows

    def raw(c) -> int:
        return floor.sql(floor_sql, {"symbol": c[0], "start": as_dt(c[1]), "end": as_dt(c[2]), "limit": LIMIT}).num_rows

    def iceberg(c) -> int:
        where = And(And(EqualTo("symbol", c[0]), GreaterThanOrEqual("timestamp", c[1])), LessThan("timestamp", c[2]))
        return table.scan(row_filter=where, selected_fields=tuple(names)).to_arrow().num_rows

    return interleaved({"engine": ours, "duckdb_floor": raw, "pyiceberg": iceberg}, choices, warmup)


def measure_bars(engine: QueryEngine, floor: Floor, table, choices: list, warmup: int) -> tuple[dict, dict]:
    interval = parse_interval("1m")
    where = 'symbol = $symbol AND exchange = $exchange AND "timestamp" >= $start AND "timestamp" < $end'
    floor_sql = _BARS.format(where=where, src="{src}") + _PLAIN
    wanted = ("timestamp", "source_sequence", "source_topic", "source_partition", "source_offset", "price", "quantity")

    def ours(c) -> int:
        return bars(engine, Selection([c[0]], EXCHANGE, c[1], c[2]), interval, TZ).rows.num_rows

    def raw(c) -> int:
        params = {"symbol": c[0], "exchange": EXCHANGE, "start": as_dt(c[1]), "end": as_dt(c[2])}
        params |= {"tz": TZ, "interval": interval.sql, "limit": engine.max_rows}
        return floor.sql(floor_sql, params).num_rows

    def iceberg(c) -> int:
        row_filter = And(
            And(EqualTo("symbol", c[0]), EqualTo("exchange", EXCHANGE)),
            And(GreaterThanOrEqual("timestamp", c[1]), LessThan("timestamp", c[2])),
        )
        ticks = table.scan(row_filter=row_filter, selected_fields=wanted).to_arrow()
        ticks = ticks.sort_by([(name, "ascending") for name in wanted[:5]])
        ticks = ticks.append_column("bucket", pc.floor_temporal(ticks["timestamp"], 1, "minute"))  # NY: whole hours
        ticks = ticks.append_column("notional", pc.multiply(ticks["price"], ticks["quantity"]))
        ticks = ticks.append_column("i", pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1), ticks.num_rows)), 1))
        grouped = ticks.group_by("bucket").aggregate(
            [
                ("i", "min"),  # pyarrow's first/last have no decimal kernels: open/close by row position
                ("price", "max"),
                ("price", "min"),
                ("i", "max"),
                ("quantity", "sum"),
                ("price", "count"),
                ("notional", "sum"),
            ]
        )
        grouped = grouped.append_column("open", pc.take(ticks["price"], grouped["i_min"]))
        grouped = grouped.append_column("close", pc.take(ticks["price"], grouped["i_max"]))
        return grouped.num_rows

    return interleaved({"engine": ours, "duckdb_floor": raw, "pyiceberg": iceberg}, choices, warmup)


_LATEST_FLOOR = (
    "SELECT exchange, symbol, arg_max(r, (r.timestamp, coalesce(r.source_sequence, -1), r.source_topic,"
    " r.source_partition, r.source_offset)) AS latest FROM {src} AS r GROUP BY exchange, symbol"
)


def measure_latest(engine: QueryEngine, floor: Floor, table, repeats: int, queries: int, log) -> tuple[dict, dict]:
    times: dict[str, list[float]] = {"engine_cold": [], "duckdb_floor": [], "pyiceberg": []}
    rows: dict[str, int] = {}
    wanted = ("exchange", "symbol", "timestamp", "source_sequence", "source_topic", "source_partition")
    wanted += ("source_offset", "price", "quantity", "side")
    keys = [(n, "ascending") for n in ("exchange", "symbol", *wanted[2:7])]

    def iceberg() -> int:
        data = table.scan(selected_fields=wanted).to_arrow().sort_by(keys)
        data = data.append_column("i", pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1), data.num_rows)), 1))
        newest = data.group_by(["exchange", "symbol"]).aggregate([("i", "max")])  # `last` has no decimal kernel
        return data.take(newest["i_max"]).num_rows

    indexes = latest_indexes()
    for r in range(repeats):
        indexes = latest_indexes()  # a fresh index: its first query builds it (what a service start pays)
        runs = {
            "engine_cold": lambda indexes=indexes: latest_by_symbol(engine, indexes)[0].num_rows,
            "duckdb_floor": lambda: floor.sql(_LATEST_FLOOR, {}).num_rows,
            "pyiceberg": iceberg,
        }
        for name in list(runs)[r % 3 :] + list(runs)[: r % 3]:
            seconds, count = timed(runs[name])
            times[name].append(seconds)
            rows[name] = count
        log(f"  latest, round {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    warm = []
    for _ in range(queries):
        seconds, count = timed(lambda: latest_by_symbol(engine, indexes)[0].num_rows)
        warm.append(seconds)
        rows["engine_warm"] = count
    times["engine_warm"] = warm
    return times, rows
