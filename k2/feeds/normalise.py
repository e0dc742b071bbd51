"""What every exchange adapter shares: symbols, exact texts, times, the quote sequence, and the wire encoding.

- Symbols: users name instruments `BASE-QUOTE` (`BTC-USD`); each adapter maps that to the exchange's own name
  (`BTCUSD`, `BTC-USD`, `BTC/USD`) and back. K2 stores the `BASE-QUOTE` form in `symbol` (one name on every
  exchange), `QUOTE` in `currency` and the exchange's name in `vendor_data["native_symbol"]`.
- Decimals: the exchange's text, as sent. Frames are decoded with `float_hook=str`, so a JSON number (Kraken v2)
  arrives as its literal text too, never through a float; K2's validation then checks it fits decimal(18,8).
- Times: integer µs UTC from the exchange's own clock (milliseconds, or RFC 3339 with up to nanoseconds: floored
  to µs); `ingestion_timestamp` is when the frame arrived here.
- Quote sequence (`QuoteSequencer`): see its docstring; trades carry the exchange's trade id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from k2.model.schemas import Kind, QuoteRow, TradeRow

ASSET_CLASS = "crypto"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
decode_frame = msgspec.json.Decoder(float_hook=str).decode  # numbers keep their literal text
_encode = msgspec.json.Encoder().encode


class FrameError(ValueError):
    """A data frame that cannot be normalised (a field missing or of the wrong type); the message says which."""


@dataclass(frozen=True, slots=True)
class Instrument:
    base: str
    quote: str

    @property
    def symbol(self) -> str:
        return f"{self.base}-{self.quote}"


def parse_symbols(text: str) -> list[Instrument]:
    """`BTC-USD,ETH-USDT` (or `BTC/USD`) -> instruments; raises ValueError naming a symbol without both halves."""
    instruments = []
    for raw in filter(None, (part.strip() for part in text.split(","))):
        base, sep, quote = raw.upper().replace("/", "-").partition("-")
        if not (sep and base and quote) or "-" in quote:
            raise ValueError(f"symbol {raw!r}: give BASE-QUOTE, e.g. BTC-USD")
        instruments.append(Instrument(base, quote))
    if not instruments:
        raise ValueError("no symbols given (e.g. --symbols BTC-USD,ETH-USD)")
    return instruments


@dataclass(slots=True)
class FeedMessage:
    """One normalised message, ready for its topic: keyed `EXCHANGE:SYMBOL` like every K2 producer."""

    kind: Kind
    key: bytes
    value: bytes


@dataclass(slots=True)
class Parsed:
    """What one frame was: `outcome` (data | heartbeat | control | error | malformed | unknown), the messages it
    carried, and for a malformed data frame the kind whose topic takes its raw bytes (so it lands as a dead letter)."""

    outcome: str
    trades: list[TradeRow] = field(default_factory=list)
    quotes: list[tuple[QuoteRow, tuple]] = field(default_factory=list)  # (row, the exchange's order of it)
    detail: str = ""
    raw_to: Kind | None = None


def micros_from_ms(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(f"{name} is not an integer of milliseconds: {value!r}")
    return value * 1_000


def micros_from_iso(value: Any, name: str) -> int:
    """RFC 3339 text -> µs since the epoch, UTC (digits past µs are floored, as `fromisoformat` does)."""
    if not isinstance(value, str):
        raise FrameError(f"{name} is not an RFC 3339 time: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FrameError(f"{name} is not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // _MICROSECOND


# These run for every field of every frame: exact type checks (`type(v) is str`), cheaper than isinstance, and
# right here since JSON gives only str, int, bool, None, list and dict (a bool is no int by `type`).


def text(value: Any, name: str) -> str:
    """A decimal's exact text: a JSON string as sent, or a JSON number's literal (decoded by `decode_frame`)."""
    kind = type(value)
    if kind is str and value:
        return value
    if kind is int:
        return str(value)
    raise FrameError(f"{name} is not a number: {value!r}")


def decimal_text(frame: dict[str, Any], name: str) -> str:
    return text(field_of(frame, name), name)


def integer(value: Any, name: str) -> int:
    if type(value) is not int:
        raise FrameError(f"{name} is not an integer: {value!r}")
    return value


def field_of(frame: dict[str, Any], name: str) -> Any:
    try:
        return frame[name]
    except KeyError:
        raise FrameError(f"no {name!r} in the frame") from None


def vendor_data(frame: dict[str, Any], used: frozenset[str], native_symbol: str) -> dict[str, str]:
    """The frame's fields not in `used` as text (K2 has no column for them); nested values as compact JSON."""
    out = {"native_symbol": native_symbol}
    for key, value in frame.items():
        if key in used:
            continue
        kind = type(value)
        if kind is str:
            out[key] = value
        elif kind is int:
            out[key] = str(value)
        elif kind is bool:
            out[key] = "true" if value else "false"
        elif value is not None:
            out[key] = _encode(value).decode()
    return out


class QuoteSequencer:
    """`source_sequence` for quote streams, which no exchange here numbers per instrument (Binance's book update
    id, Coinbase's product sequence and Kraken's ticker skip numbers this stream never sees).

    The feed numbers each instrument's quotes itself, 1 apart, starting at the process's start in µs (so a restarted
    feed continues above any number an earlier run used, as long as it published under one quote per µs). At every
    reconnect one number is left out: K2's sequence check records that hole as a gap in `sequence_gaps` whose
    `previous_timestamp`..`timestamp` is the span the feed was away (`missing_count` 1: how many quotes the exchange
    sent meanwhile is unknown). A restart shows as a gap too, with a `missing_count` that counts µs, not quotes.

    A quote the exchange sends again after a reconnect (its snapshot of the current book) has an order no newer than
    the last one published (`order`: the exchange's own number first, then what else tells two apart; older
    first part, or the same order, is a re-send); it is not published
    again and is counted as `resent`. Run one feed process per exchange and instrument: two would interleave numbers.
    """

    def __init__(self, start_us: int):
        self._next: dict[str, int] = {}
        self._last_order: dict[str, tuple] = {}
        self._start = start_us

    def reconnected(self) -> None:
        for symbol in self._next:
            self._next[symbol] += 1  # the hole that marks the span

    def assign(self, row: QuoteRow, order: tuple) -> bool:
        """Number the quote; False for a re-sent one (not to be published)."""
        symbol = row.symbol
        last = self._last_order.get(symbol)
        if last is not None and (order[0] < last[0] or order == last):
            return False
        self._last_order[symbol] = order
        number = self._next.get(symbol, self._start)
        row.source_sequence = number
        self._next[symbol] = number + 1
        return True


def to_message(kind: Kind, row: TradeRow | QuoteRow) -> FeedMessage:
    """Wire bytes of a normalised row: K2's v2 JSON, decimals as the exchange's text in JSON strings. (A quote's
    `one_sided`/`crossed` go out false: validation derives them from the prices and ignores the wire's.)"""
    return FeedMessage(kind, f"{row.exchange}:{row.symbol}".encode(), _encode(row))
