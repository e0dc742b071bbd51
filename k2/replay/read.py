"""Planning a replay and reading it in bounded, totally ordered chunks through the query engine."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from k2.ingest.columnar import ARROW_SCHEMAS
from k2.model.schemas import KINDS, Kind
from k2.query.engine import QueryEngine, Scan
from k2.query.params import QueryError
from k2.query.plan import DataFileEntry, TablePlan
from k2.query.ticks import where
from k2.replay.wire import _DECIMALS, _TIMES, WIRE_TYPES, Message, instrument_keys, wire_values
from k2.storage.catalog import QUOTES, TRADES

TABLE_OF: dict[str, str] = {"trade": TRADES, "quote": QUOTES}


ORDER = ("timestamp", "source_sequence", "kind", "exchange", "symbol", "source_topic", "source_partition",
         "source_offset")  # fmt: skip
_SORT_SQL = (
    '"timestamp", coalesce(source_sequence, -1), kind, exchange, symbol, source_topic, source_partition, source_offset'
)
MAX_SPEED = 1_000_000.0


def _replay_schema() -> pa.Schema:
    """kind, then the columns of trades, then those only quotes have (the position columns last)."""
    trades, quotes = ARROW_SCHEMAS[TRADES], ARROW_SCHEMAS[QUOTES]
    position = ("source_topic", "source_partition", "source_offset")
    fields = [pa.field("kind", pa.string(), nullable=False)]
    fields += [f.with_nullable(True) for f in trades if f.name not in position]
    fields += [f.with_nullable(True) for f in quotes if f.name not in trades.names]
    fields += [trades.field(name) for name in position]
    return pa.schema(fields)


REPLAY_SCHEMA = _replay_schema()  # the rows of an Arrow replay: trades and quotes merged, nulls where a kind has none


# --- planning and reading --------------------------------------------------------------------------------------


def parse_kinds(kinds: str | Sequence[str] | None) -> tuple[Kind, ...]:
    """`trade,quote` (default both) -> the kinds, in the order of `k2.model.schemas.KINDS`."""
    if kinds is None:
        return KINDS
    items = [k.strip() for k in kinds.split(",")] if isinstance(kinds, str) else [k.strip() for k in kinds]
    items = [k.removesuffix("s") for k in items if k]
    unknown = [k for k in items if k not in KINDS]
    if unknown or not items:
        raise QueryError(f"kinds: {', '.join(unknown) or 'none given'}; choose trade, quote or trade,quote")
    return tuple(k for k in KINDS if k in items)


def check_speed(speed: float | None) -> float | None:
    if speed is None:
        return None
    if not (isinstance(speed, int | float) and math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise QueryError(f"speed must be a number above 0 and at most {MAX_SPEED:g} (omit it: as fast as possible)")
    return float(speed)


class _Density:
    """The planned rows as a piecewise-linear cumulative count over time (each file's rows spread evenly over
    its time bounds), to cut time slices of about a given number of rows."""

    def __init__(self, spans: list[tuple[int, int, int]], lo: int, hi: int):
        events: dict[int, float] = {lo: 0.0, hi: 0.0}
        for a, b, rows in spans:
            rate = rows / (b - a)
            events[a] = events.get(a, 0.0) + rate
            events[b] = events.get(b, 0.0) - rate
        self.times = sorted(events)
        self.cumulative = [0.0]
        rate = 0.0
        for left, right in zip(self.times, self.times[1:], strict=False):
            rate += events[left]
            self.cumulative.append(self.cumulative[-1] + max(rate, 0.0) * (right - left))

    def at(self, t: int) -> float:
        i = bisect_right(self.times, t) - 1
        if i >= len(self.times) - 1:
            return self.cumulative[-1]
        left, right = self.times[i], self.times[i + 1]
        c0, c1 = self.cumulative[i], self.cumulative[i + 1]
        return c0 + (c1 - c0) * (t - left) / (right - left)

    def time_at(self, target: float) -> int:
        """The first time at which the cumulative estimate reaches `target` (the end when it never does)."""
        i = bisect_right(self.cumulative, target)
        if i >= len(self.cumulative):
            return self.times[-1]
        left, right = self.times[i - 1], self.times[i]
        c0, c1 = self.cumulative[i - 1], self.cumulative[i]
        return left + math.ceil((target - c0) / (c1 - c0) * (right - left)) if c1 > c0 else right


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay: `[start, end)` in µs (None: unbounded), symbols (None: all), kinds, snapshot time."""

    start: int | None = None
    end: int | None = None
    symbols: tuple[str, ...] | None = None
    exchange: str | None = None
    kinds: tuple[Kind, ...] = KINDS
    as_of: int | None = None


