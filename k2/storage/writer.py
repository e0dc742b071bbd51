"""Writing to Iceberg, and the commit protocol that makes it exactly-once.

One committer (`IcebergWriter`) owns all four tables. It buffers Arrow batches and commits per epoch (or when the
buffer is large), never per message. Each table's commit stores, in its snapshot summary, the next source offset of
every partition that table has covered (`k2.kafka.offsets`): that is the table's seam. On start the writer reads
the seams back (walking past maintenance snapshots, which carry none) and drops any row at an offset below its
table's seam, so a source that re-sends already committed messages cannot write them twice.
"""

from __future__ import annotations

import logging
import math
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from k2.ingest.columnar import ArrowBatch
from k2.model.batch import position_key
from k2.ops import tracing
from k2.ops.breaker import CircuitBreaker
from k2.ops.config import Settings
from k2.ops.degrade import DegradationManager
from k2.ops.memory import MemoryReleaser
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TABLE_FOR_KIND, TRADES, ensure_tables, open_tables
from k2.storage.commit import CommitResult, commit_breaker, commit_table, export_breaker_state
from k2.storage.maintenance import MaintenancePolicy, maintain
from k2.storage.pending import PendingSnapshot, decode_state
from k2.storage.seams import committed_offsets

RECENT_COMMITS = 1_000  # a long-running flow must not keep one entry per commit forever
# Side tables first: a crash between commits then re-derives (and filters) data rows, never loses a dead letter.
COMMIT_ORDER = (DEAD_LETTERS, SEQUENCE_GAPS, QUOTES, TRADES)
# Side tables get few rows; committing them at every interval would cost more metadata than data. Their seam
# simply lags (a restart resumes from the lowest seam and the data tables' seams filter what they already hold).
SIDE_TABLES = (DEAD_LETTERS, SEQUENCE_GAPS)
SIDE_TABLE_INTERVALS = 10  # side tables commit every this many commit intervals, and at every epoch end
# Handed to the committer thread and not done yet; one more makes the flow wait. One bounds memory (a commit's
# rows are held until it is done) and pushes back on the source when Iceberg is slower than the feed.
MAX_PENDING_COMMITS = 1
# While the commit before is still running, a full buffer keeps filling up to this many times `commit_max_rows`
# rather than holding the flow's thread up; at a steady rate the committer is idle by then and commits keep their
# size (benchmarks/report.md, "Design measurements: Commits that grow while the committer is busy").
BUSY_COMMIT_GROWTH = 1.25
EPOCH_END_SLACK = 0.25  # no timed commit within this share of an interval before the next epoch end is due

Job = tuple[str, list[pa.Table], dict[str, int], dict[str, tuple[int, int]]]  # table, rows, seam, counts

log = logging.getLogger(__name__)


class IcebergWriter:
    """Buffers batches for the four tables and commits them with their source positions.

    `tables`: the four tables already opened (`ensure_tables`), e.g. by the flow while its Kafka readers started;
    without them the writer opens them from `catalog`.
    """

    def __init__(
        self,
        catalog: Catalog | None,
        namespace: str,
        *,
        tables: dict[str, Table] | None = None,
        commit_max_rows: int = 50_000,
        commit_interval_seconds: float = 1.0,
        seam_heartbeat_seconds: float = 30.0,
        breaker: CircuitBreaker | None = None,
        degradation: DegradationManager | None = None,
        maintenance_every_commits: int = 0,
        maintenance_policy: MaintenancePolicy | None = None,
        before_commit: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.tables = tables if tables is not None else ensure_tables(catalog, namespace)
        self.before_commit = before_commit  # runs before any commit is handed over (the DLQ's confirmation)
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
        # Failed commits are retried with the same data until they land (see k2.ops.breaker): the committer thread
        # waits, the flow waits on it, nothing is dropped or written twice.
        self.breaker = breaker or commit_breaker()
        export_breaker_state(self.breaker.name, self.breaker.state)
        self.degradation = degradation  # stretches the commit interval under pressure; hears every commit's time
        # Table maintenance on the committer thread, between this writer's own commits (so it never races them):
        # without it every commit adds a snapshot and a manifest, and commits slow down as they accumulate.
        self.maintenance_every_commits = maintenance_every_commits
        self.maintenance_policy = maintenance_policy or MaintenancePolicy()
        self._commits_since_maintenance = 0
        self._memory = MemoryReleaser()

    def write(self, batch: ArrowBatch) -> None:
        """Buffer what a batch adds above the seams, then commit if the buffer is large or the interval is over.

        A tick (an empty batch: the source is idle, `k2.model.batch.tick`) buffers nothing and moves no position; it
        only runs the timed commit, which takes the side tables once due and records lagging seams (the heartbeat),
        so an idle stream's dead letters and gap events still reach Iceberg."""
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
        growth = BUSY_COMMIT_GROWTH if not interval_over and self._committer_busy() else 1
        if self._buffered_rows >= self.commit_max_rows * growth or interval_over:
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
            if self.before_commit is not None:
                self.before_commit()
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

        Always, even under pressure (a stretched commit interval only spaces the timed commits inside an epoch):
        rows deferred past an epoch end rode in every recovery snapshot until committed, so a backlog grew the
        state without bound while the committed position stood still, each restart starting further behind.
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
        before it would only double the fixed cost of a commit (benchmarks/report.md,
        "Design measurements: Commits at epoch ends")."""
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
        pending = decode_state(state.to_bytes() if isinstance(state, PendingSnapshot) else state)
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

    def _committer_busy(self) -> bool:
        return any(not future.done() for future, _ in self._inflight)  # a commit handed over is not done

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
        """Compact, merge manifests and expire snapshots of every table (see `k2.storage.maintenance`). A failure is
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
        return commit_table(
            self.tables, name, parts, seam, counts, breaker=self.breaker, degradation=self.degradation, step=step
        )


def writer_from_settings(
    settings: Settings,
    degradation: DegradationManager | None = None,
    tables: Callable[[], dict[str, Table]] | None = None,
) -> IcebergWriter:
    """The flow's writer: the configured warehouse (its tables from `tables` when given), commit cadence, breaker
    and maintenance."""
    return IcebergWriter(
        None,
        settings.namespace,
        tables=tables() if tables else open_tables(settings),
        commit_max_rows=settings.commit_max_rows,
        commit_interval_seconds=settings.epoch_seconds,
        seam_heartbeat_seconds=settings.seam_heartbeat_seconds,
        breaker=commit_breaker(
            failure_threshold=settings.commit_failure_threshold,
            max_backoff=settings.commit_max_backoff_seconds,
            give_up_seconds=settings.commit_give_up_seconds or None,
        ),
        degradation=degradation,
        maintenance_every_commits=settings.maintenance_every_commits,
        maintenance_policy=MaintenancePolicy(
            retain_last=settings.snapshot_retain_last,
            max_snapshot_age_seconds=settings.snapshot_retention_seconds,
            compact=settings.maintenance_compact,
        ),
    )
