"""Fresh data and history as one: the Kafka tail beyond an Iceberg snapshot's seam, processed like the flow.

A `TailFollower` keeps one warm reader on every partition of the trades and quotes topics (the flow's compiled
reader, `k2.kafka.reader`: assigned, never a consumer group, nothing committed to the cluster). It starts a warm-up
window below the committed seams and runs every message through the flow's own steps — validation, `SequenceTracker`,
`Deduper`, `to_arrow` — so its sequence and dedupe state at any offset is what the flow's is. It keeps the clean
rows at or above the newest seam it has been shown, at most `max_messages` of them.

A realtime query pins one Iceberg snapshot and asks for the rows at or above *that snapshot's* seam: below it
every message is in Iceberg, at and above it only in the tail. A commit landing during the query changes neither
side, so each message is counted exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from itertools import groupby

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from k2.ingest.columnar import ARROW_SCHEMAS
from k2.ingest.pipeline import Pipeline
from k2.kafka.admin import partitions_of
from k2.kafka.reader import PartitionReader
from k2.model.batch import RawBatch, position_key
from k2.ops.config import Settings
from k2.query.engine import QueryEngine, TailSlice
from k2.storage.catalog import QUOTES, TABLE_FOR_KIND, TRADES
from k2.storage.seams import lowest

log = logging.getLogger(__name__)
IDLE_WAIT = 0.005  # seconds between looks at readers that had nothing ready (they read on their own threads)


def committed_seams(engine: QueryEngine) -> dict[str, int]:
    """Per partition, the lower of the trades and quotes tables' seams: where the tail of either begins."""
    return lowest(engine.plan(table)[1].offsets for table in (TRADES, QUOTES))


def start_follower(settings: Settings, engine: QueryEngine) -> TailFollower | None:
    """Follow the topics for realtime reads and hand the tail to `engine`; None (logged) when Kafka is not
    reachable or the topics do not exist yet: realtime reads then answer that they are unavailable."""
    if not settings.kafka_bootstrap:
        return None
    try:
        follower = TailFollower(
            settings, lambda: committed_seams(engine), max_messages=settings.realtime_max_messages
        ).start()
    except Exception:
        log.exception("realtime reads are off: the Kafka tail cannot be followed")
        return None
    engine.tail_source = follower.tail
    return follower


def _filtered(
    rows: pa.Table, first_offset: int, symbols: Sequence[str] | None, start: int | None, end: int | None
) -> pa.Table:
    """Rows at or above the seam, with the query's own filters applied before they meet DuckDB (a query usually
    wants one symbol): one mask, so the buffered rows are copied once, and only those kept."""
    mask = pc.greater_equal(rows["source_offset"], first_offset)
    if symbols:
        mask = pc.and_(mask, pc.is_in(rows["symbol"], value_set=pa.array(list(symbols), pa.string())))
    times = rows["timestamp"]
    for bound, compare in ((start, pc.greater_equal), (end, pc.less)):
        if bound is not None:
            term = compare(times, pa.scalar(bound, times.type))
            mask = pc.and_(mask, term)
    return rows.filter(mask)


class TailPart:
    """Clean tail rows of one partition, sorted by symbol, with where each symbol's rows lie: a query for a few
    symbols (the usual case) slices them out instead of filtering every buffered row (that filter was the main cost
    a realtime query added: benchmarks/report.md, "Design measurements: Realtime tail")."""

    __slots__ = ("index", "max_offset", "rows")

    def __init__(self, rows: pa.Table):
        # Stable: within a symbol the rows stay in offset order.
        self.rows = rows.sort_by([("symbol", "ascending")]) if rows.num_rows else rows
        self.index: dict[str, tuple[int, int]] = {}
        start = 0
        for symbol, group in groupby(self.rows["symbol"].to_pylist()):
            count = sum(1 for _ in group)
            self.index[symbol] = (start, count)
            start += count
        self.max_offset = pc.max(self.rows["source_offset"]).as_py() if rows.num_rows else -1

    @property
    def num_rows(self) -> int:
        return self.rows.num_rows

    def select(self, symbols: Sequence[str] | None) -> pa.Table:
        if not symbols:
            return self.rows
        slices = [self.rows.slice(*self.index[symbol]) for symbol in dict.fromkeys(symbols) if symbol in self.index]
        return pa.concat_tables(slices) if slices else self.rows.slice(0, 0)

    def from_offset(self, offset: int) -> TailPart:
        return TailPart(self.rows.filter(pc.greater_equal(self.rows["source_offset"], offset)))

    @staticmethod
    def merged(parts: list[TailPart]) -> TailPart:
        return TailPart(pa.concat_tables([part.rows for part in parts]).combine_chunks())