class Replay:
    """A replay pinned to one snapshot per table; iterate it any number of times, always with the same result."""

    def __init__(
        self,
        engine: QueryEngine,
        *,
        start: int | None = None,
        end: int | None = None,
        symbols: Sequence[str] | None = None,
        exchange: str | None = None,
        kinds: str | Sequence[str] | None = None,
        as_of: int | None = None,
        snapshot_ids: dict[str, int] | None = None,
        chunk_rows: int = 50_000,
    ):
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")
        self.engine = engine
        self.request = ReplayRequest(
            start, end, tuple(symbols) if symbols else None, exchange or None, parse_kinds(kinds), as_of
        )
        self.chunk_rows = chunk_rows
        self.plans: dict[str, tuple[Any, TablePlan]] = {}
        for kind in self.request.kinds:
            name = TABLE_OF[kind]
            snapshot_id = (snapshot_ids or {}).get(name)
            table, plan = engine.plan(name, snapshot_id=snapshot_id, as_of=None if snapshot_id else as_of)
            if plan.snapshot_id is not None:
                self.plans[kind] = (table, plan)
        self._count: int | None = None

    @property
    def snapshot_ids(self) -> dict[str, int | None]:
        """The pinned snapshot per table (None: the table has none, so that kind replays nothing)."""
        return {TABLE_OF[k]: (self.plans[k][1].snapshot_id if k in self.plans else None) for k in self.request.kinds}

    def _files(self, kind: str, start: int | None, end: int | None) -> list[DataFileEntry]:
        return self.plans[kind][1].prune(self.request.symbols, start, end)

    def _scan(self, kind: str, start: int | None, end: int | None) -> Scan:
        table, plan = self.plans[kind]
        request = self.request
        return Scan(TABLE_OF[kind], table, plan, self._files(kind, start, end), request.symbols, request.exchange,
                    start, end)  # fmt: skip

    def count(self) -> int:
        """How many rows the replay yields (one counting query over the pinned snapshots)."""
        if self._count is None:
            total = 0
            for kind in self.plans:
                scan = self._scan(kind, self.request.start, self.request.end)
                if not scan.files:
                    continue
                params: dict[str, Any] = {}
                sql = f"SELECT count(*) AS n FROM {{src}} WHERE {where(scan, params)}"
                total += self.engine.execute(sql, params, {"src": scan}).column("n")[0].as_py()
            self._count = total
        return self._count

    def planned_rows(self) -> int:
        """Rows of the files the replay may read (an upper bound of `count()`, from metadata only)."""
        return sum(f.rows for kind in self.plans for f in self._files(kind, self.request.start, self.request.end))

    # --- chunks --------------------------------------------------------------------------------------------

    def chunks(self, *, wire: bool = False) -> Iterator[pa.Table]:
        """The rows in replay order, `chunk_rows` at most at a time, as Arrow tables in `REPLAY_SCHEMA`; with
        `wire`, as `WIRE_CHUNK` instead: kind, event time, Kafka key and the wire message (made by DuckDB)."""
        request = self.request
        files = [f for kind in self.plans for f in self._files(kind, request.start, request.end)]
        if not files:
            return
        lows = [f.min_time for f in files]
        highs = [f.max_time for f in files]
        lo = request.start if request.start is not None else (None if None in lows else min(lows))  # type: ignore[type-var]
        hi = request.end if request.end is not None else (None if None in highs else max(highs) + 1)  # type: ignore[operator,type-var]
        if lo is None or hi is None or lo >= hi:  # no usable bounds: one slice over everything, paged
            yield from self._slice(request.start, request.end, wire)
            return
        spans = []
        for f in files:
            a = lo if f.min_time is None else max(f.min_time, lo)
            b = hi if f.max_time is None else min(f.max_time + 1, hi)
            if a < b:
                spans.append((a, b, f.rows))
        density = _Density(spans, lo, hi)
        # Cut slices of about `chunk_rows` estimated rows, scaled by how many rows the filters really kept so far.
        at, estimated, seen = lo, 0.0, 0
        while at < hi:
            ratio = min(max(seen / estimated, 0.01), 1.0) if estimated >= self.chunk_rows else 1.0
            until = min(max(density.time_at(density.at(at) + self.chunk_rows / ratio), at + 1), hi)
            for chunk in self._slice(at, until, wire):
                seen += chunk.num_rows
                yield chunk
            estimated += density.at(until) - density.at(at)
            at = until

    def _slice(self, start: int | None, end: int | None, wire: bool) -> Iterator[pa.Table]:
        """The rows of `[start, end)` in order, paged by the sort key."""
        scans = {kind: self._scan(kind, start, end) for kind in self.plans}
        scans = {kind: scan for kind, scan in scans.items() if scan.files}
        if not scans:
            return
        after: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {"limit": self.chunk_rows}
            branches = []
            for kind, scan in scans.items():
                clause = where(scan, params)
                if after is not None:  # the next page of a dense slice: strictly after the last row's sort key
                    clause += (
                        f" AND (\"timestamp\", coalesce(source_sequence, -1), '{kind}', exchange, symbol, source_topic,"
                        " source_partition, source_offset) > ($a_ts, $a_seq, $a_kind, $a_exchange, $a_symbol,"
                        " $a_topic, $a_partition, $a_offset)"
                    )
                branches.append(f"SELECT '{kind}' AS kind, * FROM {{{kind}}} WHERE {clause}")
            if after is not None:
                params.update(after)
            sql = f"SELECT * FROM ({' UNION ALL BY NAME '.join(branches)}) ORDER BY {_SORT_SQL} LIMIT $limit"
            if wire:  # the JSON is made after sorting and cutting (lighter rows to sort), kept in order
                sql = f"SELECT {_wire_projection(tuple(scans))} FROM ({sql}) ORDER BY {_SORT_SQL}"
            rows = self.engine.execute(sql, params, scans)
            if rows.num_rows:
                yield _wire_chunk(rows) if wire else _conform(rows)
            if rows.num_rows < self.chunk_rows:
                return
            last = {name: rows.column(name)[rows.num_rows - 1].as_py() for name in ORDER}
            after = {
                "a_ts": last["timestamp"],
                "a_seq": -1 if last["source_sequence"] is None else last["source_sequence"],
                "a_kind": last["kind"],
                "a_exchange": last["exchange"],
                "a_symbol": last["symbol"],
                "a_topic": last["source_topic"],
                "a_partition": last["source_partition"],
                "a_offset": last["source_offset"],
            }

    def messages(self) -> Iterator[Message]:
        """Every replayed row as a wire message, in replay order."""
        for chunk in self.chunks(wire=True):
            yield from chunk_messages(chunk)


