"""Records to Arrow, column by column, in the exact schemas of the Iceberg tables.

Built column-wise (one list per field, then one C-level conversion) because per-row dicts were the flow's largest
cost (benchmarks/report.md, "Design measurements: Building Arrow columns").
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import schema_to_pyarrow

from k2.ingest.rows import RowTable
from k2.model.batch import IngestBatch
from k2.model.schemas import DeadLetter, Quote, Row, SequenceEvent, Trade
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SCHEMAS, SEQUENCE_GAPS, TABLE_FOR_KIND, TRADES

# Without field ids: pyiceberg then matches columns by name, whatever ids the catalog assigned on create.
ARROW_SCHEMAS: dict[str, pa.Schema] = {
    name: schema_to_pyarrow(schema, include_field_ids=False) for name, schema in SCHEMAS.items()
}
_SOURCE_COLUMNS = ("source_topic", "source_partition", "source_offset")  # the last three of every data table
# The data tables' columns before the source position: what validation produces (`RowTable`, k2_native).
DATA_SCHEMAS: dict[str, pa.Schema] = {
    name: pa.schema([field for field in ARROW_SCHEMAS[name] if field.name not in _SOURCE_COLUMNS])
    for name in (TRADES, QUOTES)
}


class ArrowBatch(msgspec.Struct, gc=False, kw_only=True):
    """What one ingest batch adds to each table, plus the source position it has reached."""

    topic: str
    partition: int
    kind: str
    next_offset: int
    source_offsets: list[int]  # every message the batch consumed, ascending
    duplicate_offsets: list[int]
    tables: dict[str, pa.Table]  # only the tables this batch has rows for
    dead_letters: list[DeadLetter] = []  # as `tables[DEAD_LETTERS]`, for the DLQ topic

    @property
    def first_offset(self) -> int:
        return self.source_offsets[0]

    def rows(self, name: str) -> int:
        table = self.tables.get(name)
        return 0 if table is None else table.num_rows


def to_arrow(batch: IngestBatch) -> ArrowBatch:
    tables: dict[str, pa.Table] = {}
    if batch.records:
        table_name = TABLE_FOR_KIND[batch.kind]
        tables[table_name] = records_table(table_name, batch.records, batch.topic, batch.partition, batch.offsets)
    if batch.dead_letters:
        tables[DEAD_LETTERS] = dead_letters_table(batch.dead_letters)
    if batch.sequence_events:
        tables[SEQUENCE_GAPS] = sequence_events_table(batch.sequence_events)
    return ArrowBatch(
        topic=batch.topic,
        partition=batch.partition,
        kind=batch.kind,
        next_offset=batch.next_offset,
        source_offsets=batch.source_offsets,
        duplicate_offsets=batch.duplicate_offsets,
        tables=tables,
        dead_letters=batch.dead_letters,
    )


def records_table(
    name: str, records: Sequence[Row | Trade | Quote], topic: str, partition: int, offsets: list[int]
) -> pa.Table:
    """The rows of one data table with their source position. A `RowTable` (what `validate_batch` returns) is
    already column-wise in the table's types; row objects go through `rows_table` first."""
    schema = ARROW_SCHEMAS[name]
    data = records.table if isinstance(records, RowTable) else rows_table(name, records)
    n = data.num_rows
    arrays = [
        *data.columns,
        pa.repeat(pa.scalar(topic, schema.field("source_topic").type), n),  # in its type: a cast was 15x slower
        pa.repeat(pa.scalar(partition, schema.field("source_partition").type), n),
        pa.array(offsets, schema.field("source_offset").type),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def rows_table(name: str, records: Sequence[Row | Trade | Quote]) -> pa.Table:
    """Row objects to the data columns of their table (`DATA_SCHEMAS`). Decimals arrive as exact text
    (`TradeRow`/`QuoteRow`) or `Decimal`s and become decimal128 in one C-level cast; a quote's `one_sided`/`crossed`
    flags are derived here, column-wise, from its prices.

    One list comprehension per field with the attribute named in the code (a specialised attribute load, faster
    than `getattr` with a variable name).
    """
    schema = DATA_SCHEMAS[name]
    n = len(records)
    columns: dict[str, list] = {
        "exchange": [r.exchange for r in records],
        "symbol": [r.symbol for r in records],
        "asset_class": [r.asset_class for r in records],  # plain text in rows; a StrEnum (a str) in Trade/Quote
        "timestamp": [r.timestamp for r in records],
        "ingestion_timestamp": [r.ingestion_timestamp for r in records],
        "currency": [r.currency for r in records],
        "source_sequence": [r.source_sequence for r in records],
        "message_id": [r.message_id for r in records],
        "vendor_data": [r.vendor_data for r in records],
    }
    decimals: dict[str, list]
    if name == TRADES:
        columns["trade_id"] = [r.trade_id for r in records]  # type: ignore[union-attr]
        columns["side"] = [r.side for r in records]  # type: ignore[union-attr]
        columns["trade_conditions"] = [r.trade_conditions for r in records]  # type: ignore[union-attr]
        decimals = {
            "price": [r.price for r in records],  # type: ignore[union-attr]
            "quantity": [r.quantity for r in records],  # type: ignore[union-attr]
        }
    elif name == QUOTES:
        columns["quote_id"] = [r.quote_id for r in records]  # type: ignore[union-attr]
        decimals = {
            "bid_price": [r.bid_price for r in records],  # type: ignore[union-attr]
            "bid_quantity": [r.bid_quantity for r in records],  # type: ignore[union-attr]
            "ask_price": [r.ask_price for r in records],  # type: ignore[union-attr]
            "ask_quantity": [r.ask_quantity for r in records],  # type: ignore[union-attr]
        }
    else:
        raise ValueError(f"{name} holds no market-data records")
    arrays: dict[str, pa.Array] = {}
    for field, values in columns.items():
        arrow_type = schema.field(field).type
        if field in _MOSTLY_NULL and values.count(None) == n:
            arrays[field] = pa.nulls(n, arrow_type)
        else:
            arrays[field] = pa.array(values, arrow_type)
    for field, values in decimals.items():
        arrays[field] = _decimals(values, schema.field(field).type)
    if name == QUOTES:
        bid, ask = arrays["bid_price"], arrays["ask_price"]
        arrays["one_sided"] = pc.or_(pc.is_null(bid), pc.is_null(ask))
        arrays["crossed"] = pc.fill_null(pc.greater(bid, ask), False)
    return pa.Table.from_arrays([arrays[field.name] for field in schema], schema=schema)


def _decimals(values: list, arrow_type: pa.DataType) -> pa.Array:
    """Exact decimal text (or `Decimal`s) to a decimal128 column; text goes through Arrow's exact parser."""
    try:
        return pa.array(values, pa.string()).cast(arrow_type)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array(values, arrow_type)  # Decimal objects (records built without validate_batch)


_MOSTLY_NULL = frozenset({"message_id", "vendor_data", "ingestion_timestamp", "source_sequence"})


def _struct_table(name: str, items: Sequence[msgspec.Struct]) -> pa.Table:
    schema = ARROW_SCHEMAS[name]
    arrays = [pa.array([getattr(item, field.name) for item in items], field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def dead_letters_table(dead_letters: Sequence[DeadLetter]) -> pa.Table:
    return _struct_table(DEAD_LETTERS, dead_letters)


def sequence_events_table(events: Sequence[SequenceEvent]) -> pa.Table:
    return _struct_table(SEQUENCE_GAPS, events)


def empty_table(name: str) -> pa.Table:
    return ARROW_SCHEMAS[name].empty_table()
