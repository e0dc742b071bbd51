"""Deterministic replay from Iceberg: trades and quotes of a time range, merged in event order, as wire messages.

A replay pins one snapshot per table when it starts (the newest, or the newest committed at or before `as_of`), so
it is stable while data lands, and reads through the query engine in bounded chunks: time slices sized from the
planned files' row counts and time bounds (adapting to how many rows the filters really keep), each read with
parameterised SQL, ordered, and paged by the sort key when a slice holds more than a chunk. Nothing holds more
than one chunk of rows.

The order is total and depends only on the data, so two replays of the same snapshots produce identical streams:
`(timestamp, source_sequence (absent first), kind, exchange, symbol, source_topic, source_partition, source_offset)`.

Each row becomes a message in the K2 wire schema v2 — the fields of `k2.schemas.Trade`/`Quote` in their order,
decimals as exact strings, times as integer µs, the original ids, sequence, conditions, vendor data, message id
and ingestion time — so ingesting the replayed messages reproduces the rows (their source positions aside).

Targets: Kafka topics (`replay_to_kafka`, idempotent producer, delivery checked; `k2 replay`), NDJSON lines and an
Arrow IPC stream (`/v1/replay`). A `Pacer` spaces messages by their event-time differences divided by a speed
factor (None: as fast as possible), on a monotonic clock, against one origin so sleeps never accumulate drift.
"""

from __future__ import annotations

import io
import math
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from k2.catalog import QUOTES, TRADES
from k2.columnar import ARROW_SCHEMAS
from k2.query.engine import QueryEngine, Scan, to_datetime
from k2.query.params import QueryError
from k2.query.plan import DataFileEntry, TablePlan
from k2.query.ticks import where
from k2.schemas import KINDS, Kind

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


# --- wire messages ---------------------------------------------------------------------------------------------


class TradeWire(msgspec.Struct, gc=False):
    """`k2.schemas.Trade` field for field, in its order; decimals as their exact text (positional for speed)."""

    exchange: str
    symbol: str
    asset_class: str
    timestamp: int
    currency: str
    trade_id: str
    price: str
    quantity: str
    side: str
    trade_conditions: list[str]
    ingestion_timestamp: int | None
    source_sequence: int | None
    vendor_data: dict[str, str] | None
    message_id: str | None


class QuoteWire(msgspec.Struct, gc=False):
    """`k2.schemas.Quote` field for field, in its order (an empty side stays null; the flags as stored)."""

    exchange: str
    symbol: str
    asset_class: str
    timestamp: int
    currency: str
    quote_id: str
    bid_price: str | None
    bid_quantity: str | None
    ask_price: str | None
    ask_quantity: str | None
    ingestion_timestamp: int | None
    source_sequence: int | None
    vendor_data: dict[str, str] | None
    message_id: str | None
    one_sided: bool
    crossed: bool


WIRE_TYPES: dict[str, type[msgspec.Struct]] = {"trade": TradeWire, "quote": QuoteWire}
_DECIMALS = frozenset({"price", "quantity", "bid_price", "bid_quantity", "ask_price", "ask_quantity"})
_TIMES = frozenset({"timestamp", "ingestion_timestamp"})
_ENCODER = msgspec.json.Encoder(decimal_format="string")


class Message(NamedTuple):
    """One replayed row: its kind, event time (µs), Kafka key `EXCHANGE:SYMBOL` and wire bytes."""

    kind: str
    timestamp: int
    key: bytes
    value: bytes


def wire_values(chunk: pa.Table) -> list[bytes]:
    """The wire bytes of each row of a replay chunk (in `REPLAY_SCHEMA`), in the chunk's order.

    Column-wise: one Python list per field, structs built positionally, all encoded in one call as NDJSON and
    split (JSON text never holds a raw newline).
    """
    n = chunk.num_rows
    if n == 0:
        return []
    kinds = chunk.column("kind")
    values: list[bytes] = [b""] * n
    for kind in KINDS:
        mask = pc.equal(kinds, kind)
        count = pc.sum(mask).as_py() or 0
        if not count:
            continue
        rows = chunk if count == n else chunk.filter(mask)
        encoded = _encode_rows(kind, rows)
        if count == n:
            return encoded
        positions = pc.indices_nonzero(mask).to_pylist()
        for position, value in zip(positions, encoded, strict=True):
            values[position] = value
    return values


