"""Decode and validate raw messages; every rejection carries a machine-readable reason.

Reasons: `malformed_json`, `not_an_object`, `missing_field:<name>`, `invalid_field:<name>`, `empty_field:<name>`,
`bad_decimal:<field>` (not a number, NaN/inf, or not exact in decimal(18,8)), `negative_price`, `zero_price`,
`non_positive_quantity`, `negative_quantity`, `timestamp_out_of_range`, `unknown_side`, `unknown_asset_class`,
`negative_sequence`, `unknown_kind`.
Validation never reads the wall clock: the same bytes get the same verdict in a replay years later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from enum import Enum
from itertools import compress

import k2_native
import msgspec
import pyarrow as pa

from k2.ingest.checks import (
    DECIMAL_FIELDS,
    QUANTUM,
    Rejection,
    Rules,
    check_quote,
    check_trade,
    reason_for,
)
from k2.ingest.columnar import DATA_SCHEMAS, rows_table
from k2.ingest.rows import RowTable, concat, mask_without
from k2.model.batch import IngestBatch, RawBatch
from k2.model.schemas import DeadLetter, Kind, Quote, QuoteRow, Record, Row, Trade, TradeRow
from k2.storage.catalog import TABLE_FOR_KIND

_DECODERS: dict[str, msgspec.json.Decoder] = {
    "trade": msgspec.json.Decoder(Trade),
    "quote": msgspec.json.Decoder(Quote),
}
log = logging.getLogger(__name__)


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
    except RecursionError:  # JSON nested deeper than the decoder's recursion limit
        return Rejection("malformed_json", "nested too deeply")
    problem = _CHECKS[kind](record, rules)
    return record if problem is None else problem


def validate_batch(raw: RawBatch, kind: Kind, rules: Rules, originals: list[bytes] | None = None) -> IngestBatch:
    """Split a raw batch into valid rows (`RowTable`, column-wise) and dead letters, keeping each one's offset.

    `originals`: the bytes the source delivered, when `raw.values` are their mapped form (`k2.ingest.mapping`);
    a dead letter keeps those.

    One fast path, one reference: the compiled path (`k2_native`) decodes JSON messages straight into Arrow columns
    (decimals from their text into decimal128(18,8), never through float) and accepts exactly what the exact path
    (`decode`) accepts; every message it does not accept (invalid, not JSON, a spelling it leaves to `Decimal`) takes
    the exact path, which gives the verdict and the reason. A batch the compiled path fails on takes the exact path
    whole (logged): a fault there never stops the flow. Why compiled: per-message Python objects were most of the
    flow's time (benchmarks/report.md, "Design measurements: Where the flow's time goes").
    """
    values = raw.values
    if kind not in _CHECKS:
        native, slow = None, list(range(len(values)))
    else:
        native, slow = _native(values, kind, rules)
    dead: list[DeadLetter] = []
    dropped: list[int] = []
    late_rows: list[Row] = []
    late_at: list[int] = []
    for i in slow:
        outcome = decode(values[i], kind, rules)
        if isinstance(outcome, Rejection):
            delivered = None if originals is None else originals[i]
            dead.append(raw.dead_letter(i, kind, outcome.reason, outcome.detail, delivered))
            dropped.append(i)
        else:
            late_rows.append(as_row(outcome))
            late_at.append(i)
    if kind not in _CHECKS:
        return _batch(raw, kind, [], [], None, dead)
    rows = RowTable(kind, native if native is not None else rows_table(TABLE_FOR_KIND[kind], []))
    if late_rows:
        more = RowTable(kind, rows_table(TABLE_FOR_KIND[kind], late_rows))
        rows = _merged(rows, _accepted(len(values), slow), more, late_at)
    return _kept(raw, kind, rows, dropped, dead)


def with_accepted(raw: RawBatch, validate: Callable[[RawBatch], IngestBatch]) -> IngestBatch:
    """A batch the compiled reader validated in part (`raw.accepted`): its rows, and the messages it left taken
    through `validate` (the pipeline's whole validation: framed, mapped or JSON), merged in offset order."""
    accepted = raw.accepted
    assert accepted is not None
    kind: Kind = accepted.kind  # type: ignore[assignment]
    left, source_ts = accepted.left, raw.timestamps
    rows = RowTable(kind, accepted.rows)
    dropped = left  # the messages without a row: all those left, unless the exact path accepts some
    dead: list[DeadLetter] = []
    if left:
        rest = validate(
            RawBatch(
                raw.topic,
                raw.partition,
                [raw.offsets[i] for i in left],
                [raw.values[i] for i in left],
                None if source_ts is None else [source_ts[i] for i in left],
            )
        )
        dead = rest.dead_letters
        if rest.records:
            index = {raw.offsets[i]: i for i in left}  # a row of the rest -> its message's index in `raw`
            more_at = [index[o] for o in rest.offsets]
            rows = _merged(rows, _accepted(len(raw.offsets), left), rest.records, more_at)  # type: ignore[arg-type]
            dropped = sorted(set(left).difference(more_at))
    return _kept(raw, kind, rows, dropped, dead)


def _kept(raw: RawBatch, kind: Kind, rows: RowTable, dropped: list[int], dead: list[DeadLetter]) -> IngestBatch:
    """The validated batch of `raw`: `rows` came from all its messages but those at `dropped` (ascending), in
    order; a row without an ingestion time takes its message's source timestamp."""
    source_ts = raw.timestamps
    if dropped:
        keep = mask_without(len(raw.offsets), dropped)
        offsets = list(compress(raw.offsets, keep))
        kept_ts = None if source_ts is None else list(compress(source_ts, keep))
    else:
        offsets, kept_ts = raw.offsets, source_ts
    if kept_ts is not None:
        rows = rows.with_ingestion_timestamps(kept_ts)
    return _batch(raw, kind, rows, offsets, kept_ts, dead)


def _merged(rows: RowTable, at: list[int], more: RowTable, more_at: list[int]) -> RowTable:
    """Two row tables of one batch as one, in the order of their messages' indices `at` and `more_at`."""
    merged_at = at + more_at
    return concat([rows, more], sorted(range(len(merged_at)), key=merged_at.__getitem__))


def _batch(
    raw: RawBatch,
    kind: Kind,
    rows: Sequence[Row],
    offsets: list[int],
    kept_ts: list[int] | None,
    dead: list[DeadLetter],
) -> IngestBatch:
    return IngestBatch(
        topic=raw.topic,
        partition=raw.partition,
        kind=kind,
        source_offsets=raw.offsets,
        next_offset=raw.next_offset,
        records=rows,  # type: ignore[arg-type]
        offsets=offsets,
        source_timestamps=kept_ts,
        dead_letters=dead,
    )


def _native(values: list[bytes], kind: Kind, rules: Rules) -> tuple[pa.Table | None, list[int]]:
    """The compiled path's accepted rows (as a table of `DATA_SCHEMAS`) and the indices it leaves to the exact path;
    (None, every index) when it fails. Figures: benchmarks/report.md, "Design measurements: Compiled ingest path"."""
    try:
        listed = values if type(values) is list else list(values)  # the compiled path takes a list of bytes
        batch, slow = k2_native.validate(listed, kind, rules.min_timestamp_us, rules.max_timestamp_us)
        if batch.num_rows + len(slow) != len(values):
            raise RuntimeError(f"{batch.num_rows} rows and {len(slow)} left over from {len(values)} messages")
        schema = DATA_SCHEMAS[TABLE_FOR_KIND[kind]]
        return pa.Table.from_arrays(batch.columns, schema=schema), slow
    except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException, a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        log.exception("compiled validation failed on a batch of %d messages; the exact path takes it", len(values))
        return None, list(range(len(values)))


def _accepted(n: int, slow: list[int]) -> list[int]:
    """Indices 0..n-1 without `slow` (ascending, distinct)."""
    at: list[int] = []
    start = 0
    for index in slow:  # the runs between the few left out, extended in C rather than tested one by one
        at.extend(range(start, index))
        start = index + 1
    at.extend(range(start, n))
    return at


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
