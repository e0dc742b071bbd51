"""Parsing what users type into query parameters: times, bar intervals, time zones, field lists, cursors.

Every failure is a `QueryError` with a message a person can act on; the API turns it into a 400, a `NotFound` (what
the request names does not exist) into a 404 and a `Conflict` (the service cannot serve it as set up) into a 409.
`TIME_PATTERN`, `INTERVAL_PATTERN` and `CURSOR_PATTERN` say in JSON Schema (ECMA-262 regex) which texts `parse_time`,
`parse_interval` and `Cursor.decode` take, for the API's OpenAPI document: whatever matches the first two parses.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from zoneinfo import available_timezones

import duckdb
import msgspec


class QueryError(ValueError):
    """A request the engine cannot answer as asked (a malformed parameter, parameters that exclude each other...)."""


class NotFound(QueryError):
    """What the request names does not exist: a snapshot, a snapshot at or before a time, the page of a cursor."""


class Conflict(QueryError):
    """The request conflicts with the service's state: realtime reads from a service without a Kafka tail."""


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


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The IANA zones bars can be cut in: known to Python's zoneinfo and to DuckDB (which lacks `localtime`)."""
    with duckdb.connect() as db:
        known = {name for (name,) in db.execute("SELECT name FROM pg_timezone_names()").fetchall()}
    return tuple(sorted(available_timezones() & known))


def check_timezone(name: str) -> str:
    if name not in time_zones():
        raise QueryError(f"unknown time zone {name!r} (use an IANA name such as Australia/Sydney)")
    return name


def _digits(count: int) -> str:
    return {0: "", 1: "[0-9]"}.get(count, f"[0-9]{{{count}}}")


def _numbers_up_to(top: str) -> str:
    """A regex for the numbers of len(top) digits, the first not 0, that are at most `top`."""
    if set(top) == {"9"}:
        return "[1-9]" + _digits(len(top) - 1)
    options = []
    for i, digit in enumerate(top):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            below = str(low) if int(digit) - 1 == low else f"[{low}-{int(digit) - 1}]"
            options.append(f"{top[:i]}{below}{_digits(len(top) - i - 1)}")
    return "|".join([*options, top])


def _counts(cap: int, width: int) -> str:
    """A regex for the numbers 1..cap written in at most `width` digits, leading zeros included."""
    top = str(min(cap, 10**width - 1))
    zeros = [f"0{{0,{width - k}}}" if k < width else "" for k in range(len(top) + 1)]
    options = [f"{zeros[k]}[1-9]{_digits(k - 1)}" for k in range(1, len(top))]
    return "|".join([*options, f"{zeros[len(top)]}(?:{_numbers_up_to(top)})"])


# Times are kept as µs since the epoch within Python's datetime range; outside it a time is clamped to its edge
# (no row is there), so that every syntactically good time is answered. The lower edge leaves a day of room: an as-of
# join looks for quotes up to a day before its start.
MIN_US = -62_135_510_400_000_000  # 0001-01-02T00:00:00Z
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
_INTEGER = rf"-?0*(?:[0-9]{{1,18}}|{_numbers_up_to(str(2**62 - 1))})"  # |µs| < 2**62
_YEAR = "[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000"  # 0001..9999
_LEAP_YEAR = "[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00"
_MONTH_DAY = (
    "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8])"
)
_DATE = rf"(?:{_YEAR})-(?:{_MONTH_DAY})|(?:{_LEAP_YEAR})-02-29"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]+)?)?"
_OFFSET = "[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]"
TIME_PATTERN = rf"^(?:|\s*(?:{_INTEGER}|(?:{_DATE})(?:[Tt ]{_CLOCK}(?:{_OFFSET})?)?)\s*)$"


def parse_time(text: str | None, name: str = "time") -> int | None:
    """Integer µs UTC from ISO-8601 (`2014-03-10T23:00:00Z`, an offset, or a date) or from an integer of µs.

    A time without an offset is taken as UTC; a bare date is its UTC midnight. Empty means none.
    """
    if text is None or text == "":
        return None
    text = text.strip()
    if re.fullmatch(r"-?[0-9]+", text):
        value = int(text) if len(text) < 1_000 else 2**62  # Python converts at most 4,300 digits
        if not -(2**62) < value < 2**62:
            raise QueryError(f"{name}: {text} µs is out of range")
        return min(max(value, MIN_US), MAX_US)
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        else:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not an ISO-8601 time (e.g. 2014-03-10T23:00:00Z) or µs") from None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return min(max((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds, MIN_US), MAX_US)


def time_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """`[start, end)` in µs; `start` not before `end` is an empty interval (it holds no rows), not an error."""
    return parse_time(start, "start"), parse_time(end, "end")


_INTERVAL = re.compile(r"(\d{1,6})(s|m|h|d|w|mo)")
_UNITS = {"s": ("second", 1), "m": ("minute", 60), "h": ("hour", 3_600), "d": ("day", 86_400), "w": ("week", 604_800)}
_LONGEST = 366 * 86_400  # seconds; months are not capped
_CAPS = {unit: _LONGEST // seconds for unit, (_, seconds) in _UNITS.items()} | {"mo": _LONGEST}
INTERVAL_PATTERN = (
    r"^\s*(?:"
    + "|".join(f"(?:{_counts(cap, 6)}){''.join(f'[{c}{c.upper()}]' for c in unit)}" for unit, cap in _CAPS.items())
    + r")\s*$"
)


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
    if total > _LONGEST:
        raise QueryError(f"interval {text!r} is longer than a year")
    return Interval(text, f"{count} {name}s", total * 1_000_000, unit in "dw")


def parse_list(text: str | None) -> list[str] | None:
    """A comma-separated list (`AAPL,MSFT`), or None when absent; blanks are dropped."""
    if text is None:
        return None
    items = [part.strip() for part in text.split(",") if part.strip()]
    return items or None


def list_pattern(names: Sequence[str]) -> str:
    """A JSON Schema pattern for what `parse_list` reads as a list of some of `names` (none: blank or absent)."""
    name = f"(?:{'|'.join(re.escape(n) for n in names)})"
    return rf"^[\s,]*(?:{name}(?:\s*,[\s,]*{name})*)?[\s,]*$"


def check_fields(fields: Sequence[str] | None, allowed: Sequence[str]) -> list[str] | None:
    """The requested columns without repeats, or a QueryError naming the unknown ones."""
    if not fields:
        return None
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise QueryError(f"unknown field(s) {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(fields))


_B64 = "[A-Za-z0-9_-]"
# What `Cursor.encode` produces: a msgpack array of 5 (0x95: `l`, then the first bits of an int's type byte), in
# unpadded URL-safe base64 (never a length of 4n + 1), 6 to ~380 bytes; or nothing (the first page).
CURSOR_PATTERN = rf"^(?:l[Q-Xc-f]{_B64}{{2}}(?:{_B64}{{4}}){{1,126}}(?:{_B64}{{2,3}})?)?$"


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
        """A QueryError when `text` is not of `CURSOR_PATTERN`'s form, a NotFound when it is but names no page."""
        if not re.fullmatch(CURSOR_PATTERN, text):
            raise QueryError("cursor: pass `meta.next_cursor` of the previous page as it was given")
        try:
            cursor = msgspec.msgpack.decode(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), type=cls)
        except (ValueError, msgspec.DecodeError):
            cursor = None
        if cursor is None or not MIN_US <= cursor.timestamp <= MAX_US:
            raise NotFound("this cursor points to no page: it is not one this service handed out")
        return cursor
