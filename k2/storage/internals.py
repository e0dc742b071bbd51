"""Everything in K2 that reaches into pyiceberg's private API, in one place to check when pyiceberg moves.

pyiceberg 0.12 has no public way to write a `replace` snapshot, to expire many snapshots without rebuilding the
metadata per id, to append without deep-copying the metadata at every look, to read a manifest list through its
cache, to scan and write given data files, to write rows that all fall in one partition without splitting (so
copying) them first, or to leave chosen Parquet columns without a dictionary; the classes and names here do those
on top of its internals.
"""

from __future__ import annotations

import functools
import io
import itertools
import uuid
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    ParquetFormatModel,
    ParquetFormatWriter,
    _check_pyarrow_schema_compatible,
    _determine_partitions,
    _to_requested_schema,
    bin_pack_arrow_table,
    pyarrow_to_schema,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent, ManifestFile, _manifests
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.schema import Schema, sanitize_column_names
from pyiceberg.table import EMPTY_DICT, MAIN_BRANCH, Table, TableProperties, Transaction, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import ExpireSnapshots, _ManifestMergeManager, _OverwriteFiles
from pyiceberg.typedef import Properties, Record
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

__all__ = [
    "PLAIN_COLUMNS_PROPERTY",
    "ArrowScan",
    "ExpireSnapshotsById",
    "MetadataSharingTransaction",
    "RewriteFiles",
    "manifests_of_list",
    "write_data_files",
]

manifests_of_list = _manifests  # (io, manifest list path) -> its ManifestFiles, through pyiceberg's manifest cache

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
    `k2.parquet.plain-columns` names are written without a dictionary (benchmarks/report.md, "Design measurements:
    Flow thread and committer", "Design measurements: Parquet dictionary size")."""
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

    def __init__(self, output_file, file_schema, properties: Properties) -> None:  # type: ignore[no-untyped-def]
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


class MetadataSharingTransaction(Transaction):
    """pyiceberg's transaction (what `Table.append` uses), minus a deep copy of the whole table metadata at every
    look before anything is staged: an append looks many times, the copies were a large share of a commit's time,
    and they grow with every snapshot (benchmarks/report.md, "Design measurements: Commit cost over time"). The
    metadata models are frozen, so the unchanged metadata can be handed out as it is."""

    @property
    def table_metadata(self) -> TableMetadata:
        if not self._updates:
            return self._table.metadata
        return super().table_metadata

    def append(
        self, df: pa.Table, snapshot_properties: dict[str, str] = EMPTY_DICT, branch: str | None = MAIN_BRANCH
    ) -> None:
        """`Transaction.append` of an Arrow table, its data files written by `write_data_files`."""
        metadata = self.table_metadata
        _task_schema(metadata, df.schema)  # checks that the rows fit the table's schema first
        with self._append_snapshot_producer(snapshot_properties, branch=branch) as append_files:
            if df.num_rows:
                for data_file in write_data_files(metadata, df, self._table.io, append_files.commit_uuid):
                    append_files.append_data_file(data_file)


class RewriteFiles(_OverwriteFiles):
    """A `replace` snapshot: data files swapped for files with the same rows, and all data manifests merged.

    pyiceberg only writes append/overwrite/delete snapshots; readers (and `k2.query.latest`) tell a compaction
    from a logical change by the operation, so the summary is computed as an overwrite and labelled `replace`.
    """

    def __init__(self, table: Table, transaction: Transaction) -> None:
        super().__init__(operation=Operation.REPLACE, transaction=transaction, io=table.io)
        self.intermediate_manifests: list[str] = []

    def _summary(self, snapshot_properties=None) -> Summary:  # type: ignore[override]
        self._operation = Operation.OVERWRITE
        try:
            summary = super()._summary(snapshot_properties or {})
        finally:
            self._operation = Operation.REPLACE
        return Summary(Operation.REPLACE, **summary.additional_properties)

    def _validate_concurrency(self) -> None:
        """Appends committed meanwhile never conflict with a rewrite; the one conflict, an input file removed by
        someone else, is caught when the retry re-plans its deletes (`_validate_required_deletes`)."""

    def _process_manifests(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        data = [m for m in manifests if m.content == ManifestContent.DATA]
        deletes = [m for m in manifests if m.content == ManifestContent.DELETES]
        target = int(
            self._transaction.table_metadata.properties.get(
                TableProperties.MANIFEST_TARGET_SIZE_BYTES, TableProperties.MANIFEST_TARGET_SIZE_BYTES_DEFAULT
            )
        )
        merger = _ManifestMergeManager(
            target_size_bytes=target, min_count_to_merge=2, merge_enabled=True, snapshot_producer=self
        )
        merged = merger.merge_manifests(data)
        # The manifests this snapshot wrote for its added, deleted and rewritten entries are inputs of the merge;
        # the merged ones replace them, and no metadata will ever reference them.
        kept = {m.manifest_path for m in merged}
        self.intermediate_manifests = [
            m.manifest_path for m in data if m.added_snapshot_id == self._snapshot_id and m.manifest_path not in kept
        ]
        return merged + deletes


class ExpireSnapshotsById(ExpireSnapshots):
    """`ExpireSnapshots` that checks a list of ids against the metadata once.

    pyiceberg's `by_id` rebuilds (deep-copies) the transaction's metadata twice per id: expiring hundreds of
    snapshots was slow, and the flow's commits waited behind it (benchmarks/report.md,
    "Design measurements: Snapshot expiry").
    """

    def by_ids(self, snapshot_ids: list[int]) -> ExpireSnapshots:
        metadata = self._transaction.table_metadata
        known = {snapshot.snapshot_id for snapshot in metadata.snapshots}
        protected = {
            ref.snapshot_id
            for ref in metadata.refs.values()
            if ref.snapshot_ref_type in (SnapshotRefType.TAG, SnapshotRefType.BRANCH)
        }
        for snapshot_id in snapshot_ids:
            if snapshot_id not in known:
                raise ValueError(f"Snapshot with ID {snapshot_id} does not exist.")
            if snapshot_id in protected:
                raise ValueError(f"Snapshot with ID {snapshot_id} is protected and cannot be expired.")
        self._snapshot_ids_to_expire.update(snapshot_ids)
        return self
