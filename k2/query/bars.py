"""OHLCV bars with VWAP and trade count, at any interval, on the exchange's own clock.

Buckets are cut in the exchange's local time (a `1d` bar of ASX is a Sydney trading day, DST included), then
reported by their UTC start. Open and close are the first and last trade by `(timestamp, source_sequence,
source position)`, so trades in one microsecond keep their feed order. VWAP is exact decimal arithmetic: DuckDB
sums price x quantity exactly; the one division is done with Python's `Decimal` and rounded half-even to 8 places.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

import msgspec
import pyarrow as pa

from k2.query.engine import QueryEngine, Scan, Selection, to_datetime, to_micros
from k2.query.params import MAX_US, Interval, QueryError
from k2.query.ticks import Page, where
from k2.storage.catalog import PRICE, TRADES

_QUANTUM = Decimal(1).scaleb(-PRICE.scale)
_CONTEXT = Context(prec=60)
# Open and close are the first and last trade by this key (unsequenced trades first within a microsecond, as in
# the latest index); arg_min/arg_max stream, where ordered aggregates sort each bucket and were slower (figures:
# benchmarks/report.md, "Design measurements: Bars: open and close").
_KEY = '("timestamp", coalesce(source_sequence, -1), source_topic, source_partition, source_offset)'

_BARS = f"""
WITH ticks AS (
    SELECT timezone($tz, "timestamp") AS local_time, "timestamp", source_sequence, source_topic, source_partition,
           source_offset, price, quantity
    FROM {{src}} WHERE {{where}}
), bars AS (
    SELECT time_bucket(CAST($interval AS INTERVAL), local_time) AS bucket,
           arg_min(price, {_KEY}) AS open, max(price) AS high, min(price) AS low, arg_max(price, {_KEY}) AS close,
           sum(quantity) AS volume, count(*)::BIGINT AS trades,
           -- widened first: decimal(18,8) x decimal(18,8) overflows DuckDB's 18-digit product
           sum(CAST(price AS DECIMAL(38, 8)) * CAST(quantity AS DECIMAL(38, 8))) AS notional
    FROM ticks GROUP BY bucket
)
"""
_LAST_BEFORE = (
    'SELECT "timestamp", coalesce(source_sequence, -1) AS seq, source_topic, source_partition, source_offset, price'
    ' FROM {src} WHERE {where} ORDER BY "timestamp" DESC, seq DESC, source_topic DESC, source_partition DESC,'
    " source_offset DESC LIMIT 1"
)
_PLAIN = "SELECT timezone($tz, bucket) AS start, * EXCLUDE (bucket) FROM bars ORDER BY bucket LIMIT $limit"
_SPAN = 'SELECT min("timestamp") AS first, max("timestamp") AS last FROM {src} WHERE {where}'
# Empty intervals: carry the previous close, zero volume. Leading ones take the last trade before `start`.
_FILLED = """, grid AS (
    SELECT unnest(generate_series(
        time_bucket(CAST($interval AS INTERVAL), timezone($tz, $fill_start)),
        timezone($tz, $fill_end) - INTERVAL 1 MICROSECOND, CAST($interval AS INTERVAL))) AS bucket
), joined AS (
    SELECT grid.bucket, bars.* EXCLUDE (bucket),
           coalesce(last_value(bars.close IGNORE NULLS) OVER (
               ORDER BY grid.bucket ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), $seed) AS previous
    FROM grid LEFT JOIN bars USING (bucket)
)
SELECT timezone($tz, bucket) AS start,
       coalesce(open, previous) AS open, coalesce(high, previous) AS high, coalesce(low, previous) AS low,
       coalesce(close, previous) AS close, coalesce(volume, 0) AS volume, notional, coalesce(trades, 0) AS trades
