"""The query benchmark's data: a synthetic trades table generated column-wise (random-walk prices, sequences per
symbol, Kafka positions per partition, each chunk sorted by (symbol, timestamp) as the real writer sorts) and
appended with pyiceberg, kept under the benchmark's data directory and reused when it already holds the requested
rows; and the table's size (files, row groups, bytes). benchmarks/query.py measures queries on it.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from k2.ingest.columnar import ARROW_SCHEMAS
from k2.ops.config import Settings
from k2.storage.catalog import TABLE_PROPERTIES, TRADES, ensure_tables, open_catalog

GENERATOR_VERSION = 1
META_FILE = "bench-meta.json"
EXCHANGE, TZ, TOPIC, PARTITIONS = "XNAS", "America/New_York", "market.trades", 4
FIRST_DAY = date(2024, 3, 4)  # a Monday
SESSION_US = int(6.5 * 3600 * 1_000_000)  # 09:30-16:00 local
MINUTE_US = 60_000_000
TICK = 1_000_000  # $0.01 in units of 1e-8 (decimal(18,8))
ONE = 100_000_000  # 1 in units of 1e-8


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
