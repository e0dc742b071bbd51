"""Table metadata in a commit: a transaction that shares unchanged metadata, and staging without deep copies."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from pyiceberg.table import EMPTY_DICT, MAIN_BRANCH, TableUpdate, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import _apply_table_update, _TableMetadataUpdateContext, _update_table_metadata_log
from pyiceberg.utils.datetime import datetime_to_millis

from k2.storage.internals.files import _task_schema, write_data_files


class MetadataSharingTransaction(Transaction):
    """pyiceberg's transaction (what `Table.append` uses), minus a deep copy of the whole table metadata at every
    look before anything is staged: an append looks many times, the copies were a large share of a commit's time,
    and they grow with every snapshot (benchmarks/report.md, "Design measurements: Commit cost over time"). The
    metadata models are frozen, so the unchanged metadata can be handed out as it is."""

    @property
    def table_metadata(self) -> TableMetadata:
        if not self._updates:
            return self._table.metadata
        return updated_metadata(self._table.metadata, self._updates)

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


def updated_metadata(
    base: TableMetadata, updates: tuple[TableUpdate, ...], metadata_location: str | None = None
) -> TableMetadata:
    """pyiceberg's `update_table_metadata` (without its validation of a new table's metadata), minus the deep copy of
    the result: every update builds new containers (copy on write), and the copy grew with every snapshot kept, twice
    a commit (benchmarks/report.md, "Design measurements: Commit cost over time")."""
    context = _TableMetadataUpdateContext()
    metadata = base
    for update in updates:
        metadata = _apply_table_update(update, metadata, context)
    if context.has_changes():
        if metadata_location:
            metadata = _update_table_metadata_log(metadata, metadata_location, base.last_updated_ms)
        if base.last_updated_ms == metadata.last_updated_ms:
            metadata = metadata.model_copy(update={"last_updated_ms": datetime_to_millis(datetime.now().astimezone())})
    metadata.spec().check_compatible(metadata.schema())
    metadata.sort_order().check_compatible(metadata.schema())
    return metadata
