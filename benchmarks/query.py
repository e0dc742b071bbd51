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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
import httpx  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pyiceberg  # noqa: E402
from pyiceberg.expressions import And, EqualTo, GreaterThanOrEqual, LessThan  # noqa: E402

from k2.catalog import TABLE_PROPERTIES, TRADES, ensure_tables, open_catalog  # noqa: E402
from k2.columnar import ARROW_SCHEMAS  # noqa: E402
from k2.config import Settings, load_settings  # noqa: E402
from k2.query import (  # noqa: E402
    FIELDS,
    QueryEngine,
    bars,
    latest_by_symbol,
    latest_indexes,
    parse_interval,
    ticks_between,
)
from k2.query.bars import _BARS, _PLAIN  # noqa: E402  the engine's own bar SQL, so the floor does the same work
from scripts.local_kafka import free_ports  # noqa: E402

REPORT_DIR = Path(__file__).resolve().parent / "reports"
GENERATOR_VERSION = 1
META_FILE = "bench-meta.json"
EXCHANGE, TZ, TOPIC, PARTITIONS = "XNAS", "America/New_York", "market.trades", 4
FIRST_DAY = date(2024, 3, 4)  # a Monday
SESSION_US = int(6.5 * 3600 * 1_000_000)  # 09:30-16:00 local
MINUTE_US = 60_000_000
TICK = 1_000_000  # $0.01 in units of 1e-8 (decimal(18,8))
ONE = 100_000_000  # 1 in units of 1e-8
LIMIT = 10_000  # rows per point query: far above one symbol-minute, so no result is cut
API_KEY = "bench-query-key"
TARGETS = {  # the targets, checked at the end
    "point_p95_ms": 20.0,
    "point_p95_vs_floor": 1.3,
    "bars_p95_ms": 50.0,
    "api_point_p95_ms": 10.0,
}


# --- generation ---------------------------------------------------------------------------------------------


