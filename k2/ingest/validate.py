"""Decode and validate raw messages; every rejection carries a machine-readable reason.

Reasons: `malformed_json`, `not_an_object`, `missing_field:<name>`, `invalid_field:<name>`, `empty_field:<name>`,
`bad_decimal:<field>` (not a number, NaN/inf, or not exact in decimal(18,8)), `negative_price`, `zero_price`,
`non_positive_quantity`, `negative_quantity`, `timestamp_out_of_range`, `unknown_side`, `unknown_asset_class`,
`negative_sequence`, `unknown_kind`.
Validation never reads the wall clock: the same bytes get the same verdict in a replay years later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

from k2.ingest.checks import (
    DECIMAL_FIELDS,
    MAX_SEQUENCE,
    QUANTUM,
    Rejection,
    Rules,
    check_quote,
    check_trade,
    reason_for,
)
from k2.model.batch import IngestBatch, RawBatch
from k2.model.schemas import DeadLetter, Kind, Quote, QuoteRow, Record, Row, Trade, TradeRow

_DECODERS: dict[str, msgspec.json.Decoder] = {
    "trade": msgspec.json.Decoder(Trade),
    "quote": msgspec.json.Decoder(Quote),
}
_TRADE_ROWS = msgspec.json.Decoder(TradeRow)
_QUOTE_ROWS = msgspec.json.Decoder(QuoteRow)
# A run of decimal(18,8) texts in plain ASCII digits (at most 10 before the point, 8 after), one per line.
# Anything else (signs, exponents, more digits, spaces, NaN) is left to `Decimal`.
# (Possessive `*+`: Python's re otherwise keeps a backtracking point per line, which is much slower; figures in
# benchmarks/report.md, "Design measurements: Decimal validation".)
_DECIMAL_LINES = re.compile(r"(?:[0-9]{1,10}(?:\.[0-9]{1,8})?\n)*+")
_ZERO_LINES = re.compile(r"^[0.]+$", re.MULTILINE)
_ZERO = re.compile(r"0{1,10}(?:\.0{1,8})?")


def decode(value: bytes, kind: Kind, rules: Rules) -> Record | Rejection:
    """Decode one message of `kind` and validate it: a record, or why not."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return Rejection("unknown_kind", f"no schema for message kind {kind!r}")
    try:
        record = decoder.decode(value)
    except msgspec.ValidationError as exc:
        return Rejection(reason_for(exc), str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec raises the latter for bad UTF-8 in a string
        return Rejection("malformed_json", str(exc))
    problem = _CHECKS[kind](record, rules)
    return record if problem is None else problem


def validate_batch(raw: RawBatch, kind: Kind, rules: Rules, originals: list[bytes] | None = None) -> IngestBatch:
    """Split a raw batch into valid records and dead letters, keeping each one's source offset.

    `originals`: the bytes the source delivered, when `raw.values` are their mapped form (`k2.ingest.mapping`);
    a dead letter keeps those.

    The records are `TradeRow`/`QuoteRow`: decimals stay their exact text, checked here to fit decimal(18,8).
    The fast path decodes texts and checks the decimals of the whole batch with one regex pass per column; any
    message it does not accept on sight takes the exact path (`decode`: `Decimal`s, the reference verdict and
    reason), so both paths accept exactly the same messages.
    """
    values = raw.values
    fast = _FAST.get(kind)
    rows: list[Row] = []
    at: list[int] = []  # index in the raw batch of each row
    slow: list[int] = []
    if fast is None:
        slow = list(range(len(values)))
    else:
        fast(values, rules, rows, at, slow)
    dead: list[DeadLetter] = []
    source_ts = raw.timestamps
    if slow:
        slow.sort()
        late_rows: list[Row] = []
        late_at: list[int] = []
        for i in slow:
            outcome = decode(values[i], kind, rules)
            if isinstance(outcome, Rejection):
                dead.append(
                    DeadLetter(
                        source_topic=raw.topic,
                        source_partition=raw.partition,
                        source_offset=raw.offsets[i],
                        kind=kind,
                        reason=outcome.reason,
                        detail=outcome.detail,
                        raw=values[i] if originals is None else originals[i],
                        source_timestamp=None if source_ts is None else source_ts[i],
                    )
                )
            else:
                late_rows.append(as_row(outcome))
                late_at.append(i)
        if late_rows:
            merged_at, merged_rows = at + late_at, rows + late_rows
            order = sorted(range(len(merged_at)), key=merged_at.__getitem__)
            at = [merged_at[j] for j in order]
            rows = [merged_rows[j] for j in order]
    kept_ts: list[int] | None = None
    if source_ts is not None:
        kept_ts = [source_ts[i] for i in at]
        for row, ts in zip(rows, kept_ts, strict=True):
            if row.ingestion_timestamp is None:
                row.ingestion_timestamp = ts
    source_offsets = raw.offsets
    return IngestBatch(
        topic=raw.topic,
        partition=raw.partition,
        kind=kind,
        source_offsets=source_offsets,
        next_offset=raw.next_offset,
        records=rows,
        offsets=source_offsets if len(at) == len(source_offsets) else [source_offsets[i] for i in at],
        source_timestamps=kept_ts,
        dead_letters=dead,
    )


def _decode_on_sight(
    decode_row: Callable[[bytes], Any],
    id_field: str,
    values: list[bytes],
    rules: Rules,
    rows: list,
    at: list[int],
    slow: list[int],
) -> None:
    """Decode each message as a row and keep it when its texts, times and sequence pass on sight; the rest goes to
    `slow` (by index) for the exact path. Decimals are checked afterwards, per column."""
    lo, hi = rules.min_timestamp_us, rules.max_timestamp_us
    add_row, add_at, add_slow = rows.append, at.append, slow.append
    for i, value in enumerate(values):
        try:
            row = decode_row(value)
        except Exception:
            add_slow(i)
            continue
        ingested, seq = row.ingestion_timestamp, row.source_sequence
        if (
            row.exchange
            and row.symbol
            and row.currency
            and getattr(row, id_field)
            and lo <= row.timestamp < hi
            and (ingested is None or lo <= ingested < hi)
            and (seq is None or 0 <= seq <= MAX_SEQUENCE)
        ):
            add_row(row)
            add_at(i)
        else:
            add_slow(i)


def _fast_trades(values: list[bytes], rules: Rules, rows: list, at: list[int], slow: list[int]) -> None:
    """Decode and check trades on the fast path; what it does not accept goes to `slow` (by index)."""
    _decode_on_sight(_TRADE_ROWS.decode, "trade_id", values, rules, rows, at, slow)
    irregular = set(_irregular([r.price for r in rows], zero=True))
    irregular.update(_irregular([r.quantity for r in rows], zero=True))
    if irregular:
        _move_to_slow(sorted(irregular), rows, at, slow)


def _fast_quotes(values: list[bytes], rules: Rules, rows: list, at: list[int], slow: list[int]) -> None:
    """Decode and check quotes on the fast path; an empty side (null or zero price) becomes null price and size."""
    _decode_on_sight(_QUOTE_ROWS.decode, "quote_id", values, rules, rows, at, slow)
    bad: set[int] = set()
    empty_bid: list[int] = []
    empty_ask: list[int] = []
    bids, asks = [r.bid_price for r in rows], [r.ask_price for r in rows]
    for texts, empty in ((bids, empty_bid), (asks, empty_ask)):
        for j in _irregular([t or "" for t in texts], zero=True):
            text = texts[j]
            if text is None or _ZERO.fullmatch(text):
                empty.append(j)
            else:
                bad.add(j)  # not plain digits: the exact path decides
    for texts in ([r.bid_quantity for r in rows], [r.ask_quantity for r in rows]):
        bad.update(j for j in _irregular([t or "" for t in texts], zero=False) if texts[j] is not None)
    for j in empty_bid:
        rows[j].bid_price = rows[j].bid_quantity = None
    for j in empty_ask:
        rows[j].ask_price = rows[j].ask_quantity = None
    if bad:
        _move_to_slow(sorted(bad), rows, at, slow)


def _move_to_slow(positions: list[int], rows: list, at: list[int], slow: list[int]) -> None:
    drop = set(positions)
    slow.extend(at[j] for j in positions)
    rows[:] = [r for j, r in enumerate(rows) if j not in drop]
    at[:] = [i for j, i in enumerate(at) if j not in drop]


def _irregular(texts: list[str], *, zero: bool) -> list[int]:
    """Positions of the texts that are not plain decimal(18,8) digits (or, with `zero`, are zero), ascending.

    One regex pass over the joined column: `_DECIMAL_LINES` matches a run of accepted texts, each followed by a
    newline, and stops at the first one it does not accept; that one is noted and the pass resumes after it.
    Usually it runs once, to the end. Zeros are found by a second pass that only stops at lines of 0s and dots.
    """
    if not texts:
        return []
    text = "\n".join(texts)
    text += "\n"
    if text.count("\n") != len(texts):
        return list(range(len(texts)))  # a text holding a line break of its own: look at every one
    match, end = _DECIMAL_LINES.match, len(text)
    found: list[int] = []
    pos = line = 0
    while True:
        stop = match(text, pos).end()  # type: ignore[union-attr]
        if stop == end:
            break
        line += text.count("\n", pos, stop)
        found.append(line)
        pos = text.index("\n", stop) + 1
        line += 1
    if zero:
        pos = line = 0
        for hit in _ZERO_LINES.finditer(text):
            line += text.count("\n", pos, hit.start())
            pos = hit.start()
            found.append(line)
        if found:
            found = sorted(set(found))
    return found


def _text(value: Decimal | None) -> str | None:
    """Plain digits of a decimal already checked to fit decimal(18,8) (never an exponent: Arrow reads it as is)."""
    return None if value is None else format(value.quantize(QUANTUM), "f")


def as_row(record: Record) -> Row:
    """The row form of a validated `Trade` or `Quote`: the same fields, decimals as exact text, enums as names."""
    row_type = TradeRow if isinstance(record, Trade) else QuoteRow
    values = {}
    for name in row_type.__struct_fields__:
        value = getattr(record, name, None)
        if name in DECIMAL_FIELDS:
            value = _text(value)
        elif isinstance(value, Enum):
            value = value.value
        if value is not None:
            values[name] = value
    return row_type(**values)


_CHECKS: dict[str, Callable[..., Rejection | None]] = {"trade": check_trade, "quote": check_quote}
_FAST: dict[str, Callable[[list[bytes], Rules, list, list[int], list[int]], None]] = {
    "trade": _fast_trades,
    "quote": _fast_quotes,
}
