"""Everything in K2 that reaches into pyiceberg's private API, in one place to check when pyiceberg moves.

pyiceberg 0.12 has no public way to write a `replace` snapshot, to expire many snapshots without rebuilding the
metadata per id, to append or commit without deep-copying the metadata, to commit without re-reading the metadata
file it just wrote, to read a manifest list through its cache, to scan and write given data files, to write rows
that all fall in one partition without splitting (so copying) them first, or to leave chosen Parquet columns
without a dictionary; the classes and names here do those on top of its internals:

- `files`: rows to data files (`write_data_files`);
- `metadata`: commits (`MetadataSharingTransaction`, `updated_metadata`);
- `sql_catalog`: the SQL catalog (`MetadataCachingSqlCatalog`), imported only where a catalog is opened;
- `snapshots`: rewrites and expiry (`RewriteFiles`, `ExpireSnapshotsById`, `manifests_of_list`).
"""

from pyiceberg.io.pyarrow import ArrowScan

from k2.storage.internals.files import PLAIN_COLUMNS_PROPERTY, write_data_files
from k2.storage.internals.metadata import MetadataSharingTransaction, updated_metadata
from k2.storage.internals.snapshots import ExpireSnapshotsById, RewriteFiles, manifests_of_list

__all__ = [
    "PLAIN_COLUMNS_PROPERTY",
    "ArrowScan",
    "ExpireSnapshotsById",
    "MetadataSharingTransaction",
    "RewriteFiles",
    "manifests_of_list",
    "updated_metadata",
    "write_data_files",
]
