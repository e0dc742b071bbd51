"""The ASX tick files: headerless trades and quotes CSVs per company id, Sydney local time.

Layout (see `shared/data/asx-sample/FORMAT.md`): `<root>/trades/<company_id>.csv`
(`Date,Time,Price,Volume,Qualifiers,Venue,BuyerID`), `<root>/quotes/<company_id>.csv`
(`Date,Time,Bid,Ask,BidVolume,AskVolume`) and `<root>/reference-data/company_info.csv` (company id -> symbol).

What the loader derives, and why:
- `timestamp`: the Sydney wall time through the tz database (`Australia/Sydney`), so AEDT (UTC+11) and AEST
  (UTC+10) are both right; integer µs UTC. The ambiguous hour when DST ends takes its first (AEDT) reading, and a
  time inside the skipped hour when DST starts reads with the offset before the jump (`fold=0`): the exchange is
  closed on those Sunday mornings.
- `source_sequence`: the files have none, so it is the line's place among the instrument's lines of its kind on
  its Sydney trading day, from 1. A new day restarts at 1, which the sequence check sees as a reset (a session).
  A bad line takes no number, so it shows up as a dead letter and not also as a sequence gap.
- `trade_id` / `quote_id`: `YYYYMMDD-<sequence>`. Byte-identical rows are real separate fills; their ids differ,
  and dedupe keys on the sequence, never on (time, price, volume).
- Prices and volumes are `Decimal` from the text, never float. A quote side `0.0` / `0` is passed on as is: the
  wire schema calls a zero price an empty side, and validation stores it as null and flags `one_sided`.
- Side `UNKNOWN` (no aggressor in the data), exchange `ASX`, currency `AUD`, asset class equities. Qualifiers ->
  `trade_conditions`; Venue and BuyerID -> `vendor_data` (`venue`, `buyer_id`) verbatim, never validated.
- `message_id`: `<trades|quotes>/<file>:<line>`, the source position (informational; never a dedupe key).
"""

from __future__ import annotations

import csv
import functools
import itertools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from k2.loaders.base import Loaded, LoadError, read_lines
from k2.model.schemas import AssetClass, Kind, Quote, Side, Trade, encode

EXCHANGE = "ASX"
CURRENCY = "AUD"
SYDNEY = ZoneInfo("Australia/Sydney")
TRADE_COLUMNS = ("Date", "Time", "Price", "Volume", "Qualifiers", "Venue", "BuyerID")
QUOTE_COLUMNS = ("Date", "Time", "Bid", "Ask", "BidVolume", "AskVolume")
REFERENCE = Path("reference-data") / "company_info.csv"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DATE = re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})")  # ASCII digits: `\\d` would take any script
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")  # plain unsigned decimals, as the files write them