def chunk_messages(chunk: pa.Table) -> list[Message]:
    """The messages of a chunk: a `WIRE_CHUNK` (from DuckDB), or rows in `REPLAY_SCHEMA` (encoded here)."""
    kinds = chunk.column("kind").to_pylist()
    times = chunk.column("timestamp").cast(pa.int64()).to_pylist()
    if chunk.schema.names == WIRE_CHUNK.names:
        keys, values = chunk.column("key").to_pylist(), chunk.column("value").to_pylist()
    else:
        keys, values = instrument_keys(chunk), wire_values(chunk)
    return list(map(Message, kinds, times, keys, values))


def _wire_json(kind: str) -> str:
    """SQL building the wire message of a row: the fields of `TradeWire`/`QuoteWire` in order, decimals as their
    exact text (DuckDB writes plain digits at the column's scale), times as µs; `to_json` escapes like msgspec."""
    parts = []
    for name in WIRE_TYPES[kind].__struct_fields__:
        if name in _DECIMALS:
            value = f'CAST("{name}" AS VARCHAR)'
        elif name in _TIMES:
            value = f'epoch_us("{name}")'
        elif name == "trade_conditions":
            value = 'coalesce("trade_conditions", []::VARCHAR[])'
        else:
            value = f'"{name}"'
        parts.append(f'"{name}" := {value}')
    return f"to_json(struct_pack({', '.join(parts)}))"


def _wire_projection(kinds: tuple[str, ...]) -> str:
    if len(kinds) == 1:
        value = _wire_json(kinds[0])
    else:
        value = f"CASE kind WHEN 'trade' THEN {_wire_json('trade')} ELSE {_wire_json('quote')} END"
    return (
        'kind, "timestamp", source_sequence, exchange, symbol, source_topic, source_partition, source_offset, '
        f"exchange || ':' || symbol AS key, {value} AS value"
    )


WIRE_CHUNK = pa.schema(
    [("kind", pa.string()), ("timestamp", pa.int64()), ("key", pa.large_binary()), ("value", pa.large_binary())]
)


def _wire_chunk(rows: pa.Table) -> pa.Table:
    """Text to bytes by an Arrow cast (UTF-8 as is; DuckDB's own VARCHAR->BLOB cast would read `\\x..` escapes)."""
    columns = [rows.column(name) for name in WIRE_CHUNK.names]
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, WIRE_CHUNK, strict=True)], schema=WIRE_CHUNK)


def _conform(rows: pa.Table) -> pa.Table:
    """DuckDB's result in `REPLAY_SCHEMA`: the columns a kind lacks are nulls, types exactly the tables' own."""
    n = rows.num_rows
    arrays = []
    for field in REPLAY_SCHEMA:
        if field.name in rows.column_names:
            column = rows.column(field.name)
            arrays.append(column if column.type == field.type else column.cast(field.type))
        else:
            arrays.append(pa.chunked_array([pa.nulls(n, field.type)]))
    return pa.Table.from_arrays(arrays, schema=REPLAY_SCHEMA)
