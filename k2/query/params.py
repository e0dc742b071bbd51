"""Parsing what users type into query parameters: times, bar intervals, time zones, field lists, cursors.

Every failure is a `QueryError` with a message a person can act on; the API turns it into a 400.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec


class QueryError(ValueError):
    """A request the engine cannot answer as asked (bad parameter, unknown snapshot...)."""


# Market identifier codes and common short names -> IANA zone of the exchange's trading day.
EXCHANGE_TIMEZONES: dict[str, str] = {
    "ASX": "Australia/Sydney",
    "XASX": "Australia/Sydney",
    "XNAS": "America/New_York",
    "NASDAQ": "America/New_York",
    "XNYS": "America/New_York",
    "NYSE": "America/New_York",
    "ARCX": "America/New_York",
    "CME": "America/Chicago",
    "XCME": "America/Chicago",
    "XLON": "Europe/London",
    "LSE": "Europe/London",
    "XETR": "Europe/Berlin",
    "XPAR": "Europe/Paris",
    "XTKS": "Asia/Tokyo",
    "XHKG": "Asia/Hong_Kong",
    "XSES": "Asia/Singapore",
    "XTSE": "America/Toronto",
}


def exchange_timezone(exchange: str, overrides: dict[str, str] | None = None) -> str:
    """The exchange's zone (crypto venues and unknown exchanges trade on UTC days)."""
    return (overrides or {}).get(exchange) or EXCHANGE_TIMEZONES.get(exchange.upper(), "UTC")


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"unknown time zone {name!r} (use an IANA name such as Australia/Sydney)") from None
    return name


def parse_time(text: str | None, name: str = "time") -> int | None:
    """Integer µs UTC from ISO-8601 (`2014-03-10T23:00:00Z`, an offset, or a date) or from an integer of µs.

    A time without an offset is taken as UTC; a bare date is its UTC midnight.
    """
    if text is None or text == "":
        return None
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        value = int(text)
        if not -(2**62) < value < 2**62:
            raise QueryError(f"{name}: {text} µs is out of range")
        return value
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not an ISO-8601 time (e.g. 2014-03-10T23:00:00Z) or µs") from None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def time_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    lo, hi = parse_time(start, "start"), parse_time(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise QueryError("start must be before end (the range is [start, end))")
    return lo, hi


_INTERVAL = re.compile(r"(\d{1,6})(s|m|h|d|w|mo)")
_UNITS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3_600), "d": ("day", 86_400), "w": ("week", 604_800)}


class Interval(msgspec.Struct, frozen=True):
    text: str  # as the user wrote it, e.g. `5m`
    sql: str  # a DuckDB INTERVAL literal value, e.g. `5 minutes`
    approx_us: int  # nominal length (a month counts 30 days): for sizing, never for bucketing
    calendar: bool  # a day or longer: aligned to the exchange's local calendar


def parse_interval(text: str) -> Interval:
    """`1s`..`59s`, `1m`, `5m`, `1h`, `1d`, `1w`, `1mo`..."""
    found = _INTERVAL.fullmatch(text.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise QueryError(f"interval {text!r}: use a count and a unit s, m, h, d, w or mo (e.g. 1m, 5m, 1h, 1d)")
    count, unit = int(found.group(1)), found.group(2)
    if unit == "mo":
        return Interval(text, f"{count} months", count * 30 * 86_400_000_000, True)
    name, seconds = _UNITS[unit]
    total = count * seconds
    if total > 366 * 86_400:
        raise QueryError(f"interval {text!r} is longer than a year")
    return Interval(text, f"{count} {name}s", total * 1_000_000, unit in "dw")


def parse_list(text: str | None) -> list[str] | None:
    """A comma-separated list (`AAPL,MSFT`), or None when absent; blanks are dropped."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    return items or None


def parse_fields(text: str | None, allowed: Sequence[str]) -> list[str] | None:
    return check_fields(parse_list(text), allowed)


def check_fields(fields: Sequence[str] | None, allowed: Sequence[str]) -> list[str] | None:
    """The requested columns without repeats, or a QueryError naming the unknown ones."""
    if not fields:
        return None
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise QueryError(f"unknown field(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(fields))


class Cursor(msgspec.Struct, array_like=True, frozen=True):
    """Where the next page starts: the pinned snapshot and the last row's sort key."""

    snapshot_id: int
    timestamp: int
    topic: str
    partition: int
    offset: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(msgspec.msgpack.encode(self)).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            return msgspec.msgpack.decode(raw, type=cls)
        except (ValueError, msgspec.DecodeError):
            raise QueryError("cursor is not one this service handed out") from None
