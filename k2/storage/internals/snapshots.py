"""Snapshots pyiceberg cannot write or expire cheaply itself: `replace` rewrites, expiry of many ids at once, and
manifest lists read through its cache."""

from __future__ import annotations

from pyiceberg.manifest import ManifestContent, ManifestFile, _manifests
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Operation, Summary
from pyiceberg.table.update.snapshot import ExpireSnapshots, _ManifestMergeManager, _OverwriteFiles

manifests_of_list = _manifests  # (io, manifest list path) -> its ManifestFiles, through pyiceberg's manifest cache


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
