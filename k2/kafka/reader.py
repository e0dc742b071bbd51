"""The compiled Kafka reader: one topic-partition read by librdkafka and validated on a thread of its own.

`k2_native.Reader` (native/src/reader.rs) polls librdkafka, gathers batches and validates them off the Python
thread into Arrow rows; `PartitionReader.take` hands them over as a `RawBatch` whose `accepted` holds those rows and
whose other messages keep their bytes for the exact path (`k2.ingest.validate`), which gives every verdict's reason.
Python never builds an object per accepted message: that was most of the flow's time and memory (benchmarks/
report.md, "Design measurements: Compiled Kafka reader"). Used by the flow's source and the realtime tail alike.
"""

from __future__ import annotations

import logging

import k2_native
import pyarrow as pa

from k2.ingest.checks import Rules
from k2.ingest.columnar import DATA_SCHEMAS
from k2.model.batch import Accepted, RawBatch
from k2.model.schemas import Kind
from k2.storage.catalog import TABLE_FOR_KIND

log = logging.getLogger(__name__)
ReadError = k2_native.ReadError  # a Kafka error on the partition: the reading has stopped


def consumer_settings(bootstrap: str, batch_size: int, **overrides: object) -> dict[str, str]:
    """librdkafka settings of an assigned consumer (no group, nothing committed) with a small prefetch."""
    settings: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": "k2-ingest",  # required by librdkafka; nothing is ever committed to it
        "enable.auto.commit": False,
        # A position the log no longer (or not yet) holds is an error, never a silent jump to the end: retention
        # removing unread messages must be seen. The caller stops; on restart the source logs what was lost.
        "auto.offset.reset": "error",
        # Prefetch a few batches, not librdkafka's default 64 MiB per partition: with one consumer per partition
        # that default would be much of the flow's memory. A full queue postpones the partition's next fetch by
        # `fetch.queue.backoff.ms`, 1 s by default: that, not the queue size, capped the flow's throughput, so a
        # short backoff lets a small queue keep up (benchmarks/report.md, "Design measurements: Kafka consumer").
        "fetch.max.bytes": 2 * 1024 * 1024,
        "queued.min.messages": 4 * batch_size,
        "queued.max.messages.kbytes": 2 * 1024,
        "max.partition.fetch.bytes": 1024 * 1024,
        "fetch.queue.backoff.ms": 10,
        "fetch.wait.max.ms": 50,
    }
    settings.update(overrides)
    return {key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in settings.items()}


class PartitionReader:
    """`topic`/`partition` from an offset, in batches of up to `batch_size` messages.

    `kind` (with `rules`): validate on the reading thread as that kind; None leaves every message to the flow's
    validation (a mapped topic, a topic of neither kind). At most `queued_batches` batches wait to be taken: a caller
    that stops taking stops the reading, and nothing is lost.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partition: int,
        *,
        batch_size: int = 5_000,
        kind: Kind | None = None,
        rules: Rules | None = None,
        queued_batches: int = 2,
        **settings: object,
    ):
        self.topic, self.partition, self.batch_size = topic, partition, batch_size
        self.kind = kind if rules is not None else None
        self._rules = rules
        self._queued = queued_batches
        self._schema = None if self.kind is None else DATA_SCHEMAS[TABLE_FOR_KIND[self.kind]]
        config = consumer_settings(bootstrap, batch_size, **settings)
        self._native = k2_native.Reader(list(config.items()), topic, partition)

    def watermarks(self, timeout: float = 10.0) -> tuple[int, int]:
        """(low, high) offsets of the partition, asked of the broker."""
        return self._native.watermarks(timeout)

    def cached_high_watermark(self) -> int:
        """The high watermark from librdkafka's last fetch response (no broker round trip); -1 before the first."""
        return self._native.cached_high_watermark()

    def start(self, offset: int, end: int | None = None) -> PartitionReader:
        """Read from `offset` (a real offset, not a logical one), up to `end` when given."""
        rules = self._rules
        self._native.start(
            offset,
            end,
            self.kind,
            0 if rules is None else rules.min_timestamp_us,
            0 if rules is None else rules.max_timestamp_us,
            self.batch_size,
            self._queued,
        )
        return self

    def take(self, max_batches: int = 1) -> RawBatch | None:
        """The messages read so far, up to `max_batches` batches of them, without waiting; None when none are."""
        taken = self._native.take(max_batches)
        if taken is None:
            return None
        offsets, timestamps, batches, left, values, failures = taken
        for failure in failures:  # the exact path takes those messages: nothing is lost, but it must be seen
            log.error("compiled validation failed on a batch of %s; the exact path takes it: %s", self.topic, failure)
        accepted = None
        if self.kind is not None and len(left) < len(offsets):
            schema = self._schema
            rows = pa.Table.from_batches([pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in batches])
            accepted = Accepted(self.kind, rows, left)
        return RawBatch(self.topic, self.partition, offsets, values, timestamps, accepted)

    def close(self) -> None:
        self._native.close()