def trading_days(count: int) -> list[date]:
    days, day = [], FIRST_DAY
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def local_us(day: date, hour: int, minute: int = 0) -> int:
    """µs since the epoch of a New York wall-clock time (DST applied)."""
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(TZ))
    return (moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def make_symbols(count: int, rng: random.Random) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    names: set[str] = set()
    while len(names) < count:
        names.add("".join(rng.choice(letters) for _ in range(rng.choice((3, 4, 4)))))
    return sorted(names)


def _random(rng: random.Random, kind: pa.DataType, n: int) -> pa.Array:
    """n uniform random integers of an unsigned type, straight from random bytes (no per-row Python)."""
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(rng.randbytes(n * kind.bit_width // 8))])


def _expand(values: list[int], counts: list[int]) -> pa.Array:
    """values[i] repeated counts[i] times, as int64 (run-end decoding in C)."""
    kept = [(v, c) for v, c in zip(values, counts, strict=True) if c > 0]
    ends = list(_accumulate(c for _, c in kept))
    ree = pa.RunEndEncodedArray.from_arrays(pa.array(ends, pa.int32()), pa.array([v for v, _ in kept], pa.int64()))
    return pc.run_end_decode(ree)


def _accumulate(counts) -> list[int]:
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


def _decimal(scaled: pa.Array) -> pa.Array:
    """int64 values in units of 1e-8 to decimal128(18,8): cast to decimal(19,0) (exact), then reinterpret the
    16-byte unscaled integers at scale 8. No float arithmetic touches the stored values."""
    if pc.max(pc.abs(scaled)).as_py() >= 10**18:
        raise ValueError("value does not fit decimal(18,8)")
    whole = scaled.cast(pa.decimal128(19, 0))
    return pa.Array.from_buffers(pa.decimal128(18, 8), len(whole), whole.buffers(), offset=whole.offset)


def _hex_ids(rng: random.Random, n: int) -> pa.Array:
    """n random 64-bit message ids as 16 hex characters, built as one buffer (a feed's ids look like this)."""
    data = pa.py_buffer(rng.randbytes(8 * n).hex().encode("ascii"))
    offsets = pc.multiply(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n + 1)), 16)
    offsets = pc.subtract(offsets, 16)
    return pa.Array.from_buffers(pa.large_string(), n, [None, offsets.buffers()[1], data])


class Generator:
    """Column-wise synthetic trades: random-walk prices per symbol, sequences per symbol, offsets per partition."""

    def __init__(self, symbols: int, seed: int):
        self.rng = random.Random(seed)
        self.symbols = make_symbols(symbols, self.rng)
        raw = [self.rng.lognormvariate(0.0, 0.8) for _ in self.symbols]  # uneven activity between symbols
        self.weights = [w / sum(raw) for w in raw]
        self.ticks = [self.rng.randrange(2_000, 50_000) for _ in self.symbols]  # $20-$500 in cents
        self.sequence = [0] * len(self.symbols)
        self.partition = [zlib.crc32(f"{EXCHANGE}:{s}".encode()) % PARTITIONS for s in self.symbols]
        self.offsets = [0] * PARTITIONS

    def counts(self, rows: int) -> list[int]:
        counts = [int(rows * w) for w in self.weights]
        for i in self.rng.sample(range(len(counts)), rows - sum(counts)):
            counts[i] += 1
        return counts

    def chunk(self, start_us: int, width_us: int, rows: int) -> pa.Table:
        """`rows` trades in [start_us, start_us + width_us), sorted by (symbol, timestamp)."""
        rng, n = self.rng, rows
        counts = self.counts(rows)
        starts = [end - c for end, c in zip(_accumulate(counts), counts, strict=True)]
        symbol_index = _expand(list(range(len(counts))), counts)
        # Timestamps: uniform in the window (whole ms from 32 random bits, then µs), sorted within each symbol by
        # sorting (symbol << 36 | offset); int64 products stay below 2^63 for windows up to 24 h.
        if width_us >= 1 << 36:
            raise ValueError("a chunk spans at most 19 hours")
        millis = pc.shift_right(pc.multiply(_random(rng, pa.uint32(), n).cast(pa.int64()), width_us // 1000), 32)
        micros = pc.shift_right(pc.multiply(_random(rng, pa.uint16(), n).cast(pa.int64()), 1000), 16)
        offset = pc.add(pc.multiply(millis, 1000), micros)
        key = pc.sort_indices(pc.add(pc.shift_left(symbol_index, 36), offset))
        offset = pc.take(offset, key)
        timestamp = pc.add(offset, start_us)
        row = pc.subtract(pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), n)), 1)
        # Sequence numbers continue per symbol across chunks.
        sequence = pc.add(row, _expand([self.sequence[i] + 1 - starts[i] for i in range(len(counts))], counts))
        # Random walk in whole cents: steps of -1, 0 or +1 tick, a cumulative sum restarted at each symbol.
        steps = pc.subtract(pc.shift_right(pc.multiply(_random(rng, pa.uint8(), n).cast(pa.int64()), 3), 8), 1)
        walk = pc.cumulative_sum(steps)
        picked = pc.take(walk, pa.array([max(s - 1, 0) for s in starts], pa.int64())).to_pylist()
        before = [0 if s == 0 else w for s, w in zip(starts, picked, strict=True)]
        ticks = pc.max_element_wise(
            pc.add(walk, _expand([self.ticks[i] - before[i] for i in range(len(counts))], counts)), 1
        )
        lasts = pc.take(ticks, pa.array([max(s + c - 1, 0) for s, c in zip(starts, counts, strict=True)])).to_pylist()
        for i, c in enumerate(counts):
            if c:
                self.ticks[i] = lasts[i]
                self.sequence[i] += c
        lots = _random(rng, pa.uint8(), n).cast(pa.int64())
        shares = pc.if_else(pc.less(lots, 32), pc.add(lots, 1), pc.multiply(pc.add(pc.shift_right(lots, 5), 1), 100))
        side_bits = _random(rng, pa.uint8(), n)
        latency = pc.add(pc.multiply(_random(rng, pa.uint8(), n).cast(pa.int64()), 8), 500)
        # Kafka positions: one partition per instrument key, offsets in event-time order within a partition.
        partition = _expand([self.partition[i] for i in range(len(counts))], counts)
        by_partition = pc.sort_indices(pc.add(pc.shift_left(partition, 40), offset))
        per_partition = [sum(c for c, p in zip(counts, self.partition, strict=True) if p == q) for q in range(4)]
        p_starts = [end - c for end, c in zip(_accumulate(per_partition), per_partition, strict=True)]
        ranked = pc.add(row, _expand([self.offsets[q] - p_starts[q] for q in range(PARTITIONS)], per_partition))
        source_offset = pc.take(ranked, pc.sort_indices(by_partition))
        for q in range(PARTITIONS):
            self.offsets[q] += per_partition[q]

        symbol = pc.take(pa.array(self.symbols, pa.large_string()), symbol_index)
        schema = ARROW_SCHEMAS[TRADES]

        def const(value, field: str) -> pa.Array:
            return pa.repeat(pa.scalar(value, schema.field(field).type), n)

        dash = pa.scalar("-", pa.large_string())
        columns = {
            "exchange": const(EXCHANGE, "exchange"),
            "symbol": symbol,
            "asset_class": const("equities", "asset_class"),
            "timestamp": timestamp.cast(pa.timestamp("us", tz="UTC")),
            "ingestion_timestamp": pc.add(timestamp, latency).cast(pa.timestamp("us", tz="UTC")),
            "currency": const("USD", "currency"),
            "source_sequence": sequence,
            "message_id": _hex_ids(rng, n),
            "trade_id": pc.binary_join_element_wise(symbol, sequence.cast(pa.large_string()), dash),
            "price": _decimal(pc.multiply(ticks, TICK)),
            "quantity": _decimal(pc.multiply(shares, ONE)),
            "side": pc.if_else(pc.less(side_bits, 128), "BUY", "SELL").cast(pa.large_string()),
            "trade_conditions": pa.nulls(n, schema.field("trade_conditions").type),
            "vendor_data": pa.nulls(n, schema.field("vendor_data").type),
            "source_topic": const(TOPIC, "source_topic"),
            "source_partition": partition.cast(pa.int32()),
            "source_offset": source_offset,
        }
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def prepare_table(settings: Settings, rows: int, symbols: int, days: int, seed: int, log) -> tuple[Any, dict]:
    """The benchmark's trades table: reused when a complete one with the same parameters is there, else made."""
    data = settings.data_path
    meta_path = data / META_FILE
    wanted = {
        "version": GENERATOR_VERSION,
        "rows": rows,
        "symbols": symbols,
        "days": days,
        "seed": seed,
        "table_properties": TABLE_PROPERTIES,  # the layout the writer uses (row groups, codec)
    }
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("complete") and {k: meta.get(k) for k in wanted} == wanted:
            table = open_catalog(settings).load_table((settings.namespace, TRADES))
            snapshot = table.current_snapshot()
            total = int(snapshot.summary.additional_properties.get("total-records", -1)) if snapshot else 0
            if total == rows:
                log(f"reusing the generated table in {data} ({rows:,} rows; delete the folder to regenerate)")
                return table, {"generated": False, "generation_seconds": meta.get("generation_seconds")}
        log(f"{data} holds another or an incomplete benchmark table: regenerating")
        shutil.rmtree(data)
    elif data.exists() and any(data.iterdir()):
        raise SystemExit(f"{data} is not empty and has no {META_FILE}: not a benchmark folder, refusing to use it")
    data.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps({**wanted, "complete": False}))
    catalog = open_catalog(settings)
    table = ensure_tables(catalog, settings.namespace)[TRADES]
    per_day = rows // days
    chunks = max(1, round(per_day / 1_000_000))
    log(
        f"generating {rows:,} trades ({symbols} symbols, {days} days, {chunks} chunk(s) of ~{per_day // chunks:,} "
        f"rows a day) into {data}: this is slow (minutes at 30M rows), the table is reused on later runs"
    )
    generator = Generator(symbols, seed)
    started = time.perf_counter()
    written = 0
    for d, day in enumerate(trading_days(days)):
        open_us = local_us(day, 9, 30)
        day_rows = per_day + (rows - per_day * days if d == days - 1 else 0)
        for k in range(chunks):
            lo, hi = SESSION_US * k // chunks, SESSION_US * (k + 1) // chunks
            n = day_rows // chunks + (day_rows - day_rows // chunks * chunks if k == chunks - 1 else 0)
            data_chunk = generator.chunk(open_us + lo, hi - lo, n)
            table.append(data_chunk)
            written += n
            elapsed = time.perf_counter() - started
            log(f"  {day} chunk {k + 1}/{chunks}: {written:,} rows, {elapsed:.0f} s ({written / elapsed:,.0f} rows/s)")
    seconds = time.perf_counter() - started
    meta_path.write_text(json.dumps({**wanted, "complete": True, "generation_seconds": round(seconds, 1)}))
    return table, {"generated": True, "generation_seconds": round(seconds, 1)}


