"""Table maintenance: compaction of small files, manifest merging, snapshot expiry and file cleanup.

Without it every commit makes the table a little slower to commit to: the metadata file lists every snapshot and
the manifest list every manifest (benchmarks/report.md, "Design measurements: Commit cost over time"). What
pyiceberg 0.12 offers is used as it is: `ExpireSnapshots` (metadata only), its manifest merge manager, its Parquet
writer and reader, commit retries for snapshot producers, and the metadata-log trimming of
`write.metadata.previous-versions-max` / `delete-after-commit`. What it lacks is done here:

- **Compaction** (`compact`): per partition, small data files are read (projected onto the current schema, so
  files older than an added column get nulls), sorted by the table's sort order and written as one file per bin of
  `target_file_bytes`; one `replace` snapshot swaps them (same rows exactly, no offsets: the seam is the parent's).
  The same snapshot merges the manifests. pyiceberg cannot write a `replace` snapshot, so
  `k2.storage.internals.RewriteFiles` produces one.
- **Expiry** (`expire_snapshots`): keeps the newest `retain_last` snapshots, those younger than
  `max_snapshot_age_seconds`, branch heads, and for each kept snapshot its ancestors up to the nearest one that
  records offsets, so `committed_offsets` (and a restart's exactly-once filter) finds the same seam afterwards.
  The conservation counters of the expired snapshots are added to `k2.carried.<counter>` table properties in the
  same metadata commit (`k2.storage.seams.summed_property` adds them back), so totals never change.
- **File cleanup**: manifest lists, manifests and data files that only expired snapshots referenced are deleted
  after the expiry commit; `remove_orphan_files` sweeps a local warehouse for files no metadata references.

Concurrency: the flow may commit while maintenance runs. Compaction commits go through pyiceberg's retry (refresh,
re-plan on the new head; a conflict only when an input file was removed meanwhile); expiry retries itself.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

import msgspec
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Snapshot

from k2.ops.retry import retry
from k2.storage.cleanup import delete_files, remove_orphan_files, unreferenced_files
from k2.storage.internals import ArrowScan, ExpireSnapshotsById, RewriteFiles, write_data_files
from k2.storage.seams import (
    DUPLICATES_PROPERTY,
    MESSAGES_PROPERTY,
    OFFSETS_PROPERTY,
    add_counts,
    carried_property,
    counter_of,
)

COUNTERS = (MESSAGES_PROPERTY, DUPLICATES_PROPERTY)
MIB = 1 << 20
# Metadata files kept on disk after each commit (pyiceberg deletes older ones when it commits): enough for a
# reader that loaded the table a few commits ago, and no growth of the warehouse with every commit.
METADATA_PROPERTIES = {
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    TableProperties.METADATA_PREVIOUS_VERSIONS_MAX: "20",
}

log = logging.getLogger(__name__)
T = TypeVar("T")


class MaintenancePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """What one maintenance run does. A snapshot survives expiry when any rule keeps it."""

    retain_last: int = 10  # newest snapshots always kept
    max_snapshot_age_seconds: float | None = 3600.0  # None: age keeps nothing; else younger snapshots are kept
    compact: bool = True
    small_file_bytes: int = 32 * MIB  # files below this size are compaction input
    target_file_bytes: int = 128 * MIB  # input bytes per rewritten file
    min_files_to_compact: int = 4  # per partition: fewer small files than this are left alone
    max_manifests: int = 8  # more manifests than this in the current snapshot get merged
    expire: bool = True
    orphan_age_seconds: float | None = None  # None: no orphan sweep; else files older than this with no reference
    attempts: int = 20  # rounds of commit attempts when another writer keeps winning the race


DEFAULT_POLICY = MaintenancePolicy()


class MaintenanceReport(msgspec.Struct, kw_only=True):
    """What a run did to one table."""

    table: str
    compacted_files: int = 0  # data files replaced
    written_files: int = 0  # data files written by compaction
    compacted_rows: int = 0
    partitions_compacted: int = 0
    manifests_before: int = 0
    manifests_after: int = 0
    expired_snapshots: int = 0
    snapshots_after: int = 0
    deleted_files: int = 0  # manifest lists, manifests and data files only expired snapshots referenced
    orphan_files: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"{self.table}: compacted {self.compacted_files} files ({self.compacted_rows:,} rows, "
            f"{self.partitions_compacted} partitions) into {self.written_files}; manifests {self.manifests_before}"
            f" -> {self.manifests_after}; expired {self.expired_snapshots} snapshots ({self.snapshots_after} left);"
            f" deleted {self.deleted_files} unreferenced files, {self.orphan_files} orphans; {self.seconds:.2f}s"
        )


def maintain(table: Table, policy: MaintenancePolicy = DEFAULT_POLICY, now_ms: int | None = None) -> MaintenanceReport:
    """Run the whole routine on one table: metadata properties, compaction, manifest merging, expiry, cleanup."""
    started = time.perf_counter()
    report = MaintenanceReport(table=".".join(table.name()))
    table = ensure_metadata_properties(table)
    report.manifests_before = _manifest_count(table)
    if policy.compact:
        compacted = compact(table, policy)
        table = table.refresh()
        report.compacted_files, report.written_files, report.compacted_rows, report.partitions_compacted = compacted
    if _manifest_count(table) > policy.max_manifests:
        table = merge_manifests(table, policy.attempts)
    report.manifests_after = _manifest_count(table)
    if policy.expire:
        report.expired_snapshots, report.deleted_files = expire_snapshots(table, policy, now_ms)
        table = table.refresh()
    if policy.orphan_age_seconds is not None:
        report.orphan_files = remove_orphan_files(table, policy.orphan_age_seconds)
    report.snapshots_after = len(table.snapshots())
    report.seconds = time.perf_counter() - started
    log.info("maintained %s", report.line())
    return report


def maintain_tables(
    catalog: Catalog, namespace: str, names: Iterable[str], policy: MaintenancePolicy
) -> list[MaintenanceReport]:
    """`maintain` each named table of a namespace, one after another."""
    return [maintain(catalog.load_table((namespace, name)), policy) for name in names]


def ensure_metadata_properties(table: Table, attempts: int = DEFAULT_POLICY.attempts) -> Table:
    """Turn on metadata-log trimming on a table created before it was a default."""

    def set_missing() -> Table:
        fresh = table.refresh()
        missing = {key: value for key, value in METADATA_PROPERTIES.items() if fresh.properties.get(key) != value}
        if missing:
            with fresh.transaction() as transaction:
                transaction.set_properties(missing)
        return fresh.refresh()

    return _racing(set_missing, table, attempts)


def _racing(commit: Callable[[], T], table: Table, attempts: int) -> T:
    """Run `commit` (which starts from freshly loaded metadata) again when another writer wins the race.

    pyiceberg retries a conflicting append itself (`commit.retry.num-retries`), not every kind of commit, and a
    flow committing several times a second can win all its retries.
    """

    def lost(_: int) -> None:
        log.info("maintenance commit on %s lost a race with another writer; again", ".".join(table.name()))

    return retry(commit, on=(CommitFailedException,), attempts=attempts, max_doublings=3, before_retry=lost)


# --- compaction ------------------------------------------------------------------------------------------------


def compaction_plan(table: Table, policy: MaintenancePolicy) -> list[list[DataFile]]:
    """Bins of small live data files to rewrite: per partition (and spec) with at least `min_files_to_compact`
    small files, consecutive files up to `target_file_bytes` of input each."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    groups: dict[tuple[int, tuple], list[DataFile]] = {}
    for manifest in snapshot.manifests(table.io):
        if manifest.content != ManifestContent.DATA:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            data_file = entry.data_file
            if data_file.file_size_in_bytes < policy.small_file_bytes:
                key = (data_file.spec_id, tuple(data_file.partition))
                groups.setdefault(key, []).append(data_file)
    bins: list[list[DataFile]] = []
    for files in groups.values():
        if len(files) < policy.min_files_to_compact:
            continue
        files.sort(key=lambda f: f.file_path)
        current: list[DataFile] = []
        size = 0
        for data_file in files:
            if current and size + data_file.file_size_in_bytes > policy.target_file_bytes:
                bins.append(current)
                current, size = [], 0
            current.append(data_file)
            size += data_file.file_size_in_bytes
        if len(current) > 1:
            bins.append(current)
    return bins


