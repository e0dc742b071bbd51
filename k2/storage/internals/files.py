"""Data files: rows to Parquet files as pyiceberg writes them, without its split of one partition's rows and with
chosen columns written without a dictionary."""

from __future__ import annotations

import functools
import io
import itertools
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.io.pyarrow import (
    ParquetFormatModel,
    ParquetFormatWriter,
    _check_pyarrow_schema_compatible,
    _determine_partitions,
    _to_requested_schema,
    bin_pack_arrow_table,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.schema import Schema, sanitize_column_names
from pyiceberg.table import TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Properties, Record
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

# A table property: the top-level columns (comma-separated) whose Parquet pages are written without a dictionary.
PLAIN_COLUMNS_PROPERTY = "k2.parquet.plain-columns"


def write_data_files(
    metadata: TableMetadata,
    df: pa.Table,
    io: FileIO,
    write_uuid: uuid.UUID | None = None,
    counter: itertools.count[int] | None = None,
) -> Iterable[DataFile]:
    """pyiceberg's `_dataframe_to_data_files` (a table's rows to data files), with two differences. Rows that all
    fall in one partition are written as they are: pyiceberg's split filters, so copies, the whole table even then,
    and a flow's commit (its rows from seconds of one day) always does. And the columns the table's
    `k2.parquet.plain-columns` names are written without a dictionary (benchmarks/report.md,
    "Design measurements: Flow thread and committer", "Design measurements: Parquet dictionary size")."""
    counter = counter or itertools.count(0)
    write_uuid = write_uuid or uuid.uuid4()
    target_size = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    schema = _task_schema(metadata, df.schema)
    key = _only_partition(metadata, df)
    if key is not None or metadata.spec().is_unpartitioned():
        parts: Iterable[tuple[PartitionKey | None, pa.Table]] = [(key, df)]
    else:
        parts = (
            (p.partition_key, p.arrow_table_partition)
            for p in _determine_partitions(metadata.spec(), metadata.schema(), df)
        )
    tasks = (
        WriteTask(write_uuid, next(counter), schema, batches, partition_key=part_key)
        for part_key, rows in parts
        for batches in bin_pack_arrow_table(rows, target_size)  # type: ignore[arg-type]
    )
    return _write_files(io, metadata, tasks)


def _write_files(io: FileIO, metadata: TableMetadata, tasks: Iterator[WriteTask]) -> Iterator[DataFile]:
    """pyiceberg's `write_file` (each task to one Parquet data file, on its executor), its writer
    `_ParquetWriter`."""
    file_schema = sanitize_column_names(metadata.schema())
    locations = load_location_provider(table_location=metadata.location, table_properties=metadata.properties)
    model = ParquetFormatModel()

    def write_one(task: WriteTask) -> DataFile:
        batches = [
            _to_requested_schema(
                requested_schema=file_schema,
                file_schema=task.schema,
                batch=batch,
                downcast_ns_timestamp_to_us=False,  # K2's timestamps are microseconds already
                include_field_ids=True,
                format_model=model,
            )
            for batch in task.record_batches
        ]
        path = locations.new_data_location(
            data_file_name=task.generate_data_file_filename("parquet"), partition_key=task.partition_key
        )
        output = io.new_output(path)
        with _ParquetWriter(output, file_schema, metadata.properties) as writer:
            writer.write(pa.Table.from_batches(batches))
        statistics = writer.result()
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=task.partition_key.partition if task.partition_key else Record(),
            file_size_in_bytes=len(output),
            sort_order_id=None,
            spec_id=metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )

    return iter(ExecutorFactory.get_or_create().map(write_one, tasks))


class _ParquetWriter(ParquetFormatWriter):
    """pyiceberg's Parquet writer, minus the dictionary on the columns the table's `k2.parquet.plain-columns` names:
    a column of nearly unique values (times, ids, offsets) fills its dictionary, gives it up and goes on plain, and
    the attempt made writing slower and files larger than plain from the start."""

    def __init__(self, output_file: OutputFile, file_schema: Schema, properties: Properties) -> None:
        super().__init__(output_file, file_schema, properties)
        self._plain = frozenset(c.strip() for c in properties.get(PLAIN_COLUMNS_PROPERTY, "").split(",") if c.strip())

    def write(self, table: pa.Table) -> None:
        if self._plain and self._writer is None:
            self._parquet_writer_kwargs["use_dictionary"] = _dictionary_paths(table.schema, self._plain)
        super().write(table)


@functools.lru_cache(maxsize=64)
def _dictionary_paths(schema: pa.Schema, plain: frozenset[str]) -> list[str]:
    """The Parquet leaf paths (`list.element`, `key_value.key` within nested columns) of `schema`'s columns not in
    `plain`, as pyarrow names them: read from an empty file it writes, which is exact for any nesting."""
    buffer = io.BytesIO()
    pq.write_table(schema.empty_table(), buffer)
    parquet = pq.read_metadata(pa.BufferReader(buffer.getvalue())).schema
    leaves = (parquet.column(i).path for i in range(len(parquet)))
    return [path for path in leaves if path.split(".", 1)[0] not in plain]


# A table's writes carry the same few Arrow schemas commit after commit: checked and converted once each (together
# ~5 ms of pyiceberg's Python per commit, on the committer thread that sets the flow's pace when it catches up).
_TASK_SCHEMAS: dict[tuple[str, int, int, pa.Schema], Schema] = {}


def _task_schema(metadata: TableMetadata, arrow_schema: pa.Schema) -> Schema:
    """The Iceberg schema of rows in `arrow_schema` written to the table of `metadata`, once pyiceberg's check
    that they fit its current schema has passed (it raises otherwise)."""
    key = (metadata.table_uuid.hex, metadata.current_schema_id, metadata.format_version, arrow_schema)
    found = _TASK_SCHEMAS.get(key)
    if found is None:
        table_schema = metadata.schema()
        _check_pyarrow_schema_compatible(table_schema, arrow_schema, format_version=metadata.format_version)
        found = pyarrow_to_schema(arrow_schema, table_schema.name_mapping, format_version=metadata.format_version)
        if len(_TASK_SCHEMAS) >= 64:  # a process writes few tables; bounded all the same
            _TASK_SCHEMAS.clear()
        _TASK_SCHEMAS[key] = found
    return found


def _only_partition(metadata: TableMetadata, df: pa.Table) -> PartitionKey | None:
    """The partition of every row of `df` when they share one (top-level source columns, no nulls), else None."""
    spec, schema = metadata.spec(), metadata.schema()
    if spec.is_unpartitioned() or not df.num_rows:
        return None
    values = []
    for field in spec.fields:
        name = schema.find_column_name(field.source_id)
        if name is None or name not in df.column_names:
            return None
        column = field.transform.pyarrow_transform(schema.find_field(field.source_id).field_type)(df.column(name))
        if column.null_count:
            return None
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low != high:
            return None
        values.append(PartitionFieldValue(field=field, value=low))
    return PartitionKey(field_values=values, partition_spec=spec, schema=schema)
