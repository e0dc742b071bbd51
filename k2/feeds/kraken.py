"""Kraken spot WebSocket v2: the `trade` and `ticker` channels.

One connection; a `{"method": "subscribe", "params": {"channel": ..., "symbol": [...], "snapshot": true}}` per
channel (acknowledged with `"success": true`; a failure says `"success": false` and `"error"`). Subscribed
connections get a `heartbeat` message every second (silence means a dead connection), and the feed sends
Kraken's application-level `{"method": "ping"}` every 30 s as its docs ask of idle clients.

Kraken v2 sends prices and sizes as JSON numbers: they keep their literal text (never a float).
- Trades: `trade_id` (consecutive per pair) is `trade_id` and `source_sequence`; `side` is the taker's (the
  aggressor); `timestamp` is RFC 3339. The snapshot sent on (re)subscribing repeats recent trades: duplicates K2
  drops, or the late fill of a gap the drop left.
- Quotes: `ticker` with `event_trigger: bbo` (an update on every change of the best bid/offer): `bid`, `bid_qty`,
  `ask`, `ask_qty` at `timestamp` (when the frame has one, else when it arrived); `quote_id` is that time in µs;
  last trade, volume, VWAP and the day's change go to `vendor_data`.
"""

from __future__ import annotations

from typing import Any

from k2.feeds.exchange import Exchange
from k2.feeds.normalise import FrameError, Instrument, Parsed, field_of, integer, micros_from_iso

_SIDES = {"buy": "BUY", "sell": "SELL"}
_TRADE_FIELDS = ("symbol", "price", "qty", "side", "trade_id", "timestamp")  # symbol, price, quantity first
_TICKER_FIELDS = ("symbol", "bid", "bid_qty", "ask", "ask_qty", "timestamp")
_CONTROL = {"subscribe", "unsubscribe", "pong"}


class Kraken(Exchange):
    name = "KRAKEN"
    default_url = "wss://ws.kraken.com/v2"
    idle_seconds = 30.0  # heartbeats arrive every second once subscribed
    ping_seconds = 30.0

    def native(self, instrument: Instrument) -> str:
        return f"{instrument.base}/{instrument.quote}"

    def subscriptions(self) -> list[str]:
        symbols = [self.native(i) for i in self.instruments]
        channels = [{"channel": "trade"}] * self.trades + [{"channel": "ticker", "event_trigger": "bbo"}] * self.quotes
        return [
            self.json({"method": "subscribe", "params": {**c, "symbol": symbols, "snapshot": True}, "req_id": n})
            for c, n in ((c, self.request_id()) for c in channels)
        ]

    def ping(self) -> str | None:
        return self.json({"method": "ping", "req_id": self.request_id()})

    def normalise(self, frame: dict[str, Any], received_us: int) -> Parsed:
        method, channel = frame.get("method"), frame.get("channel")
        if method is not None:
            if frame.get("success") is False:
                return Parsed("error", detail=f"{method} {frame.get('symbol', '')}: {frame.get('error')}")
            return Parsed("control" if method in _CONTROL else "unknown", detail=f"method {method!r}")
        if channel == "heartbeat":
            return Parsed("heartbeat")
        if channel == "status":
            return Parsed("control")
        if channel == "trade":
            return self.data("trade", lambda parsed: self._entries(frame, received_us, parsed, self._trade))
        if channel == "ticker":
            return self.data("quote", lambda parsed: self._entries(frame, received_us, parsed, self._quote))
        return Parsed("unknown", detail=f"channel {channel!r}")

    def _entries(self, frame: dict[str, Any], received_us: int, parsed: Parsed, build) -> None:
        entries = field_of(frame, "data")
        if not isinstance(entries, list):
            raise FrameError("data is not a list")
        for entry in entries:
            if not isinstance(entry, dict):
                raise FrameError(f"an entry of data is not an object: {entry!r}")
            build(entry, frame.get("type"), received_us, parsed)

    def _trade(self, entry: dict[str, Any], kind: Any, received_us: int, parsed: Parsed) -> None:
        side = _SIDES.get(field_of(entry, "side"))
        if side is None:
            raise FrameError(f"side is not buy or sell: {entry['side']!r}")
        trade_id = integer(field_of(entry, "trade_id"), "trade_id")
        time = micros_from_iso(field_of(entry, "timestamp"), "timestamp")
        trade = self.trade(entry, received_us, trade_id, time, side, _TRADE_FIELDS)
        trade.vendor_data["type"] = str(kind)  # type: ignore[index]  # snapshot: re-sent on (re)subscribing
        parsed.trades.append(trade)

    def _quote(self, entry: dict[str, Any], kind: Any, received_us: int, parsed: Parsed) -> None:
        time = micros_from_iso(entry["timestamp"], "timestamp") if "timestamp" in entry else None
        row = self.quote(entry, received_us, time or received_us, time, _TICKER_FIELDS)
        row.vendor_data["type"] = str(kind)  # type: ignore[index]
        book = (row.bid_price, row.bid_quantity, row.ask_price, row.ask_quantity)
        parsed.quotes.append((row, (row.timestamp, book)))