def _encode_rows(kind: str, rows: pa.Table) -> list[bytes]:
    wire = WIRE_TYPES[kind]
    columns = [_column(rows, name) for name in wire.__struct_fields__]
    encoded = _ENCODER.encode_lines(list(map(wire, *columns)))
    return encoded.split(b"\n")[:-1]


def _column(rows: pa.Table, name: str) -> list:
    column = rows.column(name)
    n = rows.num_rows
    if name == "trade_conditions":  # never null on the wire (a list, maybe empty)
        return [[] if v is None else v for v in column.to_pylist()]
    if column.null_count == n:
        return [None] * n
    if name in _TIMES:
        return column.cast(pa.int64()).to_pylist()
    if name in _DECIMALS:
        return _decimal_texts(column)
    values = column.to_pylist()
    if name == "vendor_data":  # an Arrow map comes back as (key, value) pairs
        return [None if v is None else dict(v) for v in values]
    return values


def _decimal_texts(column: pa.ChunkedArray) -> list[str | None]:
    """Exact plain-digit text (`187.25000000`); Arrow writes values below 1e-6 with an exponent: those are fixed."""
    texts = column.cast(pa.string())
    with_exponent = pc.match_substring(texts, "E")
    values = texts.to_pylist()
    if pc.any(with_exponent).as_py():
        for i in pc.indices_nonzero(with_exponent).to_pylist():
            values[i] = format(Decimal(values[i]), "f")
    return values


def instrument_keys(chunk: pa.Table) -> list[bytes]:
    exchange = chunk.column("exchange")
    joined = pc.binary_join_element_wise(exchange, chunk.column("symbol"), pa.scalar(":", exchange.type))
    return [key.encode() for key in joined.to_pylist()]


# --- planning and reading --------------------------------------------------------------------------------------


def parse_kinds(kinds: str | Sequence[str] | None) -> tuple[Kind, ...]:
    """`trade,quote` (default both) -> the kinds, in the order of `k2.schemas.KINDS`."""
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
        if start is not None and end is not None and start >= end:
            raise QueryError("start must be before end (the range is [start, end))")
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


# --- pacing ----------------------------------------------------------------------------------------------------


