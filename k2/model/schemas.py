"""Wire schemas of the K2 market-data model, version 2, and the records the flow derives from them.

Prices and quantities are `Decimal` from the first byte: msgspec decodes JSON numbers and strings straight to
`Decimal` without going through float. Timestamps are integer microseconds since the epoch, UTC.
Structs are `gc=False`: they hold no cycles, and the collector otherwise walks millions of them per batch.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Literal

import msgspec

SCHEMA_VERSION = 2

Kind = Literal["trade", "quote"]
KINDS: tuple[Kind, ...] = ("trade", "quote")


class AssetClass(enum.StrEnum):
    EQUITIES = "equities"
    CRYPTO = "crypto"
    FUTURES = "futures"
    OPTIONS = "options"
    FX = "fx"


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    SELL_SHORT = "SELL_SHORT"
    UNKNOWN = "UNKNOWN"


class Trade(msgspec.Struct, gc=False, kw_only=True):
    exchange: str
    symbol: str
    asset_class: AssetClass
    timestamp: int  # exchange time, µs UTC
    currency: str
    trade_id: str
    price: Decimal
    quantity: Decimal
    side: Side
    trade_conditions: list[str] = []
    ingestion_timestamp: int | None = None  # µs UTC; when absent, the source record's timestamp is used
    source_sequence: int | None = None  # per instrument
    vendor_data: dict[str, str] | None = None
    message_id: str | None = None  # informational; never the dedupe key


class Quote(msgspec.Struct, gc=False, kw_only=True):
    exchange: str
    symbol: str
    asset_class: AssetClass
    timestamp: int
    currency: str
    quote_id: str
    # An empty side is null or zero price (a one-sided book, e.g. pre-open): kept and flagged.
    bid_price: Decimal | None = None
    bid_quantity: Decimal | None = None
    ask_price: Decimal | None = None
    ask_quantity: Decimal | None = None
    ingestion_timestamp: int | None = None
    source_sequence: int | None = None
    vendor_data: dict[str, str] | None = None
    message_id: str | None = None
    # Derived by validation from the prices; whatever the wire says is overwritten.
    one_sided: bool = False
    crossed: bool = False


Record = Trade | Quote

AssetClassName = Literal["equities", "crypto", "futures", "options", "fx"]
SideName = Literal["BUY", "SELL", "SELL_SHORT", "UNKNOWN"]


class TradeRow(msgspec.Struct, gc=False, kw_only=True):
    """A validated trade as the flow carries it: money as its exact decimal text, checked to fit decimal(18,8).

    Same wire fields and types as `Trade` (so it accepts no message that `Trade` rejects); decoding a decimal's
    text costs a fraction of building a `Decimal`, and Arrow turns the texts into decimal128 column-wise.
    """

    exchange: str
    symbol: str
    asset_class: AssetClassName
    timestamp: int
    currency: str
    trade_id: str
    price: str
    quantity: str
    side: SideName
    trade_conditions: list[str] = []
    ingestion_timestamp: int | None = None
    source_sequence: int | None = None
    vendor_data: dict[str, str] | None = None
    message_id: str | None = None


class QuoteRow(msgspec.Struct, gc=False, kw_only=True):
    """A validated quote as the flow carries it: decimals as exact text, an empty side as null price and size.

    The flags `one_sided` and `crossed` are derived column-wise from the prices when the batch becomes Arrow; the
    wire's values are only type-checked (as `Quote` does) and never used.
    """

    exchange: str
    symbol: str
    asset_class: AssetClassName
    timestamp: int
    currency: str
    quote_id: str
    bid_price: str | None = None
    bid_quantity: str | None = None
    ask_price: str | None = None
    ask_quantity: str | None = None
    ingestion_timestamp: int | None = None
    source_sequence: int | None = None
    vendor_data: dict[str, str] | None = None
    message_id: str | None = None
    wire_one_sided: bool = msgspec.field(default=False, name="one_sided")
    wire_crossed: bool = msgspec.field(default=False, name="crossed")


Row = TradeRow | QuoteRow


class DeadLetter(msgspec.Struct, gc=False, kw_only=True):
    """A rejected message: its raw bytes, why, and where it came from."""

    source_topic: str
    source_partition: int
    source_offset: int
    kind: str
    reason: str  # machine-readable, e.g. `missing_field:price`
    detail: str  # human-readable
    raw: bytes
    source_timestamp: int | None = None  # µs, the source record's own timestamp if it has one


class SequenceEvent(msgspec.Struct, gc=False, kw_only=True):
    """A break in an instrument's sequence: a gap (with the missing range) or a reset (a new session)."""

    event: Literal["gap", "reset"]
    kind: str
    exchange: str
    symbol: str
    session: int
    expected_sequence: int
    received_sequence: int
    missing_count: int  # 0 for resets
    timestamp: int  # event time of the message that revealed it
    previous_timestamp: int
    source_topic: str
    source_partition: int
    source_offset: int


def encode(record: Record) -> bytes:
    """Wire bytes of a record (decimals as JSON strings, so no consumer parses them as floats)."""
    return _ENCODER.encode(record)


_ENCODER = msgspec.json.Encoder(decimal_format="string")