FROM joined WHERE coalesce(close, previous) IS NOT NULL ORDER BY bucket LIMIT $limit
"""


def bars(engine: QueryEngine, selection: Selection, interval: Interval, tz: str, *, fill: bool = False) -> Page:
    """Bars of the selection's one instrument in `[start, end)`, at most `engine.max_rows` (the first); `fill` adds
    the empty intervals up to `end` (without it, to the last trade found), from `start` when a trade before it has a
    close to carry (else from the first trade found); `realtime` includes the Kafka tail above the snapshot's seam."""
    if selection.symbols is None or len(selection.symbols) != 1:
        raise QueryError("bars are of one symbol")
    (symbol,), exchange, start, end = selection.symbols, selection.exchange or "", selection.start, selection.end
    scan = engine.scan(TRADES, selection)
    params: dict[str, Any] = {"tz": tz, "interval": interval.sql, "limit": engine.max_rows}
    sql = _BARS.format(where=where(scan, params), src="{src}")
    seed, span = None, None
    if fill and (start is None or end is None or start < end):
        if start is not None:
            seed = _close_before(engine, symbol, exchange, start, scan.plan.snapshot_id)
        span = _fill_span(engine, scan, interval, start if seed is not None else None, end)
    if span is not None:
        params.update(fill_start=to_datetime(span[0]), fill_end=to_datetime(span[1]), seed=seed)
        sql += _FILLED
    else:
        sql += _PLAIN
    rows = engine.execute(sql, params, {"src": scan})
    return Page(_with_vwap(rows), scan.freshness)


def _fill_span(
    engine: QueryEngine, scan: Scan, interval: Interval, start: int | None, end: int | None
) -> tuple[int, int] | None:
    """The times the filled grid covers: `[start, end)`, either end not given taken from the trades the scan finds
    (the first; just after the last), cut after `engine.max_rows` intervals (the bars returned at most); None when
    there is nothing to fill."""
    if start is None or end is None:
        params: dict[str, Any] = {}
        found = engine.execute(_SPAN.format(where=where(scan, params), src="{src}"), params, {"src": scan})
        first, last = found.column("first")[0], found.column("last")[0]
        if not first.is_valid:
            return None
        start = first.value if start is None else start
        end = last.value + 1 if end is None else end
    end = min(end, start + (engine.max_rows + 1) * interval.approx_us, MAX_US)
    return (start, end) if start < end else None


def _close_before(engine: QueryEngine, symbol: str, exchange: str, start: int, snapshot_id: int | None) -> Any:
    """The last trade price before `start`: files are read newest first, a few at a time, until no file left
    can hold a later trade of the instrument (its upper time bound is below the best found)."""
    if snapshot_id is None:
        return None
    base = engine.scan(TRADES, Selection([symbol], exchange, end=start, snapshot_id=snapshot_id))
    remaining = sorted(base.files, key=lambda f: f.max_time or 0, reverse=True)
    best: tuple | None = None
    while remaining:
        group, remaining = remaining[:8], remaining[8:]
        scan = msgspec.structs.replace(base, files=group)
        params: dict[str, Any] = {}
        found = engine.execute(_LAST_BEFORE.format(where=where(scan, params), src="{src}"), params, {"src": scan})
        if found.num_rows:
            row = found.to_pylist()[0]
            key = (row["timestamp"], row["seq"], row["source_topic"], row["source_partition"], row["source_offset"])
            if best is None or key > best[0]:
                best = (key, row["price"])
        if best is not None:
            newest = to_micros(best[0][0])
            remaining = [f for f in remaining if f.max_time is None or f.max_time >= newest]
    return None if best is None else best[1]


def _with_vwap(rows: pa.Table) -> pa.Table:
    notional = rows.column("notional").to_pylist()
    volume = rows.column("volume").to_pylist()
    vwap = [
        None if n is None or not v else _CONTEXT.divide(Decimal(n), Decimal(v)).quantize(_QUANTUM, ROUND_HALF_EVEN)
        for n, v in zip(notional, volume, strict=True)
    ]
    rows = rows.drop_columns(["notional"])
    return rows.append_column("vwap", pa.array(vwap, pa.decimal128(PRICE.precision, PRICE.scale)))
