"""Everything in K2 that reaches into pyiceberg's private API, in one place to check when pyiceberg moves.

pyiceberg 0.12 has no public way to write a `replace` snapshot, to expire many snapshots without rebuilding the
metadata per id, to append without deep-copying the metadata at every look, to read a manifest list through its
cache, to scan and write given data files, or to write rows that all fall in one partition without splitting (so
copying) them first; the classes and names here do those on top of its internals.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.manifest import DataFile, ManifestContent, ManifestFile, _manifests
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.schema import Schema
from pyiceberg.table import EMPTY_DICT, MAIN_BRANCH, Table, TableProperties, Transaction, WriteTask
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import ExpireSnapshots, _ManifestMergeManager, _OverwriteFiles
from pyiceberg.utils.properties import property_as_int

__all__ = [
    "ArrowScan",
    "ExpireSnapshotsById",
    "MetadataSharingTransaction",
    "RewriteFiles",
    "manifests_of_list",
    "write_data_files",
]

manifests_of_list = _manifests  # (io, manifest list path) -> its ManifestFiles, through pyiceberg's manifest cache


def write_data_files(
    metadata: TableMetadata,
    df: pa.Table,
    io: FileIO,
    write_uuid: uuid.UUID | None = None,
    counter: itertools.count[int] | None = None,
) -> Iterable[DataFile]:
    """pyiceberg's `_dataframe_to_data_files` (a table's rows to data files), without its split when every row falls
    in one partition: the split filters, so copies, the whole table even then, and a flow's commit (its rows from
    seconds of one day) always does (benchmarks/report.md, "Design measurements: Flow thread and committer").
    Rows of several partitions, or none, go through pyiceberg's own path."""
    key = _only_partition(metadata, df)
    if key is None:
        return _dataframe_to_data_files(metadata, df, io, write_uuid, counter)
    counter = counter or itertools.count(0)
    write_uuid = write_uuid or uuid.uuid4()
    target_size = property_as_int(
        metadata.properties,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    schema = _task_schema(metadata, df.schema)
    tasks = (
        WriteTask(write_uuid, next(counter), schema, batches, partition_key=key)
        for batches in bin_pack_arrow_table(df, target_size)  # type: ignore[arg-type]
    )
    return write_file(io, metadata, tasks)


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
