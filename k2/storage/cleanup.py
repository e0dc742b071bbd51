"""Deleting what no metadata references any more: the files only expired snapshots used, and orphans.

After an expiry commit, `unreferenced_files` finds the manifest lists, manifests and data files that only the
expired snapshots referenced; `remove_orphan_files` sweeps a local warehouse for files no metadata references
(older than an age, since younger ones may belong to a commit in progress); `referenced_files` is what backups copy.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestContent, ManifestEntryStatus, ManifestFile
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from k2.storage.catalog import local_path
from k2.storage.internals import manifests_of_list

log = logging.getLogger(__name__)


class _ReferenceCache:
    """What each manifest list and manifest references, read once per process: they never change once written.

    Expiry asks what every kept snapshot references; with a snapshot a second that is about a thousand manifest
    lists per run, and re-reading them all held the flow's commits up (benchmarks/report.md,
    "Design measurements: Snapshot expiry"). Entries are dropped when their file is deleted, and the whole cache
    when it passes `limit` entries (it only costs a re-read).
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.lists: dict[str, tuple[str, ...]] = {}  # manifest list -> its manifests
        self.entries: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # manifest -> (live, all) data files

    def manifests(self, io: FileIO, manifest_list: str) -> tuple[str, ...]:
        paths = self.lists.get(manifest_list)
        if paths is None:
            manifests = [m for m in manifests_of_list(io, manifest_list) if m.content == ManifestContent.DATA]
            for manifest in manifests:
                if manifest.manifest_path not in self.entries:
                    entries = manifest.fetch_manifest_entry(io, discard_deleted=False)
                    live = frozenset(e.data_file.file_path for e in entries if e.status != ManifestEntryStatus.DELETED)
                    self.entries[manifest.manifest_path] = (live, frozenset(e.data_file.file_path for e in entries))
            paths = self.lists[manifest_list] = tuple(m.manifest_path for m in manifests)
            if len(self.lists) + len(self.entries) > self.limit:
                self.lists.clear()
                self.entries.clear()
                self.lists[manifest_list] = paths
        return paths

    def data_files(self, io: FileIO, manifest_list: str, manifest: str, live: bool) -> frozenset[str]:
        if manifest not in self.entries:
            self.lists.pop(manifest_list, None)
            self.manifests(io, manifest_list)
        return self.entries[manifest][0 if live else 1]

    def forget(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.lists.pop(path, None)
            self.entries.pop(path, None)


_references = _ReferenceCache()


def unreferenced_files(io: FileIO, before: TableMetadata, after: TableMetadata) -> list[str]:
    """Files that snapshots in `before` but not in `after` referenced and no snapshot of `after` does.

    Snapshots committed after `after` only add to what `after`'s current snapshot references, so nothing here can
    be theirs. Delete manifests are not looked at: K2's tables have none (no row-level deletes).
    """
    kept_ids = {s.snapshot_id for s in after.snapshots}
    gone = [s for s in before.snapshots if s.snapshot_id not in kept_ids]
    kept_lists = {s.manifest_list for s in after.snapshots}
    kept_manifests = {m: s.manifest_list for s in after.snapshots for m in _references.manifests(io, s.manifest_list)}
    gone_manifests = {
        m: s.manifest_list for s in gone for m in _references.manifests(io, s.manifest_list) if m not in kept_manifests
    }
    live: set[str] = set()
    for manifest, manifest_list in kept_manifests.items():
        live |= _references.data_files(io, manifest_list, manifest, live=True)
    data: set[str] = set()
    for manifest, manifest_list in gone_manifests.items():
        data |= _references.data_files(io, manifest_list, manifest, live=False) - live
    lists = [s.manifest_list for s in gone if s.manifest_list not in kept_lists]
    garbage = sorted(data) + sorted(gone_manifests) + lists
    _references.forget(garbage)
    return garbage


def referenced_files(table: Table) -> set[str]:
    """Every file the table's metadata points at: metadata files, manifest lists, manifests, data files."""
    metadata = table.metadata
    files = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    manifests: dict[str, ManifestFile] = {}
    for snapshot in metadata.snapshots:
        files.add(snapshot.manifest_list)
        manifests.update((m.manifest_path, m) for m in snapshot.manifests(table.io))
    files.update(manifests)
    for manifest in manifests.values():
        files.update(e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=False))
    return files


def remove_orphan_files(table: Table, older_than_seconds: float) -> int:
    """Delete files under a local table location that no metadata references and that are older than the given
    age (younger ones may belong to a commit in progress). Other storage is left alone (returns 0)."""
    location = table.location()
    if not location.startswith(("file:", "/")):
        return 0
    root = Path(local_path(location))
    referenced = {local_path(path) for path in referenced_files(table)}
    horizon = time.time() - older_than_seconds
    orphans = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if path not in referenced and os.stat(path).st_mtime < horizon:
                orphans.append(path)
    for path in orphans:
        os.remove(path)
    return len(orphans)


def delete_files(io: FileIO, paths: Iterable[str]) -> None:
    for path in paths:
        try:
            io.delete(path)
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not delete %s", path, exc_info=True)
