"""Validated rows as Arrow columns: what `validate_batch` hands to the sequence check, dedupe and `to_arrow`.

A `RowTable` holds the data columns of one kind's Iceberg table (`trades` or `quotes`, without the source position
columns) in their Arrow types: decimals as decimal128(18,8), times as µs UTC, a quote's `one_sided`/`crossed` already
derived. The steps read the columns they need; `to_arrow` adds the source columns and takes the rest as it is.

It is also a sequence of row objects (`TradeRow`/`QuoteRow`, decimals as exact text), built on demand, for code that
looks at single rows (tests, tools): never on the flow's path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc

from k2.model.schemas import Kind, QuoteRow, Row, TradeRow

_ROW_TYPES: dict[str, type[TradeRow] | type[QuoteRow]] = {"trade": TradeRow, "quote": QuoteRow}
_DERIVED = ("one_sided", "crossed")  # a quote's flags: derived from the prices, never a row field


class RowTable(Sequence[Row]):
    """The validated rows of one batch, column-wise, in the order of their source offsets."""

    __slots__ = ("kind", "table")

    def __init__(self, kind: Kind, table: pa.Table):
        self.kind = kind
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    def __repr__(self) -> str:
        return f"RowTable({self.kind!r}, {self.table.num_rows} rows)"

    @overload
    def __getitem__(self, index: int) -> Row: ...
    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...
    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        if not -n <= index < n:
            raise IndexError(index)
        return self._rows(self.table.slice(index % n, 1))[0]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows(self.table))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowTable):
            return self.kind == other.kind and self.table.equals(other.table)
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def column(self, name: str) -> list[Any]:
        """One column as Python values; times as integer µs."""
        array = self.table.column(name)
        if pa.types.is_timestamp(array.type):
            array = array.cast(pa.int64())
        return array.to_pylist()

    def take(self, positions: Sequence[int] | pa.Array) -> RowTable:
        return RowTable(self.kind, self.table.take(positions))

    def without(self, positions: Sequence[int]) -> RowTable:
        """The rows other than those at `positions` (ascending), in the same order: the runs between them as
        zero-copy slices. A filter copied every column of the batch to drop its few duplicates, the costliest step
        of the flow's thread; the commit's sort copies the rows once anyway (benchmarks/report.md,
        "Design measurements: Flow thread and committer")."""
        table, runs, start = self.table, [], 0
        for position in positions:
            if position > start:
                runs.append(table.slice(start, position - start))
            start = position + 1
        if start < table.num_rows:
            runs.append(table.slice(start))
        return RowTable(self.kind, pa.concat_tables(runs) if runs else table.slice(0, 0))

    def with_ingestion_timestamps(self, source_timestamps: list[int]) -> RowTable:
        """Rows without an `ingestion_timestamp` take their source record's timestamp (µs), one per row."""
        name = "ingestion_timestamp"
        column = self.table.column(name)
        if column.null_count == 0:
            return self
        filled = pc.coalesce(column, pa.array(source_timestamps, pa.int64()).cast(column.type))
        index = self.table.schema.get_field_index(name)
        return RowTable(self.kind, self.table.set_column(index, self.table.schema.field(index), filled))

    def _rows(self, table: pa.Table) -> list[Row]:
        row_type = _ROW_TYPES[self.kind]
        rows = []
        for values in _plain(table).to_pylist():
            for name in _DERIVED:
                values.pop(name, None)
            for name, value in values.items():
                if isinstance(value, Decimal):
                    values[name] = format(value, "f")
            if values.get("vendor_data") is not None:
                values["vendor_data"] = dict(values["vendor_data"])
            rows.append(row_type(**{k: v for k, v in values.items() if v is not None}))
        return rows


def _plain(table: pa.Table) -> pa.Table:
    """Times as integer µs (row fields are ints, not datetimes)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, pa.field(field.name, pa.int64()), table.column(i).cast(pa.int64()))
    return table


def concat(parts: list[RowTable], order: Sequence[int] | None = None) -> RowTable:
    """The rows of `parts` one after the other, then (with `order`) taken in that order."""
    table = pa.concat_tables([part.table for part in parts])
    if order is not None:
        table = table.take(pa.array(order, pa.int64()))
    return RowTable(parts[0].kind, table)


def column_of(records: Sequence, name: str) -> list:
    """One field of every record: a column of a `RowTable`, else read off the row objects."""
    if isinstance(records, RowTable):
        return records.column(name)
    return [getattr(record, name) for record in records]


def mask_without(n: int, positions: Sequence[int]) -> bytearray:
    """A keep-mask of `n` entries, false at `positions`: `itertools.compress` walks it in C, so a batch's lists drop
    their few rows without a Python step per entry."""
    keep = bytearray(b"\x01") * n
    for position in positions:
        keep[position] = 0
    return keep
