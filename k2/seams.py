"""Seams: the Kafka position each Iceberg table has committed up to, recorded in its snapshots' summaries.

Every data commit stores `k2.kafka.offsets` = `{"<topic>/<partition>": next offset}`. Maintenance snapshots
(compaction, expiry) carry none, so a table's seam at a snapshot is the one recorded by it or its nearest ancestor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

OFFSETS_PROPERTY = "k2.kafka.offsets"


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