class Pacer:
    """Keeps wall time between messages = event-time difference / speed, against the first message's times.

    `speed=None`: no waiting. The schedule is absolute (origin + offset), so a late message does not delay the
    ones after it, and sleeps never add up to drift. Clock and sleep are injectable for tests.
    """

    def __init__(
        self,
        speed: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.speed = check_speed(speed)
        self._clock, self._sleep = clock, sleep
        self._origin: tuple[float, int] | None = None

    def due(self, event_us: int) -> float:
        """The monotonic-clock time at which the message of `event_us` is due (the first one: now)."""
        if self._origin is None:
            self._origin = (self._clock(), event_us)
        wall, event = self._origin
        return wall + (event_us - event) / 1e6 / self.speed  # type: ignore[operator]

    def delay(self, event_us: int) -> float:
        """Seconds until `event_us` is due (<= 0: now); 0 without a speed."""
        return 0.0 if self.speed is None else self.due(event_us) - self._clock()

    def wait(self, event_us: int) -> None:
        if self.speed is None:
            return
        left = self.delay(event_us)
        if left > 0:
            self._sleep(left)


def paced(messages: Iterable[Message], pacer: Pacer, max_group: int = 10_000) -> Iterator[list[Message]]:
    """Groups of messages, each handed out when its first message is due; a group holds only messages already
    due (or all of them without a speed), so a consumer writing each group at once keeps the schedule."""
    group: list[Message] = []
    for message in messages:
        if pacer.speed is not None and pacer.delay(message.timestamp) > 0:
            if group:
                yield group
                group = []
            pacer.wait(message.timestamp)
        group.append(message)
        if len(group) >= max_group:
            yield group
            group = []
    if group:
        yield group


# --- targets ---------------------------------------------------------------------------------------------------


def ndjson_stream(replay: Replay, pacer: Pacer | None = None) -> Iterator[bytes]:
    """NDJSON: one wire message per line, in replay order; a block of lines per chunk (or per due group)."""
    if pacer is None or pacer.speed is None:
        for chunk in replay.chunks(wire=True):
            yield b"\n".join(chunk.column("value").to_pylist()) + b"\n"
        return
    for group in paced(replay.messages(), pacer):
        yield b"".join(m.value + b"\n" for m in group)


def arrow_stream(replay: Replay, pacer: Pacer | None = None) -> Iterator[bytes]:
    """An Arrow IPC stream of the rows in `REPLAY_SCHEMA` (exact decimals, µs UTC times), a batch per chunk (or
    per group of rows due together when paced). The schema goes first, even for an empty replay."""
    sink = io.BytesIO()
    writer = pa.ipc.new_stream(sink, REPLAY_SCHEMA)

    def take() -> bytes:
        data = sink.getvalue()
        sink.seek(0)
        sink.truncate()
        return data

    yield take()
    for chunk in replay.chunks():
        if pacer is None or pacer.speed is None:
            for batch in chunk.to_batches():
                writer.write_batch(batch)
            yield take()
            continue
        times = chunk.column("timestamp").cast(pa.int64()).to_pylist()
        first = 0
        for i, event_us in enumerate(times):
            if pacer.delay(event_us) > 0:
                if i > first:
                    writer.write_table(chunk.slice(first, i - first))
                    yield take()
                    first = i
                pacer.wait(event_us)
        if first < len(times):
            writer.write_table(chunk.slice(first))
            yield take()
    writer.close()
    yield take()


@dataclass
class ReplayResult:
    rows: int
    seconds: float
    topics: dict[str, str]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def topics_for(
    prefix: str = "replay", trades_topic: str | None = None, quotes_topic: str | None = None, topic: str | None = None
) -> dict[str, str]:
    """Kind -> topic: one `topic` for both, else `<prefix>.trades` / `<prefix>.quotes` unless named."""
    if topic:
        return {"trade": topic, "quote": topic}
    return {"trade": trades_topic or f"{prefix}.trades", "quote": quotes_topic or f"{prefix}.quotes"}


def replay_to_kafka(
    replay: Replay,
    bootstrap: str,
    topics: dict[str, str],
    *,
    speed: float | None = None,
    progress: Callable[[int], None] | None = None,
    create_topics: bool = True,
    partitions: int = 4,
    producer_config: dict[str, object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Produce the replay keyed `EXCHANGE:SYMBOL` (one instrument, one partition, in order) with an idempotent,
    acks=all producer; returns once the broker confirmed every message (else `k2.kafka.DeliveryError`).

    When trades and quotes share one topic, each message carries a `k2.kind` header.
    """
    from k2.kafka import CheckedProducer, ensure_topics, make_producer

    wanted = {kind: topics[kind] for kind in replay.request.kinds}
    if create_topics:
        ensure_topics(bootstrap, sorted(set(wanted.values())), partitions)
    shared = len(set(wanted.values())) < len(wanted)
    headers = {kind: [("k2.kind", kind.encode())] for kind in KINDS} if shared else dict.fromkeys(KINDS)
    producer = CheckedProducer(make_producer(bootstrap, **(producer_config or {})))
    pacer = Pacer(speed, clock=clock, sleep=sleep)
    produce, poll = producer.produce, producer.producer.poll
    started = clock()
    sent = 0
    for chunk in replay.chunks(wire=True):
        kinds, keys, values = (chunk.column(name).to_pylist() for name in ("kind", "key", "value"))
        times = chunk.column("timestamp").to_pylist() if pacer.speed is not None else None
        for i, kind in enumerate(kinds):
            if times is not None:
                pacer.wait(times[i])
            produce(wanted[kind], values[i], keys[i], headers[kind])
            sent += 1
            if sent % 10_000 == 0:
                poll(0)
                if progress:
                    progress(sent)
        poll(0)
        if progress:
            progress(sent)
    delivered = producer.flush()
    return ReplayResult(delivered, clock() - started, wanted)


def describe(replay: Replay) -> str:
    request = replay.request
    span = " .. ".join(to_datetime(t).isoformat() if t is not None else "open" for t in (request.start, request.end))
    return f"replay {','.join(request.kinds)} [{span}) snapshots {replay.snapshot_ids}"