class RowError(ValueError):
    """Why a line is not a valid ASX row: `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def company_symbols(reference: Path) -> dict[str, str]:
    """company id -> ASX symbol, from `company_info.csv` (headered: `company_id,symbol,...`)."""
    with reference.open(newline="", encoding="utf-8") as text:
        return {row["company_id"].strip(): row["symbol"].strip() for row in csv.DictReader(text)}


def asx_files(root: Path) -> list[tuple[Kind, Path, str]]:
    """(kind, file, symbol) for every trades and quotes file under `root`; an unknown company id is an error."""
    symbols = company_symbols(root / REFERENCE)
    found: list[tuple[Kind, Path, str]] = []
    for kind in ("trade", "quote"):
        for path in sorted((root / f"{kind}s").glob("*.csv")):
            if path.stem not in symbols:
                raise ValueError(f"{path}: company id {path.stem} is not in {root / REFERENCE}")
            found.append((kind, path, symbols[path.stem]))  # type: ignore[arg-type]
    if not found:
        raise ValueError(f"{root}: no trades/*.csv or quotes/*.csv")
    return found


def load_asx(root: str | Path) -> Iterator[Loaded]:
    """Every line of every trades file, then every quotes file, under `root`, as wire messages.

    The files and symbols are resolved now (a missing reference raises here, before anything is sent); the lines
    are read lazily.
    """
    found = asx_files(Path(root))
    return itertools.chain.from_iterable(load_asx_file(path, kind, symbol) for kind, path, symbol in found)


def load_asx_file(path: Path, kind: Kind, symbol: str) -> Iterator[Loaded]:
    """One ASX trades or quotes file of one instrument; every line yields exactly one `Loaded`."""
    convert = _trade if kind == "trade" else _quote
    key = f"{EXCHANGE}:{symbol}".encode()
    where = f"{path.parent.name}/{path.name}"
    sequences: dict[str, int] = {}  # per Sydney trading day (its date text): a new day restarts at 1
    for number, raw in read_lines(path):
        try:
            value = convert(raw, symbol, sequences, f"{where}:{number}")
        except RowError as exc:
            yield Loaded(kind, key, raw, LoadError(str(path), number, exc.reason, str(exc)))
        else:
            yield Loaded(kind, key, value)


def sydney_to_utc_us(date_text: str, time_text: str) -> int:
    """Microseconds UTC of a Sydney wall-clock time: `MM/DD/YYYY` and `HH:MM:SS[.ffffff]`, as the files write them."""
    found = _TIME.fullmatch(time_text)
    if found is None:
        raise RowError("asx_time", f"time {time_text!r} is not HH:MM:SS.mmm")
    hour, minute, second, fraction = found.groups()
    if int(second) > 59:
        raise RowError("asx_time", f"time {time_text!r}: second must be in 0..59")
    return _minute_us(date_text, hour, minute) + int(second) * 1_000_000 + int((fraction or "").ljust(6, "0"))


@functools.lru_cache(maxsize=8_192)
def _minute_us(date_text: str, hour: str, minute: str) -> int:
    """µs UTC of the start of a Sydney minute, through the tz database.

    Cached per minute (offsets change only on whole hours, so never inside one): building an aware datetime per
    row was the loader's largest cost (benchmarks/report.md, "Design measurements: ASX loader"). A bad date or
    time raises, and exceptions are not cached.
    """
    day = _day(date_text)
    try:
        local = datetime(day.year, day.month, day.day, int(hour), int(minute), tzinfo=SYDNEY)
    except ValueError as exc:
        raise RowError("asx_time", f"time {hour}:{minute}: {exc}") from None
    # Integer arithmetic on timedeltas: exact, where datetime.timestamp() would go through a float.
    return (local - _EPOCH) // _MICROSECOND


def _fields(raw: bytes, columns: tuple[str, ...]) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("not_utf8", str(exc)) from None
    # The files write no quotes; a quoted field (a comma inside a qualifier, say) still parses as CSV.
    try:
        fields = next(csv.reader([text]), []) if '"' in text else text.split(",")
    except csv.Error as exc:
        raise RowError("csv_syntax", str(exc)) from None
    if len(fields) != len(columns):
        raise RowError("asx_columns", f"{len(fields)} columns, expected {len(columns)} ({','.join(columns)})")
    return fields


def _day(text: str) -> date:
    found = _DATE.fullmatch(text)
    try:
        if found is None:
            raise ValueError("not MM/DD/YYYY")
        month, day, year = found.groups()
        return date(int(year), int(month), int(day))
    except ValueError as exc:
        raise RowError("asx_date", f"date {text!r}: {exc}") from None


def _decimal(text: str, field: str) -> Decimal:
    if _NUMBER.fullmatch(text) is None:
        raise RowError(f"asx_decimal:{field}", f"{field} {text!r} is not a decimal number")
    try:
        return Decimal(text)  # exact: the text's digits, never a float's
    except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal reads
        raise RowError(f"asx_decimal:{field}", f"{field} {text!r} is not a decimal number") from None


def _next_id(sequences: dict[str, int], date_text: str) -> tuple[int, str]:
    """The row's sequence on its Sydney trading day and its id `YYYYMMDD-<sequence>` (the date text is checked)."""
    sequences[date_text] = sequence = sequences.get(date_text, 0) + 1
    return sequence, f"{date_text[6:]}{date_text[:2]}{date_text[3:5]}-{sequence}"


def _trade(raw: bytes, symbol: str, sequences: dict[str, int], source: str) -> bytes:
    day_text, time_text, price, volume, qualifiers, venue, buyer = _fields(raw, TRADE_COLUMNS)
    timestamp = sydney_to_utc_us(day_text, time_text)
    price_value, volume_value = _decimal(price, "price"), _decimal(volume, "quantity")
    sequence, trade_id = _next_id(sequences, day_text)  # only once the row is known good: bad rows take no number
    trade = Trade(
        **_common(symbol, timestamp, sequence, source),
        trade_id=trade_id,
        price=price_value,
        quantity=volume_value,
        side=Side.UNKNOWN,
        trade_conditions=[qualifiers] if qualifiers else [],
        vendor_data={"venue": venue, "buyer_id": buyer},
    )
    return encode(trade)


def _quote(raw: bytes, symbol: str, sequences: dict[str, int], source: str) -> bytes:
    day_text, time_text, bid, ask, bid_volume, ask_volume = _fields(raw, QUOTE_COLUMNS)
    timestamp = sydney_to_utc_us(day_text, time_text)
    prices = _decimal(bid, "bid_price"), _decimal(ask, "ask_price")
    sizes = _decimal(bid_volume, "bid_quantity"), _decimal(ask_volume, "ask_quantity")
    sequence, quote_id = _next_id(sequences, day_text)
    quote = Quote(
        **_common(symbol, timestamp, sequence, source),
        quote_id=quote_id,
        bid_price=prices[0],
        bid_quantity=sizes[0],
        ask_price=prices[1],
        ask_quantity=sizes[1],
    )
    return encode(quote)


def _common(symbol: str, timestamp: int, sequence: int, source: str) -> dict[str, Any]:
    """The fields every ASX trade and quote share: the exchange, its asset class and currency, the instrument."""
    return {
        "exchange": EXCHANGE,
        "symbol": symbol,
        "asset_class": AssetClass.EQUITIES,
        "timestamp": timestamp,
        "currency": CURRENCY,
        "source_sequence": sequence,
        "message_id": source,
    }
