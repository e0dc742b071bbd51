"""Binance spot market streams: `<symbol>@trade` (trades) and `<symbol>@bookTicker` (best bid/offer).

One raw-stream connection (`/ws`) subscribed with `{"method": "SUBSCRIBE", ...}` (acknowledged `{"result": null,
"id": n}`; errors `{"code": n, "msg": ...}` or `{"error": {...}, "id": n}`). The server pings every few minutes and
the websocket library answers; frames wrapped as combined streams (`{"stream": ..., "data": ...}`) are unwrapped.

- Trades: `t` (the trade id, consecutive per symbol) is `trade_id` and `source_sequence`; `T` (ms) is the time;
  `m` (the buyer was the maker) means the aggressor sold: side SELL, else BUY. `E` and the rest go to `vendor_data`.
- Quotes: `u` (the book's update id) is `quote_id`; spot book tickers carry no time, so `timestamp` is when the
  frame arrived (`vendor_data["timestamp_source"] = "received"`), or `T` where the frame has one.

Binance names a pair BASE+QUOTE (`BTC-USDT` -> `BTCUSDT`); Binance.com quotes in USDT, Binance.US (`--url
wss://stream.binance.us:9443/ws`) in USD too.
"""

from __future__ import annotations

from typing import Any

from k2.feeds.exchange import Exchange
from k2.feeds.normalise import FrameError, Instrument, Parsed, field_of, integer, micros_from_ms

_TRADE_FIELDS = ("s", "p", "q", "e", "t", "T", "m")  # symbol, price, quantity first
_TICKER_FIELDS = ("s", "b", "B", "a", "A", "u")  # symbol, bid, bid size, ask, ask size first


class Binance(Exchange):
    name = "BINANCE"
    default_url = "wss://stream.binance.com:9443/ws"

    def native(self, instrument: Instrument) -> str:
        return f"{instrument.base}{instrument.quote}"

    def subscriptions(self) -> list[str]:
        streams = []
        for instrument in self.instruments:
            stream = self.native(instrument).lower()
            streams += [f"{stream}@trade"] * self.trades + [f"{stream}@bookTicker"] * self.quotes
        return [self.json({"method": "SUBSCRIBE", "params": streams, "id": self.request_id()})]

    def normalise(self, frame: dict[str, Any], received_us: int) -> Parsed:
        if isinstance(frame.get("data"), dict) and "stream" in frame:
            frame = frame["data"]
        event = frame.get("e")
        if event == "trade":
            return self.data("trade", lambda parsed: parsed.trades.append(self._trade(frame, received_us)))
        if event in (None, "bookTicker") and "u" in frame and "b" in frame:
            return self.data("quote", lambda parsed: parsed.quotes.append(self._quote(frame, received_us)))
        if "error" in frame or ("code" in frame and "msg" in frame):
            return Parsed("error", detail=str(frame.get("error") or frame.get("msg")))
        if "result" in frame and "id" in frame:
            return Parsed("control")
        if event == "serverShutdown":  # the connection closes next; the runner reconnects
            return Parsed("control", detail="server shutdown announced")
        return Parsed("unknown", detail=f"event {event!r}")

    def _trade(self, frame: dict[str, Any], received_us: int):
        maker_bought = field_of(frame, "m")
        if not isinstance(maker_bought, bool):
            raise FrameError(f"m is not true or false: {maker_bought!r}")
        trade_id, time = integer(field_of(frame, "t"), "t"), micros_from_ms(field_of(frame, "T"), "T")
        side = "SELL" if maker_bought else "BUY"
        return self.trade(frame, received_us, trade_id, time, side, _TRADE_FIELDS)

    def _quote(self, frame: dict[str, Any], received_us: int):
        update_id = integer(field_of(frame, "u"), "u")
        time = micros_from_ms(frame["T"], "T") if "T" in frame else None  # spot book tickers carry no time
        row = self.quote(frame, received_us, update_id, time, _TICKER_FIELDS)
        return row, (update_id,)
