"""One table commit: a snapshot carrying its seam and counts, retried until it lands exactly once.

The writer (`k2.storage.writer`) decides what to commit and when; this module only makes one commit happen:
sorted rows, the snapshot summary (`k2.kafka.offsets`, the counters, a commit id), retries through the circuit
breaker (`k2.ops.breaker`), and the check that tells a failed attempt from one that landed anyway.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from k2.ingest.columnar import empty_table
from k2.ops import tracing
from k2.ops.breaker import BreakerState, CircuitBreaker
from k2.ops.degrade import DegradationManager
from k2.ops.metrics import BREAKER_STATE, COMMIT_SECONDS, COMMITS, SNAPSHOTS
from k2.storage.catalog import sort_columns
from k2.storage.internals import MetadataSharingTransaction
from k2.storage.seams import DUPLICATES_PROPERTY, MESSAGES_PROPERTY, OFFSETS_PROPERTY

COMMIT_ID_PROPERTY = "k2.commit"  # tells, after a failed attempt, whether the commit landed anyway

log = logging.getLogger(__name__)


class CommitResult:
    __slots__ = ("rows", "seconds", "snapshot_id", "table")

    def __init__(self, table: str, rows: int, snapshot_id: int, seconds: float):
        self.table, self.rows, self.snapshot_id, self.seconds = table, rows, snapshot_id, seconds

    def __repr__(self) -> str:
        return f"CommitResult({self.table!r}, rows={self.rows}, snapshot={self.snapshot_id}, {self.seconds:.3f}s)"


def commit_table(
    tables: dict[str, Table],
    name: str,
    parts: list[pa.Table],
    seam: dict[str, int],
    counts: dict[str, tuple[int, int]],
    *,
    breaker: CircuitBreaker,
    degradation: DegradationManager | None = None,
    step: str = "commit",
) -> CommitResult:
    """Commit one table's rows with its seam and counts as one snapshot, through `breaker` until it lands once.

    Every attempt carries a fresh commit id in its summary: after a failed attempt the table is reloaded and
    searched for it, since an attempt can fail after the catalog took it (a lost reply), and retrying it would
    write twice. `tables[name]` is replaced by the reloaded table.
    """
    started = time.perf_counter()
    data = _sorted(pa.concat_tables(parts), sort_columns(name)) if parts else empty_table(name)
    commit_id = uuid.uuid4().hex
    properties = {OFFSETS_PROPERTY: json.dumps(seam, sort_keys=True), COMMIT_ID_PROPERTY: commit_id}
    if counts:
        properties[MESSAGES_PROPERTY] = json.dumps({k: c[0] for k, c in counts.items()}, sort_keys=True)
        properties[DUPLICATES_PROPERTY] = json.dumps({k: c[1] for k, c in counts.items()}, sort_keys=True)

    def attempt() -> int:
        try:
            with MetadataSharingTransaction(tables[name]) as transaction:
                transaction.append(data, snapshot_properties=properties)
        except Exception:
            COMMITS.labels(name, "failed").inc()
            raise
        COMMITS.labels(name, "ok").inc()
        return _current_snapshot_id(tables[name])

    def landed_anyway() -> int | None:
        # Reload the table (a conflicting writer, a catalog back from an outage), and look for this commit:
        # an attempt can fail after the catalog took it (a lost reply), and retrying it would write twice.
        table = tables[name] = tables[name].refresh()
        return _snapshot_with(table, commit_id)

    with tracing.span(step, table=name, rows=data.num_rows) as traced:
        snapshot_id = breaker.run(attempt, before_retry=landed_anyway)
        traced.set("snapshot_id", snapshot_id)
        traced.set("offsets", seam)
    seconds = time.perf_counter() - started
    COMMIT_SECONDS.labels(name).observe(seconds)
    if degradation is not None:
        degradation.observe_commit(seconds)
    SNAPSHOTS.labels(name).set(len(tables[name].metadata.snapshots))
    result = CommitResult(name, data.num_rows, snapshot_id, seconds)
    log.info(
        "committed %s",
        result,
        extra={"table": name, "rows": data.num_rows, "offsets": seam, "snapshot_id": snapshot_id},
    )
    return result


def _sorted(data: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    """`data` in the order of `columns` (ascending, nulls last), as `Table.sort_by` gives it. The sort keys are made
    contiguous first: sorting them across a commit's many chunks took a fifth longer than copying them
    (benchmarks/report.md, "Design measurements: Sorting a commit")."""
    keys = [(column, "ascending") for column in columns]
    order = pc.sort_indices(data.select(list(columns)).combine_chunks(), sort_keys=keys)
    return data.take(order)


def import_append() -> None:
    """Import ahead what pyiceberg imports in a process's first append (its schema check prints to `rich` tables,
    the day partition of the rows is computed in `pyiceberg_core`): imported by the first commit instead, on the
    committer thread while the flow's thread holds the GIL, it took ~0.15 s of that commit's 0.3-0.4 s
    (benchmarks/report.md, "Design measurements: Flow start-up")."""
    for module in ("rich.console", "rich.table", "pyiceberg_core.transform"):
        importlib.import_module(module)


def _current_snapshot_id(table: Table) -> int:
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot else -1


def _snapshot_with(table: Table, commit_id: str, depth: int = 50) -> int | None:
    """The id of the snapshot among the newest `depth` of the current branch that carries `commit_id`, if any."""
    snapshot = table.current_snapshot()
    while snapshot is not None and depth > 0:
        if snapshot.summary is not None and snapshot.summary.get(COMMIT_ID_PROPERTY) == commit_id:
            return snapshot.snapshot_id
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
        depth -= 1
    return None


def export_breaker_state(name: str, state: BreakerState) -> None:
    BREAKER_STATE.labels(name).set(int(state))


def commit_breaker(**options: object) -> CircuitBreaker:
    """The circuit breaker for Iceberg commits, its state exported as a metric."""
    return CircuitBreaker("iceberg_commit", on_state=export_breaker_state, **options)  # type: ignore[arg-type]
