"""The Iceberg catalog and K2's table definitions.

Tables live in one namespace: `trades`, `quotes`, `dead_letters`, `sequence_gaps`. They are created on first use,
partitioned by `day(timestamp)` and sorted by `(symbol, timestamp, source_sequence)`. Every row carries its source
position (`source_topic`, `source_partition`, `source_offset`), so any row can be traced back to its message.

SQLAlchemy (for the SQL catalog) is imported when a catalog is opened, not with this module: the flow opens its
catalog on a thread of its own while Kafka sets up, and its first steps need the table definitions here only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DecimalType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    TimestamptzType,
)

from k2.ops.config import Settings
from k2.ops.retry import retry
from k2.storage.internals import PLAIN_COLUMNS_PROPERTY

T = TypeVar("T")

TRADES = "trades"
QUOTES = "quotes"
DEAD_LETTERS = "dead_letters"
SEQUENCE_GAPS = "sequence_gaps"
TABLE_NAMES = (TRADES, QUOTES, DEAD_LETTERS, SEQUENCE_GAPS)
TABLE_FOR_KIND = {"trade": TRADES, "quote": QUOTES}

PRICE = DecimalType(18, 8)
# Small row groups let DuckDB skip most of a file for one symbol's minute: it decompresses whole row groups. Files
# grow only a little as groups shrink; this size answered one symbol's minute fastest of those tried, smaller ones
# no faster (figures: benchmarks/report.md, "Design measurements: Parquet row groups and codec").
TABLE_PROPERTIES = {
    "write.parquet.row-group-limit": "16384",
    # lz4 writes much faster than zstd here (benchmarks/report.md, "Design measurements: Parquet row groups and codec");
    # compaction may recompress.
    "write.parquet.compression-codec": "lz4",
    # A column's dictionary is given up (plain encoding from there on) once it passes this size: the low-cardinality
    # columns (exchange, symbol, side...) stay dictionary-encoded, while prices, often repeated within a symbol, keep
    # theirs only while it pays. pyiceberg's 2 MiB kept every column in one, which made writing slower and files
    # larger; 32 KiB wrote faster and smaller than 64 KiB (benchmarks/report.md,
    # "Design measurements: Flow thread and committer", "Design measurements: Parquet dictionary size").
    "write.parquet.dict-size-bytes": str(32 * 1024),
    "format-version": "2",
}


# Columns of nearly unique values (times, ids, sequences, offsets) never keep a dictionary: written plain from the
# start (`k2.storage.internals.write_data_files`), a commit's file is written faster and smaller than after the
# attempt to build one (benchmarks/report.md, "Design measurements: Parquet dictionary size").
_RECORD_PLAIN_COLUMNS = ("timestamp", "ingestion_timestamp", "source_sequence", "message_id", "source_offset")
PLAIN_COLUMNS = {
    TRADES: (*_RECORD_PLAIN_COLUMNS, "trade_id"),
    QUOTES: (*_RECORD_PLAIN_COLUMNS, "quote_id"),
    DEAD_LETTERS: ("source_offset", "raw", "source_timestamp"),
    SEQUENCE_GAPS: ("expected_sequence", "received_sequence", "timestamp", "previous_timestamp", "source_offset"),
}


def table_properties(name: str) -> dict[str, str]:
    """The properties a new table `name` is created with."""
    return {**TABLE_PROPERTIES, PLAIN_COLUMNS_PROPERTY: ",".join(PLAIN_COLUMNS[name])}


def _common(first_id: int) -> list[NestedField]:
    ids = iter(range(first_id, first_id + 100))
    return [
        NestedField(next(ids), "exchange", StringType(), required=True),
        NestedField(next(ids), "symbol", StringType(), required=True),
        NestedField(next(ids), "asset_class", StringType(), required=True),
        NestedField(next(ids), "timestamp", TimestamptzType(), required=True),
        NestedField(next(ids), "ingestion_timestamp", TimestamptzType(), required=False),
        NestedField(next(ids), "currency", StringType(), required=True),
        NestedField(next(ids), "source_sequence", LongType(), required=False),
        NestedField(next(ids), "message_id", StringType(), required=False),
    ]


def _position(first_id: int) -> list[NestedField]:
    return [
        NestedField(first_id, "source_topic", StringType(), required=True),
        NestedField(first_id + 1, "source_partition", IntegerType(), required=True),
        NestedField(first_id + 2, "source_offset", LongType(), required=True),
    ]


def _vendor_data(field_id: int) -> NestedField:
    value_type = MapType(field_id + 1, StringType(), field_id + 2, StringType(), value_required=False)
    return NestedField(field_id, "vendor_data", value_type, required=False)


TRADES_SCHEMA = Schema(
    *_common(1),
    NestedField(20, "trade_id", StringType(), required=True),
    NestedField(21, "price", PRICE, required=True),
    NestedField(22, "quantity", PRICE, required=True),
    NestedField(23, "side", StringType(), required=True),
    NestedField(24, "trade_conditions", ListType(25, StringType(), element_required=False), required=False),
    _vendor_data(26),
    *_position(40),
)

QUOTES_SCHEMA = Schema(
    *_common(1),
    NestedField(20, "quote_id", StringType(), required=True),
    NestedField(21, "bid_price", PRICE, required=False),
    NestedField(22, "bid_quantity", PRICE, required=False),
    NestedField(23, "ask_price", PRICE, required=False),
    NestedField(24, "ask_quantity", PRICE, required=False),
    NestedField(25, "one_sided", BooleanType(), required=True),
    NestedField(26, "crossed", BooleanType(), required=True),
    _vendor_data(27),
    *_position(40),
)

DEAD_LETTERS_SCHEMA = Schema(
    *_position(1),
    NestedField(4, "kind", StringType(), required=True),
    NestedField(5, "reason", StringType(), required=True),
    NestedField(6, "detail", StringType(), required=True),
    NestedField(7, "raw", BinaryType(), required=True),
    NestedField(8, "source_timestamp", TimestamptzType(), required=False),
)

SEQUENCE_GAPS_SCHEMA = Schema(
    NestedField(1, "event", StringType(), required=True),
    NestedField(2, "kind", StringType(), required=True),
    NestedField(3, "exchange", StringType(), required=True),
    NestedField(4, "symbol", StringType(), required=True),
    NestedField(5, "session", IntegerType(), required=True),
    NestedField(6, "expected_sequence", LongType(), required=True),
    NestedField(7, "received_sequence", LongType(), required=True),
    NestedField(8, "missing_count", LongType(), required=True),
    NestedField(9, "timestamp", TimestamptzType(), required=True),
    NestedField(10, "previous_timestamp", TimestamptzType(), required=True),
    *_position(11),
)

SCHEMAS: dict[str, Schema] = {
    TRADES: TRADES_SCHEMA,
    QUOTES: QUOTES_SCHEMA,
    DEAD_LETTERS: DEAD_LETTERS_SCHEMA,
    SEQUENCE_GAPS: SEQUENCE_GAPS_SCHEMA,
}
_TIME_COLUMN = {TRADES: "timestamp", QUOTES: "timestamp", SEQUENCE_GAPS: "timestamp", DEAD_LETTERS: "source_timestamp"}
_SORT_COLUMNS = {
    TRADES: ("symbol", "timestamp", "source_sequence"),
    QUOTES: ("symbol", "timestamp", "source_sequence"),
    SEQUENCE_GAPS: ("symbol", "timestamp"),
    DEAD_LETTERS: ("source_topic", "source_partition", "source_offset"),
}


def partition_spec(name: str) -> PartitionSpec:
    source = SCHEMAS[name].find_field(_TIME_COLUMN[name])
    return PartitionSpec(PartitionField(source.field_id, 1000, DayTransform(), "day"))


def sort_order(name: str) -> SortOrder:
    schema = SCHEMAS[name]
    fields = [
        SortField(schema.find_field(column).field_id, IdentityTransform(), SortDirection.ASC, NullOrder.NULLS_FIRST)
        for column in _SORT_COLUMNS[name]
    ]
    return SortOrder(*fields)


def sort_columns(name: str) -> tuple[str, ...]:
    return _SORT_COLUMNS[name]


def _retrying(action: Callable[[], T], attempts: int = 8) -> T:
    """Workers and processes start together and race to create the catalog's own tables and ours; whoever
    loses the race finds the object there on the next try."""
    from sqlalchemy.exc import SQLAlchemyError  # imported with the catalog, off the flow's start (module docstring)

    return retry(action, on=(SQLAlchemyError, TableAlreadyExistsError, NamespaceAlreadyExistsError), attempts=attempts)


def open_catalog(settings: Settings) -> Catalog:
    """The configured catalog: by default SQLite under the data dir with a local warehouse folder; any SQLAlchemy URL
    gives a SQL catalog (`k2.storage.internals.MetadataCachingSqlCatalog`), an http(s) URL a REST catalog."""
    return _retrying(lambda: _open_catalog(settings))


def _open_catalog(settings: Settings) -> Catalog:
    uri = settings.resolved_catalog_uri
    if uri.startswith("sqlite:///"):
        settings.data_path.mkdir(parents=True, exist_ok=True)
    properties = {"uri": uri, "warehouse": settings.resolved_warehouse}
    s3 = {
        "s3.endpoint": settings.s3_endpoint,
        "s3.access-key-id": settings.s3_access_key_id,
        "s3.secret-access-key": settings.s3_secret_access_key,
        "s3.region": settings.s3_region,
    }
    properties |= {key: value for key, value in s3.items() if value}
    if settings.s3_endpoint:
        properties["s3.force-virtual-addressing"] = "false"  # path-style, as MinIO and other local stores expect
    if uri.startswith(("http://", "https://")):
        return load_catalog(settings.catalog_name, type="rest", **properties)
    from k2.storage.internals.sql_catalog import MetadataCachingSqlCatalog  # with SQLAlchemy: module docstring

    return MetadataCachingSqlCatalog(settings.catalog_name, **properties)


def ensure_tables(catalog: Catalog, namespace: str) -> dict[str, Table]:
    """Create the namespace and the four tables when missing; return them by name."""
    _retrying(lambda: catalog.create_namespace_if_not_exists(namespace))
    return {name: _retrying(lambda name=name: _load_or_create(catalog, namespace, name)) for name in TABLE_NAMES}


def _load_or_create(catalog: Catalog, namespace: str, name: str) -> Table:
    # Loaded first: pyiceberg's create_table_if_not_exists writes a new metadata file before it finds the table
    # there, so every start left four unused files in the warehouse and took ~5x as long.
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return catalog.create_table_if_not_exists(
            (namespace, name),
            schema=SCHEMAS[name],
            partition_spec=partition_spec(name),
            sort_order=sort_order(name),
            properties=table_properties(name),  # a new dict: pyiceberg pops "format-version" from it
        )


def open_tables(settings: Settings) -> dict[str, Table]:
    """The configured warehouse's four tables (created when missing), by name."""
    return ensure_tables(open_catalog(settings), settings.namespace)


def read_table(table: Table, columns: Iterable[str] | None = None) -> pa.Table:
    """The whole current content of a table (tests and small tools; queries go through the query engine)."""
    table = table.refresh()
    selected = tuple(columns) if columns is not None else ("*",)
    return table.scan(selected_fields=selected).to_arrow()


def local_path(uri: str) -> str:
    """The file-system path of a local warehouse location (`file:///x`, `file:/x` or `/x`); others unchanged."""
    return uri.removeprefix("file://") if uri.startswith("file:///") else uri.removeprefix("file:")
