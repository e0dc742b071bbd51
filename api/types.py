"""What the API sends: msgspec types, small and explicit. Prices and quantities are decimals, sent as strings;
times are RFC 3339 in UTC with microseconds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class Tail(msgspec.Struct):
    """The part of a realtime result read from Kafka beyond the snapshot's seam."""

    rows: int
    offsets: dict[str, tuple[int, int]]  # partition -> [first offset, next offset) read from the tail
    complete: bool  # False: the tail was capped or still catching up; the newest messages may be missing
    min_event_time: datetime | None
    max_event_time: datetime | None


class Meta(msgspec.Struct, omit_defaults=True):
    """Freshness of the data behind a response: the snapshot read and how far it reaches."""

    table: str
    snapshot_id: int | None
    committed_at: datetime | None
    max_event_time: datetime | None
    count: int
    offsets: dict[str, int] = {}
    next_cursor: str | None = None
    tail: Tail | None = None  # freshness=realtime only
    truncated: bool = False  # the answer stopped at K2_QUERY_MAX_ROWS rows (bars): narrow the range for the rest


class _TickRow(msgspec.Struct, omit_defaults=True):
    """Fields every tick has; any of them is left out when the request's `fields=` does not name it."""

    exchange: str | UnsetType = UNSET
    symbol: str | UnsetType = UNSET
    asset_class: str | UnsetType = UNSET
    timestamp: datetime | UnsetType = UNSET
    ingestion_timestamp: datetime | UnsetType | None = UNSET
    currency: str | UnsetType = UNSET
    source_sequence: int | UnsetType | None = UNSET
    message_id: str | UnsetType | None = UNSET
    vendor_data: dict[str, str | None] | UnsetType | None = UNSET
    source_topic: str | UnsetType = UNSET
    source_partition: int | UnsetType = UNSET
    source_offset: int | UnsetType = UNSET
    # Columns the table gained after this API was written (schema evolution), by name: they reach JSON clients
    # without a new API version (CSV, Parquet and Arrow carry them as ordinary columns).
    extra: dict[str, Any] | UnsetType = UNSET


class TradeRow(_TickRow):
    trade_id: str | UnsetType = UNSET
    price: Decimal | UnsetType = UNSET
    quantity: Decimal | UnsetType = UNSET
    side: str | UnsetType = UNSET
    trade_conditions: list[str | None] | UnsetType | None = UNSET


class QuoteRow(_TickRow):
    quote_id: str | UnsetType = UNSET
    bid_price: Decimal | UnsetType | None = UNSET
    bid_quantity: Decimal | UnsetType | None = UNSET
    ask_price: Decimal | UnsetType | None = UNSET
    ask_quantity: Decimal | UnsetType | None = UNSET
    one_sided: bool | UnsetType = UNSET
    crossed: bool | UnsetType = UNSET


class Bar(msgspec.Struct):
    start: datetime  # the bucket's start in UTC (cut on the exchange's local clock)
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    vwap: Decimal | None  # None for a filled (empty) interval
    trades: int


class Latest(msgspec.Struct):
    exchange: str
    symbol: str
    trade: TradeRow | None
    quote: QuoteRow | None


class TradeWithQuote(msgspec.Struct):
    exchange: str
    symbol: str
    timestamp: datetime
    trade_id: str
    price: Decimal
    quantity: Decimal
    side: str
    source_sequence: int | None
    quote_timestamp: datetime | None  # None: no quote within the tolerance
    quote_id: str | None
    bid_price: Decimal | None
    bid_quantity: Decimal | None
    ask_price: Decimal | None
    ask_quantity: Decimal | None
    spread: Decimal | None
    mid: Decimal | None


class Instrument(msgspec.Struct):
    exchange: str
    symbol: str
    trades: int
    quotes: int
    first_time: datetime | None
    last_time: datetime | None
    last_trade_time: datetime | None
    last_price: Decimal | None


class Snapshot(msgspec.Struct):
    snapshot_id: int
    parent_id: int | None
    committed_at: datetime
    operation: str | None
    added_rows: int
    total_rows: int
    offsets: dict[str, int] | None


class SequenceGap(msgspec.Struct):
    event: str
    kind: str
    exchange: str
    symbol: str
    session: int
    expected_sequence: int
    received_sequence: int
    missing_count: int
    timestamp: datetime
    previous_timestamp: datetime
    source_topic: str
    source_partition: int
    source_offset: int


class DeadLetter(msgspec.Struct):
    source_topic: str
    source_partition: int
    source_offset: int
    kind: str
    reason: str
    detail: str
    raw: bytes  # base64 in JSON
    source_timestamp: datetime | None


class Page(msgspec.Struct):
    """A list of rows and where they came from."""

    meta: Meta


class TradesPage(Page):
    data: list[TradeRow]


class QuotesPage(Page):
    data: list[QuoteRow]


class BarsPage(Page):
    data: list[Bar]
    exchange: str
    timezone: str
    interval: str


class LatestPage(msgspec.Struct):
    data: list[Latest]
    trades: Meta
    quotes: Meta


class AsOfPage(Page):
    data: list[TradeWithQuote]
    quotes: Meta


class InstrumentsPage(msgspec.Struct):
    data: list[Instrument]


class SnapshotsPage(msgspec.Struct):
    table: str
    data: list[Snapshot]


class GapsPage(Page):
    data: list[SequenceGap]


class DeadLettersPage(Page):
    data: list[DeadLetter]


class Health(msgspec.Struct):
    status: str
    detail: dict[str, str] = {}
