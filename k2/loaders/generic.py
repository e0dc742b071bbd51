"""Files already in the wire model: NDJSON (one wire message a line) and headered CSV (columns named as fields).

Neither loader judges a message: NDJSON lines go on verbatim, and a CSV row becomes the JSON object its cells
spell, so the flow's validation gives every bad one its usual reason (`missing_field:price`, `bad_decimal:...`).
Only what cannot become a message at all is a load error: a CSV row with the wrong number of cells, or not UTF-8.

CSV cells: an empty cell is an absent field; `timestamp`, `ingestion_timestamp` and `source_sequence` are
integers; `trade_conditions` is `A|B` or a JSON array; `vendor_data` is a JSON object; everything else (prices
and quantities too) is passed as a string, which validation reads as an exact decimal. A row is one line (a quoted
cell may hold commas, not line breaks), so a message's line number is its row's.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

from k2.kafka.producer import instrument_key
from k2.loaders.base import Loaded, LoadError, read_lines
from k2.model.schemas import Kind, Quote, Trade

Format = Literal["ndjson", "csv"]
FIELDS: dict[str, frozenset[str]] = {
    "trade": frozenset(Trade.__struct_fields__),
    "quote": frozenset(Quote.__struct_fields__),
}
_INTEGER_FIELDS = frozenset({"timestamp", "ingestion_timestamp", "source_sequence"})
_INTEGER = re.compile(r"-?[0-9]+")


def load_file(path: str | Path, kind: Kind, fmt: Format | None = None) -> Iterator[Loaded]:
    """NDJSON or headered CSV of one kind; the format from `fmt`, else the suffix (`.csv`, anything else NDJSON)."""
    path = Path(path)
    if not path.is_file():  # now, not at the first line read: nothing is sent from a wrong command
        raise FileNotFoundError(f"{path}: no such file")
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "ndjson")
    return load_csv(path, kind) if fmt == "csv" else load_ndjson(path, kind)


def load_ndjson(path: str | Path, kind: Kind) -> Iterator[Loaded]:
    """Every line, verbatim (a blank or broken line too: validation rejects it with its reason)."""
    for _, raw in read_lines(Path(path)):
        yield Loaded(kind, instrument_key(raw), raw)


def load_csv(path: str | Path, kind: Kind) -> Iterator[Loaded]:
    """Every data line of a headered CSV as a wire message; the header is checked first, before any is yielded.

    A header naming a column that is no field of `kind` raises `ValueError` (a wrong file, not a bad row).
    """
    path = Path(path)
    lines = read_lines(path)
    first = next(lines, None)
    if first is None:
        return iter(())
    columns = _header(path, first[1], kind)
    return _rows(path, lines, columns, kind)


def _header(path: Path, raw: bytes, kind: Kind) -> list[str]:
    columns = [name.strip() for name in next(csv.reader([raw.decode("utf-8-sig")]))]
    unknown = [name for name in columns if name not in FIELDS[kind]]
    if unknown or len(set(columns)) != len(columns):
        problem = f"columns {unknown} are not {kind} fields" if unknown else "a column is named twice"
        raise ValueError(f"{path}:1: {problem}; expected names from {sorted(FIELDS[kind])}")
    return columns


def _rows(path: Path, lines: Iterator[tuple[int, bytes]], columns: list[str], kind: Kind) -> Iterator[Loaded]:
    for number, raw in lines:
        try:
            cells = next(csv.reader([raw.decode("utf-8")]), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            reason = "not_utf8" if isinstance(exc, UnicodeDecodeError) else "csv_syntax"
            yield Loaded(kind, None, raw, LoadError(str(path), number, reason, str(exc)))
            continue
        if len(cells) != len(columns):
            detail = f"{len(cells)} cells, the header has {len(columns)}"
            yield Loaded(kind, None, raw, LoadError(str(path), number, "csv_columns", detail))
            continue
        message = {name: _cell(name, cell) for name, cell in zip(columns, cells, strict=True) if cell != ""}
        key = f"{message.get('exchange', '')}:{message.get('symbol', '')}".encode()
        yield Loaded(kind, key, msgspec.json.encode(message))


def _cell(name: str, text: str) -> object:
    """A cell as its JSON value; text that is not the expected shape stays text, for validation to reject."""
    if name in _INTEGER_FIELDS:
        return int(text) if _INTEGER.fullmatch(text) else text
    if name == "trade_conditions":
        return _json(text) if text.startswith("[") else text.split("|")
    if name == "vendor_data":
        return _json(text)
    return text


def _json(text: str) -> object:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
