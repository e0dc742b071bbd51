"""Coinbase Exchange market data feed: the `matches` (trades) and `ticker` (best bid/offer) channels.

One connection subscribed with `{"type": "subscribe", "product_ids": [...], "channels": [...]}` within 5 s of
connecting (acknowledged by a `subscriptions` message; an `error` message otherwise), always with the `heartbeat`
channel: one message per product per second, so silence means a dead connection and the runner reconnects.

- Trades (`match`, and the `last_match` sent on subscribing, which repeats a trade already seen when resuming):
  `trade_id` (consecutive per product) is `trade_id` and `source_sequence`, so a resumed `last_match` is a duplicate
  K2 drops and a lost match is a gap; `side` is the maker's, so the aggressor is the other side; `time` (RFC 3339,
  µs) is the timestamp; `sequence`, order ids and the maker side go to `vendor_data`.
- Quotes (`ticker`): `best_bid`/`best_bid_size`/`best_ask`/`best_ask_size` at `time`; the product `sequence` is
  `quote_id` (and orders re-sent tickers); last trade and 24 h figures go to `vendor_data`.
"""

from __future__ import annotations

from typing import Any

from k2.feeds.exchange import Exchange
from k2.feeds.normalise import FrameError, Instrument, Parsed, field_of, integer, micros_from_iso

_AGGRESSOR = {"buy": "SELL", "sell": "BUY"}  # the maker's side -> the taker's
_MATCH_FIELDS = ("product_id", "price", "size", "trade_id", "time")  # symbol, price, quantity first
_TICKER_FIELDS = ("product_id", "best_bid", "best_bid_size", "best_ask", "best_ask_size", "sequence", "time")


class Coinbase(Exchange):
    name = "COINBASE"
    default_url = "wss://ws-feed.exchange.coinbase.com"
    idle_seconds = 30.0  # heartbeats arrive every second

    def native(self, instrument: Instrument) -> str:
        return instrument.symbol

    def subscriptions(self) -> list[str]:
        channels = ["heartbeat"] + ["matches"] * self.trades + ["ticker"] * self.quotes
        products = [self.native(i) for i in self.instruments]
        return [self.json({"type": "subscribe", "product_ids": products, "channels": channels})]

    def normalise(self, frame: dict[str, Any], received_us: int) -> Parsed:
        kind = frame.get("type")
        if kind in ("match", "last_match"):
            return self.data("trade", lambda parsed: parsed.trades.append(self._trade(frame, received_us)))
        if kind == "ticker":
            return self.data("quote", lambda parsed: parsed.quotes.append(self._quote(frame, received_us)))
        if kind == "heartbeat":
            return Parsed("heartbeat")
        if kind == "subscriptions":
            return Parsed("control")
        if kind == "error":
            return Parsed("error", detail=f"{frame.get('message')}: {frame.get('reason')}")
        return Parsed("unknown", detail=f"type {kind!r}")

    def _trade(self, frame: dict[str, Any], received_us: int):
        side = _AGGRESSOR.get(field_of(frame, "side"))
        if side is None:
            raise FrameError(f"side is not buy or sell: {frame['side']!r}")
        trade_id, time = (
            integer(field_of(frame, "trade_id"), "trade_id"),
            micros_from_iso(field_of(frame, "time"), "time"),
        )
        return self.trade(frame, received_us, trade_id, time, side, _MATCH_FIELDS)

    def _quote(self, frame: dict[str, Any], received_us: int):
        sequence = integer(field_of(frame, "sequence"), "sequence")
        time = micros_from_iso(field_of(frame, "time"), "time")
        row = self.quote(frame, received_us, sequence, time, _TICKER_FIELDS)
        return row, (sequence,)
