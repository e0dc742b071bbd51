"""Table metadata in a commit: a transaction that shares unchanged metadata, staging without deep copies, and the
SQL catalog that keeps the metadata files it wrote or read parsed."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io import FileIO
from pyiceberg.table import (
    EMPTY_DICT,
    MAIN_BRANCH,
    StagedTable,
    Table,
    TableRequirement,
    TableUpdate,
    Transaction,
)
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import _apply_table_update, _TableMetadataUpdateContext, _update_table_metadata_log
from pyiceberg.typedef import Identifier
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


class MetadataCachingSqlCatalog(SqlCatalog):
    """pyiceberg's SQL catalog, minus two costs in every commit that grow with the snapshots a table keeps. Its
    commit loads the table first, reading and parsing the current metadata file, which is most often the one this
    process just wrote; a metadata file never changes once written, so the parsed metadata of the newest files are
    kept by location. And it stages the new metadata through `updated_metadata`, without a deep copy. The check
    against a concurrent commit (the row's location compared in the same UPDATE) is pyiceberg's, unchanged."""

    _KEPT = 16  # a few tables, each with its newest metadata file

    def __init__(self, name: str, **properties: str) -> None:
        super().__init__(name, **properties)
        self._parsed: dict[str, TableMetadata] = {}

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        location = orm_table.metadata_location
        metadata = self._parsed.get(location) if location else None
        if metadata is None:
            table = super()._convert_orm_to_iceberg(orm_table)
            self._keep(table.metadata_location, table.metadata)
            return table
        return Table(
            identifier=(*Catalog.identifier_to_tuple(orm_table.table_namespace), orm_table.table_name),
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(metadata.properties, location),
            catalog=self,
        )

    def _write_metadata(self, metadata: TableMetadata, io: FileIO, metadata_path: str) -> None:  # type: ignore[override]
        super()._write_metadata(metadata, io, metadata_path)
        self._keep(metadata_path, metadata)

    def _keep(self, location: str, metadata: TableMetadata) -> None:
        if len(self._parsed) >= self._KEPT:
            self._parsed.pop(next(iter(self._parsed)))
        self._parsed[location] = metadata

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Identifier,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> StagedTable:
        if current_table is None:  # a new table: pyiceberg's path, which validates its metadata
            return super()._update_and_stage_table(current_table, table_identifier, requirements, updates)
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        metadata = updated_metadata(current_table.metadata, updates, current_table.metadata_location)
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        location = load_location_provider(metadata.location, metadata.properties).new_table_metadata_file_location(
            version
        )
        return StagedTable(
            identifier=table_identifier,
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(properties=metadata.properties, location=location),
            catalog=self,
        )
