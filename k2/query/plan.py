"""Query planning: which Parquet files of a table snapshot can hold the rows a query asks for.

pyiceberg planning costs more per query than DuckDB takes to read a few pruned files, and grows with the manifest
count (benchmarks/report.md, "Design measurements: Query planning"). So a snapshot is planned once: every live
data file with its row count and the bounds of `symbol` and of the table's time column, read from the manifests
(manifests are immutable, so each one is read once per process, however many snapshots list it). A query then
prunes that list in memory, cheaply.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

import msgspec
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import DataFileContent, ManifestContent
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.types import StringType, TimestamptzType

from k2.storage.seams import seam_of


class DataFileEntry(msgspec.Struct, frozen=True, gc=False):
    """One live Parquet file and what its metadata says it can hold (None: no bound recorded)."""

    path: str
    rows: int
    size_bytes: int
    min_time: int | None  # µs
    max_time: int | None
    min_symbol: str | None
    max_symbol: str | None

    def may_hold(self, symbols: frozenset[str] | None, start: int | None, end: int | None) -> bool:
        """False only when the bounds prove no row matches; `end` is exclusive (`start` not before it: none does)."""
        if start is not None and end is not None and start >= end:
            return False
        if start is not None and self.max_time is not None and self.max_time < start:
            return False
        if end is not None and self.min_time is not None and self.min_time >= end:
            return False
        if symbols is None or self.min_symbol is None or self.max_symbol is None:
            return True
        # Upper bounds of strings may be truncated upwards, never below the real maximum: the test stays safe.
        return any(self.min_symbol <= s <= self.max_symbol for s in symbols)


class TablePlan(msgspec.Struct, frozen=True, gc=False):
    """A table at one snapshot: its live files, whether delete files exist, and its freshness."""

    table: str
    snapshot_id: int | None  # None: the table has no snapshot yet
    committed_at_ms: int | None
    files: tuple[DataFileEntry, ...]
    has_deletes: bool
    offsets: dict[str, int]  # the seam of this snapshot (newest recorded at or before it)

    @property
    def max_event_time(self) -> int | None:
        """The highest event time the snapshot covers, from file bounds (no data read)."""
        times = [f.max_time for f in self.files if f.max_time is not None]
        return max(times) if times else None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def prune(
        self, symbols: Iterable[str] | None = None, start: int | None = None, end: int | None = None
    ) -> list[DataFileEntry]:
        wanted = frozenset(symbols) if symbols is not None else None
        return [f for f in self.files if f.may_hold(wanted, start, end)]


class Planner:
    """Plans snapshots of one table and remembers the plans (and the manifests behind them)."""

    def __init__(self, time_column: str, max_plans: int = 16):
        self.time_column = time_column
        self.max_plans = max_plans
        self._plans: OrderedDict[int, TablePlan] = OrderedDict()
        self._manifests: dict[str, tuple[tuple[DataFileEntry, ...], bool]] = {}
        self._lock = threading.Lock()

    def plan(self, table: Table, snapshot: Snapshot | None, name: str) -> TablePlan:
        if snapshot is None:
            return TablePlan(name, None, None, (), False, {})
        with self._lock:
            cached = self._plans.get(snapshot.snapshot_id)
            if cached is not None:
                self._plans.move_to_end(snapshot.snapshot_id)
                return cached
        plan = self._plan(table, snapshot, name)
        with self._lock:
            self._plans[snapshot.snapshot_id] = plan
            while len(self._plans) > self.max_plans:
                self._plans.popitem(last=False)
        return plan

    def _plan(self, table: Table, snapshot: Snapshot, name: str) -> TablePlan:
        schema = table.schema()
        ids = (_field_id(schema, "symbol"), _field_id(schema, self.time_column))
        files: list[DataFileEntry] = []
        has_deletes = False
        live = set()
        for manifest in snapshot.manifests(table.io):
            entries, deletes = self._manifest(table, manifest, ids)
            has_deletes |= deletes
            files.extend(entries)
            live.add(manifest.manifest_path)
        # Forget manifests no longer listed by the newest plans' snapshots only when the cache grows large.
        if len(self._manifests) > 4 * max(len(live), 1_000):
            self._manifests = {k: v for k, v in self._manifests.items() if k in live}
        return TablePlan(
            table=name,
            snapshot_id=snapshot.snapshot_id,
            committed_at_ms=snapshot.timestamp_ms,
            files=tuple(files),
            has_deletes=has_deletes,
            offsets=seam_of(table, snapshot),
        )

    def _manifest(
        self, table: Table, manifest, ids: tuple[int | None, int | None]
    ) -> tuple[tuple[DataFileEntry, ...], bool]:
        cached = self._manifests.get(manifest.manifest_path)
        if cached is not None:
            return cached
        symbol_id, time_id = ids
        entries: list[DataFileEntry] = []
        deletes = manifest.content == ManifestContent.DELETES
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            data_file = entry.data_file
            if data_file.content != DataFileContent.DATA:
                deletes = True
                continue
            lower, upper = data_file.lower_bounds or {}, data_file.upper_bounds or {}
            entries.append(
                DataFileEntry(
                    path=data_file.file_path,
                    rows=data_file.record_count,
                    size_bytes=data_file.file_size_in_bytes,
                    min_time=_bound(lower, time_id, TimestamptzType()),
                    max_time=_bound(upper, time_id, TimestamptzType()),
                    min_symbol=_bound(lower, symbol_id, StringType()),
                    max_symbol=_bound(upper, symbol_id, StringType()),
                )
            )
        result = (tuple(entries), deletes)
        self._manifests[manifest.manifest_path] = result
        return result


def _field_id(schema: Schema, name: str) -> int | None:
    try:
        return schema.find_field(name).field_id
    except ValueError:
        return None


def _bound(bounds: dict[int, bytes], field_id: int | None, kind):
    if field_id is None or field_id not in bounds:
        return None
    return from_bytes(kind, bounds[field_id])
