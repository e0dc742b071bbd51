"""The flow's Kafka source: each topic-partition read by its own compiled reader (`k2.kafka.reader`), in batches.

No consumer group and no offsets committed to the cluster: Iceberg holds the truth. A partition starts from
Bytewax's recovery state when there is one, else from the lowest Iceberg seam of the four tables, else from the
beginning. Rows below a table's seam are dropped by the writer, so whatever the start, nothing is written twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING

from k2.ingest.checks import Rules
from k2.ingest.pipeline import Pipeline
from k2.kafka.admin import partitions_with_watermarks, watermarks
from k2.kafka.reader import PartitionReader
from k2.model.batch import RawBatch, position_key, tick
from k2.model.schemas import Kind
from k2.ops import tracing
from k2.ops.degrade import DegradationManager
from k2.ops.metrics import CONSUMER_LAG
from k2.ops.stopping import stop_requested

log = logging.getLogger(__name__)
IDLE_POLL = timedelta(milliseconds=5)
PAUSED_POLL = timedelta(milliseconds=200)


class PositionBeyondTopicEnd(RuntimeError):
    """The warehouse (or the recovery state) has read further than the topic reaches: the topic was deleted and
    created again, or this is another cluster. Reading on would skip everything published up to that position."""

    def __init__(self, topic: str, partition: int, reached: int, end: int):
        super().__init__(
            f"{topic}/{partition}: K2 has read this partition up to offset {reached}, but the topic ends at {end}. "
            "The topic was recreated or this is another cluster, and reading on would skip every message up to "
            f"{reached}. Ingest into a new warehouse (K2_DATA_DIR / K2_NAMESPACE) with no recovery state, or "
            "restore the topic."
        )


class _PartitionReader(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partition: int,
        start: int,
        batch_size: int,
        tail: bool,
        watermarks: tuple[int, int],
        degradation: DegradationManager | None = None,
        idle_tick_seconds: float | None = None,
        reached: int = 0,
        kind: Kind | None = None,
        rules: Rules | None = None,
    ):
        """Read `topic`/`partition` from `start`; `reached` is the position the warehouse or the recovery state
        says was read already (at or above `start`, which may be a warm-up window lower); `watermarks` the
        partition's (low, high) offsets now. With `kind` and `rules` the compiled reader validates as it reads
        (`k2.kafka.reader`)."""
        self.topic, self.partition = topic, partition
        self._degradation = degradation
        self._idle_tick_seconds = idle_tick_seconds
        self._last_emitted = time.monotonic()  # the last batch or tick handed to the flow
        low, high = watermarks
        if reached > high:
            raise PositionBeyondTopicEnd(topic, partition, reached, high)
        if reached > low > 0 and start != OFFSET_BEGINNING and start < low:
            log.warning("%s/%s: retention removed part of the warm-up window (%s..%s)", topic, partition, start, low)
        elif low > reached > 0:
            log.error(
                "%s/%s: messages %s..%s were removed by retention before K2 read them", topic, partition, reached, low
            )
        # Retention may have removed the oldest part of a warm-up window: start no lower than the log does.
        start = low if start == OFFSET_BEGINNING else max(start, low)
        self._next = start
        self._end = None if tail else high
        self._awake: datetime | None = None
        self._lag = CONSUMER_LAG.labels(topic, str(partition))
        self._lag.set(max(high - start, 0))
        self._reader: PartitionReader | None = None
        # A bounded read with nothing to read gets no consumer: dropping one holds the GIL ~0.1 s (rust-rdkafka
        # polls its close every 100 ms), a stall of the whole flow for every empty partition at its start.
        if self._end is None or start < self._end:
            self._reader = PartitionReader(bootstrap, topic, partition, batch_size=batch_size, kind=kind, rules=rules)
            self._reader.start(start, self._end)

    def next_batch(self) -> list[RawBatch]:
        if (self._end is not None and self._next >= self._end) or stop_requested():
            raise StopIteration  # the end of a bounded read, or a clean stop (k2.ops.stopping): the sinks then commit
        batches = 1
        if self._degradation is not None:
            self._degradation.maybe_update()
            if self._degradation.paused(self.topic):  # not read now; Kafka keeps it, nothing is lost
                self._awake = datetime.now(UTC) + PAUSED_POLL
                self._update_lag()
                return []
            batches = self._degradation.batch_factor
        # Never block the worker: the reader reads and validates on its own thread, so take what is ready now and,
        # when nothing is, ask Bytewax to come back shortly (a blocking wait here would stall every other step).
        started = time.time_ns()  # the read span's start, when there is a batch to trace
        batch = self._reader.take(batches)
        if batch is None:
            self._awake = datetime.now(UTC) + IDLE_POLL  # also wakes the reader for its next tick
            self._update_lag()
            return self._tick_if_due()
        self._awake = None
        self._last_emitted = time.monotonic()
        with tracing.span("read", start_ns=started) as traced:
            traced.set_batch(batch)
        self._next = batch.next_offset
        self._update_lag()
        return [batch]

    def _tick_if_due(self) -> list[RawBatch]:
        """A tick once the partition has had nothing to read for an interval (see `k2.model.batch.tick`), then another
        every interval while it stays idle. A paused topic sends none: the topic it yields to keeps the sink busy."""
        if self._idle_tick_seconds is None:
            return []
        now = time.monotonic()
        if now - self._last_emitted < self._idle_tick_seconds:
            return []
        self._last_emitted = now
        return [tick(self.topic, self.partition)]

    def _update_lag(self) -> None:
        high = self._reader.cached_high_watermark()
        if high >= 0:  # -1 until the first fetch response
            self._lag.set(max(high - self._next, 0))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


class KafkaSource(FixedPartitionedSource[RawBatch, int]):
    """Every partition of the given topics; `tail=False` stops at the high watermark seen at start (tests).

    `idle_tick_seconds`: a partition with nothing to read for this long sends an empty batch (a tick, see
    `k2.model.batch.tick`), and again at this interval while idle; the ingest flow passes its commit interval. None: no
    ticks, only messages.
    `pipeline`: the flow's steps; given, the compiled reader validates each topic it may (`Pipeline.reader_kind`)
    as it reads, and the validate step keeps those rows. Without it every message reaches the validate step as bytes.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        *,
        start_offsets: Callable[[], dict[str, int]] | None = None,
        batch_size: int = 5_000,
        tail: bool = True,
        warmup_messages: int = 0,
        degradation: DegradationManager | None = None,
        idle_tick_seconds: float | None = None,
        pipeline: Pipeline | None = None,
    ):
        self.bootstrap = bootstrap
        self.pipeline = pipeline
        self.degradation = degradation
        self.idle_tick_seconds = idle_tick_seconds
        self.warmup_messages = warmup_messages
        self.topics = topics
        self.start_offsets = start_offsets
        self.batch_size = batch_size
        self.tail = tail
        self._seams: dict[str, int] | None = None
        self._watermarks: dict[str, tuple[int, int]] = {}

    def list_parts(self) -> list[str]:
        # The partitions' watermarks come with the listing (one client, one request per bound for all of them),
        # for `build_part`, rather than one round trip per partition.
        self._watermarks = partitions_with_watermarks(self.bootstrap, self.topics)
        return list(self._watermarks)

    def _watermarks_of(self, topic: str, partition: int) -> tuple[int, int]:
        """The partition's (low, high) offsets from the listing of this start, else asked now (a part built
        without a listing: tests)."""
        listed = self._watermarks.pop(position_key(topic, partition), None)
        return listed or watermarks(self.bootstrap, [(topic, partition)])[position_key(topic, partition)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _PartitionReader:
        topic, _, partition = for_part.rpartition("/")
        if resume_state is not None:
            start = reached = resume_state  # Bytewax recovery: the flow's state matches this position
        else:
            if self._seams is None:
                self._seams = self.start_offsets() if self.start_offsets else {}
            seam = self._seams.get(for_part, 0)
            # Without recovery state, start a window before the seam: those messages re-build the sequence and
            # dedupe state exactly as it was (a duplicate of a message just below the seam is still caught), and
            # the writer drops them, since they are below the seam.
            start = seam - self.warmup_messages if seam > self.warmup_messages else OFFSET_BEGINNING
            reached = seam
        log.info("reading %s from offset %s", for_part, start)
        pipeline = self.pipeline
        return _PartitionReader(
            self.bootstrap,
            topic,
            int(partition),
            start,
            self.batch_size,
            self.tail,
            self._watermarks_of(topic, int(partition)),
            self.degradation,
            self.idle_tick_seconds,
            reached=reached,
            kind=None if pipeline is None else pipeline.reader_kind(topic),
            rules=None if pipeline is None else pipeline.rules,
        )