class PartitionPipeline:
    """One source partition through the flow's steps, in the flow's order, with the flow's state."""

    def __init__(self, pipeline: Pipeline, topic: str):
        self.table = TABLE_FOR_KIND[pipeline.kind_of(topic)]  # type: ignore[index]
        self.steps = pipeline.for_partition()

    def process(self, raw: RawBatch) -> pa.Table | None:
        return self.steps.to_arrow(raw).tables.get(self.table)


class TailFollower:
    """A background consumer that keeps the flow-processed tail of every trades and quotes partition."""

    def __init__(
        self,
        settings: Settings,
        seams: Callable[[], dict[str, int]],
        *,
        max_messages: int = 500_000,
        warmup_messages: int | None = None,
        poll_seconds: float = 0.05,
    ):
        self.settings = settings
        self._seams = seams
        self.max_messages = max_messages
        self.warmup = settings.resume_warmup_messages if warmup_messages is None else warmup_messages
        self.poll_seconds = poll_seconds
        self._lock = threading.Condition()
        self._buffers: dict[str, list[TailPart]] = {}
        self._position: dict[str, int] = {}
        # Per partition, the newest seam a query has shown, and the one before it: rows are kept from the older of
        # the two, so a request still holding the previous snapshot (planned just before a commit) finds its rows.
        self._newest: dict[str, int] = {}
        self._floor: dict[str, int] = {}
        self._buffered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> TailFollower:
        topics = [self.settings.trades_topic, self.settings.quotes_topic]
        self._partitions = partitions_of(self.settings.kafka_bootstrap, topics)
        pipeline = self._pipeline = Pipeline(self.settings)  # one for all partitions: rules and mapping read once
        self._pipelines = {position_key(t, p): PartitionPipeline(pipeline, t) for t, p in self._partitions}
        # Watermarks are asked on the query's thread, all partitions in one request (never the follower's consumer).
        self._admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        self._thread = threading.Thread(target=self._run, name="k2-tail", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def high_watermarks(self, table: str) -> dict[str, int]:
        """Each partition's end now, for the partitions feeding `table` (one request to the cluster)."""
        wanted = {
            TopicPartition(topic, partition): OffsetSpec.latest()
            for topic, partition in self._partitions
            if self._pipelines[position_key(topic, partition)].table == table
        }
        futures = self._admin.list_offsets(wanted, request_timeout=5)
        return {position_key(tp.topic, tp.partition): future.result().offset for tp, future in futures.items()}

    # --- reading ---------------------------------------------------------------------------------------------

    def tail(
        self,
        table: str,
        seam: dict[str, int],
        symbols: Sequence[str] | None = None,
        start: int | None = None,
        end: int | None = None,
        timeout: float = 1.0,
    ) -> TailSlice:
        """The clean rows of `table` at or above `seam` (of `symbols`, in `[start, end)` µs when given), once
        the follower has caught up with the high watermarks seen now (or `timeout` passed: `complete` False)."""
        wanted = self.high_watermarks(table)
        with self._lock:
            self._raise_if_failed()
            self._advance_floor(seam)
            deadline = time.monotonic() + timeout
            while not self._caught_up(wanted) and not self._capped():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
                self._raise_if_failed()
            complete = self._caught_up(wanted)
            parts, offsets = [], {}
            for key, pipeline in self._pipelines.items():
                if pipeline.table != table:
                    continue
                first = seam.get(key, 0)
                if first < self._floor.get(key, 0):
                    complete = False  # planned more than one commit ago: rows below the kept floor are gone
                position = self._position.get(key, first)
                if position > first:
                    offsets[key] = (first, position)
                parts += [
                    _filtered(part.select(symbols), first, None, start, end) for part in self._buffers.get(key, ())
                ]
        parts = [part for part in parts if part.num_rows]
        rows = pa.concat_tables(parts) if parts else ARROW_SCHEMAS[table].empty_table()
        return TailSlice(table, rows, offsets, complete)

    def _caught_up(self, wanted: dict[str, int]) -> bool:
        return all(self._position.get(key, 0) >= high for key, high in wanted.items())

    def _capped(self) -> bool:
        return self._buffered >= self.max_messages

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the Kafka tail follower stopped: {self.error}") from self.error

    def _advance_floor(self, seam: dict[str, int]) -> None:
        """Forget buffered rows below the previous seam once a newer one is shown (Iceberg holds them)."""
        for key, newest in seam.items():
            if newest <= self._newest.get(key, -1):
                continue
            offset = self._newest.get(key, 0)
            self._newest[key] = newest
            if offset <= self._floor.get(key, -1):
                continue
            self._floor[key] = offset
            kept = []
            for part in self._buffers.get(key, []):
                if part.max_offset >= offset:
                    kept.append(part.from_offset(offset))
            self._buffers[key] = kept
        self._buffered = sum(t.num_rows for parts in self._buffers.values() for t in parts)

    # --- the consumer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        readers: dict[str, PartitionReader] = {}
        try:
            seams = self._seams()
            with self._lock:
                # Everything below the seams at start is in Iceberg for any query from now on: the warm-up
                # window only rebuilds state, its rows are never kept.
                self._newest, self._floor = dict(seams), dict(seams)
            for topic, partition in self._partitions:
                key = position_key(topic, partition)
                # The flow's own reader, validating as it reads (`k2.kafka.reader`).
                reader = readers[key] = PartitionReader(
                    self.settings.kafka_bootstrap,
                    topic,
                    partition,
                    batch_size=self.settings.batch_size,
                    kind=self._pipeline.reader_kind(topic),
                    rules=self._pipeline.rules,
                    **{"group.id": "k2-tail", "fetch.wait.max.ms": 20},
                )
                low = reader.watermarks()[0]
                seam = seams.get(key, 0)
                # As the flow does without recovery state: a window below the seam rebuilds sequence/dedupe state.
                start = max(seam - self.warmup, low)
                reader.start(start)
                with self._lock:
                    self._position[key] = start
            while not self._stop.is_set():
                with self._lock:
                    capped = self._capped()
                if capped:
                    time.sleep(self.poll_seconds)  # backpressure: wait for a commit to move the seam
                    continue
                taken = [(key, raw) for key, reader in readers.items() if (raw := reader.take()) is not None]
                for key, raw in taken:
                    self._ingest(key, raw)
                if not taken:
                    self._stop.wait(IDLE_WAIT)
        except BaseException as exc:  # surfaced to the next query, which reports it
            log.exception("tail follower failed")
            self.error = exc
        finally:
            for reader in readers.values():
                reader.close()
            with self._lock:
                self._lock.notify_all()

    def _ingest(self, key: str, raw: RawBatch) -> None:
        rows = self._pipelines[key].process(raw)
        with self._lock:
            floor = self._floor.get(key, 0)
        if rows is not None and rows.num_rows and raw.offsets[0] < floor:
            rows = rows.filter(pc.greater_equal(rows["source_offset"], floor))
        # Sorted and indexed here, off the query path; a floor moving meanwhile only keeps a few rows longer
        # (queries filter by their own seam).
        part = TailPart(rows) if rows is not None and rows.num_rows else None
        with self._lock:
            if part is not None:
                parts = self._buffers.setdefault(key, [])
                parts.append(part)
                if len(parts) >= 32:  # fewer, larger parts: a query slices each of them
                    self._buffers[key] = [TailPart.merged(parts)]
                self._buffered += part.num_rows
            self._position[key] = raw.next_offset
            self._lock.notify_all()