def compact(table: Table, policy: MaintenancePolicy = DEFAULT_POLICY) -> tuple[int, int, int, int]:
    """Rewrite small files into sorted files in one `replace` snapshot; returns (files in, files out, rows,
    partitions). Rows are checked to be the same count in and out before anything is committed."""
    bins = compaction_plan(table, policy)
    if not bins:
        return 0, 0, 0, 0
    metadata = table.metadata
    schema = metadata.schema()
    sort_names = [schema.find_column_name(field.source_id) for field in metadata.sort_order().fields]
    written: list[DataFile] = []
    rows = 0
    write_id = uuid.uuid4()
    counter = iter(range(1 << 62))
    try:
        for files in bins:
            data = ArrowScan(metadata, table.io, schema, AlwaysTrue()).to_table([FileScanTask(f) for f in files])
            expected = sum(f.record_count for f in files)
            if data.num_rows != expected:
                raise RuntimeError(f"compaction read {data.num_rows} rows from files holding {expected}")
            if sort_names:
                data = data.sort_by([(name, "ascending") for name in sort_names if name is not None])
            new_files = list(write_data_files(metadata, data, table.io, write_id, counter))  # type: ignore[arg-type]
            if sum(f.record_count for f in new_files) != expected:
                raise RuntimeError("compaction wrote a different number of rows than it read")
            written.extend(new_files)
            rows += expected
        deleted = [data_file for files in bins for data_file in files]
        _commit_rewrite(table, deleted, written, policy.attempts)
    except BaseException:
        delete_files(table.io, [f.file_path for f in written])  # never referenced: the commit did not land
        raise
    partitions = len({(f.spec_id, tuple(f.partition)) for files in bins for f in files})
    return sum(len(files) for files in bins), len(written), rows, partitions


