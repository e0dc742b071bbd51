"""Writing to Iceberg, and the commit protocol that makes it exactly-once.

One committer (`IcebergWriter`) owns all four tables. It buffers Arrow batches and commits per epoch (or when the
buffer is large), never per message. Each table's commit stores, in its snapshot summary, the next source offset of
every partition that table has covered (`k2.kafka.offsets`): that is the table's seam. On start the writer reads
the seams back (walking past maintenance snapshots, which carry none) and drops any row at an offset below its
table's seam, so a source that re-sends already committed messages cannot write them twice.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata

from k2 import tracing
from k2.batch import position_key
from k2.breaker import BreakerState, CircuitBreaker
from k2.catalog import (
    DEAD_LETTERS,
    QUOTES,
    SEQUENCE_GAPS,
    TABLE_FOR_KIND,
    TRADES,
    ensure_tables,
    open_catalog,
    sort_columns,
)
from k2.columnar import ArrowBatch, empty_table
from k2.config import Settings
from k2.degrade import DegradationManager
from k2.maintenance import MaintenancePolicy, maintain
from k2.memory import MemoryReleaser
from k2.metrics import BREAKER_STATE, COMMIT_SECONDS, COMMITS, SNAPSHOTS
from k2.seams import (  # noqa: F401 - the counters and summed_property are re-exported
    DUPLICATES_PROPERTY,
    MESSAGES_PROPERTY,
    OFFSETS_PROPERTY,
    committed_offsets,
    lowest,
    summed_property,
)

RECENT_COMMITS = 1_000  # a long-running flow must not keep one entry per commit forever
COMMIT_ID_PROPERTY = "k2.commit"  # tells, after a failed attempt, whether the commit landed anyway
# Side tables first: a crash between commits then re-derives (and filters) data rows, never loses a dead letter.
COMMIT_ORDER = (DEAD_LETTERS, SEQUENCE_GAPS, QUOTES, TRADES)
# Side tables get few rows; committing them at every interval would cost more metadata than data. Their seam
# simply lags (a restart resumes from the lowest seam and the data tables' seams filter what they already hold).
SIDE_TABLES = (DEAD_LETTERS, SEQUENCE_GAPS)
SIDE_TABLE_INTERVALS = 10  # side tables commit every this many commit intervals, and at every epoch end
# Handed to the committer thread and not done yet; one more makes the flow wait. One bounds memory (a commit's
# rows are held until it is done) and pushes back on the source when Iceberg is slower than the feed.
MAX_PENDING_COMMITS = 1
EPOCH_END_SLACK = 0.25  # no timed commit within this share of an interval before the next epoch end is due

Job = tuple[str, list[pa.Table], dict[str, int], dict[str, tuple[int, int]]]  # table, rows, seam, counts

log = logging.getLogger(__name__)


def resume_offsets(tables: dict[str, Table]) -> dict[str, int]:
    """Where a source without recovery state starts: per partition, the lowest seam over all tables (the tables
    further ahead drop what they already hold)."""
    return lowest(committed_offsets(table) for table in tables.values())


class CommitResult:
    __slots__ = ("rows", "seconds", "snapshot_id", "table")

    def __init__(self, table: str, rows: int, snapshot_id: int, seconds: float):
        self.table, self.rows, self.snapshot_id, self.seconds = table, rows, snapshot_id, seconds

    def __repr__(self) -> str:
        return f"CommitResult({self.table!r}, rows={self.rows}, snapshot={self.snapshot_id}, {self.seconds:.3f}s)"


class IcebergWriter:
    """Buffers batches for the four tables and commits them with their source positions."""

    def __init__(
        self,
        catalog: Catalog,
        namespace: str,
        *,
        commit_max_rows: int = 2_000_000,
        commit_interval_seconds: float = 1.0,
        seam_heartbeat_seconds: float = 30.0,
        breaker: CircuitBreaker | None = None,
        degradation: DegradationManager | None = None,
        maintenance_every_commits: int = 0,
        maintenance_policy: MaintenancePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.tables = ensure_tables(catalog, namespace)
        self.commit_max_rows = commit_max_rows
        self.commit_interval_seconds = commit_interval_seconds
        self.seam_heartbeat_seconds = seam_heartbeat_seconds
        self._clock = clock
        self.seams: dict[str, dict[str, int]] = {name: committed_offsets(t) for name, t in self.tables.items()}
        self._last_commit = {name: clock() for name in self.tables}
        # The first rows commit at once: a restarted flow moves the committed position as soon as it can read,
        # not an interval (or an epoch) later; a process that keeps dying young still makes progress.
        self._last_flush = -math.inf
        self._epoch_ends: list[float] = []  # the last two, to tell when the next is due
        self._buffers: dict[str, list[pa.Table]] = {name: [] for name in self.tables}
        self._buffered_rows = 0
        self._positions: dict[str, int] = {}  # next offset reached per partition (in buffered data)
        self._kind_table: dict[str, str] = {}  # which data table a partition feeds
        self._duplicates: dict[str, int] = {}
        self._messages: dict[str, int] = {}
        self.commits: deque[CommitResult] = deque(maxlen=RECENT_COMMITS)  # the latest few, for tools and tests
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k2-iceberg-commit")
        # Commits handed to the committer thread and not known to be done, oldest first (at most
        # MAX_PENDING_COMMITS): each with its jobs, so a snapshot can carry what is not in Iceberg yet.
        self._inflight: list[tuple[Future, list[Job]]] = []
        self._failure: BaseException | None = None
        self._committer_failed = False
        # Failed commits are retried with the same data until they land (see k2.breaker): the committer thread
        # waits, the flow waits on it, nothing is dropped or written twice.
        self.breaker = breaker or CircuitBreaker("iceberg_commit", on_state=_export_breaker_state)
        _export_breaker_state(self.breaker.name, self.breaker.state)
        self.degradation = degradation  # stretches the commit interval under pressure; hears every commit's time
        # Table maintenance on the committer thread, between this writer's own commits (so it never races them):
        # without it every commit adds a snapshot and a manifest, and commits slow down as they accumulate.
        self.maintenance_every_commits = maintenance_every_commits
        self.maintenance_policy = maintenance_policy or MaintenancePolicy()
        self._commits_since_maintenance = 0
        self._memory = MemoryReleaser()

    def write(self, batch: ArrowBatch) -> None:
        """Buffer what a batch adds above the seams, then commit if the buffer is large or the interval is over.

        A tick (an empty batch: the source is idle, see `k2.batch.tick`) buffers nothing and moves no position; it
        only runs the timed commit, which takes the side tables once they are due and records lagging seams (the
        heartbeat), so an idle stream's dead letters and gap events still reach Iceberg.
        """
        if self._failure is not None:
            self._join()
        if batch.source_offsets:
            with tracing.batch_span("buffer", batch):
                self._buffer(batch)
        # Commit on size or time as well as at every Bytewax epoch: the cadence then holds whatever epoch
        # interval the runner was given, and correctness never depends on it (the seams filter re-sent rows).
        now = self._clock()
        interval = self.commit_interval_seconds
        if self.degradation is not None:
            self.degradation.maybe_update()
            interval *= self.degradation.commit_interval_factor
        interval_over = now - self._last_flush >= interval and not self._epoch_end_near(now)
        if self._buffered_rows >= self.commit_max_rows or interval_over:
            self.commit(side_tables=False, wait=False)

    def _buffer(self, batch: ArrowBatch) -> None:
        """Buffer the rows at or above their table's seam, with the batch's counts and position."""
        key = position_key(batch.topic, batch.partition)
        self._kind_table[key] = TABLE_FOR_KIND[batch.kind]
        kind_seam = self.seams[self._kind_table[key]].get(key, 0)
        # Each table by its own seam: side tables lag the data tables, so a batch wholly below the data table's
        # seam (a source resuming from an older recovery state) may still carry dead letters and gap events that
        # no commit took.
        for name, table in batch.tables.items():
            seam = self.seams[name].get(key, 0)
            if seam > batch.first_offset:
                table = table.filter(pc.greater_equal(table["source_offset"], seam))
            if table.num_rows:
                self._buffers[name].append(table)
                self._buffered_rows += table.num_rows
        # Count only what lies at or above the seam: the rest was counted with the commit that covered it.
        messages = len(batch.source_offsets) - bisect_left(batch.source_offsets, kind_seam)
        if messages:
            duplicates = sum(1 for offset in batch.duplicate_offsets if offset >= kind_seam)
            self._duplicates[key] = self._duplicates.get(key, 0) + duplicates
            self._messages[key] = self._messages.get(key, 0) + messages
        self._positions[key] = max(self._positions.get(key, 0), batch.next_offset)

    def commit(self, *, final: bool = False, side_tables: bool = True, wait: bool = True) -> None:
        """Commit what is buffered; tables with nothing new record their seam when it is due (or `final`).

        The commit runs on one background thread, so Parquet encoding (which releases the GIL) overlaps the
        next batches' decoding; commits stay in order (one thread, and a commit after a failed one never runs).
        `wait=False` returns once the work is handed over, waiting only while MAX_PENDING_COMMITS are
        outstanding; `wait=True` returns once everything is in Iceberg.
        `side_tables=False` leaves dead letters and gap events buffered until they are due.
        """
        self._reap()
        now = self._last_flush = self._clock()
        side_due = now - self._last_commit[DEAD_LETTERS] >= SIDE_TABLE_INTERVALS * self.commit_interval_seconds
        jobs: list[Job] = []
        for name in COMMIT_ORDER:
            if name in SIDE_TABLES and not (side_tables or final or side_due):
                continue
            seam = {**self.seams[name], **self._positions_for(name)}
            counts = self._counts_for(name)
            lagging = seam != self.seams[name]
            due = final or now - self._last_commit[name] >= self.seam_heartbeat_seconds
            if not (self._buffers[name] or counts or (lagging and due)):
                continue
            jobs.append((name, self._buffers[name], seam, counts))
            # Handed over: from here the seam counts as taken (rows below it are never buffered again). If the
            # commit fails, this writer refuses all further work and the flow restarts from Iceberg's seams.
            self._buffers[name] = []
            for key in counts:
                self._messages.pop(key, None)
                self._duplicates.pop(key, None)
            self.seams[name] = seam
            self._last_commit[name] = now
        self._buffered_rows = sum(t.num_rows for parts in self._buffers.values() for t in parts)
        if jobs:
            while len(self._inflight) >= MAX_PENDING_COMMITS:
                self._join(self._inflight[0][0])
            self._inflight.append((self._committer.submit(self._commit_tables, jobs), jobs))
        if wait:
            while self._inflight:
                self._join(self._inflight[0][0])

    def close(self) -> None:
        try:
            self.commit(final=True)
        finally:
            self._committer.shutdown(wait=True)

    def end_epoch(self) -> PendingSnapshot | None:
        """At a Bytewax epoch end: hand the data tables over without waiting, and return what may not be in Iceberg
        (see `pending_state`). Side tables keep their own cadence: their buffered rows ride in the state.

        Always, even under pressure (a degradation level stretching the commit interval only spaces the timed
        commits inside a long epoch): rows deferred past an epoch end would ride in every recovery snapshot
        until committed, so a backlog (catching up after a crash is exactly when the lag is high) grew the state
        without bound while the committed position stood still, and each restart started further behind.
        """
        self._epoch_ends = [*self._epoch_ends[-1:], self._clock()]
        with tracing.span("snapshot") as traced:
            self.commit(side_tables=False, wait=False)
            state = self.pending_state()
            if traced and state is not None:
                traced.set("pending_commits", len(state.commits))
                traced.set("pending_side_tables", len(state.buffered))
        return state

    def _epoch_end_near(self, now: float) -> bool:
        """True shortly before the next epoch end is due: its commit is about to come, and a timed commit just
        before it would only double the fixed cost of a commit (measured: pairs of commits a few ms apart)."""
        if len(self._epoch_ends) < 2:
            return False
        previous, last = self._epoch_ends
        due_in = last + (last - previous) - now
        return 0 <= due_in <= EPOCH_END_SLACK * self.commit_interval_seconds

    def pending_state(self) -> PendingSnapshot | None:
        """What this writer holds that may not be in Iceberg yet (None when nothing is): the commits handed to the
        committer and not known done, the rows still buffered (side tables; data tables only while a stretched
        commit interval defers them) with their counts, and the positions reached.

        Bytewax keeps this as the sink's snapshot, so an epoch can end without waiting for its commit: a restart
        from that epoch hands it (as bytes) to `recover`. Call it right after a commit that took the data tables.
        """
        self._reap()
        commits = [
            (name, dict(seam), {key: list(count) for key, count in counts.items()}, list(parts))
            for _, jobs in self._inflight
            for name, parts, seam, counts in jobs
        ]
        buffered = [(name, list(self._buffers[name])) for name in COMMIT_ORDER if self._buffers[name]]
        counts = {key: [self._messages[key], self._duplicates.get(key, 0)] for key in self._messages}
        if not (commits or buffered or counts):
            return None
        kinds = {key: self._kind_table[key] for key in counts}
        return PendingSnapshot(commits, buffered, dict(self._positions), counts, kinds)

    def recover(self, state: bytes | PendingSnapshot) -> None:
        """Take back a snapshot's pending work: commit, in their order, the commits Iceberg does not hold yet, then
        buffer the rows (and message counts) that no later commit took, with the positions they were buffered at.

        A table's commits land in order and each is atomic, so one is in Iceberg exactly when the table's seam
        has reached its seam (seams never go back, and every commit with rows or counts moves its seam). A side
        table commit takes all its buffered rows, so a partition's buffered rows were committed exactly when the
        table's seam for it has reached the position recorded with them.
        """
        pending = _decode_state(state.to_bytes() if isinstance(state, PendingSnapshot) else state)
        for name, seam, counts, data in pending.commits:
            current = self.seams[name]
            if all(current.get(key, 0) >= offset for key, offset in seam.items()):
                continue
            log.info(
                "recovering a commit of %s that Iceberg does not hold", name, extra={"table": name, "offsets": seam}
            )
            table = pa.ipc.open_stream(data).read_all()
            counted = {k: (c[0], c[1]) for k, c in counts.items()}
            self.commits.append(self._commit_table(name, [table], seam, counted, step="recovery"))
            self.seams[name] = seam
        for name, data in pending.side_rows:
            table, seam = pa.ipc.open_stream(data).read_all(), self.seams[name]
            keys = [
                position_key(topic, partition)
                for topic, partition in zip(
                    table["source_topic"].to_pylist(), table["source_partition"].to_pylist(), strict=True
                )
            ]
            table = table.filter(pa.array([seam.get(k, 0) < pending.positions.get(k, 0) for k in keys]))
            if table.num_rows:
                self._buffers[name].append(table)
                self._buffered_rows += table.num_rows
        for key, (messages, duplicates) in pending.counts.items():
            table_name = pending.kinds[key]
            if self.seams[table_name].get(key, 0) < pending.positions.get(key, 0):  # no commit took them
                self._kind_table[key] = table_name
                self._messages[key] = self._messages.get(key, 0) + messages
                self._duplicates[key] = self._duplicates.get(key, 0) + duplicates
        for key, offset in pending.positions.items():
            self._positions[key] = max(self._positions.get(key, 0), offset)

    def _reap(self) -> None:
        """Forget the commits that are done; raise if any failed."""
        if self._failure is not None:
            raise RuntimeError("an earlier Iceberg commit failed; restart to resume from the committed seams") from (
                self._failure
            )
        while self._inflight and self._inflight[0][0].done():
            self._join(self._inflight[0][0])

    def _join(self, future: Future | None = None) -> None:
        if future is None:
            self._reap()
            return
        try:
            future.result()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            if self._inflight and self._inflight[0][0] is future:
                self._inflight.pop(0)

    def _positions_for(self, name: str) -> dict[str, int]:
        return {key: offset for key, offset in self._positions.items() if offset > self.seams[name].get(key, 0)}

    def _counts_for(self, name: str) -> dict[str, tuple[int, int]]:
        keys = [key for key, table in self._kind_table.items() if table == name and key in self._messages]
        return {key: (self._messages[key], self._duplicates.get(key, 0)) for key in keys}

    def _commit_tables(self, jobs: list[Job]) -> None:
        if self._committer_failed:
            raise RuntimeError("not committed: an earlier commit failed")  # never a seam past lost rows
        try:
            for name, parts, seam, counts in jobs:
                self.commits.append(self._commit_table(name, parts, seam, counts))
        except BaseException:
            self._committer_failed = True
            raise
        self._memory.maybe_release()  # here, on the committer thread: the flow's thread never waits for it
        self._commits_since_maintenance += len(jobs)
        if self.maintenance_every_commits and self._commits_since_maintenance >= self.maintenance_every_commits:
            self._commits_since_maintenance = 0
            self.maintain()

    def maintain(self) -> None:
        """Compact, merge manifests and expire snapshots of every table (see `k2.maintenance`). A failure is
        logged, never fatal: the data is committed; maintenance simply runs again next time."""
        for name in self.tables:
            try:
                maintain(self.tables[name], self.maintenance_policy)
                self.tables[name] = self.tables[name].refresh()
            except Exception as exc:
                log.warning("maintenance of %s failed: %s", name, exc, extra={"table": name, "error": repr(exc)})

    def _commit_table(
        self,
        name: str,
        parts: list[pa.Table],
        seam: dict[str, int],
        counts: dict[str, tuple[int, int]],
        step: str = "commit",
    ) -> CommitResult:
        started = time.perf_counter()
        if not parts:
            data = empty_table(name)
        else:
            data = pa.concat_tables(parts)
            data = data.sort_by([(column, "ascending") for column in sort_columns(name)])
        commit_id = uuid.uuid4().hex
        properties = {OFFSETS_PROPERTY: json.dumps(seam, sort_keys=True), COMMIT_ID_PROPERTY: commit_id}
        if counts:
            properties[MESSAGES_PROPERTY] = json.dumps({k: c[0] for k, c in counts.items()}, sort_keys=True)
            properties[DUPLICATES_PROPERTY] = json.dumps({k: c[1] for k, c in counts.items()}, sort_keys=True)

        def attempt() -> int:
            try:
                with _Transaction(self.tables[name]) as transaction:
                    transaction.append(data, snapshot_properties=properties)
            except Exception:
                COMMITS.labels(name, "failed").inc()
                raise
            COMMITS.labels(name, "ok").inc()
            return _current_snapshot_id(self.tables[name])

        def landed_anyway() -> int | None:
            # Reload the table (a conflicting writer, a catalog back from an outage), and look for this commit:
            # an attempt can fail after the catalog took it (a lost reply), and retrying it would write twice.
            table = self.tables[name] = self.tables[name].refresh()
            return _snapshot_with(table, commit_id)

        with tracing.span(step, table=name, rows=data.num_rows) as traced:
            snapshot_id = self.breaker.run(attempt, before_retry=landed_anyway)
            traced.set("snapshot_id", snapshot_id)
            traced.set("offsets", seam)
        seconds = time.perf_counter() - started
        COMMIT_SECONDS.labels(name).observe(seconds)
        if self.degradation is not None:
            self.degradation.observe_commit(seconds)
        SNAPSHOTS.labels(name).set(len(self.tables[name].metadata.snapshots))
        result = CommitResult(name, data.num_rows, snapshot_id, seconds)
        log.info(
            "committed %s",
            result,
            extra={"table": name, "rows": data.num_rows, "offsets": seam, "snapshot_id": snapshot_id},
        )
        return result


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


def _export_breaker_state(name: str, state: BreakerState) -> None:
    BREAKER_STATE.labels(name).set(int(state))


def _ipc(name: str, parts: list[pa.Table]) -> memoryview:
    """Arrow IPC stream bytes of a table's parts, written once into a buffer of the exact size (a growing
    output stream copied the ~20 MB of an epoch several times: 40 ms against 17)."""
    table = pa.concat_tables(parts) if parts else empty_table(name)
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, table.schema) as stream:
        stream.write_table(table)
    buffer = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as stream:
        stream.write_table(table)
    return memoryview(buffer)  # type: ignore[return-value]  # msgpack takes it as bytes, one copy less


class PendingSnapshot:
    """A writer's pending work at an epoch end, serialised only when Bytewax pickles it.

    Bytewax takes a snapshot at every epoch end but pickles it only when recovery is on; the Arrow tables held
    here are immutable, so the bytes written later are those of the moment of the snapshot. Unpickled, it is the
    bytes `IcebergWriter.recover` takes.
    """

    __slots__ = ("buffered", "commits", "counts", "kinds", "positions")

    def __init__(
        self,
        commits: list[tuple[str, dict[str, int], dict[str, list[int]], list[pa.Table]]],
        buffered: list[tuple[str, list[pa.Table]]],
        positions: dict[str, int],
        counts: dict[str, list[int]],
        kinds: dict[str, str],
    ):
        self.commits, self.buffered, self.positions = commits, buffered, positions
        self.counts, self.kinds = counts, kinds

    def to_bytes(self) -> bytes:
        return _encode_state(
            _PendingState(
                [(name, seam, counts, _ipc(name, parts)) for name, seam, counts, parts in self.commits],
                [(name, _ipc(name, parts)) for name, parts in self.buffered],
                self.positions,
                self.counts,
                self.kinds,
            )
        )

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (self.to_bytes(),)


class _PendingState(msgspec.Struct, array_like=True):
    commits: list[tuple[str, dict[str, int], dict[str, list[int]], bytes]]  # table, seam, counts, Arrow IPC
    side_rows: list[tuple[str, bytes]]  # table, Arrow IPC of its buffered rows
    positions: dict[str, int]  # next offset reached per partition
    counts: dict[str, list[int]] = {}  # per partition: messages, duplicates not handed to a commit yet
    kinds: dict[str, str] = {}  # per partition: the data table its counts belong to


_encode_state = msgspec.msgpack.Encoder().encode
_decode_state = msgspec.msgpack.Decoder(_PendingState).decode


class _Transaction(Transaction):
    """pyiceberg's transaction (what `Table.append` uses), minus a deep copy of the whole table metadata at every
    look before anything is staged: ~19 looks per append, ~30% of a commit's time measured, and growing with every
    snapshot. The metadata models are frozen, so the unchanged metadata can be handed out as it is."""

    @property
    def table_metadata(self) -> TableMetadata:
        if not self._updates:
            return self._table.metadata
        return super().table_metadata


def start_offsets(settings: Settings) -> dict[str, int]:
    """The resume positions recorded in the configured warehouse (creating the tables if needed)."""
    return resume_offsets(ensure_tables(open_catalog(settings), settings.namespace))


def read_table(table: Table, columns: Iterable[str] | None = None) -> pa.Table:
    """The whole current content of a table (tests and small tools; queries go through the query engine)."""
    table = table.refresh()
    selected = tuple(columns) if columns is not None else ("*",)
    return table.scan(selected_fields=selected).to_arrow()


COMMITTER = "iceberg"  # the one sink partition: a single committer per table avoids commit conflicts


# The flow collects garbage rarely (see `k2.steps.tune_process`), so cyclic garbage (pyiceberg's metadata objects
# of every commit among it) would wait for a full collection that may not come for many minutes: the soak measured
# the flow's RSS creeping +8 % in 2 minutes, flat (+1 %) with full collections. One every interval, at an epoch end,
# costs a fraction of a percent; collecting as often by thresholds cost ~15 % of throughput.
FULL_COLLECTION_SECONDS = 20.0


# What the committer's snapshot is: taken as a PendingSnapshot, given back after a restart as its bytes.
SinkState = bytes | PendingSnapshot | None


class _CommitterPartition(StatefulSinkPartition[ArrowBatch, SinkState]):
    def __init__(self, writer: IcebergWriter, resume_state: bytes | None = None):
        self.writer = writer
        self._collected_at = time.monotonic()
        if resume_state is not None:
            writer.recover(resume_state)

    def write_batch(self, values: list[ArrowBatch]) -> None:
        for batch in values:
            self.writer.write(batch)

    def snapshot(self) -> PendingSnapshot | None:
        # Runs after the epoch's writes: hand everything to the committer and return what may not be in Iceberg
        # yet. The epoch's state then covers its data without waiting for the commit (measured: the flow spent
        # a third of its time waiting here); a restart from this epoch commits the rest (`recover`).
        state = self.writer.end_epoch()
        if time.monotonic() - self._collected_at >= FULL_COLLECTION_SECONDS:
            gc.collect()
            self._collected_at = time.monotonic()
        return state

    def close(self) -> None:
        self.writer.close()


class IcebergSink(FixedPartitionedSink[ArrowBatch, SinkState]):
    """Bytewax sink around `IcebergWriter`; upstream items are `(COMMITTER, ArrowBatch)`."""

    def __init__(self, writer_factory: Callable[[], IcebergWriter]):
        self.writer_factory = writer_factory

    @classmethod
    def from_settings(cls, settings: Settings, degradation: DegradationManager | None = None) -> IcebergSink:
        def factory() -> IcebergWriter:
            return IcebergWriter(
                open_catalog(settings),
                settings.namespace,
                commit_max_rows=settings.commit_max_rows,
                commit_interval_seconds=settings.epoch_seconds,
                seam_heartbeat_seconds=settings.seam_heartbeat_seconds,
                breaker=CircuitBreaker(
                    "iceberg_commit",
                    failure_threshold=settings.commit_failure_threshold,
                    max_backoff=settings.commit_max_backoff_seconds,
                    give_up_seconds=settings.commit_give_up_seconds or None,
                    on_state=_export_breaker_state,
                ),
                degradation=degradation,
                maintenance_every_commits=settings.maintenance_every_commits,
                maintenance_policy=MaintenancePolicy(
                    retain_last=settings.snapshot_retain_last,
                    max_snapshot_age_seconds=settings.snapshot_retention_seconds,
                    compact=settings.maintenance_compact,
                ),
            )

        return cls(factory)

    def list_parts(self) -> list[str]:
        return [COMMITTER]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState) -> _CommitterPartition:
        return _CommitterPartition(self.writer_factory(), resume_state)
