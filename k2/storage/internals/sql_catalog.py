"""The SQL catalog K2 opens: pyiceberg's, keeping the metadata files it wrote or read parsed, and staging commits
without deep copies. A module of its own, imported when a catalog is opened: SQLAlchemy, which it needs, is a large
share of a process's imports, and the flow's first steps need not wait for it (benchmarks/report.md,
"Design measurements: Flow start-up")."""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io import FileIO
from pyiceberg.table import StagedTable, Table, TableRequirement, TableUpdate
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Identifier

from k2.storage.internals.metadata import updated_metadata


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
