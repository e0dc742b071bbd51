"""The adapter shape every exchange module fills in: its URL, subscriptions, pings, and how one frame normalises."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from k2.feeds.normalise import FrameError, Instrument, Parsed, decode_frame
from k2.model.schemas import Kind

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
