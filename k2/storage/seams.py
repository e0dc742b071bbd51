"""Seams: the Kafka position each Iceberg table has committed up to, recorded in its snapshots' summaries.

Every data commit stores `k2.kafka.offsets` = `{"<topic>/<partition>": next offset}`. Maintenance snapshots
(compaction, manifest rewrites) carry none, so a table's seam at a snapshot is the one recorded by it or its nearest
ancestor; snapshot expiry keeps that ancestor (see `k2.storage.maintenance`).

Commits also record per-partition counters (`k2.messages`, `k2.duplicates`) that conservation sums over snapshots.
Expiring snapshots would lose their counts, so expiry adds them to a table property `k2.carried.<counter>` in the
same metadata commit that removes the snapshots: the sum over the table stays exact, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from k2.ops.config import Settings
from k2.storage.catalog import open_tables

OFFSETS_PROPERTY = "k2.kafka.offsets"
MESSAGES_PROPERTY = "k2.messages"  # per partition: messages a commit covered
DUPLICATES_PROPERTY = "k2.duplicates"  # per partition: duplicates among them, dropped
CARRIED_PREFIX = "k2.carried."  # table property prefix: counters of snapshots that expiry removed


def seam_of(table: Table, snapshot: Snapshot | None) -> dict[str, int]:
    """The offsets recorded by `snapshot` or, for snapshots that carry none, its nearest ancestor."""
    while snapshot is not None:
        value = snapshot.summary.additional_properties.get(OFFSETS_PROPERTY) if snapshot.summary else None
        if value is not None:
            return {key: int(offset) for key, offset in json.loads(value).items()}
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return {}


def committed_offsets(table: Table) -> dict[str, int]:
    """The seam of a table's current snapshot."""
    return seam_of(table, table.current_snapshot())


def lowest(seams: Iterable[dict[str, int]]) -> dict[str, int]:
    """Per partition, the lowest of several seams; a seam without the partition counts as 0 for it, so nothing a
    lagging table still needs is skipped."""
    seams = list(seams)
    keys = set().union(*seams)
    return {key: min(seam.get(key, 0) for seam in seams) for key in keys}


def carried_property(prop: str) -> str:
    """The table property holding the totals of `prop` from expired snapshots."""
    return CARRIED_PREFIX + prop


def counter_of(snapshot: Snapshot) -> Callable[[str], dict[str, int]]:
    """`prop -> {partition: count}` as recorded in one snapshot's summary (empty when absent)."""

    def read(prop: str) -> dict[str, int]:
        value = snapshot.summary.additional_properties.get(prop) if snapshot.summary else None
        return {key: int(count) for key, count in json.loads(value).items()} if value else {}

    return read


def add_counts(totals: dict[str, int], counts: dict[str, int]) -> dict[str, int]:
    for key, count in counts.items():
        totals[key] = totals.get(key, 0) + count
    return totals


def summed_property(table: Table, prop: str) -> dict[str, int]:
    """A per-partition counter (e.g. `k2.messages`) added up over the table's whole history: the live snapshots
    plus what expiry carried into the table's properties."""
    carried = table.properties.get(carried_property(prop))
    totals = {key: int(count) for key, count in json.loads(carried).items()} if carried else {}
    for snapshot in table.snapshots():
        add_counts(totals, counter_of(snapshot)(prop))
    return totals


def resume_offsets(tables: dict[str, Table]) -> dict[str, int]:
    """Where a source without recovery state starts: per partition, the lowest seam over all tables (the tables
    further ahead drop what they already hold)."""
    return lowest(committed_offsets(table) for table in tables.values())


def start_offsets(settings: Settings) -> dict[str, int]:
    """The resume positions recorded in the configured warehouse (creating the tables if needed)."""
    return resume_offsets(open_tables(settings))