def merge_manifests(table: Table, attempts: int = DEFAULT_POLICY.attempts) -> Table:
    """One `replace` snapshot with the same files and the data manifests merged (up to the target size each)."""
    _commit_rewrite(table, [], [], attempts)
    return table.refresh()


def _commit_rewrite(table: Table, deleted: list[DataFile], added: list[DataFile], attempts: int) -> None:
    """Commit a `replace` snapshot on the newest metadata. The files are written already, so another round only
    redoes the manifests. It fails for good when an input file is no longer live (`ValidationException`)."""

    def commit() -> None:
        with table.refresh().transaction() as transaction:
            rewrite = RewriteFiles(table, transaction)
            try:
                for data_file in deleted:
                    rewrite.delete_data_file(data_file)
                for data_file in added:
                    rewrite.append_data_file(data_file)
                rewrite.commit()
            finally:
                delete_files(table.io, rewrite.intermediate_manifests)

    _racing(commit, table, attempts)


def _manifest_count(table: Table) -> int:
    snapshot = table.current_snapshot()
    return len(snapshot.manifests(table.io)) if snapshot else 0


# --- expiry ----------------------------------------------------------------------------------------------------


def snapshots_to_expire(metadata: TableMetadata, policy: MaintenancePolicy, now_ms: int) -> list[int]:
    """The ids the policy lets go, oldest first (never the seam-bearing ancestors of a kept snapshot)."""
    snapshots = sorted(metadata.snapshots, key=lambda s: (s.sequence_number or 0, s.timestamp_ms))
    keep: set[int] = {s.snapshot_id for s in snapshots[-policy.retain_last :]} if policy.retain_last else set()
    if policy.max_snapshot_age_seconds is not None:
        horizon = now_ms - policy.max_snapshot_age_seconds * 1000
        keep |= {s.snapshot_id for s in snapshots if s.timestamp_ms >= horizon}
    keep |= {
        ref.snapshot_id
        for ref in metadata.refs.values()
        if ref.snapshot_ref_type in (SnapshotRefType.BRANCH, SnapshotRefType.TAG)
    }
    by_id = {s.snapshot_id: s for s in snapshots}
    for snapshot_id in list(keep):
        keep |= _seam_chain(by_id, by_id.get(snapshot_id))
    return [s.snapshot_id for s in snapshots if s.snapshot_id not in keep]


def _seam_chain(by_id: dict[int, Snapshot], snapshot: Snapshot | None) -> set[int]:
    """A snapshot and its ancestors up to the nearest one that records offsets (the snapshot's seam)."""
    chain: set[int] = set()
    while snapshot is not None and snapshot.snapshot_id not in chain:
        chain.add(snapshot.snapshot_id)
        if snapshot.summary is not None and OFFSETS_PROPERTY in snapshot.summary.additional_properties:
            break
        parent = snapshot.parent_snapshot_id
        snapshot = by_id.get(parent) if parent is not None else None
    return chain


def carried_counters(table: Table, expired: list[int]) -> dict[str, str]:
    """The `k2.carried.*` properties after expiring `expired`: what was carried so far plus their counts."""
    by_id = {s.snapshot_id: s for s in table.snapshots()}
    properties = {}
    for prop in COUNTERS:
        previous = table.properties.get(carried_property(prop))
        totals = {key: int(count) for key, count in json.loads(previous).items()} if previous else {}
        for snapshot_id in expired:
            add_counts(totals, counter_of(by_id[snapshot_id])(prop))
        if totals:
            properties[carried_property(prop)] = json.dumps(totals, sort_keys=True)
    return properties


def expire_snapshots(
    table: Table, policy: MaintenancePolicy = DEFAULT_POLICY, now_ms: int | None = None
) -> tuple[int, int]:
    """Expire what the policy lets go, carrying their counters forward in the same commit, then delete the files
    only they referenced. Returns (snapshots expired, files deleted). Retries on a concurrent commit."""

    def expire() -> tuple[Table, TableMetadata, list[int]]:
        fresh = table.refresh()
        before = fresh.metadata
        expired = snapshots_to_expire(before, policy, now_ms if now_ms is not None else int(time.time() * 1000))
        if expired:
            with fresh.transaction() as transaction:
                carried = carried_counters(fresh, expired)
                if carried:
                    transaction.set_properties(carried)
                ExpireSnapshotsById(transaction).by_ids(expired).commit()
        return fresh, before, expired

    fresh, before, expired = _racing(expire, table, policy.attempts)
    if not expired:
        return 0, 0
    garbage = unreferenced_files(fresh.io, before, fresh.refresh().metadata)
    delete_files(fresh.io, garbage)
    return len(expired), len(garbage)
