"""The flow's Kafka source: each topic-partition read by its own assigned consumer, in batches.

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
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from k2.kafka.admin import partitions_of
from k2.model.batch import RawBatch, position_key, tick
from k2.ops import tracing
from k2.ops.degrade import DegradationManager
from k2.ops.metrics import CONSUMER_LAG
from k2.ops.stopping import stop_requested

log = logging.getLogger(__name__)
IDLE_POLL = timedelta(milliseconds=5)
PAUSED_POLL = timedelta(milliseconds=200)


def _end_of_partition(message: object) -> bool:
    """True for the end-of-partition marker; any other error stops the flow (it restarts from the seams)."""
    error = message.error()  # type: ignore[attr-defined]
    if error is None:
        return False
    if error.code() == KafkaError._PARTITION_EOF:
        return True
    raise KafkaException(error)


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
        degradation: DegradationManager | None = None,
        idle_tick_seconds: float | None = None,
        reached: int = 0,
    ):
        """Read `topic`/`partition` from `start`; `reached` is the position the warehouse or the recovery state
        says was read already (at or above `start`, which may be a warm-up window lower)."""
        self.topic, self.partition, self.batch_size = topic, partition, batch_size
        self._degradation = degradation
        self._idle_tick_seconds = idle_tick_seconds
        self._last_emitted = time.monotonic()  # the last batch or tick handed to the flow
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "k2-ingest",  # required by librdkafka; nothing is ever committed to it
                "enable.auto.commit": False,
                "enable.partition.eof": not tail,
                # Prefetch a few batches, not librdkafka's default 64 MiB per partition: with one consumer per
                # partition that default would be much of the flow's memory. A full queue postpones the partition's
                # next fetch by `fetch.queue.backoff.ms`, 1 s by default: that, not the queue size, capped the
                # flow's throughput, so a short backoff lets a small queue keep up (figures: benchmarks/report.md,
                # "Design measurements: Kafka consumer").
                "fetch.max.bytes": 2 * 1024 * 1024,
                "queued.min.messages": 4 * batch_size,
                "queued.max.messages.kbytes": 2 * 1024,
                "max.partition.fetch.bytes": 1024 * 1024,
                "fetch.queue.backoff.ms": 10,
                "fetch.wait.max.ms": 50,
            }
        )
        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if reached > high:
            self._consumer.close()
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
        self._position = TopicPartition(topic, partition)
        self._lag = CONSUMER_LAG.labels(topic, str(partition))
        self._lag.set(max(high - start, 0))
        self._consumer.assign([TopicPartition(topic, partition, start)])

    def next_batch(self) -> list[RawBatch]:
        if (self._end is not None and self._next >= self._end) or stop_requested():
            raise StopIteration  # the end of a bounded read, or a clean stop (k2.ops.stopping): the sinks then commit
        batch_size = self.batch_size
        if self._degradation is not None:
            self._degradation.maybe_update()
            if self._degradation.paused(self.topic):  # not read now; Kafka keeps it, nothing is lost
                self._awake = datetime.now(UTC) + PAUSED_POLL
                self._update_lag()
                return []
            batch_size *= self._degradation.batch_factor
        # Never block the worker: librdkafka prefetches in its own thread, so take what is there now and, when
        # nothing is, ask Bytewax to come back shortly (a blocking wait here would stall every other step).
        started = time.time_ns()  # the read span's start, when there is a batch to trace
        messages = self._consumer.consume(batch_size, timeout=0)
        if any(message.error() is not None for message in messages):
            messages = [m for m in messages if not _end_of_partition(m)]
        if not messages:
            self._awake = datetime.now(UTC) + IDLE_POLL  # also wakes the reader for its next tick
            self._update_lag()
            return self._tick_if_due()
        self._awake = None
        self._last_emitted = time.monotonic()
        with tracing.span("read", start_ns=started) as traced:
            # Column-wise, one pass per field: this runs for every message.
            offsets = [m.offset() for m in messages]
            values = [m.value() or b"" for m in messages]
            timestamps = [m.timestamp()[1] * 1_000 for m in messages]  # ms -> µs
            batch = RawBatch(self.topic, self.partition, offsets, values, timestamps)
            traced.set_batch(batch)
        self._next = offsets[-1] + 1
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
        # The high watermark librdkafka cached from its last fetch response: no broker round trip.
        high = self._consumer.get_watermark_offsets(self._position, cached=True)[1]
        if high >= 0:  # -1 until the first fetch response
            self._lag.set(max(high - self._next, 0))

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        return self._next

    def close(self) -> None:
        self._consumer.close()


class KafkaSource(FixedPartitionedSource[RawBatch, int]):
    """Every partition of the given topics; `tail=False` stops at the high watermark seen at start (tests).

    `idle_tick_seconds`: a partition with nothing to read for this long sends an empty batch (a tick, see
    `k2.model.batch.tick`), and again at this interval while idle; the ingest flow passes its commit interval. None: no
    ticks, only messages.
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
    ):
        self.bootstrap = bootstrap
        self.degradation = degradation
        self.idle_tick_seconds = idle_tick_seconds
        self.warmup_messages = warmup_messages
        self.topics = topics
        self.start_offsets = start_offsets
        self.batch_size = batch_size
        self.tail = tail
        self._seams: dict[str, int] | None = None

    def list_parts(self) -> list[str]:
        return [position_key(t, p) for t, p in partitions_of(self.bootstrap, self.topics)]

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
        return _PartitionReader(
            self.bootstrap,
            topic,
            int(partition),
            start,
            self.batch_size,
            self.tail,
            self.degradation,
            self.idle_tick_seconds,
            reached=reached,
        )
