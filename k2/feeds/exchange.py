"""The adapter shape every exchange module fills in: its URL, subscriptions, pings, and how one frame normalises."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from k2.feeds.normalise import (
    ASSET_CLASS,
    FrameError,
    Instrument,
    Parsed,
    decimal_text,
    decode_frame,
    field_of,
    vendor_data,
)
from k2.model.schemas import Kind, QuoteRow, TradeRow

_encode = msgspec.json.Encoder().encode


class Exchange:
    """One exchange's public market-data websocket, for a set of instruments and the streams asked for.

    `parse` never raises: a frame is data, a heartbeat, control (acks, pongs, status), an exchange error, malformed
    (not JSON, or a data frame missing what K2 needs: its raw bytes then go to that kind's topic) or unknown.
    """

    name: ClassVar[str]
    default_url: ClassVar[str]
    # Reconnect when nothing (not even a heartbeat) arrived for this long; None: rely on websocket pings only.
    idle_seconds: ClassVar[float | None] = None
    ping_seconds: ClassVar[float | None] = None  # an application-level ping this often, where the exchange has one

    def __init__(self, instruments: list[Instrument], *, trades: bool = True, quotes: bool = True):
        if not (trades or quotes):
            raise ValueError("nothing to subscribe to: ask for trades, quotes or both")
        self.instruments, self.trades, self.quotes = instruments, trades, quotes
        self._by_native = {self.native(i): i for i in instruments}
        self._request_ids = itertools.count(1)
        self._skip: dict[tuple[str, ...], frozenset[str]] = {}  # `used` as a set, made once per field list

    def native(self, instrument: Instrument) -> str:
        """The exchange's name for an instrument."""
        raise NotImplementedError

    def subscriptions(self) -> list[str]:
        """The text frames to send after every (re)connect."""
        raise NotImplementedError

    def ping(self) -> str | None:
        return None

    def normalise(self, frame: dict[str, Any], received_us: int) -> Parsed:
        """Classify and normalise a decoded JSON object (adapters call `data` for market-data frames)."""
        raise NotImplementedError

    def parse(self, raw: str | bytes, received_us: int) -> Parsed:
        try:
            frame = decode_frame(raw)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            return Parsed("malformed", detail=f"not JSON: {exc}")
        if not isinstance(frame, dict):
            return Parsed("malformed", detail="not a JSON object")
        return self.normalise(frame, received_us)

    def instrument(self, native: Any) -> Instrument:
        found = self._by_native.get(native) if isinstance(native, str) else None
        if found is None:
            raise FrameError(f"symbol {native!r} was not subscribed")
        return found

    def trade(
        self, frame: dict[str, Any], received_us: int, trade_id: int, timestamp: int, side: str, used: tuple[str, ...]
    ) -> TradeRow:
        """A trade from `frame`. `used` names the fields K2 has columns for, its first three the symbol, price and
        quantity; the others go to `vendor_data`. The trade id (consecutive per pair) is `source_sequence` too."""
        common = self._common(frame, received_us, timestamp, used)
        price, quantity = (decimal_text(frame, name) for name in used[1:3])
        return TradeRow(
            **common, trade_id=str(trade_id), price=price, quantity=quantity, side=side, source_sequence=trade_id
        )

    def quote(
        self, frame: dict[str, Any], received_us: int, quote_id: object, timestamp: int | None, used: tuple[str, ...]
    ) -> QuoteRow:
        """A best bid/offer from `frame`; the first five of `used` name its symbol, bid, bid size, ask and ask size.
        Without an exchange time the frame's arrival is its timestamp (`vendor_data["timestamp_source"]`)."""
        common = self._common(frame, received_us, timestamp, used)
        bid, bid_size, ask, ask_size = (decimal_text(frame, name) for name in used[1:5])
        return QuoteRow(
            **common, quote_id=str(quote_id), bid_price=bid, bid_quantity=bid_size, ask_price=ask, ask_quantity=ask_size
        )

    def _common(self, frame: dict[str, Any], received_us: int, timestamp: int | None, used: tuple[str, ...]) -> dict:
        native = field_of(frame, used[0])
        instrument = self.instrument(native)
        skip = self._skip.get(used)
        if skip is None:
            skip = self._skip[used] = frozenset(used)
        vendor = vendor_data(frame, skip, native)
        if timestamp is None:
            timestamp, vendor["timestamp_source"] = received_us, "received"
        return {
            "exchange": self.name,
            "symbol": instrument.symbol,
            "asset_class": ASSET_CLASS,
            "currency": instrument.quote,
            "timestamp": timestamp,
            "ingestion_timestamp": received_us,
            "vendor_data": vendor,
        }

    def request_id(self) -> int:
        return next(self._request_ids)

    @staticmethod
    def json(value: object) -> str:
        return _encode(value).decode()

    @staticmethod
    def data(kind: Kind, build: Callable[[Parsed], None]) -> Parsed:
        """Run `build` to fill a data frame's messages; a `FrameError` makes the frame malformed, its raw bytes
        bound for `kind`'s topic (entries built before the bad one are still published)."""
        parsed = Parsed("data")
        try:
            build(parsed)
        except FrameError as exc:
            parsed.outcome, parsed.detail, parsed.raw_to = "malformed", str(exc), kind
        return parsed