def table_stats(table) -> dict[str, Any]:
    files = table.inspect.files().select(["file_path", "file_size_in_bytes", "record_count"]).to_pylist()
    paths = [f["file_path"].removeprefix("file://") for f in files]
    row_groups = sum(pq.ParquetFile(p).metadata.num_row_groups for p in paths)
    size = sum(f["file_size_in_bytes"] for f in files)
    return {
        "rows": sum(f["record_count"] for f in files),
        "files": len(files),
        "row_groups": row_groups,
        "size_bytes": size,
        "size_gb": round(size / 1e9, 3),
        "size_gib": round(size / 2**30, 3),
        "paths": paths,
    }


# --- measuring ----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (like numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    lo, hi = math.floor(position), math.ceil(position)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": round(percentile(ms, 0.50), 3),
        "p95_ms": round(percentile(ms, 0.95), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "max_ms": round(max(ms), 3),
        "n": len(ms),
    }


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


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
        return ticks_between(engine, TRADES, symbols=[c[0]], start=c[1], end=c[2], limit=LIMIT).rows.num_rows

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
        return bars(engine, c[0], EXCHANGE, interval, TZ, start=c[1], end=c[2]).rows.num_rows

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


# --- the API ------------------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process in bytes (psutil is not a dependency)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float, quiet: float = 0.05, window: float = 0.5) -> float:
    """Wait until the process uses under `quiet` CPU seconds in `window` (its index warm-up has finished)."""
    started = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - started < timeout:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before < quiet:
            break
        before = now
    return time.perf_counter() - started


