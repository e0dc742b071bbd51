"""Replayed rows as K2 wire messages (schema v2 JSON, exactly what `k2.model.schemas.encode` emits)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from k2.model.schemas import KINDS

# --- wire messages ---------------------------------------------------------------------------------------------


class TradeWire(msgspec.Struct, gc=False):
    """`k2.model.schemas.Trade` field for field, in its order; decimals as their exact text (positional for speed)."""

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
    """`k2.model.schemas.Quote` field for field, in its order (an empty side stays null; the flags as stored)."""

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