class ApiServer:
    """`python -m api` as a child process on a free loopback port, stopped on exit whatever happens."""

    def __init__(self, data_dir: Path, log_path: Path):
        [self.port] = free_ports(1)
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
        env |= {
            "K2_DATA_DIR": str(data_dir),
            "K2_API_HOST": "127.0.0.1",
            "K2_API_PORT": str(self.port),
            "K2_API_KEYS": API_KEY,
            "K2_API_RATE_LIMIT": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        started = time.perf_counter()
        with httpx.Client(base_url=self.base, timeout=5.0) as client:
            while time.perf_counter() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the API exited with {self.process.returncode}; see {self.log_path}")
                try:
                    if client.get("/ready").status_code == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the API was not ready within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _point_params(c) -> dict[str, Any]:
    return {"symbol": c[0], "start": str(c[1]), "end": str(c[2])}


def load(
    base: str, choices: list, clients: int, total: int, path: str = "/v1/trades"
) -> tuple[list[float], float, int]:
    """`clients` threads, each with its own keep-alive connection, issue `total` point queries between them
    (with `path="/health"`, the same requests to the route that does no work: the floor of the HTTP stack)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=60.0) as client:
            client.get(path, params=_point_params(choices[k % len(choices)]))  # open the connection
            barrier.wait()
            for i in range(k, total, clients):
                started = time.perf_counter()
                response = client.get(path, params=_point_params(choices[i % len(choices)]))
                latencies[k].append(time.perf_counter() - started)
                failures[k] += response.status_code != 200

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return [s for per in latencies for s in per], elapsed, sum(failures)


def measure_api(data_dir: Path, choices: list, clients: int, total: int, engine_rows: list[int], log) -> dict:
    result: dict[str, Any] = {}
    with ApiServer(data_dir, data_dir / "api.log") as server:
        result["startup_to_ready_s"] = round(server.wait_ready(), 2)
        result["warmup_idle_wait_s"] = round(wait_idle(server.process.pid, timeout=300), 2)
        result["rss_idle_bytes"] = proc_status(server.process.pid)["VmRSS"]
        # Warm up, and check the API answers what the engine answered for the same queries.
        api_rows = []
        with httpx.Client(base_url=server.base, headers={"X-API-Key": API_KEY}, timeout=60.0) as client:
            for c in choices[: min(20, len(choices))]:
                response = client.get("/v1/trades", params={**_point_params(c), "limit": LIMIT})
                response.raise_for_status()
                api_rows.append(response.json()["meta"]["count"])
        result["rows_match_engine"] = api_rows == engine_rows[: len(api_rows)]
        single, elapsed, failures = load(server.base, choices, 1, len(choices))
        result["one_client"] = summary(single) | {"requests_per_s": round(len(single) / elapsed, 1)}
        log(f"  API, 1 client: {result['one_client']}")
        many, elapsed, failures_many = load(server.base, choices, clients, total)
        result["concurrent"] = summary(many) | {"clients": clients, "requests_per_s": round(len(many) / elapsed, 1)}
        # The same load on /health (no query, no data): what the HTTP stack and this client cost on this machine.
        floor, elapsed, failures_floor = load(server.base, choices, clients, total, path="/health")
        result["health_floor"] = summary(floor) | {"clients": clients, "requests_per_s": round(len(floor) / elapsed, 1)}
        failures_many += failures_floor
        result["failures"] = failures + failures_many
        status = proc_status(server.process.pid)
        result["rss_after_bytes"] = status["VmRSS"]
        result["rss_peak_bytes"] = status["VmHWM"]
        result["server_cpu_seconds"] = round(cpu_seconds(server.process.pid), 1)
    return result


# --- report -------------------------------------------------------------------------------------------------


def code_state() -> dict[str, Any]:
    """The commit measured, and any uncommitted changes to the code under test (the tree is shared)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "uncommitted": git("status", "--short", "k2", "api").splitlines()}


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
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
    parser.add_argument("--out", type=Path, default=REPORT_DIR / "query.json")
    parser.add_argument("--quick", action="store_true", help="300k rows, 20 queries, 2 scan repeats (CI)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.queries, args.scan_repeats = 300_000, 20, 2
        if args.data_dir == parser.get_default("data_dir"):
            args.data_dir = ROOT / ".cache" / "bench-query-quick"
    api_requests = args.api_requests or args.clients * args.queries

    def log(message: str) -> None:
        print(message, flush=True)

    started = time.perf_counter()
    settings = load_settings({}, data_dir=str(args.data_dir))
    table, generation = prepare_table(settings, args.rows, args.symbols, args.days, args.seed, log)
    stats = table_stats(table)
    paths = stats.pop("paths")
    log(
        f"table: {stats['rows']:,} rows, {stats['files']} files, {stats['row_groups']} row groups, "
        f"{stats['size_bytes']:,} bytes ({stats['size_gib']} GiB)"
    )

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

    load_average = {"start": os.getloadavg()}  # other work on the machine: context for every figure
    engine = QueryEngine.from_settings(settings)
    floor = Floor(paths)
    report: dict[str, Any] = {}
    try:
        c = points[0]
        first, _ = timed(lambda: ticks_between(engine, TRADES, symbols=[c[0]], start=c[1], end=c[2], limit=LIMIT))
        warmup = min(5, args.queries)
        log(f"measuring point queries ({args.queries} each, interleaved)...")
        point_times, point_rows = measure_point(engine, floor, table, points, warmup)
        engine_rows = [
            ticks_between(engine, TRADES, symbols=[p[0]], start=p[1], end=p[2], limit=LIMIT).rows.num_rows
            for p in points
        ]
        log(f"measuring 1-minute bars over a symbol-day ({args.queries} each, interleaved)...")
        bar_times, bar_rows = measure_bars(engine, floor, table, symbol_days, warmup)
        log(f"measuring latest per symbol ({args.scan_repeats} cold rounds, {args.queries} warm)...")
        latest_times, latest_rows = measure_latest(engine, floor, table, args.scan_repeats, args.queries, log)
        load_average["before_api"] = os.getloadavg()
        log(f"measuring the API ({args.clients} clients, {api_requests} requests)...")
        api = measure_api(settings.data_path, points, args.clients, api_requests, engine_rows, log)
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
    point, bar, latest = measurements["point"], measurements["bars"], measurements["latest"]
    ratios = {
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
            "api_requests": api_requests,
            "seed": args.seed,
            "quick": args.quick,
            "point_limit": LIMIT,
        },
        "table": stats | generation | {"symbols": args.symbols, "days": args.days},
        "measurements": measurements,
        "ratios": ratios,
        "targets": targets,
        "correctness": correctness,
        "notes": [
            "Methods are interleaved query by query with the same random choices; ratios are within this run.",
            "The table's files are in the OS page cache (generated or read just before): warm-cache figures.",
            "duckdb_floor: one DuckDB connection (2 threads) running read_parquet over all the table's files with"
            " the engine's own SQL; the engine prunes files with its cached plan first.",
            "pyiceberg: Table.scan(row_filter, selected_fields).to_arrow() per query (planning included), plus a"
            " pyarrow group_by for bars and latest.",
            "API: python -m api (uvicorn, access log on as shipped), rate limit off, latencies seen by httpx clients"
            " in this process (their CPU shares the same 2 cores).",
        ],
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
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
